"""purchasing: suppliers, replenishment policies, purchase orders and lines, shipments, receipts,
supplier invoices, the PO number sequence

Revision ID: 0003_purchasing
Revises: 0002_finance
Create Date: 2026-11-22 05:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_purchasing"
down_revision = "0002_finance"
branch_labels = None
depends_on = None

NOW = sa.text("(CURRENT_TIMESTAMP)")
TS = sa.DateTime(timezone=True)
MONEY = sa.Numeric(precision=20, scale=6)


def upgrade() -> None:
    op.create_table(
        "suppliers",
        sa.Column("supplier", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.PrimaryKeyConstraint("supplier"),
    )
    op.create_table(
        "replenishment_policies",
        sa.Column("sku", sa.String(length=128), nullable=False),
        sa.Column("location", sa.String(length=64), nullable=False),
        sa.Column("supplier", sa.String(length=64), nullable=False),
        sa.Column("reorder_point", sa.Integer(), nullable=True),
        sa.Column("auto_reorder", sa.Boolean(), nullable=False),
        sa.Column("service_level", MONEY, nullable=False),
        sa.Column("demand_window_days", sa.Integer(), nullable=False),
        sa.Column("auto_reorder_point", sa.Integer(), nullable=True),
        sa.Column("auto_computed_on", sa.Date(), nullable=True),
        sa.Column("order_up_to", sa.Integer(), nullable=False),
        sa.Column("safety_stock", sa.Integer(), nullable=False),
        sa.Column("max_stock", sa.Integer(), nullable=True),
        sa.Column("lead_time_days", sa.Integer(), nullable=False),
        sa.Column("pack_size", sa.Integer(), nullable=False),
        sa.Column("min_order_quantity", sa.Integer(), nullable=False),
        sa.Column("mode", sa.String(length=8), nullable=True),
        sa.Column("unit_price", MONEY, nullable=False),
        sa.Column("supplier_sku", sa.String(length=48), nullable=True),
        sa.Column("updated_at", TS, server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("sku", "location"),
    )
    op.create_table(
        "purchase_orders",
        sa.Column("po_number", sa.String(length=22), nullable=False),
        sa.Column("supplier", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("ship_to", sa.String(length=64), nullable=False),
        sa.Column("expected_delivery", sa.Date(), nullable=False),
        sa.Column("issued_at", TS, nullable=True),
        sa.Column("acknowledgement_id", sa.String(length=64), nullable=True),
        sa.Column("approved_by", sa.String(length=128), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("po_number"),
    )
    op.create_index("ix_purchase_orders_status", "purchase_orders", ["status"])
    op.create_table(
        "purchase_order_lines",
        sa.Column("po_number", sa.String(length=22), nullable=False),
        sa.Column("line_number", sa.Integer(), nullable=False),
        sa.Column("sku", sa.String(length=128), nullable=False),
        sa.Column("location", sa.String(length=64), nullable=False),
        sa.Column("supplier_sku", sa.String(length=48), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("open", sa.Boolean(), nullable=False),
        sa.Column("closed", sa.Boolean(), nullable=False),
        sa.Column("ordered", sa.Integer(), nullable=False),
        sa.Column("confirmed", sa.Integer(), nullable=False),
        sa.Column("shipped", sa.Integer(), nullable=False),
        sa.Column("received", sa.Integer(), nullable=False),
        sa.Column("invoiced", sa.Integer(), nullable=False),
        sa.Column("unit_price", MONEY, nullable=False),
        sa.Column("confirmed_price", MONEY, nullable=True),
        sa.Column("expected_delivery", sa.Date(), nullable=False),
        sa.Column("over_delivered", sa.Integer(), nullable=False),
        sa.Column("under_delivered", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("po_number", "line_number"),
    )
    op.create_index(
        "ix_purchase_order_lines_open", "purchase_order_lines", ["sku", "location", "open"]
    )
    op.create_table(
        "po_shipments",
        sa.Column("supplier", sa.String(length=64), nullable=False),
        sa.Column("shipment_id", sa.String(length=64), nullable=False),
        sa.Column("po_number", sa.String(length=22), nullable=False),
        sa.Column("shipped_at", TS, nullable=False),
        sa.Column("expected_delivery", sa.Date(), nullable=True),
        sa.Column("carrier", sa.String(length=64), nullable=False),
        sa.Column("tracking_number", sa.String(length=64), nullable=False),
        sa.Column("lines", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("supplier", "shipment_id"),
    )
    op.create_table(
        "po_receipts",
        sa.Column("po_number", sa.String(length=64), nullable=False),
        sa.Column("receipt_id", sa.String(length=128), nullable=False),
        sa.Column("sku", sa.String(length=128), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("over_delivered", sa.Integer(), nullable=False),
        sa.Column("applied", sa.JSON(), nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("po_number", "receipt_id", "sku"),
    )
    op.create_table(
        "supplier_invoices",
        sa.Column("supplier", sa.String(length=64), nullable=False),
        sa.Column("invoice_number", sa.String(length=64), nullable=False),
        sa.Column("po_number", sa.String(length=22), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("subtotal", MONEY, nullable=False),
        sa.Column("tax", MONEY, nullable=False),
        sa.Column("charges", MONEY, nullable=False),
        sa.Column("total", MONEY, nullable=False),
        sa.Column("price_variance", MONEY, nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("voucher_id", sa.String(length=64), nullable=True),
        sa.Column("invoiced_at", TS, nullable=False),
        sa.Column("received_at", TS, server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("supplier", "invoice_number"),
    )
    op.create_index("ix_supplier_invoices_po", "supplier_invoices", ["po_number"])
    op.create_index("ix_supplier_invoices_status", "supplier_invoices", ["status"])
    op.create_table(
        "po_sequence",
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("next_value", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("prefix"),
    )


def downgrade() -> None:
    op.drop_table("po_sequence")
    op.drop_index("ix_supplier_invoices_status", table_name="supplier_invoices")
    op.drop_index("ix_supplier_invoices_po", table_name="supplier_invoices")
    op.drop_table("supplier_invoices")
    op.drop_table("po_receipts")
    op.drop_table("po_shipments")
    op.drop_index("ix_purchase_order_lines_open", table_name="purchase_order_lines")
    op.drop_table("purchase_order_lines")
    op.drop_index("ix_purchase_orders_status", table_name="purchase_orders")
    op.drop_table("purchase_orders")
    op.drop_table("replenishment_policies")
    op.drop_table("suppliers")
