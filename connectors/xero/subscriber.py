"""The Xero account's consumer side: each voucher of `hub.vouchers.v1` as a manual journal.

Config (`[accounts.NAME]`):

```toml
[accounts.books]
connector = "xero"
api_url = "https://api.xero.com"      # the simulator's address in tests and the demo
client_id = "env:XERO_CLIENT_ID"      # the app's OAuth2 credentials: access tokens are
client_secret = "env:XERO_CLIENT_SECRET"  # refreshed as they expire (every 30 minutes)
refresh_token = "env:XERO_REFRESH_TOKEN"  # starts the chain; the newest is kept in var/xero/
tenant_id = "env:XERO_TENANT_ID"      # the organisation (Xero-tenant-id header)
account_codes = { "1122" = "610", "6001" = "200" }   # hub chart code -> Xero account code
```

Without `client_id`, `api_token` is a fixed access token (a test, or a token another process
renews). A refused token (401, 403) is retryable: the vouchers wait, none is dead-lettered.

`deliver` raises `ConnectorError`: retryable for what may pass later (5xx, 429, timeouts once the
client's own retries ran out), permanent for a journal Xero refuses (dead-letter it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from connectors.errors import ConnectorError
from connectors.xero.client import API_URL, TokenSource, XeroClient
from connectors.xero.oauth import TOKEN_URL, XeroTokens
from hub.config import AccountConfig
from schemas.finance import VoucherIssued


class XeroVoucherSink:
    paced = True  # about a call a second (Xero allows 60 a minute per organisation)

    def __init__(self, client: XeroClient) -> None:
        self.client = client

    async def deliver(self, voucher: VoucherIssued) -> bool:
        """Book the voucher in Xero (a repeat returns the first journal and books nothing)."""
        await self.client.post_voucher(voucher)
        return True

    async def aclose(self) -> None:
        await self.client.aclose()


def from_account(
    account: AccountConfig,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    var_dir: Path = Path("var"),
    name: str = "xero",
) -> XeroVoucherSink:
    tenant = account.secret("tenant_id")
    client_id = account.secret("client_id")
    token: TokenSource | None
    if client_id:
        secret, refresh = account.secret("client_secret"), account.secret("refresh_token")
        if not secret or not refresh:
            raise ConnectorError(
                "xero account with client_id needs client_secret and refresh_token",
                retryable=False,
            )
        token = XeroTokens(
            client_id=client_id,
            client_secret=secret,
            refresh_token=refresh,
            store=var_dir / "xero" / f"{name}.json",
            http=httpx.AsyncClient(transport=transport, timeout=10.0),
            token_url=str(account.extra.get("token_url") or TOKEN_URL),
        )
    else:
        token = account.secret("api_token")
    if not token or not tenant:
        raise ConnectorError(
            "xero account needs tenant_id, and client_id (with client_secret and "
            "refresh_token) or api_token",
            retryable=False,
        )
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
