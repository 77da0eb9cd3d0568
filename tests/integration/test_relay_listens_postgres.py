"""PostgreSQL's side of waking the relay: the core announces a batch that wrote outbox rows once
it has committed, and only then; an announcement that cannot be made does not fail the batch;
the leading relay listens on its lock's session and stops listening when it resigns."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from structlog.testing import capture_logs

from hub.core import batch as batch_module
from hub.core.batch import CoreProcessor
from hub.domain.allocation import Rule
from hub.relay import ADVISORY_KEY, OutboxRelay, _terminate
from hub.store import outbox
from hub.store.db import make_engine, session_factory
from hub.store.models import OutboxRow, table
from hub.store.outbox import CHANNEL, announce
from tests.builders import counted, records
from tests.integration.relay_doubles import RecordingPublisher, heard

pytestmark = pytest.mark.integration


@pytest.fixture
def db_url(pg_server_url: str) -> str:
    """Notifications are PostgreSQL's: no SQLite side here."""
    return pg_server_url


async def test_a_core_batch_is_announced_once_committed_and_only_if_it_wrote_the_outbox(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    core = CoreProcessor(sessions, {"online": Rule()})
    batch = records(counted("ANNOUNCED", 5))
    visible_when_announced: list[int] = []

    async def announce_and_look(made: async_sessionmaker[AsyncSession]) -> None:
        # Another session sees the batch's outbox rows already: it committed before.
        async with sessions() as other:
            count = select(func.count()).select_from(table(OutboxRow))
            visible_when_announced.append((await other.execute(count)).scalar_one())
        await announce(made)

    monkeypatch.setattr(batch_module, "announce_outbox", announce_and_look)
    async with heard(engine) as got:
        result = await core.process(batch)
    assert result.outbox_rows > 0
    assert visible_when_announced == [result.outbox_rows]
    assert got == [CHANNEL]
    async with heard(engine) as got:
        again = await core.process(batch)  # applied before: nothing written
    assert (again.duplicates, again.outbox_rows) == (1, 0)
    assert got == []


async def test_an_announcement_that_cannot_be_made_fails_nothing() -> None:
    unreachable = make_engine("postgresql+asyncpg://postgres@127.0.0.1:1/none")
    try:
        with capture_logs() as logs:
            await announce(session_factory(unreachable))  # does not raise: the poll remains
    finally:
        await unreachable.dispose()
    assert [e["event"] for e in logs] == [
        "outbox announcement not made; the relay's poll will find the rows"
    ]


async def test_a_server_that_does_not_answer_holds_the_announcement_up_briefly(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The core's batch loop awaits the announcement: a statement the server does not answer is
    cancelled after `ANNOUNCE_TIMEOUT_S`, logged, and its connection not handed out again."""
    monkeypatch.setattr(outbox, "_ANNOUNCE", "SELECT pg_sleep(30)")
    started = time.monotonic()
    with capture_logs() as logs:
        await announce(engine)
    assert time.monotonic() - started < outbox.ANNOUNCE_TIMEOUT_S + 5
    assert [e["event"] for e in logs] == [
        "outbox announcement not made; the relay's poll will find the rows"
    ]
    async with engine.connect() as conn:  # the pool still serves working connections
        assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1


async def _advisory_locks(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        sql = (
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = :k"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        return int((await conn.execute(text(sql), {"k": ADVISORY_KEY})).scalar_one())


async def test_the_leading_relay_listens_and_stops_when_it_resigns(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    relay = OutboxRelay(engine, sessions, RecordingPublisher())  # type: ignore[arg-type]
    try:
        assert await relay._lead()
        conn = relay._leader_conn
        assert conn is not None
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        listening = "SELECT pg_listening_channels()"
        assert [r[0] for r in await driver.fetch(listening)] == [CHANNEL]
        assert await _advisory_locks(engine) == 1
    finally:
        await relay._resign()
    assert [r[0] for r in await driver.fetch(listening)] == []
    assert await _advisory_locks(engine) == 0


async def test_a_cancelled_relay_resigns(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    relay = OutboxRelay(engine, sessions, RecordingPublisher(), interval=30.0)  # type: ignore[arg-type]
    task = asyncio.create_task(relay.run(asyncio.Event()))
    try:
        for _ in range(300):
            if relay._leader_conn is not None:
                break
            await asyncio.sleep(0.01)
        assert await _advisory_locks(engine) == 1
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert relay._leader_conn is None
    assert await _advisory_locks(engine) == 0


async def test_a_session_closed_without_awaiting_gives_its_lock_up(engine: AsyncEngine) -> None:
    """What a relay cancelled while resigning does (`_terminate`): nothing awaited, the server
    session ends, and a standby can take the lock."""
    conn = await engine.connect()
    await conn.execution_options(isolation_level="AUTOCOMMIT")
    await conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": ADVISORY_KEY})
    assert await _advisory_locks(engine) == 1
    _terminate(conn)
    for _ in range(100):  # the server notices the closed socket at once, or nearly
        if await _advisory_locks(engine) == 0:
            break
        await asyncio.sleep(0.02)
    assert await _advisory_locks(engine) == 0
    assert conn.invalidated
