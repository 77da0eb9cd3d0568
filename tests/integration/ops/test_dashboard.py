"""The operators' routes and the live dashboard, served by uvicorn and rendered by headless
Chromium while the core is paused and orders wait."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import struct
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from hub.app import Runtime
from hub.config import ChannelRule, HubConfig, Settings
from hub.kafka.embedded import free_port
from hub.ops.state import lag_loop, ops_state
from hub.web.app import create_app
from hub.web.ops import ops_routes
from tests.builders import counted, place

CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
)
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"
TOKEN = "test-admin-token"
CUSTOMER = "Ada Lovelace-Customer"


def _settings(bootstrap: str, tmp_path: Path) -> Settings:
    s = Settings(
        kafka_bootstrap=bootstrap,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}",
        var_dir=tmp_path / "var",
        core_group=f"core-{uuid.uuid4().hex[:6]}",
        consumer_session_timeout_ms=6000,
        topic_partitions=4,
        admin_token=TOKEN,
    )
    s.__dict__["hub"] = HubConfig(channels={"online": ChannelRule()})
    return s


async def _until(predicate, limit: float = 30.0) -> None:
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if await predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not reached in time")


def _app(rt: Runtime) -> Any:
    app = create_app(rt)
    if not any(getattr(r, "path", None) == "/dashboard" for r in app.router.routes):
        app.router.routes.extend(ops_routes(rt))
    return app


@contextlib.asynccontextmanager
async def _serving(app: Any):
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    try:
        await _until(lambda: asyncio.sleep(0, result=server.started), 10)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def _chromium(url: str, *extra: str) -> bytes:
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory() as profile:
        proc = await asyncio.create_subprocess_exec(
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--window-size=1280,900",
            "--virtual-time-budget=5000",
            *extra,
            url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            stdout, _ = await asyncio.wait_for(proc.communicate(), 60)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
    assert proc.returncode == 0
    return stdout


@pytest.fixture
async def paused_hub(kafka, tmp_path):
    """A hub whose core stopped consuming while orders kept arriving, with its lag loop on."""
    rt = Runtime(_settings(kafka.bootstrap, tmp_path))
    await rt.start({"core", "relay"})
    loop = asyncio.create_task(lag_loop(rt, interval=0.3))
    try:
        assert rt.publisher is not None
        await rt.publisher.publish([counted("A", 100)])

        async def counted_in() -> bool:
            return rt.totals.applied >= 1

        await _until(counted_in)
        await rt.publisher.publish([place("acme:1", [("A", 2)])])

        async def reserved() -> bool:
            return rt.totals.accepted >= 1

        await _until(reserved)
        group = rt.settings.core_group

        async def committed() -> bool:
            g = ops_state(rt).lag["groups"].get(group)
            return g is not None and g["sum_lag"] == 0

        await _until(committed)
        for b in rt.brokers:
            await b.stop()
        for i in range(2, 9):
            await rt.publisher.publish([place(f"acme:{i}", [("A", 1)])])

        async def not_ok() -> bool:
            g = ops_state(rt).lag["groups"].get(group)
            return g is not None and g["status"] != "OK" and g["sum_lag"] == 7

        await _until(not_ok)
        yield rt
    finally:
        rt.stop_event.set()
        await loop
        await rt.stop()


async def test_operators_api_needs_the_token_and_shows_lag_dlq_and_overview(paused_hub):
    rt = paused_hub
    group = rt.settings.core_group
    async with _serving(_app(rt)) as base, httpx.AsyncClient(base_url=base) as http:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        for path in ("/api/lag", "/api/dlq", "/api/overview"):
            assert (await http.get(path)).status_code == 401
            assert (await http.get(path, headers={"Authorization": "Bearer nope"})).status_code == (
                401
            )
        lag = (await http.get("/api/lag", headers=auth)).json()
        assert lag["groups"][group]["sum_lag"] == 7
        assert lag["groups"][group]["status"] in ("STALL", "STOP")
        assert (await http.get("/api/dlq", headers=auth)).json() == []
        overview = (await http.get("/api/overview", headers=auth)).json()
        assert overview["totals"]["accepted"] == 1
        assert overview["dlq"] == 0
        assert overview["lag"]["groups"][group]["sum_lag"] == 7
        data = (await http.get("/dashboard/data")).json()
        assert data["groups"][group]["status"] == lag["groups"][group]["status"]
        assert len(data["history"]) >= 2
        assert data["history"][-1]["lag"][group] == lag["groups"][group]["max_lag"]
        page = await http.get("/dashboard")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        csp = page.headers["content-security-policy"]
        assert "script-src 'sha256-" in csp and "connect-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp


async def test_dead_letters_are_listed_without_their_bytes(paused_hub):
    from hub.store.models import DeadLetter

    rt = paused_hub
    assert rt.sessions is not None
    async with rt.sessions() as session, session.begin():
        session.add(
            DeadLetter(
                consumer="core",
                topic="hub.orders.v1",
                partition=2,
                offset=41,
                key=b"acme:9",
                headers=[["ce_id", "x"]],
                payload=f'{{"customer": "{CUSTOMER}"}}'.encode(),
                error="invalid hub.order.placed.v1 body",
            )
        )
    async with _serving(_app(rt)) as base, httpx.AsyncClient(base_url=base) as http:
        rows = (await http.get("/api/dlq", headers={"Authorization": f"Bearer {TOKEN}"})).json()
        assert [(r["topic"], r["partition"], r["offset"]) for r in rows] == [
            ("hub.orders.v1", 2, 41)
        ]
        assert rows[0]["error"] == "invalid hub.order.placed.v1 body"
        assert rows[0]["received_at"] and rows[0]["replayed_at"] is None
        assert "payload" not in rows[0] and CUSTOMER not in str(rows)
        data = await http.get("/dashboard/data")
        assert data.json()["dlq"] == 1
        assert CUSTOMER not in data.text and "invalid" not in data.text


@pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (Debian: apt install chromium)"
)
async def test_dashboard_renders_the_paused_group_in_red_in_headless_chromium(paused_hub):
    rt = paused_hub
    group = rt.settings.core_group
    async with _serving(_app(rt)) as base:
        dom = (await _chromium(f"{base}/dashboard", "--dump-dom")).decode()
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "dashboard.png"
        shot.unlink(missing_ok=True)
        await _chromium(f"{base}/dashboard", f"--screenshot={shot}")
    # the page's script ran and rendered the data it fetched
    assert f'data-group="{group}"' in dom
    shown = re.search(rf'data-group="{group}" data-status="(\w+)"', dom)
    assert shown is not None and shown.group(1) in ("STALL", "STOP")
    assert 'class="group not-ok"' in dom
    assert '<body class="alert">' in dom
    assert "1 group(s) not OK" in dom
    assert "<path " in dom  # a drawn chart line, not only "no data yet"
    assert TOKEN not in dom
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (1280, 900)
    assert len(png) > 20_000, "a blank page compresses to a few KB"


async def test_api_lag_without_a_lag_loop_polls_when_asked(kafka, tmp_path):
    """No loop running: each request polls once; a group that never committed counts every
    message of its topics."""
    from types import SimpleNamespace

    from starlette.applications import Starlette

    from hub.core.batch import BatchResult
    from hub.kafka.producer import KafkaPublisher
    from hub.kafka.topics import ensure_topics

    s = _settings(kafka.bootstrap, tmp_path)
    await ensure_topics(kafka.bootstrap, partitions=4)
    publisher = KafkaPublisher(kafka.bootstrap)
    await publisher.start()
    try:
        for i in range(3):
            await publisher.publish([place(f"acme:{i}", [("A", 1)])])
    finally:
        await publisher.stop()
    rt = SimpleNamespace(
        settings=s, bootstrap=kafka.bootstrap, sessions=None, roles=set(), totals=BatchResult()
    )
    app = Starlette(routes=ops_routes(rt))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        lag = (await http.get("/api/lag", headers=auth)).json()
        group = lag["groups"][s.core_group]
        assert (group["sum_lag"], group["status"]) == (3, "OK")
        assert all(p["committed"] is None for p in group["partitions"])
        assert not ops_state(rt).running
