"""Across processes, a committed outbox write wakes the relay at once on PostgreSQL (an
announcement on `hub.store.outbox.CHANNEL` after the commit); on SQLite the relay finds the
rows at its next poll."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from hub.relay import OutboxRelay
from hub.store import bulk
from hub.store.models import OutboxRow, table
from hub.store.outbox import announce
from schemas import topics
from tests.integration.relay_doubles import RecordingPublisher, running

pytestmark = pytest.mark.integration
OUTBOX = table(OutboxRow)


async def test_an_announced_commit_wakes_a_relay_that_polls_rarely(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    postgres = engine.dialect.name == "postgresql"
    sent = RecordingPublisher()
    # PostgreSQL: a poll every 30 s, so only the announcement can explain a quick publish.
    relay = OutboxRelay(engine, sessions, sent, interval=30.0 if postgres else 0.05)  # type: ignore[arg-type]
    stop = asyncio.Event()
    task = await running(relay, stop)
    try:
        started = time.monotonic()
        async with sessions() as session, session.begin():
            row = {"topic": topics.RESERVATIONS, "key": "a", "headers": [], "payload": b"{}"}
            await bulk.insert(session, OUTBOX, [row])
        await announce(sessions)
        await asyncio.wait_for(sent.called.wait(), 5.0)
        assert sent.keys == ["a"]
        assert time.monotonic() - started < 2.0
    finally:
        stop.set()
        await task
