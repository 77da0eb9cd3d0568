"""Shopify payloads (Admin REST / webhook JSON, API 2024-10) to canonical messages. Pure functions.

Message ids come from the platform's own identities, never from the delivery, so a redelivered
webhook (same `X-Shopify-Event-Id`, new `X-Shopify-Webhook-Id`), a second topic carrying the same
order (orders/create and orders/paid both carry the whole order) and a resync pull of that order
all produce the same ids:

- placed, cancelled, captured: at most once per order → (account, order id, event);
- fulfilled: per fulfillment id; returned / payment refunded: per refund id.

Every `orders/*` topic carries the complete order, so each is mapped as a snapshot: the order as
placed, plus whatever else has already happened to it. The core's inbox drops what it has seen.
Amounts are in the shop currency (`currency`); `presentment_currency` is what the buyer saw.
Refund transactions are in the buyer's currency: they are converted at the refund's own rate.
A line without a SKU (a custom item, a service) is billed as a charge and left out of the stock
messages; gift cards are left out of both. An order of such lines only is placed without lines,
and a fulfilment of them without lines, so that its charges are billed when it is fulfilled.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
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
from schemas.base import CanonicalMessage, minor_unit
from schemas.envelope import Envelope, message_id
from schemas.orders import (
    FulfilledLine,
    OrderCancelled,
    OrderFulfilled,
    OrderLine,
    OrderPlaced,
    OrderReturned,
    ReturnedLine,
)
from schemas.payments import PaymentCaptured, PaymentRefunded

ORDER_TOPICS = frozenset({"orders/create", "orders/paid", "orders/cancelled", "orders/fulfilled"})
TOPICS = ORDER_TOPICS | {"fulfillments/create", "refunds/create"}
PAID_STATUSES = frozenset({"paid", "partially_refunded", "refunded"})
RESTOCK_TYPES = frozenset({"return", "cancel", "legacy_restock"})
# `cancel`: unfulfilled items, back to available; `return`: fulfilled items that came back.
# `no_restock` and `legacy_restock` say nothing about it.
SHIPPED_BY_RESTOCK_TYPE = {"cancel": False, "return": True}
MAX_LINES = 500
ZERO = Decimal(0)
Json = Mapping[str, Any]


def map_webhook(topic: str, payload: Any, account: Account) -> list[Envelope]:
    """Envelopes for one webhook topic; [] for topics the hub does not use."""
    if topic not in TOPICS:
        return []
    body = as_obj(payload, "body")
    if topic in ORDER_TOPICS:
        return map_order(body, account)
    if topic == "fulfillments/create":
        order_id = as_id(req(body, "order_id", "fulfillment"), "fulfillment.order_id")
        env = _fulfillment(body, order_id, account, "fulfillment")
        return [env] if env else []
    order_id = as_id(req(body, "order_id", "refund"), "refund.order_id")
    return _refund(body, order_id, account, None, "refund")


def map_order(order: Json, account: Account) -> list[Envelope]:
    """An order snapshot: placed, then captured / fulfilled / returned / refunded / cancelled."""
    order = as_obj(order, "order")
    order_id = as_id(req(order, "id", "order"), "order.id")
    cur = currency(req(order, "currency", "order"), "order.currency")
    updated = timestamp(order.get("updated_at") or req(order, "created_at", "order"), "updated_at")
    out: list[Envelope] = []
    placed = _placed(order, order_id, cur, account, updated)
    if placed:
        out.append(placed)
    status = order.get("financial_status")
    if status in PAID_STATUSES:
        total = money(order.get("total_price"), "order.total_price")
        if total > 0:
            gateways = as_list(order.get("payment_gateway_names"), "payment_gateway_names")
            msg = build(
                PaymentCaptured,
                "order",
                order_key=account.order_key(order_id),
                account=account.name,
                amount=total,
                currency=cur,
                gateway=str(gateways[0])[:64] if gateways else "",
                payment_id=f"{order_id}-paid",
                captured_at=timestamp(
                    order.get("processed_at") or order["created_at"], "processed_at"
                ),
            )
            out.append(_env(account, (order_id, "paid"), msg, updated))
    for i, f in enumerate(as_list(order.get("fulfillments"), "order.fulfillments")):
        env = _fulfillment(as_obj(f, f"fulfillments[{i}]"), order_id, account, f"fulfillments[{i}]")
        if env:
            out.append(env)
    for i, r in enumerate(as_list(order.get("refunds"), "order.refunds")):
        out.extend(_refund(as_obj(r, f"refunds[{i}]"), order_id, account, cur, f"refunds[{i}]"))
    if order.get("cancelled_at"):
        cancelled = build(
            OrderCancelled,
            "order",
            order_key=account.order_key(order_id),
            account=account.name,
            channel=account.config.channel,
            cancelled_at=timestamp(order["cancelled_at"], "order.cancelled_at"),
            reason=str(order.get("cancel_reason") or "other")[:64],
        )
        out.append(_env(account, (order_id, "cancelled"), cancelled, updated))
    return out


def _shipping(order: Json) -> tuple[Decimal, Decimal]:
    """(shipping charged after its discounts, its tax) from the shipping lines. A line's `price`
    is before discounts; its `discount_allocations` hold every discount applied to it (a free
    shipping code included), `tax_lines` its tax. `total_shipping_price_set` (before discounts,
    no tax) only where an order has no shipping lines to read."""
    lines = as_list(order.get("shipping_lines"), "order.shipping_lines")
    if not lines:
        shipping_set = order.get("total_shipping_price_set")
        if isinstance(shipping_set, Mapping) and isinstance(
            shipping_set.get("shop_money"), Mapping
        ):
            return money(shipping_set["shop_money"].get("amount"), "total_shipping_price_set"), ZERO
        return ZERO, ZERO
    charged = tax = ZERO
    for i, raw in enumerate(lines):
        where = f"shipping_lines[{i}]"
        line = as_obj(raw, where)
        price = money(line.get("price"), f"{where}.price")
        allocations = as_list(line.get("discount_allocations"), f"{where}.discount_allocations")
        discount = sum(
            (money(as_obj(a, where).get("amount"), f"{where}.discount") for a in allocations),
            ZERO,
        )
        charged += max(price - discount, ZERO)
        tax += sum(
            (
                money(as_obj(t, where).get("price"), f"{where}.tax_lines.price")
                for t in as_list(line.get("tax_lines"), f"{where}.tax_lines")
            ),
            ZERO,
        )
    return charged, tax


def order_modified_at(order: Json) -> datetime:
    """The order's modification time (what staleness is judged on)."""
    return timestamp(order.get("updated_at") or order.get("created_at"), "order.updated_at")


