"""Shopify Admin client (API 2024-10): REST for orders and reading stock, GraphQL to set it.

Stock is pushed with GraphQL `inventorySetQuantities` and `compareQuantity` (compare-and-set):
the client remembers the quantity it last set or read per inventory item and sends it as the
expected value. A SKU listed more than once (the same goods in two products) has an item per
listing, each with a count of its own that Shopify sells from: the SKU's level is split among
its listings on sale (products `active`; a draft copy or an archived original gets 0, unless
none is on sale), the first ones taking the remainder, so that all of them together never
offer more than the hub has.
If the shop's count moved meanwhile (`COMPARE_QUANTITY_STALE`: usually a sale whose webhook has
not reached the hub yet), the client reads the shop's count and sets `min(target, shop count)`
with that count as the new expectation. So a push never raises what the shop may sell above what
the shop itself still has after a sale the hub has not seen (and never below zero, where a shop
that kept selling past its count sits): that is what keeps a flash sale from
overselling on the platform. The next push (once the webhook arrived) sets the exact value.
The SKU → inventory item map is cached; an item the shop no longer knows
(`INVALID_INVENTORY_ITEM`: a variant deleted and made again under the same SKU) makes the push
read the catalogue again and set the SKU's new item, so one re-import does not dead-letter every
later push of that SKU until a restart.
Shopify documents this mutation for systems that are the source of truth for inventory, which
the hub is. It also sets up to 250 SKUs per call, where REST `inventory_levels/set.json` needs one
call per SKU. `force=True` (reconcile `--fix`) sets absolutely (`ignoreCompareQuantity`).

Pacing: a client-side token bucket matching Shopify's REST bucket (2/s, burst 40), a pause when
`X-Shopify-Shop-Api-Call-Limit` shows the shared bucket nearly full (other apps use it too),
`Retry-After` on 429, and GraphQL `THROTTLED` answers retried after the time the cost bucket
needs to refill.
"""

from __future__ import annotations

import re
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx

from connectors.base import Account, OrderPage, StockPushResult, Unlisted, parse_json
from connectors.errors import ConnectorError, MalformedPayload
from connectors.http import HttpApi, RateLimiter, RetryPolicy, TransientError
from connectors.shopify import mapping

