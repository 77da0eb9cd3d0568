"""Purchasing in the store: the hooks the core calls inside its transaction, and approval.

The core holds the row locks. The order is always stock rows (the core's `lock_stock`), then
purchase order rows (here), so the core and `approve` never wait on each other in a circle.

- `replenish(session, rows, touched, now)`: after a batch's stock effects, order what fell to the
  reorder point. The open-line check runs under the stock row lock, so two transactions racing on
  a SKU, or a redelivered batch, never open a second line. `auto` mode returns the
  `PurchaseOrderIssued` envelopes for the outbox and adds the ordered units to `row.inbound`;
  `approve` mode stores a suggestion (no message, nothing inbound until `approve`).
- `handle(session, env, chart)`: a supplier's acknowledgement, ship notice or invoice. Returns the
  envelopes for the outbox and the inbound changes `(sku, location, delta)` for the core's rows
  (`apply_inbound`). Lock the SKUs of `skus_of(...)` before calling it.
- `on_receipt(session, msg)`: a `GoodsReceived` with a `po_number` fills the PO's open lines and
  returns the inbound that goes: what it filled, and with a `final` one what the lines will not
  bring. An over-delivery, or a receipt on a closed PO, was never inbound and lowers nothing.
- `approve(session, po_number, actor)`: a suggestion becomes an issued PO (inbound, outbox, audit),
  less the lines whose SKU is on order in another PO since.
- Dropship: `handle` of a `SupplierStockReported` for a SKU marked dropship for that supplier
  (`set_dropship`) and newer than the last report applied returns the quantity for the core to
  set at `dropship.{supplier}` (`Handled.supplier_stock`); other reports are ignored and logged.
- Presale: `presale_shares` and `confirmed_inbound` give the core what it needs to recompute a
  SKU's presale location after every change of its confirmed inbound stock.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import structlog
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub import audit
from hub.config import HubConfig
from hub.domain.allocation import PRESALE, dropship_location, share_from_float
from hub.finance import events as finance_events
from hub.finance import ledger, payables
from hub.finance.chart import Chart
from hub.finance.rules import CurrencyMismatch
from hub.purchasing import policy, receiving
from hub.purchasing.match import Hold, HoldReason, Tolerance, three_way_match
from hub.purchasing.tables import (
    DropshipItem,
    PoReceiptRow,
    PoSequence,
    PresaleItem,
    PurchaseOrderLineRow,
    PurchaseOrderRow,
    ReplenishmentPolicy,
    ShipmentRow,
    Supplier,
    SupplierInvoiceRow,
)
from hub.store import locks
from hub.store.db import stored_utc
from hub.store.models import Movement, OutboxRow, Stock
from schemas.base import CanonicalMessage, minor_unit, now_utc
from schemas.envelope import Envelope, message_id
from schemas.purchasing import (
    PurchaseOrderAcknowledged,
    PurchaseOrderIssued,
    PurchaseOrderLine,
    ShipmentNotified,
    SupplierInvoiceReceived,
    SupplierStockReported,
)
from schemas.stock import GoodsReceived

log = structlog.get_logger("hub.purchasing")

SOURCE = "hub/purchasing"
AUTO, APPROVE = "auto", "approve"
DEFAULT_TOLERANCE = Tolerance(percent=Decimal(2), amount=Decimal("1.00"))
StockKey = tuple[str, str]


class PurchasingError(Exception):
    """A purchasing message or command that cannot be applied; the message says why."""


class UnknownPurchaseOrder(PurchasingError):
    def __init__(self, po_number: str) -> None:
        super().__init__(f"unknown purchase order {po_number!r}")
        self.po_number = po_number


class ForeignPurchaseOrder(PurchasingError):
    """A supplier's document names a PO of another supplier (a mistyped number): applying it
    would change that supplier's order."""

    def __init__(self, po_number: str, owner: str, sender: str) -> None:
        super().__init__(f"purchase order {po_number} is {owner}'s, not {sender}'s")
        self.po_number, self.owner, self.sender = po_number, owner, sender


def _own(po: PurchaseOrderRow, supplier: str) -> None:
    if po.supplier != supplier:
        raise ForeignPurchaseOrder(po.po_number, po.supplier, supplier)


class NotAwaitingApproval(PurchasingError):
    def __init__(self, po_number: str, status: str) -> None:
        super().__init__(f"purchase order {po_number} is {status}, not a suggestion to approve")
        self.po_number = po_number
        self.status = status


class AlreadyOnOrder(PurchasingError):
    """A suggestion whose SKU is on order in another PO since it was made (a supplier's
    revised answer took back its refusal): approving it would order the units twice."""

    def __init__(self, po_number: str, clashes: Sequence[tuple[str, str, str]]) -> None:
        named = "; ".join(f"{sku} at {loc} is on order in {other}" for sku, loc, other in clashes)
        super().__init__(f"purchase order {po_number} not approved: {named}; discard it")
        self.po_number, self.clashes = po_number, list(clashes)


class UnknownInvoice(PurchasingError):
    def __init__(self, supplier: str, invoice_number: str) -> None:
        super().__init__(f"unknown supplier invoice {invoice_number!r} of {supplier!r}")


class NotAcceptable(PurchasingError):
    """An invoice not held, or held for what only the supplier can correct."""


@dataclass(frozen=True, slots=True)
class SupplierStock:
    """A supplier's report to apply: set `location`'s on_hand to `quantity`."""

    sku: str
    location: str
    quantity: int
    report_id: str
    reported_at: datetime


@dataclass
class Handled:
    """What a supplier message changed beyond the purchasing tables."""

    envelopes: list[Envelope] = field(default_factory=list)
    inbound: list[tuple[str, str, int]] = field(default_factory=list)  # (sku, location, delta)
    supplier_stock: list[SupplierStock] = field(default_factory=list)


def tolerance_from_config(config: HubConfig | None) -> Tolerance:
    """`[purchasing] price_tolerance_percent` (default 2) and `price_tolerance_amount` (1.00)."""
    raw = ((config.model_extra or {}) if config else {}).get("purchasing") or {}
    return Tolerance(
        percent=Decimal(str(raw.get("price_tolerance_percent", DEFAULT_TOLERANCE.percent))),
        amount=Decimal(str(raw.get("price_tolerance_amount", DEFAULT_TOLERANCE.amount))),
    )


def apply_inbound(
    rows: Mapping[StockKey, Any], deltas: Iterable[tuple[str, str, int]]
) -> list[tuple[str, str, int]]:
    """Apply inbound deltas to the core's locked rows (never below 0); returns those whose row
    was not loaded, which the caller must lock and apply itself."""
    missing = []
    for sku, location, delta in deltas:
        row = rows.get((sku, location))
        if row is None:
            missing.append((sku, location, delta))
            continue
        row.inbound = max(0, row.inbound + delta)
        row.dirty = True
    return missing


