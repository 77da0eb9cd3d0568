"""Soak: the kill -9 crash scenario, round after round on SQLite and PostgreSQL, for as long as
asked; prints each round's report and what the whole run proved. Exit 1 if any check failed.

    .venv/bin/python tests/reliability/soak.py --seconds 3600 [--round 300] [--database both]

Run it as a script from the repository root: a dependency (badx12) installs a top-level `tests`
package into site-packages that would shadow this repository's `tests` under `python -m`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _use_this_repository() -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    pkg = types.ModuleType("tests")
    pkg.__path__ = [str(ROOT / "tests")]
    sys.modules["tests"] = pkg


async def soak(seconds: float, round_seconds: float, databases: list[str]) -> int:
    from tests.reliability.cluster import create_pg_database, drop_pg_database
    from tests.reliability.crash import CrashReport, run_crash

    deadline = time.monotonic() + seconds
    reports: list[CrashReport] = []
    n = 0
    while time.monotonic() < deadline or not reports:
        database = databases[n % len(databases)]
        length = max(20.0, min(round_seconds, deadline - time.monotonic()))
        with tempfile.TemporaryDirectory(prefix="hub-soak-") as tmp:
            name = None
            if database == "sqlite":
                url = f"sqlite+aiosqlite:///{Path(tmp) / 'hub.db'}"
            else:
                url, name = await create_pg_database()
            try:
                report = await run_crash(url, Path(tmp) / "run", seconds=length)
            finally:
                if name:
                    await drop_pg_database(name)
        reports.append(report)
        print(report.line(), flush=True)
        for p in report.problems:
            print(f"  PROBLEM: {p}", flush=True)
        n += 1
    failed = [r for r in reports if r.problems]
    kills: dict[str, int] = {}
    for r in reports:
        for role, k in r.kills.items():
            kills[role] = kills.get(role, 0) + k
    print(
        f"soak: {len(reports)} rounds in {sum(r.seconds for r in reports):.0f}s, "
        f"{sum(r.total_kills for r in reports)} kill -9 ({kills}), "
        f"{sum(r.messages for r in reports)} messages, {sum(r.orders for r in reports)} orders, "
        f"{sum(r.duplicates_sent for r in reports)} duplicate deliveries, "
        f"{sum(len(r.checks) for r in reports)} checks; "
        + (
            "every order decided exactly once, nothing lost, no oversell, totals match sources"
            if not failed
            else f"{len(failed)} round(s) FAILED"
        ),
        flush=True,
    )
    return 1 if failed else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, required=True, help="total time to run")
    parser.add_argument("--round", type=float, default=300.0, help="stream length of one round")
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    databases = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    _use_this_repository()
    raise SystemExit(asyncio.run(soak(args.seconds, args.round, databases)))


if __name__ == "__main__":
    main()