API_VERSION = "2024-10"
API = f"/admin/api/{API_VERSION}"
_NEXT = re.compile(r'<([^>]+)>;\s*rel="next"')
Items = dict[str, tuple[int, ...]]  # SKU → the inventory items of its variants


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
        self._items: Items = {}
        self._items_at = 0.0
        # The catalogue is read again when it is older than this: a SKU listed once more (a copy
        # of a product) is then kept at its level too, not only after a restart.
        self.catalogue_ttl = float(extra.get("catalogue_ttl_seconds", 600))
        self._known: dict[int, int] = {}  # the shop's quantity as last set or read, per item
        self._off_sale: set[int] = set()  # items of products not on sale (draft, archived)
        self._unlisted = Unlisted(float(extra.get("unlisted_ttl_seconds", 60)))
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

    async def inventory_items(self, *, refresh: bool = False) -> Items:
        """SKU → the inventory items of every variant with that SKU, from the product catalogue
        (cached). The same goods listed more than once (two products, a variant copied) are one
        SKU to the hub, and its level is split among its listings (`_shares`)."""
        if self._items and not refresh:
            return self._items
        found: dict[str, list[int]] = {}
        off_sale: set[int] = set()
        params: dict[str, Any] = {"limit": 250, "fields": "id,status,variants"}
        while True:
            response = await self.api.request("GET", f"{API}/products.json", params=params)
            for product in _field(response, "products"):
                for variant in product.get("variants") or []:
                    if variant.get("sku") and variant.get("inventory_item_id"):
                        iid = int(variant["inventory_item_id"])
                        ids = found.setdefault(str(variant["sku"]), [])
                        if iid not in ids:
                            ids.append(iid)
                        if product.get("status", "active") != "active":
                            off_sale.add(iid)
            cursor = next_page_info(response)
            if cursor is None:
                break
            params = {"limit": 250, "page_info": cursor}
        items = {sku: tuple(ids) for sku, ids in found.items()}
        self._items_at = time.monotonic()
        live = {iid for ids in items.values() for iid in ids}
        # Counts are per item: a variant made again is a new item, with no count known yet.
        self._known = {iid: n for iid, n in self._known.items() if iid in live}
        self._items = items
        self._off_sale = off_sale
        return items

    async def get_stock(self, skus: Sequence[str] | None = None) -> dict[str, int]:
        """The shop's available count per SKU; for a SKU listed more than once, what all its
        listings offer together (what the shop may sell of it, so what a reconcile must see)."""
        items = await self.inventory_items(refresh=True)
        wanted = list(skus) if skus is not None else list(items)
        counts = await self._levels(items, wanted)
        out: dict[str, int] = {}
        for sku in wanted:
            got = [counts[iid] for iid in items.get(sku, ()) if iid in counts]
            if got:
                out[sku] = sum(got)
        return out

    async def _levels(self, items: Items, skus: Iterable[str]) -> dict[int, int]:
        """The shop's available count of each inventory item of `skus` at the location."""
        ids = list(dict.fromkeys(iid for sku in skus for iid in items.get(sku, ())))
        location = await self.location_id()
        out: dict[int, int] = {}
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
                if level.get("available") is not None:
                    out[int(level["inventory_item_id"])] = int(level["available"])
        return out

    async def set_stock(self, levels: Mapping[str, int], *, force: bool = False) -> StockPushResult:
        looked = not self._items  # the catalogue is read now for the first time
        items = await self.inventory_items()
        stale = time.monotonic() - self._items_at > self.catalogue_ttl
        missing = [s for s in levels if s not in items]
        if not looked and (stale or self._unlisted.worth_a_read(missing)):
            items, looked = await self.inventory_items(refresh=True), True
        if looked:
            self._unlisted.read([s for s in missing if s not in items], items)
        items = dict(items)  # this push's view: a variant made again is moved in it
        location = await self.location_id()
        result = StockPushResult()
        targets: dict[str, int] = {}
        for sku, available in levels.items():
            if sku in items:
                targets[sku] = available
            else:
                result.failed[sku] = "no variant with this SKU on the shop"
        if not force:
            unknown = [s for s in targets if any(iid not in self._known for iid in items[s])]
            if unknown:
                read = await self._levels(items, unknown)
                # Only items with no count yet: a known one keeps its count, or a sale on it the
                # hub has not heard of would pass its compare-and-set unseen.
                self._known.update({iid: n for iid, n in read.items() if iid not in self._known})
                items.update(_stocked(items, unknown, read))
        else:  # a forced set still leaves out listings not stocked at the location
            multi = [s for s in targets if len(items[s]) > 1]
            if multi:
                items.update(_stocked(items, multi, await self._levels(items, multi)))
        chunks: list[dict[str, int]] = [{}]
        size = 0
        for sku, available in targets.items():  # at most GRAPHQL_BATCH items a call
            if chunks[-1] and size + len(items[sku]) > GRAPHQL_BATCH:
                chunks.append({})
                size = 0
            chunks[-1][sku] = available
            size += len(items[sku])
        lost: CompareAndSetLost | None = None
        for chunk in chunks:
            if not chunk:
                continue
            try:
                await self._set_chunk(chunk, items, location, force, result)
            except CompareAndSetLost as exc:  # the shop itself is fine: the other chunks go
                lost = exc
            except ConnectorError as exc:
                exc.partial = result  # what was set is not sent again
                raise
        if lost is not None:
            lost.partial = result
            raise lost
        return result

    async def _set_chunk(
        self,
        pending: dict[str, int],
        items: Items,
        location: int,
        force: bool,
        result: StockPushResult,
    ) -> None:
        for _ in range(CAS_ROUNDS):
            if not pending:
                return
            shares = {sku: _shares(pending[sku], items[sku], self._off_sale) for sku in pending}
            order = [(sku, iid) for sku in pending for iid in items[sku]]
            quantities = []
            for sku, iid in order:
                q: dict[str, Any] = {
                    "inventoryItemId": f"gid://shopify/InventoryItem/{iid}",
                    "locationId": f"gid://shopify/Location/{location}",
                    "quantity": shares[sku][iid],
                }
                if not force:
                    q["compareQuantity"] = self._known.get(iid, 0)
                quantities.append(q)
            payload = {
                "name": "available",
                "reason": "correction",
                "ignoreCompareQuantity": force,
                "quantities": quantities,
            }
            errors = await self._set_quantities(payload)
            if not errors:
                for sku, qty in pending.items():
                    result.updated[sku] = qty
                    self._known.update(shares[sku])
                return
            stale: dict[str, list[int]] = {}
            gone: dict[str, str] = {}
            for err in errors:
                culprit = _error_item(err, order)
                if culprit is None:
                    raise ConnectorError(f"inventorySetQuantities: {err}", retryable=False)
                sku, iid = culprit
                reason = f"{err.get('code')}: {err.get('message')}"
                if err.get("code") == "COMPARE_QUANTITY_STALE":
                    stale.setdefault(sku, []).append(iid)
                elif err.get("code") == "INVALID_INVENTORY_ITEM":
                    gone.setdefault(sku, reason)
                else:
                    result.failed[sku] = reason
            for sku in result.failed:
                pending.pop(sku, None)
            moved = await self._moved(gone, items, pending, result) if gone else []
            stale = {s: ids for s, ids in stale.items() if s in pending}
            clear = {s: q for s, q in pending.items() if s not in stale and s not in moved}
            if clear and (stale or moved):
                # The call is all or nothing: the SKUs nothing contested go at once, on their
                # own, so that one selling fast on the shop (a flash sale) never holds them up.
                for sku in clear:
                    del pending[sku]
                await self._set_chunk(clear, items, location, force, result)
            if stale or moved:
                current = await self._levels(items, [*stale, *moved])
                for sku in moved:  # new items: their counts say nothing of sales
                    self._known.update({iid: current[iid] for iid in items[sku] if iid in current})
                for sku in stale:
                    counts = {iid: current[iid] for iid in items[sku] if iid in current}
                    self._known.update(counts)
                    # What the listings on sale hold (all, when none is): units a draft copy
                    # holds are not the ones the level goes to.
                    selling = [n for iid, n in counts.items() if iid not in self._off_sale]
                    if counts:
                        # a sale the hub has not seen yet: never offer more than the shop has
                        # left (of its listings together)
                        left = sum(selling) if selling else sum(counts.values())
                        pending[sku] = max(0, min(pending[sku], left))
        if not pending:  # the last round's errors settled every SKU left
            return
        raise CompareAndSetLost(
            "compare-and-set kept losing to concurrent changes", status=None, retry_after=None
        )

    async def _moved(
        self,
        gone: Mapping[str, str],
        items: Items,
        pending: dict[str, int],
        result: StockPushResult,
    ) -> list[str]:
        """SKUs with an inventory item the shop no longer knows. A variant deleted and made again
        (a product re-imported, say) keeps its SKU under a new inventory item: the catalogue is
        read again, and those SKUs are tried once more on their items now, against their counts.
        The rest fail with the shop's reason."""
        fresh = await self.inventory_items(refresh=True)
        moved = [s for s in gone if fresh.get(s, items[s]) != items[s]]
        for sku in set(gone).difference(moved):
            result.failed[sku] = gone[sku]
            pending.pop(sku, None)
        for sku, ids in fresh.items():  # the push's later chunks go to the new items too
            if sku in items:
                items[sku] = ids
        return moved

    async def _set_quantities(self, payload: dict[str, Any]) -> list[dict[str, Any]]:
        response = await self.api.request(
            "POST",
            f"{API}/graphql.json",
            json={"query": SET_QUANTITIES, "variables": {"input": payload}},
            check=_graphql_check,
        )
        try:
            errors = response.json()["data"]["inventorySetQuantities"]["userErrors"]
        except (KeyError, TypeError):
            raise ConnectorError("unexpected GraphQL answer", retryable=False) from None
        return list(errors or [])


