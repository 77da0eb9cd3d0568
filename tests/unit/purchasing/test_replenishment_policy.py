"""Replenishment: when to order, how much, and reorder points from demand."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.purchasing.policy import (
    Decision,
    PolicyError,
    ReplenishmentRule,
    StockPosition,
    daily_demand,
    decide,
    reorder_point_from_demand,
)
from schemas.base import MAX_QUANTITY


def test_orders_up_to_level_rounded_up_to_whole_packs() -> None:
    rule = ReplenishmentRule(reorder_point=20, order_up_to=100, pack_size=12)
    d = decide(StockPosition(on_hand=25, inbound=0, reserved=7), rule, open_po_line=False)
    assert d.decision is Decision.ORDER
    assert d.projected == 18
    assert d.order_quantity == 84  # 82 needed → 7 packs of 12


def test_minimum_order_quantity_wins_over_a_small_need() -> None:
    rule = ReplenishmentRule(reorder_point=10, order_up_to=12, pack_size=5, min_order_quantity=48)
    d = decide(StockPosition(on_hand=10, inbound=0, reserved=0), rule, open_po_line=False)
    assert d.order_quantity == 50  # MOQ 48 rounded up to packs of 5


def test_inbound_counts_so_an_arriving_po_prevents_a_second_one() -> None:
    rule = ReplenishmentRule(reorder_point=20, order_up_to=100)
    d = decide(StockPosition(on_hand=5, inbound=80, reserved=0), rule, open_po_line=False)
    assert d.decision is Decision.ENOUGH


def test_holds_while_a_po_line_is_open_for_the_sku() -> None:
    rule = ReplenishmentRule(reorder_point=20, order_up_to=100)
    d = decide(StockPosition(on_hand=0, inbound=0, reserved=3), rule, open_po_line=True)
    assert d.decision is Decision.HOLD_OPEN_PO
    assert d.order_quantity == 0


def test_backorders_make_projected_negative_and_the_order_covers_them() -> None:
    rule = ReplenishmentRule(reorder_point=0, order_up_to=10)
    d = decide(StockPosition(on_hand=0, inbound=0, reserved=4), rule, open_po_line=False)
    assert d.projected == -4
    assert d.order_quantity == 14


def test_warns_when_projected_stock_exceeds_the_max() -> None:
    rule = ReplenishmentRule(reorder_point=10, order_up_to=50, max_stock=80)
    d = decide(StockPosition(on_hand=90, inbound=0, reserved=0), rule, open_po_line=False)
    assert d.high_stock and d.decision is Decision.ENOUGH


@pytest.mark.parametrize(
    "kwargs",
    [
        {"reorder_point": 50, "order_up_to": 10},
        {"reorder_point": 1, "order_up_to": 10, "pack_size": 0},
        {"reorder_point": 1, "order_up_to": 10, "min_order_quantity": 0},
        {"reorder_point": -1, "order_up_to": 10},
        {"reorder_point": 1, "order_up_to": 10, "max_stock": 5},
    ],
)
def test_inconsistent_rules_are_refused_with_a_typed_error(kwargs: dict[str, int]) -> None:
    with pytest.raises(PolicyError):
        ReplenishmentRule(**kwargs)


rules = st.builds(
    lambda rop, extra, pack, moq: ReplenishmentRule(rop, rop + extra, pack, moq),
    st.integers(0, 500),
    st.integers(0, 500),
    st.integers(1, 48),
    st.integers(1, 300),
)
positions = st.builds(
    StockPosition, st.integers(0, 1000), st.integers(0, 1000), st.integers(0, 1000)
)


@given(rules, positions)
def test_never_orders_while_a_po_line_is_open(rule: ReplenishmentRule, pos: StockPosition) -> None:
    assert decide(pos, rule, open_po_line=True).order_quantity == 0


@given(rules, positions)
def test_order_is_whole_packs_at_least_moq_and_restores_the_reorder_point(
    rule: ReplenishmentRule, pos: StockPosition
) -> None:
    d = decide(pos, rule, open_po_line=False)
    if pos.projected > rule.reorder_point:
        assert d.order_quantity == 0
        return
    q = d.order_quantity
    assert q > 0
    assert q % rule.pack_size == 0
    assert q >= rule.min_order_quantity
    assert d.projected_after_order >= rule.order_up_to >= rule.reorder_point
    # no whole pack too many, unless the MOQ demanded it
    if q - rule.pack_size >= rule.min_order_quantity:
        assert d.projected + q - rule.pack_size < rule.order_up_to


def test_auto_reorder_point_is_lead_time_demand_plus_safety_stock() -> None:
    demand = [10, 12, 8, 11, 9, 10, 10, 14, 6, 10]  # mean 10, sample σ = √(42/9) ≈ 2.160
    r = reorder_point_from_demand(demand, lead_time_days=9, service_level=0.95)
    assert r.mean_daily_demand == 10
    assert r.z == pytest.approx(1.6449, abs=1e-4)
    assert r.safety_stock == 11  # ceil(1.6449 × 2.160 × 3) = ceil(10.66)
    assert r.reorder_point == 90 + 11


def test_steady_demand_needs_no_safety_stock() -> None:
    r = reorder_point_from_demand([5] * 30, lead_time_days=4, service_level=0.99)
    assert (r.safety_stock, r.reorder_point) == (0, 20)


@pytest.mark.parametrize("level", [0.3, 1.0, 1.5])
def test_service_level_outside_range_is_refused(level: float) -> None:
    with pytest.raises(PolicyError):
        reorder_point_from_demand([1, 2], lead_time_days=3, service_level=level)


def test_empty_demand_window_is_refused() -> None:
    with pytest.raises(PolicyError, match="no demand history"):
        reorder_point_from_demand([], lead_time_days=3, service_level=0.9)


def test_days_without_sales_count_as_zero_demand() -> None:
    start = date(2026, 11, 1)
    sales = [(date(2026, 11, 1), 3), (date(2026, 11, 3), 2), (date(2026, 11, 3), 1)]
    sales.append((date(2026, 10, 31), 99))  # outside the window
    assert daily_demand(sales, start=start, days=4) == [3, 0, 3, 0]


demand_windows = st.lists(st.integers(0, 200), min_size=2, max_size=90)


@given(demand_windows, st.integers(0, 60), st.floats(0.5, 0.98), st.floats(0.001, 0.019))
def test_a_higher_service_level_never_lowers_the_reorder_point(
    demand: list[int], lead: int, level: float, step: float
) -> None:
    low = reorder_point_from_demand(demand, lead_time_days=lead, service_level=level)
    high = reorder_point_from_demand(demand, lead_time_days=lead, service_level=level + step)
    assert high.reorder_point >= low.reorder_point >= 0
    assert low.reorder_point >= low.safety_stock


@given(demand_windows, st.integers(0, 59), st.floats(0.5, 0.99))
def test_a_longer_lead_time_never_lowers_the_reorder_point(
    demand: list[int], lead: int, level: float
) -> None:
    shorter = reorder_point_from_demand(demand, lead_time_days=lead, service_level=level)
    longer = reorder_point_from_demand(demand, lead_time_days=lead + 1, service_level=level)
    assert longer.reorder_point >= shorter.reorder_point


@pytest.mark.parametrize("field", ["order_up_to", "pack_size", "min_order_quantity"])
def test_a_rule_beyond_what_one_po_line_carries_is_refused_naming_it(field: str) -> None:
    values = {"reorder_point": 0, "order_up_to": 10, field: MAX_QUANTITY + 1}
    with pytest.raises(PolicyError, match=field.replace("_", " ")):
        ReplenishmentRule(**values)


def test_however_far_stock_is_oversold_a_suggestion_fits_one_po_line_in_whole_packs() -> None:
    rule = ReplenishmentRule(reorder_point=0, order_up_to=MAX_QUANTITY, pack_size=7)
    oversold = StockPosition(on_hand=0, inbound=0, reserved=MAX_QUANTITY)
    d = decide(oversold, rule, open_po_line=False)
    assert d.decision is Decision.ORDER
    assert d.order_quantity % 7 == 0 and MAX_QUANTITY - 7 < d.order_quantity <= MAX_QUANTITY


def test_a_minimum_that_whole_packs_carry_past_the_bound_is_refused() -> None:
    with pytest.raises(PolicyError, match="whole packs"):
        ReplenishmentRule(
            reorder_point=0, order_up_to=10, pack_size=400_000_000, min_order_quantity=900_000_000
        )
