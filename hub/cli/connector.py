"""`hub connector list|resync|push-stock` and the top-level `hub reconcile` (see INTERFACE.md).

Exit codes: 0 done; 1 the run failed or left drift (`reconcile`), or some SKUs were refused
(`push-stock`); 2 unknown account or bad arguments.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Coroutine
from contextlib import suppress
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hub.cli.common import (
    caller,
    console,
    db_sessions,
    fail,
    out,
    plain,
    print_json,
    run,
    settings,
)
from hub.config import ConfigError, Settings

T = TypeVar("T")

app = typer.Typer(help="Connected shops: list, resync, push stock.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
AccountArg = Annotated[str, typer.Argument(help="Account name (a key under [accounts]).")]


def _run(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run an operation; turn the typed failures into a message and an exit code."""
    from connectors.errors import ConnectorError, UnknownAccount
    from hub.bus import BrokerUnavailable
    from hub.shops import ResyncInterrupted

    try:
        return run(make())
    except UnknownAccount as exc:
        raise fail(f"{exc}: see `hub connector list`", 2) from None
    except ConfigError as exc:
        raise fail(f"configuration error: {exc}", 2) from None
    except ResyncInterrupted as exc:
        console.print(
            f"[yellow]{exc.report.pages} page(s), {exc.report.published} message(s) "
            "published before the failure; run it again to resume[/]"
        )
        raise fail(str(exc)) from None
    except ConnectorError as exc:
        raise fail(f"the platform refused: {exc.message}") from None
    except BrokerUnavailable as exc:
        raise fail(str(exc)) from None


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise fail(f"--since {value!r} is not an ISO 8601 time (or `last`)", 2) from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


# --- list ---------------------------------------------------------------------------------------


@app.command("list")
def list_accounts(
    timeout: Annotated[
        float, typer.Option(help="Seconds each shop has to answer the health check.")
    ] = 3.0,
    as_json: JsonOpt = False,
) -> None:
    """Configured accounts, their connector, last sync and health."""
    import asyncio

    from hub.config import SHOP_CONNECTORS
    from hub.shops import Health, health, sync_state

    s = settings()

    async def go() -> list[dict[str, Any]]:
        names = sorted(s.hub.accounts)
        try:
            async with db_sessions(s) as sessions:
                synced = await sync_state(sessions)
        except SQLAlchemyError as exc:  # the accounts are still worth listing
            first = str(exc).splitlines()[0][:200]
            console.print(f"[yellow]last sync unknown: {plain(first)}[/]")
            synced = {}
        shops = [n for n in names if s.hub.accounts[n].connector in SHOP_CONNECTORS]
        checks = await asyncio.gather(*(health(s, n, within=timeout) for n in shops))
        by_name = dict(zip(shops, checks, strict=True))
        rows = []
        for name in names:
            cfg = s.hub.accounts[name]
            h = by_name.get(name) or Health(name, "not checked", "not a shop connector")
            rows.append(
                {
                    "account": name,
                    "connector": cfg.connector,
                    "channel": cfg.channel if cfg.connector in SHOP_CONNECTORS else None,
                    "location": cfg.location,
                    "last_sync": synced.get(name, {}),
                    "health": h.to_json(),
                }
            )
        return rows

    rows = run(go())
    if as_json:
        print_json({"accounts": rows})
        return
    t = Table(title=f"{len(rows)} account(s)")
    for col in ("account", "connector", "channel", "last sync", "health"):
        t.add_column(col)
    for r in rows:
        last = ", ".join(
            f"{what} {(v['last_sync_at'] or 'never')[:19]}" + (" ✗" if v["last_error"] else "")
            for what, v in sorted(r["last_sync"].items())
        )
        h = r["health"]
        colour = {"ok": "green", "not checked": "dim"}.get(h["status"], "red")
        shown = h["status"] + (f" ({h['latency_ms']} ms)" if h["latency_ms"] is not None else "")
        if h["detail"] and h["status"] != "not checked":
            shown += f": {h['detail'][:60]}"
        t.add_row(
            plain(r["account"]),
            plain(r["connector"]),
            plain(r["channel"] or "-"),
            plain(last or "never"),
            f"[{colour}]{plain(shown)}",
        )
    out.print(t)


# --- resync -------------------------------------------------------------------------------------


