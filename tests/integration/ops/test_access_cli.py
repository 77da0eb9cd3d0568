"""The CLI with tokens configured: `HUB_TOKEN` says who calls; a viewer cannot replay, approve or
count (exit 3, nothing changed, nothing audited) and an operator can, audited under the token's
name with before and after. Without tokens the CLI runs as the OS user, as before."""

from __future__ import annotations

import asyncio
import getpass
import json
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner

from hub.cli.main import app
from hub.core.batch import CoreProcessor
from hub.domain.allocation import Rule
from hub.kafka.topics import ensure_topics
from hub.purchasing import service
from hub.store.db import make_engine, session_factory
from hub.store.migrate import upgrade
from hub.store.models import AuditEntry, DeadLetter
from tests.builders import counted, records
from tests.integration.ops.test_access_http import add_dead_letter
from tests.integration.purchasing.harness import lines_of, po, replenish_step, seed_and_sell

VIEWER, OPERATOR, ADMIN = "view-4b1e8c2f90", "op-c03d77a1e5", "adm-92fe6b0d14"
ACCESS_DENIED = 3

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
def hub_cli(hub_env, monkeypatch):
    """`await hub_cli(token, *args)`: `hub …` in a thread with `HUB_TOKEN=token` (None: unset)."""
    monkeypatch.setattr("hub.cli.common.configure_logging", lambda *a, **k: None)
    for name in ("HUB_TOKEN", "HUB_ADMIN_TOKEN", "HUB_OPERATOR_TOKEN", "HUB_VIEWER_TOKEN"):
        monkeypatch.delenv(name, raising=False)

    def tokens_on() -> None:
        monkeypatch.setenv("HUB_VIEWER_TOKEN", VIEWER)
        monkeypatch.setenv("HUB_OPERATOR_TOKEN", OPERATOR)
        monkeypatch.setenv("HUB_ADMIN_TOKEN", ADMIN)

    async def invoke(token: str | None, *args: str):
        env = {"HUB_TOKEN": token} if token is not None else {}
        return await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)

    invoke.tokens_on = tokens_on  # type: ignore[attr-defined]
    return invoke


async def _audit(sessions: Sessions) -> list[AuditEntry]:
    async with sessions() as s:
        return list((await s.execute(select(AuditEntry).order_by(AuditEntry.id))).scalars())


async def _suggestion(sessions: Sessions, sku: str = "TEE") -> str:
    async with sessions() as s, s.begin():
        await service.set_supplier(s, "acme-supply", mode="approve")
        await service.set_policy(
            s,
            sku,
            supplier="acme-supply",
            reorder_point=10,
            order_up_to=40,
            pack_size=6,
            lead_time_days=5,
            unit_price=Decimal("8.50"),
        )
    await seed_and_sell(sessions, sku, 20, 12)
    await replenish_step(sessions, {sku})
    (line,) = await lines_of(sessions, sku)
    return line.po_number


async def test_a_viewer_cannot_approve_and_an_operator_can(sessions, db_url, hub_cli, monkeypatch):
    monkeypatch.setenv("HUB_DATABASE_URL", db_url)
    hub_cli.tokens_on()
    number = await _suggestion(sessions)

    for token in (VIEWER, "op-c03d77a1e6"):
        refused = await hub_cli(token, "po", "approve", number, "--json")
        assert refused.exit_code == ACCESS_DENIED, refused.output
        assert (await po(sessions, number)).status == "suggested"
    assert "needs operator" in (await hub_cli(VIEWER, "po", "approve", number)).output
    # No HUB_TOKEN in a shell that does not hold the admin token either: refused.
    monkeypatch.delenv("HUB_ADMIN_TOKEN")
    no_token = await hub_cli(None, "po", "approve", number)
    assert no_token.exit_code == ACCESS_DENIED
    assert "HUB_TOKEN" in no_token.output
    monkeypatch.setenv("HUB_ADMIN_TOKEN", ADMIN)
    assert await _audit(sessions) == []

    done = await hub_cli(OPERATOR, "po", "approve", number, "--actor", "mallory", "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["status"] == "issued"
    assert (await po(sessions, number)).status == "issued"
    [entry] = await _audit(sessions)
    assert (entry.actor, entry.action, entry.target) == ("operator", "po.approve", number)
    assert entry.before == {"status": "suggested"}
    assert entry.after is not None and entry.after["status"] == "issued"
    assert (await po(sessions, number)).approved_by == "operator"

    listed = await hub_cli(OPERATOR, "audit", "list", "--json")
    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.stdout)["entries"]
    assert (row["actor"], row["action"], row["before"]) == ("operator", "po.approve", entry.before)
    assert row["at"].endswith("+00:00")
    assert (await hub_cli(VIEWER, "audit", "list", "--json")).exit_code == ACCESS_DENIED


