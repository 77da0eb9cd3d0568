"""Migration 0012 adds who accepted a supplier invoice; a downgrade and upgrade keep every
invoice, the acceptance forgotten."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from hub.purchasing.tables import SupplierInvoiceRow
from hub.store.migrate import current, downgrade, head, upgrade
from tests.integration.purchasing.harness import handle_step, invoice, lines_of, seed_and_sell
from tests.integration.purchasing.harness import replenish_step as replenish

pytestmark = pytest.mark.integration


async def test_invoices_keep_through_a_downgrade_and_upgrade(engine, sessions, policy_for):
    await policy_for("TEE")
    await seed_and_sell(sessions, "TEE", 20, 12)
    await replenish(sessions, {"TEE"})
    (line,) = await lines_of(sessions, "TEE")
    await handle_step(sessions, invoice(line.po_number, "TEE", 36, "9.50", "INV-1"))
    async with sessions() as s, s.begin():
        inv = await s.get(SupplierInvoiceRow, ("acme-supply", "INV-1"))
        assert inv is not None
        inv.accepted_by = "buyer"
    try:
        await downgrade(engine, "0011_shipment_per_po")
        async with sessions() as s:
            got = (await s.execute(select(SupplierInvoiceRow.invoice_number))).scalars().all()
        assert got == ["INV-1"]
    finally:
        await upgrade(engine)  # back to head: the PostgreSQL database is shared by later tests
    assert await current(engine) == head()
    async with sessions() as s:
        inv = await s.get(SupplierInvoiceRow, ("acme-supply", "INV-1"))
    assert inv is not None and (inv.status, inv.accepted_by) == ("held", None)
