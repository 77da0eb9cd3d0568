from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from connectors.base import Account
from connectors.errors import ConnectorError
from connectors.http import RetryPolicy
from connectors.shopify.client import ShopifyClient
from connectors.woocommerce.client import WooCommerceClient

FAST = RetryPolicy(attempts=5, initial_wait=0.01, max_wait=0.05, timeout=2.0)
T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


async def _all_orders(client, since=None):
    from connectors.base import order_pages

    envelopes, pages = [], 0
    async for page in order_pages(client, since=since):
        envelopes.extend(page.envelopes)
        pages += 1
    return envelopes, pages


# --- Shopify ---------------------------------------------------------------------------------------


async def test_shopify_resync_follows_link_header_pages(shopify_sim, shopify_account):
    shopify_sim.add_product("A", 5)
    for n in range(7):
        shopify_sim.make_order(5000 + n, [("A", 1, "10.00")], created_at=T0 + timedelta(minutes=n))
    client = ShopifyClient(
        shopify_account,
        transport=httpx.ASGITransport(app=shopify_sim.app),
        policy=FAST,
        page_size=3,
    )
    envelopes, pages = await _all_orders(client)
    await client.aclose()
    assert pages == 3
    placed = [e for e in envelopes if e.type == "hub.order.placed.v1"]
    assert sorted(e.data.order_key for e in placed) == [f"acme:{5000 + n}" for n in range(7)]


async def test_shopify_resync_since_skips_older_orders(shopify_sim, shopify_client):
    shopify_sim.add_product("A", 5)
    shopify_sim.make_order(1, [("A", 1, "10.00")], created_at=T0)
    shopify_sim.make_order(2, [("A", 1, "10.00")], created_at=T0 + timedelta(hours=2))
    envelopes, _ = await _all_orders(shopify_client, since=T0 + timedelta(hours=1))
    assert {e.data.order_key for e in envelopes} == {"acme:2"}


async def test_shopify_resync_and_webhook_of_one_order_share_message_ids(
    shopify_sim, shopify_client, shopify_account
):
    from connectors.shopify import CONNECTOR

    shopify_sim.add_product("A", 5)
    order = shopify_sim.make_order(7, [("A", 2, "10.00")], created_at=T0)
    headers, body = shopify_sim.webhook("orders/paid", order)
    shopify_account = Account(
        "acme",
        shopify_account.config.model_copy(update={"webhook_secret": shopify_sim.webhook_secret}),
    )
    from_webhook = CONNECTOR.parse(body, headers, shopify_account, T0)
    from_resync, _ = await _all_orders(shopify_client)
    assert [e.id for e in from_webhook] == [e.id for e in from_resync]


async def test_shopify_resync_reads_refunds_whose_amounts_are_json_numbers(
    shopify_sim, shopify_client
):
    shopify_sim.add_product("A", 5)
    shopify_sim.make_order(8, [("A", 2, "10.00")], created_at=T0)
    refund = shopify_sim.refund_order(8, [("A", 1)], restock=True, at=T0 + timedelta(days=1))
    assert isinstance(refund["refund_line_items"][0]["subtotal"], float)
    envelopes, _ = await _all_orders(shopify_client)
    (returned,) = [e.data for e in envelopes if e.type == "hub.order.returned.v1"]
    assert returned.refund == Decimal("10.00") + Decimal(
        str(refund["refund_line_items"][0]["total_tax"])
    )


async def test_shopify_429_then_success(shopify_sim, shopify_client):
    shopify_sim.add_product("A", 5)
    shopify_sim.faults.throttle_next(2, retry_after=0)
    result = await shopify_client.set_stock({"A": 3})
    assert result.updated == {"A": 3} and shopify_sim.stock("A") == 3


async def test_shopify_retry_after_is_honoured(shopify_sim, shopify_client):
    shopify_sim.add_product("A", 5)
    await shopify_client.get_stock()  # warm the SKU index
    shopify_sim.faults.throttle_next(1, retry_after=1)
    loop_time = __import__("asyncio").get_running_loop().time
    started = loop_time()
    await shopify_client.set_stock({"A": 4})
    assert loop_time() - started >= 0.9


