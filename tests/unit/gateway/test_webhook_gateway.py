from __future__ import annotations

import json
from decimal import Decimal

from connectors.base import sign
from schemas.orders import OrderPlaced

from .conftest import (
    OTHER_SECRET,
    fixture,
    shopify_headers,
    woo_headers,
)


def _body(obj: object) -> bytes:
    return json.dumps(obj).encode()


async def test_valid_shopify_order_is_published_before_200(client, publisher):
    body = _body(fixture("shopify", "orders_create"))
    r = await client.post("/webhooks/shopify/acme", content=body, headers=shopify_headers(body))
    assert r.status_code == 200
    [placed] = publisher.published
    assert isinstance(placed.data, OrderPlaced)
    assert placed.data.order_key == "acme:450789469"
    assert placed.source == "shopify/acme"
    assert r.json() == {"accepted": 1, "ids": [placed.id]}


async def test_valid_woocommerce_order_is_published(client, publisher):
    body = _body(fixture("woocommerce", "order_processing"))
    r = await client.post("/webhooks/woocommerce/corner", content=body, headers=woo_headers(body))
    assert r.status_code == 200
    # modified since it was created: also reopened (a no-op unless the hub had it cancelled)
    assert [e.type for e in publisher.published] == [
        "hub.order.placed.v1",
        "hub.order.reopened.v1",
        "hub.payment.captured.v1",
    ]


async def test_bad_signature_is_401_and_nothing_is_published(client, publisher):
    body = _body(fixture("shopify", "orders_create"))
    headers = shopify_headers(body)
    headers["X-Shopify-Hmac-Sha256"] = sign("wrong", body)
    r = await client.post("/webhooks/shopify/acme", content=body, headers=headers)
    assert r.status_code == 401
    assert publisher.published == []


async def test_missing_signature_is_401(client, publisher):
    body = _body(fixture("shopify", "orders_create"))
    headers = shopify_headers(body)
    del headers["X-Shopify-Hmac-Sha256"]
    r = await client.post("/webhooks/shopify/acme", content=body, headers=headers)
    assert r.status_code == 401
    assert publisher.published == []


async def test_signature_checked_on_raw_bytes_so_reformatted_body_fails(client, publisher):
    body = _body(fixture("shopify", "orders_create"))
    headers = shopify_headers(body)
    reformatted = json.dumps(json.loads(body), indent=2).encode()
    r = await client.post("/webhooks/shopify/acme", content=reformatted, headers=headers)
    assert r.status_code == 401


async def test_one_tenants_secret_cannot_post_for_another_account(client, publisher):
    body = _body(fixture("shopify", "orders_create"))
    headers = shopify_headers(body)
    headers["X-Shopify-Hmac-Sha256"] = sign(OTHER_SECRET, body)  # valid for "other", not "acme"
    r = await client.post("/webhooks/shopify/acme", content=body, headers=headers)
    assert r.status_code == 401
    r = await client.post("/webhooks/shopify/other", content=body, headers=headers)
    assert r.status_code == 200
    assert publisher.published[0].data.order_key == "other:450789469"


async def test_same_event_five_times_gives_five_200s_with_identical_message_ids(client, publisher):
    body = _body(fixture("shopify", "orders_create"))
    ids = []
    for n in range(5):
        headers = shopify_headers(body, **{"X-Shopify-Webhook-Id": f"delivery-{n}"})
        r = await client.post("/webhooks/shopify/acme", content=body, headers=headers)
        assert r.status_code == 200
        ids.append(tuple(r.json()["ids"]))
    assert len(set(ids)) == 1
    assert len({e.id for e in publisher.published}) == 1


async def test_unknown_account_is_404(client, publisher):
    body = _body(fixture("shopify", "orders_create"))
    r = await client.post("/webhooks/shopify/nobody", content=body, headers=shopify_headers(body))
    assert r.status_code == 404


async def test_connector_not_matching_the_account_is_404(client, publisher):
    body = _body(fixture("woocommerce", "order_processing"))
    r = await client.post("/webhooks/woocommerce/acme", content=body, headers=woo_headers(body))
    assert r.status_code == 404
    r = await client.post("/webhooks/nonsense/acme", content=body, headers=woo_headers(body))
    assert r.status_code == 404
    assert publisher.published == []