# --- pieces ------------------------------------------------------------------------------------


def _placed(
    order: Json, order_id: str, cur: str, account: Account, updated: datetime
) -> Envelope | None:
    items = as_list(req(order, "line_items", "order"), "order.line_items")
    if len(items) > MAX_LINES:
        raise MalformedPayload(f"order has {len(items)} line items, more than {MAX_LINES}")
    lines = []
    charges = charges_tax = ZERO
    sold = False  # anything but gift cards: goods, custom items, services
    for i, raw in enumerate(items):
        item = as_obj(raw, f"line_items[{i}]")
        if item.get("gift_card") is True:
            continue  # a gift card is not stock
        sold = True
        where = _line_name(i, item)
        price = money(item.get("price"), f"{where}.price")
        allocations = as_list(item.get("discount_allocations"), f"{where}.discount_allocations")
        if allocations:
            discount = sum(
                (money(as_obj(a, where).get("amount"), f"{where}.discount") for a in allocations),
                Decimal(0),
            )
        else:
            discount = money(
                item.get("total_discount"), f"{where}.total_discount", default=Decimal(0)
            )
        tax = sum(
            (
                money(as_obj(t, where).get("price"), f"{where}.tax_lines.price")
                for t in as_list(item.get("tax_lines"), f"{where}.tax_lines")
            ),
            Decimal(0),
        )
        units = quantity(item.get("quantity"), f"{where}.quantity")
        if not names_goods(item.get("sku")):  # a custom item or a service: a charge
            charges += price * units - discount
            charges_tax += tax
            continue
        lines.append(
            build(
                OrderLine,
                where,
                sku=sku(item.get("sku"), where),
                quantity=units,
                location=account.config.location,
                unit_price=price,
                discount=discount,
                tax=tax,
                line_id=as_id(item["id"], f"{where}.id") if item.get("id") is not None else None,
            )
        )
    if not sold:
        return None  # gift cards only: no sale
    shipping, shipping_tax = _shipping(order)
    if not (lines or charges or charges_tax or shipping or shipping_tax):
        return None  # nothing at all to reserve or bill
    msg = build(
        OrderPlaced,
        "order",
        order_key=account.order_key(order_id),
        account=account.name,
        channel=account.config.channel,
        platform_order_id=order_id,
        placed_at=timestamp(order.get("created_at"), "order.created_at"),
        currency=cur,
        lines=tuple(lines),
        shipping=shipping,
        shipping_tax=shipping_tax,
        charges=charges,
        charges_tax=charges_tax,
        total=money(order.get("total_price"), "order.total_price"),
        taxes_included=bool(order.get("taxes_included", False)),
    )
    return _env(account, (order_id, "placed"), msg, updated)


