"""Migration 0017 adds the record's time to a dead letter's identity; letters stored before it
have none (-1) and stay one letter each."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from hub.store.db import payload_digest
from hub.store.migrate import current, downgrade, head, upgrade
from hub.store.models import DeadLetter

pytestmark = pytest.mark.integration


def _letter(timestamp_ms: int) -> DeadLetter:
    return DeadLetter(
        consumer="hub-core",
        topic="hub.orders.v1",
        partition=0,
        offset=7,
        digest=payload_digest(b"same"),
        timestamp_ms=timestamp_ms,
        headers=[],
        payload=b"same",
        error="bug",
    )


async def test_letters_stored_before_have_no_time_and_a_replay_blocks_the_downgrade(
    engine, sessions
):
    async with sessions() as s, s.begin():
        s.add(_letter(1_000))
    try:
        await downgrade(engine, "0016_stock_counted_at")
    finally:
        await upgrade(engine)  # back to head: the PostgreSQL database is shared by later tests
    assert await current(engine) == head()
    async with sessions() as s, s.begin():
        assert (await s.execute(select(DeadLetter.timestamp_ms))).scalars().all() == [-1]
        s.add(_letter(9_000))  # the same bytes replayed to the same position, failed again
    try:
        with pytest.raises(RuntimeError, match="cannot be told apart"):
            await downgrade(engine, "0016_stock_counted_at")
        assert await current(engine) != "0016_stock_counted_at"
    finally:
        await upgrade(engine)  # the migrations after 0017 may have gone down before it refused
    assert await current(engine) == head()
