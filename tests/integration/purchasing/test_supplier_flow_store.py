"""A PO through the supplier's answers: a reduced acknowledgement lowers inbound, a partial
delivery leaves the rest inbound, an invoice off the ordered price is held with the reason, an
invoice within tolerance is booked; `hub po exceptions --json` shows what needs attention."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from hub.cli import po as po_cli
from hub.core.batch import CoreProcessor
from hub.finance.tables import VoucherRow
from hub.purchasing.tables import SupplierInvoiceRow
from hub.store.models import AuditEntry
from hub.store.outbox import CHANNEL
from schemas.envelope import Envelope
from schemas.finance import VoucherIssued
from schemas.purchasing import LineAckStatus, PurchaseOrderIssued, ShipmentNotified, ShippedLine
from tests.builders import counted, fulfil, place, records
from tests.integration.purchasing.harness import (
    RULES,
    ack,
    asn,
    count,
    handle_step,
    invoice,
    invoice_row,
    issued,
    lines_of,
    outbox_count,
    po,
    receipt,
    receipt_step,
    replenish_step,
    seed_and_sell,
    stock_of,
)
from tests.integration.relay_doubles import heard

pytestmark = pytest.mark.integration


@pytest.fixture
def cli(db_url, hub_env, monkeypatch):
    """`await cli("exceptions", "--json")`: the command in a thread, on this test's database."""
    monkeypatch.setenv("HUB_DATABASE_URL", db_url)
    monkeypatch.setattr("hub.cli.common.configure_logging", lambda *a, **k: None)

    async def invoke(*args: str):
        return await asyncio.to_thread(CliRunner().invoke, po_cli.app, list(args))

    return invoke


async def _ordered(sessions, policy_for, sku: str = "TEE", mode: str = "auto") -> str:
    await policy_for(sku, mode=mode)
    await seed_and_sell(sessions, sku, 20, 12, tag=sku)
    await replenish_step(sessions, {sku})
    (line,) = await lines_of(sessions, sku)
    return line.po_number


async def _tee_and_mug_ordered(sessions, policy_for) -> tuple[CoreProcessor, Any, Any]:
    """TEE and MUG sold down to their reorder points: one PO orders both. The core, and the
    PO's TEE and MUG lines."""
    await policy_for("TEE")
    await policy_for("MUG")
    envs = [counted("TEE", 20, cid="seed-tee"), counted("MUG", 20, cid="seed-mug")]
    for i in range(12):
        for sku in ("TEE", "MUG"):
            envs += [place(f"shop:{sku}{i}", [(sku, 1)]), fulfil(f"shop:{sku}{i}", [(sku, 1)])]
    core = CoreProcessor(sessions, RULES)
    await core.process(records(*envs))
    (tee,), (mug,) = await lines_of(sessions, "TEE"), await lines_of(sessions, "MUG")
    return core, tee, mug


async def test_partial_delivery_and_price_mismatch_end_held_and_listed(sessions, policy_for, cli):
    number = await _ordered(sessions, policy_for)
    await handle_step(sessions, ack(number, "TEE", 30, LineAckStatus.CHANGED))
    assert (await stock_of(sessions, "TEE")).inbound == 30  # 36 ordered, 30 confirmed
    await handle_step(sessions, asn(number, "TEE", 20))
    assert (await po(sessions, number)).status == "in_transit"
    await receipt_step(sessions, receipt(number, "TEE", 20))
    stock = await stock_of(sessions, "TEE")
    assert (stock.on_hand, stock.inbound) == (8 + 20, 10)
    (line,) = await lines_of(sessions, "TEE")
    assert (line.status, line.open, line.shipped, line.received) == ("partial", True, 20, 20)
    assert (await po(sessions, number)).status == "partially_received"

    # 9.50 against 8.50 ordered: 20.00 over on 170.00, beyond 2 % and 1.00.
    out = await handle_step(sessions, invoice(number, "TEE", 20, "9.50", "INV-1"))
    assert out == []
    held = await invoice_row(sessions, "INV-1")
    assert held.status == "held" and held.voucher_id is None
    assert [r["reason"] for r in held.reasons] == ["price"]
    assert await count(sessions, VoucherRow) == 1  # the receipt's only

    result = await cli("exceptions", "--json")
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    (inv,) = doc["held_invoices"]
    assert (inv["invoice_number"], inv["po_number"]) == ("INV-1", number)
    assert "invoiced at 9.5 per unit, ordered at 8.5" in inv["reasons"][0]["detail"]
    (short,) = doc["deliveries"]
    assert (short["kind"], short["sku"], short["units"], short["received"]) == (
        "partial_delivery",
        "TEE",
        10,
        20,
    )


async def test_full_delivery_and_invoice_within_tolerance_close_and_book(sessions, policy_for, cli):
    number = await _ordered(sessions, policy_for)
    await handle_step(sessions, ack(number, "TEE", 36, LineAckStatus.ACCEPTED))
    await receipt_step(sessions, receipt(number, "TEE", 30, rid="GRN-1"))
    await receipt_step(sessions, receipt(number, "TEE", 8, rid="GRN-2"))  # 2 more than ordered
    await receipt_step(sessions, receipt(number, "TEE", 8, rid="GRN-2"))  # redelivered
    stock = await stock_of(sessions, "TEE")
    assert (stock.on_hand, stock.inbound) == (8 + 38, 0)
    (line,) = await lines_of(sessions, "TEE")
    assert (line.status, line.open, line.received, line.over_delivered) == (
        "received",
        False,
        38,
        2,
    )
    assert (await po(sessions, number)).status == "closed"

    # 8.55 against 8.50: 1.80 on 306.00 is within 2 %.
    env = invoice(number, "TEE", 36, "8.55", "INV-2")
    out = await handle_step(sessions, env)
    assert [type(e.data) for e in out] == [VoucherIssued]
    matched = await invoice_row(sessions, "INV-2")
    assert (matched.status, matched.voucher_id) == ("matched", out[0].id)
    assert str(matched.price_variance.normalize()) == "1.8"
    assert await handle_step(sessions, env) == []  # redelivered: nothing booked twice
    assert await count(sessions, VoucherRow) == 3  # two receipts and the invoice
    (line,) = await lines_of(sessions, "TEE")
    assert line.invoiced == 36

    doc = json.loads((await cli("exceptions", "--json")).stdout)
    assert doc["held_invoices"] == []
    assert [(d["kind"], d["units"]) for d in doc["deliveries"]] == [("over_delivery", 2)]