async def test_shopify_5xx_then_success(shopify_sim, shopify_client):
    shopify_sim.add_product("A", 5)
    shopify_sim.faults.fail_next(3, status=503)
    assert await shopify_client.get_stock(["A"]) == {"A": 5}


async def test_shopify_persistent_5xx_ends_in_a_retryable_error(shopify_sim, shopify_client):
    shopify_sim.faults.fail_next(50, status=502)
    with pytest.raises(ConnectorError) as err:
        await shopify_client.get_stock()
    assert err.value.retryable and err.value.status == 502


async def test_shopify_bad_token_is_a_permanent_error(shopify_sim, shopify_account):
    cfg = shopify_account.config.model_copy(update={"api_token": "wrong"})
    client = ShopifyClient(
        Account("acme", cfg), transport=httpx.ASGITransport(app=shopify_sim.app), policy=FAST
    )
    with pytest.raises(ConnectorError) as err:
        await client.get_stock()
    await client.aclose()
    assert err.value.retryable is False and err.value.status == 401
    assert len(shopify_sim.faults.calls) == 1  # not retried


async def test_shopify_graphql_internal_error_is_retried_and_access_denied_is_not(
    shopify_sim, shopify_client
):
    shopify_sim.add_product("A", 5)
    shopify_sim.graphql_errors = ["INTERNAL_SERVER_ERROR", "INTERNAL_SERVER_ERROR"]
    result = await shopify_client.set_stock({"A": 2})
    assert result.updated == {"A": 2} and shopify_sim.graphql_errors == []
    shopify_sim.graphql_errors = ["ACCESS_DENIED", "ACCESS_DENIED"]
    with pytest.raises(ConnectorError) as err:
        await shopify_client.set_stock({"A": 1})
    assert err.value.retryable is False
    assert shopify_sim.graphql_errors == ["ACCESS_DENIED"]  # asked once, not retried
    assert await shopify_client.get_stock(["A"]) == {"A": 2}


async def test_shopify_unknown_sku_fails_alone(shopify_sim, shopify_client):
    shopify_sim.add_product("A", 5)
    result = await shopify_client.set_stock({"A": 1, "NOPE": 2})
    assert result.updated == {"A": 1} and "NOPE" in result.failed


async def test_shopify_reads_stock_changed_behind_the_hubs_back(shopify_sim, shopify_client):
    shopify_sim.add_product("A", 5)
    shopify_sim.add_product("B", 0)
    shopify_sim.set_available("A", 42)
    assert await shopify_client.get_stock() == {"A": 42, "B": 0}


async def test_shopify_simulator_bucket_overflow_answers_429(shopify_sim, shopify_account):
    shopify_sim.bucket_size = 3
    shopify_sim.leak_rate = 0.001
    transport = httpx.ASGITransport(app=shopify_sim.app)
    async with httpx.AsyncClient(transport=transport, base_url="https://acme.myshopify.com") as c:
        codes = [
            (
                await c.get(
                    "/admin/api/2024-10/locations.json",
                    headers={"X-Shopify-Access-Token": "shpat_simulated"},
                )
            ).status_code
            for _ in range(4)
        ]
    assert codes == [200, 200, 200, 429]


# --- WooCommerce -----------------------------------------------------------------------------------


async def test_woocommerce_resync_pages_with_total_pages(woo_sim, woo_client):
    woo_sim.add_product("A", 5)
    for n in range(7):
        woo_sim.make_order(700 + n, [("A", 1, "10.00")], created_at=T0 + timedelta(minutes=n))
    envelopes, pages = await _all_orders(woo_client)
    assert pages == 4  # three of orders, then the trash's (empty)
    assert len([e for e in envelopes if e.type == "hub.order.placed.v1"]) == 7


