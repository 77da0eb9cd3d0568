"""Supplier connectors as the hub runs them: core, relay and the supplier workers on the real
broker, the store on SQLite and PostgreSQL. Low stock issues a PO that leaves as an X12 850 file
(read by badx12) or a portal order; the supplier's answers come back through the same connector
and move the PO along, as `hub po list --json` shows."""

from __future__ import annotations

import asyncio
import inspect
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydifact.segmentcollection import Interchange as EdifactInterchange
from sqlalchemy import select
from typer.testing import CliRunner

from connectors.supplier_rest.simulator import SupplierPortal
from hub.app import Runtime
from hub.cli.main import app as cli
from hub.config import AccountConfig, ChannelRule, HubConfig, Settings
from hub.kafka.reader import read_topic
from hub.purchasing import service
from hub.purchasing.tables import SupplierInvoiceRow
from hub.store.models import Stock
from hub.supplierworker import SUPPLIER_DOCUMENTS, build_link
from schemas import topics
from schemas.base import now_utc
from schemas.envelope import Envelope, decode, message_id
from schemas.purchasing import PurchaseOrderIssued, PurchaseOrderLine
from schemas.stock import GoodsReceived
from tests.builders import counted, place
from tests.unit.connectors.edi.test_edifact_connector import ORDRSP
from tests.unit.connectors.edi.test_edifact_connector import (
    supplier_interchange as edifact_interchange,
)
from tests.unit.connectors.edi.test_x12_connector import (
    ACK_855,
    badx12_parse,
    segments,
    supplier_interchange,
)

pytestmark = pytest.mark.integration

EDI = "acme-supply"
PORTAL = "portal-supply"
EURO = "euro-parts"
PRICE = Decimal("8.50")


@pytest.fixture(autouse=True)
def _empty_store(engine: Any) -> None:
    """Every test starts from an empty, migrated store: rows other tests left (an unsent PO in
    the outbox) would otherwise reach the supplier as well."""


def _settings(kafka: Any, db_url: str, tmp_path: Path, account: str = EDI) -> Settings:
    s = Settings(
        kafka_bootstrap=kafka.bootstrap,
        database_url=db_url,
        var_dir=tmp_path / "var",
        core_group=f"core-{uuid.uuid4().hex[:6]}",
        consumer_session_timeout_ms=6000,
        reconcile_interval_s=0,
    )
    accounts = {
        EDI: AccountConfig.model_validate(
            {
                "connector": "x12",
                "path": str(tmp_path / "edi"),
                "our_id": "STOCKHUB",
                "partner_id": "ACMESUPPLY",
                "currency": "CNY",
                "settle_seconds": 0,
                "poll_seconds": 0.2,
            }
        ),
        EURO: AccountConfig.model_validate(
            {
                "connector": "edifact",
                "path": str(tmp_path / "edifact"),
                "our_id": "STOCKHUB",
                "partner_id": "EUROPARTS",
                "settle_seconds": 0,
                "poll_seconds": 0.2,
            }
        ),
        PORTAL: AccountConfig.model_validate(
            {
                "connector": "supplier_rest",
                "api_url": "http://portal.test",
                "api_token": "portal-token",
                "path": str(tmp_path / "portal-state"),
                "poll_seconds": 0.2,
            }
        ),
    }
    s.__dict__["hub"] = HubConfig(
        channels={"online": ChannelRule()}, accounts={account: accounts[account]}
    )
    return s


async def _until(probe: Callable[[], Any], limit: float = 60.0) -> Any:
    """Poll `probe` (sync or async) until it returns something true."""
    start = time.monotonic()
    while True:
        value = probe()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() - start > limit:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.1)


async def _po_list(monkeypatch: pytest.MonkeyPatch, db_url: str) -> dict[str, Any]:
    monkeypatch.setenv("HUB_DATABASE_URL", db_url)
    result = await asyncio.to_thread(CliRunner().invoke, cli, ["po", "list", "--json"])
    assert result.exit_code == 0, result.output
    return {p["po_number"]: p for p in json.loads(result.stdout)["purchase_orders"]}


