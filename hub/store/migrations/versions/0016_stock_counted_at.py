"""a stock row keeps the time of the last count applied to it

A count older than one already applied changes nothing; the core told so by the later count's
stocktake movement, but a count that found exactly what the hub had journals nothing, and an
older count imported after it then applied as the newer. The row now keeps its last count's
time. Rows counted before the upgrade take their journal's last stocktake.

Revision ID: 0016_stock_counted_at
Revises: 0015_dead_letter_digest
Create Date: 2026-12-07 18:25:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016_stock_counted_at"
down_revision = "0015_dead_letter_digest"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("stock", sa.Column("counted_at", sa.DateTime(timezone=True), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        # One pass over the journal's stocktakes, then only the rows counted.
        op.execute(
            "UPDATE stock SET counted_at = last.at FROM (SELECT sku, location, max(at) AS at"
            " FROM movements WHERE kind = 'stocktake' GROUP BY sku, location) AS last"
            " WHERE stock.sku = last.sku AND stock.location = last.location"
        )
    else:  # (UPDATE … FROM needs SQLite 3.33)
        op.execute(
            "UPDATE stock SET counted_at = (SELECT max(m.at) FROM movements AS m"
            " WHERE m.sku = stock.sku AND m.location = stock.location AND m.kind = 'stocktake')"
        )


def downgrade() -> None:
    with op.batch_alter_table("stock") as batch:
        batch.drop_column("counted_at")
