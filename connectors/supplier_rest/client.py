"""The supplier portal's REST API, on the connectors' shared HTTP plumbing.

Bearer auth. Retried (connectors.http): 5xx, 408, 429 (waiting what `Retry-After` says), timeouts
and connection errors. Not retried: 401/403 (fix the token), other 4xx (fix the request), and
payloads that cannot be mapped. Every failure reaches the caller as
`ConnectorError(retryable=...)`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

import httpx

from connectors.errors import ConnectorError, MalformedPayload
from connectors.http import HttpApi, RateLimiter, RetryPolicy
from connectors.supplier_rest.mapping import (
    acknowledgement_from_json,
    cancellation_to_json,
    invoice_from_json,
    purchase_order_to_json,
    shipment_from_json,
    stock_from_json,
)
from schemas.purchasing import (
    PurchaseOrderAcknowledged,
    PurchaseOrderCancelled,
    PurchaseOrderChanged,
    PurchaseOrderIssued,
    ShipmentNotified,
    SupplierInvoiceReceived,
    SupplierStockReported,
)

T = TypeVar("T")
#: Called with (kind, payload, reason) for a feed item the hub cannot use.
Rejected = Callable[[str, Any, str], None]


class SupplierPortalClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        supplier: str,
        transport: httpx.AsyncBaseTransport | None = None,
        policy: RetryPolicy | None = None,
        limiter: RateLimiter | None = None,
        page_size: int = 100,
    ) -> None:
        self.supplier = supplier
        policy = policy or RetryPolicy()
        client = httpx.AsyncClient(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=policy.timeout,
            transport=transport,
        )
        self._api = HttpApi(client, limiter=limiter, policy=policy, name=f"rest/{supplier}")
        self._page_size = page_size

    async def __aenter__(self) -> SupplierPortalClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._api.aclose()

    async def send_purchase_order(self, po: PurchaseOrderIssued) -> None:
        """Idempotent: the same order sent again is accepted; a different order under the same
        number is refused (409, not retryable)."""
        await self._api.request("POST", "/purchase-orders", json=purchase_order_to_json(po))

    async def change_purchase_order(self, change: PurchaseOrderChanged) -> None:
        """Replace the whole order (PUT: repeating it is harmless)."""
        path = f"/purchase-orders/{change.po_number}"
        await self._api.request("PUT", path, json=purchase_order_to_json(change))

    async def cancel_purchase_order(self, cancel: PurchaseOrderCancelled) -> None:
        """Withdraw the order; cancelling a cancelled order is accepted. A portal that already
        shipped answers 409 (not retryable): the goods are on their way."""
        path = f"/purchase-orders/{cancel.po_number}/cancellation"
        await self._api.request("POST", path, json=cancellation_to_json(cancel))

    async def acknowledgement(self, po_number: str) -> PurchaseOrderAcknowledged | None:
        """The supplier's answer, or None while it has not answered."""
        try:
            resp = await self._api.request("GET", f"/purchase-orders/{po_number}/acknowledgement")
        except ConnectorError as exc:
            if exc.status == 404 and "not_acknowledged" in exc.message:
                return None
            raise
        return self._map(acknowledgement_from_json, _json(resp))

    async def shipments(
        self, since: datetime | None = None, *, rejected: Rejected | None = None
    ) -> list[ShipmentNotified]:
        """Ship notices updated since `since`. A payload the hub cannot use raises
        `ConnectorError(retryable=False)`, or with `rejected` is handed to it and skipped."""
        return await self._mapped(shipment_from_json, "shipment", "/shipments", since, rejected)

    async def invoices(
        self, since: datetime | None = None, *, rejected: Rejected | None = None
    ) -> list[SupplierInvoiceReceived]:
        return await self._mapped(invoice_from_json, "invoice", "/invoices", since, rejected)

    async def stock(self, *, rejected: Rejected | None = None) -> list[SupplierStockReported]:
        return await self._mapped(stock_from_json, "stock", "/stock", None, rejected)

    async def _mapped(
        self,
        fn: Callable[..., T],
        kind: str,
        path: str,
        since: datetime | None,
        rejected: Rejected | None,
    ) -> list[T]:
        out: list[T] = []
        async for item in self._pages(path, since):
            try:
                out.append(self._map(fn, item))
            except ConnectorError as exc:
                if rejected is None:
                    raise
                rejected(kind, item, exc.message)
        return out

    def _map(self, fn: Callable[..., T], payload: Any) -> T:
        try:
            return fn(payload, supplier=self.supplier)
        except MalformedPayload as exc:
            raise ConnectorError(
                f"portal sent a payload the hub cannot use: {exc.reason}", retryable=False
            ) from None

    async def _pages(self, path: str, since: datetime | None) -> AsyncIterator[Any]:
        cursor: str | None = None
        while True:
            params = {"limit": str(self._page_size)}
            if since is not None:
                params["since"] = since.astimezone(UTC).isoformat()
            if cursor:
                params["cursor"] = cursor
            body = _json(await self._api.request("GET", path, params=params))
            if not isinstance(body, dict) or not isinstance(body.get("items"), list):
                raise ConnectorError(f"GET {path}: no items list in the answer", retryable=False)
            for item in body["items"]:
                yield item
            cursor = body.get("next_cursor")
            if not cursor:
                return


def _json(resp: httpx.Response) -> Any:
    try:
        return resp.json(parse_float=Decimal)  # amounts stay exact
    except ValueError:
        raise ConnectorError(
            f"{resp.request.method} {resp.request.url.path}: the answer is not JSON",
            retryable=False,
            status=resp.status_code,
        ) from None
