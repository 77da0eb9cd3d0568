"""A message that could not be processed is listed by `hub dlq list`, and after the fix
`hub dlq replay` sends it back and it is processed exactly once."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from hub.app import Runtime
from hub.bus import BrokerUnavailable
from hub.cli.main import app
from hub.config import HubConfig, Settings
from hub.core.batch import CoreProcessor
from hub.store.models import AuditEntry, Order
from tests.builders import counted, place


async def _until(predicate, limit: float = 60.0) -> None:
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if await predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not reached in time")


async def test_dead_letter_is_listed_then_replayed_once_after_the_fix(kafka, tmp_path, monkeypatch):
    url = f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"
    s = Settings(
        kafka_bootstrap=kafka.bootstrap,
        database_url=url,
        var_dir=tmp_path / "var",
        core_group=f"core-{uuid.uuid4().hex[:6]}",
        consumer_session_timeout_ms=6000,
    )
    s.__dict__["hub"] = HubConfig()
    poison = place("acme:7", [("A", 2)])

    # A bug makes this one order fail every time it is applied (the "poison").
    real_dispatch = CoreProcessor._dispatch

    def buggy(book, env, costs=None):
        if env.id == poison.id:
            raise RuntimeError("bug: cannot apply this order")
        return real_dispatch(book, env, costs)

    monkeypatch.setattr(CoreProcessor, "_dispatch", staticmethod(buggy))
    rt = Runtime(s)
    await rt.start({"core", "relay"})
    try:
        assert rt.publisher is not None and rt.sessions is not None
        await rt.publisher.publish([counted("A", 5)])
        await _until(lambda: _applied(rt, 1))
        await rt.publisher.publish([poison, place("acme:8", [("A", 1)])])
        await _until(lambda: _status(rt, "acme:8", "reserved"))
        await _until(lambda: _dead(rt))

        monkeypatch.setenv("HUB_DATABASE_URL", url)
        monkeypatch.setenv("HUB_KAFKA_BOOTSTRAP", kafka.bootstrap)
        listed = await cli(["dlq", "list", "--json"])
        assert listed.exit_code == 0, listed.output
        [letter] = json.loads(listed.stdout)
        assert "bug: cannot apply this order" in letter["error"]
        assert letter["topic"] == "hub.orders.v1"
        assert await _status(rt, "acme:7", None)

        # The fix is deployed; the operator replays the dead letter.
        monkeypatch.setattr(CoreProcessor, "_dispatch", staticmethod(real_dispatch))
        replayed = await cli(
            ["dlq", "replay", str(letter["id"]), "--json", "--actor", "ops@example"]
        )
        assert replayed.exit_code == 0, replayed.output
        assert json.loads(replayed.stdout) == {"replayed": [letter["id"]]}
        await _until(lambda: _status(rt, "acme:7", "reserved"))

        # Replaying again sends nothing; the order stays reserved once.
        again = await cli(["dlq", "replay", "--all", "--json"])
        assert json.loads(again.stdout) == {"replayed": []}
        assert json.loads((await cli(["dlq", "list", "--json"])).stdout) == []
        async with rt.sessions() as session:
            audit = (
                await session.execute(select(AuditEntry).where(AuditEntry.action == "dlq.replay"))
            ).scalar_one()
            assert audit.actor == "ops@example"
        view = await cli(["stock", "show", "A", "--json"])
        assert json.loads(view.stdout)["reserved"] == 3  # 2 for acme:7 once, 1 for acme:8
    finally:
        await rt.stop()


async def cli(args: list[str]):
    """The CLI runs its own event loop: run it in a thread beside the test's."""
    return await asyncio.to_thread(CliRunner().invoke, app, args)


async def _applied(rt: Runtime, n: int) -> bool:
    return rt.totals.applied >= n


async def _status(rt: Runtime, key: str, status: str | None) -> bool:
    assert rt.sessions is not None
    async with rt.sessions() as s:
        found = (await s.execute(select(Order.status).where(Order.order_key == key))).scalar()
    return found == status


async def _dead(rt: Runtime) -> bool:
    return rt.totals.dead_lettered >= 1


