from __future__ import annotations

import asyncio

import httpx
import structlog.testing

from connectors.base import Account, StockPushResult
from connectors.errors import ConnectorError
from connectors.http import RetryPolicy
from connectors.pushout import PushFailure, StockPushOut
from connectors.shopify.client import ShopifyClient
from connectors.woocommerce.client import WooCommerceClient
from tests.builders import stock_level as level

FAST = RetryPolicy(attempts=2, initial_wait=0.01, max_wait=0.02, timeout=5.0)


def _shopify(sim, account: Account) -> ShopifyClient:
    return ShopifyClient(account, transport=httpx.ASGITransport(app=sim.app), policy=FAST)


def _woo(sim, account: Account) -> WooCommerceClient:
    return WooCommerceClient(account, transport=httpx.ASGITransport(app=sim.app), policy=FAST)


async def test_only_the_newest_level_per_sku_is_pushed(shopify_sim, shopify_account):
    shopify_sim.add_product("A", 0)
    shopify_sim.faults.latency = 0.05
    out = StockPushOut({"acme": _shopify(shopify_sim, shopify_account)}, backoff_initial=0.01)
    for version in range(1, 51):
        out.offer("acme", level("A", version, version))
        await asyncio.sleep(0)
    async with asyncio.timeout(5):
        await out.drain()
    await out.stop()
    assert shopify_sim.stock("A") == 50
    assert shopify_sim.set_calls <= 3  # the first version, maybe one in between, the newest
    assert out.pushed_version("acme", "A") == 50


async def test_stale_and_repeated_versions_are_dropped(shopify_sim, shopify_account):
    shopify_sim.add_product("A", 0)
    out = StockPushOut({"acme": _shopify(shopify_sim, shopify_account)})
    assert out.offer("acme", level("A", 9, 5))
    assert not out.offer("acme", level("A", 3, 3))
    assert not out.offer("acme", level("A", 9, 5))
    async with asyncio.timeout(5):
        await out.drain()
    await out.stop()
    assert shopify_sim.stock("A") == 9


async def test_a_slow_shop_does_not_delay_another(
    shopify_sim, shopify_account, woo_sim, woo_account
):
    shopify_sim.add_product("A", 0)
    woo_sim.add_product("A", 0)
    shopify_sim.faults.latency = 3.0  # every call to this shop hangs for 3 s
    out = StockPushOut(
        {"acme": _shopify(shopify_sim, shopify_account), "corner": _woo(woo_sim, woo_account)},
        channels={"acme": "online", "corner": "online"},
    )
    assert out.offer_level(level("A", 7, 1)) == ["acme", "corner"]
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with asyncio.timeout(1.0):
        await out.drain("corner")
    assert loop.time() - started < 1.0
    assert woo_sim.stock("A") == 7
    assert out.pending("acme") == {}  # taken, still in flight at the slow shop
    assert shopify_sim.stock("A") == 0
    await out.stop()


async def test_transient_failures_are_retried_until_the_stock_lands(shopify_sim, shopify_account):
    shopify_sim.add_product("A", 0)
    shopify_sim.faults.throttle_next(2, retry_after=0)
    shopify_sim.faults.fail_next(6, status=503)  # more than one client call's retries
    failures: list[PushFailure] = []
    out = StockPushOut(
        {"acme": _shopify(shopify_sim, shopify_account)},
        on_failure=failures.append,
        backoff_initial=0.01,
    )
    out.offer("acme", level("A", 4, 1))
    async with asyncio.timeout(5):
        await out.drain()
    await out.stop()
    assert shopify_sim.stock("A") == 4
    assert failures == []


async def test_newer_level_arriving_during_failures_wins(shopify_sim, shopify_account):
    shopify_sim.add_product("A", 0)
    shopify_sim.faults.fail_next(4, status=500)
    out = StockPushOut({"acme": _shopify(shopify_sim, shopify_account)}, backoff_initial=0.05)
    out.offer("acme", level("A", 1, 1))
    await asyncio.sleep(0.02)
    out.offer("acme", level("A", 2, 2))
    async with asyncio.timeout(5):
        await out.drain()
    await out.stop()
    assert shopify_sim.stock("A") == 2


