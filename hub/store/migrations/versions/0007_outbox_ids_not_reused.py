"""outbox ids on SQLite are never reused (AUTOINCREMENT)

On SQLite an `INTEGER PRIMARY KEY` is the rowid, and a new row takes the largest rowid in the
table plus one: since the relay deletes what it published, an empty outbox started its ids at 1
again, and the same `outbox_id` named different messages in the relay's log over time. With
AUTOINCREMENT SQLite keeps the largest id ever given out (`sqlite_sequence`) and never goes
below it. The upgrade can only start that record from the largest id still in the table: ids of
rows the relay deleted before it may be given once more after it. PostgreSQL's column takes its
ids from a sequence (BIGSERIAL) that does not go back: nothing changes there.

Revision ID: 0007_outbox_ids_not_reused
Revises: 0006_outbox_deleted_on_send
Create Date: 2026-12-06 15:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0007_outbox_ids_not_reused"
down_revision = "0006_outbox_deleted_on_send"
branch_labels = None
depends_on = None


def _rebuild(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    # The table is copied with its ids; an explicit id above the sequence raises it, so the
    # next id follows the largest one kept.
    with op.batch_alter_table(
        "outbox", recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
    ):
        pass


def upgrade() -> None:
    _rebuild(True)


def downgrade() -> None:
    _rebuild(False)