async def _status(rt: Runtime, number: str, wanted: str) -> bool:
    assert rt.sessions is not None
    async with rt.sessions() as s:
        rows = await service.purchase_orders(s)
    return any(p["po_number"] == number and p["status"] == wanted for p in rows)


async def _low_stock(rt: Runtime, sku: str, supplier: str) -> None:
    """20 counted in, an order for 12: projected 8 is below the reorder point 10."""
    assert rt.sessions is not None and rt.publisher is not None
    async with rt.sessions() as s, s.begin():
        await service.set_supplier(s, supplier, mode=service.AUTO)
        await service.set_policy(
            s,
            sku,
            supplier=supplier,
            reorder_point=10,
            order_up_to=40,
            pack_size=6,
            lead_time_days=5,
            unit_price=PRICE,
        )
    await rt.publisher.publish([counted(sku, 20, cid=f"seed-{sku}")])

    async def counted_in() -> bool:
        assert rt.sessions is not None
        async with rt.sessions() as s:
            row = await s.get(Stock, (sku, "main"))
        return row is not None and row.on_hand == 20

    await _until(counted_in)  # stock events and orders are different topics: no order
    await rt.publisher.publish([place(f"shop:{sku}", [(sku, 12)])])


async def _receive(rt: Runtime, number: str, sku: str, quantity: int) -> None:
    assert rt.publisher is not None
    msg = GoodsReceived(
        sku=sku,
        quantity=quantity,
        unit_cost=PRICE,
        receipt_id=f"GRN-{number}",
        po_number=number,
        received_at=now_utc(),
    )
    await rt.publisher.publish(
        [Envelope(id=message_id("test/warehouse", number), source="test/warehouse", data=msg)]
    )


async def _invoice_status(rt: Runtime, number: str) -> str | None:
    assert rt.sessions is not None
    async with rt.sessions() as s:
        q = select(SupplierInvoiceRow.status).where(SupplierInvoiceRow.po_number == number)
        return (await s.execute(q)).scalar_one_or_none()


def _drop(inbox: Path, name: str, text: str) -> None:
    tmp = inbox.parent / f".{name}.tmp"
    tmp.write_text(text)
    tmp.replace(inbox / name)  # whole files only, as a partner's SFTP client renames on close


def _answer(number: str, sku: str, qty: int, doc: str, n: int) -> str:
    if doc == "855":
        body = [
            f"BAK*00*AC*{number}*20261122****ACK-{n}",
            f"PO1*1*{qty}*EA*8.50*PE*SK*{sku}",
            f"ACK*IA*{qty}*EA*068*20261203",
            "CTT*1",
        ]
        return supplier_interchange([("855", body)], functional_id="PR", isa13=f"{n:09d}")
    if doc == "856":
        body = [
            f"BSN*00*ASN-{n}*20261124*1015*0001",
            "HL*1**S",
            "TD5**2*UPSN",
            "DTM*011*20261124*1015",
            "HL*2*1*O",
            f"PRF*{number}",
            "HL*3*2*I",
            f"LIN*1*SK*{sku}",
            f"SN1**{qty}*EA",
            "CTT*3",
        ]
        return supplier_interchange([("856", body)], functional_id="SH", isa13=f"{n:09d}")
    total = int(PRICE * qty * 100)
    body = [
        f"BIG*20261128*INV-{n}*20261122*{number}",
        "CUR*SE*CNY",
        f"IT1*1*{qty}*EA*8.50*PE*SK*{sku}",
        f"TDS*{total}",
        "CTT*1",
    ]
    return supplier_interchange([("810", body)], functional_id="IN", isa13=f"{n:09d}")


