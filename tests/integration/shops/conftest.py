"""Shops under test: simulated Shopify and WooCommerce reached in-process, a hub whose store runs
on both databases, and a publisher that records instead of talking to Kafka."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest

from connectors.shopify.simulator import ShopifySimulator
from connectors.woocommerce.simulator import WooCommerceSimulator
from hub.bus import BrokerUnavailable
from hub.config import AccountConfig, ChannelRule, HubConfig, Settings
from schemas.envelope import Envelope

# The online channel holds 2 units back, so the hub's available-to-sell is not its on-hand.
CHANNELS = {"online": ChannelRule(buffer=2)}


def shop_accounts(shopify_url: str, woo_url: str, **overrides: str) -> dict[str, AccountConfig]:
    return {
        "acme": AccountConfig(
            connector="shopify",
            channel="online",
            webhook_secret="acme-secret",
            api_url=shopify_url,
            api_token=overrides.get("acme_token", "shpat_simulated"),
            rate_limit_per_second=1000,
            rate_limit_burst=1000,
        ),
        "corner": AccountConfig(
            connector="woocommerce",
            channel="online",
            webhook_secret="corner-secret",
            api_url=woo_url,
            consumer_key="ck_simulated",
            consumer_secret=overrides.get("corner_secret", "cs_simulated"),
            rate_limit_per_second=1000,
            rate_limit_burst=1000,
        ),
    }


def hub_settings(db_url: str, tmp_path: Path, **overrides: str) -> Settings:
    s = Settings(database_url=db_url, var_dir=tmp_path / "var")
    s.__dict__["hub"] = HubConfig(
        channels=CHANNELS,
        accounts=shop_accounts("https://acme.myshopify.com", "https://corner.example", **overrides),
    )
    return s


class RecordingPublisher:
    """Records what would go to Kafka; `fail_on` makes that call (1-based) fail like a broker
    that stopped acknowledging."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.fail_on = fail_on
        self.calls = 0
        self.sent: list[Envelope] = []

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        self.calls += 1
        if self.calls == self.fail_on:
            raise BrokerUnavailable("broker did not acknowledge")
        self.sent.extend(envelopes)

    @property
    def ids(self) -> list[str]:
        return [e.id for e in self.sent]


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return hub_settings(db_url, tmp_path)


@pytest.fixture
def shopify() -> ShopifySimulator:
    return ShopifySimulator(bucket_size=100_000)


@pytest.fixture
def woo() -> WooCommerceSimulator:
    return WooCommerceSimulator()


@pytest.fixture
def transports(
    shopify: ShopifySimulator, woo: WooCommerceSimulator
) -> dict[str, httpx.ASGITransport]:
    return {
        "acme": httpx.ASGITransport(app=shopify.app),
        "corner": httpx.ASGITransport(app=woo.app),
    }
