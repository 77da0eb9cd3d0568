"""A supplier portal, simulated: the REST API the connector uses, with its auth and failure modes.

    POST /purchase-orders                          201 created, 200 same order again, 409 differs
    PUT  /purchase-orders/{n}                      200 replaced; 404 unknown; 409 cancelled/shipped
    POST /purchase-orders/{n}/cancellation         200; 404 unknown; 409 already shipped
    GET  /purchase-orders/{n}/acknowledgement      200, 404 {"error": "not_acknowledged"|"unknown"}
    GET  /shipments?since=ISO&cursor=&limit=       {"items": [...], "next_cursor": str | null}
    GET  /invoices?since=ISO&cursor=&limit=        same shape
    GET  /stock?cursor=&limit=                     same shape

Bearer auth (401 otherwise). Tests and the demo drive the supplier through `SupplierPortal`:
acknowledge (with changed or refused lines), ship partially, invoice at another price, report
stock; `faults` (connectors.http.Faults) injects 429 with Retry-After, 5xx and latency.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors.http import Faults


@dataclass
class SupplierPortal:
    token: str = "portal-token"
    page_size: int = 50
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    acknowledgements: dict[str, dict[str, Any]] = field(default_factory=dict)
    shipments: list[dict[str, Any]] = field(default_factory=list)
    invoices: list[dict[str, Any]] = field(default_factory=list)
    stock: dict[str, dict[str, Any]] = field(default_factory=dict)
    cancelled: set[str] = field(default_factory=set)
    faults: Faults = field(default_factory=Faults)
    _seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _last: datetime | None = None

    # --- driving the supplier -----------------------------------------------------------------

    def acknowledge(
        self,
        po_number: str,
        *,
        confirm: dict[str, int] | None = None,
        reject: set[str] | frozenset[str] = frozenset(),
        promised: str | None = None,
    ) -> dict[str, Any]:
        """Accept the order, confirming fewer units for SKUs in `confirm` and refusing `reject`."""
        order = self._order(po_number)
        lines = []
        for line in order["lines"]:
            sku, qty = line["sku"], line["quantity"]
            if sku in reject:
                status, confirmed = "rejected", 0
            elif confirm and sku in confirm and confirm[sku] != qty:
                status, confirmed = "changed", confirm[sku]
            else:
                status, confirmed = "accepted", qty
            lines.append(
                {
                    "line": line["line"],
                    "sku": sku,
                    "status": status,
                    "quantity_confirmed": confirmed,
                    "unit_price": line["unit_price"],
                    "promised_date": promised or order["requested_delivery"],
                }
            )
        statuses = {li["status"] for li in lines}
        overall = (
            "rejected"
            if statuses == {"rejected"}
            else "accepted"
            if statuses == {"accepted"}
            else "partially_accepted"
        )
        ack = {
            "id": f"ACK-{next(self._seq)}",
            "po_number": po_number,
            "status": overall,
            "acknowledged_at": self._now().isoformat(),
            "lines": lines,
        }
        self.acknowledgements[po_number] = ack
        return ack

    def ship(
        self, po_number: str, quantities: dict[str, int] | None = None, *, carrier: str = "UPSN"
    ) -> dict[str, Any]:
        """Ship `quantities` per SKU (everything ordered when None)."""
        order = self._order(po_number)
        lines = [
            {"line": li["line"], "sku": li["sku"], "quantity": qty}
            for li in order["lines"]
            if (qty := (quantities or {}).get(li["sku"], 0 if quantities else li["quantity"]))
        ]
        now = self._now()
        n = next(self._seq)
        shipment = {
            "id": f"SHP-{n}",
            "po_number": po_number,
            "shipped_at": now.isoformat(),
            "estimated_delivery": (now + timedelta(days=3)).date().isoformat(),
            "carrier": carrier,
            "tracking_number": f"TRK{n:08d}",
            "lines": lines,
            "updated_at": now.isoformat(),
        }
        self.shipments.append(shipment)
        return shipment

    def invoice(
        self,
        po_number: str,
        *,
        quantities: dict[str, int] | None = None,
        prices: dict[str, str] | None = None,
        tax_rate: str = "0",
    ) -> dict[str, Any]:
        """Invoice what was shipped (or `quantities`), at the order's prices unless `prices`."""
        order = self._order(po_number)
        shipped: dict[str, int] = {}
        for s in self.shipments:
            if s["po_number"] == po_number:
                for li in s["lines"]:
                    shipped[li["sku"]] = shipped.get(li["sku"], 0) + li["quantity"]
        qty_of = quantities if quantities is not None else shipped
        lines = []
        for li in order["lines"]:
            qty = qty_of.get(li["sku"], 0)
            if qty:
                price = (prices or {}).get(li["sku"], li["unit_price"])
                lines.append(
                    {"line": li["line"], "sku": li["sku"], "quantity": qty, "unit_price": price}
                )
        subtotal = sum((Decimal(li["unit_price"]) * li["quantity"] for li in lines), Decimal(0))
        tax = (subtotal * Decimal(tax_rate)).quantize(Decimal("0.01"))
        now = self._now()
        invoice = {
            "number": f"INV-{next(self._seq)}",
            "po_number": po_number,
            "issued_at": now.isoformat(),
            "currency": order["currency"],
            "lines": lines,
            "subtotal": str(subtotal),
            "tax": str(tax),
            "charges": "0",
            "total": str(subtotal + tax),
            "updated_at": now.isoformat(),
        }
        self.invoices.append(invoice)
        return invoice

    def set_stock(self, sku: str, available: int, *, supplier_sku: str | None = None) -> None:
        self.stock[sku] = {
            "sku": sku,
            "supplier_sku": supplier_sku,
            "available": available,
            "updated_at": self._now().isoformat(),
        }

    def _order(self, po_number: str) -> dict[str, Any]:
        if po_number not in self.orders:
            raise KeyError(f"the portal has no purchase order {po_number}")
        return self.orders[po_number]

    def _now(self) -> datetime:
        # strictly increasing, so `since` never has to break ties
        now = self.clock()
        if self._last is not None and now <= self._last:
            now = self._last + timedelta(microseconds=1)
        self._last = now
        return now

    # --- the HTTP API -------------------------------------------------------------------------

    @property
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/purchase-orders", self._post_order, methods=["POST"]),
                Route("/purchase-orders/{number}", self._put_order, methods=["PUT"]),
                Route(
                    "/purchase-orders/{number}/cancellation", self._cancel_order, methods=["POST"]
                ),
                Route("/purchase-orders/{number}/acknowledgement", self._get_ack),
                Route("/shipments", self._list_shipments),
                Route("/invoices", self._list_invoices),
                Route("/stock", self._list_stock),
            ]
        )

    async def _gate(self, request: Request) -> Response | None:
        injected = await self.faults.apply(request.method, request.url.path)
        if injected is not None:
            status, headers = injected
            return JSONResponse({"error": "injected fault"}, status, headers=headers)
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return JSONResponse(
                {"error": "unauthorized"}, 401, headers={"WWW-Authenticate": "Bearer"}
            )
        return None

    async def _post_order(self, request: Request) -> Response:
        if (denied := await self._gate(request)) is not None:
            return denied
        try:
            body = json.loads(await request.body())
        except ValueError:
            return JSONResponse({"error": "body is not JSON"}, 400)
        if not isinstance(body, dict) or not body.get("po_number") or not body.get("lines"):
            return JSONResponse({"error": "po_number and lines are required"}, 422)
        number = body["po_number"]
        if number in self.orders:
            if self.orders[number] != body:
                return JSONResponse({"error": "a different order has this number"}, 409)
            return JSONResponse({"po_number": number, "status": "received"}, 200)
        self.orders[number] = body
        return JSONResponse({"po_number": number, "status": "received"}, 201)

    async def _put_order(self, request: Request) -> Response:
        if (denied := await self._gate(request)) is not None:
            return denied
        number = request.path_params["number"]
        if number not in self.orders:
            return JSONResponse({"error": "unknown"}, 404)
        if number in self.cancelled or self._shipped(number):
            return JSONResponse({"error": "the order is cancelled or shipped"}, 409)
        try:
            body = json.loads(await request.body())
        except ValueError:
            return JSONResponse({"error": "body is not JSON"}, 400)
        if not isinstance(body, dict) or body.get("po_number") != number or not body.get("lines"):
            return JSONResponse({"error": "po_number must match and lines are required"}, 422)
        self.orders[number] = body
        self.acknowledgements.pop(number, None)  # a changed order is acknowledged anew
        return JSONResponse({"po_number": number, "status": "changed"})

    async def _cancel_order(self, request: Request) -> Response:
        if (denied := await self._gate(request)) is not None:
            return denied
        number = request.path_params["number"]
        if number not in self.orders:
            return JSONResponse({"error": "unknown"}, 404)
        if self._shipped(number):
            return JSONResponse({"error": "already shipped"}, 409)
        self.cancelled.add(number)
        return JSONResponse({"po_number": number, "status": "cancelled"})

    def _shipped(self, number: str) -> bool:
        return any(s["po_number"] == number for s in self.shipments)

    async def _get_ack(self, request: Request) -> Response:
        if (denied := await self._gate(request)) is not None:
            return denied
        number = request.path_params["number"]
        if number not in self.orders:
            return JSONResponse({"error": "unknown"}, 404)
        if number not in self.acknowledgements:
            return JSONResponse({"error": "not_acknowledged"}, 404)
        return JSONResponse(self.acknowledgements[number])

    async def _list_shipments(self, request: Request) -> Response:
        return await self._page(request, self.shipments)

    async def _list_invoices(self, request: Request) -> Response:
        return await self._page(request, self.invoices)

    async def _list_stock(self, request: Request) -> Response:
        return await self._page(request, list(self.stock.values()))

    async def _page(self, request: Request, items: list[dict[str, Any]]) -> Response:
        if (denied := await self._gate(request)) is not None:
            return denied
        q = request.query_params
        try:
            since = datetime.fromisoformat(q["since"]) if q.get("since") else None
            offset = int(q.get("cursor") or 0)
            limit = min(int(q.get("limit") or self.page_size), self.page_size)
        except ValueError:
            return JSONResponse({"error": "bad since, cursor or limit"}, 400)
        if since is not None and since.tzinfo is None:
            return JSONResponse({"error": "since needs a timezone"}, 400)
        selected = sorted(
            (i for i in items if since is None or datetime.fromisoformat(i["updated_at"]) >= since),
            key=lambda i: i["updated_at"],
        )
        page = selected[offset : offset + limit]
        more = offset + limit < len(selected)
        return JSONResponse({"items": page, "next_cursor": str(offset + limit) if more else None})
