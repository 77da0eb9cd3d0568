from __future__ import annotations

import copy
from decimal import Decimal

import pytest

from connectors.errors import MalformedPayload
from connectors.shopify.mapping import map_order, map_webhook
from hub.finance.billing import _price_lines
from schemas.orders import OrderCancelled, OrderFulfilled, OrderPlaced, OrderReturned
from schemas.payments import PaymentCaptured, PaymentRefunded


def _types(envelopes):
    return [type(e.data).__name__ for e in envelopes]


def test_order_created_maps_lines_prices_discounts_and_taxes(load, shopify_account):
    [env] = map_webhook("orders/create", load("shopify", "orders_create"), shopify_account)
    placed = env.data
    assert isinstance(placed, OrderPlaced)
    assert placed.order_key == "acme:450789469"
    assert (placed.account, placed.channel, placed.currency) == ("acme", "online", "USD")
    tee, mug = placed.lines
    assert (tee.sku, tee.quantity, tee.unit_price, tee.discount, tee.tax) == (
        "TEE-RED-M",
        2,
        Decimal("49.50"),
        Decimal("10.00"),
        Decimal("7.12"),
    )
    assert tee.location == "main" and tee.line_id == "866550311766439020"
    assert (mug.sku, mug.tax, mug.discount) == ("MUG-BLUE", Decimal("8.00"), Decimal(0))
    assert placed.total == Decimal("214.12") and placed.shipping == Decimal("10.00")
    assert placed.placed_at.isoformat() == "2026-11-20T15:15:00+00:00"
    assert env.time.isoformat() == "2026-11-20T15:15:02+00:00"  # updated_at: staleness clock


def billed(placed: OrderPlaced) -> Decimal:
    """What the books bill for the whole order: revenue and tax of every line and of shipping."""
    return sum((net + tax for _, net, tax in _price_lines(placed).values()), Decimal(0))


def test_the_books_bill_what_the_customer_pays(load, shopify_account):
    [env] = map_webhook("orders/create", load("shopify", "orders_create"), shopify_account)
    assert billed(env.data) == env.data.total == Decimal("214.12")


def test_a_free_shipping_code_leaves_no_shipping_to_bill(load, shopify_account):
    order = load("shopify", "orders_create")
    order["shipping_lines"][0]["discount_allocations"] = [
        {"amount": "10.00", "discount_application_index": 1}
    ]
    order["total_price"] = "204.12"  # the shipping discount is off what the customer pays
    [env] = map_webhook("orders/create", order, shopify_account)
    assert env.data.shipping == 0 and billed(env.data) == env.data.total


def test_taxed_shipping_is_billed_with_its_tax(load, shopify_account):
    order = load("shopify", "orders_create")
    order["shipping_lines"][0]["tax_lines"] = [{"price": "0.80", "rate": 0.08, "title": "VAT"}]
    order["total_tax"], order["total_price"] = "15.92", "214.92"
    [env] = map_webhook("orders/create", order, shopify_account)
    assert (env.data.shipping, env.data.shipping_tax) == (Decimal("10.00"), Decimal("0.80"))
    assert billed(env.data) == env.data.total
    # prices with tax included: the shipping price holds its tax, which is not billed twice
    order["taxes_included"], order["total_price"] = True, "214.12"
    for item in order["line_items"]:
        tax = sum(Decimal(t["price"]) for t in item["tax_lines"])
        item["price"] = str(Decimal(item["price"]) + tax / item["quantity"])
    [env] = map_webhook("orders/create", order, shopify_account)
    assert billed(env.data) == env.data.total
    assert _price_lines(env.data)[("~shipping", "~")] == (1, Decimal("9.20"), Decimal("0.80"))


