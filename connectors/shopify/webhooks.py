"""Shopify webhook verification: base64 HMAC-SHA256 of the raw body, plus a replay window.

`X-Shopify-Triggered-At` is not covered by the signature, so the window only stops naive replays of
old captures; the deterministic message ids are what make a replay harmless. Shopify retries a
failed delivery for up to 4 hours, so the default window is 6 hours (`replay_window_seconds` in the
account config; 0 turns the check off). Clock skew of 5 minutes into the future is tolerated.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta

from connectors.base import Account, header, sign, timestamp, verify_hmac
from connectors.errors import MalformedPayload, SignatureInvalid
from hub.config import ConfigError

SIGNATURE_HEADER = "X-Shopify-Hmac-Sha256"
DEFAULT_REPLAY_WINDOW = timedelta(hours=6)
FUTURE_SKEW = timedelta(minutes=5)
MAX_REPLAY_WINDOW = timedelta(days=3650)


def verify(body: bytes, headers: Mapping[str, str], account: Account, now: datetime) -> None:
    verify_hmac(
        body, header(headers, SIGNATURE_HEADER), account.config.webhook_secrets(now), "base64"
    )
    check_replay_window(headers, account, now)


def check_replay_window(headers: Mapping[str, str], account: Account, now: datetime) -> None:
    triggered = header(headers, "X-Shopify-Triggered-At")
    if triggered is None:
        return
    window = replay_window(account)
    if window is None:
        return
    try:
        at = timestamp(triggered, "X-Shopify-Triggered-At")
    except MalformedPayload:
        raise SignatureInvalid("X-Shopify-Triggered-At is not a time") from None
    if at < now - window or at > now + FUTURE_SKEW:
        raise SignatureInvalid("delivery outside the accepted time window (replay?)")


def replay_window(account: Account) -> timedelta | None:
    """`replay_window_seconds` (0 or less: no window). A value that is no number of seconds a
    window can span is the account's configuration at fault (`ConfigError`, answered 503), not
    a forged delivery."""
    raw = account.config.extra.get("replay_window_seconds")
    if raw is None:
        return DEFAULT_REPLAY_WINDOW
    try:
        seconds = float(raw)
        if not math.isfinite(seconds):
            raise ValueError(raw)
        window = timedelta(seconds=seconds) if seconds > 0 else None
        if window is not None and window > MAX_REPLAY_WINDOW:
            raise OverflowError
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(
            f"account {account.name}: replay_window_seconds {raw!r} is not a number of seconds"
            f" up to {int(MAX_REPLAY_WINDOW.total_seconds())}"
        ) from None
    return window


def signed_headers(
    body: bytes,
    secret: str,
    *,
    topic: str,
    shop_domain: str,
    event_id: str,
    webhook_id: str,
    triggered_at: datetime,
    api_version: str = "2024-10",
) -> dict[str, str]:
    """The headers Shopify sends with a delivery (for simulators and tests)."""
    return {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(secret, body),
        "X-Shopify-Topic": topic,
        "X-Shopify-Shop-Domain": shop_domain,
        "X-Shopify-API-Version": api_version,
        "X-Shopify-Webhook-Id": webhook_id,
        "X-Shopify-Event-Id": event_id,
        "X-Shopify-Triggered-At": triggered_at.isoformat(),
    }
