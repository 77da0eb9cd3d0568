"""Canonical messages → vouchers through `hub.finance.events`, on SQLite and PostgreSQL, with a
small stand-in for the core's stock side. Arrival order does not change the books."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from hub.domain.allocation import Rule
from hub.finance import billing, costing, events, ledger
from hub.finance.chart import CN_SMALL_BUSINESS
from hub.finance.rules import CurrencyMismatch, ReturnLine
from hub.finance.tables import OrderLinePrice, VoucherLineRow, VoucherRow
from hub.store.db import session_factory
from hub.store.models import Movement, ProcessedMessage, Stock
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
from schemas.stock import GoodsReceived, StockCounted

pytestmark = pytest.mark.integration
CHART = CN_SMALL_BUSINESS
T = datetime(2026, 11, 22, 1, 0, tzinfo=UTC)
D = Decimal
ORDER = "acme:1001"

RECEIPT_1 = GoodsReceived(
    sku="TEE", quantity=10, unit_cost=D("10.00"), receipt_id="GRN-1", received_at=T
)
RECEIPT_2 = GoodsReceived(
    sku="TEE", quantity=5, unit_cost=D("13.00"), receipt_id="GRN-2", received_at=T
)
PLACED = OrderPlaced(
    order_key=ORDER,
    account="acme",
    channel="online",
    platform_order_id="1001",
    placed_at=T + timedelta(minutes=1),
    currency="CNY",
    lines=(
        OrderLine(sku="TEE", quantity=3, unit_price=D("33.90"), tax=D("11.70")),
        OrderLine(sku="MUG", quantity=1, unit_price=D("20"), discount=D("2"), tax=D("2.07")),
    ),
    shipping=D("8"),
    total=D("127.70"),
    taxes_included=True,
)
SHIP_1 = OrderFulfilled(
    order_key=ORDER,
    account="acme",
    channel="online",
    fulfilment_id="F1",
    fulfilled_at=T + timedelta(minutes=2),
    lines=(FulfilledLine(sku="TEE", quantity=2),),
)
SHIP_2 = OrderFulfilled(
    order_key=ORDER,
    account="acme",
    channel="online",
    fulfilment_id="F2",
    fulfilled_at=T + timedelta(minutes=3),
    lines=(FulfilledLine(sku="TEE", quantity=1), FulfilledLine(sku="MUG", quantity=1)),
)
PAID = PaymentCaptured(
    order_key=ORDER,
    account="acme",
    amount=D("127.70"),
    currency="CNY",
    gateway="alipay",
    payment_id="P1",
    captured_at=T + timedelta(minutes=1),
)
RETURNED = OrderReturned(
    order_key=ORDER,
    account="acme",
    channel="online",
    return_id="R1",
    returned_at=T + timedelta(days=2),
    lines=(ReturnedLine(sku="TEE", quantity=1, restock=True),),
    refund=D("33.90"),
)
# Every line refunded before anything shipped (119.70, tax included), the shipping not.
UNSHIPPED_GOODS_REFUNDED = RETURNED.model_copy(
    update={
        "lines": (
            ReturnedLine(sku="TEE", quantity=3, restock=True, shipped=False),
            ReturnedLine(sku="MUG", quantity=1, restock=True, shipped=False),
        ),
        "refund": D("119.70"),
    }
)
COUNT = StockCounted(sku="MUG", quantity=2, count_id="C1", counted_at=T)


async def core(engine: AsyncEngine, messages: list[CanonicalMessage]) -> list[str]:
    """What the core does per message, reduced to stock quantities and averages."""
    booked: list[str] = []
    async with session_factory(engine)() as s, s.begin():
        for msg in messages:
            rows = {(r.sku, r.location): r for r in (await s.execute(select(Stock))).scalars()}
            for sku, location in {("TEE", "main"), ("MUG", "main"), *_named(msg)}:
                if (sku, location) not in rows:
                    rows[(sku, location)] = Stock(
                        sku=sku, location=location, on_hand=0, reserved=0, avg_cost=D(0)
                    )
                    s.add(rows[(sku, location)])
            before = {k: (r.on_hand, D(r.avg_cost)) for k, r in rows.items()}
            vouchers = await events.vouchers_for(s, CHART, msg, before)
            booked += [v.voucher_id for v in await events.post_all(s, vouchers)]
            match msg:
                case GoodsReceived():
                    r = rows[(msg.sku, msg.location)]
                    r.avg_cost = costing.receive(
                        r.on_hand, D(r.avg_cost), msg.quantity, msg.unit_cost
                    )
                    r.on_hand += msg.quantity
                case OrderFulfilled():
                    for ln in msg.lines:
                        rows[(ln.sku, ln.location)].on_hand -= ln.quantity
                case OrderReturned():
                    returned = {(ln.sku, ln.location): ln for ln in await _return_costs(s, msg)}
                    for ln in msg.lines:
                        if ln.restock:
                            r = rows[(ln.sku, ln.location)]
                            cost = returned[(ln.sku, ln.location)].unit_cost or D(r.avg_cost)
                            r.avg_cost = costing.receive(
                                r.on_hand, D(r.avg_cost), ln.quantity, cost
                            )
                            r.on_hand += ln.quantity
                case StockCounted():
                    rows[(msg.sku, msg.location)].on_hand = msg.quantity
            await s.flush()
    return booked


def _named(msg: CanonicalMessage) -> set[tuple[str, str]]:
    """The stock rows a message moves (a location other than main among them)."""
    if isinstance(msg, GoodsReceived | StockCounted):
        return {(msg.sku, msg.location)}
    if isinstance(msg, OrderFulfilled | OrderReturned):
        return {(ln.sku, ln.location) for ln in msg.lines}
    return set()


async def _return_costs(s: AsyncSession, msg: OrderReturned) -> list[ReturnLine]:
    return await billing.return_lines(s, CHART, msg)


async def balances(engine: AsyncEngine) -> dict[str, Decimal]:
    async with session_factory(engine)() as s, s.begin():
        assert await ledger.check_books(s, CHART) == []
        return {r.account: r.balance for r in await ledger.trial_balance(s)}


async def test_in_order_books_revenue_tax_shipping_cost_and_payment(engine: AsyncEngine) -> None:
    booked = await core(engine, [RECEIPT_1, PLACED, PAID, SHIP_1, SHIP_2])
    assert len(booked) == 4  # the order itself books nothing: prices only
    tb = await balances(engine)
    # revenue: TEE 3 × 33.90 − 11.70 = 90.00, MUG 18 − 2.07 = 15.93, shipping 8
    assert tb["6001"] == D("-113.93")
    assert tb["222102"] == D("-13.77")
    assert tb["1122"] == 0  # billed 127.70 with shipping, all paid
    assert tb["1012"] == D("127.70")
    assert tb["6401"] == D("30.00")  # 3 TEE at 10.00 (MUG had no cost)


async def test_taxed_shipping_books_its_tax_and_the_payment_clears_the_order(
    engine: AsyncEngine,
) -> None:
    # 9.04 of shipping with 13% VAT inside (the order's prices include tax): 8.00 + 1.04
    placed = PLACED.model_copy(
        update={"shipping": D("9.04"), "shipping_tax": D("1.04"), "total": D("128.74")}
    )
    paid = PAID.model_copy(update={"amount": D("128.74")})
    await core(engine, [RECEIPT_1, placed, paid, SHIP_1, SHIP_2])
    tb = await balances(engine)
    assert tb["6001"] == D("-113.93")  # revenue as without the shipping's tax
    assert tb["222102"] == D("-14.81")  # 13.77 on the goods, 1.04 on shipping
    assert tb["1122"] == 0  # what the customer paid is exactly what was billed


@pytest.mark.parametrize("order_first", [True, False])
async def test_charges_without_goods_are_billed_once_whichever_comes_first(
    engine: AsyncEngine, order_first: bool
) -> None:
    # A custom item of 5.65 with 13% VAT inside (0.65), beside the goods
    placed = PLACED.model_copy(
        update={"charges": D("5.65"), "charges_tax": D("0.65"), "total": D("133.35")}
    )
    paid = PAID.model_copy(update={"amount": D("133.35")})
    flow = [placed, paid, SHIP_1, SHIP_2] if order_first else [SHIP_1, paid, placed, SHIP_2]
    await core(engine, [RECEIPT_1, *flow])
    tb = await balances(engine)
    assert tb["6001"] == D("-113.93") - D("5.00")
    assert tb["222102"] == D("-13.77") - D("0.65")
    assert tb["1122"] == 0


async def test_fulfilment_before_its_order_ends_in_the_same_books(engine: AsyncEngine) -> None:
    booked = await core(engine, [RECEIPT_1, SHIP_1, PAID, PLACED, SHIP_2])
    assert len(booked) == 5  # the order books the revenue of what shipped before it
    late = await balances(engine)
    assert late["6001"] == D("-113.93") and late["222102"] == D("-13.77")
    assert late["1122"] == 0 and late["6401"] == D("30.00") and late["1405"] == D("70.00")


async def test_duplicates_book_nothing_twice(engine: AsyncEngine) -> None:
    first = await core(engine, [RECEIPT_1, PLACED, SHIP_1, PAID])
    again = await core(engine, [RECEIPT_1, PLACED, SHIP_1, PAID])
    assert len(first) == 3 and again == []


async def test_return_restocks_at_the_cost_it_left_with_and_books_still_agree(
    engine: AsyncEngine,
) -> None:
    await core(engine, [RECEIPT_1, PLACED, SHIP_1, SHIP_2, PAID, RECEIPT_2, COUNT, RETURNED])
    tb = await balances(engine)
    # TEE left at 10.00; receipt 2 moved the average to (7×10 + 5×13)/12 = 11.25
    # the returned unit comes back at 10.00: (12×11.25 + 10)/13
    async with session_factory(engine)() as s:
        tee = await s.get(Stock, ("TEE", "main"))
        assert tee is not None and tee.on_hand == 13
        assert D(tee.avg_cost) == costing.receive(12, D("11.25"), 1, D("10.00"))
    assert tb["6401"] == D("20.00")  # 30 sold − 10 back
    assert tb["1122"] == D("-33.90")  # refund credited, money not yet returned
    assert tb["6001"] == D("-113.93") + D("30.00")  # 33.90 at 13% inside: 30.00 + 3.90


async def test_references_of_the_longest_ids_are_stored_and_returns_find_their_cost(
    engine: AsyncEngine,
) -> None:
    """A 200-character order key shipped under 64-character fulfilment ids: each voucher is
    stored whole on both databases (265 characters of reference), and the return finds the
    sale's cost by the order key and its colon at the reference's start."""
    key = "acme:" + "9" * 195
    placed = PLACED.model_copy(update={"order_key": key})
    shipped = [
        SHIP_1.model_copy(update={"order_key": key, "fulfilment_id": "F" * 63 + "1"}),
        SHIP_2.model_copy(update={"order_key": key, "fulfilment_id": "F" * 63 + "2"}),
    ]
    paid = PAID.model_copy(update={"order_key": key, "payment_id": "P" * 64})
    returned = RETURNED.model_copy(update={"order_key": key, "return_id": "R" * 64})
    flow = [RECEIPT_1, placed, *shipped, paid, RECEIPT_2, COUNT, returned]
    assert len(await core(engine, flow)) == 6
    async with session_factory(engine)() as s:
        refs = (await s.execute(select(VoucherRow.cause_ref))).scalars().all()
    assert sorted(len(r) for r in refs if r.startswith(key + ":")) == [265] * 4
    tb = await balances(engine)
    assert tb["6401"] == D("20.00")  # 3 TEE left at 10.00, one came back at 10.00


def _from(msg, location: str):
    lines = tuple(ln.model_copy(update={"location": location}) for ln in msg.lines)
    return msg.model_copy(update={"lines": lines})


EAST_RECEIPT = RECEIPT_2.model_copy(update={"location": "east"})  # 5 TEE at 13.00
# TEE ordered 1 at main and 2 at east, at the same price and rate; all 3 shipped from east.
TEE_AT_BOTH = (
    PLACED.lines[0].model_copy(update={"quantity": 1, "tax": D("3.90")}),
    PLACED.lines[0].model_copy(update={"quantity": 2, "tax": D("7.80"), "location": "east"}),
)
TEE_FROM_EAST = _from(
    SHIP_1.model_copy(update={"lines": (FulfilledLine(sku="TEE", quantity=3),)}), "east"
)


@pytest.mark.parametrize("arrival", ["order first", "shipped first"])
async def test_units_shipped_from_another_warehouse_are_billed_at_the_orders_prices(
    engine: AsyncEngine, arrival: str
) -> None:
    """The order is priced at main; its TEE left from east (the platform moved it there). The
    revenue is the order's all the same and the receivable closes, the cost is east's, and a
    return to main comes back at the cost the units left with."""
    east = RECEIPT_2.model_copy(update={"location": "east", "unit_cost": D("12.00")})
    shipped = _from(SHIP_1, "east")
    sale = [PLACED, PAID, shipped] if arrival == "order first" else [shipped, PLACED, PAID]
    await core(engine, [RECEIPT_1, east, *sale, SHIP_2, RETURNED])
    tb = await balances(engine)
    assert tb["6001"] == D("-113.93") + D("30.00")  # every line billed; the return credited
    assert tb["1122"] == D("-33.90")  # paid whole, the refund not yet sent back
    # cost: 2 TEE from east at 12.00, 1 from main at 10.00; one returned at their 34 / 3
    returned = costing.quantize_cost(D("34.00") / 3)
    assert tb["6401"] == D("34.00") - costing.round_amount(returned, "CNY")


@pytest.mark.parametrize("arrival", ["order first", "shipped first"])
async def test_an_order_with_a_line_at_each_warehouse_bills_every_unit_whichever_ships(
    engine: AsyncEngine, arrival: str
) -> None:
    """TEE ordered 1 at main and 2 at east, all 3 shipped from east: every unit is billed,
    the one beyond east's line on main's, whether the order or the shipment comes first."""
    placed = PLACED.model_copy(update={"lines": (*TEE_AT_BOTH, PLACED.lines[1])})
    mug = SHIP_2.model_copy(update={"lines": (FulfilledLine(sku="MUG", quantity=1),)})
    east = TEE_FROM_EAST
    sale = [placed, PAID, east] if arrival == "order first" else [east, placed, PAID]
    await core(engine, [EAST_RECEIPT, *sale, mug])
    tb = await balances(engine)
    assert tb["6001"] == D("-113.93") and tb["222102"] == D("-13.77")
    assert tb["1122"] == 0  # billed 127.70 with shipping, all paid


@pytest.mark.parametrize("arrival", ["order first", "shipped first"])
@pytest.mark.parametrize("back_to", ["main", "east", "west"])
async def test_a_whole_return_takes_back_exactly_the_cost_booked_wherever_it_comes(
    engine: AsyncEngine, arrival: str, back_to: str
) -> None:
    """TEE ordered 1 at main and 2 at east, all 3 shipped from east (cost 13.00), the order or
    the shipment first; all 3 come back to main, east or a third warehouse: at 13.00 each, so
    the order's cost of sales returns to nothing."""
    placed = PLACED.model_copy(update={"lines": TEE_AT_BOTH, "total": D("109.70")})
    sale = [placed, TEE_FROM_EAST] if arrival == "order first" else [TEE_FROM_EAST, placed]
    back = RETURNED.model_copy(
        update={"lines": (ReturnedLine(sku="TEE", quantity=3, restock=True, location=back_to),)}
    )
    await core(engine, [RECEIPT_1, EAST_RECEIPT, *sale, back])
    tb = await balances(engine)  # the books agree with the stock
    assert tb["6401"] == 0
    async with session_factory(engine)() as s:
        row = await s.get(Stock, ("TEE", back_to))
        assert row is not None
        if back_to == "west":
            assert (row.on_hand, D(row.avg_cost)) == (3, D("13.00"))


