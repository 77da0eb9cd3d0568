"""Order lifecycle messages, published by shop connectors on `hub.orders.v1`, keyed by order key."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import Field, model_validator

from schemas import topics
from schemas.base import (
    Amount,
    CanonicalMessage,
    Currency,
    Location,
    PlatformId,
    Sku,
    Units,
    UtcDatetime,
)

OrderKey = Annotated[
    str,
    Field(
        min_length=3,
        max_length=200,
        pattern=r"^[^:\s\x00-\x1f\x7f]+:[^\s\x00-\x1f\x7f]+$",
        description="`{account}:{platform order id}`, unique across every connected shop",
        examples=["acme:450789469"],
    ),
]
Account = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.\-]+$",
        description="Configured account (connected shop) the message came from",
        examples=["acme"],
    ),
]
Channel = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.\-]+$",
        description="Sales channel the order belongs to (its allocation rule decides what it sees)",
        examples=["online"],
    ),
]


class _OrderMessage(CanonicalMessage):
    topic = topics.ORDERS

    order_key: OrderKey
    account: Account
    channel: Channel

    def kafka_key(self) -> str:
        return self.order_key


class OrderLine(CanonicalMessage):
    """One line of an order: what was bought, from where, at what price."""

    sku: Sku
    quantity: Units = Field(description="Units ordered", examples=[2])
    location: Location = "main"
    unit_price: Amount = Field(
        default=Decimal(0), description="Price per unit before tax and discount"
    )
    discount: Amount = Field(default=Decimal(0), ge=0, description="Discount on the whole line")
    tax: Amount = Field(default=Decimal(0), ge=0, description="Tax charged on the whole line")
    line_id: PlatformId | None = Field(
        default=None,
        description="Platform line item id",
        examples=["866550311766439020"],
    )


class OrderPlaced(_OrderMessage):
    """A shop took an order: the hub reserves every line or none.

    Without lines it is an order of charges only (custom items, services, fees): nothing to
    reserve, billed with its first fulfilment.
    """

    ce_type = "hub.order.placed.v1"

    platform_order_id: PlatformId = Field(
        description="Order id on the platform",
        examples=["450789469"],
    )
    placed_at: UtcDatetime = Field(description="When the shop took the order (UTC)")
    currency: Currency
    lines: tuple[OrderLine, ...] = Field(
        max_length=500,
        description="Lines of goods the hub keeps stock of (none: an order of charges only)",
    )
    shipping: Amount = Field(
        default=Decimal(0),
        ge=0,
        description="Shipping charged, after shipping discounts; tax included when "
        "`taxes_included`, as for unit prices",
    )
    shipping_tax: Amount = Field(default=Decimal(0), ge=0, description="Tax charged on shipping")
    charges: Amount = Field(
        default=Decimal(0),
        description="Charged for what is not goods the hub holds: lines without a SKU (custom "
        "items, services) and fees, after their discounts; tax included when `taxes_included`. "
        "Negative for a fee that is a discount",
    )
    charges_tax: Amount = Field(default=Decimal(0), description="Tax charged on `charges`")
    total: Amount = Field(description="Amount the customer pays, tax included", examples=["59.70"])
    taxes_included: bool = Field(
        default=False, description="Whether unit prices include tax", examples=[False]
    )

    @model_validator(mode="after")
    def _something_ordered(self) -> OrderPlaced:
        if not self.lines and not (
            self.charges or self.charges_tax or self.shipping or self.shipping_tax
        ):
            raise ValueError("an order needs a line or a charge")
        return self


class OrderCancelled(_OrderMessage):
    """The order was cancelled before shipping: its reservation is released."""

    ce_type = "hub.order.cancelled.v1"

    cancelled_at: UtcDatetime
    reason: str = Field(
        default="customer",
        max_length=64,
        description="Why the order was cancelled",
        examples=["customer", "fraud"],
    )


class OrderReopened(_OrderMessage):
    """A cancelled order is open again (WooCommerce: a failed payment paid on a retry, a
    cancelled order restored by the shop): the hub reserves what it had released, all or none.
    A word on the order older than its last cancellation or reopening changes nothing."""

    ce_type = "hub.order.reopened.v1"

    reopened_at: UtcDatetime = Field(description="When the shop saw the order open again (UTC)")


class FulfilledLine(CanonicalMessage):
    sku: Sku
    quantity: Units = Field(description="Units shipped", examples=[1])
    location: Location = "main"


class OrderFulfilled(_OrderMessage):
    """Lines left the warehouse: their reservation is committed and on-hand drops.

    Without lines it fulfilled only what is not goods the hub holds (custom items, services):
    the order's charges are billed if nothing of it was billed before.
    """

    ce_type = "hub.order.fulfilled.v1"

    fulfilment_id: PlatformId = Field(
        description="Platform fulfilment id",
        examples=["255858046"],
    )
    fulfilled_at: UtcDatetime
    lines: tuple[FulfilledLine, ...] = Field(
        default=(),
        max_length=500,
        description="Lines of the hub's goods shipped by this fulfilment (none: charges only)",
    )
    as_placed: bool = Field(
        default=False,
        description="The lines are the order's lines as placed, not counted at shipping: units "
        "refunded before it shipped are among them and did not ship (WooCommerce's completion). "
        "The hub ships the lines less the units such refunds released.",
        examples=[False],
    )


class ReturnedLine(CanonicalMessage):
    sku: Sku
    quantity: Units = Field(description="Units returned", examples=[1])
    location: Location = "main"
    restock: bool = Field(
        description="Whether the units go back to sellable stock", examples=[True]
    )
    shipped: bool | None = Field(
        default=None,
        description="Whether these units had shipped, where the platform says so (Shopify's "
        "restock type `cancel`: no, `return`: yes). Unset: the hub counts the order's "
        "fulfilments. Units that never shipped release the order's reservation instead of "
        "adding stock.",
        examples=[False],
    )


class OrderReturned(_OrderMessage):
    """A refund, with the goods it names; restocked lines add to on-hand.

    Without lines it is a refund of no goods (shipping, a goodwill refund): a credit note only.
    """

    ce_type = "hub.order.returned.v1"

    return_id: PlatformId = Field(
        description="Platform refund/return id",
        examples=["509562969"],
    )
    returned_at: UtcDatetime
    lines: tuple[ReturnedLine, ...] = Field(
        default=(), max_length=500, description="Lines that came back (none: money only)"
    )
    refund: Amount = Field(
        default=Decimal(0),
        ge=0,
        description="Amount refunded for these lines (and for lines without a SKU), tax included",
    )
    adjustment: Amount = Field(
        default=Decimal(0),
        description="Refunded besides the lines' amount, tax included: shipping, a goodwill "
        "refund; negative where less was refunded than the lines' amount. Credited at the "
        "order's tax rate",
    )
    currency: Currency = "CNY"
