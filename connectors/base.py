"""What every shop connector offers, the registry by name, and parsing helpers for mappings.

A connector turns webhook deliveries into canonical envelopes (`verify` then `parse`) and builds a
platform client for resync, reconcile and stock push-out. It never touches the store.

`Envelope.time` (the `ce_time` header) carries the platform's own modification time of the
resource (Shopify `updated_at`, WooCommerce `date_modified_gmt`), the same whether the message came
from a webhook or a resync: a consumer that remembers the newest time it applied per order can
drop a stale update with `is_stale`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib
import json
import re
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol, TypeVar, runtime_checkable

import httpx
from pydantic import ValidationError

from connectors.errors import MalformedPayload, SignatureInvalid
from hub.config import AccountConfig
from schemas.base import CanonicalMessage
from schemas.envelope import Envelope

M = TypeVar("M", bound=CanonicalMessage)


@dataclass(frozen=True, slots=True)
class Account:
    """A configured account by its name (the key under `[accounts]`) with its settings."""

    name: str
    config: AccountConfig

    @property
    def connector(self) -> str:
        return self.config.connector

    @property
    def source(self) -> str:
        """The CloudEvents source of what this account sends, e.g. `shopify/acme`."""
        return f"{self.config.connector}/{self.name}"

    def order_key(self, platform_order_id: str) -> str:
        return f"{self.name}:{platform_order_id}"


@dataclass(frozen=True, slots=True)
class OrderPage:
    """One page of a paginated order listing, already mapped.

    `rejected` holds the orders that could not be mapped (platform id, reason): a resync reports
    them and carries on. `cursor` resumes the listing after this page; None when it is the last.
    `newest` is the largest modification time seen, for a stored `--since` cursor.
    """

    envelopes: list[Envelope]
    cursor: str | None
    rejected: list[tuple[str, str]] = field(default_factory=list)
    newest: datetime | None = None


@dataclass(frozen=True, slots=True)
class StockPushResult:
    """What a set-stock call did: SKUs set, and SKUs that failed for good with the reason
    (unknown on the platform, refused by validation). Transient failures raise instead."""

    updated: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


class Unlisted:
    """SKUs a read of the shop's catalogue did not find. A push of such a SKU reads the whole
    catalogue again (a product may have been made since), but not before `ttl` seconds after
    the read that missed it: a SKU the shop does not sell, whose level changes with every sale
    on another channel's shop, would otherwise spend the shop's rate limit on catalogue reads
    and hold up the pushes behind it."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._at: dict[str, float] = {}

    def worth_a_read(self, missing: Iterable[str]) -> bool:
        now = time.monotonic()
        return any(now - self._at.get(sku, -self.ttl - 1.0) > self.ttl for sku in missing)

    def read(self, missing: Iterable[str], listed: Iterable[str] = ()) -> None:
        """A catalogue read just missed `missing` and found `listed`."""
        now = time.monotonic()
        for sku in listed:
            self._at.pop(sku, None)
        self._at.update((sku, now) for sku in missing)


@runtime_checkable
class ShopClient(Protocol):
    """The platform API subset resync, reconcile and push-out need."""

    async def list_orders(self, *, since: datetime | None, cursor: str | None) -> OrderPage:
        """One page of orders modified at or after `since`, mapped to canonical envelopes."""
        ...

    async def get_stock(self, skus: Sequence[str] | None = None) -> dict[str, int]:
        """Stock the platform shows per SKU (all managed SKUs when `skus` is None)."""
        ...

    async def set_stock(self, levels: Mapping[str, int], *, force: bool = False) -> StockPushResult:
        """Set available quantities. Raises ConnectorError for a failed call.

        Where the platform offers compare-and-set, a concurrent change on the shop is detected
        and the shop is never offered more than it has left; `force` sets the values as given
        (reconcile `--fix`).
        """
        ...

    async def aclose(self) -> None: ...