async def test_a_product_whose_sku_reads_like_a_charge_is_billed_as_a_product(
    engine: AsyncEngine,
) -> None:
    """A SKU may be "~shipping": one more unit shipped than ordered, from another warehouse,
    does not take the order's shipping charge's row, which is billed as the charge it is."""
    line = OrderLine(sku="~shipping", quantity=1, unit_price=D("5"))
    placed = PLACED.model_copy(
        update={"lines": (line,), "shipping": D("8"), "total": D("13"), "taxes_included": False}
    )
    shipped = _from(
        SHIP_1.model_copy(update={"lines": (FulfilledLine(sku="~shipping", quantity=2),)}), "east"
    )
    await core(engine, [placed, shipped])
    async with session_factory(engine)() as s:
        revenue = (
            await s.execute(
                select(VoucherLineRow.sku, VoucherLineRow.credit_minor).where(
                    VoucherLineRow.account == "6001"
                )
            )
        ).all()
    assert sorted(revenue, key=str) == sorted([("~shipping", 500), (None, 800)], key=str)


async def test_a_foreign_currency_sale_is_refused_before_anything_is_written(
    engine: AsyncEngine,
) -> None:
    usd = PLACED.model_copy(update={"currency": "USD"})
    async with session_factory(engine)() as s, s.begin():
        with pytest.raises(CurrencyMismatch):
            await events.vouchers_for(s, CHART, usd, {})
        assert (await s.execute(select(OrderLinePrice))).scalars().all() == []
        assert (await s.execute(select(ProcessedMessage))).scalars().all() == []


