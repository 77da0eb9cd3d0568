"""Resync of a shop's orders against simulated platforms, the store on both databases."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from hub.shops import (
    RESYNC_OVERLAP,
    OrderCursor,
    ResyncInterrupted,
    last_order_sync,
    resync,
    sync_state,
)
from hub.store.models import ConnectorCursor
from schemas import OrderCancelled, OrderPlaced

from .conftest import RecordingPublisher

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def _placed_keys(pub: RecordingPublisher) -> list[str]:
    return [e.data.order_key for e in pub.sent if isinstance(e.data, OrderPlaced)]


async def test_resync_publishes_every_order_once_and_a_repeat_publishes_the_same_ids(
    settings, sessions, shopify, transports
):
    shopify.add_product("A-1", 500)
    for n in range(120):  # three pages of 50
        shopify.make_order(5000 + n, [("A-1", 1, "9.50")], created_at=T0 + timedelta(minutes=n))
    shopify.orders[5007]["line_items"][0]["sku"] = "bad\x07sku"  # refused: a control character

    first = RecordingPublisher()
    report = await resync(
        settings,
        "acme",
        what="orders",
        since=None,
        publisher=first,
        sessions=sessions,
        transport=transports["acme"],
    )
    assert (report.pages, report.finished) == (3, True)
    assert report.published == len(first.sent)
    assert [oid for oid, _ in report.rejected] == ["5007"]
    assert "SKU" in report.rejected[0][1]
    keys = _placed_keys(first)
    assert sorted(keys) == sorted(f"acme:{5000 + n}" for n in range(120) if n != 7)
    assert max(Counter(first.ids).values()) == 1  # nothing published twice in one run
    assert report.newest == T0 + timedelta(minutes=119)

    second = RecordingPublisher()
    again = await resync(
        settings,
        "acme",
        what="orders",
        since=None,
        publisher=second,
        sessions=sessions,
        transport=transports["acme"],
    )
    assert again.resumed_from is None and again.pages == 3
    assert second.ids == first.ids  # deterministic ids: the core's inbox drops the repeat

    state = await sync_state(sessions)
    assert state["acme"]["orders"]["last_sync_at"] is not None
    assert state["acme"]["orders"]["interrupted"] is False


async def test_an_interrupted_resync_resumes_from_the_stored_cursor(
    settings, sessions, woo, transports
):
    woo.add_product("B-2", 500)
    for n in range(110):  # pages of 50: 50, 50, 10
        woo.make_order(700 + n, [("B-2", 1, "4.00")], created_at=T0 + timedelta(minutes=n))

    broken = RecordingPublisher(fail_on=2)  # page 1 goes out, page 2 is never acknowledged
    with pytest.raises(ResyncInterrupted) as caught:
        await resync(
            settings,
            "corner",
            what="orders",
            since=T0 - timedelta(days=1),
            publisher=broken,
            sessions=sessions,
            transport=transports["corner"],
        )
    assert caught.value.report.pages == 1
    async with sessions() as s:
        row = await s.get(ConnectorCursor, ("corner", "orders"))
        assert row is not None and "did not acknowledge" in (row.last_error or "")
        stored = OrderCursor.load(row.cursor)
    assert stored.page is not None and stored.since == T0 - timedelta(days=1)
    assert (await sync_state(sessions))["corner"]["orders"]["interrupted"] is True

    rest = RecordingPublisher()
    report = await resync(
        settings,
        "corner",
        what="orders",
        since=None,
        publisher=rest,
        sessions=sessions,
        transport=transports["corner"],
    )
    assert report.resumed_from == stored.page
    assert (report.pages, report.finished) == (3, True)  # the trash's page too
    first_orders = {e.data.order_key for e in broken.sent if isinstance(e.data, OrderPlaced)}
    rest_orders = set(_placed_keys(rest))
    # Page 1 was not fetched again: the resumed run starts 5 orders before its end (pages
    # overlap by a tenth).
    assert len(first_orders) == 50 and len(rest_orders) == 65
    assert first_orders & rest_orders == {f"corner:{745 + n}" for n in range(5)}
    assert first_orders | rest_orders == {f"corner:{700 + n}" for n in range(110)}
    async with sessions() as s:
        row = (
            await s.execute(select(ConnectorCursor).where(ConnectorCursor.account == "corner"))
        ).scalar_one()
        assert row.last_error is None and OrderCursor.load(row.cursor).page is None


async def test_stock_and_products_resyncs_report_without_changing_the_shop(
    settings, sessions, shopify, transports
):
    from hub.core.batch import CoreProcessor, rules_from_config
    from tests.builders import counted, records

    await CoreProcessor(sessions, rules_from_config(settings.hub.channels)).process(
        records(counted("A-1", 10), counted("C-3", 4))
    )
    shopify.add_product("A-1", 3)
    shopify.add_product("NEW-9", 1)
    kw = dict(
        since=None, publisher=RecordingPublisher(), sessions=sessions, transport=transports["acme"]
    )

    stock = await resync(settings, "acme", what="stock", **kw)
    assert [(d.sku, d.platform, d.hub) for d in stock.drift] == [("A-1", 3, 8)]
    assert shopify.stock("A-1") == 3
    products = await resync(settings, "acme", what="products", **kw)
    assert products.unknown_skus == ["NEW-9"] and products.platform_skus == 2
    assert kw["publisher"].sent == []


async def _resync_over_stored(settings, sessions, woo, transports, cursor: str) -> None:
    """Three orders, `cursor` stored for the account: the resync reads them all from the
    start, resuming nothing."""
    woo.add_product("B-2", 50)
    for n in range(3):
        woo.make_order(800 + n, [("B-2", 1, "4.00")], created_at=T0 + timedelta(minutes=n))
    async with sessions() as s, s.begin():
        s.add(ConnectorCursor(account="corner", what="orders", cursor=cursor))
    pub = RecordingPublisher()
    report = await resync(
        settings,
        "corner",
        what="orders",
        since=None,
        publisher=pub,
        sessions=sessions,
        transport=transports["corner"],
    )
    assert report.finished and report.resumed_from is None
    assert sorted(_placed_keys(pub)) == ["corner:800", "corner:801", "corner:802"]


async def test_a_stored_cursor_the_platform_refuses_starts_the_resync_over(
    settings, sessions, woo, transports
):
    refused = OrderCursor(page="expired", started=T0).dump()
    await _resync_over_stored(settings, sessions, woo, transports, refused)


async def test_a_page_stored_before_runs_kept_their_start_is_not_resumed(
    settings, sessions, woo, transports
):
    """Its page number counted orders by modification time; they are paged by id now."""
    old = '{"since": null, "page": "2|", "newest": null}'
    await _resync_over_stored(settings, sessions, woo, transports, old)


class ModifiedWhileRead(httpx.AsyncBaseTransport):
    """After the first page of orders (or page `after`) is read, the shop changes its orders
    (`modify`)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, modify, after: int = 1) -> None:
        self.inner, self.modify, self.reads, self.after = inner, modify, 0, after

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.method == "GET" and request.url.path.endswith("/orders"):
            self.reads += 1
            if self.reads == self.after:
                self.modify()
        return response


