"""A merchant's SKU reaches the core as the shop names it, with quotes, asterisks, semicolons
and all: a stocktake names such a SKU, and an order refused for it was never reserved while the
shop retried the webhook and in the end dropped its subscription."""

from __future__ import annotations

import pytest

from connectors.errors import MalformedPayload
from connectors.shopify.mapping import map_webhook as shopify_webhook
from connectors.woocommerce.mapping import map_webhook as woo_webhook
from hub.stockfile import parse

SKUS = [
    'PIPE-1/2"',
    "BOLT*M8",
    "O'NEIL-CAP",
    "KIT;2",
    "<b>TEE</b>",
    "ÄRMEL-ß",
    "100%-WOOL",
    "MUG-👨\u200d👩\u200d👧",  # an emoji joined by zero-width joiners
    "CAP-🩷",  # an emoji newer than some Pythons' tables
    "SOFT\u00adHYPHEN",
    "می\u200cخواهم",  # Persian, with the non-joiner it needs
]


@pytest.mark.parametrize("sku", SKUS)
def test_a_shopify_order_keeps_its_sku(load, shopify_account, sku):
    order = load("shopify", "orders_create")
    order["line_items"][0]["sku"] = f"  {sku} "
    [env] = shopify_webhook("orders/create", order, shopify_account)
    assert env.data.lines[0].sku == sku


@pytest.mark.parametrize("sku", SKUS)
def test_a_woocommerce_order_keeps_its_sku(load, woo_account, sku):
    order = load("woocommerce", "order_processing")
    order["line_items"][0]["sku"] = sku
    placed = woo_webhook("order.updated", order, woo_account)[0].data
    assert placed.lines[0].sku == sku


def test_a_stocktake_names_the_same_skus():
    text = "sku,location,quantity\n" + "".join(
        f'"{s.replace(chr(34), chr(34) * 2)}",main,{n}\n' for n, s in enumerate(SKUS, 1)
    )
    assert [line.sku for line in parse(text)] == SKUS


@pytest.mark.parametrize(
    "sku",
    [
        "TEE\u202eM",
        "TEE\u2067M",
        "TEE\x9bM",
        "TEE\u2028M",
        "..",
        " ..",
        "\u00a0.",
        "x" * 129,
        "A\tB",
    ],
)
def test_characters_that_change_what_an_operator_sees_are_refused(load, shopify_account, sku):
    order = load("shopify", "orders_create")
    order["line_items"][0]["sku"] = sku
    with pytest.raises(MalformedPayload, match=r"line_items\[0\].*unusable SKU"):
        shopify_webhook("orders/create", order, shopify_account)