class ShopConnector(Protocol):
    """One shop platform: webhook signature, payload mapping, API client."""

    name: str

    def verify(
        self, body: bytes, headers: Mapping[str, str], account: Account, now: datetime
    ) -> None:
        """Check the signature on the raw body; raise SignatureInvalid. Never parses the body."""
        ...

    def parse(
        self, body: bytes, headers: Mapping[str, str], account: Account, now: datetime
    ) -> list[Envelope]:
        """Map a verified delivery to envelopes ([] for topics the hub ignores).

        Raises MalformedPayload with a reason naming the offending field.
        """
        ...

    def client(
        self, account: Account, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> ShopClient:
        """The platform client for this account (`transport` lets tests use a simulator)."""
        ...


_REGISTRY: dict[str, str] = {
    "shopify": "connectors.shopify:CONNECTOR",
    "woocommerce": "connectors.woocommerce:CONNECTOR",
    "generic": "connectors.generic:CONNECTOR",
}


def connector_names() -> list[str]:
    return sorted(_REGISTRY)


def get_connector(name: str) -> ShopConnector:
    """The connector registered under `name`; KeyError if there is none."""
    target = _REGISTRY[name]
    module, attr = target.split(":")
    connector: ShopConnector = getattr(importlib.import_module(module), attr)
    return connector


def build_client(
    account: Account, *, transport: httpx.AsyncBaseTransport | None = None
) -> ShopClient:
    """The platform client of a configured shop account (its connector decides which)."""
    return get_connector(account.connector).client(account, transport=transport)


async def order_pages(
    client: ShopClient, *, since: datetime | None, cursor: str | None = None
) -> AsyncIterator[OrderPage]:
    """Every page of a resync, from `cursor` if one was stored (each page carries the next)."""
    while True:
        page = await client.list_orders(since=since, cursor=cursor)
        yield page
        if page.cursor is None:
            return
        cursor = page.cursor


def register_connector(name: str, target: str) -> None:
    """Register another connector as `module:ATTRIBUTE` (imported on first use)."""
    _REGISTRY[name] = target


@dataclass(frozen=True, slots=True)
class StockDrift:
    """A SKU whose shop stock differs from the hub's available-to-sell for that shop."""

    sku: str
    platform: int | None  # None: the shop does not list the SKU
    hub: int

    @property
    def difference(self) -> int:
        return (self.platform or 0) - self.hub


def stock_drift(platform: Mapping[str, int], hub: Mapping[str, int]) -> list[StockDrift]:
    """Drift between what a shop shows and what the hub offers it, by SKU (for `hub reconcile`).

    Only SKUs the hub manages are compared; what the shop lists beyond them is not the hub's.
    `--fix` pushes `{d.sku: d.hub for d in drift if d.platform is not None}` with `force=True`.
    """
    return [
        StockDrift(sku, platform.get(sku), available)
        for sku, available in sorted(hub.items())
        if platform.get(sku) != available
    ]


# --- staleness ---------------------------------------------------------------------------------


def is_stale(previous: datetime | None, incoming: datetime) -> bool:
    """True if `incoming` is older than what was already applied for the same resource.

    Equal times are not stale (a duplicate is dropped by its message id, not here).
    """
    return previous is not None and incoming < previous


# --- parsing helpers for mappings --------------------------------------------------------------

# A SKU is the merchant's, as the hub's schema takes it (up to 128 characters, no control
# characters): a stocktake names such a SKU, so an order for it must reach the core too, not be
# refused with its whole order (a shop retries a refused webhook, then drops the subscription).
# What carries a SKU on quotes it (CSV files, URLs as parameters), escapes it (EDIFACT's release
# character) or refuses that one document naming it (X12 has no escape: a delimiter in a value is
# an error, and the purchase order a dead letter). What would change how a listing reads is
# refused (C1 controls, bidirectional embeddings, overrides and isolates, line and paragraph
# separators, lone surrogates), and so is a SKU of dots alone, which a URL path reads as a
# directory. Other invisible characters are taken as they are (an emoji's joiner, a soft hyphen,
# the joiners Persian and Indic writing need, code points newer than this Python knows).
_SKU = re.compile(
    r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]{1,128}$"
)


def header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive header lookup over any mapping."""
    lname = name.lower()
    # The gateway's headers are keyed in lower case (as HTTP/2 and ASGI servers give them):
    # found directly, without a pass over every header.
    found = headers.get(lname)
    if found is not None:
        return found
    for k, v in headers.items():
        if k.lower() == lname:
            return v
    return None


def req(obj: Mapping[str, Any], key: str, where: str) -> Any:
    if not isinstance(obj, Mapping) or obj.get(key) is None:
        raise MalformedPayload(f"{where}.{key} is missing")
    return obj[key]


def as_obj(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise MalformedPayload(f"{where} must be an object")
    return value


def as_list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise MalformedPayload(f"{where} must be an array")
    return value


def as_id(value: Any, where: str) -> str:
    """A platform id (integer or string) as a string."""
    if isinstance(value, bool) or value is None:
        raise MalformedPayload(f"{where} is missing or not an id")
    if isinstance(value, int):
        if value < 0:
            raise MalformedPayload(f"{where} must not be negative")
        return str(value)
    if isinstance(value, str) and 0 < len(value) <= 64 and value.isprintable() and " " not in value:
        return value
    raise MalformedPayload(f"{where} is not a usable id")


_MONEY_BOUND = Decimal(10) ** 14


def money(value: Any, where: str, *, default: Decimal | None = None) -> Decimal:
    """A platform money string (or integer) as Decimal. Floats are refused: they lose cents."""
    if value is None or value == "":
        if default is not None:
            return default
        raise MalformedPayload(f"{where} is missing")
    if isinstance(value, (bool, float)):
        raise MalformedPayload(f"{where} must be a decimal string, not {type(value).__name__}")
    try:
        d = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise MalformedPayload(f"{where} is not a decimal amount: {str(value)[:40]!r}") from None
    if not d.is_finite() or abs(d) >= _MONEY_BOUND:
        raise MalformedPayload(f"{where} is out of range")
    exponent = d.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -6:
        raise MalformedPayload(f"{where} has more than 6 decimal places")
    return d


def quantity(value: Any, where: str, *, allow_zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedPayload(f"{where} must be an integer")
    if value < 0 or (value == 0 and not allow_zero) or value > 1_000_000:
        raise MalformedPayload(f"{where} is out of range: {value}")
    return value


def names_goods(value: Any) -> bool:
    """Whether a line's SKU field names goods at all. A line with no SKU (a custom item, a
    service, a product kept without one) is nothing the hub can hold stock of: it is billed as a
    charge, and the order's other lines are reserved as usual. A SKU that is there but unusable is
    still an error (`sku`)."""
    return not (value is None or (isinstance(value, str) and not value.strip()))


def sku(value: Any, where: str) -> str:
    """A usable SKU, or MalformedPayload naming the line. Unknown SKUs are the core's call."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise MalformedPayload(f"{where} has no SKU")
    stripped = value.strip() if isinstance(value, str) else ""
    if not _SKU.match(stripped) or not stripped.strip("."):
        raise MalformedPayload(f"{where} has an unusable SKU")
    return stripped


