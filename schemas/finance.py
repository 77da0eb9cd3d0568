"""Accounting vouchers (记账凭证) on `hub.vouchers.v1`, keyed by voucher id: the finance feed.

A voucher is issued once per business event (its cause) and never changes: a correction is a new
voucher with its own cause. Every line carries a debit or a credit — never negative, never both —
rounded to the currency's minor unit, and the debits equal the credits or the model refuses it.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas import topics
from schemas.base import CanonicalMessage, Currency, minor_unit
from schemas.registry import register

# The longest reference the rules make: a receipt, count or adjustment id (128), a SKU (128) and a
# location (64), 322 characters with their colons; an order key (200) and a platform id (64), 265.
CAUSE_REF_LENGTH = 400

LineAmount = Annotated[
    Decimal,
    Field(
        ge=0,
        max_digits=20,
        decimal_places=6,
        description="Amount on this side of the line, rounded to the currency's minor unit",
        examples=["59.70"],
    ),
]


class VoucherLine(BaseModel):
    """One line (分录) of a voucher: one account, a debit or a credit."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    account: str = Field(
        min_length=1,
        max_length=32,
        description="Account code in the configured chart of accounts",
        examples=["1122"],
    )
    account_name: str = Field(
        max_length=128, description="Account name in that chart", examples=["应收账款"]
    )
    debit: LineAmount = Decimal(0)
    credit: LineAmount = Decimal(0)
    memo: str = Field(
        default="", max_length=500, description="What this line is for", examples=["sale TEE-RED-M"]
    )
    sku: str | None = Field(
        default=None, max_length=128, description="SKU the line concerns", examples=["TEE-RED-M"]
    )
    location: str | None = Field(
        default=None,
        max_length=64,
        description="Stock location the line concerns",
        examples=["main"],
    )
    order_key: str | None = Field(
        default=None,
        max_length=200,
        description="Order the line concerns (receivable lines)",
        examples=["acme:450789469"],
    )

    @model_validator(mode="after")
    def _one_side(self) -> VoucherLine:
        if (self.debit > 0) == (self.credit > 0):
            raise ValueError("a voucher line has either a debit or a credit, not both or neither")
        return self

    @property
    def amount(self) -> Decimal:
        """Signed amount: debit positive, credit negative."""
        return self.debit - self.credit


class VoucherIssued(CanonicalMessage):
    """An accounting voucher the finance system books as it is: balanced, dated, never repeated."""

    topic = topics.VOUCHERS
    ce_type = "hub.voucher.issued.v1"

    voucher_id: str = Field(
        min_length=1,
        max_length=64,
        description="Stable id derived from the cause: the same cause always gives the same id",
        examples=["9b0e8c1e-6f1a-5c55-9a43-3c0f6e2d7b10"],
    )
    date: dt.date = Field(
        description="Accounting date of the event, in the books' timezone", examples=["2026-11-22"]
    )
    period: str = Field(
        pattern=r"^\d{4}-(0[1-9]|1[0-2])$",
        description="Accounting period (YYYY-MM) the date falls in",
        examples=["2026-11"],
    )
    cause_type: str = Field(
        min_length=1,
        max_length=32,
        description="Kind of business event that caused the voucher",
        examples=["sale_fulfilled", "goods_received", "payment_captured"],
    )
    cause_ref: str = Field(
        min_length=1,
        max_length=CAUSE_REF_LENGTH,
        description="Reference of that event (order key + fulfilment id, receipt id + SKU + "
        "location, …)",
        examples=["acme:450789469:255858046"],
    )
    currency: Currency
    lines: tuple[VoucherLine, ...] = Field(
        min_length=2,
        max_length=2000,
        description="Lines; debits equal credits",
        examples=[
            [
                {"account": "1012", "account_name": "其他货币资金", "debit": "59.70"},
                {
                    "account": "1122",
                    "account_name": "应收账款",
                    "credit": "59.70",
                    "order_key": "acme:450789469",
                },
            ]
        ],
    )
    memo: str = Field(
        default="", max_length=500, description="Summary (摘要)", examples=["sale acme:450789469"]
    )

    @model_validator(mode="after")
    def _balanced(self) -> VoucherIssued:
        if self.period != self.date.strftime("%Y-%m"):
            raise ValueError(f"period {self.period} does not hold date {self.date}")
        quantum = minor_unit(self.currency)
        for line in self.lines:
            for amount in (line.debit, line.credit):
                if amount != amount.quantize(quantum):
                    raise ValueError(f"{amount} is not rounded to {quantum} {self.currency}")
        debits = sum((line.debit for line in self.lines), Decimal(0))
        credits = sum((line.credit for line in self.lines), Decimal(0))
        if debits != credits:
            raise ValueError(f"unbalanced voucher: debits {debits} != credits {credits}")
        return self

    @property
    def total(self) -> Decimal:
        return sum((line.debit for line in self.lines), Decimal(0))

    def kafka_key(self) -> str:
        return self.voucher_id


register(VoucherIssued)
