"""Moving-average costing (移动加权平均法), pure functions on Decimal.

Rules of rounding, chosen so that the books never drift from the warehouse:

- The average cost of a stock row is kept at 6 decimals (`COST_QUANTUM`, ROUND_HALF_UP), the
  scale of `stock.avg_cost`.
- The *value* of a stock row is `on_hand × avg_cost` rounded to the currency's minor unit
  (ROUND_HALF_UP): `value()`. The inventory account must equal the sum of these values.
- Every amount that moves inventory is a difference of values: `value(after) − value(before)`
  (`value_change()`). Issuing 1 of 3 units at 3.333333 takes 10.00 − 6.67 = 3.33, the next one
  6.67 − 3.33 = 3.34, the last 3.33: the rounding is absorbed by whichever movement happens, and
  the inventory account telescopes to exactly Σ value(on_hand, avg_cost) — no drift, ever.
- On receipt the supplier's amount (`quantity × unit_cost`, rounded) and the change in inventory
  value can differ by the rounding of the new average (or, when stock was negative, by the cost of
  units issued before they were received); the voucher rules post that difference to the
  purchase price variance account.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from schemas.base import minor_unit

COST_QUANTUM = Decimal("0.000001")
ZERO = Decimal(0)


def quantize_cost(cost: Decimal) -> Decimal:
    """A unit cost at the stored scale (6 decimals)."""
    return cost.quantize(COST_QUANTUM, rounding=ROUND_HALF_UP)


def round_amount(amount: Decimal, currency: str) -> Decimal:
    """An amount rounded to the currency's minor unit, half up (0.005 CNY → 0.01)."""
    return amount.quantize(minor_unit(currency), rounding=ROUND_HALF_UP)


def receive(qty_on_hand: int, avg_cost: Decimal, qty: int, unit_cost: Decimal) -> Decimal:
    """The new average cost after `qty` units arrive at `unit_cost`.

    value = on_hand × avg + qty × unit_cost; average = value / (on_hand + qty). When nothing (or
    less than nothing) was on hand, the new average is the unit cost: a negative balance has no
    meaningful value to average with.
    """
    if qty <= 0:
        raise ValueError("a receipt adds a positive quantity")
    if unit_cost < 0:
        raise ValueError("a unit cost is never negative")
    if qty_on_hand <= 0:
        return quantize_cost(unit_cost)
    value = qty_on_hand * avg_cost + qty * unit_cost
    return quantize_cost(value / (qty_on_hand + qty))


def issue(qty_on_hand: int, avg_cost: Decimal, qty: int) -> Decimal:
    """The average after `qty` units leave: unchanged (moving average)."""
    if qty <= 0:
        raise ValueError("an issue removes a positive quantity")
    return avg_cost


def value(qty_on_hand: int, avg_cost: Decimal, currency: str) -> Decimal:
    """What a stock row is worth in the books: on_hand × avg_cost, rounded per currency."""
    return round_amount(qty_on_hand * avg_cost, currency)


def value_change(before: tuple[int, Decimal], after: tuple[int, Decimal], currency: str) -> Decimal:
    """The inventory amount of a movement: value(after) − value(before), signed."""
    return value(after[0], after[1], currency) - value(before[0], before[1], currency)


def issue_amount(qty_on_hand: int, avg_cost: Decimal, qty: int, currency: str) -> Decimal:
    """Cost of `qty` units leaving a row (cost of sales): value(before) − value(after)."""
    return -value_change((qty_on_hand, avg_cost), (qty_on_hand - qty, avg_cost), currency)


def receipt_amount(
    qty_on_hand: int, avg_cost: Decimal, qty: int, unit_cost: Decimal, currency: str
) -> tuple[Decimal, Decimal]:
    """(new average, inventory amount) of receiving `qty` units at `unit_cost`."""
    new_avg = receive(qty_on_hand, avg_cost, qty, unit_cost)
    return new_avg, value_change((qty_on_hand, avg_cost), (qty_on_hand + qty, new_avg), currency)
