"""a voucher's reference holds the longest one the rules make

A voucher names the event that caused it (`cause_ref`): a receipt, count or adjustment id, its
SKU and its location reach 322 characters, an order key and a fulfilment, payment or return id
265. The column held 200, so with a chart configured such a message was dead-lettered on both
databases and its stock applied nowhere. It now holds 400. (SQLite does not enforce a VARCHAR's
length: only PostgreSQL's column changes, in place.)

Revision ID: 0010_voucher_cause_ref
Revises: 0009_receipt_location
Create Date: 2026-12-07 13:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_voucher_cause_ref"
down_revision = "0009_receipt_location"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("vouchers", "cause_ref", type_=sa.String(400), existing_type=sa.String(200))


def downgrade() -> None:
    # A reference longer than 200 characters is cut: the voucher id keeps the whole one.
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column(
            "vouchers",
            "cause_ref",
            type_=sa.String(200),
            existing_type=sa.String(400),
            postgresql_using="left(cause_ref, 200)",
        )
