"""a ship notice is recorded per PO, so that one shipment carrying several POs counts for each

An advance ship notice may carry goods of several purchase orders under one shipment id (an
X12 856 with an order level per PO, an EDIFACT DESADV with a reference per line); the
connectors send one message per PO. The record that makes a notice count once was keyed by
supplier and shipment: the second PO's notice was taken for a copy of the first, and that PO
never had its units shipped, its status in transit or its new delivery date. The record now
holds the PO number in its key too. Records made before keep their one PO.

Revision ID: 0011_shipment_per_po
Revises: 0010_voucher_cause_ref
Create Date: 2026-12-07 15:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_shipment_per_po"
down_revision = "0010_voucher_cause_ref"
branch_labels = None
depends_on = None


def _primary_key(columns: list[str]) -> None:
    """Key the shipment records by `columns`. SQLite cannot alter a key: it copies the table,
    described here with the key it is to have."""
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint("po_shipments_pkey", "po_shipments", type_="primary")
        op.create_primary_key("po_shipments_pkey", "po_shipments", columns)
        return
    shape = sa.Table(
        "po_shipments",
        sa.MetaData(),
        sa.Column("supplier", sa.String(length=64), nullable=False),
        sa.Column("shipment_id", sa.String(length=64), nullable=False),
        sa.Column("po_number", sa.String(length=22), nullable=False),
        sa.Column("shipped_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expected_delivery", sa.Date(), nullable=True),
        sa.Column("carrier", sa.String(length=64), nullable=False),
        sa.Column("tracking_number", sa.String(length=64), nullable=False),
        sa.Column("lines", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint(*columns, name="po_shipments_pkey"),
    )
    with op.batch_alter_table("po_shipments", copy_from=shape, recreate="always"):
        pass


def upgrade() -> None:
    _primary_key(["supplier", "shipment_id", "po_number"])


def downgrade() -> None:
    # A shipment recorded for several POs keeps the record of its first PO.
    op.execute(
        "DELETE FROM po_shipments WHERE EXISTS (SELECT 1 FROM po_shipments AS o"
        " WHERE o.supplier = po_shipments.supplier AND o.shipment_id = po_shipments.shipment_id"
        " AND o.po_number < po_shipments.po_number)"
    )
    _primary_key(["supplier", "shipment_id"])
