"""The push worker on the real broker: a level a shop has not taken yet is never committed past,
so the next reader of its partition (after a stop, a crash or a rebalance) pushes it."""

from __future__ import annotations

import asyncio
import inspect
import json
import time
import uuid

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from faststream.kafka import KafkaBroker

from hub.app import Runtime
from hub.config import AccountConfig, HubConfig, Settings
from hub.pushworker import PushWorker, group_for
from schemas import topics
from tests.builders import stock_level


class Shop:
    """A generic REST shop that is down until told otherwise and records what it was set to;
    `throttled`: while down, it answers 429 with a long Retry-After, which the client honours."""

    def __init__(self, up: bool, *, throttled: bool = False) -> None:
        self.up = up
        self.throttled = throttled
        self.calls = 0
        self.stock: dict[str, int] = {}

    def transport(self) -> httpx.MockTransport:
        def handle(request: httpx.Request) -> httpx.Response:
            self.calls += 1
            if not self.up and self.throttled:
                return httpx.Response(429, headers={"Retry-After": "40"}, json={"error": "slow"})
            if not self.up:
                return httpx.Response(503, json={"error": "maintenance"})
            sku = request.url.path.rsplit("/", 1)[-1]
            self.stock[sku] = json.loads(request.content)["quantity"]
            return httpx.Response(200, json={})

        return httpx.MockTransport(handle)


