"""Reconcile and push-stock against simulated shops whose stock changed behind the hub's back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import httpx
import pytest
from sqlalchemy import select

from connectors.errors import ConnectorError, UnknownAccount
from hub.core.batch import CoreProcessor, rules_from_config
from hub.queries import stock_view
from hub.shops import hub_available, push_stock, reconcile, reconcile_loop
from hub.store.models import AuditEntry
from tests.builders import counted, place, records

from .conftest import hub_settings


async def _hub_stock(settings, sessions) -> dict[str, int]:
    """On hand A-1 30, B-2 12, C-3 5 (C-3 is not sold on the shops); A-1 has 4 reserved."""
    rules = rules_from_config(settings.hub.channels)
    await CoreProcessor(sessions, rules).process(
        records(counted("A-1", 30), counted("B-2", 12), counted("C-3", 5))
    )
    await CoreProcessor(sessions, rules).process(records(place("acme:1", [("A-1", 4)])))
    return await hub_available(sessions, rules["online"])


async def _eventually(check: Callable[[], bool], limit: float = 20.0) -> None:
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


class Shop:
    """The same operations on either simulator."""

    def __init__(self, platform: str, shopify, woo) -> None:
        self.account = "acme" if platform == "shopify" else "corner"
        self.sim = shopify if platform == "shopify" else woo
        self.platform = platform

    def add(self, sku: str, qty: int) -> None:
        self.sim.add_product(sku, qty)

    def set(self, sku: str, qty: int) -> None:  # an edit in the shop's admin
        if self.platform == "shopify":
            self.sim.set_available(sku, qty)
        else:
            self.sim.set_stock(sku, qty)

    def stock(self, sku: str) -> int:
        return int(self.sim.stock(sku))


@pytest.mark.parametrize("platform", ["shopify", "woocommerce"])
async def test_reconcile_fix_repairs_stock_changed_behind_the_hubs_back(
    platform, settings, sessions, shopify, woo, transports
):
    hub = await _hub_stock(settings, sessions)
    async with sessions() as s:  # the bulk figure is what `hub stock show` says
        view = await stock_view(s, "A-1", rules_from_config(settings.hub.channels))
    assert hub["A-1"] == view["channels"]["online"]["available"] == 30 - 4 - 2
    shop = Shop(platform, shopify, woo)
    for sku in ("A-1", "B-2"):
        shop.add(sku, hub[sku])
    shop.add("SHOP-ONLY", 7)
    shop.set("A-1", 3)  # below the hub
    shop.set("B-2", 40)  # above the hub: would oversell
    transport = transports[shop.account]

    looked = await reconcile(
        settings, shop.account, fix=False, sessions=sessions, transport=transport
    )
    assert [(d.sku, d.platform, d.hub) for d in looked.drift] == [("A-1", 3, 24), ("B-2", 40, 10)]
    assert looked.remaining == looked.drift and not looked.ok
    assert looked.unknown_to_hub == ["SHOP-ONLY"] and looked.not_on_platform == ["C-3"]
    assert (shop.stock("A-1"), shop.stock("B-2")) == (3, 40)  # looking changes nothing

    fixed = await reconcile(
        settings,
        shop.account,
        fix=True,
        sessions=sessions,
        transport=transport,
        actor="ops@example",
    )
    assert fixed.ok and fixed.remaining == []
    assert fixed.fixed == {"A-1": 24, "B-2": 10}
    assert (shop.stock("A-1"), shop.stock("B-2")) == (hub["A-1"], hub["B-2"])
    assert shop.stock("SHOP-ONLY") == 7  # not the hub's to set
    async with sessions() as s:
        audit = (await s.execute(select(AuditEntry))).scalars().all()
    assert [(a.actor, a.action, a.target) for a in audit] == [
        ("ops@example", "stock.reconcile", shop.account)
    ]
    assert audit[0].before["platform"] == {"A-1": 3, "B-2": 40}
    assert audit[0].after["platform"] == {"A-1": 24, "B-2": 10}

    again = await reconcile(
        settings, shop.account, fix=True, sessions=sessions, transport=transport
    )
    assert again.drift == [] and again.ok  # nothing left, nothing audited twice
    async with sessions() as s:
        assert len((await s.execute(select(AuditEntry))).scalars().all()) == 1


async def test_a_shop_answering_5xx_for_a_while_still_ends_with_the_hubs_stock(
    settings, sessions, shopify, transports
):
    hub = await _hub_stock(settings, sessions)
    shopify.add_product("A-1", 99)
    shopify.add_product("B-2", hub["B-2"])
    shopify.faults.fail_next(3, 503)  # the first reads fail; retried with backoff
    pushed = await push_stock(
        settings, "acme", all_skus=False, sessions=sessions, transport=transports["acme"]
    )
    assert pushed.pushed == {"A-1": hub["A-1"]} and pushed.failed == {}
    assert pushed.unchanged == 1 and pushed.not_on_platform == ["C-3"]
    assert shopify.stock("A-1") == hub["A-1"]
    assert len(shopify.faults.calls) >= 3 + 3  # the three failed calls were made again

    shopify.set_available("B-2", 0)
    shopify.faults.fail_next(2, 502)
    everything = await push_stock(
        settings, "acme", all_skus=True, sessions=sessions, transport=transports["acme"]
    )
    assert everything.pushed == {"A-1": hub["A-1"], "B-2": hub["B-2"]}
    assert shopify.stock("B-2") == hub["B-2"]


async def test_scheduled_reconcile_raises_a_shop_only_when_the_drift_is_seen_twice(
    settings, sessions, shopify, transports
):
    hub = await _hub_stock(settings, sessions)
    shopify.add_product("A-1", 1)  # below: may be a sale the hub has not seen yet
    shopify.add_product("B-2", 50)  # above: lowered at once
    first = await reconcile(
        settings, "acme", fix=True, sessions=sessions, transport=transports["acme"], confirmed=set()
    )
    assert first.fixed == {"B-2": hub["B-2"]}
    assert [(d.sku, d.platform, d.hub) for d in first.held] == [("A-1", 1, hub["A-1"])]
    assert shopify.stock("A-1") == 1 and not first.ok
    second = await reconcile(
        settings,
        "acme",
        fix=True,
        sessions=sessions,
        transport=transports["acme"],
        confirmed=set(first.held),
    )
    assert second.fixed == {"A-1": hub["A-1"]} and second.ok
    assert shopify.stock("A-1") == hub["A-1"]


async def test_reconcile_loop_fixes_every_shop_and_a_failing_one_stops_nothing(
    db_url, tmp_path, sessions, shopify, woo, transports
):
    settings = hub_settings(db_url, tmp_path, corner_secret="cs_revoked")  # corner: 401 always
    hub = await _hub_stock(settings, sessions)
    shopify.add_product("A-1", 2)
    shopify.add_product("B-2", 60)
    woo.add_product("B-2", 60)
    stop = asyncio.Event()
    loop = asyncio.create_task(
        reconcile_loop(settings, sessions, stop, 0.05, transport_for=transports.get)
    )
    try:
        await _eventually(
            lambda: (shopify.stock("A-1"), shopify.stock("B-2")) == (hub["A-1"], hub["B-2"])
        )
        assert not loop.done()  # the refused shop was logged, the loop kept going
        calls = len(woo.faults.calls)
        await _eventually(lambda: len(woo.faults.calls) > calls)  # and keeps trying it
    finally:
        stop.set()
        async with asyncio.timeout(10):
            await loop
    assert woo.stock("B-2") == 60
    async with sessions() as s:
        targets = {a.target for a in (await s.execute(select(AuditEntry))).scalars()}
    assert targets == {"acme"}


async def test_reconcile_loop_switches_on_a_webhook_the_shop_switched_off(
    settings, sessions, woo, transports
):
    """WooCommerce disabled the hub's webhook after failed deliveries: the next round of the
    scheduled reconcile switches it on again, so orders come within seconds once more."""
    url = "https://hub.example/webhooks/woocommerce/corner"
    corner = settings.hub.accounts["corner"]
    settings.hub.accounts["corner"] = corner.model_copy(update={"webhook_url": url})
    hook = woo.add_hook("order.created", url)
    woo.hooks[hook].update(status="disabled", failure_count=6)
    stop = asyncio.Event()
    loop = asyncio.create_task(
        reconcile_loop(settings, sessions, stop, 0.05, transport_for=transports.get, only="corner")
    )
    try:
        await _eventually(lambda: woo.hooks[hook]["status"] == "active")
    finally:
        stop.set()
        async with asyncio.timeout(10):
            await loop


class RefusingWrites(httpx.AsyncBaseTransport):
    """The shop reads fine but every write keeps failing with 503."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(503, json={"message": "maintenance"})
        return await self.inner.handle_async_request(request)


