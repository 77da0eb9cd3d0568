"""Generic signed JSON webhooks: HMAC-SHA256 of the raw body, header and encoding per account."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from connectors.base import Account, header, verify_hmac
from connectors.generic.config import settings


def verify(body: bytes, headers: Mapping[str, str], account: Account, now: datetime) -> None:
    cfg = settings(account)
    provided = header(headers, cfg.signature_header)
    if provided and cfg.signature_prefix and provided.startswith(cfg.signature_prefix):
        provided = provided[len(cfg.signature_prefix) :]
    if provided and cfg.signature_encoding == "hex":
        provided = provided.lower()
    verify_hmac(body, provided, account.config.webhook_secrets(now), cfg.signature_encoding)
