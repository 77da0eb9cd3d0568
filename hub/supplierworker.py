"""Supplier connectors in the connector-worker role: purchase orders out, supplier documents in.

For every supplier account of the config (`connector = "x12" | "edifact" | "supplier_rest"`):

- a subscriber on `hub.purchase-orders.v1` (consumer group `hub-supplier-NAME`, so a supplier
  that is down holds back only its own orders) sends each order addressed to it — an 850/860 or
  ORDERS/ORDCHG file into the exchange outbox, or a call to the portal. A durable record per
  message id (`.sent/` in the exchange folder or the portal's state folder) makes a redelivered
  message a no-op; the portal also answers a repeated identical order with 200, never a second
  order. A transient failure (broker, portal 5xx/429/timeouts after the client's own tenacity
  retries) fails the batch, which is read again; a permanent refusal goes to `hub.dlq.v1` with
  its error and the original record.
- a poller reads what the supplier sent (the exchange inbox; the portal's acknowledgements,
  shipments, invoices and stock feed) and publishes canonical messages to `hub.purchasing.v1`.
  Message ids are derived from each document's content, so a poll that crashes after publishing
  publishes the same ids again and the core, idempotent by message id, applies them once.

The supplier id the messages carry is the account's `supplier` key, by default the account name.
A connector never touches the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import httpx
import structlog
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage
from prometheus_client import Counter

from connectors.edi_common.control import atomic_write
from connectors.edi_common.errors import EdiError
from connectors.edi_common.exchange import Exchange
from connectors.errors import ConnectorError
from hub import metrics
from hub.config import AccountConfig, ConfigError, Settings
from hub.core.consumer import raw_body
from hub.deadletters import poison_letter
from hub.finance.chart import chart_from_config
from hub.kafka.clients import fetch_max_wait_ms
from hub.kafka.producer import KafkaPublisher
from schemas import topics
from schemas.base import CanonicalMessage, now_utc
from schemas.envelope import Envelope, EnvelopeError, content_id, decode
from schemas.purchasing import (
    PurchaseOrderCancelled,
    PurchaseOrderChanged,
    PurchaseOrderIssued,
)

log = structlog.get_logger("hub.supplierworker")

SUPPLIER_CONNECTORS = frozenset({"x12", "edifact", "supplier_rest"})
Publish = Callable[[Sequence[Envelope]], Awaitable[None]]

SUPPLIER_DOCUMENTS = Counter(
    "hub_supplier_documents",
    "Documents exchanged with suppliers, by account, direction (out, in) and outcome "
    "(sent, repeat, refused, published).",
    ["account", "direction", "outcome"],
    registry=metrics.REGISTRY,
)


class SupplierLink(Protocol):
    name: str  # the account
    supplier: str  # the supplier id its messages carry
    connector: str

    async def send(self, envelope: Envelope) -> bool:
        """Send one order message; False when this message id was sent before."""
        ...

    async def poll(self, publish: Publish) -> int:
        """Publish what the supplier sent since the last poll; returns how many messages."""
        ...

    async def aclose(self) -> None: ...


class EdiLink:
    """An X12 or EDIFACT exchange folder."""

    def __init__(self, name: str, connector: str, exchange: Exchange, supplier: str) -> None:
        self.name, self.connector, self.exchange = name, connector, exchange
        self.supplier = supplier

    async def send(self, envelope: Envelope) -> bool:
        return await asyncio.to_thread(self.exchange.send, envelope) is not None

    async def poll(self, publish: Publish) -> int:
        result = await self.exchange.poll(publish)
        return result.published

    async def aclose(self) -> None:
        return None


ACK_RECHECK = timedelta(minutes=10)  # how often an answered order is asked again
ACK_REVISIONS = timedelta(days=7)  # for how long after its first answer


class PortalLink:
    """A REST supplier portal. State (what was sent, which orders await an answer, the feed
    cursor) lives in `state_dir`, written atomically after each step it records."""

    connector = "supplier_rest"

    def __init__(
        self, name: str, client: Any, state_dir: Path, *, overlap: timedelta = timedelta(minutes=5)
    ) -> None:
        self.name = name
        self.supplier: str = client.supplier
        self.client = client
        self.state_dir = state_dir
        self.overlap = overlap
        self._published: set[str] = set()  # ids already published by this process
        (state_dir / ".sent").mkdir(parents=True, exist_ok=True)

    def _marker(self, message_id: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in message_id)
        return self.state_dir / ".sent" / safe

    def _state(self) -> dict[str, Any]:
        try:
            raw = json.loads((self.state_dir / "state.json").read_text())
        except FileNotFoundError:
            return {"awaiting": [], "since": None}
        if not isinstance(raw, dict):
            raise ConfigError(f"{self.state_dir}/state.json is corrupt; fix it by hand")
        return raw

    def _save(self, state: dict[str, Any]) -> None:
        atomic_write(self.state_dir / "state.json", json.dumps(state, sort_keys=True).encode())

    async def send(self, envelope: Envelope) -> bool:
        marker = self._marker(envelope.id)
        if marker.exists():
            return False
        msg = envelope.data
        if isinstance(msg, PurchaseOrderIssued):
            await self.client.send_purchase_order(msg)  # the portal: same order again is 200
        elif isinstance(msg, PurchaseOrderChanged):
            await self.client.change_purchase_order(msg)
        elif isinstance(msg, PurchaseOrderCancelled):
            await self.client.cancel_purchase_order(msg)
        else:
            raise ConnectorError(f"the portal takes no {type(msg).__name__}", retryable=False)
        state = self._state()
        awaiting = set(state["awaiting"])
        answered = dict(state.get("answered", {}))
        answered.pop(msg.po_number, None)
        if isinstance(msg, PurchaseOrderCancelled):
            awaiting.discard(msg.po_number)
        else:
            awaiting.add(msg.po_number)  # a changed order is acknowledged anew
        self._save({**state, "awaiting": sorted(awaiting), "answered": answered})
        atomic_write(marker, msg.po_number.encode())
        return True

    async def poll(self, publish: Publish) -> int:
        from connectors.supplier_rest.mapping import to_envelope

        state = self._state()
        started = now_utc()
        since = datetime.fromisoformat(state["since"]) if state.get("since") else None
        found: list[CanonicalMessage] = []
        answered: set[str] = set()
        # A supplier may revise its answer for a while after the first (fewer units, a line
        # refused after all): answered orders are asked again every ACK_RECHECK, for
        # ACK_REVISIONS after their first answer. A revision is a new message; the same answer
        # again is one the core has seen.
        rechecked = [
            number
            for number, seen in state.get("answered", {}).items()
            if started - datetime.fromisoformat(seen["checked"]) >= ACK_RECHECK
            and started - datetime.fromisoformat(seen["at"]) < ACK_REVISIONS
        ]
        for number in [*state["awaiting"], *rechecked]:
            try:
                ack = await self.client.acknowledgement(number)
            except ConnectorError as exc:
                if exc.retryable:
                    raise
                log.warning("portal refuses the acknowledgement", po=number, error=str(exc))
                continue
            if ack is not None:
                found.append(ack)
                answered.add(number)
        found += await self.client.shipments(since, rejected=self._set_aside)
        found += await self.client.invoices(since, rejected=self._set_aside)
        found += await self.client.stock(rejected=self._set_aside)
        envelopes = [to_envelope(m, supplier=self.supplier) for m in found]
        fresh = [e for e in envelopes if e.id not in self._published]
        if fresh:
            await publish(fresh)
            if len(self._published) > 100_000:  # forgetting only re-publishes ids the core knows
                self._published.clear()
            self._published.update(e.id for e in fresh)
        # Only after publishing: a crash before this line re-reads (same ids) instead of losing.
        current = self._state()
        kept = {
            number: seen
            for number, seen in current.get("answered", {}).items()
            if started - datetime.fromisoformat(seen["at"]) < ACK_REVISIONS
        }
        for number in rechecked:
            if number in kept:
                kept[number] = {**kept[number], "checked": started.isoformat()}
        for number in answered & set(current["awaiting"]):
            kept[number] = {"at": started.isoformat(), "checked": started.isoformat()}
        self._save(
            {
                **current,
                "awaiting": sorted(set(current["awaiting"]) - answered),
                "answered": kept,
                "since": (started - self.overlap).isoformat(),
            }
        )
        return len(fresh)

    def _set_aside(self, kind: str, payload: Any, reason: str) -> None:
        """A feed item the hub cannot use: kept in `rejected/` with the reason, as the EDI
        exchange keeps a malformed file; the feed goes on with the next item."""
        body = json.dumps(payload, sort_keys=True, default=str)
        name = f"{kind}-{content_id(body)}.json"
        target = self.state_dir / "rejected" / name
        if not target.exists():
            atomic_write(
                target, json.dumps({"reason": reason, "payload": payload}, default=str).encode()
            )
            SUPPLIER_DOCUMENTS.labels(account=self.name, direction="in", outcome="rejected").inc()
            log.error(
                "portal sent what the hub cannot use",
                account=self.name,
                kind=kind,
                reason=reason,
                kept=str(target),
            )

    async def aclose(self) -> None:
        await self.client.aclose()


def _extra(config: AccountConfig, key: str, default: float) -> float:
    try:
        return float(config.extra.get(key, default))
    except (TypeError, ValueError):
        raise ConfigError(f"{key} must be a number") from None


def build_link(
    name: str,
    config: AccountConfig,
    settings: Settings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> SupplierLink:
    """`supplier` (default: the account name) is the supplier id of `hub po supplier` whose
    orders this account sends, and which its documents carry."""
    supplier = str(config.extra.get("supplier") or name)
    # An invoice that states no currency (an 810 without CUR) is in the books' currency unless
    # the account says otherwise: the one the hub orders in by default.
    books = chart_from_config(settings.hub).currency
    if config.connector == "x12":
        from connectors.x12.exchange import x12_exchange_for

        exchange = x12_exchange_for(name, config, supplier=supplier, currency=books)
        return EdiLink(name, "x12", exchange, supplier)
    if config.connector == "edifact":
        from connectors.edifact.exchange import edifact_exchange_for

        exchange = edifact_exchange_for(name, config, supplier=supplier, currency=books)
        return EdiLink(name, "edifact", exchange, supplier)
    from connectors.supplier_rest.client import SupplierPortalClient

    token = config.secret("api_token")
    if not config.api_url or not token:
        raise ConfigError(f"account {name!r}: api_url and api_token are required")
    state = Path(config.path) if config.path else settings.var_dir / "suppliers" / name
    client = SupplierPortalClient(config.api_url, token, supplier=supplier, transport=transport)
    return PortalLink(name, client, state)


class SupplierWorker:
    def __init__(
        self,
        settings: Settings,
        publisher: KafkaPublisher,
        *,
        only: str | None = None,
        transports: dict[str, Any] | None = None,
    ) -> None:
        self.publisher = publisher
        self.fetch_wait_ms = fetch_max_wait_ms(settings)
        self.links: dict[str, SupplierLink] = {}
        self.intervals: dict[str, float] = {}
        for name, cfg in settings.hub.accounts.items():
            if cfg.connector not in SUPPLIER_CONNECTORS or (only and name != only):
                continue
            self.links[name] = build_link(
                name, cfg, settings, transport=(transports or {}).get(name)
            )
            self.intervals[name] = _extra(cfg, "poll_seconds", 30.0)

    @staticmethod
    def group(name: str) -> str:
        return f"hub-supplier-{name}"

    async def _dead_letter(self, link: SupplierLink, record: Any, error: str) -> None:
        SUPPLIER_DOCUMENTS.labels(account=link.name, direction="out", outcome="refused").inc()
        metrics.DEAD_LETTERS.labels(topic=topics.PURCHASE_ORDERS, reason="refused").inc()
        log.error("supplier refused the order", account=link.name, error=error)
        letter = poison_letter(record, f"{link.name}: {error}", self.group(link.name))
        await self.publisher.send_many([letter])

    async def deliver(self, link: SupplierLink, record: Any) -> None:
        """One record of `hub.purchase-orders.v1` for one supplier account."""
        try:
            env = decode(record.headers, record.value)
        except EnvelopeError as exc:
            log.warning("not a purchase order message; skipped", error=exc.reason)
            return
        if getattr(env.data, "supplier", None) != link.supplier:
            return
        try:
            sent = await link.send(env)
        except EdiError as exc:
            await self._dead_letter(link, record, str(exc))
            return
        except ConnectorError as exc:
            metrics.CONNECTOR_HEALTHY.labels(account=link.name, connector=link.connector).set(
                0 if exc.retryable else 1
            )
            if exc.retryable:
                raise  # the batch is read again: a transient failure loses nothing
            await self._dead_letter(link, record, str(exc))
            return
        outcome = "sent" if sent else "repeat"
        SUPPLIER_DOCUMENTS.labels(account=link.name, direction="out", outcome=outcome).inc()
        metrics.CONNECTOR_HEALTHY.labels(account=link.name, connector=link.connector).set(1)
        log.info("purchase order message", account=link.name, id=env.id, outcome=outcome)

    def subscribe(self, broker: KafkaBroker) -> None:
        for link in self.links.values():
            self._subscribe(broker, link)

    def _subscribe(self, broker: KafkaBroker, link: SupplierLink) -> None:
        async def on_orders(body: list[Any], message: KafkaMessage) -> None:
            for record in message.raw_message:
                await self.deliver(link, record)

        on_orders.__name__ = f"on_orders_{link.name.replace('-', '_')}"
        broker.subscriber(
            topics.PURCHASE_ORDERS,
            group_id=self.group(link.name),
            batch=True,
            max_records=200,
            batch_timeout_ms=50,
            fetch_max_wait_ms=self.fetch_wait_ms,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.NACK_ON_ERROR,
            decoder=raw_body,
        )(on_orders)

    async def poll_once(self, link: SupplierLink) -> int:
        n = await link.poll(self.publisher.publish)
        if n:
            SUPPLIER_DOCUMENTS.labels(account=link.name, direction="in", outcome="published").inc(n)
        return n

    async def _poll_loop(self, link: SupplierLink, stop: asyncio.Event) -> None:
        while not stop.is_set():
            healthy = 1
            try:
                await self.poll_once(link)
            except Exception:
                healthy = 0
                log.exception("supplier poll failed; trying again", account=link.name)
            metrics.CONNECTOR_HEALTHY.labels(account=link.name, connector=link.connector).set(
                healthy
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.intervals[link.name])

    async def run(self, stop: asyncio.Event) -> None:
        """Poll every supplier until `stop` is set, then close the clients."""
        try:
            await asyncio.gather(*(self._poll_loop(link, stop) for link in self.links.values()))
        finally:
            for link in self.links.values():
                with contextlib.suppress(Exception):
                    await link.aclose()
