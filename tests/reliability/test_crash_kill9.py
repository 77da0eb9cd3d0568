"""kill -9 of core replicas and the relay at random moments, as real processes, on SQLite and
PostgreSQL: nothing lost, every order decided once, no oversell, the store's totals match their
sources. `HUB_SOAK_SECONDS` makes the stream as long as asked (default: a CI-sized run)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.reliability.cluster import create_pg_database, drop_pg_database
from tests.reliability.crash import run_crash

SECONDS = float(os.environ.get("HUB_SOAK_SECONDS", "60"))
MIN_KILLS = 50

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
async def test_random_kill9_of_roles_loses_nothing_and_decides_every_order_once(
    database: str, tmp_path: Path
) -> None:
    name = None
    if database == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"
    else:
        url, name = await create_pg_database()
    try:
        report = await run_crash(url, tmp_path / "run", seconds=SECONDS)
    finally:
        if name:
            await drop_pg_database(name)
    print(report.line())
    assert report.problems == []
    assert report.total_kills >= MIN_KILLS, report.line()
    assert min(report.kills.values()) >= 5, report.line()
