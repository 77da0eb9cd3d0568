"""orders remember when they were last cancelled or reopened

A cancelled order can be opened again (WooCommerce: a failed payment paid on a retry, a
cancelled order restored). The core reserves it again only for word newer than the
cancellation, and cancels again only for word newer than the reopening: `open_changed_at` is
the shop's time of the last of them. Orders cancelled before the upgrade have none, and take
the first word that comes.

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


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("open_changed_at")