async def test_permanent_failures_are_reported_for_the_dlq(woo_sim, woo_account):
    woo_sim.add_product("A", 0)
    failures: list[PushFailure] = []

    async def to_dlq(failure: PushFailure) -> None:
        failures.append(failure)

    out = StockPushOut({"corner": _woo(woo_sim, woo_account)}, on_failure=to_dlq)
    out.offer("corner", level("A", 3, 1))
    out.offer("corner", level("GONE", 3, 1))
    async with asyncio.timeout(5):
        await out.drain()
    await out.stop()
    assert woo_sim.stock("A") == 3
    assert [(f.account, f.level.sku) for f in failures] == [("corner", "GONE")]
    assert "SKU" in failures[0].reason


async def test_rejected_credentials_fail_every_sku_without_retrying(woo_sim, woo_account):
    woo_sim.add_product("A", 0)
    cfg = woo_account.config.model_copy(update={"consumer_secret": "revoked"})
    failures: list[PushFailure] = []
    out = StockPushOut(
        {"corner": _woo(woo_sim, Account("corner", cfg))}, on_failure=failures.append
    )
    out.offer("corner", level("A", 3, 1))
    async with asyncio.timeout(5):
        await out.drain()
    await out.stop()
    assert [(f.level.sku, f.status) for f in failures] == [("A", 401)]


async def test_push_latency_is_reported(woo_sim, woo_account):
    woo_sim.add_product("A", 0)
    woo_sim.add_product("B", 0)
    seen: list[tuple[str, float, int]] = []
    out = StockPushOut(
        {"corner": _woo(woo_sim, woo_account)},
        on_latency=lambda account, seconds, count: seen.append((account, seconds, count)),
    )
    out.offer("corner", level("A", 1, 1))
    out.offer("corner", level("B", 1, 1))
    async with asyncio.timeout(5):
        await out.drain()
    await out.stop()
    assert sum(c for _, _, c in seen) == 2
    assert all(a == "corner" and s >= 0 for a, s, _ in seen)


async def test_levels_of_another_channel_are_not_offered(woo_sim, woo_account):
    out = StockPushOut({"corner": _woo(woo_sim, woo_account)}, channels={"corner": "online"})
    assert out.offer_level(level("A", 1, 1, channel="wholesale")) == []
    await out.stop()


async def test_a_failed_level_replayed_from_the_dlq_is_pushed_again(woo_sim, woo_account):
    # The replay comes after the product was made, later than the catalogue read that missed
    # it by more than `unlisted_ttl_seconds` (0 here: at once).
    account = Account("corner", woo_account.config.model_copy(update={"unlisted_ttl_seconds": 0}))
    failures: list[PushFailure] = []
    out = StockPushOut({"corner": _woo(woo_sim, account)}, on_failure=failures.append)
    out.offer("corner", level("LATE", 6, 3))  # the product does not exist on the shop yet
    async with asyncio.timeout(5):
        await out.drain()
    assert len(failures) == 1
    woo_sim.add_product("LATE", 0)  # an operator creates it, then replays the dead letter
    assert out.offer("corner", failures[0].level)
    async with asyncio.timeout(5):
        await out.drain()
    await out.stop()
    assert woo_sim.stock("LATE") == 6


class CatalogueReads(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport, path: str) -> None:
        self.inner, self.path, self.reads = inner, path, 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path.endswith(self.path):
            self.reads += 1
        return await self.inner.handle_async_request(request)


async def test_a_sku_the_shop_does_not_list_does_not_read_its_catalogue_at_every_push(
    shopify_sim, shopify_account, woo_sim, woo_account
):
    """A level of a SKU sold on another shop only comes with every sale there: the first push
    reads the catalogue to look for it, the next ones within `unlisted_ttl_seconds` do not."""
    shopify_sim.add_product("A", 0)
    woo_sim.add_product("A", 0)
    reads = {
        "shopify": CatalogueReads(httpx.ASGITransport(app=shopify_sim.app), "/products.json"),
        "woo": CatalogueReads(httpx.ASGITransport(app=woo_sim.app), "/products"),
    }
    clients = {
        "shopify": ShopifyClient(shopify_account, transport=reads["shopify"], policy=FAST),
        "woo": WooCommerceClient(woo_account, transport=reads["woo"], policy=FAST),
    }
    for name, client in clients.items():
        for n in range(5):
            result = await client.set_stock({"A": n, "ELSEWHERE": n})
            assert result.updated == {"A": n} and list(result.failed) == ["ELSEWHERE"]
        assert reads[name].reads == 1, name  # the read that found A and missed ELSEWHERE
        await client.aclose()
    assert (shopify_sim.stock("A"), woo_sim.stock("A")) == (4, 4)


