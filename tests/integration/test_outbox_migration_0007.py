"""Outbox ids are never given out twice, though the relay deletes what it publishes: an emptied
outbox goes on from the largest id it gave (on SQLite, migration 0007's AUTOINCREMENT; on
PostgreSQL, the column's sequence), and the migration keeps the rows and ids it finds."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.store.migrate import current, downgrade, head, upgrade
from hub.store.models import OutboxRow, table
from schemas import topics

pytestmark = pytest.mark.integration
OUTBOX = table(OutboxRow)


async def _add(engine: AsyncEngine, *keys: str) -> list[int]:
    async with engine.begin() as conn:
        await conn.execute(
            OUTBOX.insert(),
            [
                {"topic": topics.RESERVATIONS, "key": k, "headers": [], "payload": b"{}"}
                for k in keys
            ],
        )
        ids = await conn.execute(select(OUTBOX.c.id).where(OUTBOX.c.key.in_(keys)))
        return sorted(ids.scalars())


async def _published(engine: AsyncEngine) -> None:
    """What the relay does once it has published everything."""
    async with engine.begin() as conn:
        await conn.execute(OUTBOX.delete())


async def test_an_emptied_outbox_does_not_give_its_ids_again(engine: AsyncEngine) -> None:
    first = await _add(engine, "a", "b", "c")
    await _published(engine)
    (after,) = await _add(engine, "d")
    assert after > max(first)
    await _published(engine)


async def test_the_migration_keeps_the_ids_and_goes_on_from_the_largest(
    engine: AsyncEngine,
) -> None:
    await downgrade(engine, "0006_outbox_deleted_on_send")
    try:
        ids = await _add(engine, "sent", "pending")
        async with engine.begin() as conn:
            await conn.execute(OUTBOX.delete().where(OUTBOX.c.key == "sent"))
    finally:
        await upgrade(engine)  # back to head: the PostgreSQL database is shared by later tests
    assert await current(engine) == head()
    async with engine.connect() as conn:
        kept = (await conn.execute(select(OUTBOX.c.key, OUTBOX.c.id))).all()
    assert [tuple(r) for r in kept] == [("pending", ids[1])]
    await _published(engine)
    (after,) = await _add(engine, "next")
    assert after > max(ids)
    await _published(engine)