async def test_oversized_declared_body_is_413(client, publisher):
    body = b"{" + b" " * (70 * 1024) + b"}"
    r = await client.post("/webhooks/shopify/acme", content=body, headers=shopify_headers(body))
    assert r.status_code == 413


async def test_oversized_streamed_body_without_length_is_413(client, publisher):
    async def chunks():
        for _ in range(80):
            yield b" " * 1024

    headers = shopify_headers(b"")
    r = await client.post("/webhooks/shopify/acme", content=chunks(), headers=headers)
    assert r.status_code == 413
    assert publisher.published == []


async def test_wrong_content_type_is_415(client, publisher):
    body = _body(fixture("shopify", "orders_create"))
    headers = shopify_headers(body)
    headers["Content-Type"] = "text/plain"
    r = await client.post("/webhooks/shopify/acme", content=body, headers=headers)
    assert r.status_code == 415


async def test_non_utf8_body_is_400_with_a_reason(client, publisher):
    body = b'{"id": "\xff\xfe"}'
    r = await client.post("/webhooks/shopify/acme", content=body, headers=shopify_headers(body))
    assert r.status_code == 400
    assert "UTF-8" in r.json()["reason"]


async def test_deeply_nested_body_is_400(client, publisher):
    body = b"[" * 5000 + b"]" * 5000
    r = await client.post("/webhooks/shopify/acme", content=body, headers=shopify_headers(body))
    assert r.status_code == 400
    body = b'{"a":' * 100 + b"1" + b"}" * 100
    r = await client.post("/webhooks/shopify/acme", content=body, headers=shopify_headers(body))
    assert r.status_code == 400


async def test_a_sql_looking_sku_is_carried_as_data(client, publisher):
    """A SKU is the merchant's text: bound as a parameter wherever it is stored, never refused
    with its order for the characters in it (the core rejects a SKU it does not stock)."""
    order = fixture("shopify", "orders_create")
    order["line_items"][1]["sku"] = "x'; DROP TABLE stock; --"
    body = _body(order)
    r = await client.post("/webhooks/shopify/acme", content=body, headers=shopify_headers(body))
    assert r.status_code == 200
    [placed] = publisher.published
    assert [ln.sku for ln in placed.data.lines] == ["TEE-RED-M", "x'; DROP TABLE stock; --"]


async def test_a_line_without_a_sku_does_not_keep_the_rest_of_the_order_out(client, publisher):
    # Refused, the whole order would be lost: the shop retries, then drops the subscription.
    order = fixture("shopify", "orders_create")
    order["line_items"][0]["sku"] = ""
    body = _body(order)
    r = await client.post("/webhooks/shopify/acme", content=body, headers=shopify_headers(body))
    assert r.status_code == 200
    [placed] = publisher.published
    assert [ln.sku for ln in placed.data.lines] == ["MUG-BLUE"]
    assert placed.data.charges == Decimal("89.00")


async def test_ignored_topic_is_200_and_publishes_nothing(client, publisher):
    body = b'{"id": 1}'
    r = await client.post(
        "/webhooks/shopify/acme", content=body, headers=shopify_headers(body, "products/update")
    )
    assert r.status_code == 200
    assert publisher.batches == []


async def test_broker_down_is_503_with_retry_after(client, publisher):
    publisher.down = True
    body = _body(fixture("shopify", "orders_create"))
    r = await client.post("/webhooks/shopify/acme", content=body, headers=shopify_headers(body))
    assert r.status_code == 503
    assert r.headers["Retry-After"]


async def test_broker_slower_than_the_budget_is_503(client, publisher):
    publisher.delay = 2.0
    body = _body(fixture("shopify", "orders_create"))
    r = await client.post("/webhooks/shopify/acme", content=body, headers=shopify_headers(body))
    assert r.status_code == 503


