"""Stock events on `hub.stock-events.v1`, keyed by SKU so each SKU's events stay in order."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from pydantic import Field, model_validator

from schemas import topics
from schemas.base import (
    MAX_QUANTITY,
    Amount,
    CanonicalMessage,
    Currency,
    Location,
    PlatformId,
    Reference,
    Sku,
    Units,
    UnitsOrZero,
    UtcDatetime,
)


class _StockMessage(CanonicalMessage):
    topic = topics.STOCK_EVENTS

    sku: Sku

    def kafka_key(self) -> str:
        return self.sku


class StockCounted(_StockMessage):
    """A stocktake found this many units at `counted_at`: on-hand becomes the count plus what
    was journaled at that stock after it was counted (a sale shipped while the count waited to
    be imported is not counted twice), and the difference is journaled. A count older than a
    stocktake of the same stock already applied changes nothing."""

    ce_type = "hub.stock.counted.v1"

    location: Location = "main"
    quantity: UnitsOrZero = Field(description="Units counted", examples=[48])
    count_id: Reference = Field(
        description="Stocktake id",
        examples=["count-2026-11-01"],
    )
    counted_at: UtcDatetime


class AdjustmentReason(StrEnum):
    DAMAGED = "damaged"
    LOST = "lost"
    FOUND = "found"
    CORRECTION = "correction"
    SAMPLE = "sample"
    OTHER = "other"


class StockAdjusted(_StockMessage):
    """A signed change of on-hand with its reason (damage, loss, found, correction…)."""

    ce_type = "hub.stock.adjusted.v1"

    location: Location = "main"
    delta: int = Field(
        ge=-MAX_QUANTITY,
        le=MAX_QUANTITY,
        description="Units added (positive) or removed (negative)",
        examples=[-2],
    )
    reason: AdjustmentReason = Field(description="Why stock changed", examples=["damaged"])
    note: str = Field(
        default="",
        max_length=500,
        description="Free text for the journal",
        examples=["water damage in aisle 4"],
    )
    adjustment_id: Reference = Field(description="Adjustment id", examples=["adj-77"])
    adjusted_at: UtcDatetime

    @model_validator(mode="after")
    def _nonzero(self) -> StockAdjusted:
        if self.delta == 0:
            raise ValueError("delta must not be zero")
        return self


class GoodsReceived(_StockMessage):
    """Goods arrived at a location: on-hand grows, the moving-average cost takes the unit cost."""

    ce_type = "hub.stock.received.v1"

    location: Location = "main"
    quantity: Units = Field(description="Units received", examples=[100])
    unit_cost: Amount = Field(
        default=Decimal(0), ge=0, description="Cost per unit", examples=["12.50"]
    )
    currency: Currency = "CNY"
    receipt_id: Reference = Field(
        description="Receipt (GRN) id. A receipt line is its receipt id, SKU, location and PO: "
        "another message with the same four is that line sent again, and counts once",
        examples=["GRN-1001"],
    )
    po_number: PlatformId | None = Field(
        default=None,
        description="Purchase order the goods fill, if any",
        examples=["PO-2026-0042"],
    )
    final: bool = Field(
        default=False,
        description=(
            "The supplier sends no more of this SKU on this PO: its lines close, short if less "
            "arrived than confirmed, and the rest no longer counts as inbound"
        ),
        examples=[False],
    )
    received_at: UtcDatetime


class StockTransferred(_StockMessage):
    """Units moved between two locations."""

    ce_type = "hub.stock.transferred.v1"

    from_location: Location
    to_location: Location
    quantity: Units = Field(description="Units moved", examples=[10])
    transfer_id: Reference = Field(description="Transfer id", examples=["TR-9"])
    transferred_at: UtcDatetime

    @model_validator(mode="after")
    def _distinct(self) -> StockTransferred:
        if self.from_location == self.to_location:
            raise ValueError("from_location and to_location must differ")
        return self
