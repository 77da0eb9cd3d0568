"""`hub connector …` and `hub reconcile` as an operator runs them, `--json` on stdout, against
simulated shops served on loopback ports and the broker under test."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import structlog
import uvicorn
from typer.testing import CliRunner

from hub.cli.main import app
from hub.core.batch import CoreProcessor, rules_from_config
from hub.observe import _StderrLogger
from hub.store.db import make_engine, session_factory
from hub.store.migrate import upgrade
from tests.builders import counted, records

from .conftest import CHANNELS


@contextmanager
def serving(asgi: Any) -> Iterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(asgi, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "simulator did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(5)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(path: Path, acme: str, corner: str) -> None:
    online = CHANNELS["online"]
    path.write_text(
        f"""
[channels.online]
share = {online.share}
buffer = {online.buffer}

[accounts.acme]
connector = "shopify"
api_url = "{acme}"
api_token = "env:ACME_API_TOKEN"
rate_limit_per_second = 1000
rate_limit_burst = 1000

[accounts.corner]
connector = "woocommerce"
api_url = "{corner}"
consumer_key = "ck_simulated"
consumer_secret = "cs_simulated"

[accounts.gone]
connector = "shopify"
api_url = "http://127.0.0.1:{_closed_port()}"
api_token = "x"

[accounts.nokey]
connector = "shopify"
api_url = "{acme}"
api_token = "env:NOKEY_API_TOKEN_UNSET"

[accounts.books]
connector = "beancount"
path = "{path.parent / "books.beancount"}"
"""
    )


async def _seed(url: str) -> None:
    engine = make_engine(url)
    await upgrade(engine)
    await CoreProcessor(session_factory(engine), rules_from_config(CHANNELS)).process(
        records(counted("A-1", 30), counted("B-2", 12))
    )
    await engine.dispose()


@pytest.fixture
def cli(monkeypatch, tmp_path, kafka, shopify, woo):
    url = f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"
    asyncio.run(_seed(url))
    for sku, qty in (("A-1", 5), ("B-2", 10), ("SHOP-ONLY", 3)):
        shopify.add_product(sku, qty)
        woo.add_product(sku, qty)
    with serving(shopify.app) as acme, serving(woo.app) as corner:
        _config(tmp_path / "hub.toml", acme, corner)
        monkeypatch.setenv("HUB_CONFIG", str(tmp_path / "hub.toml"))
        monkeypatch.setenv("HUB_DATABASE_URL", url)
        monkeypatch.setenv("HUB_VAR_DIR", str(tmp_path / "var"))
        monkeypatch.setenv("HUB_KAFKA_BOOTSTRAP", kafka.bootstrap)
        monkeypatch.setenv("ACME_API_TOKEN", "shpat_simulated")
        # Logs go to stderr (never into the JSON on stdout); the configuration is put back.
        before = structlog.get_config()
        monkeypatch.setattr(
            "hub.cli.common.configure_logging",
            lambda *a, **k: structlog.configure(logger_factory=_StderrLogger),
        )
        runner = CliRunner()

        def invoke(*args: str, code: int = 0) -> Any:
            result = runner.invoke(app, list(args))
            assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
            return json.loads(result.stdout) if "--json" in args and code != 2 else result

        try:
            yield invoke
        finally:
            structlog.configure(**before)


def test_reconcile_lists_drift_exits_1_and_fix_repairs_it(cli, shopify):
    looked = cli("reconcile", "acme", "--json", code=1)
    assert [(d["sku"], d["platform"], d["hub"]) for d in looked["drift"]] == [("A-1", 5, 28)]
    assert looked["unknown_to_hub"] == ["SHOP-ONLY"] and looked["ok"] is False
    assert shopify.stock("A-1") == 5

    fixed = cli("reconcile", "acme", "--fix", "--json")
    assert fixed["fixed"] == {"A-1": 28} and fixed["remaining"] == [] and fixed["ok"]
    assert shopify.stock("A-1") == 28
    assert cli("reconcile", "acme", "--json")["drift"] == []


def test_push_stock_resync_and_list_report_what_they_did(cli, shopify, woo):
    pushed = cli("connector", "push-stock", "corner", "--json")
    assert pushed["pushed"] == {"A-1": 28} and pushed["unchanged"] == 1
    assert woo.stock("A-1") == 28
    everything = cli("connector", "push-stock", "corner", "--all", "--json")
    assert everything["pushed"] == {"A-1": 28, "B-2": 10}

    stock = cli("connector", "resync", "acme", "--what", "stock", "--json")
    assert [d["sku"] for d in stock["drift"]] == ["A-1"] and stock["platform_skus"] == 3
    products = cli("connector", "resync", "corner", "--what", "products", "--json")
    assert products["unknown_skus"] == ["SHOP-ONLY"]

    shopify.make_order(41, [("A-1", 2, "3.00")])
    shopify.make_order(42, [("B-2", 1, "3.00")])
    first = cli("connector", "resync", "acme", "--json")
    assert (first["pages"], first["published"], first["finished"]) == (1, 4, True)
    assert cli("connector", "resync", "acme", "--json")["published"] == 4
    later = cli("connector", "resync", "acme", "--since", "2099-01-01T00:00:00Z", "--json")
    assert later["published"] == 0

    listed = {
        a["account"]: a for a in cli("connector", "list", "--timeout", "1", "--json")["accounts"]
    }
    assert set(listed) == {"acme", "corner", "gone", "nokey", "books"}
    assert listed["nokey"]["health"]["status"] == "refused"
    assert "NOKEY_API_TOKEN_UNSET" in listed["nokey"]["health"]["detail"]
    assert listed["acme"]["health"]["status"] == "ok"
    assert listed["corner"]["health"]["status"] == "ok"
    assert listed["gone"]["health"]["status"] == "unreachable"
    assert listed["books"]["health"]["status"] == "not checked"
    assert listed["acme"]["connector"] == "shopify" and listed["acme"]["channel"] == "online"
    assert set(listed["acme"]["last_sync"]) == {"stock", "orders"}
    assert listed["acme"]["last_sync"]["orders"]["last_sync_at"] is not None
    assert listed["corner"]["last_sync"]["products"]["last_error"] is None
    assert listed["gone"]["last_sync"] == {}

    table = cli("connector", "list", "--timeout", "1").stdout  # the same, for people
    assert "acme" in table and "unreachable" in table
    assert "no drift" in cli("reconcile", "corner").stdout
    # incremental: from a minute before the newest change already published, as the scheduled
    # resync does (both orders were made within it; the ids dedupe them)
    assert "4 message(s) published" in cli("connector", "resync", "acme", "--since", "last").stdout


def test_unknown_accounts_and_bad_arguments_exit_2(cli):
    for args in (
        ("reconcile", "nobody", "--json"),
        ("connector", "resync", "nobody"),
        ("connector", "push-stock", "books"),
        ("reconcile", "nokey", "--fix"),  # its secret's variable is not set
        ("connector", "resync", "acme", "--what", "prices"),
        ("connector", "resync", "acme", "--since", "yesterday"),
    ):
        result = cli(*args, code=2)
        assert result.stdout == ""
