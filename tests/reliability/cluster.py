"""Hub roles as real operating-system processes (`hub run ROLE`), for crash tests.

Each role gets its own HTTP port, var dir and log file; `kill9` sends SIGKILL (no handler, no
flush, no offset commit), `start` brings it back. Every process started here is killed by
`Cluster.close`, which callers run in a `finally` block.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import text

from hub.kafka.embedded import free_port
from hub.store.db import make_engine

HUB = str(Path(sys.executable).with_name("hub"))
LOCAL_PG = os.environ.get("HUB_TEST_POSTGRES", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


def role_env(bootstrap: str, db_url: str, workdir: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("HUB_") or k == "HUB_TEST_POSTGRES"
    }
    env.update(
        HUB_KAFKA_BOOTSTRAP=bootstrap,
        HUB_DATABASE_URL=db_url,
        HUB_VAR_DIR=str(workdir / "var"),
        HUB_CORE_GROUP="hub-core",
        HUB_CONSUMER_SESSION_TIMEOUT_MS="6000",
        HUB_LOG_FORMAT="json",
        HUB_RECONCILE_INTERVAL_S="0",
    )
    env.update(extra)
    return env


def hub_command(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 60) -> str:
    """Run a one-shot `hub` command; its output, or an AssertionError with it."""
    done = subprocess.run(
        [HUB, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        raise AssertionError(f"hub {' '.join(args)} exited {done.returncode}:\n{done.stdout}")
    return done.stdout


@dataclass
class RoleProcess:
    name: str
    role: str
    env: dict[str, str]
    cwd: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    kills: int = 0
    kills_while_running: int = 0

    @property
    def log(self) -> Path:
        return self.cwd / f"{self.name}.log"

    def start(self) -> None:
        env = {**self.env, "HUB_HTTP_PORT": str(free_port())}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [HUB, "run", self.role],
                env=env,
                cwd=self.cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1

    def running(self) -> bool:
        """This incarnation said "hub running" (its roles are up), as far as the log shows."""
        try:
            seen = self.log.read_bytes().count(b'"hub running"')
        except OSError:
            return False
        return seen >= self.starts

    def kill9(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        if self.running():
            self.kills_while_running += 1
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.kills += 1

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class Cluster:
    roles: list[RoleProcess] = field(default_factory=list)

    def add(self, name: str, role: str, env: dict[str, str], cwd: Path) -> RoleProcess:
        r = RoleProcess(name, role, env, cwd)
        self.roles.append(r)
        return r

    def close(self) -> None:
        for r in self.roles:
            r.close()


async def _admin(sql: str) -> None:
    engine = make_engine(LOCAL_PG)
    try:
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


async def create_pg_database() -> tuple[str, str]:
    """A fresh PostgreSQL database on the local server: (url, name)."""
    name = f"hub_rel_{uuid.uuid4().hex[:8]}"
    await _admin(f'CREATE DATABASE "{name}"')
    return LOCAL_PG.rsplit("/", 1)[0] + f"/{name}", name


async def drop_pg_database(name: str) -> None:
    await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def until(predicate, limit: float, what: str, step: float = 0.25) -> float:  # type: ignore[no-untyped-def]
    """Wait for an async predicate, at most `limit` seconds; the seconds it took."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while loop.time() - start < limit:
        if await predicate():
            return loop.time() - start
        await asyncio.sleep(step)
    raise AssertionError(f"not reached within {limit:.0f}s: {what}")
