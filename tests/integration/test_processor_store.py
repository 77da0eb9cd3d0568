"""The core's processor against a real database (SQLite and PostgreSQL): concurrency, replays,
half-written failures, dead letters."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text
from structlog.testing import capture_logs

from hub.core import batch
from hub.core.batch import CoreProcessor
from hub.domain.allocation import Rule
from hub.queries import invariant_problems, stock_view
from hub.store import locks
from hub.store.db import payload_digest
from hub.store.models import DeadLetter, Movement, Order, OutboxRow, ProcessedMessage, Stock
from schemas import topics
from schemas.envelope import CAUSES_HEADER, CORRELATION_HEADER, Envelope, message_id
from schemas.levels import StockLevelChanged
from schemas.stock import StockTransferred
from tests.builders import (
    T0,
    adjusted,
    cancel,
    counted,
    fulfil,
    place,
    received,
    record,
    records,
    reopen,
    ret,
)

RULES = {"online": Rule(), "wholesale": Rule(share=__import__("decimal").Decimal("0.5"))}


async def _accepted(sessions, prefix: str = "") -> int:
    async with sessions() as s:
        return (
            await s.execute(
                select(func.count())
                .select_from(Order)
                .where(Order.status == "reserved", Order.order_key.like(f"{prefix}%"))
            )
        ).scalar_one()


async def _levels_published(sessions) -> list[dict]:
    """The stock levels in the outbox, oldest first, as JSON objects."""
    async with sessions() as s:
        rows = await s.execute(
            select(OutboxRow.payload)
            .where(OutboxRow.topic == topics.STOCK_LEVELS)
            .order_by(OutboxRow.id)
        )
        return [json.loads(r) for r in rows.scalars()]


async def test_two_replicas_racing_on_one_sku_reserve_exactly_the_stock(sessions):
    a = CoreProcessor(sessions, RULES)
    b = CoreProcessor(sessions, RULES)
    await a.process(records(counted("HOT", 50)))
    orders = [
        place(
            f"{'shop' if i % 2 else 'b2b'}:{i}",
            [("HOT", 1)],
            channel="online" if i % 2 else "wholesale",
        )
        for i in range(200)
    ]
    rng = random.Random(7)
    rng.shuffle(orders)
    batches = [orders[i : i + 10] for i in range(0, 200, 10)]
    # Two replicas take alternate batches at the same time, as two partitions would.
    await asyncio.gather(
        *(a.process(records(*batch)) for batch in batches[0::2]),
        *(b.process(records(*batch)) for batch in batches[1::2]),
    )
    assert await _accepted(sessions) == 50
    async with sessions() as s:
        view = await stock_view(s, "HOT", RULES)
        assert (view["on_hand"], view["reserved"]) == (50, 50)
        assert await invariant_problems(s) == []

    # Every message a second time, through both replicas: nothing changes.
    await asyncio.gather(a.process(records(*orders)), b.process(records(*orders)))
    assert await _accepted(sessions) == 50
    async with sessions() as s:
        assert await stock_view(s, "HOT", RULES) == view


async def test_two_replicas_applying_the_same_new_orders_decide_each_once(sessions, monkeypatch):
    """Both find the orders missing and both go to insert them: the later insert fails on the
    key, the batch is retried as a conflict, and the retry finds the messages applied. (Each
    waits after its lock step until the other has taken it too; on SQLite the other is held
    by the database lock instead, and the wait runs out.)"""
    a = CoreProcessor(sessions, RULES)
    b = CoreProcessor(sessions, RULES)
    await a.process(records(counted("A", 100), counted("B", 100)))
    lock_orders, arrived, both = locks.lock_orders, [], asyncio.Event()

    async def in_step(session, keys):
        found = await lock_orders(session, keys)
        arrived.append(found[1])
        if len(arrived) == 2:
            both.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(both.wait(), 1)
        return found

    monkeypatch.setattr(locks, "lock_orders", in_step)
    batch = [place(f"shop:{i}", [("A" if i % 2 else "B", 1)]) for i in range(20)]
    with capture_logs() as logs:
        first, second = await asyncio.gather(a.process(records(*batch)), b.process(records(*batch)))
    assert sorted([first.accepted, second.accepted]) == [0, 20]
    assert first.duplicates + second.duplicates == 20
    assert await _accepted(sessions, "shop:") == 20
    if len(arrived[1]) == 20:  # both found them missing (PostgreSQL): one retried
        assert [e for e in logs if e["event"] == "batch conflict, retrying"]
    async with sessions() as s:
        assert (await s.execute(select(func.sum(Stock.reserved)))).scalar_one() == 20
        assert await invariant_problems(s) == []


@pytest.mark.parametrize("step", ["_write", "level_changes"])
async def test_a_failure_mid_batch_writes_nothing(sessions, monkeypatch, step):
    """The writes and the outbox's serialization overlap: a failure in either rolls the whole
    batch back, and the other has finished before the error leaves the processor."""
    p = CoreProcessor(sessions, RULES, max_attempts=1)
    await p.process(records(counted("A", 5)))

    async def boom(*args, **kwargs):
        await asyncio.sleep(0)
        raise ConnectionError("database went away")

    monkeypatch.setattr(p if step == "_write" else batch, step, boom)
    with pytest.raises(ConnectionError):
        await p.process(records(place("s:1", [("A", 2)])))
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []
    async with sessions() as s:
        assert (await s.execute(select(Stock.reserved))).scalar_one() == 0
        assert (
            await s.execute(select(func.count()).select_from(ProcessedMessage))
        ).scalar_one() == 1
        assert (await s.execute(select(func.count()).select_from(Order))).scalar_one() == 0
        pending = (
            await s.execute(
                select(func.count())
                .select_from(OutboxRow)
                .where(OutboxRow.topic == topics.RESERVATIONS)
            )
        ).scalar_one()
        assert pending == 0


async def test_poison_message_is_dead_lettered_and_the_rest_of_the_batch_applies(sessions):
    p = CoreProcessor(sessions, RULES)
    bad = record(place("s:1", [("A", 1)]))
    bad = type(bad)(bad.topic, bad.partition, bad.offset, bad.key, b"\x00garbage", bad.headers)
    await p.process([record(counted("A", 5)), bad, record(place("s:2", [("A", 1)]))])
    await p.process([bad])  # redelivered: still one dead letter
    async with sessions() as s:
        letters = (await s.execute(select(DeadLetter))).scalars().all()
        assert len(letters) == 1
        assert letters[0].payload == b"\x00garbage"
        assert "invalid hub.order.placed.v1 body" in letters[0].error
        dlq = (
            (await s.execute(select(OutboxRow).where(OutboxRow.topic == topics.DLQ)))
            .scalars()
            .all()
        )
        assert len(dlq) == 1 and dlq[0].payload == b"\x00garbage"
        assert ["dlq_error", letters[0].error] in dlq[0].headers
    assert await _accepted(sessions) == 1


async def test_a_poison_record_whose_key_or_headers_no_text_column_holds_is_dead_lettered(
    sessions,
):
    """A producer framing keys as a schema registry does (a NUL first), a key too long for the
    outbox, a NUL in a header: the record goes to the dead-letter topic with its key as close as
    the outbox holds it, and neither it nor the batch around it stops the core."""
    p = CoreProcessor(sessions, RULES)
    good = record(place("s:1", [("A", 1)]))
    Rec = type(good)
    framed = Rec(good.topic, 0, 9001, b"\x00\x00\x00\x00\x07s:2", b"\x00avro", good.headers)
    long = Rec(good.topic, 0, 9002, b"k" * 300, b"{}", (("trace", b"a\x00b"),))
    await p.process([record(counted("A", 5)), framed, long, good])
    async with sessions() as s:
        dlq = (
            (
                await s.execute(
                    select(OutboxRow).where(OutboxRow.topic == topics.DLQ).order_by(OutboxRow.id)
                )
            )
            .scalars()
            .all()
        )
    assert [d.key for d in dlq] == ["\ufffd\ufffd\ufffd\ufffd\x07s:2", "k" * 200]
    assert [d.payload for d in dlq] == [b"\x00avro", b"{}"]
    assert ["trace", "a\ufffdb"] in dlq[1].headers
    assert await _accepted(sessions) == 1


async def test_a_poison_record_with_an_empty_header_and_a_nul_in_its_error_is_dead_lettered(
    sessions,
):
    """A header with no value, and a body whose unknown key holds a NUL (the reason quotes
    it): both kept as text any column holds, so the letter is written and the core goes on."""
    p = CoreProcessor(sessions, RULES)
    good = record(place("s:1", [("A", 1)]))
    body = good.value[:-1] + b', "x\\u0000y": 1}'
    bad = type(good)(good.topic, 0, 9003, good.key, body, (*good.headers, ("trace", None)))
    await p.process([record(counted("A", 5)), bad, good])
    async with sessions() as s:
        letter = (await s.execute(select(DeadLetter))).scalar_one()
        dlq = (await s.execute(select(OutboxRow).where(OutboxRow.topic == topics.DLQ))).scalar_one()
    assert "x\ufffdy" in letter.error and "\x00" not in letter.error
    assert ["trace", ""] in letter.headers and ["trace", ""] in dlq.headers
    assert ["dlq_error", letter.error] in dlq.headers
    assert await _accepted(sessions) == 1


async def test_a_transfer_between_locations_with_the_longest_names_is_journaled(sessions):
    """Location names may be 64 characters; the journal's reason ("to …") is cut to its 64, on
    PostgreSQL as on SQLite, instead of the transfer failing there and only there."""
    here, there = "w" * 64, "x" * 64
    moved = Envelope(
        id=message_id("transfer", "TR-1"),
        source="test",
        data=StockTransferred(
            sku="A",
            from_location=here,
            to_location=there,
            quantity=3,
            transfer_id="TR-1",
            transferred_at=T0,
        ),
    )
    p = CoreProcessor(sessions, RULES)
    await p.process(records(counted("A", 5, location=here), moved))
    async with sessions() as s:
        stock = dict((await s.execute(select(Stock.location, Stock.on_hand))).all())
        reasons = (
            (await s.execute(select(Movement.reason).where(Movement.kind == "transfer")))
            .scalars()
            .all()
        )
    assert stock == {here: 2, there: 3}
    assert sorted(reasons) == sorted([f"to {there}"[:64], f"from {here}"[:64]])


async def test_levels_are_published_only_when_a_channel_value_changes(sessions):
    p = CoreProcessor(sessions, {"online": Rule(cap=10)})
    await p.process(records(counted("A", 50)))
    await p.process(records(place("s:1", [("A", 5)])))  # 45 free, capped at 10: no change
    await p.process(records(fulfil("s:1", [("A", 5)]), counted("A", 8, cid="c2")))
    values = [(m["available"], m["version"]) for m in await _levels_published(sessions)]
    assert values == [(10, 1), (8, 2)]


async def test_cancel_before_place_leaves_no_reservation(sessions):
    p = CoreProcessor(sessions, RULES)
    await p.process(records(counted("A", 5)))
    await p.process(records(cancel("s:9")))
    await p.process(records(place("s:9", [("A", 2)])))
    await p.process(records(place("s:9", [("A", 2)])))
    async with sessions() as s:
        assert (await s.execute(select(Stock.reserved))).scalar_one() == 0
        assert (await s.execute(select(Order.status))).scalar_one() == "cancelled"
        assert await invariant_problems(s) == []


async def test_a_reopened_order_is_reserved_again_and_a_late_cancellation_changes_nothing(
    sessions,
):
    """Placed, cancelled (a failed payment), reopened (paid on a retry): the units are held
    again and the channels see them go. A copy of the old cancellation delivered late does not
    release them; a newer cancellation does. Each step in a batch of its own, as it comes."""
    at = [T0 + timedelta(minutes=m) for m in range(4)]
    p = CoreProcessor(sessions, {"online": Rule()})
    await p.process(records(counted("A", 5)))
    steps = [
        (place("s:5", [("A", 2)]), 2, "reserved"),
        (cancel("s:5", at=at[1]), 0, "cancelled"),
        (reopen("s:5", at[2]), 2, "reserved"),
        (cancel("s:5", at=at[0]), 2, "reserved"),  # older than the reopening
        (cancel("s:5", at=at[3]), 0, "cancelled"),
    ]
    for env, reserved, status in steps:
        await p.process(records(env))
        async with sessions() as s:
            row = (await s.execute(select(Stock))).scalar_one()
            assert (row.on_hand, row.reserved) == (5, reserved), env.data
            assert (await s.execute(select(Order.status))).scalar_one() == status
            assert await invariant_problems(s) == []
    levels = await _levels_published(sessions)
    assert [m["available"] for m in levels] == [5, 3, 5, 3, 5]


async def test_a_fulfilment_before_its_order_takes_the_stock_and_the_order_reserves_none(sessions):
    """Each message in a batch of its own: the fulfilment's SKU is locked and loaded although
    the order holds no reservation yet, so the shipped units leave on_hand and the order,
    arriving later, has nothing left to reserve."""
    p = CoreProcessor(sessions, RULES)
    await p.process(records(counted("A", 10)))
    await p.process(records(fulfil("s:7", [("A", 2)])))
    await p.process(records(place("s:7", [("A", 2)])))
    async with sessions() as s:
        row = (await s.execute(select(Stock))).scalar_one()
        assert (row.on_hand, row.reserved) == (8, 0)
        assert (await s.execute(select(Order.status))).scalar_one() == "fulfilled"
        assert await invariant_problems(s) == []


@pytest.mark.parametrize("batches", ["one batch", "a batch each"])
async def test_an_order_cancelled_before_it_came_is_held_when_reopened(sessions, batches):
    p = CoreProcessor(sessions, RULES)
    await p.process(records(counted("A", 5)))
    at = [T0 + timedelta(minutes=m) for m in range(3)]
    msgs = [cancel("s:4", at=at[1]), place("s:4", [("A", 2)]), reopen("s:4", at[2])]
    if batches == "one batch":
        await p.process(records(*msgs))
    else:
        for m in msgs:
            await p.process(records(m))
    async with sessions() as s:
        row = (await s.execute(select(Stock))).scalar_one()
        assert (row.on_hand, row.reserved) == (5, 2)
        assert (await s.execute(select(Order.status))).scalar_one() == "reserved"
        assert await invariant_problems(s) == []


async def test_a_fulfilment_from_another_warehouse_commits_the_reservation(sessions):
    """Reserved at main, shipped from east (the platform moved the order): main's units are
    free again and east's stock drops, in one batch with nothing else loaded."""
    p = CoreProcessor(sessions, RULES)
    await p.process(records(counted("A", 5), counted("A", 5, location="east")))
    await p.process(records(place("s:9", [("A", 3)])))
    await p.process(records(fulfil("s:9", [("A", 3)], location="east")))
    async with sessions() as s:
        rows = (await s.execute(select(Stock))).scalars()
        assert {r.location: (r.on_hand, r.reserved) for r in rows} == {
            "main": (5, 0),
            "east": (2, 0),
        }
        assert (await s.execute(select(Order.status))).scalar_one() == "fulfilled"
        assert await invariant_problems(s) == []


