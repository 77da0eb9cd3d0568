"""room in each page for the core's updates (PostgreSQL fillfactor)

An UPDATE whose new row version fits in the same page and changes no indexed column is a
heap-only tuple: no index entry is written. The core updates every order row it inserted in
the same transaction, and stock and channel levels on every decision; with full pages each of
those updates moved the row to another page and inserted a new primary-key entry.

Revision ID: 0005_fillfactor
Revises: 0004_dropship_presale
Create Date: 2026-12-01 07:40:00
"""

from __future__ import annotations

from alembic import op

revision = "0005_fillfactor"
down_revision = "0004_dropship_presale"
branch_labels = None
depends_on = None

FILLFACTOR = {"stock": 80, "channel_levels": 80, "orders": 60, "reservations": 80}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, percent in FILLFACTOR.items():
        op.execute(f"ALTER TABLE {table} SET (fillfactor = {percent})")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in FILLFACTOR:
        op.execute(f"ALTER TABLE {table} RESET (fillfactor)")
