"""The relay's leader election on PostgreSQL: one advisory lock, held by a session that keeps
no transaction open (an idle transaction would hold back VACUUM of the outbox and the stock
tables for as long as the relay leads)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.relay import OutboxRelay
from hub.store.db import make_engine, session_factory
from hub.store.migrate import upgrade

pytestmark = pytest.mark.integration


class _NoBroker:
    async def publish(self, *_: object, **__: object) -> None:  # never reached here
        raise AssertionError("nothing to publish")


async def test_one_relay_leads_and_keeps_no_transaction_open(pg_server_url: str) -> None:
    async with _two_relays(pg_server_url) as (engine, first, second):
        assert await first._lead() is True
        assert await second._lead() is False  # a hot standby while the first holds the lock
        for _ in range(3):
            assert await first._lead() is True
            assert await first._still_leading() is True  # the check before each publish
        async with engine.connect() as conn:
            idle = (
                await conn.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                        " AND state = 'idle in transaction' AND pid <> pg_backend_pid()"
                    )
                )
            ).scalar_one()
        assert idle == 0
        await first._resign()  # the leader stops: a standby takes over at its next try
        assert await second._lead() is True
        assert await first._lead() is False


async def test_a_leader_whose_lock_session_died_stands_down(pg_server_url: str) -> None:
    async with _two_relays(pg_server_url) as (engine, first, second):
        assert await first._lead() is True
        assert first._leader_conn is not None
        pid = (await first._leader_conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        async with engine.connect() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:p, 5000)"), {"p": pid})
            await conn.commit()
        # The lock went with the session: a standby takes it, and the old leader, checking
        # before it would publish, stands down instead of publishing beside it.
        assert await second._lead() is True
        assert await first._still_leading() is False
        assert first._leader_conn is None
        assert await first._lead() is False


@contextlib.asynccontextmanager
async def _two_relays(url: str) -> AsyncIterator[tuple[AsyncEngine, OutboxRelay, OutboxRelay]]:
    engine = make_engine(url)
    await upgrade(engine)
    sessions = session_factory(engine)
    first = OutboxRelay(engine, sessions, _NoBroker())  # type: ignore[arg-type]
    second = OutboxRelay(engine, sessions, _NoBroker())  # type: ignore[arg-type]
    try:
        yield engine, first, second
    finally:
        for relay in (first, second):
            if relay._leader_conn is not None:
                await relay._leader_conn.close()
        await engine.dispose()