async def skus_of(session: AsyncSession, messages: Iterable[CanonicalMessage]) -> set[str]:
    """The SKUs whose stock rows the core must lock before `handle` (read without locks: a
    PO's lines never change SKU)."""
    messages = list(messages)
    reported = {m.sku for m in messages if isinstance(m, SupplierStockReported)}
    numbers = {
        m.po_number
        for m in messages
        if isinstance(m, PurchaseOrderAcknowledged | ShipmentNotified | SupplierInvoiceReceived)
    }
    if not numbers:
        return reported
    t = PurchaseOrderLineRow.__table__
    q = select(t.c.sku).where(t.c.po_number.in_(sorted(numbers))).distinct()
    return reported | set((await session.execute(q)).scalars().all())


async def virtual_rows(
    session: AsyncSession, messages: Iterable[CanonicalMessage], skus: Iterable[str]
) -> set[StockKey]:
    """Stock rows the core must create before locking: the dropship location of every report
    for a SKU marked dropship for its supplier, and `presale` of `skus` (those with a share)."""
    keys: set[StockKey] = set()
    reports = {(m.sku, m.supplier) for m in messages if isinstance(m, SupplierStockReported)}
    if reports:
        t = DropshipItem.__table__
        q = select(t.c.sku, t.c.supplier).where(t.c.sku.in_(sorted({s for s, _ in reports})))
        for r in (await session.execute(q)).all():
            if (r.sku, r.supplier) in reports:
                keys.add((r.sku, dropship_location(r.supplier)))
    keys |= {(sku, PRESALE) for sku in skus}
    return keys


async def presale_shares(session: AsyncSession, skus: Iterable[str]) -> dict[str, Decimal]:
    """The presale share of each of `skus` that has one, 0 included: a share set to 0 still
    has backorders to keep within the inbound behind them, and takes no new ones."""
    t = PresaleItem.__table__
    out: dict[str, Decimal] = {}
    for part in locks.chunks(sorted(set(skus))):
        q = select(t.c.sku, t.c.share).where(t.c.sku.in_(part))
        out.update({r.sku: Decimal(r.share) for r in (await session.execute(q)).all()})
    return out


async def confirmed_inbound(session: AsyncSession, skus: Iterable[str]) -> dict[str, int]:
    """Units of each SKU the suppliers have confirmed and not yet delivered: on an acknowledged
    PO, confirmed − received; on one not acknowledged, shipped (ASN) − received. Closed lines,
    suggestions and cancelled POs count nothing. Call after the purchasing tables are flushed."""
    wanted = sorted(set(skus))
    out = dict.fromkeys(wanted, 0)
    if not wanted:
        return out
    lt, pt = PurchaseOrderLineRow.__table__, PurchaseOrderRow.__table__
    q = (
        select(lt.c.sku, lt.c.confirmed, lt.c.shipped, lt.c.received, pt.c.acknowledgement_id)
        .join(pt, pt.c.po_number == lt.c.po_number)
        .where(
            lt.c.sku.in_(wanted),
            lt.c.closed.is_(False),
            pt.c.status.notin_(("suggested", "cancelled", "rejected")),
        )
    )
    for r in (await session.execute(q)).all():
        promised = r.confirmed if r.acknowledgement_id else min(r.shipped, r.confirmed)
        out[r.sku] += max(promised - r.received, 0)
    return out


async def set_dropship(
    session: AsyncSession, sku: str, *, supplier: str, supplier_sku: str | None = None
) -> DropshipItem:
    """Mark `sku` as sold from `supplier`'s stock feed (its reports set `dropship.{supplier}`)."""
    try:
        dropship_location(supplier)
    except ValueError as exc:
        raise PurchasingError(str(exc)) from None
    return await _upsert(
        session, DropshipItem(sku=sku, supplier=supplier, supplier_sku=supplier_sku)
    )


async def set_presale_share(session: AsyncSession, sku: str, share: float) -> PresaleItem:
    """At most `share` (0–1) of the SKU's confirmed inbound may be sold as backorders; it takes
    effect with the next change of the SKU's confirmed inbound. 0 stops new backorders at once
    and keeps those taken, as long as the confirmed inbound covers them."""
    try:
        value = share_from_float(share)
    except ValueError as exc:
        raise PurchasingError(str(exc)) from None
    if not 0 <= value <= 1:
        raise PurchasingError(f"presale share {share}: use a fraction from 0 to 1")
    return await _upsert(session, PresaleItem(sku=sku, share=value))


_Setting = TypeVar("_Setting", DropshipItem, PresaleItem)


async def _upsert(session: AsyncSession, row: _Setting) -> _Setting:
    """Store `row`, replacing the settings of the stored row with its primary key."""
    merged = await session.merge(row)
    await session.flush()
    return merged


# --- suppliers and policies ------------------------------------------------------------------


async def set_supplier(
    session: AsyncSession,
    supplier: str,
    *,
    name: str = "",
    account: str = "",
    mode: str = AUTO,
    currency: str = "CNY",
) -> Supplier:
    if mode not in (AUTO, APPROVE):
        raise PurchasingError(f"mode {mode!r}: use auto or approve")
    row = await session.get(Supplier, supplier)
    if row is None:
        row = Supplier(supplier=supplier)
        session.add(row)
    row.name, row.account, row.mode, row.currency = (
        name or supplier,
        account or supplier,
        mode,
        currency,
    )
    await session.flush()
    return row


async def set_policy(
    session: AsyncSession,
    sku: str,
    *,
    supplier: str,
    order_up_to: int,
    reorder_point: int | None = None,
    location: str = "main",
    auto_reorder: bool = False,
    service_level: Decimal = Decimal("0.95"),
    demand_window_days: int = 28,
    safety_stock: int = 0,
    max_stock: int | None = None,
    lead_time_days: int = 7,
    pack_size: int = 1,
    min_order_quantity: int = 1,
    mode: str | None = None,
    unit_price: Decimal = Decimal(0),
    supplier_sku: str | None = None,
) -> ReplenishmentPolicy:
    """Create or replace the policy of (sku, location); checked by the replenishment rules."""
    if reorder_point is None and not auto_reorder:
        raise PurchasingError("a policy needs a reorder point or auto")
    if mode not in (None, AUTO, APPROVE):
        raise PurchasingError(f"mode {mode!r}: use auto or approve")
    policy.ReplenishmentRule(
        reorder_point or 0, order_up_to, pack_size, min_order_quantity, max_stock
    )  # raises PolicyError
    row = await session.get(ReplenishmentPolicy, (sku, location))
    if row is None:
        row = ReplenishmentPolicy(sku=sku, location=location)
        session.add(row)
    values: dict[str, Any] = {
        "supplier": supplier,
        "reorder_point": reorder_point,
        "auto_reorder": auto_reorder,
        "service_level": service_level,
        "demand_window_days": demand_window_days,
        "auto_reorder_point": None,
        "auto_computed_on": None,
        "order_up_to": order_up_to,
        "safety_stock": safety_stock,
        "max_stock": max_stock,
        "lead_time_days": lead_time_days,
        "pack_size": pack_size,
        "min_order_quantity": min_order_quantity,
        "mode": mode,
        "unit_price": unit_price,
        "supplier_sku": supplier_sku,
    }
    for k, v in values.items():
        setattr(row, k, v)
    await session.flush()
    return row


