"""The purchasing migration round-trips on SQLite and PostgreSQL and keeps the PO counter."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from hub.store.migrate import current, downgrade, upgrade

pytestmark = pytest.mark.integration
TABLES = {
    "suppliers",
    "replenishment_policies",
    "purchase_orders",
    "purchase_order_lines",
    "po_shipments",
    "po_receipts",
    "supplier_invoices",
    "po_sequence",
}


async def _tables(engine) -> set[str]:
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))


async def test_purchasing_migration_downgrades_and_upgrades_again(engine, sessions, policy_for):
    assert await _tables(engine) >= TABLES

    await downgrade(engine, "0002_finance")
    assert await current(engine) == "0002_finance"
    assert not TABLES & await _tables(engine)
    await upgrade(engine)  # back to head: the PostgreSQL database is shared by later tests
    assert await current(engine) != "0002_finance"
    assert await _tables(engine) >= TABLES
    await policy_for("TEE")  # the tables take rows again
