from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from connectors.base import Account, get_connector, sign
from connectors.errors import ConnectorError, MalformedPayload, SignatureInvalid
from connectors.generic.client import GenericClient
from connectors.http import RetryPolicy
from hub.config import AccountConfig, ConfigError
from schemas.orders import OrderCancelled, OrderPlaced

NOW = datetime(2026, 11, 22, 4, 0, tzinfo=UTC)
MAPPING = {
    "event": "type",
    "order_id": "data.id",
    "placed_at": "data.created_at",
    "modified_at": "data.updated_at",
    "currency": "data.currency",
    "total": "data.total",
    "lines": "data.items",
    "line_sku": "sku",
    "line_quantity": "qty",
    "line_unit_price": "price",
    "events": {
        "order.created": "placed",
        "order.cancelled": "cancelled",
        "order.shipped": "fulfilled",
        "order.note": "ignore",
    },
}


def account(**extra) -> Account:
    settings = {
        "connector": "generic",
        "webhook_secret": "market-secret",
        "signature_header": "X-Market-Signature",
        "signature_encoding": "hex",
        "signature_prefix": "sha256=",
        "api_url": "https://market.example",
        "api_token": "token-1",
        "stock_url": "/api/stock/{sku}",
        "mapping": MAPPING,
        **extra,
    }
    return Account("market", AccountConfig(**settings))


def order_event(event: str = "order.created", sku: str = "TEE-RED-M") -> bytes:
    return json.dumps(
        {
            "type": event,
            "data": {
                "id": "M-1001",
                "created_at": "2026-11-22T03:00:00Z",
                "updated_at": "2026-11-22T03:00:05Z",
                "currency": "EUR",
                "total": "59.70",
                "items": [{"sku": sku, "qty": 3, "price": "19.90"}],
            },
        }
    ).encode()


def signed(body: bytes, secret: str = "market-secret") -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Market-Signature": f"sha256={digest}", "Content-Type": "application/json"}


CONNECTOR = get_connector("generic")


def test_hex_signature_with_prefix_in_the_configured_header_is_accepted():
    body = order_event()
    CONNECTOR.verify(body, signed(body), account(), NOW)


def test_wrong_secret_is_refused():
    body = order_event()
    with pytest.raises(SignatureInvalid):
        CONNECTOR.verify(body, signed(body, "other"), account(), NOW)


def test_base64_encoding_is_configurable():
    body = order_event()
    acc = account(signature_encoding="base64", signature_prefix="")
    CONNECTOR.verify(body, {"X-Market-Signature": sign("market-secret", body)}, acc, NOW)


def test_field_mapping_builds_the_order():
    [env] = CONNECTOR.parse(order_event(), {}, account(), NOW)
    placed = env.data
    assert isinstance(placed, OrderPlaced)
    assert placed.order_key == "market:M-1001" and placed.currency == "EUR"
    assert [(ln.sku, ln.quantity, ln.unit_price) for ln in placed.lines] == [
        ("TEE-RED-M", 3, Decimal("19.90"))
    ]
    assert placed.total == Decimal("59.70")
    assert env.time.isoformat() == "2026-11-22T03:00:05+00:00"


def test_shipping_and_its_tax_are_mapped_when_configured():
    mapping = {**MAPPING, "shipping": "data.shipping.amount", "shipping_tax": "data.shipping.tax"}
    event = json.loads(order_event())
    event["data"]["shipping"] = {"amount": "4.00", "tax": "0.76"}
    [env] = CONNECTOR.parse(json.dumps(event).encode(), {}, account(mapping=mapping), NOW)
    assert isinstance(env.data, OrderPlaced)
    assert (env.data.shipping, env.data.shipping_tax) == (Decimal("4.00"), Decimal("0.76"))


def test_redelivery_maps_to_the_same_id_and_cancel_to_its_own():
    a = CONNECTOR.parse(order_event(), {}, account(), NOW)
    b = CONNECTOR.parse(order_event(), {}, account(), NOW)
    [cancel] = CONNECTOR.parse(order_event("order.cancelled"), {}, account(), NOW)
    assert a[0].id == b[0].id != cancel.id
    assert isinstance(cancel.data, OrderCancelled)


def test_unmapped_and_ignored_events_publish_nothing():
    assert CONNECTOR.parse(order_event("order.note"), {}, account(), NOW) == []
    assert CONNECTOR.parse(order_event("customer.created"), {}, account(), NOW) == []


def test_unusable_sku_is_rejected_with_the_line():
    with pytest.raises(MalformedPayload, match=r"lines\[0\]"):
        CONNECTOR.parse(order_event(sku="a\tb"), {}, account(), NOW)


