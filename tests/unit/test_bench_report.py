"""The benchmark's table: figures as measured, yes/no for flags, and each target's mark."""

from __future__ import annotations

import io

from rich.console import Console

from hub.bench.report import table


def _rows(result: dict) -> dict[str, str]:
    """The printed table's lines by their figure's label."""
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(table(result))
    lines = out.getvalue().splitlines()
    return {line.split("│")[1].strip(): line for line in lines if "│" in line}


def test_flags_read_yes_or_no_and_targets_show_their_side() -> None:
    rows = _rows(
        {
            "database": "postgresql",
            "broker": "embedded (tansu)",
            "webhooks_per_s": 431,
            "webhook_target_half_p99_ms": 5336.79,
            "webhook_target_half_above_max": True,
            "targets": {
                "webhooks_per_s": {"target": 1500, "measured": 431, "met": False},
                "webhook_target_half_p99_ms": {"target": 50, "measured": 5336.79, "met": False},
            },
        }
    )
    assert "≥ 1,500" in rows["webhooks durably published, max (1/s)"]
    assert "< 50" in rows["webhook latency p99 at half the target (ms)"]
    assert "5336.79" in rows["webhook latency p99 at half the target (ms)"]
    flag = "half the target above the measured max (queueing)"
    assert "yes" in rows[flag]
    assert "no" in _rows({"webhook_target_half_above_max": False})[flag].split("queueing)")[1]