async def test_a_refund_before_shipping_releases_the_reservation_and_says_so(sessions):
    p = CoreProcessor(sessions, RULES)
    await p.process(records(counted("A", 10)))
    await p.process(records(place("s:8", [("A", 2)])))
    await p.process(records(ret("s:8", [("A", 2, True)])))
    async with sessions() as s:
        row = (await s.execute(select(Stock))).scalar_one()
        assert (row.on_hand, row.reserved) == (10, 0)
        assert await invariant_problems(s) == []
        types = [dict(r.headers)["ce_type"] for r in (await s.execute(select(OutboxRow))).scalars()]
    assert types.count("hub.reservation.released.v1") == 1


async def test_each_stock_level_names_the_orders_whose_decisions_changed_it(sessions):
    proc = CoreProcessor(sessions, {"online": Rule()})

    async def levels() -> dict[tuple[str, int], tuple[str | None, str | None]]:
        async with sessions() as s:
            rows = (
                await s.execute(select(OutboxRow).where(OutboxRow.topic == topics.STOCK_LEVELS))
            ).scalars()
            out = {}
            for r in rows:
                msg = StockLevelChanged.model_validate_json(r.payload)
                h = dict(r.headers)
                out[(msg.sku, msg.version)] = (h.get(CORRELATION_HEADER), h.get(CAUSES_HEADER))
            return out

    await proc.process(records(counted("A", 5), counted("B", 5)))
    first = replace(place("shop:1", [("A", 1), ("B", 1)]), correlation_id="corr-1")
    too_big = replace(place("shop:2", [("A", 9)]), correlation_id="corr-2")  # rejected
    plain = place("shop:3", [("B", 2)])  # no correlation id: its own id stands for it
    await proc.process(records(first, too_big, plain))
    await proc.process(records(replace(cancel("shop:1"), correlation_id="corr-9")))

    assert await levels() == {
        ("A", 1): (None, None),  # the stocktake: no order's
        ("B", 1): (None, None),
        ("A", 2): ("corr-1", "corr-1"),  # the rejection changed nothing
        ("B", 2): (plain.id, f"corr-1,{plain.id}"),
        ("A", 3): ("corr-9", "corr-9"),  # the cancellation released shop:1's units
        ("B", 3): ("corr-9", "corr-9"),
    }


