"""The relay's rounds: a wake-up (the core in the same process committed outbox rows) that comes
while a drain runs is not lost, wake-ups do not cut short the backoff from a failing broker, and
a round leaves no task behind."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from hub.relay import OutboxRelay
from hub.store import bulk
from hub.store.models import OutboxRow, table
from schemas import topics
from tests.integration.relay_doubles import RecordingPublisher, running

pytestmark = pytest.mark.integration

ROW = {"topic": topics.RESERVATIONS, "key": "k", "headers": [["ce_id", "x"]], "payload": b"{}"}


async def _commit_row(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session, session.begin():
        await bulk.insert(session, table(OutboxRow), [dict(ROW)])


async def test_a_wake_up_during_a_drain_is_not_lost(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    sent = RecordingPublisher()
    relay = OutboxRelay(engine, sessions, sent, interval=5.0)  # type: ignore[arg-type]

    async def core_commits_meanwhile() -> None:
        await _commit_row(sessions)
        relay.notify()

    sent.during = core_commits_meanwhile
    await _commit_row(sessions)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        async with asyncio.timeout(4):
            await sent.called.wait()
        sent.called.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(4):
                await sent.called.wait()
        assert len(sent.calls) == 2
        assert sent.calls[1] - sent.calls[0] < 1.0  # not at the next poll, 5 s later
    finally:
        stop.set()
        await task


async def test_wake_ups_do_not_cut_short_the_backoff_from_a_failing_broker(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await _commit_row(sessions)  # something to publish from the start
    down = RecordingPublisher(fail=True)
    relay = OutboxRelay(engine, sessions, down, interval=0.05)  # type: ignore[arg-type]
    stop = asyncio.Event()
    task = await running(relay, stop)
    try:
        until = time.monotonic() + 1.5
        while time.monotonic() < until:  # the core commits every 20 ms meanwhile
            await _commit_row(sessions)
            relay.notify()
            await asyncio.sleep(0.02)
        # Backoff 0.2, 0.4, 0.8 s after the first failures: a handful of attempts, not one per
        # commit (~70).
        assert 2 <= len(down.calls) <= 6, len(down.calls)
    finally:
        stop.set()
        await task
        async with sessions() as session, session.begin():  # no unsent rows for later tests
            await session.execute(table(OutboxRow).delete())


async def test_the_relay_leaves_no_task_behind_per_round(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    relay = OutboxRelay(engine, sessions, RecordingPublisher(), interval=0.005)  # type: ignore[arg-type]
    stop = asyncio.Event()
    task = await running(relay, stop)
    try:
        counts = []
        for _ in range(50):  # ~100 empty rounds
            await asyncio.sleep(0.01)
            counts.append(len(asyncio.all_tasks()))
        # This test, the relay, and while it waits one task per event it waits for (two).
        assert max(counts) <= 4, counts
    finally:
        stop.set()
        await task