async def _until(predicate, limit: float = 30.0) -> None:
    """Wait for a predicate, plain or a coroutine function, to hold."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        held = predicate()
        if await held if inspect.isawaitable(held) else held:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")


async def _committed(bootstrap: str, group: str) -> dict[TopicPartition, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [meta] = await admin.describe_topics([topics.STOCK_LEVELS])
        tps = [TopicPartition(topics.STOCK_LEVELS, p["partition"]) for p in meta["partitions"]]
        offsets = await admin.list_consumer_group_offsets(group, partitions=tps)
    finally:
        await admin.close()
    return {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


async def _where(bootstrap: str, key: str) -> tuple[TopicPartition, int]:
    """The partition and offset of the record with this key (the broker may be shared)."""
    consumer = AIOKafkaConsumer(
        topics.STOCK_LEVELS, bootstrap_servers=bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        async with asyncio.timeout(30):
            while True:
                for tp, batch in (await consumer.getmany(timeout_ms=500)).items():
                    for r in batch:
                        if r.key == key.encode():
                            return tp, r.offset
    finally:
        await consumer.stop()


def _market(channel: str) -> AccountConfig:
    """A generic REST shop selling on `channel`, its stock set at `/api/stock/{sku}`."""
    return AccountConfig(
        connector="generic",
        channel=channel,
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


async def _publish(rt: Runtime, sku: str, available: int, channel: str) -> str:
    level = stock_level(sku, available, 1, channel=channel)
    assert rt.publisher is not None
    await rt.publisher.send_many(
        [(topics.STOCK_LEVELS, level.kafka_key(), level.model_dump_json().encode(), [])]
    )
    return level.kafka_key()


async def test_a_level_the_shop_has_not_taken_is_pushed_by_the_next_reader(kafka, tmp_path):
    s = Settings(
        kafka_bootstrap=kafka.bootstrap,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}",
        var_dir=tmp_path / "var",
        consumer_session_timeout_ms=6000,
    )
    # Names of this test's own, so that a broker shared with other tests changes nothing.
    name, channel = f"market{uuid.uuid4().hex[:8]}", f"web{uuid.uuid4().hex[:8]}"
    s.__dict__["hub"] = HubConfig(accounts={name: _market(channel)})
    group = group_for(name)

    async def worker(shop: Shop) -> tuple[PushWorker, KafkaBroker]:
        assert rt.publisher is not None
        pushes = PushWorker(
            s, rt.publisher, only=name, transports={name: shop.transport()}, drain_timeout=0.3
        )
        broker = KafkaBroker(s.kafka_bootstrap, logger=None)
        pushes.subscribe(broker)
        await pushes.start()
        await broker.start()
        return pushes, broker

    rt = Runtime(s)
    await rt.start({"relay"})
    try:
        down = Shop(up=False)
        first, broker = await worker(down)
        a_at = await _where(kafka.bootstrap, await _publish(rt, "A", 7, channel))
        await _until(lambda: down.calls >= 1)
        await asyncio.sleep(1.0)  # well past the worker's wait for the shop
        await first.checkpoint()  # a clean stop commits what landed: not A
        await broker.stop()
        await first.stop()
        # The commit stays at A's own offset, not past it.
        assert (await _committed(kafka.bootstrap, group)).get(a_at[0]) == a_at[1]

        later = Shop(up=False)  # the next reader finds the shop still down, for a while
        second, broker = await worker(later)
        try:
            await _until(lambda: later.calls >= 1)
            await asyncio.sleep(0.5)  # past the batch's wait: the offset is held
            later.up = True
            await _until(lambda: later.stock.get("A") == 7)

            async def past(at: tuple[TopicPartition, int]) -> bool:
                return (await _committed(kafka.bootstrap, group)).get(at[0], -1) > at[1]

            # No record follows, yet the offset moves once the level landed.
            await _until(lambda: past(a_at))
            b_at = await _where(kafka.bootstrap, await _publish(rt, "B", 3, channel))
            await _until(lambda: later.stock.get("B") == 3)
            await _until(lambda: past(b_at))
        finally:
            await broker.stop()
            await second.stop()
    finally:
        await rt.stop()


@pytest.mark.parametrize("throttled", [False, True], ids=["down", "throttled"])
async def test_a_shop_retrying_after_failures_does_not_hold_up_the_others(
    kafka, tmp_path, throttled
):
    """Two shops on one channel, one of them down (or throttling, its client waiting out a
    40 s Retry-After inside one push): every batch hands it levels, and it does not take them.
    The shop that is up gets each level as it comes, not after the worker's whole wait (30 s
    here) for the other. A first batch for the failing shop alone (a SKU only it sells, on a
    channel of its own) holds up nothing either."""
    s = Settings(
        kafka_bootstrap=kafka.bootstrap,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}",
        var_dir=tmp_path / "var",
        consumer_session_timeout_ms=6000,
    )
    tag = uuid.uuid4().hex[:8]
    channel, alone = f"web{tag}", f"own{tag}"
    up_name, down_name, also = f"up{tag}", f"down{tag}", f"also{tag}"
    s.__dict__["hub"] = HubConfig(
        accounts={up_name: _market(channel), down_name: _market(channel), also: _market(alone)}
    )
    up, down = Shop(up=True), Shop(up=False, throttled=throttled)
    rt = Runtime(s)
    await rt.start({"relay"})
    try:
        assert rt.publisher is not None
        pushes = PushWorker(
            s,
            rt.publisher,
            transports={
                up_name: up.transport(),
                down_name: down.transport(),
                also: down.transport(),
            },
            drain_timeout=30.0,
        )
        pushes.pushout.backoff_initial = pushes.pushout.backoff_max = 0.2
        broker = KafkaBroker(s.kafka_bootstrap, logger=None)
        pushes.subscribe(broker)
        await pushes.start()
        await broker.start()
        try:
            await _publish(rt, f"Z{tag}", 9, alone)
            await _until(lambda: down.calls >= 1, limit=15.0)
            for n, sku in enumerate((f"A{tag}", f"B{tag}", f"C{tag}"), start=1):
                await _publish(rt, sku, n, channel)
                await _until(lambda sku=sku, n=n: up.stock.get(sku) == n, limit=15.0)
            assert down.calls >= (1 if throttled else 3) and down.stock == {}
        finally:
            await broker.stop()
            await pushes.stop()
    finally:
        await rt.stop()