@pytest.mark.parametrize("no_sku", [None, "", "  "])
def test_a_line_without_a_sku_is_a_charge_and_the_rest_is_reserved(load, shopify_account, no_sku):
    order = load("shopify", "orders_create")
    order["line_items"][0].update(sku=no_sku, variant_id=None, product_id=None)  # a custom item
    [env] = map_webhook("orders/create", order, shopify_account)
    assert [(ln.sku, ln.quantity) for ln in env.data.lines] == [("MUG-BLUE", 1)]
    # 2 × 49.50 less its 10.00 discount, and its 7.12 of tax
    assert (env.data.charges, env.data.charges_tax) == (Decimal("89.00"), Decimal("7.12"))
    assert billed(env.data) == env.data.total

    fulfilled = load("shopify", "orders_fulfilled")
    for f in fulfilled["fulfillments"]:
        for item in f["line_items"]:
            if item["sku"] == "TEE-RED-M":
                item["sku"] = no_sku
    shipped = [e.data for e in map_order(fulfilled, shopify_account)]
    [fulfilment] = [m for m in shipped if isinstance(m, OrderFulfilled)]
    assert {ln.sku for ln in fulfilment.lines} == {"MUG-BLUE"}


def test_a_refunded_custom_item_is_in_the_refund_but_brings_no_goods_back(load, shopify_account):
    refund = load("shopify", "refunds_create")
    custom = copy.deepcopy(refund["refund_line_items"][0])
    custom["line_item"].update(id=1, sku=None, variant_id=None, product_id=None)
    custom.update(subtotal="5.00", total_tax="0.40")
    refund["refund_line_items"].append(custom)
    refund["transactions"][0]["amount"] = "53.46"
    [returned] = [
        e.data
        for e in map_webhook("refunds/create", refund, shopify_account)
        if isinstance(e.data, OrderReturned)
    ]
    assert [ln.sku for ln in returned.lines] == ["TEE-RED-M"]
    # the goods' part follows the goods (shipped or not); the charge's is credited whole
    assert (returned.refund, returned.adjustment) == (Decimal("48.06"), Decimal("5.40"))
    # the custom item alone: a credit note without goods
    refund["refund_line_items"] = [custom]
    refund["transactions"][0]["amount"] = "5.40"
    [returned] = [
        e.data
        for e in map_webhook("refunds/create", refund, shopify_account)
        if isinstance(e.data, OrderReturned)
    ]
    assert (returned.lines, returned.refund, returned.adjustment) == ((), 0, Decimal("5.40"))


def _money_back(refund, amount: str) -> None:
    refund["transactions"][0]["amount"] = amount


@pytest.mark.parametrize(
    ("back", "lines", "adjustment"),
    [
        ("58.06", True, "10.00"),  # the item and its shipping (refund_shipping_lines)
        ("40.00", True, "-8.06"),  # less than the item's amount (an order adjustment)
        ("5.00", False, "5.00"),  # a goodwill refund: no item at all
    ],
)
def test_a_refund_is_credited_at_the_money_that_went_back(
    load, shopify_account, back, lines, adjustment
):
    refund = load("shopify", "refunds_create")
    _money_back(refund, back)
    if not lines:
        refund["refund_line_items"] = []
    returned, refunded = (e.data for e in map_webhook("refunds/create", refund, shopify_account))
    assert isinstance(returned, OrderReturned) and isinstance(refunded, PaymentRefunded)
    assert len(returned.lines) == (1 if lines else 0)
    assert returned.adjustment == Decimal(adjustment)
    assert returned.refund + returned.adjustment == refunded.amount == Decimal(back)


def test_a_refund_seen_pending_then_settled_gives_the_same_credit(load, shopify_account):
    refund = load("shopify", "refunds_create")
    _money_back(refund, "58.06")  # the tee and its shipping
    settled = map_webhook("refunds/create", refund, shopify_account)
    refund["transactions"][0]["status"] = "pending"
    pending = map_webhook("refunds/create", refund, shopify_account)
    assert [type(e.data) for e in pending] == [OrderReturned]  # no money moved yet
    assert pending[0].id == settled[0].id and pending[0].data == settled[0].data
    refund["transactions"][0]["status"] = "failure"
    [failed] = map_webhook("refunds/create", refund, shopify_account)
    assert (failed.data.refund, failed.data.adjustment) == (Decimal("48.06"), 0)


