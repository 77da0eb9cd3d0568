"""a supplier invoice keeps the price variance its buyer accepted

The match on the goods' arrival accepted a price hold up to the invoice's stored variance, but
every match stores the variance it finds: a raised variance held once was stored, and the next
receipt's match took it for the accepted one and booked it. The variance accepted is now kept
apart. Invoices accepted before the upgrade take their stored variance, as they did.

Revision ID: 0014_invoice_accepted_variance
Revises: 0013_po_acknowledged_at
Create Date: 2026-12-07 16:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_invoice_accepted_variance"
down_revision = "0013_po_acknowledged_at"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "supplier_invoices",
        sa.Column("accepted_variance", sa.Numeric(precision=20, scale=6), nullable=True),
    )
    op.execute(
        "UPDATE supplier_invoices SET accepted_variance = price_variance"
        " WHERE accepted_by IS NOT NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("supplier_invoices") as batch:
        batch.drop_column("accepted_variance")
