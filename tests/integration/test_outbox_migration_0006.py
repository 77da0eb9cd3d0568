"""Migration 0006: the relay deletes what it publishes, so the upgrade deletes the rows marked
sent (kept pending ones), and drops the partial index of pending rows; the downgrade puts the
index back."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.store.migrate import current, downgrade, head, upgrade
from hub.store.models import OutboxRow, table
from schemas import topics
from schemas.base import now_utc

pytestmark = pytest.mark.integration
OUTBOX = table(OutboxRow)


async def _indexes(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        found = await conn.run_sync(lambda c: inspect(c).get_indexes("outbox"))
    return {str(ix["name"]) for ix in found}


async def test_upgrade_deletes_rows_marked_sent_and_drops_the_pending_index(
    engine: AsyncEngine,
) -> None:
    assert await current(engine) == head()
    assert "ix_outbox_pending" not in await _indexes(engine)

    await downgrade(engine, "0005_fillfactor")
    try:
        await _downgraded_with_a_sent_row(engine)
    finally:
        await upgrade(engine)  # back to head: the PostgreSQL database is shared by later tests
    assert await current(engine) == head()
    assert "ix_outbox_pending" not in await _indexes(engine)
    async with engine.connect() as conn:
        assert (await conn.execute(select(OUTBOX.c.key))).scalars().all() == ["pending"]
    async with engine.begin() as conn:
        await conn.execute(OUTBOX.delete())


async def _downgraded_with_a_sent_row(engine: AsyncEngine) -> None:
    assert "ix_outbox_pending" in await _indexes(engine)
    async with engine.begin() as conn:
        await conn.execute(OUTBOX.delete())
        await conn.execute(
            OUTBOX.insert(),
            [
                {"topic": topics.RESERVATIONS, "key": k, "headers": [], "payload": b"{}"}
                for k in ("sent", "pending")
            ],
        )
        await conn.execute(update(OUTBOX).where(OUTBOX.c.key == "sent").values(sent_at=now_utc()))
