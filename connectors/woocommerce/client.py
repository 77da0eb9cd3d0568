"""WooCommerce REST v3 client: orders (with their refunds) for resync, product stock.

Basic auth with the consumer key and secret (account keys `consumer_key` / `consumer_secret`, or
`api_token = "ck_…:cs_…"`); use HTTPS. Orders page with `modified_after`, `page` and
`X-WP-TotalPages`; the cursor is `"{page}|{modified_after}"`. Stock is written with
`products/batch` (`stock_quantity`, `manage_stock`), 100 items per call; a variable product's
variations carry their own SKUs and stock and are written with its `variations/batch`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog

from connectors.base import Account, OrderPage, StockPushResult, Unlisted, parse_json
from connectors.errors import ConnectorError, MalformedPayload
from connectors.http import HttpApi, RateLimiter, RetryPolicy
from connectors.woocommerce import mapping
from schemas.envelope import Envelope
from schemas.orders import OrderCancelled

API = "/wp-json/wc/v3"
log = structlog.get_logger("connectors.woocommerce")
BATCH = 100


# A batch item naming an id the shop does not have (deleted, or made again under a new id).
INVALID_ID_CODES = frozenset(
    {"woocommerce_rest_product_invalid_id", "woocommerce_rest_product_variation_invalid_id"}
)
INVALID_ID = "invalid id"


class WooCommerceClient:
    def __init__(
        self,
        account: Account,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        policy: RetryPolicy | None = None,
        page_size: int = 50,
    ) -> None:
        cfg = account.config
        if not cfg.api_url:
            raise ConnectorError(f"account {account.name}: api_url is not set", retryable=False)
        key, secret = cfg.secret("consumer_key"), cfg.secret("consumer_secret")
        if not (key and secret):
            token = cfg.secret("api_token") or ""
            key, _, secret = token.partition(":")
        self.account = account
        self.page_size = page_size
        self._products: dict[str, tuple[int, int | None]] = {}  # SKU → (product, variation)
        self.ambiguous: dict[str, str] = {}  # SKU → why it names no one item
        self.catalogue_ttl = float(cfg.extra.get("catalogue_ttl_seconds", 600))
        self._products_at = float("-inf")  # when the catalogue was read (monotonic)
        self._reading: asyncio.Task[None] | None = None  # a read behind the pushes
        self._read_lock = asyncio.Lock()  # one read at a time: the last started lands last
        self._unlisted = Unlisted(float(cfg.extra.get("unlisted_ttl_seconds", 60)))
        client = httpx.AsyncClient(
            base_url=cfg.api_url.rstrip("/"),
            auth=httpx.BasicAuth(key or "", secret or ""),
            headers={"Accept": "application/json"},
            transport=transport,
            timeout=(policy or RetryPolicy()).timeout,
        )
        extra = cfg.extra
        limiter = RateLimiter(
            float(extra.get("rate_limit_per_second", 10.0)), int(extra.get("rate_limit_burst", 10))
        )
        self.api = HttpApi(client, limiter=limiter, policy=policy, name=account.source)

    async def aclose(self) -> None:
        if self._reading is not None and not self._reading.done():
            self._reading.cancel()
            await asyncio.wait({self._reading})  # (a cancellation of this call still goes up)
        await self.api.aclose()

    async def list_orders(self, *, since: datetime | None, cursor: str | None) -> OrderPage:
        """A page of orders in id order, which a modification does not change: in order of
        modification, an order modified during the run moved behind the pages still to read,
        every later order moved up by one, and the one that crossed a page boundary was never
        read. Pages are read by `offset` and overlap by a tenth, so that orders trashed or
        deleted meanwhile do not skip the ones that move up in their place (the ids dedupe the
        repeats); a page that starts after the last order read shows more went, and is read
        again from further back.

        WooCommerce lists no trashed order unless asked (`status=trash`), and tells of one
        moved to the trash only by `order.deleted`, whose body is its id alone: a second pass
        reads the trash (cursors `t…`), so that an open order trashed releases its stock,
        dated by WooCommerce's own modification time. It publishes those cancellations alone:
        trashing dates an order anew, and one the hub never saw (older than its first resync)
        must not be placed, paid or shipped now."""
        offset, last, after = 0, 0, since.astimezone(UTC).isoformat() if since else ""
        trash = False
        if cursor:
            head, _, after = cursor.partition("|")
            trash = head.startswith("t")
            head = head.removeprefix("t")
            try:
                if head.startswith("o"):  # "o{offset}:{last id read}"
                    at, _, seen = head[1:].partition(":")
                    offset, last = int(at), int(seen or 0)
                else:  # a page number stored before pages overlapped
                    offset = (int(head) - 1) * self.page_size
            except ValueError:
                raise ConnectorError(f"bad resync cursor {cursor!r}", retryable=False) from None
        params: dict[str, Any] = {"per_page": self.page_size, "orderby": "id", "order": "asc"}
        if trash:
            params["status"] = "trash"
        if after:
            params["modified_after"] = after
            params["dates_are_gmt"] = "true"
        while True:
            response = await self.api.request(
                "GET", f"{API}/orders", params={**params, "offset": max(offset, 0)}
            )
            orders = _list(response)
            # A page past the last order read, or an empty one where the last page promised
            # more: orders before it went (trashed, restored, deleted), so read from further
            # back.
            if not (last and offset > 0 and (not orders or _order_id(orders[0]) > last)):
                break
            offset -= max(1, self.page_size // 2)
        envelopes: list[Envelope] = []
        rejected: list[tuple[str, str]] = []
        newest: datetime | None = None
        for raw in orders:
            oid = str(raw.get("id")) if isinstance(raw, dict) else "?"
            try:
                mapped = mapping.map_order(raw, self.account)
                if trash:
                    # Only what the trash tells: an open order's cancellation. An order the
                    # hub never saw (placed before it ran, trashed years later) is not placed,
                    # paid or shipped now; one that shipped has nothing to release.
                    envelopes.extend(e for e in mapped if isinstance(e.data, OrderCancelled))
                else:
                    envelopes.extend(mapped)
                if raw.get("refunds") and not trash:
                    returns, bad = await self._returns(raw)
                    envelopes.extend(returns)
                    rejected.extend((oid, reason) for reason in bad)
                modified = mapping.modified_at(raw)
                newest = modified if newest is None or modified > newest else newest
            except MalformedPayload as exc:
                rejected.append((oid, exc.reason))
        read = max(offset, 0) + len(orders)
        total = _int_header(response, "X-WP-Total", default=-1)
        # Without a total, a full page may have more behind it.
        more = read < total if total >= 0 else len(orders) >= self.page_size
        overlap = self.page_size // 10 if len(orders) > self.page_size // 10 else 0
        # The next page starts on orders this one read, unless more went than it overlaps.
        last = max(_order_id(o) for o in orders) if orders and overlap else 0
        mark = "t" if trash else ""
        nxt = f"{mark}o{read - overlap}:{last}|{after}" if orders and more else None
        if nxt is None and not trash:
            nxt = f"to0:0|{after}"  # the trash's pass, from its start
        return OrderPage(envelopes, nxt, rejected, newest)

    async def _returns(self, order: Mapping[str, Any]) -> tuple[list[Envelope], list[str]]:
        """The order's refunds as returns, and why each refund that cannot be mapped was left
        out: one malformed refund loses none of the order's others (the order itself is
        published with them)."""
        oid = str(order["id"])
        out: list[Envelope] = []
        bad: list[str] = []
        async for refund in self._pages(f"{API}/orders/{oid}/refunds"):  # ten a page by default
            try:
                out.extend(
                    mapping.map_refund(refund, oid, str(order.get("currency")), self.account)
                )
            except MalformedPayload as exc:
                rid = refund.get("id") if isinstance(refund, dict) else None
                bad.append(f"refund {rid if rid is not None else '?'}: {exc.reason}")
        return out, bad

    async def revive_webhooks(self) -> tuple[list[str], list[str]]:
        """Switch on again the hub's webhooks WooCommerce switched off. WooCommerce never
        retries a delivery, and disables a webhook after more than five failed in a row (the
        hub down for a minute, a broker outage answered 503, a run of malformed orders): its
        orders would then come only through the scheduled resync.

        A webhook is the hub's when its delivery URL is the account's `webhook_url` (the one
        the merchant registered): those are switched on. Without that setting the hub cannot
        tell its own from a staging hub's or one switched off on purpose, so the disabled ones
        on this account's gateway path are only named. Returns (switched on, named)."""
        ours = str(self.account.config.extra.get("webhook_url") or "").rstrip("/")
        path = f"/webhooks/woocommerce/{self.account.name}"
        revived, named = [], []
        async for hook in self._pages(f"{API}/webhooks"):
            url = str(hook.get("delivery_url") or "").rstrip("/")
            if hook.get("status") != "disabled" or not hook.get("id"):
                continue
            what = f"{hook['id']} ({hook.get('topic')}) {url}"
            if ours and url == ours:
                await self.api.request(
                    "PUT", f"{API}/webhooks/{int(hook['id'])}", json={"status": "active"}
                )
                revived.append(what)
            elif urlsplit(url).path.endswith(path):
                named.append(what)
        return revived, named

    async def _pages(self, path: str) -> AsyncIterator[dict[str, Any]]:
        page = 1
        while True:
            response = await self.api.request("GET", path, params={"page": page, "per_page": 100})
            for item in _list(response):
                if isinstance(item, dict):
                    yield item
            if page >= _int_header(response, "X-WP-TotalPages", default=page):
                return
            page += 1

    async def products(self) -> dict[str, dict[str, Any]]:
        """SKU → product or variation record (with `stock_quantity`), every page.

        A variable product's stock lives on its variations, each with its own SKU, or on the
        product itself for variations that keep theirs there (`manage_stock: parent`). A
        variation without a SKU of its own is listed under its product's, so one SKU can name
        several items that each keep stock: the hub cannot tell their sales apart, and setting
        one of them would leave the others selling what the hub has counted. Such a SKU is
        left out, and a push to it fails naming the items (`ambiguous`). One read at a time:
        a push that needs a read while one runs behind the pushes stops that one and reads, so
        an older read never replaces a newer index, and a push waits for one read only."""
        reading = self._reading
        if reading is not None and not reading.done() and asyncio.current_task() is not reading:
            reading.cancel()  # this read starts later and lands later: the older is not waited for
            await asyncio.wait({reading})
        async with self._read_lock:
            return await self._read_catalogue()

    async def _read_catalogue(self) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[tuple[int, int | None], dict[str, Any]]] = {}
        async for p in self._pages(f"{API}/products"):
            if not p.get("id"):
                continue
            pid = int(p["id"])
            if p.get("type") == "variable":
                pooled = False
                async for v in self._pages(f"{API}/products/{pid}/variations"):
                    if not v.get("sku") or not v.get("id"):
                        continue
                    own = str(v["sku"]) != str(p.get("sku") or "")  # else its product's SKU
                    if not own and v.get("manage_stock") == "parent":
                        pooled = True  # no SKU, no stock of its own: the product's are
                    else:
                        found.setdefault(str(v["sku"]), {})[(pid, int(v["id"]))] = v
                if pooled and p.get("sku"):
                    found.setdefault(str(p["sku"]), {})[(pid, None)] = p
            elif p.get("sku"):
                found.setdefault(str(p["sku"]), {})[(pid, None)] = p
        out: dict[str, dict[str, Any]] = {}
        index: dict[str, tuple[int, int | None]] = {}
        self.ambiguous = {}
        for sku_, items in found.items():
            if len(items) == 1:
                [(key, record)] = items.items()
                out[sku_], index[sku_] = record, key
            else:
                named = ", ".join(
                    f"product {pid}" + (f" variation {vid}" if vid else "") for pid, vid in items
                )
                self.ambiguous[sku_] = (
                    f"SKU names {len(items)} items on the shop ({named}): each needs its own SKU"
                )
        self._products = index
        self._products_at = time.monotonic()
        return out

    def _read_behind(self) -> None:
        """Read the catalogue again while pushes go on with the index they have (a large shop
        takes minutes to list): a SKU given to another product is set there once it is read.
        A read that fails is tried again a minute later."""
        if self._reading is not None and not self._reading.done():
            return

        async def read() -> None:
            try:
                await self.products()
            except Exception as exc:  # the old index stands; try again in a minute
                self._products_at = time.monotonic() - self.catalogue_ttl + 60
                log.warning("catalogue read failed", account=self.account.name, error=repr(exc))

        self._reading = asyncio.create_task(read())

    async def get_stock(self, skus: Sequence[str] | None = None) -> dict[str, int]:
        products = await self.products()
        wanted = skus if skus is not None else list(products)
        return {
            s: int(products[s]["stock_quantity"])
            for s in wanted
            if s in products and products[s].get("stock_quantity") is not None
        }

    async def set_stock(self, levels: Mapping[str, int], *, force: bool = False) -> StockPushResult:
        """Simple products through `products/batch`, variations through their product's
        `variations/batch`; 100 items per call. WooCommerce has no compare-and-set. An item
        the shop no longer knows (a product deleted and made again under its SKU) sends the
        catalogue to be read again, and the SKU is set on the product that has it now."""
        # (A SKU that names several items is listed: it is no reason to read again.)
        missing = [s for s in levels if s not in self._products and s not in self.ambiguous]
        if not self._products or self._unlisted.worth_a_read(missing):
            await self.products()
            self._unlisted.read([s for s in missing if s not in self._products], self._products)
        elif time.monotonic() - self._products_at > self.catalogue_ttl:
            self._read_behind()
        known = dict(self._products)
        result = StockPushResult()
        reread = False  # an unknown id is a refusal only once the catalogue read again says so
        try:
            await self._set(levels, result)
            gone = _unknown_ids(result)
            if gone:
                await self.products()
                reread = True
                again = {
                    s: levels[s] for s in gone if self._products.get(s) not in (None, known[s])
                }
                for sku in again:
                    result.failed.pop(sku, None)
                if again:
                    await self._set(again, result)
        except ConnectorError as exc:
            if not reread:  # undecided: tried again with the rest
                for sku in _unknown_ids(result):
                    del result.failed[sku]
            exc.partial = result  # what was set (or refused) before it failed
            raise
        return result

    async def _set(self, levels: Mapping[str, int], result: StockPushResult) -> None:
        groups: dict[int | None, list[tuple[str, int, int]]] = {}
        for sku, qty in levels.items():
            if sku not in self._products:
                result.failed[sku] = self.ambiguous.get(sku, "no product with this SKU on the shop")
                continue
            product_id, variation_id = self._products[sku]
            if variation_id is None:
                groups.setdefault(None, []).append((sku, product_id, qty))
            else:
                groups.setdefault(product_id, []).append((sku, variation_id, qty))
        for parent, items in groups.items():
            path = (
                f"{API}/products/batch"
                if parent is None
                else (f"{API}/products/{parent}/variations/batch")
            )
            for i in range(0, len(items), BATCH):
                await self._batch(path, items[i : i + BATCH], result)

    async def _batch(
        self, path: str, chunk: list[tuple[str, int, int]], result: StockPushResult
    ) -> None:
        by_id = {item_id: (sku, qty) for sku, item_id, qty in chunk}
        body = {
            "update": [
                {"id": item_id, "stock_quantity": qty, "manage_stock": True}
                for item_id, (_, qty) in by_id.items()
            ]
        }
        try:
            response = await self.api.request("POST", path, json=body)
        except ConnectorError as exc:
            if exc.retryable:
                raise
            # 404: the variable product of these variations is gone (or made again).
            reason = f"{INVALID_ID}: {exc.message}" if exc.status == 404 else exc.message
            for sku, _ in by_id.values():
                result.failed[sku] = reason[:300]
            return
        answered = response.json().get("update", []) if response.content else []
        for item in answered:
            item_id = item.get("id") if isinstance(item, dict) else None
            if item_id not in by_id:
                continue
            sku, qty = by_id.pop(item_id)
            named = item.get("sku")
            if "error" not in item and isinstance(named, str) and named and named != sku:
                # The item carries another SKU now (renamed, its SKU given to a new product):
                # the catalogue is read again and the SKU set where it is now.
                result.failed[sku] = f"{INVALID_ID}: item {item_id} is {named!r} now"
                continue
            if "error" in item:
                error = item["error"]
                code = error.get("code", "") if isinstance(error, dict) else ""
                text = str(error.get("message", error) if isinstance(error, dict) else error)
                reason = f"{INVALID_ID}: {text}" if code in INVALID_ID_CODES else text
                result.failed[sku] = reason[:300]
            else:
                result.updated[sku] = qty
        for sku, _ in by_id.values():
            result.failed[sku] = "the shop did not confirm this item"


def _list(response: httpx.Response) -> list[Any]:
    try:
        # Numbers with a fraction as Decimal, as for webhooks: some money fields are JSON numbers.
        body = parse_json(response.content)
    except MalformedPayload:
        raise ConnectorError("the shop answered with non-JSON", retryable=True) from None
    if not isinstance(body, list):
        raise ConnectorError("the shop's answer is not a list", retryable=False)
    return body


def _unknown_ids(result: StockPushResult) -> list[str]:
    """SKUs whose item id the shop no longer knows (made again under the SKU, perhaps)."""
    return [s for s, why in result.failed.items() if why.startswith(INVALID_ID)]


def _order_id(order: Any) -> int:
    """An order's id (0 for a record without one, which the mapping then rejects)."""
    try:
        return int(order.get("id") or 0) if isinstance(order, Mapping) else 0
    except (TypeError, ValueError):
        return 0


def _int_header(response: httpx.Response, name: str, *, default: int) -> int:
    try:
        return int(response.headers.get(name, default))
    except ValueError:
        return default
