"""Migration 0014 keeps the price variance a buyer accepted apart from the one each match
finds; an invoice accepted before it takes its stored variance."""

from __future__ import annotations

from decimal import Decimal

import pytest

from hub.purchasing.tables import SupplierInvoiceRow
from hub.store.migrate import current, downgrade, head, upgrade
from tests.integration.purchasing.harness import handle_step, invoice, lines_of, seed_and_sell
from tests.integration.purchasing.harness import replenish_step as replenish

pytestmark = pytest.mark.integration


async def test_an_invoice_accepted_before_takes_its_stored_variance(engine, sessions, policy_for):
    await policy_for("TEE")
    await seed_and_sell(sessions, "TEE", 20, 12)
    await replenish(sessions, {"TEE"})
    (line,) = await lines_of(sessions, "TEE")
    await handle_step(sessions, invoice(line.po_number, "TEE", 36, "9.50", "INV-1"))
    async with sessions() as s, s.begin():
        inv = await s.get(SupplierInvoiceRow, ("acme-supply", "INV-1"))
        assert inv is not None and inv.price_variance == Decimal("36")
        inv.accepted_by = "buyer"
    try:
        await downgrade(engine, "0013_po_acknowledged_at")
    finally:
        await upgrade(engine)  # back to head: the PostgreSQL database is shared by later tests
    assert await current(engine) == head()
    async with sessions() as s:
        inv = await s.get(SupplierInvoiceRow, ("acme-supply", "INV-1"))
    assert inv is not None and (inv.accepted_by, inv.accepted_variance) == ("buyer", Decimal("36"))
