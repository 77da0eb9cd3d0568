"""One batch of canonical messages → one SQL transaction: effect, inbox rows and outbox rows.

The consumer hands a batch of Kafka records to `CoreProcessor.process`; when it returns, every
record has been applied exactly once (or recognised as already applied, or dead-lettered) and
committed, so the consumer may commit its offsets.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from operator import itemgetter
from typing import Any

import structlog
from sqlalchemy import case, func, select, text
from sqlalchemy.exc import (
    DBAPIError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
    StatementError,
)
from sqlalchemy.exc import DisconnectionError as Disconnected
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hub import deadletters
from hub.core.records import Record
from hub.domain.allocation import (
    PRESALE,
    Level,
    Rule,
    channel_available,
    presale_available,
    presale_target,
)
from hub.domain.stockbook import (
    NeedsBumpData,
    OrderRow,
    ResLine,
    StockBook,
    StockRow,
    receipt_po,
)
from hub.finance import billing
from hub.finance import events as finance_events
from hub.finance.chart import Chart, chart_from_config
from hub.finance.rules import CurrencyMismatch
from hub.finance.tables import OrderLinePrice
from hub.purchasing import service as purchasing
from hub.store import bulk, locks
from hub.store.db import payload_digest, stored_headers, stored_text, stored_utc
from hub.store.models import (
    OUTBOX_KEY_LENGTH,
    ChannelLevel,
    Movement,
    Order,
    OutboxRow,
    ProcessedMessage,
    Reservation,
    Stock,
    table,
)
from hub.store.outbox import announce as announce_outbox
from schemas import topics
from schemas.base import CanonicalMessage, now_utc
from schemas.envelope import Envelope, EnvelopeError, decode, message_id
from schemas.finance import VoucherIssued
from schemas.levels import StockLevelChanged
from schemas.orders import (
    OrderCancelled,
    OrderFulfilled,
    OrderPlaced,
    OrderReopened,
    OrderReturned,
)
from schemas.payments import PaymentCaptured, PaymentRefunded
from schemas.purchasing import (
    PurchaseOrderAcknowledged,
    ShipmentNotified,
    SupplierInvoiceReceived,
    SupplierStockReported,
)
from schemas.reservations import ReservationReleased, StockReserved
from schemas.stock import GoodsReceived, StockAdjusted, StockCounted, StockTransferred

log = structlog.get_logger("hub.core")
DEFAULT_CHART = chart_from_config(None)

SOURCE = "hub/core"
MAX_LEVEL_CAUSES = 10
# While the batch's writes run, the outbox is serialized in steps of this many messages, so
# the writer sends its next statement within a millisecond of the last one's answer.
YIELD_EVERY = 64
SUPPLIER_DOCS = (
    PurchaseOrderAcknowledged,
    ShipmentNotified,
    SupplierInvoiceReceived,
    SupplierStockReported,
)
HANDLED = (
    PaymentCaptured,
    PaymentRefunded,
    OrderPlaced,
    OrderCancelled,
    OrderReopened,
    OrderFulfilled,
    OrderReturned,
    StockCounted,
    StockAdjusted,
    GoodsReceived,
    StockTransferred,
    *SUPPLIER_DOCS,
)


class _StockView(Mapping[tuple[str, str], tuple[int, Decimal]]):
    """(on_hand, average cost) of the batch's rows as they are now, for the voucher rules."""

    def __init__(self, book: StockBook) -> None:
        self.book = book

    def __getitem__(self, key: tuple[str, str]) -> tuple[int, Decimal]:
        row = self.book.stock[key]
        return row.on_hand, row.avg_cost

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.book.stock)

    def __len__(self) -> int:
        return len(self.book.stock)


class UnhandledMessage(EnvelopeError):
    """A valid canonical message that this consumer does not process."""


