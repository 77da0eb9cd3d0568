"""The publisher acknowledges only what a broker that knows the topic stored.

The embedded broker forgets its topics when it restarts; a producer with the old metadata would
have records acknowledged into a topic no consumer reads. The publisher asks the broker for its
topic list after any of its connections closed (a restart cannot keep a TCP connection) and refuses
a send during which a connection broke, instead of refreshing metadata before every send.

What this cannot cover on the embedded broker: aiokafka retries a batch that was in flight when
the broker died on the new connection before anyone can look, the broker acknowledges it into a
topic it does not have, and once the topic is created its partition hands out those offsets again
(measured: a record acknowledged after the creation, at a reused offset, was then missing). The
publisher refuses the retried batch (its connection broke), but that damage to the new topic is
outside what a client can see; Apache Kafka answers UNKNOWN_TOPIC_OR_PARTITION instead.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hub.bus import BrokerUnavailable
from hub.kafka.embedded import EmbeddedBroker, free_port
from hub.kafka.producer import KafkaPublisher
from hub.kafka.reader import read_topic
from hub.kafka.topics import ensure_topics
from schemas import topics

pytestmark = pytest.mark.integration

TOPIC = topics.ORDERS


def _record(n: int) -> tuple[str, str | None, bytes, list[tuple[str, bytes]]]:
    return (TOPIC, f"k{n}", f"order-{n}".encode(), [])


def _count_questions(pub: KafkaPublisher) -> list[int]:
    """Count the publisher's metadata refreshes and topic listings."""
    client = pub.producer.client
    asked = [0]
    refresh, listing = client.force_metadata_update, client.fetch_all_metadata

    def counted_refresh():  # type: ignore[no-untyped-def]
        asked[0] += 1
        return refresh()

    async def counted_listing():  # type: ignore[no-untyped-def]
        asked[0] += 1
        return await listing()

    client.force_metadata_update = counted_refresh  # type: ignore[method-assign]
    client.fetch_all_metadata = counted_listing  # type: ignore[method-assign]
    return asked


async def test_steady_sends_do_not_ask_the_broker_about_topics_each_time(tmp_path: Path) -> None:
    broker = EmbeddedBroker.start(log=tmp_path / "broker.log")
    await ensure_topics(broker.bootstrap, partitions=2)
    pub = KafkaPublisher(broker.bootstrap)
    await pub.start()
    try:
        asked = _count_questions(pub)
        for n in range(40):
            await pub.send_many([_record(n)])
        assert asked[0] <= 2, f"the broker was asked {asked[0]} times for 40 sends"
        got = {r.value for r in await read_topic(broker.bootstrap, TOPIC)}
        assert got == {f"order-{n}".encode() for n in range(40)}
    finally:
        await pub.stop()
        broker.stop()


async def test_an_idle_connection_dropped_is_checked_again_but_fails_nothing(
    tmp_path: Path,
) -> None:
    broker = EmbeddedBroker.start(log=tmp_path / "broker.log")
    await ensure_topics(broker.bootstrap, partitions=2)
    pub = KafkaPublisher(broker.bootstrap, client={"connections_max_idle_ms": 300})
    await pub.start()
    try:
        await pub.send_many([_record(0)])
        asked = _count_questions(pub)
        await asyncio.sleep(1.0)  # the producer drops its idle connections
        await pub.send_many([_record(1)])  # not refused: nothing broke
        assert asked[0] >= 1, "a new connection was trusted without looking at its topics"
        got = {r.value for r in await read_topic(broker.bootstrap, TOPIC)}
        assert got == {b"order-0", b"order-1"}
    finally:
        await pub.stop()
        broker.stop()


async def test_a_broker_that_restarted_empty_never_acknowledges_into_a_forgotten_topic(
    tmp_path: Path,
) -> None:
    port = free_port()
    broker = EmbeddedBroker.start(port=port, log=tmp_path / "broker.log")
    await ensure_topics(broker.bootstrap, partitions=2)

    async def verify() -> list[str]:
        return await ensure_topics(broker.bootstrap, partitions=2)

    pub = KafkaPublisher(broker.bootstrap, timeout=2.0, verify=verify)
    await pub.start()
    try:
        for n in range(5):
            await pub.send_many([_record(n)])
        broker.kill()
        broker = EmbeddedBroker.start(port=port, log=tmp_path / "broker2.log")
        acknowledged: list[int] = []
        for n in range(100, 140):
            try:
                await pub.send_many([_record(n)])
                acknowledged.append(n)
            except BrokerUnavailable:
                await asyncio.sleep(0.1)
        assert acknowledged, "the publisher never recovered after the broker came back"
        got = {r.value for r in await read_topic(broker.bootstrap, TOPIC)}
        lost = [n for n in acknowledged if f"order-{n}".encode() not in got]
        assert lost == [], f"acknowledged after the restart but not in the topic: {lost}"
        assert b"order-0" not in got  # memory storage: the topic is the new broker's
    finally:
        await pub.stop()
        broker.stop()
