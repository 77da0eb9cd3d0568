"""The reservation rules on their own, without a database."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from hub.domain.stockbook import NeedsBumpData, OrderRow, StockBook, StockRow
from schemas import ReservationRejected, ReservationReleased, StockReserved
from tests.builders import T0, adjusted, cancel, counted, fulfil, place, reopen, ret


def book(stock: dict[str, int], *orders: str) -> StockBook:
    return StockBook(
        {(s, "main"): StockRow(s, "main", on_hand=q) for s, q in stock.items()},
        {k: OrderRow(k) for k in orders},
        bump_loaded=set(stock),
    )


def apply(b: StockBook, *envs) -> None:
    for e in envs:
        d = e.data
        name = {
            "OrderPlaced": "placed",
            "OrderCancelled": "cancelled",
            "OrderReopened": "reopened",
            "OrderFulfilled": "fulfilled",
            "OrderReturned": "returned",
            "StockCounted": "counted",
            "StockAdjusted": "adjusted",
        }[type(d).__name__]
        getattr(b, f"apply_{name}")(d, e.id)


def state(b: StockBook) -> dict[str, tuple[int, int]]:
    return {k[0]: (r.on_hand, r.reserved) for k, r in b.stock.items()}


def test_order_reserves_every_line():
    b = book({"A": 5, "B": 5}, "s:1")
    apply(b, place("s:1", [("A", 2), ("B", 3)]))
    assert state(b) == {"A": (5, 2), "B": (5, 3)}
    assert isinstance(b.out[0][0], StockReserved)


def test_short_line_rejects_the_whole_order_and_names_the_line():
    b = book({"A": 5, "B": 1}, "s:1")
    apply(b, place("s:1", [("A", 2), ("B", 3)]))
    assert state(b) == {"A": (5, 0), "B": (1, 0)}
    msg = b.out[0][0]
    assert isinstance(msg, ReservationRejected)
    reasons = {line.sku: (line.reason.value, line.available) for line in msg.lines}
    assert reasons == {"A": ("ok", 5), "B": ("insufficient_stock", 1)}


def test_unknown_sku_is_rejected_with_its_reason():
    b = book({"A": 5}, "s:1")
    apply(b, place("s:1", [("A", 1), ("NOPE", 1)]))
    msg = b.out[0][0]
    assert isinstance(msg, ReservationRejected)
    assert {line.sku: line.reason.value for line in msg.lines}["NOPE"] == "unknown_sku"
    assert state(b) == {"A": (5, 0)}


def test_duplicate_lines_of_one_sku_are_reserved_together():
    b = book({"A": 3}, "s:1")
    apply(b, place("s:1", [("A", 2), ("A", 2)]))
    assert state(b) == {"A": (3, 0)}
    assert isinstance(b.out[0][0], ReservationRejected)


def test_cancel_releases_and_a_second_cancel_releases_nothing_twice():
    b = book({"A": 5}, "s:1")
    apply(b, place("s:1", [("A", 2)]), cancel("s:1"))
    assert state(b) == {"A": (5, 0)}
    apply(b, cancel("s:1"))
    assert state(b) == {"A": (5, 0)}
    assert sum(isinstance(m, ReservationReleased) for m, _ in b.out) == 1


def test_a_reopened_order_reserves_again_and_older_word_changes_nothing():
    """Cancelled at T0+1 (a failed payment), reopened at T0+2 (paid on a retry): reserved
    again. A reopening older than the cancellation, or a cancellation older than the
    reopening (a late delivery), changes nothing; a newer cancellation releases it again."""
    at = [T0 + timedelta(minutes=m) for m in range(5)]
    b = book({"A": 5, "B": 5}, "s:1")
    apply(b, place("s:1", [("A", 2), ("B", 1)]), cancel("s:1", at=at[1]))
    apply(b, reopen("s:1", at[0]))
    assert state(b) == {"A": (5, 0), "B": (5, 0)}
    apply(b, reopen("s:1", at[2]))
    assert state(b) == {"A": (5, 2), "B": (5, 1)}
    assert b.orders["s:1"].status == "reserved" and not b.orders["s:1"].cancelled
    reserved = b.out[-1][0]
    assert isinstance(reserved, StockReserved)
    assert {(ln.sku, ln.quantity) for ln in reserved.lines} == {("A", 2), ("B", 1)}
    apply(b, cancel("s:1", at=at[1]), reopen("s:1", at[3]))  # older word; already open
    assert state(b) == {"A": (5, 2), "B": (5, 1)}
    apply(b, fulfil("s:1", [("A", 2), ("B", 1)]))
    assert state(b) == {"A": (3, 0), "B": (4, 0)}


def test_a_reopened_order_the_stock_no_longer_covers_is_rejected_whole():
    at = [T0 + timedelta(minutes=m) for m in range(3)]
    b = book({"A": 2, "B": 5}, "s:1", "s:2")
    apply(b, place("s:1", [("A", 2), ("B", 1)]), cancel("s:1", at=at[1]))
    apply(b, place("s:2", [("A", 1)]))  # sold elsewhere while it was cancelled
    apply(b, reopen("s:1", at[2]))
    assert state(b) == {"A": (2, 1), "B": (5, 0)}
    rejected = b.out[-1][0]
    assert isinstance(rejected, ReservationRejected)
    assert {ln.sku: ln.reason.value for ln in rejected.lines}["A"] == "insufficient_stock"
    assert b.orders["s:1"].status == "rejected" and not b.orders["s:1"].cancelled


def test_deliveries_out_of_order_leave_the_order_as_the_newest_word_says():
    """Paid on a retry (reopened at T0+2) delivered before the failure (cancelled at T0+1):
    the order stays reserved. Failed again at T0+3 before a reopening at T0+2 arrives: it
    stays released."""
    at = [T0 + timedelta(minutes=m) for m in range(4)]
    b = book({"A": 5}, "s:1")
    apply(b, place("s:1", [("A", 2)]), reopen("s:1", at[2]), cancel("s:1", at=at[1]))
    assert state(b) == {"A": (5, 2)} and not b.orders["s:1"].cancelled
    apply(b, cancel("s:1", at=at[3]), reopen("s:1", at[2]))
    assert state(b) == {"A": (5, 0)} and b.orders["s:1"].cancelled


def test_a_reopening_takes_back_what_the_cancellation_released_not_what_a_refund_did():
    """3 ordered, 1 refunded before shipping, the rest cancelled: reopened, 2 are held again.
    Units shipped while it was cancelled are not held again."""
    at = [T0 + timedelta(minutes=m) for m in range(3)]
    b = book({"A": 10}, "s:1")
    apply(b, place("s:1", [("A", 3)]), ret("s:1", [("A", 1, True)]), cancel("s:1", at=at[1]))
    assert state(b) == {"A": (10, 0)}
    apply(b, reopen("s:1", at[2]))
    assert state(b) == {"A": (10, 2)}

    b = book({"A": 10}, "s:2")
    apply(b, place("s:2", [("A", 3)]), cancel("s:2", at=at[1]), fulfil("s:2", [("A", 1)]))
    apply(b, reopen("s:2", at[2]))
    assert state(b) == {"A": (9, 2)}


def test_units_refunded_while_the_order_was_cancelled_are_not_held_again():
    at = [T0 + timedelta(minutes=m) for m in range(3)]
    b = book({"A": 10}, "s:1")
    apply(b, place("s:1", [("A", 3)]), cancel("s:1", at=at[1]), ret("s:1", [("A", 1, True)]))
    apply(b, reopen("s:1", at[2]))
    assert state(b) == {"A": (10, 2)}


def test_units_refunded_or_shipped_after_a_rejected_reopening_are_not_held_later():
    """Failed (5 released), paid on a retry with too little stock (rejected), then refunded
    whole, cancelled and restored: nothing is held. Shipped while cancelled: not held again."""
    at = [T0 + timedelta(minutes=m) for m in range(5)]
    b = book({"A": 5}, "s:1", "s:2")
    apply(b, place("s:1", [("A", 5)]), cancel("s:1", at=at[1]), place("s:2", [("A", 1)]))
    apply(b, reopen("s:1", at[2]))
    assert isinstance(b.out[-1][0], ReservationRejected)
    apply(b, ret("s:1", [("A", 5, True)]), cancel("s:1", at=at[3]), reopen("s:1", at[4]))
    assert state(b) == {"A": (5, 1)}

    b = book({"A": 10}, "s:3")
    apply(b, place("s:3", [("A", 5)]), ret("s:3", [("A", 2, True)]), cancel("s:3", at=at[1]))
    apply(b, fulfil("s:3", [("A", 3)]), reopen("s:3", at[2]))
    assert state(b) == {"A": (7, 0)}


def test_reopening_an_order_that_held_nothing_reserves_nothing_and_says_it_holds_nothing():
    at = [T0 + timedelta(minutes=m) for m in range(3)]
    b = book({"A": 1}, "s:1")
    apply(b, place("s:1", [("A", 2)]), cancel("s:1", at=at[1]), reopen("s:1", at[2]))
    assert state(b) == {"A": (1, 0)}
    assert b.orders["s:1"].status == "rejected"
    assert not [m for m, _ in b.out if isinstance(m, StockReserved)]


def test_a_reopening_before_the_order_is_known_leaves_it_to_be_placed():
    at = [T0 + timedelta(minutes=m) for m in range(3)]
    b = book({"A": 5}, "s:1")
    apply(b, cancel("s:1", at=at[1]), reopen("s:1", at[2]), place("s:1", [("A", 2)]))
    assert state(b) == {"A": (5, 2)}


def test_fulfil_commits_reservation_and_leaves_stock():
    b = book({"A": 5}, "s:1")
    apply(b, place("s:1", [("A", 2)]), fulfil("s:1", [("A", 2)]))
    assert state(b) == {"A": (3, 0)}
    assert [(m.delta, m.kind) for m in b.movements] == [(-2, "sale")]


def test_partial_fulfil_then_cancel_releases_the_rest():
    b = book({"A": 5}, "s:1")
    apply(b, place("s:1", [("A", 3)]), fulfil("s:1", [("A", 1)]), cancel("s:1"))
    assert state(b) == {"A": (4, 0)}


def test_return_restocks_only_when_asked():
    b = book({"A": 5}, "s:1")
    apply(
        b,
        place("s:1", [("A", 2)]),
        fulfil("s:1", [("A", 2)]),
        ret("s:1", [("A", 1, True)], rid="R1"),
        ret("s:1", [("A", 1, False)], rid="R2"),
    )
    assert state(b) == {"A": (4, 0)}


@pytest.mark.parametrize("restock", [True, False])
def test_refund_before_shipping_releases_the_reservation_and_adds_no_stock(restock):
    # Shopify's restock type `cancel`: the units never left, so they are not stock coming back.
    b = book({"A": 10}, "s:1")
    apply(b, place("s:1", [("A", 2)]), ret("s:1", [("A", 2, restock)]))
    assert state(b) == {"A": (10, 0)}
    assert b.movements == []
    released = [m for m, _ in b.out if isinstance(m, ReservationReleased)]
    assert [(ln.sku, ln.quantity) for m in released for ln in m.lines] == [("A", 2)]
    # the order's cancellation after it releases nothing twice, and leaves the stock as it is
    apply(b, cancel("s:1"))
    assert state(b) == {"A": (10, 0)}


@pytest.mark.parametrize(
    "refund_first", [True, False], ids=["refund, complete", "complete, refund"]
)
def test_a_completion_of_the_lines_as_placed_ships_none_of_the_units_refunded_before(refund_first):
    """WooCommerce completes an order with its lines as placed (`as_placed`), the unit refunded
    before shipping among them: 1 of the 3 A never left, whichever reached the hub first."""
    b = book({"A": 10, "B": 10}, "s:1")
    complete = fulfil("s:1", [("A", 3), ("B", 1)]).data.model_copy(update={"as_placed": True})
    refund = ret("s:1", [("A", 1, True)])
    apply(b, place("s:1", [("A", 3), ("B", 1)]))
    if refund_first:
        apply(b, refund)
    b.apply_fulfilled(b.as_shipped(complete), "F1")
    if not refund_first:
        apply(b, refund)
    assert state(b) == {"A": (8, 0), "B": (9, 0)}
    line = b.orders["s:1"].lines[("A", "main")]
    assert line.shipped - line.returned == 2
    assert b.orders["s:1"].status == "fulfilled"


def test_only_a_completion_as_placed_leaves_out_refunded_units():
    """A platform's fulfilment names what shipped (Shopify): after a refund before shipping it
    ships as it says; a stock loss's release is no refund, so the order's completion ships all."""
    b = book({"A": 10}, "s:1")
    apply(b, place("s:1", [("A", 3)]), ret("s:1", [("A", 1, True)]))
    shipped = fulfil("s:1", [("A", 2)]).data
    assert b.as_shipped(shipped) is shipped
    bumped = book({"A": 3}, "s:2")
    apply(bumped, place("s:2", [("A", 3)]), counted("A", 0))
    assert bumped.orders["s:2"].status == "bumped"
    complete = fulfil("s:2", [("A", 3)]).data.model_copy(update={"as_placed": True})
    assert bumped.as_shipped(complete).lines == complete.lines


def test_refund_of_more_than_shipped_restocks_the_shipped_units_and_releases_the_rest():
    b = book({"A": 10}, "s:1")
    apply(
        b,
        place("s:1", [("A", 3)]),
        fulfil("s:1", [("A", 1)]),
        ret("s:1", [("A", 3, True)]),
    )
    assert state(b) == {"A": (10, 0)}  # 10 − 1 shipped + 1 back; 2 never left
    assert [(m.delta, m.kind) for m in b.movements] == [(-1, "sale"), (1, "return")]
    split, _ = b.shipped_return(ret("s:1", [("A", 1, True)], rid="R2").data)
    assert split.lines[0].restock is False


def test_return_split_for_the_books_names_only_shipped_units_as_restocked():
    b = book({"A": 10}, "s:1")
    apply(b, place("s:1", [("A", 3)]), fulfil("s:1", [("A", 1)]))
    split, _ = b.shipped_return(ret("s:1", [("A", 3, True)]).data)
    assert [(ln.sku, ln.quantity, ln.restock) for ln in split.lines] == [
        ("A", 1, True),
        ("A", 2, False),
    ]


def test_refund_before_shipping_releases_a_dropship_reservation_with_no_row_at_main():
    # The shop names its own location (main); the units are held at the supplier's.
    b = StockBook(
        {("A", "dropship.acme"): StockRow("A", "dropship.acme", on_hand=5)},
        {"s:1": OrderRow("s:1")},
        dropship_channels=frozenset({"online"}),
    )
    apply(b, place("s:1", [("A", 3)]))
    assert state(b) == {"A": (5, 3)}
    apply(b, ret("s:1", [("A", 3, True)]))
    assert state(b) == {"A": (5, 0)}
    assert b.orders["s:1"].lines[("A", "dropship.acme")].open == 0
    assert b.movements == []


def test_refund_after_part_shipped_releases_the_rest_and_the_order_is_fulfilled():
    b = book({"A": 10, "B": 10}, "s:1")
    apply(b, place("s:1", [("A", 1), ("B", 2)]), fulfil("s:1", [("A", 1)]))
    split, _ = b.shipped_return(ret("s:1", [("A", 1, True), ("B", 2, True)]).data)
    assert [(ln.sku, ln.quantity, ln.restock) for ln in split.lines] == [
        ("A", 1, True),
        ("B", 2, False),
    ]
    apply(b, ret("s:1", [("B", 2, True)]))
    assert state(b) == {"A": (9, 0), "B": (10, 0)}
    assert b.orders["s:1"].status == "fulfilled"


def test_refund_between_a_fulfilment_and_its_late_order_restocks_only_what_shipped():
    b = book({"A": 10}, "s:1")
    apply(b, fulfil("s:1", [("A", 1)]), ret("s:1", [("A", 3, True)]))
    assert state(b) == {"A": (10, 0)}  # the one unit that left came back; no units made up
    apply(b, place("s:1", [("A", 3)]))  # shipped 1, refunded 2: nothing left to reserve
    assert state(b) == {"A": (10, 0)}
    assert b.orders["s:1"].status == "fulfilled"


def test_dropshipped_names_the_units_the_fulfilment_takes_from_a_supplier():
    # main 1, the supplier 1, presale 2; a line at a location without a row ships first
    rows = {
        ("A", "main"): StockRow("A", "main", on_hand=1),
        ("A", "dropship.acme"): StockRow("A", "dropship.acme", on_hand=1),
        ("A", "presale"): StockRow("A", "presale", on_hand=2),
    }
    b = StockBook(
        rows,
        {"s:1": OrderRow("s:1")},
        dropship_channels=frozenset({"online"}),
        presale_channels=frozenset({"online"}),
    )
    apply(b, place("s:1", [("A", 4)]))
    shipped = fulfil("s:1", [("A", 1)])
    lines = (
        shipped.data.lines[0].model_copy(update={"location": "shop2"}),
        shipped.data.lines[0].model_copy(update={"quantity": 3}),
    )
    msg = shipped.data.model_copy(update={"lines": lines})
    # the supplier's unit goes out on the first line; main's 3 are its own 1 and presale's 2
    assert b.dropshipped(msg) == {("A", "shop2"): 1}
    b.apply_fulfilled(msg, shipped.id)
    assert [(m.location, m.delta) for m in b.movements] == [("dropship.acme", -1), ("main", -3)]


def two_warehouses(main: int, east: int) -> StockBook:
    rows = {
        ("A", "main"): StockRow("A", "main", on_hand=main),
        ("A", "east"): StockRow("A", "east", on_hand=east),
    }
    return StockBook(rows, {"s:1": OrderRow("s:1")}, bump_loaded={"A"})


def held_at(b: StockBook) -> dict[str, tuple[int, int]]:
    return {loc: (r.on_hand, r.reserved) for (_, loc), r in b.stock.items()}


def test_shipping_from_another_warehouse_commits_the_reservation_held_at_the_first():
    # Reserved at main; the platform moved the order and east shipped it. Main's units are
    # free again and east's stock dropped: counted once, not twice.
    b = two_warehouses(main=5, east=5)
    apply(b, place("s:1", [("A", 3)]), fulfil("s:1", [("A", 1)], location="east"))
    assert held_at(b) == {"main": (5, 2), "east": (4, 0)}
    assert "A" in b.touched
    apply(b, fulfil("s:1", [("A", 2)], fid="F2"))
    assert held_at(b) == {"main": (3, 0), "east": (4, 0)}
    assert b.orders["s:1"].status == "fulfilled"
    assert [(m.location, m.delta) for m in b.movements] == [("east", -1), ("main", -2)]
    # every unit ordered counts as shipped, wherever it left from
    split, _ = b.shipped_return(ret("s:1", [("A", 3, True)]).data)
    assert [(ln.quantity, ln.restock) for ln in split.lines] == [(3, True)]


def test_a_reopening_after_a_shipment_from_another_warehouse_holds_where_it_was_placed():
    at = [T0 + timedelta(minutes=m) for m in range(3)]
    b = two_warehouses(main=5, east=1)
    apply(b, place("s:1", [("A", 3)]), fulfil("s:1", [("A", 1)], location="east"))
    apply(b, cancel("s:1", at=at[1]), reopen("s:1", at[2]))
    assert held_at(b) == {"main": (5, 2), "east": (0, 0)}
    assert b.orders["s:1"].status == "reserved"


@pytest.mark.parametrize(
    ("ordered", "held"),
    [
        ([("main", 2)], {"main": (5, 0), "east": (3, 0)}),
        # east's own line takes one of the two shipped there; main needs none
        ([("main", 1), ("east", 1)], {"main": (5, 0), "east": (3, 0)}),
        # one shipped at east before the order: main holds the other
        ([("main", 3)], {"main": (5, 1), "east": (3, 0)}),
    ],
)
def test_units_shipped_from_another_warehouse_before_the_order_came_are_not_held(ordered, held):
    b = two_warehouses(main=5, east=5)
    apply(b, fulfil("s:1", [("A", 2)], location="east"))
    apply(b, place("s:1", [("A", q, loc) for loc, q in ordered]))
    assert held_at(b) == held


def test_shipping_from_a_location_the_hub_keeps_no_stock_of_leaves_the_reservation():
    b = two_warehouses(main=5, east=5)
    apply(b, place("s:1", [("A", 3)]), fulfil("s:1", [("A", 3)], location="unmapped"))
    assert held_at(b) == {"main": (5, 3), "east": (5, 0)}
    assert b.movements == []


def test_a_refund_the_platform_says_never_shipped_releases_even_after_a_partial_shipment():
    b = book({"A": 10}, "s:1")
    apply(b, place("s:1", [("A", 3)]), fulfil("s:1", [("A", 1)]))
    apply(b, ret("s:1", [("A", 1, True)], shipped=False))
    assert state(b) == {"A": (9, 1)}  # 1 shipped, 1 released, 1 still held; nothing restocked
    assert [(m.delta, m.kind) for m in b.movements] == [(-1, "sale")]


def test_a_refund_before_its_order_is_remembered_where_the_shop_has_no_row():
    b = StockBook(
        {("A", "dropship.acme"): StockRow("A", "dropship.acme", on_hand=10)},
        {"s:1": OrderRow("s:1")},
        dropship_channels=frozenset({"online"}),
    )
    apply(b, ret("s:1", [("A", 1, True)], shipped=False), place("s:1", [("A", 3)]))
    assert state(b) == {"A": (10, 2)}  # the refunded unit is not reserved


def test_return_of_an_order_never_placed_here_restocks_as_it_says():
    b = book({"A": 10}, "s:1")
    apply(b, ret("s:1", [("A", 2, True)]))
    assert state(b) == {"A": (12, 0)}


@pytest.mark.parametrize("order", ["in order", "cancel first"])
def test_cancel_before_place_ends_like_place_then_cancel(order):
    b = book({"A": 5}, "s:1")
    msgs = [place("s:1", [("A", 2)]), cancel("s:1")]
    apply(b, *(msgs if order == "in order" else reversed(msgs)))
    assert state(b) == {"A": (5, 0)}
    assert b.orders["s:1"].status == "cancelled"


@pytest.mark.parametrize("arrival", [(0, 1, 2), (1, 0, 2), (1, 2, 0), (2, 1, 0), (2, 0, 1)])
def test_cancelled_then_reopened_holds_the_order_whatever_the_arrival(arrival):
    at = [T0 + timedelta(minutes=m) for m in range(3)]
    msgs = [place("s:1", [("A", 2), ("B", 1)]), cancel("s:1", at=at[1]), reopen("s:1", at[2])]
    b = book({"A": 5, "B": 5}, "s:1")
    apply(b, *(msgs[i] for i in arrival))
    assert state(b) == {"A": (5, 2), "B": (5, 1)}
    assert b.orders["s:1"].status == "reserved"


def test_cancelled_before_it_came_and_reopened_reserves_all_or_nothing():
    """Shipped 1 and refunded 1 while cancelled and unknown: the reopening holds the rest; an
    unknown SKU rejects the whole order, as at placing."""
    at = [T0 + timedelta(minutes=m) for m in range(3)]
    b = book({"A": 10}, "s:1")
    apply(b, cancel("s:1", at=at[1]), fulfil("s:1", [("A", 1)]))
    apply(b, ret("s:1", [("A", 1, True)], shipped=False), place("s:1", [("A", 4)]))
    assert state(b) == {"A": (9, 0)}
    apply(b, reopen("s:1", at[2]))
    assert state(b) == {"A": (9, 2)}

    b = book({"A": 10}, "s:2")
    apply(b, cancel("s:2", at=at[1]), place("s:2", [("A", 2), ("NOPE", 1)]))
    apply(b, reopen("s:2", at[2]))
    assert state(b) == {"A": (10, 0)}
    assert isinstance(b.out[-1][0], ReservationRejected)


@pytest.mark.parametrize("order", ["in order", "fulfil first"])
def test_fulfil_before_place_ends_like_place_then_fulfil(order):
    b = book({"A": 5}, "s:1")
    msgs = [place("s:1", [("A", 2)]), fulfil("s:1", [("A", 2)])]
    apply(b, *(msgs if order == "in order" else reversed(msgs)))
    assert state(b) == {"A": (3, 0)}


def test_count_below_reservations_releases_newest_orders_whole():
    b = book({"A": 5, "B": 5}, "s:1", "s:2")
    apply(b, place("s:1", [("A", 2)]), place("s:2", [("A", 2), ("B", 1)]))
    apply(b, counted("A", 3))
    assert state(b) == {"A": (3, 2), "B": (5, 0)}
    assert b.orders["s:2"].status == "bumped"
    assert b.orders["s:1"].status == "reserved"


def test_bump_without_loaded_holders_asks_for_them():
    b = StockBook({("A", "main"): StockRow("A", "main", on_hand=5, reserved=4)}, {})
    with pytest.raises(NeedsBumpData):
        apply(b, adjusted("A", -3))


def test_journal_sums_to_on_hand():
    b = book({"A": 0}, "s:1")
    apply(
        b,
        counted("A", 10),
        place("s:1", [("A", 4)]),
        fulfil("s:1", [("A", 4)]),
        ret("s:1", [("A", 1, True)]),
        adjusted("A", -2),
        counted("A", 7, cid="c2"),
    )
    assert sum(m.delta for m in b.movements) == b.stock[("A", "main")].on_hand == 7


def test_a_count_older_than_one_that_found_no_difference_changes_nothing():
    """A count that found what the hub had journals nothing; the stock keeps its time all the
    same, so a count taken before it and imported after it is still the older one."""
    b = book({"A": 5})
    now = counted("A", 5, "c-late")
    apply(b, now)
    assert b.movements == [] and b.stock[("A", "main")].counted_at == T0
    older = counted("A", 9, "c-early")
    older = replace(
        older, data=older.data.model_copy(update={"counted_at": T0 - timedelta(hours=1)})
    )
    apply(b, older)
    assert state(b) == {"A": (5, 0)} and b.movements == []
