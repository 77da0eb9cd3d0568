"""Voucher rules: one pure function per business event, returning the voucher it books.

Every function takes the chart, the event's identity and amounts, and — for events that move
goods — the stock rows' state *before* the event (`stock[(sku, location)] = (on_hand, avg_cost)`),
and returns a balanced `VoucherIssued`, or None when every amount is zero (nothing to book). A
voucher that would not balance is never issued: `UnbalancedVoucher` is raised instead.

The voucher id is `message_id("voucher", cause_type, cause_ref)`: the same event always gives
the same id, so a redelivered message cannot book twice (the ledger refuses a known id). The date
is the event's instant in the chart's timezone (or `tz`), and the period is that date's month.

Inventory amounts come from `costing.value_change`, so the inventory account always equals
Σ value(on_hand, avg_cost) of the stock rows — provided the caller stores the averages that
`costing` computes (`receive` for receipts, returns and transfers in; unchanged otherwise).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from hub.finance import costing
from hub.finance.chart import Chart, Role
from schemas.envelope import message_id
from schemas.finance import VoucherIssued, VoucherLine

StockKey = tuple[str, str]  # (sku, location)
StockState = tuple[int, Decimal]  # (on_hand, avg_cost) before the event
ZERO = Decimal(0)


class UnbalancedVoucher(ValueError):
    """A voucher whose debits differ from its credits: never issued."""

    def __init__(self, cause: str, debits: Decimal, credits: Decimal) -> None:
        super().__init__(f"{cause}: debits {debits} != credits {credits}")
        self.debits = debits
        self.credits = credits


class CurrencyMismatch(ValueError):
    """An event in a currency other than the books' where the rule needs the books' currency."""


@dataclass(frozen=True, slots=True)
class SaleLine:
    """Units shipped of one SKU with the revenue and output tax they carry (see `billing`).

    A line with quantity 0 is a charge without goods (shipping): revenue and tax only.
    """

    sku: str
    location: str
    quantity: int
    net: Decimal  # revenue, tax excluded
    tax: Decimal  # output VAT


@dataclass(frozen=True, slots=True)
class ReturnLine:
    """Units that came back; restocked ones re-enter inventory at the cost they left with."""

    sku: str
    location: str
    quantity: int
    restock: bool
    unit_cost: Decimal | None = None  # the cost they left with; None: the current average


def voucher_id(cause_type: str, cause_ref: str) -> str:
    return message_id("voucher", cause_type, cause_ref)


def receipt_ref(receipt_id: str, sku: str, location: str, po_number: str | None) -> str:
    """A receipt line's reference: its receipt, SKU and location, and the PO it fills where it
    names one (one receipt filling two POs of a SKU is two lines, as in purchasing)."""
    line = f"{receipt_id}:{sku}:{location}"
    return f"{line}:{po_number}" if po_number else line


def accounting_date(at: datetime, tz: ZoneInfo) -> date:
    if at.tzinfo is None:
        raise ValueError("event times are timezone-aware")
    return at.astimezone(tz).date()


class _Voucher:
    """Collects signed postings (debit positive) and turns them into a checked voucher."""

    def __init__(self, chart: Chart, currency: str) -> None:
        self.chart = chart
        self.currency = currency
        self.lines: list[VoucherLine] = []

    def post(
        self,
        role: Role,
        amount: Decimal,
        memo: str,
        *,
        sku: str | None = None,
        location: str | None = None,
        order_key: str | None = None,
    ) -> None:
        amount = costing.round_amount(amount, self.currency)
        if amount == 0:
            return
        acc = self.chart[role]
        self.lines.append(
            VoucherLine(
                account=acc.code,
                account_name=acc.name,
                debit=amount if amount > 0 else ZERO,
                credit=-amount if amount < 0 else ZERO,
                memo=memo,
                sku=sku,
                location=location,
                order_key=order_key,
            )
        )

    def issue(
        self, cause_type: str, cause_ref: str, at: datetime, tz: str | ZoneInfo | None, memo: str
    ) -> VoucherIssued | None:
        debits = sum((line.debit for line in self.lines), ZERO)
        credits = sum((line.credit for line in self.lines), ZERO)
        if debits != credits:
            raise UnbalancedVoucher(f"{cause_type} {cause_ref}", debits, credits)
        if not self.lines:
            return None
        zone = ZoneInfo(tz) if isinstance(tz, str) else tz or self.chart.zone
        day = accounting_date(at, zone)
        return VoucherIssued(
            voucher_id=voucher_id(cause_type, cause_ref),
            date=day,
            period=day.strftime("%Y-%m"),
            cause_type=cause_type,
            cause_ref=cause_ref,
            currency=self.currency,
            lines=tuple(self.lines),
            memo=memo[:500],
        )


def _books_currency(chart: Chart, currency: str) -> str:
    if currency != chart.currency:
        raise CurrencyMismatch(
            f"the books are kept in {chart.currency}; {currency} needs a conversion first"
        )
    return currency


def _state(
    running: dict[StockKey, StockState], stock: Mapping[StockKey, StockState], key: StockKey
) -> StockState:
    if key not in running:
        if key not in stock:
            raise KeyError(f"no stock state given for {key}")
        on_hand, avg = stock[key]
        running[key] = (on_hand, Decimal(avg))
    return running[key]


def sale_fulfilled(
    chart: Chart,
    *,
    order_key: str,
    fulfilment_id: str,
    at: datetime,
    currency: str,
    lines: Sequence[SaleLine],
    stock: Mapping[StockKey, StockState],
    tz: str | ZoneInfo | None = None,
    dropshipped: Mapping[StockKey, int] | None = None,
) -> VoucherIssued | None:
    """Dr receivable / Cr revenue, Cr output VAT; Dr cost of sales / Cr inventory at average,
    for the units that left the hub's stock (not those in `dropshipped`: the supplier ships
    them from its own, so no inventory of the hub's goes)."""
    v = _Voucher(chart, _books_currency(chart, currency))
    supplied = dict(dropshipped or {})
    running: dict[StockKey, StockState] = {}
    receivable = ZERO
    for line in lines:
        net = costing.round_amount(line.net, currency)
        tax = costing.round_amount(line.tax, currency)
        receivable += net + tax
        if line.quantity == 0:  # a charge without goods (shipping): revenue only
            v.post(Role.REVENUE, -net, f"{line.sku.strip('~')} charge")
            v.post(Role.OUTPUT_VAT, -tax, f"output VAT {line.sku.strip('~')}")
            continue
        v.post(Role.REVENUE, -net, f"sale {line.sku} × {line.quantity}", sku=line.sku)
        v.post(Role.OUTPUT_VAT, -tax, f"output VAT {line.sku}", sku=line.sku)
        key = (line.sku, line.location)
        by_supplier = min(line.quantity, supplied.get(key, 0))
        supplied[key] = supplied.get(key, 0) - by_supplier
        units = line.quantity - by_supplier
        if not units:
            continue
        on_hand, avg = _state(running, stock, key)
        cost = costing.issue_amount(on_hand, avg, units, currency)
        running[key] = (on_hand - units, avg)
        memo = f"cost of {line.sku} × {units} at {avg}"
        v.post(Role.COST_OF_SALES, cost, memo, sku=line.sku, location=line.location)
        v.post(Role.INVENTORY, -cost, memo, sku=line.sku, location=line.location)
    v.post(Role.RECEIVABLE, receivable, f"sale {order_key}", order_key=order_key)
    return v.issue(
        "sale_fulfilled", f"{order_key}:{fulfilment_id}", at, tz, f"fulfilment of {order_key}"
    )