# --- replenishment ---------------------------------------------------------------------------


async def replenish(
    session: AsyncSession,
    rows: Mapping[StockKey, Any],
    touched: set[str],
    now: datetime,
    *,
    refused: set[str] | frozenset[str] = frozenset(),
) -> list[Envelope]:
    """Order for the touched SKUs whose projected stock (on_hand + inbound − reserved of the
    core's locked `rows`) fell to the reorder point and that have no open PO line. (Backorders
    need no term here: they only exist while an open PO line confirms inbound stock.) A SKU in
    `refused` (a supplier just refused or cut its line) is suggested for a person to approve,
    never issued at once: a supplier that refuses every order of it would be sent one after
    another."""
    if not touched:
        return []
    policies: list[ReplenishmentPolicy] = []
    open_keys: set[StockKey] = set()
    lt = PurchaseOrderLineRow.__table__
    for part in locks.chunks(sorted(touched)):
        q = select(ReplenishmentPolicy).where(locks.one_of(session, ReplenishmentPolicy.sku, part))
        policies.extend((await session.execute(q)).scalars().all())
    if not policies:
        return []
    for part in locks.chunks(sorted({p.sku for p in policies})):
        q = select(lt.c.sku, lt.c.location).where(
            locks.one_of(session, lt.c.sku, part), lt.c.open.is_(True)
        )
        for r in (await session.execute(q)).all():
            open_keys.add((r.sku, r.location))
    suppliers = {
        s.supplier: s
        for s in (
            await session.execute(
                select(Supplier).where(Supplier.supplier.in_({p.supplier for p in policies}))
            )
        )
        .scalars()
        .all()
    }

    wanted: dict[tuple[str, str, str], list[tuple[ReplenishmentPolicy, int, Any]]] = defaultdict(
        list
    )
    for pol in sorted(policies, key=lambda p: (p.sku, p.location)):
        row = rows.get((pol.sku, pol.location))
        if row is None:
            continue
        try:
            rule = await _rule(session, pol, now)
        except policy.PolicyError as exc:
            log.warning("replenishment policy unusable", sku=pol.sku, reason=str(exc))
            continue
        position = policy.StockPosition(row.on_hand, row.inbound, row.reserved)
        decision = policy.decide(position, rule, open_po_line=(pol.sku, pol.location) in open_keys)
        if decision.high_stock:
            log.warning("projected stock above max", sku=pol.sku, projected=decision.projected)
        if decision.decision is not policy.Decision.ORDER:
            continue
        supplier = suppliers.get(pol.supplier)
        mode = APPROVE if pol.sku in refused else pol.mode or (supplier.mode if supplier else AUTO)
        wanted[(pol.supplier, pol.location, mode)].append((pol, decision.order_quantity, row))

    out: list[Envelope] = []
    for (supplier_id, location, mode), items in sorted(wanted.items()):
        supplier = suppliers.get(supplier_id)
        po = PurchaseOrderRow(
            po_number=await next_po_number(session, now),
            supplier=supplier_id,
            status="issued" if mode == AUTO else "suggested",
            currency=supplier.currency if supplier else "CNY",
            ship_to=location,
            expected_delivery=now.date()
            + timedelta(days=max(p.lead_time_days for p, _, _ in items)),
            issued_at=now if mode == AUTO else None,
            created_at=now,
        )
        lines = [
            PurchaseOrderLineRow(
                po_number=po.po_number,
                line_number=n,
                sku=pol.sku,
                location=location,
                supplier_sku=pol.supplier_sku,
                status=receiving.LineStatus.OPEN.value,
                open=True,
                closed=False,
                ordered=qty,
                confirmed=qty,
                shipped=0,
                received=0,
                invoiced=0,
                unit_price=pol.unit_price,
                expected_delivery=now.date() + timedelta(days=pol.lead_time_days),
                over_delivered=0,
                under_delivered=0,
            )
            for n, (pol, qty, _) in enumerate(items, start=1)
        ]
        session.add(po)
        session.add_all(lines)
        log.info("purchase order", po_number=po.po_number, status=po.status, lines=len(lines))
        if mode == AUTO:
            for _, qty, row in items:
                row.inbound += qty
                row.dirty = True
            out.append(issued_envelope(po, lines))
    await session.flush()
    return out


async def _rule(
    session: AsyncSession, pol: ReplenishmentPolicy, now: datetime
) -> policy.ReplenishmentRule:
    rop = pol.reorder_point
    if pol.auto_reorder:
        today = now.date()
        if pol.auto_computed_on != today or pol.auto_reorder_point is None:
            pol.auto_reorder_point = await _demand_reorder_point(session, pol, today)
            pol.auto_computed_on = today
        rop = pol.auto_reorder_point
    if rop is None:
        raise policy.PolicyError("no reorder point")
    return policy.ReplenishmentRule(
        reorder_point=rop,
        order_up_to=max(pol.order_up_to, rop),
        pack_size=pol.pack_size,
        min_order_quantity=pol.min_order_quantity,
        max_stock=pol.max_stock if pol.max_stock is None or pol.max_stock >= rop else None,
    )


async def _demand_reorder_point(
    session: AsyncSession, pol: ReplenishmentPolicy, today: date
) -> int:
    """Reorder point from the sales journal over the policy's window (ending yesterday)."""
    start = policy.window_start(today, pol.demand_window_days)
    since = datetime.combine(start, datetime.min.time(), tzinfo=UTC)
    q = select(Movement.at, Movement.delta).where(
        Movement.sku == pol.sku,
        Movement.location == pol.location,
        Movement.kind == "sale",
        Movement.at >= since,
    )
    sales = [(at.date(), -delta) for at, delta in (await session.execute(q)).all()]
    series = policy.daily_demand(sales, start=start, days=pol.demand_window_days)
    return policy.reorder_point_from_demand(
        series, lead_time_days=pol.lead_time_days, service_level=float(pol.service_level)
    ).reorder_point


