"""Across processes, the core's commit wakes the relay at once on PostgreSQL (a notification on
`hub.store.outbox.CHANNEL`, delivered on commit, never for a rollback); on SQLite the relay
finds the rows at its next poll."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from hub.core.batch import CoreProcessor
from hub.domain.allocation import Rule
from hub.relay import OutboxRelay
from hub.store import bulk
from hub.store.db import make_engine, session_factory
from hub.store.migrate import upgrade
from hub.store.models import OutboxRow, table
from hub.store.outbox import CHANNEL, announce
from schemas import topics
from tests.builders import counted, records

pytestmark = pytest.mark.integration
OUTBOX = table(OutboxRow)


class _Publisher:
    def __init__(self) -> None:
        self.sent: list[str | None] = []
        self.arrived = asyncio.Event()

    async def send_many(self, items: list[Any]) -> None:
        self.sent += [key for _, key, _, _ in items]
        self.arrived.set()


async def _clear(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session, session.begin():
        await session.execute(OUTBOX.delete())


async def _leading(relay: OutboxRelay, stop: asyncio.Event) -> asyncio.Task[None]:
    task = asyncio.create_task(relay.run(stop))
    for _ in range(300):
        if relay._leader_conn is not None or relay.engine.dialect.name != "postgresql":
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)  # its first (empty) drain is over
    return task


async def _announced_commit(sessions: async_sessionmaker[AsyncSession], key: str) -> None:
    async with sessions() as session, session.begin():
        row = {"topic": topics.RESERVATIONS, "key": key, "headers": [], "payload": b"{}"}
        await bulk.insert(session, OUTBOX, [row])
        await announce(session)


async def test_an_announced_commit_wakes_a_relay_that_polls_rarely(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await _clear(sessions)
    postgres = engine.dialect.name == "postgresql"
    sent = _Publisher()
    # PostgreSQL: a poll every 30 s, so only the notification can explain a quick publish.
    relay = OutboxRelay(engine, sessions, sent, interval=30.0 if postgres else 0.05)  # type: ignore[arg-type]
    stop = asyncio.Event()
    task = await _leading(relay, stop)
    try:
        started = time.monotonic()
        await _announced_commit(sessions, "a")
        await asyncio.wait_for(sent.arrived.wait(), 5.0)
        assert sent.sent == ["a"]
        assert time.monotonic() - started < 2.0
    finally:
        stop.set()
        await task


@pytest.fixture
async def pg_engine(pg_server_url: str) -> AsyncIterator[AsyncEngine]:
    """Notifications are PostgreSQL's: these tests have no SQLite side."""
    engine = make_engine(pg_server_url)
    await upgrade(engine)
    yield engine
    await engine.dispose()


@contextlib.asynccontextmanager
async def _heard(engine: AsyncEngine) -> AsyncIterator[list[str]]:
    """The channels of the notifications a session of its own hears meanwhile."""
    conn = await engine.connect()
    heard: list[str] = []
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None
    await driver.add_listener(CHANNEL, lambda *args: heard.append(args[2]))
    try:
        yield heard
    finally:
        await conn.invalidate()  # not back to the pool with a listener on it


async def _soon(heard: list[str]) -> None:
    for _ in range(100):
        if heard:
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.1)  # a second notification, if any, has arrived too


async def test_a_rolled_back_announcement_wakes_nobody(pg_engine: AsyncEngine) -> None:
    sessions = session_factory(pg_engine)
    async with _heard(pg_engine) as heard:
        async with sessions() as session:
            await session.begin()
            await announce(session)
            await session.rollback()
        await _announced_commit(sessions, "b")
        await _soon(heard)
        assert heard == [CHANNEL]  # the commit's only
    await _clear(sessions)


async def test_a_core_batch_that_writes_the_outbox_announces_it(pg_engine: AsyncEngine) -> None:
    sessions = session_factory(pg_engine)
    async with _heard(pg_engine) as heard:
        await CoreProcessor(sessions, {"online": Rule()}).process(records(counted("ANNOUNCED", 5)))
        await _soon(heard)
        assert heard == [CHANNEL]
    async with _heard(pg_engine) as heard:
        await CoreProcessor(sessions, {}).process(records())  # an empty batch writes nothing
        await _soon(heard)
        assert heard == []
    await _clear(sessions)


async def test_a_relay_that_resigns_stops_listening(pg_engine: AsyncEngine) -> None:
    relay = OutboxRelay(pg_engine, session_factory(pg_engine), _Publisher())  # type: ignore[arg-type]
    assert await relay._lead()
    conn = relay._leader_conn
    assert conn is not None
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None
    channels = await driver.fetch("SELECT pg_listening_channels()")
    assert [r[0] for r in channels] == [CHANNEL]
    await relay._resign()
    assert [r[0] for r in await driver.fetch("SELECT pg_listening_channels()")] == []
