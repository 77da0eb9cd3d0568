from __future__ import annotations

from decimal import Decimal

import pytest

from connectors.base import is_stale
from connectors.errors import MalformedPayload
from connectors.woocommerce.mapping import map_refund, map_webhook, modified_at
from hub.finance.billing import _price_lines
from schemas.orders import OrderCancelled, OrderFulfilled, OrderPlaced, OrderReopened
from schemas.payments import PaymentCaptured


def _types(envelopes):
    return [type(e.data).__name__ for e in envelopes]


def _placed_paid(envelopes):
    """The order's OrderPlaced and PaymentCaptured envelopes, whatever else the delivery has."""
    [placed] = [e for e in envelopes if isinstance(e.data, OrderPlaced)]
    paid = [e for e in envelopes if isinstance(e.data, PaymentCaptured)]
    return placed, paid[0] if paid else None


def test_processing_order_is_placed_and_paid(load, woo_account):
    placed, paid = _placed_paid(
        map_webhook("order.created", load("woocommerce", "order_processing"), woo_account)
    )
    assert isinstance(placed.data, OrderPlaced)
    assert placed.data.order_key == "corner:727" and placed.data.currency == "EUR"
    tee, mug = placed.data.lines
    assert (tee.sku, tee.quantity, tee.unit_price, tee.discount, tee.tax) == (
        "TEE-RED-M",
        2,
        Decimal("49.50"),
        Decimal("10.00"),
        Decimal("7.12"),
    )
    assert tee.location == "shop-2"  # from the account config
    assert mug.unit_price == Decimal("100.00")
    assert placed.data.total == Decimal("214.12") and placed.data.shipping == Decimal("10.00")
    assert paid.data.amount == Decimal("214.12") and paid.data.payment_id == "ch_3Q5x2XJ"


def billed(placed: OrderPlaced) -> Decimal:
    """What the books bill for the whole order: revenue and tax of every line and of shipping."""
    return sum((net + tax for _, net, tax in _price_lines(placed).values()), Decimal(0))


@pytest.mark.parametrize("prices_include_tax", [False, True])
def test_the_books_bill_what_the_customer_pays(load, woo_account, prices_include_tax):
    order = load("woocommerce", "order_processing")
    # Line and shipping totals exclude tax whatever the shop's setting; taxed shipping here.
    order["prices_include_tax"] = prices_include_tax
    order["shipping_tax"], order["total_tax"], order["total"] = "0.80", "15.92", "214.92"
    placed, _ = _placed_paid(map_webhook("order.created", order, woo_account))
    assert (placed.data.shipping, placed.data.shipping_tax) == (Decimal("10.00"), Decimal("0.80"))
    assert billed(placed.data) == placed.data.total == Decimal("214.92")
    mug = _price_lines(placed.data)[("MUG-BLUE", "shop-2")]
    assert mug == (1, Decimal("100.00"), Decimal("8.00"))  # net revenue, not net of tax twice


def test_a_line_without_a_sku_and_the_fees_are_charges(load, woo_account):
    order = load("woocommerce", "order_processing")
    order["line_items"][1]["sku"] = ""  # a product kept without a SKU: 100.00 + 8.00 of tax
    order["fee_lines"] = [
        {"id": 9, "name": "Gift wrap", "total": "5.00", "total_tax": "0.40"},
        {"id": 10, "name": "Loyalty discount", "total": "-2.00", "total_tax": "-0.16"},
    ]
    order["total"], order["total_tax"] = "217.36", "15.36"
    placed, _ = _placed_paid(map_webhook("order.created", order, woo_account))
    assert [ln.sku for ln in placed.data.lines] == ["TEE-RED-M"]
    assert (placed.data.charges, placed.data.charges_tax) == (Decimal("103.00"), Decimal("8.24"))
    assert billed(placed.data) == placed.data.total
    order.update(status="completed", date_completed_gmt="2026-11-21T10:00:00")
    shipped = [e.data for e in map_webhook("order.updated", order, woo_account)]
    [fulfilment] = [m for m in shipped if isinstance(m, OrderFulfilled)]
    assert [ln.sku for ln in fulfilment.lines] == ["TEE-RED-M"]