async def test_a_receipt_in_another_currency_comes_in_at_the_average_and_is_flagged(
    engine: AsyncEngine,
) -> None:
    """10 TEE at 10.00 CNY, then 10 at 2.00 USD: the books (CNY) cannot take the second cost as
    it is. The units are in stock at the average, not at a price in the wrong unit, and the
    books check shows the inventory account short of them until they are converted."""
    from hub.core.batch import CoreProcessor
    from tests.builders import records

    usd = RECEIPT_2.model_copy(update={"quantity": 10, "unit_cost": D("2.00"), "currency": "USD"})
    core = CoreProcessor(session_factory(engine), {}, chart=CHART)
    await core.process(records(env(RECEIPT_1, "r1"), env(usd, "r2")))
    async with session_factory(engine)() as s:
        tee = await s.get(Stock, ("TEE", "main"))
        assert tee is not None and (tee.on_hand, D(tee.avg_cost)) == (20, D("10.00"))
        problems = await ledger.check_books(s, CHART)
    assert {(p.check, p.subject) for p in problems} >= {("inventory", "TEE@main")}
    # Into a location with nothing on hand there is no average to take: the receipt's own
    # figure, and the books check reports it all the same.
    first = usd.model_copy(update={"sku": "MUG", "receipt_id": "GRN-USD"})
    await core.process(records(env(first, "r3")))
    async with session_factory(engine)() as s:
        mug = await s.get(Stock, ("MUG", "main"))
        assert mug is not None and mug.on_hand == 10
        problems = await ledger.check_books(s, CHART)
    assert ("inventory", "MUG@main") in {(p.check, p.subject) for p in problems}