async def test_low_stock_po_goes_out_as_an_850_and_the_suppliers_edi_answers_close_the_loop(
    kafka, db_url, tmp_path, monkeypatch
):
    rt = Runtime(_settings(kafka, db_url, tmp_path))
    await rt.start({"core", "relay", "connectors"})
    try:
        sku = "EDI-TEE"
        await _low_stock(rt, sku, EDI)
        outbox, inbox = tmp_path / "edi" / "outbox", tmp_path / "edi" / "inbox"
        [sent] = await _until(lambda: _glob(outbox, "850-*.edi"))
        text = sent.read_text()
        badx12_parse(text)  # the independent parser accepts the envelope
        segs = segments(text)
        tags = [s[0] for s in segs]
        assert segs[0][6].strip() == "STOCKHUB" and segs[0][8].strip() == "ACMESUPPLY"
        assert tags[1:3] == ["GS", "ST"] and tags[-3:] == ["SE", "GE", "IEA"]
        se = segs[tags.index("SE")]
        assert int(se[1]) == tags.index("SE") - tags.index("ST") + 1  # counted segments
        assert se[2] == segs[tags.index("ST")][2]
        beg = segs[tags.index("BEG")]
        number = beg[3]
        [po1] = [s for s in segs if s[0] == "PO1"]
        qty = int(po1[2])
        assert Decimal(po1[4]) == PRICE and sku in po1 and qty % 6 == 0 and qty >= 30

        listed = (await _po_list(monkeypatch, db_url))[number]
        assert listed["supplier"] == EDI and listed["status"] == "issued"
        assert listed["lines"][0]["ordered"] == qty

        _drop(inbox, "855.edi", _answer(number, sku, qty, "855", 501))
        await _until(lambda: _status(rt, number, "acknowledged"))
        _drop(inbox, "856.edi", _answer(number, sku, qty, "856", 502))
        await _until(lambda: _status(rt, number, "in_transit"))
        await _receive(rt, number, sku, qty)
        await _until(lambda: _status(rt, number, "closed"))
        _drop(inbox, "810.edi", _answer(number, sku, qty, "810", 503))
        assert await _until(lambda: _invoice_status(rt, number)) in ("matched", "held")
        assert await _until(lambda: _is(_invoice_status(rt, number), "matched"))

        listed = (await _po_list(monkeypatch, db_url))[number]
        line = listed["lines"][0]
        assert listed["status"] == "closed"
        assert (line["confirmed"], line["shipped"], line["received"], line["invoiced"]) == (
            qty,
            qty,
            qty,
            qty,
        )
        # every accepted document was answered with a 997; each inbound file was handled once
        assert len(_glob(outbox, "997-*.edi")) == 3
        assert sorted(p.name for p in (tmp_path / "edi" / "processed").iterdir()) == [
            "810.edi",
            "855.edi",
            "856.edi",
        ]
    finally:
        await rt.stop()


async def test_low_stock_po_goes_to_the_portal_and_its_answers_close_the_loop(
    kafka, db_url, tmp_path, monkeypatch
):
    portal = SupplierPortal()
    rt = Runtime(
        _settings(kafka, db_url, tmp_path, PORTAL),
        transports={PORTAL: httpx.ASGITransport(app=portal.app)},
    )
    portal.faults.fail_next(2, status=503)  # the first attempts meet a portal having trouble
    await rt.start({"core", "relay", "connectors"})
    try:
        sku = "REST-MUG"
        await _low_stock(rt, sku, PORTAL)

        async def ordered() -> list[str]:
            return list(portal.orders)

        [number] = await _until(ordered)
        order = portal.orders[number]
        [line] = order["lines"]
        qty = line["quantity"]
        assert (line["sku"], Decimal(line["unit_price"]), qty % 6) == (sku, PRICE, 0)

        portal.acknowledge(number)
        await _until(lambda: _status(rt, number, "acknowledged"))
        portal.ship(number)
        await _until(lambda: _status(rt, number, "in_transit"))
        await _receive(rt, number, sku, qty)
        await _until(lambda: _status(rt, number, "closed"))
        portal.invoice(number)
        assert await _until(lambda: _is(_invoice_status(rt, number), "matched"))

        listed = (await _po_list(monkeypatch, db_url))[number]
        got = listed["lines"][0]
        assert (got["shipped"], got["received"], got["invoiced"]) == (qty, qty, qty)
        assert len(portal.orders) == 1
    finally:
        await rt.stop()