async def test_woocommerce_resync_reads_the_trash_after_the_orders(woo_sim, woo_client):
    """WooCommerce lists no trashed order unless asked: the resync's second pass reads them,
    and an open order moved to the trash is cancelled at WooCommerce's time of it, on a page
    of its own that a stored cursor resumes."""
    woo_sim.add_product("A", 50)
    for n in range(6):
        woo_sim.make_order(800 + n, [("A", 1, "10.00")], created_at=T0 + timedelta(minutes=n))
    trashed_at = T0 + timedelta(hours=1)
    assert woo_sim.trash_order(801, at=trashed_at) == {"id": 801}
    for oid in (802, 803, 805):
        woo_sim.trash_order(oid, at=trashed_at)
    pages = [await woo_client.list_orders(since=None, cursor=None)]
    while pages[-1].cursor is not None:
        pages.append(await woo_client.list_orders(since=None, cursor=pages[-1].cursor))
    assert [p.cursor[:2] if p.cursor else None for p in pages] == ["to", "to", None]
    key = woo_client.account.order_key
    assert {e.data.order_key for e in pages[0].envelopes} == {key("800"), key("804")}
    cancelled = [e.data for p in pages[1:] for e in p.envelopes]
    assert [(c.order_key, c.reason, c.cancelled_at) for c in cancelled] == [
        (key(str(oid)), "trash", trashed_at) for oid in (801, 802, 803, 805)
    ]


async def test_the_trash_pass_places_pays_and_ships_nothing(woo_sim, woo_client):
    """Trashing dates an order anew, so the trash pass reads orders of any age, the hub's
    first resync long after them too: it publishes an open order's cancellation alone, and
    nothing of one that shipped, so no old sale is taken from stock or booked again."""
    woo_sim.add_product("A", 50)
    woo_sim.make_order(900, [("A", 2, "10.00")], created_at=T0, status="completed")
    woo_sim.make_order(901, [("A", 1, "10.00")], created_at=T0, status="processing")
    for oid in (900, 901):
        woo_sim.trash_order(oid, at=T0 + timedelta(days=400))
    since = T0 + timedelta(days=399)
    page = await woo_client.list_orders(since=since, cursor=None)
    assert page.envelopes == [] and page.cursor is not None
    trash = await woo_client.list_orders(since=since, cursor=page.cursor)
    assert [(e.type, e.data.order_key) for e in trash.envelopes] == [
        ("hub.order.cancelled.v1", woo_client.account.order_key("901"))
    ]


async def test_woocommerce_resync_includes_refund_lines(woo_sim, woo_client, load):
    woo_sim.add_product("TEE-RED-M", 5)
    woo_sim.orders[727] = load("woocommerce", "order_refunded")
    woo_sim.refunds[727] = [load("woocommerce", "order_refund_726")]
    envelopes, _ = await _all_orders(woo_client)
    assert "hub.order.returned.v1" in [e.type for e in envelopes]


async def test_woocommerce_resync_reads_every_refund_of_an_order(woo_sim, woo_client, load):
    """The order-refunds resource gives ten a page unless asked: an order refunded twelve
    times returns twelve times."""
    woo_sim.add_product("TEE-RED-M", 5)
    woo_sim.orders[727] = load("woocommerce", "order_refunded")
    first = load("woocommerce", "order_refund_726")
    woo_sim.refunds[727] = [{**first, "id": 726 + n} for n in range(12)]
    envelopes, _ = await _all_orders(woo_client)
    returns = [e.data.return_id for e in envelopes if e.type == "hub.order.returned.v1"]
    assert sorted(returns, key=int) == [str(726 + n) for n in range(12)]


async def test_a_malformed_refund_in_a_resync_loses_none_of_the_orders_others(
    woo_sim, woo_client, load
):
    """Of three refunds, the second names a line without a quantity: the order and the other
    two refunds are published, and the page's rejections name the order and that refund."""
    woo_sim.add_product("TEE-RED-M", 5)
    woo_sim.orders[727] = load("woocommerce", "order_refunded")
    first = load("woocommerce", "order_refund_726")
    bad = {**first, "id": 801, "line_items": [{**first["line_items"][0], "quantity": None}]}
    woo_sim.refunds[727] = [first, bad, {**first, "id": 802}]
    page = await woo_client.list_orders(since=None, cursor=None)
    returns = [e.data.return_id for e in page.envelopes if e.type == "hub.order.returned.v1"]
    assert returns == ["726", "802"]
    assert any(e.type == "hub.order.placed.v1" for e in page.envelopes)
    [(oid, reason)] = page.rejected
    assert oid == "727" and reason.startswith("refund 801: ") and "quantity" in reason


