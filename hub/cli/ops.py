"""`hub lag`: consumer lag per group, topic and partition, in messages and seconds, with a status."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer
from rich.table import Table

from hub.cli.common import fail, out, plain, print_json, run, settings


def register(root: typer.Typer) -> None:
    root.command("lag")(lag)


def lag(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")] = (
        False
    ),
    watch: Annotated[
        float | None,
        typer.Option(help="Keep going: print again every SECONDS (one JSON document each)."),
    ] = None,
    group: Annotated[
        list[str] | None,
        typer.Option("--group", "-g", help="Only this group (repeatable); default: every group."),
    ] = None,
    samples: Annotated[
        int, typer.Option(min=1, help="Samples before the first report (1: only OK or ERR).")
    ] = 3,
    interval: Annotated[float, typer.Option(min=0.0, help="Seconds between samples.")] = 1.0,
) -> None:
    """Consumer lag per group, topic and partition, in messages and seconds, with a status.

    The status (OK, WARNING, STALL, STOP, REWIND, ERR) follows Burrow's rules over the samples
    taken, so a few samples a second apart come first. Lag on the embedded broker can be short by
    up to one producer batch per partition (see hub/ops/lag.py).
    """
    from aiokafka.errors import KafkaError

    from hub.core.consumer import CORE_TOPICS
    from hub.kafka import clients
    from hub.ops.lag import LagMonitor

    s = settings()
    try:
        bootstrap = clients.bootstrap(s)
    except clients.NoBroker as exc:
        raise fail(str(exc)) from None
    groups = list(group) if group else None
    topics = {s.core_group: list(CORE_TOPICS)}
    if groups is not None:
        topics = {g: t for g, t in topics.items() if g in groups}

    def show(snapshot: dict[str, Any]) -> None:
        if as_json:
            print_json(snapshot)
        else:
            out.print(_table(snapshot))

    async def go() -> None:
        monitor = LagMonitor(
            bootstrap,
            clients.client_kwargs(s),
            groups,
            topics=topics,
            window=max(10, samples),
            min_samples=max(2, min(3, samples)),
        )
        async with monitor:
            for i in range(samples):
                if i:
                    await asyncio.sleep(interval)
                snapshot = await monitor.poll()
            show(snapshot)
            while watch:
                await asyncio.sleep(watch)
                show(await monitor.poll())

    try:
        run(go())
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
    except (KafkaError, OSError) as exc:
        raise fail(f"broker unreachable at {bootstrap}: {exc}") from None


_STYLE = {"OK": "green", "WARNING": "yellow"}


def _table(snapshot: dict[str, Any]) -> Table:
    t = Table(title=f"consumer lag at {plain(snapshot.get('time'))}")
    for col in ("group", "status", "topic", "partition", "committed", "end", "lag", "lag (s)"):
        t.add_column(col, justify="right" if col in ("partition", "lag", "lag (s)") else "left")
    for name, g in sorted(snapshot.get("groups", {}).items()):
        style = _STYLE.get(g["status"], "bold red")
        t.add_row(
            f"[bold]{plain(name)}[/]",
            f"[{style}]{plain(g['status'])}[/]",
            "",
            "",
            "",
            "",
            f"{g['max_lag']} max / {g['sum_lag']}",
            f"{g['max_lag_seconds']:.1f}",
        )
        if g.get("error"):
            t.add_row("", f"[red]{plain(g['error'])}[/]", "", "", "", "", "", "")
        for p in g["partitions"]:
            t.add_row(
                "",
                plain(p["status"]),
                plain(p["topic"]),
                str(p["partition"]),
                "-" if p["committed"] is None else str(p["committed"]),
                str(p["end"]),
                str(p["lag"]),
                f"{p['lag_seconds']:.1f}",
            )
    return t
