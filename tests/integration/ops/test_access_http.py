"""`/api/*` per role: 401 without or with a bad token, 403 when the role is not enough, 200 when it
is; a dead-letter replay over HTTP is audited with the token's name. Through the ASGI app with
httpx, on a migrated store."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from hub.app import Runtime
from hub.bus import BrokerUnavailable
from hub.config import ChannelRule, HubConfig, Settings
from hub.store.db import session_factory
from hub.store.models import AuditEntry, DeadLetter
from hub.web.app import create_app

TOKENS = {"admin": "adm-7f3c1d9e2b", "operator": "op-51aa0c4e77", "viewer": "view-9e0b2d6c13"}

# Explicit expectations (not derived from hub.access): method, path, body → status per caller.
CASES: list[tuple[str, str, dict[str, int]]] = [
    ("GET", "/api/lag", {"viewer": 200, "operator": 200, "admin": 200}),
    ("GET", "/api/dlq", {"viewer": 200, "operator": 200, "admin": 200}),
    ("GET", "/api/overview", {"viewer": 200, "operator": 200, "admin": 200}),
    ("GET", "/api/stock/NOPE", {"viewer": 404, "operator": 404, "admin": 404}),
    ("GET", "/api/audit", {"viewer": 403, "operator": 200, "admin": 200}),
    ("POST", "/api/dlq/replay", {"viewer": 403, "operator": 200, "admin": 200}),
]


class Sent:
    """Stands in for the runtime's publisher: remembers what a replay sent."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str | None, bytes, list[tuple[str, bytes]]]] = []

    async def send_many(
        self, items: Sequence[tuple[str, str | None, bytes, list[tuple[str, bytes]]]]
    ) -> None:
        self.records.extend(items)


def _settings(url: str, tmp_path: Path, **tokens: str | None) -> Settings:
    s = Settings(database_url=url, var_dir=tmp_path / "var", **tokens)
    s.__dict__["hub"] = HubConfig(channels={"online": ChannelRule()})
    return s


@pytest.fixture
async def hub_api(
    engine: AsyncEngine, db_url: str, tmp_path: Path
) -> AsyncIterator[tuple[Runtime, httpx.AsyncClient]]:
    rt = Runtime(
        _settings(
            db_url,
            tmp_path,
            admin_token=TOKENS["admin"],
            operator_token=TOKENS["operator"],
            viewer_token=TOKENS["viewer"],
        )
    )
    rt.sessions = session_factory(engine)
    rt.publisher = Sent()  # type: ignore[assignment]
    transport = httpx.ASGITransport(app=create_app(rt))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
        yield rt, client


_offsets = itertools.count(1000)


async def add_dead_letter(
    sessions: async_sessionmaker[AsyncSession],
    offset: int,
    *,
    key: bytes = b"acme:1",
    payload: bytes = b'{"order": 1}',
    error: str = "boom",
) -> int:
    """A dead letter of the core from `hub.orders.v1` partition 0 at `offset`; its id."""
    async with sessions() as session, session.begin():
        row = DeadLetter(
            consumer="hub-core",
            topic="hub.orders.v1",
            partition=0,
            offset=offset,
            key=key,
            headers=[["ce_id", f"m{offset}"]],
            payload=payload,
            error=error,
        )
        session.add(row)
        await session.flush()
        return row.id


async def _dead_letter(rt: Runtime, offset: int | None = None) -> int:
    assert rt.sessions is not None
    return await add_dead_letter(rt.sessions, next(_offsets) if offset is None else offset)


async def _audit(rt: Runtime) -> list[AuditEntry]:
    assert rt.sessions is not None
    async with rt.sessions() as session:
        return list((await session.execute(select(AuditEntry).order_by(AuditEntry.id))).scalars())