async def test_woocommerce_429_and_5xx_then_success(woo_sim, woo_client):
    woo_sim.add_product("A", 5)
    woo_sim.faults.throttle_next(1, retry_after=0)
    woo_sim.faults.fail_next(2, status=500)
    result = await woo_client.set_stock({"A": 2})
    assert result.updated == {"A": 2} and woo_sim.stock("A") == 2


async def test_woocommerce_batches_stock_in_one_call(woo_sim, woo_client):
    for sku in ("A", "B", "C"):
        woo_sim.add_product(sku, 1)
    result = await woo_client.set_stock({"A": 7, "B": 8, "C": 9, "Z": 1})
    assert result.updated == {"A": 7, "B": 8, "C": 9} and "Z" in result.failed
    assert woo_sim.batch_calls == 1


async def test_woocommerce_a_product_made_again_is_set_under_its_new_id(woo_sim, woo_client):
    """Deleted and imported again under the same SKU: the push reads the catalogue again and
    sets the new product; a product only deleted still fails, with the shop's reason."""
    for sku in ("A", "B", "C"):
        woo_sim.add_product(sku, 1)
    assert (await woo_client.set_stock({"A": 5, "B": 5, "C": 5})).failed == {}
    woo_sim.recreate_product("B", 0)
    gone = next(pid for pid, p in woo_sim.products.items() if p["sku"] == "C")
    del woo_sim.products[gone]
    result = await woo_client.set_stock({"A": 4, "B": 7, "C": 3})
    assert result.updated == {"A": 4, "B": 7}
    assert list(result.failed) == ["C"] and "Invalid ID" in result.failed["C"]
    assert (woo_sim.stock("A"), woo_sim.stock("B")) == (4, 7)
    assert (await woo_client.set_stock({"B": 6})).updated == {"B": 6}  # the new id is kept


async def test_woocommerce_variations_made_again_are_set_under_their_new_ids(woo_sim, woo_client):
    """A variation re-imported under its product, and a variable product made again whole
    (its old id answers 404 for the batch): both are found again by SKU."""
    woo_sim.add_variation("Tee", "TEE-S", 1)
    woo_sim.add_variation("Tee", "TEE-M", 1)
    woo_sim.add_variation("Cap", "CAP-1", 1)
    assert (await woo_client.set_stock({"TEE-S": 2, "TEE-M": 2, "CAP-1": 2})).failed == {}
    woo_sim.recreate_variation("TEE-M", 0)
    cap = next(pid for pid, p in woo_sim.products.items() if p["name"] == "Cap")
    del woo_sim.products[cap], woo_sim.variations[cap]
    woo_sim.add_variation("Cap", "CAP-1", 0)
    result = await woo_client.set_stock({"TEE-S": 3, "TEE-M": 4, "CAP-1": 5})
    assert result.updated == {"TEE-S": 3, "TEE-M": 4, "CAP-1": 5} and result.failed == {}
    assert [woo_sim.stock(s) for s in ("TEE-S", "TEE-M", "CAP-1")] == [3, 4, 5]


async def test_woocommerce_wrong_keys_are_a_permanent_error(woo_sim, woo_account):
    cfg = woo_account.config.model_copy(update={"consumer_secret": "wrong"})
    client = WooCommerceClient(
        Account("corner", cfg), transport=httpx.ASGITransport(app=woo_sim.app), policy=FAST
    )
    with pytest.raises(ConnectorError) as err:
        await client.get_stock()
    await client.aclose()
    assert err.value.retryable is False and err.value.status == 401


async def test_woocommerce_reads_stock_changed_behind_the_hubs_back(woo_sim, woo_client):
    woo_sim.add_product("A", 5)
    woo_sim.set_stock("A", 11)
    assert await woo_client.get_stock(["A"]) == {"A": 11}


