"""a dead letter is told apart by its record's time too

A letter was identified by its consumer, topic, partition, offset and payload digest. After the
embedded broker restarts its offsets count from 0 again, so a letter replayed to the very
position it came from, failing again, was taken for the old letter (same bytes) and skipped
without a record, its offset committed. The record's own time (its Kafka timestamp) joins the
identity; the dead-letter topic's records carry it as `dlq_timestamp`.

Letters stored before this upgrade have no time (-1), and match only records without one. The
upgrade restarts the embedded broker, whose records are then all new; on Apache Kafka a record
lettered just before the upgrade and read again after it (its offset not yet committed) is
recorded a second time, which is harmless: replayed twice, it is applied once (every consumer
drops a message it applied before). Taking -1 for any time instead would skip, without a record,
the replay of an old letter that fails again.

Revision ID: 0017_dead_letter_time
Revises: 0016_stock_counted_at
Create Date: 2026-12-07 22:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017_dead_letter_time"
down_revision = "0016_stock_counted_at"
branch_labels = None
depends_on = None

_ORIGIN = ["consumer", "topic", "partition", "offset", "digest"]


def upgrade() -> None:
    with op.batch_alter_table("dead_letters") as batch:
        batch.add_column(
            sa.Column("timestamp_ms", sa.BigInteger, nullable=False, server_default="-1")
        )
        batch.drop_index("ux_dead_letters_origin")
        batch.create_index("ux_dead_letters_origin", [*_ORIGIN, "timestamp_ms"], unique=True)


def downgrade() -> None:
    twice = op.get_bind().execute(
        sa.text(
            "SELECT count(*) FROM (SELECT 1 FROM dead_letters GROUP BY consumer, topic,"
            ' partition, "offset", digest HAVING count(*) > 1) AS d'
        )
    )
    if twice.scalar():
        raise RuntimeError(
            "dead letters of the same bytes replayed to one position cannot be told apart"
            " without their time: replay or delete one of each first"
        )
    with op.batch_alter_table("dead_letters") as batch:
        batch.drop_index("ux_dead_letters_origin")
        batch.create_index("ux_dead_letters_origin", _ORIGIN, unique=True)
        batch.drop_column("timestamp_ms")
