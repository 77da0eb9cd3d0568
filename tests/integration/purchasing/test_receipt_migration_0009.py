"""Migration 0009 keys a PO's receipt records by location too. A record made before it takes the
location of its PO line: a copy of that receipt still counts once, and a part of the same
receipt at another location now fills the line."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from hub.purchasing.tables import PoReceiptRow
from hub.store.migrate import current, downgrade, head, upgrade
from tests.integration.purchasing.harness import (
    lines_of,
    receipt,
    receipt_step,
    replenish_step,
    seed_and_sell,
)

pytestmark = pytest.mark.integration


async def test_receipts_recorded_before_the_upgrade_keep_counting_once(
    engine, sessions, policy_for
):
    await policy_for("TEE")
    await seed_and_sell(sessions, "TEE", 20, 12)
    await replenish_step(sessions, {"TEE"})
    (line,) = await lines_of(sessions, "TEE")
    assert line.ordered == 36
    number = line.po_number
    await receipt_step(sessions, receipt(number, "TEE", 20, "GRN-1", location="main"))

    await downgrade(engine, "0008_order_open_changed_at")
    try:
        async with engine.begin() as conn:  # a line expected at east, received there
            await conn.execute(text("UPDATE purchase_order_lines SET location = 'east'"))
    finally:
        await upgrade(engine)  # back to head: the PostgreSQL database is shared by later tests
    assert await current(engine) == head()
    async with sessions() as s:
        (row,) = (await s.execute(select(PoReceiptRow))).scalars().all()
    assert (row.receipt_id, row.location, row.quantity) == ("GRN-1", "east", 20)

    await receipt_step(sessions, receipt(number, "TEE", 20, "GRN-1", location="east"))
    (line,) = await lines_of(sessions, "TEE")
    assert line.received == 20  # the same part again: a copy
    await receipt_step(sessions, receipt(number, "TEE", 16, "GRN-1", location="main"))
    (line,) = await lines_of(sessions, "TEE")
    assert (line.received, line.open) == (36, False)