async def next_po_number(session: AsyncSession, now: datetime) -> str:
    """`PO-YYYY-NNNNNN`; the counter row is locked until the caller's transaction ends."""
    prefix = f"PO-{now:%Y}"
    t = PoSequence.__table__
    stmt = (
        update(PoSequence)
        .where(PoSequence.prefix == prefix)
        .values(next_value=PoSequence.next_value + 1)
        .returning(PoSequence.next_value)
    )
    value = (await session.execute(stmt)).scalar_one_or_none()
    if value is None:
        await locks.insert_ignore(session, t, [{"prefix": prefix, "next_value": 0}], ["prefix"])
        value = (await session.execute(stmt)).scalar_one()
    return f"{prefix}-{value:06d}"


def issued_envelope(po: PurchaseOrderRow, lines: Sequence[PurchaseOrderLineRow]) -> Envelope:
    assert po.issued_at is not None
    msg = PurchaseOrderIssued(
        po_number=po.po_number,
        supplier=po.supplier,
        issued_at=po.issued_at,
        currency=po.currency,
        ship_to=po.ship_to,
        expected_delivery=po.expected_delivery,
        lines=tuple(
            PurchaseOrderLine(
                line_number=ln.line_number,
                sku=ln.sku,
                supplier_sku=ln.supplier_sku,
                quantity=ln.ordered,
                unit_price=ln.unit_price,
            )
            for ln in sorted(lines, key=lambda x: x.line_number)
        ),
    )
    return Envelope(
        id=message_id(SOURCE, msg.ce_type, po.po_number),
        source=SOURCE,
        data=msg,
        time=po.issued_at,
        correlation_id=po.po_number,
    )


# --- approval --------------------------------------------------------------------------------


# A PO whose open lines are no order (yet, or any more).
_NOT_ORDERED = ("cancelled", "rejected")


async def _on_order(
    session: AsyncSession, keys: set[StockKey] | None = None, *, reordered: bool = False
) -> list[tuple[StockKey, list[tuple[str, str, int]]]]:
    """Per (SKU, location) of `keys` (all when None), the POs with an open line of it:
    (PO number, its status, open units), in PO order. With `reordered`, also the POs of it
    made after the first of those, closed ones too (0 units open): a later order of goods
    still on order, which replenishment never makes, so a supplier's revision reopened a
    refused line after its replacement went out, or came in."""
    lt, pt = PurchaseOrderLineRow, PurchaseOrderRow
    cols = (lt.sku, lt.location, pt.po_number, pt.status, pt.created_at, lt.confirmed, lt.received)
    q = (
        select(*cols)
        .join(pt, pt.po_number == lt.po_number)
        .where(pt.status.not_in(_NOT_ORDERED))
        .order_by(lt.sku, lt.location, pt.po_number)
    )

    async def read(stmt: Any, skus: Iterable[str] | None) -> list[Any]:
        if skus is None:
            return list((await session.execute(stmt)).all())
        rows: list[Any] = []
        for part in locks.chunks(sorted(set(skus))):
            rows += (await session.execute(stmt.where(locks.one_of(session, lt.sku, part)))).all()
        return rows

    found: dict[StockKey, dict[str, tuple[str, int]]] = defaultdict(dict)
    first: dict[StockKey, datetime] = {}
    skus = None if keys is None else {sku for sku, _ in keys}
    for r in await read(q.where(lt.open.is_(True)), skus):
        key = (r.sku, r.location)
        if keys is None or key in keys:
            found[key][r.po_number] = (r.status, max(0, r.confirmed - r.received))
            at = stored_utc(r.created_at)
            first[key] = min(first.get(key, at), at)
    if reordered and first:
        # (A line refused, or left out of a suggestion when approved, ordered nothing.)
        closed = q.where(lt.open.is_(False), (lt.confirmed > 0) | (lt.received > 0))
        for r in await read(closed, {sku for sku, _ in first}):
            key = (r.sku, r.location)
            if key in first and stored_utc(r.created_at) > first[key]:
                found[key].setdefault(r.po_number, (r.status, 0))
    return [
        (key, [(n, st, units) for n, (st, units) in sorted(pos.items())])
        for key, pos in sorted(found.items())
    ]


async def _received_since(
    session: AsyncSession, keys: set[StockKey], since: datetime, po_number: str
) -> list[tuple[str, str, str]]:
    """(SKU, location, PO) of goods of `keys` received on another PO's lines after `since`,
    filling what they expected: a refused PO the supplier's revision reopened, whose goods
    came in and closed it, so no line of it is open, yet a suggestion made before would order
    them again. Units beyond the lines (a late carton on a PO cut and closed) fill nothing a
    suggestion was made for."""
    rt = PoReceiptRow
    found: set[tuple[str, str, str]] = set()
    for part in locks.chunks(sorted({sku for sku, _ in keys})):
        q = select(
            rt.sku, rt.location, rt.po_number, rt.received_at, rt.quantity, rt.over_delivered
        ).where(locks.one_of(session, rt.sku, part), rt.po_number != po_number)
        for r in (await session.execute(q)).all():
            filled = r.quantity > r.over_delivered
            if (r.sku, r.location) in keys and filled and stored_utc(r.received_at) > since:
                found.add((r.sku, r.location, r.po_number))
    return sorted(found)


@dataclass(frozen=True, slots=True)
class Approval:
    envelope: Envelope  # the PO as issued, in the outbox
    left_out: list[tuple[str, str, str]]  # (SKU, location, the PO it is on order in)