async def test_a_rejected_line_stops_counting_inbound_and_allows_a_new_order(sessions, policy_for):
    number = await _ordered(sessions, policy_for)
    await handle_step(sessions, ack(number, "TEE", 0, LineAckStatus.REJECTED))
    assert (await stock_of(sessions, "TEE")).inbound == 0
    assert (await po(sessions, number)).status == "rejected"
    envs = await replenish_step(sessions, {"TEE"})
    assert len(envs) == 1 and envs[0].data.po_number != number  # type: ignore[attr-defined]
    assert (await stock_of(sessions, "TEE")).inbound == 36


async def test_a_sku_the_supplier_refused_is_suggested_again_with_nothing_selling_it(
    sessions, policy_for, cli
):
    """The core applies a refusal of the only PO of a SKU that sells no more: it lowers the
    inbound and suggests a new order, as nothing else would look at the SKU. A suggestion, not
    an order sent: a supplier refusing every order of a discontinued SKU would be sent one after
    another. A person approves it (or orders elsewhere)."""
    number = await _ordered(sessions, policy_for)
    await CoreProcessor(sessions, RULES).process(
        records(ack(number, "TEE", 0, LineAckStatus.REJECTED))
    )
    (refused,) = [ln for ln in await lines_of(sessions, "TEE") if ln.po_number == number]
    assert refused.status == "rejected"
    again = [ln for ln in await lines_of(sessions, "TEE") if ln.po_number != number]
    assert [ln.ordered for ln in again] == [36]
    assert (await po(sessions, again[0].po_number)).status == "suggested"
    assert (await stock_of(sessions, "TEE")).inbound == 0
    assert len(await issued(sessions)) == 1  # only the first order went to the supplier

    # The suggestion waits in the exceptions; discarded, it no longer stands for the SKU's
    # next order, which then goes out as the supplier's mode says.
    listed = await cli("exceptions", "--json")
    assert [p["po_number"] for p in json.loads(listed.stdout)["suggested"]] == [again[0].po_number]
    assert listed.exit_code == 0  # a suggestion waiting is no exception
    done = await cli("discard", again[0].po_number, "--json")
    assert done.exit_code == 0, done.output
    assert (await po(sessions, again[0].po_number)).status == "cancelled"
    await replenish_step(sessions, {"TEE"})
    fresh = [ln for ln in await lines_of(sessions, "TEE") if ln.open]
    assert len(fresh) == 1 and (await po(sessions, fresh[0].po_number)).status == "issued"


@pytest.mark.parametrize("approved_first", [False, True], ids=["suggested", "approved"])
async def test_a_revision_taking_back_a_refusal_is_not_ordered_twice(
    sessions, policy_for, cli, approved_first
):
    """The supplier refuses the PO of TEE, so a new one is suggested; then it revises its
    answer to accept after all. Approving the suggestion now would order the 36 units twice:
    it is refused, naming the PO that has them. Approved before the revision, both orders are
    out, and the exceptions name them for a person to cancel one."""
    from schemas.purchasing import PurchaseOrderAcknowledged

    number = await _ordered(sessions, policy_for)
    core = CoreProcessor(sessions, RULES)
    await core.process(records(ack(number, "TEE", 0, LineAckStatus.REJECTED)))
    (suggestion,) = [
        ln.po_number for ln in await lines_of(sessions, "TEE") if ln.po_number != number
    ]
    if approved_first:
        assert (await cli("approve", suggestion)).exit_code == 0
    refusal = ack(number, "TEE", 36, LineAckStatus.ACCEPTED)
    assert isinstance(refusal.data, PurchaseOrderAcknowledged)
    later = refusal.data.acknowledged_at + timedelta(hours=2)
    revised = refusal.data.model_copy(update={"acknowledged_at": later})
    await core.process(records(dataclasses.replace(refusal, id="ack-revised", data=revised)))
    assert (await po(sessions, number)).status == "acknowledged"
    assert (await stock_of(sessions, "TEE")).inbound == (72 if approved_first else 36)

    listed = await cli("exceptions", "--json")
    assert listed.exit_code == 1
    (twice,) = json.loads(listed.stdout)["on_order_twice"]
    status = "issued" if approved_first else "suggested"
    assert twice == {
        "sku": "TEE",
        "location": "main",
        "orders": [
            {"po_number": number, "status": "acknowledged", "units": 36},
            {"po_number": suggestion, "status": status, "units": 36},
        ],
    }
    if approved_first:
        return
    refused = await cli("approve", suggestion)
    assert refused.exit_code == 1
    assert f"TEE at main is on order in {number}" in " ".join(refused.output.split())
    assert (await po(sessions, suggestion)).status == "suggested"
    assert (await stock_of(sessions, "TEE")).inbound == 36
    assert (await cli("discard", suggestion)).exit_code == 0
    cleared = await cli("exceptions", "--json")
    assert json.loads(cleared.stdout)["on_order_twice"] == [] and cleared.exit_code == 0


