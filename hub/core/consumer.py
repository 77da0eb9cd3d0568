"""The core's FastStream batch subscriber: one transaction and one offset commit per batch.

The core applies a batch as a whole, so it logs per batch: while a batch is processed the log
context holds the batch's correlation ids (bounded), or, for a batch of one record, that record's
correlation id, message id, type, topic, partition and offset; after the commit one line
(`core.batch_applied`) names them with what the batch did. The per-order reservation decision is
logged where it leaves the core: the relay publishing `hub.reservations.v1`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import structlog
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage

from hub.config import CORE_BATCH_SIZE
from hub.core.batch import BatchResult, CoreProcessor, is_transient
from hub.core.records import Record
from hub.kafka.clients import KAFKA_FETCH_WAIT_MS, heartbeat_interval_ms
from hub.observe import bound_consumer_record, bounded_ids, header_value
from schemas import topics
from schemas.envelope import CORRELATION_HEADER

log = structlog.get_logger("hub.core.consumer")

CORE_GROUP = "hub-core"
CORE_TOPICS = (topics.ORDERS, topics.STOCK_EVENTS, topics.PAYMENTS, topics.PURCHASING)


async def raw_body(msg: Any) -> Any:
    """Keep the bytes: the processor decodes (and dead-letters what it cannot decode)."""
    return msg.body


def add_core_subscriber(
    broker: KafkaBroker,
    processor: CoreProcessor,
    *,
    group_id: str = CORE_GROUP,
    batch_size: int = CORE_BATCH_SIZE,
    batch_timeout_ms: int = 20,
    session_timeout_ms: int = 10000,
    fetch_min_bytes: int = 1,
    fetch_max_wait_ms: int = KAFKA_FETCH_WAIT_MS,
    retry_delay: float = 1.0,
) -> Any:
    """Subscribe `processor` to the core's input topics as one consumer of `group_id`.

    Offsets are committed (ack) only after the batch's transaction committed; on a transient
    failure the batch is nacked (the consumer seeks back) after a pause, and re-read.

    `fetch_min_bytes` with `fetch_max_wait_ms` is group commit done by the broker: a fetch is
    answered once that much is ready or that long has passed. A batch costs the core ~8 ms of
    statements whatever its size and each order ~0.2 ms more, so at a steady trickle single-
    order batches would keep it busy for a fraction of the orders it could decide.
    """

    @broker.subscriber(
        *CORE_TOPICS,
        group_id=group_id,
        batch=True,
        max_records=batch_size,
        batch_timeout_ms=batch_timeout_ms,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        session_timeout_ms=session_timeout_ms,
        fetch_min_bytes=fetch_min_bytes,
        fetch_max_wait_ms=fetch_max_wait_ms,
        heartbeat_interval_ms=heartbeat_interval_ms(session_timeout_ms),
        max_poll_interval_ms=300_000,
        decoder=raw_body,
    )
    async def on_batch(body: list[Any], message: KafkaMessage) -> None:
        records = [Record.from_consumer_record(r) for r in message.raw_message]
        with batch_context(records):
            try:
                result = await processor.process(records)
            except Exception as exc:
                log.error(
                    "batch not applied; will be re-read",
                    size=len(records),
                    error=repr(exc),
                    transient=is_transient(exc),
                )
                await asyncio.sleep(retry_delay)
                raise
            log.info("core.batch_applied", size=len(records), **_outcome(result))

    return on_batch


@contextlib.contextmanager
def batch_context(records: Sequence[Record]) -> Iterator[None]:
    """The log context of one batch, restored afterwards (see the module's docstring)."""
    if len(records) == 1:
        with bound_consumer_record(records[0]):
            yield
        return
    ids = bounded_ids(header_value(r.headers, CORRELATION_HEADER) for r in records)
    with structlog.contextvars.bound_contextvars(**ids):
        yield


def _outcome(result: object) -> dict[str, int]:
    if not isinstance(result, BatchResult):
        return {}
    return {
        "applied": result.applied,
        "duplicates": result.duplicates,
        "dead_lettered": result.dead_lettered,
        "accepted": result.accepted,
        "rejected": result.rejected,
    }