async def approve(session: AsyncSession, po_number: str, actor: str) -> Approval:
    """Issue a suggested PO: its lines' open units become inbound (less what a receipt brought
    before the approval), its message goes to the outbox. A line whose SKU is on order in
    another PO since the suggestion was made (a supplier's revision took back its refusal) is
    left out, closed having ordered nothing, and the rest goes; with nothing left, it is
    refused (`AlreadyOnOrder`) and stays a suggestion."""
    lt = PurchaseOrderLineRow.__table__
    keys = (
        await session.execute(select(lt.c.sku, lt.c.location).where(lt.c.po_number == po_number))
    ).all()
    if not keys:
        raise UnknownPurchaseOrder(po_number)
    # Stock first, then the PO: the core's order.
    await locks.lock_stock(session, {k.sku for k in keys}, {(k.sku, k.location) for k in keys})
    po, lines = await _load(session, po_number)
    if po is None:
        raise UnknownPurchaseOrder(po_number)
    if po.status != "suggested":
        raise NotAwaitingApproval(po_number, po.status)
    keys_of = {(ln.sku, ln.location) for ln in lines}
    clashes = [
        (sku, loc, other)
        for (sku, loc), pos in await _on_order(session, keys_of)
        for other, status, _ in pos
        if other != po_number and status != "suggested"
    ]
    clashes += await _received_since(session, keys_of, stored_utc(po.created_at), po_number)
    clashing = {(sku, loc) for sku, loc, _ in clashes}
    issued = [ln for ln in lines if (ln.sku, ln.location) not in clashing]
    if not issued:
        raise AlreadyOnOrder(po_number, clashes)
    now = now_utc()
    for ln in lines:
        if (ln.sku, ln.location) in clashing:  # left out: ordered nothing
            line = _po_line(ln)
            if not line.received:
                await session.delete(ln)  # never sent: no answer of the supplier names it
                continue
            # What arrived before the approval is all it brings: no answer confirms more.
            ln.ordered = line.received
            _store_line(ln, replace(line, confirmed=line.received, closed=True))
            continue
        await session.execute(
            update(Stock)
            .where(Stock.sku == ln.sku, Stock.location == ln.location)
            .values(inbound=Stock.inbound + _po_line(ln).open_quantity, updated_at=now)
        )
    po.status, po.issued_at, po.approved_by, po.updated_at = "issued", now, actor, now
    env = issued_envelope(po, issued)
    from hub.core.batch import outbox_row

    await session.execute(insert(OutboxRow), [outbox_row(env)])
    after: dict[str, Any] = {
        "status": "issued",
        "lines": [{"sku": ln.sku, "quantity": ln.ordered} for ln in issued],
    }
    if clashes:
        after["left_out"] = [{"sku": s, "location": loc, "on_order_in": o} for s, loc, o in clashes]
    await audit.record(
        session, actor, "po.approve", po_number, before={"status": "suggested"}, after=after
    )
    await session.flush()
    return Approval(env, clashes)


# --- supplier messages -----------------------------------------------------------------------


async def handle(
    session: AsyncSession,
    env: Envelope,
    chart: Chart | None,
    *,
    tolerance: Tolerance = DEFAULT_TOLERANCE,
) -> Handled:
    msg = env.data
    if isinstance(msg, PurchaseOrderAcknowledged):
        return await _acknowledged(session, msg)
    if isinstance(msg, ShipmentNotified):
        return await _shipped(session, msg)
    if isinstance(msg, SupplierInvoiceReceived):
        return await _invoiced(session, env, msg, chart, tolerance)
    if isinstance(msg, SupplierStockReported):
        return await _stock_reported(session, msg)
    return Handled()


async def _stock_reported(session: AsyncSession, msg: SupplierStockReported) -> Handled:
    """Apply a report for a dropship SKU unless a report measured later was applied already."""
    item = await session.get(DropshipItem, (msg.sku, msg.supplier), with_for_update=True)
    if item is None:
        log.info("stock report for a SKU not sold as dropship", sku=msg.sku, supplier=msg.supplier)
        return Handled()
    if item.reported_at is not None and stored_utc(msg.reported_at) <= stored_utc(item.reported_at):
        log.info(
            "stock report older than the one applied",
            sku=msg.sku,
            supplier=msg.supplier,
            report_id=msg.report_id,
            applied=item.report_id,
        )
        return Handled()
    item.reported_quantity, item.reported_at, item.report_id = (
        msg.quantity,
        msg.reported_at,
        msg.report_id,
    )
    await session.flush()
    location = dropship_location(msg.supplier)
    return Handled(
        supplier_stock=[
            SupplierStock(msg.sku, location, msg.quantity, msg.report_id, msg.reported_at)
        ]
    )


async def _load(
    session: AsyncSession, po_number: str
) -> tuple[PurchaseOrderRow | None, list[PurchaseOrderLineRow]]:
    q = select(PurchaseOrderRow).where(PurchaseOrderRow.po_number == po_number).with_for_update()
    po = (await session.execute(q)).scalar_one_or_none()
    if po is None:
        return None, []
    lq = (
        select(PurchaseOrderLineRow)
        .where(PurchaseOrderLineRow.po_number == po_number)
        .order_by(PurchaseOrderLineRow.line_number)
        .with_for_update()
    )
    return po, list((await session.execute(lq)).scalars().all())


def _po_line(row: PurchaseOrderLineRow) -> receiving.PoLine:
    return receiving.PoLine(
        row.line_number, row.sku, row.ordered, row.confirmed, row.received, row.closed
    )


def _store_line(row: PurchaseOrderLineRow, line: receiving.PoLine) -> None:
    row.confirmed, row.received, row.closed = line.confirmed, line.received, line.closed
    row.status = line.status.value
    row.open = line.open_quantity > 0
    row.over_delivered = line.over_delivered
    row.under_delivered = line.under_delivered


async def _acknowledged(session: AsyncSession, msg: PurchaseOrderAcknowledged) -> Handled:
    po, rows = await _load(session, msg.po_number)
    if po is None:
        raise UnknownPurchaseOrder(msg.po_number)
    _own(po, msg.supplier)
    if po.status in ("suggested", "cancelled"):
        log.warning("acknowledgement of a PO not issued", po_number=po.po_number, status=po.status)
        return Handled()
    # A supplier may revise its answer (an 855 replacing the first, with the same order
    # number): the newest applies, whichever comes last. Applying the same answer again
    # changes nothing, as confirmed quantities are absolute.
    last = po.acknowledged_at
    if last is not None and stored_utc(msg.acknowledged_at) < stored_utc(last):
        log.info(
            "older acknowledgement not applied",
            po_number=po.po_number,
            acknowledgement_id=msg.acknowledgement_id,
        )
        return Handled()
    after = receiving.acknowledge([_po_line(r) for r in rows], msg)
    answers = receiving.answered([_po_line(r) for r in rows], msg.lines)
    deltas: dict[StockKey, int] = defaultdict(int)
    for row, line in zip(rows, after, strict=True):
        deltas[(row.sku, row.location)] += line.open_quantity - _po_line(row).open_quantity
        _store_line(row, line)
        a = answers.get(row.line_number)
        if a is not None:
            row.confirmed_price = a.unit_price if a.unit_price is not None else row.confirmed_price
            row.expected_delivery = a.expected_delivery or row.expected_delivery
    po.acknowledgement_id, po.acknowledged_at = msg.acknowledgement_id, msg.acknowledged_at
    if all(r.status == "rejected" for r in rows):
        po.status = "rejected"
    elif po.status in ("issued", "rejected"):  # not back once goods are on their way
        po.status = "acknowledged"
    elif po.status == "closed" and any(r.open for r in rows):  # a revision reopened a line
        po.status = "partially_received" if any(r.received for r in rows) else "acknowledged"
    po.updated_at = now_utc()
    await session.flush()
    return Handled(inbound=[(s, loc, d) for (s, loc), d in sorted(deltas.items()) if d])


