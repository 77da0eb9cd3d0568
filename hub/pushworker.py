"""The connector-worker role: consume `hub.stock-levels.v1` and push available-to-sell to shops.

After each batch has reached every shop, or after a bounded wait (not for a shop retrying after
a failure, which would set how fast the others are fed), offsets are committed up to the
earliest level still owed to a shop, never past it: a shop that keeps failing keeps being retried
in memory (newest version only), and a worker that stops or crashes meanwhile leaves it to the
next reader of the partition, which pushes it. When a partition moves to another worker, this
one commits what it settled and drops what it still owed from that partition, so a retry here
never lands after the new owner's newer level. Permanent refusals go to the dead-letter topic,
and so does a record that is no stock level; a dead letter that cannot be published is retried
with the push.

Each level is handled with its record's correlation id, message id, type, topic, partition and
offset bound in the log context. A level names the orders that changed it (`ce_causes`, else
`ce_correlationid`); the push that carries it logs them (`stock_push.pushed`), and so does its
dead letter (`ce_correlationid`, `ce_causes`).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httpx
import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage
from pydantic import ValidationError

from connectors.base import Account, build_client
from connectors.pushout import PushFailure, StockPushOut
from hub import metrics
from hub.config import SHOP_CONNECTORS, Settings
from hub.core.consumer import raw_body
from hub.deadletters import poison_letter
from hub.kafka.clients import fetch_max_wait_ms, heartbeat_interval_ms
from hub.kafka.producer import KafkaPublisher
from hub.observe import bound_consumer_record, header_value
from schemas import topics
from schemas.envelope import CAUSES_HEADER, CORRELATION_HEADER
from schemas.levels import StockLevelChanged

log = structlog.get_logger("hub.pushworker")
HANDOVER_COMMIT_SECONDS = 3.0  # a revocation's commit; the group waits for it
HANDOVER_GRACE_SECONDS = 1.0  # a push in flight from a revoked partition, before it is cancelled


def shop_accounts(settings: Settings, only: str | None = None) -> dict[str, Account]:
    return {
        name: Account(name, cfg)
        for name, cfg in settings.hub.accounts.items()
        if cfg.connector in SHOP_CONNECTORS and (only is None or name == only)
    }


def group_for(only: str | None) -> str:
    """All shops in one group, or one group per shop when each runs alone."""
    return "hub-connectors" if only is None else f"hub-connector-{only}"


class PushWorker:
    def __init__(
        self,
        settings: Settings,
        publisher: KafkaPublisher,
        *,
        only: str | None = None,
        transports: dict[str, httpx.AsyncBaseTransport] | None = None,
        drain_timeout: float = 10.0,
    ) -> None:
        self.settings = settings
        self.publisher = publisher
        self.accounts = shop_accounts(settings, only)
        self.only = only
        self.drain_timeout = drain_timeout
        clients = {
            name: build_client(acc, transport=(transports or {}).get(name))
            for name, acc in self.accounts.items()
        }
        self.clients = clients
        self.pushout = StockPushOut(
            clients,
            channels={n: a.config.channel for n, a in self.accounts.items()},
            on_failure=self._failed,
            on_latency=self._latency,
        )
        self._consumer: AIOKafkaConsumer | None = None
        self._read: dict[TopicPartition, int] = {}  # the offset after the last record handled
        self._committed: dict[TopicPartition, int] = {}
        self._committing = asyncio.Lock()
        self._generation = 0  # moved on by every revocation
        self._settling: asyncio.Task[None] | None = None
        self._stopping = False

    async def _failed(self, failure: PushFailure) -> None:
        metrics.STOCK_PUSHES.labels(account=failure.account, outcome="failed").inc()
        log.error(
            "stock push refused",
            account=failure.account,
            sku=failure.level.sku,
            reason=failure.reason,
            status=failure.status,
            correlation_ids=list(failure.correlation_ids),
        )
        headers = [
            ("ce_specversion", b"1.0"),
            ("ce_type", failure.level.ce_type.encode()),
            (
                "ce_id",
                f"push-{failure.account}-{failure.level.sku}-{failure.level.version}".encode(),
            ),
            ("ce_source", b"hub/pushworker"),
            ("dlq_error", f"{failure.account}: {failure.reason}"[:2000].encode()),
            ("dlq_topic", topics.STOCK_LEVELS.encode()),
            ("dlq_consumer", group_for(self.only).encode()),
        ]
        if failure.correlation_ids:
            headers.append((CORRELATION_HEADER, failure.correlation_ids[-1].encode()))
            headers.append((CAUSES_HEADER, ",".join(failure.correlation_ids).encode()))
        # A failed publish raises: the push-out retries the level, so the refusal is reported
        # once the broker takes it (or the level is pushed once the shop does).
        await self.publisher.send_many(
            [
                (
                    topics.DLQ,
                    failure.level.kafka_key(),
                    failure.level.model_dump_json().encode(),
                    headers,
                )
            ]
        )

    async def _poison(self, record: Any, reason: str) -> None:
        """A record that is no stock level goes to the dead-letter topic with its reason and
        origin (`hub dlq list` shows it), never silently skipped."""
        log.error("stock level unreadable; dead-lettered", error=reason[:300])
        metrics.DEAD_LETTERS.labels(topic=topics.STOCK_LEVELS, reason="invalid").inc()
        await self.publisher.send_many([poison_letter(record, reason, group_for(self.only))])

    @staticmethod
    def _latency(account: str, seconds: float, count: int) -> None:
        metrics.STOCK_PUSHES.labels(account=account, outcome="ok").inc(count)
        metrics.STOCK_PUSH_LATENCY.labels(account=account).observe(seconds)

    def subscribe(self, broker: KafkaBroker) -> None:
        @broker.subscriber(
            topics.STOCK_LEVELS,
            group_id=group_for(self.only),
            batch=True,
            max_records=2000,
            batch_timeout_ms=20,
            fetch_max_wait_ms=fetch_max_wait_ms(self.settings),
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.MANUAL,
            listener=_Handover(self),
            session_timeout_ms=self.settings.consumer_session_timeout_ms,
            heartbeat_interval_ms=heartbeat_interval_ms(self.settings.consumer_session_timeout_ms),
            decoder=raw_body,
        )
        async def on_levels(body: list[Any], message: KafkaMessage) -> None:
            if self._stopping:
                return  # handed over: the next owner reads it
            consumer = message.consumer
            kafka = consumer if isinstance(consumer, AIOKafkaConsumer) else None
            self._consumer = kafka
            generation = self._generation
            owned = kafka.assignment() if kafka is not None else None
            try:
                offered = await self._offer(message.raw_message, owned, generation)
                if offered:
                    # Wait for the shops that take their levels, not for one retrying after a
                    # failure: it would set how fast every other shop is fed.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.drain_timeout):
                            await self.pushout.calm(offered)
                    if kafka is not None and not self.pushout.settled(offered):
                        self._commit_when_settled(kafka)
            except Exception:
                if kafka is not None and self._generation == generation:
                    with contextlib.suppress(Exception):
                        await message.nack()  # read the batch again from its first record
                    await asyncio.sleep(1.0)  # the dead-letter topic down, say: no busy loop
                raise
            if kafka is None:
                await message.ack()  # the in-memory test broker
                return
            await self._commit(kafka, set(self._read) & kafka.assignment())

    async def _offer(
        self, records: Any, owned: set[TopicPartition] | None, generation: int
    ) -> set[str]:
        """Offer a batch's levels to the push-out; the accounts that took any. A rebalance
        meanwhile ends the batch: the consumer reads again from the commits."""
        offered: set[str] = set()
        for r in records:
            if self._generation != generation:
                break
            tp = TopicPartition(r.topic, r.partition)
            if owned is not None and tp not in owned:
                continue  # fetched before its partition moved: the new owner reads it
            with bound_consumer_record(r):
                try:
                    level = StockLevelChanged.model_validate_json(r.value)
                except ValidationError as exc:
                    await self._poison(r, f"not a stock level: {exc}")
                    if self._generation != generation:
                        break  # the partition may be another's now: leave the record to it
                else:
                    taken = self.pushout.offer_level(level, level_causes(r.headers), (tp, r.offset))
                    log.debug("stock level offered", sku=level.sku, accounts=taken)
                    offered.update(taken)
            self._read[tp] = r.offset + 1
        return offered

    def _commit_when_settled(self, consumer: AIOKafkaConsumer) -> None:
        """A shop outlasted the batch's wait: commit again once every level has landed, even if
        no further batch comes (a quiet topic would otherwise keep the held offsets)."""
        if self._settling is not None and not self._settling.done():
            return

        async def settle() -> None:
            await self.pushout.drain()
            await self._commit(consumer, set(self._read) & consumer.assignment())

        self._settling = asyncio.create_task(settle(), name="stock-push:commit-when-settled")

    def commit_offsets(self, partitions: set[TopicPartition]) -> dict[TopicPartition, int]:
        """Where each partition can be committed: after its last record handled, but never past
        a level still owed to a shop."""
        owed = self.pushout.low_waters()
        offsets: dict[TopicPartition, int] = {}
        for tp in partitions:
            read = self._read.get(tp)
            if read is not None:
                offsets[tp] = min(owed.get(tp, read), read)
        return offsets

    async def _commit(self, consumer: AIOKafkaConsumer, partitions: set[TopicPartition]) -> None:
        async with self._committing:  # one at a time, so a later commit never lands first
            offsets = {
                tp: offset
                for tp, offset in self.commit_offsets(partitions).items()
                if self._committed.get(tp) != offset
            }
            if not offsets:
                return
            try:
                await consumer.commit(offsets)
            except Exception as exc:  # a rebalance under way: the next batch or handover commits
                log.warning("offsets not committed", error=repr(exc)[:300])
                return
            # A handover meanwhile forgot its partitions: they are no longer this worker's.
            self._committed.update({tp: o for tp, o in offsets.items() if tp in self._read})
            held = {f"{tp.partition}": o for tp, o in offsets.items() if o < self._read.get(tp, o)}
            if held:
                log.info("stock levels owed to shops; offsets held", partitions=held)

    async def handover(self, revoked: set[TopicPartition]) -> None:
        """Partitions leave this worker: commit what it settled, then drop what it still owed
        from them and cancel a push from them still in flight after a second (the new owner
        reads it all again from the commit). Bounded well under the rebalance timeout."""
        self._generation += 1  # a batch being offered stops here
        if self._consumer is not None and revoked:
            # If this fails, the new owner reads from the last commit: levels pushed twice.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(HANDOVER_COMMIT_SECONDS):
                    await self._commit(self._consumer, revoked)
        for tp in revoked:  # before `forget`: no later commit may pass what it drops
            self._read.pop(tp, None)
            self._committed.pop(tp, None)
        dropped = self.pushout.forget(revoked)
        await self.pushout.release(revoked, grace=HANDOVER_GRACE_SECONDS)
        if dropped:
            log.info("stock levels left to the partitions' new owner", levels=dropped)

    async def checkpoint(self) -> None:
        """Before the consumer stops: take no further batch, and hand every partition over as a
        rebalance would (leaving the group does not), so no push of this worker lands after
        the next owner's and a clean stop re-reads nothing already pushed."""
        self._stopping = True
        consumer = self._consumer
        if consumer is not None:
            await self.handover(set(consumer.assignment()))

    async def start(self) -> None:
        await self.pushout.start()

    async def stop(self) -> None:
        if self._settling is not None:
            self._settling.cancel()
            await asyncio.wait({self._settling}, timeout=1.0)
        await self.pushout.stop()
        for client in self.clients.values():
            with contextlib.suppress(Exception):
                await client.aclose()


class _Handover(ConsumerRebalanceListener):
    def __init__(self, worker: PushWorker) -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.worker.handover(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        return None


def level_causes(headers: Any) -> tuple[str, ...]:
    """The correlation ids of the orders that changed a level, newest last."""
    causes = header_value(headers, CAUSES_HEADER)
    if causes:
        return tuple(i for i in causes.split(",") if i)
    corr = header_value(headers, CORRELATION_HEADER)
    return (corr,) if corr else ()
