"""Available-to-sell per channel: on_hand − reserved − safety stock, then the channel's rule.

Two kinds of location hold no goods of the hub's own (see README, "Dropship and presale"):
- `dropship.{supplier}`: what a supplier's stock feed last reported it can ship for the SKU;
  a channel whose rule has `dropship` sells it on top of its own locations;
- `presale`: units promised against confirmed inbound stock (backorders); a channel whose rule has
  `presale` is shown them apart (`presale_available`), never mixed into stock on hand.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from typing import NamedTuple

DROPSHIP_PREFIX = "dropship."
PRESALE = "presale"
MAX_LOCATION = 64  # schemas.base.Location


def dropship_location(supplier: str) -> str:
    """The virtual location of a supplier's reported stock."""
    location = f"{DROPSHIP_PREFIX}{supplier}"
    if len(location) > MAX_LOCATION:
        raise ValueError(
            f"supplier id {supplier!r} is too long for a dropship location "
            f"(at most {MAX_LOCATION - len(DROPSHIP_PREFIX)} characters)"
        )
    return location


def is_dropship(location: str) -> bool:
    return location.startswith(DROPSHIP_PREFIX)


def is_virtual(location: str) -> bool:
    """A location whose units are not in one of the hub's warehouses."""
    return location == PRESALE or is_dropship(location)


@dataclass(frozen=True, slots=True)
class Rule:
    """A channel's allocation rule (share of available, units held back, cap; 0 = no cap).
    `dropship`: suppliers' reported stock counts too; `presale`: backorders may be taken."""

    share: Decimal = Decimal(1)
    buffer: int = 0
    cap: int = 0
    locations: tuple[str, ...] = ("main",)
    dropship: bool = False
    presale: bool = False

    def sells_from(self, location: str) -> bool:
        """Whether stock at `location` counts in this channel's available-to-sell."""
        return location in self.locations or (self.dropship and is_dropship(location))


class Level(NamedTuple):
    """One location's stock as the allocation sees it (a tuple: the core builds one per row and
    channel of every batch, and a frozen dataclass cost 2.6 times as much to make)."""

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
    if rule.share == 1:  # the common rule: no Decimal arithmetic for a whole share
        shared = base
    else:
        shared = int((Decimal(base) * rule.share).to_integral_value(rounding=ROUND_FLOOR))
    value = shared - rule.buffer
    if rule.cap:
        value = min(value, rule.cap)
    return max(0, value)


def presale_available(presale: Level | None, rule: Rule) -> int:
    """Backorders the channel may still take: the presale location's free units (0 for a
    channel without `presale`). Not shared and not buffered: the share of confirmed inbound that
    may be presold is the SKU's own setting."""
    if presale is None or not rule.presale:
        return 0
    return presale.available


def presale_target(share: Decimal, confirmed_inbound: int) -> int:
    """Units that may be promised against confirmed inbound: floor(share × inbound)."""
    if confirmed_inbound <= 0 or share <= 0:
        return 0
    return int((Decimal(confirmed_inbound) * share).to_integral_value(rounding=ROUND_FLOOR))


def share_from_float(share: float) -> Decimal:
    """Config shares are floats in TOML; keep four decimals exactly."""
    if not math.isfinite(share):
        raise ValueError("share must be finite")
    return Decimal(str(share)).quantize(Decimal("0.0001"))
