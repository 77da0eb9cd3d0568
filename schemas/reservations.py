"""The core's decisions on `hub.reservations.v1`, keyed by order key."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, NonNegativeInt, PositiveInt

from schemas import topics
from schemas.base import CanonicalMessage, Location, Sku, UtcDatetime
from schemas.orders import Account, Channel, OrderKey


class _ReservationMessage(CanonicalMessage):
    topic = topics.RESERVATIONS

    order_key: OrderKey
    account: Account
    channel: Channel

    def kafka_key(self) -> str:
        return self.order_key


class ReservedLine(CanonicalMessage):
    sku: Sku
    location: Location
    quantity: PositiveInt = Field(description="Units reserved or released", examples=[2])
    backorder: bool = Field(
        default=False,
        description=(
            "The units are promised against confirmed inbound stock (presale, location "
            "`presale`), not taken from stock on hand; they ship when the goods are received"
        ),
        examples=[False],
    )


class StockReserved(_ReservationMessage):
    """Every line of the order is reserved."""

    ce_type = "hub.reservation.reserved.v1"

    lines: tuple[ReservedLine, ...] = Field(description="Every line, reserved")
    reserved_at: UtcDatetime


class RejectReason(StrEnum):
    INSUFFICIENT_STOCK = "insufficient_stock"
    UNKNOWN_SKU = "unknown_sku"
    ORDER_CANCELLED = "order_cancelled"
    OK = "ok"


class RejectedLine(CanonicalMessage):
    sku: Sku
    location: Location
    requested: PositiveInt = Field(description="Units the order asked for", examples=[3])
    available: NonNegativeInt = Field(
        description="Units that were available to reserve when the order was decided", examples=[1]
    )
    reason: RejectReason = Field(
        description="Why this line failed, or `ok` if it alone could have been reserved",
        examples=["insufficient_stock"],
    )


class ReservationRejected(_ReservationMessage):
    """No line was reserved; each line says whether and why it was short."""

    ce_type = "hub.reservation.rejected.v1"

    lines: tuple[RejectedLine, ...] = Field(description="Every line, with why it was short")
    rejected_at: UtcDatetime


class ReleaseReason(StrEnum):
    CANCELLED = "cancelled"
    STOCK_LOST = "stock_lost"
    EXPIRED = "expired"
    SUPPLIER_STOCK_LOST = "supplier_stock_lost"
    INBOUND_LOST = "inbound_lost"


class ReservationReleased(_ReservationMessage):
    """Reserved units went back to available stock."""

    ce_type = "hub.reservation.released.v1"

    lines: tuple[ReservedLine, ...] = Field(description="The lines whose units were released")
    reason: ReleaseReason = Field(
        description=(
            "cancelled by the shop, stock lost under it, expired, a supplier reported less "
            "dropship stock than was reserved (`supplier_stock_lost`), or confirmed inbound "
            "stock fell below the backorders promised against it (`inbound_lost`)"
        ),
        examples=["cancelled"],
    )
    released_at: UtcDatetime