async def _shipped(session: AsyncSession, msg: ShipmentNotified) -> Handled:
    key = (msg.supplier, msg.shipment_id, msg.po_number)
    if await session.get(ShipmentRow, key) is not None:
        return Handled()
    po, rows = await _load(session, msg.po_number)
    if po is None:
        raise UnknownPurchaseOrder(msg.po_number)
    _own(po, msg.supplier)
    by_number = {r.line_number: r for r in rows}
    for sl in msg.lines:
        row = by_number.get(sl.line_number) if sl.line_number else None
        if row is not None and row.sku != sl.sku:
            row = None  # numbered by the notice itself, not by the PO: the SKU decides
        if row is None:
            candidates = [r for r in rows if r.sku == sl.sku]
            row = next((r for r in candidates if r.open), candidates[-1] if candidates else None)
        if row is None:
            log.warning("shipped SKU not on the PO", po_number=po.po_number, sku=sl.sku)
            continue
        row.shipped += sl.quantity
        if msg.expected_delivery:
            row.expected_delivery = msg.expected_delivery
    if msg.expected_delivery:
        po.expected_delivery = msg.expected_delivery
    if po.status in ("issued", "acknowledged"):
        po.status = "in_transit"
    po.updated_at = now_utc()
    session.add(
        ShipmentRow(
            supplier=msg.supplier,
            shipment_id=msg.shipment_id,
            po_number=msg.po_number,
            shipped_at=msg.shipped_at,
            expected_delivery=msg.expected_delivery,
            carrier=msg.carrier,
            tracking_number=msg.tracking_number,
            lines=[ln.model_dump(mode="json") for ln in msg.lines],
        )
    )
    await session.flush()
    return Handled()


async def _invoiced(
    session: AsyncSession,
    env: Envelope,
    msg: SupplierInvoiceReceived,
    chart: Chart | None,
    tolerance: Tolerance,
) -> Handled:
    if await session.get(SupplierInvoiceRow, (msg.supplier, msg.invoice_number)) is not None:
        return Handled()
    po, rows = await _load(session, msg.po_number)
    inv = SupplierInvoiceRow(
        supplier=msg.supplier,
        invoice_number=msg.invoice_number,
        po_number=msg.po_number,
        currency=msg.currency,
        subtotal=msg.subtotal,
        tax=msg.tax,
        charges=msg.charges,
        total=msg.total,
        document=msg.model_dump(mode="json"),
        invoiced_at=msg.invoiced_at,
        status="held",  # until the match says otherwise
        reasons=[],
        price_variance=Decimal(0),
    )
    session.add(inv)
    out = Handled()
    if po is None:
        _hold(inv, [Hold(HoldReason.NOT_ON_ORDER, None, f"unknown purchase order {msg.po_number}")])
    elif po.supplier != msg.supplier:
        # Matched, it would clear another supplier's goods received not invoiced.
        detail = str(ForeignPurchaseOrder(po.po_number, po.supplier, msg.supplier))
        _hold(inv, [Hold(HoldReason.NOT_ON_ORDER, None, detail)])
    else:
        out.envelopes += await _match(
            session, inv, msg, po, rows, chart, tolerance, env.correlation_id or env.id
        )
    await session.flush()
    return out


# Holds that a later receipt can clear; a price or a total needs a person.
_WAIT_FOR_GOODS = frozenset({HoldReason.NOT_RECEIVED.value, HoldReason.OVER_RECEIVED.value})


async def rematch(
    session: AsyncSession,
    po_number: str,
    chart: Chart | None,
    *,
    tolerance: Tolerance = DEFAULT_TOLERANCE,
) -> list[Envelope]:
    """Match again the PO's invoices held for goods not yet received (call after `on_receipt`,
    in the same transaction): booked if nothing else holds them, else held for what still
    does; returns the vouchers' envelopes of those now booked."""
    q = (
        select(SupplierInvoiceRow)
        .where(SupplierInvoiceRow.po_number == po_number, SupplierInvoiceRow.status == "held")
        .order_by(SupplierInvoiceRow.invoiced_at, SupplierInvoiceRow.invoice_number)
    )
    held = [
        i
        for i in (await session.execute(q)).scalars().all()
        if any(r["reason"] in _WAIT_FOR_GOODS for r in i.reasons)
    ]
    if not held:
        return []
    po, rows = await _load(session, po_number)
    if po is None:
        return []
    out: list[Envelope] = []
    for inv in held:
        msg = SupplierInvoiceReceived.model_validate(inv.document)
        cause = message_id(SOURCE, "rematch", inv.supplier, inv.invoice_number)
        accept = ACCEPTABLE if inv.accepted_by else frozenset()
        # What the buyer accepted, not more: a price the supplier's revision raised since is
        # held again.
        out += await _match(
            session,
            inv,
            msg,
            po,
            rows,
            chart,
            tolerance,
            cause,
            accept=accept,
            variance_up_to=inv.accepted_variance if inv.accepted_by else None,
        )
    await session.flush()
    return out


async def discard(session: AsyncSession, po_number: str, actor: str) -> None:
    """Drop a suggested PO a person will not order (a SKU its supplier refused, ordered
    elsewhere): its lines close, so they no longer stand for the SKU's next order. Nothing was
    sent or counted as inbound for it."""
    po, lines = await _load(session, po_number)
    if po is None:
        raise UnknownPurchaseOrder(po_number)
    if po.status != "suggested":
        raise NotAwaitingApproval(po_number, po.status)
    now = now_utc()
    po.status, po.updated_at = "cancelled", now
    for ln in lines:  # nothing more to come: what arrived before is all the line brings
        line = _po_line(ln)
        _store_line(ln, replace(line, confirmed=min(line.confirmed, line.received), closed=True))
    await audit.record(
        session,
        actor,
        "po.discard",
        po_number,
        before={"status": "suggested"},
        after={"status": "cancelled", "lines": [ln.sku for ln in lines]},
    )
    await session.flush()


# Holds a person may accept: the prices or the charges the supplier asks. Quantities, the
# currency and the totals are corrected by the supplier (another invoice), never accepted.
ACCEPTABLE = frozenset({HoldReason.PRICE, HoldReason.CHARGES})


