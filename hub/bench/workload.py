"""Orders for the benchmark: SKU popularity (uniform, Zipf, one hot SKU, flash sale), encoded once.

Everything is built before the clock starts, so the figures measure the hub, not the generator.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

from schemas.envelope import Envelope, message_id
from schemas.orders import OrderLine, OrderPlaced

KafkaItem = tuple[str, str | None, bytes, list[tuple[str, bytes]]]

ACCOUNT = "bench"
CHANNEL = "online"
PRICE = Decimal("9.90")
PLACED_AT = datetime(2026, 11, 11, 0, 0, tzinfo=UTC)


def sku_names(prefix: str, n: int) -> list[str]:
    """`{prefix}-{i}` for i in 1..n: the names the database seeds with generate_series."""
    return [f"{prefix}-{i}" for i in range(1, n + 1)]


def zipf_cumulative(n: int, s: float) -> list[float]:
    """Cumulative weights of a Zipf popularity over n ranks (rank 1 the most popular)."""
    return list(itertools.accumulate(1.0 / (k**s) for k in range(1, n + 1)))


def pick(rng: random.Random, skus: Sequence[str], cumulative: Sequence[float], k: int) -> list[str]:
    total = cumulative[-1]
    return [skus[bisect.bisect(cumulative, rng.random() * total)] for _ in range(k)]


def demand(
    mode: str,
    skus: Sequence[str],
    hot: Sequence[str],
    orders: int,
    *,
    seed: int = 1,
    zipf_s: float = 1.1,
    hot_share: float = 0.9,
) -> list[str]:
    """One SKU per order. `uniform`: any SKU alike; `zipf`: Zipf popularity; `hot`: every order
    on `hot[0]`; `flash`: `hot_share` of the orders on the hot SKUs, the rest Zipf over `skus`."""
    rng = random.Random(seed)
    if mode == "uniform":
        return [rng.choice(skus) for _ in range(orders)]
    if mode == "zipf":
        return pick(rng, skus, zipf_cumulative(len(skus), zipf_s), orders)
    if mode == "hot":
        return [hot[0]] * orders
    if mode == "flash":
        cum = zipf_cumulative(len(skus), zipf_s)
        hot_cum = zipf_cumulative(len(hot), 0.5)
        out = []
        for _ in range(orders):
            if rng.random() < hot_share:
                out.append(pick(rng, hot, hot_cum, 1)[0])
            else:
                out.append(pick(rng, skus, cum, 1)[0])
        return out
    raise ValueError(f"unknown demand mode {mode!r}")


def order_key_prefix(phase: str) -> str:
    """What every order key of a phase starts with."""
    return f"{ACCOUNT}:{phase}-"


def order_key(phase: str, n: int) -> str:
    return f"{order_key_prefix(phase)}{n}"


def order_envelope(phase: str, n: int, sku: str, quantity: int = 1) -> Envelope:
    key = order_key(phase, n)
    msg = OrderPlaced(
        order_key=key,
        account=ACCOUNT,
        channel=CHANNEL,
        platform_order_id=f"{phase}-{n}",
        placed_at=PLACED_AT,
        currency="CNY",
        lines=(OrderLine(sku=sku, quantity=quantity, unit_price=PRICE),),
        total=PRICE * quantity,
    )
    return Envelope(id=message_id(ACCOUNT, key, "placed"), source=f"bench/{ACCOUNT}", data=msg)


def encode(envelopes: Sequence[Envelope]) -> list[KafkaItem]:
    """(topic, key, value, headers) records, serialized once."""
    return [(e.topic, e.key, e.body(), e.headers()) for e in envelopes]


def order_items(phase: str, skus: Sequence[str]) -> list[KafkaItem]:
    return encode([order_envelope(phase, n, sku) for n, sku in enumerate(skus)])


def chunks(items: Sequence[KafkaItem], size: int) -> list[Sequence[KafkaItem]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
