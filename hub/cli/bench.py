"""`hub bench`: the flash-sale benchmark (see BENCHMARKS.md)."""

from __future__ import annotations

import asyncio
import json
from enum import StrEnum
from pathlib import Path

import typer
from rich.console import Console

from hub.cli.common import plain, run_loop
from hub.config import CORE_BATCH_SIZE
from hub.observe import configure_logging


class Database(StrEnum):
    postgresql = "postgresql"
    sqlite = "sqlite"


def bench(
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout"),
    db: Database = typer.Option(Database.postgresql, "--db", help="Database of the run"),
    database_url: str | None = typer.Option(
        None,
        "--database-url",
        help="Benchmark database (dropped and recreated); default "
        "postgresql+asyncpg://postgres@127.0.0.1:5432/hub_bench",
    ),
    orders: int = typer.Option(10000, "--orders", min=1, help="Orders per reservation phase"),
    skus: int = typer.Option(10000, "--skus", min=1, help="SKUs of the uniform/Zipf phases"),
    seconds: float = typer.Option(10.0, "--seconds", min=0.5, help="Length of each webhook phase"),
    out: Path = typer.Option(Path("var/bench"), "--out", help="Where bench.json/png go"),
    phases: str = typer.Option(
        "uniform,zipf,hot,flash,webhooks", "--phases", help="Comma-separated subset to run"
    ),
    consumers: int = typer.Option(1, "--consumers", min=1, help="Core consumers in the process"),
    batch_size: int = typer.Option(CORE_BATCH_SIZE, "--batch-size", min=1, help="Core batch size"),
    concurrency: int = typer.Option(64, "--concurrency", min=1, help="Webhook connections"),
    client: str = typer.Option(
        "raw", "--client", help="Webhook sender: raw (lean HTTP/1.1 keep-alive) or httpx"
    ),
    profile: bool = typer.Option(False, "--profile", help="pyinstrument profile to --out"),
    one_process: bool = typer.Option(
        False,
        "--one-process",
        help="Core, relay and gateway in the benchmark's process as `hub serve` runs them "
        "(default: each role in its own `hub run ROLE` process)",
    ),
    memory_seconds: float = typer.Option(
        600.0,
        "--memory-seconds",
        min=1.0,
        help="Length of the `memory` phase (not in a default run)",
    ),
    webhook_rate: float = typer.Option(
        0.0,
        "--webhook-rate",
        min=0.0,
        help="Webhooks per second of the paced latency phase (0: half the measured maximum)",
    ),
    memory_rate: int = typer.Option(
        1000, "--memory-rate", min=1, help="Orders per second of the `memory` phase"
    ),
) -> None:
    """Measure reservations, webhook intake and end-to-end latency against the raw limits of
    the same broker and database; exit 1 if any order was oversold or not decided exactly once."""
    from hub.bench import BenchOptions, run_bench
    from hub.bench.report import print_table, write_json, write_plot
    from hub.bench.runner import ALL_PHASES

    configure_logging("console", "WARNING")
    console = Console(stderr=True)
    chosen = tuple(p.strip() for p in phases.split(",") if p.strip())
    unknown = [p for p in chosen if p not in ALL_PHASES]
    if unknown or not chosen:
        console.print(
            f"[red]unknown phase(s) {plain(unknown)}: choose from {plain(', '.join(ALL_PHASES))}"
        )
        raise typer.Exit(2)
    opts = BenchOptions(
        db=db.value,
        database_url=database_url,
        orders=orders,
        skus=skus,
        seconds=seconds,
        out=out,
        phases=chosen,
        consumers=consumers,
        batch_size=batch_size,
        concurrency=concurrency,
        profile=profile,
        client=client,
        split=not one_process,
        memory_seconds=memory_seconds,
        memory_rate=memory_rate,
        webhook_rate=webhook_rate,
    )
    try:
        bench_run = run_loop(run_bench(opts, say=lambda m: console.print(f"[dim]{plain(m)}")))
    except (KeyboardInterrupt, asyncio.CancelledError):
        console.print("[yellow]benchmark stopped; its roles and broker were stopped too")
        raise typer.Exit(130) from None
    result = bench_run.result
    write_json(result, out)
    try:
        plot = write_plot(bench_run.tl, out)
        result["plot"] = str(plot)
    except Exception as exc:  # the figures matter more than the picture
        console.print(f"[yellow]plot not written: {plain(repr(exc))}")
    print_table(result, console)
    console.print(f"[dim]wrote {plain(out / 'bench.json')} and {plain(out / 'bench.png')}")
    if as_json:
        print(json.dumps(result, default=str))
    if not result.get("ok"):
        raise typer.Exit(1)


def register(root: typer.Typer) -> None:
    root.command("bench")(bench)
