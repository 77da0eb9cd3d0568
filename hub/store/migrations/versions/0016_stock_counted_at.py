"""a stock row keeps the time of the last count applied to it

A count holds as of when it was counted: what was journaled after that time stays on top of it.
A movement dated before the count but journaled after it was applied (a late webhook, a resync,
a receipt booked late) was added on top all the same, though the count had seen its units gone
or there. The row now keeps its last count's time, and such a movement is journaled with its
correction. Rows counted before the upgrade take their journal's last stocktake.

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
    op.execute(
        "UPDATE stock SET counted_at = (SELECT max(m.at) FROM movements AS m"
        " WHERE m.sku = stock.sku AND m.location = stock.location AND m.kind = 'stocktake')"
    )


def downgrade() -> None:
    with op.batch_alter_table("stock") as batch:
        batch.drop_column("counted_at")
