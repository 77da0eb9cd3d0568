"""Resync through the real publisher onto the broker, read back as any Kafka tool would."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx

from hub.kafka.producer import KafkaPublisher
from hub.kafka.reader import read_topic
from hub.kafka.topics import ensure_topics
from hub.shops import resync
from hub.store.db import make_engine, session_factory
from hub.store.migrate import upgrade
from schemas import topics
from schemas.envelope import decode

from .conftest import hub_settings

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


async def test_resync_puts_each_order_on_the_orders_topic_under_its_stable_id(
    kafka, tmp_path, shopify
):
    url = f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"
    engine = make_engine(url)
    await upgrade(engine)
    sessions = session_factory(engine)
    settings = hub_settings(url, tmp_path)
    shopify.add_product("A-1", 100)
    for n in range(60):  # two pages
        shopify.make_order(9000 + n, [("A-1", 1, "5.00")], created_at=T0 + timedelta(seconds=n))
    transport = httpx.ASGITransport(app=shopify.app)
    await ensure_topics(kafka.bootstrap, partitions=4)
    publisher = KafkaPublisher(kafka.bootstrap)
    await publisher.start()
    try:
        reports = [
            await resync(
                settings,
                "acme",
                what="orders",
                since=None,
                publisher=publisher,
                sessions=sessions,
                transport=transport,
            )
            for _ in range(2)
        ]
    finally:
        await publisher.stop()
        await engine.dispose()

    records = [  # an order's snapshot is placed (orders) and paid (payments)
        r
        for topic in (topics.ORDERS, topics.PAYMENTS)
        for r in await read_topic(kafka.bootstrap, topic)
    ]
    envelopes = [decode(list(r.headers), r.value) for r in records]
    per_id = Counter(e.id for e in envelopes)
    assert len(per_id) == reports[0].published == reports[1].published == 120
    assert set(per_id.values()) == {2}  # each run published every message once, same ids
    placed = {e.data.order_key for e in envelopes if e.type == "hub.order.placed.v1"}
    assert placed == {f"acme:{9000 + n}" for n in range(60)}
    for r, e in zip(records, envelopes, strict=True):  # keyed by order, so one partition each
        assert r.key.decode() == e.key
    by_order: dict[str, set[int]] = {}
    for r, e in zip(records, envelopes, strict=True):
        by_order.setdefault(e.key, set()).add(r.partition)
    assert all(len(p) == 1 for p in by_order.values())
