"""Xero's OAuth2 tokens for a long-running sink: an access token lasts 30 minutes, and is
refreshed with the refresh token, which Xero rotates on every use (the old one stops working).

The newest refresh token is kept in a file (written whole, then renamed), so a restart goes on
with it; the one in the config only starts the chain. A refresh Xero refuses (revoked, unused
for 60 days, the app disconnected) is retryable: vouchers wait, none is dead-lettered, until a
person connects the app again and sets the new refresh token.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import os
import time
from pathlib import Path

import httpx

from connectors.edi_common.control import atomic_write
from connectors.errors import ConnectorError

TOKEN_URL = "https://identity.xero.com/connect/token"
EARLY = 120.0  # seconds before expiry that a token counts as expired (clock skew, slow calls)


class XeroTokens:
    """A token source for `XeroClient`: `await tokens()` is a valid access token."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        store: Path,
        http: httpx.AsyncClient,
        token_url: str = TOKEN_URL,
    ) -> None:
        self.client_id, self.client_secret = client_id, client_secret
        self.store, self.http, self.token_url = store, http, token_url
        self.configured = refresh_token
        self.refresh_token = self._stored() or refresh_token
        self._access: str | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()

    def _stored(self) -> str | None:
        """The newest refresh token of the chain the configured one started. A configured token
        that is not the one the stored chain started from is a new connection (the operator
        connected the app again): it wins."""
        try:
            raw = json.loads(self.store.read_text())
        except FileNotFoundError:
            return None
        except ValueError:
            raise ConnectorError(
                f"{self.store} is corrupt; fix it by hand", retryable=False
            ) from None
        if not isinstance(raw, dict):
            return None
        started = raw.get("started_by")
        if started is not None and started != _digest(self.configured):
            return None  # (a store written before chains were named is trusted)
        token = raw.get("refresh_token")
        return str(token) if token else None

    async def aclose(self) -> None:
        await self.http.aclose()

    def invalidate(self) -> None:
        """The API refused the access token (expired early, revoked): the next call refreshes."""
        self._access = None

    async def __call__(self) -> str:
        async with self._lock:  # one refresh at a time: a rotated token works once
            if self._access is None or time.monotonic() > self._expires - EARLY:
                await self._refresh()
            assert self._access is not None
            return self._access

    async def _refresh(self) -> None:
        # One refresh at a time across processes too (the worker and `hub books deliver`): a
        # rotated token works once, so each takes the newest from the store under the lock.
        self.store.parent.mkdir(parents=True, exist_ok=True)
        path = self.store.with_suffix(".lock")
        lock = await asyncio.to_thread(os.open, path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            await asyncio.to_thread(fcntl.flock, lock, fcntl.LOCK_EX)
            self.refresh_token = self._stored() or self.refresh_token
            await self._refresh_locked()
        finally:
            os.close(lock)  # and the lock with it

    async def _refresh_locked(self) -> None:
        try:
            response = await self.http.post(
                self.token_url,
                auth=(self.client_id, self.client_secret),
                data={"grant_type": "refresh_token", "refresh_token": self.refresh_token},
            )
        except httpx.HTTPError as exc:
            raise ConnectorError(f"Xero token refresh: {exc!r}", retryable=True) from None
        if response.status_code >= 500 or response.status_code == 429:
            raise ConnectorError(
                f"Xero token refresh: {response.status_code}",
                retryable=True,
                status=response.status_code,
            )
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code != 200 or not isinstance(body, dict) or "access_token" not in body:
            error = body.get("error") if isinstance(body, dict) else None
            raise ConnectorError(
                f"Xero refused the refresh token ({error or response.status_code}): connect the "
                f"app again and set its new refresh_token; vouchers wait until then",
                retryable=True,
                status=response.status_code,
            )
        if body.get("refresh_token"):
            self.refresh_token = str(body["refresh_token"])
            kept = {"refresh_token": self.refresh_token, "started_by": _digest(self.configured)}
            atomic_write(self.store, json.dumps(kept).encode())
        self._access = str(body["access_token"])
        self._expires = time.monotonic() + float(body.get("expires_in", 1800))


def _digest(token: str) -> str:
    """Which configured token a stored chain started from, without keeping that token."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]
