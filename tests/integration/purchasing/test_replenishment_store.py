"""Stock driven below the reorder point by sales issues exactly one purchase order: not before,
not twice when the sales are redelivered, not twice when two transactions race on the SKU."""

from __future__ import annotations

import asyncio
from datetime import date

import pytest

from hub.core.batch import CoreProcessor
from hub.purchasing import policy, service
from hub.purchasing.tables import ReplenishmentPolicy
from tests.builders import records
from tests.integration.purchasing.harness import (
    RULES,
    issued,
    lines_of,
    replenish_step,
    seed_and_sell,
    stock_of,
)

pytestmark = pytest.mark.integration


async def test_sales_to_the_reorder_point_issue_one_po_line_and_count_it_inbound(
    sessions, policy_for
):
    await policy_for("TEE")
    await seed_and_sell(sessions, "TEE", 20, 9, tag="a")
    await replenish_step(sessions, {"TEE"})
    assert await lines_of(sessions, "TEE") == []  # projected 11 > 10
    await seed_and_sell(sessions, "TEE", 20, 12, tag="a")  # 3 more sales: projected 8
    await replenish_step(sessions, {"TEE"})
    (msg,) = await issued(sessions)
    assert msg.supplier == "acme-supply"
    # up to 40 from 8 is 32, in packs of 6: 36
    assert [(ln.sku, ln.quantity, str(ln.unit_price)) for ln in msg.lines] == [
        ("TEE", 36, "8.500000")
    ]
    assert (await stock_of(sessions, "TEE")).inbound == 36
    (line,) = await lines_of(sessions, "TEE")
    assert (line.po_number, line.open, line.ordered) == (msg.po_number, True, 36)


async def test_redelivered_sales_and_repeated_checks_issue_no_second_po(sessions, policy_for):
    await policy_for("TEE")
    sales = await seed_and_sell(sessions, "TEE", 20, 12)
    await replenish_step(sessions, {"TEE"})
    # The same messages again (the inbox drops them), more sales, and the check again and again.
    await CoreProcessor(sessions, RULES).process(records(*sales))
    await seed_and_sell(sessions, "TEE", 20, 15)
    again = [await replenish_step(sessions, {"TEE"}) for _ in range(3)]
    assert again == [[], [], []]
    assert len(await lines_of(sessions, "TEE")) == 1
    stock = await stock_of(sessions, "TEE")
    assert (stock.on_hand, stock.inbound) == (5, 36)
    assert len(await issued(sessions)) == 1


async def test_two_transactions_racing_on_the_sku_issue_one_po(sessions, policy_for):
    await seed_and_sell(sessions, "TEE", 20, 12)
    await policy_for("TEE")  # after the sales: only the racing transactions can order
    results = await asyncio.gather(
        *(replenish_step(sessions, {"TEE"}, pause=0.05) for _ in range(4))
    )
    assert sorted(len(r) for r in results) == [0, 0, 0, 1]
    assert len(await lines_of(sessions, "TEE")) == 1
    assert (await stock_of(sessions, "TEE")).inbound == 36
    assert len(await issued(sessions)) == 1


async def test_po_numbers_never_repeat_across_skus(sessions, policy_for):
    for sku in ("A", "B", "C"):
        await seed_and_sell(sessions, sku, 12, 5, tag=sku)
        await policy_for(sku)
    results = await asyncio.gather(*(replenish_step(sessions, {sku}) for sku in ("A", "B", "C")))
    numbers = [r[0].data.po_number for r in results]  # type: ignore[attr-defined]
    assert len(set(numbers)) == 3
    assert all(n.startswith("PO-2026-") for n in numbers)


async def test_an_auto_reorder_point_comes_from_the_sales_journal(sessions):
    # Sales of earlier days are in the journal before the policy exists (the window ends
    # yesterday: a day's own sales count from the next day on, when the point is recomputed).
    await seed_and_sell(sessions, "TEE", 20, 12)  # 12 sold on 2026-11-01, 8 left
    async with sessions() as s, s.begin():
        await service.set_supplier(s, "acme-supply")
        await service.set_policy(
            s, "TEE", supplier="acme-supply", auto_reorder=True, order_up_to=40, lead_time_days=5
        )
    await replenish_step(sessions, {"TEE"})  # on 2026-11-22: window from 2026-10-25
    series = policy.daily_demand([(date(2026, 11, 1), 12)], start=date(2026, 10, 25), days=28)
    expected = policy.reorder_point_from_demand(series, lead_time_days=5, service_level=0.95)
    assert expected.reorder_point > 8  # a fixed point below 8 would not have ordered
    async with sessions() as s:
        stored = await s.get(ReplenishmentPolicy, ("TEE", "main"))
    assert stored is not None and stored.auto_reorder_point == expected.reorder_point
    (line,) = await lines_of(sessions, "TEE")
    assert line.ordered == 32
