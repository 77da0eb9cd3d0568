"""Every row lock the core takes, in one global order: orders by key, then stock by SKU.

On PostgreSQL these are `SELECT … FOR UPDATE` in sorted order, so concurrent batches on two
replicas queue behind each other instead of deadlocking. On SQLite the whole database is locked
by `BEGIN IMMEDIATE` (see hub.store.db) and `FOR UPDATE` is not rendered.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import structlog
from sqlalchemy import String, any_, bindparam, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from hub.store import bulk
from hub.store.models import Order, Reservation, Stock, table

log = structlog.get_logger(__name__)

CHUNK = 5000


def one_of(session: AsyncSession, column: Any, keys: Iterable[Any], item_type: Any = String) -> Any:
    """`column IN keys`; on PostgreSQL `= ANY(:array)`, one bound parameter instead of a thousand
    rendered into the statement (measurably cheaper per batch)."""
    if bulk.is_postgres(session):
        return column == any_(bindparam(None, list(keys), type_=ARRAY(item_type)))
    return column.in_(list(keys))


def chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    """`items` a part of `CHUNK` at a time: a statement binds a bounded number of keys."""
    for i in range(0, len(items), CHUNK):
        yield items[i : i + CHUNK]


async def insert_ignore(
    session: AsyncSession, table: Any, rows: list[dict[str, Any]], keys: list[str]
) -> None:
    """INSERT … ON CONFLICT DO NOTHING, for rows that may already exist."""
    await bulk.insert(session, table, rows, ignore_conflicts_on=keys)


async def lock_orders(
    session: AsyncSession, keys: Iterable[str]
) -> tuple[list[Row[Any]], set[str]]:
    """Lock the existing rows of the orders `keys` in key order; returns them and the keys that
    have no row yet.

    The missing rows are the caller's to insert, with their values, before it commits: one
    INSERT where creating them here would take an INSERT now and an UPDATE of the same rows at
    the end (a sale's batch is all new orders). A concurrent transaction that inserts one of
    those keys first makes that INSERT wait for its outcome and then fail with a unique
    violation, a conflict the core retries; the retry finds the row and locks it here."""
    ordered = sorted(set(keys))
    t = table(Order)
    rows: list[Row[Any]] = []
    for part in chunks(ordered):
        stmt = (
            select(t)
            .where(one_of(session, t.c.order_key, part))
            .order_by(t.c.order_key)
            .with_for_update()
        )
        rows.extend((await session.execute(stmt)).all())
    return rows, set(ordered) - {r.order_key for r in rows}


async def lock_stock(
    session: AsyncSession, skus: Iterable[str], create: Iterable[tuple[str, str]] = ()
) -> list[Row[Any]]:
    """Create the given missing (sku, location) rows, then lock every location of the SKUs in
    (sku, location) order. Locking whole SKUs keeps each SKU's channel levels consistent."""
    new = sorted(set(create))
    if new:
        await insert_ignore(
            session,
            Stock.__table__,
            [{"sku": s, "location": loc} for s, loc in new],
            ["sku", "location"],
        )
    ordered = sorted(set(skus) | {s for s, _ in new})
    if not ordered:
        return []
    rows = await _select_stock(session, ordered)
    if bulk.is_postgres(session):
        # A row another transaction inserted, then committed while this one waited for a lock,
        # is not in a `SELECT … FOR UPDATE` that began before that commit: under READ COMMITTED
        # PostgreSQL re-checks the rows the statement found, it does not look for new ones.
        # Counted by a statement of its own, with the locks held (a later snapshot), a SKU's
        # rows are all there, or are selected again.
        for _ in range(MAX_RESELECTS):
            if await _count_stock(session, ordered) == len(rows):
                break
            rows = await _select_stock(session, ordered)
        else:
            log.warning("locks.stock_rows_still_moving", skus=len(ordered), rows=len(rows))
    return rows


# A core transaction that adds a row to a SKU locks the SKU right after, so once this one holds
# a row of the SKU no other can commit a new row of it before this one ends: the rows missing
# from the first select were committed before the count, and one more select finds them all.
# (A SKU with no committed row has nothing to wait on: two first rows at once are both new; when
# both batches publish the SKU's first channel level, its key makes the later one retry.) The
# bound is for rows inserted without locking the SKU, which only the benchmark's seed does,
# before any load.
MAX_RESELECTS = 2


async def _select_stock(session: AsyncSession, ordered: Sequence[str]) -> list[Row[Any]]:
    rows: list[Row[Any]] = []
    t = Stock.__table__
    for part in chunks(ordered):
        stmt = (
            select(t)
            .where(one_of(session, t.c.sku, part))
            .order_by(t.c.sku, t.c.location)
            .with_for_update()
        )
        rows.extend((await session.execute(stmt)).all())
    return rows


# Written as text (it runs on PostgreSQL only): 260 µs of the core's CPU for 20 SKUs and 1.8 ms
# for 2,000, against 470 µs and 2.4 ms for the same count built as an ORM select.
_COUNT_STOCK = text("SELECT count(*) FROM stock WHERE sku = ANY(CAST(:skus AS VARCHAR[]))")


async def _count_stock(session: AsyncSession, ordered: Sequence[str]) -> int:
    n = 0
    for part in chunks(ordered):
        n += int((await session.execute(_COUNT_STOCK, {"skus": list(part)})).scalar_one())
    return n


async def reservations_of(session: AsyncSession, order_keys: Iterable[str]) -> list[Row[Any]]:
    keys = sorted(set(order_keys))
    t = Reservation.__table__
    rows: list[Row[Any]] = []
    for part in chunks(keys):
        rows.extend(
            (await session.execute(select(t).where(one_of(session, t.c.order_key, part)))).all()
        )
    return rows


async def holders_of(session: AsyncSession, skus: Iterable[str]) -> set[str]:
    """Orders holding open reservations on these SKUs (read without lock; locked by the caller)."""
    t = Reservation.__table__
    keys: set[str] = set()
    for part in chunks(sorted(set(skus))):
        stmt = select(t.c.order_key).where(one_of(session, t.c.sku, part), t.c.open > 0).distinct()
        keys.update((await session.execute(stmt)).scalars().all())
    return keys
