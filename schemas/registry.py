"""Every canonical message type by its CloudEvents type (which carries the schema version)."""

from __future__ import annotations

from schemas.base import CanonicalMessage
from schemas.levels import StockLevelChanged
from schemas.orders import (
    OrderCancelled,
    OrderFulfilled,
    OrderPlaced,
    OrderReopened,
    OrderReturned,
)
from schemas.payments import PaymentCaptured, PaymentRefunded
from schemas.reservations import ReservationRejected, ReservationReleased, StockReserved
from schemas.stock import GoodsReceived, StockAdjusted, StockCounted, StockTransferred

MESSAGE_TYPES: dict[str, type[CanonicalMessage]] = {
    m.ce_type: m
    for m in (
        OrderPlaced,
        OrderCancelled,
        OrderReopened,
        OrderFulfilled,
        OrderReturned,
        PaymentCaptured,
        PaymentRefunded,
        StockCounted,
        StockAdjusted,
        GoodsReceived,
        StockTransferred,
        StockReserved,
        ReservationRejected,
        ReservationReleased,
        StockLevelChanged,
    )
}


def register(model: type[CanonicalMessage]) -> type[CanonicalMessage]:
    """Add a message type defined elsewhere (finance, purchasing) to the registry."""
    MESSAGE_TYPES[model.ce_type] = model
    return model