def test_a_refund_partly_settled_books_its_cash_once_all_of_it_has(load, shopify_account):
    """Split over two transactions, one settled and one pending: the cash is booked when both
    have settled, whole. Booked part way, the rest would come under the same id, a repeat."""
    refund = load("shopify", "refunds_create")
    second = dict(refund["transactions"][0], id=179259970, amount="28.06", status="pending")
    refund["transactions"][0]["amount"] = "30.00"
    refund["transactions"].append(second)
    part = map_webhook("refunds/create", refund, shopify_account)
    assert [type(e.data) for e in part] == [OrderReturned]
    second["status"] = "success"
    returned, refunded = map_webhook("refunds/create", refund, shopify_account)
    assert returned.id == part[0].id and returned.data == part[0].data
    assert isinstance(refunded.data, PaymentRefunded) and refunded.data.amount == Decimal("58.06")
    second["status"] = "failure"  # the gateway declined the second: the first alone went back
    [_, alone] = map_webhook("refunds/create", refund, shopify_account)
    assert alone.data.amount == Decimal("30.00")


@pytest.mark.parametrize(
    ("back", "in_shop_money"),
    [
        ("44.22", "48.06"),  # the line and its tax, as the refund gives them in both currencies
        ("52.00", "56.52"),  # more: at the refund's rate, 48.06 / 44.22, to the cent
        ("20.00", "21.74"),  # less
    ],
)
def test_money_back_in_the_buyers_currency_is_booked_in_the_shops(
    load, shopify_account, back, in_shop_money
):
    """A multi-currency order is refunded in the buyer's currency (EUR here, the shop's is
    USD): the money back is converted at the refund's own amounts in both, so the credit note
    and the cash out are in one currency and match. Settled or pending, the same credit."""
    refund = load("shopify", "refunds_create")
    _money_back(refund, back)
    refund["transactions"][0]["currency"] = "EUR"
    returned, refunded = (e.data for e in map_webhook("refunds/create", refund, shopify_account))
    assert isinstance(refunded, PaymentRefunded) and refunded.currency == "USD"
    assert refunded.amount == Decimal(in_shop_money)
    assert returned.currency == "USD" and returned.refund == Decimal("48.06")
    assert returned.refund + returned.adjustment == Decimal(in_shop_money)
    refund["transactions"][0]["status"] = "pending"
    [pending] = map_webhook("refunds/create", refund, shopify_account)
    assert pending.data == returned


def test_a_refund_of_shipping_alone_in_the_buyers_currency_is_in_the_shops(load, shopify_account):
    """Without lines, the shop's currency and the rate come from the shipping line refunded."""
    refund = load("shopify", "refunds_create")
    refund["refund_line_items"] = []
    refund["refund_shipping_lines"] = [
        {
            "id": 1,
            "shipping_line_id": 2,
            "subtotal_amount_set": {
                "shop_money": {"amount": "10.00", "currency_code": "USD"},
                "presentment_money": {"amount": "9.20", "currency_code": "EUR"},
            },
            "tax_amount_set": {
                "shop_money": {"amount": "0.80", "currency_code": "USD"},
                "presentment_money": {"amount": "0.74", "currency_code": "EUR"},
            },
        }
    ]
    _money_back(refund, "9.94")  # the shipping and its tax: their shop amounts exactly
    refund["transactions"][0]["currency"] = "EUR"
    returned, refunded = (e.data for e in map_webhook("refunds/create", refund, shopify_account))
    assert (refunded.amount, refunded.currency) == (Decimal("10.80"), "USD")
    assert (returned.refund, returned.adjustment, returned.currency) == (0, Decimal("10.80"), "USD")


def test_amounts_too_far_apart_for_a_rate_are_a_malformed_refund(load, shopify_account):
    refund = load("shopify", "refunds_create")
    line = refund["refund_line_items"][0]
    line["subtotal_set"]["shop_money"]["amount"] = "99999999999999"
    line["subtotal_set"]["presentment_money"]["amount"] = "0.000001"
    line["total_tax_set"]["presentment_money"]["amount"] = "0"
    line["total_tax_set"]["shop_money"]["amount"] = "0"
    refund["transactions"][0].update(currency="EUR", amount="99999999999")
    with pytest.raises(MalformedPayload, match="no usable exchange rate"):
        map_webhook("refunds/create", refund, shopify_account)


def test_money_back_in_a_currency_the_refund_gives_no_amounts_in_is_not_compared(
    load, shopify_account
):
    refund = load("shopify", "refunds_create")
    _money_back(refund, "52.00")
    refund["transactions"][0]["currency"] = "GBP"  # neither the shop's nor the lines' other
    returned = map_webhook("refunds/create", refund, shopify_account)[0].data
    assert (returned.refund, returned.adjustment) == (Decimal("48.06"), 0)


