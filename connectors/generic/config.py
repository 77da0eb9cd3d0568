"""The generic connector's account settings, read from the account's extra keys.

```toml
[accounts.market]
connector = "generic"
channel = "online"
webhook_secret = "env:MARKET_WEBHOOK_SECRET"
signature_header = "X-Signature"      # where the HMAC-SHA256 of the raw body travels
signature_encoding = "hex"            # hex | base64
signature_prefix = "sha256="          # stripped before comparing, if present
api_url = "https://market.example"
api_token = "env:MARKET_API_TOKEN"    # sent as `Authorization: Bearer …`
stock_url = "/api/stock/{sku}"        # URL template for the stock push ({sku} is URL-quoted)
stock_method = "PUT"
stock_field = "quantity"              # the JSON body is {"quantity": available}

[accounts.market.mapping]             # JMESPath expressions over the webhook body
event = "type"
order_id = "data.id"
placed_at = "data.created_at"
modified_at = "data.updated_at"
currency = "data.currency"
total = "data.total"
lines = "data.items"
line_sku = "sku"                      # …evaluated on each element of `lines`
line_quantity = "qty"
line_unit_price = "price"

[accounts.market.mapping.events]      # platform event → lifecycle event
"order.created" = "placed"
"order.cancelled" = "cancelled"
"order.shipped" = "fulfilled"
"order.paid" = "paid"
```
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import jmespath
from jmespath import functions
from jmespath.exceptions import JMESPathError
from jmespath.parser import ParsedResult

from connectors.base import Account
from hub.config import ConfigError

KINDS = frozenset({"placed", "cancelled", "fulfilled", "paid", "ignore"})
REQUIRED = ("event", "order_id", "lines", "line_sku", "line_quantity")
OPTIONAL = (
    "placed_at",
    "modified_at",
    "cancelled_at",
    "currency",
    "total",
    "shipping",
    "shipping_tax",
    "fulfilment_id",
    "payment_id",
    "line_unit_price",
    "line_tax",
    "line_discount",
    "line_id",
)


class _Functions(functions.Functions):
    """JMESPath's functions, taking as numbers the `Decimal` amounts `parse_json` gives (they
    accept only int and float): `sum(items[].amount)` adds them exactly, `sort_by`, `min_by`
    and `max_by` order by them, `type()` names them, and `to_number` keeps a decimal string's
    cents exact (a float would be refused as money)."""

    def _get_allowed_pytypes(self, types: Any) -> Any:
        allowed, subtypes = super()._get_allowed_pytypes(types)
        if "float" in allowed:
            allowed = [*allowed, "Decimal"]
        return allowed, [(*sub, "Decimal") if "float" in sub else sub for sub in subtypes]

    def _convert_to_jmespath_type(self, pyobject: Any) -> Any:
        return "number" if pyobject == "Decimal" else super()._convert_to_jmespath_type(pyobject)

    @functions.signature({"types": []})
    def _func_type(self, arg: Any) -> Any:
        return "number" if isinstance(arg, Decimal) else super()._func_type(arg)

    @functions.signature({"types": []})
    def _func_to_number(self, arg: Any) -> Any:
        if isinstance(arg, Decimal):
            return arg
        if isinstance(arg, str):
            try:
                return int(arg)
            except ValueError:
                try:
                    number = Decimal(arg.strip())
                except ArithmeticError:
                    return None
                return number if number.is_finite() else None
        return super()._func_to_number(arg)


_OPTIONS = jmespath.Options(custom_functions=_Functions())


@dataclass(frozen=True)
class GenericSettings:
    signature_header: str
    signature_encoding: str
    signature_prefix: str
    event_header: str | None
    events: dict[str, str]
    expressions: dict[str, ParsedResult] = field(default_factory=dict)
    stock_url: str | None = None
    stock_method: str = "PUT"
    stock_field: str = "quantity"
    default_currency: str = "CNY"

    def search(self, name: str, data: Any) -> Any:
        """`mapping.NAME` applied to a payload. An expression that fails on it (a function
        given a type it does not take) is the account's mapping at fault, not the delivery:
        `ConfigError`, which the gateway answers 503, so the shop sends it again once fixed."""
        expr = self.expressions.get(name)
        if expr is None:
            return None
        try:
            return expr.search(data, options=_OPTIONS)
        except JMESPathError as exc:
            raise ConfigError(f"mapping.{name} failed on this payload: {exc}") from None


_cache: dict[int, tuple[Any, GenericSettings]] = {}


def settings(account: Account) -> GenericSettings:
    """Parse and compile the account's generic settings (cached per config object)."""
    cached = _cache.get(id(account.config))
    if cached is not None and cached[0] is account.config:
        return cached[1]
    extra = account.config.extra
    where = f"account {account.name}"
    encoding = str(extra.get("signature_encoding", "hex")).lower()
    if encoding not in ("hex", "base64"):
        raise ConfigError(f"{where}: signature_encoding must be hex or base64")
    mapping = extra.get("mapping")
    if not isinstance(mapping, dict):
        raise ConfigError(f"{where}: a [mapping] table is required for the generic connector")
    expressions: dict[str, ParsedResult] = {}
    for name in REQUIRED + OPTIONAL:
        raw = mapping.get(name)
        if raw is None:
            if name in REQUIRED and not (name == "event" and extra.get("event_header")):
                raise ConfigError(f"{where}: mapping.{name} is required")
            continue
        try:
            expressions[name] = jmespath.compile(str(raw))
        except JMESPathError as exc:
            raise ConfigError(f"{where}: mapping.{name}: {exc}") from None
    events = mapping.get("events") or {}
    if not isinstance(events, dict) or not events:
        raise ConfigError(f"{where}: mapping.events must map platform events to lifecycle events")
    for event, kind in events.items():
        if kind not in KINDS:
            raise ConfigError(f"{where}: mapping.events.{event}: {kind!r} is not one of {KINDS}")
    result = GenericSettings(
        signature_header=str(extra.get("signature_header", "X-Signature")),
        signature_encoding=encoding,
        signature_prefix=str(extra.get("signature_prefix", "")),
        event_header=extra.get("event_header"),
        events={str(k): str(v) for k, v in events.items()},
        expressions=expressions,
        stock_url=extra.get("stock_url"),
        stock_method=str(extra.get("stock_method", "PUT")).upper(),
        stock_field=str(extra.get("stock_field", "quantity")),
        default_currency=str(extra.get("currency", "CNY")),
    )
    _cache[id(account.config)] = (account.config, result)
    return result
