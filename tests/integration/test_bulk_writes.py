"""`hub.store.bulk`, the core's many-rows writes, on SQLite and PostgreSQL: defaults, JSON and
binary values, skipped conflicts, the keys an insert claimed, updates by key."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from hub.store import bulk, locks
from hub.store.models import DeadLetter, Order, OutboxRow, ProcessedMessage, Stock, table

STOCK = table(Stock)
OUTBOX = table(OutboxRow)
INBOX = table(ProcessedMessage)
DEAD = table(DeadLetter)
ORDERS = table(Order)
AT = datetime(2026, 11, 11, 8, 30, tzinfo=UTC)


async def _stock(sessions) -> dict[tuple[str, str], tuple[Any, ...]]:
    async with sessions() as s:
        rows = (await s.execute(select(STOCK).order_by(STOCK.c.sku))).all()
    return {(r.sku, r.location): (r.on_hand, r.reserved, r.avg_cost) for r in rows}


async def test_insert_fills_python_defaults_and_skips_existing_keys(sessions):
    async with sessions() as s, s.begin():
        await bulk.insert(s, STOCK, [{"sku": "A", "location": "main", "on_hand": 5}])
    async with sessions() as s, s.begin():
        await bulk.insert(
            s,
            STOCK,
            [{"sku": "A", "location": "main"}, {"sku": "B", "location": "main"}],
            ignore_conflicts_on=("sku", "location"),
        )
    got = await _stock(sessions)
    assert got == {("A", "main"): (5, 0, Decimal(0)), ("B", "main"): (0, 0, Decimal(0))}


async def test_insert_keeps_json_bytes_and_nulls(sessions):
    rows = [
        {
            "topic": "t",
            "key": "k1",
            "headers": [["ce_id", "1"], ["x", "é"]],
            "payload": b"\x00\xff",
        },
        {"topic": "t", "key": None, "headers": [], "payload": b"{}"},
    ]
    async with sessions() as s, s.begin():
        await bulk.insert(s, OUTBOX, rows)
    async with sessions() as s:
        got = (await s.execute(select(OUTBOX).order_by(OUTBOX.c.id))).all()
    assert [(r.key, r.headers, bytes(r.payload), r.sent_at) for r in got] == [
        ("k1", [["ce_id", "1"], ["x", "é"]], b"\x00\xff", None),
        (None, [], b"{}", None),
    ]


async def test_values_come_back_exactly_as_written(sessions):
    """Decimals to the column's scale, aware times to the microsecond (in any zone), text that
    needs escaping inside JSON, every byte value, empty and null bytes, a reserved word as a
    column name."""
    awkward = 'q"uote \\ back\nnew\ttab \u2028 \U0001f600 \x01 é'
    every_byte = bytes(range(256))
    at = datetime(2026, 11, 11, 23, 59, 59, 999999, tzinfo=UTC)
    async with sessions() as s, s.begin():
        await bulk.insert(
            s,
            STOCK,
            [
                {
                    "sku": awkward,
                    "location": "main",
                    "on_hand": 2_000_000_000,
                    "avg_cost": Decimal("123456789.123456"),
                    "updated_at": at,
                },
                {
                    "sku": "east",
                    "location": "main",
                    "on_hand": 0,
                    "avg_cost": Decimal("-0.000001"),
                    "updated_at": at.astimezone(timezone(timedelta(hours=8))),
                },
            ],
        )
        await bulk.insert(
            s,
            DEAD,
            [
                {
                    "consumer": "core",
                    "topic": "t",
                    "partition": 3,
                    "offset": 2**40,
                    "key": every_byte,
                    "headers": [[awkward, awkward]],
                    "payload": b"",
                    "error": awkward,
                },
                {
                    "consumer": "core",
                    "topic": "t",
                    "partition": 3,
                    "offset": 2**40 + 1,
                    "key": None,
                    "headers": [],
                    "payload": None,
                    "error": "",
                },
            ],
        )
        await bulk.update(
            s, STOCK, [{"sku": awkward, "location": "main", "reserved": 7, "updated_at": at}]
        )
    async with sessions() as s:
        stock = (await s.execute(select(STOCK).where(STOCK.c.sku == awkward))).one()
        east = (await s.execute(select(STOCK).where(STOCK.c.sku == "east"))).one()
        dead = (await s.execute(select(DEAD).order_by(DEAD.c.offset))).all()
    assert (stock.sku, stock.on_hand, stock.reserved, stock.avg_cost) == (
        awkward,
        2_000_000_000,
        7,
        Decimal("123456789.123456"),
    )
    assert stock.updated_at.replace(tzinfo=stock.updated_at.tzinfo or UTC) == at
    assert east.avg_cost == Decimal("-0.000001")
    if east.updated_at.tzinfo is not None:  # PostgreSQL; SQLite keeps the wall time as given
        assert east.updated_at == at
    assert [(r.offset, r.key, r.headers, r.payload, r.error) for r in dead] == [
        (2**40, every_byte, [[awkward, awkward]], b"", awkward),
        (2**40 + 1, None, [], None, ""),
    ]


async def test_insert_new_returns_only_the_keys_it_wrote(sessions):
    def row(i: str) -> dict[str, Any]:
        return {"consumer": "core", "message_id": i, "processed_at": AT}

    keys = ("consumer", "message_id")
    async with sessions() as s, s.begin():
        first = await bulk.insert_new(s, INBOX, [row("a"), row("b")], keys)
    async with sessions() as s, s.begin():
        second = await bulk.insert_new(s, INBOX, [row("b"), row("c"), row("c")], keys)
    assert first == {("core", "a"), ("core", "b")}
    assert second == {("core", "c")}
    async with sessions() as s:
        stored = (await s.execute(select(INBOX.c.message_id))).scalars().all()
    assert sorted(stored) == ["a", "b", "c"]


async def test_locking_orders_tells_the_new_ones_apart(sessions):
    async with sessions() as s, s.begin():
        rows, new = await locks.lock_orders(s, ["b:2", "a:1"])
        assert rows == [] and new == {"a:1", "b:2"}
        await bulk.insert(s, ORDERS, [{"order_key": "a:1"}, {"order_key": "b:2"}])
    async with sessions() as s, s.begin():
        rows, new = await locks.lock_orders(s, {"c:3", "a:1", "b:2"})
    assert [(r.order_key, r.status, r.placed, r.total) for r in rows] == [
        ("a:1", "new", False, None),
        ("b:2", "new", False, None),
    ]
    assert new == {"c:3"}


async def test_an_order_inserted_by_a_concurrent_batch_fails_the_later_insert(sessions):
    """Two transactions that both found an order missing: the second insert waits for the
    first transaction and then fails on the key (the core retries it as a conflict)."""
    async with sessions() as first:
        await first.begin()
        assert (await locks.lock_orders(first, ["a:1"]))[1] == {"a:1"}
        await bulk.insert(first, ORDERS, [{"order_key": "a:1", "status": "reserved"}])

        async def second() -> None:
            async with sessions() as s, s.begin():
                await bulk.insert(s, ORDERS, [{"order_key": "a:1", "status": "rejected"}])

        racing = asyncio.create_task(second())
        await asyncio.sleep(0.3)
        assert not racing.done()
        await first.commit()
    with pytest.raises(IntegrityError, match=r"(?i)unique|duplicate"):
        await asyncio.wait_for(racing, 5)
    async with sessions() as s:
        assert (await s.execute(select(ORDERS.c.status))).scalars().all() == ["reserved"]


async def test_update_by_key_changes_only_the_given_rows(sessions):
    async with sessions() as s, s.begin():
        await bulk.insert(
            s,
            STOCK,
            [{"sku": x, "location": "main", "on_hand": 10} for x in ("A", "B", "C")],
        )
    async with sessions() as s, s.begin():
        await bulk.update(
            s,
            STOCK,
            [
                {"sku": "A", "location": "main", "reserved": 3, "avg_cost": Decimal("1.250000")},
                {"sku": "C", "location": "main", "reserved": 7, "avg_cost": Decimal("0.5")},
            ],
        )
    assert await _stock(sessions) == {
        ("A", "main"): (10, 3, Decimal("1.25")),
        ("B", "main"): (10, 0, Decimal(0)),
        ("C", "main"): (10, 7, Decimal("0.5")),
    }
    with pytest.raises(ValueError, match="twice"):
        async with sessions() as s, s.begin():
            await bulk.update(
                s,
                STOCK,
                [{"sku": "A", "location": "main", "reserved": 1}] * 2,
            )


async def test_a_concurrent_claim_of_the_same_key_waits_and_finds_it_taken(sessions):
    """PostgreSQL: the second insert waits on the key; SQLite: on the database lock."""
    row = {"consumer": "core", "message_id": "m1", "processed_at": AT}
    keys = ("consumer", "message_id")
    async with sessions() as first:
        await first.begin()
        assert await bulk.insert_new(first, INBOX, [row], keys) == {("core", "m1")}

        async def second() -> set[tuple[Any, ...]]:
            async with sessions() as s, s.begin():
                return await bulk.insert_new(s, INBOX, [row], keys)

        racing = asyncio.create_task(second())
        await asyncio.sleep(0.3)
        assert not racing.done()  # it waits for the first transaction's outcome
        await first.commit()
    assert await asyncio.wait_for(racing, 5) == set()