async def test_the_core_books_a_whole_batch_as_it_books_one_message_at_a_time(
    engine: AsyncEngine,
) -> None:
    """The core books a batch's vouchers together; a return in the same batch as its sale
    still finds the cost the sale booked, and the books end as the message-by-message run."""
    from hub.core.batch import CoreProcessor
    from tests.builders import records

    msgs = [RECEIPT_1, PLACED, SHIP_1, SHIP_2, PAID, RECEIPT_2, COUNT, RETURNED]
    envs = [
        Envelope(id=message_id("test", m.ce_type, str(i)), source="test", data=m, time=T)
        for i, m in enumerate(msgs)
    ]
    core = CoreProcessor(session_factory(engine), {}, chart=CHART)
    result = await core.process(records(*envs))
    assert result.applied == len(msgs) and result.vouchers > 0
    tb = await balances(engine)
    assert tb["6401"] == D("20.00")
    assert tb["1122"] == D("-33.90")
    assert tb["6001"] == D("-113.93") + D("30.00")
    async with session_factory(engine)() as s:
        tee = await s.get(Stock, ("TEE", "main"))
        assert tee is not None and tee.on_hand == 13
        assert D(tee.avg_cost) == costing.receive(12, D("11.25"), 1, D("10.00"))
    again = await core.process(records(*envs))
    assert again.vouchers == 0 and await balances(engine) == tb


def refunded(amount: Decimal, refund_id: str) -> PaymentRefunded:
    """Money sent back on the order, five minutes after it was placed."""
    return PaymentRefunded(
        order_key=ORDER,
        account="acme",
        amount=amount,
        currency="CNY",
        refund_id=refund_id,
        refunded_at=T + timedelta(minutes=5),
    )


def cancelled(minutes: int) -> OrderCancelled:
    """The order cancelled `minutes` after T."""
    at = T + timedelta(minutes=minutes)
    return OrderCancelled(order_key=ORDER, account="acme", channel="online", cancelled_at=at)


def reopened(minutes: int) -> OrderReopened:
    """The order opened again `minutes` after T."""
    at = T + timedelta(minutes=minutes)
    return OrderReopened(order_key=ORDER, account="acme", channel="online", reopened_at=at)


def env(m: CanonicalMessage, ref: str) -> Envelope:
    """`m` as the core receives it, its id from its type and `ref`."""
    return Envelope(id=message_id("test", m.ce_type, ref), source="test", data=m, time=T)


def keyed(m: CanonicalMessage) -> Envelope:
    """`m` as the core receives it, its id derived from its Kafka key."""
    return Envelope(id=message_id("test", m.ce_type, m.kafka_key()), source="test", data=m)


async def test_a_batch_of_new_orders_is_priced_without_reading_prices_back(
    engine: AsyncEngine,
) -> None:
    """Prices are written with an order's row, in the core's transaction: an order whose row
    the batch created has none to look up. One seen before (shipped before it was placed) is
    looked up, and its shipped units are billed when its prices arrive."""
    from sqlalchemy import event

    from hub.core.batch import CoreProcessor
    from tests.builders import records

    lookups: list[str] = []

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _seen(_conn, _cursor, statement: str, *_: object) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "order_line_prices" in statement:
            lookups.append(statement)

    core = CoreProcessor(session_factory(engine), {}, chart=CHART)
    await core.process(records(keyed(RECEIPT_1), keyed(SHIP_1)))
    lookups.clear()
    late = await core.process(records(keyed(PLACED)))
    assert lookups and late.vouchers == 1  # the two TEE shipped before: revenue booked now

    lookups.clear()
    fresh = PLACED.model_copy(update={"order_key": "acme:1002", "platform_order_id": "1002"})
    result = await core.process(records(keyed(fresh)))
    assert result.applied == 1 and lookups == []
    async with session_factory(engine)() as s:
        priced = (
            (await s.execute(select(OrderLinePrice).where(OrderLinePrice.order_key == "acme:1002")))
            .scalars()
            .all()
        )
    assert sorted((p.sku, p.ordered, p.priced) for p in priced) == sorted(
        [("TEE", 3, True), ("MUG", 1, True), (billing.SHIPPING[0], 1, True)]
    )
    await balances(engine)  # the books check out


