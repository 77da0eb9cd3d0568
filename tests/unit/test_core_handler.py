"""The core subscriber with FastStream's in-memory TestKafkaBroker (fast handler tests)."""

from __future__ import annotations

from faststream.kafka import KafkaBroker, TestKafkaBroker

from hub.core.consumer import add_core_subscriber
from hub.core.records import Record
from schemas import topics
from tests.builders import place


class RecordingProcessor:
    def __init__(self, fail_first: int = 0) -> None:
        self.batches: list[list[Record]] = []
        self.fail_first = fail_first

    async def process(self, records: list[Record]) -> None:
        if self.fail_first:
            self.fail_first -= 1
            raise ConnectionError("database restarting")
        self.batches.append(list(records))


async def test_batch_reaches_the_processor_as_raw_records_with_headers():
    broker = KafkaBroker("localhost:9092")
    proc = RecordingProcessor()
    add_core_subscriber(broker, proc)  # type: ignore[arg-type]
    env = place("acme:1", [("A", 1)])
    async with TestKafkaBroker(broker) as br:
        await br.publish_batch(
            env.body(),
            b"\xffgarbage",
            topic=topics.ORDERS,
            headers={k: v.decode() for k, v in env.headers()},
        )
    [batch] = proc.batches
    assert [r.value for r in batch] == [env.body(), b"\xffgarbage"]
    assert dict(batch[0].headers)["ce_id"] == env.id.encode()
    assert batch[0].topic == topics.ORDERS


async def test_stock_events_topic_is_consumed_too():
    broker = KafkaBroker("localhost:9092")
    proc = RecordingProcessor()
    add_core_subscriber(broker, proc)  # type: ignore[arg-type]
    async with TestKafkaBroker(broker) as br:
        await br.publish_batch(b"{}", topic=topics.STOCK_EVENTS)
    assert [r.topic for b in proc.batches for r in b] == [topics.STOCK_EVENTS]