def _fulfillment(f: Json, order_id: str, account: Account, where: str) -> Envelope | None:
    if f.get("status", "success") != "success":
        return None  # pending, open, cancelled, error, failure: nothing left the warehouse
    fid = as_id(req(f, "id", where), f"{where}.id")
    lines = []
    charges = False  # custom items or services: billed with a first fulfilment
    for i, raw in enumerate(as_list(req(f, "line_items", where), f"{where}.line_items")):
        item = as_obj(raw, f"{where}.line_items[{i}]")
        if item.get("gift_card") is True:
            continue
        if not names_goods(item.get("sku")):
            charges = True
            continue
        lw = f"{where}.{_line_name(i, item)}"
        lines.append(
            build(
                FulfilledLine,
                lw,
                sku=sku(item.get("sku"), lw),
                quantity=quantity(item.get("quantity"), f"{lw}.quantity"),
                location=account.config.location,
            )
        )
    if not (lines or charges):
        return None
    at = timestamp(f.get("created_at") or f.get("updated_at"), f"{where}.created_at")
    msg = build(
        OrderFulfilled,
        where,
        order_key=account.order_key(order_id),
        account=account.name,
        channel=account.config.channel,
        fulfilment_id=fid,
        fulfilled_at=at,
        lines=tuple(lines),
    )
    modified = timestamp(f["updated_at"], f"{where}.updated_at") if f.get("updated_at") else at
    return _env(account, (order_id, "fulfilled", fid), msg, modified)


