"""`hub stock report [--json]`: velocity, demand σ, days of cover, turnover, reorder point in
effect and slow movers per SKU and location (the figures are defined in hub.purchasing.report)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from hub.cli.common import db_session, fail, out, plain, print_json, run, settings
from hub.purchasing.policy import PolicyError


def report(
    sku: Annotated[str | None, typer.Argument(help="Only this SKU (default: every SKU).")] = None,
    days: Annotated[int, typer.Option(help="Sales window in whole days, ending yesterday.")] = 30,
    slow_days: Annotated[
        int, typer.Option(help="Slow mover: stock that lasts longer than this many days.")
    ] = 90,
    slow_only: Annotated[bool, typer.Option("--slow", help="Only the slow movers.")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON document on stdout.")
    ] = False,
) -> None:
    """Velocity, days of cover, turnover, reorder point and slow movers per SKU."""
    from hub.purchasing.report import stock_report, to_json

    if days < 1 or slow_days < 0:
        raise fail("--days must be at least 1 and --slow-days not negative", 2)
    s = settings()
    today = datetime.now(UTC).date()

    async def go() -> dict[str, Any]:
        async with db_session(s) as session:
            rows = await stock_report(session, today=today, days=days, slow_days=slow_days, sku=sku)
        if slow_only:
            rows = [r for r in rows if r.slow_mover]
        return to_json(rows, today=today, days=days, slow_days=slow_days)

    try:
        doc = run(go())
    except PolicyError as exc:
        raise fail(str(exc), 2) from None
    if sku is not None and not doc["skus"] and not slow_only:
        raise fail(f"unknown SKU {sku!r}", 2)
    if as_json:
        print_json(doc)
        return
    _table(doc, today)


def _table(doc: dict[str, Any], today: date) -> None:
    w = doc["window"]
    table = Table(
        "SKU",
        "location",
        "on hand",
        "avail.",
        "inbound",
        "sold",
        "per day",
        "σ/day",
        "cover (d)",
        "turnover",
        "ROP",
        "slow",
        title=f"stock report: {w['from']} to {w['to']} (excl.), {w['days']} days",
    )
    for r in doc["skus"]:
        rop = r["reorder_point"]
        if rop is None:
            point = "-"
        elif rop["mode"] == "fixed":
            point = str(rop["value"])
        elif rop["value"] is None:
            point = f"auto: {plain(rop['error'])}"
        else:
            point = f"{rop['value']} auto (SS {rop['safety_stock']})"
        table.add_row(
            plain(r["sku"]),
            plain(r["location"]),
            str(r["on_hand"]),
            str(r["available"]),
            str(r["inbound"]),
            str(r["sold"]),
            plain(r["velocity"]),
            plain(r["demand_stdev"]),
            "∞" if r["days_of_cover"] is None else plain(r["days_of_cover"]),
            "-" if r["turnover"] is None else plain(r["turnover"]),
            point,
            "[yellow]yes[/]" if r["slow_mover"] else "",
        )
    out.print(table)
    out.print(f"{doc['slow_movers']} slow mover(s); cover above {w['slow_days']} days or no sales")
