"""Available-to-sell per channel: on_hand − reserved − safety stock, then the channel's rule."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal


@dataclass(frozen=True, slots=True)
class Rule:
    """A channel's allocation rule (share of available, units held back, cap; 0 = no cap)."""

    share: Decimal = Decimal(1)
    buffer: int = 0
    cap: int = 0
    locations: tuple[str, ...] = ("main",)


@dataclass(frozen=True, slots=True)
class Level:
    on_hand: int
    reserved: int
    safety_stock: int = 0

    @property
    def available(self) -> int:
        """Sellable units at one location; never negative."""
        return max(0, self.on_hand - self.reserved - self.safety_stock)


def channel_available(levels: Iterable[Level], rule: Rule) -> int:
    """What the channel may sell: share of the locations' total, rounded down, minus the buffer,
    at most the cap, never negative."""
    base = sum(level.available for level in levels)
    shared = int((Decimal(base) * rule.share).to_integral_value(rounding=ROUND_FLOOR))
    value = shared - rule.buffer
    if rule.cap:
        value = min(value, rule.cap)
    return max(0, value)


def share_from_float(share: float) -> Decimal:
    """Config shares are floats in TOML; keep four decimals exactly."""
    if not math.isfinite(share):
        raise ValueError("share must be finite")
    return Decimal(str(share)).quantize(Decimal("0.0001"))