BLOCKED = text("SELECT cardinality(pg_blocking_pids(:pid)) > 0")


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_a_row_another_replica_adds_while_this_one_waits_is_locked_with_its_sku(
    engine, sessions
):
    """Replica A creates the SKU's row at a new location and holds the SKU's locks; B, asking for
    the same SKU meanwhile, waits. Once A commits, B has every row of the SKU, the new one
    included, so its levels count the new location's stock (PostgreSQL: READ COMMITTED does
    not look again for rows added while a `FOR UPDATE` waited)."""
    async with sessions() as s, s.begin():
        await locks.lock_stock(s, {"X"}, create={("X", "main")})

    b_pid: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def b_locks() -> list[str]:
        async with sessions() as b, b.begin():
            b_pid.set_result(await b.scalar(text("SELECT pg_backend_pid()")))
            return [r.location for r in await locks.lock_stock(b, {"X"})]

    async with sessions() as a, a.begin():  # A commits at the end of the block
        await locks.lock_stock(a, {"X"}, create={("X", "east")})
        waiting = asyncio.create_task(b_locks())
        pid = await asyncio.wait_for(b_pid, 10)
        async with engine.connect() as watch:
            for _ in range(1000):  # until B waits for A's locks, 10 s at most
                if await watch.scalar(BLOCKED, {"pid": pid}):
                    break
                await asyncio.sleep(0.01)
            else:
                pytest.fail("the second replica never waited for the first one's locks")
    assert await waiting == ["east", "main"]


