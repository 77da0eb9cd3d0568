"""The benchmark's outputs: a table on stderr, the JSON document, and a PNG of throughput,
latency and memory over time (matplotlib when installed, else a small built-in renderer)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from hub.bench import cpu
from hub.bench.runner import Timeline

ROWS = (
    ("uniform_orders_per_s", "reservations, uniform SKUs (orders/s)"),
    ("zipf_orders_per_s", "reservations, Zipf popularity (orders/s)"),
    ("hot_sku_orders_per_s", "reservations, one hot SKU (orders/s)"),
    ("flash_orders_per_s", "reservations, flash sale (orders/s)"),
    ("raw_kafka_produce_consume_per_s", "limit: aiokafka produce+consume (msg/s)"),
    ("raw_kafka_produce_consume_after_per_s", "limit: aiokafka produce+consume at the end"),
    ("raw_update_per_s", "limit: conditional UPDATE, 1000/tx (rows/s)"),
    ("raw_update_hot_row_per_s", "limit: conditional UPDATE, one row (rows/s)"),
    ("raw_limit_orders_per_s", "raw pipe limit (Kafka's better, min of the two, orders/s)"),
    ("uniform_ratio_to_raw_limit", "uniform ÷ raw limit"),
    ("hot_sku_ratio_to_raw_limit", "hot SKU ÷ raw limit"),
    ("hot_to_uniform_ratio", "hot SKU ÷ uniform"),
    ("webhooks_per_s", "webhooks durably published, max (1/s)"),
    ("webhook_rate_at_half", "webhook rate for latency (1/s)"),
    ("webhook_p50_ms", "webhook latency p50 at half (ms)"),
    ("webhook_p99_ms", "webhook latency p99 at half (ms)"),
    ("webhook_target_half_rate", "webhook rate at half the 1,500/s target (1/s)"),
    ("webhook_target_half_p50_ms", "webhook latency p50 at half the target (ms)"),
    ("webhook_target_half_p99_ms", "webhook latency p99 at half the target (ms)"),
    ("webhook_target_half_above_max", "half the target above the measured max (queueing)"),
    ("e2e_p50_ms", "webhook → stock level p50 (ms)"),
    ("e2e_p99_ms", "webhook → stock level p99 (ms)"),
    ("peak_rss_mb", "peak RSS, hub (largest role process, MB)"),
    ("core_peak_rss_mb", "peak RSS, core role (MB)"),
    ("relay_peak_rss_mb", "peak RSS, relay role (MB)"),
    ("gateway_peak_rss_mb", "peak RSS, gateway role (MB)"),
    ("memory_orders_decided", "memory phase: orders decided"),
    ("core_rss_after_warmup_mb", "memory phase: core RSS after warm-up (MB)"),
    ("core_rss_end_mb", "memory phase: core RSS at the end (MB)"),
    ("core_rss_slope_mb_per_100k_orders", "memory phase: core RSS slope (MB/100k orders)"),
    ("broker_peak_rss_mb", "peak RSS, broker (MB)"),
    ("oversell", "oversell (units)"),
    ("orders_sent", "orders sent"),
    ("orders_decided", "orders decided in the store"),
    ("orders_decided_more_than_once", "orders decided more than once"),
    ("wall_seconds", "run time (s)"),
)


def table(result: dict[str, Any]) -> Table:
    t = Table(title=f"hub bench — {result.get('database')}, {result.get('broker')}")
    t.add_column("figure")
    t.add_column("value", justify="right")
    t.add_column("target", justify="right")
    targets = result.get("targets", {})
    result = {
        **result,
        **{f"{k}_peak_rss_mb": v for k, v in (result.get("role_peak_rss_mb") or {}).items()},
    }
    for key, label in ROWS:
        if key not in result or result[key] is None:
            continue
        value = result[key]
        if isinstance(value, bool):
            shown = "yes" if value else "no"
        else:
            shown = f"{value:,}" if isinstance(value, int) else str(value)
        target = targets.get(key)
        mark = ""
        if target and target.get("met") is not None:
            op = "<" if key.endswith("_ms") else "≥"
            mark = f"{'[green]' if target['met'] else '[red]'}{op} {target['target']:,}[/]"
        t.add_row(label, shown, mark)
    return t


def print_table(result: dict[str, Any], console: Console) -> None:
    console.print(table(result))
    ceilings = result.get("cpu_ceiling_orders_per_s") or {}
    for phase, costs in (result.get("cpu_us_per_order") or {}).items():
        line = cpu.line(costs, ceilings.get(phase), result.get("cores"))
        console.print(f"CPU per order, {phase} (µs): {line}")
    written = result.get("wal_bytes_per_order") or {}
    for phase, levels in (result.get("stock_levels_per_order") or {}).items():
        wal = f"WAL {written[phase]:,} bytes · " if phase in written else ""
        console.print(f"Per order, {phase}: {wal}stock levels published {levels:.4f}")
    for p in result.get("invariant_problems") or []:
        console.print(f"[red]✗ {p}")
    console.print(
        "[bold green]correct: no oversell, every order decided once[/]"
        if result.get("ok")
        else "[bold red]correctness check failed[/]"
    )


def write_json(result: dict[str, Any], out: Path) -> Path:
    path = out / "bench.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return path


def throughput_series(tl: Timeline, window: float = 1.0) -> list[tuple[float, float, str]]:
    """Decisions per second over a sliding `window`, from the cumulative samples."""
    out = []
    pts = tl.points
    j = 0
    for i, (t, decided, _, phase) in enumerate(pts):
        while j < i and pts[j][0] < t - window:
            j += 1
        if i > j:
            dt = t - pts[j][0]
            out.append((t, (decided - pts[j][1]) / dt if dt > 0 else 0.0, phase))
    return out


def write_plot(tl: Timeline, out: Path) -> Path:
    path = out / "bench.png"
    try:
        _matplotlib(tl, path)
    except ImportError:
        from hub.bench import png

        png.plot(
            path,
            [
                ("orders decided/s", [(t, v) for t, v, _ in throughput_series(tl)]),
                ("webhook latency ms", [(t, ms) for t, ms, s in tl.latencies if s != "e2e"]),
                ("webhook → level ms", [(t, ms) for t, ms, s in tl.latencies if s == "e2e"]),
                ("RSS MB", [(t, m) for t, _, m, _ in tl.points]),
            ],
        )
    return path


def _matplotlib(tl: Timeline, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, figsize=(11, 9), sharex=True)
    series = throughput_series(tl)
    ax1.plot([t for t, _, _ in series], [v for _, v, _ in series], lw=1.2)
    ax1.set_ylabel("orders decided / s")
    if tl.backlog:
        twin = ax1.twinx()
        twin.plot([t for t, _ in tl.backlog], [b for _, b in tl.backlog], lw=0.8, c="tab:purple")
        twin.set_ylabel("outbox backlog (rows)", color="tab:purple")
    ax1.set_title("hub bench: throughput, latency and memory over time")
    _phases(ax1, tl)
    for name, colour in (
        ("webhook at max", "tab:orange"),
        ("webhook at half", "tab:blue"),
        ("webhook at half the target", "tab:cyan"),
    ):
        pts = [(t, ms) for t, ms, s in tl.latencies if s == name]
        if pts:
            ax2.scatter([t for t, _ in pts], [ms for _, ms in pts], s=2, c=colour, label=name)
    e2e = [(t, ms) for t, ms, s in tl.latencies if s == "e2e"]
    if e2e:
        ax2.scatter([t for t, _ in e2e], [ms for _, ms in e2e], s=2, c="tab:red", label="e2e")
    if tl.latencies:
        ax2.set_yscale("log")
        ax2.legend(loc="upper left", markerscale=4)
    ax2.set_ylabel("latency (ms)")
    ax3.plot([p[0] for p in tl.points], [p[2] for p in tl.points], lw=1.2, c="tab:green")
    ax3.set_ylabel("hub RSS (MB)")
    ax3.set_xlabel("seconds since start")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _phases(ax: Any, tl: Timeline) -> None:
    """Label each phase where it starts."""
    last = None
    for t, _, _, phase in tl.points:
        if phase != last:
            ax.axvline(t, color="grey", lw=0.5, ls=":")
            ax.text(t, 1.0, f" {phase}", transform=ax.get_xaxis_transform(), fontsize=7, va="top")
            last = phase