async def _read_all(settings, sessions, woo, transport, start):
    """110 WooCommerce orders from `start`, a minute apart, resynced in pages of 50 through
    `transport`: every order is published."""
    woo.add_product("B-2", 500)
    for n in range(110):
        woo.make_order(700 + n, [("B-2", 1, "4.00")], created_at=start + timedelta(minutes=n))
    pub = RecordingPublisher()
    report = await resync(
        settings,
        "corner",
        what="orders",
        since=start - timedelta(minutes=1),
        publisher=pub,
        sessions=sessions,
        transport=transport,
    )
    assert report.finished
    assert set(_placed_keys(pub)) == {f"corner:{700 + n}" for n in range(110)}
    return report


async def test_orders_modified_while_a_resync_reads_are_neither_skipped_nor_lost(
    settings, sessions, woo, transports
):
    """While the resync reads, order 700 (on page 1, read already) is cancelled and order 760
    (page 2) later modified. No order is skipped because another one moved, and the next
    incremental resync starts early enough to see the cancellation."""

    def modify() -> None:
        now = datetime.now(UTC)
        woo.update_order(700, status="cancelled", at=now)
        woo.update_order(760, status="completed", at=now + timedelta(minutes=5))

    start = datetime.now(UTC) - timedelta(hours=2)
    await _read_all(settings, sessions, woo, ModifiedWhileRead(transports["corner"], modify), start)
    last = await last_order_sync(sessions, "corner")
    assert last is not None
    second = RecordingPublisher()
    await resync(
        settings,
        "corner",
        what="orders",
        since=last - RESYNC_OVERLAP,
        publisher=second,
        sessions=sessions,
        transport=transports["corner"],
    )
    cancelled = [e.data.order_key for e in second.sent if isinstance(e.data, OrderCancelled)]
    assert cancelled == ["corner:700"]


