"""Generic webhook bodies to canonical messages through the account's JMESPath field mapping.

The platform's event name (from `mapping.event` or `event_header`) picks a lifecycle event with
`mapping.events`; ids come from (account, order id, lifecycle event), so a redelivery maps to the
same message id. `mapping.modified_at`, when given, becomes `Envelope.time` (the staleness clock).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from connectors.base import (
    Account,
    as_id,
    as_list,
    build,
    currency,
    money,
    quantity,
    sku,
    timestamp,
)
from connectors.errors import MalformedPayload
from connectors.generic.config import GenericSettings, settings
from schemas.base import CanonicalMessage
from schemas.envelope import Envelope, message_id
from schemas.orders import (
    FulfilledLine,
    OrderCancelled,
    OrderFulfilled,
    OrderLine,
    OrderPlaced,
)
from schemas.payments import PaymentCaptured

MAX_LINES = 500


def map_webhook(
    payload: Any, account: Account, *, event: str | None, now: datetime
) -> list[Envelope]:
    cfg = settings(account)
    name = event if event is not None else cfg.search("event", payload)
    if not isinstance(name, str) or not name:
        raise MalformedPayload("no event type in the delivery")
    kind = cfg.events.get(name)
    if kind is None or kind == "ignore":
        return []
    order_id = as_id(cfg.search("order_id", payload), "order id (mapping.order_id)")
    key = account.order_key(order_id)
    modified = _time(cfg, "modified_at", payload, default=now)
    if kind == "cancelled":
        msg: CanonicalMessage = build(
            OrderCancelled,
            "order",
            order_key=key,
            account=account.name,
            channel=account.config.channel,
            cancelled_at=_time(cfg, "cancelled_at", payload, default=modified),
            reason="cancelled",
        )
        return [_env(account, (order_id, "cancelled"), msg, modified)]
    if kind == "paid":
        msg = build(
            PaymentCaptured,
            "order",
            order_key=key,
            account=account.name,
            amount=money(cfg.search("total", payload), "total (mapping.total)"),
            currency=_currency(cfg, payload),
            payment_id=str(cfg.search("payment_id", payload) or f"{order_id}-paid")[:64],
            captured_at=modified,
        )
        return [_env(account, (order_id, "paid"), msg, modified)]
    lines = _lines(cfg, payload, account)
    if kind == "fulfilled":
        fid = cfg.search("fulfilment_id", payload)
        fulfilment_id = as_id(fid, "fulfilment id") if fid is not None else f"{order_id}-fulfilled"
        msg = build(
            OrderFulfilled,
            "order",
            order_key=key,
            account=account.name,
            channel=account.config.channel,
            fulfilment_id=fulfilment_id,
            fulfilled_at=modified,
            lines=tuple(
                FulfilledLine(sku=ln.sku, quantity=ln.quantity, location=ln.location)
                for ln in lines
            ),
        )
        return [_env(account, (order_id, "fulfilled", fulfilment_id), msg, modified)]
    msg = build(
        OrderPlaced,
        "order",
        order_key=key,
        account=account.name,
        channel=account.config.channel,
        platform_order_id=order_id,
        placed_at=_time(cfg, "placed_at", payload, default=modified),
        currency=_currency(cfg, payload),
        lines=tuple(lines),
        shipping=money(cfg.search("shipping", payload), "shipping", default=Decimal(0)),
        shipping_tax=money(cfg.search("shipping_tax", payload), "shipping_tax", default=Decimal(0)),
        total=money(cfg.search("total", payload), "total (mapping.total)", default=Decimal(0)),
    )
    return [_env(account, (order_id, "placed"), msg, modified)]


def _lines(cfg: GenericSettings, payload: Any, account: Account) -> list[OrderLine]:
    items = as_list(cfg.search("lines", payload), "lines (mapping.lines)")
    if not items:
        raise MalformedPayload("the order has no lines")
    if len(items) > MAX_LINES:
        raise MalformedPayload(f"the order has more than {MAX_LINES} lines")
    out = []
    for i, item in enumerate(items):
        where = f"lines[{i}]"
        if not isinstance(item, Mapping):
            raise MalformedPayload(f"{where} must be an object")
        line_id = cfg.search("line_id", item)
        out.append(
            build(
                OrderLine,
                where,
                sku=sku(cfg.search("line_sku", item), where),
                quantity=quantity(cfg.search("line_quantity", item), f"{where}.quantity"),
                location=account.config.location,
                unit_price=money(
                    cfg.search("line_unit_price", item), f"{where}.price", default=Decimal(0)
                ),
                tax=money(cfg.search("line_tax", item), f"{where}.tax", default=Decimal(0)),
                discount=money(
                    cfg.search("line_discount", item), f"{where}.discount", default=Decimal(0)
                ),
                line_id=as_id(line_id, f"{where}.id") if line_id is not None else None,
            )
        )
    return out


def _time(cfg: GenericSettings, name: str, payload: Any, *, default: datetime) -> datetime:
    value = cfg.search(name, payload)
    return default if value is None else timestamp(value, name)


def _currency(cfg: GenericSettings, payload: Any) -> str:
    value = cfg.search("currency", payload)
    return currency(value if value is not None else cfg.default_currency, "currency")


def _env(account: Account, parts: tuple[str, ...], msg: CanonicalMessage, at: datetime) -> Envelope:
    return Envelope(id=message_id(account.source, *parts), source=account.source, data=msg, time=at)
