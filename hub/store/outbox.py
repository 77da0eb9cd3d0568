"""Waking the relay when outbox rows are committed, across processes (PostgreSQL).

The core announces its outbox rows on a notification channel in the transaction that writes
them; PostgreSQL delivers the notification when that transaction commits, and not at all if it
rolls back. The leading relay listens on its lock's session and publishes at once, instead of
at its next poll (`HUB_RELAY_INTERVAL_MS`), which it keeps for SQLite and for a notification
lost with a broken session.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from hub.store import bulk

CHANNEL = "hub_outbox"
_ANNOUNCE = text(f"NOTIFY {CHANNEL}")


async def announce(session: AsyncSession) -> None:
    """Tell a listening relay that this transaction wrote outbox rows (delivered on commit;
    notifications of one transaction on one channel are delivered once)."""
    if bulk.is_postgres(session):
        await session.execute(_ANNOUNCE)
