"""Migration 0008 gives orders the time of their last cancellation or reopening: orders from
before it keep their rows, with no such time, and a cancelled one among them can still be
reopened by the next word on it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.core.batch import CoreProcessor
from hub.domain.allocation import Rule
from hub.store.db import session_factory
from hub.store.migrate import current, downgrade, head, upgrade
from hub.store.models import Order, Stock
from tests.builders import T0, counted, records, reopen

pytestmark = pytest.mark.integration


async def test_orders_cancelled_before_the_upgrade_can_be_reopened(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)
    await CoreProcessor(sessions, {"online": Rule()}).process(records(counted("A", 5)))
    await downgrade(engine, "0007_outbox_ids_not_reused")
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO orders (order_key, account, channel, status, placed, cancelled)"
                    " VALUES ('s:old', 's', 'online', 'cancelled', :t, :t)"
                ),
                {"t": True},
            )
            await conn.execute(
                text(
                    "INSERT INTO reservations (order_key, sku, location, quantity, open, shipped,"
                    " shipped_unreserved, returned, released, seq)"
                    " VALUES ('s:old', 'A', 'main', 2, 0, 0, 0, 0, 2, 1)"
                )
            )
    finally:
        await upgrade(engine)  # back to head: the PostgreSQL database is shared by later tests
    assert await current(engine) == head()
    async with sessions() as s:
        order = (await s.execute(select(Order))).scalar_one()
        assert (order.cancelled, order.open_changed_at) == (True, None)

    await CoreProcessor(sessions, {"online": Rule()}).process(
        records(reopen("s:old", T0 + timedelta(days=1)))
    )
    async with sessions() as s:
        stock = (await s.execute(select(Stock))).scalar_one()
        order = (await s.execute(select(Order))).scalar_one()
    assert (stock.on_hand, stock.reserved) == (5, 2)
    assert (order.status, order.cancelled) == ("reserved", False)
    assert order.open_changed_at is not None
    assert order.open_changed_at.replace(tzinfo=None) == (T0 + timedelta(days=1)).replace(
        tzinfo=None
    )