@app.command("resync")
def resync_cmd(
    account: AccountArg,
    what: Annotated[str, typer.Option(help="orders | stock | products")] = "orders",
    since: Annotated[
        str | None,
        typer.Option(help="ISO 8601 time: orders changed since then; `last`: since the last run."),
    ] = None,
    restart: Annotated[
        bool, typer.Option(help="Start over instead of resuming an interrupted resync.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Pull from the platform's API and publish canonical messages; safe to repeat, resumable."""
    from hub.kafka import clients
    from hub.kafka.producer import KafkaPublisher
    from hub.kafka.topics import ensure_topics
    from hub.shops import RESYNC_OVERLAP, WHATS, ResyncReport, last_order_sync, resync

    if what not in WHATS:
        raise fail(f"--what must be one of {', '.join(WHATS)}", 2)
    s = settings()
    _check_account(s, account)
    given = None if since in (None, "last") else _since(since)
    bootstrap = None
    if what == "orders":
        try:
            bootstrap = clients.bootstrap(s)
        except clients.NoBroker as exc:
            raise fail(str(exc)) from None

    async def go() -> ResyncReport:
        async with db_sessions(s) as sessions:
            before = await _sync_of(sessions, account, what)
            try:
                report = await pull(sessions)
            except Exception as exc:
                with suppress(SQLAlchemyError):  # the original failure is what to report
                    await _audit(
                        sessions, "connector.resync", account, before, {"error": repr(exc)}
                    )
                raise
            after = await _sync_of(sessions, account, what)
            after.update(finished=report.finished, pages=report.pages, published=report.published)
            after.update(rejected=len(report.rejected), platform_skus=report.platform_skus)
            await _audit(sessions, "connector.resync", account, before, after)
            return report

    async def pull(sessions: async_sessionmaker[AsyncSession]) -> ResyncReport:
        start = given
        if since == "last":  # with the scheduled resync's overlap: the ids dedupe it
            last = await last_order_sync(sessions, account)
            start = last - RESYNC_OVERLAP if last else None
        publisher = None
        if bootstrap is not None:
            kw = clients.client_kwargs(s)
            await ensure_topics(
                bootstrap,
                partitions=s.topic_partitions,
                replication=s.topic_replication,
                client=kw,
            )
            publisher = KafkaPublisher(bootstrap, client=kw)
            await publisher.start()
        try:
            with Progress(
                SpinnerColumn(),
                TextColumn("[bold]{task.description}"),
                TextColumn("{task.fields[detail]}"),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            ) as bar:
                task = bar.add_task(f"{plain(account)} {plain(what)}", total=None, detail="")

                def progress(r: ResyncReport) -> None:
                    bar.update(
                        task,
                        detail=f"{r.pages} page(s), {r.published} published, "
                        f"{len(r.rejected)} rejected",
                    )

                return await resync(
                    s,
                    account,
                    what=what,
                    since=start,
                    publisher=publisher or _NoPublisher(),
                    sessions=sessions,
                    progress=progress,
                    restart=restart,
                )
        finally:
            if publisher is not None:
                await publisher.stop()

    report = _run(go)
    if as_json:
        print_json(report.to_json())
        return
    if what == "orders":
        resumed = " (resumed from a stored cursor)" if report.resumed_from else ""
        out.print(
            f"{plain(account)}: {report.pages} page(s), {report.published} message(s) published"
            f"{resumed}, {len(report.rejected)} order(s) rejected"
        )
        for oid, reason in report.rejected:
            out.print(f"  [yellow]rejected[/] {plain(oid)}: {plain(reason)}")
    elif what == "stock":
        out.print(f"{plain(account)}: {report.platform_skus} SKU(s) on the shop")
        _print_drift(report.drift)
    else:
        out.print(
            f"{plain(account)}: {report.platform_skus} SKU(s) on the shop, "
            f"{len(report.unknown_skus)} unknown to the hub"
        )
        for sku in report.unknown_skus:
            out.print(f"  {plain(sku)}")


class _NoPublisher:
    async def publish(self, envelopes: Any) -> None:  # stock and products publish nothing
        raise AssertionError("nothing is published for this resync")


# --- push-stock ---------------------------------------------------------------------------------


@app.command("push-stock")
def push_stock_cmd(
    account: AccountArg,
    all_: Annotated[
        bool, typer.Option("--all", help="Every SKU, not only those that differ.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Push available-to-sell to the platform now."""
    from hub.shops import PushReport, push_stock

    s = settings()
    _check_account(s, account)

    async def go() -> PushReport:
        async with db_sessions(s) as sessions:
            try:
                report = await push_stock(s, account, all_skus=all_, sessions=sessions)
            except Exception as exc:
                with suppress(SQLAlchemyError):  # the original failure is what to report
                    await _audit(
                        sessions, "connector.push-stock", account, None, {"error": repr(exc)}
                    )
                raise
            before = {"platform": report.platform_before}
            after = {"pushed": report.pushed, "failed": report.failed}
            await _audit(sessions, "connector.push-stock", account, before, after)
            return report

    report = _run(go)
    if as_json:
        print_json(report.to_json())
    else:
        out.print(
            f"{plain(account)}: {len(report.pushed)} SKU(s) pushed, {report.unchanged} unchanged, "
            f"{len(report.failed)} refused"
        )
        for sku, reason in sorted(report.failed.items()):
            out.print(f"  [red]refused[/] {plain(sku)}: {plain(reason)}")
    raise typer.Exit(1 if report.failed else 0)


# --- reconcile (top level) ----------------------------------------------------------------------


def reconcile_cmd(
    account: AccountArg,
    fix: Annotated[bool, typer.Option("--fix", help="Set the hub's values on the shop.")] = False,
    actor: Annotated[str, typer.Option(help="Who reconciles (audit log).")] = "cli",
    as_json: JsonOpt = False,
) -> None:
    """Compare the platform's stock with the hub's, list the drift, and with --fix correct it.

    Exits 1 if drift remains after the run. If webhooks may have been lost, run
    `hub connector resync ACCOUNT` first, so the hub knows every sale before the shop is set.
    """
    from hub.shops import ReconcileReport, reconcile

    s = settings()
    _check_account(s, account)

    async def go() -> ReconcileReport:
        async with db_sessions(s) as sessions:
            return await reconcile(s, account, fix=fix, sessions=sessions, actor=actor)

    report = _run(go)
    if as_json:
        print_json(report.to_json())
    else:
        out.print(
            f"{plain(account)} (channel {plain(report.channel)}): {report.compared} SKU(s) compared"
        )
        _print_drift(report.drift)
        if fix:
            out.print(f"fixed {len(report.fixed)}, refused {len(report.failed)}")
            for sku, reason in sorted(report.failed.items()):
                out.print(f"  [red]refused[/] {plain(sku)}: {plain(reason)}")
            if report.remaining:
                out.print("[red]still differing:[/]")
                _print_drift(report.remaining)
        if report.unknown_to_hub:
            out.print(f"[dim]not managed by the hub: {plain(', '.join(report.unknown_to_hub))}[/]")
        if report.not_on_platform:
            out.print(f"[dim]not on the shop: {plain(', '.join(report.not_on_platform))}[/]")
    raise typer.Exit(0 if report.ok else 1)


def register(root: typer.Typer) -> None:
    """Add the top-level `hub reconcile` (once, however often this is called)."""
    if any(c.name == "reconcile" for c in root.registered_commands):
        return
    root.command("reconcile")(reconcile_cmd)


# --- helpers ------------------------------------------------------------------------------------


def _check_account(s: Settings, name: str) -> None:
    from hub.config import SHOP_CONNECTORS

    cfg = s.hub.accounts.get(name)
    if cfg is None:
        raise fail(f"unknown account {name!r}: see `hub connector list`", 2)
    if cfg.connector not in SHOP_CONNECTORS:
        raise fail(f"account {name!r} is a {cfg.connector} account, not a shop", 2)


async def _sync_of(
    sessions: async_sessionmaker[AsyncSession], account: str, what: str
) -> dict[str, Any]:
    from hub.shops import sync_state

    return dict((await sync_state(sessions)).get(account, {}).get(what, {}))


async def _audit(
    sessions: async_sessionmaker[AsyncSession],
    action: str,
    account: str,
    before: dict[str, Any] | None,
    after: dict[str, Any],
) -> None:
    """An audit row in its own transaction: these operations change outside systems, not the
    store, so the row records what was attempted and how it ended, failures included."""
    from hub.audit import record

    async with sessions() as session, session.begin():
        await record(session, caller(), action, account, before=before, after=after)


def _print_drift(drift: list[Any]) -> None:
    if not drift:
        out.print("[green]no drift[/]")
        return
    t = Table()
    for col in ("sku", "shop", "hub", "difference"):
        t.add_column(col)
    for d in drift:
        t.add_row(plain(d.sku), plain(d.platform), plain(d.hub), f"{d.difference:+d}")
    out.print(t)


def _attach_to_root() -> None:
    """`hub.cli.main` mounts `app` as `hub connector` but calls `register` only for modules
    without an `app`, so the top-level `reconcile` attaches itself when the root is loading."""
    root = getattr(sys.modules.get("hub.cli.main"), "app", None)
    if isinstance(root, typer.Typer):
        register(root)


_attach_to_root()
