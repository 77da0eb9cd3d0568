"""The relay logs each reservation decision with its order's correlation id, and publishes every
row with the headers the core wrote (a stock level's causes among them)."""

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
from hub.relay import OutboxRelay
from hub.store.db import make_engine, session_factory
from hub.store.migrate import upgrade
from hub.store.models import OutboxRow
from schemas.envelope import CAUSES_HEADER, Envelope
from schemas.levels import StockLevelChanged
from schemas.reservations import ReservationRejected, ReservedLine, StockReserved
from schemas.stock import StockCounted
from tests.unit.ops.test_correlation_context import level

T = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


class Sent:
    def __init__(self) -> None:
        self.items: list[tuple[str, str | None, bytes, list[tuple[str, bytes]]]] = []

    async def send_many(self, items: Sequence[Any]) -> None:
        self.items.extend(items)

    send_in_order = send_many  # the relay's way: the same records here


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


def lvl(sku: str, version: int, *causes: str) -> Envelope:
    return Envelope(
        id=f"l-{sku}-{version}",
        source="hub/core",
        data=level(sku, version),
        correlation_id=causes[-1] if causes else None,
        causes=causes,
    )


def counted(sku: str) -> Envelope:
    msg = StockCounted(sku=sku, quantity=3, count_id="c", location="main", counted_at=T)
    return Envelope(id=f"n-{sku}", source="stocktake", data=msg)


async def test_relay_logs_decisions_and_passes_each_levels_causes_on(engine):
    sessions = session_factory(engine)
    decided = [reserved("acme:1", "corr-1", "A", "B"), rejected("acme:2", "corr-2", "A")]
    transactions = [
        [*decided, lvl("A", 2, "corr-1"), lvl("B", 2, "corr-1")],
        [lvl("A", 3)],
        [reserved("acme:3", "corr-3", "B"), lvl("B", 3, "corr-0", "corr-3")],
        [counted("B"), lvl("B", 4)],
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

    assert causes("A", 2) == ("corr-1", "corr-1")
    assert causes("B", 2) == ("corr-1", "corr-1")
    assert causes("A", 3) == (None, None)
    assert causes("B", 3) == ("corr-3", "corr-0,corr-3")
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
