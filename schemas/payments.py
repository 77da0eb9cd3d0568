"""Payment messages on `hub.payments.v1`, keyed by order key: they feed the receivable side."""

from __future__ import annotations

from pydantic import Field

from schemas import topics
from schemas.base import (
    Amount,
    CanonicalMessage,
    Currency,
    PlatformId,
    UtcDatetime,
)
from schemas.orders import Account, OrderKey


class _PaymentMessage(CanonicalMessage):
    topic = topics.PAYMENTS

    order_key: OrderKey
    account: Account
    amount: Amount = Field(gt=0, description="Amount moved", examples=["59.70"])
    currency: Currency
    gateway: str = Field(
        default="", max_length=64, description="Payment gateway", examples=["alipay"]
    )

    def kafka_key(self) -> str:
        return self.order_key


class PaymentCaptured(_PaymentMessage):
    """The customer's money was captured."""

    ce_type = "hub.payment.captured.v1"

    payment_id: PlatformId = Field(
        description="Platform transaction id",
        examples=["389404469"],
    )
    captured_at: UtcDatetime


class PaymentRefunded(_PaymentMessage):
    """Money went back to the customer."""

    ce_type = "hub.payment.refunded.v1"

    refund_id: PlatformId = Field(description="Platform refund id", examples=["509562969"])
    refunded_at: UtcDatetime
