"""dropship and presale: SKUs sold from suppliers' stock feeds, presale shares of confirmed
inbound, and the presale availability last published per channel

Revision ID: 0004_dropship_presale
Revises: 0003_purchasing
Create Date: 2026-12-01 04:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_dropship_presale"
down_revision = "0003_purchasing"
branch_labels = None
depends_on = None

NOW = sa.text("(CURRENT_TIMESTAMP)")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "dropship_items",
        sa.Column("sku", sa.String(length=128), nullable=False),
        sa.Column("supplier", sa.String(length=64), nullable=False),
        sa.Column("supplier_sku", sa.String(length=48), nullable=True),
        sa.Column("reported_quantity", sa.Integer(), nullable=True),
        sa.Column("reported_at", TS, nullable=True),
        sa.Column("report_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", TS, server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("sku", "supplier"),
    )
    op.create_table(
        "presale_items",
        sa.Column("sku", sa.String(length=128), nullable=False),
        sa.Column("share", sa.Numeric(precision=6, scale=4), nullable=False),
        sa.Column("updated_at", TS, server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("sku"),
        sa.CheckConstraint("share >= 0 AND share <= 1", name="ck_presale_items_share"),
    )
    with op.batch_alter_table("channel_levels") as batch:
        batch.add_column(
            sa.Column("presale_available", sa.Integer(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("channel_levels") as batch:
        batch.drop_column("presale_available")
    op.drop_table("presale_items")
    op.drop_table("dropship_items")
