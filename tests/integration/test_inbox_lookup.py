"""The core's inbox lookup: which messages of a batch this consumer applied before, answered by
key probes whatever the database's statistics say about the inbox."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.core.batch import _APPLIED_BEFORE, CoreProcessor
from hub.store.db import make_engine, session_factory
from hub.store.migrate import upgrade
from hub.store.models import ProcessedMessage


def _ids(prefix: str, n: int) -> list[str]:
    return [f"{prefix}-{i:06d}" for i in range(n)]


async def test_lookup_finds_exactly_this_consumers_applied_messages(sessions):
    applied = _ids("applied", 1200)
    other = _ids("other", 300)
    async with sessions() as s, s.begin():
        await s.execute(
            insert(ProcessedMessage),
            [{"consumer": "core", "message_id": i} for i in applied]
            + [{"consumer": "finance", "message_id": i} for i in other],
        )
    core = CoreProcessor(sessions, {})
    asked = applied[::2] + other + _ids("new", 500)
    async with sessions() as s:
        found = await core._applied_before(s, asked)
    assert found == set(applied[::2])
    async with sessions() as s:
        assert await core._applied_before(s, []) == set()


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    out = [plan]
    for child in plan.get("Plans", ()):
        out += _nodes(child)
    return out


async def test_lookup_probes_the_key_when_statistics_have_not_seen_the_consumer(
    pg_server_url: str,
) -> None:
    """Analyzed while the inbox held only another consumer's rows, PostgreSQL's statistics say
    nothing of this one's. The lookup must still probe the key once per id rather than read
    every row of the consumer and filter them (a cost that would grow with the inbox)."""
    engine = make_engine(pg_server_url)
    try:
        await upgrade(engine)
        await _explain_on_unseen_consumer(engine)
    finally:
        await engine.dispose()


async def _explain_on_unseen_consumer(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("TRUNCATE processed_messages"))
        await conn.execute(
            text(
                "INSERT INTO processed_messages (consumer, message_id) "
                "SELECT 'finance', 'f-' || g FROM generate_series(1, 200) AS g"
            )
        )
        await conn.execute(text("ANALYZE processed_messages"))
        await conn.execute(
            text(
                "INSERT INTO processed_messages (consumer, message_id) "
                "SELECT 'core', 'c-' || lpad(g::text, 6, '0') FROM generate_series(1, 20000) AS g"
            )
        )
    asked = [f"c-{g:06d}" for g in range(1, 101)] + _ids("new", 100)
    params = {"consumer": "core", "ids": sorted(asked)}
    async with session_factory(engine)() as s:
        explained = (
            await s.execute(text("EXPLAIN (ANALYZE, FORMAT JSON) " + _APPLIED_BEFORE.text), params)
        ).scalar_one()
        found = set((await s.execute(_APPLIED_BEFORE, params)).scalars())
    plan = (json.loads(explained) if isinstance(explained, str) else explained)[0]["Plan"]
    nodes = _nodes(plan)
    scanned = [n for n in nodes if n.get("Relation Name") == "processed_messages"]
    assert scanned, plan
    # The inbox is read through the whole key, and no row read is thrown away.
    assert sum(n.get("Rows Removed by Filter", 0) for n in nodes) == 0, plan
    assert all("message_id" in n.get("Index Cond", "") for n in scanned), plan
    assert found == set(asked[:100])
