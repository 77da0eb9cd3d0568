"""The relay deletes the rows it published, and only those: a row committed while a batch is
being published stays pending, a failed publish keeps every row, and rows an earlier version
marked sent are pruned."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from hub.bus import BrokerUnavailable
from hub.relay import OutboxRelay
from hub.store import bulk
from hub.store.models import OutboxRow, table
from schemas import topics
from schemas.base import now_utc
from tests.integration.relay_doubles import RecordingPublisher

pytestmark = pytest.mark.integration
OUTBOX = table(OutboxRow)


def _row(key: str) -> dict[str, Any]:
    return {"topic": topics.RESERVATIONS, "key": key, "headers": [], "payload": key.encode()}


async def _insert(sessions: async_sessionmaker[AsyncSession], *keys: str) -> None:
    async with sessions() as session, session.begin():
        await bulk.insert(session, OUTBOX, [_row(k) for k in keys])


async def _left(sessions: async_sessionmaker[AsyncSession]) -> list[tuple[str, bool]]:
    async with sessions() as session:
        rows = await session.execute(select(OUTBOX.c.key, OUTBOX.c.sent_at).order_by(OUTBOX.c.id))
        return [(key, sent is not None) for key, sent in rows]


async def test_published_rows_are_deleted_and_a_row_committed_meanwhile_is_kept(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await _insert(sessions, "a", "b", "c")
    sent = RecordingPublisher()
    sent.during = lambda: _insert(sessions, "late")
    relay = OutboxRelay(engine, sessions, sent)  # type: ignore[arg-type]

    assert await relay.drain_once() == 3
    assert sent.keys == ["a", "b", "c"]
    assert await _left(sessions) == [("late", False)]

    assert await relay.drain_once() == 1
    assert sent.keys == ["a", "b", "c", "late"]
    assert await _left(sessions) == []
    assert await relay.drain_once() == 0


async def test_a_failed_publish_deletes_nothing(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await _insert(sessions, "a", "b")
    relay = OutboxRelay(engine, sessions, RecordingPublisher(fail=True))  # type: ignore[arg-type]
    with pytest.raises(BrokerUnavailable):
        await relay.drain_once()
    assert await _left(sessions) == [("a", False), ("b", False)]


async def test_rows_an_earlier_relay_marked_sent_are_pruned_not_republished(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await _insert(sessions, "old", "pending")
    async with sessions() as session, session.begin():
        await session.execute(update(OUTBOX).where(OUTBOX.c.key == "old").values(sent_at=now_utc()))
    sent = RecordingPublisher()
    relay = OutboxRelay(engine, sessions, sent)  # type: ignore[arg-type]

    assert await relay.drain_once() == 1
    assert sent.keys == ["pending"]
    assert await _left(sessions) == [("old", True)]
    assert await relay.prune() == 1
    assert await _left(sessions) == []