async def test_a_malformed_inbound_file_is_set_aside_with_a_997_and_the_next_one_is_read(
    kafka, db_url, tmp_path
):
    rt = Runtime(_settings(kafka, db_url, tmp_path), only_account=EDI)
    await rt.start({"connectors"})
    try:
        edi = tmp_path / "edi"
        good = supplier_interchange([("855", ACK_855)], functional_id="PR")
        _drop(edi / "inbox", "bad.edi", good.replace("SE*9*0001", "SE*8*0001"))
        _drop(edi / "inbox", "good.edi", good.replace("000000417", "000000418"))
        await _until((edi / "processed" / "good.edi").exists)
        assert (edi / "rejected" / "bad.edi").exists()
        reason = (edi / "rejected" / "bad.edi.error.txt").read_text()
        assert "SE01 says 8 segments" in reason
        replies = [segments(p.read_text()) for p in _glob(edi / "outbox", "997-*.edi")]
        assert any(["AK5", "R", "4"] in r and ["AK9", "R", "1", "1", "0"] in r for r in replies)
        assert any(["AK5", "A"] in r for r in replies)
        assert list((edi / "inbox").iterdir()) == []

        async def published() -> list[Envelope]:
            records = await read_topic(kafka.bootstrap, topics.PURCHASING)
            return [decode(r.headers, r.value) for r in records]

        [ack] = await _until(published)
        assert ack.data.po_number == "PO-2026-0042" and ack.source == f"x12/{EDI}"
    finally:
        await rt.stop()


def _po(number: str, supplier: str) -> Envelope:
    msg = PurchaseOrderIssued(
        po_number=number,
        supplier=supplier,
        issued_at=now_utc(),
        currency="CNY",
        expected_delivery=date(2026, 12, 1),
        lines=(PurchaseOrderLine(line_number=1, sku="TEE", quantity=12, unit_price=PRICE),),
    )
    return Envelope(id=message_id("hub/purchasing", msg.ce_type, number), source="t", data=msg)


async def test_a_redelivered_po_message_writes_no_second_file(kafka, db_url, tmp_path):
    rt = Runtime(_settings(kafka, db_url, tmp_path), only_account=EDI)
    await rt.start({"connectors"})
    try:
        assert rt.publisher is not None
        outbox = tmp_path / "edi" / "outbox"
        repeats = SUPPLIER_DOCUMENTS.labels(account=EDI, direction="out", outcome="repeat")
        before = repeats._value.get()
        first = _po("PO-2026-900001", EDI)
        await rt.publisher.publish([first])
        await _until(lambda: _glob(outbox, "850-*.edi"))
        await rt.publisher.publish([first, _po("PO-2026-900002", "someone-else")])
        await rt.publisher.publish([_po("PO-2026-900003", EDI)])  # after the repeat, in order
        await _until(lambda: len(_glob(outbox, "850-*.edi")) == 2)
        names = sorted(p.name for p in _glob(outbox, "850-*.edi"))
        assert [n.split("-")[3] for n in names] == ["900001", "900003"]
        assert repeats._value.get() == before + 1
        controls = [segments(p.read_text())[0][13] for p in _glob(outbox, "850-*.edi")]
        assert len(set(controls)) == 2  # control numbers never repeat
    finally:
        await rt.stop()


def _glob(folder: Path, pattern: str) -> list[Path]:
    return sorted(folder.glob(pattern)) if folder.exists() else []


async def _is(value: Awaitable[Any], wanted: Any) -> bool:
    return (await value) == wanted