async def test_replayed_shopify_delivery_outside_the_window_is_401(client, publisher):
    body = _body(fixture("shopify", "orders_create"))
    headers = shopify_headers(body, **{"X-Shopify-Triggered-At": "2020-01-01T00:00:00Z"})
    r = await client.post("/webhooks/shopify/acme", content=body, headers=headers)
    assert r.status_code == 401
    assert publisher.published == []


async def test_woocommerce_activation_ping_is_accepted_without_publishing(client, publisher):
    body = b"webhook_id=12"
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-WC-Webhook-Signature": sign("corner-secret", body),
        "X-WC-Webhook-ID": "12",
    }
    r = await client.post("/webhooks/woocommerce/corner", content=body, headers=headers)
    assert r.status_code == 200
    assert publisher.batches == []


async def test_woocommerce_unsigned_activation_ping_gets_200_and_nothing_else_does(
    client, publisher
):
    # What `WC_Webhook::deliver_ping` sends: a user agent and the form body, nothing signed.
    ping = {
        "Content-Type": "application/x-www-form-urlencoded",
        "User-Agent": "WooCommerce/9.4.2 Hookshot (WordPress/6.7.1)",
    }
    r = await client.post("/webhooks/woocommerce/corner", content=b"webhook_id=12", headers=ping)
    assert r.status_code == 200
    # anything else unsigned is refused: a topic, or a body that is not the ping
    topic = {**ping, "X-WC-Webhook-Topic": "order.created"}
    r = await client.post("/webhooks/woocommerce/corner", content=b"webhook_id=12", headers=topic)
    assert r.status_code == 401
    r = await client.post(
        "/webhooks/woocommerce/corner", content=b"webhook_id=12&status=x", headers=ping
    )
    assert r.status_code == 401
    assert publisher.batches == []


