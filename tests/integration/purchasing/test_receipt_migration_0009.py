"""Migration 0009 keys a PO's receipt records by location too. A record made before it takes the
location the stock journal has the receipt at, which need not be its PO line's: a copy of that
receipt still counts once, and a part of the same receipt at another location now fills the
line."""

from __future__ import annotations

import pytest
from sqlalchemy import select

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
    assert line.location == "main"
    await receipt_step(sessions, receipt(number, "TEE", 20, "GRN-1", location="east"))

    try:
        await downgrade(engine, "0008_order_open_changed_at")
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


async def test_a_split_receipt_keeps_one_record_through_a_downgrade(engine, sessions, policy_for):
    """Before 0009 a receipt had one record per SKU: a downgrade keeps one part's, and the
    upgrade puts it at the location the journal received the receipt at first."""
    await policy_for("TEE")
    await seed_and_sell(sessions, "TEE", 20, 12)
    await replenish_step(sessions, {"TEE"})
    (line,) = await lines_of(sessions, "TEE")
    await receipt_step(sessions, receipt(line.po_number, "TEE", 10, "GRN-2", location="main"))
    await receipt_step(sessions, receipt(line.po_number, "TEE", 10, "GRN-2", location="east"))
    try:
        await downgrade(engine, "0008_order_open_changed_at")
    finally:
        await upgrade(engine)
    async with sessions() as s:
        rows = (await s.execute(select(PoReceiptRow))).scalars().all()
    assert [(r.receipt_id, r.location) for r in rows] == [("GRN-2", "main")]
    (line,) = await lines_of(sessions, "TEE")
    assert line.received == 20