async def test_reconcile_finds_and_fixes_stock_changed_behind_the_hubs_back(
    shopify_sim, shopify_client
):
    from connectors.base import StockDrift, stock_drift

    for sku in ("A", "B", "C"):
        shopify_sim.add_product(sku, 5)
    shopify_sim.set_available("B", 42)  # edited in the Shopify admin
    hub = {"A": 5, "B": 5, "C": 5, "D": 1}
    drift = stock_drift(await shopify_client.get_stock(list(hub)), hub)
    assert drift == [StockDrift("B", 42, 5), StockDrift("D", None, 1)]
    fix = {d.sku: d.hub for d in drift if d.platform is not None}
    await shopify_client.set_stock(fix, force=True)
    assert stock_drift(await shopify_client.get_stock(list(hub)), hub) == [StockDrift("D", None, 1)]


async def test_resync_resumes_from_a_stored_cursor(woo_sim, woo_client):
    from connectors.base import order_pages

    woo_sim.add_product("A", 50)
    for n in range(7):
        woo_sim.make_order(900 + n, [("A", 1, "10.00")], created_at=T0 + timedelta(minutes=n))
    first = await woo_client.list_orders(since=None, cursor=None)
    rest = [p async for p in order_pages(woo_client, since=None, cursor=first.cursor)]
    keys = [
        e.data.order_key
        for p in [first, *rest]
        for e in p.envelopes
        if e.type.endswith("placed.v1")
    ]
    assert keys == [f"corner:{900 + n}" for n in range(7)]
    assert rest[-1].newest is None  # the trash's page, empty
    assert max(p.newest for p in [first, *rest] if p.newest) == T0 + timedelta(minutes=6)


def test_registry_builds_the_client_for_each_shop_connector(shopify_account, woo_account):
    from connectors.base import build_client, connector_names

    assert connector_names() == ["generic", "shopify", "woocommerce"]
    assert type(build_client(shopify_account)).__name__ == "ShopifyClient"
    assert type(build_client(woo_account)).__name__ == "WooCommerceClient"


async def test_woocommerce_variations_are_read_and_set_by_their_own_sku(woo_sim, woo_client):
    woo_sim.add_product("SIMPLE", 1)
    woo_sim.add_variation("Mug", "MUG-BLUE", 4)
    woo_sim.add_variation("Mug", "MUG-RED", 2)
    assert await woo_client.get_stock() == {"SIMPLE": 1, "MUG-BLUE": 4, "MUG-RED": 2}
    result = await woo_client.set_stock({"SIMPLE": 5, "MUG-BLUE": 0, "MUG-RED": 9})
    assert result.updated == {"SIMPLE": 5, "MUG-BLUE": 0, "MUG-RED": 9}
    assert (woo_sim.stock("MUG-BLUE"), woo_sim.stock("MUG-RED")) == (0, 9)
    order = woo_sim.make_order(1, [("MUG-RED", 1, "8.00")])
    assert order["line_items"][0]["variation_id"] != 0 and woo_sim.stock("MUG-RED") == 8


