"""Tables of the hub, as typed SQLAlchemy 2 models. Migrations in `hub/store/migrations/`."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")
Money = Numeric(20, 6)


def table(model: Any) -> Table:
    """The Core table of a model (Core statements skip the ORM's per-row bookkeeping)."""
    return cast(Table, model.__table__)


class Base(DeclarativeBase):
    type_annotation_map = {  # noqa: RUF012
        datetime: DateTime(timezone=True),
        Decimal: Money,
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


class Stock(Base):
    """Stock of one SKU at one location. `reserved ≤ on_hand` is enforced by the database."""

    __tablename__ = "stock"
    __table_args__ = (
        CheckConstraint("reserved >= 0", name="ck_stock_reserved_nonnegative"),
        CheckConstraint("reserved = 0 OR reserved <= on_hand", name="ck_stock_no_oversell"),
        CheckConstraint("inbound >= 0", name="ck_stock_inbound_nonnegative"),
    )

    sku: Mapped[str] = mapped_column(String(128), primary_key=True)
    location: Mapped[str] = mapped_column(String(64), primary_key=True)
    on_hand: Mapped[int] = mapped_column(Integer, default=0)
    reserved: Mapped[int] = mapped_column(Integer, default=0)
    inbound: Mapped[int] = mapped_column(Integer, default=0)
    safety_stock: Mapped[int] = mapped_column(Integer, default=0)
    reorder_point: Mapped[int | None] = mapped_column(Integer, default=None)
    max_stock: Mapped[int | None] = mapped_column(Integer, default=None)
    avg_cost: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    # When the last count applied here was taken: a count older than it changes nothing.
    counted_at: Mapped[datetime | None] = mapped_column(default=None)
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Order(Base):
    """What the core knows of an order, whatever order its messages arrived in."""

    __tablename__ = "orders"

    order_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    account: Mapped[str] = mapped_column(String(64), default="")
    channel: Mapped[str] = mapped_column(String(64), default="")
    # new | reserved | rejected | cancelled | fulfilled | bumped
    status: Mapped[str] = mapped_column(String(16), default="new")
    placed: Mapped[bool] = mapped_column(default=False)
    cancelled: Mapped[bool] = mapped_column(default=False)
    currency: Mapped[str | None] = mapped_column(String(3), default=None)
    total: Mapped[Decimal | None] = mapped_column(Money, default=None)
    placed_at: Mapped[datetime | None] = mapped_column(default=None)
    # The shop's time of the order's last cancellation or reopening: older word changes nothing.
    open_changed_at: Mapped[datetime | None] = mapped_column(default=None)
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Reservation(Base):
    """One order line's hold on stock: `open` units are counted in `stock.reserved`."""

    __tablename__ = "reservations"
    __table_args__ = (
        Index("ix_reservations_stock", "sku", "location"),
        CheckConstraint("open >= 0", name="ck_reservations_open_nonnegative"),
    )

    order_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    sku: Mapped[str] = mapped_column(String(128), primary_key=True)
    location: Mapped[str] = mapped_column(String(64), primary_key=True)
    quantity: Mapped[int] = mapped_column(Integer, default=0)  # ordered
    open: Mapped[int] = mapped_column(Integer, default=0)  # reserved now
    shipped: Mapped[int] = mapped_column(Integer, default=0)
    shipped_unreserved: Mapped[int] = mapped_column(Integer, default=0)  # shipped before placed
    returned: Mapped[int] = mapped_column(Integer, default=0)
    released: Mapped[int] = mapped_column(Integer, default=0)
    seq: Mapped[int] = mapped_column(BigInteger, default=0)  # decision order, newest bumped first
    # Units the order's cancellation released: reserved again if the shop reopens the order.
    cancelled: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Units a refund took off the line before they shipped: a fulfilment of the order's lines
    # as placed (`OrderFulfilled.as_placed`) does not ship them.
    refunded: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Movement(Base):
    """Append-only journal: every change of on_hand, with its cause. on_hand = Σ delta."""

    __tablename__ = "movements"
    __table_args__ = (
        Index("ix_movements_stock", "sku", "location"),
        # A receipt line (receipt id, SKU, location, PO in `reason`) is taken once, whatever its
        # message id.
        Index(
            "ix_movements_receipt",
            "ref",
            "sku",
            "location",
            postgresql_where=text("kind = 'receipt'"),
            sqlite_where=text("kind = 'receipt'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    sku: Mapped[str] = mapped_column(String(128))
    location: Mapped[str] = mapped_column(String(64))
    delta: Mapped[int] = mapped_column(Integer)
    # sale | return | receipt | stocktake | transfer | adjustment
    kind: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(64), default="")
    ref: Mapped[str] = mapped_column(String(200), default="")  # order key, receipt id, count id…
    cause: Mapped[str] = mapped_column(String(64))  # message id
    unit_cost: Mapped[Decimal | None] = mapped_column(Money, default=None)
    at: Mapped[datetime] = mapped_column()


class ProcessedMessage(Base):
    """Inbox: a (consumer, message id) row is written in the same transaction as the effect."""

    __tablename__ = "processed_messages"

    consumer: Mapped[str] = mapped_column(String(64), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(server_default=func.now())


OUTBOX_KEY_LENGTH = 200


class OutboxRow(Base):
    """Messages to publish, written in the transaction that caused them; the relay sends them."""

    __tablename__ = "outbox"
    # SQLite: ids never reused once the relay has deleted the rows (migration 0007).
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    topic: Mapped[str] = mapped_column(String(128))
    key: Mapped[str | None] = mapped_column(String(OUTBOX_KEY_LENGTH))
    headers: Mapped[list[Any]] = mapped_column(JSON)  # [[name, value], …] as text
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    sent_at: Mapped[datetime | None] = mapped_column(default=None)


class ChannelRuleRow(Base):
    """A channel's allocation rule, copied from the config at start."""

    __tablename__ = "channel_rules"

    channel: Mapped[str] = mapped_column(String(64), primary_key=True)
    share: Mapped[Decimal] = mapped_column(Numeric(6, 4), default=Decimal(1))
    buffer: Mapped[int] = mapped_column(Integer, default=0)
    cap: Mapped[int] = mapped_column(Integer, default=0)
    locations: Mapped[list[Any]] = mapped_column(JSON)


class ChannelLevel(Base):
    """The last available-to-sell published per (SKU, channel): publish only on change."""

    __tablename__ = "channel_levels"

    sku: Mapped[str] = mapped_column(String(128), primary_key=True)
    channel: Mapped[str] = mapped_column(String(64), primary_key=True)
    available: Mapped[int] = mapped_column(Integer)
    presale_available: Mapped[int] = mapped_column(Integer, default=0)  # migration 0004
    version: Mapped[int] = mapped_column(BigInteger, default=1)
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class DeadLetter(Base):
    """A message that can never be processed, kept with its error and original bytes."""

    __tablename__ = "dead_letters"
    __table_args__ = (
        Index(
            "ux_dead_letters_origin",
            "consumer",
            "topic",
            "partition",
            "offset",
            "digest",
            "timestamp_ms",
            unique=True,
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    consumer: Mapped[str] = mapped_column(String(64))
    topic: Mapped[str] = mapped_column(String(128))
    partition: Mapped[int] = mapped_column(Integer)
    offset: Mapped[int] = mapped_column(BigInteger)
    # SHA-256 of the payload: a position's offsets start over when the embedded broker restarts
    # (its topics are in memory), so a position alone does not tell two letters apart.
    digest: Mapped[str] = mapped_column(String(64), server_default="")
    # The record's own time (its Kafka timestamp, ms since the epoch; -1: not known, as for
    # letters stored before it was kept): a letter replayed after a restart to the very position
    # it came from, failing again, is a letter of its own, though its bytes are the same.
    timestamp_ms: Mapped[int] = mapped_column(BigInteger, server_default="-1")
    key: Mapped[bytes | None] = mapped_column(LargeBinary)
    headers: Mapped[list[Any]] = mapped_column(JSON)
    payload: Mapped[bytes | None] = mapped_column(LargeBinary)
    error: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(server_default=func.now())
    replayed_at: Mapped[datetime | None] = mapped_column(default=None)


class ConnectorCursor(Base):
    """Where a resync of an account left off, so it can resume."""

    __tablename__ = "connector_cursors"

    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    what: Mapped[str] = mapped_column(String(32), primary_key=True)
    cursor: Mapped[str | None] = mapped_column(Text, default=None)
    last_sync_at: Mapped[datetime | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)


class AuditEntry(Base):
    """Every operator action: who, what, when, before and after."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(200))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    at: Mapped[datetime] = mapped_column(server_default=func.now())


# Tables that live with their feature share this metadata (Alembic and the tests see them all).
from hub.finance import tables as _finance_tables  # noqa: E402
from hub.purchasing import tables as _purchasing_tables  # noqa: E402

__all__ = ["Base", "_finance_tables", "_purchasing_tables"]
