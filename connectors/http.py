"""Shared HTTP plumbing for platform clients: rate limiter, error classification, retries.

Transient failures (timeouts, connection errors, 5xx, 429) are retried with tenacity; a 429's
`Retry-After` is honoured. Any other 4xx is permanent: `ConnectorError(retryable=False)` with the
platform's message, which the caller sends to the DLQ. When retries run out the last transient
error is raised with `retryable=True`, so a worker may try again later.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
)

from connectors.errors import ConnectorError

log = structlog.get_logger(__name__)


class RateLimiter:
    """Token bucket: `rate` requests per second on average, bursts up to `burst`."""

    def __init__(self, rate: float, burst: int = 1) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._stamp = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
                self._stamp = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep((1 - self._tokens) / self.rate)

    async def pause(self, seconds: float) -> None:
        """Hold every caller back (the platform said it is busy)."""
        async with self._lock:
            await asyncio.sleep(seconds)
            self._tokens = 0
            self._stamp = time.monotonic()


class TransientError(ConnectorError):
    """A failure worth retrying; `retry_after` is the platform's hint in seconds."""

    def __init__(self, message: str, *, status: int | None, retry_after: float | None) -> None:
        super().__init__(message, retryable=True, status=status)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 5
    initial_wait: float = 0.2
    max_wait: float = 10.0
    max_retry_after: float = 60.0
    timeout: float = 10.0


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds (it may be seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        at = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return max(0.0, (at - (now or datetime.now(UTC))).total_seconds())


def classify(response: httpx.Response) -> None:
    """Raise the typed error for a failed response; return for success."""
    status = response.status_code
    if status < 400:
        return
    detail = _detail(response)
    if status == 429:
        raise TransientError(
            f"rate limited: {detail}",
            status=status,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
    if status >= 500:
        raise TransientError(f"platform error {status}: {detail}", status=status, retry_after=None)
    if status == 408:
        raise TransientError(f"request timeout: {detail}", status=status, retry_after=None)
    raise ConnectorError(f"{status} {detail}", retryable=False, status=status)


def _detail(response: httpx.Response) -> str:
    try:
        body: Any = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, dict):
        for key in ("errors", "error", "message"):
            if key in body:
                return str(body[key])[:300]
    return str(body)[:300]


class HttpApi:
    """An httpx.AsyncClient with the limiter, error classification and retries of one account."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        limiter: RateLimiter | None = None,
        policy: RetryPolicy | None = None,
        name: str = "",
    ) -> None:
        self.client = client
        self.limiter = limiter
        self.policy = policy or RetryPolicy()
        self.name = name

    async def request(
        self,
        method: str,
        url: str,
        *,
        check: Callable[[httpx.Response], None] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send with retries. `check` may raise TransientError for a 2xx that is really a
        throttle (GraphQL answers 200 with `THROTTLED`), so it is retried like a 429."""
        policy = self.policy
        retrying = AsyncRetrying(
            retry=retry_if_exception(lambda e: isinstance(e, TransientError)),
            stop=stop_after_attempt(policy.attempts),
            wait=self._wait,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                response = await self._once(method, url, **kwargs)
                if check is not None:
                    check(response)
                return response
        raise AssertionError("unreachable")  # pragma: no cover

    async def _once(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        if self.limiter is not None:
            await self.limiter.acquire()
        try:
            response = await self.client.request(method, url, **kwargs)
        except httpx.TimeoutException as exc:
            raise TransientError(f"timeout: {exc!r}", status=None, retry_after=None) from None
        except httpx.TransportError as exc:
            raise TransientError(f"connection: {exc!r}", status=None, retry_after=None) from None
        await self.after_response(response)
        classify(response)
        return response

    async def after_response(self, response: httpx.Response) -> None:
        """Hook for platform-specific pacing (Shopify's leaky bucket)."""

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        policy = self.policy
        backoff = min(policy.max_wait, policy.initial_wait * 2 ** (state.attempt_number - 1))
        backoff += random.uniform(0, policy.initial_wait)
        if isinstance(exc, TransientError) and exc.retry_after is not None:
            wait = min(exc.retry_after, self.policy.max_retry_after)
        else:
            wait = backoff
        log.info(
            "connector.retry",
            api=self.name,
            attempt=state.attempt_number,
            wait=wait,
            error=str(exc)[:200],
        )
        return wait

    async def aclose(self) -> None:
        await self.client.aclose()


class SoldOut(Exception):
    """A simulated shop refused an order: its own stock of `sku` is too low."""

    def __init__(self, sku: str) -> None:
        super().__init__(f"sold out: {sku}")
        self.sku = sku


async def post_webhook(
    url: str,
    headers: dict[str, str],
    body: bytes,
    *,
    client: httpx.AsyncClient | None = None,
) -> httpx.Response:
    """Deliver a signed webhook to the hub's gateway (simulators, tests, the demo)."""
    if client is not None:
        return await client.post(url, content=body, headers=headers)
    async with httpx.AsyncClient(timeout=10.0) as own:
        return await own.post(url, content=body, headers=headers)


class Faults:
    """Failure injection shared by the platform simulators (tests set these attributes).

    `fail_next(n, status)` answers the next n API calls with that status; `throttle_next(n,
    retry_after)` answers them 429 with `Retry-After`; `latency` delays every call.
    """

    def __init__(self) -> None:
        self.latency = 0.0
        self._fail: list[int] = []
        self._throttle: list[float] = []
        self.calls: list[tuple[str, str]] = []

    def fail_next(self, n: int = 1, status: int = 503) -> None:
        self._fail.extend([status] * n)

    def throttle_next(self, n: int = 1, retry_after: float = 1.0) -> None:
        self._throttle.extend([retry_after] * n)

    def clear(self) -> None:
        self._fail.clear()
        self._throttle.clear()
        self.latency = 0.0

    async def apply(self, method: str, path: str) -> tuple[int, dict[str, str]] | None:
        """Record the call, wait the latency; an injected (status, headers) or None."""
        self.calls.append((method, path))
        if self.latency:
            await asyncio.sleep(self.latency)
        if self._throttle:
            ra = self._throttle.pop(0)
            return 429, {"Retry-After": _fmt_seconds(ra)}
        if self._fail:
            return self._fail.pop(0), {}
        return None


def _fmt_seconds(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:.3f}"