async def test_a_reservation_committed_while_a_stocktake_reads_its_holders_is_the_one_bumped(
    sessions, monkeypatch
):
    """Replica B lowers A's count to 5 and reads who holds A; before B locks A's row, replica
    A commits a new order holding 4 more. B's locked row counts that order's units: the newest
    order must be the one to go, not the older one B had loaded. (On SQLite the database lock
    holds A back until B committed: its order then finds too little stock.)"""
    a = CoreProcessor(sessions, RULES)
    b = CoreProcessor(sessions, RULES)
    await a.process(records(counted("A", 10), place("s:1", [("A", 4)])))
    holders_of, raced = locks.holders_of, []

    async def meanwhile(session, skus):
        found = await holders_of(session, skus)
        if not raced:
            raced.append(asyncio.ensure_future(a.process(records(place("s:3", [("A", 4)])))))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(raced[0]), 1)
        return found

    monkeypatch.setattr(locks, "holders_of", meanwhile)
    await b.process(records(counted("A", 5, cid="c2")))
    await raced[0]
    async with sessions() as s:
        status = dict((await s.execute(select(Order.order_key, Order.status))).all())
        view = await stock_view(s, "A", RULES)
        assert await invariant_problems(s) == []
    assert status["s:1"] == "reserved"
    assert status["s:3"] in ("bumped", "rejected")
    assert (view["on_hand"], view["reserved"]) == (5, 4)