async def test_reads_stay_open_to_viewers_and_repairs_need_an_admin(
    sessions, db_url, hub_cli, monkeypatch
):
    monkeypatch.setenv("HUB_DATABASE_URL", db_url)
    hub_cli.tokens_on()
    await seed_and_sell(sessions, "TEE", 5, 1)
    shown = await hub_cli(VIEWER, "stock", "show", "TEE", "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["on_hand"] == 4
    assert (await hub_cli(VIEWER, "stock", "repair", "--json")).exit_code == 0
    assert (await hub_cli(OPERATOR, "stock", "repair", "--fix")).exit_code == ACCESS_DENIED
    assert (await hub_cli(ADMIN, "stock", "repair", "--fix", "--json")).exit_code == 0
    # Deployment jobs hold the admin token itself and set no HUB_TOKEN.
    assert (await hub_cli(None, "db", "upgrade", "--json")).exit_code == 0


@pytest.fixture
async def sqlite_hub(hub_env, tmp_path, kafka, monkeypatch):
    """A migrated SQLite store and the broker under test with its topics, for the CLI."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    engine = make_engine(url)
    await upgrade(engine)
    await ensure_topics(kafka.bootstrap, partitions=1, replication=1)
    monkeypatch.setenv("HUB_DATABASE_URL", url)
    monkeypatch.setenv("HUB_KAFKA_BOOTSTRAP", kafka.bootstrap)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


async def test_a_viewer_cannot_replay_and_an_operator_can(sqlite_hub, hub_cli):
    sessions = sqlite_hub
    hub_cli.tokens_on()
    letter_id = await add_dead_letter(sessions, 7)

    refused = await hub_cli(VIEWER, "dlq", "replay", "--all", "--json")
    assert refused.exit_code == ACCESS_DENIED, refused.output
    assert await _audit(sessions) == []
    async with sessions() as s:
        assert (await s.get(DeadLetter, letter_id)).replayed_at is None  # type: ignore[union-attr]

    done = await hub_cli(OPERATOR, "dlq", "replay", str(letter_id), "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout) == {"replayed": [letter_id]}
    [entry] = await _audit(sessions)
    assert (entry.actor, entry.action) == ("operator", "dlq.replay")
    assert entry.before is not None and entry.before["replayed_at"] is None
    assert entry.before["letters"][0]["offset"] == 7
    assert entry.after is not None and entry.after["ids"] == [letter_id]


async def test_a_viewer_cannot_count_and_an_operator_can(sqlite_hub, hub_cli, tmp_path):
    sessions = sqlite_hub
    hub_cli.tokens_on()
    await CoreProcessor(sessions, {"online": Rule()}).process(records(counted("A", 5)))
    sheet = tmp_path / "count.csv"
    sheet.write_text("sku,location,quantity\nA,main,7\nB,main,3\n")

    refused = await hub_cli(VIEWER, "stock", "count", str(sheet), "--json")
    assert refused.exit_code == ACCESS_DENIED, refused.output
    assert await _audit(sessions) == []

    done = await hub_cli(OPERATOR, "stock", "count", str(sheet), "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["published"] == 2
    [entry] = await _audit(sessions)
    assert (entry.actor, entry.action) == ("operator", "stock.count")
    assert entry.before == {"on_hand": {"A@main": 5, "B@main": None}}
    assert entry.after is not None and entry.after["counted"] == {"A@main": 7, "B@main": 3}


async def test_without_tokens_the_cli_runs_as_the_os_user(sessions, db_url, hub_cli, monkeypatch):
    monkeypatch.setenv("HUB_DATABASE_URL", db_url)
    number = await _suggestion(sessions)
    done = await hub_cli("whatever", "po", "approve", number, "--json")
    assert done.exit_code == 0, done.output
    [entry] = await _audit(sessions)
    assert (entry.actor, entry.action) == (getpass.getuser(), "po.approve")


async def test_a_token_reference_in_the_config_names_the_actor(
    sessions, db_url, hub_cli, monkeypatch, tmp_path: Path
):
    config = tmp_path / "hub.toml"
    config.write_text(
        '[access.night-shift]\nrole = "operator"\ntoken = "env:NIGHT_TOKEN"\n'
        '[access.boss]\nrole = "admin"\ntoken = "env:BOSS_TOKEN"\n'  # unset here: skipped
    )
    monkeypatch.setenv("HUB_CONFIG", str(config))
    monkeypatch.setenv("HUB_DATABASE_URL", db_url)
    monkeypatch.setenv("NIGHT_TOKEN", "night-5d0c9a")
    monkeypatch.delenv("BOSS_TOKEN", raising=False)
    number = await _suggestion(sessions)
    assert (await hub_cli(None, "po", "approve", number)).exit_code == ACCESS_DENIED
    done = await hub_cli("night-5d0c9a", "po", "approve", number)
    assert done.exit_code == 0, done.output
    [entry] = await _audit(sessions)
    assert entry.actor == "night-shift"


async def test_a_server_with_an_unresolvable_token_refuses_to_start(hub_cli, monkeypatch, tmp_path):
    config = tmp_path / "hub.toml"
    config.write_text('[access.boss]\nrole = "admin"\ntoken = "env:BOSS_TOKEN"\n')
    monkeypatch.setenv("HUB_CONFIG", str(config))
    monkeypatch.delenv("BOSS_TOKEN", raising=False)
    refused = await hub_cli(None, "run", "core")
    assert refused.exit_code == 2, refused.output
    assert "BOSS_TOKEN" in refused.output


async def test_a_count_from_a_spreadsheet_with_its_counting_time(sqlite_hub, hub_cli, tmp_path):
    """A spreadsheet's UTF-8 CSV starts with a byte-order mark; the time the stock was counted
    is given with its offset and kept in the audit log, and one without an offset is refused."""
    sessions = sqlite_hub
    hub_cli.tokens_on()
    sheet = tmp_path / "count.csv"
    sheet.write_bytes("sku,location,quantity\r\nA,main,7\r\n".encode("utf-8-sig"))
    naive = await hub_cli(
        OPERATOR, "stock", "count", str(sheet), "--counted-at", "2026-11-01T10:00"
    )
    assert naive.exit_code != 0 and "offset" in naive.output
    done = await hub_cli(
        OPERATOR, "stock", "count", str(sheet), "--counted-at", "2026-11-01T10:00+08:00", "--json"
    )
    assert done.exit_code == 0, done.output
    [entry] = await _audit(sessions)
    assert entry.after is not None and entry.after["counted"] == {"A@main": 7}
    assert entry.after["counted_at"] == "2026-11-01T02:00:00+00:00"


async def test_a_count_at_a_location_the_hub_does_not_know_is_refused_by_line(
    sqlite_hub, hub_cli, tmp_path
):
    """`Main` for `main`: a typo would make a location of its own, which no channel sells from,
    and leave the real one uncounted. It is refused naming its line, unless it is new."""
    sessions = sqlite_hub
    hub_cli.tokens_on()
    sheet = tmp_path / "count.csv"
    sheet.write_text("sku,location,quantity\nA,main,7\nA,Main,40\n")
    refused = await hub_cli(OPERATOR, "stock", "count", str(sheet), "--json")
    assert refused.exit_code != 0
    assert "line 3: location 'Main' is not one the hub keeps stock at" in refused.output
    assert await _audit(sessions) == []
    done = await hub_cli(OPERATOR, "stock", "count", str(sheet), "--new-location", "Main", "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["published"] == 2
