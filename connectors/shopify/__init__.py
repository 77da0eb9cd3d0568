"""Shopify: webhooks, mapping, Admin REST client, simulator."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import httpx

from connectors.base import Account, ShopClient, header, parse_json
from connectors.errors import MalformedPayload
from connectors.shopify import mapping, webhooks
from schemas.envelope import Envelope


class ShopifyConnector:
    name = "shopify"

    def verify(
        self, body: bytes, headers: Mapping[str, str], account: Account, now: datetime
    ) -> None:
        webhooks.verify(body, headers, account, now)

    def parse(
        self, body: bytes, headers: Mapping[str, str], account: Account, now: datetime
    ) -> list[Envelope]:
        topic = header(headers, "X-Shopify-Topic")
        if not topic:
            raise MalformedPayload("X-Shopify-Topic header is missing")
        if topic not in mapping.TOPICS:
            return []
        return mapping.map_webhook(topic, parse_json(body), account)

    def client(
        self, account: Account, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> ShopClient:
        from connectors.shopify.client import ShopifyClient

        return ShopifyClient(account, transport=transport)


CONNECTOR = ShopifyConnector()
