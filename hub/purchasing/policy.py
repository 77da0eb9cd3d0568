"""Replenishment rules: when to order, how much, and reorder points from measured demand.

Pure functions over numbers the store hands in; the core decides in its transaction and issues the
purchase order through the outbox.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

from schemas.base import MAX_QUANTITY


class PolicyError(ValueError):
    """A replenishment rule or input that cannot be decided on; the message says which."""


@dataclass(frozen=True, slots=True)
class ReplenishmentRule:
    """Per SKU and location. Quantities are units; `max_stock` of None means no high-stock check."""

    reorder_point: int
    order_up_to: int
    pack_size: int = 1
    min_order_quantity: int = 1
    max_stock: int | None = None

    def __post_init__(self) -> None:
        if self.reorder_point < 0:
            raise PolicyError(f"reorder point {self.reorder_point} is negative")
        if self.order_up_to < self.reorder_point:
            raise PolicyError(
                f"order-up-to level {self.order_up_to} is below the reorder point "
                f"{self.reorder_point}"
            )
        if self.pack_size < 1:
            raise PolicyError(f"pack size {self.pack_size} must be at least 1")
        if self.min_order_quantity < 1:
            raise PolicyError(f"minimum order quantity {self.min_order_quantity} must be >= 1")
        if self.max_stock is not None and self.max_stock < self.order_up_to:
            raise PolicyError(
                f"max stock {self.max_stock} is below the order-up-to level {self.order_up_to}"
            )
        for name in ("order_up_to", "pack_size", "min_order_quantity"):
            if getattr(self, name) > MAX_QUANTITY:
                raise PolicyError(f"{name.replace('_', ' ')} is above {MAX_QUANTITY:,} units")
        if round_up_to_pack(self.min_order_quantity, self.pack_size) > MAX_QUANTITY:
            raise PolicyError(
                f"minimum order quantity {self.min_order_quantity} in whole packs of "
                f"{self.pack_size} is above {MAX_QUANTITY:,} units"
            )


@dataclass(frozen=True, slots=True)
class StockPosition:
    on_hand: int
    inbound: int
    reserved: int

    @property
    def projected(self) -> int:
        """What will be free once every open PO line arrives: on_hand + inbound − reserved."""
        return self.on_hand + self.inbound - self.reserved


class Decision(StrEnum):
    ORDER = "order"
    HOLD_OPEN_PO = "hold_open_po"  # low, but a PO line for the SKU is already open
    ENOUGH = "enough"


@dataclass(frozen=True, slots=True)
class ReplenishmentDecision:
    decision: Decision
    projected: int
    order_quantity: int
    high_stock: bool

    @property
    def projected_after_order(self) -> int:
        return self.projected + self.order_quantity


def round_up_to_pack(quantity: int, pack_size: int) -> int:
    return -(-quantity // pack_size) * pack_size


def order_quantity(projected: int, rule: ReplenishmentRule) -> int:
    """Up-to level − projected, rounded up to whole packs, and at least the MOQ (in whole packs);
    at most the whole packs one PO line can carry (`MAX_QUANTITY`), however far stock is oversold."""
    need = max(rule.order_up_to - projected, 1)
    wanted = round_up_to_pack(max(need, rule.min_order_quantity), rule.pack_size)
    return min(wanted, MAX_QUANTITY // rule.pack_size * rule.pack_size)


def decide(
    position: StockPosition, rule: ReplenishmentRule, *, open_po_line: bool
) -> ReplenishmentDecision:
    """Order when projected stock has fallen to the reorder point and no PO line is open for it."""
    projected = position.projected
    high = rule.max_stock is not None and projected > rule.max_stock
    if projected > rule.reorder_point:
        return ReplenishmentDecision(Decision.ENOUGH, projected, 0, high)
    if open_po_line:
        return ReplenishmentDecision(Decision.HOLD_OPEN_PO, projected, 0, high)
    return ReplenishmentDecision(Decision.ORDER, projected, order_quantity(projected, rule), high)


# --- reorder points from demand --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DemandReorderPoint:
    mean_daily_demand: float
    demand_stdev: float
    z: float
    safety_stock: int
    reorder_point: int


def service_level_z(service_level: float) -> float:
    if not 0.5 <= service_level < 1:
        raise PolicyError(f"service level {service_level} must be in [0.5, 1)")
    return statistics.NormalDist().inv_cdf(service_level)


def reorder_point_from_demand(
    daily_demand: Sequence[int], *, lead_time_days: float, service_level: float
) -> DemandReorderPoint:
    """`auto` reorder point.

    safety stock = z × σ(daily demand) × √lead time, reorder point = mean daily demand × lead time
    + safety stock; both rounded up to whole units. σ is the sample standard deviation over the
    window (days without sales count as 0, see `daily_demand`).
    """
    if not daily_demand:
        raise PolicyError("no demand history: the window has no days")
    if any(d < 0 for d in daily_demand):
        raise PolicyError("daily demand cannot be negative")
    if lead_time_days < 0:
        raise PolicyError(f"lead time {lead_time_days} days is negative")
    z = service_level_z(service_level)
    mean = statistics.fmean(daily_demand)
    sigma = statistics.stdev(daily_demand) if len(daily_demand) > 1 else 0.0
    safety = _ceil(z * sigma * math.sqrt(lead_time_days))
    rop = _ceil(mean * lead_time_days) + safety
    return DemandReorderPoint(mean, sigma, z, safety, rop)


def _ceil(x: float) -> int:
    # guard against 3.0000000000000004 becoming 4
    return max(0, math.ceil(round(x, 9)))


def daily_demand(sales: Iterable[tuple[date, int]], *, start: date, days: int) -> list[int]:
    """Units sold per day over [start, start + days), days without sales as 0."""
    if days < 1:
        raise PolicyError("the demand window needs at least one day")
    series = [0] * days
    for day, qty in sales:
        i = (day - start).days
        if 0 <= i < days:
            series[i] += qty
    return series


def window_start(today: date, window_days: int) -> date:
    """First day of a window of `window_days` days ending yesterday (today is not complete)."""
    return today - timedelta(days=window_days)