async def test_a_refusal_whose_report_fails_is_retried_until_it_is_reported(woo_sim, woo_account):
    """The dead-letter topic unreachable: the refused level is not dropped, but pushed (and
    refused) again until its report goes through."""
    reported: list[PushFailure] = []
    attempts = 0

    async def to_dlq(failure: PushFailure) -> None:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise ConnectionError("broker unreachable")
        reported.append(failure)

    out = StockPushOut(
        {"corner": _woo(woo_sim, woo_account)}, on_failure=to_dlq, backoff_initial=0.01
    )
    out.offer("corner", level("GONE", 3, 1), origin=("p0", 4))
    async with asyncio.timeout(5):
        await out.drain()
    await out.stop()
    assert attempts == 3
    assert [(f.level.sku, f.level.version) for f in reported] == [("GONE", 1)]
    assert out.low_water("p0") is None


class GatedShop:
    """A shop client whose every call waits for the test to let it finish, failing or not."""

    def __init__(self) -> None:
        self.calls: list[dict[str, int]] = []
        self.stock: dict[str, int] = {}
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.fail = True

    async def set_stock(self, levels, *, force: bool = False) -> StockPushResult:
        self.calls.append(dict(levels))
        self.entered.set()
        await self.release.wait()
        self.release.clear()
        if self.fail:
            raise ConnectorError("503 from the shop", retryable=True, status=503)
        self.stock.update(levels)
        return StockPushResult(updated=dict(levels))


async def test_low_water_is_the_earliest_level_still_owed_in_each_lane():
    shop = GatedShop()
    out = StockPushOut({"acme": shop}, backoff_initial=0.01)  # type: ignore[dict-item]
    out.offer("acme", level("A", 1, 1), origin=("p0", 5))
    out.offer("acme", level("B", 1, 1), origin=("p0", 7))
    out.offer("acme", level("C", 1, 1), origin=("p1", 2))
    await shop.entered.wait()  # all three in flight at the shop
    assert (out.low_water("p0"), out.low_water("p1"), out.low_water("p2")) == (5, 2, None)
    shop.release.set()  # that call fails: all three wait again
    out.offer("acme", level("A", 2, 2), origin=("p0", 9))  # a newer A replaces the one at 5
    await asyncio.sleep(0.05)
    assert out.low_water("p0") == 7
    shop.fail = False
    while out.low_water("p0") is not None or out.low_water("p1") is not None:
        shop.release.set()
        await asyncio.sleep(0.01)
    await out.stop()
    assert shop.stock == {"A": 2, "B": 1, "C": 1}


async def test_a_forgotten_lane_is_neither_retried_nor_held_and_is_taken_again_later():
    """Its partition moved to another worker: a level waiting or in flight from it is dropped
    (the new owner pushes it and what came after), and offered again later it is taken."""
    shop = GatedShop()
    out = StockPushOut({"acme": shop}, backoff_initial=0.01)  # type: ignore[dict-item]
    out.offer("acme", level("A", 5, 3), origin=("p0", 10))
    await shop.entered.wait()  # A is in flight
    out.offer("acme", level("B", 4, 1), origin=("p0", 11))  # B waits behind it
    out.offer("acme", level("C", 6, 1), origin=("p1", 3))  # another lane, kept
    assert out.forget(["p0"]) == 1  # B dropped while waiting
    assert out.low_water("p0") is None and out.low_water("p1") == 3
    shop.entered.clear()
    shop.release.set()  # A's call fails after the partition left: A is not retried
    await shop.entered.wait()
    assert shop.calls[-1] == {"C": 6}
    shop.fail = False
    shop.release.set()
    async with asyncio.timeout(5):
        await out.drain()
    assert shop.stock == {"C": 6}
    assert out.offer("acme", level("A", 5, 3), origin=("p0", 10))  # the partition came back
    shop.release.set()
    async with asyncio.timeout(5):
        await out.drain()
    await out.stop()
    assert shop.stock == {"A": 5, "C": 6}