async def accept_invoice(
    session: AsyncSession, supplier: str, invoice_number: str, actor: str, chart: Chart
) -> SupplierInvoiceRow:
    """Book a held invoice whose holds are all prices or charges, as a person decided (audit
    log): the match runs again without them, so the goods it still lacks, or a price that
    moved in the meantime, are checked as for any invoice. Its voucher goes to the outbox."""
    po_number = (
        await session.execute(
            select(SupplierInvoiceRow.po_number).where(
                SupplierInvoiceRow.supplier == supplier,
                SupplierInvoiceRow.invoice_number == invoice_number,
            )
        )
    ).scalar_one_or_none()
    if po_number is None:
        raise UnknownInvoice(supplier, invoice_number)
    lt = PurchaseOrderLineRow.__table__
    keys = (
        await session.execute(select(lt.c.sku, lt.c.location).where(lt.c.po_number == po_number))
    ).all()
    # Stock first, then the PO and the invoice: the core's order.
    await locks.lock_stock(session, {k.sku for k in keys}, {(k.sku, k.location) for k in keys})
    inv = await session.get(
        SupplierInvoiceRow, (supplier, invoice_number), with_for_update=True, populate_existing=True
    )
    assert inv is not None
    if inv.status != "held":
        raise NotAcceptable(f"invoice {invoice_number} of {supplier} is {inv.status}, not held")
    # Goods not received yet are checked again by the match below.
    refused = [r["detail"] for r in inv.reasons if r["reason"] not in ACCEPTABLE | _WAIT_FOR_GOODS]
    if refused:
        raise NotAcceptable(
            f"invoice {invoice_number} of {supplier} waits for the supplier: " + "; ".join(refused)
        )
    po, rows = await _load(session, po_number)
    if po is None:
        raise UnknownPurchaseOrder(po_number)
    before = {"status": inv.status, "reasons": list(inv.reasons)}
    msg = SupplierInvoiceReceived.model_validate(inv.document)
    cause = message_id(SOURCE, "accept", supplier, invoice_number)
    envelopes = await _match(
        session, inv, msg, po, rows, chart, DEFAULT_TOLERANCE, cause, accept=ACCEPTABLE
    )
    inv.accepted_by, inv.accepted_variance = actor[:64], inv.price_variance
    if envelopes:
        from hub.core.batch import outbox_row

        await session.execute(insert(OutboxRow), [outbox_row(e) for e in envelopes])
    await audit.record(
        session,
        actor,
        "po.invoice.accept",
        f"{supplier}/{invoice_number}",
        before=before,
        after={
            "status": inv.status,
            "reasons": inv.reasons,
            "voucher_id": inv.voucher_id,
            "price_variance": amount_text(inv.price_variance, inv.currency),
            "charges": amount_text(inv.charges, inv.currency),
        },
    )
    await session.flush()
    return inv


def amount_text(value: Decimal, currency: str) -> str:
    """A stored amount in its currency's minor unit, as the supplier wrote it."""
    return str(value.quantize(minor_unit(currency)))


def _hold(inv: SupplierInvoiceRow, holds: Sequence[Hold]) -> None:
    inv.status = "held" if holds else "matched"
    inv.reasons = [{"reason": h.reason.value, "sku": h.sku, "detail": h.detail} for h in holds]
    if holds:
        log.warning("supplier invoice held", invoice=inv.invoice_number, reasons=len(holds))


async def _match(
    session: AsyncSession,
    inv: SupplierInvoiceRow,
    msg: SupplierInvoiceReceived,
    po: PurchaseOrderRow,
    rows: Sequence[PurchaseOrderLineRow],
    chart: Chart | None,
    tolerance: Tolerance,
    correlation_id: str,
    *,
    accept: frozenset[HoldReason] = frozenset(),
    variance_up_to: Decimal | None = None,
) -> list[Envelope]:
    """3-way match of one invoice; matched: its payable voucher is booked and its units count
    as invoiced on the PO's lines. Holds for the reasons in `accept` a person accepted; a price
    hold only up to `variance_up_to`, when given (the variance the person saw)."""
    received: dict[str, int] = defaultdict(int)
    billed: dict[str, int] = defaultdict(int)
    for r in rows:
        received[r.sku] += r.received
        billed[r.sku] += r.invoiced
    result = three_way_match(
        msg,
        po_lines=[
            PurchaseOrderLine(
                line_number=r.line_number,
                sku=r.sku,
                quantity=r.ordered,
                unit_price=r.confirmed_price if r.confirmed_price is not None else r.unit_price,
            )
            for r in rows
        ],
        po_currency=po.currency,
        received=received,
        already_invoiced=billed,
        tolerance=tolerance,
    )
    # (a variance below the one accepted, or below nothing, is no more than was seen)
    raised = variance_up_to is not None and result.price_variance > max(variance_up_to, Decimal(0))
    holds = [
        h
        for h in result.holds
        if h.reason not in accept or (h.reason is HoldReason.PRICE and raised)
    ]
    inv.price_variance = result.price_variance
    out: list[Envelope] = []
    if not holds and chart is not None:
        try:
            voucher = await payables.invoice_voucher(session, chart, msg)
        except CurrencyMismatch as exc:
            holds = [Hold(HoldReason.CURRENCY, None, str(exc))]
        else:
            if voucher is not None:
                inv.voucher_id = voucher.voucher_id
                if await ledger.post(session, voucher):
                    out.append(finance_events.envelope(voucher, correlation_id))
    _hold(inv, holds)
    if not holds:
        for il in msg.lines:
            left = il.quantity
            for r in rows:
                if r.sku == il.sku and left:
                    take = min(left, max(r.received - r.invoiced, 0))
                    r.invoiced += take
                    left -= take
    return out


# --- receipts --------------------------------------------------------------------------------