class VariationsDown(httpx.AsyncBaseTransport):
    """The shop answers 503 to every variations batch, and to nothing else."""

    def __init__(self, sim) -> None:
        self.inner = httpx.ASGITransport(app=sim.app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith("/variations/batch"):
            return httpx.Response(503, json={"code": "unavailable"})
        return await self.inner.handle_async_request(request)


async def test_woocommerce_push_that_fails_midway_says_what_it_set(woo_sim, woo_account):
    """Only the SKUs it did not settle are tried again; a refused one is reported."""
    woo_sim.add_product("A", 0)
    woo_sim.add_variation("Tee", "TEE-S", 0)
    client = WooCommerceClient(woo_account, transport=VariationsDown(woo_sim), policy=FAST)
    try:
        await client.products()
        with pytest.raises(ConnectorError) as err:
            await client.set_stock({"A": 4, "GONE": 1, "TEE-S": 2})
    finally:
        await client.aclose()
    assert err.value.retryable and woo_sim.stock("A") == 4
    assert err.value.partial.updated == {"A": 4}
    assert set(err.value.partial.failed) == {"GONE"}


async def test_woocommerce_unknown_id_before_a_failure_is_not_a_refusal(woo_sim, woo_account):
    """A product made again under its SKU answers 'invalid id' for its old one; the push fails
    before the catalogue is read again, so the SKU is not reported refused, only not set."""
    woo_sim.add_product("A", 0)
    woo_sim.add_variation("Tee", "TEE-S", 0)
    client = WooCommerceClient(woo_account, transport=VariationsDown(woo_sim), policy=FAST)
    try:
        await client.products()
        old = next(pid for pid, p in woo_sim.products.items() if p.get("sku") == "A")
        del woo_sim.products[old]
        woo_sim.add_product("A", 0)  # made again: a new id
        with pytest.raises(ConnectorError) as err:
            await client.set_stock({"A": 4, "TEE-S": 2})
    finally:
        await client.aclose()
    assert err.value.partial.failed == {} and err.value.partial.updated == {}


async def test_woocommerce_webhooks_switched_off_after_failures_are_switched_on_again(
    woo_sim, woo_account
):
    """WooCommerce never retries a delivery and disables a webhook after more than five failed
    in a row (the hub answering 503 through a broker outage): the client switches on again the
    webhook at the account's `webhook_url`, and only names one that merely shares the gateway's
    path (a staging hub, one switched off on purpose); another application's it leaves alone."""
    url = "https://hub.example/webhooks/woocommerce/corner"
    ours = woo_sim.add_hook("order.updated", url)
    staging = woo_sim.add_hook("order.updated", "https://old.example/webhooks/woocommerce/corner")
    theirs = woo_sim.add_hook("order.updated", "https://erp.example/hooks/orders")
    down = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(503)))
    order = {"id": 1, "status": "processing"}
    for hook in (ours, staging, theirs):
        for _ in range(6):
            assert (await woo_sim.fire(hook, order, client=down)).status_code == 503
        assert woo_sim.hooks[hook]["status"] == "disabled"
        assert await woo_sim.fire(hook, order, client=down) is None  # nothing is sent
    cfg = woo_account.config.model_copy(update={"webhook_url": url})
    transport = httpx.ASGITransport(app=woo_sim.app)
    client = WooCommerceClient(Account("corner", cfg), transport=transport, policy=FAST)
    revived, named = await client.revive_webhooks()
    assert revived == [f"{ours} (order.updated) {url}"]
    assert named == [f"{staging} (order.updated) https://old.example/webhooks/woocommerce/corner"]
    assert [woo_sim.hooks[h]["status"] for h in (ours, staging, theirs)] == [
        "active",
        "disabled",
        "disabled",
    ]
    up = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(200)))
    assert (await woo_sim.fire(ours, order, client=up)).status_code == 200
    assert (await client.revive_webhooks())[0] == []
    await client.aclose()


async def test_woocommerce_a_sku_naming_several_items_is_refused_naming_them(woo_sim, woo_client):
    """Variations without a SKU of their own are listed under their product's: `TEE` names the
    red and the blue, each with its own stock. Setting one would leave the other selling what
    the hub counted, so the push refuses the SKU and says why; the others go."""
    woo_sim.add_product("MUG", 1)
    pid, red = woo_sim.add_variation("Tee", "", 5, parent_sku="TEE")
    _, blue = woo_sim.add_variation("Tee", "", 5)
    result = await woo_client.set_stock({"TEE": 3, "MUG": 4})
    assert result.updated == {"MUG": 4}
    assert result.failed["TEE"] == (
        f"SKU names 2 items on the shop (product {pid} variation {red}, "
        f"product {pid} variation {blue}): each needs its own SKU"
    )
    assert [woo_sim.variations[pid][v]["stock_quantity"] for v in (red, blue)] == [5, 5]
    assert "TEE" not in await woo_client.get_stock()


async def test_woocommerce_variations_keeping_stock_on_their_product_set_the_product(
    woo_sim, woo_client
):
    """Variations whose stock is their product's (`manage_stock: parent`) share it: the SKU is
    the product's, and a push sets the product's stock."""
    pid, _ = woo_sim.add_variation("Tee", "", -1, parent_sku="TEE")
    woo_sim.add_variation("Tee", "", -1)
    result = await woo_client.set_stock({"TEE": 7})
    assert result.updated == {"TEE": 7} and woo_sim.products[pid]["stock_quantity"] == 7
    assert (await woo_client.get_stock())["TEE"] == 7


