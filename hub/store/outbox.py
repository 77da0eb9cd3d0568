"""Waking the relay when outbox rows are committed, across processes (PostgreSQL).

Once a transaction that wrote outbox rows has committed, its writer announces them on a
notification channel; the leading relay listens on its lock's session and publishes at once,
instead of at its next poll (`HUB_RELAY_INTERVAL_MS`), which it keeps for SQLite and for an
announcement lost with a crash or a broken session.

The announcement is a transaction of its own, after the commit, and does not wait for its
commit record to reach the disk: PostgreSQL serializes the commits of transactions that NOTIFY
(a server-wide lock held until the commit is flushed), so a NOTIFY inside the writer's own
transaction would make concurrent core replicas flush one after another instead of together.
"""

from __future__ import annotations

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hub.store import bulk

log = structlog.get_logger("hub.store.outbox")

CHANNEL = "hub_outbox"
# One statement in a transaction of its own; its commit does not wait for the disk (a lost
# announcement only costs the relay's poll).
_ANNOUNCE = text(
    f"SELECT set_config('synchronous_commit', 'off', true), pg_notify('{CHANNEL}', '')"
)


async def announce(sessions: async_sessionmaker[AsyncSession]) -> None:
    """Tell a listening relay that committed outbox rows wait. Never raises: the rows are
    committed, and the relay's poll finds them if the announcement cannot be made."""
    try:
        async with sessions() as session:
            if not bulk.is_postgres(session):
                return
            conn = await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            await conn.execute(_ANNOUNCE)
    except Exception as exc:
        log.info(
            "outbox announcement not made; the relay's poll will find the rows",
            error=str(exc)[:200],
        )