async def on_receipt(session: AsyncSession, msg: GoodsReceived) -> list[tuple[str, str, int]]:
    """Put a receipt on its PO's lines in line order; record over- and under-delivery.
    Returns the inbound changes for the core's rows (`apply_inbound`), as `(sku, location,
    -units)` at each line's own location (a receipt may land elsewhere): the units the receipt
    filled on open lines (not an over-delivery, nor anything on a closed PO or a suggestion),
    and with a `final` receipt what the SKU's lines will no longer bring. A suggestion all of
    whose lines the receipts filled is closed: there is nothing left to approve."""
    if not msg.po_number:
        return []
    key = (msg.po_number, msg.receipt_id, msg.sku, msg.location)
    if await session.get(PoReceiptRow, key) is not None:
        return []
    po, rows = await _load(session, msg.po_number)
    if po is None:
        log.warning("receipt for an unknown PO", po_number=msg.po_number, sku=msg.sku)
        return []
    before = [_po_line(r) for r in rows]
    receipt = receiving.receive(before, msg.sku, msg.quantity)
    # Inbound is counted where each line expects its goods, whatever location received them:
    # a line's open units that the receipt filled or closed leave the line's location.
    deltas: dict[StockKey, int] = defaultdict(int)
    for row, old, line in zip(rows, before, receipt.lines, strict=True):
        if msg.final and row.sku == msg.sku and not line.closed:
            line = replace(line, closed=True)  # the supplier sends no more: close it short
        elif line.received == row.received:
            continue
        elif line.received >= line.confirmed:
            line = replace(line, closed=True)
        deltas[(row.sku, row.location)] += line.open_quantity - old.open_quantity
        _store_line(row, line)
    # A suggestion counts nothing as inbound: `approve` adds what is still open then.
    suggested = po.status == "suggested"
    short = [] if suggested else [(s, loc, d) for (s, loc), d in sorted(deltas.items()) if d]
    if all(not r.open for r in rows):
        po.status = "closed"
    elif any(r.received for r in rows) and not suggested:
        po.status = "partially_received"
    po.updated_at = now_utc()
    session.add(
        PoReceiptRow(
            po_number=msg.po_number,
            receipt_id=msg.receipt_id,
            sku=msg.sku,
            location=msg.location,
            quantity=msg.quantity,
            over_delivered=receipt.over_delivered,
            applied=[list(a) for a in receipt.applied],
            received_at=msg.received_at,
        )
    )
    await session.flush()
    return short


# --- reading ---------------------------------------------------------------------------------


async def purchase_orders(
    session: AsyncSession, *, status: str | None = None
) -> list[dict[str, Any]]:
    q = select(PurchaseOrderRow).order_by(PurchaseOrderRow.po_number)
    if status:
        q = q.where(PurchaseOrderRow.status == status)
    pos = list((await session.execute(q)).scalars().all())
    lines: dict[str, list[PurchaseOrderLineRow]] = defaultdict(list)
    if pos:
        lq = select(PurchaseOrderLineRow).where(
            PurchaseOrderLineRow.po_number.in_([p.po_number for p in pos])
        )
        for ln in (await session.execute(lq)).scalars().all():
            lines[ln.po_number].append(ln)
    return [
        {
            "po_number": p.po_number,
            "supplier": p.supplier,
            "status": p.status,
            "currency": p.currency,
            "ship_to": p.ship_to,
            "expected_delivery": p.expected_delivery.isoformat(),
            "issued_at": p.issued_at.isoformat() if p.issued_at else None,
            "approved_by": p.approved_by,
            "lines": [_line_json(ln) for ln in sorted(lines[p.po_number], key=_by_number)],
        }
        for p in pos
    ]


def _by_number(ln: PurchaseOrderLineRow) -> int:
    return ln.line_number


def _line_json(ln: PurchaseOrderLineRow) -> dict[str, Any]:
    return {
        "line_number": ln.line_number,
        "sku": ln.sku,
        "location": ln.location,
        "status": ln.status,
        "ordered": ln.ordered,
        "confirmed": ln.confirmed,
        "shipped": ln.shipped,
        "received": ln.received,
        "invoiced": ln.invoiced,
        "unit_price": str(ln.unit_price),
        "expected_delivery": ln.expected_delivery.isoformat(),
        "over_delivered": ln.over_delivered,
        "under_delivered": ln.under_delivered,
    }


async def exceptions(session: AsyncSession) -> dict[str, list[dict[str, Any]]]:
    """Held invoices with their reasons; lines delivered over, short, or partially so far;
    receipts of SKUs the PO does not order; and suggested orders waiting for approval."""
    held = (
        await session.execute(
            select(SupplierInvoiceRow)
            .where(SupplierInvoiceRow.status == "held")
            .order_by(SupplierInvoiceRow.po_number, SupplierInvoiceRow.invoice_number)
        )
    ).scalars()
    invoices = [
        {
            "supplier": i.supplier,
            "invoice_number": i.invoice_number,
            "po_number": i.po_number,
            "currency": i.currency,
            "total": amount_text(i.total, i.currency),
            "price_variance": amount_text(i.price_variance, i.currency),
            "reasons": i.reasons,
        }
        for i in held
    ]
    lt = PurchaseOrderLineRow
    q = (
        select(lt)
        .where(
            (lt.over_delivered > 0)
            | (lt.under_delivered > 0)
            | ((lt.received > 0) & (lt.received < lt.confirmed))
        )
        .order_by(lt.po_number, lt.line_number)
    )
    deliveries = []
    for ln in (await session.execute(q)).scalars().all():
        if ln.over_delivered:
            kind, units = "over_delivery", ln.over_delivered
        elif ln.under_delivered:
            kind, units = "under_delivery", ln.under_delivered
        else:
            kind, units = "partial_delivery", ln.confirmed - ln.received
        deliveries.append(
            {"po_number": ln.po_number, "kind": kind, "units": units} | _line_json(ln)
        )
    stray = (
        await session.execute(
            select(PoReceiptRow)
            .where(PoReceiptRow.over_delivered > 0)
            .order_by(PoReceiptRow.po_number)
        )
    ).scalars()
    for r in stray:
        if not r.applied:
            deliveries.append(
                {
                    "po_number": r.po_number,
                    "kind": "not_on_order",
                    "units": r.quantity,
                    "sku": r.sku,
                    "location": r.location,
                    "receipt_id": r.receipt_id,
                }
            )
    waiting = (
        await session.execute(
            select(PurchaseOrderRow)
            .where(PurchaseOrderRow.status == "suggested")
            .order_by(PurchaseOrderRow.created_at, PurchaseOrderRow.po_number)
        )
    ).scalars()
    # Suggestions wait for a person: until approved or discarded they stand for their SKUs'
    # next order, so none is ordered automatically meanwhile.
    suggested = [
        {
            "po_number": p.po_number,
            "supplier": p.supplier,
            "created_at": stored_utc(p.created_at).isoformat(),
        }
        for p in waiting
    ]
    # A SKU on order in two POs: a supplier's revised answer took back its refusal after the
    # replacement was suggested, sent or even received. A person discards the suggestion, or
    # cancels one order with its supplier.
    twice = [
        {
            "sku": sku,
            "location": loc,
            "orders": [{"po_number": n, "status": st, "units": u} for n, st, u in pos],
        }
        for (sku, loc), pos in await _on_order(session, reordered=True)
        if len(pos) > 1
    ]
    return {
        "held_invoices": invoices,
        "deliveries": deliveries,
        "suggested": suggested,
        "on_order_twice": twice,
    }
