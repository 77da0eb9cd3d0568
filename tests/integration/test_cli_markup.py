"""Text from outside (SKUs, locations, dead-letter errors, audit actors) is printed by the CLI as
written: square brackets in it are not read as rich markup, so `[/B]` does not crash a command
and `[bold]` does not restyle or vanish."""

from __future__ import annotations

import asyncio

import pytest
from rich.errors import MarkupError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner

from hub import audit
from hub.cli.main import app
from hub.store.models import DeadLetter, Stock

Sessions = async_sessionmaker[AsyncSession]

ERROR = "bad [/tmp/x] and [bold]loud[/bold]"
TOPIC = "hub.orders.v1[/t]"
SKU = "A[/B]"
LOCATION = "bin[bold]7[/bold]"


@pytest.fixture
def hub_cli(hub_env, db_url, monkeypatch):
    """`await hub_cli(*args)`: `hub …` in a thread, on the test's database, without tokens."""
    monkeypatch.setattr("hub.cli.common.configure_logging", lambda *a, **k: None)
    for name in ("HUB_TOKEN", "HUB_ADMIN_TOKEN", "HUB_OPERATOR_TOKEN", "HUB_VIEWER_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HUB_DATABASE_URL", db_url)
    monkeypatch.setenv("COLUMNS", "250")  # wide enough that no table cell wraps

    async def invoke(*args: str):
        result = await asyncio.to_thread(CliRunner().invoke, app, list(args))
        assert not isinstance(result.exception, MarkupError), result.exception
        return result

    return invoke


async def test_dlq_list_shows_an_error_with_brackets_as_written(sessions: Sessions, hub_cli):
    async with sessions() as session, session.begin():
        session.add(
            DeadLetter(
                consumer="hub-core",
                topic=TOPIC,
                partition=0,
                offset=7,
                key=b"acme:[/k]",
                headers=[],
                payload=b"{}",
                error=ERROR,
            )
        )

    listed = await hub_cli("dlq", "list")

    assert listed.exit_code == 0, listed.output
    assert ERROR in listed.stdout
    assert f"{TOPIC}/0@7" in listed.stdout


@pytest.mark.parametrize("sku", [SKU, "PACK:100:RED", "CUP:x:2"])  # not read as emoji codes
async def test_stock_show_prints_a_sku_and_location_with_brackets_as_written(
    sessions: Sessions, hub_cli, sku
):
    async with sessions() as session, session.begin():
        session.add(Stock(sku=sku, location=LOCATION, on_hand=5, reserved=2, inbound=0))

    shown = await hub_cli("stock", "show", sku)

    assert shown.exit_code == 0, shown.output
    assert f"{sku}: on hand 5, reserved 2, inbound 0" in shown.stdout
    assert LOCATION in shown.stdout


async def test_an_error_naming_an_unknown_sku_with_brackets_is_printed_as_written(
    sessions: Sessions, hub_cli
):
    missing = await hub_cli("stock", "show", "NOPE[/x] [bold]")

    assert missing.exit_code == 1, missing.output
    assert "error: unknown SKU 'NOPE[/x] [bold]'" in missing.output


async def test_audit_list_shows_actor_and_target_with_brackets_as_written(
    sessions: Sessions, hub_cli
):
    async with sessions() as session, session.begin():
        await audit.record(session, "ops[/x]", "stock.count", "[bold]KIT[/bold]@main")

    listed = await hub_cli("audit", "list")

    assert listed.exit_code == 0, listed.output
    assert "ops[/x]" in listed.stdout
    assert "[bold]KIT[/bold]@main" in listed.stdout
