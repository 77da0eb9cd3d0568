"""A configuration error found while the roles start (a supplier account without the sender id
its EDI envelopes need) stops what had started and reaches the command line, which exits 2
naming the account."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hub.config import AccountConfig, ChannelRule, ConfigError, HubConfig, Settings
from hub.server import serve

pytestmark = pytest.mark.integration


async def test_a_bad_supplier_account_stops_serve_and_names_the_account(
    kafka, tmp_path: Path
) -> None:
    s = Settings(
        kafka_bootstrap=kafka.bootstrap,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}",
        var_dir=tmp_path / "var",
        http_port=0,
        reconcile_interval_s=0,
    )
    bad = AccountConfig.model_validate(
        {"connector": "x12", "path": str(tmp_path / "edi"), "their_id": "ACMESUPPLY"}
    )
    s.__dict__["hub"] = HubConfig(channels={"online": ChannelRule()}, accounts={"acme-edi": bad})
    before = {t for t in asyncio.all_tasks() if not t.done()}
    with pytest.raises(ConfigError, match=r"acme-edi.*our_id"):
        await asyncio.wait_for(serve(s, {"connectors"}), 60)
    await asyncio.sleep(0.1)
    left = {t for t in asyncio.all_tasks() if not t.done()} - before
    assert {t for t in left if t is not asyncio.current_task()} == set()


def test_the_command_line_exits_2_with_the_message(monkeypatch: pytest.MonkeyPatch) -> None:
    from hub.cli import common
    from hub.config import ConfigError

    async def bad() -> None:
        raise ConfigError("account 'acme-edi': our_id is required for x12")

    with pytest.raises(common.typer.Exit) as exc:
        common.run(bad())
    assert exc.value.exit_code == 2