def test_an_order_of_charges_only_is_placed_paid_and_billed_when_it_completes(load, woo_account):
    """No line with a SKU: placed without lines (nothing to reserve), and its completion is a
    fulfilment without lines, which bills the charges. Nothing at all to bill: nothing."""
    order = load("woocommerce", "order_processing")
    for item in order["line_items"]:
        item["sku"] = ""
    placed, paid = _placed_paid(map_webhook("order.created", order, woo_account))
    assert placed.data.lines == () and placed.data.charges > 0
    assert billed(placed.data) == placed.data.total == paid.data.amount
    order.update(status="completed", date_completed_gmt="2026-11-21T10:00:00")
    shipped = [e.data for e in map_webhook("order.updated", order, woo_account)]
    [fulfilment] = [m for m in shipped if isinstance(m, OrderFulfilled)]
    assert fulfilment.lines == ()
    order.update(line_items=[], shipping_total="0.00", shipping_tax="0.00")
    assert map_webhook("order.updated", order, woo_account) == []
    order["fee_lines"] = [{"id": 9, "name": "Consultation", "total": "40.00", "total_tax": "0"}]
    [placed] = [e.data for e in map_webhook("order.updated", order, woo_account)][:1]
    assert (placed.lines, placed.charges) == ((), Decimal("40.00"))


def test_pending_order_is_placed_but_not_paid(load, woo_account):
    envs = map_webhook("order.created", load("woocommerce", "order_pending"), woo_account)
    assert _types(envs) == ["OrderPlaced"]


def test_every_status_change_of_one_order_keeps_the_placed_id(load, woo_account):
    ids = {
        map_webhook("order.updated", load("woocommerce", name), woo_account)[0].id
        for name in ("order_pending", "order_processing", "order_completed", "order_cancelled")
    }
    assert len(ids) == 1


def test_completed_order_is_fulfilled(load, woo_account):
    envs = map_webhook("order.updated", load("woocommerce", "order_completed"), woo_account)
    fulfilled = envs[-1].data
    assert isinstance(fulfilled, OrderFulfilled)
    assert [(ln.sku, ln.quantity) for ln in fulfilled.lines] == [("TEE-RED-M", 2), ("MUG-BLUE", 1)]
    # The order's lines as placed: the core leaves out units refunded before it shipped.
    assert fulfilled.as_placed


def test_cancelled_order_is_cancelled(load, woo_account):
    envs = map_webhook("order.updated", load("woocommerce", "order_cancelled"), woo_account)
    assert isinstance(envs[-1].data, OrderCancelled)


def test_refund_in_the_order_refunds_money(load, woo_account):
    envs = map_webhook("order.updated", load("woocommerce", "order_refunded"), woo_account)
    refunded = envs[-1].data
    assert type(refunded).__name__ == "PaymentRefunded"
    assert refunded.amount == Decimal("48.06") and refunded.refund_id == "726"


def test_refund_resource_returns_lines_restocked_by_default(load, woo_account):
    [env] = map_refund(load("woocommerce", "order_refund_726"), "727", "EUR", woo_account)
    assert [(ln.sku, ln.quantity, ln.restock) for ln in env.data.lines] == [("TEE-RED-M", 1, True)]
    assert env.data.refund == Decimal("48.06")


def test_a_refund_resource_splits_the_goods_from_the_rest(load, woo_account):
    refund = load("woocommerce", "order_refund_726")
    refund["amount"] = "58.06"  # the tee and 10.00 of shipping
    refund["shipping_lines"] = [{"id": 1, "total": "-10.00", "total_tax": "0.00"}]
    [env] = map_refund(refund, "727", "EUR", woo_account)
    assert (env.data.refund, env.data.adjustment) == (Decimal("48.06"), Decimal("10.00"))
    refund.update(amount="5.00", line_items=[], shipping_lines=[])  # goodwill: no line at all
    [env] = map_refund(refund, "727", "EUR", woo_account)
    assert (env.data.lines, env.data.refund, env.data.adjustment) == ((), 0, Decimal("5.00"))