async def test_an_order_the_portal_refuses_goes_to_the_dead_letter_topic_with_its_error(
    kafka, db_url, tmp_path
):
    portal = SupplierPortal()
    rt = Runtime(
        _settings(kafka, db_url, tmp_path, PORTAL),
        transports={PORTAL: httpx.ASGITransport(app=portal.app)},
    )
    await rt.start({"connectors"})
    try:
        assert rt.publisher is not None
        portal.orders["PO-2026-900010"] = {"po_number": "PO-2026-900010", "lines": [{}]}
        refused, accepted = _po("PO-2026-900010", PORTAL), _po("PO-2026-900011", PORTAL)
        await rt.publisher.publish([refused, accepted])
        await _until(lambda: "PO-2026-900011" in portal.orders)

        async def dead() -> list[Any]:
            return await read_topic(kafka.bootstrap, topics.DLQ)

        [letter] = await _until(dead)
        headers = {k: v.decode() for k, v in letter.headers}
        assert headers["ce_id"] == refused.id
        assert headers["dlq_topic"] == topics.PURCHASE_ORDERS
        assert "409" in headers["dlq_error"] and headers["dlq_error"].startswith(PORTAL)
        assert headers["dlq_consumer"] == f"hub-supplier-{PORTAL}"
        assert decode(letter.headers, letter.value).data == refused.data  # the original bytes
        assert portal.orders["PO-2026-900010"]["lines"] == [{}]  # the portal's order untouched
    finally:
        await rt.stop()


async def test_an_edifact_supplier_gets_orders_and_its_ordrsp_reaches_purchasing(
    kafka, db_url, tmp_path
):
    rt = Runtime(_settings(kafka, db_url, tmp_path, EURO))
    await rt.start({"connectors"})
    try:
        assert rt.publisher is not None
        order = _po("PO-2026-0042", EURO)
        await rt.publisher.publish([order, order])
        root = tmp_path / "edifact"
        [sent] = await _until(lambda: _glob(root / "outbox", "ORDERS-*.edi"))
        ic = EdifactInterchange.from_str(sent.read_text())
        [msg] = list(ic.get_messages())
        assert (msg.type, ic.recipient) == ("ORDERS", ["EUROPARTS", "ZZ"])
        assert msg.get_segment("BGM").elements[1] == "PO-2026-0042"
        _drop(root / "inbox", "ordrsp.edi", edifact_interchange("ORDRSP", ORDRSP))

        async def published() -> list[Envelope]:
            records = await read_topic(kafka.bootstrap, topics.PURCHASING)
            return [decode(r.headers, r.value) for r in records]

        [ack] = await _until(published)
        assert ack.source == f"edifact/{EURO}" and ack.data.supplier == EURO
        assert len(_glob(root / "outbox", "ORDERS-*.edi")) == 1  # the repeat wrote nothing
    finally:
        await rt.stop()


async def test_a_portal_item_the_hub_cannot_use_is_kept_aside_and_the_feed_goes_on(
    kafka, db_url, tmp_path
):
    portal = SupplierPortal()
    settings = _settings(kafka, db_url, tmp_path, PORTAL)
    account = settings.hub.accounts[PORTAL]
    supplied = AccountConfig.model_validate(account.model_dump() | {"supplier": "acme-portal"})
    settings.__dict__["hub"] = HubConfig(accounts={PORTAL: supplied})
    rt = Runtime(settings, transports={PORTAL: httpx.ASGITransport(app=portal.app)})
    await rt.start({"connectors"})
    try:
        assert rt.publisher is not None
        # orders are routed by the supplier id the account declares, not by the account name
        await rt.publisher.publish(
            [_po("PO-2026-900020", PORTAL), _po("PO-2026-900021", "acme-portal")]
        )
        await _until(lambda: "PO-2026-900021" in portal.orders)
        assert "PO-2026-900020" not in portal.orders
        bad = {
            "id": "SHP-X",
            "po_number": "PO-2026-900021",
            "shipped_at": "yesterday",
            "lines": [],
            "updated_at": now_utc().isoformat(),
        }
        portal.shipments.append(bad)
        portal.set_stock("TEE", 40)

        async def published() -> list[Envelope]:
            records = await read_topic(kafka.bootstrap, topics.PURCHASING)
            return [decode(r.headers, r.value) for r in records]

        [stock] = await _until(published)
        assert (stock.data.sku, stock.data.quantity, stock.data.supplier) == (
            "TEE",
            40,
            "acme-portal",
        )
        [kept] = await _until(
            lambda: _glob(tmp_path / "portal-state" / "rejected", "shipment-*.json")
        )
        aside = json.loads(kept.read_text())
        assert aside["payload"]["id"] == "SHP-X" and "shipped_at" in aside["reason"]
    finally:
        await rt.stop()


