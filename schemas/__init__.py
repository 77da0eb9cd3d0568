"""Canonical messages: the only language connectors and the core speak to each other."""

from schemas import finance, purchasing  # noqa: F401  (importing registers their types)
from schemas.base import CanonicalMessage, Money
from schemas.envelope import Envelope, EnvelopeError, decode, message_id
from schemas.levels import StockLevelChanged
from schemas.orders import (
    FulfilledLine,
    OrderCancelled,
    OrderFulfilled,
    OrderLine,
    OrderPlaced,
    OrderReopened,
    OrderReturned,
    ReturnedLine,
)
from schemas.payments import PaymentCaptured, PaymentRefunded
from schemas.reservations import (
    RejectedLine,
    RejectReason,
    ReleaseReason,
    ReservationRejected,
    ReservationReleased,
    ReservedLine,
    StockReserved,
)
from schemas.stock import (
    AdjustmentReason,
    GoodsReceived,
    StockAdjusted,
    StockCounted,
    StockTransferred,
)

__all__ = [
    "AdjustmentReason",
    "CanonicalMessage",
    "Envelope",
    "EnvelopeError",
    "FulfilledLine",
    "GoodsReceived",
    "Money",
    "OrderCancelled",
    "OrderFulfilled",
    "OrderLine",
    "OrderPlaced",
    "OrderReopened",
    "OrderReturned",
    "PaymentCaptured",
    "PaymentRefunded",
    "RejectReason",
    "RejectedLine",
    "ReleaseReason",
    "ReservationRejected",
    "ReservationReleased",
    "ReservedLine",
    "ReturnedLine",
    "StockAdjusted",
    "StockCounted",
    "StockLevelChanged",
    "StockReserved",
    "StockTransferred",
    "decode",
    "message_id",
]