def test_an_order_of_custom_items_only_reserves_nothing_and_is_billed_when_fulfilled(
    load, shopify_account
):
    """Custom items only (a service, a custom sale at the till): placed without lines, all of
    it a charge, and its fulfilment comes without lines, so that the books bill it then. Gift
    cards only: no sale at all."""
    order = load("shopify", "orders_fulfilled")
    for item in order["line_items"]:
        item["sku"] = None
    for f in order["fulfillments"]:
        for item in f["line_items"]:
            item["sku"] = None
    msgs = [e.data for e in map_order(order, shopify_account)]
    [placed] = [m for m in msgs if isinstance(m, OrderPlaced)]
    assert placed.lines == () and placed.charges > 0
    assert billed(placed) == placed.total
    fulfilments = [m for m in msgs if isinstance(m, OrderFulfilled)]
    assert fulfilments and all(f.lines == () for f in fulfilments)

    free = copy.deepcopy(order)  # free custom items, paid shipping: the shipping is billed
    for item in free["line_items"]:
        item.update(price="0.00", total_discount="0.00", discount_allocations=[], tax_lines=[])
    [placed] = [e.data for e in map_order(free, shopify_account) if isinstance(e.data, OrderPlaced)]
    assert (placed.lines, placed.charges, placed.shipping) == ((), 0, Decimal("10.00"))

    for item in order["line_items"]:
        item["gift_card"] = True
    for f in order["fulfillments"]:
        for item in f["line_items"]:
            item["gift_card"] = True
    kinds = _types(map_order(order, shopify_account))
    assert "OrderPlaced" not in kinds and "OrderFulfilled" not in kinds
    order["shipping_lines"] = [{"price": None}]  # not read for a sale of gift cards only
    assert "PaymentCaptured" in _types(map_order(order, shopify_account))


def test_paid_order_adds_a_captured_payment_with_the_same_placed_id(load, shopify_account):
    created = map_webhook("orders/create", load("shopify", "orders_create"), shopify_account)
    paid = map_webhook("orders/paid", load("shopify", "orders_paid"), shopify_account)
    assert _types(paid) == ["OrderPlaced", "PaymentCaptured"]
    assert paid[0].id == created[0].id
    captured = paid[1].data
    assert isinstance(captured, PaymentCaptured)
    assert captured.amount == Decimal("214.12") and captured.gateway == "shopify_payments"


def test_cancelled_order_maps_to_cancel_keyed_by_the_order(load, shopify_account):
    envs = map_webhook("orders/cancelled", load("shopify", "orders_cancelled"), shopify_account)
    assert _types(envs) == ["OrderPlaced", "OrderCancelled"]
    cancelled = envs[1].data
    assert isinstance(cancelled, OrderCancelled)
    assert cancelled.reason == "customer" and envs[1].key == "acme:450789469"


def test_fulfilled_order_and_fulfillment_webhook_give_one_message_id(load, shopify_account):
    from_order = map_webhook(
        "orders/fulfilled", load("shopify", "orders_fulfilled"), shopify_account
    )
    [from_fulfillment] = map_webhook(
        "fulfillments/create", load("shopify", "fulfillments_create"), shopify_account
    )
    fulfilled = [e for e in from_order if isinstance(e.data, OrderFulfilled)]
    assert [e.id for e in fulfilled] == [from_fulfillment.id]
    assert [(ln.sku, ln.quantity) for ln in from_fulfillment.data.lines] == [
        ("TEE-RED-M", 2),
        ("MUG-BLUE", 1),
    ]


def test_refund_with_restock_returns_goods_and_refunds_money(load, shopify_account):
    returned, refunded = map_webhook(
        "refunds/create", load("shopify", "refunds_create"), shopify_account
    )
    assert isinstance(returned.data, OrderReturned)
    assert [(ln.sku, ln.quantity, ln.restock) for ln in returned.data.lines] == [
        ("TEE-RED-M", 1, True)
    ]
    assert returned.data.refund == Decimal("48.06") and returned.data.currency == "USD"
    assert isinstance(refunded.data, PaymentRefunded)
    assert refunded.data.amount == Decimal("48.06") and refunded.data.refund_id == "509562969"


