"""The simulators' signed deliveries go through the gateway like the real platforms' would."""

from __future__ import annotations

import httpx
import pytest

from connectors.http import SoldOut
from connectors.shopify.simulator import ShopifySimulator
from connectors.woocommerce.simulator import WooCommerceSimulator
from hub.config import AccountConfig, HubConfig
from hub.gateway import create_gateway

from .conftest import RecordingPublisher


@pytest.fixture
def shops():
    shopify = ShopifySimulator(webhook_secret="acme-secret")
    woo = WooCommerceSimulator(webhook_secret="corner-secret")
    for sim in (shopify, woo):
        sim.add_product("TEE-RED-M", 5)
    return shopify, woo


@pytest.fixture
async def hub():
    publisher = RecordingPublisher()
    config = HubConfig(
        accounts={
            "acme": AccountConfig(connector="shopify", webhook_secret="acme-secret"),
            "corner": AccountConfig(connector="woocommerce", webhook_secret="corner-secret"),
        }
    )
    app = create_gateway(config, publisher)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://hub"
    ) as c:
        yield c, publisher


async def test_shopify_order_lifecycle_through_the_gateway(shops, hub):
    sim, _ = shops
    client, publisher = hub
    url = "http://hub/webhooks/shopify/acme"
    order = sim.make_order(1001, [("TEE-RED-M", 2, "19.90")])
    assert sim.stock("TEE-RED-M") == 3  # the shop's own count dropped
    r = await sim.send_webhook(url, "orders/create", order, client=client)
    assert r.status_code == 200
    refund = sim.refund_order(1001, [("TEE-RED-M", 1)], restock=True)
    r = await sim.send_webhook(url, "refunds/create", refund, client=client)
    assert r.status_code == 200
    r = await sim.send_webhook(url, "orders/cancelled", sim.cancel_order(1001), client=client)
    assert r.status_code == 200
    types = [e.type for e in publisher.published]
    assert types[:4] == [
        "hub.order.placed.v1",
        "hub.payment.captured.v1",
        "hub.order.returned.v1",
        "hub.payment.refunded.v1",
    ]
    assert "hub.order.cancelled.v1" in types
    # the snapshot in orders/cancelled repeats earlier events under the same ids
    assert len({e.id for e in publisher.published}) == len(set(types))


async def test_woocommerce_duplicate_deliveries_share_ids(shops, hub):
    _, sim = shops
    client, publisher = hub
    url = "http://hub/webhooks/woocommerce/corner"
    order = sim.make_order(727, [("TEE-RED-M", 1, "19.90")])
    for _ in range(5):
        r = await sim.send_webhook(url, "order.created", order, client=client)
        assert r.status_code == 200
    assert len({e.id for e in publisher.published}) == 2  # placed + captured


async def test_woocommerce_cancel_puts_the_shops_stock_back(shops, hub):
    _, sim = shops
    client, publisher = hub
    sim.make_order(728, [("TEE-RED-M", 2, "19.90")])
    cancelled = sim.update_order(728, status="cancelled")
    r = await sim.send_webhook(
        "http://hub/webhooks/woocommerce/corner", "order.updated", cancelled, client=client
    )
    assert r.status_code == 200
    assert sim.stock("TEE-RED-M") == 5
    assert publisher.published[-1].type == "hub.order.cancelled.v1"


async def test_a_delivery_signed_with_the_wrong_shops_secret_is_refused(shops, hub):
    shopify, woo = shops
    client, publisher = hub
    headers, body = woo.webhook("order.created", woo.make_order(1, [("TEE-RED-M", 1, "1.00")]))
    r = await client.post("/webhooks/woocommerce/acme", content=body, headers=headers)
    assert r.status_code == 404  # acme is a Shopify account
    headers, body = shopify.webhook(
        "orders/create", shopify.make_order(2, [("TEE-RED-M", 1, "1")]), secret="corner-secret"
    )
    r = await client.post("/webhooks/shopify/acme", content=body, headers=headers)
    assert r.status_code == 401
    assert publisher.published == []


def test_a_shop_that_denies_oversell_refuses_what_it_cannot_cover(shops):
    sim, _ = shops
    sim.deny_oversell = True
    with pytest.raises(SoldOut):
        sim.make_order(1, [("TEE-RED-M", 6, "1.00")])
    assert sim.stock("TEE-RED-M") == 5 and 1 not in sim.orders
