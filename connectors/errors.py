"""Typed connector failures. The edge (gateway, worker) turns them into HTTP codes or DLQ records."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from connectors.base import StockPushResult


class SignatureInvalid(Exception):
    """The webhook's signature is missing, malformed, wrong, or the delivery is a replay."""

    def __init__(self, reason: str = "invalid signature") -> None:
        super().__init__(reason)
        self.reason = reason


class MalformedPayload(ValueError):
    """The payload cannot be turned into canonical messages; `reason` says which field and why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnknownAccount(LookupError):
    """No configured account of that name (or it belongs to another connector)."""

    def __init__(self, account: str) -> None:
        super().__init__(f"unknown account {account!r}")
        self.account = account


class PayloadTooLarge(ValueError):
    """The body exceeds the configured limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"body larger than {limit} bytes")
        self.limit = limit


class ConnectorError(Exception):
    """A platform call failed. `retryable` says whether trying again later can succeed.

    A stock push that failed after setting some SKUs says which in `partial` (a
    `StockPushResult`): only the rest are tried again. `contended` says a retry can come soon
    (a compare-and-set lost to the shop's own sales), without a growing backoff."""

    contended = False  # lost to concurrent changes on a shop that is well

    def __init__(self, message: str, *, retryable: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.status = status
        self.partial: StockPushResult | None = None

    def __repr__(self) -> str:
        return f"ConnectorError({self.message!r}, retryable={self.retryable}, status={self.status})"
