"""a PO's receipt record is kept per location, so that one receipt split across locations counts

A receipt (GRN) may bring one SKU of a PO to several locations under the same receipt id. Its
record, which makes a receipt count once on the PO's lines, was keyed by PO, receipt and SKU:
the second location's part was taken for a copy of the first, its units never filled the line,
and the line's location kept them as inbound for good. The record now holds the location too.
Receipts recorded before the upgrade take the location the stock journal has them received at
(the first, for a receipt already split, whose first part alone the record stood for); a
journal that no longer holds them, the location of the PO's first line of the SKU, else the
PO's ship-to.

Revision ID: 0009_receipt_location
Revises: 0008_order_open_changed_at
Create Date: 2026-12-07 04:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_receipt_location"
down_revision = "0008_order_open_changed_at"
branch_labels = None
depends_on = None

_BACKFILL = """
UPDATE po_receipts SET location = COALESCE(
    (SELECT m.location FROM movements AS m
      WHERE m.kind = 'receipt' AND m.ref = po_receipts.receipt_id AND m.sku = po_receipts.sku
      ORDER BY m.id LIMIT 1),
    (SELECT l.location FROM purchase_order_lines AS l
      WHERE l.po_number = po_receipts.po_number AND l.sku = po_receipts.sku
      ORDER BY l.line_number LIMIT 1),
    (SELECT p.ship_to FROM purchase_orders AS p WHERE p.po_number = po_receipts.po_number),
    'main')
"""


def _primary_key(columns: list[str]) -> None:
    """Key the receipt records by `columns`. SQLite cannot alter a key: it copies the table,
    described here with the key it is to have."""
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint("po_receipts_pkey", "po_receipts", type_="primary")
        op.create_primary_key("po_receipts_pkey", "po_receipts", columns)
        return
    shape = sa.Table(
        "po_receipts",
        sa.MetaData(),
        sa.Column("po_number", sa.String(length=64), nullable=False),
        sa.Column("receipt_id", sa.String(length=128), nullable=False),
        sa.Column("sku", sa.String(length=128), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("over_delivered", sa.Integer(), nullable=False),
        sa.Column("applied", sa.JSON(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("location", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint(*columns, name="po_receipts_pkey"),
    )
    with op.batch_alter_table("po_receipts", copy_from=shape, recreate="always"):
        pass


def upgrade() -> None:
    op.add_column(
        "po_receipts",
        sa.Column("location", sa.String(length=64), nullable=False, server_default="main"),
    )
    op.execute(_BACKFILL)
    _primary_key(["po_number", "receipt_id", "sku", "location"])
    if op.get_bind().dialect.name != "sqlite":  # the copy SQLite made has no default
        op.alter_column("po_receipts", "location", server_default=None)


def downgrade() -> None:
    # The parts of one receipt at other locations than its first collapse into that one.
    op.execute(
        "DELETE FROM po_receipts WHERE EXISTS (SELECT 1 FROM po_receipts AS o"
        " WHERE o.po_number = po_receipts.po_number AND o.receipt_id = po_receipts.receipt_id"
        " AND o.sku = po_receipts.sku AND o.location < po_receipts.location)"
    )
    _primary_key(["po_number", "receipt_id", "sku"])
    with op.batch_alter_table("po_receipts") as batch:
        batch.drop_column("location")