def _auth(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token is not None else {}


@pytest.mark.parametrize(("method", "path", "allowed"), CASES)
async def test_each_endpoint_answers_each_caller_by_role(hub_api, method, path, allowed):
    rt, client = hub_api
    for caller in ("nobody", "stranger", "viewer", "operator", "admin"):
        if method == "POST":
            body: Any = {"ids": [await _dead_letter(rt)]}
        else:
            body = None
        token = {"nobody": None, "stranger": "op-51aa0c4e78"}.get(caller, TOKENS.get(caller))
        r = await client.request(method, path, headers=_auth(token), json=body)
        want = allowed.get(caller, 401)
        assert r.status_code == want, (caller, r.status_code, r.text)
        if want == 401:
            assert r.headers["www-authenticate"] == "Bearer"
        if want == 403:
            assert "needs" in r.json()["error"]


async def test_a_malformed_authorization_header_is_401(hub_api):
    _, client = hub_api
    for header in ("Basic " + TOKENS["admin"], TOKENS["admin"], "Bearer", "Bearer  "):
        r = await client.get("/api/lag", headers={"Authorization": header})
        assert r.status_code == 401, header


async def test_without_any_token_configured_the_api_is_off(db_url, tmp_path):
    rt = Runtime(_settings(db_url, tmp_path))
    transport = httpx.ASGITransport(app=create_app(rt))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
        r = await client.get("/api/lag", headers=_auth("anything"))
        assert r.status_code == 403
        assert "disabled" in r.json()["error"]
        assert (await client.get("/healthz")).status_code == 200


async def test_an_operator_replays_over_http_and_the_audit_names_the_token(hub_api):
    rt, client = hub_api
    first, second = await _dead_letter(rt, 1), await _dead_letter(rt, 2)
    refused = await client.post(
        "/api/dlq/replay", headers=_auth(TOKENS["viewer"]), json={"ids": [first]}
    )
    assert refused.status_code == 403
    assert await _audit(rt) == []
    assert rt.publisher.records == []  # type: ignore[union-attr]

    r = await client.post("/api/dlq/replay", headers=_auth(TOKENS["operator"]), json={"all": True})
    assert r.status_code == 200, r.text
    assert r.json() == {"replayed": [first, second]}
    sent = rt.publisher.records  # type: ignore[union-attr]
    assert [(t, k, v) for t, k, v, _ in sent] == [("hub.orders.v1", "acme:1", b'{"order": 1}')] * 2
    [entry] = await _audit(rt)
    assert (entry.actor, entry.action, entry.target) == (
        "operator",
        "dlq.replay",
        f"{first},{second}",
    )
    assert entry.before is not None and entry.before["replayed_at"] is None
    assert [d["id"] for d in entry.before["letters"]] == [first, second]
    assert entry.after is not None and entry.after["ids"] == [first, second]
    assert entry.after["replayed_at"]
    assert TOKENS["operator"] not in json.dumps([entry.before, entry.after, entry.actor])

    again = await client.post("/api/dlq/replay", headers=_auth(TOKENS["admin"]), json={"all": True})
    assert again.json() == {"replayed": []}
    assert len(await _audit(rt)) == 1  # nothing replayed, nothing audited

    listed = await client.get("/api/audit", headers=_auth(TOKENS["operator"]))
    assert [(e["actor"], e["action"]) for e in listed.json()["entries"]] == [
        ("operator", "dlq.replay")
    ]


@pytest.mark.parametrize(
    "body", [b"not json", b"[1]", b'{"ids": []}', b'{"ids": ["1"]}', b'{"all": false}']
)
async def test_a_bad_replay_request_is_400_and_replays_nothing(hub_api, body):
    rt, client = hub_api
    await _dead_letter(rt, 3)
    r = await client.post(
        "/api/dlq/replay",
        headers={**_auth(TOKENS["admin"]), "Content-Type": "application/json"},
        content=body,
    )
    assert r.status_code == 400, r.text
    assert rt.publisher.records == []  # type: ignore[union-attr]
    assert await _audit(rt) == []


async def test_viewers_see_dead_letters_without_their_error_text(hub_api):
    rt, client = hub_api
    assert rt.sessions is not None
    await add_dead_letter(rt.sessions, 5, error="bad e-mail 'ada@example.org'")
    seen = {}
    for role in ("viewer", "operator"):
        r = await client.get("/api/dlq", headers=_auth(TOKENS[role]))
        [letter] = r.json()
        assert letter["offset"] == 5
        seen[role] = letter["error"]
    assert seen == {"viewer": None, "operator": "bad e-mail 'ada@example.org'"}


async def test_a_replay_the_broker_does_not_acknowledge_is_503_and_changes_nothing(hub_api):
    rt, client = hub_api
    assert rt.sessions is not None
    letter = await add_dead_letter(rt.sessions, 6)

    class Down:
        async def send_many(self, items: Sequence[Any]) -> None:
            raise BrokerUnavailable("broker did not acknowledge")

    rt.publisher = Down()  # type: ignore[assignment]
    r = await client.post("/api/dlq/replay", headers=_auth(TOKENS["operator"]), json={"all": True})
    assert r.status_code == 503, r.text
    assert await _audit(rt) == []
    async with rt.sessions() as session:
        row = await session.get(DeadLetter, letter)
        assert row is not None and row.replayed_at is None


async def test_a_replay_failing_part_way_answers_with_the_parts_replayed(hub_api, monkeypatch):
    """A part fails for a reason other than the broker (a bug, the database): the parts before
    it are replayed and marked, and the answer says which, with a 500."""
    from hub import deadletters

    rt, client = hub_api
    assert rt.sessions is not None
    first = await add_dead_letter(rt.sessions, 7)
    second = await add_dead_letter(rt.sessions, 8)
    monkeypatch.setattr(deadletters, "PART_LETTERS", 1)

    class Once:
        sent = 0

        async def send_many(self, items: Sequence[Any]) -> None:
            self.sent += 1
            if self.sent > 1:
                raise RuntimeError("bug")

    rt.publisher = Once()  # type: ignore[assignment]
    r = await client.post("/api/dlq/replay", headers=_auth(TOKENS["operator"]), json={"all": True})
    assert r.status_code == 500, r.text
    assert r.json()["replayed"] == [first] and r.json()["not_replayed"] == 1
    async with rt.sessions() as session:
        row = await session.get(DeadLetter, second)
        assert row is not None and row.replayed_at is None