async def test_openapi_describes_the_webhook_endpoint(client):
    r = await client.get("/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    post = doc["paths"]["/webhooks/{connector}/{account}"]["post"]
    assert {"200", "400", "401", "404", "413", "415", "503"} <= set(post["responses"])
    assert "shopify" in post["parameters"][0]["schema"]["enum"]


async def test_generic_account_posts_through_the_gateway_and_bad_mapping_is_503():
    import hashlib
    import hmac

    import httpx

    from hub.config import AccountConfig, HubConfig
    from hub.gateway import create_gateway

    from .conftest import RecordingPublisher

    mapping = {
        "event": "type",
        "order_id": "id",
        "lines": "items",
        "line_sku": "sku",
        "line_quantity": "qty",
        "events": {"created": "placed"},
    }
    config = HubConfig(
        accounts={
            "market": AccountConfig(connector="generic", webhook_secret="s", mapping=mapping),
            "broken": AccountConfig(
                connector="generic", webhook_secret="s", mapping={**mapping, "lines": "[["}
            ),
        }
    )
    publisher = RecordingPublisher()
    app = create_gateway(config, publisher)
    body = b'{"type": "created", "id": 9, "items": [{"sku": "A-1", "qty": 2}]}'
    headers = {
        "Content-Type": "application/json",
        "X-Signature": hmac.new(b"s", body, hashlib.sha256).hexdigest(),
    }
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://h") as c:
        ok = await c.post("/webhooks/generic/market", content=body, headers=headers)
        broken = await c.post("/webhooks/generic/broken", content=body, headers=headers)
    assert ok.status_code == 200
    assert publisher.published[0].data.order_key == "market:9"
    assert broken.status_code == 503


async def test_deliveries_are_answered_concurrently_while_the_broker_is_slow(client, publisher):
    import asyncio

    publisher.delay = 0.3
    body = _body(fixture("shopify", "orders_create"))
    loop = asyncio.get_running_loop()
    started = loop.time()
    replies = await asyncio.gather(
        *(
            client.post("/webhooks/shopify/acme", content=body, headers=shopify_headers(body))
            for _ in range(20)
        )
    )
    assert [r.status_code for r in replies] == [200] * 20
    assert loop.time() - started < 1.5  # not 20 × 0.3 s


async def test_other_methods_on_the_webhook_path_are_not_server_errors(client):
    r = await client.get("/webhooks/shopify/acme")
    assert r.status_code == 405


async def test_every_answer_is_counted_by_connector_and_outcome(client, publisher):
    from hub.metrics import REGISTRY

    def count(connector: str, outcome: str) -> float:
        labels = {"connector": connector, "outcome": outcome}
        return REGISTRY.get_sample_value("hub_webhooks_received_total", labels) or 0.0

    def timed(connector: str) -> float:
        labels = {"connector": connector}
        return REGISTRY.get_sample_value("hub_webhook_latency_seconds_count", labels) or 0.0

    keys = [
        ("shopify", "accepted"),
        ("shopify", "unauthorized"),
        ("unknown", "unknown_account"),
        ("woocommerce", "accepted"),
    ]
    before = {k: count(*k) for k in keys}
    timed_before = {c: timed(c) for c in ("shopify", "unknown", "woocommerce")}
    body = _body(fixture("shopify", "orders_create"))
    for _ in range(2):
        ok = await client.post(
            "/webhooks/shopify/acme", content=body, headers=shopify_headers(body)
        )
        assert ok.status_code == 200
    bad = shopify_headers(body)
    bad["X-Shopify-Hmac-Sha256"] = sign(OTHER_SECRET, body)
    assert (
        await client.post("/webhooks/shopify/acme", content=body, headers=bad)
    ).status_code == 401
    assert (await client.post("/webhooks/shopify/nobody", content=body)).status_code == 404
    woo = _body(fixture("woocommerce", "order_processing"))
    r = await client.post("/webhooks/woocommerce/corner", content=woo, headers=woo_headers(woo))
    assert r.status_code == 200
    # The answers' bytes are compact UTF-8 JSON, as Starlette's `json.dumps` writes it.
    order = fixture("shopify", "orders_create")
    order["line_items"][0]["price"] = "九.九〇"
    bad_price = _body(order)
    refused = await client.post(
        "/webhooks/shopify/acme", content=bad_price, headers=shopify_headers(bad_price)
    )
    assert refused.status_code == 400 and "九.九〇" in refused.json()["reason"]
    for answer in (r, refused):
        compact = json.dumps(answer.json(), ensure_ascii=False, separators=(",", ":"))
        assert answer.content == compact.encode()

    assert {k: count(*k) - before[k] for k in keys} == {
        ("shopify", "accepted"): 2,
        ("shopify", "unauthorized"): 1,
        ("unknown", "unknown_account"): 1,
        ("woocommerce", "accepted"): 1,
    }
    assert {c: timed(c) - timed_before[c] for c in timed_before} == {
        "shopify": 4,
        "unknown": 1,
        "woocommerce": 1,
    }


async def test_an_order_of_hundreds_of_lines_fits_the_default_body_limit(publisher):
    """A cancelled B2B order of 450 lines, each repeated in a cancelled fulfilment and in its
    cancellation's refund: over the 1 MiB a gateway took before, and its cancellation is the
    only word of it."""
    import copy

    import httpx

    from hub.gateway import create_gateway

    from .conftest import hub_config

    order = fixture("shopify", "orders_create")
    item = order["line_items"][0]
    order["line_items"] = [
        {**copy.deepcopy(item), "id": 10_000 + n, "sku": f"B2B-{n}"} for n in range(450)
    ]
    order["cancelled_at"] = order["created_at"]
    order["fulfillments"] = [
        {
            "id": 5,
            "status": "cancelled",
            "created_at": order["created_at"],
            "line_items": order["line_items"],
        }
    ]
    order["refunds"] = [
        {
            "id": 1,
            "created_at": order["created_at"],
            "refund_line_items": [
                {"id": 20_000 + n, "quantity": 1, "restock_type": "cancel", "line_item": li}
                for n, li in enumerate(order["line_items"])
            ],
            "transactions": [],
        }
    ]
    body = _body(order)
    assert len(body) > 1_048_576
    app = create_gateway(hub_config(), publisher, publish_timeout=0.5)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://hub"
    ) as c:
        r = await c.post("/webhooks/shopify/acme", content=body, headers=shopify_headers(body))
    assert r.status_code == 200, r.text
    assert "OrderCancelled" in {type(e.data).__name__ for e in publisher.published}