def test_refund_without_restock_marks_lines_not_restocked(load, shopify_account):
    returned, _ = map_webhook(
        "refunds/create", load("shopify", "refunds_create_no_restock"), shopify_account
    )
    assert [ln.restock for ln in returned.data.lines] == [False]


@pytest.mark.parametrize(
    ("restock_type", "restock", "shipped"),
    [("return", True, True), ("cancel", True, False), ("no_restock", False, None)],
)
def test_the_restock_type_says_whether_the_refunded_units_had_shipped(
    load, shopify_account, restock_type, restock, shipped
):
    body = load("shopify", "refunds_create")
    body["refund_line_items"][0]["restock_type"] = restock_type
    returned, _ = map_webhook("refunds/create", body, shopify_account)
    assert [(ln.restock, ln.shipped) for ln in returned.data.lines] == [(restock, shipped)]


def test_refund_inside_an_order_resync_gets_the_same_ids_as_the_refund_webhook(
    load, shopify_account
):
    order = load("shopify", "orders_paid")
    refund = load("shopify", "refunds_create")
    order["refunds"] = [refund]
    from_resync = {e.id for e in map_order(order, shopify_account)}
    from_webhook = {e.id for e in map_webhook("refunds/create", refund, shopify_account)}
    assert from_webhook <= from_resync


@pytest.mark.parametrize("lines", [True, False])
def test_a_refund_in_the_buyers_currency_is_the_same_from_a_resync_and_its_webhook(
    load, shopify_account, lines
):
    """The webhook finds the shop's currency in the refund's own amounts, a resync in its
    order: the same messages either way, with lines or with shipping alone."""
    order = load("shopify", "orders_paid")
    refund = load("shopify", "refunds_create")
    refund["transactions"][0].update(currency="EUR", amount="50.00")
    if not lines:
        refund["refund_line_items"] = []
        refund["order_adjustments"] = [
            {
                "id": 3,
                "kind": "shipping_refund",
                "amount": "-10.00",
                "amount_set": {
                    "shop_money": {"amount": "-10.00", "currency_code": order["currency"]},
                    "presentment_money": {"amount": "-9.20", "currency_code": "EUR"},
                },
            }
        ]
    order["refunds"] = [refund]
    from_resync = {e.id: e.data for e in map_order(order, shopify_account)}
    from_webhook = map_webhook("refunds/create", refund, shopify_account)
    assert from_webhook and all(from_resync[e.id] == e.data for e in from_webhook)
    assert {e.data.currency for e in from_webhook} == {order["currency"]}


def test_message_ids_do_not_depend_on_the_delivery(load, shopify_account):
    a = map_webhook("orders/create", load("shopify", "orders_create"), shopify_account)
    b = map_webhook("orders/create", load("shopify", "orders_create"), shopify_account)
    assert [e.id for e in a] == [e.id for e in b]


def test_other_currencies_keep_their_amounts_exactly(load, shopify_account):
    order = load("shopify", "orders_create")
    order["currency"] = "JPY"
    order["total_price"] = "21412"
    for item in order["line_items"]:
        item["price"] = "4950"
    [env] = map_webhook("orders/create", order, shopify_account)
    assert env.data.currency == "JPY" and env.data.total == Decimal("21412")


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (
            lambda o: o["line_items"][1].update(sku="bad\x07sku"),
            "line_items[1] (id 141249953) has an unusable SKU",
        ),
        (lambda o: o["line_items"][0].update(quantity=0), "quantity is out of range"),
        (lambda o: o["line_items"][0].update(price=12.5), "must be a decimal string"),
        (lambda o: o.update(currency="XXX1"), "currency"),
        (lambda o: o.update(line_items="nope"), "line_items must be an array"),
        (lambda o: o.pop("id"), "order.id is missing"),
    ],
)
def test_unusable_orders_are_rejected_with_a_reason(load, shopify_account, mutate, reason):
    order = load("shopify", "orders_create")
    mutate(order)
    with pytest.raises(MalformedPayload) as err:
        map_webhook("orders/create", order, shopify_account)
    assert reason in err.value.reason


def test_topics_the_hub_does_not_use_map_to_nothing(shopify_account):
    assert map_webhook("products/update", {"id": 1}, shopify_account) == []
