"""Migration 0013 adds when a PO's last applied acknowledgement was written; a downgrade and
upgrade keep every PO and its answer, the time forgotten, so the next answer applies."""

from __future__ import annotations

import pytest

from hub.core.batch import CoreProcessor
from hub.store.migrate import current, downgrade, head, upgrade
from schemas.purchasing import LineAckStatus
from tests.builders import records
from tests.integration.purchasing.harness import RULES, ack, lines_of, po, seed_and_sell, stock_of

pytestmark = pytest.mark.integration


async def test_acknowledged_pos_keep_through_a_downgrade_and_upgrade(engine, sessions, policy_for):
    await policy_for("TEE")
    await seed_and_sell(sessions, "TEE", 20, 12)
    (line,) = await lines_of(sessions, "TEE")
    await CoreProcessor(sessions, RULES).process(
        records(ack(line.po_number, "TEE", 30, LineAckStatus.CHANGED))
    )
    assert (await po(sessions, line.po_number)).acknowledged_at is not None
    try:
        await downgrade(engine, "0012_invoice_accepted_by")
    finally:
        await upgrade(engine)  # back to head: the PostgreSQL database is shared by later tests
    assert await current(engine) == head()
    row = await po(sessions, line.po_number)
    assert (row.status, row.acknowledgement_id, row.acknowledged_at) == (
        "acknowledged",
        f"ACK-{line.po_number}",
        None,
    )
    assert (await stock_of(sessions, "TEE")).inbound == 30
