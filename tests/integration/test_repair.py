"""`hub stock repair` recomputes stored totals from reservations and the journal, and with
`--fix` publishes the channels' levels that the corrected totals change."""

from __future__ import annotations

import asyncio
import json

from sqlalchemy import select, update
from typer.testing import CliRunner

from hub.cli.main import app
from hub.core.batch import CoreProcessor
from hub.domain.allocation import Rule
from hub.queries import invariant_problems
from hub.repair import repair_stock
from hub.store.models import AuditEntry, ChannelLevel, OutboxRow, Stock
from schemas import topics
from tests.builders import counted, place, records

RULES = {"online": Rule()}


async def _levels(sessions) -> list[tuple[int, int]]:
    """(available, version) of every level in the outbox, oldest first."""
    async with sessions() as s:
        rows = await s.execute(
            select(OutboxRow.payload)
            .where(OutboxRow.topic == topics.STOCK_LEVELS)
            .order_by(OutboxRow.id)
        )
        return [(m["available"], m["version"]) for m in map(json.loads, rows.scalars())]


async def test_repair_finds_and_fixes_totals_edited_behind_the_hubs_back(sessions):
    core = CoreProcessor(sessions, RULES)
    await core.process(records(counted("A", 10), place("s:1", [("A", 3)])))
    async with sessions() as s, s.begin():
        await s.execute(update(Stock).values(on_hand=7, reserved=1))  # a manual edit
    # The next order is decided, and its level published, from the edited totals: 7 − 2.
    await core.process(records(place("s:2", [("A", 1)])))
    assert await _levels(sessions) == [(7, 1), (5, 2)]
    async with sessions() as s, s.begin():
        found = await repair_stock(s, fix=False, rules=RULES)
    assert {(f.field, f.stored, f.recomputed) for f in found.fixes} == {
        ("on_hand", 7, 10),
        ("reserved", 2, 4),
    }
    assert found.levels_published == 0 and len(await _levels(sessions)) == 2

    async with sessions() as s, s.begin():
        fixed = await repair_stock(s, fix=True, actor="ops@example", rules=RULES)
    assert fixed.levels_published == 1
    assert await _levels(sessions) == [(7, 1), (5, 2), (6, 3)]  # 10 − 4: what shops may sell
    async with sessions() as s:
        row = (await s.execute(select(Stock))).scalar_one()
        assert (row.on_hand, row.reserved) == (10, 4)
        level = (await s.execute(select(ChannelLevel))).scalar_one()
        assert (level.available, level.version) == (6, 3)
        assert await invariant_problems(s) == []
        audit = (await s.execute(select(AuditEntry))).scalar_one()
        assert (audit.actor, audit.action) == ("ops@example", "stock.repair")
    async with sessions() as s, s.begin():
        assert await repair_stock(s, fix=True, rules=RULES) == type(found)([], 0)

    # The core goes on from the repaired level's version.
    await core.process(records(place("s:3", [("A", 2)])))
    assert (await _levels(sessions))[-1] == (4, 4)


async def test_the_cli_repairs_and_says_how_many_levels_it_published(
    sessions, db_url, hub_env, monkeypatch
):
    core = CoreProcessor(sessions, RULES)
    await core.process(records(counted("A", 10)))
    async with sessions() as s, s.begin():
        await s.execute(update(Stock).values(on_hand=8))
    await core.process(records(place("s:1", [("A", 1)])))  # published: 8 − 1
    monkeypatch.setenv("HUB_DATABASE_URL", db_url)
    runner = CliRunner()
    looked = await asyncio.to_thread(runner.invoke, app, ["stock", "repair", "--json"])
    assert looked.exit_code == 1, looked.output
    assert json.loads(looked.stdout)["levels_published"] == 0
    fixed = await asyncio.to_thread(runner.invoke, app, ["stock", "repair", "--fix", "--json"])
    assert fixed.exit_code == 0, fixed.output
    body = json.loads(fixed.stdout)
    assert (body["fixed"], len(body["mismatches"]), body["levels_published"]) == (True, 1, 1)
    assert await _levels(sessions) == [(10, 1), (7, 2), (9, 3)]


async def test_a_row_whose_journal_is_below_its_reservations_is_held_back_and_the_rest_fixed(
    sessions,
):
    """A manual edit raised A to 20 where the journal holds 10, and orders reserved 15 of it.
    Setting A back to 10 would oversell (and the database refuses it): A is left and named, and
    B's edited total is still fixed."""
    core = CoreProcessor(sessions, RULES)
    await core.process(records(counted("A", 10), counted("B", 5)))
    async with sessions() as s, s.begin():
        await s.execute(update(Stock).where(Stock.sku == "A").values(on_hand=20))
        await s.execute(update(Stock).where(Stock.sku == "B").values(on_hand=9))
    await core.process(records(place("s:1", [("A", 15)])))
    async with sessions() as s, s.begin():
        done = await repair_stock(s, fix=True, rules=RULES)
    assert [(f.sku, f.stored, f.recomputed) for f in done.held_back] == [("A", 20, 10)]
    assert [(f.sku, f.field, f.recomputed) for f in done.fixes] == [("B", "on_hand", 5)]
    async with sessions() as s:
        rows = {r.sku: (r.on_hand, r.reserved) for r in (await s.execute(select(Stock))).scalars()}
    assert rows == {"A": (20, 15), "B": (5, 0)}
    # A's reserved counter drifts as well: still found and fixed, its on hand still held back.
    async with sessions() as s, s.begin():
        await s.execute(update(Stock).where(Stock.sku == "A").values(reserved=12))
    async with sessions() as s, s.begin():
        again = await repair_stock(s, fix=True, rules=RULES)
    assert [(f.sku, f.field, f.stored, f.recomputed) for f in again.fixes] == [
        ("A", "reserved", 12, 15)
    ]
    assert [f.sku for f in again.held_back] == ["A"]


async def test_a_held_back_rows_reserved_drift_is_named_when_it_cannot_be_fixed(sessions):
    """Journal 5, stored on hand 10 by a manual edit, 10 reserved on it, and the reserved
    counter drifted to 3: neither can be set without overselling, and both are named."""
    core = CoreProcessor(sessions, RULES)
    await core.process(records(counted("A", 5)))
    async with sessions() as s, s.begin():
        await s.execute(update(Stock).where(Stock.sku == "A").values(on_hand=12))
    await core.process(records(place("s:1", [("A", 11)])))
    async with sessions() as s, s.begin():
        await s.execute(update(Stock).where(Stock.sku == "A").values(on_hand=10, reserved=3))
    async with sessions() as s, s.begin():
        done = await repair_stock(s, fix=True, rules=RULES)
    assert [(f.field, f.stored, f.recomputed) for f in done.held_back] == [
        ("on_hand", 10, 5),
        ("reserved", 3, 11),
    ]
    assert done.fixes == []
