"""The demo's supplier flow against a runtime whose publisher applies each message the way the
core does (the core's processor, then the purchasing hooks), so every check can be seen to pass
and to fail without a broker."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from hub.core.batch import CoreProcessor
from hub.demo import Report
from hub.demo_supplier import supplier_flow
from schemas.envelope import Envelope
from schemas.stock import GoodsReceived
from tests.builders import records
from tests.integration.purchasing.harness import CHART, RULES, handle_step, replenish_step

pytestmark = pytest.mark.integration


@dataclass
class CoreLikePublisher:
    sessions: Any
    supplier_answers: bool = True
    seen: list[str] = field(default_factory=list)

    async def publish(self, envelopes: list[Envelope]) -> None:
        for env in envelopes:
            self.seen.append(env.type)
            if env.topic == "hub.purchasing.v1":
                if self.supplier_answers:
                    await handle_step(self.sessions, env)
                continue
            await CoreProcessor(self.sessions, RULES, chart=CHART).process(records(env))
            msg = env.data
            if isinstance(msg, GoodsReceived) and msg.po_number:
                from hub.purchasing import service

                async with self.sessions() as s, s.begin():
                    await service.on_receipt(s, msg)
            skus = {line.sku for line in getattr(msg, "lines", ())} | (
                {msg.sku} if hasattr(msg, "sku") else set()
            )
            await replenish_step(self.sessions, skus)


@dataclass
class Runtime:
    sessions: Any
    publisher: CoreLikePublisher


async def test_supplier_flow_passes_every_check_when_the_hooks_are_called(sessions):
    report = Report()
    await supplier_flow(Runtime(sessions, CoreLikePublisher(sessions)), report, "t1", limit=2)
    assert [(c.name, c.ok) for c in report.checks] == [
        ("low stock orders once from the supplier", True),
        ("the supplier's acknowledgement and ship notice reach the PO", True),
        ("the receipt restocks and closes the PO", True),
        ("the supplier invoice matches and is booked", True),
    ], report.checks
    assert report.figures["purchase_order"].endswith("30 × RESTOCK-t1")  # ordered at 10 on hand


async def test_supplier_flow_reports_a_supplier_that_never_answers(sessions):
    report = Report()
    rt = Runtime(sessions, CoreLikePublisher(sessions, supplier_answers=False))
    await supplier_flow(rt, report, "t2", limit=0.5)
    assert report.checks[0].ok
    assert not report.ok
    assert next(c.name for c in report.checks if not c.ok) == (
        "the supplier's acknowledgement and ship notice reach the PO"
    )