async def test_new_orders_prices_are_written_with_the_batch_unless_the_batch_reads_them(
    engine: AsyncEngine,
) -> None:
    """A batch of new orders leaves their price rows to its final writes; a batch that also
    ships one of them writes that order's prices before the shipment bills them."""
    from sqlalchemy import event

    from hub.core.batch import CoreProcessor
    from tests.builders import records

    statements: list[str] = []

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _seen(_conn, _cursor, statement: str, *_: object) -> None:
        text = " ".join(statement.split()).upper()
        for name in ("INSERT INTO ORDER_LINE_PRICES", "INSERT INTO ORDERS", "INSERT INTO VOUCHERS"):
            if text.startswith(name):
                statements.append(name.rsplit(" ", 1)[1].lower())

    core = CoreProcessor(session_factory(engine), {}, chart=CHART)
    await core.process(records(keyed(RECEIPT_1)))
    alone = PLACED.model_copy(update={"order_key": "acme:2001", "platform_order_id": "2001"})
    statements.clear()
    await core.process(records(keyed(alone)))
    assert statements == ["orders", "order_line_prices"]

    shipped = PLACED.model_copy(update={"order_key": "acme:2002", "platform_order_id": "2002"})
    ship = SHIP_1.model_copy(update={"order_key": "acme:2002"})
    statements.clear()
    result = await core.process(records(keyed(shipped), keyed(ship)))
    assert result.vouchers >= 1
    assert statements.index("order_line_prices") < statements.index("vouchers")
    async with session_factory(engine)() as s:
        rows = (await s.execute(select(OrderLinePrice))).scalars().all()
    assert {(p.order_key, p.sku, p.ordered, p.shipped) for p in rows if p.sku == "TEE"} == {
        ("acme:2001", "TEE", 3, 0),
        ("acme:2002", "TEE", 3, 2),
    }
    await balances(engine)  # the books check out


async def test_a_refund_of_no_goods_is_a_credit_note_that_clears_the_money_sent_back(
    engine: AsyncEngine,
) -> None:
    """Shipping refunded with the order's first TEE, then 5.00 of goodwill without goods: each
    credit note matches the money that went back, so the order's receivable ends at 0."""
    from hub.core.batch import CoreProcessor
    from tests.builders import records

    core = CoreProcessor(session_factory(engine), {}, chart=CHART)
    first = [RECEIPT_1, PLACED, PAID, SHIP_1, SHIP_2]
    await core.process(records(*(env(m, str(i)) for i, m in enumerate(first))))
    with_shipping = RETURNED.model_copy(update={"adjustment": D("8")})
    goodwill = RETURNED.model_copy(
        update={"return_id": "R2", "lines": (), "refund": D(0), "adjustment": D("5.00")}
    )
    for rid, credit, amount in (("R1", with_shipping, D("41.90")), ("R2", goodwill, D("5.00"))):
        money_back = PaymentRefunded(
            order_key=ORDER,
            account="acme",
            amount=amount,
            currency="CNY",
            refund_id=rid,
            refunded_at=T + timedelta(days=2),
        )
        await core.process(records(env(credit, rid), env(money_back, rid)))
    tb = await balances(engine)
    assert tb["1122"] == 0
    # 127.70 billed, 46.90 credited: 33.90 of TEE at 13%, 8 + 5 at the order's 13.77 / 127.70
    assert tb["6001"] + tb["222102"] == D("-127.70") + D("46.90")
    assert tb["222102"] == D("-13.77") + D("3.90") + D("1.40")
    async with session_factory(engine)() as s:
        tee = await s.get(Stock, ("TEE", "main"))
        assert tee is not None and tee.on_hand == 8  # 10 − 3 shipped + 1 back; goodwill none


@pytest.mark.parametrize("cancelled", [True, False], ids=["then cancelled", "then shipped"])
async def test_shipping_refunded_before_anything_shipped_is_never_billed(
    engine: AsyncEngine, cancelled: bool
) -> None:
    """The MUG and the shipping refunded before anything shipped: nothing was billed, so no
    credit note; the shipping's 8 lowers what the first fulfilment bills, or, once the rest is
    cancelled too, nothing is billed at all. Either way the receivable ends at 0."""
    from hub.core.batch import CoreProcessor
    from tests.builders import records

    core = CoreProcessor(session_factory(engine), {}, chart=CHART)
    await core.process(records(env(RECEIPT_1, "r"), env(PLACED, "p"), env(PAID, "P1")))
    mug_and_shipping = RETURNED.model_copy(
        update={
            "lines": (ReturnedLine(sku="MUG", quantity=1, restock=True, shipped=False),),
            "refund": D("18"),
            "adjustment": D("8"),
        }
    )
    back = refunded(D("26"), "R1")
    await core.process(records(env(mug_and_shipping, "R1"), env(back, "R1")))
    tb = await balances(engine)
    assert tb.get("6001", 0) == 0 and tb["1122"] == D("-101.70")  # a prepayment, nothing billed
    if cancelled:
        rest = RETURNED.model_copy(
            update={
                "return_id": "R2",
                "lines": (ReturnedLine(sku="TEE", quantity=3, restock=True, shipped=False),),
                "refund": D("101.70"),
            }
        )
        back2 = back.model_copy(update={"refund_id": "R2", "amount": D("101.70")})
        await core.process(records(env(rest, "R2"), env(back2, "R2")))
        tb = await balances(engine)
        assert tb.get("6001", 0) == 0 and tb.get("222102", 0) == 0
    else:
        tee_only = SHIP_1.model_copy(update={"lines": (FulfilledLine(sku="TEE", quantity=3),)})
        await core.process(records(env(tee_only, "F1")))
        tb = await balances(engine)
        # the tees (90.00 + 11.70 VAT) and the shipping (8), less the 8 refunded before it was
        # billed, which is split at the order's rate: the platform does not say its tax
        assert tb["6001"] + tb["222102"] == D("-101.70")
    assert tb["1122"] == 0


async def test_money_kept_from_a_refund_before_shipping_is_revenue_at_once(
    engine: AsyncEngine,
) -> None:
    """An order without shipping refunded whole before it shipped, 10 of its 119.70 kept (a
    cancellation fee): the 10 is revenue at once, and the receivable ends at 0."""
    from hub.core.batch import CoreProcessor
    from tests.builders import records

    placed = PLACED.model_copy(update={"shipping": D(0), "total": D("119.70")})
    paid = PAID.model_copy(update={"amount": D("119.70")})
    core = CoreProcessor(session_factory(engine), {}, chart=CHART)
    await core.process(records(env(RECEIPT_1, "r"), env(placed, "p"), env(paid, "P1")))
    everything = UNSHIPPED_GOODS_REFUNDED.model_copy(
        update={"adjustment": D("-10.00")}  # 109.70 went back
    )
    back = refunded(D("109.70"), "R1")
    await core.process(records(env(everything, "R1"), env(back, "R1")))
    tb = await balances(engine)
    assert tb["1122"] == 0
    assert tb["6001"] + tb.get("222102", 0) == D("-10.00")