async def test_a_replacement_received_before_the_revision_is_still_named_as_ordered_twice(
    sessions, policy_for, cli
):
    """The refused PO's replacement is approved and received in full (closed) before the
    supplier's revision accepts the refused PO after all: only one PO is open, yet 36 more
    units come. The exceptions name both."""
    number = await _ordered(sessions, policy_for)
    core = CoreProcessor(sessions, RULES)
    await core.process(records(ack(number, "TEE", 0, LineAckStatus.REJECTED)))
    (again,) = [ln.po_number for ln in await lines_of(sessions, "TEE") if ln.po_number != number]
    assert (await cli("approve", again)).exit_code == 0
    await receipt_step(sessions, receipt(again, "TEE", 36))
    assert (await po(sessions, again)).status == "closed"
    assert json.loads((await cli("exceptions", "--json")).stdout)["on_order_twice"] == []
    accepted = ack(number, "TEE", 36, LineAckStatus.ACCEPTED)
    later = accepted.data.acknowledged_at + timedelta(hours=2)  # type: ignore[attr-defined]
    revised = accepted.data.model_copy(update={"acknowledged_at": later})
    await core.process(records(dataclasses.replace(accepted, id="ack-revised", data=revised)))
    listed = await cli("exceptions", "--json")
    assert listed.exit_code == 1
    (twice,) = json.loads(listed.stdout)["on_order_twice"]
    assert twice["orders"] == [
        {"po_number": number, "status": "acknowledged", "units": 36},
        {"po_number": again, "status": "closed", "units": 0},
    ]


