"""Dropship rules on their own: a supplier's reported stock at `dropship.{supplier}` covers what
an order's own location lacks (only for channels that sell dropship), a fulfilment takes the units
from where they were reserved, and a lower report bumps the newest holders."""

from __future__ import annotations

from datetime import UTC, datetime

from hub.domain.allocation import Level, Rule, channel_available, dropship_location
from hub.domain.stockbook import OrderRow, StockBook, StockRow
from schemas import ReservationRejected, ReservationReleased, StockReserved
from schemas.reservations import ReleaseReason
from tests.builders import cancel, fulfil, place

DS = dropship_location("acme-supply")
T = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)


def book(main: int, reported: int | None, *orders: str) -> StockBook:
    stock = {("A", "main"): StockRow("A", "main", on_hand=main)}
    if reported is not None:
        stock[("A", DS)] = StockRow("A", DS, on_hand=reported)
    return StockBook(
        stock,
        {k: OrderRow(k) for k in orders},
        bump_loaded={"A"},
        dropship_channels=frozenset({"online"}),
    )


def held(b: StockBook) -> dict[str, tuple[int, int]]:
    return {loc: (r.on_hand, r.reserved) for (_, loc), r in b.stock.items()}


def placed(b: StockBook, key: str, qty: int, channel: str = "online") -> None:
    env = place(key, [("A", qty)], channel=channel)
    assert env.data.__class__.__name__ == "OrderPlaced"
    b.apply_placed(env.data, env.id)  # type: ignore[arg-type]


def test_the_shortfall_of_the_own_location_is_reserved_at_the_dropship_location():
    b = book(3, 10, "s:1")
    placed(b, "s:1", 5)
    assert held(b) == {"main": (3, 3), DS: (10, 2)}
    msg = b.out[-1][0]
    assert isinstance(msg, StockReserved)
    assert {(ln.location, ln.quantity) for ln in msg.lines} == {("main", 3), (DS, 2)}
    lines = b.orders["s:1"].lines
    assert (lines[("A", "main")].quantity, lines[("A", DS)].quantity) == (3, 2)


def test_a_channel_without_dropship_never_takes_the_suppliers_stock():
    b = book(3, 10, "s:1")
    placed(b, "s:1", 5, channel="store")
    msg = b.out[-1][0]
    assert isinstance(msg, ReservationRejected)
    assert msg.lines[0].available == 3
    assert held(b) == {"main": (3, 0), DS: (10, 0)}


def test_no_order_reserves_more_than_the_supplier_reported():
    b = book(0, 4, "s:1", "s:2", "s:3")
    placed(b, "s:1", 3)
    placed(b, "s:2", 2)  # only 1 left
    placed(b, "s:3", 1)
    assert held(b) == {"main": (0, 0), DS: (4, 4)}
    kinds = [type(m).__name__ for m, _ in b.out]
    assert kinds == ["StockReserved", "ReservationRejected", "StockReserved"]


def test_a_lower_report_bumps_the_newest_holder_first():
    b = book(0, 6, "s:1", "s:2", "s:3")
    for key in ("s:1", "s:2", "s:3"):
        placed(b, key, 2)
    b.apply_supplier_stock("A", DS, 3, "846-2", "cause-2", T)
    assert held(b)[DS] == (3, 2)
    released = [m for m, _ in b.out if isinstance(m, ReservationReleased)]
    assert [(m.order_key, m.reason) for m in released] == [
        ("s:3", ReleaseReason.SUPPLIER_STOCK_LOST),
        ("s:2", ReleaseReason.SUPPLIER_STOCK_LOST),
    ]
    assert b.orders["s:3"].status == "bumped" and b.orders["s:1"].status == "reserved"
    assert [m.delta for m in b.movements] == [-3]
    assert b.movements[0].kind == "supplier_feed"


def test_fulfilment_takes_the_units_from_where_they_were_reserved():
    b = book(3, 10, "s:1")
    placed(b, "s:1", 5)
    env = fulfil("s:1", [("A", 5)])
    b.apply_fulfilled(env.data, env.id)  # type: ignore[arg-type]
    assert held(b) == {"main": (0, 0), DS: (8, 0)}
    assert sorted((m.location, m.delta, m.kind) for m in b.movements) == [
        (DS, -2, "sale"),
        ("main", -3, "sale"),
    ]
    assert b.orders["s:1"].status == "fulfilled"


def test_cancel_releases_both_parts():
    b = book(3, 10, "s:1")
    placed(b, "s:1", 5)
    env = cancel("s:1")
    b.apply_cancelled(env.data, env.id)  # type: ignore[arg-type]
    assert held(b) == {"main": (3, 0), DS: (10, 0)}
    (released,) = [m for m, _ in b.out if isinstance(m, ReservationReleased)]
    assert {(ln.location, ln.quantity) for ln in released.lines} == {("main", 3), (DS, 2)}


def test_channel_available_counts_dropship_only_for_dropship_channels():
    rows = {"main": Level(5, 2), DS: Level(10, 4), "presale": Level(8, 0)}
    for rule, expected in ((Rule(dropship=True), 9), (Rule(), 3)):
        mine = [lv for loc, lv in rows.items() if rule.sells_from(loc)]
        assert channel_available(mine, rule) == expected


def test_a_sku_the_hub_never_stocks_is_sold_and_shipped_from_the_supplier_alone():
    b = StockBook(
        {("A", DS): StockRow("A", DS, on_hand=4)},
        {"s:1": OrderRow("s:1"), "s:2": OrderRow("s:2")},
        bump_loaded={"A"},
        dropship_channels=frozenset({"online"}),
    )
    placed(b, "s:1", 3)
    placed(b, "s:2", 1, channel="store")  # no row of its own and no dropship: unknown to it
    assert set(b.orders["s:1"].lines) == {("A", DS)}
    rejected = b.out[-1][0]
    assert isinstance(rejected, ReservationRejected)
    assert rejected.lines[0].reason.value == "unknown_sku"
    env = fulfil("s:1", [("A", 3)])
    b.apply_fulfilled(env.data, env.id)  # type: ignore[arg-type]
    assert held(b) == {DS: (1, 0)}
    assert b.orders["s:1"].status == "fulfilled"
