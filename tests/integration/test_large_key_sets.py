"""Reads keyed by a whole catalogue: 40,000 SKUs are more than one statement binds on
PostgreSQL (32,767 parameters), so they are read a part at a time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, insert, select

from hub.audit import on_hand_of
from hub.deadletters import pending, replay
from hub.domain.allocation import Rule
from hub.shops import hub_available
from hub.store.models import ChannelLevel, DeadLetter, Stock
from schemas import topics
from schemas.levels import StockLevelChanged

pytestmark = pytest.mark.integration
SKUS = [f"SKU-{n:05d}" for n in range(40_000)]


@pytest.fixture
async def catalogue(sessions):
    async with sessions() as s, s.begin():
        await s.execute(
            insert(Stock),
            [{"sku": sku, "location": "main", "on_hand": n % 7} for n, sku in enumerate(SKUS)],
        )
    return sessions


async def test_reconcile_and_push_stock_read_back_every_sku_they_set(catalogue):
    got = await hub_available(catalogue, Rule(), SKUS)
    assert len(got) == 40_000 and got["SKU-39999"] == 39_999 % 7


async def test_a_whole_store_stocktake_is_audited_with_what_it_replaced(catalogue):
    keys = [f"{sku}@main" for sku in SKUS] + ["NEW@main"]
    async with catalogue() as s:
        before = await on_hand_of(s, keys)
    assert len(before) == 40_001 and before["SKU-00008@main"] == 1 and before["NEW@main"] is None


class Sent:
    def __init__(self) -> None:
        self.records: list[tuple] = []

    async def send_many(self, records) -> None:
        self.records.extend(records)


async def test_an_outages_dead_letters_are_replayed_all_at_once(sessions):
    """`hub dlq replay --all` after a shop refused every push for a day: 40,000 stock levels,
    each superseded by a newer level published since but one in ten."""
    at = datetime(2026, 12, 1, tzinfo=UTC)
    letters, levels = [], []
    for n, sku in enumerate(SKUS):
        level = StockLevelChanged(
            sku=sku, channel="online", available=1, on_hand=1, reserved=0, version=1, changed_at=at
        )
        payload = level.model_dump_json().encode()
        letters.append(
            {
                "consumer": "hub-connectors",
                "topic": topics.STOCK_LEVELS,
                "partition": 0,
                "offset": n,
                "key": sku.encode(),
                "headers": [],
                "payload": payload,
                "error": "503",
            }
        )
        levels.append(
            {"sku": sku, "channel": "online", "available": 0, "version": 1 if n % 10 == 0 else 2}
        )
    async with sessions() as s, s.begin():
        await s.execute(insert(DeadLetter), letters)
        await s.execute(insert(ChannelLevel), levels)
    sender = Sent()
    async with sessions() as s, s.begin():
        done = await replay(s, await pending(s, None), sender, "ops")
    assert len(done.sent) == len(sender.records) == 4_000
    assert len(done.superseded) == 36_000
    async with sessions() as s:
        left = await s.scalar(
            select(func.count()).select_from(DeadLetter).where(DeadLetter.replayed_at.is_(None))
        )
        assert left == 0
        ids = list((await s.execute(select(DeadLetter.id))).scalars())
    async with sessions() as s, s.begin():
        assert await pending(s, ids) == []  # asked by id: every one replayed already
