"""What to bill: order line prices remembered from OrderPlaced, turned into `SaleLine`s for each
fulfilment (which carries no prices), refunds split into revenue and tax, and the cost at which
returned units left. Runs inside the core's transaction, next to the stock changes.

Order independence: a fulfilment that arrives before its order books its cost at once and its
revenue when the prices arrive (`remember_prices` returns those lines for `rules.sale_billed`),
so either arrival order ends with the same receivable, revenue and inventory.

Amounts are spread over a line's units cumulatively (share of units 1..n minus share of 1..n-1),
so partial shipments add up to the line exactly. Shipping is billed with the first fulfilment as
charge lines (`SHIPPING`, and `CHARGES` for lines without a SKU and fees): revenue and output
tax without goods.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.finance import costing
from hub.finance.chart import Chart, Role
from hub.finance.ledger import from_minor, insert
from hub.finance.rules import ReturnLine, SaleLine, voucher_id
from hub.finance.tables import OrderFinance, OrderLinePrice, VoucherLineRow, VoucherRow
from hub.store import bulk
from hub.store.locks import one_of
from hub.store.models import ProcessedMessage, table
from schemas.orders import OrderCancelled, OrderFulfilled, OrderPlaced, OrderReturned

SHIPPING = ("~shipping", "~")
CHARGES = ("~charges", "~")  # lines without a SKU and fees
CHARGE_KEYS = (SHIPPING, CHARGES)  # billed whole with the first fulfilment
# Causes seen by finance, in the inbox table under this consumer name (keyed by voucher id).
FINANCE_CONSUMER = "finance"
ZERO = Decimal(0)


# `session.info` keys of causes claimed ahead by `claim_first_times` (per transaction).
_CHECKED = "hub.finance.causes_checked"
_FRESH = "hub.finance.causes_fresh"


async def first_time(session: AsyncSession, cause_id: str) -> bool:
    """Record that finance handled this cause; False if it had been handled before — even when
    it booked no voucher then (nothing had a price or a cost), so a redelivery that meets a
    different stock state still books nothing."""
    checked: set[str] | None = session.info.get(_CHECKED)
    if checked is not None and cause_id in checked:
        fresh: set[str] = session.info[_FRESH]
        if cause_id in fresh:
            fresh.discard(cause_id)  # a second message with the same cause is not new
            return True
        return False
    result = await session.execute(
        insert(session, ProcessedMessage)
        .values(consumer=FINANCE_CONSUMER, message_id=cause_id)
        .on_conflict_do_nothing(index_elements=["consumer", "message_id"])
    )
    return getattr(result, "rowcount", 0) == 1


async def claim_first_times(session: AsyncSession, cause_ids: Iterable[str]) -> None:
    """Record many causes in one statement (a batch's messages) ahead of their
    `first_time`, which then answers from memory: True once for each cause not handled before.
    Only for causes whose messages will reach `first_time` in this transaction."""
    checked: set[str] = session.info.setdefault(_CHECKED, set())
    fresh: set[str] = session.info.setdefault(_FRESH, set())
    ids = sorted(set(cause_ids) - checked)
    # One prepared statement whatever the count (a multi-row VALUES was compiled anew for every
    # batch size: 4% of the core's CPU at a paced trickle of webhooks).
    claimed = await bulk.insert_new(
        session,
        table(ProcessedMessage),
        [{"consumer": FINANCE_CONSUMER, "message_id": c} for c in ids],
        ("consumer", "message_id"),
    )
    fresh.update(message for _, message in claimed)
    checked.update(ids)


def _share(row: OrderLinePrice, units: int, currency: str) -> tuple[Decimal, Decimal]:
    if row.ordered <= 0:
        return ZERO, ZERO
    n = min(units, row.ordered)
    return (
        costing.round_amount(Decimal(row.net) * n / row.ordered, currency),
        costing.round_amount(Decimal(row.tax) * n / row.ordered, currency),
    )


def _bill(row: OrderLinePrice, currency: str) -> tuple[Decimal, Decimal]:
    """Amounts of the units shipped but not yet billed; marks them billed."""
    if not row.priced or row.billed >= row.shipped:
        return ZERO, ZERO
    n1, t1 = _share(row, row.shipped, currency)
    n0, t0 = _share(row, row.billed, currency)
    row.billed = row.shipped
    return n1 - n0, t1 - t0


async def _rows(session: AsyncSession, order_key: str) -> dict[tuple[str, str], OrderLinePrice]:
    result = await session.execute(
        select(OrderLinePrice).where(OrderLinePrice.order_key == order_key)
    )
    return {(r.sku, r.location): r for r in result.scalars()}


def _shipped_any(rows: Mapping[tuple[str, str], OrderLinePrice]) -> bool:
    """Whether anything of the order has shipped (so its first fulfilment billed its charges)."""
    return any(r.shipped > 0 for r in rows.values())


def _row(
    rows: dict[tuple[str, str], OrderLinePrice],
    session: AsyncSession,
    order_key: str,
    key: tuple[str, str],
) -> OrderLinePrice:
    if key not in rows:
        row = OrderLinePrice(
            order_key=order_key,
            sku=key[0],
            location=key[1],
            priced=False,
            ordered=0,
            net=ZERO,
            tax=ZERO,
            shipped=0,
            billed=0,
        )
        session.add(row)
        rows[key] = row
    return rows[key]


def _room(row: OrderLinePrice) -> int:
    return max(0, row.ordered - row.shipped) if row.priced else 0


def _priced_for(
    rows: dict[tuple[str, str], OrderLinePrice],
    session: AsyncSession,
    order_key: str,
    key: tuple[str, str],
    units: int,
) -> list[tuple[OrderLinePrice, int]]:
    """The price rows `units` of `key` shipped are billed on: the order's line at that location,
    then, past what it ordered there, its lines of the SKU at other locations with units left
    to ship (a platform that moved the order to another warehouse ships from there), and the
    rest on `key`'s row (unpriced when the order has not come yet)."""
    out: list[tuple[OrderLinePrice, int]] = []
    own = rows.get(key)
    if own is not None and (take := min(units, _room(own))):
        out.append((own, take))
        units -= take
    elsewhere = _spread(rows, key, units)
    out += elsewhere
    units -= sum(take for _, take in elsewhere)
    if units:
        out.append((_row(rows, session, order_key, key), units))
    return out


async def remember_prices(session: AsyncSession, msg: OrderPlaced) -> list[SaleLine]:
    """Store the order's line prices (once). Returns the lines of units already shipped and not
    billed — book them with `rules.sale_billed` — or [] when nothing shipped first. Units that
    shipped first beyond what the order has at their location (from another warehouse) are
    billed on its lines of the SKU elsewhere, as `bill_shipment` bills them after the order."""
    rows = await _rows(session, msg.order_key)
    if any(r.priced for r in rows.values()):
        return []
    per_key = _price_lines(msg)
    shipped_first = _shipped_any(rows)
    for key, (q, n, t) in per_key.items():
        row = _row(rows, session, msg.order_key, key)
        row.priced, row.currency, row.ordered, row.net, row.tax = True, msg.currency, q, n, t
        if key in CHARGE_KEYS and shipped_first:
            row.shipped = max(row.shipped, 1)
    for key, row in sorted(rows.items()):
        excess = row.shipped - (row.ordered if row.priced else 0)
        if key in CHARGE_KEYS or excess <= 0:
            continue
        for other, take in _spread(rows, key, excess):
            other.shipped += take  # counted as shipped there, once
            row.shipped -= take
    late: list[SaleLine] = []
    for key in per_key:  # (rows the order has no line at are unpriced: nothing to bill)
        row = rows[key]
        units = row.shipped - row.billed
        net, tax = _bill(row, msg.currency)
        if net or tax:
            late.append(SaleLine(key[0], key[1], 0 if key in CHARGE_KEYS else units, net, tax))
    await session.flush()
    return late


def _spread(
    rows: Mapping[tuple[str, str], OrderLinePrice], key: tuple[str, str], units: int
) -> list[tuple[OrderLinePrice, int]]:
    """Up to `units` of `key`'s SKU over the order's priced lines of it at other locations, as
    many as each has left to ship, by location (never a charge: its row's location is "~",
    which no warehouse is)."""
    out: list[tuple[OrderLinePrice, int]] = []
    for k in sorted(rows):
        if k[0] != key[0] or k == key or k in CHARGE_KEYS:
            continue
        if take := min(units, _room(rows[k])):
            out.append((rows[k], take))
            units -= take
    return out


def _price_lines(msg: OrderPlaced) -> dict[tuple[str, str], tuple[int, Decimal, Decimal]]:
    per_key: dict[tuple[str, str], tuple[int, Decimal, Decimal]] = defaultdict(
        lambda: (0, ZERO, ZERO)
    )
    for line in msg.lines:
        gross = line.unit_price * line.quantity - line.discount
        net = gross - line.tax if msg.taxes_included else gross
        q, n, t = per_key[(line.sku, line.location)]
        per_key[(line.sku, line.location)] = (q + line.quantity, n + net, t + line.tax)
    for key, gross, tax in (
        (SHIPPING, msg.shipping, msg.shipping_tax),
        (CHARGES, msg.charges, msg.charges_tax),
    ):
        if gross or tax:
            per_key[key] = (1, gross - tax if msg.taxes_included else gross, tax)
    return per_key


async def price_rows_bulk(
    session: AsyncSession,
    msgs: Sequence[OrderPlaced],
    currency: str,
    new_orders: Collection[str] = (),
) -> tuple[set[int], list[dict[str, object]]]:
    """The prices of a batch's new orders, as rows to INSERT in one statement: those with no
    price rows yet (nothing of them shipped first, so nothing to bill late). Returns the indexes
    of the messages handled, and their rows (the same rows as `remember_prices`); the others go
    through `remember_prices` one by one. `new_orders`: orders with no row before this
    transaction, so none has price rows to look up (prices are written with the order's row, in
    the core's transaction). The caller writes the rows, before anything reads them back."""
    keys = {m.order_key for m in msgs if m.currency == currency}
    if not keys:
        return set(), []
    unknown = sorted(keys.difference(new_orders))
    existing = (
        set(
            (
                await session.execute(
                    select(OrderLinePrice.order_key)
                    .where(one_of(session, OrderLinePrice.order_key, unknown))
                    .distinct()
                )
            ).scalars()
        )
        if unknown
        else set()
    )
    rows: list[dict[str, object]] = []
    handled: set[int] = set()
    seen: set[str] = set()
    for i, msg in enumerate(msgs):
        if msg.order_key not in keys or msg.order_key in existing or msg.order_key in seen:
            continue
        seen.add(msg.order_key)
        handled.add(i)
        for (sku, location), (q, n, t) in _price_lines(msg).items():
            rows.append(
                {
                    "order_key": msg.order_key,
                    "sku": sku,
                    "location": location,
                    "currency": msg.currency,
                    "priced": True,
                    "ordered": q,
                    "net": n,
                    "tax": t,
                    "shipped": 0,
                    "billed": 0,
                }
            )
    return handled, rows


async def bill_shipment(
    session: AsyncSession, msg: OrderFulfilled, currency: str
) -> list[SaleLine] | None:
    """The `SaleLine`s of a fulfilment: revenue and tax of priced lines (zero for lines whose
    order has not arrived yet), plus shipping and charges on the first fulfilment. None if this
    fulfilment was billed before (a duplicate)."""
    vid = voucher_id("sale_fulfilled", f"{msg.order_key}:{msg.fulfilment_id}")
    if not await first_time(session, vid):
        return None  # billed before, even if it booked no voucher (nothing had a price or cost)
    rows = await _rows(session, msg.order_key)
    first = not _shipped_any(rows)
    shipped: dict[tuple[str, str], int] = defaultdict(int)
    for line in msg.lines:
        shipped[(line.sku, line.location)] += line.quantity
    out: list[SaleLine] = []
    for key, q in shipped.items():
        for row, units in _priced_for(rows, session, msg.order_key, key, q):
            row.shipped += units
            net, tax = _bill(row, row.currency or currency)
            # Revenue at the price of the order's line, cost where the units left from.
            out.append(SaleLine(key[0], key[1], units, net, tax))
    for key in CHARGE_KEYS if first else ():
        if key != SHIPPING and key not in rows:
            continue  # no charges on this order (or its prices come later, and bill them then)
        out.extend(_bill_charge(_row(rows, session, msg.order_key, key), currency))
    await session.flush()
    return out


def _bill_charge(row: OrderLinePrice, currency: str) -> list[SaleLine]:
    """A charge line (shipping, charges) billed whole, once: [] when nothing is left to bill."""
    net, tax = _bill_whole(row, currency)
    return [SaleLine(row.sku, row.location, 0, net, tax)] if net or tax else []


def _bill_whole(row: OrderLinePrice, currency: str) -> tuple[Decimal, Decimal]:
    row.shipped = 1
    return _bill(row, row.currency or currency)


async def bill_cancellation(
    session: AsyncSession, msg: OrderCancelled, currency: str
) -> list[SaleLine]:
    """An order cancelled before anything of it shipped: its shipping and charges were to be
    billed with a first fulfilment that now never comes. What the customer paid and still has
    not had back keeps them: they are billed now up to that money (at their own rates), so it is
    revenue and the receivable closes. An unpaid order, or one refunded whole, bills nothing; a
    refund of them afterwards is a credit note."""
    rows = await _rows(session, msg.order_key)
    if _shipped_any(rows):
        return []  # billed with the first fulfilment already
    charges = [r for k in CHARGE_KEYS if (r := rows.get(k)) is not None and r.priced]
    fin = await session.get(OrderFinance, msg.order_key)
    held = from_minor(fin.paid_minor - fin.billed_minor, currency) if fin is not None else ZERO
    if not charges or held <= 0:
        return []
    billed = [(r, *_bill_whole(r, currency)) for r in charges]
    gross = sum((net + tax for _, net, tax in billed), ZERO)
    share = min(Decimal(1), held / gross) if gross > 0 else Decimal(1)
    out = []
    for row, net, tax in billed:
        net, tax = (costing.round_amount(a * share, currency) for a in (net, tax))
        if net or tax:
            out.append(SaleLine(row.sku, row.location, 0, net, tax))
    await session.flush()
    return out


async def refund_split(
    session: AsyncSession,
    msg: OrderReturned,
    unshipped: Mapping[tuple[str, str], int] | None = None,
) -> tuple[Decimal, Decimal]:
    """(net, tax) of the credit note of a refund, at the tax rate of the returned lines (of the
    order if unknown). Units in `unshipped` never left (refunded before fulfilment): they were
    never billed, so their share of the refund, by the order's line prices, is no credit note;
    the payment's refund alone settles it. The refund's `adjustment` (shipping, goodwill, or
    less refunded than the lines' amount) is credited whole, at the whole order's rate; before
    anything of the order was billed, it lowers the charges its first fulfilment bills instead.
    """
    rows = await _rows(session, msg.order_key)
    keys = {(line.sku, line.location) for line in msg.lines}
    refund = msg.refund
    if unshipped and any(unshipped.values()):
        returned: dict[tuple[str, str], int] = defaultdict(int)
        for line in msg.lines:
            returned[(line.sku, line.location)] += line.quantity
        # By the order's line prices where every line has one, else by units.
        by_price = all(
            (r := rows.get(k)) is not None and r.priced and r.ordered > 0 for k in returned
        )

        def worth(key: tuple[str, str], units: int) -> Decimal:
            row = rows[key] if by_price else None
            if row is None:
                return Decimal(units)
            return (Decimal(row.net) + Decimal(row.tax)) * units / row.ordered

        whole = sum((worth(k, n) for k, n in returned.items()), ZERO)
        never = sum((worth(k, n) for k, n in unshipped.items()), ZERO)
        refund = refund * (whole - never) / whole if whole > 0 else ZERO
        keys = {k for k, n in returned.items() if n > unshipped.get(k, 0)}  # what is credited
    every = [r for r in rows.values() if r.priced]
    cur = msg.currency
    net, tax = _split(refund, [r for k, r in rows.items() if r.priced and k in keys] or every, cur)
    if msg.adjustment:  # shipping, goodwill: at the rate of the whole order
        more_net, more_tax = _split(msg.adjustment, every, cur)
        if msg.adjustment > 0 and every and not _shipped_any(rows):
            # Money back before anything was billed: shipping and charges go with the first
            # fulfilment, so it lowers what that bills. An order cancelled before it ships then
            # bills nothing and credits nothing. (Money kept, a negative adjustment, is revenue
            # now, shipped or not.)
            row = _row(rows, session, msg.order_key, CHARGES)
            if not row.priced:
                row.priced, row.currency, row.ordered = True, cur, 1
            row.net = Decimal(row.net) - more_net
            row.tax = Decimal(row.tax) - more_tax
            await session.flush()
        else:
            net, tax = net + more_net, tax + more_tax
    return costing.round_amount(net, msg.currency), costing.round_amount(tax, msg.currency)


def _split(
    amount: Decimal, rows: Sequence[OrderLinePrice], currency: str
) -> tuple[Decimal, Decimal]:
    """(net, tax) of an amount, tax included, at the rate of these price rows (none: no tax)."""
    net = sum((Decimal(r.net) for r in rows), ZERO)
    tax = sum((Decimal(r.tax) for r in rows), ZERO)
    if net + tax <= 0:
        return amount, ZERO
    share = costing.round_amount(amount * tax / (net + tax), currency)
    return amount - share, share


async def return_lines(session: AsyncSession, chart: Chart, msg: OrderReturned) -> list[ReturnLine]:
    """The returned lines, each with the average cost at which the order's units of its SKU
    left (cost of sales booked for that order and SKU ÷ its units shipped; units a supplier
    shipped left at no cost of the hub's, so a return of the whole order takes back exactly
    what was booked); None where nothing was booked.

    Per SKU, not per location: units are billed on the order's line of the SKU, which may be at
    another warehouse than the one they left (a platform that moved the order), and may come
    back to a third, so only the SKU's totals are the same whichever way, and in whichever
    order, the messages came. An order that shipped one SKU from warehouses at different costs
    takes its units back at their average."""
    cogs = chart[Role.COST_OF_SALES].code
    q = (
        select(
            VoucherLineRow.sku,
            func.sum(VoucherLineRow.debit_minor) - func.sum(VoucherLineRow.credit_minor),
        )
        .join(VoucherRow, VoucherRow.voucher_id == VoucherLineRow.voucher_id)
        .where(
            VoucherRow.cause_type == "sale_fulfilled",
            VoucherRow.cause_ref.startswith(f"{msg.order_key}:", autoescape=True),
            VoucherLineRow.account == cogs,
            VoucherLineRow.currency == chart.currency,
        )
        .group_by(VoucherLineRow.sku)
    )
    cost = {sku: int(m or 0) for sku, m in (await session.execute(q)).all() if sku is not None}
    shipped: dict[str, int] = defaultdict(int)
    for key, row in (await _rows(session, msg.order_key)).items():
        if key not in CHARGE_KEYS:
            shipped[key[0]] += row.shipped
    out = []
    for line in msg.lines:
        unit_cost = None
        if shipped[line.sku] > 0 and line.sku in cost:
            total = from_minor(cost[line.sku], chart.currency)
            unit_cost = costing.quantize_cost(total / shipped[line.sku])
        out.append(ReturnLine(line.sku, line.location, line.quantity, line.restock, unit_cost))
    return out
