"""The Xero account's consumer side: each voucher of `hub.vouchers.v1` as a manual journal.

Config (`[accounts.NAME]`):

```toml
[accounts.books]
connector = "xero"
api_url = "https://api.xero.com"      # the simulator's address in tests and the demo
api_token = "env:XERO_ACCESS_TOKEN"   # OAuth2 access token
tenant_id = "env:XERO_TENANT_ID"      # the organisation (Xero-tenant-id header)
account_codes = { "1122" = "610", "6001" = "200" }   # hub chart code -> Xero account code
```

`deliver` raises `ConnectorError`: retryable for what may pass later (5xx, 429, timeouts once the
client's own retries ran out), permanent for a journal Xero refuses (dead-letter it).
"""

from __future__ import annotations

from typing import Any

import httpx

from connectors.errors import ConnectorError
from connectors.xero.client import API_URL, XeroClient
from hub.config import AccountConfig
from schemas.finance import VoucherIssued


class XeroVoucherSink:
    def __init__(self, client: XeroClient) -> None:
        self.client = client

    async def deliver(self, voucher: VoucherIssued) -> bool:
        """Book the voucher in Xero (a repeat returns the first journal and books nothing)."""
        await self.client.post_voucher(voucher)
        return True

    async def aclose(self) -> None:
        await self.client.aclose()


def from_account(
    account: AccountConfig, *, transport: httpx.AsyncBaseTransport | None = None
) -> XeroVoucherSink:
    token = account.secret("api_token")
    tenant = account.secret("tenant_id")
    if not token or not tenant:
        raise ConnectorError("xero account needs api_token and tenant_id", retryable=False)
    codes: Any = account.extra.get("account_codes", {})
    if not isinstance(codes, dict):
        raise ConnectorError("xero account_codes must be a table", retryable=False)
    base = account.api_url or API_URL
    http = httpx.AsyncClient(base_url=base, transport=transport, timeout=10.0)
    return XeroVoucherSink(
        XeroClient(
            tenant_id=tenant,
            token=token,
            base_url=base,
            account_codes={str(k): str(v) for k, v in codes.items()},
            http=http,
        )
    )
