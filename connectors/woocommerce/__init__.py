"""WooCommerce: webhooks, mapping, REST v3 client, simulator."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import httpx

from connectors.base import Account, ShopClient, header, parse_json
from connectors.errors import MalformedPayload
from connectors.woocommerce import mapping, webhooks
from schemas.envelope import Envelope


class WooCommerceConnector:
    name = "woocommerce"

    def verify(
        self, body: bytes, headers: Mapping[str, str], account: Account, now: datetime
    ) -> None:
        webhooks.verify(body, headers, account, now)

    def parse(
        self, body: bytes, headers: Mapping[str, str], account: Account, now: datetime
    ) -> list[Envelope]:
        topic = header(headers, "X-WC-Webhook-Topic")
        if not topic:
            # WooCommerce's activation ping (`webhook_id=N`) carries no topic: nothing to publish.
            if webhooks.is_ping(body, headers) or header(headers, "X-WC-Webhook-ID") is not None:
                return []
            raise MalformedPayload("X-WC-Webhook-Topic header is missing")
        if topic not in mapping.TOPICS:
            return []
        return mapping.map_webhook(topic, parse_json(body), account)

    def client(
        self, account: Account, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> ShopClient:
        from connectors.woocommerce.client import WooCommerceClient

        return WooCommerceClient(account, transport=transport)


CONNECTOR = WooCommerceConnector()
