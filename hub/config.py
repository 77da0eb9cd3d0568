"""Settings from the environment (`HUB_*`) and the TOML config file (accounts, channels, chart)."""

from __future__ import annotations

import os
import tomllib
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Messages in one core batch at most: a batch pays a dozen statements, a commit and an offset
# commit whatever its size (BENCHMARKS.md, run N, compares 1,000, 2,000 and 4,000).
CORE_BATCH_SIZE = 2000


class ConfigError(ValueError):
    """The configuration is invalid; the message says where."""


def resolve_secret(value: str | None) -> str | None:
    """Secrets are references (`env:NAME`) in the config file; literal values are accepted too."""
    if value is None or not value.startswith("env:"):
        return value
    name = value.removeprefix("env:")
    if name not in os.environ:
        raise ConfigError(f"secret reference {value!r}: environment variable {name} is not set")
    return os.environ[name]


class ChannelRule(BaseModel):
    """How much of available-to-sell a channel is offered."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    share: float = Field(default=1.0, ge=0, le=1, description="Fraction of available, rounded down")
    buffer: int = Field(default=0, ge=0, description="Units held back from this channel")
    cap: int = Field(default=0, ge=0, description="At most this many (0: no cap)")
    locations: tuple[str, ...] = Field(default=("main",), description="Locations it sells from")
    dropship: bool = Field(
        default=False, description="Also sell what suppliers' stock feeds report (dropship SKUs)"
    )
    presale: bool = Field(
        default=False, description="Take backorders against confirmed inbound stock (presale)"
    )


class AccountConfig(BaseModel):
    """One connected outside system. Connectors read their own extra keys from `extra`."""

    model_config = ConfigDict(extra="allow", frozen=True)

    connector: str
    channel: str = "online"
    location: str = "main"
    webhook_secret: str | None = None
    previous_webhook_secret: str | None = None
    previous_secret_valid_until: AwareDatetime | None = None
    api_url: str | None = None
    api_token: str | None = None
    path: str | None = None

    @property
    def extra(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    def secret(self, name: str) -> str | None:
        return resolve_secret(getattr(self, name, None) or self.extra.get(name))

    def webhook_secrets(self, now: datetime) -> list[str]:
        """The current secret, plus the previous one while its rotation window is open."""
        secrets = [s for s in [self.secret("webhook_secret")] if s]
        until = self.previous_secret_valid_until
        # The window first: a secret rotated out is not read, so its variable may go.
        if until is None or now < until:
            previous = self.secret("previous_webhook_secret")
            if previous:
                secrets.append(previous)
        return secrets


class AccessToken(BaseModel):
    """A named bearer token and its role (`[access.NAME]`); the name is what audit rows record."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Literal["viewer", "operator", "admin"]
    token: str | None = Field(default=None, description="`env:NAME` reference to the token")
    token_sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="Hex SHA-256 of the token, so the file can be shared without the secret",
    )

    @model_validator(mode="after")
    def _one_secret(self) -> AccessToken:
        if (self.token is None) == (self.token_sha256 is None):
            raise ValueError("give either token or token_sha256")
        return self


class HubConfig(BaseModel):
    """The TOML config file."""

    model_config = ConfigDict(extra="allow", frozen=True)

    channels: dict[str, ChannelRule] = Field(default_factory=lambda: {"online": ChannelRule()})
    accounts: dict[str, AccountConfig] = Field(default_factory=dict)
    access: dict[str, AccessToken] = Field(default_factory=dict)

    @field_validator("accounts", "access")
    @classmethod
    def _names(cls, v: dict[str, Any]) -> dict[str, Any]:
        for name in v:
            if not name.replace("-", "").replace("_", "").isalnum():
                raise ValueError(f"name {name!r}: use letters, digits, - and _")
        return v

    @classmethod
    def load(cls, path: Path | None) -> HubConfig:
        if path is None:
            return cls()
        try:
            raw = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {path} not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        try:
            cfg = cls.model_validate(raw)
        except ValueError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        for name, acc in cfg.accounts.items():
            if acc.channel not in cfg.channels and acc.connector in SHOP_CONNECTORS:
                raise ConfigError(
                    f"{path}: account {name!r} sells on unknown channel {acc.channel!r}"
                )
        return cfg


SHOP_CONNECTORS = frozenset({"shopify", "woocommerce", "generic"})


class Settings(BaseSettings):
    """Process settings from `HUB_*` environment variables (see INTERFACE.md)."""

    model_config = SettingsConfigDict(env_prefix="HUB_", extra="ignore")

    config: Path | None = Field(default=None, description="TOML config file")
    kafka_bootstrap: str | None = Field(default=None, description="unset: embedded broker")
    database_url: str | None = Field(default=None, description="SQLAlchemy async URL")
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    log_format: Literal["console", "json"] | None = None
    log_level: str = "INFO"
    var_dir: Path = Path("var")
    admin_token: str | None = None
    operator_token: str | None = None
    viewer_token: str | None = None
    # Kafka topics and clients
    topic_partitions: int = Field(default=4, ge=1)
    topic_replication: int = Field(default=1, ge=1)
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = None
    kafka_ssl_cafile: str | None = None
    kafka_fetch_max_wait_ms: int | None = Field(
        default=None,
        ge=1,
        le=30000,
        description="how long a fetch waits for data; unset: 500 on Kafka, 10 on the embedded broker",
    )
    # Core tuning
    core_group: str = Field(default="hub-core", description="Consumer group of the core")
    core_batch_size: int = Field(default=CORE_BATCH_SIZE, ge=1)
    core_batch_timeout_ms: int = Field(default=20, ge=1)
    core_fetch_min_bytes: int = Field(
        default=65536,
        ge=1,
        description="the broker holds the core's fetch until this much is ready (group commit)",
    )
    core_fetch_max_wait_ms: int = Field(
        default=25, ge=1, le=30000, description="… or until this long has passed"
    )
    consumer_session_timeout_ms: int = Field(default=10000, ge=1000)
    relay_batch_size: int = Field(default=2000, ge=1)
    relay_interval_ms: int = Field(
        default=50,
        ge=1,
        description="how often the relay looks for outbox rows it was not woken for "
        "(on PostgreSQL the core's commits wake it at once)",
    )
    reconcile_interval_s: float = Field(default=300.0, ge=0, description="0 disables")

    @cached_property
    def hub(self) -> HubConfig:
        path = self.config
        if path is None and Path("hub.toml").exists():
            path = Path("hub.toml")
        return HubConfig.load(path)

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.var_dir / 'hub.db'}"

    @property
    def broker_file(self) -> Path:
        """Where `hub serve` records the embedded broker's address for other `hub` commands."""
        return self.var_dir / "broker.json"
