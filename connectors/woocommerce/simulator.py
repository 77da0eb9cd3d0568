"""A WooCommerce REST v3 simulator: the API subset the hub uses, as a Starlette app.

Basic auth with the consumer key and secret (401 otherwise), orders filtered by `modified_after`
and `status` (`any`, the default, leaves out the trash) and sorted by `orderby` (date, modified
or id) and `order`, with `page`/`per_page`/`offset` and `X-WP-Total`/`X-WP-TotalPages`, an
order's refunds, products with their
`stock_quantity`, `products/batch` updates (at most 100 items, per-item errors for unknown ids),
variable products with their variations (`/products/{id}/variations` and its batch),
an optional rate limit (WooCommerce core has none; hosts and plugins add one: 429 +
`Retry-After`), injected 5xx / 429 / latency (`faults` or `POST /_sim/faults`), stock changed
behind the hub's back (`set_stock` or `POST /_sim/stock`), and signed webhook deliveries.
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import math
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors.base import timestamp
from connectors.http import Faults, SoldOut, post_webhook
from connectors.woocommerce.webhooks import signed_headers

API = "/wp-json/wc/v3"


def _gmt(t: datetime) -> str:
    return t.astimezone(UTC).replace(tzinfo=None, microsecond=0).isoformat()


_ORDER_KEYS: dict[str, Any] = {
    "date": lambda o: (o["date_created_gmt"], o["id"]),
    "modified": lambda o: (o["date_modified_gmt"], o["id"]),
    "id": lambda o: o["id"],
}


_STATUSES = frozenset(
    {"any", "trash", "pending", "processing", "on-hold", "completed", "cancelled", "refunded"}
    | {"failed", "checkout-draft"}
)


class WooCommerceSimulator:
    def __init__(
        self,
        *,
        consumer_key: str = "ck_simulated",
        consumer_secret: str = "cs_simulated",
        webhook_secret: str = "woocommerce-webhook-secret",
        site: str = "https://corner.example",
        currency: str = "EUR",
        rate_limit_per_second: float | None = None,
    ) -> None:
        self.consumer_key = consumer_key
        self.consumer_secret = consumer_secret
        self.webhook_secret = webhook_secret
        self.site = site
        self.currency = currency
        self.rate_limit_per_second = rate_limit_per_second
        self.faults = Faults()
        self.products: dict[int, dict[str, Any]] = {}
        self.orders: dict[int, dict[str, Any]] = {}
        self.refunds: dict[int, list[dict[str, Any]]] = {}
        self.variations: dict[int, dict[int, dict[str, Any]]] = {}  # product id → variations
        self.hooks: dict[int, dict[str, Any]] = {}  # registered webhooks, as GET /webhooks lists
        self.batch_calls = 0
        self.deny_oversell = False  # True: refuse orders the shop's own stock cannot cover
        self._ids = itertools.count(100)
        self._window_start = time.monotonic()
        self._window_count = 0
        self.app = Starlette(
            routes=[
                Route(f"{API}/orders", self._orders),
                Route(f"{API}/orders/{{order_id:int}}/refunds", self._refunds),
                Route(f"{API}/products", self._products),
                Route(f"{API}/products/batch", self._batch, methods=["POST"]),
                Route(f"{API}/products/{{product_id:int}}/variations", self._variations),
                Route(
                    f"{API}/products/{{product_id:int}}/variations/batch",
                    self._variations_batch,
                    methods=["POST"],
                ),
                Route(f"{API}/webhooks", self._webhooks),
                Route(f"{API}/webhooks/{{hook_id:int}}", self._webhook_edit, methods=["PUT"]),
                Route("/_sim/faults", self._sim_faults, methods=["POST"]),
                Route("/_sim/stock", self._sim_stock, methods=["POST"]),
            ]
        )

    # --- state helpers ----------------------------------------------------------------------------

    def add_product(self, sku: str, stock: int = 0) -> int:
        pid = next(self._ids)
        self.products[pid] = {
            "id": pid,
            "name": sku,
            "type": "simple",
            "status": "publish",
            "sku": sku,
            "price": "10.00",
            "manage_stock": True,
            "stock_quantity": stock,
            "stock_status": "instock" if stock > 0 else "outofstock",
            "date_modified_gmt": _gmt(datetime.now(UTC)),
        }
        return pid

    def recreate_product(self, sku: str, stock: int = 0) -> int:
        """Delete the SKU's simple product and make it again (a re-import in wp-admin): the SKU
        stays, the product gets a new id. Returns it."""
        old = next(pid for pid, p in self.products.items() if p["sku"] == sku)
        del self.products[old]
        return self.add_product(sku, stock)

    def recreate_variation(self, sku: str, stock: int = 0) -> int:
        """Delete the SKU's variation and make it again under the same product (a re-import):
        the SKU stays, the variation gets a new id. Returns it."""
        pid, vid = next(
            (pid, vid)
            for pid, table in self.variations.items()
            for vid, v in table.items()
            if v["sku"] == sku
        )
        del self.variations[pid][vid]
        self.products[pid]["variations"].remove(vid)
        return self.add_variation(self.products[pid]["name"], sku, stock)[1]

    def add_variation(
        self, parent: str, sku: str, stock: int = 0, *, parent_sku: str = ""
    ) -> tuple[int, int]:
        """A variation (its own SKU and stock) of a variable product: (product id, variation id).
        A variation with no SKU of its own (`sku=""`) is listed under its product's SKU, as
        WooCommerce does; `stock=-1` keeps its stock at the product (`manage_stock: parent`)."""
        product = next((p for p in self.products.values() if p["name"] == parent), None)
        if product is None:
            pid = self.add_product(parent_sku, 0)
            product = self.products[pid]
            product.update(name=parent, type="variable", manage_stock=False, stock_quantity=None)
            product["variations"] = []
        vid = next(self._ids)
        product["variations"].append(vid)
        own = stock >= 0
        if not own:  # the product holds the stock of its variations
            product.update(manage_stock=True, stock_quantity=product["stock_quantity"] or 0)
        self.variations.setdefault(product["id"], {})[vid] = {
            "id": vid,
            "sku": sku,
            "price": "10.00",
            "manage_stock": True if own else "parent",
            "stock_quantity": stock if own else None,
            "stock_status": "instock" if stock > 0 else "outofstock",
            "date_modified_gmt": _gmt(datetime.now(UTC)),
        }
        return product["id"], vid

    def _all_items(self) -> list[tuple[int, int, dict[str, Any]]]:
        """(product id, variation id or 0, record) for everything that carries a SKU."""
        items = [(pid, 0, p) for pid, p in self.products.items() if p["sku"]]
        for pid, table in self.variations.items():
            items.extend((pid, vid, v) for vid, v in table.items())
        return items

    def _by_sku(self, sku: str) -> dict[str, Any]:
        for _, _, item in self._all_items():
            if item["sku"] == sku:
                return item
        raise KeyError(sku)

    def stock(self, sku: str) -> int:
        return int(self._by_sku(sku)["stock_quantity"])

    def set_stock(self, sku: str, quantity: int) -> None:
        """Change stock behind the hub's back (an edit in wp-admin)."""
        p = self._by_sku(sku)
        p["stock_quantity"] = quantity
        p["stock_status"] = "instock" if quantity > 0 else "outofstock"

    def make_order(
        self,
        order_id: int,
        lines: list[tuple[str, int, str]],
        *,
        status: str = "processing",
        created_at: datetime | None = None,
        tax_rate: str = "0.08",
        decrement: bool = True,
    ) -> dict[str, Any]:
        """An order in WooCommerce's REST v3 JSON shape, stored so the API lists it.

        The shop's own stock drops by what was sold (`decrement`); with `deny_oversell` an order
        its stock cannot cover raises SoldOut and is not stored.
        """
        if decrement:
            self._take([(sku, qty) for sku, qty, _ in lines])
        created = created_at or datetime.now(UTC)
        rate = Decimal(tax_rate)
        items = []
        total = tax_total = Decimal(0)
        for n, (sku, qty, price) in enumerate(lines):
            product_id, variation_id = next(
                ((pid, vid) for pid, vid, item in self._all_items() if item["sku"] == sku), (0, 0)
            )
            line_total = Decimal(price) * qty
            tax = (line_total * rate).quantize(Decimal("0.01"))
            total += line_total
            tax_total += tax
            items.append(
                {
                    "id": order_id * 100 + n,
                    "name": sku,
                    "product_id": product_id,
                    "variation_id": variation_id,
                    "quantity": qty,
                    "tax_class": "",
                    "subtotal": str(line_total),
                    "subtotal_tax": str(tax),
                    "total": str(line_total),
                    "total_tax": str(tax),
                    "taxes": [{"id": 1, "total": str(tax), "subtotal": str(tax)}],
                    "meta_data": [],
                    "sku": sku,
                    "price": float(price),
                }
            )
        paid = status in ("processing", "completed")
        order = {
            "id": order_id,
            "parent_id": 0,
            "number": str(order_id),
            "order_key": f"wc_order_{order_id}",
            "created_via": "checkout",
            "status": status,
            "currency": self.currency,
            "date_created": _gmt(created),
            "date_created_gmt": _gmt(created),
            "date_modified": _gmt(created),
            "date_modified_gmt": _gmt(created),
            "discount_total": "0.00",
            "shipping_total": "0.00",
            "cart_tax": str(tax_total),
            "total": str(total + tax_total),
            "total_tax": str(tax_total),
            "prices_include_tax": False,
            "payment_method": "stripe",
            "transaction_id": f"ch_{order_id}" if paid else "",
            "date_paid_gmt": _gmt(created) if paid else None,
            "date_completed_gmt": _gmt(created) if status == "completed" else None,
            "line_items": items,
            "shipping_lines": [],
            "coupon_lines": [],
            "refunds": [],
        }
        self.orders[order_id] = order
        return copy.deepcopy(order)

    def _take(self, lines: list[tuple[str, int]]) -> None:
        skus = {item["sku"] for _, _, item in self._all_items()}
        known = [(s, q) for s, q in lines if s in skus]
        if self.deny_oversell:
            for sku, qty in known:
                if self.stock(sku) < qty:
                    raise SoldOut(sku)
        for sku, qty in known:
            self.set_stock(sku, self.stock(sku) - qty)

    def _put_back(self, lines: list[tuple[str, int]]) -> None:
        skus = {item["sku"] for _, _, item in self._all_items()}
        for sku, qty in lines:
            if sku in skus:
                self.set_stock(sku, self.stock(sku) + qty)

    def update_order(
        self, order_id: int, *, status: str, at: datetime | None = None
    ) -> dict[str, Any]:
        """Change an order's status (cancelling puts its stock back, as WooCommerce does)."""
        order = self.orders[order_id]
        when = at or datetime.now(UTC)
        if status == "cancelled" and order["status"] != "cancelled":
            self._put_back([(li["sku"], li["quantity"]) for li in order["line_items"]])
        if status == "completed":
            order["date_completed_gmt"] = _gmt(when)
        order["status"] = status
        order["date_modified_gmt"] = _gmt(when)
        return copy.deepcopy(order)

    def trash_order(self, order_id: int, *, at: datetime | None = None) -> dict[str, Any]:
        """Move an order to the trash, as the admin's "Move to Trash" does: its stock stays as
        it is (only a cancellation puts it back), and `order.deleted` carries its id alone.
        Returns that body."""
        order = self.orders[order_id]
        order["status"] = "trash"
        order["date_modified_gmt"] = _gmt(at or datetime.now(UTC))
        return {"id": order_id}

    def refund_order(
        self,
        order_id: int,
        lines: list[tuple[str, int]],
        *,
        restock: bool = True,
        at: datetime | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Refund lines (by SKU): (the updated order, the order-refunds resource)."""
        order = self.orders[order_id]
        when = at or datetime.now(UTC)
        by_sku = {li["sku"]: li for li in order["line_items"]}
        items, amount = [], Decimal(0)
        for sku, qty in lines:
            item = by_sku[sku]
            subtotal = Decimal(item["subtotal"]) * qty / item["quantity"]
            tax = (Decimal(item["total_tax"]) * qty / item["quantity"]).quantize(Decimal("0.01"))
            amount += subtotal + tax
            items.append(
                {
                    "id": next(self._ids),
                    "name": item["name"],
                    "product_id": item["product_id"],
                    "variation_id": 0,
                    "quantity": -qty,
                    "subtotal": str(-subtotal),
                    "total": str(-subtotal),
                    "total_tax": str(-tax),
                    "meta_data": [
                        {
                            "id": next(self._ids),
                            "key": "_refunded_item_id",
                            "value": str(item["id"]),
                        }
                    ],
                    "sku": sku,
                    "price": -float(item["price"]),
                }
            )
        refund = {
            "id": next(self._ids),
            "date_created_gmt": _gmt(when),
            "amount": str(amount),
            "reason": "",
            "refunded_by": 1,
            "refunded_payment": True,
            "meta_data": [],
            "line_items": items,
            "shipping_lines": [],
            "tax_lines": [],
            "fee_lines": [],
        }
        self.refunds.setdefault(order_id, []).append(refund)
        order["refunds"].append({"id": refund["id"], "reason": "", "total": str(-amount)})
        order["date_modified_gmt"] = _gmt(when)
        if restock:
            self._put_back(lines)
        return copy.deepcopy(order), copy.deepcopy(refund)

    def webhook(
        self, topic: str, payload: dict[str, Any], *, secret: str | None = None
    ) -> tuple[dict[str, str], bytes]:
        """A signed delivery (headers, body) as WooCommerce would post it."""
        body = json.dumps(payload).encode()
        headers = signed_headers(
            body,
            secret if secret is not None else self.webhook_secret,
            topic=topic,
            source=self.site + "/",
            delivery_id=str(next(self._ids)),
        )
        return headers, body

    async def send_webhook(
        self,
        url: str,
        topic: str,
        payload: dict[str, Any],
        *,
        client: httpx.AsyncClient | None = None,
    ) -> httpx.Response:
        """Sign and post a delivery to the hub, e.g. `http://127.0.0.1:8080/webhooks/woocommerce/x`."""
        headers, body = self.webhook(topic, payload)
        return await post_webhook(url, headers, body, client=client)

    def add_hook(self, topic: str, delivery_url: str) -> int:
        """Register a webhook, as the merchant does in WooCommerce → Settings → Advanced."""
        hook_id = next(self._ids)
        self.hooks[hook_id] = {
            "id": hook_id,
            "name": f"Order {topic.split('.')[-1]}",
            "status": "active",
            "topic": topic,
            "resource": topic.split(".")[0],
            "event": topic.split(".")[-1],
            "delivery_url": delivery_url,
            "failure_count": 0,  # kept in the webhook's data, not in the REST resource
        }
        return hook_id

    async def fire(
        self, hook_id: int, payload: dict[str, Any], *, client: httpx.AsyncClient | None = None
    ) -> httpx.Response | None:
        """Deliver through a registered webhook as WooCommerce does: never retried; a delivery
        answered other than 2xx, 301 or 302 is a failure, and more than five in a row
        (`woocommerce_max_webhook_delivery_failures`) switch the webhook to disabled, after
        which nothing is delivered (None) until it is active again."""
        hook = self.hooks[hook_id]
        if hook["status"] != "active":
            return None
        response = await self.send_webhook(
            hook["delivery_url"], hook["topic"], payload, client=client
        )
        if 200 <= response.status_code < 300 or response.status_code in (301, 302):
            hook["failure_count"] = 0
        else:
            hook["failure_count"] += 1
            if hook["failure_count"] > 5:
                hook["status"] = "disabled"
        return response

    # --- HTTP -------------------------------------------------------------------------------------

    async def _guard(self, request: Request) -> Response | None:
        injected = await self.faults.apply(request.method, request.url.path)
        if injected is not None:
            status, headers = injected
            return _error("simulated_failure", "Injected failure.", status, headers)
        auth = request.headers.get("Authorization", "")
        expected = base64.b64encode(f"{self.consumer_key}:{self.consumer_secret}".encode())
        if auth != f"Basic {expected.decode()}":
            return _error("woocommerce_rest_cannot_view", "Sorry, you cannot list resources.", 401)
        if self.rate_limit_per_second:
            now = time.monotonic()
            if now - self._window_start >= 1:
                self._window_start, self._window_count = now, 0
            self._window_count += 1
            if self._window_count > self.rate_limit_per_second:
                return _error("rest_rate_limited", "Too many requests.", 429, {"Retry-After": "1"})
        return None

    def _paged(self, request: Request, items: list[Any]) -> Response:
        try:
            page = max(1, int(request.query_params.get("page", "1")))
            per_page = min(100, max(1, int(request.query_params.get("per_page", "10"))))
        except ValueError:
            return _error("rest_invalid_param", "Invalid parameter(s): page", 400)
        pages = max(1, math.ceil(len(items) / per_page))
        start = (page - 1) * per_page
        if "offset" in request.query_params:  # `offset` wins over `page`, as in WooCommerce
            try:
                start = max(0, int(request.query_params["offset"]))
            except ValueError:
                return _error("rest_invalid_param", "Invalid parameter(s): offset", 400)
        chunk = items[start : start + per_page]
        return JSONResponse(
            chunk, headers={"X-WP-Total": str(len(items)), "X-WP-TotalPages": str(pages)}
        )

    async def _orders(self, request: Request) -> Response:
        if (denied := await self._guard(request)) is not None:
            return denied
        # WooCommerce's default is the newest first by creation date.
        orderby = request.query_params.get("orderby", "date")
        if orderby not in _ORDER_KEYS:
            return _error("rest_invalid_param", "Invalid parameter(s): orderby", 400)
        orders = sorted(
            self.orders.values(),
            key=_ORDER_KEYS[orderby],
            reverse=request.query_params.get("order", "desc") != "asc",
        )
        # `any` (the default) lists every status but the trash, as WordPress does.
        wanted = request.query_params.get("status", "any")
        if wanted not in _STATUSES:
            return _error("rest_invalid_param", "Invalid parameter(s): status", 400)
        if wanted == "any":
            orders = [o for o in orders if o["status"] != "trash"]
        else:
            orders = [o for o in orders if o["status"] == wanted]
        after = request.query_params.get("modified_after")
        if after:
            try:
                since = timestamp(after, "modified_after", naive_is_utc=True)
            except ValueError:
                return _error("rest_invalid_param", "Invalid parameter(s): modified_after", 400)
            orders = [
                o
                for o in orders
                if timestamp(o["date_modified_gmt"], "m", naive_is_utc=True) > since
            ]
        return self._paged(request, orders)

    async def _refunds(self, request: Request) -> Response:
        if (denied := await self._guard(request)) is not None:
            return denied
        oid = request.path_params["order_id"]
        if oid not in self.orders:
            return _error("woocommerce_rest_order_invalid_id", "Invalid order ID.", 404)
        return self._paged(request, self.refunds.get(oid, []))  # 10 a page unless asked

    async def _products(self, request: Request) -> Response:
        if (denied := await self._guard(request)) is not None:
            return denied
        items = sorted(self.products.values(), key=lambda p: p["id"])
        if request.query_params.get("sku"):
            wanted = set(request.query_params["sku"].split(","))
            items = [p for p in items if p["sku"] in wanted]
        return self._paged(request, items)

    async def _variations(self, request: Request) -> Response:
        if (denied := await self._guard(request)) is not None:
            return denied
        pid = request.path_params["product_id"]
        if pid not in self.products:
            return _error("woocommerce_rest_product_invalid_id", "Invalid ID.", 404)
        table = self.variations.get(pid, {})
        parent_sku = self.products[pid]["sku"]
        listed = [{**table[v], "sku": table[v]["sku"] or parent_sku} for v in sorted(table)]
        return self._paged(request, listed)  # a variation without a SKU shows its product's

    async def _variations_batch(self, request: Request) -> Response:
        if (denied := await self._guard(request)) is not None:
            return denied
        pid = request.path_params["product_id"]
        if pid not in self.products:
            return _error("woocommerce_rest_product_invalid_id", "Invalid ID.", 404)
        return await self._apply_batch(
            request, self.variations.get(pid, {}), "woocommerce_rest_product_variation_invalid_id"
        )

    async def _batch(self, request: Request) -> Response:
        if (denied := await self._guard(request)) is not None:
            return denied
        return await self._apply_batch(request, self.products)

    async def _apply_batch(
        self,
        request: Request,
        table: dict[int, dict[str, Any]],
        invalid: str = "woocommerce_rest_product_invalid_id",
    ) -> Response:
        try:
            body = await request.json()
            updates = body.get("update", [])
        except (ValueError, AttributeError):
            return _error("rest_invalid_json", "Invalid JSON body passed.", 400)
        if not isinstance(updates, list):
            return _error("rest_invalid_param", "Invalid parameter(s): update", 400)
        if len(updates) > 100:
            return _error(
                "woocommerce_rest_request_entity_too_large",
                "Unable to accept more than 100 items for this request.",
                413,
            )
        out = []
        for u in updates:
            pid = u.get("id") if isinstance(u, dict) else None
            product = table.get(pid) if isinstance(pid, int) else None
            if product is None:
                out.append(
                    {
                        "id": pid or 0,
                        "error": {
                            "code": invalid,
                            "message": "Invalid ID.",
                            "data": {"status": 400},
                        },
                    }
                )
                continue
            if "manage_stock" in u:
                product["manage_stock"] = bool(u["manage_stock"])
            if "stock_quantity" in u:
                product["stock_quantity"] = int(u["stock_quantity"])
                product["stock_status"] = (
                    "instock" if product["stock_quantity"] > 0 else "outofstock"
                )
            product["date_modified_gmt"] = _gmt(datetime.now(UTC))
            out.append(copy.deepcopy(product))
        self.batch_calls += 1
        return JSONResponse({"update": out})

    async def _webhooks(self, request: Request) -> Response:
        if (denied := await self._guard(request)) is not None:
            return denied
        hooks = [
            {k: v for k, v in h.items() if k != "failure_count"}
            for _, h in sorted(self.hooks.items())
        ]
        wanted = request.query_params.get("status", "all")
        return self._paged(request, [h for h in hooks if wanted in ("all", h["status"])])

    async def _webhook_edit(self, request: Request) -> Response:
        if (denied := await self._guard(request)) is not None:
            return denied
        hook = self.hooks.get(request.path_params["hook_id"])
        if hook is None:
            return _error("woocommerce_rest_webhook_invalid_id", "Invalid ID.", 404)
        status = (await request.json()).get("status")
        if status is not None:
            if status not in ("active", "paused", "disabled"):
                return _error("rest_invalid_param", "Invalid parameter(s): status", 400)
            hook["status"] = status
            if status == "active":
                hook["failure_count"] = 0
        return JSONResponse({k: v for k, v in hook.items() if k != "failure_count"})

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
        self.set_stock(str(body["sku"]), int(body["stock_quantity"]))
        return JSONResponse({"ok": True})


def _error(
    code: str, message: str, status: int, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"code": code, "message": message, "data": {"status": status}}, status, headers=headers
    )
