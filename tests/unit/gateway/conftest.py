from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.base import sign
from hub.bus import BrokerUnavailable, Publisher
from hub.config import AccountConfig, HubConfig
from hub.gateway import create_gateway
from schemas.envelope import Envelope

FIXTURES = Path(__file__).parents[2] / "fixtures"
SHOPIFY_SECRET = "acme-secret"
WOO_SECRET = "corner-secret"
OTHER_SECRET = "other-secret"


class RecordingPublisher(Publisher):
    """Implements the real Publisher port; remembers every batch it acknowledged."""

    def __init__(self) -> None:
        self.batches: list[list[Envelope]] = []
        self.down = False
        self.delay = 0.0

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.down:
            raise BrokerUnavailable("broker not reachable")
        self.batches.append(list(envelopes))

    @property
    def published(self) -> list[Envelope]:
        return [e for batch in self.batches for e in batch]


def hub_config() -> HubConfig:
    return HubConfig(
        accounts={
            "acme": AccountConfig(connector="shopify", webhook_secret=SHOPIFY_SECRET),
            "corner": AccountConfig(connector="woocommerce", webhook_secret=WOO_SECRET),
            "other": AccountConfig(connector="shopify", webhook_secret=OTHER_SECRET),
        }
    )


def fixture(platform: str, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / platform / f"{name}.json").read_text())
    return data


def shopify_headers(body: bytes, topic: str = "orders/create", **extra: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Shopify-Hmac-Sha256": sign(SHOPIFY_SECRET, body),
        "X-Shopify-Topic": topic,
        "X-Shopify-Event-Id": "98880550-7158-44d4-b7cd-2c97c8a091b5",
        "X-Shopify-Webhook-Id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        **extra,
    }


def woo_headers(body: bytes, topic: str = "order.created") -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-WC-Webhook-Signature": sign(WOO_SECRET, body),
        "X-WC-Webhook-Topic": topic,
        "X-WC-Webhook-ID": "12",
    }


@pytest.fixture
def publisher() -> RecordingPublisher:
    return RecordingPublisher()


@pytest.fixture
async def client(publisher: RecordingPublisher):
    app = create_gateway(hub_config(), publisher, max_body=64 * 1024, publish_timeout=0.5)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as c:
        yield c