def timestamp(value: Any, where: str, *, naive_is_utc: bool = False) -> datetime:
    """An ISO 8601 time as an aware UTC datetime."""
    if not isinstance(value, str) or not value:
        raise MalformedPayload(f"{where} is missing or not a time")
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise MalformedPayload(f"{where} is not an ISO 8601 time: {value[:40]!r}") from None
    if t.tzinfo is None:
        if not naive_is_utc:
            raise MalformedPayload(f"{where} has no timezone")
        t = t.replace(tzinfo=UTC)
    try:
        return t.astimezone(UTC)
    except OverflowError:  # an offset that takes it past the calendar's first or last day
        raise MalformedPayload(f"{where} is out of range: {value[:40]!r}") from None


def build(model: type[M], where: str, **fields: Any) -> M:
    """Construct a canonical message; a validation failure becomes MalformedPayload."""
    try:
        return model(**fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise MalformedPayload(f"{where}: {loc}: {err['msg']}") from None


def currency(value: Any, where: str) -> str:
    from schemas.base import ISO_4217

    if not isinstance(value, str) or value.upper() not in ISO_4217:
        raise MalformedPayload(f"{where} is not an ISO 4217 currency code")
    return value.upper()


# --- HMAC signatures ---------------------------------------------------------------------------


def sign(secret: str, body: bytes, encoding: str = "base64") -> str:
    """HMAC-SHA256 of the raw body, base64 (Shopify, WooCommerce) or hex encoded."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode() if encoding == "base64" else digest.hex()


def verify_hmac(body: bytes, provided: str | None, secrets: Sequence[str], encoding: str) -> None:
    """Accept if any configured secret signs the body; constant-time compare for each."""
    if not provided:
        raise SignatureInvalid("missing signature")
    if not secrets:
        raise SignatureInvalid("no webhook secret configured for this account")
    candidate = provided.strip().encode("ascii", "replace")
    ok = False
    for secret in secrets:
        # Compare against every secret (no early exit) so timing says nothing about which matched.
        ok |= hmac.compare_digest(sign(secret, body, encoding).encode(), candidate)
    if not ok:
        raise SignatureInvalid("signature does not match")


# --- JSON --------------------------------------------------------------------------------------


def parse_json(body: bytes) -> object:
    """Strict JSON: UTF-8 only, no NaN/Infinity, bounded nesting."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedPayload("body is not UTF-8") from None
    if text.startswith("\ufeff"):
        raise MalformedPayload("body starts with a byte order mark (JSON must not)")
    try:
        value = _DECODER.decode(text)
    except RecursionError:
        raise MalformedPayload("body is nested too deeply") from None
    except ValueError as exc:
        raise MalformedPayload(f"body is not JSON: {str(exc)[:120]}") from None
    # n objects and arrays nest at most n deep, their values at most n + 1: a body with fewer
    # brackets than the limit (those inside strings only add to the count) needs no walk.
    if body.count(b"{") + body.count(b"[") >= MAX_JSON_DEPTH:
        _check_depth(value)
    return value


MAX_JSON_DEPTH = 64


def _check_depth(value: object) -> None:
    """No value deeper than `MAX_JSON_DEPTH` (the top level is 1): walked level by level,
    visiting only objects and arrays (a third of the time of visiting every value)."""
    if type(value) is not dict and type(value) is not list:
        return
    level: list[Any] = [value]  # objects and arrays only
    depth = 1
    while level:
        deeper: list[Any] = []
        for node in level:
            children = node.values() if type(node) is dict else node
            if children and depth >= MAX_JSON_DEPTH:
                raise MalformedPayload(f"body is nested deeper than {MAX_JSON_DEPTH} levels")
            deeper += [c for c in children if type(c) is dict or type(c) is list]
        level = deeper
        depth += 1


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not allowed")


# One decoder for every body (`json.loads` with hooks builds a decoder and its scanner on each
# call): numbers with a fraction or an exponent become Decimal, NaN and Infinity are refused.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=Decimal)
