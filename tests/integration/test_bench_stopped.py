"""`hub bench` stopped with SIGTERM (a CI timeout, `kill`) stops what it started: the role
processes and the broker run in sessions of their own, so nothing else would stop them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from hub.bench.roles import hub_command
from hub.store.db import make_engine

pytestmark = pytest.mark.integration


def _children(pid: int) -> dict[int, str]:
    """Live child processes of `pid`: their command lines."""
    out: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(stat[1]) == pid and stat[0] != "Z":
            out[int(entry.name)] = cmd
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


async def _drop(server_url: str, name: str) -> None:
    engine = make_engine(server_url)
    try:
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await engine.dispose()


def test_sigterm_stops_the_roles_and_the_broker(tmp_path: Path, pg_server_url: str) -> None:
    name = f"hub_bench_stopped_{os.getpid()}"
    url = pg_server_url.rsplit("/", 1)[0] + f"/{name}"
    bench = subprocess.Popen(
        [
            *hub_command(),
            "bench",
            "--database-url",
            url,
            "--phases",
            "uniform",
            "--orders",
            "2000000",  # far more than it gets to send
            "--skus",
            "50",
            "--out",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "HUB_VAR_DIR": str(tmp_path / "var")},
    )
    started: dict[int, str] = {}
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            started = _children(bench.pid)
            roles = [c for c in started.values() if " run " in c]
            if len(roles) == 3 and any("tansu" in c for c in started.values()):
                break
            assert bench.poll() is None, bench.stdout.read() if bench.stdout else ""
            time.sleep(0.2)
        else:
            pytest.fail(f"the roles and the broker did not start: {started}")
        bench.send_signal(signal.SIGTERM)
        output = bench.communicate(timeout=60)[0].decode()
    finally:
        if bench.poll() is None:
            bench.kill()
        for pid in [p for p in started if _alive(p)]:  # whatever it left behind
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
        asyncio.run(_drop(pg_server_url, name))
    assert bench.returncode == 130, output
    assert "benchmark stopped" in output
    assert [cmd for pid, cmd in started.items() if _alive(pid)] == []
