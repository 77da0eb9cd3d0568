"""the relay deletes what it published: no pending index, no rows left marked sent

The relay used to mark each published row (`sent_at`) and delete it ten minutes later. That
UPDATE changed the column of the partial index of pending rows, so it could never be a
heap-only tuple: every published row was written a second time in full, with a new primary-key
entry, and deleted a third time later. Deleting it once published writes a few bytes instead.
Every row left is pending, so the primary key orders them and the partial index only cost an
entry per insert.

Revision ID: 0006_outbox_deleted_on_send
Revises: 0005_fillfactor
Create Date: 2026-12-06 10:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_outbox_deleted_on_send"
down_revision = "0005_fillfactor"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DELETE FROM outbox WHERE sent_at IS NOT NULL")
    if op.get_bind().dialect.name == "postgresql":
        # Without the table's exclusive lock: a plain DROP INDEX waiting behind a long
        # transaction on the outbox would hold up every core commit behind it.
        with op.get_context().autocommit_block():
            op.execute("DROP INDEX CONCURRENTLY IF EXISTS ix_outbox_pending")
        return
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_outbox_pending",
            sqlite_where=sa.text("sent_at IS NULL"),
            postgresql_where=sa.text("sent_at IS NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbox_pending",
            ["id"],
            unique=False,
            sqlite_where=sa.text("sent_at IS NULL"),
            postgresql_where=sa.text("sent_at IS NULL"),
        )
