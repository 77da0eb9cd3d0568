"""The engine's pool on PostgreSQL: a connection the server closed is not handed out, and a
transaction costs no liveness round trip (a ping) before its first statement."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from hub.store.db import make_engine, session_factory


async def _backend_pid(sessions) -> int:
    async with sessions() as s, s.begin():
        return int((await s.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def test_a_connection_the_server_closed_is_replaced_at_checkout(pg_server_url):
    engine = make_engine(pg_server_url, pool_size=1)
    admin = make_engine(pg_server_url, pool_size=1)
    try:
        sessions = session_factory(engine)
        first = await _backend_pid(sessions)  # back in the pool, idle
        async with admin.connect() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
            await conn.commit()
        await asyncio.sleep(0.5)  # the driver reads the server's goodbye off the idle socket
        second = await _backend_pid(sessions)  # no error: a new connection
        assert second != first
    finally:
        await engine.dispose()
        await admin.dispose()


async def test_a_transaction_costs_no_ping(pg_server_url, monkeypatch):
    engine = make_engine(pg_server_url, pool_size=1)
    pings = []
    monkeypatch.setattr(engine.dialect, "do_ping", lambda conn: pings.append(conn) or True)
    try:
        sessions = session_factory(engine)
        pids = {await _backend_pid(sessions) for _ in range(10)}
        assert len(pids) == 1  # one pooled connection, reused
        assert pings == []
    finally:
        await engine.dispose()
