"""Who may do what: bearer tokens with a role (viewer, operator, admin) and the one matrix that
both the CLI and the HTTP API enforce.

Tokens come from `HUB_ADMIN_TOKEN`, `HUB_OPERATOR_TOKEN`, `HUB_VIEWER_TOKEN` (named `admin`,
`operator`, `viewer`) and from the config file's `[access.NAME]` tables (`role` plus `token =
"env:VAR"` or `token_sha256 = "…"`). Only SHA-256 digests are kept in memory and compared, in
constant time and against every entry; audit rows carry the token's name, never the token.

A command or endpoint missing from the matrix needs `admin` (fail closed).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from enum import StrEnum

from hub.config import ConfigError, Settings, resolve_secret


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    def allows(self, needed: Role) -> bool:
        """Each role may do everything the roles below it may."""
        return _RANK[self] >= _RANK[needed]


_RANK = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}

# CLI commands by their path; a `--fix` variant is its own entry. `None`: no token needed
# (processes a deployment starts, and documents).
COMMANDS: dict[str, Role | None] = {
    "serve": None,
    "run": None,
    "demo": None,
    "asyncapi": None,
    # read
    "stock show": Role.VIEWER,
    "stock check": Role.VIEWER,
    "stock report": Role.VIEWER,
    "stock repair": Role.VIEWER,  # without --fix it only lists mismatches
    "dlq list": Role.VIEWER,
    "lag": Role.VIEWER,
    "connector list": Role.VIEWER,
    "reconcile": Role.VIEWER,  # without --fix it only compares
    "po list": Role.VIEWER,
    "po exceptions": Role.VIEWER,
    "books trial-balance": Role.VIEWER,
    "books check": Role.VIEWER,
    # operator actions, each audited
    "stock count": Role.OPERATOR,
    "reconcile --fix": Role.OPERATOR,
    "dlq replay": Role.OPERATOR,
    "po approve": Role.OPERATOR,
    "po discard": Role.OPERATOR,
    "po accept-invoice": Role.OPERATOR,
    "connector resync": Role.OPERATOR,
    "connector push-stock": Role.OPERATOR,
    "audit list": Role.OPERATOR,
    "books deliver": Role.OPERATOR,
    # configuration, repairs, schema
    "stock repair --fix": Role.ADMIN,
    "db upgrade": Role.ADMIN,
    "topics ensure": Role.ADMIN,
    "po supplier": Role.ADMIN,
    "po policy": Role.ADMIN,
    "po dropship": Role.ADMIN,
    "po presale": Role.ADMIN,
    "bench": Role.ADMIN,
}

# HTTP endpoints under /api by method and route path.
ENDPOINTS: dict[tuple[str, str], Role] = {
    ("GET", "/api/stock/{sku}"): Role.VIEWER,
    ("GET", "/api/lag"): Role.VIEWER,
    ("GET", "/api/dlq"): Role.VIEWER,
    ("GET", "/api/overview"): Role.VIEWER,
    ("GET", "/api/audit"): Role.OPERATOR,
    ("POST", "/api/dlq/replay"): Role.OPERATOR,
}

ENV_TOKENS = (("admin", Role.ADMIN), ("operator", Role.OPERATOR), ("viewer", Role.VIEWER))


def command_role(path: str, *, fix: bool = False) -> Role | None:
    """The role a command needs (`None`: none); unknown commands need admin."""
    key = f"{path} --fix" if fix and f"{path} --fix" in COMMANDS else path
    return COMMANDS.get(key, Role.ADMIN)


def endpoint_role(method: str, path: str) -> Role:
    return ENDPOINTS.get((method.upper(), path), Role.ADMIN)


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's name (what audit rows record) and its role."""

    name: str
    role: Role


class AccessDenied(Exception):
    """The caller may not do this. `authenticated` tells 401 (no or bad token) from 403."""

    def __init__(self, message: str, *, authenticated: bool) -> None:
        super().__init__(message)
        self.authenticated = authenticated


@dataclass(frozen=True)
class _Entry:
    name: str
    role: Role
    digest: bytes


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class Tokens:
    """The configured tokens. Empty when none is configured (then `configured` is False)."""

    def __init__(self, entries: list[_Entry], *, declared: int | None = None) -> None:
        names = [e.name for e in entries]
        if len(set(names)) != len(names):
            raise ConfigError(f"access: token names must be unique: {sorted(names)}")
        if len({e.digest for e in entries}) != len(entries):
            raise ConfigError("access: two token names share one token value")
        self._entries = entries
        self._declared = len(entries) if declared is None else declared

    @classmethod
    def from_settings(cls, settings: Settings, *, strict: bool = True) -> Tokens:
        """With `strict=False` (the CLI) an `env:` reference whose variable is unset is
        skipped, so an operator needs only their own token; access stays configured."""
        entries = [
            _Entry(name, role, _digest(value))
            for (name, role), value in zip(
                ENV_TOKENS,
                (settings.admin_token, settings.operator_token, settings.viewer_token),
                strict=True,
            )
            if value
        ]
        declared = len(entries)
        for name, cfg in settings.hub.access.items():
            declared += 1
            if cfg.token_sha256 is not None:
                entries.append(_Entry(name, Role(cfg.role), bytes.fromhex(cfg.token_sha256)))
                continue
            try:
                value = resolve_secret(cfg.token)
            except ConfigError as exc:
                if strict:
                    raise ConfigError(f"access.{name}: {exc}") from None
                continue
            if not value:
                raise ConfigError(f"access.{name}: the token is empty")
            entries.append(_Entry(name, Role(cfg.role), _digest(value)))
        return cls(entries, declared=declared)

    @property
    def configured(self) -> bool:
        return self._declared > 0

    def identify(self, token: str | None) -> Principal | None:
        """The principal holding this token, or None. Every entry is compared, so the time taken
        does not tell which one matched or how close a guess came."""
        if not token:
            return None
        digest = _digest(token)
        found: _Entry | None = None
        for entry in self._entries:
            if hmac.compare_digest(digest, entry.digest) and found is None:
                found = entry
        return Principal(found.name, found.role) if found else None

    def authorise(self, token: str | None, needed: Role) -> Principal:
        """The caller's principal if its role suffices; `AccessDenied` otherwise."""
        principal = self.identify(token)
        if principal is None:
            raise AccessDenied("missing or invalid token", authenticated=False)
        if not principal.role.allows(needed):
            raise AccessDenied(
                f"token {principal.name!r} has role {principal.role}; this needs {needed}",
                authenticated=True,
            )
        return principal
