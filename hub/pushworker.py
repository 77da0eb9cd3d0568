"""The connector-worker role: consume `hub.stock-levels.v1` and push available-to-sell to shops.

Offsets are committed after the batch's levels reached every shop, or after a bounded wait: a
shop that keeps failing keeps being retried in memory (newest version only), and the periodic
reconcile repairs anything a crash lost. Permanent refusals go to the dead-letter topic, and so
does a record that is no stock level.

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
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage
from pydantic import ValidationError

from connectors.base import Account, build_client
from connectors.pushout import PushFailure, StockPushOut
from hub import metrics
from hub.config import SHOP_CONNECTORS, Settings
from hub.core.consumer import raw_body
from hub.deadletters import poison_letter
from hub.kafka.clients import fetch_max_wait_ms
from hub.kafka.producer import KafkaPublisher
from hub.observe import bound_consumer_record, header_value
from schemas import topics
from schemas.envelope import CAUSES_HEADER, CORRELATION_HEADER
from schemas.levels import StockLevelChanged

log = structlog.get_logger("hub.pushworker")


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
        with contextlib.suppress(Exception):
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
            ack_policy=AckPolicy.NACK_ON_ERROR,
            decoder=raw_body,
        )
        async def on_levels(body: list[Any], message: KafkaMessage) -> None:
            offered: set[str] = set()
            for r in message.raw_message:
                with bound_consumer_record(r):
                    try:
                        level = StockLevelChanged.model_validate_json(r.value)
                    except ValidationError as exc:
                        await self._poison(r, f"not a stock level: {exc}")
                        continue
                    taken = self.pushout.offer_level(level, level_causes(r.headers))
                    log.debug("stock level offered", sku=level.sku, accounts=taken)
                    offered.update(taken)
            if offered:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.drain_timeout):
                        await self.pushout.drain(*offered)

    async def start(self) -> None:
        await self.pushout.start()

    async def stop(self) -> None:
        await self.pushout.stop()
        for client in self.clients.values():
            with contextlib.suppress(Exception):
                await client.aclose()


def level_causes(headers: Any) -> tuple[str, ...]:
    """The correlation ids of the orders that changed a level, newest last."""
    causes = header_value(headers, CAUSES_HEADER)
    if causes:
        return tuple(i for i in causes.split(",") if i)
    corr = header_value(headers, CORRELATION_HEADER)
    return (corr,) if corr else ()