def sale_billed(
    chart: Chart,
    *,
    order_key: str,
    at: datetime,
    currency: str,
    lines: Sequence[SaleLine],
    tz: str | ZoneInfo | None = None,
    cause_type: str = "sale_billed",
) -> VoucherIssued | None:
    """Revenue of units shipped before their order's prices were known (the fulfilment came
    first and booked only their cost): Dr receivable / Cr revenue, Cr output VAT. With
    `cause_type` "order_cancelled": the shipping and charges an order cancelled before it
    shipped keeps (what was not refunded of them)."""
    v = _Voucher(chart, _books_currency(chart, currency))
    receivable = ZERO
    for line in lines:
        net = costing.round_amount(line.net, currency)
        tax = costing.round_amount(line.tax, currency)
        receivable += net + tax
        sku = None if line.quantity == 0 else line.sku
        v.post(Role.REVENUE, -net, f"sale {line.sku} × {line.quantity} billed late", sku=sku)
        v.post(Role.OUTPUT_VAT, -tax, f"output VAT {line.sku}", sku=sku)
    v.post(Role.RECEIVABLE, receivable, f"sale {order_key}", order_key=order_key)
    what = "late billing" if cause_type == "sale_billed" else "charges kept"
    return v.issue(cause_type, order_key, at, tz, f"{what} of {order_key}")