async def test_an_open_order_moved_to_the_trash_is_cancelled_by_the_next_resync(
    settings, sessions, woo, transports
):
    """WooCommerce tells of the trash only by `order.deleted` (the id alone), and lists no
    trashed order unless asked: the incremental resync after it reads the trash, and cancels
    the order at WooCommerce's time of it. A shipped order in the trash stays shipped."""
    start = datetime.now(UTC) - timedelta(hours=2)
    await _read_all(settings, sessions, woo, transports["corner"], start)
    last = await last_order_sync(sessions, "corner")
    assert last is not None
    trashed_at = datetime.now(UTC).replace(microsecond=0)
    woo.trash_order(705, at=trashed_at)
    woo.update_order(706, status="completed", at=trashed_at - timedelta(minutes=1))
    woo.trash_order(706, at=trashed_at)
    pub = RecordingPublisher()
    report = await resync(
        settings,
        "corner",
        what="orders",
        since=last - RESYNC_OVERLAP,
        publisher=pub,
        sessions=sessions,
        transport=transports["corner"],
    )
    assert report.finished
    cancelled = [e.data for e in pub.sent if isinstance(e.data, OrderCancelled)]
    assert [(c.order_key, c.reason, c.cancelled_at) for c in cancelled] == [
        ("corner:705", "trash", trashed_at)
    ]


@pytest.mark.parametrize("trashed", [3, 12, 30])
async def test_orders_deleted_while_a_resync_reads_skip_none_of_the_others(
    trashed, settings, sessions, woo, transports
):
    """After page 1 is read, orders on it are trashed, and every later order moves up as many
    places: none of them is skipped, whether the pages' overlap (5) covers it or not."""

    def trash() -> None:
        for oid in range(701, 701 + trashed):
            del woo.orders[oid]

    await _read_all(settings, sessions, woo, ModifiedWhileRead(transports["corner"], trash), T0)


async def test_orders_deleted_past_the_next_page_s_start_are_read_again_from_further_back(
    settings, sessions, woo, transports
):
    """Pages of 50 with an overlap of 5: the next page starts at offset 90. Before it is read,
    25 orders on the pages read go, so 85 are left and offset 90 is past the end. The empty
    page shows orders went: the resync reads from further back, and none of 795–809 is
    skipped."""

    def delete() -> None:
        for oid in range(701, 726):
            del woo.orders[oid]

    await _read_all(settings, sessions, woo, ModifiedWhileRead(transports["corner"], delete, 2), T0)


class NoTotals(httpx.AsyncBaseTransport):
    """A shop (a proxy, a plugin) that drops WooCommerce's total headers."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        for name in ("X-WP-Total", "X-WP-TotalPages"):
            response.headers.pop(name, None)
        return response


async def test_without_totals_a_resync_reads_until_a_page_is_not_full(
    settings, sessions, woo, transports
):
    report = await _read_all(settings, sessions, woo, NoTotals(transports["corner"]), T0)
    assert report.pages == 4  # 50, 50, 10, and the trash's, empty


def test_a_cursor_stored_before_the_synced_time_was_kept_resumes_from_its_newest_time():
    old = '{"since": null, "page": null, "newest": "2026-11-01T09:00:00+00:00"}'
    assert OrderCursor.load(old).synced == T0
    new = OrderCursor(newest=T0, started=T0 - timedelta(hours=1), synced=T0)
    assert OrderCursor.load(new.dump()) == new
    # A run that saw a modification after it started only vouches for what came before it.
    assert new.finished(None) == T0 - timedelta(hours=1)
    assert OrderCursor(synced=T0).finished(None) == T0  # a run that saw nothing
    # A run from later than the watermark (`--since` an hour ago after a day down) read nothing
    # before its start: the watermark stays.
    later = OrderCursor(newest=T0 + timedelta(days=1), started=T0 + timedelta(days=1), synced=T0)
    assert later.finished(T0 + timedelta(hours=23)) == T0
    assert later.finished(T0 - timedelta(minutes=1)) == T0 + timedelta(days=1)
