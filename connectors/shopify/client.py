"""Shopify Admin REST client (API 2024-10): orders for resync, inventory levels for stock.

Stock is pushed with `inventory_levels/set.json` (an absolute set at the account's location).
The hub is the one inventory truth and pushes what a channel may sell, newest version only, so an
absolute set is the right operation; GraphQL `inventorySetQuantities` with `compareQuantity`
would only refuse a push when a sale on the shop moved the count first, and the hub's answer to
that is the same absolute value once the sale's webhook arrives. REST also keeps one API style
for orders and stock. Pacing: a client-side token bucket matching Shopify's (2/s, burst 40), and
a pause when `X-Shopify-Shop-Api-Call-Limit` shows the shared bucket nearly full (other apps use
it too); 429 `Retry-After` is honoured by the shared retry policy.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx

from connectors.base import Account, OrderPage, StockPushResult
from connectors.errors import ConnectorError, MalformedPayload
from connectors.http import HttpApi, RateLimiter, RetryPolicy
from connectors.shopify import mapping

API_VERSION = "2024-10"
API = f"/admin/api/{API_VERSION}"
_NEXT = re.compile(r'<([^>]+)>;\s*rel="next"')


class ShopifyApi(HttpApi):
    """Adds Shopify's leaky-bucket awareness to the shared client."""

    leak_rate = 2.0
    headroom = 0.8  # pause once the shared bucket is more than 80 % full

    async def after_response(self, response: httpx.Response) -> None:
        used_limit = response.headers.get("X-Shopify-Shop-Api-Call-Limit")
        if not used_limit or self.limiter is None:
            return
        try:
            used, size = (int(x) for x in used_limit.split("/", 1))
        except ValueError:
            return
        over = used - size * self.headroom
        if over > 0:
            await self.limiter.pause(over / self.leak_rate)


class ShopifyClient:
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
        token = cfg.secret("api_token") or ""
        extra = cfg.extra
        self.account = account
        self.page_size = page_size
        self._location_id: int | None = (
            int(extra["location_id"]) if extra.get("location_id") else None
        )
        self._items: dict[str, int] = {}
        client = httpx.AsyncClient(
            base_url=cfg.api_url.rstrip("/"),
            headers={"X-Shopify-Access-Token": token, "Accept": "application/json"},
            transport=transport,
            timeout=(policy or RetryPolicy()).timeout,
        )
        limiter = RateLimiter(
            float(extra.get("rate_limit_per_second", 2.0)), int(extra.get("rate_limit_burst", 40))
        )
        self.api = ShopifyApi(client, limiter=limiter, policy=policy, name=account.source)

    async def aclose(self) -> None:
        await self.api.aclose()

    # --- orders -----------------------------------------------------------------------------------

    async def list_orders(self, *, since: datetime | None, cursor: str | None) -> OrderPage:
        params: dict[str, Any] = {"limit": self.page_size}
        if cursor:
            params["page_info"] = cursor
        else:
            params["status"] = "any"
            if since is not None:
                params["updated_at_min"] = since.astimezone(UTC).isoformat()
        response = await self.api.request("GET", f"{API}/orders.json", params=params)
        orders = _field(response, "orders")
        envelopes, rejected = [], []
        newest: datetime | None = None
        for raw in orders:
            oid = str(raw.get("id")) if isinstance(raw, dict) else "?"
            try:
                envelopes.extend(mapping.map_order(raw, self.account))
                modified = mapping.order_modified_at(raw)
                newest = modified if newest is None or modified > newest else newest
            except MalformedPayload as exc:
                rejected.append((oid, exc.reason))
        return OrderPage(envelopes, next_page_info(response), rejected, newest)

    # --- stock ------------------------------------------------------------------------------------

    async def location_id(self) -> int:
        if self._location_id is None:
            response = await self.api.request("GET", f"{API}/locations.json")
            active = [loc for loc in _field(response, "locations") if loc.get("active", True)]
            if not active:
                raise ConnectorError("the shop has no active location", retryable=False)
            self._location_id = int(active[0]["id"])
        return self._location_id

    async def inventory_items(self, *, refresh: bool = False) -> dict[str, int]:
        """SKU → inventory item id, from the product catalogue (cached)."""
        if self._items and not refresh:
            return self._items
        items: dict[str, int] = {}
        params: dict[str, Any] = {"limit": 250, "fields": "id,variants"}
        while True:
            response = await self.api.request("GET", f"{API}/products.json", params=params)
            for product in _field(response, "products"):
                for variant in product.get("variants") or []:
                    if variant.get("sku") and variant.get("inventory_item_id"):
                        items[str(variant["sku"])] = int(variant["inventory_item_id"])
            cursor = next_page_info(response)
            if cursor is None:
                break
            params = {"limit": 250, "page_info": cursor}
        self._items = items
        return items

    async def get_stock(self, skus: Sequence[str] | None = None) -> dict[str, int]:
        items = await self.inventory_items(refresh=True)
        wanted = {s: items[s] for s in (skus if skus is not None else items) if s in items}
        by_item = {iid: s for s, iid in wanted.items()}
        location = await self.location_id()
        out: dict[str, int] = {}
        ids = list(by_item)
        for i in range(0, len(ids), 50):
            response = await self.api.request(
                "GET",
                f"{API}/inventory_levels.json",
                params={
                    "inventory_item_ids": ",".join(str(x) for x in ids[i : i + 50]),
                    "location_ids": str(location),
                },
            )
            for level in _field(response, "inventory_levels"):
                sku = by_item.get(int(level["inventory_item_id"]))
                if sku is not None and level.get("available") is not None:
                    out[sku] = int(level["available"])
        return out

    async def set_stock(self, levels: Mapping[str, int]) -> StockPushResult:
        items = await self.inventory_items()
        if any(s not in items for s in levels):
            items = await self.inventory_items(refresh=True)
        location = await self.location_id()
        result = StockPushResult()
        for sku, available in levels.items():
            if sku not in items:
                result.failed[sku] = "no variant with this SKU on the shop"
                continue
            body = {
                "location_id": location,
                "inventory_item_id": items[sku],
                "available": available,
            }
            try:
                await self.api.request("POST", f"{API}/inventory_levels/set.json", json=body)
            except ConnectorError as exc:
                if exc.retryable:
                    raise
                result.failed[sku] = exc.message
                continue
            result.updated[sku] = available
        return result


def next_page_info(response: httpx.Response) -> str | None:
    """The `page_info` of the Link header's rel="next", if any."""
    match = _NEXT.search(response.headers.get("Link", ""))
    if not match:
        return None
    values = parse_qs(urlparse(match.group(1)).query).get("page_info")
    return values[0] if values else None


def _field(response: httpx.Response, name: str) -> list[Any]:
    try:
        body = response.json()
    except ValueError:
        raise ConnectorError("the shop answered with non-JSON", retryable=True) from None
    value = body.get(name) if isinstance(body, dict) else None
    if not isinstance(value, list):
        raise ConnectorError(f"the shop's answer has no {name!r} list", retryable=False)
    return value