SET_QUANTITIES = """
mutation SetAvailable($input: InventorySetQuantitiesInput!) {
  inventorySetQuantities(input: $input) {
    inventoryAdjustmentGroup { reason changes { name quantityAfterChange item { id } } }
    userErrors { code field message }
  }
}
"""
GRAPHQL_BATCH = 250


class CompareAndSetLost(TransientError):
    """A SKU's count kept changing on the shop between its read and the write: the shop is
    well, so the retry comes soon and the push-out's backoff does not grow."""

    contended = True


# Top-level error codes that say nothing about the request itself (ACCESS_DENIED and
# SHOP_INACTIVE do, and are not retried).
GRAPHQL_TRANSIENT = frozenset({"INTERNAL_SERVER_ERROR"})
CAS_ROUNDS = 3


def _graphql_check(response: httpx.Response) -> None:
    """GraphQL answers 200 even when throttled or refused: turn that into the typed errors."""
    try:
        body = response.json()
    except ValueError:
        raise TransientError(
            "the shop answered with non-JSON", status=None, retry_after=None
        ) from None
    top = body.get("errors") if isinstance(body, dict) else None
    if not top:
        return
    codes = {(e.get("extensions") or {}).get("code") for e in top if isinstance(e, dict)}
    if "THROTTLED" in codes:
        raise TransientError("GraphQL throttled", status=200, retry_after=_throttle_wait(body))
    if codes & GRAPHQL_TRANSIENT:
        # Shopify's stand-in for a 500: nothing was changed, and the same call may succeed.
        raise TransientError(f"GraphQL error: {str(top)[:300]}", status=200, retry_after=None)
    raise ConnectorError(f"GraphQL error: {str(top)[:300]}", retryable=False, status=200)


