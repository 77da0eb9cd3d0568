"""`hub po`: purchase orders, approval of suggestions, and what needs a buyer's attention."""

from __future__ import annotations

import getpass
from typing import Annotated, Any

import typer
from rich.table import Table

from hub.cli.common import db_session, fail, out, print_json, run, settings
from hub.purchasing import service

app = typer.Typer(help="Purchase orders: list, approve, exceptions.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]


@app.command("list")
def list_(
    status: Annotated[
        str | None, typer.Option(help="Only this status, e.g. suggested, issued, closed.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Purchase orders and their lines, suggestions awaiting approval included."""
    s = settings()

    async def go() -> list[dict[str, Any]]:
        async with db_session(s) as session:
            return await service.purchase_orders(session, status=status)

    pos = run(go())
    if as_json:
        print_json({"purchase_orders": pos})
        return
    table = Table("PO", "supplier", "status", "expected", "sku", "ordered", "confirmed", "received")
    for po in pos:
        for ln in po["lines"]:
            table.add_row(
                po["po_number"],
                po["supplier"],
                po["status"],
                ln["expected_delivery"],
                ln["sku"],
                str(ln["ordered"]),
                str(ln["confirmed"]),
                str(ln["received"]),
            )
    out.print(table)


@app.command()
def approve(
    po_number: Annotated[str, typer.Argument(help="PO number of a suggestion.")],
    actor: Annotated[str | None, typer.Option(help="Who approves (default: login name).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Issue a suggested purchase order: it goes to the supplier and counts as inbound."""
    s = settings()
    who = actor or getpass.getuser()

    async def go() -> dict[str, Any]:
        async with db_session(s) as session, session.begin():
            env = await service.approve(session, po_number, who)
            return {"po_number": po_number, "status": "issued", "message_id": env.id}

    try:
        result = run(go())
    except service.UnknownPurchaseOrder as exc:
        raise fail(str(exc), 2) from None
    except service.NotAwaitingApproval as exc:
        raise fail(str(exc), 1) from None
    if as_json:
        print_json(result)
    else:
        out.print(f"{po_number} issued (approved by {who})")


@app.command()
def exceptions(as_json: JsonOpt = False) -> None:
    """Held supplier invoices with their reasons; over-, under- and partial deliveries.
    Exits 1 when there is anything to look at."""
    s = settings()

    async def go() -> dict[str, list[dict[str, Any]]]:
        async with db_session(s) as session:
            return await service.exceptions(session)

    found = run(go())
    if as_json:
        print_json(found)
    else:
        for inv in found["held_invoices"]:
            out.print(f"[red]held[/] invoice {inv['invoice_number']} ({inv['po_number']}):")
            for r in inv["reasons"]:
                out.print(f"  {r['detail']}")
        for d in found["deliveries"]:
            out.print(f"{d['kind']}: {d['po_number']} {d['sku']} {d['units']} units")
        if not any(found.values()):
            out.print("nothing held, every delivery as ordered")
    raise typer.Exit(1 if any(found.values()) else 0)
