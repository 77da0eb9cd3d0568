"""The REST supplier portal: client against the simulator over httpx.ASGITransport, and the pure
JSON mapping."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from connectors.errors import ConnectorError, MalformedPayload
from connectors.http import RetryPolicy
from connectors.supplier_rest import SupplierPortal, SupplierPortalClient, to_envelope
from connectors.supplier_rest.mapping import (
    acknowledgement_from_json,
    invoice_from_json,
    stock_from_json,
)
from hub.purchasing.match import HoldReason, three_way_match
from schemas.base import MAX_QUANTITY
from schemas.purchasing import (
    AckStatus,
    LineAckStatus,
    PurchaseOrderCancelled,
    PurchaseOrderChanged,
    PurchaseOrderIssued,
    PurchaseOrderLine,
)

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
PO = PurchaseOrderIssued(
    po_number="PO-2026-0061",
    supplier="rest-supply",
    issued_at=T0,
    currency="CNY",
    expected_delivery=date(2026, 12, 2),
    lines=(
        PurchaseOrderLine(
            line_number=1, sku="TEE-RED-M", quantity=120, unit_price=Decimal("12.50")
        ),
        PurchaseOrderLine(line_number=2, sku="TEE-BLU-M", quantity=48, unit_price=Decimal("9.75")),
    ),
)
FAST = RetryPolicy(attempts=4, initial_wait=0.001, max_wait=0.01, timeout=2.0)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now


@pytest.fixture
def portal() -> SupplierPortal:
    return SupplierPortal(token="s3cret", page_size=2, clock=Clock())


def client_for(portal: SupplierPortal, token: str = "s3cret") -> SupplierPortalClient:
    return SupplierPortalClient(
        "http://portal.test",
        token,
        supplier="rest-supply",
        transport=httpx.ASGITransport(app=portal.app),
        policy=FAST,
        page_size=2,
    )


@pytest.fixture
async def client(portal: SupplierPortal) -> AsyncIterator[SupplierPortalClient]:
    async with client_for(portal) as c:
        yield c


async def test_purchase_order_reaches_the_portal_with_exact_prices(
    portal: SupplierPortal, client: SupplierPortalClient
) -> None:
    await client.send_purchase_order(PO)
    sent = portal.orders["PO-2026-0061"]
    assert [(li["sku"], li["quantity"], li["unit_price"]) for li in sent["lines"]] == [
        ("TEE-RED-M", 120, "12.50"),
        ("TEE-BLU-M", 48, "9.75"),
    ]
    await client.send_purchase_order(PO)  # a redelivered PO is accepted, not duplicated
    assert len(portal.orders) == 1


async def test_a_different_order_under_the_same_number_is_refused_for_good(
    portal: SupplierPortal, client: SupplierPortalClient
) -> None:
    await client.send_purchase_order(PO)
    changed = PO.model_copy(update={"note": "rush"})
    with pytest.raises(ConnectorError) as err:
        await client.send_purchase_order(changed)
    assert (err.value.status, err.value.retryable) == (409, False)


async def test_wrong_token_fails_at_once_without_retries(portal: SupplierPortal) -> None:
    async with client_for(portal, token="wrong") as c:
        with pytest.raises(ConnectorError) as err:
            await c.send_purchase_order(PO)
    assert (err.value.status, err.value.retryable) == (401, False)
    assert len(portal.faults.calls) == 1


async def test_no_acknowledgement_yet_then_changed_and_refused_lines(
    portal: SupplierPortal, client: SupplierPortalClient
) -> None:
    await client.send_purchase_order(PO)
    assert await client.acknowledgement("PO-2026-0061") is None
    portal.acknowledge("PO-2026-0061", confirm={"TEE-RED-M": 96}, reject={"TEE-BLU-M"})
    ack = await client.acknowledgement("PO-2026-0061")
    assert ack is not None and ack.status is AckStatus.ACCEPTED_WITH_CHANGES
    red, blue = ack.lines
    assert (red.status, red.quantity) == (LineAckStatus.CHANGED, 96)
    assert (blue.status, blue.quantity) == (LineAckStatus.REJECTED, 0)


async def test_acknowledgement_of_an_unknown_order_is_an_error(
    client: SupplierPortalClient,
) -> None:
    with pytest.raises(ConnectorError) as err:
        await client.acknowledgement("PO-NOPE")
    assert err.value.status == 404 and not err.value.retryable


async def test_partial_shipments_are_read_across_pages_and_since_skips_old_ones(
    portal: SupplierPortal, client: SupplierPortalClient
) -> None:
    await client.send_purchase_order(PO)
    first = portal.ship("PO-2026-0061", {"TEE-RED-M": 60})
    for _ in range(4):
        portal.ship("PO-2026-0061", {"TEE-BLU-M": 12})
    notices = await client.shipments()
    assert len(notices) == 5  # three pages of two
    assert notices[0].shipment_id == first["id"]
    assert [(li.sku, li.quantity, li.line_number) for li in notices[0].lines] == [
        ("TEE-RED-M", 60, 1)
    ]
    later = await client.shipments(since=datetime.fromisoformat(first["updated_at"]))
    assert len(later) == 5  # `since` is inclusive: nothing at the boundary is lost
    newest = await client.shipments(
        since=datetime.fromisoformat(first["updated_at"]) + timedelta(seconds=1)
    )
    assert len(newest) == 4


async def test_invoice_at_a_higher_price_arrives_exact_and_is_held_by_the_match(
    portal: SupplierPortal, client: SupplierPortalClient
) -> None:
    await client.send_purchase_order(PO)
    portal.ship("PO-2026-0061", {"TEE-RED-M": 60})
    portal.invoice("PO-2026-0061", prices={"TEE-RED-M": "13.10"}, tax_rate="0.13")
    [inv] = await client.invoices()
    assert inv.lines[0].unit_price == Decimal("13.10") and inv.total == Decimal("888.18")
    result = three_way_match(inv, po_lines=PO.lines, po_currency="CNY", received={"TEE-RED-M": 60})
    assert [h.reason for h in result.holds] == [HoldReason.PRICE]
    assert result.price_variance == Decimal("36.00")


async def test_supplier_stock_feed(portal: SupplierPortal, client: SupplierPortalClient) -> None:
    portal.set_stock("TEE-RED-M", 340, supplier_sku="VND-88")
    portal.set_stock("MUG-WHT", -3)
    reports = {r.sku: r for r in await client.stock()}
    assert reports["TEE-RED-M"].quantity == 340 and reports["TEE-RED-M"].supplier_sku == "VND-88"
    assert reports["MUG-WHT"].quantity == 0


async def test_429_waits_what_retry_after_says_then_succeeds(
    portal: SupplierPortal, client: SupplierPortalClient
) -> None:
    portal.faults.throttle_next(1, retry_after=0.2)
    started = time.monotonic()
    await client.send_purchase_order(PO)
    assert time.monotonic() - started >= 0.2
    assert len(portal.faults.calls) == 2 and "PO-2026-0061" in portal.orders


async def test_5xx_is_retried_and_a_lasting_outage_is_retryable(
    portal: SupplierPortal, client: SupplierPortalClient
) -> None:
    portal.faults.fail_next(2, status=503)
    await client.send_purchase_order(PO)
    assert len(portal.faults.calls) == 3
    portal.faults.fail_next(10, status=500)
    with pytest.raises(ConnectorError) as err:
        await client.shipments()
    assert err.value.retryable and err.value.status == 500
    assert len(portal.faults.calls) == 3 + FAST.attempts


async def test_timeouts_are_retried_then_reported_retryable() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        raise httpx.ReadTimeout("slow portal", request=request)

    async with SupplierPortalClient(
        "http://portal.test",
        "t",
        supplier="rest-supply",
        transport=httpx.MockTransport(handler),
        policy=FAST,
    ) as c:
        with pytest.raises(ConnectorError) as err:
            await c.stock()
    assert err.value.retryable and calls == FAST.attempts


async def test_a_payload_the_hub_cannot_use_is_a_permanent_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"items": [{"sku": "A", "updated_at": "2026-11-22"}]})

    async with SupplierPortalClient(
        "http://portal.test",
        "t",
        supplier="rest-supply",
        transport=httpx.MockTransport(handler),
        policy=FAST,
    ) as c:
        with pytest.raises(ConnectorError, match=r"stock\.available: missing") as err:
            await c.stock()
    assert not err.value.retryable


async def test_a_change_replaces_the_order_and_asks_for_a_new_acknowledgement(
    portal: SupplierPortal, client: SupplierPortalClient
) -> None:
    await client.send_purchase_order(PO)
    portal.acknowledge(PO.po_number)
    change = PurchaseOrderChanged(
        po_number=PO.po_number,
        supplier=PO.supplier,
        revision=1,
        issued_at=PO.issued_at,
        changed_at=T0 + timedelta(hours=2),
        currency="CNY",
        expected_delivery=date(2026, 12, 5),
        lines=(PO.lines[0].model_copy(update={"quantity": 96}),),
    )
    await client.change_purchase_order(change)
    await client.change_purchase_order(change)  # redelivered: harmless
    order = portal.orders[PO.po_number]
    assert [(li["sku"], li["quantity"]) for li in order["lines"]] == [("TEE-RED-M", 96)]
    assert order["revision"] == 1
    assert await client.acknowledgement(PO.po_number) is None


async def test_cancelling_after_shipment_is_refused_for_good(
    portal: SupplierPortal, client: SupplierPortalClient
) -> None:
    await client.send_purchase_order(PO)
    cancel = PurchaseOrderCancelled(
        po_number=PO.po_number, supplier=PO.supplier, issued_at=T0, cancelled_at=T0
    )
    await client.cancel_purchase_order(cancel)
    assert PO.po_number in portal.cancelled
    other = PO.model_copy(update={"po_number": "PO-2026-0062"})
    await client.send_purchase_order(other)
    portal.ship("PO-2026-0062")
    with pytest.raises(ConnectorError) as err:
        await client.cancel_purchase_order(cancel.model_copy(update={"po_number": "PO-2026-0062"}))
    assert (err.value.status, err.value.retryable) == (409, False)


# --- mapping -------------------------------------------------------------------------------

INVOICE: dict[str, Any] = {
    "number": "INV-1",
    "po_number": "PO-2026-0061",
    "issued_at": "2026-11-28T09:00:00+08:00",
    "currency": "CNY",
    "lines": [{"line": 1, "sku": "TEE-RED-M", "quantity": 60, "unit_price": "13.10"}],
    "subtotal": "786.00",
    "tax": "102.18",
    "total": "888.18",
}


def test_invoice_mapping_keeps_decimals_and_converts_time_to_utc() -> None:
    inv = invoice_from_json(INVOICE, supplier="rest-supply")
    assert inv.invoiced_at == datetime(2026, 11, 28, 1, 0, tzinfo=UTC)
    assert inv.tax == Decimal("102.18") and inv.charges == 0


@pytest.mark.parametrize(
    ("patch", "reason"),
    [
        ({"total": 888.18}, "invoice.total: a binary float"),
        ({"lines": [{"sku": "X", "quantity": 1.5, "unit_price": "1"}]}, "quantity: 1.5 is not"),
        ({"issued_at": "2026-11-28T09:00:00"}, "time without a timezone"),
        ({"currency": "XXY"}, "invoice.currency"),
        ({"number": None}, "invoice.number: missing"),
    ],
)
def test_invoice_mapping_names_the_bad_field(patch: dict[str, Any], reason: str) -> None:
    with pytest.raises(MalformedPayload, match=reason):
        invoice_from_json({**INVOICE, **patch}, supplier="rest-supply")


def test_acknowledgement_with_unknown_status_is_refused() -> None:
    with pytest.raises(MalformedPayload, match="unknown status 'maybe'"):
        acknowledgement_from_json(
            {"id": "A", "po_number": "P", "status": "maybe", "acknowledged_at": T0.isoformat()},
            supplier="rest-supply",
        )


def test_same_document_fetched_twice_has_the_same_message_id() -> None:
    a = to_envelope(invoice_from_json(INVOICE, supplier="s"), supplier="s")
    b = to_envelope(invoice_from_json(dict(INVOICE), supplier="s"), supplier="s")
    c = to_envelope(invoice_from_json({**INVOICE, "total": "888.19"}, supplier="s"), supplier="s")
    assert a.id == b.id != c.id and a.source == "rest/s" and a.key == "PO-2026-0061"


def test_stock_report_id_defaults_to_its_time() -> None:
    r = stock_from_json({"sku": "A", "available": 3, "updated_at": T0.isoformat()}, supplier="s")
    assert r.report_id == f"stock-{T0.isoformat()}"


@pytest.mark.parametrize(("reported", "taken"), [(-4, 0), (3_000_000_000, MAX_QUANTITY)])
def test_stock_beyond_what_a_message_carries_is_reported_at_the_bound(reported, taken) -> None:
    """Neither a shortfall nor more than one message carries stops the report: the hub never
    sells more than a supplier reports, so a figure cut to the bound loses nothing."""
    payload = {"sku": "A", "available": reported, "updated_at": T0.isoformat()}
    assert stock_from_json(payload, supplier="s").quantity == taken


async def test_the_portal_link_hears_a_revised_answer_for_a_week(
    portal: SupplierPortal, client: SupplierPortalClient, tmp_path, monkeypatch
) -> None:
    """The supplier answers, then revises its answer (fewer red tees): an answered order is
    asked again every ten minutes for a week after its first answer, so the revision reaches
    the hub; after that it is not asked again."""
    from hub import supplierworker
    from hub.supplierworker import PortalLink
    from schemas.envelope import Envelope, message_id

    now = {"t": datetime(2026, 11, 23, 9, 0, tzinfo=UTC)}
    monkeypatch.setattr(supplierworker, "now_utc", lambda: now["t"])
    link = PortalLink("portal", client, tmp_path)
    heard: list[Any] = []

    async def publish(envelopes) -> None:
        heard.extend(e.data for e in envelopes)

    await link.send(Envelope(id=message_id("t", "po"), source="t", data=PO))
    portal.acknowledge("PO-2026-0061")
    await link.poll(publish)
    portal.acknowledge("PO-2026-0061", confirm={"TEE-RED-M": 100})  # the revision
    now["t"] += timedelta(minutes=5)
    await link.poll(publish)
    assert [a.lines[0].quantity for a in heard if hasattr(a, "acknowledgement_id")] == [120]
    now["t"] += timedelta(minutes=6)
    await link.poll(publish)
    assert [a.lines[0].quantity for a in heard if hasattr(a, "acknowledgement_id")] == [120, 100]
    portal.acknowledge("PO-2026-0061", reject={"TEE-BLU-M"})
    now["t"] += timedelta(days=8)
    await link.poll(publish)
    assert len([a for a in heard if hasattr(a, "acknowledgement_id")]) == 2
