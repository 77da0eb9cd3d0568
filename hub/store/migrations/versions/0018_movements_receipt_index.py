"""the journal's receipts are indexed by receipt line

A receipt line (receipt id, SKU, location, PO) is taken once: purchasing already kept it so,
while the stock book added a receipt sent again under another message id a second time. The
core now looks its batch's receipt lines up in the journal (the PO in a receipt's `reason`), on
this partial index of the journal's receipts. On PostgreSQL it is built concurrently: the
journal is the largest table, and a plain build would hold up every core commit.

Revision ID: 0018_movements_receipt_index
Revises: 0017_dead_letter_time
Create Date: 2026-12-07 22:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018_movements_receipt_index"
down_revision = "0017_dead_letter_time"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.execute(
                "CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_movements_receipt"
                " ON movements (ref, sku, location) WHERE kind = 'receipt'"
            )
        return
    op.create_index(
        "ix_movements_receipt",
        "movements",
        ["ref", "sku", "location"],
        sqlite_where=sa.text("kind = 'receipt'"),
    )


def downgrade() -> None:
    # In the downgrade's transaction: an earlier migration refusing to go down takes it back.
    op.drop_index("ix_movements_receipt", table_name="movements")
