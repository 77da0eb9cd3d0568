"""One entry point for the core: the vouchers a canonical message books.

Call `vouchers_for(session, chart, msg, stock)` inside the message's transaction, *before* the
message's stock effect is applied, with `stock[(sku, location)] = (on_hand, avg_cost)` of every
row the message touches (the in-memory state of the batch so far). Then `post` each voucher
(`ledger.post` returns False for one booked before) and write the new ones to the outbox as
`envelope(voucher)`. After the stock effect, store the averages that `hub.finance.costing`
computes (`receive` on receipts, restocking returns and transfers in; unchanged otherwise), so
the inventory account keeps equal to Σ on_hand × avg_cost.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from hub.finance import billing, ledger, payables, rules
from hub.finance.chart import Chart
from hub.finance.rules import StockKey, StockState
from schemas.base import CanonicalMessage
from schemas.envelope import Envelope
from schemas.finance import VoucherIssued
from schemas.orders import OrderCancelled, OrderFulfilled, OrderPlaced, OrderReturned
from schemas.payments import PaymentCaptured, PaymentRefunded
from schemas.stock import GoodsReceived, StockAdjusted, StockCounted, StockTransferred

SOURCE = "hub/finance"


def _state(stock: Mapping[StockKey, StockState], key: StockKey) -> StockState:
    return stock.get(key, (0, Decimal(0)))


async def vouchers_for(
    session: AsyncSession,
    chart: Chart,
    msg: CanonicalMessage,
    stock: Mapping[StockKey, StockState],
    *,
    unshipped: Mapping[StockKey, int] | None = None,
    dropshipped: Mapping[StockKey, int] | None = None,
    moved_since_count: int | None = 0,
    shipped_at: datetime | None = None,
) -> list[VoucherIssued]:
    """The vouchers `msg` books ([] for messages without a financial effect, and for a cause
    handled before: finance records each cause in the inbox table, so it is idempotent on its
    own, besides the ledger refusing a known voucher id). `unshipped`: for a return, the units
    of its lines that never left (no credit note for them; see `billing.refund_split`).
    `dropshipped`: for a fulfilment, the units of its lines the supplier ships (no cost of
    sales from the hub's inventory for them). `moved_since_count`: for a stocktake, the units
    journaled after it was counted (`StockBook.moved_since_count`), None when a later count
    stands (nothing to book). `shipped_at`: for an order some of whose units shipped before it
    came, when the last of them left (their late billing is dated then).

    Raises `rules.CurrencyMismatch`, before writing anything, for a message in a currency other
    than the books' (conversion is not done yet): catch it, report it, and carry on.
    """
    currency = getattr(msg, "currency", chart.currency)
    if currency != chart.currency:
        # Checked before anything is written: the caller may catch it and carry on.
        raise rules.CurrencyMismatch(
            f"{msg.ce_type} in {currency}: the books are kept in {chart.currency}"
        )
    cause = _cause_id(msg)
    if cause is not None and not await billing.first_time(session, cause):
        return []
    made: list[VoucherIssued | None] = []
    match msg:
        case OrderPlaced():
            late = await billing.remember_prices(session, msg)
            if late:
                # Revenue when the goods left (their cost was booked then), not when the order
                # was placed: either arrival order books it in the same period.
                at = max(msg.placed_at, shipped_at) if shipped_at else msg.placed_at
                made.append(
                    rules.sale_billed(
                        chart,
                        order_key=msg.order_key,
                        at=at,
                        currency=msg.currency,
                        lines=late,
                    )
                )
        case OrderCancelled():
            kept = await billing.bill_cancellation(session, msg, chart.currency)
            if kept:
                made.append(
                    rules.sale_billed(
                        chart,
                        order_key=msg.order_key,
                        at=msg.cancelled_at,
                        currency=chart.currency,
                        lines=kept,
                        cause_type="order_cancelled",
                    )
                )
        case OrderFulfilled():
            lines = await billing.bill_shipment(session, msg, chart.currency)
            if lines is not None:
                made.append(
                    rules.sale_fulfilled(
                        chart,
                        order_key=msg.order_key,
                        fulfilment_id=msg.fulfilment_id,
                        at=msg.fulfilled_at,
                        currency=chart.currency,
                        lines=lines,
                        stock={
                            (ln.sku, ln.location): _state(stock, (ln.sku, ln.location))
                            for ln in lines
                            if ln.quantity
                        },
                        dropshipped=dropshipped,
                    )
                )
        case OrderReturned():
            returned = await billing.return_lines(session, chart, msg)
            net, tax = await billing.refund_split(session, msg, unshipped)
            made.append(
                rules.order_returned(
                    chart,
                    order_key=msg.order_key,
                    return_id=msg.return_id,
                    at=msg.returned_at,
                    currency=msg.currency,
                    refund_net=net,
                    refund_tax=tax,
                    lines=returned,
                    stock={
                        (ln.sku, ln.location): _state(stock, (ln.sku, ln.location))
                        for ln in returned
                    },
                )
            )
        case PaymentCaptured():
            made.append(
                rules.payment_captured(
                    chart,
                    order_key=msg.order_key,
                    payment_id=msg.payment_id,
                    at=msg.captured_at,
                    amount=msg.amount,
                    currency=msg.currency,
                    gateway=msg.gateway,
                )
            )
        case PaymentRefunded():
            made.append(
                rules.payment_refunded(
                    chart,
                    order_key=msg.order_key,
                    refund_id=msg.refund_id,
                    at=msg.refunded_at,
                    amount=msg.amount,
                    currency=msg.currency,
                    gateway=msg.gateway,
                )
            )
        case GoodsReceived():
            on_hand, avg = _state(stock, (msg.sku, msg.location))
            receipt = rules.goods_received(
                chart,
                receipt_id=msg.receipt_id,
                sku=msg.sku,
                location=msg.location,
                po_number=msg.po_number,
                at=msg.received_at,
                currency=msg.currency,
                quantity=msg.quantity,
                unit_cost=msg.unit_cost,
                on_hand=on_hand,
                avg_cost=avg,
            )
            await payables.note_receipt(session, chart, msg, receipt)
            made.append(receipt)
        case StockCounted():
            on_hand, avg = _state(stock, (msg.sku, msg.location))
            if moved_since_count is not None:  # None: a later count of that stock stands
                made.append(
                    rules.stock_counted(
                        chart,
                        count_id=msg.count_id,
                        sku=msg.sku,
                        location=msg.location,
                        at=msg.counted_at,
                        on_hand=on_hand,
                        avg_cost=avg,
                        counted=msg.quantity,
                        moved_since=moved_since_count,
                    )
                )
        case StockAdjusted():
            on_hand, avg = _state(stock, (msg.sku, msg.location))
            made.append(
                rules.stock_adjusted(
                    chart,
                    adjustment_id=msg.adjustment_id,
                    sku=msg.sku,
                    location=msg.location,
                    at=msg.adjusted_at,
                    on_hand=on_hand,
                    avg_cost=avg,
                    delta=msg.delta,
                )
            )
        case StockTransferred():
            made.append(
                rules.stock_transferred(
                    chart,
                    transfer_id=msg.transfer_id,
                    sku=msg.sku,
                    from_location=msg.from_location,
                    to_location=msg.to_location,
                    quantity=msg.quantity,
                    at=msg.transferred_at,
                    stock={
                        (msg.sku, loc): _state(stock, (msg.sku, loc))
                        for loc in (msg.from_location, msg.to_location)
                    },
                )
            )
    return [v for v in made if v is not None]


def _cause_id(msg: CanonicalMessage) -> str | None:
    """The voucher id a message's cause maps to; None where billing guards its own (orders,
    fulfilments) or for messages without a financial effect."""
    match msg:
        case OrderCancelled():
            # Per cancellation: an order reopened and cancelled again bills what it keeps then.
            # (Billing's own state keeps a copy of a cancellation from billing twice.)
            at = msg.cancelled_at.isoformat()  # UTC already (UtcDatetime)
            return rules.voucher_id("order_cancelled", f"{msg.order_key}:{at}")
        case OrderReturned():
            return rules.voucher_id("order_returned", f"{msg.order_key}:{msg.return_id}")
        case PaymentCaptured():
            return rules.voucher_id("payment_captured", f"{msg.order_key}:{msg.payment_id}")
        case PaymentRefunded():
            return rules.voucher_id("payment_refunded", f"{msg.order_key}:{msg.refund_id}")
        case GoodsReceived():
            ref = rules.receipt_ref(msg.receipt_id, msg.sku, msg.location, msg.po_number)
            return rules.voucher_id("goods_received", ref)
        case StockCounted():
            return rules.voucher_id(
                "stock_counted",
                rules.count_cause_ref(msg.count_id, msg.sku, msg.location, msg.quantity),
            )
        case StockAdjusted():
            return rules.voucher_id(
                "stock_adjusted", f"{msg.adjustment_id}:{msg.sku}:{msg.location}"
            )
        case StockTransferred():
            return rules.voucher_id("stock_transferred", f"{msg.transfer_id}:{msg.sku}")
    return None


async def post_all(session: AsyncSession, vouchers: list[VoucherIssued]) -> list[VoucherIssued]:
    """Book the vouchers (a message's, or a whole batch's at once); the ones booked now (not
    before), for the outbox."""
    return await ledger.post_many(session, vouchers)


async def claim_causes(
    session: AsyncSession, chart: Chart, msgs: Iterable[CanonicalMessage]
) -> None:
    """Record the causes of a batch's messages in one statement before `vouchers_for` runs for
    each of them (it would otherwise make one round trip per message)."""
    causes = []
    for msg in msgs:
        if getattr(msg, "currency", chart.currency) != chart.currency:
            continue  # refused by `vouchers_for` before its cause is recorded
        cause = _cause_id(msg)
        if cause is not None:
            causes.append(cause)
    await billing.claim_first_times(session, causes)


def envelope(voucher: VoucherIssued, correlation_id: str | None = None) -> Envelope:
    """The outbox message of a voucher: its CloudEvents id is the voucher id."""
    return Envelope(
        id=voucher.voucher_id, source=SOURCE, data=voucher, correlation_id=correlation_id
    )
