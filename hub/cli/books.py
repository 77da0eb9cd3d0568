"""`hub books`: the trial balance and the check that the books agree with stock and orders."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from hub.cli.common import (
    console,
    counted_progress,
    db_session,
    out,
    plain,
    print_json,
    run,
    settings,
)
from hub.config import ConfigError
from hub.finance import ledger
from hub.finance.chart import chart_from_config

app = typer.Typer(help="The books: trial balance and checks.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]


@app.command("trial-balance")
def trial_balance(as_json: JsonOpt = False) -> None:
    """Debit and credit totals per account (试算平衡表); the balances sum to zero."""
    s = settings()

    async def go() -> list[ledger.TrialBalanceRow]:
        async with db_session(s) as session:
            return await ledger.trial_balance(session)

    rows = run(go())
    by_currency: dict[str, list[ledger.TrialBalanceRow]] = {}
    for row in rows:
        by_currency.setdefault(row.currency, []).append(row)
    balanced = all(sum(r.balance for r in rs) == 0 for rs in by_currency.values())
    if as_json:
        print_json(
            {
                "balanced": balanced,
                "accounts": [r.as_json() for r in rows],
                "totals": {
                    cur: {
                        "debit": str(sum(r.debit for r in rs)),
                        "credit": str(sum(r.credit for r in rs)),
                    }
                    for cur, rs in by_currency.items()
                },
            }
        )
    else:
        table = Table("account", "name", "currency", "debit", "credit", "balance")
        for r in rows:
            table.add_row(
                plain(r.account),
                plain(r.name),
                plain(r.currency),
                str(r.debit),
                str(r.credit),
                str(r.balance),
            )
        for cur, rs in by_currency.items():
            table.add_row(
                "total",
                "",
                plain(cur),
                str(sum(r.debit for r in rs)),
                str(sum(r.credit for r in rs)),
                "",
            )
        out.print(table)
    raise typer.Exit(0 if balanced else 1)


@app.command("check")
def check(as_json: JsonOpt = False) -> None:
    """Every voucher balances, inventory = Σ on_hand × average cost, receivables = unpaid billed."""
    s = settings()
    try:
        chart = chart_from_config(s.hub)
    except ConfigError as exc:
        console.print(f"[red]configuration error:[/] {plain(exc)}")
        raise typer.Exit(2) from None

    async def go() -> list[ledger.Problem]:
        async with db_session(s) as session:
            return await ledger.check_books(session, chart)

    problems = run(go())
    if as_json:
        print_json({"ok": not problems, "problems": [p.as_json() for p in problems]})
    else:
        for p in problems:
            console.print(f"[red]✗[/] {plain(p)}")
        out.print(
            "[green]the books agree with stock and orders[/]"
            if not problems
            else f"[red]{len(problems)} problem(s)[/]"
        )
    raise typer.Exit(0 if not problems else 1)


@app.command("deliver")
def deliver(
    account: Annotated[str, typer.Argument(help="A finance account (beancount, xero).")],
    since: Annotated[
        str | None, typer.Option(help="Only vouchers dated from this day (YYYY-MM-DD).")
    ] = None,
    actor: Annotated[str, typer.Option(help="Who delivers (audit log).")] = "cli",
    as_json: JsonOpt = False,
) -> None:
    """Deliver the stored vouchers to a finance account, oldest first: a ledger connected after
    the hub has run a while gets its opening books (the vouchers topic keeps a week, and the
    finance consumers' offsets are past them). Vouchers the account has already are booked once
    (by voucher id); one the account refuses is listed and the rest go on. Exits 1 when any was
    refused, 2 when the account could not be reached: run it again to go on."""
    import datetime as dt

    from sqlalchemy import func, select

    from connectors.errors import ConnectorError
    from hub.audit import record
    from hub.finance.tables import VoucherRow
    from hub.voucherworker import build_sinks
    from schemas.finance import VoucherIssued

    s = settings()
    try:
        sinks = build_sinks(s, only=account)
    except (ConfigError, ConnectorError) as exc:
        console.print(f"[red]configuration error:[/] {plain(exc)}")
        raise typer.Exit(2) from None
    except RuntimeError as exc:  # a journal file another writer holds (a running worker)
        console.print(f"[red]error:[/] {plain(exc)}")
        raise typer.Exit(2) from None
    if account not in sinks:
        console.print(f"[red]error:[/] {plain(repr(account))} is not a configured finance account")
        raise typer.Exit(2)
    sink = sinks[account]
    try:
        start = dt.date.fromisoformat(since) if since else None
    except ValueError:
        console.print(f"[red]error:[/] --since {plain(repr(since))} is not a day (YYYY-MM-DD)")
        raise typer.Exit(2) from None
    report: dict[str, Any] = {"account": account, "delivered": 0, "already": 0, "refused": []}

    async def go() -> None:
        async with db_session(s) as session:
            where = [VoucherRow.date >= start] if start else []
            total = (
                await session.execute(select(func.count()).select_from(VoucherRow).where(*where))
            ).scalar_one()
            q = (
                select(VoucherRow)
                .where(*where)
                .order_by(VoucherRow.date, VoucherRow.created_at, VoucherRow.voucher_id)
                .execution_options(yield_per=500)
            )
            with counted_progress(account, quiet=as_json) as bar:
                task = bar.add_task("deliver", total=total)
                try:
                    async for row in await session.stream_scalars(q):
                        voucher = VoucherIssued.model_validate(
                            {
                                "voucher_id": row.voucher_id,
                                "date": row.date,
                                "period": row.period,
                                "cause_type": row.cause_type,
                                "cause_ref": row.cause_ref,
                                "currency": row.currency,
                                "memo": row.memo,
                                "lines": row.lines,
                            }
                        )
                        try:
                            fresh = await sink.deliver(voucher)
                        except ConnectorError as exc:
                            if exc.retryable:
                                report["stopped"] = f"{voucher.voucher_id}: {exc}"
                                return
                            report["refused"].append(
                                {"voucher_id": voucher.voucher_id, "reason": str(exc)[:500]}
                            )
                        else:
                            report["delivered" if fresh else "already"] += 1
                        bar.advance(task)
                finally:
                    close = getattr(sink, "aclose", None)
                    if close is not None:
                        await close()
                    closer = getattr(getattr(sink, "sink", None), "close", None)
                    if closer is not None:
                        closer()
        async with db_session(s) as session, session.begin():
            await record(
                session, actor, "books.deliver", account, before={"since": since}, after=report
            )

    run(go())
    if as_json:
        print_json(report)
    else:
        for r in report["refused"]:
            console.print(f"[red]✗[/] {plain(r['voucher_id'])}: {plain(r['reason'])}")
        out.print(
            f"{plain(account)}: {report['delivered']} voucher(s) delivered, "
            f"{report['already']} there "
            f"already, {len(report['refused'])} refused"
            + (f"; stopped at {plain(report['stopped'])}" if "stopped" in report else "")
        )
    raise typer.Exit(2 if "stopped" in report else 1 if report["refused"] else 0)