def test_a_refund_of_money_on_a_line_without_units_keeps_the_units_it_returns(load, woo_account):
    """WooCommerce writes a line refunded by amount alone with quantity 0: no goods come back
    on it, its money is credited with the rest, and the refund's other lines still return."""
    refund = load("woocommerce", "order_refund_726")
    refund["amount"] = "53.06"  # the tee, and 5.00 off the price of the mug
    mug = {**refund["line_items"][0], "id": 321, "sku": "MUG-BLK", "quantity": 0}
    mug.update(subtotal="-5.00", total="-5.00", subtotal_tax="0.00", total_tax="0.00")
    refund["line_items"].append(mug)
    [env] = map_refund(refund, "727", "EUR", woo_account)
    assert [(ln.sku, ln.quantity) for ln in env.data.lines] == [("TEE-RED-M", 1)]
    assert (env.data.refund, env.data.adjustment) == (Decimal("48.06"), Decimal("5.00"))


def test_refund_resource_without_restock_when_the_account_says_so(load, woo_account):
    from connectors.base import Account

    cfg = woo_account.config.model_copy(update={"restock_refunds": False})
    [env] = map_refund(
        load("woocommerce", "order_refund_726"), "727", "EUR", Account("corner", cfg)
    )
    assert [ln.restock for ln in env.data.lines] == [False]


def test_a_draft_maps_to_nothing(load, woo_account):
    order = load("woocommerce", "order_pending")
    order["status"] = "checkout-draft"
    assert map_webhook("order.updated", order, woo_account) == []


def test_an_order_in_the_trash_is_cancelled_unless_it_shipped(load, woo_account):
    order = load("woocommerce", "order_processing")
    order.update(status="trash", date_modified_gmt="2026-11-21T09:00:00")
    envs = map_webhook("order.updated", order, woo_account)
    assert _types(envs) == ["OrderPlaced", "PaymentCaptured", "OrderCancelled"]
    assert envs[-1].data.reason == "trash"
    shipped = load("woocommerce", "order_completed")
    shipped["status"] = "trash"
    kinds = _types(map_webhook("order.updated", shipped, woo_account))
    assert "OrderFulfilled" in kinds and "OrderCancelled" not in kinds


def test_a_deletion_without_a_time_is_not_taken(woo_account):
    """`order.deleted` carries only the id: no time to order it against a restore."""
    assert map_webhook("order.deleted", {"id": 727}, woo_account) == []


def test_a_failed_payment_releases_the_order_and_a_paid_retry_opens_it_again(load, woo_account):
    """pending → failed (the gateway declined) → processing (paid on a retry) → cancelled: the
    failure cancels, the retry reopens, and the later cancellation has an id of its own, so
    the core sees each. Copies of one delivery keep their ids."""
    order = load("woocommerce", "order_pending")
    order.update(status="failed", date_modified_gmt="2026-11-20T15:20:00")
    failed = map_webhook("order.updated", order, woo_account)
    assert _types(failed) == ["OrderPlaced", "OrderCancelled"]
    assert failed[1].data.reason == "failed"
    assert [e.id for e in map_webhook("order.updated", order, woo_account)] == [
        e.id for e in failed
    ]

    order.update(
        status="processing",
        date_modified_gmt="2026-11-20T15:40:00",
        date_paid_gmt="2026-11-20T15:40:00",
        transaction_id="ch_retry",
    )
    retried = map_webhook("order.updated", order, woo_account)
    assert _types(retried) == ["OrderPlaced", "OrderReopened", "PaymentCaptured"]
    reopened = retried[1].data
    assert isinstance(reopened, OrderReopened)
    assert reopened.reopened_at > failed[1].data.cancelled_at

    order.update(status="cancelled", date_modified_gmt="2026-11-21T08:00:00")
    again = map_webhook("order.updated", order, woo_account)
    [cancel] = [e for e in again if isinstance(e.data, OrderCancelled)]
    assert cancel.id != failed[1].id and cancel.data.cancelled_at > reopened.reopened_at


