"""WooCommerce REST v3 order JSON (also the webhook body) to canonical messages. Pure functions.

WooCommerce has no stable delivery id and no per-event topics: `order.created` and
`order.updated` carry the whole order. Each delivery is mapped as a snapshot and the ids come from
the order's own identities, so duplicates and resync pulls give the same ids:

- placed, paid (`date_paid_gmt` set), completed (shipped): once per order →
  (account, order id, event); cancelled, reopened: once per modification time;
- payment refunded / goods returned: per refund id.

`Envelope.time` is `date_modified_gmt`, the staleness clock. Statuses: pending, processing,
on-hold, completed → placed (completed also fulfilled); cancelled, failed → placed + cancelled;
refunded → placed + refunds, and cancelled too if it never shipped (no `date_completed_gmt`);
trash → as cancelled at its modification time, or as completed if it shipped; checkout-draft →
nothing (WooCommerce holds no stock for it). A pending, processing or on-hold order modified
since it was created is also reopened (the core reserves it again if it had it cancelled: a
failed payment paid on a retry, an order restored from the trash); a cancellation and a
reopening have one id per modification time, so an order can close and open again.
WooCommerce tells of an order moved to the trash only by `order.deleted`, whose body is the
order's id alone: it is not taken, and the order's reservation stays until it is cancelled or
restored. Cancelled at the delivery's arrival, it could be newer than a restore WooCommerce dated
earlier (its deliveries queue), and it would put back on sale the goods of an order that shipped
while its completion was lost. A trash snapshot (the order read from the REST API) is taken:
the resync reads the trash after the orders (`status=trash`, which WooCommerce lists only when
asked), so an open order moved there is cancelled by the next resync.

A line without a SKU (a product kept without one) and the order's fees are billed as charges;
the other lines are reserved as usual. An order of charges only is placed without lines, and
billed when it completes. The order JSON lists refunds only as `{id, reason, total}`; the lines
come from the order-refunds resource (`/orders/{id}/refunds`), mapped by `map_refund`.
WooCommerce does not record whether a refund restocked, so the account's `restock_refunds`
(default true, WooCommerce's own default in the refund form) decides. Nor does the order say
which units a refund took back before shipping: its completion names the order's lines as
placed (`as_placed`), and the core leaves out the units such refunds released.
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
    as_obj,
    build,
    currency,
    money,
    names_goods,
    quantity,
    req,
    sku,
    timestamp,
)
from connectors.errors import MalformedPayload
from schemas.base import CanonicalMessage
from schemas.envelope import Envelope, message_id
from schemas.orders import (
    FulfilledLine,
    OrderCancelled,
    OrderFulfilled,
    OrderLine,
    OrderPlaced,
    OrderReopened,
    OrderReturned,
    ReturnedLine,
)
from schemas.payments import PaymentCaptured, PaymentRefunded

TOPICS = frozenset({"order.created", "order.updated", "order.restored"})
OPEN_STATUSES = frozenset({"pending", "processing", "on-hold", "completed", "refunded"})
# Closed without shipping: what the order held goes back on sale. `failed` is a payment the
# gateway declined; the customer may pay it on a retry, which opens it again. `trash`: moved to
# the trash (unless it shipped), from where it may be restored.
CLOSED_STATUSES = frozenset({"cancelled", "failed", "trash"})
# Statuses an order may come back to after it was closed, still to ship.
REOPEN_STATUSES = frozenset({"pending", "processing", "on-hold"})
MAX_LINES = 500
_SIX = Decimal("0.000001")
Json = Mapping[str, Any]


def map_webhook(topic: str, payload: Any, account: Account) -> list[Envelope]:
    if topic not in TOPICS:
        return []
    return map_order(as_obj(payload, "body"), account)


def modified_at(order: Json) -> datetime:
    """`date_modified_gmt` as aware UTC: the staleness clock of an order."""
    value = order.get("date_modified_gmt") or order.get("date_created_gmt")
    return timestamp(value, "order.date_modified_gmt", naive_is_utc=True)


def map_order(order: Json, account: Account) -> list[Envelope]:
    order = as_obj(order, "order")
    order_id = as_id(req(order, "id", "order"), "order.id")
    status = req(order, "status", "order")
    if not isinstance(status, str):
        raise MalformedPayload("order.status is not a string")
    if status not in CLOSED_STATUSES and status not in OPEN_STATUSES:
        return []
    if status == "trash" and order.get("date_completed_gmt"):
        status = "completed"  # shipped before it went to the trash: nothing left to release
    cur = currency(req(order, "currency", "order"), "order.currency")
    updated = modified_at(order)
    key = account.order_key(order_id)
    out: list[Envelope] = []
    placed = _placed(order, order_id, cur, account, updated)
    if placed is None:
        return []
    out.append(placed)
    assert isinstance(placed.data, OrderPlaced)
    if status in REOPEN_STATUSES and updated > placed.data.placed_at:
        # Open after a change: if the hub had it cancelled (a failed payment paid on a retry,
        # a cancelled order restored), it is reserved again. A no-op for an order never closed.
        out.append(
            _open_change(OrderReopened, "open", order_id, account, updated, reopened_at=updated)
        )
    if order.get("date_paid_gmt"):
        total = money(order.get("total"), "order.total")
        if total > 0:
            paid = build(
                PaymentCaptured,
                "order",
                order_key=key,
                account=account.name,
                amount=total,
                currency=cur,
                gateway=str(order.get("payment_method") or "")[:64],
                payment_id=str(order.get("transaction_id") or f"{order_id}-paid")[:64],
                captured_at=timestamp(order["date_paid_gmt"], "date_paid_gmt", naive_is_utc=True),
            )
            out.append(_env(account, (order_id, "paid"), paid, updated))
    if status == "completed" or order.get("date_completed_gmt"):
        lines = tuple(
            FulfilledLine(sku=line.sku, quantity=line.quantity, location=line.location)
            for line in placed.data.lines
        )
        at = order.get("date_completed_gmt") or order.get("date_modified_gmt")
        fulfilled = build(
            OrderFulfilled,
            "order",
            order_key=key,
            account=account.name,
            channel=account.config.channel,
            fulfilment_id=f"{order_id}-completed",
            fulfilled_at=timestamp(at, "date_completed_gmt", naive_is_utc=True),
            lines=lines,
            # The order's lines, refunded units among them: the core ships the rest.
            as_placed=True,
        )
        out.append(_env(account, (order_id, "fulfilled", "completed"), fulfilled, updated))
    for i, raw in enumerate(as_list(order.get("refunds"), "order.refunds")):
        r = as_obj(raw, f"refunds[{i}]")
        rid = as_id(req(r, "id", f"refunds[{i}]"), f"refunds[{i}].id")
        amount = abs(money(r.get("total"), f"refunds[{i}].total"))
        if amount > 0:
            refunded = build(
                PaymentRefunded,
                f"refunds[{i}]",
                order_key=key,
                account=account.name,
                amount=amount,
                currency=cur,
                gateway=str(order.get("payment_method") or "")[:64],
                refund_id=rid,
                refunded_at=updated,
            )
            out.append(_env(account, (order_id, "refunded", rid), refunded, updated))
    shipped = status == "completed" or bool(order.get("date_completed_gmt"))
    if status in CLOSED_STATUSES or (status == "refunded" and not shipped):
        # Fully refunded before it shipped: it never will, so its reservation must go.
        closed = {"cancelled_at": updated, "reason": status}
        out.append(_open_change(OrderCancelled, "cancelled", order_id, account, updated, **closed))
    return out


def _open_change(
    kind: type[OrderCancelled] | type[OrderReopened],
    event: str,
    order_id: str,
    account: Account,
    at: datetime,
    **fields: Any,
) -> Envelope:
    """A cancellation or a reopening at the order's modification time `at`: one id per time
    (an order can close and open again), the same for every copy of one delivery."""
    msg = build(
        kind,
        "order",
        order_key=account.order_key(order_id),
        account=account.name,
        channel=account.config.channel,
        **fields,
    )
    return _env(account, (order_id, event, at.isoformat()), msg, at)


def map_refund(
    refund: Json, order_id: str, order_currency: str, account: Account
) -> list[Envelope]:
    """Returned lines of one order-refunds resource (`GET /orders/{id}/refunds`)."""
    refund = as_obj(refund, "refund")
    rid = as_id(req(refund, "id", "refund"), "refund.id")
    at = timestamp(refund.get("date_created_gmt"), "refund.date_created_gmt", naive_is_utc=True)
    restock = bool(account.config.extra.get("restock_refunds", True))
    lines = []
    goods = Decimal(0)  # the goods' part of the refund (its lines carry negative amounts)
    for i, raw in enumerate(as_list(refund.get("line_items"), "refund.line_items")):
        item = as_obj(raw, f"refund.line_items[{i}]")
        where = f"refund.line_items[{i}]" + (f" (id {item['id']})" if item.get("id") else "")
        if not names_goods(item.get("sku")):
            continue  # a charge refunded: in the refund's amount, no goods come back
        qty = item.get("quantity")
        if isinstance(qty, int) and not isinstance(qty, bool):
            qty = abs(qty)  # refund lines carry negative quantities
            if qty == 0:
                # Money back on a line, no units (a partial refund of its price): no goods
                # come back, and its amount is credited with the rest.
                continue
        goods -= money(item.get("total"), f"{where}.total", default=Decimal(0))
        goods -= money(item.get("total_tax"), f"{where}.total_tax", default=Decimal(0))
        lines.append(
            build(
                ReturnedLine,
                where,
                sku=sku(item.get("sku"), where),
                quantity=quantity(qty, f"{where}.quantity"),
                location=account.config.location,
                restock=restock,
            )
        )
    amount = abs(money(refund.get("amount"), "refund.amount", default=Decimal(0)))
    goods = max(goods, Decimal(0))
    if not lines and not amount:
        return []
    # The rest of the amount (shipping, fees, lines without a SKU, a refund of no line at all;
    # negative where less than the goods' amount went back) is credited whole: it does not
    # follow whether goods had shipped.
    returned = build(
        OrderReturned,
        "refund",
        order_key=account.order_key(order_id),
        account=account.name,
        channel=account.config.channel,
        return_id=rid,
        returned_at=at,
        lines=tuple(lines),
        refund=goods,
        adjustment=amount - goods,
        currency=currency(order_currency, "order.currency"),
    )
    return [_env(account, (order_id, "returned", rid), returned, at)]


def _placed(
    order: Json, order_id: str, cur: str, account: Account, updated: datetime
) -> Envelope | None:
    items = as_list(req(order, "line_items", "order"), "order.line_items")
    if len(items) > MAX_LINES:
        raise MalformedPayload(f"order has {len(items)} line items, more than {MAX_LINES}")
    lines = []
    charges = charges_tax = Decimal(0)
    for i, raw in enumerate(items):
        item = as_obj(raw, f"line_items[{i}]")
        where = f"line_items[{i}]" + (f" (id {item['id']})" if item.get("id") is not None else "")
        qty = quantity(item.get("quantity"), f"{where}.quantity")
        subtotal = money(item.get("subtotal"), f"{where}.subtotal")
        total = money(item.get("total"), f"{where}.total")
        tax = money(item.get("total_tax"), f"{where}.total_tax", default=Decimal(0))
        if not names_goods(item.get("sku")):  # a product kept without a SKU: a charge
            charges, charges_tax = charges + total, charges_tax + tax
            continue
        lines.append(
            build(
                OrderLine,
                where,
                sku=sku(item.get("sku"), where),
                quantity=qty,
                location=account.config.location,
                unit_price=_unit_price(subtotal, qty),
                discount=max(subtotal - total, Decimal(0)),
                tax=tax,
                line_id=as_id(item["id"], f"{where}.id") if item.get("id") is not None else None,
            )
        )
    for i, raw in enumerate(as_list(order.get("fee_lines"), "order.fee_lines")):
        fee = as_obj(raw, f"fee_lines[{i}]")  # a fee (negative: a discount given as a fee)
        charges += money(fee.get("total"), f"fee_lines[{i}].total", default=Decimal(0))
        charges_tax += money(fee.get("total_tax"), f"fee_lines[{i}].total_tax", default=Decimal(0))
    shipping = money(order.get("shipping_total"), "order.shipping_total", default=Decimal(0))
    shipping_tax = money(order.get("shipping_tax"), "order.shipping_tax", default=Decimal(0))
    if not (lines or charges or charges_tax or shipping or shipping_tax):
        return None  # nothing the hub holds and nothing to bill
    created = order.get("date_created_gmt")
    msg = build(
        OrderPlaced,
        "order",
        order_key=account.order_key(order_id),
        account=account.name,
        channel=account.config.channel,
        platform_order_id=order_id,
        placed_at=timestamp(created, "order.date_created_gmt", naive_is_utc=True),
        currency=cur,
        lines=tuple(lines),
        shipping=shipping,
        shipping_tax=shipping_tax,
        charges=charges,
        charges_tax=charges_tax,
        total=money(order.get("total"), "order.total"),
        # A line's `subtotal` and `total`, and `shipping_total`, exclude tax even when the shop's
        # prices include it (`prices_include_tax`): the tax is always apart, in `*_tax`.
        taxes_included=False,
    )
    return _env(account, (order_id, "placed"), msg, updated)


def _unit_price(subtotal: Decimal, qty: int) -> Decimal:
    unit = subtotal / qty
    exponent = unit.as_tuple().exponent
    return unit.quantize(_SIX) if isinstance(exponent, int) and exponent < -6 else unit


def _env(account: Account, parts: tuple[str, ...], msg: CanonicalMessage, at: datetime) -> Envelope:
    return Envelope(id=message_id(account.source, *parts), source=account.source, data=msg, time=at)
