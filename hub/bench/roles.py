"""The hub's roles as separate processes, the way a scaled deployment runs them (`hub run core`,
`hub run relay`, `hub run gateway`): each role gets its own interpreter and event loop, so the
gateway's request handling does not take turns with the core's batches, and each role's memory
is measured on its own.

The processes are the real command line, configured through the documented environment
(`HUB_KAFKA_BOOTSTRAP`, `HUB_DATABASE_URL`, `HUB_CONFIG`, …), not a test double.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from hub.kafka.embedded import free_port

ROLES = ("core", "relay", "gateway")


def hub_command() -> list[str]:
    """The `hub` entry point of this interpreter's environment."""
    exe = Path(sys.executable).parent / "hub"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("hub")
    if found:
        return [found]
    return [sys.executable, "-c", "from hub.cli.main import app; app()"]


def _status_mb(pid: int, field_name: str) -> float | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) / 1024
    return None


@dataclass
class RoleProcess:
    role: str
    proc: asyncio.subprocess.Process
    log_path: Path
    peak_mb: float | None = None

    def rss_mb(self) -> float | None:
        return _status_mb(self.proc.pid, "VmRSS")

    def sample_peak(self) -> float | None:
        """VmHWM (the kernel's high-water mark of resident memory) while the process lives."""
        peak = _status_mb(self.proc.pid, "VmHWM")
        if peak is not None:
            self.peak_mb = max(self.peak_mb or 0.0, peak)
        return self.peak_mb


@dataclass
class RoleSet:
    """Starts, watches and stops one process per role."""

    env: dict[str, str]
    log_dir: Path
    http_port: int
    procs: dict[str, RoleProcess] = field(default_factory=dict)

    async def start(self, roles: tuple[str, ...] = ROLES, *, wait_s: float = 60.0) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for role in roles:
            log_path = self.log_dir / f"{role}.log"
            out = log_path.open("wb")
            # Every role serves /healthz and /metrics; the gateway on the known port.
            port = self.http_port if role == "gateway" else free_port()
            proc = await asyncio.create_subprocess_exec(
                *hub_command(),
                "run",
                role,
                env={**os.environ, **self.env, "HUB_HTTP_PORT": str(port)},
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
            out.close()
            self.procs[role] = RoleProcess(role, proc, log_path)
        if "gateway" in self.procs:
            await self._wait_http(wait_s)

    async def _wait_http(self, wait_s: float) -> None:
        deadline = time.monotonic() + wait_s
        url = f"http://127.0.0.1:{self.http_port}/healthz"
        async with httpx.AsyncClient(timeout=2.0) as client:
            while True:
                self.check_alive()
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(url)).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"gateway not serving on {url} within {wait_s:.0f}s")
                await asyncio.sleep(0.2)

    def check_alive(self) -> None:
        for rp in self.procs.values():
            if rp.proc.returncode is not None:
                tail = rp.log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"role {rp.role} exited with {rp.proc.returncode}:\n{tail}")

    def sample(self) -> dict[str, float | None]:
        for rp in self.procs.values():
            rp.sample_peak()
        return {role: rp.rss_mb() for role, rp in self.procs.items()}

    def peaks(self) -> dict[str, float | None]:
        return {
            role: round(p, 1) if (p := rp.sample_peak()) is not None else None
            for role, rp in self.procs.items()
        }

    async def stop(self, grace: float = 15.0) -> None:
        self.sample()
        for rp in self.procs.values():
            if rp.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    rp.proc.send_signal(signal.SIGTERM)
        for rp in self.procs.values():
            try:
                await asyncio.wait_for(rp.proc.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(rp.proc.pid, signal.SIGKILL)
                await rp.proc.wait()