@pytest.mark.parametrize("refund_first", [True, False], ids=["refund, cancel", "cancel, refund"])
async def test_an_order_cancelled_before_it_shipped_bills_the_shipping_it_kept(
    engine: AsyncEngine, refund_first: bool
) -> None:
    """The goods refunded (119.70) but not the shipping (8), and the order cancelled before
    anything shipped: the 8 is revenue and the receivable closes, whichever came first."""
    from hub.core.batch import CoreProcessor
    from tests.builders import records

    core = CoreProcessor(session_factory(engine), {}, chart=CHART)
    await core.process(records(env(RECEIPT_1, "r"), env(PLACED, "p"), env(PAID, "P1")))
    goods = UNSHIPPED_GOODS_REFUNDED
    back = refunded(D("119.70"), "R1")
    cancel = cancelled(6)
    steps = [[goods, back], [cancel]] if refund_first else [[cancel], [goods, back]]
    for step in steps:
        await core.process(records(*(env(m, "x") for m in step)))
    tb = await balances(engine)
    assert tb["1122"] == 0
    assert tb["6001"] + tb.get("222102", 0) == D("-8.00")


@pytest.mark.parametrize("paid", [False, True], ids=["never paid", "refunded whole"])
async def test_an_order_cancelled_with_no_money_kept_bills_nothing(
    engine: AsyncEngine, paid: bool
) -> None:
    """Cancelled unpaid, or after all its money went back (WooCommerce's webhook of a refunded
    order says so without the refund's lines): no shipping is billed."""
    from hub.core.batch import CoreProcessor
    from tests.builders import records

    back = refunded(D("127.70"), "R1")
    cancel = cancelled(6)
    money = [PAID, back] if paid else []
    core = CoreProcessor(session_factory(engine), {}, chart=CHART)
    await core.process(records(*(env(m, str(i)) for i, m in enumerate([PLACED, *money, cancel]))))
    tb = await balances(engine)
    assert tb.get("1122", 0) == 0 and tb.get("6001", 0) == 0


@pytest.mark.parametrize("one_batch", [True, False], ids=["one batch", "a batch each"])
async def test_a_refund_before_shipping_puts_back_no_stock_and_no_inventory(
    engine: AsyncEngine, one_batch: bool
) -> None:
    """3 TEE ordered, 1 shipped, then all 3 refunded with restock (Shopify's restock type
    `cancel` for the 2 never shipped): 1 unit comes back, the other 2 only leave the order's
    reservation. The stock and the inventory account agree on 10 units at 10.00, and the credit
    note reverses only what was billed."""
    from hub.core.batch import CoreProcessor
    from tests.builders import records

    placed = PLACED.model_copy(update={"lines": PLACED.lines[:1], "total": D("109.70")})
    shipped = SHIP_1.model_copy(update={"lines": (FulfilledLine(sku="TEE", quantity=1),)})
    refunded = RETURNED.model_copy(
        update={
            "lines": (ReturnedLine(sku="TEE", quantity=3, restock=True),),
            "refund": D("101.70"),
        }
    )
    envs = [keyed(m) for m in (RECEIPT_1, placed, shipped, refunded)]
    core = CoreProcessor(session_factory(engine), {}, chart=CHART)
    for part in [envs] if one_batch else [[e] for e in envs]:
        await core.process(records(*part))
    async with session_factory(engine)() as s:
        tee = await s.get(Stock, ("TEE", "main"))
        assert tee is not None and (tee.on_hand, tee.reserved) == (10, 0)
        assert D(tee.avg_cost) == D("10.00")
    tb = await balances(engine)
    assert tb["1405"] == D("100.00")  # 10 units at 10.00, not 12
    assert tb["6401"] == 0  # the unit sold came back; nothing else left
    # Billed: the shipped unit (30.00 + 3.90 VAT) and the shipping (8.00). The credit note
    # takes back the shipped unit's share of the refund only: the other two were never billed.
    assert tb["6001"] == D("-8.00")
    assert tb.get("222102", 0) == 0
    assert tb["1122"] == D("8.00")


@pytest.mark.parametrize(
    "refund_first", [True, False], ids=["refund, complete", "complete, refund"]
)
async def test_a_completion_as_placed_ships_and_bills_none_of_a_unit_refunded_before(
    engine: AsyncEngine, refund_first: bool
) -> None:
    """WooCommerce: 1 of the 3 TEE refunded (33.90) before the order shipped, then the order
    completed with its lines as placed (`as_placed`). 2 TEE and the MUG left, whichever reached
    the hub first: the stock and the inventory account agree on 8 TEE, and the receivable
    closes on the 93.80 kept."""
    from hub.core.batch import CoreProcessor
    from tests.builders import records

    complete = SHIP_1.model_copy(
        update={
            "lines": (FulfilledLine(sku="TEE", quantity=3), FulfilledLine(sku="MUG", quantity=1)),
            "as_placed": True,
        }
    )
    receipt = GoodsReceived(
        sku="MUG", quantity=5, unit_cost=D(4), receipt_id="GRN-M", received_at=T
    )
    core = CoreProcessor(session_factory(engine), {}, chart=CHART)
    await core.process(
        records(env(RECEIPT_1, "r"), env(receipt, "m"), env(PLACED, "p"), env(PAID, "P1"))
    )
    refund = [env(RETURNED, "R1"), env(refunded(D("33.90"), "R1"), "R1")]
    for part in (
        [refund, [env(complete, "F1")]] if refund_first else [[env(complete, "F1")], refund]
    ):
        await core.process(records(*part))
    async with session_factory(engine)() as s:
        tee = await s.get(Stock, ("TEE", "main"))
        mug = await s.get(Stock, ("MUG", "main"))
        assert tee is not None and (tee.on_hand, tee.reserved) == (8, 0)
        assert mug is not None and (mug.on_hand, mug.reserved) == (4, 0)
    tb = await balances(engine)
    assert tb["1405"] == D("96.00")  # 8 TEE at 10.00 and 4 MUG at 4.00
    assert tb["6401"] == D("24.00")  # 2 TEE and 1 MUG sold
    assert tb["6001"] + tb["222102"] == D("-93.80")
    assert tb["1122"] == 0


