"""a dead letter is told apart by its payload's digest too

A letter was identified by its consumer, topic, partition and offset. The embedded broker keeps
its topics in memory: after it restarts, offsets count from 0 again while the database keeps its
letters, and a new poison message at a position used before was taken for the old letter and
skipped without a record (its offset committed). The payload's SHA-256 joins the identity: a
record read again is still the same letter, a new one at an old position is not. Letters stored
before this upgrade get their digest here.

Revision ID: 0015_dead_letter_digest
Revises: 0014_invoice_accepted_variance
Create Date: 2026-12-07 18:15:00
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0015_dead_letter_digest"
down_revision = "0014_invoice_accepted_variance"
branch_labels = None
depends_on = None

_ORIGIN = ["consumer", "topic", "partition", "offset"]


def upgrade() -> None:
    with op.batch_alter_table("dead_letters") as batch:
        batch.add_column(sa.Column("digest", sa.String(64), nullable=False, server_default=""))
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":  # digested where the payloads are
        op.execute("UPDATE dead_letters SET digest = encode(sha256(coalesce(payload, '')), 'hex')")
    else:
        _digest_in_parts(bind)
    with op.batch_alter_table("dead_letters") as batch:
        batch.drop_index("ux_dead_letters_origin")
        batch.create_index("ux_dead_letters_origin", [*_ORIGIN, "digest"], unique=True)


def _digest_in_parts(bind: sa.engine.Connection) -> None:
    """Each letter's digest, read a few at a time: a payload may be 4 MiB."""
    letters = sa.table(
        "dead_letters", sa.column("id", sa.BigInteger), sa.column("payload", sa.LargeBinary)
    )
    digest = sa.table("dead_letters", sa.column("id", sa.BigInteger), sa.column("digest"))
    last = 0
    while True:
        rows = bind.execute(
            sa.select(letters.c.id, letters.c.payload)
            .where(letters.c.id > last)
            .order_by(letters.c.id)
            .limit(16)
        ).all()
        if not rows:
            break
        bind.execute(
            sa.update(digest).where(digest.c.id == sa.bindparam("row_id")),
            [{"row_id": i, "digest": hashlib.sha256(bytes(p or b"")).hexdigest()} for i, p in rows],
        )
        last = rows[-1][0]


def downgrade() -> None:
    twice = op.get_bind().execute(
        sa.text(
            "SELECT count(*) FROM (SELECT 1 FROM dead_letters GROUP BY consumer, topic,"
            ' partition, "offset" HAVING count(*) > 1) AS d'
        )
    )
    if twice.scalar():
        raise RuntimeError(
            "dead letters from two records at one position (before and after a broker restart)"
            " cannot be told apart without their digest: replay or delete one of each first"
        )
    with op.batch_alter_table("dead_letters") as batch:
        batch.drop_index("ux_dead_letters_origin")
        batch.create_index("ux_dead_letters_origin", _ORIGIN, unique=True)
        batch.drop_column("digest")
