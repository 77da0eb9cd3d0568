"""Migration 0018 indexes the journal's receipts by receipt line, on both databases, and gives
receipts journaled before it their PO where one PO alone took the line."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import inspect, select

from hub.purchasing.tables import PoReceiptRow
from hub.store.migrate import current, downgrade, head, upgrade
from hub.store.models import Movement

pytestmark = pytest.mark.integration
AT = datetime(2026, 12, 1, tzinfo=UTC)


async def _indexes(engine) -> set[str]:
    async with engine.connect() as conn:
        found = await conn.run_sync(lambda c: inspect(c).get_indexes("movements"))
    return {i["name"] for i in found}


async def test_the_receipt_index_comes_and_goes_and_old_receipts_get_their_po(engine, sessions):
    async with sessions() as s, s.begin():
        # GRN-4's line was counted twice (a copy, before the check): which PO it was is not sure.
        lines = [("GRN-1", "A"), ("GRN-2", "A"), ("GRN-3", "B"), ("GRN-4", "A"), ("GRN-4", "A")]
        for i, (ref, sku) in enumerate(lines):
            s.add(
                Movement(
                    sku=sku,
                    location="main",
                    delta=5,
                    kind="receipt",
                    reason="",
                    ref=ref,
                    cause=f"m-{ref}-{i}",
                    at=AT,
                )
            )
        # GRN-1's and GRN-4's lines went to one PO each; GRN-2's to two POs; GRN-3 to none.
        pos = [("PO-1", "GRN-1"), ("PO-2", "GRN-2"), ("PO-3", "GRN-2"), ("PO-4", "GRN-4")]
        for po, ref in pos:
            s.add(
                PoReceiptRow(
                    po_number=po,
                    receipt_id=ref,
                    sku="A",
                    location="main",
                    quantity=5,
                    applied=[],
                    received_at=AT,
                )
            )
    assert "ix_movements_receipt" in await _indexes(engine)
    try:
        await downgrade(engine, "0017_dead_letter_time")
        assert "ix_movements_receipt" not in await _indexes(engine)
    finally:
        await upgrade(engine)  # back to head: the PostgreSQL database is shared by later tests
    assert await current(engine) == head()
    assert "ix_movements_receipt" in await _indexes(engine)
    async with sessions() as s:
        rows = await s.execute(select(Movement.ref, Movement.reason).order_by(Movement.ref))
    assert rows.all() == [
        ("GRN-1", "PO-1"),
        ("GRN-2", ""),
        ("GRN-3", ""),
        ("GRN-4", ""),
        ("GRN-4", ""),
    ]
