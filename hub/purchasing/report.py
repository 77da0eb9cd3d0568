"""`hub stock report`: how fast each SKU sells, how long its stock lasts, and what is not moving.

Figures per (SKU, location) over a window of `days` whole days ending yesterday (today is not
complete; the same window rule as the `auto` reorder point):

- **velocity**: average units sold per day (sales in the movement journal, net of nothing: a
  return is not negative demand, the same series the `auto` reorder point uses);
- **demand σ**: sample standard deviation of the daily units sold, days without sales as 0;
- **days of cover**: available (on hand − reserved) ÷ velocity; null when nothing sold (cover is
  unbounded);
- **turnover**: units sold in the window ÷ average on hand over the window, where the average is
  taken over the closing on-hand of each day of the window, rebuilt backwards from today's
  on hand and the journal; `turnover_annual` scales it to 365 days. Null when the average on
  hand is 0;
- **reorder point in effect**: the fixed value, or for `auto` the value computed now from the
  policy's own demand window, lead time and service level, with those inputs (safety stock =
  z × σ × √lead time, reorder point = mean × lead time + safety stock, as `policy` defines);
- **slow mover**: stock on hand and either no sales in the window or cover above `slow_days`.

The maths are pure functions over numbers; `stock_report` reads the store once per table.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.purchasing import policy
from hub.purchasing.tables import ReplenishmentPolicy
from hub.store.models import Movement, Stock

_TWO = Decimal("0.01")


def _d(x: float | Decimal) -> Decimal:
    return Decimal(str(x)).quantize(_TWO, ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class ReorderPointInEffect:
    """`fixed`: `value` is the policy's number. `auto`: computed from demand with these inputs
    (None when the history cannot give one; `error` says why)."""

    mode: str
    value: int | None
    supplier: str
    lead_time_days: int
    service_level: Decimal | None = None
    window_days: int | None = None
    z: Decimal | None = None
    mean_daily_demand: Decimal | None = None
    demand_stdev: Decimal | None = None
    safety_stock: int | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class SkuFigures:
    sku: str
    location: str
    on_hand: int
    reserved: int
    available: int
    inbound: int
    sold: int
    velocity: Decimal
    demand_stdev: Decimal
    days_of_cover: Decimal | None
    average_on_hand: Decimal
    turnover: Decimal | None
    turnover_annual: Decimal | None
    slow_mover: bool
    slow_reason: str | None  # no_sales | cover
    reorder_point: ReorderPointInEffect | None


def demand_stdev(series: Sequence[int]) -> float:
    """Sample standard deviation (n − 1), 0 for fewer than two days."""
    return statistics.stdev(series) if len(series) > 1 else 0.0


def closing_on_hand(
    on_hand_now: int, deltas: Iterable[tuple[date, int]], start: date, days: int
) -> list[int]:
    """Closing on hand of each day of [start, start + days), rebuilt backwards from `on_hand_now`
    (today's, after every journalled movement) and the movements `(day, delta)` since `start`."""
    after = [0] * (days + 1)  # after[i]: Σ delta of movements on day i or later (i = days: today+)
    for day, delta in deltas:
        i = min(max((day - start).days, 0), days)
        after[i] += delta
    closing = []
    later = sum(after)
    for i in range(days):
        later -= after[i]  # movements after day i's close
        closing.append(on_hand_now - later)
    return closing


def figures(
    *,
    sku: str,
    location: str,
    on_hand: int,
    reserved: int,
    inbound: int,
    daily_sales: Sequence[int],
    daily_closing: Sequence[int],
    slow_days: int = 90,
    reorder_point: ReorderPointInEffect | None = None,
) -> SkuFigures:
    """The report's figures for one SKU and location (see the module docstring)."""
    if not daily_sales or len(daily_sales) != len(daily_closing):
        raise policy.PolicyError("the report needs one sales and one closing figure per day")
    if slow_days < 0:
        raise policy.PolicyError(f"slow-mover threshold {slow_days} days is negative")
    days = len(daily_sales)
    sold = sum(daily_sales)
    available = on_hand - reserved
    velocity = Decimal(sold) / days
    cover = None if sold == 0 else Decimal(max(available, 0)) / velocity
    average = Decimal(sum(daily_closing)) / days
    turnover = None if average <= 0 else Decimal(sold) / average
    if on_hand <= 0:
        slow_reason = None
    elif sold == 0:
        slow_reason = "no_sales"
    elif cover is not None and cover > slow_days:
        slow_reason = "cover"
    else:
        slow_reason = None
    return SkuFigures(
        sku=sku,
        location=location,
        on_hand=on_hand,
        reserved=reserved,
        available=available,
        inbound=inbound,
        sold=sold,
        velocity=_d(velocity),
        demand_stdev=_d(demand_stdev(daily_sales)),
        days_of_cover=None if cover is None else _d(cover),
        average_on_hand=_d(average),
        turnover=None if turnover is None else _d(turnover),
        turnover_annual=None if turnover is None else _d(turnover * 365 / days),
        slow_mover=slow_reason is not None,
        slow_reason=slow_reason,
        reorder_point=reorder_point,
    )


def reorder_point_in_effect(
    pol: ReplenishmentPolicy, sales: Iterable[tuple[date, int]], today: date
) -> ReorderPointInEffect:
    """The policy's reorder point: fixed, or `auto` computed from `sales` (day, units) exactly as
    replenishment computes it today."""
    if not pol.auto_reorder:
        return ReorderPointInEffect(
            mode="fixed",
            value=pol.reorder_point,
            supplier=pol.supplier,
            lead_time_days=pol.lead_time_days,
        )
    auto = ReorderPointInEffect(
        mode="auto",
        value=None,
        supplier=pol.supplier,
        lead_time_days=pol.lead_time_days,
        service_level=Decimal(pol.service_level),
        window_days=pol.demand_window_days,
    )
    try:
        start = policy.window_start(today, pol.demand_window_days)
        series = policy.daily_demand(sales, start=start, days=pol.demand_window_days)
        rop = policy.reorder_point_from_demand(
            series, lead_time_days=pol.lead_time_days, service_level=float(pol.service_level)
        )
    except policy.PolicyError as exc:
        return replace(auto, error=str(exc))
    return replace(
        auto,
        value=rop.reorder_point,
        z=_d(rop.z),
        mean_daily_demand=_d(rop.mean_daily_demand),
        demand_stdev=_d(rop.demand_stdev),
        safety_stock=rop.safety_stock,
    )


def _day(at: datetime) -> date:
    return (at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)).date()