async def test_stock_beyond_what_the_journal_holds_is_dead_lettered_on_postgresql_not_retried(
    engine, sessions
):
    """Each message's units are bounded (`MAX_QUANTITY`), their sum is not: a third billion
    units passes the schema and not PostgreSQL's integer columns. The message is a poison to
    set aside, not a database that went away (SQLite, with no such limit, applies it). Either
    way the order beside it is decided and `process` returns."""
    p = CoreProcessor(sessions, RULES)
    await p.process(records(counted("A", 5), counted("B", 10**9), adjusted("B", 10**9)))
    result = await asyncio.wait_for(
        p.process(records(adjusted("B", 10**9, aid="a2"), place("s:1", [("A", 1)]))), 30
    )
    assert result.accepted == 1
    async with sessions() as s:
        letters = (await s.execute(select(DeadLetter.error))).scalars().all()
        on_hand = (await s.execute(select(Stock.on_hand).where(Stock.sku == "B"))).scalar()
    if engine.dialect.name == "postgresql":
        assert len(letters) == 1 and on_hand == 2 * 10**9
    else:
        assert letters == [] and on_hand == 3 * 10**9
    assert await _accepted(sessions) == 1


async def test_a_poison_record_at_a_position_used_before_a_broker_restart_is_dead_lettered(
    sessions,
):
    """The embedded broker's offsets start over when it restarts, and the database keeps the
    letters of before: a new poison record at an old letter's position is a letter of its own
    (not skipped, its offset committed, without a record), while the same record read again is
    not recorded twice."""
    p = CoreProcessor(sessions, RULES)
    good = record(place("s:1", [("A", 1)]))
    Rec = type(good)
    before = Rec(good.topic, 0, 9004, b"s:2", b"not json", good.headers)
    after = Rec(good.topic, 0, 9004, b"s:3", b"{not json either", good.headers)
    await p.process([before])
    await p.process([before])  # read again: one letter
    await p.process([after])  # the broker restarted; position 0@9004 again
    async with sessions() as s:
        letters = (await s.execute(select(DeadLetter).order_by(DeadLetter.id))).scalars().all()
        dlq = await s.execute(select(OutboxRow.payload).where(OutboxRow.topic == topics.DLQ))
        published = dlq.scalars().all()
    assert [(d.offset, d.payload) for d in letters] == [(9004, b"not json"), (9004, after.value)]
    assert published == [b"not json", after.value]


