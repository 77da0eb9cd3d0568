"""Stock pushes to Shopify use inventorySetQuantities with compareQuantity."""

from __future__ import annotations

import httpx
import pytest

from connectors.http import TransientError
from connectors.shopify.client import ShopifyClient
from tests.unit.connectors.shop.conftest import FAST


async def test_push_never_offers_more_than_the_shop_has_after_an_unseen_sale(
    shopify_sim, shopify_client
):
    shopify_sim.add_product("A", 0)
    await shopify_client.set_stock({"A": 10})
    shopify_sim.make_order(1, [("A", 1, "5.00")])  # the shop sells one; the hub has not heard yet
    assert shopify_sim.stock("A") == 9
    result = await shopify_client.set_stock({"A": 10})  # the hub's stale view
    assert shopify_sim.stock("A") == 9 and result.updated == {"A": 9}
    await shopify_client.set_stock({"A": 9})  # the webhook arrived: exact again
    assert shopify_sim.stock("A") == 9


async def test_a_sale_the_hub_already_counted_is_not_subtracted_twice(shopify_sim, shopify_client):
    shopify_sim.add_product("A", 0)
    await shopify_client.set_stock({"A": 10})
    shopify_sim.make_order(1, [("A", 1, "5.00")])
    await shopify_client.set_stock({"A": 9})
    assert shopify_sim.stock("A") == 9


async def test_stock_raised_by_the_hub_lands_when_nothing_moved(shopify_sim, shopify_client):
    shopify_sim.add_product("A", 3)
    await shopify_client.set_stock({"A": 30})
    assert shopify_sim.stock("A") == 30


async def test_forced_push_overrides_a_change_made_behind_the_hubs_back(
    shopify_sim, shopify_client
):
    shopify_sim.add_product("A", 0)
    await shopify_client.set_stock({"A": 10})
    shopify_sim.set_available("A", 50)
    await shopify_client.set_stock({"A": 10}, force=True)
    assert shopify_sim.stock("A") == 10


async def test_many_skus_go_in_one_call(shopify_sim, shopify_client):
    for n in range(30):
        shopify_sim.add_product(f"S-{n}", 0)
    await shopify_client.get_stock()
    before = shopify_sim.set_calls
    result = await shopify_client.set_stock({f"S-{n}": n for n in range(30)})
    assert len(result.updated) == 30 and shopify_sim.set_calls == before + 1


async def test_graphql_throttle_is_waited_out(shopify_sim, shopify_client):
    shopify_sim.add_product("A", 0)
    await shopify_client.get_stock()
    shopify_sim._points = 0.0
    shopify_sim.graphql_restore = 200.0
    result = await shopify_client.set_stock({"A": 4})
    assert result.updated == {"A": 4}


async def test_an_item_deleted_on_the_shop_fails_alone(shopify_sim, shopify_client):
    shopify_sim.add_product("A", 0)
    shopify_sim.add_product("B", 0)
    await shopify_client.get_stock()
    gone = shopify_sim.products.pop("B")  # deleted in the Shopify admin
    del shopify_sim.available[gone["inventory_item_id"]]
    result = await shopify_client.set_stock({"A": 2, "B": 2})
    assert result.updated == {"A": 2}
    assert result.failed["B"].startswith("INVALID_INVENTORY_ITEM")


async def test_a_variant_made_again_is_found_under_its_new_inventory_item(
    shopify_sim, shopify_client
):
    shopify_sim.add_product("A", 0)
    shopify_sim.add_product("B", 0)
    await shopify_client.set_stock({"A": 5, "B": 5})
    shopify_sim.recreate_product("B", 0)  # re-imported: same SKU, new inventory item
    result = await shopify_client.set_stock({"A": 4, "B": 7})
    assert result.updated == {"A": 4, "B": 7} and result.failed == {}
    assert shopify_sim.stock("A") == 4 and shopify_sim.stock("B") == 7
    result = await shopify_client.set_stock({"B": 6})  # the new item is remembered
    assert result.updated == {"B": 6} and shopify_sim.stock("B") == 6


async def test_every_variant_re_imported_with_the_one_pushed_is_set_to_its_target(
    shopify_sim, shopify_client
):
    for sku in ("B1", "B2", "B3"):
        shopify_sim.add_product(sku, 0)
    await shopify_client.set_stock({"B1": 5, "B2": 5, "B3": 5})
    for sku in ("B1", "B2"):
        shopify_sim.recreate_product(sku, 0)  # the product re-imported: new items at 0
    reads = shopify_sim.catalogue_reads
    assert (await shopify_client.set_stock({"B1": 7})).updated == {"B1": 7}
    assert shopify_sim.catalogue_reads == reads + 1  # read once for the push, not per step
    # B2's count known was its old item's: not taken for the new item's, nor cut to its 0
    assert (await shopify_client.set_stock({"B2": 7, "B3": 4})).updated == {"B2": 7, "B3": 4}
    assert [shopify_sim.stock(s) for s in ("B1", "B2", "B3")] == [7, 7, 4]