async def test_an_order_survives_a_portal_outage_longer_than_the_clients_retries(
    kafka, db_url, tmp_path
):
    portal = SupplierPortal()
    settings = _settings(kafka, db_url, tmp_path, PORTAL)
    account = settings.hub.accounts[PORTAL]
    slow_poll = AccountConfig.model_validate(account.model_dump() | {"poll_seconds": 3600})
    settings.__dict__["hub"] = HubConfig(accounts={PORTAL: slow_poll})
    rt = Runtime(settings, transports={PORTAL: httpx.ASGITransport(app=portal.app)})
    await rt.start({"connectors"})
    try:
        assert rt.publisher is not None
        await _until(lambda: ("GET", "/stock") in portal.faults.calls)  # the first poll is done
        portal.faults.fail_next(7, status=503)  # 5 attempts per delivery: the batch is read again
        await rt.publisher.publish([_po("PO-2026-900030", PORTAL)])
        await _until(lambda: "PO-2026-900030" in portal.orders)
        posts = [c for c in portal.faults.calls if c == ("POST", "/purchase-orders")]
        assert len(posts) == 8  # 7 refused, then accepted once
        assert await read_topic(kafka.bootstrap, topics.DLQ) == []
        assert len(list((tmp_path / "portal-state" / ".sent").iterdir())) == 1
    finally:
        await rt.stop()


async def test_a_poll_that_crashes_after_publishing_is_read_again_and_applied_once(
    kafka, db_url, tmp_path
):
    settings = _settings(kafka, db_url, tmp_path)
    account = settings.hub.accounts[EDI]
    quiet = AccountConfig.model_validate(account.model_dump() | {"poll_seconds": 3600})
    settings.__dict__["hub"] = HubConfig(accounts={EDI: quiet})
    rt = Runtime(settings)
    await rt.start({"core", "relay", "connectors"})
    try:
        assert rt.publisher is not None
        sku = "CRASH-TEE"
        await _low_stock(rt, sku, EDI)
        [sent] = await _until(lambda: _glob(tmp_path / "edi" / "outbox", "850-*.edi"))
        segs = segments(sent.read_text())
        number = next(s for s in segs if s[0] == "BEG")[3]
        qty = int(next(s for s in segs if s[0] == "PO1")[2])
        _drop(tmp_path / "edi" / "inbox", "855.edi", _answer(number, sku, qty, "855", 601))
        link = build_link(EDI, quiet, settings)  # a second poller on the same folder
        before = rt.totals.duplicates

        async def publish_then_crash(envelopes: Sequence[Envelope]) -> None:
            assert rt.publisher is not None
            await rt.publisher.publish(envelopes)
            raise RuntimeError("the process dies before the file is moved")

        with pytest.raises(RuntimeError):
            await link.poll(publish_then_crash)
        assert (tmp_path / "edi" / "inbox" / "855.edi").exists()  # still to do
        assert await link.poll(rt.publisher.publish) == 1  # read again after the restart
        await _until(lambda: _status(rt, number, "acknowledged"))

        async def both_applied_or_skipped() -> bool:
            return rt.totals.duplicates >= before + 1

        await _until(both_applied_or_skipped)  # the second copy was recognised as a duplicate
        records = await read_topic(kafka.bootstrap, topics.PURCHASING)
        assert len({dict(r.headers)["ce_id"] for r in records}) == 1 and len(records) == 2
        listed = (await _po_list_sessions(rt))[number]
        assert listed["lines"][0]["confirmed"] == qty
        assert len(_glob(tmp_path / "edi" / "outbox", "997-*.edi")) == 1
    finally:
        await rt.stop()


async def _po_list_sessions(rt: Runtime) -> dict[str, Any]:
    assert rt.sessions is not None
    async with rt.sessions() as s:
        return {p["po_number"]: p for p in await service.purchase_orders(s)}