async def stock_report(
    session: AsyncSession,
    *,
    today: date,
    days: int = 30,
    slow_days: int = 90,
    sku: str | None = None,
) -> list[SkuFigures]:
    """Figures for every stocked (SKU, location), or one SKU's locations, sorted by SKU."""
    if days < 1:
        raise policy.PolicyError("the report window needs at least one day")
    start = policy.window_start(today, days)
    sq = select(Stock).order_by(Stock.sku, Stock.location)
    pq = select(ReplenishmentPolicy)
    if sku is not None:
        sq, pq = sq.where(Stock.sku == sku), pq.where(ReplenishmentPolicy.sku == sku)
    stock = list((await session.execute(sq)).scalars().all())
    policies = {(p.sku, p.location): p for p in (await session.execute(pq)).scalars().all()}
    windows = [days] + [p.demand_window_days for p in policies.values() if p.auto_reorder]
    earliest = policy.window_start(today, max(windows))
    since = datetime.combine(min(start, earliest), datetime.min.time(), tzinfo=UTC)
    mq = select(Movement.sku, Movement.location, Movement.kind, Movement.at, Movement.delta).where(
        Movement.at >= since
    )
    if sku is not None:
        mq = mq.where(Movement.sku == sku)
    sales: dict[tuple[str, str], list[tuple[date, int]]] = defaultdict(list)
    deltas: dict[tuple[str, str], list[tuple[date, int]]] = defaultdict(list)
    for m in (await session.execute(mq)).all():
        day = _day(m.at)
        if day >= start:
            deltas[(m.sku, m.location)].append((day, m.delta))
        if m.kind == "sale":
            sales[(m.sku, m.location)].append((day, -m.delta))
    out = []
    for row in stock:
        key = (row.sku, row.location)
        pol = policies.get(key)
        out.append(
            figures(
                sku=row.sku,
                location=row.location,
                on_hand=row.on_hand,
                reserved=row.reserved,
                inbound=row.inbound,
                daily_sales=policy.daily_demand(sales[key], start=start, days=days),
                daily_closing=closing_on_hand(row.on_hand, deltas[key], start, days),
                slow_days=slow_days,
                reorder_point=None
                if pol is None
                else reorder_point_in_effect(pol, sales[key], today),
            )
        )
    return out


def to_json(
    rows: Sequence[SkuFigures], *, today: date, days: int, slow_days: int
) -> dict[str, Any]:
    """One JSON document: the window, then one object per SKU and location (Decimals as
    strings, unbounded cover as null)."""

    def plain(v: Any) -> Any:
        if isinstance(v, Decimal):
            return str(v)
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return {
        "window": {
            "days": days,
            "from": policy.window_start(today, days).isoformat(),
            "to": today.isoformat(),  # exclusive: today is not complete
            "slow_days": slow_days,
        },
        "skus": [plain(asdict(r)) for r in rows],
        "slow_movers": sum(1 for r in rows if r.slow_mover),
    }
