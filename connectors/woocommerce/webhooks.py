"""WooCommerce webhook verification: `X-WC-Webhook-Signature` = base64(HMAC-SHA256(secret, body)).

WooCommerce sends no delivery time header, so there is no replay window here; duplicates and
replays map to the same message ids and change nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime

from connectors.base import Account, header, sign, verify_hmac

SIGNATURE_HEADER = "X-WC-Webhook-Signature"
_PING = re.compile(rb"webhook_id=[0-9]{1,20}")


def is_ping(body: bytes, headers: Mapping[str, str]) -> bool:
    """WooCommerce's activation ping (`WC_Webhook::deliver_ping`): a form body `webhook_id=N`
    with no topic and no signature. It must be answered 200, or WooCommerce reports the
    delivery URL as failing; it carries nothing to act on."""
    return header(headers, "X-WC-Webhook-Topic") is None and bool(_PING.fullmatch(body.strip()))


def verify(body: bytes, headers: Mapping[str, str], account: Account, now: datetime) -> None:
    if is_ping(body, headers):
        return  # unsigned by WooCommerce; the gateway publishes nothing for it
    verify_hmac(
        body, header(headers, SIGNATURE_HEADER), account.config.webhook_secrets(now), "base64"
    )


def signed_headers(
    body: bytes,
    secret: str,
    *,
    topic: str,
    source: str,
    webhook_id: str = "1",
    delivery_id: str = "",
) -> dict[str, str]:
    """The headers WooCommerce sends with a delivery (for simulators and tests)."""
    resource, _, event = topic.partition(".")
    return {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(secret, body),
        "X-WC-Webhook-Source": source,
        "X-WC-Webhook-Topic": topic,
        "X-WC-Webhook-Resource": resource,
        "X-WC-Webhook-Event": event,
        "X-WC-Webhook-ID": webhook_id,
        "X-WC-Webhook-Delivery-ID": delivery_id,
    }
