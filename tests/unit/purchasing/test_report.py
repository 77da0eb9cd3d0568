"""The stock report's maths on numbers worked out by hand."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest

from hub.purchasing.policy import PolicyError
from hub.purchasing.report import (
    SkuFigures,
    closing_on_hand,
    figures,
    reorder_point_in_effect,
    to_json,
)
from hub.purchasing.tables import ReplenishmentPolicy

D = Decimal
TODAY = date(2026, 12, 1)


def _f(
    on_hand: int, sales: list[int], closing: list[int], *, reserved: int = 0, **kw: Any
) -> SkuFigures:
    return figures(
        sku="A",
        location="main",
        on_hand=on_hand,
        reserved=reserved,
        inbound=kw.pop("inbound", 0),
        daily_sales=sales,
        daily_closing=closing,
        **kw,
    )


def test_velocity_sigma_cover_and_turnover_of_a_selling_sku() -> None:
    # 12 units over 4 days; σ = √((1 + 1 + 9 + 9) / 3) = 2.582; 24 available / 3 a day = 8 days;
    # average closing on hand (40 + 36 + 36 + 30) / 4 = 35.5, turnover 12 / 35.5 = 0.338,
    # over a year 0.338 × 365 / 4 = 30.85.
    f = _f(30, [2, 4, 0, 6], [40, 36, 36, 30], reserved=6, inbound=12)
    assert (f.sold, f.available, f.inbound) == (12, 24, 12)
    assert f.velocity == D("3.00") and f.demand_stdev == D("2.58")
    assert f.days_of_cover == D("8.00")
    assert f.average_on_hand == D("35.50")
    assert (f.turnover, f.turnover_annual) == (D("0.34"), D("30.85"))
    assert not f.slow_mover and f.slow_reason is None


def test_stock_that_did_not_sell_has_unbounded_cover_and_is_a_slow_mover() -> None:
    f = _f(5, [0] * 30, [5] * 30)
    assert f.velocity == D("0.00") and f.days_of_cover is None
    assert f.turnover == D("0.00")
    assert (f.slow_mover, f.slow_reason) == (True, "no_sales")


def test_nothing_on_hand_is_no_slow_mover_and_has_no_turnover() -> None:
    f = _f(0, [0, 0], [0, 0])
    assert not f.slow_mover and f.turnover is None and f.turnover_annual is None


def test_cover_above_the_threshold_makes_a_slow_mover() -> None:
    # one unit in 30 days, 100 available: 3000 days of cover
    f = _f(100, [1] + [0] * 29, [100] * 30, slow_days=90)
    assert f.days_of_cover == D("3000.00")
    assert (f.slow_mover, f.slow_reason) == (True, "cover")
    assert not _f(100, [1] + [0] * 29, [100] * 30, slow_days=3000).slow_mover


def test_cover_counts_only_what_is_not_reserved() -> None:
    f = _f(10, [5, 5], [20, 10], reserved=10)
    assert f.days_of_cover == D("0.00") and not f.slow_mover


def test_closing_on_hand_is_rebuilt_backwards_from_the_journal() -> None:
    start = date(2026, 11, 28)
    moves = [
        (start, -2),
        (start + timedelta(days=1), 5),
        (start + timedelta(days=2), -1),
        (start + timedelta(days=3), -4),  # today: after every close of the window
    ]
    # today 10; before today's -4: 14 (day 3's close); before its -1: 15; before its +5: 10
    assert closing_on_hand(10, moves, start, 3) == [10, 15, 14]
    assert closing_on_hand(7, [], start, 2) == [7, 7]


def test_mismatched_series_and_a_negative_threshold_are_refused() -> None:
    with pytest.raises(PolicyError, match="one sales and one closing"):
        _f(1, [1, 2], [1])
    with pytest.raises(PolicyError, match="negative"):
        _f(1, [1], [1], slow_days=-1)


def _policy(**kw: object) -> ReplenishmentPolicy:
    base: dict[str, object] = {
        "sku": "A",
        "location": "main",
        "supplier": "acme-supply",
        "order_up_to": 40,
        "lead_time_days": 4,
        "auto_reorder": False,
        "reorder_point": 10,
        "service_level": D("0.95"),
        "demand_window_days": 4,
    }
    return ReplenishmentPolicy(**(base | kw))


def test_a_fixed_reorder_point_is_shown_as_it_is() -> None:
    rop = reorder_point_in_effect(_policy(), [], TODAY)
    assert (rop.mode, rop.value, rop.supplier, rop.lead_time_days) == (
        "fixed",
        10,
        "acme-supply",
        4,
    )
    assert rop.safety_stock is None


def test_an_auto_reorder_point_shows_its_inputs() -> None:
    # daily demand 2, 4, 0, 6 over the 4 days before today: mean 3, σ 2.582, z(95 %) 1.645;
    # safety stock ⌈1.645 × 2.582 × √4⌉ = ⌈8.49⌉ = 9; reorder point 3 × 4 + 9 = 21
    sales = [(TODAY - timedelta(days=4 - i), q) for i, q in enumerate([2, 4, 0, 6])]
    sales.append((TODAY, 50))  # today is not complete and does not count
    rop = reorder_point_in_effect(_policy(auto_reorder=True, reorder_point=None), sales, TODAY)
    assert (rop.mode, rop.value, rop.safety_stock) == ("auto", 21, 9)
    assert (rop.mean_daily_demand, rop.demand_stdev, rop.z) == (D("3.00"), D("2.58"), D("1.64"))
    assert (rop.window_days, rop.service_level) == (4, D("0.95"))


def test_an_auto_reorder_point_that_cannot_be_computed_says_why() -> None:
    pol = _policy(auto_reorder=True, reorder_point=None, service_level=D("0.3"))
    rop = reorder_point_in_effect(pol, [], TODAY)
    assert rop.value is None and rop.error is not None and "service level" in rop.error


def test_json_has_the_window_decimals_as_strings_and_null_cover() -> None:
    row = _f(5, [0, 0], [5, 5])
    doc = to_json([row], today=TODAY, days=2, slow_days=90)
    assert doc["window"] == {"days": 2, "from": "2026-11-29", "to": "2026-12-01", "slow_days": 90}
    [sku] = doc["skus"]
    assert sku["velocity"] == "0.00" and sku["days_of_cover"] is None
    assert sku["reorder_point"] is None and doc["slow_movers"] == 1
