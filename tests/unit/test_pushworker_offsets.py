"""The push worker's offsets: committed up to the earliest level still owed to a shop, and
handed over when a partition leaves the worker."""

from __future__ import annotations

import asyncio

from aiokafka import TopicPartition

from connectors.base import StockPushResult
from connectors.errors import ConnectorError
from connectors.pushout import StockPushOut
from hub.config import AccountConfig, HubConfig, Settings
from hub.core.records import Record
from hub.pushworker import PushWorker
from schemas import topics
from tests.builders import stock_level


class DownShop:
    def __init__(self) -> None:
        self.calls = 0

    async def set_stock(self, levels, *, force: bool = False) -> StockPushResult:
        self.calls += 1
        raise ConnectorError("503 from the shop", retryable=True, status=503)


class Consumer:
    def __init__(self) -> None:
        self.commits: list[dict[TopicPartition, int]] = []

    async def commit(self, offsets) -> None:
        self.commits.append(dict(offsets))


def _record(partition: int, offset: int, sku: str, version: int) -> Record:
    body = stock_level(sku, version, version).model_dump_json().encode()
    return Record(topics.STOCK_LEVELS, partition, offset, None, body, ())


def _worker(tmp_path, shop, publisher=None) -> PushWorker:
    settings = Settings(var_dir=tmp_path)
    account = AccountConfig(
        connector="shopify", channel="online", api_url="http://s.test", api_token="t"
    )
    settings.__dict__["hub"] = HubConfig(accounts={"acme": account})
    worker = PushWorker(settings, publisher)
    worker.pushout = StockPushOut({"acme": shop}, channels={"acme": "online"}, backoff_initial=0.05)
    return worker


async def test_offsets_stop_at_the_level_owed_and_a_revoked_partition_is_handed_over(tmp_path):
    worker = _worker(tmp_path, DownShop())
    p0, p1 = TopicPartition(topics.STOCK_LEVELS, 0), TopicPartition(topics.STOCK_LEVELS, 1)
    # p0: offsets 10 and 11 for SKU A (11 replaces 10), 12 for B; p1: 3 for C.
    records = [
        _record(0, 10, "A", 1),
        _record(0, 11, "A", 2),
        _record(0, 12, "B", 1),
        _record(1, 3, "C", 1),
    ]
    assert await worker._offer(records, {p0, p1}, worker._generation) == {"acme"}
    assert worker.commit_offsets({p0, p1}) == {p0: 11, p1: 3}
    consumer = Consumer()
    worker._consumer = consumer  # type: ignore[assignment]
    await worker.handover({p0})
    assert consumer.commits == [{p0: 11}]
    assert worker.pushout.low_water(p0) is None and worker.pushout.low_water(p1) == 3
    assert worker.commit_offsets({p0, p1}) == {p1: 3}  # p0 is no longer read here
    # A record of the moved partition fetched before the move is left to its new owner.
    assert await worker._offer([_record(0, 13, "B", 2)], {p1}, worker._generation) == set()
    assert worker.pushout.low_water(p0) is None
    await worker.stop()


class HangingShop:
    """A shop whose call for A never returns (a client honouring a long Retry-After, say)."""

    def __init__(self) -> None:
        self.calls: list[dict[str, int]] = []
        self.cancelled = 0
        self.entered = asyncio.Event()

    async def set_stock(self, levels, *, force: bool = False) -> StockPushResult:
        self.calls.append(dict(levels))
        self.entered.set()
        if "A" not in levels:
            return StockPushResult(updated=dict(levels))
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        raise AssertionError("unreachable")


async def test_a_push_in_flight_from_a_revoked_partition_is_cancelled_and_not_retried(tmp_path):
    """The new owner pushes the partition's levels again, and newer ones: the old owner's
    push, stuck in the shop's retries, must not land after them. A level of a partition the
    worker keeps, in the same batch, is pushed."""
    shop = HangingShop()
    worker = _worker(tmp_path, shop)
    p0, p1 = TopicPartition(topics.STOCK_LEVELS, 0), TopicPartition(topics.STOCK_LEVELS, 1)
    records = [_record(0, 4, "A", 1), _record(1, 9, "C", 1)]
    await worker._offer(records, {p0, p1}, worker._generation)
    await shop.entered.wait()
    assert shop.calls == [{"A": 1, "C": 1}]
    worker._consumer = Consumer()  # type: ignore[assignment]
    handover = asyncio.create_task(worker.handover({p0}))
    await asyncio.sleep(0.2)  # within the grace given to A's push
    assert worker.commit_offsets({p0, p1}) == {p1: 9}  # C in flight beside A; p0 is gone
    async with asyncio.timeout(3):
        await handover
    assert shop.cancelled == 1
    async with asyncio.timeout(3):
        await worker.pushout.drain()
    assert shop.calls == [{"A": 1, "C": 1}, {"C": 1}]
    assert worker.pushout.low_waters() == {}
    await worker.stop()


class RebalancingPublisher:
    """A dead-letter publish during which the group rebalances and partition 0 leaves."""

    def __init__(self) -> None:
        self.worker: PushWorker | None = None
        self.sent: list = []

    async def send_many(self, items) -> None:
        self.sent.extend(items)
        assert self.worker is not None
        await self.worker.handover({TopicPartition(topics.STOCK_LEVELS, 0)})


async def test_a_rebalance_during_a_batch_ends_it(tmp_path):
    """The rest of the batch is read again from the commits by whoever owns each partition:
    offered here, its levels would be pushed by two workers, and its offsets recorded for a
    partition this worker no longer reads."""
    publisher = RebalancingPublisher()
    worker = _worker(tmp_path, DownShop(), publisher)
    publisher.worker = worker
    p0, p1 = TopicPartition(topics.STOCK_LEVELS, 0), TopicPartition(topics.STOCK_LEVELS, 1)
    poison = Record(topics.STOCK_LEVELS, 0, 5, None, b"{}", ())
    records = [poison, _record(0, 6, "A", 1), _record(1, 2, "C", 1)]
    assert await worker._offer(records, {p0, p1}, worker._generation) == set()
    assert len(publisher.sent) == 1  # the poison record was dead-lettered
    assert worker._read == {}
    assert worker.pushout.low_waters() == {}
    await worker.stop()
