"""`hub books`: the trial balance and the check that the books agree with stock and orders."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from hub.cli.common import console, db_session, out, print_json, run, settings
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
                r.account, r.name, r.currency, str(r.debit), str(r.credit), str(r.balance)
            )
        for cur, rs in by_currency.items():
            table.add_row(
                "total", "", cur, str(sum(r.debit for r in rs)), str(sum(r.credit for r in rs)), ""
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
        console.print(f"[red]configuration error:[/] {exc}")
        raise typer.Exit(2) from None

    async def go() -> list[ledger.Problem]:
        async with db_session(s) as session:
            return await ledger.check_books(session, chart)

    problems = run(go())
    if as_json:
        print_json({"ok": not problems, "problems": [p.as_json() for p in problems]})
    else:
        for p in problems:
            console.print(f"[red]✗[/] {p}")
        out.print(
            "[green]the books agree with stock and orders[/]"
            if not problems
            else f"[red]{len(problems)} problem(s)[/]"
        )
    raise typer.Exit(0 if not problems else 1)
