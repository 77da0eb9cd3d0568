"""Each voucher rule books a balanced voucher on the right accounts, with a stable id."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from pydantic import ValidationError

from hub.finance import costing, rules
from hub.finance.chart import CN_SMALL_BUSINESS, IFRS_EN, Role
from schemas.envelope import Envelope, decode
from schemas.finance import VoucherIssued, VoucherLine

CHART = CN_SMALL_BUSINESS
AT = datetime(2026, 11, 30, 17, 30, tzinfo=UTC)  # 01:30 on 1 December in Shanghai
D = Decimal


def by_account(v: VoucherIssued) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for line in v.lines:
        out[line.account] = out.get(line.account, D(0)) + line.debit - line.credit
    return out


def assert_balanced(v: VoucherIssued | None) -> VoucherIssued:
    assert v is not None
    assert sum(line.debit for line in v.lines) == sum(line.credit for line in v.lines)
    for line in v.lines:
        assert (line.debit > 0) != (line.credit > 0)
        assert line.debit >= 0 and line.credit >= 0
    return v


def test_sale_books_revenue_vat_receivable_and_cost_at_moving_average() -> None:
    v = assert_balanced(
        rules.sale_fulfilled(
            CHART,
            order_key="acme:1001",
            fulfilment_id="F1",
            at=AT,
            currency="CNY",
            lines=[rules.SaleLine("TEE", "main", 3, D("300.00"), D("39.00"))],
            stock={("TEE", "main"): (10, D("33.333333"))},
        )
    )
    acc = by_account(v)
    assert acc["1122"] == D("339.00")
    assert acc["6001"] == D("-300.00")
    assert acc["222102"] == D("-39.00")
    # value(10) - value(7) = 333.33 - 233.33
    assert acc["6401"] == D("100.00") and acc["1405"] == D("-100.00")
    receivable = next(line for line in v.lines if line.account == "1122")
    assert receivable.order_key == "acme:1001"
    assert v.date.isoformat() == "2026-12-01" and v.period == "2026-12"
    assert v.voucher_id == rules.voucher_id("sale_fulfilled", "acme:1001:F1")


def test_the_books_timezone_is_a_parameter() -> None:
    v = assert_balanced(
        rules.payment_captured(
            CHART, order_key="acme:1", payment_id="P", at=AT, amount=D(5), currency="CNY", tz="UTC"
        )
    )
    assert v.period == "2026-11"


def test_payment_goes_to_platform_clearing_or_bank_by_gateway() -> None:
    alipay = assert_balanced(
        rules.payment_captured(
            CHART,
            order_key="acme:1",
            payment_id="P1",
            at=AT,
            amount=D("59.70"),
            currency="CNY",
            gateway="alipay",
        )
    )
    assert by_account(alipay) == {"1012": D("59.70"), "1122": D("-59.70")}
    bank = assert_balanced(
        rules.payment_captured(
            CHART,
            order_key="acme:1",
            payment_id="P2",
            at=AT,
            amount=D("59.70"),
            currency="CNY",
            gateway="bank_transfer",
        )
    )
    assert by_account(bank) == {"1002": D("59.70"), "1122": D("-59.70")}
    refund = assert_balanced(
        rules.payment_refunded(
            CHART,
            order_key="acme:1",
            refund_id="R1",
            at=AT,
            amount=D("10"),
            currency="CNY",
            gateway="alipay",
        )
    )
    assert by_account(refund) == {"1122": D("10.00"), "1012": D("-10.00")}


def test_return_reverses_revenue_and_restocks_at_the_cost_it_left_with() -> None:
    v = assert_balanced(
        rules.order_returned(
            CHART,
            order_key="acme:1",
            return_id="RET1",
            at=AT,
            currency="CNY",
            refund_net=D("100"),
            refund_tax=D("13"),
            lines=[
                rules.ReturnLine("TEE", "main", 2, restock=True, unit_cost=D("30")),
                rules.ReturnLine("MUG", "main", 1, restock=False),
            ],
            stock={("TEE", "main"): (4, D("40"))},
        )
    )
    acc = by_account(v)
    assert acc["6001"] == D("100.00") and acc["222102"] == D("13.00")
    assert acc["1122"] == D("-113.00")
    assert acc["1405"] == D("60.00") and acc["6401"] == D("-60.00")
    assert costing.receive(4, D("40"), 2, D("30")) == D("36.666667")


def test_receipt_books_inventory_against_grni_with_rounding_to_variance() -> None:
    v = assert_balanced(
        rules.goods_received(
            CHART,
            receipt_id="GRN-1",
            sku="TEE",
            location="main",
            at=AT,
            currency="CNY",
            quantity=3,
            unit_cost=D("10.00"),
            on_hand=1,
            avg_cost=D("10.01"),
        )
    )
    acc = by_account(v)
    assert acc["220201"] == D("-30.00")
    new_avg = costing.receive(1, D("10.01"), 3, D("10.00"))
    assert acc["1405"] == costing.value(4, new_avg, "CNY") - costing.value(1, D("10.01"), "CNY")
    assert sum(acc.values()) == 0


def test_the_longest_reference_the_rules_make_fits_a_voucher() -> None:
    """A 128-character receipt id and SKU at a 64-character location, for a 64-character PO:
    387 characters (the column holds 400)."""
    receipt_id, sku, po = "R" * 128, "S" * 128, "P" * 64
    v = assert_balanced(
        rules.goods_received(
            CHART,
            receipt_id=receipt_id,
            sku=sku,
            location="x" * 64,
            at=AT,
            currency="CNY",
            quantity=1,
            unit_cost=D("1"),
            on_hand=0,
            avg_cost=D("0"),
            po_number=po,
        )
    )
    assert v.cause_ref == f"{receipt_id}:{sku}:{'x' * 64}:{po}" and len(v.cause_ref) == 387
    env = Envelope(id=v.voucher_id, source="t", data=v)
    assert decode(env.headers(), env.body()).data == v


def test_receipt_into_negative_stock_prices_the_oversold_units_to_variance() -> None:
    v = assert_balanced(
        rules.goods_received(
            CHART,
            receipt_id="GRN-2",
            sku="TEE",
            location="main",
            at=AT,
            currency="CNY",
            quantity=5,
            unit_cost=D("12"),
            on_hand=-2,
            avg_cost=D("10"),
        )
    )
    assert by_account(v) == {"1405": D("56.00"), "640102": D("4.00"), "220201": D("-60.00")}


def test_supplier_invoice_clears_grni_and_posts_price_variance() -> None:
    v = assert_balanced(
        rules.supplier_invoice(
            CHART,
            invoice_id="INV-9",
            supplier="acme-supply",
            at=AT,
            currency="CNY",
            received_value=D("1000"),
            net=D("1010"),
            vat=D("131.30"),
        )
    )
    assert by_account(v) == {
        "220201": D("1000.00"),
        "640102": D("10.00"),
        "222101": D("131.30"),
        "2202": D("-1141.30"),
    }
    cheaper = assert_balanced(
        rules.supplier_invoice(
            CHART,
            invoice_id="INV-10",
            supplier="acme-supply",
            at=AT,
            currency="CNY",
            received_value=D("1000"),
            net=D("990"),
            vat=D("0"),
        )
    )
    assert by_account(cheaper)["640102"] == D("-10.00")


def test_supplier_payment() -> None:
    v = assert_balanced(
        rules.supplier_payment(
            CHART, payment_id="PAY-1", supplier="s", at=AT, currency="CNY", amount=D("1141.30")
        )
    )
    assert by_account(v) == {"2202": D("1141.30"), "1002": D("-1141.30")}


@pytest.mark.parametrize(
    ("counted", "suspense", "expected"),
    [
        (12, False, {"1405": D("20.00"), "6301": D("-20.00")}),
        (7, False, {"6711": D("30.00"), "1405": D("-30.00")}),
        (7, True, {"1901": D("30.00"), "1405": D("-30.00")}),
    ],
)
def test_stocktake_gain_and_loss(
    counted: int, suspense: bool, expected: dict[str, Decimal]
) -> None:
    v = assert_balanced(
        rules.stock_counted(
            CHART,
            count_id="C1",
            sku="TEE",
            location="main",
            at=AT,
            on_hand=10,
            avg_cost=D("10"),
            counted=counted,
            via_suspense=suspense,
        )
    )
    assert by_account(v) == expected


def test_nothing_to_book_issues_nothing() -> None:
    assert (
        rules.stock_counted(
            CHART,
            count_id="C",
            sku="T",
            location="main",
            at=AT,
            on_hand=3,
            avg_cost=D(1),
            counted=3,
        )
        is None
    )


def test_transfer_moves_value_between_locations() -> None:
    v = assert_balanced(
        rules.stock_transferred(
            CHART,
            transfer_id="TR1",
            sku="TEE",
            from_location="main",
            to_location="shop",
            quantity=1,
            at=AT,
            stock={("TEE", "main"): (3, D("3.333333")), ("TEE", "shop"): (0, D(0))},
        )
    )
    inv = [line for line in v.lines if line.account == "1405"]
    assert {line.location for line in inv} == {"main", "shop"}


def test_an_unbalanced_voucher_is_refused_by_the_schema() -> None:
    with pytest.raises(ValidationError, match="unbalanced"):
        VoucherIssued(
            voucher_id="v1",
            date=AT.date(),
            period="2026-11",
            cause_type="manual",
            cause_ref="x",
            currency="CNY",
            lines=(
                VoucherLine(account="1002", account_name="bank", debit=D("10.00")),
                VoucherLine(account="6001", account_name="rev", credit=D("9.99")),
            ),
        )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"debit": D("1"), "credit": D("1")},
        {"debit": D("-1")},
        {},
    ],
)
def test_a_line_has_one_positive_side(kwargs: dict[str, Decimal]) -> None:
    with pytest.raises(ValidationError):
        VoucherLine(account="1002", account_name="bank", **kwargs)


def test_amounts_must_be_rounded_to_the_currency() -> None:
    with pytest.raises(ValidationError, match="rounded"):
        VoucherIssued(
            voucher_id="v1",
            date=AT.date(),
            period="2026-11",
            cause_type="manual",
            cause_ref="x",
            currency="JPY",
            lines=(
                VoucherLine(account="1002", account_name="bank", debit=D("10.5")),
                VoucherLine(account="6001", account_name="rev", credit=D("10.5")),
            ),
        )


def test_builder_refuses_to_issue_an_unbalanced_voucher() -> None:
    v = rules._Voucher(CHART, "CNY")
    v.post(Role.BANK, D("10"), "x")
    v.post(Role.REVENUE, D("-9"), "x")
    with pytest.raises(rules.UnbalancedVoucher):
        v.issue("manual", "x", AT, None, "")


def test_sale_in_a_foreign_currency_needs_conversion() -> None:
    with pytest.raises(rules.CurrencyMismatch):
        rules.sale_fulfilled(
            CHART,
            order_key="a:1",
            fulfilment_id="F",
            at=AT,
            currency="USD",
            lines=[],
            stock={},
        )
    assert IFRS_EN[Role.RECEIVABLE].code == "1100"


def test_voucher_travels_as_a_cloudevent() -> None:
    v = assert_balanced(
        rules.supplier_payment(
            CHART, payment_id="PAY-1", supplier="s", at=AT, currency="CNY", amount=D("1")
        )
    )
    env = Envelope(id=v.voucher_id, source="hub/finance", data=v)
    assert env.topic == "hub.vouchers.v1" and env.key == v.voucher_id
    back = decode(env.headers(), env.body())
    assert back.data == v