def _refund(
    r: Json, order_id: str, account: Account, order_currency: str | None, where: str
) -> list[Envelope]:
    rid = as_id(req(r, "id", where), f"{where}.id")
    at = timestamp(r.get("processed_at") or r.get("created_at"), f"{where}.created_at")
    cur = order_currency or _refund_currency(r, where)
    out: list[Envelope] = []
    lines = []
    refund_for_lines = refund_for_charges = Decimal(0)
    for i, raw in enumerate(as_list(r.get("refund_line_items"), f"{where}.refund_line_items")):
        rli = as_obj(raw, f"{where}.refund_line_items[{i}]")
        item = as_obj(req(rli, "line_item", f"refund_line_items[{i}]"), f"refund_line_items[{i}]")
        lw = f"{where}.refund_line_items[{i}]"
        if item.get("gift_card") is True:
            continue
        restock_type = rli.get("restock_type")
        restock = (
            restock_type in RESTOCK_TYPES if restock_type is not None else bool(r.get("restock"))
        )
        amount = money(rli.get("subtotal"), f"{lw}.subtotal", default=Decimal(0))
        amount += money(rli.get("total_tax"), f"{lw}.total_tax", default=Decimal(0))
        if not names_goods(item.get("sku")):
            refund_for_charges += amount  # a charge refunded: no goods come back
            continue
        refund_for_lines += amount
        lines.append(
            build(
                ReturnedLine,
                lw,
                sku=sku(item.get("sku"), f"{lw} (line item {item.get('id')})"),
                quantity=quantity(rli.get("quantity"), f"{lw}.quantity"),
                location=account.config.location,
                restock=restock,
                shipped=SHIPPED_BY_RESTOCK_TYPE.get(str(restock_type)),
            )
        )
    # Money back per currency: with what is still pending, and what went.
    meant_in: dict[str, Decimal] = {}
    refunded_in: dict[str, Decimal] = {}
    gateway = ""
    for i, raw in enumerate(as_list(r.get("transactions"), f"{where}.transactions")):
        t = as_obj(raw, f"{where}.transactions[{i}]")
        if t.get("kind") != "refund" or t.get("status") not in ("success", "pending"):
            continue
        amount = money(t.get("amount"), f"{where}.transactions[{i}].amount")
        paid_in = str(t.get("currency") or cur).upper()
        meant_in[paid_in] = meant_in.get(paid_in, ZERO) + amount
        refunded_in.setdefault(paid_in, ZERO)
        if t.get("status") == "success":
            refunded_in[paid_in] += amount
            gateway = gateway or str(t.get("gateway") or "")[:64]
    meant, refunded, comparable = _in_shop_money(r, cur, meant_in, refunded_in, where)
    goods = max(refund_for_lines, Decimal(0))
    # What goes back beyond the goods (charges, shipping, a goodwill refund) or short of them:
    # the credit note must match the money. A pending transaction counts, so that the same
    # refund seen again once it settled gives the same message. Without money in the shop's
    # currency to compare, the lines' amounts.
    adjustment = meant - goods if meant > 0 and comparable else refund_for_charges
    if lines or goods or adjustment:
        msg = build(
            OrderReturned,
            where,
            order_key=account.order_key(order_id),
            account=account.name,
            channel=account.config.channel,
            return_id=rid,
            returned_at=at,
            lines=tuple(lines),
            refund=goods,
            adjustment=adjustment,
            currency=cur,
        )
        out.append(_env(account, (order_id, "returned", rid), msg, at))
    # The cash goes out once, whole: with a transaction still pending, the refund's money is
    # booked when a later copy (a resync, an order topic) shows it settled. Booked part way, the
    # rest would come under the same id, which the core drops as a repeat.
    if refunded > 0 and refunded == meant:
        refund_msg = build(
            PaymentRefunded,
            where,
            order_key=account.order_key(order_id),
            account=account.name,
            amount=refunded,
            currency=cur,
            gateway=gateway,
            refund_id=rid,
            refunded_at=at,
        )
        out.append(_env(account, (order_id, "refunded", rid), refund_msg, at))
    return out


def _in_shop_money(
    r: Json,
    cur: str,
    meant_in: Mapping[str, Decimal],
    refunded_in: Mapping[str, Decimal],
    where: str,
) -> tuple[Decimal, Decimal, bool]:
    """The money back (meant, with what is pending; and refunded) in the shop's currency, and
    whether it could all be had in it. A multi-currency order's refund transactions are in the
    buyer's currency: they are converted at the refund's own rate, from the amounts Shopify
    gives in both currencies (`*_set`: the lines, their tax, shipping, adjustments). When the
    money back is exactly the refund's lines and shipping, it is their shop amount, with no
    rounding; otherwise it is rounded to the shop currency's minor unit. Money in a currency
    the refund gives no amounts in is taken at its figure, as before, and not comparable."""
    meant = refunded = ZERO
    comparable = True
    for paid_in, amount in meant_in.items():
        went = refunded_in[paid_in]
        if paid_in == cur:
            meant, refunded = meant + amount, refunded + went
            continue
        totals = _both_currencies(r, cur, paid_in, where)
        if totals is None:
            comparable = False
            meant, refunded = meant + amount, refunded + went
            continue
        exact_shop, exact_paid, shop, paid = totals
        rate = (shop, paid, cur, paid_in)
        in_shop = exact_shop if amount == exact_paid else _converted(amount, rate, where)
        meant += in_shop
        refunded += in_shop if went == amount else _converted(went, rate, where)
    return meant, refunded, comparable


