"""The reservation rules, applied in memory to the rows a batch has locked.

A `StockBook` holds the locked stock rows, orders and their reservation lines. Each `apply_*`
method takes one canonical message and changes the book, recording journal movements and the
messages to publish. The caller (hub.core.batch) loads the book, applies a batch of messages in
offset order, and writes the changed rows in one transaction. Nothing here does I/O.

Invariants kept here (and enforced again by the database's check constraints):
- reserved ≤ on_hand for every (SKU, location), or reserved = 0 when on_hand ≤ 0;
- an order reserves all its lines or none;
- every on_hand change is a movement; on_hand = Σ movements.

Virtual locations (hub.domain.allocation): an order line of a channel that sells dropship or
presale takes what its own location lacks (the shortfall, not the whole line) from the SKU's
`dropship.{supplier}` locations, then from `presale` (a backorder). Each part is a reservation
line of its own location, so a fulfilment takes the units from where they were reserved, and a
lower supplier report or confirmed inbound bumps the newest holders like any stock loss.
"""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from hub.domain.allocation import PRESALE, is_dropship, is_virtual
from hub.finance import costing
from schemas.base import CanonicalMessage
from schemas.orders import (
    FulfilledLine,
    OrderCancelled,
    OrderFulfilled,
    OrderPlaced,
    OrderReopened,
    OrderReturned,
    ReturnedLine,
)
from schemas.reservations import (
    RejectedLine,
    RejectReason,
    ReleaseReason,
    ReservationRejected,
    ReservationReleased,
    ReservedLine,
    StockReserved,
)
from schemas.stock import GoodsReceived, StockAdjusted, StockCounted, StockTransferred

StockKey = tuple[str, str]  # (sku, location)
REASON = 64  # the journal's reason: "to " and a location of 64 characters are cut to fit


class NeedsBumpData(Exception):
    """Stock fell below reservations on rows whose reservations were not loaded; reload with them."""

    def __init__(self, skus: set[str]) -> None:
        super().__init__(f"reservations needed for {sorted(skus)}")
        self.skus = skus


@dataclass(slots=True)
class StockRow:
    sku: str
    location: str
    on_hand: int = 0
    reserved: int = 0
    inbound: int = 0
    safety_stock: int = 0
    avg_cost: Decimal = Decimal(0)
    dirty: bool = False
    # When the last count applied to this stock was taken (`apply_counted`): an older count
    # changes nothing, also when that one found no difference and journaled nothing.
    counted_at: datetime | None = None

    @property
    def key(self) -> StockKey:
        return (self.sku, self.location)

    @property
    def free(self) -> int:
        """Units that can still be reserved."""
        return max(0, self.on_hand - self.reserved)


@dataclass(slots=True)
class ResLine:
    order_key: str
    sku: str
    location: str
    quantity: int = 0
    open: int = 0
    shipped: int = 0
    shipped_unreserved: int = 0
    returned: int = 0
    released: int = 0
    seq: int = 0
    cancelled: int = 0  # units the order's cancellation released: a reopening takes them again
    refunded: int = 0  # units a refund took off before they shipped (`as_shipped`)
    new: bool = False
    dirty: bool = False

    @property
    def key(self) -> StockKey:
        return (self.sku, self.location)


@dataclass(slots=True)
class OrderRow:
    order_key: str
    account: str = ""
    channel: str = ""
    status: str = "new"
    placed: bool = False
    cancelled: bool = False
    currency: str | None = None
    total: Decimal | None = None
    placed_at: datetime | None = None
    open_changed_at: datetime | None = None  # the shop's time of the last cancel or reopen
    lines: dict[StockKey, ResLine] = field(default_factory=dict)
    dirty: bool = False


@dataclass(slots=True)
class MovementRow:
    sku: str
    location: str
    delta: int
    kind: str
    ref: str
    cause: str
    at: datetime
    reason: str = ""
    unit_cost: Decimal | None = None


@dataclass(slots=True)
class Outcome:
    """Counters for metrics and the demo summary."""

    accepted: int = 0
    rejected: int = 0
    lines_refused: int = 0
    released: int = 0
    bumped: int = 0


_seq = itertools.count()


def _next_seq() -> int:
    # Decision order across replicas (nanoseconds), unique within this process.
    return time.time_ns() // 1000 * 1000 + next(_seq) % 1000


NO_PO = "-"


def receipt_po(po_number: str | None) -> str:
    """What a receipt's movement keeps of its PO (in `reason`): the PO, or `NO_PO`. A receipt
    journaled before POs were kept has "", which may have been any."""
    return po_number or NO_PO