async def test_a_letter_replayed_to_its_own_position_after_a_restart_fails_as_a_new_letter(
    sessions,
):
    """Replayed after the embedded broker restarted, a letter can land at the very position it
    came from, with the same bytes: its record's time tells it from the letter replayed, so
    failing again it is recorded and published again, not skipped with its offset committed.
    Read again, it is still one letter."""
    p = CoreProcessor(sessions, RULES)
    good = record(place("s:1", [("A", 1)]))
    Rec = type(good)
    first = Rec(good.topic, 0, 9005, b"s:2", b"not json", good.headers, 1_000)
    replayed = Rec(good.topic, 0, 9005, b"s:2", b"not json", good.headers, 9_000)
    await p.process([first])
    await p.process([replayed])
    await p.process([replayed])  # read again: still two letters
    async with sessions() as s:
        letters = (await s.execute(select(DeadLetter).order_by(DeadLetter.id))).scalars().all()
        dlq = await s.execute(select(OutboxRow.headers).where(OutboxRow.topic == topics.DLQ))
        published = [dict(map(tuple, h)) for h in dlq.scalars().all()]
    assert [(d.offset, d.timestamp_ms) for d in letters] == [(9005, 1_000), (9005, 9_000)]
    assert [h["dlq_timestamp"] for h in published] == ["1000", "9000"]


async def test_a_letter_stored_before_times_were_kept_hides_no_later_failure(sessions):
    """A letter stored without its record's time (before the upgrade that keeps it, which
    restarts the embedded broker) is not taken for a record failing at its position with its
    bytes: that is its replay failing again, recorded and published."""
    good = record(place("s:1", [("A", 1)]))
    Rec = type(good)
    async with sessions() as s, s.begin():
        s.add(
            DeadLetter(
                consumer=CoreProcessor(sessions, RULES).consumer,
                topic=good.topic,
                partition=0,
                offset=9006,
                digest=payload_digest(b"not json"),
                headers=[],
                payload=b"not json",
                error="bad",
            )
        )
    p = CoreProcessor(sessions, RULES)
    await p.process([Rec(good.topic, 0, 9006, b"s:2", b"not json", good.headers, 5_000)])
    async with sessions() as s:
        letters = await s.execute(select(DeadLetter.timestamp_ms).order_by(DeadLetter.id))
        dlq = await s.execute(select(OutboxRow.id).where(OutboxRow.topic == topics.DLQ))
        assert letters.scalars().all() == [-1, 5_000] and len(dlq.all()) == 1


