"""PostgreSQL drops the hub's connections mid-stream: the core and the relay retry and resume,
and no message has a second effect.

Every few seconds all backends of the test's own database are terminated
(`pg_terminate_backend`), which is what a server restart does to the hub's connections, without
restarting the cluster other tests share. Then the same checks as the crash test run.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from hub.app import Runtime
from hub.config import ChannelRule, HubConfig, Settings
from hub.store.db import make_engine
from hub.store.models import Stock
from tests.builders import counted
from tests.reliability.cluster import (
    LOCAL_PG,
    Cluster,
    create_pg_database,
    drop_pg_database,
    role_env,
    until,
)
from tests.reliability.crash import SKUS, STOCK_PER_SKU, CrashReport, Driver, _check, _settle

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TERMINATIONS = 6


async def test_core_and_relay_resume_after_their_postgres_connections_are_killed(
    kafka, tmp_path: Path
) -> None:
    url, name = await create_pg_database()
    settings = Settings(
        kafka_bootstrap=kafka.bootstrap,
        database_url=url,
        var_dir=tmp_path / "var",
        core_group=f"core-{uuid.uuid4().hex[:6]}",
        consumer_session_timeout_ms=6000,
    )
    settings.__dict__["hub"] = HubConfig(channels={"online": ChannelRule()})
    rt = Runtime(settings)
    admin = make_engine(LOCAL_PG)
    report = CrashReport("postgresql")
    terminated = 0
    try:
        await rt.start({"core", "relay"})
        assert rt.publisher is not None and rt.sessions is not None
        driver = Driver(rt.publisher, random.Random(7))
        await driver.send([counted(sku, STOCK_PER_SKU, cid="seed") for sku in SKUS])

        async def seeded() -> bool:
            async with rt.sessions() as s:  # type: ignore[misc]
                n = (await s.execute(select(func.count()).select_from(Stock))).scalar_one()
            return bool(n == len(SKUS))

        await until(seeded, 60, "stock counted")
        t0 = time.monotonic()
        n = 0
        next_kill = t0 + 2.0
        while terminated < TERMINATIONS and time.monotonic() - t0 < 60:
            await driver.order(n)
            n += 1
            if n % 25 == 0:
                with contextlib.suppress(Exception):  # the driver's own connection was cut too
                    await driver.follow_up(rt.sessions)
            if time.monotonic() >= next_kill:
                async with admin.connect() as conn:
                    killed = (
                        await conn.execute(
                            text(
                                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                "WHERE datname = :db AND pid <> pg_backend_pid()"
                            ),
                            {"db": name},
                        )
                    ).scalar_one()
                    await conn.commit()
                report.checks.append(f"terminated {killed} backends")
                terminated += 1
                next_kill = time.monotonic() + 3.0
            await asyncio.sleep(0.03)
        report.checks.clear()
        report.orders, report.messages = len(driver.placed), len(driver.sent)
        env = role_env(kafka.bootstrap, url, tmp_path)
        await _settle(rt.sessions, driver, report, _NoRoles())
        await _check(kafka.bootstrap, rt.sessions, driver, report, env, tmp_path)
        print(
            f"database outage: {terminated} rounds of pg_terminate_backend, "
            f"{report.messages} messages for {report.orders} orders, "
            f"{report.reserved} reserved / {report.rejected} rejected; checks: "
            + "; ".join(report.checks)
        )
        assert report.problems == []
        assert terminated == TERMINATIONS
    finally:
        await rt.stop()
        await admin.dispose()
        await drop_pg_database(name)


class _NoRoles(Cluster):
    """No role processes here: the roles run in this process."""
