"""Bad records on the real broker that tests/integration/test_kafka_flow.py does not send: no
CloudEvents headers at all, and valid JSON of the wrong shape. Each goes to the DLQ with its
original bytes and a reason; the consumer goes on with the next message."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import select

from hub.app import Runtime
from hub.config import ChannelRule, HubConfig, Settings
from hub.kafka.reader import read_topic
from hub.store.models import Order
from schemas import topics
from tests.builders import counted, place
from tests.reliability.cluster import until

pytestmark = [pytest.mark.integration]

NO_HEADERS = b'{"order_key": "x:1", "lines": []}'
WRONG_SHAPE = b'{"order": {"id": 1, "items": "three"}}'


async def test_records_without_headers_or_of_the_wrong_shape_go_to_the_dlq(
    kafka, tmp_path: Path
) -> None:
    s = Settings(
        kafka_bootstrap=kafka.bootstrap,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}",
        var_dir=tmp_path / "var",
        core_group=f"core-{uuid.uuid4().hex[:6]}",
        consumer_session_timeout_ms=6000,
    )
    s.__dict__["hub"] = HubConfig(channels={"online": ChannelRule()})
    rt = Runtime(s)
    await rt.start({"core", "relay"})
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap)
    await producer.start()
    try:
        assert rt.publisher is not None and rt.sessions is not None
        await rt.publisher.publish([counted("A", 5)])

        async def counted_in() -> bool:
            return rt.totals.applied >= 1

        await until(counted_in, 60, "stock counted")
        await producer.send_and_wait(topics.ORDERS, NO_HEADERS, key=b"x:1")
        await producer.send_and_wait(
            topics.ORDERS,
            WRONG_SHAPE,
            key=b"x:2",
            headers=[
                ("ce_specversion", b"1.0"),
                ("ce_id", b"bad-shape"),
                ("ce_type", b"hub.order.placed.v1"),
                ("ce_source", b"test"),
                ("content-type", b"application/json"),
            ],
        )
        await rt.publisher.publish([place("x:3", [("A", 2)])])

        async def reserved() -> bool:
            async with rt.sessions() as session:  # type: ignore[misc]
                status = await session.execute(select(Order.status).where(Order.order_key == "x:3"))
                return bool(status.scalar() == "reserved")

        await until(reserved, 60, "the good order after the bad ones is reserved")

        async def dead() -> bool:
            values = {r.value for r in await read_topic(kafka.bootstrap, topics.DLQ)}
            return {NO_HEADERS, WRONG_SHAPE} <= values

        await until(dead, 30, "both bad records on the DLQ")
        by_value = {r.value: dict(r.headers) for r in await read_topic(kafka.bootstrap, topics.DLQ)}
        for value in (NO_HEADERS, WRONG_SHAPE):
            h = by_value[value]
            assert h["dlq_topic"] == topics.ORDERS.encode()
            assert h["dlq_error"], h
        print(
            f"bad messages: missing headers → {by_value[NO_HEADERS]['dlq_error'][:80]!r}; "
            f"wrong shape → {by_value[WRONG_SHAPE]['dlq_error'][:80]!r}"
        )
        async with rt.sessions() as session:
            keys = set((await session.execute(select(Order.order_key))).scalars().all())
        assert keys == {"x:3"}
    finally:
        await producer.stop()
        await rt.stop()
