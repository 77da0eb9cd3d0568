"""orders remember when they were last cancelled or reopened, and what the cancellation released

A cancelled order can be opened again (WooCommerce: a failed payment paid on a retry, a
cancelled order restored). The core reserves it again only for word newer than the newest
cancellation or reopening seen, and cancels again only for word newer than that:
`orders.open_changed_at` is the shop's time of it. Orders cancelled before the upgrade take the
time the hub last changed them, so that a late copy of an older word does not reopen them.
`reservations.cancelled` holds the units a cancellation released (a refund before shipping
releases units too, which a reopening must not take again); lines cancelled before the upgrade
take their released units.

Revision ID: 0008_order_open_changed_at
Revises: 0007_outbox_ids_not_reused
Create Date: 2026-12-07 02:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_order_open_changed_at"
down_revision = "0007_outbox_ids_not_reused"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("orders", sa.Column("open_changed_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "reservations",
        sa.Column("cancelled", sa.Integer(), nullable=False, server_default="0"),
    )
    op.execute("UPDATE orders SET open_changed_at = updated_at WHERE cancelled")
    op.execute(
        "UPDATE reservations SET cancelled = released WHERE order_key IN "
        "(SELECT order_key FROM orders WHERE cancelled)"
    )


def downgrade() -> None:
    with op.batch_alter_table("reservations") as batch:
        batch.drop_column("cancelled")
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("open_changed_at")
