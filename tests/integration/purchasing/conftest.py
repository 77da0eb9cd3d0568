"""Purchasing store tests: the tables must be on the shared metadata before any database is
cleared, and every test starts with one supplier and a policy for its SKU."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import hub.purchasing.tables  # noqa: F401  (registers the tables for the cleanup)
from hub.purchasing import service


@pytest.fixture
def policy_for(sessions: async_sessionmaker[AsyncSession]):
    """`await policy_for(sku, mode=...)`: reorder at 10, up to 40, packs of 6, 8.50 a unit."""

    async def make(sku: str, *, mode: str = "auto") -> None:
        async with sessions() as s, s.begin():
            await service.set_supplier(s, "acme-supply", mode=mode)
            await service.set_policy(
                s,
                sku,
                supplier="acme-supply",
                reorder_point=10,
                order_up_to=40,
                pack_size=6,
                lead_time_days=5,
                unit_price=Decimal("8.50"),
            )

    return make
