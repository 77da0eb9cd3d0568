"""Property, through the real entry point and the real ledger: any interleaving of receipts,
orders, fulfilments, returns, payments, refunds and stocktakes — redelivered, out of order —
leaves books whose every check passes: each voucher balances, none is booked twice, inventory
equals Σ on_hand × average cost, receivables equal billed − paid, the trial balance nets to zero.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from hub.finance import billing, costing, events, ledger
from hub.finance.chart import CN_SMALL_BUSINESS
from hub.finance.tables import OrderFinance, OrderLinePrice, VoucherLineRow, VoucherRow
from hub.store.db import make_engine, session_factory
from hub.store.migrate import upgrade
from hub.store.models import ProcessedMessage, Stock
from schemas.base import CanonicalMessage
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
from schemas.stock import GoodsReceived, StockCounted

pytestmark = pytest.mark.integration
CHART = CN_SMALL_BUSINESS
SKUS = ["TEE", "MUG"]
ORDERS = ["acme:1", "acme:2", "shop:7"]
T = datetime(2026, 11, 22, tzinfo=UTC)
D = Decimal

price = st.decimals(min_value=D("0.01"), max_value=D("99.99"), places=2)
cost = st.decimals(min_value=D("0"), max_value=D("60"), places=4)
qty = st.integers(1, 6)
ref = st.integers(1, 5).map(str)


def placed(
    order: str,
    lines: list[tuple[str, int, Decimal, Decimal]],
    ship: Decimal,
    inc: bool,
    charge: Decimal = D(0),
):
    # Shipping taxed at 13% when there is any; a charge (a line without a SKU, a fee, negative
    # for a fee that is a discount) at 6%.
    return OrderPlaced(
        order_key=order,
        account=order.split(":")[0],
        channel="online",
        platform_order_id=order.split(":")[1],
        placed_at=T,
        currency="CNY",
        lines=tuple(
            OrderLine(sku=s, quantity=q, unit_price=p, tax=costing.round_amount(p * q * t, "CNY"))
            for s, q, p, t in lines
        ),
        shipping=ship,
        shipping_tax=costing.round_amount(ship * D("0.13"), "CNY"),
        charges=charge,
        charges_tax=costing.round_amount(charge * D("0.06"), "CNY"),
        total=D(0),
        taxes_included=inc,
    )


messages = st.one_of(
    st.builds(
        lambda s, r, q, c: GoodsReceived(
            sku=s, quantity=q, unit_cost=c, receipt_id=f"GRN-{r}", received_at=T
        ),
        st.sampled_from(SKUS),
        ref,
        qty,
        cost,
    ),
    st.builds(
        placed,
        st.sampled_from(ORDERS),
        st.lists(
            st.tuples(st.sampled_from(SKUS), qty, price, st.sampled_from([D("0"), D("0.13")])),
            min_size=1,
            max_size=2,
        ),
        st.sampled_from([D(0), D("8.00")]),
        st.booleans(),
        st.sampled_from([D(0), D("5.30"), D("-2.00")]),
    ),
    st.builds(
        lambda o, r, s, q: OrderFulfilled(
            order_key=o,
            account="a",
            channel="online",
            fulfilment_id=f"F{r}",
            fulfilled_at=T,
            lines=(FulfilledLine(sku=s, quantity=q),),
        ),
        st.sampled_from(ORDERS),
        ref,
        st.sampled_from(SKUS),
        qty,
    ),
    st.builds(
        lambda o, r, s, q, restock, amount, goods, adjustment: OrderReturned(
            order_key=o,
            account="a",
            channel="online",
            return_id=f"R{r}",
            returned_at=T,
            # without lines: a refund of no goods (shipping, goodwill)
            lines=(ReturnedLine(sku=s, quantity=q, restock=restock),) if goods else (),
            refund=amount if goods else D(0),
            adjustment=adjustment,
        ),
        st.sampled_from(ORDERS),
        ref,
        st.sampled_from(SKUS),
        qty,
        st.booleans(),
        price,
        st.booleans(),
        st.sampled_from([D(0), D("8.00"), D("-3.00")]),
    ),
    st.builds(
        lambda o, r, amount, refund: (
            PaymentRefunded(
                order_key=o,
                account="a",
                amount=amount,
                currency="CNY",
                gateway="alipay",
                refund_id=f"RF{r}",
                refunded_at=T,
            )
            if refund
            else PaymentCaptured(
                order_key=o,
                account="a",
                amount=amount,
                currency="CNY",
                gateway="bank",
                payment_id=f"P{r}",
                captured_at=T + timedelta(hours=20),
            )
        ),
        st.sampled_from(ORDERS),
        ref,
        price,
        st.booleans(),
    ),
    st.builds(
        lambda o: OrderCancelled(order_key=o, account="a", channel="online", cancelled_at=T),
        st.sampled_from(ORDERS),
    ),
    st.builds(
        lambda s, r, q: StockCounted(sku=s, quantity=q, count_id=f"C{r}", counted_at=T),
        st.sampled_from(SKUS),
        ref,
        st.integers(0, 15),
    ),
)


ID_FIELDS = ("receipt_id", "fulfilment_id", "return_id", "payment_id", "refund_id", "count_id")


def identity(msg: CanonicalMessage) -> str:
    """A redelivery is the same message again: same type, same content."""
    return msg.ce_type + msg.model_dump_json()


def numbered(msgs: list[CanonicalMessage]) -> list[CanonicalMessage]:
    """Distinct events get distinct platform ids (as they do on the platforms)."""
    out = []
    for i, msg in enumerate(msgs):
        field = next((f for f in ID_FIELDS if hasattr(msg, f)), None)
        out.append(msg.model_copy(update={field: f"{getattr(msg, field)}-{i}"}) if field else msg)
    return out


async def core(s: AsyncSession, msgs: list[CanonicalMessage]) -> None:
    """The stock side of the core, reduced: an inbox, quantities and averages."""
    inbox: set[str] = set()
    for sku in SKUS:
        s.add(Stock(sku=sku, location="main", on_hand=0, reserved=0, avg_cost=D(0)))
    await s.flush()
    for msg in msgs:
        rows = {(r.sku, r.location): r for r in (await s.execute(select(Stock))).scalars()}
        before = {k: (r.on_hand, D(r.avg_cost)) for k, r in rows.items()}
        vouchers = await events.vouchers_for(s, CHART, msg, before)
        booked = await events.post_all(s, vouchers)
        mid = identity(msg)
        if mid in inbox:
            assert booked == [], f"a redelivered {msg.ce_type} booked again"
            continue
        inbox.add(mid)
        match msg:
            case GoodsReceived():
                r = rows[(msg.sku, "main")]
                r.avg_cost = costing.receive(r.on_hand, D(r.avg_cost), msg.quantity, msg.unit_cost)
                r.on_hand += msg.quantity
            case OrderFulfilled():
                for ln in msg.lines:
                    rows[(ln.sku, "main")].on_hand -= ln.quantity
            case OrderReturned():
                costs = {
                    (ln.sku, ln.location): ln.unit_cost
                    for ln in await billing.return_lines(s, CHART, msg)
                }
                for ln in msg.lines:
                    if ln.restock:
                        r = rows[(ln.sku, "main")]
                        c = costs[(ln.sku, "main")]
                        c = D(r.avg_cost) if c is None else c
                        r.avg_cost = costing.receive(r.on_hand, D(r.avg_cost), ln.quantity, c)
                        r.on_hand += ln.quantity
            case StockCounted():
                rows[(msg.sku, "main")].on_hand = msg.quantity
        await s.flush()


@st.composite
def streams(draw: Any) -> list[CanonicalMessage]:
    msgs = numbered(draw(st.lists(messages, max_size=25)))
    for i in draw(st.lists(st.integers(0, 100), max_size=6)):
        if msgs:
            msgs.insert(draw(st.integers(0, len(msgs))), msgs[i % len(msgs)])
    return msgs


async def _clear(engine: AsyncEngine) -> None:
    async with session_factory(engine)() as s, s.begin():
        for model in (VoucherLineRow, VoucherRow, OrderFinance, OrderLinePrice, Stock):
            await s.execute(delete(model))
        await s.execute(delete(ProcessedMessage))


async def _run(engine: AsyncEngine, msgs: list[CanonicalMessage]) -> None:
    await _clear(engine)
    async with session_factory(engine)() as s, s.begin():
        await core(s, msgs)
    async with session_factory(engine)() as s, s.begin():
        problems = await ledger.check_books(s, CHART)
        assert problems == [], [str(p) for p in problems]
        tb = await ledger.trial_balance(s)
        assert sum((r.balance for r in tb), D(0)) == 0


def test_books_hold_for_any_stream_of_messages(db_url: str) -> None:
    backend = db_url.split("+")[0]
    loop = asyncio.new_event_loop()
    try:
        engine = make_engine(db_url)
        loop.run_until_complete(upgrade(engine))

        @settings(
            max_examples=60 if backend == "sqlite" else 30,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        )
        @given(streams())
        def check(msgs: list[CanonicalMessage]) -> None:
            loop.run_until_complete(_run(engine, msgs))

        check()
        loop.run_until_complete(engine.dispose())
    finally:
        loop.close()