async def test_the_core_books_the_cost_of_a_fulfilment_that_arrives_before_its_order(
    engine: AsyncEngine,
) -> None:
    """Each message in a batch of its own, the fulfilment first: its units leave the stock at
    their cost, and the order (3 TEE), when it comes, reserves only the unit not shipped yet."""
    from hub.core.batch import CoreProcessor
    from tests.builders import records

    placed = PLACED.model_copy(update={"lines": PLACED.lines[:1], "total": D("109.70")})
    core = CoreProcessor(session_factory(engine), {}, chart=CHART)
    for m in (RECEIPT_1, SHIP_1, placed):
        await core.process(records(keyed(m)))
    async with session_factory(engine)() as s:
        tee = await s.get(Stock, ("TEE", "main"))
        assert tee is not None and (tee.on_hand, tee.reserved) == (8, 1)
    tb = await balances(engine)
    assert tb["6401"] == D("20.00")  # 2 TEE at 10.00
    assert tb["1405"] == D("80.00")


@pytest.mark.parametrize("arrival", ["order first", "shipped first"])
async def test_the_core_ships_from_another_warehouse_once_in_stock_and_in_the_books(
    engine: AsyncEngine, arrival: str
) -> None:
    """Through the core, each message in a batch of its own: 3 TEE placed at main, 2 shipped
    from east and 1 from main. Each warehouse's stock drops by what left it, nothing stays
    reserved, every unit is billed at the order's prices and the receivable closes."""
    from hub.core.batch import CoreProcessor
    from tests.builders import records

    placed = PLACED.model_copy(update={"lines": PLACED.lines[:1], "total": D("109.70")})
    paid = PAID.model_copy(update={"amount": D("109.70")})
    east = _from(SHIP_1, "east")
    main = SHIP_2.model_copy(update={"lines": SHIP_2.lines[:1]})
    sale = [placed, paid, east, main] if arrival == "order first" else [east, placed, paid, main]
    core = CoreProcessor(session_factory(engine), {}, chart=CHART)
    for n, m in enumerate((RECEIPT_1, EAST_RECEIPT, *sale)):
        # an id of its own: two receipts, and two fulfilments, share their Kafka keys
        await core.process(records(replace(keyed(m), id=message_id("flow", str(n)))))
    async with session_factory(engine)() as s:
        rows = (await s.execute(select(Stock).where(Stock.sku == "TEE"))).scalars()
        assert {r.location: (r.on_hand, r.reserved) for r in rows} == {
            "main": (9, 0),
            "east": (3, 0),
        }
    tb = await balances(engine)
    assert tb["6001"] == D("-98.00")  # TEE 3 × 33.90 − 11.70, and the shipping
    assert tb["1122"] == 0
    assert tb["6401"] == D("36.00")  # 2 at east's 13.00, 1 at main's 10.00


async def test_a_refund_of_a_shipped_and_an_unshipped_line_credits_the_shipped_one_at_its_rate(
    engine: AsyncEngine,
) -> None:
    """TEE (13% VAT) shipped, MUG (no VAT) not; both refunded: the credit note takes back
    TEE's 100.00 + 13.00 exactly, and MUG, never billed, books nothing."""
    from hub.core.batch import CoreProcessor
    from schemas.orders import OrderLine
    from tests.builders import records

    mug = GoodsReceived(
        sku="MUG", quantity=5, unit_cost=D("4.00"), receipt_id="GRN-M", received_at=T
    )
    placed = PLACED.model_copy(
        update={
            "lines": (
                OrderLine(sku="TEE", quantity=1, unit_price=D("113.00"), tax=D("13.00")),
                OrderLine(sku="MUG", quantity=1, unit_price=D("100.00"), tax=D("0")),
            ),
            "shipping": D("0"),
            "total": D("213.00"),
        }
    )
    shipped = SHIP_1.model_copy(update={"lines": (FulfilledLine(sku="TEE", quantity=1),)})
    refunded = RETURNED.model_copy(
        update={
            "lines": (
                ReturnedLine(sku="TEE", quantity=1, restock=True),
                ReturnedLine(sku="MUG", quantity=1, restock=True),
            ),
            "refund": D("213.00"),
        }
    )
    core = CoreProcessor(session_factory(engine), {}, chart=CHART)
    for m in (RECEIPT_1, mug, placed, shipped, refunded):
        await core.process(records(keyed(m)))
    tb = await balances(engine)
    assert tb.get("6001", 0) == 0 and tb.get("222102", 0) == 0
    assert tb.get("1122", 0) == 0
    async with session_factory(engine)() as s:
        stock = {r.sku: (r.on_hand, r.reserved) for r in (await s.execute(select(Stock))).scalars()}
    assert stock == {"TEE": (10, 0), "MUG": (5, 0)}


@pytest.mark.parametrize("one_batch", [True, False])
async def test_an_order_of_charges_only_is_billed_when_it_is_fulfilled(
    engine: AsyncEngine, one_batch: bool
) -> None:
    """A service sold alone (56.50 with 13% VAT inside), paid, then fulfilled with no goods
    lines: nothing is reserved or leaves the stock, and the fulfilment bills it, so the
    payment closes the receivable."""
    from hub.core.batch import CoreProcessor
    from hub.store.models import Order
    from tests.builders import records

    placed = PLACED.model_copy(
        update={
            "lines": (),
            "shipping": D(0),
            "charges": D("56.50"),
            "charges_tax": D("6.50"),
            "total": D("56.50"),
        }
    )
    paid = PAID.model_copy(update={"amount": D("56.50")})
    done = SHIP_1.model_copy(update={"lines": ()})
    core = CoreProcessor(session_factory(engine), {"online": Rule()}, chart=CHART)
    flow = [env(placed, "o"), env(paid, "p"), env(done, "f")]
    for batch in [flow] if one_batch else [[e] for e in flow]:
        result = await core.process(records(*batch))
        assert result.dead_lettered == 0
    tb = await balances(engine)
    assert tb["6001"] == D("-50.00") and tb["222102"] == D("-6.50")
    assert tb["1122"] == 0
    async with session_factory(engine)() as s:
        assert (await s.execute(select(Stock))).scalars().all() == []
        order = await s.get(Order, ORDER)
        assert order is not None and order.placed


