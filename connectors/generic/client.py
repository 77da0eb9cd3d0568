"""REST stock push for the generic connector: one call per SKU on the account's URL template.

`stock_url` (relative to `api_url`, `{sku}` URL-quoted) receives `{stock_field: available}` with
`stock_method` (PUT by default); `GET` on the same URL reads a SKU's stock from `stock_field`.
Order listing needs a platform-specific API, so resync is not offered: it raises a permanent
ConnectorError.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from urllib.parse import quote

import httpx

from connectors.base import Account, OrderPage, StockPushResult
from connectors.errors import ConnectorError
from connectors.generic.config import settings
from connectors.http import HttpApi, RateLimiter, RetryPolicy


class GenericClient:
    def __init__(
        self,
        account: Account,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        cfg = account.config
        self.settings = settings(account)
        if not cfg.api_url or not self.settings.stock_url:
            raise ConnectorError(
                f"account {account.name}: api_url and stock_url are required", retryable=False
            )
        token = cfg.secret("api_token")
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        client = httpx.AsyncClient(
            base_url=cfg.api_url.rstrip("/"),
            headers=headers,
            transport=transport,
            timeout=(policy or RetryPolicy()).timeout,
        )
        rate = float(cfg.extra.get("rate_limit_per_second", 5.0))
        self.api = HttpApi(
            client, limiter=RateLimiter(rate, max(1, int(rate))), policy=policy, name=account.source
        )

    def _url(self, sku: str) -> str:
        assert self.settings.stock_url is not None
        segment = quote(sku, safe="")
        if not segment.strip("."):  # "." and ".." are dot segments: the client would drop them
            segment = segment.replace(".", "%2E")
        return self.settings.stock_url.format(sku=segment)

    async def list_orders(self, *, since: datetime | None, cursor: str | None) -> OrderPage:
        raise ConnectorError("the generic connector cannot list orders", retryable=False)

    async def get_stock(self, skus: Sequence[str] | None = None) -> dict[str, int]:
        if skus is None:
            raise ConnectorError("the generic connector reads stock per SKU only", retryable=False)
        out: dict[str, int] = {}
        for sku in skus:
            try:
                response = await self.api.request("GET", self._url(sku))
            except ConnectorError as exc:
                if exc.status == 404:
                    continue
                raise
            value = response.json().get(self.settings.stock_field)
            if isinstance(value, int) and not isinstance(value, bool):
                out[sku] = value
        return out

    async def set_stock(self, levels: Mapping[str, int], *, force: bool = False) -> StockPushResult:
        result = StockPushResult()
        for sku, available in levels.items():
            try:
                await self.api.request(
                    self.settings.stock_method,
                    self._url(sku),
                    json={self.settings.stock_field: available},
                )
            except ConnectorError as exc:
                if exc.retryable:
                    exc.partial = result  # the SKUs before this one were set
                    raise
                result.failed[sku] = exc.message
                continue
            result.updated[sku] = available
        return result

    async def aclose(self) -> None:
        await self.api.aclose()
