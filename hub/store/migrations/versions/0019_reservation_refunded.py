"""reservation lines keep the units refunded before they shipped

WooCommerce completes an order with its lines as placed, units refunded before shipping among
them. The core shipped those units too when the refund had reached it first, so on-hand ended
short by them and the books billed them. `reservations.refunded` holds the units a refund took
off the line before they shipped, which such a completion leaves out. A line's released units
do not tell them apart (a cancellation or a stock loss releases units that may still ship), so
lines refunded before the upgrade keep 0 and ship as before.

Revision ID: 0019_reservation_refunded
Revises: 0018_movements_receipt_index
Create Date: 2026-12-08 01:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019_reservation_refunded"
down_revision = "0018_movements_receipt_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "reservations",
        sa.Column("refunded", sa.Integer(), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    with op.batch_alter_table("reservations") as batch:
        batch.drop_column("refunded")
