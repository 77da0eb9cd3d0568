"""The push worker on the real broker: a level a shop has not taken yet is never committed past,
so the next reader of its partition (after a stop, a crash or a rebalance) pushes it."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from faststream.kafka import KafkaBroker

from hub.app import Runtime
from hub.config import AccountConfig, HubConfig, Settings
from hub.pushworker import PushWorker, group_for
from schemas import topics
from tests.builders import stock_level


class Shop:
    """A generic REST shop that is down until told otherwise and records what it was set to."""

    def __init__(self, up: bool) -> None:
        self.up = up
        self.calls = 0
        self.stock: dict[str, int] = {}

    def transport(self) -> httpx.MockTransport:
        def handle(request: httpx.Request) -> httpx.Response:
            self.calls += 1
            if not self.up:
                return httpx.Response(503, json={"error": "maintenance"})
            sku = request.url.path.rsplit("/", 1)[-1]
            self.stock[sku] = json.loads(request.content)["quantity"]
            return httpx.Response(200, json={})

        return httpx.MockTransport(handle)


async def _until(predicate, limit: float = 30.0) -> None:
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")


async def _until_async(predicate, limit: float = 30.0) -> None:
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if await predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not reached in time")


async def _sum_committed(bootstrap: str, total: int) -> bool:
    """Every record read is committed: the offsets over the partitions add up to the count."""
    return sum((await _committed(bootstrap)).values()) == total


async def _committed(bootstrap: str) -> dict[TopicPartition, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [meta] = await admin.describe_topics([topics.STOCK_LEVELS])
        tps = [TopicPartition(topics.STOCK_LEVELS, p["partition"]) for p in meta["partitions"]]
        offsets = await admin.list_consumer_group_offsets(group_for(None), partitions=tps)
    finally:
        await admin.close()
    return {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


async def _worker(s: Settings, rt: Runtime, shop: Shop) -> tuple[PushWorker, KafkaBroker]:
    assert rt.publisher is not None
    worker = PushWorker(s, rt.publisher, transports={"market": shop.transport()}, drain_timeout=0.3)
    broker = KafkaBroker(s.kafka_bootstrap, logger=None)
    worker.subscribe(broker)
    await worker.start()
    await broker.start()
    return worker, broker


async def test_a_level_the_shop_has_not_taken_is_pushed_by_the_next_reader(kafka, tmp_path):
    s = Settings(
        kafka_bootstrap=kafka.bootstrap,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}",
        var_dir=tmp_path / "var",
        consumer_session_timeout_ms=6000,
    )
    market = AccountConfig(
        connector="generic",
        channel="online",
        api_url="http://market.test",
        stock_url="/api/stock/{sku}",
        mapping={
            "event": "type",
            "order_id": "id",
            "lines": "items",
            "line_sku": "sku",
            "line_quantity": "qty",
            "events": {"created": "placed"},
        },
    )
    s.__dict__["hub"] = HubConfig(accounts={"market": market})
    rt = Runtime(s)
    await rt.start({"relay"})
    try:
        assert rt.publisher is not None
        down = Shop(up=False)
        first, broker = await _worker(s, rt, down)
        owed = stock_level("A", 7, 1)
        await rt.publisher.send_many(
            [(topics.STOCK_LEVELS, owed.kafka_key(), owed.model_dump_json().encode(), [])]
        )
        await _until(lambda: down.calls >= 1)
        await asyncio.sleep(1.0)  # well past the worker's wait for the shop
        await first.checkpoint()  # a clean stop commits what landed: here, nothing
        await broker.stop()
        await first.stop()
        # The record is at offset 0 of its partition: the commit stays there, not past it.
        assert list((await _committed(kafka.bootstrap)).values()) == [0]

        later = Shop(up=False)  # the next reader finds the shop still down, for a while
        second, broker = await _worker(s, rt, later)
        try:
            await _until(lambda: later.calls >= 1)
            await asyncio.sleep(0.5)  # past the batch's wait: the offset is held
            later.up = True
            await _until(lambda: later.stock.get("A") == 7)
            # No record follows, yet the offset moves once the level landed.
            await _until_async(lambda: _sum_committed(kafka.bootstrap, 1))
            settled = stock_level("B", 3, 1)
            await rt.publisher.send_many(
                [(topics.STOCK_LEVELS, settled.kafka_key(), settled.model_dump_json().encode(), [])]
            )
            await _until(lambda: later.stock.get("B") == 3)
            await _until_async(lambda: _sum_committed(kafka.bootstrap, 2))
        finally:
            await broker.stop()
            await second.stop()
    finally:
        await rt.stop()
