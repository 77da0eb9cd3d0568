"""Presale rules on their own: orders beyond stock become backorders at `presale` up to what it
holds (share × confirmed inbound), a receipt fills them oldest first, a drop of confirmed inbound
releases the newest first; and no sequence of feeds, orders, receipts, fulfilments and inbound
changes ever promises more than a location holds."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.domain.allocation import PRESALE, dropship_location, presale_target
from hub.domain.stockbook import OrderRow, StockBook, StockRow
from schemas import ReservationRejected, ReservationReleased, StockReserved
from schemas.reservations import ReleaseReason
from tests.builders import cancel, fulfil, place, received, reopen

T = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)
DS = dropship_location("acme-supply")


def book(main: int, presale: int, orders: int) -> StockBook:
    return StockBook(
        {
            ("A", "main"): StockRow("A", "main", on_hand=main),
            ("A", PRESALE): StockRow("A", PRESALE, on_hand=presale),
        },
        {f"s:{i}": OrderRow(f"s:{i}") for i in range(orders)},
        bump_loaded={"A"},
        presale_channels=frozenset({"online"}),
    )


def held(b: StockBook) -> dict[str, tuple[int, int]]:
    return {loc: (r.on_hand, r.reserved) for (_, loc), r in b.stock.items()}


def order(b: StockBook, i: int, qty: int = 1, channel: str = "online") -> None:
    env = place(f"s:{i}", [("A", qty)], channel=channel)
    b.apply_placed(env.data, env.id)  # type: ignore[arg-type]


def receive(b: StockBook, qty: int, rid: str = "g1") -> None:
    env = received("A", qty, "5.00", rid=rid)
    b.apply_received(env.data, env.id)  # type: ignore[arg-type]


def test_orders_beyond_stock_are_backorders_up_to_the_presale_limit_and_no_further():
    b = book(2, 3, 7)
    for i in range(7):
        order(b, i)
    assert held(b) == {"main": (2, 2), PRESALE: (3, 3)}
    kinds = [type(m).__name__ for m, _ in b.out]
    assert kinds == ["StockReserved"] * 5 + ["ReservationRejected"] * 2
    flags = [m.lines[0].backorder for m, _ in b.out if isinstance(m, StockReserved)]
    assert flags == [False, False, True, True, True]
    rejected = b.out[-1][0]
    assert isinstance(rejected, ReservationRejected) and rejected.lines[0].available == 0


def test_one_line_is_split_between_stock_and_backorder():
    b = book(2, 5, 1)
    order(b, 0, qty=4)
    msg = b.out[-1][0]
    assert isinstance(msg, StockReserved)
    assert sorted((ln.location, ln.quantity, ln.backorder) for ln in msg.lines) == [
        ("main", 2, False),
        (PRESALE, 2, True),
    ]


def test_a_channel_without_presale_takes_no_backorder():
    b = book(1, 5, 2)
    order(b, 0, channel="store")
    order(b, 1, channel="store")
    assert held(b) == {"main": (1, 1), PRESALE: (5, 0)}
    assert isinstance(b.out[-1][0], ReservationRejected)


def test_a_receipt_fills_backorders_oldest_first():
    b = book(0, 6, 4)
    for i, qty in enumerate((2, 1, 3)):
        order(b, i, qty)
    receive(b, 4)
    assert held(b) == {"main": (4, 4), PRESALE: (6, 2)}
    lines = {k: o.lines for k, o in b.orders.items()}
    assert lines["s:0"][("A", "main")].open == 2 and lines["s:0"][("A", PRESALE)].open == 0
    assert lines["s:1"][("A", "main")].open == 1
    assert lines["s:2"][("A", "main")].open == 1 and lines["s:2"][("A", PRESALE)].open == 2


def test_less_confirmed_inbound_releases_the_newest_backorders_first():
    b = book(1, 4, 4)
    for i in range(4):
        order(b, i)  # s:0 from stock, s:1..s:3 backordered
    b.set_presale("A", 1, "PO-1", "ack-2", T)
    assert held(b) == {"main": (1, 1), PRESALE: (1, 1)}
    released = [m for m, _ in b.out if isinstance(m, ReservationReleased)]
    assert [(m.order_key, m.reason) for m in released] == [
        ("s:3", ReleaseReason.INBOUND_LOST),
        ("s:2", ReleaseReason.INBOUND_LOST),
    ]
    assert [(m.location, m.delta, m.kind) for m in b.movements] == [(PRESALE, -3, "presale")]


def test_fulfilling_a_backordered_line_closes_its_backorder():
    b = book(0, 2, 1)
    order(b, 0, qty=2)
    receive(b, 1)  # one unit moves to main; one is still backordered
    env = fulfil("s:0", [("A", 2)])
    b.apply_fulfilled(env.data, env.id)  # type: ignore[arg-type]
    assert held(b) == {"main": (-1, 0), PRESALE: (2, 0)}
    assert b.orders["s:0"].status == "fulfilled"


def test_fulfilling_a_backorder_where_no_stock_is_kept_republishes_the_sku():
    b = StockBook(
        {("A", PRESALE): StockRow("A", PRESALE, on_hand=3)},
        {"s:0": OrderRow("s:0")},
        bump_loaded={"A"},
        presale_channels=frozenset({"online"}),
    )
    order(b, 0, qty=2)
    assert held(b) == {PRESALE: (3, 2)}
    b.touched.clear()  # a later batch: it only ships the order
    env = fulfil("s:0", [("A", 2)])
    b.apply_fulfilled(env.data, env.id)  # type: ignore[arg-type]
    assert held(b) == {PRESALE: (3, 0)}
    assert b.touched == {"A"}  # presale available went up: its level must be published


def test_a_closed_presale_takes_no_backorder_and_keeps_no_unit_its_backorders_leave():
    b = book(1, 5, 4)
    order(b, 0)  # from stock
    order(b, 1, qty=2)  # a backorder of 2
    b.presale_closed = frozenset({"A"})
    order(b, 2)  # would have been a backorder
    assert [type(m).__name__ for m, _ in b.out][-1] == "ReservationRejected"
    env = cancel("s:1")
    b.apply_cancelled(env.data, env.id)  # type: ignore[arg-type]
    b.close_presale(b.presale_closed, "presale share 0", env.id, T)
    assert held(b) == {"main": (1, 1), PRESALE: (0, 0)}
    assert (b.movements[-1].location, b.movements[-1].delta) == (PRESALE, -5)


def test_a_reopened_backorder_is_held_from_stock_that_came_in_meanwhile():
    """Backordered, cancelled; the goods arrive and presale closes; reopened: the units are
    held at `main`, where they are now, as a new order would be."""
    b = book(0, 3, 1)
    order(b, 0, qty=2)
    assert held(b) == {"main": (0, 0), PRESALE: (3, 2)}
    env = cancel("s:0", at=T)
    b.apply_cancelled(env.data, env.id)  # type: ignore[arg-type]
    receive(b, 4)
    b.set_presale("A", 0, "PO-1", "ack-2", T)
    env = reopen("s:0", T + timedelta(minutes=1))
    b.apply_reopened(env.data, env.id)  # type: ignore[arg-type]
    assert held(b) == {"main": (4, 2), PRESALE: (0, 0)}
    lines = b.orders["s:0"].lines
    assert (lines[("A", "main")].quantity, lines[("A", PRESALE)].quantity) == (2, 0)
    reserved = b.out[-1][0]
    assert isinstance(reserved, StockReserved) and not reserved.lines[0].backorder


def test_presale_target_is_the_share_of_confirmed_inbound_rounded_down():
    assert presale_target(Decimal("0.5"), 15) == 7
    assert presale_target(Decimal(1), 4) == 4
    assert presale_target(Decimal("0.3"), 0) == 0


# -- the property ---------------------------------------------------------------------------------

ops = st.lists(
    st.one_of(
        st.tuples(st.just("order"), st.integers(0, 7), st.integers(1, 4), st.booleans()),
        st.tuples(st.just("cancel"), st.integers(0, 7)),
        st.tuples(st.just("reopen"), st.integers(0, 7)),
        st.tuples(st.just("fulfil"), st.integers(0, 7), st.integers(1, 4)),
        st.tuples(st.just("receive"), st.integers(1, 6)),
        st.tuples(st.just("inbound"), st.integers(0, 12)),
        st.tuples(st.just("feed"), st.integers(0, 8)),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(ops=ops, main=st.integers(0, 5))
def test_no_sequence_ever_promises_more_than_a_location_holds(ops, main):
    b = StockBook(
        {("A", "main"): StockRow("A", "main", on_hand=main), ("A", DS): StockRow("A", DS)},
        {f"s:{i}": OrderRow(f"s:{i}") for i in range(8)},
        bump_loaded={"A"},
        dropship_channels=frozenset({"online"}),
        presale_channels=frozenset({"online"}),
    )
    share = Decimal("0.5")
    for rid, op in enumerate(ops):
        match op:
            case ("order", i, qty, online):
                order(b, i, qty, channel="online" if online else "store")
            case ("cancel", i):
                env = cancel(f"s:{i}", at=T + timedelta(seconds=rid))
                b.apply_cancelled(env.data, env.id)  # type: ignore[arg-type]
            case ("reopen", i):
                env = reopen(f"s:{i}", T + timedelta(seconds=rid))
                b.apply_reopened(env.data, env.id)  # type: ignore[arg-type]
            case ("fulfil", i, qty):
                env = fulfil(f"s:{i}", [("A", qty)], fid=f"F{rid}")
                b.apply_fulfilled(env.data, env.id)  # type: ignore[arg-type]
            case ("receive", qty):
                receive(b, qty, rid=f"g{rid}")
            case ("inbound", units):
                b.set_presale("A", presale_target(share, units), "PO", f"c{rid}", T)
            case ("feed", qty):
                b.apply_supplier_stock("A", DS, qty, f"846-{rid}", f"f{rid}", T)
        open_at: dict[str, int] = defaultdict(int)
        for o in b.orders.values():
            for line in o.lines.values():
                assert line.open >= 0
                open_at[line.location] += line.open
        for (_, loc), row in b.stock.items():
            assert row.reserved == open_at[loc], (loc, row, op)
            assert row.reserved == 0 or row.reserved <= row.on_hand, (loc, row, op)
        presale = b.stock.get(("A", PRESALE))
        if presale is not None:
            assert presale.on_hand >= 0
    # The journal explains every on-hand.
    moved: dict[str, int] = defaultdict(int)
    for m in b.movements:
        moved[m.location] += m.delta
    assert moved["main"] == b.stock[("A", "main")].on_hand - main
    assert moved[DS] == b.stock[("A", DS)].on_hand
