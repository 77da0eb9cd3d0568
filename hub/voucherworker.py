"""Finance sinks of the connector-worker role: each voucher of `hub.vouchers.v1` to every
configured finance account (Beancount journal, accounting API). Idempotent on voucher id;
a permanent refusal goes to the dead-letter topic, a transient one is retried.

Each voucher is delivered with its record's correlation id (the order's, for an order's
vouchers), message id, type, topic, partition and offset bound in the log context; each delivery
logs `voucher.delivered` (or `voucher refused`), and a dead letter keeps the record's headers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any, Protocol

import structlog
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage
from pydantic import ValidationError

from connectors.errors import ConnectorError
from hub import metrics
from hub.config import Settings
from hub.core.consumer import raw_body
from hub.deadletters import origin_headers, poison_letter
from hub.kafka.clients import fetch_max_wait_ms
from hub.kafka.producer import KafkaPublisher
from hub.observe import bound_consumer_record
from schemas import topics
from schemas.finance import VoucherIssued

log = structlog.get_logger("hub.voucherworker")
FINANCE_CONNECTORS = ("beancount", "xero")


class VoucherSink(Protocol):
    async def deliver(self, voucher: VoucherIssued) -> bool: ...


def build_sinks(settings: Settings, only: str | None = None) -> dict[str, VoucherSink]:
    sinks: dict[str, VoucherSink] = {}
    for name, acc in settings.hub.accounts.items():
        if acc.connector not in FINANCE_CONNECTORS or (only and name != only):
            continue
        if acc.connector == "beancount":
            from connectors.beancount.subscriber import from_account as beancount

            sinks[name] = beancount(acc, settings.hub, settings.var_dir)
        else:
            from connectors.xero.subscriber import from_account as xero

            sinks[name] = xero(acc, var_dir=settings.var_dir, name=name)
    return sinks


class VoucherWorker:
    def __init__(
        self,
        settings: Settings,
        publisher: KafkaPublisher,
        *,
        only: str | None = None,
        attempts: int = 5,
    ) -> None:
        self.sinks = build_sinks(settings, only)
        self.fetch_wait_ms = fetch_max_wait_ms(settings)
        self.publisher = publisher
        self.group = "hub-finance" if only is None else f"hub-finance-{only}"
        self.attempts = attempts
        # A batch is delivered before its offsets are committed, within the consumer's poll
        # interval: with an accounting API paced at about a call a second (Xero's 60 a minute),
        # 20 vouchers a batch and half an hour, so that a backlog, even throttled (Retry-After
        # up to a minute a call), never outlasts it and is read again for ever.
        paced = sum(1 for sink in self.sinks.values() if getattr(sink, "paced", True))
        self.batch_size = max(5, 20 // paced) if paced else 500  # each voucher goes to each
        self.poll_interval_ms = 30 * 60 * 1000 if paced else 5 * 60 * 1000

    async def _deliver(
        self,
        name: str,
        sink: VoucherSink,
        voucher: VoucherIssued,
        raw: bytes,
        headers: Sequence[tuple[str, bytes]] = (),
        record: Any = None,
    ) -> None:
        for attempt in range(1, self.attempts + 1):
            try:
                fresh = await sink.deliver(voucher)
                metrics.VOUCHERS_DELIVERED.labels(account=name, outcome="ok").inc()
                log.info(
                    "voucher.delivered",
                    account=name,
                    voucher=voucher.voucher_id,
                    cause_type=voucher.cause_type,
                    cause_ref=voucher.cause_ref,
                    new=fresh,
                )
                return
            except ConnectorError as exc:
                if exc.retryable and attempt < self.attempts:
                    await asyncio.sleep(min(10.0, 0.5 * 2**attempt))
                    continue
                metrics.VOUCHERS_DELIVERED.labels(account=name, outcome="failed").inc()
                if exc.retryable:
                    # The batch is read again later (a sink still down holds its vouchers, and
                    # the lag shows it). No dead letter: the voucher is delivered on a re-read,
                    # and a letter replayed after that would post it again.
                    log.error(
                        "voucher not delivered: read again later",
                        account=name,
                        voucher=voucher.voucher_id,
                        error=str(exc),
                    )
                    raise
                log.error(
                    "voucher refused", account=name, voucher=voucher.voucher_id, error=str(exc)
                )
                # A letter that cannot be published raises: the batch is read again, so a
                # refusal is never dropped unrecorded.
                await self.publisher.send_many(
                    [
                        (
                            topics.DLQ,
                            voucher.voucher_id,
                            raw,
                            _dead_letter_headers(
                                headers,
                                voucher,
                                [
                                    ("dlq_error", f"{name}: {exc}"[:2000].encode()),
                                    ("dlq_topic", topics.VOUCHERS.encode()),
                                    ("dlq_consumer", self.group.encode()),
                                    # its origin: a batch read again dead-letters it again, as the
                                    # same letter
                                    *(origin_headers(record) if record is not None else ()),
                                ],
                            ),
                        )
                    ]
                )
            return

    def subscribe(self, broker: KafkaBroker) -> None:
        @broker.subscriber(
            topics.VOUCHERS,
            group_id=self.group,
            batch=True,
            max_records=self.batch_size,
            max_poll_interval_ms=self.poll_interval_ms,
            batch_timeout_ms=50,
            fetch_max_wait_ms=self.fetch_wait_ms,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.NACK_ON_ERROR,
            decoder=raw_body,
        )
        async def on_vouchers(body: list[Any], message: KafkaMessage) -> None:
            for r in message.raw_message:
                with bound_consumer_record(r):
                    try:
                        voucher = VoucherIssued.model_validate_json(r.value)
                    except ValidationError as exc:
                        await self._poison(r, f"not a voucher: {exc}")
                        continue
                    for name, sink in self.sinks.items():
                        await self._deliver(
                            name,
                            sink,
                            voucher,
                            r.value,
                            tuple(r.headers or ()),
                            r,
                        )

    async def _poison(self, record: Any, reason: str) -> None:
        """A record that is no voucher goes to the dead-letter topic with its reason and origin
        (`hub dlq list` shows it), never silently skipped."""
        log.error("voucher unreadable; dead-lettered", error=reason[:300])
        metrics.DEAD_LETTERS.labels(topic=topics.VOUCHERS, reason="invalid").inc()
        await self.publisher.send_many([poison_letter(record, reason, self.group)])

    async def stop(self) -> None:
        for sink in self.sinks.values():
            close = getattr(sink, "aclose", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()


def _dead_letter_headers(
    original: Sequence[tuple[str, bytes]],
    voucher: VoucherIssued,
    dlq: list[tuple[str, bytes]],
) -> list[tuple[str, bytes]]:
    """The record's own CloudEvents headers (correlation id included), then why it failed."""
    kept = [(k, v) for k, v in original if k.startswith("ce_") or k == "content-type"]
    if not any(k == "ce_id" for k, _ in kept):
        kept = [
            ("ce_specversion", b"1.0"),
            ("ce_id", voucher.voucher_id.encode()),
            ("ce_type", voucher.ce_type.encode()),
            ("ce_source", b"hub/finance"),
        ]
    return [*kept, *dlq]
