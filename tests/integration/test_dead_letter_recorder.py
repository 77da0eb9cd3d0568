"""Records of `hub.dlq.v1` written to `dead_letters` once, on SQLite and PostgreSQL."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from sqlalchemy import select

from hub.deadletters import record_letters, recorder_since
from hub.store.models import DeadLetter

pytestmark = pytest.mark.integration


def dlq_record(offset: int, timestamp: int = 1_000, **headers: str) -> SimpleNamespace:
    return SimpleNamespace(
        topic="hub.dlq.v1",
        partition=2,
        offset=offset,
        timestamp=timestamp,
        key=b"A",
        value=b'{"sku": "A"}',
        headers=[("ce_type", b"hub.stock.level.changed.v1")]
        + [(k, v.encode()) for k, v in headers.items()],
    )


async def test_each_dead_letter_is_recorded_once_with_its_origin(sessions):
    pushed = dlq_record(
        10, dlq_error="acme: no variant", dlq_topic="hub.stock-levels.v1", dlq_consumer="pushers"
    )
    refused = dlq_record(
        11,
        dlq_error="bad order",
        dlq_topic="hub.orders.v1",
        dlq_partition="3",
        dlq_offset="77",
        dlq_consumer="core",
    )
    await record_letters(sessions, [pushed, refused])
    await record_letters(sessions, [pushed, refused])  # read again after a restart
    async with sessions() as s:
        rows = (await s.execute(select(DeadLetter).order_by(DeadLetter.offset))).scalars().all()
    assert [(r.consumer, r.topic, r.partition, r.offset) for r in rows] == [
        ("pushers", "hub.stock-levels.v1", -3, 10),  # no single origin: DLQ partition 2
        ("core", "hub.orders.v1", 3, 77),
    ]
    assert rows[0].error == "acme: no variant" and rows[0].payload == b'{"sku": "A"}'
    # Replayed with the original message's headers only.
    assert rows[0].headers == [["ce_type", "hub.stock.level.changed.v1"]]


async def test_an_odd_record_is_recorded_as_it_can_be_and_holds_up_nothing(sessions):
    odd = dlq_record(
        12,
        dlq_error="bad\x00byte",
        dlq_topic="hub.vouchers.v1",
        dlq_consumer="hub-finance-" + "x" * 80,
        dlq_partition="99999999999",
        dlq_offset="5",
    )
    odd.headers.append(("ce_id", None))
    old = dlq_record(13, timestamp=10, dlq_error="long ago", dlq_topic="hub.orders.v1")
    fine = dlq_record(14, dlq_error="refused", dlq_topic="hub.purchase-orders.v1")
    await record_letters(sessions, [odd, old, fine], since_ms=100)
    async with sessions() as s:
        rows = (await s.execute(select(DeadLetter).order_by(DeadLetter.offset))).scalars().all()
    assert [r.error for r in rows] == ["bad\ufffdbyte", "refused"]  # not the one from before
    assert len(rows[0].consumer) == 64 and rows[0].partition == -3  # cut; origin out of range


async def test_a_letter_without_a_time_is_recorded_and_the_start_is_kept(sessions):
    first = await recorder_since(sessions)
    assert await recorder_since(sessions) == first  # a second relay finds the first's time
    undated = dlq_record(15, dlq_error="no time", dlq_topic="hub.vouchers.v1")
    undated.timestamp = None
    await record_letters(sessions, [undated], since_ms=first)
    async with sessions() as s:
        assert (await s.execute(select(DeadLetter.error))).scalars().all() == ["no time"]


async def test_a_letter_at_a_position_used_before_a_broker_restart_is_recorded(sessions):
    """After the embedded broker restarts its offsets start over, and the database keeps the
    letters of before: another consumer's new letter from an old letter's position is recorded,
    and the old record read again still is not."""
    old = dlq_record(
        20,
        dlq_error="bad voucher",
        dlq_topic="hub.vouchers.v1",
        dlq_partition="0",
        dlq_offset="5",
        dlq_consumer="hub-finance",
    )
    new = dlq_record(
        20,
        dlq_error="another bad voucher",
        dlq_topic="hub.vouchers.v1",
        dlq_partition="0",
        dlq_offset="5",
        dlq_consumer="hub-finance",
    )
    new.value = b'{"voucher_id": "V-2"}'
    await record_letters(sessions, [old])
    await record_letters(sessions, [old, new])
    async with sessions() as s:
        rows = (await s.execute(select(DeadLetter).order_by(DeadLetter.id))).scalars().all()
    assert [(r.offset, r.error) for r in rows] == [(5, "bad voucher"), (5, "another bad voucher")]


async def test_a_letter_replayed_to_its_own_position_is_recorded_by_its_time(sessions):
    """A letter replayed after a restart to the very position it came from, failing again, has
    the same bytes: the origin's time (`dlq_timestamp`) tells it apart, and a record without
    one (published before it was sent) is the letter of before. A letter with no single origin
    is told apart by its own time in the dead-letter topic."""
    origin = dict(
        dlq_error="bad voucher",
        dlq_topic="hub.vouchers.v1",
        dlq_partition="0",
        dlq_offset="6",
        dlq_consumer="hub-finance",
    )
    undated = dlq_record(30, **origin)
    first = dlq_record(31, dlq_timestamp="1000", **origin)
    replayed = dlq_record(32, dlq_timestamp="9000", **origin)
    pushed = dlq_record(33, timestamp=2_000, dlq_error="acme: down", dlq_consumer="pushers")
    pushed_again = dlq_record(33, timestamp=8_000, dlq_error="acme: down", dlq_consumer="pushers")
    await record_letters(sessions, [undated, first, pushed])
    await record_letters(sessions, [undated, first, replayed, pushed, pushed_again])
    async with sessions() as s:
        rows = (await s.execute(select(DeadLetter).order_by(DeadLetter.id))).scalars().all()
    assert [(r.offset, r.timestamp_ms) for r in rows] == [
        (6, -1),
        (6, 1_000),
        (33, 2_000),
        (6, 9_000),
        (33, 8_000),
    ]
