"""The relay's leader election on PostgreSQL: one advisory lock, held by a session that keeps
no transaction open (an idle transaction would hold back VACUUM of the outbox and the stock
tables for as long as the relay leads)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from hub.relay import OutboxRelay
from hub.store.db import make_engine, session_factory
from hub.store.migrate import upgrade

pytestmark = pytest.mark.integration


class _NoBroker:
    async def publish(self, *_: object, **__: object) -> None:  # never reached here
        raise AssertionError("nothing to publish")


async def test_one_relay_leads_and_keeps_no_transaction_open(pg_server_url: str) -> None:
    engine = make_engine(pg_server_url)
    await upgrade(engine)
    sessions = session_factory(engine)
    first = OutboxRelay(engine, sessions, _NoBroker())  # type: ignore[arg-type]
    second = OutboxRelay(engine, sessions, _NoBroker())  # type: ignore[arg-type]
    try:
        assert await first._lead() is True
        assert await second._lead() is False  # a hot standby while the first holds the lock
        for _ in range(3):
            assert await first._lead() is True  # the leader's periodic check
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
    finally:
        for relay in (first, second):
            if relay._leader_conn is not None:
                await relay._leader_conn.close()
        await engine.dispose()