async def test_an_order_for_a_sql_looking_sku_is_rejected_as_unknown_and_stores_nothing_odd(
    sessions,
):
    """SKUs come from shops as the merchant typed them; every statement binds them."""
    odd = "x'; DROP TABLE stock; --"
    p = CoreProcessor(sessions, RULES)
    await p.process([record(counted("A", 5)), record(place("s:1", [("A", 1), (odd, 1)]))])
    await p.process([record(counted(odd, 3)), record(place("s:2", [(odd, 2)]))])
    async with sessions() as s:
        stock = dict((await s.execute(select(Stock.sku, Stock.on_hand))).all())
        statuses = dict((await s.execute(select(Order.order_key, Order.status))).all())
    assert stock == {"A": 5, odd: 3}
    assert statuses == {"s:1": "rejected", "s:2": "reserved"}


async def test_a_receipt_line_sent_again_under_another_id_is_counted_once(sessions):
    """A warehouse that sends a receipt again with a new message id: the line (receipt, SKU,
    location) adds its units once, in the batch after and in the same batch; another SKU of
    the same receipt, and another receipt of the same SKU, count."""
    p = CoreProcessor(sessions, RULES)
    first = received("A", 10, "2.00", "GRN-1")
    again = replace(first, id="resent-1")
    await p.process([record(first)])
    result = await p.process(
        [
            record(again),
            record(replace(first, id="resent-2")),
            record(received("B", 4, "1.00", "GRN-1")),
            record(received("A", 5, "2.00", "GRN-2")),
        ]
    )
    third = received("C", 3, "1.00", "GRN-3")
    await p.process([record(third), record(replace(third, id="resent-3"))])
    # One receipt filling two POs of a SKU: two lines, each counted once.
    for_po = [
        replace(received("D", n, "1.00", "GRN-4"), id=f"grn-4-{po}")
        for n, po in ((10, "PO-1"), (5, "PO-2"))
    ]
    for_po = [replace(e, data=e.data.model_copy(update={"po_number": e.id[6:]})) for e in for_po]
    await p.process([record(e) for e in for_po])
    await p.process([record(replace(for_po[1], id="resent-4"))])
    # The same SKU under one receipt without a PO (an unplanned line) is a line of its own; a
    # line journaled before POs were kept ("") may have been any, and a copy naming one is it.
    await p.process(
        [record(replace(for_po[0], id="grn-4-none", data=received("D", 2, "1.00", "GRN-4").data))]
    )
    no_po = received("E", 6, "1.00", "GRN-5")
    await p.process([record(no_po)])
    async with sessions() as s, s.begin():
        await s.execute(text("UPDATE movements SET reason = '' WHERE ref = 'GRN-5'"))
    named = replace(no_po, id="resent-6", data=no_po.data.model_copy(update={"po_number": "PO-9"}))
    await p.process([record(named)])
    async with sessions() as s:
        stock = dict((await s.execute(select(Stock.sku, Stock.on_hand))).all())
        journal = await s.execute(
            select(Movement.ref, Movement.sku, Movement.reason).where(Movement.kind == "receipt")
        )
        lines = sorted(journal.all())
    assert stock == {"A": 15, "B": 4, "C": 3, "D": 17, "E": 6}
    assert lines == [
        ("GRN-1", "A", "-"),
        ("GRN-1", "B", "-"),
        ("GRN-2", "A", "-"),
        ("GRN-3", "C", "-"),
        ("GRN-4", "D", "-"),
        ("GRN-4", "D", "PO-1"),
        ("GRN-4", "D", "PO-2"),
        ("GRN-5", "E", ""),
    ]
    assert result.duplicates == 2
