"""The raw pipe limit on the same broker: aiokafka producing and consuming the very records the
hub is sent, with nothing in between. The hub's order rate is reported as a ratio to it."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from hub.bench.workload import KafkaItem

RAW_TOPIC = "bench.raw-orders.v1"


@dataclass
class PipeLimit:
    messages: int
    produce_seconds: float
    seconds: float  # first send to last record consumed

    @property
    def produce_per_s(self) -> float:
        return self.messages / self.produce_seconds if self.produce_seconds else 0.0

    @property
    def per_s(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0


async def create_topic(bootstrap: str, name: str, partitions: int, client: dict[str, Any]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client)
    await admin.start()
    try:
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()


async def raw_pipe_limit(
    bootstrap: str,
    items: Sequence[KafkaItem],
    *,
    partitions: int = 4,
    chunk: int = 1000,
    client: dict[str, Any] | None = None,
    limit_s: float = 120.0,
) -> PipeLimit:
    """Produce `items` (acks=all, 64 KB batches, chunks awaited together) to a scratch topic while
    a consumer reads them back with getmany; the rate is records consumed per second."""
    kw = client or {}
    topic = f"{RAW_TOPIC}.{uuid.uuid4().hex[:6]}"
    await create_topic(bootstrap, topic, partitions, kw)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=2, max_batch_size=65536, **kw
    )
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"bench-raw-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1048576,
        **kw,
    )
    await producer.start()
    await consumer.start()
    total = len(items)
    try:
        await consumer.getmany(timeout_ms=200)  # join the group before the clock starts
        start = time.perf_counter()

        async def produce() -> float:
            for i in range(0, total, chunk):
                futures = [
                    await producer.send(topic, value=v, key=k.encode() if k else None, headers=h)
                    for _, k, v, h in items[i : i + chunk]
                ]
                await asyncio.gather(*futures)
            return time.perf_counter() - start

        async def consume() -> float:
            seen = 0
            while seen < total:
                batch = await consumer.getmany(timeout_ms=500, max_records=5000)
                seen += sum(len(r) for r in batch.values())
            return time.perf_counter() - start

        async with asyncio.timeout(limit_s):
            produced, consumed = await asyncio.gather(produce(), consume())
    finally:
        await consumer.stop()
        await producer.stop()
    return PipeLimit(total, produced, consumed)