def payment_captured(
    chart: Chart,
    *,
    order_key: str,
    payment_id: str,
    at: datetime,
    amount: Decimal,
    currency: str,
    gateway: str = "",
    tz: str | ZoneInfo | None = None,
) -> VoucherIssued | None:
    """Dr bank (bank gateways) or platform clearing / Cr receivable."""
    v = _Voucher(chart, currency)
    memo = f"payment {payment_id} {gateway}".strip()
    v.post(chart.settlement(gateway), amount, memo)
    v.post(Role.RECEIVABLE, -amount, memo, order_key=order_key)
    return v.issue("payment_captured", f"{order_key}:{payment_id}", at, tz, f"payment {order_key}")


def payment_refunded(
    chart: Chart,
    *,
    order_key: str,
    refund_id: str,
    at: datetime,
    amount: Decimal,
    currency: str,
    gateway: str = "",
    tz: str | ZoneInfo | None = None,
) -> VoucherIssued | None:
    """Money back to the customer: Dr receivable / Cr bank or platform clearing."""
    v = _Voucher(chart, currency)
    memo = f"refund {refund_id} {gateway}".strip()
    v.post(Role.RECEIVABLE, amount, memo, order_key=order_key)
    v.post(chart.settlement(gateway), -amount, memo)
    return v.issue("payment_refunded", f"{order_key}:{refund_id}", at, tz, f"refund {order_key}")


def order_returned(
    chart: Chart,
    *,
    order_key: str,
    return_id: str,
    at: datetime,
    currency: str,
    refund_net: Decimal,
    refund_tax: Decimal,
    lines: Sequence[ReturnLine],
    stock: Mapping[StockKey, StockState],
    tz: str | ZoneInfo | None = None,
) -> VoucherIssued | None:
    """Credit note: Dr revenue, Dr output VAT / Cr receivable; restocked units back into
    inventory at the cost they left with: Dr inventory / Cr cost of sales.

    The caller stores the new average `costing.receive(on_hand, avg, quantity, unit_cost)` for
    each restocked line.
    """
    v = _Voucher(chart, _books_currency(chart, currency))
    net = costing.round_amount(refund_net, currency)
    tax = costing.round_amount(refund_tax, currency)
    v.post(Role.REVENUE, net, f"return {return_id}")
    v.post(Role.OUTPUT_VAT, tax, f"output VAT reversed {return_id}")
    v.post(Role.RECEIVABLE, -(net + tax), f"credit note {return_id}", order_key=order_key)
    running: dict[StockKey, StockState] = {}
    for line in lines:
        if not line.restock:
            continue
        key = (line.sku, line.location)
        on_hand, avg = _state(running, stock, key)
        unit_cost = avg if line.unit_cost is None else line.unit_cost
        new_avg, amount = costing.receipt_amount(on_hand, avg, line.quantity, unit_cost, currency)
        running[key] = (on_hand + line.quantity, new_avg)
        memo = f"restock {line.sku} × {line.quantity} at {unit_cost}"
        v.post(Role.INVENTORY, amount, memo, sku=line.sku, location=line.location)
        v.post(Role.COST_OF_SALES, -amount, memo, sku=line.sku, location=line.location)
    return v.issue("order_returned", f"{order_key}:{return_id}", at, tz, f"return {order_key}")


