"""Random interleavings of place/cancel/fulfil/return/count, with duplicates and redeliveries,
through the real processor and database: the invariants always hold."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    rule,
)
from sqlalchemy import func, select

from hub.core.batch import CoreProcessor
from hub.domain.allocation import Rule
from hub.queries import invariant_problems
from hub.store.db import make_engine, session_factory
from hub.store.migrate import upgrade
from hub.store.models import Movement, OutboxRow, Reservation, Stock
from schemas import Envelope, ReservationRejected, StockReserved, topics
from tests.builders import cancel, counted, fulfil, place, records, ret

SKUS = ("A", "B", "C")
DECISIONS = {StockReserved.ce_type, ReservationRejected.ce_type}


class StockMachine(RuleBasedStateMachine):
    """Messages go into a pending pool; `deliver` hands a random batch (with duplicates) to the
    processor, so order, duplication and batching are all random."""

    sent = Bundle("sent")

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.tmp = tempfile.TemporaryDirectory()
        self.engine = make_engine(f"sqlite+aiosqlite:///{Path(self.tmp.name) / 'm.db'}")
        self.loop.run_until_complete(upgrade(self.engine))
        self.sessions = session_factory(self.engine)
        self.processor = CoreProcessor(self.sessions, {"online": Rule()})
        self.pending: list[Envelope] = []
        self.history: list[Envelope] = []
        self.n = 0

    def teardown(self) -> None:
        self.loop.run_until_complete(self.engine.dispose())
        self.loop.close()
        self.tmp.cleanup()

    def _send(self, env: Envelope) -> None:
        self.pending.append(env)
        self.history.append(env)

    @rule(
        target=sent,
        lines=st.lists(st.tuples(st.sampled_from(SKUS), st.integers(1, 4)), min_size=1, max_size=3),
    )
    def place_order(self, lines):
        self.n += 1
        key = f"s:{self.n}"
        self._send(place(key, lines))
        return (key, tuple(lines))

    @rule(order=sent)
    def cancel_order(self, order):
        self._send(cancel(order[0]))

    @rule(order=sent, part=st.integers(0, 2))
    def fulfil_order(self, order, part):
        key, lines = order
        self._send(fulfil(key, [lines[min(part, len(lines) - 1)]], fid=f"F{part}"))

    @rule(order=sent, restock=st.booleans())
    def return_order(self, order, restock):
        key, lines = order
        self._send(ret(key, [(lines[0][0], 1, restock)], rid=f"R{restock}"))

    @rule(sku=st.sampled_from(SKUS), qty=st.integers(0, 12), cid=st.integers(0, 5))
    def count_stock(self, sku, qty, cid):
        self._send(counted(sku, qty, cid=f"c{cid}"))

    @rule(data=st.data())
    def deliver(self, data):
        if not self.pending:
            return
        size = data.draw(st.integers(1, len(self.pending)))
        batch = self.pending[:size]
        self.pending = self.pending[size:]
        # Redeliveries and duplicates of anything sent earlier.
        dups = data.draw(st.lists(st.sampled_from(self.history), max_size=3))
        shuffled = data.draw(st.permutations(batch + dups))
        self.loop.run_until_complete(self.processor.process(records(*shuffled)))

    @invariant()
    def stored_totals_agree(self):
        async def check():
            async with self.sessions() as s:
                problems = await invariant_problems(s)
                stock = (await s.execute(select(Stock))).scalars().all()
                per_order = (
                    await s.execute(
                        select(Reservation.order_key, func.count())
                        .group_by(Reservation.order_key, Reservation.sku, Reservation.location)
                        .having(func.count() > 1)
                    )
                ).all()
                journal = (
                    await s.execute(select(func.coalesce(func.sum(Movement.delta), 0)))
                ).scalar_one()
                over = (
                    await s.execute(
                        select(Reservation.order_key).where(Reservation.open > Reservation.quantity)
                    )
                ).all()
                twice = (
                    await s.execute(
                        select(Movement.cause)
                        .group_by(Movement.cause, Movement.sku, Movement.location, Movement.kind)
                        .having(func.count() > 1)
                    )
                ).all()
                decided: dict[str, int] = {}
                for key, headers in (
                    await s.execute(
                        select(OutboxRow.key, OutboxRow.headers).where(
                            OutboxRow.topic == topics.RESERVATIONS
                        )
                    )
                ).all():
                    if dict(headers)["ce_type"] in DECISIONS:
                        decided[key] = decided.get(key, 0) + 1
                decisions = [k for k, n in decided.items() if n > 1]
            return problems, stock, per_order + over + twice, journal, decisions

        problems, stock, per_order, journal, decisions = self.loop.run_until_complete(check())
        assert decisions == []  # every order decided (reserved or rejected) at most once
        assert problems == []
        for row in stock:
            assert row.reserved == 0 or row.reserved <= row.on_hand
        assert per_order == []  # no line reserved twice, no message applied twice
        assert journal == sum(r.on_hand for r in stock)


StockMachine.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_random_interleavings_keep_every_invariant = StockMachine.TestCase
