"""Migration 0019 adds the units refunded before they shipped to each reservation line; lines
from before it count none (their released units do not tell a refund from a cancellation)."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from hub.store.migrate import current, downgrade, head, upgrade
from hub.store.models import Reservation

pytestmark = pytest.mark.integration


async def _columns(engine) -> set[str]:
    async with engine.connect() as conn:
        found = await conn.run_sync(lambda c: inspect(c).get_columns("reservations"))
    return {c["name"] for c in found}


async def test_lines_from_before_count_no_refunded_units(engine, sessions):
    async with sessions() as s, s.begin():
        s.add(Reservation(order_key="s:1", sku="A", location="main", quantity=3, released=1))
        s.add(Reservation(order_key="s:2", sku="A", location="main", quantity=2, refunded=2))
    try:
        await downgrade(engine, "0018_movements_receipt_index")
        assert "refunded" not in await _columns(engine)
    finally:
        await upgrade(engine)  # back to head: the PostgreSQL database is shared by later tests
    assert await current(engine) == head()
    async with sessions() as s:
        first = await s.get(Reservation, ("s:1", "A", "main"))
        second = await s.get(Reservation, ("s:2", "A", "main"))
    assert first is not None and (first.released, first.refunded) == (1, 0)
    assert second is not None and (second.quantity, second.refunded) == (2, 0)