@dataclass
class BatchResult:
    applied: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    accepted: int = 0
    rejected: int = 0
    lines_refused: int = 0
    released: int = 0
    bumped: int = 0
    levels_published: int = 0
    outbox_rows: int = 0
    vouchers: int = 0
    purchase_orders: int = 0
    by_type: dict[str, int] = field(default_factory=dict)

    def add(self, other: BatchResult) -> None:
        for name in (
            "applied",
            "duplicates",
            "dead_lettered",
            "accepted",
            "rejected",
            "lines_refused",
            "released",
            "bumped",
            "levels_published",
            "outbox_rows",
            "vouchers",
            "purchase_orders",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for k, v in other.by_type.items():
            self.by_type[k] = self.by_type.get(k, 0) + v


@dataclass(frozen=True)
class DeadLetterInfo:
    record: Record
    error: str


_DRIVERS = frozenset({"asyncpg", "sqlite3", "aiosqlite"})
RECOUNTS = 3  # a batch reads a SKU's holders again at most this often when a commit races it
# SQLSTATEs of a server that is away or too busy for now: a connection exception (08…), too
# many connections or another resource short (53…), a shutdown, crash or start-up (57P01–03),
# a session ended for idling (57P05, 25P03), a statement cancelled or timed out (57014), a lock
# not granted in time (55P03), a standby during a failover (25006), and a transaction rolled
# back for a deadlock or a serialization failure (40…).
_PASSING_STATES = (
    "08",
    "53",
    "40",
    "57P01",
    "57P02",
    "57P03",
    "57P05",
    "25P03",
    "57014",
    "55P03",
    "25006",
)


def is_transient(exc: BaseException) -> bool:
    """Database unreachable, restarting or too busy: retry the same batch later, never
    dead-letter it.

    A server's error is judged by its SQLSTATE, others by their type or the driver's own
    message: SQLAlchemy's text of an error carries the statement and its values, and a value
    holding "connection" (a SKU's name, say) would make an error that recurs every time look
    passing, and stall the core on it."""
    if isinstance(exc, InterfaceError) and isinstance(
        getattr(exc.orig, "__cause__", None), ValueError
    ):
        return False  # a value the driver cannot send (an integer beyond 32 bits): every time
    if isinstance(
        exc,
        OperationalError | InterfaceError | ConnectionError | OSError | PoolTimeout | Disconnected,
    ):
        return True
    if isinstance(exc, StatementError):
        if isinstance(exc, DBAPIError) and exc.connection_invalidated:
            return True
        orig = exc.orig
        state = getattr(orig, "sqlstate", None)
        if isinstance(state, str) and state:
            return state.startswith(_PASSING_STATES)
        if orig is None or orig is exc:
            return False
        if not isinstance(exc, DBAPIError):  # a statement that failed in the client, e.g. OSError
            return is_transient(orig)
        text = str(orig).lower()
    elif isinstance(exc, SQLAlchemyError) or type(exc).__module__.split(".")[0] in _DRIVERS:
        text = str(exc).lower()  # the library's or driver's own words, no values in them
    else:
        return False
    return any(
        s in text
        for s in ("connection", "terminat", "shutdown", "cannot connect", "database is locked")
    )


def _conflict(exc: BaseException) -> bool:
    """Lost a race with another replica (duplicate inbox key, deadlock, serialization)."""
    text = str(exc).lower()
    return (isinstance(exc, IntegrityError) and "processed_messages" in text) or any(
        s in text for s in ("deadlock", "could not serialize", "unique", "duplicate key")
    )


def _correlation(cause: str, by_id: dict[str, Envelope]) -> str:
    """The correlation id of what the message `cause` caused: the message's own correlation id,
    else its id (a cause outside the batch stands for itself)."""
    origin = by_id.get(cause)
    return (origin.correlation_id or origin.id) if origin else cause


@dataclass
class _LevelRows:
    """The channel level rows a batch inserts (first publication) and updates."""

    new: list[dict[str, Any]] = field(default_factory=list)
    changed: list[dict[str, Any]] = field(default_factory=list)


# The inbox lookup on PostgreSQL: one probe of the primary key per id. Written as
# `consumer = :c AND message_id = ANY(:ids)`, the plan depends on the statistics of `consumer`:
# with none for this consumer yet (a new or fast-growing inbox, before ANALYZE sees it) the
# planner expects a handful of rows, scans every inbox row of the consumer and filters them by
# the array, a cost that grows with the inbox. A LATERAL subquery with LIMIT cannot be turned
# into a join, so each id is matched against the whole unique key, whatever the statistics say.
_APPLIED_BEFORE = text(
    "SELECT u.id FROM unnest(CAST(:ids AS VARCHAR[])) AS u(id) "
    "CROSS JOIN LATERAL (SELECT 1 FROM processed_messages AS p "
    "WHERE p.consumer = :consumer AND p.message_id = u.id LIMIT 1) AS hit"
)


def outbox_row(env: Envelope) -> dict[str, Any]:
    return {
        "topic": env.topic,
        "key": env.key,
        "headers": env.header_texts(),
        "payload": env.body(),
    }


def dead_letter_outbox_row(info: DeadLetterInfo, consumer: str) -> dict[str, Any]:
    """The record as a row of the outbox for `hub.dlq.v1`. Its key, headers and error (which
    may quote the body) come from outside: text the outbox cannot hold (a NUL, which a schema
    registry's framing starts with; a key longer than the column) is replaced or cut to fit, so
    that the dead letter is written and the batch around it goes on, on PostgreSQL as on
    SQLite. `_dead_letter` stores its row the same way."""
    r = info.record
    headers = stored_headers(r.headers)
    headers += [
        ["dlq_error", stored_text(info.error, 2000)],
        ["dlq_topic", r.topic],
        ["dlq_partition", str(r.partition)],
        ["dlq_offset", str(r.offset)],
        ["dlq_timestamp", str(r.timestamp_ms)],
        ["dlq_consumer", consumer],
    ]
    return {
        "topic": topics.DLQ,
        "key": stored_text(r.key, OUTBOX_KEY_LENGTH) if r.key else None,
        "headers": headers,
        "payload": r.value or b"",
    }


class _VoucherQueue:
    """A batch's vouchers, booked together in a few statements (`ledger.post_many`) instead of
    three round trips each; booked at once whenever something is about to read the books."""

    def __init__(self, out: list[Envelope]) -> None:
        self.out = out
        self.pending: list[tuple[VoucherIssued, str]] = []

    def add(self, vouchers: Iterable[VoucherIssued], correlation_id: str) -> None:
        self.pending.extend((v, correlation_id) for v in vouchers)

    async def flush(self, session: AsyncSession) -> None:
        if not self.pending:
            return
        corr: dict[str, str] = {}
        for v, c in self.pending:
            corr.setdefault(v.voucher_id, c)
        booked = await finance_events.post_all(session, [v for v, _ in self.pending])
        self.pending.clear()
        self.out.extend(finance_events.envelope(v, corr[v.voucher_id]) for v in booked)


class CoreProcessor:
    """Applies batches of records to the store. Safe to run in several replicas at once."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        rules: dict[str, Rule],
        *,
        consumer: str = "core",
        on_committed: Callable[[BatchResult], None] | None = None,
        max_attempts: int = 5,
        chart: Chart | None = None,
        tolerance: Any = None,
    ) -> None:
        self.sessions = sessions
        self.rules = rules
        self.consumer = consumer
        self.on_committed = on_committed
        self.max_attempts = max_attempts
        self.chart = chart
        self.tolerance = tolerance or purchasing.DEFAULT_TOLERANCE

    # -- entry point ---------------------------------------------------------------------------

    async def process(self, records: Sequence[Record]) -> BatchResult:
        good: list[tuple[Record, Envelope]] = []
        bad: list[DeadLetterInfo] = []
        seen: set[str] = set()
        dup_in_batch = 0
        for r in records:
            try:
                env = decode(r.headers, r.value)
                if not isinstance(env.data, HANDLED):
                    raise UnhandledMessage(f"{env.type} is not processed by the core")
            except EnvelopeError as exc:
                bad.append(DeadLetterInfo(r, exc.reason))
                continue
            if env.id in seen:
                dup_in_batch += 1
                continue
            seen.add(env.id)
            good.append((r, env))
        try:
            result = await self._with_retries(good, bad)
        except Exception as exc:
            if is_transient(exc) or len(good) <= 1:
                if is_transient(exc) or not good:
                    raise
                # One message that fails on its own, for a reason that is not the database's.
                log.error("poison message", origin=good[0][0].origin, error=repr(exc))
                result = await self._with_retries(
                    [], [*bad, DeadLetterInfo(good[0][0], f"processing failed: {exc!r}"[:2000])]
                )
            else:
                result = await self._isolate(good, bad)
        result.duplicates += dup_in_batch
        if self.on_committed:
            self.on_committed(result)
        return result

    async def _isolate(
        self, good: list[tuple[Record, Envelope]], bad: list[DeadLetterInfo]
    ) -> BatchResult:
        """A batch keeps failing: apply its messages one by one to find the poison."""
        log.warning("batch failed; isolating messages", size=len(good))
        total = await self._with_retries([], bad) if bad else BatchResult()
        for item in good:
            try:
                total.add(await self._with_retries([item], []))
            except Exception as exc:
                if is_transient(exc):
                    raise
                log.error("poison message", origin=item[0].origin, error=repr(exc))
                total.add(
                    await self._with_retries(
                        [], [DeadLetterInfo(item[0], f"processing failed: {exc!r}"[:2000])]
                    )
                )
        return total

    async def _with_retries(
        self, good: list[tuple[Record, Envelope]], bad: list[DeadLetterInfo]
    ) -> BatchResult:
        bump_skus: set[str] = set()
        recounted: Counter[str] = Counter()  # holders read again after a commit raced, per SKU
        attempt = 0
        while True:
            attempt += 1
            try:
                async with self.sessions() as session, session.begin():
                    result = await self._apply(session, good, bad, bump_skus, recounted)
                if result.outbox_rows:
                    await announce_outbox(self.sessions)  # committed: wake the relay
                return result
            except NeedsBumpData as need:
                bump_skus |= need.skus
                if attempt > self.max_attempts + 3:
                    raise
            except DBAPIError as exc:
                if not _conflict(exc) or attempt >= self.max_attempts:
                    raise
                log.info("batch conflict, retrying", attempt=attempt, error=str(exc)[:200])
                await asyncio.sleep(0.01 * attempt)

    # -- the transaction ------------------------------------------------------------------------

    async def _apply(
        self,
        session: AsyncSession,
        good: list[tuple[Record, Envelope]],
        bad: list[DeadLetterInfo],
        bump_skus: set[str],
        recounted: Counter[str],
    ) -> BatchResult:
        result = BatchResult()
        order_keys: set[str] = set()
        skus: set[str] = set()
        create: set[tuple[str, str]] = set()
        for _, env in good:
            d = env.data
            if isinstance(
                d, OrderPlaced | OrderCancelled | OrderReopened | OrderFulfilled | OrderReturned
            ):
                order_keys.add(d.order_key)
                if not isinstance(d, OrderCancelled | OrderReopened):
                    # A fulfilment or return can name SKUs its order holds no reservation of
                    # (one that arrives before its order does): their rows are loaded too.
                    skus.update(line.sku for line in d.lines)
            elif isinstance(d, StockTransferred):
                create.update({(d.sku, d.from_location), (d.sku, d.to_location)})
                bump_skus.add(d.sku)
            elif isinstance(d, StockCounted | StockAdjusted | GoodsReceived):
                create.add((d.sku, d.location))
                if not isinstance(d, GoodsReceived):
                    bump_skus.add(d.sku)
        messages = [env.data for _, env in good]
        supplier_skus = await purchasing.skus_of(session, messages)
        received = {d.sku for d in messages if isinstance(d, GoodsReceived)}
        # SKUs sold on presale whose confirmed inbound or stock may change: their backorders
        # are filled or bumped, so every holder is loaded.
        shares = await purchasing.presale_shares(session, supplier_skus | received)
        # (A share of 0 needs no presale location, nor its backorders' holders eagerly: one
        # that must go raises NeedsBumpData, and the batch is retried with them loaded.)
        presold = {s for s, share in shares.items() if share > 0}
        create |= await purchasing.virtual_rows(session, messages, presold)
        bump_skus |= presold | {d.sku for d in messages if isinstance(d, SupplierStockReported)}
        if bump_skus:
            order_keys |= await locks.holders_of(session, bump_skus)

        # Locks in the global order: orders, then stock.
        order_rows, new_orders = await locks.lock_orders(session, order_keys)
        # An order new in this transaction holds no reservation yet: none to read.
        res_rows = await locks.reservations_of(session, order_keys - new_orders)
        skus |= {r.sku for r in res_rows} | bump_skus | supplier_skus
        stock_rows = await locks.lock_stock(session, skus, create)
        unsure = {s for s in bump_skus if recounted[s] < RECOUNTS}
        if unsure and (unseen := _holders_unseen(stock_rows, res_rows, unsure)):
            # Another replica's reservation committed between `holders_of` and these locks: its
            # order, the newest, is the one to bump. Read the holders again, a few times at most
            # (a counter the reservations never matched is left to `hub stock repair`).
            recounted.update(unseen)
            log.warning(
                "stock reserved by orders not read; reading the holders again",
                skus=sorted(unseen)[:20],
                attempt=max(recounted[s] for s in unseen),
            )
            raise NeedsBumpData(unseen)
        # SKUs sold on presale with a share of 0 now: their backorders stay, new ones are not
        # taken. Looked up only for the batch's SKUs that have a presale location, and only
        # where a channel presells.
        presale_channels = frozenset(c for c, rule in self.rules.items() if rule.presale)
        presale_skus = {r.sku for r in stock_rows if r.location == PRESALE}
        known = shares
        if presale_channels and (missing := presale_skus - shares.keys()):
            known = shares | await purchasing.presale_shares(session, missing)
        presale_closed = frozenset(s for s in presale_skus if known.get(s) == 0)

        # Only now, holding the locks, look the messages up in the inbox: a replica that applied
        # one of them held these locks until it committed, so its inbox row is visible here. The
        # inbox rows of the others are written with the batch's effects (`_write`): a replica
        # writing the same one at the same time fails this transaction (unique key), which is
        # then retried and finds it.
        done = await self._applied_before(session, [env.id for _, env in good])
        # Receipt lines journaled before, under another message id (a warehouse that sends a
        # receipt again with a new id): the stock book, like purchasing, takes a receipt line
        # (receipt, SKU, location, PO) once. Looked up holding the locks, as the inbox.
        receipt_lines = await _received_before(
            session, [e.data for _, e in good if isinstance(e.data, GoodsReceived)]
        )

        book = StockBook(
            stock={
                (r.sku, r.location): StockRow(
                    r.sku,
                    r.location,
                    r.on_hand,
                    r.reserved,
                    r.inbound,
                    r.safety_stock,
                    r.avg_cost,
                    counted_at=stored_utc(r.counted_at),
                )
                for r in stock_rows
            },
            orders={
                r.order_key: OrderRow(
                    r.order_key,
                    r.account,
                    r.channel,
                    r.status,
                    r.placed,
                    r.cancelled,
                    r.currency,
                    r.total,
                    r.placed_at,
                    stored_utc(r.open_changed_at),
                )
                for r in order_rows
            }
            | {k: OrderRow(k) for k in new_orders},
            bump_loaded=bump_skus,
            dropship_channels=frozenset(c for c, rule in self.rules.items() if rule.dropship),
            presale_channels=presale_channels,
            presale_closed=presale_closed,
        )
        for r in res_rows:
            book.orders[r.order_key].lines[(r.sku, r.location)] = ResLine(
                r.order_key,
                r.sku,
                r.location,
                r.quantity,
                r.open,
                r.shipped,
                r.shipped_unreserved,
                r.returned,
                r.released,
                r.seq,
                r.cancelled,
                r.refunded,
            )
        counts = [e.data for _, e in good if isinstance(e.data, StockCounted) and e.id not in done]
        if counts:
            book.since_count = await _since_counts(session, counts)
        stock_before = set(book.stock)

        applied: list[Envelope] = []
        vouchers: list[Envelope] = []
        refused: set[str] = set()  # SKUs a supplier refused or cut in this batch
        priced, prices = await self._price_new_orders(session, good, done, new_orders)
        ledger_queue = _VoucherQueue(vouchers)
        if self.chart:
            await finance_events.claim_causes(
                session,
                self.chart,
                [e.data for _, e in good if e.id not in done and e.id not in priced],
            )
        for _, env in good:
            if env.id in done:
                result.duplicates += 1
                continue
            if isinstance(env.data, GoodsReceived):
                d = env.data
                line, po = (d.receipt_id, d.sku, d.location), receipt_po(d.po_number)
                pos = receipt_lines[line]
                # A line journaled before POs were kept ("") may have been any of them.
                if po in pos or "" in pos:
                    log.warning("receipt line taken before; not counted again", cause=env.id)
                    result.duplicates += 1
                    continue
                pos.add(po)
            if isinstance(env.data, OrderFulfilled) and env.data.as_placed:
                # The order's lines as placed: the stock and the books take what shipped.
                env = replace(env, data=book.as_shipped(env.data))
            costs = (
                await self._book(session, book, env, ledger_queue)
                if self.chart and env.id not in priced
                else None
            )
            if isinstance(env.data, SUPPLIER_DOCS):
                handled = await purchasing.handle(
                    session, env, self.chart or DEFAULT_CHART, tolerance=self.tolerance
                )
                purchasing.apply_inbound(book.stock, handled.inbound)
                refused |= _look_again(book, handled.inbound)
                vouchers.extend(handled.envelopes)
                for rep in handled.supplier_stock:
                    book.apply_supplier_stock(
                        rep.sku, rep.location, rep.quantity, rep.report_id, env.id, rep.reported_at
                    )
                if shares and not isinstance(env.data, SupplierStockReported):
                    mine = await purchasing.skus_of(session, [env.data])
                    await self._presale(session, book, env, shares, mine)
            else:
                self._dispatch(book, env, costs)
                if isinstance(env.data, GoodsReceived) and env.data.po_number:
                    closed = await purchasing.on_receipt(session, env.data)
                    purchasing.apply_inbound(book.stock, closed)
                    _look_again(book, closed)
                    vouchers += await purchasing.rematch(
                        session,
                        env.data.po_number,
                        self.chart or DEFAULT_CHART,
                        tolerance=self.tolerance,
                    )
                    if env.data.sku in shares:
                        await self._presale(session, book, env, shares, [env.data.sku])
            applied.append(env)
            result.by_type[env.type] = result.by_type.get(env.type, 0) + 1
        if presale_closed and applied:
            # What a share of 0 leaves behind when backorders go (cancelled, shipped, filled)
            # goes with them, so no unit is offered again.
            last = applied[-1]
            book.close_presale(presale_closed, "presale share 0", last.id, last.time)
        result.applied = len(applied)
        o = book.outcome
        result.accepted, result.rejected, result.lines_refused = (
            o.accepted,
            o.rejected,
            o.lines_refused,
        )
        result.released, result.bumped = o.released, o.bumped
        await ledger_queue.flush(session)

        now = now_utc()
        issued = await purchasing.replenish(session, book.stock, book.touched, now, refused=refused)
        current = await current_levels(session, book, self.rules)
        # The stock, order, reservation, price and inbox writes go to the database while this
        # coroutine serializes the outbox (a third of a batch's CPU): the session is the
        # writer's alone until it is awaited, and the outbox only reads the book, which is final
        # by now.
        inbox = [
            {"consumer": self.consumer, "message_id": i, "processed_at": now}
            for i in sorted(e.id for e in applied)
        ]
        writing = asyncio.create_task(
            self._write(session, book, stock_before, new_orders, prices, inbox, now)
        )
        try:
            outbox: list[dict[str, Any]] = [outbox_row(v) for v in [*vouchers, *issued]]
            by_id = {e.id: e for e in applied}
            for i, (msg, cause) in enumerate(book.out):
                outbox.append(outbox_row(self._envelope(msg, cause, by_id, now)))
                if i % YIELD_EVERY == YIELD_EVERY - 1:
                    await asyncio.sleep(0)  # let the writer read its answer and send the next
            causes = self._level_causes(book, by_id)
            levels = await level_changes(book, self.rules, current, outbox, now, causes)
        except BaseException:
            await asyncio.gather(writing, return_exceptions=True)
            raise
        await writing
        await bulk.insert(session, table(ChannelLevel), levels.new)
        await bulk.update(session, table(ChannelLevel), levels.changed)
        result.levels_published = len(levels.new) + len(levels.changed)
        result.vouchers = sum(1 for v in vouchers if v.topic == topics.VOUCHERS)
        result.purchase_orders = len(issued)
        for info in bad:
            inserted = await self._dead_letter(session, info)
            if inserted:
                outbox.append(dead_letter_outbox_row(info, self.consumer))
                result.dead_lettered += 1
        await bulk.insert(session, table(OutboxRow), outbox)
        result.outbox_rows = len(outbox)
        return result

    async def _applied_before(self, session: AsyncSession, ids: list[str]) -> set[str]:
        """The ids among `ids` that have an inbox row of this consumer: applied before."""
        if bulk.is_postgres(session):
            params = {"consumer": self.consumer, "ids": sorted(ids)}  # probes in index order
            result = await session.execute(_APPLIED_BEFORE, params)
            return set(result.scalars())
        t = ProcessedMessage.__table__
        found: set[str] = set()
        for part in locks.chunks(sorted(ids)):
            found.update(
                (
                    await session.execute(
                        select(t.c.message_id).where(
                            t.c.consumer == self.consumer,
                            locks.one_of(session, t.c.message_id, part),
                        )
                    )
                ).scalars()
            )
        return found

    @staticmethod
    async def _presale(
        session: AsyncSession,
        book: StockBook,
        env: Envelope,
        shares: Mapping[str, Decimal],
        skus: Iterable[str],
    ) -> None:
        """Confirmed inbound of `skus` may have changed: each presale SKU's location is set to
        its share of it (backorders beyond it are bumped, newest first). A share of 0 takes no
        new backorders: the location holds those already taken, as long as the confirmed
        inbound covers them."""
        inbound = await purchasing.confirmed_inbound(session, [s for s in skus if s in shares])
        ref = getattr(env.data, "po_number", None) or env.id
        for sku in sorted(inbound):
            if shares[sku] > 0:
                target = presale_target(shares[sku], inbound[sku])
            else:
                row = book.stock.get((sku, PRESALE))
                target = min(row.reserved if row else 0, inbound[sku])
            book.set_presale(sku, target, ref, env.id, env.time)

    async def _price_new_orders(
        self,
        session: AsyncSession,
        good: list[tuple[Record, Envelope]],
        done: set[str],
        new_orders: set[str],
    ) -> tuple[set[str], list[dict[str, Any]]]:
        """Remember the prices of the batch's new orders in one statement (the common case of a
        flash sale); orders with history go through the voucher rules one by one. Returns the
        messages priced, and their price rows if nothing in the batch reads them back (no other
        message of those orders): `_write` writes these with the batch's effects, else they are
        written here."""
        if self.chart is None:
            return set(), []
        placed = [
            env for _, env in good if isinstance(env.data, OrderPlaced) and env.id not in done
        ]
        orders = [env.data for env in placed if isinstance(env.data, OrderPlaced)]
        handled, rows = await billing.price_rows_bulk(
            session, orders, self.chart.currency, new_orders
        )
        priced = {placed[i].id for i in handled}
        keys = {orders[i].order_key for i in handled}
        if any(
            getattr(env.data, "order_key", None) in keys
            for _, env in good
            if env.id not in priced and env.id not in done
        ):
            await bulk.insert(session, table(OrderLinePrice), rows)
            return priced, []
        return priced, rows

    async def _book(
        self, session: AsyncSession, book: StockBook, env: Envelope, queue: _VoucherQueue
    ) -> dict[tuple[str, str], Decimal | None] | None:
        """Make the vouchers the message causes, against the stock as it is before its effect
        (booked with the batch's others by `queue`). Returns the unit costs restocked returns
        come back at, and None for a receipt whose cost cannot be booked (at the average)."""
        assert self.chart is not None
        msg = env.data
        costs: dict[tuple[str, str], Decimal | None] | None = None
        unshipped: dict[tuple[str, str], int] = {}
        if isinstance(msg, OrderReturned):
            # Units the order never shipped come back to no inventory account, and were never
            # billed, so no credit note either.
            msg, unshipped = book.shipped_return(msg)
            await queue.flush(session)  # a return reads its sale's cost back from the books
            lines = await billing.return_lines(session, self.chart, msg)
            costs = {(ln.sku, ln.location): ln.unit_cost for ln in lines}
        if isinstance(msg, OrderCancelled):
            # The stock ignores a cancellation older than the order's reopening: so do the books.
            if book.stale_word(msg.order_key, msg.cancelled_at):
                return None
            await queue.flush(session)  # it bills what the order's money still covers
        dropshipped = book.dropshipped(msg) if isinstance(msg, OrderFulfilled) else None
        since = book.moved_since_count(msg) if isinstance(msg, StockCounted) else 0
        shipped = await _shipped_first(session, book, msg) if isinstance(msg, OrderPlaced) else None
        try:
            made = await finance_events.vouchers_for(
                session,
                self.chart,
                msg,
                _StockView(book),
                unshipped=unshipped,
                dropshipped=dropshipped,
                moved_since_count=since,
                shipped_at=shipped,
            )
        except CurrencyMismatch as exc:
            log.warning("no voucher booked", cause=env.id, reason=str(exc))
            if isinstance(msg, GoodsReceived):
                # Its cost is in another currency than the books': mixed into the average as it
                # is, it would misprice every later sale. The units come in at the average;
                # `hub books check` shows the inventory account short of them until converted.
                return {(msg.sku, msg.location): None}
            return costs
        queue.add(made, env.correlation_id or env.id)
        return costs

    def _envelope(
        self, msg: CanonicalMessage, cause: str, by_id: dict[str, Envelope], now: datetime
    ) -> Envelope:
        """The envelope of a message the batch caused, with the batch's time (as its levels)."""
        return Envelope(
            id=message_id(SOURCE, msg.ce_type, cause, msg.kafka_key()),
            source=SOURCE,
            data=msg,
            time=now,
            correlation_id=_correlation(cause, by_id),
        )

    @staticmethod
    def _dispatch(
        book: StockBook, env: Envelope, costs: dict[tuple[str, str], Decimal | None] | None = None
    ) -> None:
        d, cause = env.data, env.id
        if isinstance(d, OrderPlaced):
            book.apply_placed(d, cause)
        elif isinstance(d, OrderCancelled):
            book.apply_cancelled(d, cause)
        elif isinstance(d, OrderReopened):
            book.apply_reopened(d, cause)
        elif isinstance(d, OrderFulfilled):
            book.apply_fulfilled(d, cause)
        elif isinstance(d, OrderReturned):
            book.apply_returned(d, cause, costs)
        elif isinstance(d, StockCounted):
            book.apply_counted(d, cause)
        elif isinstance(d, StockAdjusted):
            book.apply_adjusted(d, cause)
        elif isinstance(d, GoodsReceived):
            book.apply_received(d, cause, costs)
        elif isinstance(d, StockTransferred):
            book.apply_transferred(d, cause)

    @staticmethod
    def _level_causes(book: StockBook, by_id: dict[str, Envelope]) -> dict[str, list[str]]:
        """Per SKU, the correlation ids of the batch's orders whose reservation or release changed
        it, oldest first, at most `MAX_LEVEL_CAUSES` (the newest)."""
        out: dict[str, list[str]] = {}
        for msg, cause in book.out:
            if not isinstance(msg, StockReserved | ReservationReleased):
                continue
            corr = _correlation(cause, by_id)
            for line in msg.lines:
                ids = out.setdefault(line.sku, [])
                if corr not in ids:
                    ids.append(corr)
                    del ids[:-MAX_LEVEL_CAUSES]
        return out

    async def _write(
        self,
        session: AsyncSession,
        book: StockBook,
        stock_before: set[Any],
        new_orders: set[str],
        prices: list[dict[str, Any]],
        inbox: list[dict[str, Any]],
        now: datetime,
    ) -> None:
        """Write what the batch changed: stock, orders (the new ones inserted whole, in key
        order), reservation lines, movements, the new orders' prices left to it, and the inbox
        rows of the messages applied (in key order, so that two replicas racing on the same
        messages cannot deadlock)."""
        stock = [
            {
                "sku": r.sku,
                "location": r.location,
                "on_hand": r.on_hand,
                "reserved": r.reserved,
                "inbound": r.inbound,
                "avg_cost": r.avg_cost,
                "updated_at": now,
            }
            for r in book.stock.values()
            if r.dirty
        ]
        created = [s for s in stock if (s["sku"], s["location"]) not in stock_before]
        if created:  # rows the lock step did not create (none today; kept for safety)
            await locks.insert_ignore(
                session,
                Stock.__table__,
                [{"sku": s["sku"], "location": s["location"]} for s in created],
                ["sku", "location"],
            )
        await bulk.update(session, table(Stock), stock)
        if book.counted:  # a count's time, apart: the stock rows of a sale's batch keep theirs
            await bulk.update(
                session,
                table(Stock),
                [
                    {"sku": sku, "location": loc, "counted_at": book.stock[(sku, loc)].counted_at}
                    for sku, loc in sorted(book.counted)
                ],
            )
        new_rows: list[dict[str, Any]] = []
        changed_rows: list[dict[str, Any]] = []
        for o in book.orders.values():
            new = o.order_key in new_orders
            if not (new or o.dirty):
                continue
            (new_rows if new else changed_rows).append(
                {
                    "order_key": o.order_key,
                    "account": o.account,
                    "channel": o.channel,
                    "status": o.status,
                    "placed": o.placed,
                    "cancelled": o.cancelled,
                    "currency": o.currency,
                    "total": o.total,
                    "placed_at": o.placed_at,
                    "open_changed_at": o.open_changed_at,
                    "updated_at": now,
                }
            )
        new_rows.sort(key=itemgetter("order_key"))
        await bulk.insert(session, table(Order), new_rows)
        await bulk.update(session, table(Order), changed_rows)
        new_lines: list[dict[str, Any]] = []
        changed_lines: list[dict[str, Any]] = []
        for o in book.orders.values():
            for line in o.lines.values():
                if not (line.new or line.dirty):
                    continue
                row = {
                    "order_key": line.order_key,
                    "sku": line.sku,
                    "location": line.location,
                    "quantity": line.quantity,
                    "open": line.open,
                    "shipped": line.shipped,
                    "shipped_unreserved": line.shipped_unreserved,
                    "returned": line.returned,
                    "released": line.released,
                    "seq": line.seq,
                    "cancelled": line.cancelled,
                    "refunded": line.refunded,
                }
                (new_lines if line.new else changed_lines).append(row)
        await bulk.insert(session, table(Reservation), new_lines)
        await bulk.update(session, table(Reservation), changed_lines)
        if book.movements:
            await bulk.insert(
                session,
                table(Movement),
                [
                    {
                        "sku": m.sku,
                        "location": m.location,
                        "delta": m.delta,
                        "kind": m.kind,
                        "reason": m.reason,
                        "ref": m.ref[:200],
                        "cause": m.cause,
                        "unit_cost": m.unit_cost,
                        "at": m.at,
                    }
                    for m in book.movements
                ],
            )
        await bulk.insert(session, table(OrderLinePrice), prices)
        await bulk.insert(session, table(ProcessedMessage), inbox)

    async def _dead_letter(self, session: AsyncSession, info: DeadLetterInfo) -> bool:
        """Store the letter unless it was stored before: by its identity (position, payload
        digest and time; `deadletters`), so a record read again is one letter, and a new one
        at a position used before a broker restart, or the same bytes replayed to it, another."""
        r = info.record
        row = {
            "consumer": self.consumer,
            "topic": r.topic,
            "partition": r.partition,
            "offset": r.offset,
            "digest": payload_digest(r.value),
            "timestamp_ms": r.timestamp_ms,
            "key": r.key,
            "headers": stored_headers(r.headers),
            "payload": r.value,
            "error": stored_text(info.error),
        }
        if not await deadletters.insert_letter(session, row):
            return False
        log.warning("dead-lettered", origin=r.origin, error=info.error)
        return True


async def _received_before(
    session: AsyncSession, receipts: Sequence[GoodsReceived]
) -> defaultdict[tuple[str, str, str], set[str]]:
    """The POs (`receipt_po`; "" for a line journaled before POs were kept) of each (receipt id,
    SKU, location) of these receipts the journal holds: lines taken before. On the journal's
    partial index of receipts."""
    m = table(Movement)
    found: defaultdict[tuple[str, str, str], set[str]] = defaultdict(set)
    refs = sorted({r.receipt_id for r in receipts})
    for part in locks.chunks(refs):
        rows = await session.execute(
            select(m.c.ref, m.c.sku, m.c.location, m.c.reason).where(
                m.c.kind == "receipt", locks.one_of(session, m.c.ref, part)
            )
        )
        for ref, sku, loc, po in rows.all():
            found[(ref, sku, loc)].add(po)
    return found


async def _since_counts(
    session: AsyncSession, counts: Sequence[StockCounted]
) -> dict[tuple[str, str, datetime], tuple[int, bool]]:
    """For each stocktake, the units journaled at its stock after it was counted, and whether
    one of them is a later stocktake (`StockBook.moved_since_count`). One query a counting
    time (a file's lines share theirs), on the journal's (sku, location) index. The stock rows
    are locked, so nothing is journaled at them meanwhile."""
    m = table(Movement)
    out: dict[tuple[str, str, datetime], tuple[int, bool]] = {}
    by_time: dict[datetime, set[tuple[str, str]]] = defaultdict(set)
    for c in counts:
        by_time[c.counted_at].add((c.sku, c.location))
    for at, keys in by_time.items():
        for part in locks.chunks(sorted({sku for sku, _ in keys})):
            # By SKU as an array (one statement whatever the count), then the counted locations.
            q = (
                select(
                    m.c.sku,
                    m.c.location,
                    func.sum(m.c.delta),
                    func.max(case((m.c.kind == "stocktake", 1), else_=0)),
                )
                .where(locks.one_of(session, m.c.sku, part), m.c.at > at)
                .group_by(m.c.sku, m.c.location)
            )
            for sku, location, moved, recounted in (await session.execute(q)).all():
                if (sku, location) in keys:
                    out[(sku, location, at)] = (int(moved or 0), bool(recounted))
    return out


async def _shipped_first(
    session: AsyncSession, book: StockBook, msg: OrderPlaced
) -> datetime | None:
    """When the last of an order's units that shipped before it came left (the journal's sale
    movements of its SKUs, stored and this batch's); None for an order that comes first."""
    order = book.orders.get(msg.order_key)
    if (
        order is None
        or order.placed
        or not any(ln.shipped_unreserved for ln in order.lines.values())
    ):
        return None
    skus = sorted({ln.sku for ln in order.lines.values()})
    m = table(Movement)
    q = select(func.max(m.c.at)).where(
        m.c.sku.in_(skus), m.c.kind == "sale", m.c.ref == msg.order_key
    )
    stored = stored_utc((await session.execute(q)).scalar_one_or_none())
    times = [mv.at for mv in book.movements if mv.kind == "sale" and mv.ref == msg.order_key]
    return max([t for t in (stored, *times) if t is not None], default=None)


def _look_again(book: StockBook, inbound: Sequence[tuple[str, str, int]]) -> set[str]:
    """A SKU whose inbound fell (a supplier refused or cut a line, a receipt closed one short)
    is looked at for replenishment with the batch's other SKUs: with nothing selling it, nothing
    else would, and a SKU out of stock would never be ordered again. Returns those SKUs."""
    fell = {sku for sku, _, delta in inbound if delta < 0}
    book.touched.update(fell)
    return fell


def _holders_unseen(stock_rows: Sequence[Any], res_rows: Sequence[Any], skus: set[str]) -> set[str]:
    """SKUs among `skus` with a locked row that counts more reserved units than the loaded
    reservations hold there: some holder was not read."""
    loaded: dict[tuple[str, str], int] = defaultdict(int)
    for r in res_rows:
        if r.sku in skus:
            loaded[(r.sku, r.location)] += r.open
    return {r.sku for r in stock_rows if r.sku in skus and r.reserved > loaded[(r.sku, r.location)]}


async def current_levels(
    session: AsyncSession, book: StockBook, rules: Mapping[str, Rule]
) -> dict[tuple[str, str], tuple[int, int, int]]:
    """(available, presale available, version) last published per (SKU, channel) touched."""
    current: dict[tuple[str, str], tuple[int, int, int]] = {}
    if not book.touched or not rules:
        return current
    t = ChannelLevel.__table__
    for part in locks.chunks(sorted(book.touched)):
        for r in (
            await session.execute(select(t).where(locks.one_of(session, t.c.sku, part)))
        ).all():
            current[(r.sku, r.channel)] = (r.available, r.presale_available, r.version)
    return current


async def level_changes(
    book: StockBook,
    rules: Mapping[str, Rule],
    current: Mapping[tuple[str, str], tuple[int, int, int]],
    outbox: list[dict[str, Any]],
    now: datetime,
    causes: Mapping[str, list[str]],
) -> _LevelRows:
    """Publish a StockLevelChanged per (SKU, channel) whose available value changed, naming
    the orders that changed it (`ce_correlationid` the newest, `ce_causes` all of them);
    returns the channel level rows to insert and to update. Only reads the book; yields to
    the event loop every `YIELD_EVERY` SKUs (see `_apply`)."""
    rows_out = _LevelRows()
    if not book.touched or not rules:
        return rows_out
    by_sku: dict[str, list[StockRow]] = {}
    for row in book.stock.values():
        by_sku.setdefault(row.sku, []).append(row)
    for i, sku in enumerate(sorted(book.touched)):
        if i % YIELD_EVERY == YIELD_EVERY - 1:
            await asyncio.sleep(0)
        rows = by_sku.get(sku, [])
        pre = next((r for r in rows if r.location == PRESALE), None)
        for channel, rule in rules.items():
            mine = [r for r in rows if rule.sells_from(r.location)]
            value = channel_available(
                (Level(r.on_hand, r.reserved, r.safety_stock) for r in mine), rule
            )
            backorders = presale_available(Level(pre.on_hand, pre.reserved) if pre else None, rule)
            prev = current.get((sku, channel))
            if prev is not None and prev[:2] == (value, backorders):
                continue
            if prev is None and value == 0 and backorders == 0 and not mine:
                continue
            version = (prev[2] + 1) if prev else 1
            (rows_out.changed if prev else rows_out.new).append(
                {
                    "sku": sku,
                    "channel": channel,
                    "available": value,
                    "presale_available": backorders,
                    "version": version,
                    "updated_at": now,
                }
            )
            msg = StockLevelChanged(
                sku=sku,
                channel=channel,
                available=value,
                on_hand=sum(r.on_hand for r in mine),
                reserved=sum(r.reserved for r in mine),
                presale_available=backorders,
                version=version,
                changed_at=now,
            )
            ids = causes.get(sku, ())
            outbox.append(
                outbox_row(
                    Envelope(
                        id=message_id(SOURCE, "level", sku, channel, str(version)),
                        source=SOURCE,
                        data=msg,
                        time=now,
                        correlation_id=ids[-1] if ids else None,
                        causes=tuple(ids),
                    )
                )
            )
    return rows_out


async def publish_levels(
    session: AsyncSession, book: StockBook, rules: Mapping[str, Rule], now: datetime
) -> int:
    """Outside the core's batches (a repair of stored totals): publish, as a batch does, the
    level of every channel of the book's touched SKUs that differs from the one last published;
    returns how many. The stock rows of those SKUs must be locked and in the book."""
    outbox: list[dict[str, Any]] = []
    current = await current_levels(session, book, rules)
    levels = await level_changes(book, rules, current, outbox, now, {})
    await bulk.insert(session, table(ChannelLevel), levels.new)
    await bulk.update(session, table(ChannelLevel), levels.changed)
    await bulk.insert(session, table(OutboxRow), outbox)
    return len(outbox)


def rules_from_config(channels: dict[str, Any]) -> dict[str, Rule]:
    from hub.domain.allocation import share_from_float

    return {
        name: Rule(
            share=share_from_float(c.share),
            buffer=c.buffer,
            cap=c.cap,
            locations=tuple(c.locations),
            dropship=c.dropship,
            presale=c.presale,
        )
        for name, c in channels.items()
    }
