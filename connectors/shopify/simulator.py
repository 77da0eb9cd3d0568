"""A Shopify Admin REST (2024-10) simulator: the API subset the hub uses, as a Starlette app.

Implements `X-Shopify-Access-Token` auth (401), orders and products with Link-header cursor
pagination (`page_info`), locations, inventory levels (read and set), the leaky bucket (40 calls,
2 per second → 429 with `Retry-After`, `X-Shopify-Shop-Api-Call-Limit` on every answer), injected
5xx / 429 / latency (`faults`, or `POST /_sim/faults`), stock changed behind the hub's back
(`set_available`, or `POST /_sim/stock`), GraphQL `inventorySetQuantities` with
`compareQuantity` and its calculated-cost throttle, and signed webhook deliveries for orders (`webhook`).
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors.base import timestamp
from connectors.http import Faults, SoldOut, post_webhook
from connectors.shopify.webhooks import signed_headers

API = "/admin/api/2024-10"


GRAPHQL_ERROR_MESSAGES = {
    "INTERNAL_SERVER_ERROR": "Internal error. Looks like something went wrong on our end.\n"
    "Request ID: 3221c58f-3446-4843-a452-a517787121c6 (include this in support requests).",
    "ACCESS_DENIED": "Access denied for inventorySetQuantities field.",
}


class ShopifySimulator:
    def __init__(
        self,
        *,
        access_token: str = "shpat_simulated",
        webhook_secret: str = "shopify-webhook-secret",
        shop_domain: str = "acme.myshopify.com",
        location_id: int = 905684977,
        currency: str = "USD",
        bucket_size: int = 40,
        leak_rate: float = 2.0,
    ) -> None:
        self.access_token = access_token
        self.webhook_secret = webhook_secret
        self.shop_domain = shop_domain
        self.location_id = location_id
        self.currency = currency
        self.bucket_size = bucket_size
        self.leak_rate = leak_rate
        self.faults = Faults()
        self.products: dict[str, dict[str, int]] = {}  # sku → product/variant/inventory item ids
        self.more_listings: dict[str, list[dict[str, int]]] = {}  # the same SKU listed again
        self.product_status: dict[int, str] = {}  # product id → status, when not `active`
        self.available: dict[int, int] = {}  # inventory item id → available at the location
        self.orders: dict[int, dict[str, Any]] = {}
        self.set_calls = 0
        self.catalogue_reads = 0  # pages of products.json served
        self.deny_oversell = False  # True: refuse orders the shop's own stock cannot cover
        self._ids = itertools.count(1000)
        self._bucket = 0.0
        # GraphQL's calculated-cost bucket: 1000 points, 50 restored per second.
        self.graphql_points = 1000.0
        self.graphql_restore = 50.0
        self.graphql_cost = 10
        # Top-level GraphQL error codes the next mutations answer with (200, nothing changed),
        # as Shopify does: INTERNAL_SERVER_ERROR (transient), ACCESS_DENIED, SHOP_INACTIVE.
        self.graphql_errors: list[str] = []
        self._points = self.graphql_points
        self._points_at = time.monotonic()
        self._bucket_at = time.monotonic()
        self.app = Starlette(
            routes=[
                Route(f"{API}/orders.json", self._orders),
                Route(f"{API}/products.json", self._products),
                Route(f"{API}/locations.json", self._locations),
                Route(f"{API}/inventory_levels.json", self._levels),
                Route(f"{API}/inventory_levels/set.json", self._set_level, methods=["POST"]),
                Route(f"{API}/graphql.json", self._graphql, methods=["POST"]),
                Route("/_sim/faults", self._sim_faults, methods=["POST"]),
                Route("/_sim/stock", self._sim_stock, methods=["POST"]),
            ]
        )

    # --- state helpers (tests and the demo) -----------------------------------------------------

    def add_product(self, sku: str, available: int = 0) -> None:
        pid, vid, iid = next(self._ids), next(self._ids), next(self._ids)
        self.products[sku] = {"product_id": pid, "variant_id": vid, "inventory_item_id": iid}
        self.available[iid] = available

    def recreate_product(self, sku: str, available: int = 0) -> None:
        """Delete the SKU's product and make it again (a re-import in the Shopify admin): the
        SKU stays, its product, variant and inventory item get new ids."""
        del self.available[self.products.pop(sku)["inventory_item_id"]]
        self.add_product(sku, available)

    def list_again(self, sku: str, available: int = 0, *, status: str = "active") -> int:
        """List the SKU's goods once more, as another product (a copy for another collection):
        its own variant and inventory item, the same SKU; `status` as Shopify's (`draft`: a
        product duplicated in the admin, not on sale yet; `archived`). Returns the new
        inventory item id."""
        pid, vid, iid = next(self._ids), next(self._ids), next(self._ids)
        self.more_listings.setdefault(sku, []).append(
            {"product_id": pid, "variant_id": vid, "inventory_item_id": iid}
        )
        self.product_status[pid] = status
        self.available[iid] = available
        return iid

    def stock(self, sku: str) -> int:
        return self.available[self.products[sku]["inventory_item_id"]]

    def stocks(self, sku: str) -> list[int]:
        """The available count of every listing of the SKU, the first one first."""
        listings = [self.products[sku], *self.more_listings.get(sku, [])]
        return [self.available[ids["inventory_item_id"]] for ids in listings]

    def set_available(self, sku: str, available: int) -> None:
        """Change stock behind the hub's back (a manual edit in the Shopify admin)."""
        self.available[self.products[sku]["inventory_item_id"]] = available

    def make_order(
        self,
        order_id: int,
        lines: list[tuple[str, int, str]],
        *,
        created_at: datetime | None = None,
        financial_status: str = "paid",
        currency: str | None = None,
        tax_rate: str = "0.08",
        decrement: bool = True,
    ) -> dict[str, Any]:
        """An order in Shopify's JSON shape, stored so the orders endpoint lists it.

        Like Shopify, the shop's own stock drops by what was sold (`decrement`); with
        `deny_oversell` an order its stock cannot cover raises SoldOut and is not stored.
        """
        if decrement:
            self._take([(sku, qty) for sku, qty, _ in lines])
        created = (created_at or datetime.now(UTC)).isoformat()
        cur = currency or self.currency
        rate = Decimal(tax_rate)
        items = []
        subtotal = tax_total = Decimal(0)
        for n, (sku, qty, price) in enumerate(lines):
            ids = self.products.get(sku, {})
            line_total = Decimal(price) * qty
            tax = (line_total * rate).quantize(Decimal("0.01"))
            subtotal += line_total
            tax_total += tax
            items.append(
                {
                    "id": order_id * 100 + n,
                    "product_id": ids.get("product_id"),
                    "variant_id": ids.get("variant_id"),
                    "title": sku,
                    "sku": sku,
                    "quantity": qty,
                    "price": price,
                    "total_discount": "0.00",
                    "discount_allocations": [],
                    "tax_lines": [{"title": "Tax", "price": str(tax), "rate": float(rate)}],
                    "gift_card": False,
                    "requires_shipping": True,
                }
            )
        order = {
            "id": order_id,
            "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
            "name": f"#{order_id}",
            "created_at": created,
            "updated_at": created,
            "processed_at": created,
            "cancelled_at": None,
            "cancel_reason": None,
            "currency": cur,
            "presentment_currency": cur,
            "financial_status": financial_status,
            "fulfillment_status": None,
            "taxes_included": False,
            "subtotal_price": str(subtotal),
            "total_discounts": "0.00",
            "total_tax": str(tax_total),
            "total_price": str(subtotal + tax_total),
            "total_shipping_price_set": {
                "shop_money": {"amount": "0.00", "currency_code": cur},
                "presentment_money": {"amount": "0.00", "currency_code": cur},
            },
            "payment_gateway_names": ["shopify_payments"],
            "line_items": items,
            "shipping_lines": [],
            "fulfillments": [],
            "refunds": [],
        }
        self.orders[order_id] = order
        return copy.deepcopy(order)

    def _take(self, lines: list[tuple[str, int]]) -> None:
        known = [(s, q) for s, q in lines if s in self.products]
        if self.deny_oversell:
            for sku, qty in known:
                if self.stock(sku) < qty:
                    raise SoldOut(sku)
        for sku, qty in known:
            self.set_available(sku, self.stock(sku) - qty)

    def _put_back(self, lines: list[tuple[str, int]]) -> None:
        for sku, qty in lines:
            if sku in self.products:
                self.set_available(sku, self.stock(sku) + qty)

    def cancel_order(
        self, order_id: int, *, at: datetime | None = None, restock: bool = True
    ) -> dict[str, Any]:
        order = self.orders[order_id]
        when = (at or datetime.now(UTC)).isoformat()
        order.update(cancelled_at=when, cancel_reason="customer", updated_at=when)
        order["financial_status"] = "voided"
        if restock:
            self._put_back([(li["sku"], li["quantity"]) for li in order["line_items"]])
        return copy.deepcopy(order)

    def fulfill_order(
        self, order_id: int, *, at: datetime | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Ship every line: (the order, the fulfillment) for orders/fulfilled and
        fulfillments/create deliveries."""
        order = self.orders[order_id]
        when = (at or datetime.now(UTC)).isoformat()
        fulfillment = {
            "id": next(self._ids),
            "order_id": order_id,
            "status": "success",
            "created_at": when,
            "updated_at": when,
            "location_id": self.location_id,
            "tracking_company": "UPS",
            "line_items": copy.deepcopy(order["line_items"]),
        }
        order["fulfillments"].append(fulfillment)
        order.update(fulfillment_status="fulfilled", updated_at=when)
        return copy.deepcopy(order), copy.deepcopy(fulfillment)

    def refund_order(
        self,
        order_id: int,
        lines: list[tuple[str, int]],
        *,
        restock: bool = True,
        at: datetime | None = None,
    ) -> dict[str, Any]:
        """Refund lines (by SKU), optionally restocking them: the refunds/create payload."""
        order = self.orders[order_id]
        when = (at or datetime.now(UTC)).isoformat()
        by_sku = {li["sku"]: li for li in order["line_items"]}
        refund_lines, amount = [], Decimal(0)
        for sku, qty in lines:
            item = by_sku[sku]
            subtotal = Decimal(item["price"]) * qty
            tax = sum((Decimal(t["price"]) for t in item["tax_lines"]), Decimal(0))
            tax = (tax * qty / item["quantity"]).quantize(Decimal("0.01"))
            amount += subtotal + tax
            refund_lines.append(
                {
                    "id": next(self._ids),
                    "line_item_id": item["id"],
                    "quantity": qty,
                    "location_id": self.location_id if restock else None,
                    "restock_type": "return" if restock else "no_restock",
                    # JSON numbers, as Shopify sends these two (its `*_set` amounts are strings)
                    "subtotal": float(subtotal),
                    "total_tax": float(tax),
                    "subtotal_set": {
                        "shop_money": {"amount": str(subtotal), "currency_code": order["currency"]}
                    },
                    "line_item": copy.deepcopy(item),
                }
            )
        refund = {
            "id": next(self._ids),
            "order_id": order_id,
            "created_at": when,
            "processed_at": when,
            "restock": restock,
            "refund_line_items": refund_lines,
            "transactions": [
                {
                    "id": next(self._ids),
                    "order_id": order_id,
                    "kind": "refund",
                    "gateway": "shopify_payments",
                    "status": "success",
                    "amount": str(amount),
                    "currency": order["currency"],
                    "created_at": when,
                }
            ],
        }
        order["refunds"].append(refund)
        order.update(financial_status="partially_refunded", updated_at=when)
        if restock:
            self._put_back(lines)
        return copy.deepcopy(refund)

    def webhook(
        self,
        topic: str,
        payload: dict[str, Any],
        *,
        event_id: str | None = None,
        secret: str | None = None,
        triggered_at: datetime | None = None,
    ) -> tuple[dict[str, str], bytes]:
        """A signed delivery (headers, body) as Shopify would post it."""
        body = json.dumps(payload).encode()
        headers = signed_headers(
            body,
            secret if secret is not None else self.webhook_secret,
            topic=topic,
            shop_domain=self.shop_domain,
            event_id=event_id or f"evt-{topic}-{payload.get('id')}",
            webhook_id=f"wh-{next(self._ids)}",
            triggered_at=triggered_at or datetime.now(UTC),
        )
        return headers, body

    async def send_webhook(
        self,
        url: str,
        topic: str,
        payload: dict[str, Any],
        *,
        client: httpx.AsyncClient | None = None,
        event_id: str | None = None,
    ) -> httpx.Response:
        """Sign and post a delivery to the hub, e.g. `http://127.0.0.1:8080/webhooks/shopify/acme`."""
        headers, body = self.webhook(topic, payload, event_id=event_id)
        return await post_webhook(url, headers, body, client=client)

    # --- HTTP -------------------------------------------------------------------------------------

    async def _guard(self, request: Request, *, rest_bucket: bool = True) -> Response | None:
        injected = await self.faults.apply(request.method, request.url.path)
        if injected is not None:
            status, headers = injected
            return JSONResponse({"errors": "injected failure"}, status, headers=headers)
        if request.headers.get("X-Shopify-Access-Token") != self.access_token:
            return JSONResponse(
                {
                    "errors": "[API] Invalid API key or access token (unrecognized login or "
                    "wrong password)"
                },
                401,
            )
        if not rest_bucket:
            return None
        now = time.monotonic()
        self._bucket = max(0.0, self._bucket - (now - self._bucket_at) * self.leak_rate)
        self._bucket_at = now
        if self._bucket + 1 > self.bucket_size:
            return JSONResponse(
                {
                    "errors": "Exceeded 2 calls per second for api client. Reduce request rates to "
                    "resume uninterrupted service."
                },
                429,
                headers={"Retry-After": "1.0", **self._limit_header()},
            )
        self._bucket += 1
        return None

    def _limit_header(self) -> dict[str, str]:
        return {"X-Shopify-Shop-Api-Call-Limit": f"{int(self._bucket)}/{self.bucket_size}"}

    def _json(
        self, body: Any, status: int = 200, headers: dict[str, str] | None = None
    ) -> Response:
        return JSONResponse(body, status, headers={**self._limit_header(), **(headers or {})})

    def _page(
        self, request: Request, resource: str, items: list[Any], params: dict[str, str]
    ) -> tuple[list[Any], dict[str, str]]:
        """Cursor pagination: `page_info` encodes the offset and the original filters."""
        limit = min(int(request.query_params.get("limit", "50")), 250)
        offset = int(params.get("offset", "0"))
        page = items[offset : offset + limit]
        links = []
        base = f"{request.url.scheme}://{request.url.netloc}{API}/{resource}.json"
        if offset + limit < len(items):
            nxt = _cursor({**params, "offset": str(offset + limit)})
            links.append(f'<{base}?{urlencode({"limit": limit, "page_info": nxt})}>; rel="next"')
        if offset > 0:
            prv = _cursor({**params, "offset": str(max(0, offset - limit))})
            links.append(
                f'<{base}?{urlencode({"limit": limit, "page_info": prv})}>; rel="previous"'
            )
        return page, ({"Link": ", ".join(links)} if links else {})

    def _filters(self, request: Request, names: tuple[str, ...]) -> dict[str, str] | Response:
        q = request.query_params
        if "page_info" in q:
            extra = set(q) - {"page_info", "limit", "fields"}
            if extra:
                return self._json({"errors": {"page_info": [f"{sorted(extra)} not allowed"]}}, 400)
            try:
                return _uncursor(q["page_info"])
            except ValueError:
                return self._json({"errors": {"page_info": ["Invalid value."]}}, 400)
        return {k: q[k] for k in names if k in q}

    async def _orders(self, request: Request) -> Response:
        if (denied := await self._guard(request)) is not None:
            return denied
        params = self._filters(request, ("updated_at_min", "status"))
        if isinstance(params, Response):
            return params
        orders = sorted(self.orders.values(), key=lambda o: (o["updated_at"], o["id"]))
        if params.get("updated_at_min"):
            since = timestamp(params["updated_at_min"], "updated_at_min", naive_is_utc=True)
            orders = [o for o in orders if timestamp(o["updated_at"], "updated_at") >= since]
        page, headers = self._page(request, "orders", orders, params)
        return self._json({"orders": page}, headers=headers)

    async def _products(self, request: Request) -> Response:
        if (denied := await self._guard(request)) is not None:
            return denied
        self.catalogue_reads += 1
        params = self._filters(request, ())
        if isinstance(params, Response):
            return params
        products = [
            {
                "id": ids["product_id"],
                "title": sku,
                "status": self.product_status.get(ids["product_id"], "active"),
                "variants": [
                    {
                        "id": ids["variant_id"],
                        "product_id": ids["product_id"],
                        "sku": sku,
                        "inventory_item_id": ids["inventory_item_id"],
                        "inventory_management": "shopify",
                        "inventory_quantity": self.available.get(ids["inventory_item_id"], 0),
                    }
                ],
            }
            for sku, ids in [
                *self.products.items(),
                *((sku, more) for sku, extra in self.more_listings.items() for more in extra),
            ]
        ]
        page, headers = self._page(request, "products", products, params)
        return self._json({"products": page}, headers=headers)

    async def _locations(self, request: Request) -> Response:
        if (denied := await self._guard(request)) is not None:
            return denied
        return self._json(
            {"locations": [{"id": self.location_id, "name": "Main warehouse", "active": True}]}
        )

    async def _levels(self, request: Request) -> Response:
        if (denied := await self._guard(request)) is not None:
            return denied
        raw = request.query_params.get("inventory_item_ids", "")
        try:
            wanted = [int(x) for x in raw.split(",") if x]
        except ValueError:
            return self._json({"errors": {"inventory_item_ids": ["invalid"]}}, 400)
        if not wanted or len(wanted) > 50:
            return self._json({"errors": {"inventory_item_ids": ["1 to 50 ids required"]}}, 422)
        levels = [
            {
                "inventory_item_id": iid,
                "location_id": self.location_id,
                "available": self.available[iid],
                "updated_at": datetime.now(UTC).isoformat(),
            }
            for iid in wanted
            if iid in self.available
        ]
        return self._json({"inventory_levels": levels})

    async def _set_level(self, request: Request) -> Response:
        if (denied := await self._guard(request)) is not None:
            return denied
        try:
            body = await request.json()
            iid = int(body["inventory_item_id"])
            location = int(body["location_id"])
            available = body["available"]
        except (ValueError, KeyError, TypeError):
            return self._json({"errors": {"inventory_level": ["is invalid"]}}, 400)
        if location != self.location_id:
            return self._json({"errors": ["Location not found"]}, 422)
        if iid not in self.available:
            return self._json({"errors": ["Inventory item does not exist"]}, 422)
        if not isinstance(available, int) or isinstance(available, bool):
            return self._json({"errors": {"available": ["must be an integer"]}}, 422)
        self.available[iid] = available
        self.set_calls += 1
        return self._json(
            {
                "inventory_level": {
                    "inventory_item_id": iid,
                    "location_id": location,
                    "available": available,
                    "updated_at": datetime.now(UTC).isoformat(),
                }
            }
        )

    async def _graphql(self, request: Request) -> Response:
        """`inventorySetQuantities` (2024-10: `compareQuantity` / `ignoreCompareQuantity`).

        All or nothing: any user error leaves every quantity unchanged.
        """
        if (denied := await self._guard(request, rest_bucket=False)) is not None:
            return denied
        now = time.monotonic()
        self._points = min(
            self.graphql_points, self._points + (now - self._points_at) * self.graphql_restore
        )
        self._points_at = now
        throttle = {
            "maximumAvailable": self.graphql_points,
            "currentlyAvailable": int(self._points),
            "restoreRate": self.graphql_restore,
        }
        cost = {"requestedQueryCost": self.graphql_cost, "throttleStatus": throttle}
        if self._points < self.graphql_cost:
            return JSONResponse(
                {
                    "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
                    "extensions": {"cost": cost},
                }
            )
        self._points -= self.graphql_cost
        if self.graphql_errors:
            code = self.graphql_errors.pop(0)
            message = GRAPHQL_ERROR_MESSAGES.get(code, code.replace("_", " ").capitalize())
            return JSONResponse(
                {
                    "errors": [{"message": message, "extensions": {"code": code}}],
                    "extensions": {"cost": cost},
                }
            )
        try:
            body = await request.json()
            query = str(body["query"])
            data = body.get("variables", {})["input"]
            quantities = list(data["quantities"])
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"errors": [{"message": "Parse error or missing input"}]})
        if "inventorySetQuantities" not in query:
            return JSONResponse({"errors": [{"message": "Not supported by the simulator"}]})
        if data.get("name") != "available":
            return self._user_errors([("INVALID_NAME", ["input", "name"], "Invalid name")], cost)
        ignore = bool(data.get("ignoreCompareQuantity", False))
        errors: list[tuple[str, list[str], str]] = []
        changes = []
        for i, q in enumerate(quantities):
            field = ["input", "quantities", str(i)]
            iid = _gid_id(q.get("inventoryItemId"), "InventoryItem")
            loc = _gid_id(q.get("locationId"), "Location")
            quantity = q.get("quantity")
            if iid not in self.available:
                errors.append(
                    (
                        "INVALID_INVENTORY_ITEM",
                        [*field, "inventoryItemId"],
                        "The specified inventory item could not be found.",
                    )
                )
            elif loc != self.location_id:
                errors.append(
                    (
                        "INVALID_LOCATION",
                        [*field, "locationId"],
                        "The specified location could not be found.",
                    )
                )
            elif not isinstance(quantity, int) or quantity < 0:
                errors.append(
                    (
                        "INVALID_QUANTITY_NEGATIVE",
                        [*field, "quantity"],
                        "The quantity can't be negative.",
                    )
                )
            elif not ignore and "compareQuantity" not in q:
                errors.append(
                    (
                        "COMPARE_QUANTITY_REQUIRED",
                        [*field, "compareQuantity"],
                        "The compareQuantity argument must be given to each quantity or "
                        "ignored using ignoreCompareQuantity.",
                    )
                )
            elif not ignore and q["compareQuantity"] != self.available[iid]:
                errors.append(
                    (
                        "COMPARE_QUANTITY_STALE",
                        [*field, "compareQuantity"],
                        "The compareQuantity value does not match persisted value.",
                    )
                )
            else:
                changes.append((iid, quantity))
        if errors:
            return self._user_errors(errors, cost)
        for iid, quantity in changes:
            self.available[iid] = quantity
        self.set_calls += 1
        group = {
            "reason": str(data.get("reason", "correction")),
            "changes": [
                {
                    "name": "available",
                    "quantityAfterChange": qty,
                    "item": {"id": f"gid://shopify/InventoryItem/{iid}"},
                }
                for iid, qty in changes
            ],
        }
        return JSONResponse(
            {
                "data": {
                    "inventorySetQuantities": {
                        "inventoryAdjustmentGroup": group,
                        "userErrors": [],
                    }
                },
                "extensions": {"cost": cost},
            }
        )

    def _user_errors(self, errors: list[tuple[str, list[str], str]], cost: Any) -> Response:
        return JSONResponse(
            {
                "data": {
                    "inventorySetQuantities": {
                        "inventoryAdjustmentGroup": None,
                        "userErrors": [{"code": c, "field": f, "message": m} for c, f, m in errors],
                    }
                },
                "extensions": {"cost": cost},
            }
        )

    async def _sim_faults(self, request: Request) -> Response:
        body = await request.json()
        self.faults.latency = float(body.get("latency", self.faults.latency))
        if body.get("fail"):
            self.faults.fail_next(int(body["fail"]), int(body.get("status", 503)))
        if body.get("throttle"):
            self.faults.throttle_next(int(body["throttle"]), float(body.get("retry_after", 1)))
        return JSONResponse({"ok": True})

    async def _sim_stock(self, request: Request) -> Response:
        body = await request.json()
        self.set_available(str(body["sku"]), int(body["available"]))
        return JSONResponse({"ok": True})


def _gid_id(value: Any, kind: str) -> int | None:
    prefix = f"gid://shopify/{kind}/"
    if isinstance(value, str) and value.startswith(prefix) and value[len(prefix) :].isdigit():
        return int(value[len(prefix) :])
    return None


def _cursor(params: dict[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(params).encode()).decode().rstrip("=")


def _uncursor(value: str) -> dict[str, str]:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        params = json.loads(raw)
    except (ValueError, TypeError):
        raise ValueError("bad page_info") from None
    if not isinstance(params, dict):
        raise ValueError("bad page_info")
    return {str(k): str(v) for k, v in params.items()}
