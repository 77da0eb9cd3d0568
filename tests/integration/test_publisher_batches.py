"""Many records sent at once travel as record batches per partition: every record lands in the
partition Kafka's default partitioner names for its key, in the order it was given per key, and
the call returns only when all of them are acknowledged."""

from __future__ import annotations

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
        await pub.send_many(sent[:1])  # and one record alone, the gateway's path
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
