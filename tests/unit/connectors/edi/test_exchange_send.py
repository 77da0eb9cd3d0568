"""Sending an order file survives a crash at any step: what reaches the outbox after a restart is
the very document first rendered (same name, same control numbers), and only once."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from connectors.edi_common import exchange as exchange_module
from connectors.x12 import Party, X12Partner, x12_exchange
from schemas.envelope import Envelope
from schemas.purchasing import PurchaseOrderIssued, PurchaseOrderLine

PARTNER = X12Partner(supplier="acme-supply", us=Party("ZZ", "STOCKHUB"), them=Party("ZZ", "ACME"))
PO = Envelope(
    id="po-issued-42",
    source="hub/purchasing",
    data=PurchaseOrderIssued(
        po_number="PO-2026-000042",
        supplier="acme-supply",
        issued_at=datetime(2026, 11, 22, 4, 2, tzinfo=UTC),
        currency="USD",
        expected_delivery=date(2026, 12, 1),
        lines=(PurchaseOrderLine(line_number=1, sku="TEE", quantity=12, unit_price=Decimal("2")),),
    ),
)


class Crash(Exception):
    pass


def _crash_on(monkeypatch: pytest.MonkeyPatch, fails: Callable[[Path], bool]) -> None:
    real = exchange_module.atomic_write

    def write(path: Path, data: bytes) -> None:
        if fails(path):
            raise Crash(path)
        real(path, data)

    monkeypatch.setattr(exchange_module, "atomic_write", write)


STEPS: dict[str, Callable[[Path], bool]] = {
    "writing the outbox file": lambda p: "outbox" in p.parts,
    "marking it sent": lambda p: ".sent" in p.parts and not p.name.endswith(".pending"),
}


@pytest.mark.parametrize("step", STEPS)
def test_a_crash_while_sending_resends_the_same_document_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    with monkeypatch.context() as m:
        _crash_on(m, STEPS[step])
        with pytest.raises(Crash):
            x12_exchange(tmp_path, PARTNER, settle_seconds=0).send(PO)
    pending = list((tmp_path / ".sent").glob("*.pending"))
    assert len(pending) == 1
    name, _, content = pending[0].read_bytes().partition(b"\n")

    restarted = x12_exchange(tmp_path, PARTNER, settle_seconds=0)
    sent = restarted.send(PO)
    assert sent is not None and sent.name == name.decode() and sent.read_bytes() == content
    assert [p.name for p in restarted.outbox.iterdir()] == [name.decode()]
    assert json.loads((tmp_path / "control-numbers.json").read_text())["isa"] == 1
    assert restarted.send(PO) is None and restarted.was_sent(PO.id)
    assert list((tmp_path / ".sent").glob("*.pending")) == []