async def test_a_push_refused_is_listed_and_a_stale_level_is_not_pushed_again(
    kafka, tmp_path, monkeypatch
):
    """The push worker's dead letters reach `hub dlq list` through the relay role's recorder.
    Replayed after a newer level was published, a level is not sent (a push worker that
    restarted would push its stale count); the newest one is."""
    from hub.pushworker import PushWorker
    from hub.store.models import ChannelLevel
    from schemas.levels import StockLevelChanged

    url = f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"
    s = Settings(kafka_bootstrap=kafka.bootstrap, database_url=url, var_dir=tmp_path / "var")
    s.__dict__["hub"] = HubConfig()
    rt = Runtime(s)
    await rt.start({"relay"})
    try:
        assert rt.publisher is not None and rt.sessions is not None
        worker = PushWorker(s, rt.publisher)

        def level(version: int, available: int) -> StockLevelChanged:
            return StockLevelChanged(
                sku="A",
                channel="online",
                available=available,
                on_hand=available,
                reserved=0,
                version=version,
                changed_at=datetime(2026, 12, 6, tzinfo=UTC),
            )

        from connectors.pushout import PushFailure

        for version, available in ((3, 7), (4, 5)):
            failure = PushFailure("acme", level(version, available), "no variant with this SKU")
            await worker._failed(failure)

        monkeypatch.setenv("HUB_DATABASE_URL", url)
        monkeypatch.setenv("HUB_KAFKA_BOOTSTRAP", kafka.bootstrap)

        async def listed() -> list[dict]:
            return json.loads((await cli(["dlq", "list", "--json"])).stdout)

        async def both() -> bool:
            return len(await listed()) == 2

        await _until(both)
        old, new = await listed()
        assert (old["consumer"], old["topic"]) == ("hub-connectors", "hub.stock-levels.v1")
        assert "no variant with this SKU" in old["error"]
        async with rt.sessions() as session, session.begin():
            session.add(ChannelLevel(sku="A", channel="online", available=5, version=4))
        replayed = await cli(["dlq", "replay", "--all", "--json"])
        assert replayed.exit_code == 0, replayed.output
        assert json.loads(replayed.stdout) == {
            "replayed": [new["id"]],
            "superseded": {str(old["id"]): 4},
        }
        assert await listed() == []
    finally:
        await rt.stop()


async def test_a_large_backlog_is_replayed_in_parts_and_a_failure_keeps_the_parts_before(
    sessions, monkeypatch
):
    """An outage's thousands of dead letters go back a part at a time, each part sent, marked
    and committed before the next: a part that fails leaves the parts before it replayed, and
    the retry sends only the rest, in order."""
    from hub import deadletters
    from hub.store.models import DeadLetter

    monkeypatch.setattr(deadletters, "PART_LETTERS", 40)
    monkeypatch.setattr(deadletters, "PART_BYTES", 3000)
    async with sessions() as session, session.begin():
        for n in range(120):
            size = 5000 if n == 50 else 10  # one letter larger than a part's bytes goes alone
            session.add(
                DeadLetter(
                    consumer="hub-core",
                    topic="hub.orders.v1",
                    partition=0,
                    offset=n,
                    key=f"o{n}".encode(),
                    headers=[["n", str(n)]],
                    payload=b"x" * size,
                    error="bug",
                )
            )

    class Broker:
        def __init__(self, fail_at: int | None) -> None:
            self.fail_at, self.sends, self.stored = fail_at, 0, []

        async def send_many(self, items) -> None:
            self.sends += 1
            if self.sends == self.fail_at:
                raise BrokerUnavailable("broker did not acknowledge")
            self.stored.extend(int(dict(h)["n"]) for _, _, _, h in items)

    broker = Broker(fail_at=3)
    with pytest.raises(deadletters.PartlyReplayed) as failed:
        await deadletters.replay_parts(sessions, None, broker, "ops")
    # Parts: 0-39 (40 letters), 40-49 (then 50's 5,000 bytes do not fit), 50 alone, 51-90 ...
    assert broker.stored == list(range(50))
    assert len(failed.value.done.sent) == 50 and failed.value.remaining == 70
    async with sessions() as session:
        left = (
            await session.execute(select(DeadLetter.offset).where(DeadLetter.replayed_at.is_(None)))
        ).scalars()
        assert sorted(left) == list(range(50, 120))

    retry = Broker(fail_at=None)
    parts: list[int] = []
    done = await deadletters.replay_parts(sessions, None, retry, "ops", on_part=parts.append)
    assert retry.stored == list(range(50, 120))
    assert parts == [1, 40, 29] and len(done.sent) == 70
    async with sessions() as session:
        audits = (
            await session.execute(select(AuditEntry).where(AuditEntry.action == "dlq.replay"))
        ).scalars()
        assert len(list(audits)) == 2 + 3  # one a part
