from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.base import Account
from connectors.http import RetryPolicy
from connectors.shopify.client import ShopifyClient
from connectors.shopify.simulator import ShopifySimulator
from connectors.woocommerce.client import WooCommerceClient
from connectors.woocommerce.simulator import WooCommerceSimulator
from hub.config import AccountConfig

FIXTURES = Path(__file__).parents[3] / "fixtures"
FAST = RetryPolicy(attempts=5, initial_wait=0.01, max_wait=0.05, timeout=2.0)


@pytest.fixture
def load() -> Callable[[str, str], dict[str, Any]]:
    def _load(platform: str, name: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((FIXTURES / platform / f"{name}.json").read_text())
        return data

    return _load


@pytest.fixture
def shopify_account() -> Account:
    return Account(
        "acme",
        AccountConfig(
            connector="shopify",
            channel="online",
            location="main",
            webhook_secret="acme-secret",
            api_url="https://acme.myshopify.com",
            api_token="shpat_simulated",
            rate_limit_per_second=1000,
        ),
    )


@pytest.fixture
def woo_account() -> Account:
    return Account(
        "corner",
        AccountConfig(
            connector="woocommerce",
            channel="online",
            location="shop-2",
            webhook_secret="corner-secret",
            api_url="https://corner.example",
            consumer_key="ck_simulated",
            consumer_secret="cs_simulated",
            rate_limit_per_second=1000,
            rate_limit_burst=100,
        ),
    )


@pytest.fixture
def shopify_sim() -> ShopifySimulator:
    return ShopifySimulator()


@pytest.fixture
def woo_sim() -> WooCommerceSimulator:
    return WooCommerceSimulator()


@pytest.fixture
async def shopify_client(shopify_sim, shopify_account):
    client = ShopifyClient(
        shopify_account, transport=httpx.ASGITransport(app=shopify_sim.app), policy=FAST
    )
    yield client
    await client.aclose()


@pytest.fixture
async def woo_client(woo_sim, woo_account):
    client = WooCommerceClient(
        woo_account, transport=httpx.ASGITransport(app=woo_sim.app), policy=FAST, page_size=3
    )
    yield client
    await client.aclose()