def _shares(level: int, ids: Sequence[int], off_sale: Collection[int] = ()) -> dict[int, int]:
    """A SKU's level split among its listings (inventory items) on sale, the first ones taking
    the remainder, and 0 for those not on sale (all of them share when none is): together they
    offer the level, never more."""
    selling = [iid for iid in ids if iid not in off_sale] or list(ids)
    whole, rest = divmod(level, len(selling)) if selling else (0, 0)
    out = dict.fromkeys(ids, 0)
    for n, iid in enumerate(selling):
        out[iid] = whole + (1 if n < rest else 0)
    return out


def _stocked(items: Items, skus: Sequence[str], counts: Mapping[int, int]) -> Items:
    """For SKUs listed more than once: only the listings stocked at the location (those with a
    count). A listing that is not cannot be set there, and would fail the SKU's other listings
    with it; a SKU with none stocked keeps them all, and fails with the shop's reason."""
    out: Items = {}
    for sku in skus:
        ids = items[sku]
        stocked = tuple(iid for iid in ids if iid in counts)
        if len(ids) > 1 and stocked and stocked != ids:
            out[sku] = stocked
    return out


def _error_item(err: Mapping[str, Any], order: list[tuple[str, int]]) -> tuple[str, int] | None:
    """The (SKU, inventory item) of the quantity a user error names by its index."""
    field = err.get("field") or []
    if len(field) >= 3 and field[:2] == ["input", "quantities"] and str(field[2]).isdigit():
        index = int(field[2])
        if index < len(order):
            return order[index]
    return None


def _throttle_wait(body: Mapping[str, Any]) -> float:
    try:
        cost = body["extensions"]["cost"]
        status = cost["throttleStatus"]
        missing = float(cost["requestedQueryCost"]) - float(status["currentlyAvailable"])
        return max(0.05, missing / float(status["restoreRate"]))
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return 1.0


def next_page_info(response: httpx.Response) -> str | None:
    """The `page_info` of the Link header's rel="next", if any."""
    match = _NEXT.search(response.headers.get("Link", ""))
    if not match:
        return None
    values = parse_qs(urlparse(match.group(1)).query).get("page_info")
    return values[0] if values else None


def _field(response: httpx.Response, name: str) -> list[Any]:
    try:
        # Numbers with a fraction as Decimal, as for webhooks: some money fields are JSON numbers.
        body = parse_json(response.content)
    except MalformedPayload:
        raise ConnectorError("the shop answered with non-JSON", retryable=True) from None
    value = body.get(name) if isinstance(body, dict) else None
    if not isinstance(value, list):
        raise ConnectorError(f"the shop's answer has no {name!r} list", retryable=False)
    return value