def test_event_from_a_header_when_configured():
    acc = account(event_header="X-Market-Event")
    body = order_event("whatever")
    [env] = CONNECTOR.parse(body, {"X-Market-Event": "order.created"}, acc, NOW)
    assert isinstance(env.data, OrderPlaced)


def test_bad_mapping_is_a_config_error():
    with pytest.raises(ConfigError, match=r"mapping\.lines"):
        CONNECTOR.parse(order_event(), {}, account(mapping={**MAPPING, "lines": "data.[["}), NOW)


def test_jmespath_number_functions_take_the_decimal_amounts():
    """JSON numbers with a fraction are read as `Decimal`, which JMESPath's own functions do
    not take: `sum` over the lines' amounts would refuse every real order."""
    mapping = {**MAPPING, "total": "sum(data.items[].amount)", "shipping": "abs(data.ship)"}
    body = (
        b'{"type": "order.created", "data": {"id": "M-7", "currency": "EUR", "ship": -4.50,'
        b' "created_at": "2026-11-22T03:00:00Z", "items": [{"sku": "TEE", "qty": 1,'
        b' "price": "19.90", "amount": 19.90}, {"sku": "MUG", "qty": 2, "price": "9.95",'
        b' "amount": 19.90}]}}'
    )
    [env] = CONNECTOR.parse(body, {}, account(mapping=mapping), NOW)
    assert isinstance(env.data, OrderPlaced)
    assert (env.data.total, env.data.shipping) == (Decimal("39.80"), Decimal("4.50"))


def test_to_number_keeps_the_cents_and_max_by_orders_decimal_amounts():
    """`to_number("59.70")` was a float, which money refuses, and `max_by` refused `Decimal`
    keys: both refused every real order."""
    mapping = {
        **MAPPING,
        "total": "to_number(data.total)",
        "shipping": "max_by(data.rates, &amount).amount",
    }
    event = json.loads(order_event())
    event["data"]["rates"] = [{"amount": 4.5}, {"amount": 12}, {"amount": 7.25}]
    body = json.dumps(event).encode()
    [env] = CONNECTOR.parse(body, {}, account(mapping=mapping), NOW)
    assert isinstance(env.data, OrderPlaced)
    assert (env.data.total, env.data.shipping) == (Decimal("59.70"), Decimal("12"))


def test_an_expression_failing_on_a_payload_is_the_account_s_fault_not_the_delivery_s():
    """Answered 400, the shop would drop the order for good; a mapping at fault is a
    `ConfigError` (503: sent again once the mapping is fixed)."""
    mapping = {**MAPPING, "total": "abs(data.currency)"}
    with pytest.raises(ConfigError, match=r"mapping\.total failed"):
        CONNECTOR.parse(order_event(), {}, account(mapping=mapping), NOW)


def _stock_app(store: dict[str, int], seen: list[tuple[str, str]]):
    async def stock(request: Request):
        sku = request.path_params["sku"]
        seen.append((request.method, request.headers.get("authorization", "")))
        if sku not in store:
            return JSONResponse({"error": "unknown sku"}, 404)
        if request.method == "PUT":
            store[sku] = (await request.json())["quantity"]
        return JSONResponse({"sku": sku, "quantity": store[sku]})

    return Starlette(routes=[Route("/api/stock/{sku:path}", stock, methods=["GET", "PUT"])])


async def test_rest_stock_push_uses_the_url_template():
    store = {"TEE/RED M": 1}
    seen: list[tuple[str, str]] = []
    client = GenericClient(
        account(),
        transport=httpx.ASGITransport(app=_stock_app(store, seen)),
        policy=RetryPolicy(attempts=2, initial_wait=0.01),
    )
    result = await client.set_stock({"TEE/RED M": 9, "NOPE": 1})
    assert result.updated == {"TEE/RED M": 9} and "NOPE" in result.failed
    assert store == {"TEE/RED M": 9}
    assert await client.get_stock(["TEE/RED M", "NOPE"]) == {"TEE/RED M": 9}
    assert seen[0] == ("PUT", "Bearer token-1")
    with pytest.raises(ConnectorError):
        await client.list_orders(since=None, cursor=None)
    await client.aclose()


async def test_a_sku_of_dots_reaches_its_own_url():
    """A SKU that is a dot segment ("..", ".") stays in the path: sent as is, the HTTP client
    resolves it and pushes to another resource (".." is the stock collection's parent)."""
    store = {"..": 1, ".": 2, "A.B": 3}
    client = GenericClient(
        account(),
        transport=httpx.ASGITransport(app=_stock_app(store, [])),
        policy=RetryPolicy(attempts=1, initial_wait=0.01),
    )
    result = await client.set_stock({"..": 7, ".": 8, "A.B": 9})
    assert result.updated == {"..": 7, ".": 8, "A.B": 9} and not result.failed
    assert store == {"..": 7, ".": 8, "A.B": 9}
    await client.aclose()
