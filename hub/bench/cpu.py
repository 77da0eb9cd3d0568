"""CPU time per order, per part of the system: what each order or webhook of a phase cost the
hub's roles, the broker, the database server, the load generator and the benchmark's own process.

On two cores, the sum over the parts is what bounds a phase's rate when the machine is saturated:
`cores ÷ CPU per order` is the machine's ceiling at that cost, whatever the pipeline's shape.

Read from `/proc/PID/stat` (user + system time, Linux); elsewhere a part reads as unknown and the
figures are left out. The database server is every process named `postgres` (the benchmark runs
alone on its machine); SQLite runs inside the core and has no part of its own.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path

PROC = Path("/proc")
# The parts that are the benchmark's own load: its sender of webhooks and its process (which
# sends orders and watches the hub's output).
LOAD = frozenset({"loadgen", "bench"})


def _ticks() -> int:
    with contextlib.suppress(AttributeError, ValueError, OSError):
        return os.sysconf("SC_CLK_TCK")
    return 100


TICKS = _ticks()


def cpu_seconds(pid: int, *, reaped: bool = False) -> float | None:
    """User + system CPU seconds of one process, or None when it cannot be read; `reaped` adds
    those of its children that ended and were waited for."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        # After the command name (which may hold spaces and parentheses): state is field 3,
        # utime, stime, cutime and cstime fields 14 to 17.
        fields = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])
        if reaped:
            ticks += int(fields[13]) + int(fields[14])
        return ticks / TICKS
    return None


def pids_named(name: str) -> list[int]:
    """Every process whose command name is `name`."""
    found = []
    with contextlib.suppress(OSError):
        for entry in PROC.iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    if (entry / "comm").read_text().strip() == name:
                        found.append(int(entry.name))
    return found


def server_seconds(name: str) -> float | None:
    """CPU seconds of a server made of many processes (PostgreSQL: a postmaster and a backend
    per connection): every live process's own, plus those of its children that ended, so a
    backend that exits between two readings keeps counting. None when none could be read."""
    times = [t for pid in pids_named(name) if (t := cpu_seconds(pid, reaped=True)) is not None]
    return sum(times) if times else None


Reading = dict[str, float | None]


class CpuMeter:
    """Named parts, each a function giving its CPU seconds so far (None: unknown)."""

    def __init__(self, parts: Mapping[str, Callable[[], float | None]]) -> None:
        self.parts = dict(parts)

    def read(self) -> Reading:
        return {name: part() for name, part in self.parts.items()}


def per_order(before: Reading, after: Reading, orders: int) -> dict[str, float] | None:
    """Microseconds of CPU per order for each part known at both ends, and their `total`;
    None without orders or without any part known."""
    if orders <= 0:
        return None
    out: dict[str, float] = {}
    for name, end in after.items():
        start = before.get(name)
        if start is not None and end is not None and end >= start:
            out[name] = round(1e6 * (end - start) / orders, 1)
    if not out:
        return None
    out["total"] = round(sum(out.values()), 1)
    return out


def cores() -> int:
    """CPUs this process may run on."""
    with contextlib.suppress(AttributeError, OSError):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def ceiling(costs: Mapping[str, float], n_cores: int) -> int | None:
    """Orders per second the machine's cores allow at these costs (every part's CPU counted)."""
    spent = costs.get("total")
    return round(n_cores * 1e6 / spent) if spent else None


def line(costs: Mapping[str, float], top: int | None = None, n_cores: int | None = None) -> str:
    """`core 180 · relay 40 · … = 350` (µs), the parts largest first; with the ceiling `top`,
    `… → at most 5,714/s on 2 cores`."""
    parts = sorted(((k, v) for k, v in costs.items() if k != "total"), key=lambda kv: -kv[1])
    text = " · ".join(f"{k} {v:,.0f}" for k, v in parts) + f" = {costs.get('total', 0):,.0f}"
    return text + (f" → at most {top:,}/s on {n_cores} cores" if top else "")