async def test_an_order_cancelled_unpaid_then_paid_and_cancelled_again_bills_what_it_keeps(
    engine: AsyncEngine,
) -> None:
    """The payment failed (cancelled, unpaid: nothing billed), the order was reopened and paid
    on a retry, then cancelled again with its goods refunded and the shipping (8) kept: the
    second cancellation bills the 8, so the receivable closes."""
    from hub.core.batch import CoreProcessor
    from tests.builders import records

    goods = UNSHIPPED_GOODS_REFUNDED
    core = CoreProcessor(session_factory(engine), {"online": Rule()}, chart=CHART)
    steps = [
        [env(RECEIPT_1, "r"), env(PLACED, "p")],
        [env(cancelled(2), "c1")],
        [env(reopened(3), "o"), env(PAID, "P1")],
        [env(goods, "g"), env(refunded(D("119.70"), "R1"), "R1")],
        [env(cancelled(8), "c2")],
    ]
    for step in steps:
        await core.process(records(*step))
    tb = await balances(engine)
    assert tb["1122"] == 0
    assert tb["6001"] + tb.get("222102", 0) == D("-8.00")


async def test_a_cancellation_older_than_the_reopening_bills_nothing(engine: AsyncEngine) -> None:
    """The paid retry (reopened at +3) delivered before the failure (cancelled at +2): the
    stock keeps the order reserved, and the books bill none of its shipping as kept."""
    from hub.core.batch import CoreProcessor
    from tests.builders import records

    core = CoreProcessor(session_factory(engine), {"online": Rule()}, chart=CHART)
    first = [env(RECEIPT_1, "r"), env(COUNT, "m"), env(PLACED, "p"), env(PAID, "P1")]
    for step in (first, [env(reopened(3), "o")]):
        await core.process(records(*step))
    await core.process(records(env(cancelled(2), "c")))
    tb = await balances(engine)
    assert tb.get("6001", 0) == 0 and tb["1122"] == D("-127.70")
    async with session_factory(engine)() as s:
        tee = await s.get(Stock, ("TEE", "main"))
        assert tee is not None and tee.reserved == 3


async def test_a_stocktake_counts_as_of_when_it_was_counted(engine: AsyncEngine) -> None:
    """10 TEE at 10.00 in at 01:00. Counted 9 at 03:00 (one lost), but the count is imported
    only after a sale of 3 shipped at 05:00 was journaled: on hand ends at 6, the sale kept on
    top of the count, and the loss of one is booked. A count taken earlier still (02:00) and
    imported last changes nothing: the 03:00 count stands. The same line corrected under the
    same count id (8, not 9) counts again. Books and stock agree throughout."""
    from hub.core.batch import CoreProcessor
    from tests.builders import fulfil, place, records

    core = CoreProcessor(session_factory(engine), {"online": Rule()}, chart=CHART)
    sale = fulfil("acme:9", [("TEE", 3)])
    sale = replace(sale, data=sale.data.model_copy(update={"fulfilled_at": T + timedelta(hours=4)}))
    await core.process(records(env(RECEIPT_1, "r1"), place("acme:9", [("TEE", 3)]), sale))

    def count(quantity: int, hours: int, cid: str) -> Envelope:
        at = T + timedelta(hours=hours)
        msg = StockCounted(sku="TEE", quantity=quantity, count_id=cid, counted_at=at)
        return env(msg, f"{cid}:{quantity}")

    async def state() -> tuple[int, list[int], list[tuple[str, str]]]:
        async with session_factory(engine)() as s:
            tee = await s.get(Stock, ("TEE", "main"))
            assert tee is not None
            moves = (
                await s.execute(
                    select(Movement.delta).where(Movement.kind == "stocktake").order_by(Movement.id)
                )
            ).scalars()
            problems = await ledger.check_books(s, CHART)
        return tee.on_hand, list(moves), [(p.check, p.subject) for p in problems]

    await core.process(records(count(9, 2, "c-0300")))
    assert await state() == (6, [-1], [])
    await core.process(records(count(12, 1, "c-0200")))  # older than the 03:00 count
    assert await state() == (6, [-1], [])
    await core.process(records(count(8, 2, "c-0300")))  # the line corrected
    assert await state() == (5, [-1, -1], [])
    async with session_factory(engine)() as s:
        kinds = (
            await s.execute(
                select(VoucherRow.cause_type).where(VoucherRow.cause_type == "stock_counted")
            )
        ).scalars()
        assert len(list(kinds)) == 2


@pytest.mark.parametrize("first", ["order", "fulfilment"])
async def test_revenue_is_booked_in_the_period_the_goods_left_whichever_comes_first(
    engine: AsyncEngine, first: str
) -> None:
    """Placed on 31 January at 23:50 in Shanghai, shipped on 1 February: the revenue and its
    cost of sales are February's, whether the fulfilment or the order reached the hub first."""
    from hub.core.batch import CoreProcessor
    from tests.builders import fulfil, place, records

    core = CoreProcessor(session_factory(engine), {"online": Rule()}, chart=CHART)
    await core.process(records(env(RECEIPT_1, "r1")))
    order = place("acme:131", [("TEE", 2)])
    order = replace(
        order,
        data=order.data.model_copy(update={"placed_at": datetime(2026, 1, 31, 15, 50, tzinfo=UTC)}),
    )
    sent = fulfil("acme:131", [("TEE", 2)])
    sent = replace(
        sent,
        data=sent.data.model_copy(update={"fulfilled_at": datetime(2026, 2, 1, 2, 0, tzinfo=UTC)}),
    )
    for msg in [order, sent] if first == "order" else [sent, order]:
        await core.process(records(msg))
    async with session_factory(engine)() as s:
        rows = (await s.execute(select(VoucherRow.cause_type, VoucherRow.period))).all()
    assert {period for kind, period in rows if kind in ("sale_fulfilled", "sale_billed")} == {
        "2026-02"
    }
