"""Migration 0011 keys a ship notice's record by PO too. Records made before it keep counting
once; a downgrade keeps one record per shipment, its first PO's."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from hub.purchasing.tables import ShipmentRow
from hub.store.migrate import current, downgrade, head, upgrade
from tests.integration.purchasing.harness import asn, handle_step, lines_of, replenish_step
from tests.integration.purchasing.harness import seed_and_sell as sell

pytestmark = pytest.mark.integration


async def _po(sessions, policy_for, sku: str) -> str:
    await policy_for(sku)
    await sell(sessions, sku, 20, 12, tag=sku)
    await replenish_step(sessions, {sku})
    (line,) = await lines_of(sessions, sku)
    return line.po_number


async def _records(sessions) -> list[tuple[str, str]]:
    async with sessions() as s:
        rows = (await s.execute(select(ShipmentRow))).scalars().all()
    return sorted((r.shipment_id, r.po_number) for r in rows)


async def test_ship_notices_keep_counting_once_through_a_downgrade_and_upgrade(
    engine, sessions, policy_for
):
    tee, mug = await _po(sessions, policy_for, "TEE"), await _po(sessions, policy_for, "MUG")
    await handle_step(sessions, asn(tee, "TEE", 30, sid="ASN-1"))
    await handle_step(sessions, asn(mug, "MUG", 12, sid="ASN-1"))
    await handle_step(sessions, asn(tee, "TEE", 6, sid="ASN-2"))
    assert await _records(sessions) == sorted([("ASN-1", tee), ("ASN-1", mug), ("ASN-2", tee)])
    try:
        await downgrade(engine, "0010_voucher_cause_ref")
        async with sessions() as s:  # the old table, read without the model's new key
            rows = (await s.execute(select(ShipmentRow.shipment_id, ShipmentRow.po_number))).all()
        assert sorted(rows) == sorted([("ASN-1", min(tee, mug)), ("ASN-2", tee)])
    finally:
        await upgrade(engine)  # back to head: the PostgreSQL database is shared by later tests
    assert await current(engine) == head()
    assert await _records(sessions) == sorted([("ASN-1", min(tee, mug)), ("ASN-2", tee)])
    await handle_step(sessions, asn(tee, "TEE", 6, sid="ASN-2"))  # a copy: counts once
    (line,) = await lines_of(sessions, "TEE")
    assert line.shipped == 36
