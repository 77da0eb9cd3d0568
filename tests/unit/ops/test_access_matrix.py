"""The role matrix and the token registry: who may run which command and call which endpoint,
and how a presented token is told apart from a wrong one."""

from __future__ import annotations

import hashlib

import pytest
import typer

from hub.access import (
    COMMANDS,
    ENDPOINTS,
    AccessDenied,
    Principal,
    Role,
    Tokens,
    command_role,
    endpoint_role,
)
from hub.config import AccessToken, ConfigError, HubConfig, Settings

OPERATOR_ACTIONS = [
    ("stock count", False),
    ("reconcile", True),
    ("dlq replay", False),
    ("po approve", False),
    ("connector resync", False),
    ("connector push-stock", False),
]
READS = ["stock show", "stock check", "dlq list", "lag", "connector list", "po list"]
ADMIN_ONLY = [("stock repair", True), ("db upgrade", False), ("po policy", False)]


def _settings(access: dict[str, AccessToken] | None = None, **tokens: str) -> Settings:
    s = Settings(**tokens)
    s.__dict__["hub"] = HubConfig(access=access or {})
    return s


def test_each_role_may_do_what_the_roles_below_it_may():
    assert [r.allows(Role.VIEWER) for r in Role] == [True, True, True]
    assert [r.allows(Role.OPERATOR) for r in Role] == [False, True, True]
    assert [r.allows(Role.ADMIN) for r in Role] == [False, False, True]


@pytest.mark.parametrize(("path", "fix"), OPERATOR_ACTIONS)
def test_operator_actions_need_an_operator(path, fix):
    needed = command_role(path, fix=fix)
    assert needed is not None
    assert not Role.VIEWER.allows(needed)
    assert Role.OPERATOR.allows(needed)


@pytest.mark.parametrize("path", READS)
def test_read_commands_are_open_to_viewers(path):
    needed = command_role(path)
    assert needed is not None and Role.VIEWER.allows(needed)


@pytest.mark.parametrize(("path", "fix"), ADMIN_ONLY)
def test_repairs_and_configuration_need_an_admin(path, fix):
    needed = command_role(path, fix=fix)
    assert needed is not None
    assert not Role.OPERATOR.allows(needed) and Role.ADMIN.allows(needed)


def test_fix_raises_what_reconcile_and_repair_need_but_not_other_commands():
    assert command_role("reconcile") is Role.VIEWER
    assert command_role("reconcile", fix=True) is Role.OPERATOR
    assert command_role("stock repair") is Role.VIEWER
    assert command_role("stock repair", fix=True) is Role.ADMIN
    assert command_role("dlq list", fix=True) is Role.VIEWER  # no --fix variant


def test_anything_missing_from_the_matrix_needs_an_admin():
    assert command_role("stock vanish") is Role.ADMIN
    assert endpoint_role("DELETE", "/api/stock/{sku}") is Role.ADMIN
    assert endpoint_role("POST", "/api/lag") is Role.ADMIN


def test_mutating_endpoints_need_an_operator_and_reads_a_viewer():
    assert endpoint_role("post", "/api/dlq/replay") is Role.OPERATOR
    for (method, path), role in ENDPOINTS.items():
        if method == "GET" and path != "/api/audit":
            assert role is Role.VIEWER, path


def _commands(group: typer.Typer, prefix: str = "") -> dict[str, object]:
    found: dict[str, object] = {}
    for info in group.registered_commands:
        assert info.callback is not None
        name = info.name or info.callback.__name__.lower().replace("_", "-")
        found[prefix + name] = info.callback
    for sub in group.registered_groups:
        assert sub.typer_instance is not None
        found.update(_commands(sub.typer_instance, f"{prefix}{sub.name} "))
    return found


def test_every_cli_command_is_in_the_matrix_and_checked():
    from hub.cli.main import app

    commands = _commands(app)
    assert {"dlq replay", "po approve", "reconcile", "audit list", "stock count"} <= set(commands)
    assert sorted(p for p in commands if p not in COMMANDS) == []
    unchecked = [p for p, f in commands.items() if not getattr(f, "__hub_guarded__", False)]
    assert unchecked == []


