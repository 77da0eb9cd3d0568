"""Migration 0008 gives orders the time of their last cancellation or reopening, and
reservation lines the units a cancellation released. An order cancelled before it takes the
time the hub last changed it, so a late copy of older word does not reopen it; the next word
on it does, and holds again what the cancellation released."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.core.batch import CoreProcessor
from hub.domain.allocation import Rule
from hub.store.db import session_factory
from hub.store.migrate import current, downgrade, head, upgrade
from hub.store.models import Order, Reservation, Stock
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
        assert order.cancelled and order.open_changed_at is not None
        line = (await s.execute(select(Reservation))).scalar_one()
        assert line.cancelled == 2

    core = CoreProcessor(sessions, {"online": Rule()})
    await core.process(records(reopen("s:old", T0)))  # older than the upgrade: a late copy
    async with sessions() as s:
        assert (await s.execute(select(Stock.reserved))).scalar_one() == 0
    later = datetime.now(UTC) + timedelta(minutes=1)
    await core.process(records(reopen("s:old", later)))
    async with sessions() as s:
        stock = (await s.execute(select(Stock))).scalar_one()
        order = (await s.execute(select(Order))).scalar_one()
    assert (stock.on_hand, stock.reserved) == (5, 2)
    assert (order.status, order.cancelled) == ("reserved", False)
