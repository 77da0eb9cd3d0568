"""a supplier invoice remembers who accepted its prices and charges

A buyer may accept an invoice held for its price while its goods are still missing; the match
when they arrive ran without that acceptance, so the invoice was held for its price again and
the audit log said accepted while no payable was booked. The invoice now keeps who accepted it,
and the match on the goods' arrival accepts the same. Invoices accepted before the upgrade were
either booked then or wait for a second acceptance, as before.

Revision ID: 0012_invoice_accepted_by
Revises: 0011_shipment_per_po
Create Date: 2026-12-07 15:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_invoice_accepted_by"
down_revision = "0011_shipment_per_po"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("supplier_invoices", sa.Column("accepted_by", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("supplier_invoices") as batch:
        batch.drop_column("accepted_by")