class PartlySetShop:
    """The first call sets every SKU but HOT, then fails for HOT; the next calls succeed."""

    def __init__(self) -> None:
        self.calls: list[dict[str, int]] = []

    async def set_stock(self, levels, *, force: bool = False) -> StockPushResult:
        self.calls.append(dict(levels))
        if len(self.calls) == 1:
            exc = ConnectorError("compare-and-set kept losing", retryable=True)
            exc.partial = StockPushResult(updated={s: n for s, n in levels.items() if s != "HOT"})
            raise exc
        return StockPushResult(updated=dict(levels))


async def test_after_a_failure_that_set_some_skus_only_the_rest_are_pushed_again():
    shop = PartlySetShop()
    out = StockPushOut({"acme": shop}, backoff_initial=0.01)  # type: ignore[dict-item]
    for sku in ("HOT", "B", "C"):
        out.offer("acme", level(sku, 5, 1))
    async with asyncio.timeout(5):
        await out.drain()
    await out.stop()
    assert shop.calls == [{"HOT": 5, "B": 5, "C": 5}, {"HOT": 5}]
    assert [out.pushed_version("acme", s) for s in ("HOT", "B", "C")] == [1, 1, 1]


async def test_a_push_that_lands_after_its_lane_was_forgotten_is_not_undone_by_an_older_one():
    shop = GatedShop()
    shop.fail = False
    out = StockPushOut({"acme": shop})  # type: ignore[dict-item]
    out.offer("acme", level("A", 5, 5), origin=("p0", 50))
    await shop.entered.wait()  # v5 in flight
    out.forget(["p0"])
    shop.release.set()  # v5 lands after all
    async with asyncio.timeout(5):
        await out.drain()
    assert out.pushed_version("acme", "A") == 5
    # The lane comes back, read again from a commit below v4's offset: v4 stays unsent.
    assert not out.offer("acme", level("A", 8, 4), origin=("p0", 40))
    await out.stop()
    assert shop.calls == [{"A": 5}]


async def test_a_sku_refused_within_a_partly_set_push_is_reported_not_retried():
    """HOT loses its compare-and-set; in the same push B is set and GONE refused for good."""
    calls: list[dict[str, int]] = []
    reported: list[str] = []

    class Shop:
        async def set_stock(self, levels, *, force: bool = False) -> StockPushResult:
            calls.append(dict(levels))
            if len(calls) > 1:
                return StockPushResult(updated=dict(levels))
            exc = ConnectorError("compare-and-set kept losing", retryable=True)
            exc.partial = StockPushResult(updated={"B": 5}, failed={"GONE": "no variant"})
            raise exc

    out = StockPushOut(
        {"acme": Shop()},  # type: ignore[dict-item]
        on_failure=lambda f: reported.append(f.level.sku),
        backoff_initial=0.01,
    )
    for sku in ("HOT", "B", "GONE"):
        out.offer("acme", level(sku, 5, 1))
    async with asyncio.timeout(5):
        await out.drain()
    await out.stop()
    assert calls == [{"HOT": 5, "B": 5, "GONE": 5}, {"HOT": 5}]
    assert reported == ["GONE"]


async def test_a_compare_and_set_lost_to_the_shops_own_sales_does_not_grow_the_backoff():
    """The shop is well: the contested SKU is tried again soon, and the batches after it are
    not held up by a backoff grown on it."""
    calls = 0

    class Shop:
        async def set_stock(self, levels, *, force: bool = False) -> StockPushResult:
            nonlocal calls
            calls += 1
            if calls <= 4:
                exc = ConnectorError("compare-and-set kept losing", retryable=True)
                exc.contended = True
                raise exc
            return StockPushResult(updated=dict(levels))

    out = StockPushOut({"acme": Shop()}, backoff_initial=0.01)  # type: ignore[dict-item]
    with structlog.testing.capture_logs() as logs:
        out.offer("acme", level("HOT", 5, 1))
        async with asyncio.timeout(5):
            await out.drain()
    await out.stop()
    waits = [e["wait"] for e in logs if e["event"] == "stock_push.retry"]
    assert waits == [0.01, 0.01, 0.01, 0.01]
