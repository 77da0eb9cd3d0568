"""`hub connector resync|push-stock` and `hub reconcile --fix` change a shop: a viewer is refused
before anything is sent, an operator's run is audited under the token's name with what it did."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from connectors.shopify.simulator import ShopifySimulator
from hub.cli.main import app
from hub.core.batch import CoreProcessor
from hub.domain.allocation import Rule
from hub.store.db import make_engine, session_factory
from hub.store.migrate import upgrade
from hub.store.models import AuditEntry
from tests.builders import counted, records
from tests.integration.shops.test_cli import serving

VIEWER, OPERATOR = "view-1c9e5a0d77", "op-f4b2d8e6a3"


async def _seed(url: str) -> None:
    engine = make_engine(url)
    await upgrade(engine)
    await CoreProcessor(session_factory(engine), {"online": Rule()}).process(
        records(counted("A-1", 30))
    )
    await engine.dispose()


async def _audit(url: str) -> list[AuditEntry]:
    engine = make_engine(url)
    try:
        async with session_factory(engine)() as s:
            return list((await s.execute(select(AuditEntry).order_by(AuditEntry.id))).scalars())
    finally:
        await engine.dispose()


@pytest.fixture
def shop(hub_env, tmp_path: Path, monkeypatch):
    """A Shopify simulator holding 5 of A-1 while the hub has 30, and `run(token, *args)`."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"
    asyncio.run(_seed(url))
    shopify = ShopifySimulator(bucket_size=100_000)
    shopify.add_product("A-1", 5)
    monkeypatch.setattr("hub.cli.common.configure_logging", lambda *a, **k: None)
    with serving(shopify.app) as acme:
        config = tmp_path / "hub.toml"
        config.write_text(
            f'[accounts.acme]\nconnector = "shopify"\napi_url = "{acme}"\n'
            'api_token = "env:ACME_API_TOKEN"\n'
        )
        for name, value in {
            "HUB_CONFIG": str(config),
            "HUB_DATABASE_URL": url,
            "ACME_API_TOKEN": "shpat_simulated",
            "HUB_VIEWER_TOKEN": VIEWER,
            "HUB_OPERATOR_TOKEN": OPERATOR,
        }.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("HUB_ADMIN_TOKEN", raising=False)

        def run(token: str, *args: str):
            return CliRunner().invoke(app, list(args), env={"HUB_TOKEN": token})

        yield shopify, run, url


def test_a_viewer_cannot_push_resync_or_fix_and_may_look(shop):
    shopify, run, url = shop
    for args in (
        ("connector", "push-stock", "acme"),
        ("connector", "resync", "acme", "--what", "stock"),
        ("reconcile", "acme", "--fix"),
    ):
        refused = run(VIEWER, *args)
        assert refused.exit_code == 3, (args, refused.output)
    assert shopify.stock("A-1") == 5
    looked = run(VIEWER, "reconcile", "acme", "--json")
    assert looked.exit_code == 1, looked.output  # drift found, nothing changed
    assert json.loads(looked.stdout)["drift"][0]["sku"] == "A-1"
    assert asyncio.run(_audit(url)) == []


def test_an_operators_push_resync_and_fix_are_audited_under_the_token_name(shop):
    shopify, run, url = shop
    resynced = run(OPERATOR, "connector", "resync", "acme", "--what", "stock", "--json")
    assert resynced.exit_code == 0, resynced.output
    pushed = run(OPERATOR, "connector", "push-stock", "acme", "--json")
    assert pushed.exit_code == 0, pushed.output
    assert shopify.stock("A-1") == 30
    shopify.add_product("A-1", 4)  # someone edits the shop by hand
    fixed = run(OPERATOR, "reconcile", "acme", "--fix", "--actor", "someone-else", "--json")
    assert fixed.exit_code == 0, fixed.output
    assert shopify.stock("A-1") == 30

    resync, push, reconcile = asyncio.run(_audit(url))
    assert {resync.actor, push.actor, reconcile.actor} == {"operator"}
    assert (resync.action, resync.target) == ("connector.resync", "acme")
    assert resync.before == {}  # never synced before
    assert resync.after is not None and resync.after["last_sync_at"] is not None
    assert resync.after["finished"] is True and resync.after["platform_skus"] == 1
    assert push.action == "connector.push-stock"
    assert push.before == {"platform": {"A-1": 5}}
    assert push.after == {"pushed": {"A-1": 30}, "failed": {}}
    assert reconcile.action == "stock.reconcile"
    assert reconcile.before is not None and reconcile.before["platform"] == {"A-1": 4}
    assert reconcile.after is not None and reconcile.after["pushed"] == {"A-1": 30}