@pytest.mark.parametrize("ttl", [0, 600])
async def test_woocommerce_a_sku_given_to_another_product_is_set_there(woo_sim, woo_account, ttl):
    """The merchant renames product A's SKU to A-OLD and makes a new product A. The shop's
    answer to the next push names the item's SKU, A-OLD: the catalogue is read again and A set
    on the new product at once (that one write also reached the renamed product). With a short
    `catalogue_ttl_seconds` the catalogue is also read behind the pushes."""
    cfg = woo_account.config.model_copy(update={"catalogue_ttl_seconds": ttl})
    transport = httpx.ASGITransport(app=woo_sim.app)
    client = WooCommerceClient(Account("corner", cfg), transport=transport, policy=FAST)
    first = woo_sim.add_product("A", 1)
    assert (await client.set_stock({"A": 3})).updated == {"A": 3}
    woo_sim.products[first]["sku"] = "A-OLD"
    second = woo_sim.add_product("A", 9)
    assert (await client.set_stock({"A": 4})).updated == {"A": 4}
    assert woo_sim.products[second]["stock_quantity"] == 4
    assert (await client.set_stock({"A": 5})).updated == {"A": 5}
    await client.aclose()
    stock = (woo_sim.products[first]["stock_quantity"], woo_sim.products[second]["stock_quantity"])
    assert stock == (4, 5)


async def test_woocommerce_variations_with_their_own_skus_on_a_product_that_pools_stock(
    woo_sim, woo_client
):
    """Variations with SKUs of their own keep their SKUs, whatever their stock setting: each is
    set as before."""
    pid, red = woo_sim.add_variation("Tee", "TEE-RED", -1, parent_sku="TEE")
    _, blue = woo_sim.add_variation("Tee", "TEE-BLU", -1)
    result = await woo_client.set_stock({"TEE-RED": 2, "TEE-BLU": 3})
    assert result.updated == {"TEE-RED": 2, "TEE-BLU": 3} and result.failed == {}
    assert [woo_sim.variations[pid][v]["stock_quantity"] for v in (red, blue)] == [2, 3]


class SlowFirstCatalogue(httpx.AsyncBaseTransport):
    """The shop answers the first catalogue page it is asked for, then holds the answer back
    a while (a large shop's read behind the pushes, still on its way)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner, self.held = inner, 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.method == "GET" and request.url.path.endswith("/products") and not self.held:
            self.held += 1
            await response.aread()
            await asyncio.sleep(0.3)
        return response


async def test_woocommerce_a_read_behind_the_pushes_never_replaces_a_newer_index(
    woo_sim, woo_account
):
    """A read behind the pushes starts, then the SKU moves to a new product and a push reads
    the catalogue itself: the older read, landing last, must not bring the old index back."""
    cfg = woo_account.config.model_copy(update={"catalogue_ttl_seconds": 0})
    transport = SlowFirstCatalogue(httpx.ASGITransport(app=woo_sim.app))
    client = WooCommerceClient(Account("corner", cfg), transport=transport, policy=FAST)
    first = woo_sim.add_product("A", 1)
    client._products, client._products_at = {"A": (first, None)}, 0.0  # an index read before
    transport.held = 0
    assert (await client.set_stock({"A": 3})).updated == {"A": 3}  # starts the slow read
    await asyncio.sleep(0.05)  # it has the old catalogue, on its way back
    woo_sim.products[first]["sku"] = "A-OLD"
    second = woo_sim.add_product("A", 9)
    assert (await client.set_stock({"A": 4})).updated == {"A": 4}
    await asyncio.sleep(0.4)  # the slow read is done by now
    client._products_at = time.monotonic()  # no read behind this push
    assert (await client.set_stock({"A": 5})).updated == {"A": 5}
    await client.aclose()
    assert (
        woo_sim.products[first]["stock_quantity"],
        woo_sim.products[second]["stock_quantity"],
    ) == (4, 5)