class StockBook:
    def __init__(
        self,
        stock: dict[StockKey, StockRow],
        orders: dict[str, OrderRow],
        *,
        bump_loaded: set[str] | None = None,
        dropship_channels: frozenset[str] = frozenset(),
        presale_channels: frozenset[str] = frozenset(),
        presale_closed: frozenset[str] = frozenset(),
    ) -> None:
        self.stock = stock
        self.orders = orders
        # Channels whose orders may take suppliers' reported stock, and backorders.
        self.dropship_channels = dropship_channels
        self.presale_channels = presale_channels
        # SKUs whose presale share is 0: they keep the backorders taken and take no new ones.
        self.presale_closed = presale_closed
        self._virtual: dict[str, list[StockRow]] = defaultdict(list)
        for row in stock.values():
            if is_virtual(row.location):
                self._virtual[row.sku].append(row)
        # SKUs for which every order holding a reservation is loaded (so stock may be bumped).
        self.bump_loaded = bump_loaded or set()
        self.movements: list[MovementRow] = []
        self._moved: dict[StockKey, list[MovementRow]] = defaultdict(list)  # by stock row
        # For each stocktake of the batch, (sku, location, counted_at): the units journaled
        # after it before the batch, and whether a later stocktake is among them (the caller
        # loads them: `since_count`).
        self.since_count: dict[tuple[str, str, datetime], tuple[int, bool]] = {}
        self.counted: set[StockKey] = set()  # rows whose last count's time changed
        self.out: list[tuple[CanonicalMessage, str]] = []  # (message, cause message id)
        self.touched: set[str] = set()
        self.outcome = Outcome()

    # -- helpers -----------------------------------------------------------------------------

    def _order(self, key: str) -> OrderRow:
        order = self.orders.get(key)
        if order is None:
            raise KeyError(f"order {key} was not locked")
        return order

    def _move(
        self,
        row: StockRow,
        delta: int,
        kind: str,
        ref: str,
        cause: str,
        at: datetime,
        *,
        reason: str = "",
        unit_cost: Decimal | None = None,
    ) -> None:
        if delta == 0:
            return
        row.on_hand += delta
        row.dirty = True
        self.touched.add(row.sku)
        move = MovementRow(
            row.sku, row.location, delta, kind, ref, cause, at, reason[:REASON], unit_cost
        )
        self.movements.append(move)
        self._moved[row.key].append(move)

    def _row(self, sku: str, location: str) -> StockRow:
        key = (sku, location)
        row = self.stock.get(key)
        if row is None:
            row = self.stock[key] = StockRow(sku, location, dirty=True)
            if is_virtual(location):
                self._virtual[sku].append(row)
        return row

    def _line(self, order: OrderRow, sku: str, location: str) -> ResLine:
        line = order.lines.get((sku, location))
        if line is None:
            line = order.lines[(sku, location)] = ResLine(order.order_key, sku, location, new=True)
        return line

    def _emit(self, msg: CanonicalMessage, cause: str) -> None:
        self.out.append((msg, cause))

    # -- orders --------------------------------------------------------------------------------

    def apply_placed(self, msg: OrderPlaced, cause: str) -> None:
        order = self._order(msg.order_key)
        if order.placed:
            return  # the same order placed again under another id: one reservation per order
        order.placed = True
        order.account, order.channel = msg.account, msg.channel
        order.currency, order.total, order.placed_at = msg.currency, msg.total, msg.placed_at
        order.dirty = True

        wanted: dict[StockKey, int] = defaultdict(int)
        for ol in msg.lines:
            wanted[(ol.sku, ol.location)] += ol.quantity

        # Units already shipped, or refunded, before the order arrived need no reservation:
        # at their line's location first, then, for units that left another warehouse (a
        # platform that moved the order), at the SKU's other lines, by location.
        done = {k: ln.shipped_unreserved + ln.released for k, ln in order.lines.items()}
        need = {k: max(0, q - done.get(k, 0)) for k, q in wanted.items()}
        beyond: dict[str, int] = defaultdict(int)
        for key, units in done.items():
            beyond[key[0]] += max(0, units - wanted.get(key, 0))
        for key in sorted(need) if beyond else ():  # (an order that comes first has no lines)
            if need[key] and beyond[key[0]]:
                take = min(need[key], beyond[key[0]])
                need[key] -= take
                beyond[key[0]] -= take

        if order.cancelled:
            # Cancelled before it came: it holds nothing, and its lines remember what a
            # reopening must reserve, as a cancellation after the order would have left them.
            for key, qty in wanted.items():
                line = self._line(order, *key)
                line.quantity = qty
                line.cancelled = need[key]
                line.dirty = True
            self._reject(
                order, wanted, cause, msg.placed_at, all_reason=RejectReason.ORDER_CANCELLED
            )
            return

        plan, short = self._plan(order.channel, need)
        if short:
            self._reject(order, wanted, cause, msg.placed_at, need=need)
            return

        seq = _next_seq()
        reserved_lines = []
        for key in need:
            if key in self.stock or key in order.lines:
                line = self._line(order, *key)
                line.quantity = wanted[key]
                line.seq = seq
                line.dirty = True
        for (key, src), qty in plan.items():
            line = self._line(order, *src)
            if src != key:  # taken elsewhere: that location's line holds these units
                line.quantity += qty
                own = order.lines.get(key)
                if own is not None:
                    own.quantity -= qty
            reserved_lines.append(self._hold(line, qty, seq))
        order.status = "reserved" if reserved_lines else "fulfilled"
        self.outcome.accepted += 1
        self._reserved(order, reserved_lines, msg.placed_at, cause)

    def _hold(self, line: ResLine, qty: int, seq: int) -> ReservedLine:
        """Reserve `qty` units at `line`'s location for its order, decided at `seq`."""
        row = self.stock[line.key]
        row.reserved += qty
        row.dirty = True
        line.open += qty
        line.seq = seq
        line.dirty = True
        self.touched.add(row.sku)
        return ReservedLine(
            sku=line.sku, location=line.location, quantity=qty, backorder=line.location == PRESALE
        )

    def _reserved(
        self, order: OrderRow, lines: list[ReservedLine], at: datetime, cause: str
    ) -> None:
        """Announce what `order` holds now, if anything was reserved."""
        if lines:
            self._emit(
                StockReserved(
                    order_key=order.order_key,
                    account=order.account,
                    channel=order.channel,
                    lines=tuple(lines),
                    reserved_at=at,
                ),
                cause,
            )

    def _sources(self, channel: str, key: StockKey) -> list[StockRow]:
        """Where a line of `channel` may reserve, in order: its own location, then the SKU's
        dropship locations (by name) and presale, when the channel sells them."""
        own = self.stock.get(key)
        rows = [own] if own is not None else []
        virtual = self._virtual.get(key[0])
        if virtual and channel in self.dropship_channels:
            rows += sorted((r for r in virtual if is_dropship(r.location)), key=_by_location)
        if virtual and channel in self.presale_channels and key[0] not in self.presale_closed:
            rows += [r for r in virtual if r.location == PRESALE]
        return rows

    def _plan(
        self, channel: str, need: dict[StockKey, int]
    ) -> tuple[dict[tuple[StockKey, StockKey], int], bool]:
        """Units per (line, source) that reserve the whole order, and whether any line is short
        (then nothing is reserved). A line with no row to reserve at is short."""
        plan: dict[tuple[StockKey, StockKey], int] = {}
        short = False
        if channel not in self.dropship_channels and channel not in self.presale_channels:
            for key, qty in need.items():  # the common case: the line's own location only
                row = self.stock.get(key)
                if row is None or row.free < qty:
                    short = True
                elif qty:
                    plan[(key, key)] = qty
            return plan, short
        taken: dict[StockKey, int] = defaultdict(int)
        for key, qty in need.items():
            sources = self._sources(channel, key)
            left = qty
            for row in sources:
                take = min(left, row.free - taken[row.key])
                if take > 0:
                    plan[(key, row.key)] = take
                    taken[row.key] += take
                    left -= take
            if left or not sources:
                short = True
        return plan, short

    def _reject(
        self,
        order: OrderRow,
        wanted: dict[StockKey, int],
        cause: str,
        at: datetime,
        *,
        need: dict[StockKey, int] | None = None,
        all_reason: RejectReason | None = None,
    ) -> None:
        lines = []
        for key, qty in wanted.items():
            sources = self._sources(order.channel, key)
            available = sum(r.free for r in sources)
            if all_reason is not None:
                reason = all_reason
            elif not sources:
                reason = RejectReason.UNKNOWN_SKU
            elif need is not None and need[key] > available:
                reason = RejectReason.INSUFFICIENT_STOCK
                self.outcome.lines_refused += 1
            else:
                reason = RejectReason.OK
            lines.append(
                RejectedLine(
                    sku=key[0], location=key[1], requested=qty, available=available, reason=reason
                )
            )
        if order.status == "new":
            order.status = "cancelled" if order.cancelled else "rejected"
        self.outcome.rejected += 1
        self._emit(
            ReservationRejected(
                order_key=order.order_key,
                account=order.account,
                channel=order.channel,
                lines=tuple(lines),
                rejected_at=at,
            ),
            cause,
        )

    def _release(self, order: OrderRow, reason: ReleaseReason, cause: str, at: datetime) -> None:
        released = [
            self._release_line(line, line.open) for line in order.lines.values() if line.open
        ]
        self._released(order, released, reason, cause, at)

    def _release_line(self, line: ResLine, units: int) -> ReservedLine:
        row = self.stock[line.key]
        row.reserved -= units
        row.dirty = True
        self.touched.add(row.sku)
        line.open -= units
        line.released += units
        line.dirty = True
        return ReservedLine(sku=line.sku, location=line.location, quantity=units)

    def _released(
        self,
        order: OrderRow,
        released: list[ReservedLine],
        reason: ReleaseReason,
        cause: str,
        at: datetime,
    ) -> None:
        if released:
            self.outcome.released += 1
            self._emit(
                ReservationReleased(
                    order_key=order.order_key,
                    account=order.account or "unknown",
                    channel=order.channel or "unknown",
                    lines=tuple(released),
                    reason=reason,
                    released_at=at,
                ),
                cause,
            )

    def stale_word(self, order_key: str, at: datetime) -> bool:
        """Whether word at `at` on whether the order is open is older than the newest such
        word seen (deliveries come out of order)."""
        order = self.orders.get(order_key)
        clock = order.open_changed_at if order is not None else None
        return clock is not None and at < clock

    def _stale(self, order: OrderRow, at: datetime) -> bool:
        """`stale_word`, and otherwise the order's clock moves on to `at`."""
        if self.stale_word(order.order_key, at):
            return True
        if order.open_changed_at != at:
            order.open_changed_at = at
            order.dirty = True
        return False

    def apply_cancelled(self, msg: OrderCancelled, cause: str) -> None:
        order = self._order(msg.order_key)
        if self._stale(order, msg.cancelled_at) or order.cancelled:
            return
        order.cancelled = True
        order.account = order.account or msg.account
        order.channel = order.channel or msg.channel
        order.status = "cancelled"
        order.dirty = True
        for line in order.lines.values():
            if line.open:
                line.cancelled += line.open
                line.dirty = True
        self._release(order, ReleaseReason.CANCELLED, cause, msg.cancelled_at)

    def apply_reopened(self, msg: OrderReopened, cause: str) -> None:
        """A cancelled order open again: what its cancellation released is reserved again,
        all or none (a rejection names the short lines), less what shipped since. Word older
        than the newest cancellation or reopening seen, or on an order not cancelled, changes
        nothing but the order's clock."""
        order = self._order(msg.order_key)
        if self._stale(order, msg.reopened_at) or not order.cancelled:
            return
        order.cancelled = False
        order.dirty = True
        if not order.placed:
            order.status = "new"  # its OrderPlaced, when it comes, reserves it
            return
        need: dict[StockKey, int] = {}
        released: dict[str, list[ResLine]] = {}
        by_sku: dict[str, list[ResLine]] = defaultdict(list)
        for line in order.lines.values():
            by_sku[line.sku].append(line)
        for sku, lines in by_sku.items():
            # Units shipped while it was cancelled need no reservation any more.
            left = sum(ln.quantity - ln.shipped - ln.shipped_unreserved - ln.open for ln in lines)
            take = max(0, min(sum(ln.cancelled for ln in lines), left))
            if not take:
                continue
            # Reserved as an order is placed: the SKU's own location first (the warehouse it
            # was placed at, not one that shipped part of it since), then where the channel
            # may also sell from (dropship, presale), wherever the units were held.
            lines.sort(key=lambda ln: ln.location)
            home = min(
                (ln for ln in lines if not is_virtual(ln.location)),
                key=lambda ln: (-ln.quantity, ln.location),
                default=None,
            )
            need[home.key if home else next(ln.key for ln in lines if ln.cancelled)] = take
            released[sku] = [ln for ln in lines if ln.cancelled]
        plan, short = self._plan(order.channel, need)
        if short:
            order.status = "rejected"
            self._reject(order, need, cause, msg.reopened_at, need=need)
            return
        seq = _next_seq()
        reserved_lines = []
        for (_, src), qty in plan.items():
            line = self._line(order, *src)
            # The units are held at `src` now: they leave the lines that released them.
            moved = qty
            for ln in sorted(released[src[0]], key=lambda ln: ln.key != src):
                give = min(moved, ln.cancelled)
                ln.cancelled -= give
                if ln is not line:
                    ln.quantity -= give
                    line.quantity += give
                    ln.dirty = True
                moved -= give
            line.released = max(0, line.released - qty)
            reserved_lines.append(self._hold(line, qty, seq))
        for line in order.lines.values():
            if line.cancelled:
                line.cancelled = 0
                line.dirty = True
        held = order.lines.values()
        if any(ln.open for ln in held):
            order.status = "reserved"
        elif any(ln.shipped or ln.shipped_unreserved for ln in held):
            order.status = "fulfilled"
        else:
            order.status = "rejected"  # it held nothing when cancelled (rejected when placed)
        if reserved_lines:
            self.outcome.accepted += 1
        self._reserved(order, reserved_lines, msg.reopened_at, cause)

    def apply_fulfilled(self, msg: OrderFulfilled, cause: str) -> None:
        order = self._order(msg.order_key)
        order.account = order.account or msg.account
        order.channel = order.channel or msg.channel
        order.dirty = True
        for fl in msg.lines:
            key = (fl.sku, fl.location)
            row = self.stock.get(key)
            own, takes, left = self._takes(order, fl, {k: ln.open for k, ln in order.lines.items()})
            if row is None and not takes:
                continue  # not stock the hub keeps (the core rejected it when placed)
            here = fl.quantity
            line = self._line(order, *key) if row is not None else None
            if line is not None and row is not None:
                line.open -= own
                line.shipped += own
                line.dirty = True
                row.reserved -= own
            for other, take in takes:
                src = self.stock[other.key]
                other.open -= take
                other.shipped += take
                other.dirty = True
                src.reserved -= take
                src.dirty = True
                self.touched.add(src.sku)  # what the channels may sell of it changed
                if is_dropship(other.location):  # the supplier ships it from its own stock
                    here -= take
                    self._move(src, -take, "sale", order.order_key, cause, msg.fulfilled_at)
            if line is not None and row is not None:
                line.shipped_unreserved += left
                if left:
                    self._settle_cancelled(order, fl.sku, left)
                self._move(row, -here, "sale", order.order_key, cause, msg.fulfilled_at)
                self._check_bump(row, cause, msg.fulfilled_at)
        if order.placed and not any(line.open for line in order.lines.values()):
            order.status = "fulfilled"

    def _takes(
        self, order: OrderRow, fl: FulfilledLine, still: Mapping[StockKey, int]
    ) -> tuple[int, list[tuple[ResLine, int]], int]:
        """How a fulfilment line takes its units, given each of the order's lines' open units:
        (units from its own location's reservation, [(another line, units)] in the order taken,
        units no reservation held). After its own location it takes dropship lines first by
        name, then presale, then, when the line ships from stock the hub keeps, the SKU's
        reservations at the order's other warehouses: a platform that ships from another
        warehouse than the one the hub reserved at (an order moved between locations) commits
        that reservation, which would otherwise hold its units for good while the shipping
        warehouse's stock drops as well. (From a location the hub keeps no stock of, the units
        stay held: it may be a warehouse the connector does not map.)"""
        key = (fl.sku, fl.location)
        kept = key in self.stock
        left = fl.quantity
        own = min(left, still.get(key, 0)) if kept else 0
        left -= own
        takes = []
        holders = sorted(
            (
                ln
                for ln in order.lines.values()
                if ln.sku == fl.sku
                and still[ln.key]
                and ln.key != key
                and (is_virtual(ln.location) or kept)
            ),
            key=lambda ln: (not is_virtual(ln.location), ln.location == PRESALE, ln.location),
        )
        for ln in holders:
            take = min(left, still[ln.key])
            if take:
                takes.append((ln, take))
                left -= take
        return own, takes, left

    def as_shipped(self, msg: OrderFulfilled) -> OrderFulfilled:
        """`msg` as it shipped. A fulfilment of the order's lines as placed (`as_placed`:
        WooCommerce's completion) names the units refunded before they shipped too: they
        stayed on the shelf (the refund released them), so its lines lose them, SKU by SKU,
        and a line left with none goes."""
        order = self.orders.get(msg.order_key)
        if not msg.as_placed or order is None:
            return msg
        refunded: dict[str, int] = defaultdict(int)
        for ln in order.lines.values():
            refunded[ln.sku] += ln.refunded
        if not any(refunded.values()):
            return msg
        lines = []
        for fl in msg.lines:
            take = min(fl.quantity, refunded[fl.sku])
            refunded[fl.sku] -= take
            if take < fl.quantity:
                lines.append(fl.model_copy(update={"quantity": fl.quantity - take}) if take else fl)
        return msg.model_copy(update={"lines": tuple(lines)})

    def dropshipped(self, msg: OrderFulfilled) -> dict[StockKey, int]:
        """Units of each fulfilled line the supplier ships from its own stock (taken from a
        dropship reservation, as `apply_fulfilled` will take them): they leave none of the
        hub's stock at the line's location, so the books cost none of them there."""
        order = self.orders.get(msg.order_key)
        out: dict[StockKey, int] = {}
        if order is None:
            return out
        still = {k: ln.open for k, ln in order.lines.items()}
        for fl in msg.lines:
            key = (fl.sku, fl.location)
            own, takes, _ = self._takes(order, fl, still)
            if own:
                still[key] -= own
            for ln, take in takes:
                still[ln.key] -= take
                if is_dropship(ln.location):
                    out[key] = out.get(key, 0) + take
        return out

    def return_parts(self, msg: OrderReturned) -> list[tuple[ReturnedLine, int, int]]:
        """Per returned line: (the line, units that left the warehouse and come back, units that
        never left). A refund can name units the order has not shipped (refunded before
        fulfilment; Shopify's restock type `cancel`): they are still on the shelf, held by the
        order's reservation, so they release it and add no stock. Where the platform says
        whether a line had shipped (`ReturnedLine.shipped`), that decides; otherwise units count
        as shipped as far as the order's fulfilments go, and the returns of an order the hub
        has seen neither placed nor shipped (one from before the hub ran) as they come."""
        order = self.orders.get(msg.order_key)
        known = order is not None and (
            order.placed or any(ln.shipped or ln.shipped_unreserved for ln in order.lines.values())
        )
        out: dict[str, int] = {}
        parts = []
        for rl in msg.lines:
            if known and order is not None and rl.sku not in out:
                out[rl.sku] = sum(
                    ln.shipped + ln.shipped_unreserved - ln.returned
                    for ln in order.lines.values()
                    if ln.sku == rl.sku
                )
            if rl.shipped is not None or not known:
                # The platform's word (`shipped`), or the line as it comes for an order the
                # hub has not seen.
                never = rl.quantity if rl.shipped is False else 0
                parts.append((rl, rl.quantity - never, never))
                out[rl.sku] = out.get(rl.sku, 0) - (rl.quantity - never)
                continue
            back = min(rl.quantity, max(0, out[rl.sku]))
            out[rl.sku] -= back
            parts.append((rl, back, rl.quantity - back))
        return parts

    def shipped_return(self, msg: OrderReturned) -> tuple[OrderReturned, dict[StockKey, int]]:
        """`msg` as the books see it, and the units per (SKU, location) that never left
        (`return_parts`): those restock nothing and were never billed."""
        lines: list[ReturnedLine] = []
        unshipped: dict[StockKey, int] = {}
        for rl, back, never in self.return_parts(msg):
            if back:
                lines.append(rl.model_copy(update={"quantity": back}) if never else rl)
            if never:
                lines.append(rl.model_copy(update={"quantity": never, "restock": False}))
                key = (rl.sku, rl.location)
                unshipped[key] = unshipped.get(key, 0) + never
        if not unshipped:
            return msg, unshipped
        return msg.model_copy(update={"lines": tuple(lines)}), unshipped

    def apply_returned(
        self,
        msg: OrderReturned,
        cause: str,
        unit_costs: dict[StockKey, Decimal | None] | None = None,
    ) -> None:
        """Restocked units come back at the cost they left with (when finance knows it), so the
        inventory account stays equal to Σ on_hand × average cost. Units the order never
        shipped release its reservation instead (`return_parts`), wherever it is held (a
        dropship or presale line too), the line's own location first."""
        order = self._order(msg.order_key)
        order.account = order.account or msg.account
        order.channel = order.channel or msg.channel
        released: list[ReservedLine] = []
        for rl, back, never in self.return_parts(msg):
            key = (rl.sku, rl.location)
            if never:
                # Refunded before they shipped: a fulfilment of the lines as placed leaves
                # them out (`as_shipped`).
                line = self._line(order, *key)
                line.refunded += never
                line.dirty = order.dirty = True
                never = self._release_units(order, key, never, released)
            if never:
                # Refunded while its cancellation's units were not held again: a reopening
                # must not hold these.
                never = self._settle_cancelled(order, rl.sku, never)
            if never and not order.placed:
                # Refunded before the order came: it must not reserve them (`apply_placed`).
                early = self._line(order, *key)
                early.released += never
                early.dirty = order.dirty = True
            if not back or key not in self.stock:
                continue
            order.dirty = True
            line = self._line(order, *key)
            line.returned += back
            line.dirty = True
            if rl.restock:
                row = self.stock[key]
                cost = (unit_costs or {}).get(key)
                if cost is not None:
                    row.avg_cost = costing.receive(row.on_hand, row.avg_cost, back, cost)
                self._move(row, back, "return", order.order_key, cause, msg.returned_at)
        if released and order.placed:
            lines = order.lines.values()
            if not any(ln.open for ln in lines) and any(
                ln.shipped or ln.shipped_unreserved for ln in lines
            ):
                order.status = "fulfilled"  # what is left of it has shipped
        self._released(order, released, ReleaseReason.CANCELLED, cause, msg.returned_at)

    @staticmethod
    def _settle_cancelled(order: OrderRow, sku: str, units: int) -> int:
        """Units of `sku` that the order's cancellation released and that went another way
        (refunded, or shipped without a reservation): take up to `units` off what a reopening
        would hold again; returns the units not found there."""
        for ln in sorted(order.lines.values(), key=lambda ln: ln.location):
            if ln.sku != sku or not ln.cancelled or not units:
                continue
            take = min(units, ln.cancelled)
            ln.cancelled -= take
            ln.dirty = order.dirty = True
            units -= take
        return units

    def _release_units(
        self, order: OrderRow, key: StockKey, units: int, released: list[ReservedLine]
    ) -> int:
        """Release up to `units` of the order's reservations of `key`'s SKU, at `key` first,
        then wherever else they are held (dropship, presale); returns the units not found."""
        holding = sorted(
            (ln for ln in order.lines.values() if ln.sku == key[0] and ln.open),
            key=lambda ln: (ln.key != key, ln.location),
        )
        for ln in holding:
            if not units:
                break
            take = min(units, ln.open)
            released.append(self._release_line(ln, take))
            units -= take
            order.dirty = True
        return units

    # -- stock events ----------------------------------------------------------------------------

    def moved_since_count(self, msg: StockCounted) -> int | None:
        """The units journaled at the count's stock after it was counted (sales, returns,
        receipts, transfers, adjustments dated later), which stay on top of it; None when a
        later stocktake of that stock was applied already, which the count cannot correct."""
        row = self.stock.get((msg.sku, msg.location))
        if row is not None and row.counted_at is not None and msg.counted_at < row.counted_at:
            return None  # (also when that count found no difference, and journaled nothing)
        stored, recounted = self.since_count.get(
            (msg.sku, msg.location, msg.counted_at), (0, False)
        )
        # (this batch's movements of that row: a file's thousands of counts in one batch must
        # not each walk all of the batch's movements)
        later = [m for m in self._moved.get((msg.sku, msg.location), ()) if m.at > msg.counted_at]
        if recounted or any(m.kind == "stocktake" for m in later):
            return None
        return stored + sum(m.delta for m in later)

    def apply_counted(self, msg: StockCounted, cause: str) -> None:
        """On hand becomes the count as of when it was counted: what moved since is kept."""
        since = self.moved_since_count(msg)
        if since is None:
            return  # a later count of the same stock stands
        row = self._row(msg.sku, msg.location)
        self._move(
            row,
            msg.quantity + since - row.on_hand,
            "stocktake",
            msg.count_id,
            cause,
            msg.counted_at,
        )
        if row.counted_at is None or msg.counted_at > row.counted_at:
            row.counted_at = msg.counted_at
            self.counted.add(row.key)
        self._check_bump(row, cause, msg.counted_at)

    def apply_adjusted(self, msg: StockAdjusted, cause: str) -> None:
        row = self._row(msg.sku, msg.location)
        self._move(
            row,
            msg.delta,
            "adjustment",
            msg.adjustment_id,
            cause,
            msg.adjusted_at,
            reason=msg.reason.value,
        )
        self._check_bump(row, cause, msg.adjusted_at)

    def apply_received(
        self,
        msg: GoodsReceived,
        cause: str,
        unit_costs: dict[StockKey, Decimal | None] | None = None,
    ) -> None:
        """Goods in, at the receipt's unit cost, or at the current average where `unit_costs`
        says None for them (a cost the books cannot take as it is: another currency). With no
        average to take (nothing on hand), the receipt's own figure: either way the stock's
        value then differs from the inventory account, which booked nothing, and the books
        check reports it."""
        row = self._row(msg.sku, msg.location)
        unit_cost = (unit_costs or {}).get((msg.sku, msg.location), msg.unit_cost)
        if unit_cost is None:
            unit_cost = row.avg_cost if row.on_hand > 0 and row.avg_cost > 0 else msg.unit_cost
        row.avg_cost = costing.receive(row.on_hand, row.avg_cost, msg.quantity, unit_cost)
        # Inbound falls by what the receipt fills on its PO's open lines, which purchasing works
        # out (`on_receipt`): units beyond them, or on a closed PO, were never inbound.
        self._move(
            row,
            msg.quantity,
            "receipt",
            msg.receipt_id,
            cause,
            msg.received_at,
            reason=receipt_po(msg.po_number),  # with the receipt id, SKU and location: its line
            unit_cost=unit_cost,
        )
        self._fill_backorders(row, cause)

    def _fill_backorders(self, row: StockRow, cause: str) -> None:
        """Goods arrived: backorders of the SKU become reservations at the receiving location,
        oldest first, as far as the free stock goes."""
        presale = self.stock.get((row.sku, PRESALE))
        if presale is None or presale.reserved <= 0 or is_virtual(row.location):
            return
        if row.sku not in self.bump_loaded:
            raise NeedsBumpData({row.sku})
        waiting = sorted(
            (
                (line.seq, order.order_key, order, line)
                for order in self.orders.values()
                for line in order.lines.values()
                if line.key == presale.key and line.open > 0
            ),
            key=lambda h: (h[0], h[1]),
        )
        for _, _, order, line in waiting:
            take = min(line.open, row.free)
            if take <= 0:
                break
            line.open -= take
            line.quantity -= take
            line.dirty = True
            presale.reserved -= take
            presale.dirty = True
            dst = self._line(order, row.sku, row.location)
            dst.quantity += take
            dst.open += take
            dst.seq = dst.seq or line.seq
            dst.dirty = True
            row.reserved += take
            row.dirty = True
            order.dirty = True
            self.touched.add(row.sku)

    def apply_supplier_stock(
        self, sku: str, location: str, quantity: int, ref: str, cause: str, at: datetime
    ) -> None:
        """A supplier's report sets its dropship location's stock, like a count; holders beyond
        it are bumped, newest first."""
        row = self._row(sku, location)
        self._move(row, quantity - row.on_hand, "supplier_feed", ref, cause, at)
        self._check_bump(row, cause, at, ReleaseReason.SUPPLIER_STOCK_LOST)

    def set_presale(self, sku: str, target: int, ref: str, cause: str, at: datetime) -> None:
        """The units that may be promised against confirmed inbound changed: the presale
        location holds `target`; backorders beyond it are released, newest first."""
        row = self.stock.get((sku, PRESALE))
        if row is None and target == 0:
            return
        row = row or self._row(sku, PRESALE)
        self._move(row, target - row.on_hand, "presale", ref, cause, at)
        self._check_bump(row, cause, at, ReleaseReason.INBOUND_LOST)

    def close_presale(self, skus: frozenset[str], ref: str, cause: str, at: datetime) -> None:
        """SKUs whose presale share is 0: their presale location holds no more than the
        backorders it still has, so what released or shipped ones leave is not offered again."""
        for sku in sorted(skus):
            row = self.stock.get((sku, PRESALE))
            if row is not None and row.on_hand > row.reserved:
                self._move(row, row.reserved - row.on_hand, "presale", ref, cause, at)

    def apply_transferred(self, msg: StockTransferred, cause: str) -> None:
        src = self._row(msg.sku, msg.from_location)
        dst = self._row(msg.sku, msg.to_location)
        dst.avg_cost = costing.receive(dst.on_hand, dst.avg_cost, msg.quantity, src.avg_cost)
        self._move(
            src,
            -msg.quantity,
            "transfer",
            msg.transfer_id,
            cause,
            msg.transferred_at,
            reason=f"to {msg.to_location}",
        )
        self._move(
            dst,
            msg.quantity,
            "transfer",
            msg.transfer_id,
            cause,
            msg.transferred_at,
            reason=f"from {msg.from_location}",
        )
        self._check_bump(src, cause, msg.transferred_at)

    # -- stock lost under reservations -------------------------------------------------------------

    def _check_bump(
        self,
        row: StockRow,
        cause: str,
        at: datetime,
        reason: ReleaseReason = ReleaseReason.STOCK_LOST,
    ) -> None:
        """Stock physically left below what is reserved: release the newest orders' reservations
        (whole orders, all their lines) until reserved ≤ on_hand again."""
        while row.reserved > 0 and row.reserved > row.on_hand:
            if row.sku not in self.bump_loaded:
                raise NeedsBumpData({row.sku})
            holders = [
                (line.seq, order)
                for order in self.orders.values()
                for line in order.lines.values()
                if line.key == row.key and line.open > 0
            ]
            if not holders:  # reserved counter without holders: repaired by `hub stock repair`
                raise RuntimeError(f"{row.key}: reserved={row.reserved} but no open reservation")
            _, newest = max(holders, key=lambda h: (h[0], h[1].order_key))
            missing = {
                line.sku
                for line in newest.lines.values()
                if line.open and line.key not in self.stock
            }
            if missing:
                raise NeedsBumpData(missing)
            newest.status = "bumped"
            newest.dirty = True
            self.outcome.bumped += 1
            self._release(newest, reason, cause, at)


def _by_location(row: StockRow) -> str:
    return row.location
