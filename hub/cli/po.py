"""`hub po`: purchase orders, approval of suggestions, and what needs a buyer's attention."""

from __future__ import annotations

import getpass
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from hub import audit
from hub.cli.common import db_session, fail, out, plain, print_json, run, settings
from hub.domain.allocation import dropship_location
from hub.purchasing import service
from hub.purchasing.policy import PolicyError
from hub.store.outbox import announce

app = typer.Typer(
    help="Purchasing: suppliers, replenishment policies, purchase orders, exceptions.",
    no_args_is_help=True,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
ActorOpt = Annotated[str | None, typer.Option(help="Who does it (default: login name).")]


@app.command()
def supplier(
    supplier_id: Annotated[str, typer.Argument(help="Supplier id, as its messages carry it.")],
    mode: Annotated[str, typer.Option(help="auto: issue POs; approve: suggest them.")] = "auto",
    name: Annotated[str, typer.Option(help="Display name.")] = "",
    account: Annotated[str, typer.Option(help="Connector account (default: the id).")] = "",
    currency: Annotated[str, typer.Option(help="Currency of its prices.")] = "CNY",
    actor: ActorOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add or change a supplier."""

    async def work(session: AsyncSession) -> dict[str, Any]:
        row = await service.set_supplier(
            session, supplier_id, name=name, account=account, mode=mode, currency=currency
        )
        return {"mode": row.mode, "account": row.account, "currency": row.currency}

    _set(
        "po.supplier",
        supplier_id,
        work,
        actor=actor,
        as_json=as_json,
        text=lambda r: f"supplier {plain(supplier_id)}: {plain(r['mode'])}",
        key="supplier",
    )


@app.command()
def policy(
    sku: Annotated[str, typer.Argument(help="SKU to replenish.")],
    supplier_id: Annotated[str, typer.Option("--supplier", help="Supplier to order from.")],
    reorder_point: Annotated[
        str, typer.Option(help="Units, or `auto` (from sales, lead time and service level).")
    ],
    order_up_to: Annotated[int, typer.Option(help="Order up to this projected level.")],
    location: Annotated[str, typer.Option(help="Stock location.")] = "main",
    pack_size: Annotated[int, typer.Option(help="Order in whole packs of this many.")] = 1,
    moq: Annotated[int, typer.Option(help="Minimum order quantity.")] = 1,
    lead_time_days: Annotated[int, typer.Option(help="Supplier lead time.")] = 7,
    safety_stock: Annotated[int, typer.Option(help="Safety stock (units).")] = 0,
    max_stock: Annotated[int | None, typer.Option(help="Warn above this projected level.")] = None,
    unit_price: Annotated[str, typer.Option(help="Price per unit ordered.")] = "0",
    mode: Annotated[str | None, typer.Option(help="auto | approve (default: supplier's).")] = None,
    actor: ActorOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Set how a SKU at a location is replenished."""
    s = settings()
    who = actor or getpass.getuser()
    auto = reorder_point == "auto"
    try:
        rop = None if auto else int(reorder_point)
        price = Decimal(unit_price)
    except (ValueError, ArithmeticError):
        raise fail("--reorder-point takes a number or `auto`; --unit-price a number", 2) from None

    async def go() -> dict[str, Any]:
        async with db_session(s) as session, session.begin():
            await service.set_policy(
                session,
                sku,
                supplier=supplier_id,
                reorder_point=rop,
                auto_reorder=auto,
                order_up_to=order_up_to,
                location=location,
                pack_size=pack_size,
                min_order_quantity=moq,
                lead_time_days=lead_time_days,
                safety_stock=safety_stock,
                max_stock=max_stock,
                unit_price=price,
                mode=mode,
            )
            after = {
                "supplier": supplier_id,
                "reorder_point": "auto" if auto else rop,
                "order_up_to": order_up_to,
                "pack_size": pack_size,
                "moq": moq,
                "lead_time_days": lead_time_days,
                "unit_price": str(price),
                "mode": mode,
            }
            await audit.record(session, who, "po.policy", f"{sku}@{location}", after=after)
            return {"sku": sku, "location": location, **after}

    try:
        result = run(go())
    except (service.PurchasingError, PolicyError) as exc:
        raise fail(str(exc), 2) from None
    if as_json:
        print_json(result)
    else:
        out.print(f"policy for {plain(sku)} at {plain(location)} set")


@app.command()
def dropship(
    sku: Annotated[str, typer.Argument(help="SKU the supplier's stock feed may sell.")],
    supplier_id: Annotated[str, typer.Option("--supplier", help="Supplier whose feed counts.")],
    supplier_sku: Annotated[
        str | None, typer.Option(help="The supplier's code for the SKU.")
    ] = None,
    actor: ActorOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Mark a SKU as dropship: the supplier's stock reports (EDI 846, REST) set location
    `dropship.SUPPLIER`, sold by channels with `dropship = true`. Reports before this are not
    replayed: the next report counts."""

    async def work(session: AsyncSession) -> dict[str, Any]:
        await service.set_dropship(session, sku, supplier=supplier_id, supplier_sku=supplier_sku)
        location = dropship_location(supplier_id)
        return {"supplier": supplier_id, "supplier_sku": supplier_sku, "location": location}

    _set(
        "po.dropship",
        sku,
        work,
        actor=actor,
        as_json=as_json,
        text=lambda r: (
            f"{plain(sku)} sold from {plain(supplier_id)}'s stock feed at {plain(r['location'])}"
        ),
    )


@app.command()
def presale(
    sku: Annotated[str, typer.Argument(help="SKU that may be sold against inbound stock.")],
    share: Annotated[
        float, typer.Option(help="Fraction (0–1) of confirmed inbound that may be presold.")
    ],
    actor: ActorOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Let channels with `presale = true` take backorders of a SKU up to a share of its
    confirmed inbound stock. Takes effect with the next change of the SKU's confirmed inbound
    (acknowledgement, ship notice, receipt); 0 stops new backorders at once and keeps those
    taken."""

    async def work(session: AsyncSession) -> dict[str, Any]:
        row = await service.set_presale_share(session, sku, share)
        return {"share": str(row.share)}

    _set(
        "po.presale",
        sku,
        work,
        actor=actor,
        as_json=as_json,
        text=lambda r: (
            f"{plain(sku)}: up to {plain(r['share'])} of confirmed inbound may be presold"
        ),
    )


def _set(
    action: str,
    target: str,
    work: Callable[[AsyncSession], Awaitable[dict[str, Any]]],
    *,
    actor: str | None,
    as_json: bool,
    text: Callable[[dict[str, Any]], str],
    key: str = "sku",
) -> None:
    """Store a purchasing setting in one transaction with its audit row; print the result
    (`{key: target, …what work returned}`)."""
    s = settings()
    who = actor or getpass.getuser()

    async def go() -> dict[str, Any]:
        async with db_session(s) as session, session.begin():
            after = await work(session)
            await audit.record(session, who, action, target, after=after)
            return {key: target, **after}

    try:
        result = run(go())
    except service.PurchasingError as exc:
        raise fail(str(exc), 2) from None
    if as_json:
        print_json(result)
    else:
        out.print(text(result))


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
                plain(po["po_number"]),
                plain(po["supplier"]),
                plain(po["status"]),
                plain(ln["expected_delivery"]),
                plain(ln["sku"]),
                str(ln["ordered"]),
                str(ln["confirmed"]),
                str(ln["received"]),
            )
    out.print(table)


@app.command()
def approve(
    po_number: Annotated[str, typer.Argument(help="PO number of a suggestion.")],
    actor: ActorOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Issue a suggested purchase order: it goes to the supplier and counts as inbound. A line
    whose SKU is on order in another PO since is left out (and named); with nothing left,
    exits 1 and issues nothing."""
    s = settings()
    who = actor or getpass.getuser()

    async def go() -> dict[str, Any]:
        async with db_session(s) as session:
            async with session.begin():
                done = await service.approve(session, po_number, who)
            await announce(session.bind)  # the PO is in the outbox: wake the relay
            return {
                "po_number": po_number,
                "status": "issued",
                "message_id": done.envelope.id,
                "left_out": [
                    {"sku": sku, "location": loc, "on_order_in": other}
                    for sku, loc, other in done.left_out
                ],
            }

    try:
        result = run(go())
    except service.UnknownPurchaseOrder as exc:
        raise fail(str(exc), 2) from None
    except (service.NotAwaitingApproval, service.AlreadyOnOrder) as exc:
        raise fail(str(exc), 1) from None
    if as_json:
        print_json(result)
    else:
        out.print(f"{plain(po_number)} issued (approved by {plain(who)})")
        for line in result["left_out"]:
            out.print(
                f"  left out: {plain(line['sku'])} at {plain(line['location'])}, "
                f"on order in {plain(line['on_order_in'])}"
            )


@app.command()
def discard(
    po_number: Annotated[str, typer.Argument(help="PO number of a suggestion.")],
    actor: ActorOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Drop a suggested purchase order that will not be ordered (its SKU ordered elsewhere, a
    supplier that refused it): its lines no longer stand for the SKU's next order."""
    s = settings()
    who = actor or getpass.getuser()

    async def go() -> None:
        async with db_session(s) as session, session.begin():
            await service.discard(session, po_number, who)

    try:
        run(go())
    except service.UnknownPurchaseOrder as exc:
        raise fail(str(exc), 2) from None
    except service.NotAwaitingApproval as exc:
        raise fail(str(exc), 1) from None
    if as_json:
        print_json({"po_number": po_number, "status": "cancelled"})
    else:
        out.print(f"{plain(po_number)} discarded (by {plain(who)})")


@app.command("accept-invoice")
def accept_invoice(
    supplier: Annotated[str, typer.Argument(help="Supplier id.")],
    invoice_number: Annotated[str, typer.Argument(help="The supplier's invoice number.")],
    actor: ActorOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Book a held invoice whose holds are all prices or charges: the buyer accepts what the
    supplier asks. Quantities, currency and totals wait for the supplier's corrected invoice.
    Exits 1 when it stays held."""
    from hub.finance.chart import chart_from_config

    s = settings()
    who = actor or getpass.getuser()

    async def go() -> dict[str, Any]:
        async with db_session(s) as session:
            async with session.begin():
                inv = await service.accept_invoice(
                    session, supplier, invoice_number, who, chart_from_config(s.hub)
                )
                result = {
                    "supplier": supplier,
                    "invoice_number": invoice_number,
                    "po_number": inv.po_number,
                    "status": inv.status,
                    "reasons": inv.reasons,
                    "voucher_id": inv.voucher_id,
                    "price_variance": service.amount_text(inv.price_variance, inv.currency),
                }
            if inv.voucher_id:
                await announce(session.bind)  # the voucher is in the outbox: wake the relay
            return result

    try:
        result = run(go())
    except service.UnknownInvoice as exc:
        raise fail(str(exc), 2) from None
    except service.NotAcceptable as exc:
        raise fail(str(exc), 1) from None
    if as_json:
        print_json(result)
    elif result["status"] == "matched":
        out.print(
            f"invoice {plain(invoice_number)} booked ({plain(result['voucher_id'])}), "
            f"accepted by {plain(who)}"
        )
    else:
        out.print(f"[red]invoice {plain(invoice_number)} still held:[/]")
        for r in result["reasons"]:
            out.print(f"  {plain(r['detail'])}")
    raise typer.Exit(0 if result["status"] == "matched" else 1)


@app.command()
def exceptions(as_json: JsonOpt = False) -> None:
    """Held supplier invoices with their reasons; over-, under- and partial deliveries;
    suggested orders waiting for approval; SKUs on order in two POs. Exits 1 when an invoice
    is held, a delivery is off or a SKU is on order twice (a suggestion waiting is no
    exception)."""
    s = settings()

    async def go() -> dict[str, list[dict[str, Any]]]:
        async with db_session(s) as session:
            return await service.exceptions(session)

    found = run(go())
    off = found["held_invoices"] or found["deliveries"] or found["on_order_twice"]
    if as_json:
        print_json(found)
    else:
        for inv in found["held_invoices"]:
            out.print(
                f"[red]held[/] invoice {plain(inv['invoice_number'])} ({plain(inv['po_number'])}):"
            )
            for r in inv["reasons"]:
                out.print(f"  {plain(r['detail'])}")
        for d in found["deliveries"]:
            out.print(
                f"{plain(d['kind'])}: {plain(d['po_number'])} {plain(d['sku'])} "
                f"{plain(d['units'])} units"
            )
        for p in found["suggested"]:
            out.print(
                f"suggested: {plain(p['po_number'])} ({plain(p['supplier'])}), "
                "to approve or discard"
            )
        for t in found["on_order_twice"]:
            orders = ", ".join(
                f"{plain(o['po_number'])} ({plain(o['status'])}, {o['units']} units)"
                for o in t["orders"]
            )
            out.print(
                f"[red]on order twice[/]: {plain(t['sku'])} at {plain(t['location'])} in {orders}"
            )
        if not off:
            out.print("nothing held, every delivery as ordered")
    # Suggestions are listed but are no exception: a supplier in approve mode makes them daily.
    raise typer.Exit(1 if off else 0)