async def test_a_fix_the_shop_keeps_refusing_raises_and_is_still_audited(
    settings, sessions, woo, transports
):
    hub = await _hub_stock(settings, sessions)
    woo.add_product("B-2", 40)
    with pytest.raises(ConnectorError):
        await reconcile(
            settings,
            "corner",
            fix=True,
            sessions=sessions,
            transport=RefusingWrites(transports["corner"]),
        )
    assert woo.stock("B-2") == 40
    async with sessions() as s:
        (entry,) = (await s.execute(select(AuditEntry))).scalars().all()
    assert entry.before["hub"] == {"B-2": hub["B-2"]} and entry.after["pushed"] == {}
    assert "503" in entry.after["error"]


class SaleDuringPush(httpx.AsyncBaseTransport):
    """The hub takes an order while the first write to the shop is on its way."""

    def __init__(self, inner: httpx.AsyncBaseTransport, sale) -> None:
        self.inner, self.sale, self.writes = inner, sale, 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            self.writes += 1
            if self.writes == 1:
                await self.sale()
        return await self.inner.handle_async_request(request)


def _sale_of_b2(settings, sessions) -> Callable[[], Awaitable[None]]:
    """The hub takes an order of 3 × B-2 when called."""
    core = CoreProcessor(sessions, rules_from_config(settings.hub.channels))

    async def sale() -> None:
        await core.process(records(place("acme:9", [("B-2", 3)])))

    return sale


