"""Xero manual journals client: OAuth2 bearer + `Xero-tenant-id`, retries, idempotency.

Transient failures (timeouts, connection errors, 5xx, 429 honouring `Retry-After`) are retried
by `connectors.http.HttpApi`; a 400 `ValidationException` is permanent: `ConnectorError(
retryable=False)` carrying Xero's validation messages, for the dead-letter queue. Every post sends
`Idempotency-Key: <voucher id>`, so a retry after a lost response books nothing twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx

from connectors.errors import ConnectorError
from connectors.http import HttpApi, RateLimiter, RetryPolicy
from connectors.xero import mapping
from schemas.finance import VoucherIssued

API_URL = "https://api.xero.com"
JOURNALS_PATH = "/api.xro/2.0/ManualJournals"

TokenSource = str | Callable[[], Awaitable[str]]


def validation_messages(body: Any) -> list[str]:
    """The `Message`s of a Xero error body (ValidationException: Elements[].ValidationErrors[])."""
    if not isinstance(body, dict):
        return []
    messages = [
        str(err.get("Message", ""))
        for element in body.get("Elements") or []
        if isinstance(element, dict)
        for err in element.get("ValidationErrors") or []
        if isinstance(err, dict)
    ]
    if not messages:
        for key in ("Message", "Detail", "Title"):
            if body.get(key):
                messages.append(str(body[key]))
                break
    return messages


class _XeroApi(HttpApi):
    def __init__(self, *args: Any, on_unauthorized: Callable[[], None] | None = None, **kw: Any):
        super().__init__(*args, **kw)
        self.on_unauthorized = on_unauthorized

    async def after_response(self, response: httpx.Response) -> None:
        if response.status_code in (401, 403):
            # An expired or revoked token, an organisation disconnected: nothing is wrong with
            # the journal, so it is not refused for good. The next attempt takes a new token.
            if self.on_unauthorized is not None:
                self.on_unauthorized()
            raise ConnectorError(
                f"Xero refused the credentials ({response.status_code} "
                f"{response.text[:200]}): vouchers wait for a valid token and tenant",
                retryable=True,
                status=response.status_code,
            )
        if response.status_code == 400:
            try:
                body = mapping.loads(response.content)
            except ValueError:
                body = None
            messages = validation_messages(body) or [response.text[:300]]
            kind = body.get("Type", "") if isinstance(body, dict) else ""
            raise ConnectorError(
                f"Xero refused the journal ({kind or 'Bad Request'}): " + "; ".join(messages),
                retryable=False,
                status=400,
            )


class XeroClient:
    """Posts vouchers as POSTED manual journals to one Xero organisation (tenant)."""

    def __init__(
        self,
        *,
        tenant_id: str,
        token: TokenSource,
        base_url: str = API_URL,
        account_codes: Mapping[str, str] | None = None,
        http: httpx.AsyncClient | None = None,
        policy: RetryPolicy | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.tenant_id = tenant_id
        self._token = token
        self.account_codes = dict(account_codes or {})
        policy = policy or RetryPolicy()
        client = http or httpx.AsyncClient(base_url=base_url, timeout=policy.timeout)
        # Xero allows 60 calls a minute per organisation; stay under it by default.
        self.api = _XeroApi(
            client,
            limiter=limiter if limiter is not None else RateLimiter(1.0, burst=5),
            policy=policy,
            name="xero",
            on_unauthorized=getattr(token, "invalidate", None),
        )

    async def _bearer(self) -> str:
        return self._token if isinstance(self._token, str) else await self._token()

    async def post_voucher(self, voucher: VoucherIssued) -> str:
        """Book the voucher; returns Xero's ManualJournalID (the same one on a repeat)."""
        body = mapping.dumps(mapping.request_body(voucher, self.account_codes))
        response = await self.api.request(
            "POST",
            JOURNALS_PATH,
            content=body.encode(),
            headers={
                "Authorization": f"Bearer {await self._bearer()}",
                "Xero-tenant-id": self.tenant_id,
                "Idempotency-Key": voucher.voucher_id,
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
        )
        try:
            journals = mapping.loads(response.content)["ManualJournals"]
            return str(journals[0]["ManualJournalID"])
        except (ValueError, KeyError, IndexError, TypeError):
            raise ConnectorError(
                f"unexpected Xero response: {response.text[:300]}", retryable=False
            ) from None

    async def aclose(self) -> None:
        await self.api.aclose()
        close = getattr(self._token, "aclose", None)
        if close is not None:
            await close()