async def test_approving_leaves_out_only_the_lines_on_order_again(sessions, policy_for, cli):
    """TEE and MUG refused on one PO, so both are suggested on one; the supplier's revision
    then accepts TEE after all. Approving the suggestion sends MUG alone and names TEE as left
    out; nothing is on order twice."""
    from schemas.purchasing import AcknowledgedLine, AckStatus, PurchaseOrderAcknowledged

    core, tee, mug = await _tee_and_mug_ordered(sessions, policy_for)
    number = tee.po_number

    def answer(tee_status: LineAckStatus, hour: int) -> Envelope:
        def line(row, status: LineAckStatus) -> AcknowledgedLine:
            quantity = 0 if status is LineAckStatus.REJECTED else row.ordered
            return AcknowledgedLine(
                line_number=row.line_number, sku=row.sku, status=status, quantity=quantity
            )

        msg = PurchaseOrderAcknowledged(
            po_number=number,
            supplier="acme-supply",
            acknowledgement_id="SO-1",
            acknowledged_at=datetime(2026, 11, 23, hour, tzinfo=UTC),
            status=AckStatus.ACCEPTED_WITH_CHANGES,
            lines=(line(tee, tee_status), line(mug, LineAckStatus.REJECTED)),
        )
        return Envelope(id=f"ack-{hour}", source="test/supplier", data=msg)

    await core.process(records(answer(LineAckStatus.REJECTED, 9)))
    suggested = {
        ln.sku: ln.po_number
        for sku in ("TEE", "MUG")
        for ln in await lines_of(sessions, sku)
        if ln.po_number != number
    }
    assert suggested["TEE"] == suggested["MUG"]
    again = suggested["TEE"]
    await core.process(records(answer(LineAckStatus.ACCEPTED, 10)))
    result = await cli("approve", again, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["left_out"] == [
        {"sku": "TEE", "location": "main", "on_order_in": number}
    ]
    issued_po = [env for env in await issued(sessions) if env.po_number == again]
    assert [ln.sku for ln in issued_po[0].lines] == ["MUG"]
    assert (await stock_of(sessions, "TEE")).inbound == tee.ordered  # the first PO's alone
    assert (await stock_of(sessions, "MUG")).inbound == mug.ordered
    listed = await cli("exceptions", "--json")
    assert json.loads(listed.stdout)["on_order_twice"] == []
    # The supplier accepts the PO it was sent as it stands: the line left out stays out.
    accepted = PurchaseOrderAcknowledged(
        po_number=again,
        supplier="acme-supply",
        acknowledgement_id="SO-2",
        acknowledged_at=datetime(2026, 11, 23, 11, tzinfo=UTC),
        status=AckStatus.ACCEPTED,
        lines=(),
    )
    await core.process(records(Envelope(id="ack-2", source="test/supplier", data=accepted)))
    assert [ln.po_number for ln in await lines_of(sessions, "TEE")] == [number]  # never sent
    assert (await stock_of(sessions, "TEE")).inbound == tee.ordered
    # The supplier invoices the MUG it sent: matched against the PO as issued.
    (sent,) = [ln for ln in await lines_of(sessions, "MUG") if ln.po_number == again]
    await receipt_step(sessions, receipt(again, "MUG", sent.ordered, rid="GRN-M"))
    await handle_step(sessions, invoice(again, "MUG", sent.ordered, "8.50", "INV-M"))
    assert (await invoice_row(sessions, "INV-M")).status == "matched"


async def test_a_refused_po_reopened_and_received_keeps_its_replacement_from_going_out(
    sessions, policy_for, cli
):
    """The supplier refuses the PO, so a new one is suggested; its revision then accepts the
    first after all, and the goods come in, closing it. Nothing is open, but the suggestion
    would order them again: approving it is refused, naming the first PO."""
    number = await _ordered(sessions, policy_for)
    core = CoreProcessor(sessions, RULES)
    await core.process(records(ack(number, "TEE", 0, LineAckStatus.REJECTED)))
    (again,) = [ln.po_number for ln in await lines_of(sessions, "TEE") if ln.po_number != number]
    accepted = ack(number, "TEE", 36, LineAckStatus.ACCEPTED)
    later = accepted.data.acknowledged_at + timedelta(hours=2)  # type: ignore[attr-defined]
    revised = accepted.data.model_copy(update={"acknowledged_at": later})
    await core.process(records(dataclasses.replace(accepted, id="ack-revised", data=revised)))
    goods = receipt(number, "TEE", 36)
    now = datetime.now(UTC)  # received after the suggestion was made
    goods = dataclasses.replace(goods, data=goods.data.model_copy(update={"received_at": now}))
    await receipt_step(sessions, goods)
    assert (await po(sessions, number)).status == "closed"
    refused = await cli("approve", again)
    assert refused.exit_code == 1
    assert f"TEE at main is on order in {number}" in " ".join(refused.output.split())
    assert (await po(sessions, again)).status == "suggested"


async def test_a_late_carton_on_a_refused_po_does_not_block_its_replacement(
    sessions, policy_for, cli
):
    """The supplier refuses the PO, so a new one is suggested; then 5 units turn up on the
    refused PO anyway. They fill no line (an over-delivery), so the suggestion is still what
    the SKU needs, and approving it sends it."""
    number = await _ordered(sessions, policy_for)
    core = CoreProcessor(sessions, RULES)
    await core.process(records(ack(number, "TEE", 0, LineAckStatus.REJECTED)))
    (again,) = [ln.po_number for ln in await lines_of(sessions, "TEE") if ln.po_number != number]
    goods = receipt(number, "TEE", 5)
    now = datetime.now(UTC)  # received after the suggestion was made
    goods = dataclasses.replace(goods, data=goods.data.model_copy(update={"received_at": now}))
    await receipt_step(sessions, goods)
    result = await cli("approve", again, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["left_out"] == []


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_an_approved_po_wakes_the_relay(engine, sessions, policy_for, cli):
    """The PO `hub po approve` writes to the outbox is announced once committed, as the core's
    batches are (PostgreSQL's notifications), not left to the relay's next poll."""
    number = await _ordered(sessions, policy_for, mode="approve")
    async with heard(engine) as got:
        result = await cli("approve", number)
        assert result.exit_code == 0, result.output
    assert got == [CHANNEL]
    async with heard(engine) as got:
        assert (await cli("approve", number)).exit_code == 1  # issued already: nothing written
    assert got == []


async def test_an_invoice_before_the_goods_is_held_as_not_received(sessions, policy_for):
    number = await _ordered(sessions, policy_for)
    await handle_step(sessions, invoice(number, "TEE", 36, "8.50", "INV-3"))
    held = await invoice_row(sessions, "INV-3")
    assert [r["reason"] for r in held.reasons] == ["not_received"]


async def test_suggestions_wait_for_approval_then_count_inbound(sessions, policy_for, cli):
    number = await _ordered(sessions, policy_for, mode="approve")
    assert (await po(sessions, number)).status == "suggested"
    assert (await stock_of(sessions, "TEE")).inbound == 0
    assert await replenish_step(sessions, {"TEE"}) == []  # the suggestion is the open line
    assert await outbox_count(sessions, PurchaseOrderIssued.ce_type) == 0

    listed = json.loads((await cli("list", "--status", "suggested", "--json")).stdout)
    assert [p["po_number"] for p in listed["purchase_orders"]] == [number]
    result = await cli("approve", number, "--actor", "buyer@acme", "--json")
    assert result.exit_code == 0, result.output
    assert (await po(sessions, number)).status == "issued"
    assert (await stock_of(sessions, "TEE")).inbound == 36
    assert await outbox_count(sessions, PurchaseOrderIssued.ce_type) == 1
    async with sessions() as s:
        entry = (await s.execute(select(AuditEntry))).scalar_one()
    assert (entry.actor, entry.action, entry.target) == ("buyer@acme", "po.approve", number)

    again = await cli("approve", number)
    assert again.exit_code == 1
    assert (await stock_of(sessions, "TEE")).inbound == 36
    assert (await cli("approve", "PO-NOPE")).exit_code == 2
    assert await count(sessions, SupplierInvoiceRow) == 0


async def test_goods_received_before_the_approval_are_not_counted_inbound_again(
    sessions, policy_for, cli
):
    """20 of a suggestion's 36 units arrive before anyone approves it: they are on hand, the
    suggestion still waits, and approving it counts the 16 still to come as inbound."""
    number = await _ordered(sessions, policy_for, mode="approve")
    await receipt_step(sessions, receipt(number, "TEE", 20, rid="GRN-1"))
    stock = await stock_of(sessions, "TEE")
    assert (stock.on_hand, stock.inbound) == (28, 0)
    assert (await po(sessions, number)).status == "suggested"

    assert (await cli("approve", number)).exit_code == 0
    assert (await stock_of(sessions, "TEE")).inbound == 16
    await receipt_step(sessions, receipt(number, "TEE", 16, rid="GRN-2"))
    stock = await stock_of(sessions, "TEE")
    assert (stock.on_hand, stock.inbound) == (44, 0)
    assert (await po(sessions, number)).status == "closed"


async def test_a_suggestion_received_in_full_is_closed_and_not_approved(sessions, policy_for, cli):
    number = await _ordered(sessions, policy_for, mode="approve")
    await receipt_step(sessions, receipt(number, "TEE", 36, rid="GRN-1"))
    assert (await po(sessions, number)).status == "closed"
    assert (await cli("approve", number)).exit_code == 1
    assert (await stock_of(sessions, "TEE")).inbound == 0
    assert await outbox_count(sessions, PurchaseOrderIssued.ce_type) == 0


async def test_operators_set_suppliers_and_policies_from_the_cli(sessions, cli):
    assert (
        await cli("supplier", "acme-supply", "--mode", "approve", "--actor", "ops")
    ).exit_code == 0
    bad = await cli(
        "policy", "TEE", "--supplier", "acme-supply", "--reorder-point", "50", "--order-up-to", "40"
    )
    assert bad.exit_code == 2
    ok = await cli(
        "policy",
        "TEE",
        "--supplier",
        "acme-supply",
        "--reorder-point",
        "10",
        "--order-up-to",
        "40",
        "--pack-size",
        "6",
        "--unit-price",
        "8.50",
        "--json",
    )
    assert ok.exit_code == 0, ok.output
    await seed_and_sell(sessions, "TEE", 20, 12)
    assert await replenish_step(sessions, {"TEE"}) == []  # approve mode: a suggestion
    (line,) = await lines_of(sessions, "TEE")
    assert (line.ordered, str(line.unit_price.normalize())) == (36, "8.5")
    assert (await po(sessions, line.po_number)).status == "suggested"
    async with sessions() as s:
        actions = (await s.execute(select(AuditEntry.action).order_by(AuditEntry.id))).all()
    assert [a for (a,) in actions] == ["po.supplier", "po.policy"]


async def test_an_invoice_held_for_missing_goods_is_booked_when_they_arrive(sessions, policy_for):
    from hub.purchasing import service
    from tests.integration.purchasing.harness import CHART

    number = await _ordered(sessions, policy_for)
    await handle_step(sessions, invoice(number, "TEE", 36, "8.50", "INV-4"))
    await handle_step(sessions, invoice(number, "TEE", 36, "9.90", "INV-5"))  # price: stays held
    await receipt_step(sessions, receipt(number, "TEE", 36))
    async with sessions() as s, s.begin():
        await service.rematch(s, number, CHART)
    booked = await invoice_row(sessions, "INV-4")
    assert (booked.status, booked.reasons) == ("matched", [])
    async with sessions() as s:
        assert await s.get(VoucherRow, booked.voucher_id) is not None
    still = await invoice_row(sessions, "INV-5")
    assert still.status == "held"  # matched again: the goods came, INV-4 took them
    assert {r["reason"] for r in still.reasons} == {"price", "over_received"}
    async with sessions() as s, s.begin():
        assert await service.rematch(s, number, CHART) == []  # nothing left that goods can clear
    (line,) = await lines_of(sessions, "TEE")
    assert line.invoiced == 36


async def test_a_late_receipt_on_a_closed_po_leaves_the_next_pos_inbound(sessions, policy_for):
    """Inbound falls by what a receipt fills on open lines: more units on a PO already closed
    are an over-delivery, and the next PO for the SKU keeps counting as inbound."""
    from hub.core.batch import CoreProcessor
    from tests.builders import fulfil, place, records
    from tests.integration.purchasing.harness import RULES

    first = await _ordered(sessions, policy_for)  # 8 on hand, 36 inbound
    await handle_step(sessions, ack(first, "TEE", 36, LineAckStatus.ACCEPTED))
    await receipt_step(sessions, receipt(first, "TEE", 36, rid="GRN-1"))
    assert (await po(sessions, first)).status == "closed"
    stock = await stock_of(sessions, "TEE")
    assert (stock.on_hand, stock.inbound) == (44, 0)

    sales = [
        e
        for i in range(34)
        for e in (place(f"shop:b{i}", [("TEE", 1)]), fulfil(f"shop:b{i}", [("TEE", 1)]))
    ]
    await CoreProcessor(sessions, RULES).process(records(*sales))
    await replenish_step(sessions, {"TEE"})
    second = [ln for ln in await lines_of(sessions, "TEE") if ln.po_number != first]
    assert len(second) == 1
    before = await stock_of(sessions, "TEE")
    assert before.inbound == second[0].ordered > 0

    await receipt_step(sessions, receipt(first, "TEE", 4, rid="GRN-LATE"))
    after = await stock_of(sessions, "TEE")
    assert (after.on_hand, after.inbound) == (before.on_hand + 4, before.inbound)
    (late,) = [ln for ln in await lines_of(sessions, "TEE") if ln.po_number == first]
    assert late.over_delivered == 4

    await receipt_step(sessions, receipt(second[0].po_number, "TEE", 10, rid="GRN-2"))
    assert (await stock_of(sessions, "TEE")).inbound == before.inbound - 10


async def test_an_invoice_within_the_configured_tolerance_is_booked_when_the_goods_arrive(
    sessions, policy_for
):
    """`[purchasing] price_tolerance_percent = 5`: an invoice 4% over the ordered price that
    came before the goods waits only for them, and is booked by the core when they arrive."""
    from decimal import Decimal

    from hub.core.batch import CoreProcessor
    from hub.purchasing.match import Tolerance
    from tests.builders import records
    from tests.integration.purchasing.harness import CHART, RULES

    number = await _ordered(sessions, policy_for)
    core = CoreProcessor(sessions, RULES, chart=CHART, tolerance=Tolerance(percent=Decimal(5)))
    await core.process(records(invoice(number, "TEE", 36, "8.84", "INV-6")))
    held = await invoice_row(sessions, "INV-6")
    assert [r["reason"] for r in held.reasons] == ["not_received"]
    await core.process(records(receipt(number, "TEE", 36)))
    booked = await invoice_row(sessions, "INV-6")
    assert (booked.status, booked.reasons) == ("matched", [])


async def test_charges_the_po_never_agreed_are_held_beyond_the_tolerance(sessions, policy_for):
    """36 units at 8.50 (306.00) received; the default tolerance is 2% (6.12). An invoice that
    adds 40.00 of handling waits for someone to look at it; one that adds 6.00 of freight is
    booked, the freight going to purchase price variance."""
    number = await _ordered(sessions, policy_for)
    await receipt_step(sessions, receipt(number, "TEE", 36))
    vouchers = await count(sessions, VoucherRow)
    await handle_step(sessions, invoice(number, "TEE", 36, "8.50", "INV-7", charges="40.00"))
    held = await invoice_row(sessions, "INV-7")
    assert (held.status, held.voucher_id) == ("held", None)
    assert [r["reason"] for r in held.reasons] == ["charges"]
    assert await count(sessions, VoucherRow) == vouchers

    await handle_step(sessions, invoice(number, "TEE", 36, "8.50", "INV-8", charges="6.00"))
    booked = await invoice_row(sessions, "INV-8")
    assert (booked.status, booked.reasons) == ("matched", [])
    assert booked.voucher_id is not None
    assert await count(sessions, VoucherRow) == vouchers + 1


async def test_a_buyer_accepts_an_invoice_held_for_its_price_and_charges(sessions, policy_for, cli):
    """Held for 9.50 against 8.50 ordered and for 40.00 of handling: the buyer accepts it, it
    is booked (payable 382.00, the goods at receipt cost 306.00, 76.00 variance) and audited.
    An invoice for units never received cannot be accepted; nor one already booked."""
    number = await _ordered(sessions, policy_for)
    await receipt_step(sessions, receipt(number, "TEE", 36))
    await handle_step(sessions, invoice(number, "TEE", 36, "9.50", "INV-9", charges="40.00"))
    held = await invoice_row(sessions, "INV-9")
    assert sorted(r["reason"] for r in held.reasons) == ["charges", "price"]
    vouchers = await outbox_count(sessions, VoucherIssued.ce_type)

    result = await cli("accept-invoice", "acme-supply", "INV-9", "--actor", "buyer", "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert (body["status"], body["reasons"], body["price_variance"]) == ("matched", [], "36.00")
    booked = await invoice_row(sessions, "INV-9")
    assert booked.status == "matched" and booked.voucher_id == body["voucher_id"]
    assert await outbox_count(sessions, VoucherIssued.ce_type) == vouchers + 1
    async with sessions() as s:
        voucher = await s.get(VoucherRow, booked.voucher_id)
        entry = (await s.execute(select(AuditEntry))).scalar_one()
    assert voucher is not None
    assert (entry.actor, entry.action, entry.target) == (
        "buyer",
        "po.invoice.accept",
        "acme-supply/INV-9",
    )
    (line,) = await lines_of(sessions, "TEE")
    assert line.invoiced == 36

    again = await cli("accept-invoice", "acme-supply", "INV-9")
    assert again.exit_code == 1 and "matched, not held" in again.output
    await handle_step(sessions, invoice(number, "TEE", 36, "9.50", "INV-10"))
    refused = await cli("accept-invoice", "acme-supply", "INV-10")  # its units were paid
    assert refused.exit_code == 1 and "still held" in refused.output
    assert (await invoice_row(sessions, "INV-10")).status == "held"
    assert (await cli("accept-invoice", "acme-supply", "INV-NOPE")).exit_code == 2
    wrong = invoice(number, "TEE", 1, "8.50", "INV-12")
    # A total that is not subtotal + tax + charges.
    bad = wrong.data.model_copy(update={"total": Decimal("9.00")})
    await handle_step(sessions, dataclasses.replace(wrong, data=bad))
    totals = await cli("accept-invoice", "acme-supply", "INV-12")
    assert totals.exit_code == 1 and "waits for the supplier" in totals.output
    assert await outbox_count(sessions, VoucherIssued.ce_type) == vouchers + 1


async def test_an_invoice_held_for_its_price_before_the_goods_came_can_be_accepted_after(
    sessions, policy_for, cli
):
    """Invoiced at 9.50 before anything arrived: held for both. The goods' arrival leaves it
    held for its price alone, and the buyer can accept it."""
    number = await _ordered(sessions, policy_for)
    await handle_step(sessions, invoice(number, "TEE", 36, "9.50", "INV-11"))
    held = await invoice_row(sessions, "INV-11")
    assert sorted(r["reason"] for r in held.reasons) == ["not_received", "price"]
    await receipt_step(sessions, receipt(number, "TEE", 36))
    held = await invoice_row(sessions, "INV-11")
    assert (held.status, [r["reason"] for r in held.reasons]) == ("held", ["price"])
    result = await cli("accept-invoice", "acme-supply", "INV-11", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "matched"


async def test_a_price_accepted_before_the_goods_came_stays_accepted_when_they_come(
    sessions, policy_for, cli
):
    """Invoiced at 9.50 before anything arrived, and the buyer accepts its price at once: it
    waits for the goods alone, and their arrival books it without a second acceptance."""
    number = await _ordered(sessions, policy_for)
    await handle_step(sessions, invoice(number, "TEE", 36, "9.50", "INV-12"))
    result = await cli("accept-invoice", "acme-supply", "INV-12", "--json")
    assert result.exit_code == 1 and json.loads(result.stdout)["status"] == "held"
    held = await invoice_row(sessions, "INV-12")
    assert (held.status, [r["reason"] for r in held.reasons]) == ("held", ["not_received"])
    await receipt_step(sessions, receipt(number, "TEE", 36))
    booked = await invoice_row(sessions, "INV-12")
    assert (booked.status, booked.reasons) == ("matched", [])
    assert booked.voucher_id is not None and booked.price_variance == Decimal("36.00")


async def test_a_receipt_at_another_location_clears_the_inbound_where_the_po_expected_it(
    sessions, policy_for
):
    """A PO for `main` received at `east`: the units are on hand at `east`, and `main` no
    longer counts them as inbound; else its projected stock stays high and it is never ordered
    again. Over-delivered units were never inbound anywhere."""
    from hub.store.models import Stock

    async def view() -> dict[str, tuple[int, int]]:
        async with sessions() as s:
            rows = (await s.execute(select(Stock).where(Stock.sku == "TEE"))).scalars().all()
        return {r.location: (r.on_hand, r.inbound) for r in rows}

    first = await _ordered(sessions, policy_for)  # 8 on hand at main, 36 inbound
    await receipt_step(sessions, receipt(first, "TEE", 30, rid="GRN-1", location="east"))
    assert await view() == {"main": (8, 6), "east": (30, 0)}

    # The line is filled (3 more than ordered): main, still at 8, is below its reorder point
    # with nothing inbound, so it is ordered again.
    await receipt_step(sessions, receipt(first, "TEE", 9, rid="GRN-2", location="east"))
    lines = {ln.po_number: ln for ln in await lines_of(sessions, "TEE")}
    assert (lines[first].received, lines[first].over_delivered, lines[first].open) == (39, 3, False)
    (again,) = [ln for n, ln in lines.items() if n != first]
    assert again.location == "main" and again.ordered > 0
    assert await view() == {"main": (8, again.ordered), "east": (39, 0)}


async def test_one_receipt_split_across_locations_fills_the_line_with_every_part(
    sessions, policy_for
):
    """One receipt id brings the 36 units of a PO for `main` in two parts, 20 to `main` and 16
    to `east`: both parts fill the line, which closes, and `main` counts nothing as inbound.
    The same part delivered again counts once."""
    from hub.store.models import Stock

    async def view() -> dict[str, tuple[int, int]]:
        async with sessions() as s:
            rows = (await s.execute(select(Stock).where(Stock.sku == "TEE"))).scalars().all()
        return {r.location: (r.on_hand, r.inbound) for r in rows}

    first = await _ordered(sessions, policy_for)  # 8 on hand at main, 36 inbound
    await receipt_step(sessions, receipt(first, "TEE", 20, rid="GRN-9", location="main"))
    await receipt_step(sessions, receipt(first, "TEE", 16, rid="GRN-9", location="east"))
    await receipt_step(sessions, receipt(first, "TEE", 16, rid="GRN-9", location="east"))
    (line,) = await lines_of(sessions, "TEE")
    assert (line.received, line.status, line.open) == (36, "received", False)
    assert (await po(sessions, first)).status == "closed"
    assert await view() == {"main": (28, 0), "east": (16, 0)}


async def test_one_ship_notice_for_two_pos_ships_the_goods_of_each(sessions, policy_for):
    """An 856 with an order level per PO comes as one message per PO under one shipment id:
    each PO's line is shipped and in transit, and the notice delivered again counts once."""
    tee = await _ordered(sessions, policy_for, "TEE")
    mug = await _ordered(sessions, policy_for, "MUG")
    assert tee != mug
    notices = [asn(tee, "TEE", 30, sid="ASN-77812"), asn(mug, "MUG", 12, sid="ASN-77812")]
    core = CoreProcessor(sessions, RULES)
    await core.process(records(*notices))
    await core.process(records(*notices))  # a redelivery
    for handle in notices:  # as a second consumer of the same notices would
        await handle_step(sessions, handle)
    (tee_line,) = await lines_of(sessions, "TEE")
    (mug_line,) = await lines_of(sessions, "MUG")
    assert (tee_line.shipped, mug_line.shipped) == (30, 12)
    assert (await po(sessions, tee)).status == (await po(sessions, mug)).status == "in_transit"


async def test_a_ship_notice_numbered_by_the_supplier_ships_the_lines_of_its_skus(
    sessions, policy_for
):
    """One PO for two SKUs; the notice numbers its items itself, so that its line 1 is the
    PO's other SKU: each item is shipped on the line of its SKU."""
    _, tee, mug = await _tee_and_mug_ordered(sessions, policy_for)
    assert tee.po_number == mug.po_number and tee.line_number != mug.line_number
    notice = ShipmentNotified(
        po_number=tee.po_number,
        supplier="acme-supply",
        shipment_id="ASN-9",
        shipped_at=datetime(2026, 11, 24, tzinfo=UTC),
        lines=(
            ShippedLine(line_number=tee.line_number, sku="MUG", quantity=30),
            ShippedLine(line_number=mug.line_number, sku="TEE", quantity=12),
        ),
    )
    await handle_step(sessions, Envelope(id="asn-9", source="test/supplier", data=notice))
    (tee,), (mug,) = await lines_of(sessions, "TEE"), await lines_of(sessions, "MUG")
    assert (tee.shipped, mug.shipped) == (12, 30)


async def test_documents_naming_another_suppliers_po_change_nothing_of_it(sessions, policy_for):
    """`other-supply` cites acme-supply's PO (a mistyped number): its acknowledgement and ship
    notice are dead letters naming both, and its invoice is held, booking nothing against the
    goods acme-supply sends."""
    number = await _ordered(sessions, policy_for)
    foreign = [
        dataclasses.replace(env, data=env.data.model_copy(update={"supplier": "other-supply"}))
        for env in (
            ack(number, "TEE", 0, LineAckStatus.REJECTED),
            asn(number, "TEE", 36),
            invoice(number, "TEE", 36, "8.50", "INV-X"),
        )
    ]
    result = await CoreProcessor(sessions, RULES).process(records(*foreign))
    assert result.dead_lettered == 2
    (line,) = await lines_of(sessions, "TEE")
    assert (line.status, line.shipped, (await stock_of(sessions, "TEE")).inbound) == ("open", 0, 36)
    async with sessions() as s:
        held = await s.get(SupplierInvoiceRow, ("other-supply", "INV-X"))
    assert held is not None and held.status == "held"
    assert [r["reason"] for r in held.reasons] == ["not_on_order"]
    assert f"{number} is acme-supply's, not other-supply's" in held.reasons[0]["detail"]
    await receipt_step(sessions, receipt(number, "TEE", 36))
    async with sessions() as s:
        held = await s.get(SupplierInvoiceRow, ("other-supply", "INV-X"))
    assert held is not None and held.status == "held"  # the goods came: still not its PO


async def test_a_revised_acknowledgement_applies_whichever_comes_last(sessions, policy_for):
    """The supplier confirms 36, then revises its answer under the same order number to 24:
    the revision lowers the inbound. The first answer delivered again afterwards is older and
    changes nothing; a revision accepting a refused line makes it expected again."""
    number = await _ordered(sessions, policy_for)

    def answer(status: LineAckStatus, quantity: int, hour: int) -> Envelope:
        first = ack(number, "TEE", quantity, status)
        at = datetime(2026, 11, 23, hour, tzinfo=UTC)
        data = first.data.model_copy(update={"acknowledged_at": at})
        return dataclasses.replace(first, id=f"ack-{hour}", data=data)

    core = CoreProcessor(sessions, RULES)
    await core.process(records(answer(LineAckStatus.ACCEPTED, 36, 9)))
    await core.process(records(answer(LineAckStatus.CHANGED, 24, 11)))
    assert (await stock_of(sessions, "TEE")).inbound == 24
    await core.process(
        records(dataclasses.replace(answer(LineAckStatus.ACCEPTED, 36, 9), id="again"))
    )
    assert (await stock_of(sessions, "TEE")).inbound == 24
    (line,) = [ln for ln in await lines_of(sessions, "TEE") if ln.po_number == number]
    assert (line.confirmed, line.status) == (24, "open")
    await core.process(records(answer(LineAckStatus.REJECTED, 0, 12)))
    await core.process(records(answer(LineAckStatus.CHANGED, 30, 13)))
    (line,) = [ln for ln in await lines_of(sessions, "TEE") if ln.po_number == number]
    assert (line.confirmed, line.status, line.open) == (30, "open", True)
    assert (await po(sessions, number)).status == "acknowledged"


async def test_a_revision_reopening_a_line_of_a_closed_po_opens_the_po(sessions, policy_for):
    """TEE and MUG on one PO: MUG refused, TEE received whole, so the PO closes. The supplier
    then revises its answer to accept MUG after all: MUG is expected again, and so is the PO."""
    from schemas.purchasing import AcknowledgedLine, AckStatus, PurchaseOrderAcknowledged

    core, tee, mug = await _tee_and_mug_ordered(sessions, policy_for)
    number = tee.po_number

    def answer(mug_status: LineAckStatus, hour: int) -> Envelope:
        msg = PurchaseOrderAcknowledged(
            po_number=number,
            supplier="acme-supply",
            acknowledgement_id="SO-1",
            acknowledged_at=datetime(2026, 11, 23, hour, tzinfo=UTC),
            status=AckStatus.ACCEPTED_WITH_CHANGES,
            lines=(
                AcknowledgedLine(
                    line_number=tee.line_number,
                    sku="TEE",
                    status=LineAckStatus.ACCEPTED,
                    quantity=tee.ordered,
                ),
                AcknowledgedLine(
                    line_number=mug.line_number,
                    sku="MUG",
                    status=mug_status,
                    quantity=0 if mug_status is LineAckStatus.REJECTED else mug.ordered,
                ),
            ),
        )
        return Envelope(id=f"ack-{hour}", source="test/supplier", data=msg)

    await core.process(records(answer(LineAckStatus.REJECTED, 9)))
    await receipt_step(sessions, receipt(number, "TEE", tee.ordered))
    assert (await po(sessions, number)).status == "closed"
    await core.process(records(answer(LineAckStatus.ACCEPTED, 10)))
    (mug,) = [ln for ln in await lines_of(sessions, "MUG") if ln.po_number == number]
    assert (mug.open, mug.status) == (True, "open")
    assert (await po(sessions, number)).status == "partially_received"


async def test_an_acceptance_covers_the_variance_the_buyer_saw_not_a_larger_one(
    sessions, policy_for, cli
):
    """Invoiced at 9.50 against 8.50 and accepted while the goods are missing (36.00 of
    variance). The supplier then confirms the line at 8.00: the same invoice is now 54.00 over,
    which nobody accepted, so the goods' arrival leaves it held for its price."""
    from schemas.purchasing import AcknowledgedLine, AckStatus, PurchaseOrderAcknowledged

    number = await _ordered(sessions, policy_for)
    await handle_step(sessions, invoice(number, "TEE", 36, "9.50", "INV-13"))
    result = await cli("accept-invoice", "acme-supply", "INV-13", "--json")
    assert result.exit_code == 1 and json.loads(result.stdout)["status"] == "held"
    cheaper = PurchaseOrderAcknowledged(
        po_number=number,
        supplier="acme-supply",
        acknowledgement_id="SO-2",
        acknowledged_at=datetime(2026, 11, 23, tzinfo=UTC),
        status=AckStatus.ACCEPTED_WITH_CHANGES,
        lines=(
            AcknowledgedLine(
                line_number=1,
                sku="TEE",
                status=LineAckStatus.ACCEPTED,
                quantity=36,
                unit_price=Decimal("8.00"),
            ),
        ),
    )
    await handle_step(sessions, Envelope(id="ack-cheaper", source="test/supplier", data=cheaper))
    await receipt_step(sessions, receipt(number, "TEE", 20, rid="GRN-1"))
    await receipt_step(sessions, receipt(number, "TEE", 16, rid="GRN-2"))  # a second match
    held = await invoice_row(sessions, "INV-13")
    assert (held.status, [r["reason"] for r in held.reasons]) == ("held", ["price"])
    assert held.accepted_variance == Decimal("36.00")
