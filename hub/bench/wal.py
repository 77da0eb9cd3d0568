"""The write-ahead log each order of a phase made the database server write.

Read as the server's WAL insert position (`pg_current_wal_insert_lsn`), which moves at once and
exactly, unlike the statistics views: a backend reports its counters at most once a second, and
an idle one keeps them for up to ten. The position is the whole server's, the benchmark's
maintenance (VACUUM) included; the benchmark runs alone on its server. Every row written, every
index entry and every page logged whole on its first change after a checkpoint is in it, so it
says how much the server wrote for an order, where the CPU figures say how long it worked.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

_POSITION = text("SELECT pg_current_wal_insert_lsn()::text")


def lsn_bytes(lsn: str) -> int:
    """A log sequence number (`16/B374D848`) as a byte position."""
    high, low = lsn.split("/")
    return (int(high, 16) << 32) | int(low, 16)


async def position(engine: AsyncEngine) -> int | None:
    """The server's WAL insert position in bytes, or None for a database other than PostgreSQL
    (or a server that does not say, such as a standby)."""
    if engine.dialect.name != "postgresql":
        return None
    try:
        async with engine.connect() as conn:
            lsn = (await conn.execute(_POSITION)).scalar_one()
    except Exception:
        return None
    return lsn_bytes(str(lsn))


def per_order(before: int | None, after: int | None, orders: int) -> int | None:
    """Whole bytes of WAL per order between two positions; None without both or without orders."""
    if before is None or after is None or orders <= 0:
        return None
    return round((after - before) / orders)
