"""Property: any sequence of receipts, sales, returns, payments and stocktakes — with duplicates —
books vouchers that each balance, never issues a voucher id twice, keeps the inventory account
equal to Σ on_hand × average cost (rounded per row) and receivables equal to billed − paid.

The stock side is a small in-memory model of what the core does, using the costing functions.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.finance import costing, rules
from hub.finance.chart import CN_SMALL_BUSINESS, Role
from schemas.finance import VoucherIssued

CHART = CN_SMALL_BUSINESS
CUR = "CNY"
SKUS = ["TEE", "MUG", "CAP"]
ORDERS = ["acme:1", "acme:2", "acme:3", "shop:9"]
T0 = datetime(2026, 11, 1, tzinfo=UTC)

money = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("500"), places=2)
cost = st.decimals(min_value=Decimal("0"), max_value=Decimal("99.9999"), places=4)
qty = st.integers(min_value=1, max_value=20)

receipt = st.tuples(st.just("receipt"), st.sampled_from(SKUS), qty, cost)
sale = st.tuples(st.just("sale"), st.sampled_from(ORDERS), st.sampled_from(SKUS), qty, money)
ret = st.tuples(
    st.just("return"), st.sampled_from(ORDERS), st.sampled_from(SKUS), qty, st.booleans()
)
payment = st.tuples(st.just("payment"), st.sampled_from(ORDERS), money, st.booleans())
count = st.tuples(st.just("count"), st.sampled_from(SKUS), st.integers(0, 40))


@st.composite
def event_streams(draw: Any) -> list[tuple[int, tuple[Any, ...]]]:
    events = draw(st.lists(st.one_of(receipt, sale, ret, payment, count), max_size=40))
    numbered = list(enumerate(events))
    if numbered:
        dupes = draw(st.lists(st.integers(0, len(numbered) - 1), max_size=10))
        for i in dupes:
            at = draw(st.integers(0, len(numbered)))
            numbered.insert(at, numbered[i] if i < len(numbered) else numbered[0])
    return numbered


@dataclass
class Hub:
    """What the core keeps: stock rows, an inbox, the books, and what it knows of each order."""

    stock: dict[tuple[str, str], tuple[int, Decimal]] = field(
        default_factory=lambda: {(s, "main"): (0, Decimal(0)) for s in SKUS}
    )
    inbox: set[int] = field(default_factory=set)
    vouchers: dict[str, VoucherIssued] = field(default_factory=dict)
    sold: dict[tuple[str, str], list[tuple[int, Decimal, Decimal]]] = field(
        default_factory=lambda: defaultdict(list)
    )  # (order, sku) -> [(units, unit cost at sale, unit price)]
    billed: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    paid: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))

    def book(self, v: VoucherIssued | None) -> None:
        if v is None:
            return
        assert v.voucher_id not in self.vouchers, f"voucher {v.voucher_id} issued twice"
        self.vouchers[v.voucher_id] = v

    def handle(self, n: int, ev: tuple[Any, ...]) -> None:
        if n in self.inbox:  # a redelivery: the core's inbox refuses it
            return
        self.inbox.add(n)
        at = T0 + timedelta(hours=n)
        kind = ev[0]
        if kind == "receipt":
            _, sku, q, unit_cost = ev
            on_hand, avg = self.stock[(sku, "main")]
            self.book(
                rules.goods_received(
                    CHART,
                    receipt_id=f"GRN-{n}",
                    sku=sku,
                    location="main",
                    at=at,
                    currency=CUR,
                    quantity=q,
                    unit_cost=unit_cost,
                    on_hand=on_hand,
                    avg_cost=avg,
                )
            )
            self.stock[(sku, "main")] = (on_hand + q, costing.receive(on_hand, avg, q, unit_cost))
        elif kind == "sale":
            _, order, sku, q, price = ev
            net = price * q
            tax = costing.round_amount(net * Decimal("0.13"), CUR)
            on_hand, avg = self.stock[(sku, "main")]
            self.book(
                rules.sale_fulfilled(
                    CHART,
                    order_key=order,
                    fulfilment_id=f"F{n}",
                    at=at,
                    currency=CUR,
                    lines=[rules.SaleLine(sku, "main", q, net, tax)],
                    stock=self.stock,
                )
            )
            self.stock[(sku, "main")] = (on_hand - q, costing.issue(on_hand, avg, q))
            self.sold[(order, sku)].append((q, avg, price))
            self.billed[order] += net + tax
        elif kind == "return":
            _, order, sku, q, restock = ev
            lots = self.sold[(order, sku)]
            if not lots:
                return
            units, unit_cost, price = lots[-1]
            q = min(q, units)
            lots[-1] = (units - q, unit_cost, price)
            if units - q == 0:
                lots.pop()
            net = price * q
            tax = costing.round_amount(net * Decimal("0.13"), CUR)
            on_hand, avg = self.stock[(sku, "main")]
            self.book(
                rules.order_returned(
                    CHART,
                    order_key=order,
                    return_id=f"R{n}",
                    at=at,
                    currency=CUR,
                    refund_net=net,
                    refund_tax=tax,
                    lines=[rules.ReturnLine(sku, "main", q, restock, unit_cost)],
                    stock=self.stock,
                )
            )
            if restock:
                self.stock[(sku, "main")] = (
                    on_hand + q,
                    costing.receive(on_hand, avg, q, unit_cost),
                )
            self.billed[order] -= net + tax
        elif kind == "payment":
            _, order, amount, refund = ev
            make = rules.payment_refunded if refund else rules.payment_captured
            ident = {"refund_id": f"RF{n}"} if refund else {"payment_id": f"P{n}"}
            self.book(
                make(
                    CHART,
                    order_key=order,
                    at=at,
                    amount=amount,
                    currency=CUR,
                    gateway="alipay",
                    **ident,  # type: ignore[arg-type]
                )
            )
            self.paid[order] += -amount if refund else amount
        elif kind == "count":
            _, sku, counted = ev
            on_hand, avg = self.stock[(sku, "main")]
            self.book(
                rules.stock_counted(
                    CHART,
                    count_id=f"C{n}",
                    sku=sku,
                    location="main",
                    at=at,
                    on_hand=on_hand,
                    avg_cost=avg,
                    counted=counted,
                )
            )
            self.stock[(sku, "main")] = (counted, avg)


def balance(h: Hub, role: Role) -> Decimal:
    code = CHART[role].code
    return sum(
        (
            line.debit - line.credit
            for v in h.vouchers.values()
            for line in v.lines
            if line.account == code
        ),
        Decimal(0),
    )


@settings(max_examples=300, deadline=None)
@given(event_streams())
def test_books_follow_the_warehouse_and_the_orders(
    stream: list[tuple[int, tuple[Any, ...]]],
) -> None:
    h = Hub()
    for n, ev in stream:
        h.handle(n, ev)
    for v in h.vouchers.values():
        assert sum(line.debit for line in v.lines) == sum(line.credit for line in v.lines)
        assert all((line.debit > 0) != (line.credit > 0) for line in v.lines)
    valuation = sum(
        (costing.value(on_hand, avg, CUR) for on_hand, avg in h.stock.values()), Decimal(0)
    )
    assert balance(h, Role.INVENTORY) == valuation
    receivable = sum(h.billed.values(), Decimal(0)) - sum(h.paid.values(), Decimal(0))
    assert balance(h, Role.RECEIVABLE) == receivable
    # the trial balance sums to zero
    total = sum(
        (line.debit - line.credit for v in h.vouchers.values() for line in v.lines), Decimal(0)
    )
    assert total == 0


@settings(max_examples=100, deadline=None)
@given(event_streams())
def test_a_redelivered_event_maps_to_the_voucher_id_it_had(
    stream: list[tuple[int, tuple[Any, ...]]],
) -> None:
    """Even without the inbox, a duplicate event names the same voucher: the ledger refuses it."""
    first = Hub()
    for n, ev in stream:
        first.handle(n, ev)
    again = Hub()
    for n, ev in stream:
        again.handle(n, ev)
    assert set(first.vouchers) == set(again.vouchers)
