"""`hub books deliver ACCOUNT`: a ledger connected after the hub has run a while gets every
stored voucher, oldest first, each once; a second run books nothing again."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import hub.finance.tables  # noqa: F401  (the vouchers' tables, for the cleanup)
from hub.cli.main import app
from hub.core.batch import CoreProcessor
from hub.domain.allocation import Rule
from hub.finance.chart import CN_SMALL_BUSINESS
from tests.builders import fulfil, place, received, records

pytestmark = pytest.mark.integration


async def test_a_ledger_connected_later_gets_the_stored_books_once(
    sessions, db_url, hub_env, monkeypatch, tmp_path: Path
):
    core = CoreProcessor(sessions, {"online": Rule()}, chart=CN_SMALL_BUSINESS)
    await core.process(
        records(
            received("TEE", 10, "4.00"),
            place("acme:1", [("TEE", 2)]),
            fulfil("acme:1", [("TEE", 2)]),
        )
    )
    journal = tmp_path / "books.beancount"
    config = tmp_path / "hub.toml"
    config.write_text(f'[accounts.books]\nconnector = "beancount"\npath = "{journal}"\n')
    monkeypatch.setenv("HUB_CONFIG", str(config))
    monkeypatch.setenv("HUB_DATABASE_URL", db_url)
    monkeypatch.setattr("hub.cli.common.configure_logging", lambda *a, **k: None)

    def deliver():
        return CliRunner().invoke(app, ["books", "deliver", "books", "--json"])

    first = await asyncio.to_thread(deliver)
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert (report["delivered"], report["already"], report["refused"]) == (2, 0, [])
    text = journal.read_text()
    assert text.count("voucher_id:") == 2 and "goods_received" in text and "sale_fulfilled" in text
    again = json.loads((await asyncio.to_thread(deliver)).stdout)
    assert (again["delivered"], again["already"]) == (0, 2)
    assert text == journal.read_text()
