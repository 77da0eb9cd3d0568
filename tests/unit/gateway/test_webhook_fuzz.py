"""Whatever a sender posts, the gateway answers below 500."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.base import sign
from hub.gateway import create_gateway

from .conftest import (
    SHOPIFY_SECRET,
    WOO_SECRET,
    RecordingPublisher,
    fixture,
    hub_config,
)

PUBLISHER = RecordingPublisher()
APP = create_gateway(hub_config(), PUBLISHER, max_body=16 * 1024, publish_timeout=0.5)
STATUSES: list[int] = []


async def _post(url: str, headers: dict[str, str], body: bytes) -> httpx.Response:
    # raise_app_exceptions: an exception escaping the app fails the test like a 500 would.
    transport = httpx.ASGITransport(app=APP, raise_app_exceptions=True)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
        return await client.post(url, content=body, headers=headers)


SHOPIFY_TOPICS = [
    "orders/create",
    "orders/paid",
    "orders/cancelled",
    "orders/fulfilled",
    "fulfillments/create",
    "refunds/create",
    "products/update",
]
WOO_TOPICS = ["order.created", "order.updated", "product.updated"]
FIXTURES = {
    "shopify": [
        fixture("shopify", n)
        for n in ("orders_create", "orders_fulfilled", "fulfillments_create", "refunds_create")
    ],
    "woocommerce": [fixture("woocommerce", n) for n in ("order_processing", "order_refunded")],
}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)


def _mutate(doc: Any, path: list[int], value: Any) -> Any:
    """Replace one value somewhere in the document (keys chosen by the path's numbers)."""
    node = doc
    for step in path:
        if isinstance(node, dict) and node:
            key = sorted(node)[step % len(node)]
            if not isinstance(node[key], dict | list) or not node[key]:
                node[key] = value
                return doc
            node = node[key]
        elif isinstance(node, list) and node:
            i = step % len(node)
            if not isinstance(node[i], dict | list) or not node[i]:
                node[i] = value
                return doc
            node = node[i]
    return doc


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[str, dict[str, str], bytes]:
    platform = draw(st.sampled_from(["shopify", "woocommerce"]))
    kind = draw(st.sampled_from(["mutated", "random-json", "bytes"]))
    if kind == "mutated":
        doc = json.loads(json.dumps(draw(st.sampled_from(FIXTURES[platform]))))
        path = draw(st.lists(st.integers(0, 50), min_size=1, max_size=4))
        body = json.dumps(_mutate(doc, path, draw(json_values))).encode()
    elif kind == "random-json":
        body = json.dumps(draw(json_values)).encode()
    else:
        body = draw(st.binary(max_size=300))
    secret = SHOPIFY_SECRET if platform == "shopify" else WOO_SECRET
    signature = draw(st.sampled_from(["valid", "valid", "valid", "garbage", "missing"]))
    headers = {"Content-Type": draw(st.sampled_from(["application/json"] * 4 + ["text/plain"]))}
    sig_header = "X-Shopify-Hmac-Sha256" if platform == "shopify" else "X-WC-Webhook-Signature"
    if signature == "valid":
        headers[sig_header] = sign(secret, body)
    elif signature == "garbage":
        headers[sig_header] = draw(header_text)
    topics = SHOPIFY_TOPICS if platform == "shopify" else WOO_TOPICS
    topic_header = "X-Shopify-Topic" if platform == "shopify" else "X-WC-Webhook-Topic"
    headers[topic_header] = draw(st.sampled_from(topics) | header_text)
    if platform == "shopify" and draw(st.booleans()):
        headers["X-Shopify-Triggered-At"] = draw(header_text)
    account = "acme" if platform == "shopify" else "corner"
    return f"/webhooks/{platform}/{account}", headers, body


@settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(deliveries())
def test_fuzzed_webhooks_never_yield_a_5xx(delivery: tuple[str, dict[str, str], bytes]) -> None:
    url, headers, body = delivery
    response = asyncio.run(_post(url, headers, body))
    STATUSES.append(response.status_code)
    assert response.status_code < 500, response.text
    if response.status_code == 200:
        assert response.json()["accepted"] >= 0


def test_fuzzing_reached_the_mapping_and_the_publisher() -> None:
    """The fuzz run above must not only bounce off the signature check."""
    if not STATUSES:  # run alone
        return
    assert 200 in STATUSES
    assert 400 in STATUSES