def test_a_new_order_is_not_reopened(load, woo_account):
    kinds = _types(map_webhook("order.created", load("woocommerce", "order_pending"), woo_account))
    assert "OrderReopened" not in kinds


def test_an_older_modification_is_recognised_as_stale(load, woo_account):
    newer = modified_at(load("woocommerce", "order_completed"))
    older = modified_at(load("woocommerce", "order_processing"))
    assert is_stale(newer, older)
    assert not is_stale(older, newer)
    assert not is_stale(newer, newer)
    assert not is_stale(None, older)


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda o: o["line_items"][0].update(sku="x" * 129), "unusable SKU"),
        (lambda o: o["line_items"][0].update(subtotal="abc"), "not a decimal amount"),
        (lambda o: o.update(date_modified_gmt="yesterday"), "date_modified_gmt"),
    ],
)
def test_unusable_orders_are_rejected_with_a_reason(load, woo_account, mutate, reason):
    order = load("woocommerce", "order_processing")
    mutate(order)
    with pytest.raises(MalformedPayload) as err:
        map_webhook("order.updated", order, woo_account)
    assert reason in err.value.reason


def test_order_refunded_before_it_shipped_is_also_cancelled(load, woo_account):
    order = load("woocommerce", "order_processing")
    order.update(status="refunded", refunds=[{"id": 730, "reason": "", "total": "-214.12"}])
    types = _types(map_webhook("order.updated", order, woo_account))
    assert types == ["OrderPlaced", "PaymentCaptured", "PaymentRefunded", "OrderCancelled"]


def test_order_refunded_after_it_shipped_is_not_cancelled(load, woo_account):
    order = load("woocommerce", "order_refunded")
    order["status"] = "refunded"
    assert "OrderCancelled" not in _types(map_webhook("order.updated", order, woo_account))


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda o: o.update(status=["processing"]), "status is not a string"),
        (lambda o: o.update(date_modified_gmt="0001-01-01T00:00:00+01:00"), "out of range"),
        (lambda o: o.update(date_paid_gmt="9999-12-31T23:59:59-01:00"), "out of range"),
    ],
)
def test_odd_values_are_a_malformed_order_not_a_crash(load, woo_account, mutate, reason):
    """A resync takes a malformed order aside and goes on; anything else stops its page."""
    order = load("woocommerce", "order_processing")
    mutate(order)
    with pytest.raises(MalformedPayload, match=reason):
        map_webhook("order.updated", order, woo_account)


def test_an_order_in_the_trash_gives_its_units_back_and_restored_holds_them_again(
    load, woo_account
):
    """Through the stock book: placed (held), trashed (back on sale), restored (held again),
    each dated by WooCommerce's own modification time."""
    from hub.domain.stockbook import OrderRow, StockBook, StockRow

    order = load("woocommerce", "order_processing")
    placed = map_webhook("order.created", order, woo_account)[0]
    keys = {(ln.sku, ln.location) for ln in placed.data.lines}
    book = StockBook(
        {k: StockRow(k[0], k[1], on_hand=10) for k in keys},
        {placed.data.order_key: OrderRow(placed.data.order_key)},
        bump_loaded={k[0] for k in keys},
    )

    def held() -> int:
        return sum(r.reserved for r in book.stock.values())

    book.apply_placed(placed.data, placed.id)
    ordered = sum(ln.quantity for ln in placed.data.lines)
    assert held() == ordered > 0
    order.update(status="trash", date_modified_gmt="2026-11-21T09:00:00")
    [trashed] = [
        e
        for e in map_webhook("order.updated", order, woo_account)
        if e.type.endswith("cancelled.v1")
    ]
    book.apply_cancelled(trashed.data, trashed.id)
    assert held() == 0
    order.update(status="processing", date_modified_gmt="2026-11-21T09:01:00")
    [reopened] = [
        e
        for e in map_webhook("order.restored", order, woo_account)
        if e.type.endswith("reopened.v1")
    ]
    book.apply_reopened(reopened.data, reopened.id)
    assert held() == ordered
