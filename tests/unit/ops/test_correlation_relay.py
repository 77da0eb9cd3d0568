"""The relay logs each reservation decision with its order's correlation id, and gives a stock
level written without one the ids of the orders that changed it in the same transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog.contextvars import clear_contextvars, get_contextvars, merge_contextvars
from structlog.testing import capture_logs

from hub.core.batch import DeadLetterInfo, dead_letter_outbox_row, outbox_row
from hub.core.records import Record
from hub.observe import CAUSES_HEADER
from hub.relay import LevelCauses, OutboxRelay, _level_of, _skus_of
from hub.store.db import make_engine, session_factory
from hub.store.migrate import upgrade
from hub.store.models import OutboxRow
from schemas.envelope import Envelope
from schemas.levels import StockLevelChanged
from schemas.reservations import ReservationRejected, ReservedLine, StockReserved
from schemas.stock import StockCounted
from tests.unit.ops.test_correlation_context import level

T = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
T2 = datetime(2026, 11, 1, 12, 0, 1, tzinfo=UTC)


def test_a_level_takes_the_decisions_of_its_own_transaction_only():
    c = LevelCauses(exact_time=False)
    c.note("A", "order-1", T)
    c.note("A", "order-2", T)
    c.note("B", "order-2", T)
    c.level("A", "online")
    assert c.causes("A", T) == ["order-1", "order-2"]
    c.level("A", "wholesale")
    assert c.causes("A", T) == ["order-1", "order-2"]
    c.level("B", "online")
    assert c.causes("B", T) == ["order-2"]
    c.level("C", "online")
    assert c.causes("C", T) == []
    # The next transaction, a stocktake of A that wrote a voucher, then A's level.
    c.other()
    c.level("A", "online")
    assert c.causes("A", T) == []


def test_a_transaction_of_levels_only_is_told_apart_by_the_order_of_its_skus():
    c = LevelCauses(exact_time=False)
    c.note("A", "order-1", T)
    c.note("B", "order-1", T)
    c.level("B", "online")
    assert c.causes("B", T) == ["order-1"]
    c.level("A", "online")  # sorts before B: another transaction's level
    assert c.causes("A", T) == []
    c.note("C", "order-2", T)
    c.level("C", "online")
    c.level("C", "online")  # C and its channel again: another transaction
    assert c.causes("C", T) == []


def test_on_postgresql_the_transaction_time_separates_interleaved_transactions():
    c = LevelCauses(exact_time=True)
    c.note("A", "order-1", T)
    c.level("A", "online")
    assert c.causes("A", T2) == []
    assert c.causes("A", T) == ["order-1"]


def test_causes_are_bounded():
    c = LevelCauses(exact_time=False, max_skus=2, max_ids=3)
    for i in range(5):
        c.note("A", f"o{i}", T)
    c.note("B", "b", T)
    c.note("C", "c", T)
    c.level("A", "online")
    assert c.causes("A", T) == []  # evicted, the oldest SKU
    c.level("C", "online")
    assert c.causes("C", T) == ["c"]
    c2 = LevelCauses(exact_time=False, max_ids=3)
    for i in range(5):
        c2.note("A", f"o{i}", T)
    c2.level("A", "online")
    assert c2.causes("A", T) == ["o2", "o3", "o4"]


class Sent:
    def __init__(self) -> None:
        self.items: list[tuple[str, str | None, bytes, list[tuple[str, bytes]]]] = []

    async def send_many(self, items: Sequence[Any]) -> None:
        self.items.extend(items)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}")
    await upgrade(eng)
    try:
        yield eng
    finally:
        await eng.dispose()


def reserved(order: str, corr: str, *skus: str) -> Envelope:
    msg = StockReserved(
        order_key=order,
        account="acme",
        channel="online",
        lines=tuple(ReservedLine(sku=s, location="main", quantity=1) for s in skus),
        reserved_at=T,
    )
    return Envelope(id=f"r-{order}", source="hub/core", data=msg, correlation_id=corr)


def rejected(order: str, corr: str, sku: str) -> Envelope:
    msg = ReservationRejected.model_validate(
        {
            "order_key": order,
            "account": "acme",
            "channel": "online",
            "lines": [
                {
                    "sku": sku,
                    "location": "main",
                    "requested": 5,
                    "available": 0,
                    "reason": "insufficient_stock",
                }
            ],
            "rejected_at": T,
        }
    )
    return Envelope(id=f"x-{order}", source="hub/core", data=msg, correlation_id=corr)


def lvl(sku: str, version: int) -> Envelope:
    return Envelope(id=f"l-{sku}-{version}", source="hub/core", data=level(sku, version))


def counted(sku: str) -> Envelope:
    msg = StockCounted(sku=sku, quantity=3, count_id="c", location="main", counted_at=T)
    return Envelope(id=f"n-{sku}", source="stocktake", data=msg)


async def test_relay_logs_decisions_and_names_the_orders_behind_each_level(engine):
    sessions = session_factory(engine)
    decided = [reserved("acme:1", "corr-1", "A", "B"), rejected("acme:2", "corr-2", "A")]
    transactions = [
        [*decided, lvl("A", 2), lvl("B", 2)],
        [lvl("A", 3)],  # a transaction of a level only: no order's
        [reserved("acme:3", "corr-3", "B"), lvl("B", 3)],
        [counted("B"), lvl("B", 4)],  # another row, then a level: no order's
    ]
    for rows in transactions:
        async with sessions() as session, session.begin():
            await session.execute(insert(OutboxRow), [outbox_row(e) for e in rows])
    sent = Sent()
    relay = OutboxRelay(engine, sessions, sent, batch_size=3)  # type: ignore[arg-type]
    clear_contextvars()
    with capture_logs(processors=[merge_contextvars]) as logs:
        while await relay.drain_once():
            pass
    assert get_contextvars() == {}

    def causes(sku: str, version: int) -> tuple[str | None, str | None]:
        [h] = [
            {k: v.decode() for k, v in headers}
            for topic, key, value, headers in sent.items
            if topic == "hub.stock-levels.v1"
            and key == f"{sku}@online"
            and StockLevelChanged.model_validate_json(value).version == version
        ]
        return h.get("ce_correlationid"), h.get(CAUSES_HEADER)

    assert causes("A", 2) == ("corr-1", "corr-1")  # the rejection changed nothing
    assert causes("B", 2) == ("corr-1", "corr-1")
    assert causes("A", 3) == (None, None)
    assert causes("B", 3) == ("corr-3", "corr-3")
    assert causes("B", 4) == (None, None)

    decisions = [e for e in logs if e["event"] == "reservation.published"]
    assert [(e["order_key"], e["correlation_id"], e["decision"]) for e in decisions] == [
        ("acme:1", "corr-1", "reserved"),
        ("acme:2", "corr-2", "rejected"),
        ("acme:3", "corr-3", "reserved"),
    ]
    assert decisions[0]["message_id"] == "r-acme:1"
    assert decisions[0]["lines"] == [
        {"sku": "A", "location": "main", "quantity": 1},
        {"sku": "B", "location": "main", "quantity": 1},
    ]


async def test_a_dead_letter_is_logged_with_the_correlation_id_of_its_record(engine):
    sessions = session_factory(engine)
    bad = Record(
        "hub.orders.v1",
        1,
        42,
        b"acme:9",
        b"{not json",
        (("ce_id", b"m-9"), ("ce_type", b"hub.order.placed.v1"), ("ce_correlationid", b"c-9")),
    )
    async with sessions() as session, session.begin():
        row = dead_letter_outbox_row(DeadLetterInfo(bad, "invalid body"), "core")
        await session.execute(insert(OutboxRow), [row])
    sent = Sent()
    relay = OutboxRelay(engine, sessions, sent)  # type: ignore[arg-type]
    with capture_logs(processors=[merge_contextvars]) as logs:
        assert await relay.drain_once() == 1
    [line] = [e for e in logs if e["event"] == "dead_letter.published"]
    assert (line["correlation_id"], line["message_id"], line["from_topic"]) == (
        "c-9",
        "m-9",
        "hub.orders.v1",
    )
    assert line["error"] == "invalid body" and line["topic"] == "hub.dlq.v1"
    assert get_contextvars() == {}


def test_a_levels_sku_and_channel_come_from_its_key_or_else_its_body():
    assert _level_of("A-1@online", b"") == ("A-1", "online")
    assert _level_of(None, b'{"sku": "A@1", "channel": "online"}') == ("A@1", "online")
    assert _level_of("A-1", b"not json") == (None, None)


def test_a_decisions_skus_are_read_exactly_even_with_quotes_in_names():
    msg = StockReserved(
        order_key='acme:"sku":"X"',
        account="acme",
        channel="online",
        lines=(
            ReservedLine(sku='odd "sku":"Y" \\ name', location="main", quantity=1),
            ReservedLine(sku="A-1", location="main", quantity=2),
        ),
        reserved_at=T,
    )
    assert _skus_of(msg.model_dump_json().encode()) == ['odd "sku":"Y" \\ name', "A-1"]