def goods_received(
    chart: Chart,
    *,
    receipt_id: str,
    sku: str,
    location: str,
    at: datetime,
    currency: str,
    quantity: int,
    unit_cost: Decimal,
    on_hand: int,
    avg_cost: Decimal,
    tz: str | ZoneInfo | None = None,
    po_number: str | None = None,
) -> VoucherIssued | None:
    """Dr inventory (change of value) / Cr goods received not invoiced (quantity × unit cost);
    the difference (rounding of the new average, or units issued before they arrived) goes to
    purchase price variance. The caller stores `costing.receive(on_hand, avg_cost, quantity,
    unit_cost)` as the new average.
    """
    v = _Voucher(chart, _books_currency(chart, currency))
    _, inventory = costing.receipt_amount(on_hand, avg_cost, quantity, unit_cost, currency)
    grni = costing.round_amount(quantity * unit_cost, currency)
    memo = f"receipt {receipt_id} {sku} × {quantity} at {unit_cost}"
    v.post(Role.INVENTORY, inventory, memo, sku=sku, location=location)
    v.post(Role.PRICE_VARIANCE, grni - inventory, f"rounding/variance {receipt_id}", sku=sku)
    v.post(Role.GRNI, -grni, memo, sku=sku)
    ref = receipt_ref(receipt_id, sku, location, po_number)
    return v.issue("goods_received", ref, at, tz, memo)


def supplier_invoice(
    chart: Chart,
    *,
    invoice_id: str,
    supplier: str,
    at: datetime,
    currency: str,
    received_value: Decimal,
    net: Decimal,
    vat: Decimal,
    tz: str | ZoneInfo | None = None,
) -> VoucherIssued | None:
    """Dr GRNI (what was received at receipt cost), Dr input VAT / Cr payable (net + VAT);
    invoice net − received value is the purchase price variance (Dr if dearer, Cr if cheaper).
    """
    v = _Voucher(chart, currency)
    received = costing.round_amount(received_value, currency)
    net = costing.round_amount(net, currency)
    vat = costing.round_amount(vat, currency)
    memo = f"invoice {invoice_id} from {supplier}"
    v.post(Role.GRNI, received, memo)
    v.post(Role.PRICE_VARIANCE, net - received, f"price variance {invoice_id}")
    v.post(Role.INPUT_VAT, vat, f"input VAT {invoice_id}")
    v.post(Role.PAYABLE, -(net + vat), memo)
    return v.issue("supplier_invoice", f"{supplier}:{invoice_id}", at, tz, memo)


def supplier_payment(
    chart: Chart,
    *,
    payment_id: str,
    supplier: str,
    at: datetime,
    currency: str,
    amount: Decimal,
    tz: str | ZoneInfo | None = None,
) -> VoucherIssued | None:
    """Dr payable / Cr bank."""
    v = _Voucher(chart, currency)
    memo = f"payment {payment_id} to {supplier}"
    v.post(Role.PAYABLE, amount, memo)
    v.post(Role.BANK, -amount, memo)
    return v.issue("supplier_payment", f"{supplier}:{payment_id}", at, tz, memo)


