"""The one place that wires real dependencies: engine, broker, processor, relay, HTTP.

`Runtime.start(roles)` brings up the requested roles in this process; `hub serve` asks for all
of them, `hub run ROLE` for one. Nothing connects to anything at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import structlog
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from hub import deadletters, metrics
from hub.config import Settings
from hub.core.batch import BatchResult, CoreProcessor, rules_from_config
from hub.core.consumer import add_core_subscriber, raw_body
from hub.domain.allocation import Rule
from hub.finance.chart import chart_from_config
from hub.kafka import clients
from hub.kafka.embedded import EmbeddedBroker
from hub.kafka.producer import KafkaPublisher
from hub.kafka.topics import ensure_topics, missing_topics
from hub.observe import record_batch
from hub.purchasing.service import tolerance_from_config
from hub.pushworker import PushWorker
from hub.relay import OutboxRelay, wait_any
from hub.store.db import make_engine, server_warnings, session_factory
from hub.store.migrate import upgrade
from hub.store.models import ChannelRuleRow
from hub.voucherworker import VoucherWorker
from schemas import topics

log = structlog.get_logger("hub.app")

ROLES = ("gateway", "core", "relay", "connectors")


@dataclass
class Runtime:
    settings: Settings
    consumers: int = 1
    only_account: str | None = None
    transports: dict[str, Any] = field(default_factory=dict)
    embedded: EmbeddedBroker | None = None
    engine: AsyncEngine | None = None
    sessions: async_sessionmaker[AsyncSession] | None = None
    publisher: KafkaPublisher | None = None
    relay: OutboxRelay | None = None
    pushworker: PushWorker | None = None
    voucherworker: VoucherWorker | None = None
    brokers: list[KafkaBroker] = field(default_factory=list)
    processors: list[CoreProcessor] = field(default_factory=list)
    rules: dict[str, Rule] = field(default_factory=dict)
    bootstrap: str = ""
    roles: set[str] = field(default_factory=set)
    stop_event: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    started_at: float = field(default_factory=time.monotonic)
    totals: BatchResult = field(default_factory=BatchResult)

    async def start(self, roles: set[str] | None = None, *, migrate: bool = True) -> None:
        self.roles = set(roles or ROLES)
        s = self.settings
        self.rules = rules_from_config(s.hub.channels)
        if s.kafka_bootstrap:
            self.bootstrap = s.kafka_bootstrap
        else:
            self.embedded = await asyncio.to_thread(
                EmbeddedBroker.start, record=s.broker_file, log=s.var_dir / "broker.log"
            )
            self.bootstrap = self.embedded.bootstrap
            log.info("embedded broker started", bootstrap=self.bootstrap)
        kw = clients.client_kwargs(s)
        await ensure_topics(
            self.bootstrap,
            partitions=s.topic_partitions,
            replication=s.topic_replication,
            client=kw,
        )
        self.engine = make_engine(s.db_url)
        self.sessions = session_factory(self.engine)
        if migrate:
            await upgrade(self.engine)
        for warning in await server_warnings(self.engine):
            log.warning("database server", problem=warning)
        await self._sync_channel_rules()
        self.publisher = KafkaPublisher(self.bootstrap, client=kw, verify=self._ensure_topics)
        await self.publisher.start()
        if "relay" in self.roles:
            self.relay = OutboxRelay(
                self.engine,
                self.sessions,
                self.publisher,
                batch_size=s.relay_batch_size,
                interval=s.relay_interval_ms / 1000,
            )
            self.tasks.append(asyncio.create_task(self.relay.run(self.stop_event), name="relay"))
            await self._start_dead_letter_recorder()
        if "core" in self.roles:
            for i in range(self.consumers):
                await self._start_core(i)
        if "connectors" in self.roles:
            await self._start_connectors()
        self.tasks.append(asyncio.create_task(self._guard_topics(), name="topic-guard"))
        self.tasks.append(asyncio.create_task(self._gauges(), name="gauges"))
        if "connectors" in self.roles and s.reconcile_interval_s > 0:
            # WooCommerce never retries a failed webhook: a scheduled resync and reconcile
            # is part of the product, not an afterthought.
            from hub.shops import reconcile_loop

            self.tasks.append(
                asyncio.create_task(
                    reconcile_loop(
                        s,
                        self.sessions,
                        self.stop_event,
                        s.reconcile_interval_s,
                        transport_for=self.transports.get,
                        publisher=self.publisher,
                        only=self.only_account,
                    ),
                    name="reconcile",
                )
            )
        if "gateway" in self.roles:  # the role that serves /dashboard and /api/lag
            from hub.ops.state import lag_loop

            self.tasks.append(asyncio.create_task(lag_loop(self), name="lag"))

    async def _start_core(self, index: int) -> None:
        assert self.sessions is not None
        s = self.settings

        def committed(result: BatchResult) -> None:
            record_batch(result)
            self.totals.add(result)
            if self.relay is not None:
                self.relay.notify()

        processor = CoreProcessor(
            self.sessions,
            self.rules,
            on_committed=committed,
            chart=chart_from_config(s.hub),
            tolerance=tolerance_from_config(s.hub),
        )
        broker = self._broker(f"hub-core-{index}")
        add_core_subscriber(
            broker,
            processor,
            group_id=s.core_group,
            batch_size=s.core_batch_size,
            batch_timeout_ms=s.core_batch_timeout_ms,
            session_timeout_ms=s.consumer_session_timeout_ms,
            fetch_min_bytes=s.core_fetch_min_bytes,
            fetch_max_wait_ms=s.core_fetch_max_wait_ms,
        )
        await broker.start()
        self.brokers.append(broker)
        self.processors.append(processor)

    async def _start_dead_letter_recorder(self) -> None:
        """Every consumer's dead letters into the table `hub dlq` lists and replays."""
        assert self.sessions is not None
        sessions = self.sessions
        since = await deadletters.recorder_since(sessions)
        broker = self._broker("hub-dead-letters")

        @broker.subscriber(
            topics.DLQ,
            group_id=deadletters.RECORDER_GROUP,
            batch=True,
            max_records=500,
            batch_timeout_ms=100,
            fetch_max_wait_ms=500,  # nothing waits on it; an idle poll costs the broker little
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.NACK_ON_ERROR,
            decoder=raw_body,
        )
        async def on_letters(body: list[Any], message: KafkaMessage) -> None:
            await deadletters.record_letters(sessions, message.raw_message, since)

        await broker.start()
        self.brokers.append(broker)

    def _broker(self, client_id: str) -> KafkaBroker:
        """A FastStream broker for this process's subscribers, with FastStream's own Prometheus
        middleware (received, processed and in-flight messages and handling time per handler)."""
        return KafkaBroker(
            self.bootstrap,
            client_id=client_id,
            security=clients.faststream_security(self.settings),
            logger=None,
            middlewares=(metrics.faststream_middleware(),),
        )

    async def _start_connectors(self) -> None:
        assert self.publisher is not None
        worker = PushWorker(
            self.settings, self.publisher, only=self.only_account, transports=self.transports
        )
        finance = VoucherWorker(self.settings, self.publisher, only=self.only_account)
        from hub.supplierworker import SupplierWorker

        suppliers = SupplierWorker(
            self.settings, self.publisher, only=self.only_account, transports=self.transports
        )
        if suppliers.links:  # orders out per supplier; its documents in, until stop
            orders = self._broker("hub-suppliers")
            suppliers.subscribe(orders)
            await orders.start()
            self.brokers.append(orders)
            self.tasks.append(asyncio.create_task(suppliers.run(self.stop_event), name="suppliers"))
        if not worker.accounts and not finance.sinks:
            return
        broker = self._broker("hub-connectors")
        if worker.accounts:
            await worker.start()
            worker.subscribe(broker)
            self.pushworker = worker
        if finance.sinks:
            finance.subscribe(broker)
            self.voucherworker = finance
        await broker.start()
        self.brokers.append(broker)

    async def _sync_channel_rules(self) -> None:
        assert self.sessions is not None
        async with self.sessions() as session, session.begin():
            for name, rule in self.rules.items():
                await session.merge(
                    ChannelRuleRow(
                        channel=name,
                        share=rule.share,
                        buffer=rule.buffer,
                        cap=rule.cap,
                        locations=list(rule.locations),
                    )
                )

    async def _ensure_topics(self) -> list[str]:
        s = self.settings
        return await ensure_topics(
            self.bootstrap,
            partitions=s.topic_partitions,
            replication=s.topic_replication,
            client=clients.client_kwargs(s),
        )

    async def _guard_topics(self) -> None:
        """A restarted embedded broker forgets its topics: recreate them before anyone writes
        into an auto-created topic with the wrong partitions, and make the publisher refresh
        what it knows of them before it acknowledges anything again."""
        kw = clients.client_kwargs(self.settings)
        while not self.stop_event.is_set():
            await wait_any([self.stop_event], 1.0)
            with contextlib.suppress(Exception):
                if await missing_topics(self.bootstrap, kw):
                    if self.publisher is not None:
                        self.publisher.suspect()
                    created = await self._ensure_topics()
                    log.warning("topics were missing and are recreated", topics=created)

    async def _gauges(self) -> None:
        while not self.stop_event.is_set():
            with contextlib.suppress(Exception):
                if self.relay is not None:
                    backlog, age = await self.relay.backlog()
                    metrics.OUTBOX_BACKLOG.set(backlog)
                    metrics.OUTBOX_OLDEST_AGE.set(age)
            await wait_any([self.stop_event], 5.0)

    async def ready(self) -> dict[str, bool]:
        """Readiness: database and broker reachable."""
        status = {"database": False, "broker": False}
        if self.engine is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2), self.engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
                    status["database"] = True
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                await missing_topics(self.bootstrap, clients.client_kwargs(self.settings))
                status["broker"] = True
        return status

    async def stop(self) -> None:
        self.stop_event.set()
        if self.pushworker:
            try:
                await self.pushworker.checkpoint()
            except Exception:  # the next owner reads from the last commit: pushes repeated
                log.exception("push worker handover at stop failed")
        for broker in self.brokers:
            with contextlib.suppress(Exception):
                await broker.stop()
        for task in self.tasks:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(10):
                    await task
        if self.pushworker:
            await self.pushworker.stop()
        if self.voucherworker:
            await self.voucherworker.stop()
        if self.publisher:
            await self.publisher.stop()
        if self.engine:
            await self.engine.dispose()
        if self.embedded:
            await self.embedded.astop()