async def test_a_fix_overtaken_by_a_sale_pushes_the_hubs_newer_figure(
    settings, sessions, shopify, transports
):
    hub = await _hub_stock(settings, sessions)
    shopify.add_product("B-2", 50)
    sale = _sale_of_b2(settings, sessions)
    transport = SaleDuringPush(transports["acme"], sale)
    report = await reconcile(settings, "acme", fix=True, sessions=sessions, transport=transport)
    assert transport.writes == 2  # the stale figure was corrected at once
    assert report.ok and shopify.stock("B-2") == hub["B-2"] - 3


@pytest.mark.parametrize("platform", ["shopify", "woocommerce"])
async def test_a_push_overtaken_by_a_sale_pushes_the_hubs_newer_figure(
    platform, settings, sessions, shopify, woo, transports
):
    """`hub connector push-stock` reads the hub, and a sale lands before its write does (the
    sale's own level may already be on the shop): the stale figure is followed by the new one."""
    hub = await _hub_stock(settings, sessions)
    shop = Shop(platform, shopify, woo)
    shop.add("B-2", 50)
    sale = _sale_of_b2(settings, sessions)
    transport = SaleDuringPush(transports[shop.account], sale)
    report = await push_stock(
        settings, shop.account, all_skus=False, sessions=sessions, transport=transport
    )
    assert transport.writes == 2
    assert report.pushed == {"B-2": hub["B-2"] - 3} and report.failed == {}
    assert shop.stock("B-2") == hub["B-2"] - 3


class RefusingSecondWrite(SaleDuringPush):
    """As SaleDuringPush, and the shop then refuses the second write for good."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and self.writes == 1:
            self.writes += 1
            return httpx.Response(403, json={"errors": "refused"})
        return await super().handle_async_request(request)


async def test_a_second_push_the_shop_refuses_is_reported_beside_the_first(
    settings, sessions, shopify, transports
):
    hub = await _hub_stock(settings, sessions)
    shopify.add_product("B-2", 50)
    sale = _sale_of_b2(settings, sessions)
    transport = RefusingSecondWrite(transports["acme"], sale)
    report = await push_stock(
        settings, "acme", all_skus=False, sessions=sessions, transport=transport
    )
    assert report.pushed == {"B-2": hub["B-2"]}  # what the first push set
    assert list(report.failed) == ["B-2"] and "403" in report.failed["B-2"]


class ApplyingPublisher:
    """Hands what would go to Kafka straight to the core, as a running hub would."""

    def __init__(self, settings, sessions) -> None:
        self.core = CoreProcessor(sessions, rules_from_config(settings.hub.channels))
        self.published = 0

    async def publish(self, envelopes) -> None:
        self.published += len(envelopes)
        await self.core.process(records(*envelopes))


async def test_scheduled_resync_recovers_a_lost_webhook_instead_of_raising_the_shop(
    settings, sessions, woo, transports
):
    hub = await _hub_stock(settings, sessions)
    woo.add_product("B-2", hub["B-2"])
    woo.make_order(77, [("B-2", 3, "8.00")])  # sold on the shop; its webhook never arrived
    assert woo.stock("B-2") == hub["B-2"] - 3
    publisher = ApplyingPublisher(settings, sessions)
    stop = asyncio.Event()
    loop = asyncio.create_task(
        reconcile_loop(
            settings,
            sessions,
            stop,
            0.05,
            transport_for=transports.get,
            publisher=publisher,
            only="corner",
        )
    )
    try:
        await _eventually(lambda: len([c for c in woo.faults.calls if "orders" in c[1]]) >= 3)
    finally:
        stop.set()
        async with asyncio.timeout(10):
            await loop
    assert publisher.published > 0
    async with sessions() as s:
        view = await stock_view(s, "B-2", rules_from_config(settings.hub.channels))
    assert view["reserved"] == 3  # the hub learnt the sale from the resync
    assert woo.stock("B-2") == view["channels"]["online"]["available"] == hub["B-2"] - 3
    async with sessions() as s:
        assert (await s.execute(select(AuditEntry))).scalars().all() == []  # nothing to fix


async def test_unknown_or_non_shop_accounts_are_refused(settings, sessions):
    with pytest.raises(UnknownAccount):
        await reconcile(settings, "nobody", fix=False, sessions=sessions)
