"""`hub stock report` over a real store (SQLite and PostgreSQL): a journal written on known days
gives known velocity, σ, cover, turnover, reorder point and slow movers, in the service and
through the CLI."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest
from typer.testing import CliRunner

from hub.cli.main import app as cli
from hub.purchasing import service
from hub.purchasing.report import stock_report
from hub.store.models import Movement, Stock

pytestmark = pytest.mark.integration
D = Decimal


def _at(day: date) -> datetime:
    return datetime.combine(day, time(12), tzinfo=UTC)


async def _seed(sessions, today: date) -> None:
    moves = [  # (sku, days before today, delta, kind)
        ("FAST", 10, 48, "stocktake"),  # before the window
        ("FAST", 4, -2, "sale"),
        ("FAST", 3, -4, "sale"),
        ("FAST", 1, -6, "sale"),
        ("FAST", 0, -6, "sale"),  # today: not in the window
        ("SLOW", 40, 5, "stocktake"),
        ("SLOW", 2, 1, "return"),
    ]
    async with sessions() as s, s.begin():
        s.add_all(
            [
                Stock(sku="FAST", location="main", on_hand=30, reserved=6, inbound=12),
                Stock(sku="SLOW", location="main", on_hand=6, reserved=0, inbound=0),
            ]
        )
        s.add_all(
            Movement(
                sku=sku,
                location="main",
                delta=delta,
                kind=kind,
                cause=f"m{n}",
                at=_at(today - timedelta(days=ago)),
            )
            for n, (sku, ago, delta, kind) in enumerate(moves)
        )
        await service.set_supplier(s, "acme-supply")
        await service.set_policy(
            s,
            "FAST",
            supplier="acme-supply",
            order_up_to=60,
            auto_reorder=True,
            demand_window_days=4,
            lead_time_days=4,
            service_level=D("0.95"),
        )
        await service.set_policy(
            s, "SLOW", supplier="acme-supply", order_up_to=10, reorder_point=2, lead_time_days=9
        )


async def test_report_figures_come_from_the_journal_and_the_stock_table(sessions) -> None:
    today = datetime.now(UTC).date()
    await _seed(sessions, today)
    async with sessions() as s:
        fast, slow = await stock_report(s, today=today, days=4, slow_days=90)
    # sales 2, 4, 0, 6 over the 4 days before today
    assert (fast.sku, fast.sold, fast.velocity, fast.demand_stdev) == (
        "FAST",
        12,
        D("3.00"),
        D("2.58"),
    )
    assert (fast.available, fast.inbound, fast.days_of_cover) == (24, 12, D("8.00"))
    # closing on hand 46, 42, 42, 36: average 41.5, turnover 12 / 41.5
    assert (fast.average_on_hand, fast.turnover) == (D("41.50"), D("0.29"))
    assert not fast.slow_mover
    rop = fast.reorder_point
    assert rop is not None and (rop.mode, rop.value, rop.safety_stock) == ("auto", 21, 9)
    # a return is not demand; 6 on hand that did not sell
    assert (slow.sku, slow.sold, slow.days_of_cover, slow.slow_reason) == (
        "SLOW",
        0,
        None,
        "no_sales",
    )
    assert slow.reorder_point is not None and slow.reorder_point.value == 2
    assert slow.average_on_hand == D("5.50")  # 5, 5, 6, 6

    async with sessions() as s:
        [only] = await stock_report(s, today=today, days=2, sku="FAST")
    assert (only.sold, only.velocity) == (6, D("3.00"))  # 0 and 6 over the last two days


async def test_the_cli_prints_one_json_document_and_a_table(sessions, db_url, monkeypatch) -> None:
    today = datetime.now(UTC).date()
    await _seed(sessions, today)
    monkeypatch.setenv("HUB_DATABASE_URL", db_url)
    runner = CliRunner()

    async def invoke(*args: str):
        return await asyncio.to_thread(runner.invoke, cli, ["stock", "report", *args])

    result = await invoke("--days", "4", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["window"]["days"] == 4 and doc["slow_movers"] == 1
    by_sku = {r["sku"]: r for r in doc["skus"]}
    assert by_sku["FAST"]["days_of_cover"] == "8.00"
    assert by_sku["FAST"]["reorder_point"]["mode"] == "auto"
    assert by_sku["SLOW"]["days_of_cover"] is None and by_sku["SLOW"]["slow_mover"] is True

    slow_only = json.loads((await invoke("--days", "4", "--slow", "--json")).stdout)
    assert [r["sku"] for r in slow_only["skus"]] == ["SLOW"]

    table = await invoke("FAST", "--days", "4")
    assert table.exit_code == 0 and "FAST" in table.stdout and "SLOW" not in table.stdout

    unknown = await invoke("NOPE")
    assert unknown.exit_code == 2
    assert (await invoke("--days", "0")).exit_code == 2