async def test_the_listings_of_a_sku_together_offer_its_level(shopify_sim, shopify_client):
    """Shopify sells each listing from its own count: set each to the level, two listings of
    a SKU the hub has 7 of would sell 14. The level is split among them, the first taking the
    remainder, and a reconcile sees what they offer together."""
    shopify_sim.add_product("A", 0)
    shopify_sim.list_again("A", 3)  # the same goods in a second product
    shopify_sim.add_product("B", 0)
    result = await shopify_client.set_stock({"A": 7, "B": 2})
    assert result.updated == {"A": 7, "B": 2} and shopify_sim.stocks("A") == [4, 3]
    assert await shopify_client.get_stock(["A"]) == {"A": 7}
    # A sale of 2 on the second listing the hub has not heard of: together they offer no more
    # than the shop has left.
    copy = shopify_sim.more_listings["A"][0]["inventory_item_id"]
    shopify_sim.available[copy] -= 2
    assert await shopify_client.get_stock(["A"]) == {"A": 5}
    assert (await shopify_client.set_stock({"A": 7})).updated == {"A": 5}
    assert shopify_sim.stocks("A") == [3, 2]
    shopify_sim.available[copy] = 9  # edited behind the hub's back: a reconcile finds it
    assert await shopify_client.get_stock(["A"]) == {"A": 12}
    assert (await shopify_client.set_stock({"A": 4}, force=True)).updated == {"A": 4}
    assert shopify_sim.stocks("A") == [2, 2]


async def test_a_listing_not_on_sale_takes_no_share_of_the_level(shopify_sim, shopify_client):
    """The original product archived and a copy on sale (or a copy duplicated in the Shopify
    admin, a draft until published): only the listing on sale offers the level, the last unit
    too. Back on sale, the original shares again."""
    shopify_sim.add_product("A", 0)
    original = shopify_sim.products["A"]["product_id"]
    shopify_sim.product_status[original] = "archived"
    shopify_sim.list_again("A", 0)
    shopify_sim.list_again("A", 0, status="draft")
    assert (await shopify_client.set_stock({"A": 1})).updated == {"A": 1}
    assert shopify_sim.stocks("A") == [0, 1, 0]
    assert (await shopify_client.set_stock({"A": 4})).updated == {"A": 4}
    assert shopify_sim.stocks("A") == [0, 4, 0]
    # A sale on the listing on sale the hub has not heard of, while the draft holds units the
    # hub never put there: the level is capped at what the listing on sale has left.
    shopify_sim.available[shopify_sim.more_listings["A"][0]["inventory_item_id"]] -= 1
    shopify_sim.available[shopify_sim.more_listings["A"][1]["inventory_item_id"]] = 2
    assert (await shopify_client.set_stock({"A": 4})).updated == {"A": 3}
    assert shopify_sim.stocks("A") == [0, 3, 0]
    shopify_sim.product_status[original] = "active"
    shopify_client.catalogue_ttl = 0  # the catalogue is read again before this push
    assert (await shopify_client.set_stock({"A": 5})).updated == {"A": 5}
    assert shopify_sim.stocks("A") == [3, 2, 0]


async def test_a_new_listing_does_not_hide_a_sale_on_the_known_one(shopify_sim, shopify_client):
    shopify_sim.add_product("A", 0)
    await shopify_client.set_stock({"A": 5})
    shopify_sim.list_again("A", 0)  # a copy: its count not yet known to the client
    shopify_sim.make_order(1, [("A", 1, "5.00")])  # a sale the hub has not heard of yet
    shopify_client.catalogue_ttl = 0  # the catalogue is read again before this push
    result = await shopify_client.set_stock({"A": 5})
    assert result.updated == {"A": 4} and shopify_sim.stocks("A") == [2, 2]


async def test_a_listing_not_stocked_at_the_location_does_not_fail_the_others(
    shopify_sim, shopify_client
):
    shopify_sim.add_product("A", 0)
    elsewhere = shopify_sim.list_again("A", 0)
    del shopify_sim.available[elsewhere]  # no inventory level at this location
    result = await shopify_client.set_stock({"A": 3})
    assert result.updated == {"A": 3} and result.failed == {}
    assert shopify_sim.stock("A") == 3
    forced = await shopify_client.set_stock({"A": 1}, force=True)  # reconcile --fix
    assert forced.updated == {"A": 1} and forced.failed == {}
    assert shopify_sim.stock("A") == 1


class SellingDuringEveryWrite(httpx.AsyncBaseTransport):
    """A flash sale on the shop: before every stock write reaches it, the shop sells one more of
    the hot SKU, so a compare-and-set including it always meets a count it did not read."""

    def __init__(self, sim, hot: str) -> None:
        self.sim, self.hot = sim, hot
        self.inner = httpx.ASGITransport(app=sim.app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and b"inventorySetQuantities" in request.content:
            self.sim.set_available(self.hot, max(0, self.sim.stock(self.hot) - 1))
        return await self.inner.handle_async_request(request)


async def test_a_sku_selling_fast_on_the_shop_does_not_hold_up_the_others(
    shopify_sim, shopify_account
):
    for sku in ("HOT", "B", "C"):
        shopify_sim.add_product(sku, 50)
    client = ShopifyClient(
        shopify_account, transport=SellingDuringEveryWrite(shopify_sim, "HOT"), policy=FAST
    )
    try:
        await client.get_stock()
        with pytest.raises(TransientError) as lost:
            await client.set_stock({"HOT": 40, "B": 7, "C": 9})
        assert (shopify_sim.stock("B"), shopify_sim.stock("C")) == (7, 9)
        assert lost.value.partial.updated == {"B": 7, "C": 9}
        assert "HOT" not in lost.value.partial.updated
    finally:
        await client.aclose()
