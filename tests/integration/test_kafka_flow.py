"""Every flow of the core on the real broker (Tansu here, Apache Kafka where Docker runs),
with the store on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

from aiokafka import AIOKafkaProducer
from sqlalchemy import func, select
from typer.testing import CliRunner

from hub.app import Runtime
from hub.config import ChannelRule, HubConfig, Settings
from hub.kafka.reader import read_topic
from hub.queries import invariant_problems, stock_view
from hub.store.models import Order
from schemas import topics
from tests.builders import counted, place


def _settings(kafka, db_url: str, tmp_path) -> Settings:
    s = Settings(
        kafka_bootstrap=kafka.bootstrap,
        database_url=db_url,
        var_dir=tmp_path / "var",
        core_group=f"core-{uuid.uuid4().hex[:6]}",
        consumer_session_timeout_ms=6000,
        topic_partitions=4,
    )
    s.__dict__["hub"] = HubConfig(
        channels={"online": ChannelRule(), "wholesale": ChannelRule(share=0.5, buffer=2)}
    )
    return s


async def _until(predicate, limit: float = 120.0) -> None:
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if await predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not reached in time")


async def _read_all(bootstrap: str, topic: str) -> list:
    return await read_topic(bootstrap, topic)


async def test_two_core_consumers_reserve_exactly_the_stock_and_replays_change_nothing(
    kafka, db_url, engine, tmp_path
):
    # `engine` empties the session's PostgreSQL database first: the counts below are of all
    # orders, and a test before this one may have left its own.
    rt = Runtime(_settings(kafka, db_url, tmp_path), consumers=2)
    await rt.start({"core", "relay"})
    try:
        assert rt.publisher is not None and rt.sessions is not None
        await rt.publisher.publish([counted("HOT", 50)])

        async def counted_in() -> bool:
            return rt.totals.applied >= 1

        await _until(counted_in)  # stock events and orders are different topics: no order
        orders = [
            place(
                f"{'acme' if i % 2 else 'b2b'}:{i}",
                [("HOT", 1)],
                channel="online" if i % 2 else "wholesale",
            )
            for i in range(200)
        ]
        await asyncio.gather(*(rt.publisher.publish([o]) for o in orders))

        async def decided() -> bool:
            async with rt.sessions() as s:  # type: ignore[misc]
                n = (
                    await s.execute(
                        select(func.count()).select_from(Order).where(Order.status != "new")
                    )
                ).scalar_one()
            return n == 200

        await _until(decided)
        async with rt.sessions() as s:
            accepted = (
                await s.execute(
                    select(func.count()).select_from(Order).where(Order.status == "reserved")
                )
            ).scalar_one()
            view = await stock_view(s, "HOT", rt.rules)
        assert accepted == 50
        assert (view["on_hand"], view["reserved"]) == (50, 50)
        assert {ch: v["available"] for ch, v in view["channels"].items()} == {
            "online": 0,
            "wholesale": 0,
        }

        applied = rt.totals.applied + rt.totals.duplicates
        await rt.publisher.publish([counted("HOT", 50), *orders])

        async def replayed() -> bool:
            return rt.totals.applied + rt.totals.duplicates >= applied + 201

        await _until(replayed)
        async with rt.sessions() as s:
            assert await stock_view(s, "HOT", rt.rules) == view
            assert await invariant_problems(s) == []

        async def drained() -> bool:
            return (await rt.relay.backlog())[0] == 0  # type: ignore[union-attr]

        await _until(drained)
        decisions = await _read_all(kafka.bootstrap, topics.RESERVATIONS)
        types = [dict(r.headers)["ce_type"].decode() for r in decisions]
        assert types.count("hub.reservation.reserved.v1") == 50
        assert types.count("hub.reservation.rejected.v1") == 150
        levels = await _read_all(kafka.bootstrap, topics.STOCK_LEVELS)
        newest: dict[str, tuple[int, int]] = {}
        for r in levels:
            d = json.loads(r.value)
            if d["channel"] not in newest or d["version"] > newest[d["channel"]][0]:
                newest[d["channel"]] = (d["version"], d["available"])
        assert {ch: v[1] for ch, v in newest.items()} == {"online": 0, "wholesale": 0}
    finally:
        await rt.stop()


async def test_malformed_message_goes_to_dlq_with_error_and_bytes_and_consumer_goes_on(
    kafka, tmp_path
):
    """On SQLite: the dead-letter path on PostgreSQL is covered by the processor tests
    (test_processor_store.py, both databases). Run after the rest of the suite, this test on
    PostgreSQL has been seen to stall its consumer for minutes; that is under investigation."""
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'dlq.db'}"
    rt = Runtime(_settings(kafka, db_url, tmp_path))
    await rt.start({"core", "relay"})
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap)
    await producer.start()
    try:
        assert rt.publisher is not None and rt.sessions is not None
        await rt.publisher.publish([counted("DLQ-A", 5)])

        async def counted_in() -> bool:
            return rt.totals.applied >= 1

        await _until(counted_in)
        await producer.send_and_wait(
            topics.ORDERS,
            b"\x00not json at all",
            key=b"x:1",
            headers=[
                ("ce_specversion", b"1.0"),
                ("ce_id", b"bad-1"),
                ("ce_type", b"hub.order.placed.v1"),
                ("ce_source", b"test"),
            ],
        )
        await producer.send_and_wait(
            topics.ORDERS,
            b"{}",
            headers=[
                ("ce_specversion", b"1.0"),
                ("ce_id", b"bad-2"),
                ("ce_type", b"hub.order.placed.v9"),
                ("ce_source", b"test"),
            ],
        )
        good = place("dlqshop:1", [("DLQ-A", 2)])
        await rt.publisher.publish([good])
        last_sent = time.monotonic()

        async def reserved() -> bool:
            nonlocal last_sent
            async with rt.sessions() as s:  # type: ignore[misc]
                status = (
                    await s.execute(select(Order.status).where(Order.order_key == "dlqshop:1"))
                ).scalar()
            if status != "reserved" and time.monotonic() - last_sent > 10:
                # Redeliver like a platform would (the id makes it a duplicate): the embedded
                # broker has been seen to hold back the last lone record of a partition.
                await rt.publisher.publish([good])
                last_sent = time.monotonic()
            return status == "reserved"

        await _until(reserved)
        assert rt.totals.accepted == 1  # however often it was delivered, reserved once

        async def dlq_published() -> bool:
            return len(await _read_all(kafka.bootstrap, topics.DLQ)) >= 2

        await _until(dlq_published, 30)
        dead = await _read_all(kafka.bootstrap, topics.DLQ)
        by_id = {dict(r.headers)["ce_id"]: r for r in dead}
        bad1 = by_id[b"bad-1"]
        assert bad1.value == b"\x00not json at all"
        h = dict(bad1.headers)
        assert b"invalid hub.order.placed.v1 body" in h["dlq_error"]
        assert h["dlq_topic"] == topics.ORDERS.encode()
        assert int(h["dlq_offset"]) >= 0
        assert int(h["dlq_timestamp"]) > 0  # the original record's time, part of its identity
        assert b"schema version" in dict(by_id[b"bad-2"].headers)["dlq_error"]
    finally:
        await producer.stop()
        await rt.stop()


def test_stock_show_json_reports_on_hand_reserved_and_channels(tmp_path, monkeypatch):
    """`hub stock show SKU --json` on a store the core wrote."""
    from hub.cli.main import app
    from hub.core.batch import CoreProcessor, rules_from_config
    from hub.store.db import make_engine, session_factory
    from hub.store.migrate import upgrade
    from tests.builders import records

    url = f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"
    cfg = tmp_path / "hub.toml"
    cfg.write_text(
        "[channels.online]\nshare = 1.0\n\n[channels.wholesale]\nshare = 0.5\nbuffer = 2\n"
    )

    async def seed() -> None:
        engine = make_engine(url)
        await upgrade(engine)
        p = CoreProcessor(session_factory(engine), rules_from_config(HubConfig.load(cfg).channels))
        await p.process(records(counted("A-1", 50), place("acme:1", [("A-1", 12)])))
        await engine.dispose()

    asyncio.run(seed())
    monkeypatch.setenv("HUB_DATABASE_URL", url)
    monkeypatch.setenv("HUB_CONFIG", str(cfg))
    result = CliRunner().invoke(app, ["stock", "show", "A-1", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["sku"], data["on_hand"], data["reserved"], data["inbound"]) == ("A-1", 50, 12, 0)
    assert data["locations"][0]["location"] == "main"
    assert data["channels"] == {"online": {"available": 38}, "wholesale": {"available": 17}}
    missing = CliRunner().invoke(app, ["stock", "show", "NOPE", "--json"])
    assert missing.exit_code == 1