def test_every_api_route_is_in_the_matrix():
    from hub.app import Runtime
    from hub.web.app import create_app

    app = create_app(Runtime(_settings(admin_token="a" * 32)))
    api = {
        (method, route.path.replace("{sku:path}", "{sku}"))
        for route in app.router.routes
        if getattr(route, "path", "").startswith("/api/")
        for method in (route.methods or set()) - {"HEAD"}
    }
    assert api == set(ENDPOINTS)


def test_environment_tokens_are_named_by_their_role():
    tokens = Tokens.from_settings(
        _settings(admin_token="adm-secret", operator_token="op-secret", viewer_token="view-secret")
    )
    assert tokens.identify("adm-secret") == Principal("admin", Role.ADMIN)
    assert tokens.identify("op-secret") == Principal("operator", Role.OPERATOR)
    assert tokens.identify("view-secret") == Principal("viewer", Role.VIEWER)
    assert tokens.identify("view-secreT") is None
    assert tokens.identify("") is None and tokens.identify(None) is None


def test_config_tokens_by_reference_or_digest(monkeypatch):
    monkeypatch.setenv("ALICE_TOKEN", "alice-secret-1")
    digest = hashlib.sha256(b"bob-secret-2").hexdigest()
    tokens = Tokens.from_settings(
        _settings(
            {
                "alice": AccessToken(role="operator", token="env:ALICE_TOKEN"),
                "bob": AccessToken(role="viewer", token_sha256=digest),
            }
        )
    )
    assert tokens.identify("alice-secret-1") == Principal("alice", Role.OPERATOR)
    assert tokens.identify("bob-secret-2") == Principal("bob", Role.VIEWER)
    assert tokens.identify(digest) is None  # the digest is not the token


def test_authorise_tells_no_token_from_too_little_role():
    tokens = Tokens.from_settings(_settings(viewer_token="view-secret"))
    with pytest.raises(AccessDenied) as missing:
        tokens.authorise("guess", Role.VIEWER)
    assert not missing.value.authenticated
    with pytest.raises(AccessDenied) as weak:
        tokens.authorise("view-secret", Role.OPERATOR)
    assert weak.value.authenticated and "viewer" in str(weak.value)
    assert tokens.authorise("view-secret", Role.VIEWER).name == "viewer"


def test_no_tokens_means_access_control_is_off():
    assert not Tokens.from_settings(_settings()).configured


def test_an_unset_reference_fails_the_server_but_not_the_cli(monkeypatch):
    monkeypatch.delenv("CAROL_TOKEN", raising=False)
    s = _settings({"carol": AccessToken(role="admin", token="env:CAROL_TOKEN")})
    with pytest.raises(ConfigError, match="carol"):
        Tokens.from_settings(s)
    lenient = Tokens.from_settings(s, strict=False)
    assert lenient.configured  # still refuses callers: nobody's token matches
    assert lenient.identify("") is None


def test_one_token_under_two_names_is_refused(monkeypatch):
    monkeypatch.setenv("DAVE_TOKEN", "shared-secret")
    s = _settings(
        {"dave": AccessToken(role="viewer", token="env:DAVE_TOKEN")}, admin_token="shared-secret"
    )
    with pytest.raises(ConfigError, match="share one token"):
        Tokens.from_settings(s)


def test_the_config_file_takes_an_access_table(tmp_path, monkeypatch):
    path = tmp_path / "hub.toml"
    path.write_text(
        '[access.night-shift]\nrole = "operator"\ntoken = "env:NIGHT_TOKEN"\n'
        '[access.wall]\nrole = "viewer"\ntoken_sha256 = "' + "0" * 64 + '"\n'
    )
    cfg = HubConfig.load(path)
    assert {n: a.role for n, a in cfg.access.items()} == {
        "night-shift": "operator",
        "wall": "viewer",
    }
    path.write_text('[access.x]\nrole = "root"\ntoken = "env:X"\n')
    with pytest.raises(ConfigError, match="role"):
        HubConfig.load(path)
    path.write_text('[access.x]\nrole = "viewer"\n')
    with pytest.raises(ConfigError, match="token or token_sha256"):
        HubConfig.load(path)