def _count_difference(
    chart: Chart,
    *,
    cause_type: str,
    cause_ref: str,
    sku: str,
    location: str,
    at: datetime,
    on_hand: int,
    avg_cost: Decimal,
    delta: int,
    via_suspense: bool,
    tz: str | ZoneInfo | None,
) -> VoucherIssued | None:
    v = _Voucher(chart, chart.currency)
    amount = costing.value_change((on_hand, avg_cost), (on_hand + delta, avg_cost), chart.currency)
    memo = f"{cause_type} {sku}@{location} {delta:+d} at {avg_cost}"
    v.post(Role.INVENTORY, amount, memo, sku=sku, location=location)
    if via_suspense:
        other = Role.STOCKTAKE_SUSPENSE
    else:
        other = Role.STOCKTAKE_GAIN if amount > 0 else Role.STOCKTAKE_LOSS
    v.post(other, -amount, memo, sku=sku)
    return v.issue(cause_type, cause_ref, at, tz, memo)


def count_cause_ref(count_id: str, sku: str, location: str, counted: int) -> str:
    return f"{count_id}:{sku}:{location}:{counted}"


def stock_counted(
    chart: Chart,
    *,
    count_id: str,
    sku: str,
    location: str,
    at: datetime,
    on_hand: int,
    avg_cost: Decimal,
    counted: int,
    moved_since: int = 0,
    via_suspense: bool = False,
    tz: str | ZoneInfo | None = None,
) -> VoucherIssued | None:
    """Stocktake (盘点): a gain Dr inventory / Cr stocktake gain, a loss Dr stocktake loss /
    Cr inventory, at the average cost; `via_suspense` books against 待处理财产损溢 instead,
    pending approval. The average does not change. `moved_since`: units journaled at the stock
    after it was counted, which stay on top of the count. A count line corrected under the same
    count id is a cause of its own.
    """
    return _count_difference(
        chart,
        cause_type="stock_counted",
        cause_ref=count_cause_ref(count_id, sku, location, counted),
        sku=sku,
        location=location,
        at=at,
        on_hand=on_hand,
        avg_cost=avg_cost,
        delta=counted + moved_since - on_hand,
        via_suspense=via_suspense,
        tz=tz,
    )


def stock_adjusted(
    chart: Chart,
    *,
    adjustment_id: str,
    sku: str,
    location: str,
    at: datetime,
    on_hand: int,
    avg_cost: Decimal,
    delta: int,
    via_suspense: bool = False,
    tz: str | ZoneInfo | None = None,
) -> VoucherIssued | None:
    """A signed adjustment (damage, loss, found…), booked like a stocktake difference."""
    return _count_difference(
        chart,
        cause_type="stock_adjusted",
        cause_ref=f"{adjustment_id}:{sku}:{location}",
        sku=sku,
        location=location,
        at=at,
        on_hand=on_hand,
        avg_cost=avg_cost,
        delta=delta,
        via_suspense=via_suspense,
        tz=tz,
    )


def stock_transferred(
    chart: Chart,
    *,
    transfer_id: str,
    sku: str,
    from_location: str,
    to_location: str,
    quantity: int,
    at: datetime,
    stock: Mapping[StockKey, StockState],
    tz: str | ZoneInfo | None = None,
) -> VoucherIssued | None:
    """Units leave one location at its average and arrive at the other as a receipt at that
    cost (the caller stores `costing.receive(on_hand_to, avg_to, quantity, avg_from)` there);
    rounding between the two values goes to purchase price variance.
    """
    cur = chart.currency
    v = _Voucher(chart, cur)
    on_from, avg_from = stock[(sku, from_location)]
    on_to, avg_to = stock[(sku, to_location)]
    out = costing.issue_amount(on_from, avg_from, quantity, cur)
    _, into = costing.receipt_amount(on_to, avg_to, quantity, avg_from, cur)
    memo = f"transfer {transfer_id} {sku} × {quantity} {from_location}→{to_location}"
    v.post(Role.INVENTORY, into, memo, sku=sku, location=to_location)
    v.post(Role.INVENTORY, -out, memo, sku=sku, location=from_location)
    v.post(Role.PRICE_VARIANCE, out - into, f"rounding {transfer_id}", sku=sku)
    return v.issue("stock_transferred", f"{transfer_id}:{sku}", at, tz, memo)
