"""finance: vouchers, voucher lines, receivables and line prices per order, GRNI per PO

Revision ID: 0002_finance
Revises: 0001_core
Create Date: 2026-11-22 04:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_finance"
down_revision = "0001_core"
branch_labels = None
depends_on = None

NOW = sa.text("(CURRENT_TIMESTAMP)")


def upgrade() -> None:
    op.create_table(
        "vouchers",
        sa.Column("voucher_id", sa.String(length=64), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("cause_type", sa.String(length=32), nullable=False),
        sa.Column("cause_ref", sa.String(length=200), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("memo", sa.String(length=500), nullable=False),
        sa.Column("lines", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("voucher_id"),
    )
    op.create_index("ix_vouchers_period", "vouchers", ["period"])
    op.create_table(
        "voucher_lines",
        sa.Column("voucher_id", sa.String(length=64), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("account", sa.String(length=32), nullable=False),
        sa.Column("account_name", sa.String(length=128), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("debit_minor", sa.BigInteger(), nullable=False),
        sa.Column("credit_minor", sa.BigInteger(), nullable=False),
        sa.Column("sku", sa.String(length=128), nullable=True),
        sa.Column("location", sa.String(length=64), nullable=True),
        sa.Column("order_key", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("voucher_id", "line_no"),
    )
    op.create_index("ix_voucher_lines_account", "voucher_lines", ["account"])
    op.create_index("ix_voucher_lines_order", "voucher_lines", ["order_key"])
    op.create_table(
        "order_finance",
        sa.Column("order_key", sa.String(length=200), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("billed_minor", sa.BigInteger(), nullable=False),
        sa.Column("paid_minor", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("order_key"),
    )
    op.create_table(
        "order_line_prices",
        sa.Column("order_key", sa.String(length=200), nullable=False),
        sa.Column("sku", sa.String(length=128), nullable=False),
        sa.Column("location", sa.String(length=64), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("priced", sa.Boolean(), nullable=False),
        sa.Column("ordered", sa.Integer(), nullable=False),
        sa.Column("net", sa.Numeric(precision=20, scale=6), nullable=False),
        sa.Column("tax", sa.Numeric(precision=20, scale=6), nullable=False),
        sa.Column("shipped", sa.Integer(), nullable=False),
        sa.Column("billed", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("order_key", "sku", "location"),
    )
    op.create_table(
        "grni",
        sa.Column("po_number", sa.String(length=64), nullable=False),
        sa.Column("sku", sa.String(length=128), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("received_qty", sa.Integer(), nullable=False),
        sa.Column("received_minor", sa.BigInteger(), nullable=False),
        sa.Column("invoiced_qty", sa.Integer(), nullable=False),
        sa.Column("invoiced_minor", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("po_number", "sku"),
    )


def downgrade() -> None:
    op.drop_table("grni")
    op.drop_table("order_line_prices")
    op.drop_table("order_finance")
    op.drop_index("ix_voucher_lines_order", table_name="voucher_lines")
    op.drop_index("ix_voucher_lines_account", table_name="voucher_lines")
    op.drop_table("voucher_lines")
    op.drop_index("ix_vouchers_period", table_name="vouchers")
    op.drop_table("vouchers")
