"""Migration 0016 gives each stock row the time of its last count, from its journal, so that a
count older than it changes nothing after the upgrade too."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hub.store.db import stored_utc
from hub.store.migrate import current, downgrade, head, upgrade
from hub.store.models import Movement, Stock

pytestmark = pytest.mark.integration
T = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)


async def test_rows_counted_before_take_their_last_stocktake(engine, sessions):
    async with sessions() as s, s.begin():
        s.add_all([Stock(sku="A", location="main", on_hand=5), Stock(sku="B", location="main")])
        for hours, kind in ((1, "stocktake"), (3, "stocktake"), (5, "sale")):
            s.add(
                Movement(
                    sku="A",
                    location="main",
                    delta=1,
                    kind=kind,
                    cause=f"m{hours}",
                    at=T + timedelta(hours=hours),
                )
            )
    try:
        await downgrade(engine, "0015_dead_letter_digest")
    finally:
        await upgrade(engine)  # back to head: the PostgreSQL database is shared by later tests
    assert await current(engine) == head()
    async with sessions() as s:
        a = await s.get(Stock, ("A", "main"))
        b = await s.get(Stock, ("B", "main"))
    assert a is not None and b is not None
    assert stored_utc(a.counted_at) == T + timedelta(hours=3)
    assert b.counted_at is None
