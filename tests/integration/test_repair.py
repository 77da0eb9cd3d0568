"""`hub stock repair` recomputes stored totals from reservations and the journal."""

from __future__ import annotations

from sqlalchemy import select, update

from hub.core.batch import CoreProcessor
from hub.domain.allocation import Rule
from hub.queries import invariant_problems
from hub.repair import repair_stock
from hub.store.models import AuditEntry, Stock
from tests.builders import counted, place, records


async def test_repair_finds_and_fixes_totals_edited_behind_the_hubs_back(sessions):
    await CoreProcessor(sessions, {"online": Rule()}).process(
        records(counted("A", 10), place("s:1", [("A", 3)]))
    )
    async with sessions() as s, s.begin():
        await s.execute(update(Stock).values(on_hand=7, reserved=1))  # a manual edit
    async with sessions() as s, s.begin():
        found = await repair_stock(s, fix=False)
    assert {(f.field, f.stored, f.recomputed) for f in found} == {
        ("on_hand", 7, 10),
        ("reserved", 1, 3),
    }
    async with sessions() as s, s.begin():
        await repair_stock(s, fix=True, actor="ops@example")
    async with sessions() as s:
        row = (await s.execute(select(Stock))).scalar_one()
        assert (row.on_hand, row.reserved) == (10, 3)
        assert await invariant_problems(s) == []
        audit = (await s.execute(select(AuditEntry))).scalar_one()
        assert (audit.actor, audit.action) == ("ops@example", "stock.repair")
    async with sessions() as s, s.begin():
        assert await repair_stock(s, fix=False) == []
