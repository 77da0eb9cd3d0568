"""Property, through the core on both databases: any sequence of supplier stock reports (out of
order), orders and cancellations on a channel that sells dropship and presale and one that sells
neither, acknowledgements, ship notices, receipts (final or not) and withdrawn POs — batched at
random and partly redelivered — never promises more than there is: every stored invariant holds,
backorders stay within half of confirmed inbound, the dropship location within the newest report,
and nothing is dead-lettered."""

from __future__ import annotations

import asyncio
import itertools
import random
from datetime import timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from hub.core.batch import CoreProcessor
from hub.domain.allocation import PRESALE, Rule, dropship_location, presale_target
from hub.purchasing import service
from hub.purchasing.tables import DropshipItem
from hub.queries import invariant_problems
from hub.store.db import make_engine, session_factory
from hub.store.migrate import upgrade
from hub.store.models import DeadLetter, Stock
from schemas.envelope import Envelope, message_id
from schemas.purchasing import (
    AcknowledgedLine,
    AckStatus,
    LineAckStatus,
    PurchaseOrderAcknowledged,
    ShipmentNotified,
    ShippedLine,
    SupplierStockReported,
)
from schemas.stock import GoodsReceived
from tests.builders import cancel, counted, place, records
from tests.integration.purchasing.harness import T, replenish_step

RULES = {"online": Rule(dropship=True, presale=True), "store": Rule()}
SHARE = 0.5
DS = dropship_location("acme-supply")
_runs = itertools.count()

op = st.one_of(
    st.tuples(st.just("order"), st.integers(0, 9), st.integers(1, 4), st.booleans()),
    st.tuples(st.just("cancel"), st.integers(0, 9)),
    st.tuples(st.just("feed"), st.integers(0, 12), st.integers(0, 5)),
    st.tuples(st.just("ack"), st.integers(0, 24)),
    st.tuples(st.just("asn"), st.integers(1, 12)),
    st.tuples(st.just("receive"), st.integers(1, 10), st.booleans()),
)


def _env(msg: Any, *parts: str) -> Envelope:
    return Envelope(id=message_id("test/property", *parts), source="test/property", data=msg)


def _message(sku: str, po: str, n: int, step: tuple[Any, ...]) -> Envelope:
    at = T + timedelta(minutes=n)
    match step:
        case ("order", i, qty, online):
            return place(f"p{sku}:{i}", [(sku, qty)], channel="online" if online else "store")
        case ("cancel", i):
            return cancel(f"p{sku}:{i}")
        case ("feed", qty, minute):
            return _env(
                SupplierStockReported(
                    supplier="acme-supply",
                    sku=sku,
                    quantity=qty,
                    reported_at=T + timedelta(minutes=minute),
                    report_id=f"846-{n}",
                ),
                sku,
                str(n),
            )
        case ("ack", qty):  # 0: the supplier withdraws the whole PO
            return _env(
                PurchaseOrderAcknowledged(
                    po_number=po,
                    supplier="acme-supply",
                    acknowledgement_id=f"ACK-{n}",
                    acknowledged_at=at,
                    status=AckStatus.ACCEPTED_WITH_CHANGES if qty else AckStatus.REJECTED,
                    lines=(
                        AcknowledgedLine(
                            line_number=1,
                            sku=sku,
                            status=LineAckStatus.CHANGED if qty else LineAckStatus.REJECTED,
                            quantity=qty,
                        ),
                    ),
                ),
                sku,
                str(n),
            )
        case ("asn", qty):
            return _env(
                ShipmentNotified(
                    po_number=po,
                    supplier="acme-supply",
                    shipment_id=f"ASN-{n}",
                    shipped_at=at,
                    lines=(ShippedLine(line_number=1, sku=sku, quantity=qty),),
                ),
                sku,
                str(n),
            )
        case ("receive", qty, final):
            return _env(
                GoodsReceived(
                    sku=sku,
                    quantity=qty,
                    receipt_id=f"GRN-{n}",
                    po_number=po,
                    final=final,
                    received_at=at,
                ),
                sku,
                str(n),
            )
    raise AssertionError(step)


async def _run(sessions: Any, steps: list[tuple[Any, ...]], main: int, seed: int) -> None:
    sku = f"PROP-{next(_runs)}"
    core = CoreProcessor(sessions, RULES)
    await core.process(records(counted(sku, main, cid=f"seed-{sku}")))
    async with sessions() as s, s.begin():
        await service.set_supplier(s, "acme-supply")
        await service.set_policy(s, sku, supplier="acme-supply", reorder_point=3, order_up_to=20)
        await service.set_dropship(s, sku, supplier="acme-supply")
        await service.set_presale_share(s, sku, SHARE)
    (po,) = [e.data.po_number for e in await replenish_step(sessions, {sku})]  # type: ignore[attr-defined]
    envs = [_message(sku, po, n, step) for n, step in enumerate(steps)]
    rng = random.Random(seed)
    sent: list[Envelope] = []
    while envs:
        size = rng.randint(1, 4)
        take, envs = envs[:size], envs[size:]
        again = rng.sample(sent, min(len(sent), rng.randint(0, 2)))
        await core.process(records(*take, *again))
        sent += take
    async with sessions() as s:
        assert await invariant_problems(s) == []
        rows = {
            r.location: r
            for r in (await s.execute(select(Stock).where(Stock.sku == sku))).scalars()
        }
        inbound = (await service.confirmed_inbound(s, [sku]))[sku]
        limit = presale_target(Decimal(str(SHARE)), inbound)
        if PRESALE in rows:
            assert rows[PRESALE].on_hand == limit
            assert rows[PRESALE].reserved <= limit
        item = await s.get(DropshipItem, (sku, "acme-supply"))
        if DS in rows:
            assert item is not None and item.reported_quantity is not None
            assert rows[DS].reserved <= rows[DS].on_hand <= item.reported_quantity


def test_no_sequence_of_feeds_orders_receipts_and_cancellations_over_promises(db_url: str) -> None:
    loop = asyncio.new_event_loop()
    engine = make_engine(db_url)
    try:
        loop.run_until_complete(upgrade(engine))
        sessions = session_factory(engine)

        async def dead_letters() -> int:
            async with sessions() as s:
                return (await s.execute(select(func.count()).select_from(DeadLetter))).scalar_one()

        before = loop.run_until_complete(dead_letters())

        @settings(
            max_examples=40,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        )
        @given(
            steps=st.lists(op, min_size=1, max_size=25),
            main=st.integers(0, 3),
            seed=st.integers(0, 1000),
        )
        def check(steps: list[tuple[Any, ...]], main: int, seed: int) -> None:
            loop.run_until_complete(_run(sessions, steps, main, seed))

        check()
        assert loop.run_until_complete(dead_letters()) == before
    finally:
        loop.run_until_complete(engine.dispose())
        loop.close()
