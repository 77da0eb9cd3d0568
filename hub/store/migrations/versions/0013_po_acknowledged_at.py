"""a PO keeps when its last applied acknowledgement was written

A supplier may revise its acknowledgement (an X12 855 replacing the first under the same order
number). The PO kept only the acknowledgement's id, and dropped any later one with the same id:
a quantity cut or a refusal sent as a revision never lowered the inbound, and presale sold
against units that would never come. The PO now keeps the acknowledgement's time, and the
newest applies, whichever arrives last. POs acknowledged before the upgrade take the next
acknowledgement as newer.

Revision ID: 0013_po_acknowledged_at
Revises: 0012_invoice_accepted_by
Create Date: 2026-12-07 15:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_po_acknowledged_at"
down_revision = "0012_invoice_accepted_by"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "purchase_orders",
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    with op.batch_alter_table("purchase_orders") as batch:
        batch.drop_column("acknowledged_at")
