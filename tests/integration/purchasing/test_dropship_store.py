"""Dropship through the core on both databases: a supplier's stock report raises the available-to-
sell of a channel that sells dropship and of no other; orders, however concurrent or redelivered,
never reserve more than reported; a lower report bumps the newest; an older report is ignored."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from hub.core.batch import CoreProcessor
from hub.domain.allocation import Rule, dropship_location
from hub.purchasing import service
from hub.purchasing.tables import DropshipItem
from hub.queries import invariant_problems, stock_view
from hub.store.models import ChannelLevel, Movement, Order, OutboxRow, Stock
from schemas.envelope import Envelope, decode, message_id
from schemas.purchasing import SupplierStockReported
from schemas.reservations import ReservationReleased
from tests.builders import counted, fulfil, place, records, ret

pytestmark = pytest.mark.integration

RULES = {"online": Rule(dropship=True), "store": Rule()}
DS = dropship_location("acme-supply")
T = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)


def report(quantity: int, rid: str, at: datetime = T, sku: str = "VASE") -> Envelope:
    return Envelope(
        id=message_id("test/846", rid),
        source="test/846",
        data=SupplierStockReported(
            supplier="acme-supply", sku=sku, quantity=quantity, reported_at=at, report_id=rid
        ),
    )


async def _mark(sessions, sku: str = "VASE") -> None:
    async with sessions() as s, s.begin():
        await service.set_dropship(s, sku, supplier="acme-supply", supplier_sku=f"AS-{sku}")


async def _levels(sessions, sku: str = "VASE") -> dict[str, int]:
    async with sessions() as s:
        rows = (await s.execute(select(ChannelLevel).where(ChannelLevel.sku == sku))).scalars()
        return {r.channel: r.available for r in rows}


async def _row(sessions, location: str, sku: str = "VASE") -> tuple[int, int]:
    async with sessions() as s:
        row = await s.get(Stock, (sku, location))
        assert row is not None
        return row.on_hand, row.reserved


async def _reserved_orders(sessions) -> set[str]:
    async with sessions() as s:
        q = select(Order.order_key).where(Order.status == "reserved")
        return set((await s.execute(q)).scalars().all())


async def test_a_report_raises_a_dropship_channels_ats_and_not_the_others(sessions):
    await _mark(sessions)
    core = CoreProcessor(sessions, RULES)
    await core.process(records(counted("VASE", 4)))
    assert await _levels(sessions) == {"online": 4, "store": 4}
    await core.process(records(report(30, "846-1")))
    assert await _levels(sessions) == {"online": 34, "store": 4}
    assert await _row(sessions, DS) == (30, 0)
    async with sessions() as s:
        view = await stock_view(s, "VASE", RULES)
        kinds = {m.kind for m in (await s.execute(select(Movement))).scalars()}
        assert await invariant_problems(s) == []
    assert (view["on_hand"], view["dropship"]["on_hand"]) == (4, 30)
    assert view["dropship"]["suppliers"] == {"acme-supply": {"reported": 30, "reserved": 0}}
    assert view["channels"]["online"]["available"] == 34
    assert view["channels"]["store"]["available"] == 4
    assert {loc["location"]: loc["kind"] for loc in view["locations"]} == {
        DS: "dropship",
        "main": "stock",
    }
    assert "supplier_feed" in kinds


async def test_a_report_for_a_sku_not_marked_dropship_changes_nothing(sessions):
    core = CoreProcessor(sessions, RULES)
    await core.process(records(counted("VASE", 4), report(30, "846-1")))
    assert await _levels(sessions) == {"online": 4, "store": 4}
    async with sessions() as s:
        assert await s.get(Stock, ("VASE", DS)) is None


async def test_racing_and_redelivered_orders_never_reserve_more_than_reported(sessions):
    await _mark(sessions)
    a, b = CoreProcessor(sessions, RULES), CoreProcessor(sessions, RULES)
    await a.process(records(counted("VASE", 3), report(9, "846-1")))
    orders = [place(f"shop:{i}", [("VASE", 1 + i % 2)]) for i in range(30)]
    random.Random(3).shuffle(orders)
    batches = [orders[i : i + 5] for i in range(0, 30, 5)]
    await asyncio.gather(
        *(a.process(records(*batch)) for batch in batches[0::2]),
        *(b.process(records(*batch)) for batch in batches[1::2]),
    )
    main, ds = await _row(sessions, "main"), await _row(sessions, DS)
    assert main == (3, 3) and ds[0] == 9 and ds[1] <= 9
    assert main[1] + ds[1] >= 11  # a 2-unit order fails only when fewer than 2 are left
    accepted = await _reserved_orders(sessions)
    # Every message again, through both replicas, plus the report: nothing changes.
    await asyncio.gather(
        a.process(records(*orders, report(9, "846-1"))), b.process(records(*orders))
    )
    assert (await _row(sessions, "main"), await _row(sessions, DS)) == (main, ds)
    assert await _reserved_orders(sessions) == accepted
    assert await _levels(sessions) == {"online": 12 - main[1] - ds[1], "store": 0}
    async with sessions() as s:
        assert await invariant_problems(s) == []


async def test_a_lower_report_bumps_the_newest_and_an_older_one_is_ignored(sessions):
    await _mark(sessions)
    core = CoreProcessor(sessions, RULES)
    await core.process(records(report(6, "846-1")))
    for i in range(3):  # one batch each: three decisions, oldest first
        await core.process(records(place(f"shop:{i}", [("VASE", 2)])))
    assert await _row(sessions, DS) == (6, 6)
    assert await _levels(sessions) == {"online": 0}

    await core.process(records(report(3, "846-2", T + timedelta(hours=2))))
    assert await _row(sessions, DS) == (3, 2)
    assert await _reserved_orders(sessions) == {"shop:0"}
    async with sessions() as s:
        bumped = {o.order_key: o.status for o in (await s.execute(select(Order))).scalars()}
        released = []
        for r in (await s.execute(select(OutboxRow).order_by(OutboxRow.id))).scalars():
            env = decode([(k, v.encode()) for k, v in r.headers], r.payload)
            if isinstance(env.data, ReservationReleased):
                released.append((env.data.order_key, env.data.reason.value))
    assert bumped == {"shop:0": "reserved", "shop:1": "bumped", "shop:2": "bumped"}
    assert released == [("shop:2", "supplier_stock_lost"), ("shop:1", "supplier_stock_lost")]

    # Measured before the last one, delivered after it: ignored.
    await core.process(records(report(50, "846-0", T + timedelta(hours=1))))
    assert await _row(sessions, DS) == (3, 2)
    async with sessions() as s:
        item = await s.get(DropshipItem, ("VASE", "acme-supply"))
        assert item is not None and item.report_id == "846-2" and item.reported_quantity == 3
        assert await invariant_problems(s) == []
    assert await _levels(sessions) == {"online": 1}


async def test_fulfilment_of_a_dropship_line_takes_the_suppliers_units(sessions):
    await _mark(sessions)
    core = CoreProcessor(sessions, RULES)
    await core.process(records(counted("VASE", 1), report(10, "846-1")))
    await core.process(records(place("shop:1", [("VASE", 3)])))
    assert (await _row(sessions, "main"), await _row(sessions, DS)) == ((1, 1), (10, 2))
    await core.process(records(fulfil("shop:1", [("VASE", 3)])))
    assert (await _row(sessions, "main"), await _row(sessions, DS)) == ((0, 0), (8, 0))
    async with sessions() as s:
        assert await invariant_problems(s) == []
        assert (await s.get(Order, "shop:1")).status == "fulfilled"  # type: ignore[union-attr]


async def test_cli_marks_a_sku_and_stock_show_lists_the_suppliers_figures(
    sessions, db_url, hub_env, monkeypatch, tmp_path
):
    from typer.testing import CliRunner

    from hub.cli import po as po_cli
    from hub.cli.main import app as hub_app

    config = tmp_path / "hub.toml"
    config.write_text("[channels.online]\ndropship = true\n\n[channels.store]\n")
    monkeypatch.setenv("HUB_DATABASE_URL", db_url)
    monkeypatch.setenv("HUB_CONFIG", str(config))
    monkeypatch.setattr("hub.cli.common.configure_logging", lambda *a, **k: None)

    def invoke(app, *args: str):
        return asyncio.to_thread(CliRunner().invoke, app, list(args))

    done = await invoke(po_cli.app, "dropship", "VASE", "--supplier", "acme-supply", "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["location"] == DS
    too_long = await invoke(po_cli.app, "dropship", "VASE", "--supplier", "x" * 60)
    assert too_long.exit_code == 2 and "too long" in too_long.output

    core = CoreProcessor(sessions, RULES)
    await core.process(records(counted("VASE", 2), report(7, "846-1")))
    await core.process(records(place("shop:1", [("VASE", 4)])))
    shown = await invoke(hub_app, "stock", "show", "VASE", "--json")
    assert shown.exit_code == 0, shown.output
    view = json.loads(shown.stdout)
    assert (view["on_hand"], view["reserved"], view["inbound"]) == (2, 2, 0)
    assert view["dropship"] == {
        "on_hand": 7,
        "reserved": 2,
        "available": 5,
        "suppliers": {"acme-supply": {"reported": 7, "reserved": 2}},
    }
    assert view["channels"] == {"online": {"available": 5}, "store": {"available": 0}}


async def test_the_books_cost_only_the_units_that_left_the_hubs_own_stock(sessions):
    """1 VASE at main (cost 10.00) and 10 reported by the supplier; an order for 3 ships 1
    from main and 2 from the supplier's stock: cost of sales and the inventory account move
    by the one unit of the hub's own, as its stock does."""
    from decimal import Decimal

    from hub.finance import ledger
    from hub.finance.chart import CN_SMALL_BUSINESS
    from schemas.stock import GoodsReceived

    await _mark(sessions)
    core = CoreProcessor(sessions, RULES, chart=CN_SMALL_BUSINESS)
    grn = GoodsReceived(
        sku="VASE", quantity=1, unit_cost=Decimal("10.00"), receipt_id="GRN-V", received_at=T
    )
    received = Envelope(id=message_id("test", "grn-v"), source="test", data=grn)
    await core.process(records(received, report(10, "846-1")))
    await core.process(records(place("s:1", [("VASE", 3)])))
    await core.process(records(fulfil("s:1", [("VASE", 3)])))
    assert await _row(sessions, "main") == (0, 0)
    assert await _row(sessions, DS) == (8, 0)
    async with sessions() as s:
        assert await ledger.check_books(s, CN_SMALL_BUSINESS) == []
        tb = {r.account: r.balance for r in await ledger.trial_balance(s)}
        assert await invariant_problems(s) == []
    assert tb["6401"] == Decimal("10.00")
    assert tb.get("1405", 0) == 0
    # all 3 come back to main, at the average the order's units left with (10.00 for 3): the
    # books take back exactly the 10.00 they booked, and stock and books still agree
    await core.process(records(ret("s:1", [("VASE", 3, True)])))
    async with sessions() as s:
        main = await s.get(Stock, ("VASE", "main"))
        assert main is not None and main.on_hand == 3
        assert await ledger.check_books(s, CN_SMALL_BUSINESS) == []
        tb = {r.account: r.balance for r in await ledger.trial_balance(s)}
    assert tb.get("6401", 0) == 0 and tb["1405"] == Decimal("10.00")