def _converted(x: Decimal, rate: tuple[Decimal, Decimal, str, str], where: str) -> Decimal:
    """`x` in the shop's currency, at the rate of (shop amount, paid amount, shop currency,
    paid currency), to the shop currency's minor unit."""
    shop, paid, cur, paid_in = rate
    try:
        return (x * shop / paid).quantize(minor_unit(cur), rounding=ROUND_HALF_UP)
    except InvalidOperation:  # amounts so far apart that the result has more digits than kept
        raise MalformedPayload(
            f"{where}: its amounts in {cur} and {paid_in} give no usable exchange rate"
        ) from None


# A refund's amounts Shopify gives in both currencies (`*_set`): (part, fields, whether money
# back that is exactly their sum takes their shop amount). Adjustments set the rate only.
_MONEY_SETS = (
    ("refund_line_items", ("subtotal_set", "total_tax_set"), True),
    ("refund_shipping_lines", ("subtotal_amount_set", "tax_amount_set"), True),
    ("order_adjustments", ("amount_set", "tax_amount_set"), False),
)


def _money_sets(r: Json, where: str) -> Iterator[tuple[str, Json, Json | None, bool]]:
    """(where, shop money, presentment money if given, exact) of each such amount."""
    for part, fields, exact in _MONEY_SETS:
        for i, raw in enumerate(as_list(r.get(part), f"{where}.{part}")):
            for field in fields:
                both = raw.get(field) if isinstance(raw, Mapping) else None
                s = both.get("shop_money") if isinstance(both, Mapping) else None
                p = both.get("presentment_money") if isinstance(both, Mapping) else None
                if isinstance(s, Mapping):
                    presented = p if isinstance(p, Mapping) else None
                    yield f"{where}.{part}[{i}].{field}", s, presented, exact


def _both_currencies(
    r: Json, shop_currency: str, paid_in: str, where: str
) -> tuple[Decimal, Decimal, Decimal, Decimal] | None:
    """Sums of the refund's amounts given in the shop's currency and in `paid_in`: (shop and
    paid sums of its lines and its shipping lines, with their tax; shop and paid sums of every
    amount, adjustments too, by size), or None if it gives no amount in `paid_in`."""
    exact_shop = exact_paid = shop = paid = ZERO
    for fw, s, p, exact in _money_sets(r, where):
        if p is None or s.get("currency_code") != shop_currency:
            continue
        if p.get("currency_code") != paid_in:
            continue
        s_amount = money(s.get("amount"), f"{fw}.shop_money.amount")
        p_amount = money(p.get("amount"), f"{fw}.presentment_money.amount")
        shop, paid = shop + abs(s_amount), paid + abs(p_amount)
        if exact:
            exact_shop, exact_paid = exact_shop + s_amount, exact_paid + p_amount
    return (exact_shop, exact_paid, shop, paid) if paid > 0 and shop > 0 else None


def _refund_currency(r: Json, where: str) -> str:
    """The shop's currency, from the first amount the refund gives in it (its lines, shipping
    lines or adjustments), else its transactions' (a refund of a shop in one currency)."""
    for fw, s, _, _ in _money_sets(r, where):
        if s.get("currency_code"):
            return currency(s["currency_code"], f"{fw}.shop_money.currency_code")
    for raw in as_list(r.get("transactions"), f"{where}.transactions"):
        if isinstance(raw, Mapping) and raw.get("currency"):
            return currency(raw["currency"], f"{where}.transactions.currency")
    raise MalformedPayload(f"{where} names no currency")


def _line_name(i: int, item: Json) -> str:
    return f"line_items[{i}]" + (f" (id {item['id']})" if item.get("id") is not None else "")


def _env(account: Account, parts: tuple[str, ...], msg: CanonicalMessage, at: datetime) -> Envelope:
    return Envelope(id=message_id(account.source, *parts), source=account.source, data=msg, time=at)
