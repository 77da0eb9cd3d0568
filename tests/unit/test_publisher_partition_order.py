"""A partition's record batches are handed to the client one at a time, each once the one before
it is acknowledged: a batch that failed (the client drops one that outlived its request timeout
after a leader failover) must not be overtaken by the next, or the caller's retry would store a
key's messages out of order."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError

from hub.bus import BrokerUnavailable
from hub.kafka.producer import KafkaPublisher


class _Batch:
    """Three records to a batch."""

    def __init__(self) -> None:
        self.values: list[bytes] = []

    def append(self, *, key: Any, value: bytes, timestamp: Any, headers: Any) -> object | None:
        if len(self.values) == 3:
            return None
        self.values.append(value)
        return object()


class _Client:
    """Hands batches over to futures the test settles; one partition per topic."""

    def __init__(self) -> None:
        self.handed: list[tuple[str, list[bytes], asyncio.Future[Any]]] = []

    async def partitions_for(self, topic: str) -> set[int]:
        return {0}

    def create_batch(self) -> _Batch:
        return _Batch()

    async def send_batch(self, batch: _Batch, topic: str, partition: int) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.handed.append((topic, batch.values, fut))
        return fut


def _publisher() -> tuple[KafkaPublisher, _Client]:
    pub = KafkaPublisher("127.0.0.1:1", timeout=2.0)
    client = _Client()
    pub.producer = client  # type: ignore[assignment]
    pub._started = True
    pub._trusted = (pub._closes, pub._breaks)
    pub._listed = {"a", "b"}
    return pub, client


def _items(topic: str, n: int) -> list[tuple[str, str | None, bytes, list[tuple[str, bytes]]]]:
    return [(topic, "k", f"{topic}{i}".encode(), []) for i in range(n)]


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_failed_batch_is_not_overtaken_by_its_partitions_next() -> None:
    pub, client = _publisher()
    send = asyncio.create_task(pub.send_in_order(_items("a", 7) + _items("b", 32)))
    await _settle()
    # Each partition's first batch at once; no second one before the first is acknowledged.
    assert [(t, v[0]) for t, v, _ in client.handed] == [("a", b"a0"), ("b", b"b0")]
    client.handed[1][2].set_result(None)
    await _settle()
    assert [v[0] for t, v, _ in client.handed if t == "b"] == [b"b0", b"b3"]
    client.handed[0][2].set_exception(KafkaTimeoutError())
    await _settle()
    # The send fails at once; partition a's next batch is never handed over, nor b's third.
    with pytest.raises(BrokerUnavailable):
        send.result()
    for _, _, fut in client.handed:
        if not fut.done():
            fut.set_result(None)
    await _settle()
    assert [v[0] for t, v, _ in client.handed if t == "a"] == [b"a0"]
    assert [v[0] for t, v, _ in client.handed if t == "b"] == [b"b0", b"b3"]


async def test_acknowledged_batches_hand_over_the_next_until_all_are_sent() -> None:
    pub, client = _publisher()
    send = asyncio.create_task(pub.send_in_order(_items("a", 40)))
    acked: list[bytes] = []
    while not send.done():
        await _settle()
        waiting = [(v, fut) for _, v, fut in client.handed if not fut.done()]
        assert len(waiting) <= 1  # one batch of the partition in the client at a time
        for values, fut in waiting:
            acked.extend(values)
            fut.set_result(None)
    send.result()
    assert acked == [f"a{i}".encode() for i in range(40)]


async def test_a_few_records_sent_in_order_still_go_a_batch_at_a_time() -> None:
    """The relay's few rows go as record batches too: added one by one they could share a batch
    with other callers' records and open the next, and that one be stored after the first
    failed."""
    pub, client = _publisher()
    send = asyncio.create_task(pub.send_in_order(_items("a", 5)))
    await _settle()
    assert [v for _, v, _ in client.handed] == [[b"a0", b"a1", b"a2"]]
    client.handed[0][2].set_exception(KafkaTimeoutError())
    await _settle()
    with pytest.raises(BrokerUnavailable):
        send.result()
    assert len(client.handed) == 1


async def test_a_hand_over_that_fails_leaves_no_partition_sending_later() -> None:
    """Handing over partition b's first batch fails (the client timed out waiting for room):
    partition a's later batches, waiting for its first one's acknowledgement, are never sent
    after the caller gave up."""
    pub, client = _publisher()
    real = client.send_batch

    async def send_batch(batch: _Batch, topic: str, partition: int) -> asyncio.Future[Any]:
        if topic == "b":
            raise KafkaTimeoutError()
        return await real(batch, topic, partition)

    client.send_batch = send_batch  # type: ignore[method-assign]
    with pytest.raises(BrokerUnavailable):
        await pub.send_in_order(_items("a", 7) + _items("b", 30))
    if not client.handed[0][2].done():
        client.handed[0][2].set_result(None)
    await _settle()
    assert [v[0] for _, v, _ in client.handed] == [b"a0"]


async def test_a_send_out_of_time_hands_nothing_over_afterwards() -> None:
    pub, client = _publisher()
    pub.timeout = 0.05
    with pytest.raises(BrokerUnavailable):
        await pub.send_in_order(_items("a", 7))
    assert not client.handed[0][2].done() or client.handed[0][2].cancelled()
    if not client.handed[0][2].done():
        client.handed[0][2].set_result(None)
    await _settle()
    assert len(client.handed) == 1


async def test_records_in_no_particular_order_are_handed_over_without_waiting() -> None:
    """Many records from a caller that keeps no order between sends (a load generator): every
    batch goes to the client at once, none waits for another's acknowledgement."""
    pub, client = _publisher()
    send = asyncio.create_task(pub.send_many(_items("a", 40)))
    await _settle()
    assert len(client.handed) == 14  # 40 records, 3 a batch
    for _, _, fut in client.handed:
        fut.set_result(None)
    await send


async def test_a_batch_the_client_cancelled_is_a_failed_send() -> None:
    pub, client = _publisher()
    send = asyncio.create_task(pub.send_in_order(_items("a", 2)))
    await _settle()
    client.handed[0][2].cancel()  # the client stopped with the batch queued
    await _settle()
    with pytest.raises(BrokerUnavailable, match="cancelled"):
        send.result()
