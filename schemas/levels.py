"""Available-to-sell per SKU and channel on `hub.stock-levels.v1`, keyed by `{sku}@{channel}`."""

from __future__ import annotations

from pydantic import Field, NonNegativeInt, PositiveInt

from schemas import topics
from schemas.base import CanonicalMessage, Sku, UtcDatetime
from schemas.orders import Channel


class StockLevelChanged(CanonicalMessage):
    """What a channel may now sell of a SKU. Only the newest version per (SKU, channel) matters."""

    topic = topics.STOCK_LEVELS
    ce_type = "hub.stock-level.changed.v1"

    sku: Sku
    channel: Channel
    available: NonNegativeInt = Field(description="Units the channel may sell now", examples=[38])
    on_hand: int = Field(description="Units on hand over the channel's locations", examples=[50])
    reserved: NonNegativeInt = Field(
        description="Units reserved over those locations", examples=[12]
    )
    presale_available: NonNegativeInt = Field(
        default=0,
        description=(
            "Units the channel may still sell as backorders against confirmed inbound stock "
            "(presale), apart from `available`; 0 for a channel without presale"
        ),
        examples=[20],
    )
    version: PositiveInt = Field(
        description="Increases with every change of this (SKU, channel); older versions are stale",
        examples=[7],
    )
    changed_at: UtcDatetime

    def kafka_key(self) -> str:
        # One key per (SKU, channel): each channel's levels stay in order, and log compaction
        # of hub.stock-levels.v1 keeps the newest level of every channel, not just one per SKU.
        return f"{self.sku}@{self.channel}"
