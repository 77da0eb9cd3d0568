"""Many records sent at once travel as record batches per partition: every record lands in the
partition Kafka's default partitioner names for its key, in the order it was given per key, and
the call returns only when all of them are acknowledged."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.partitioner import DefaultPartitioner

from hub.kafka.producer import KafkaPublisher
from hub.kafka.reader import read_topic
from hub.kafka.topics import ensure_topics
from schemas import topics
from tests.conftest import KafkaUnderTest

pytestmark = pytest.mark.integration

PARTITIONS = 4


async def test_a_large_send_keeps_partition_and_per_key_order(kafka: KafkaUnderTest) -> None:
    await ensure_topics(kafka.bootstrap, partitions=PARTITIONS)
    pub = KafkaPublisher(kafka.bootstrap)
    await pub.start()
    # 3,000 records of 300 bytes over 40 keys and two topics: several 64 KB batches per
    # partition, so a key's records span batches.
    sent = [
        (
            topics.ORDERS if n % 3 else topics.STOCK_LEVELS,
            f"key-{n % 40}",
            f"{n:08d}".encode() + b"x" * 292,
            [("n", str(n).encode())],
        )
        for n in range(3000)
    ]
    try:
        await pub.send_many(sent)
        await pub.send_many(sent[:1])  # and one record alone, added record by record
    finally:
        await pub.stop()
    parts = list(range(PARTITIONS))
    for topic in (topics.ORDERS, topics.STOCK_LEVELS):
        records = await read_topic(kafka.bootstrap, topic)
        wanted = [s for s in sent if s[0] == topic] + ([sent[0]] if sent[0][0] == topic else [])
        assert len(records) == len(wanted)
        by_key: dict[str, list[int]] = {}
        for r in sorted(records, key=lambda r: (r.partition, r.offset)):
            key = r.key.decode()
            assert r.partition == DefaultPartitioner()(r.key, parts, parts)
            assert int(dict(r.headers)["n"]) == int(r.value[:8])
            by_key.setdefault(key, []).append(int(r.value[:8]))
        for key, ns in by_key.items():
            expected = [int(v[:8]) for t, k, v, _ in wanted if k == key]
            assert ns == expected, key


async def test_concurrent_sends_of_every_size_are_all_acknowledged(kafka: KafkaUnderTest) -> None:
    """The gateway's many small concurrent sends (a webhook is a few messages) and large ones
    from several callers share a producer (`hub serve`, the benchmark's sender): none may wait
    out the send timeout behind the others' batches of the same partition."""
    await ensure_topics(kafka.bootstrap, partitions=2)
    pub = KafkaPublisher(kafka.bootstrap, timeout=4.0)
    await pub.start()

    async def small(worker: int) -> None:
        for n in range(40):
            await pub.send_many(
                [(topics.ORDERS, f"w{worker}-{n}", b"o" * 1500, []) for _ in range(3)]
            )

    async def large(worker: int) -> None:
        for _ in range(5):
            await pub.send_many(
                [(topics.ORDERS, f"l{worker}-{i % 50}", b"r" * 300, []) for i in range(400)]
            )

    try:
        await asyncio.gather(*(small(w) for w in range(64)), *(large(w) for w in range(16)))
    finally:
        await pub.stop()
    # Every send returned (none raised after its timeout), and every record sent is stored.
    records = await read_topic(kafka.bootstrap, topics.ORDERS)
    assert len(records) == 64 * 40 * 3 + 16 * 5 * 400
