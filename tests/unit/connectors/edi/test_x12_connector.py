"""X12 004010: our 850 read by badx12 plus structural checks; supplier 855/856/810/846 read by us;
997 both ways; malformed files set aside with a 997 rejection; nothing lost."""

from __future__ import annotations

import collections
import collections.abc
import json
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connectors.edi_common import ControlNumbers, EdiError, Exchange
from connectors.x12 import Party, X12Codec, X12Partner, x12_exchange
from connectors.x12.syntax import read
from schemas.base import MAX_QUANTITY
from schemas.envelope import Envelope
from schemas.purchasing import (
    AckStatus,
    LineAckStatus,
    PurchaseOrderAcknowledged,
    PurchaseOrderCancelled,
    PurchaseOrderChanged,
    PurchaseOrderIssued,
    PurchaseOrderLine,
    ShipmentNotified,
    SupplierInvoiceReceived,
    SupplierStockReported,
)

# badx12 (the independent X12 envelope parser) imports `collections.Iterable`, gone since 3.10
if not hasattr(collections, "Iterable"):
    collections.Iterable = collections.abc.Iterable  # type: ignore[attr-defined]

from badx12 import Parser as BadX12Parser

NOW = datetime(2026, 11, 22, 4, 2, tzinfo=UTC)
PARTNER = X12Partner(
    supplier="acme-supply",
    us=Party("ZZ", "STOCKHUB"),
    them=Party("ZZ", "ACMESUPPLY"),
    currency="USD",
)
PO = PurchaseOrderIssued(
    po_number="PO-2026-0042",
    supplier="acme-supply",
    issued_at=NOW,
    currency="USD",
    expected_delivery=date(2026, 12, 1),
    lines=(
        PurchaseOrderLine(
            line_number=1,
            sku="TEE-RED-M",
            supplier_sku="VND-88-RED-M",
            quantity=120,
            unit_price=Decimal("12.50"),
        ),
        PurchaseOrderLine(line_number=2, sku="TEE-BLU-M", quantity=48, unit_price=Decimal("9.75")),
    ),
)


@pytest.fixture
def exchange(tmp_path: Path) -> Exchange:
    ex = x12_exchange(tmp_path, PARTNER, settle_seconds=0)
    assert isinstance(ex.codec, X12Codec)
    ex.codec.clock = lambda: NOW
    return ex


def supplier_interchange(
    sets: list[tuple[str, list[str]]],
    *,
    functional_id: str,
    sender: str = "ACMESUPPLY",
    receiver: str = "STOCKHUB",
    isa13: str = "000000417",
    gs06: str = "417",
    version: str = "004010",
) -> str:
    """An interchange as a supplier's translator writes it; `sets` are (ST01, segment strings)."""
    isa = (
        f"ISA*00*{'':10}*00*{'':10}*ZZ*{sender:<15}*ZZ*{receiver:<15}"
        f"*261122*0930*U*00401*{isa13}*0*P*>~"
    )
    assert len(isa) == 106
    out = [isa, f"GS*{functional_id}*{sender}*{receiver}*20261122*0930*{gs06}*X*{version}~"]
    for n, (st01, body) in enumerate(sets, start=1):
        control = f"{n:04d}"
        out.append(f"ST*{st01}*{control}~")
        out.extend(s + "~" for s in body)
        out.append(f"SE*{len(body) + 2}*{control}~")
    out.append(f"GE*{len(sets)}*{gs06}~")
    out.append(f"IEA*1*{isa13}~")
    return "\n".join(out) + "\n"


def badx12_parse(text: str) -> Any:
    """Parse with badx12 and fail on any envelope error it reports."""
    doc = BadX12Parser().parse_document(text)
    report = doc.validate()
    assert report.is_document_valid(), report.error_list
    return doc


class Sink:
    def __init__(self, fail: int = 0) -> None:
        self.envelopes: list[Envelope] = []
        self.fail = fail

    async def __call__(self, envelopes: Sequence[Envelope]) -> None:
        if self.fail:
            self.fail -= 1
            raise ConnectionError("broker unavailable")
        self.envelopes.extend(envelopes)

    @property
    def messages(self) -> list[object]:
        return [e.data for e in self.envelopes]


def segments(text: str) -> list[list[str]]:
    return [s.strip().split("*") for s in text.split("~") if s.strip()]


def drop(exchange: Exchange, name: str, text: str) -> None:
    (exchange.inbox / name).write_text(text)


# --- 850 out -------------------------------------------------------------------------------


def test_our_850_is_read_by_badx12_and_has_a_valid_envelope(exchange: Exchange) -> None:
    path = exchange.write_outbound(PO)
    text = path.read_text()
    doc = badx12_parse(text)
    assert doc.interchange.header.isa13.content == "000000001"
    [group] = doc.interchange.groups
    [ts] = group.transaction_sets
    assert ts.header.st01.content == "850"
    assert path.parent == exchange.outbox


def test_our_850_has_fixed_length_isa_counts_and_matching_control_numbers(
    exchange: Exchange,
) -> None:
    text = exchange.write_outbound(PO).read_text()
    isa = text[:106]
    assert isa.startswith("ISA*") and isa.endswith("~") and len(isa.split("*")) == 17
    assert [len(e) for e in isa[:-1].split("*")[1:]] == [
        2,
        10,
        2,
        10,
        2,
        15,
        2,
        15,
        6,
        4,
        1,
        5,
        9,
        1,
        1,
        1,
    ]
    segs = segments(text)
    tags = [s[0] for s in segs]
    st, se = tags.index("ST"), tags.index("SE")
    assert segs[se][1] == str(se - st + 1)  # SE01 counts ST..SE
    assert segs[st][2] == segs[se][2]  # ST02 = SE02
    gs, ge = segs[tags.index("GS")], segs[tags.index("GE")]
    assert gs[6] == ge[2] and ge[1] == "1" and gs[8] == "004010"
    assert segs[0][13] == segs[-1][2]  # ISA13 = IEA02
    body = tags[st + 1 : se]
    assert body[0] == "BEG" and "CTT" in body and body.count("PO1") == 2
    beg = segs[tags.index("BEG")]
    assert beg[1:4] == ["00", "SA", "PO-2026-0042"] and beg[5] == "20261122"
    po1 = [s for s in segs if s[0] == "PO1"]
    assert po1[0] == [
        "PO1",
        "1",
        "120",
        "EA",
        "12.5",
        "PE",
        "SK",
        "TEE-RED-M",
        "VP",
        "VND-88-RED-M",
    ]
    assert po1[1][2:5] == ["48", "EA", "9.75"]
    assert segs[tags.index("CTT")] == ["CTT", "2", "168"]
    assert segs[tags.index("DTM")] == ["DTM", "002", "20261201"]


def test_a_redelivered_po_is_sent_to_the_supplier_once(exchange: Exchange) -> None:
    envelope = Envelope(id="3f1c0e5e-po-issued", source="hub/core", data=PO)
    first = exchange.send(envelope)
    again = x12_exchange(exchange.root, PARTNER, settle_seconds=0).send(envelope)
    assert first is not None and again is None
    assert [p.name for p in exchange.outbox.iterdir()] == [first.name]
    other = Envelope(id="another-message", source="hub/core", data=PO)
    assert exchange.send(other) is not None  # a new message id is a new document


def test_control_numbers_never_repeat_and_survive_a_restart(tmp_path: Path) -> None:
    first = x12_exchange(tmp_path, PARTNER, settle_seconds=0)
    a = read(first.write_outbound(PO).read_text())
    b = read(first.write_outbound(PO).read_text())
    restarted = x12_exchange(tmp_path, PARTNER, settle_seconds=0)
    c = read(restarted.write_outbound(PO).read_text())
    isa = [x.control for x in (a, b, c)]
    gs = [x.groups[0].control for x in (a, b, c)]
    st = [x.groups[0].sets[0].control for x in (a, b, c)]
    assert isa == ["000000001", "000000002", "000000003"]
    assert len(set(gs)) == 3 and len(set(st)) == 3
    assert json.loads((tmp_path / "control-numbers.json").read_text())["isa"] == 3


def test_control_numbers_take_a_persistence_callback() -> None:
    store: dict[str, int] = {"isa": 41}
    numbers = ControlNumbers(load=lambda: dict(store), save=store.update)
    assert [numbers.next("isa"), numbers.next("isa"), numbers.next("gs")] == [42, 43, 1]
    assert store == {"isa": 43, "gs": 1}


def test_a_sku_containing_a_delimiter_is_refused_not_sent() -> None:
    bad = PO.model_copy(update={"lines": (PO.lines[0].model_copy(update={"sku": "A*B"}),)})
    codec = X12Codec(PARTNER, ControlNumbers(load=dict, save=lambda s: None))
    with pytest.raises(EdiError, match="delimiter"):
        codec.render(bad)


# --- supplier documents in ----------------------------------------------------------------

ACK_855 = [
    "BAK*00*AC*PO-2026-0042*20261122****ACK-5531",
    "CUR*SE*USD",
    "PO1*1*120*EA*12.50*PE*SK*TEE-RED-M*VP*VND-88-RED-M",
    "ACK*IQ*96*EA*068*20261203",
    "PO1*2*48*EA*9.75*PE*SK*TEE-BLU-M",
    "ACK*IR*48*EA",
    "CTT*2",
]


async def test_855_with_changed_and_rejected_lines_becomes_an_acknowledgement(
    exchange: Exchange,
) -> None:
    text = supplier_interchange([("855", ACK_855)], functional_id="PR")
    badx12_parse(text)  # the test document itself has a valid envelope
    drop(exchange, "ack.edi", text)
    sink = Sink()
    result = await exchange.poll(sink)
    assert result.processed == ["ack.edi"] and result.rejected == []
    [ack] = sink.messages
    assert isinstance(ack, PurchaseOrderAcknowledged)
    assert ack.po_number == "PO-2026-0042" and ack.acknowledgement_id == "ACK-5531"
    assert ack.status is AckStatus.ACCEPTED_WITH_CHANGES
    red, blue = ack.lines
    assert (red.status, red.quantity, red.expected_delivery) == (
        LineAckStatus.CHANGED,
        96,
        date(2026, 12, 3),
    )
    assert (blue.status, blue.quantity) == (LineAckStatus.REJECTED, 0)
    assert sink.envelopes[0].source == "x12/acme-supply"
    assert sink.envelopes[0].key == "PO-2026-0042"
    assert (exchange.processed / "ack.edi").exists() and not (exchange.inbox / "ack.edi").exists()


async def test_every_accepted_document_is_answered_with_a_997(exchange: Exchange) -> None:
    drop(exchange, "ack.edi", supplier_interchange([("855", ACK_855)], functional_id="PR"))
    await exchange.poll(Sink())
    [reply] = exchange.outbox.glob("997-*.edi")
    text = reply.read_text()
    badx12_parse(text)
    segs = segments(text)
    assert ["AK1", "PR", "417"] in segs and ["AK2", "855", "0001"] in segs
    assert ["AK5", "A"] in segs and ["AK9", "A", "1", "1", "1"] in segs
    assert segs[0][6].strip() == "STOCKHUB" and segs[0][8].strip() == "ACMESUPPLY"


ASN_856 = [
    "BSN*00*ASN-77812*20261124*1015*0001",
    "HL*1**S",
    "TD5**2*UPSN",
    "REF*CN*1Z999AA10123456784",
    "DTM*011*20261124*1015",
    "DTM*017*20261127",
    "HL*2*1*O",
    "PRF*PO-2026-0042",
    "HL*3*2*I",
    "LIN*1*SK*TEE-RED-M*VP*VND-88-RED-M",
    "SN1**60*EA",
    "HL*4*1*O",
    "PRF*PO-2026-0043",
    "HL*5*4*I",
    "LIN**SK*MUG-WHT",
    "SN1**12*EA",
    "CTT*5",
]


async def test_856_partial_shipment_for_two_orders_becomes_one_notice_per_po(
    exchange: Exchange,
) -> None:
    drop(exchange, "asn.edi", supplier_interchange([("856", ASN_856)], functional_id="SH"))
    sink = Sink()
    await exchange.poll(sink)
    first, second = sink.messages
    assert isinstance(first, ShipmentNotified) and isinstance(second, ShipmentNotified)
    assert (first.po_number, second.po_number) == ("PO-2026-0042", "PO-2026-0043")
    assert first.shipment_id == second.shipment_id == "ASN-77812"
    assert first.lines[0].model_dump() == {"line_number": 1, "sku": "TEE-RED-M", "quantity": 60}
    assert second.lines[0].line_number is None and second.lines[0].quantity == 12
    assert first.shipped_at == datetime(2026, 11, 24, 10, 15, tzinfo=UTC)
    assert first.expected_delivery == date(2026, 11, 27)
    assert (first.carrier, first.tracking_number) == ("UPSN", "1Z999AA10123456784")
    assert len({e.id for e in sink.envelopes}) == 2


INVOICE_810 = [
    "BIG*20261128*INV-90017*20261122*PO-2026-0042",
    "CUR*SE*USD",
    "IT1*1*60*EA*13.10*PE*SK*TEE-RED-M*VP*VND-88-RED-M",
    "TDS*86985",
    "TXI*ST*63.85",
    "SAC*C*D240***1990",
    "CTT*1",
]


async def test_810_at_a_different_price_keeps_the_suppliers_amounts(exchange: Exchange) -> None:
    drop(exchange, "inv.edi", supplier_interchange([("810", INVOICE_810)], functional_id="IN"))
    sink = Sink()
    await exchange.poll(sink)
    [inv] = sink.messages
    assert isinstance(inv, SupplierInvoiceReceived)
    assert (inv.invoice_number, inv.po_number, inv.currency) == ("INV-90017", "PO-2026-0042", "USD")
    assert inv.lines[0].unit_price == Decimal("13.10") and inv.lines[0].quantity == 60
    assert inv.subtotal == Decimal("786.00")
    assert inv.tax == Decimal("63.85") and inv.charges == Decimal("19.90")
    assert inv.total == Decimal("869.85")  # TDS01 is N2: 86985 → 869.85
    assert inv.invoiced_at == datetime(2026, 11, 28, tzinfo=UTC)


INVENTORY_846 = [
    "BIA*00*MM*INV-FEED-20261122*20261122*0600",
    "LIN**SK*TEE-RED-M*VP*VND-88-RED-M",
    "QTY*33*340*EA",
    "LIN**SK*MUG-WHT",
    "QTY*17*5*EA",
    "QTY*33*-2*EA",
    "LIN**SK*CUP-BLU",
    "QTY*33*3000000000*EA",
]


async def test_846_stock_feed_reports_each_sku_and_never_a_negative(exchange: Exchange) -> None:
    """Nor more than one message carries: the hub never sells more than a supplier reports."""
    drop(exchange, "feed.edi", supplier_interchange([("846", INVENTORY_846)], functional_id="IB"))
    sink = Sink()
    await exchange.poll(sink)
    red, mug, cup = sink.messages
    assert isinstance(red, SupplierStockReported) and isinstance(mug, SupplierStockReported)
    assert (red.sku, red.supplier_sku, red.quantity) == ("TEE-RED-M", "VND-88-RED-M", 340)
    assert (mug.sku, mug.quantity) == ("MUG-WHT", 0)
    assert isinstance(cup, SupplierStockReported) and cup.quantity == MAX_QUANTITY
    assert red.reported_at == datetime(2026, 11, 22, 6, 0, tzinfo=UTC)
    assert sink.envelopes[0].key == "acme-supply:TEE-RED-M"


async def test_an_846_dated_without_a_time_is_as_new_as_its_group(exchange: Exchange) -> None:
    """BIA05 left out: the report takes the functional group's time that day (GS04/GS05,
    09:30), so that a later report the same day is newer, not equal; a report dated another
    day keeps its own date."""
    feed = ["BIA*00*MM*INV-1*20261122", *INVENTORY_846[1:3]]
    older = ["BIA*00*MM*INV-0*20261121", *INVENTORY_846[1:3]]
    drop(exchange, "a.edi", supplier_interchange([("846", feed)], functional_id="IB"))
    drop(
        exchange,
        "b.edi",
        supplier_interchange([("846", older)], functional_id="IB", isa13="000000418", gs06="418"),
    )
    sink = Sink()
    await exchange.poll(sink)
    times = sorted(m.reported_at for m in sink.messages)
    assert times == [datetime(2026, 11, 21, tzinfo=UTC), datetime(2026, 11, 22, 9, 30, tzinfo=UTC)]


async def test_a_partners_997_for_our_850_is_noted_and_not_answered(exchange: Exchange) -> None:
    fa = ["AK1*PO*1", "AK2*850*0001", "AK5*A", "AK9*A*1*1*1"]
    drop(exchange, "fa.edi", supplier_interchange([("997", fa)], functional_id="FA"))
    result = await exchange.poll(Sink())
    assert result.processed == ["fa.edi"]
    assert result.notes == ["997: group PO 1 accepted by the partner"]
    assert list(exchange.outbox.iterdir()) == []


async def test_the_same_document_resent_in_a_new_envelope_has_the_same_message_ids(
    exchange: Exchange,
) -> None:
    drop(exchange, "a.edi", supplier_interchange([("855", ACK_855)], functional_id="PR"))
    drop(
        exchange,
        "b.edi",
        supplier_interchange([("855", ACK_855)], functional_id="PR", isa13="000000999", gs06="9"),
    )
    sink = Sink()
    await exchange.poll(sink)
    assert len(sink.envelopes) == 2 and sink.envelopes[0].id == sink.envelopes[1].id


# --- malformed and failures ----------------------------------------------------------------


def rejection(exchange: Exchange, name: str) -> tuple[str, list[list[str]]]:
    error = (exchange.rejected / f"{name}.error.txt").read_text()
    replies = list(exchange.outbox.glob("997-*.edi"))
    assert len(replies) == 1
    text = replies[0].read_text()
    badx12_parse(text)
    return error, segments(text)


async def test_wrong_segment_count_is_rejected_with_a_997_naming_the_set(
    exchange: Exchange,
) -> None:
    text = supplier_interchange([("855", ACK_855)], functional_id="PR")
    drop(exchange, "bad.edi", text.replace("SE*9*0001", "SE*8*0001"))
    sink = Sink()
    result = await exchange.poll(sink)
    assert result.rejected == ["bad.edi"] and sink.envelopes == []
    assert (exchange.rejected / "bad.edi").exists() and not (exchange.inbox / "bad.edi").exists()
    error, segs = rejection(exchange, "bad.edi")
    assert "SE01 says 8 segments, the set has 9 (segment 11 SE)" in error
    assert ["AK2", "855", "0001"] in segs and ["AK5", "R", "4"] in segs
    assert ["AK9", "R", "1", "1", "0"] in segs


async def test_missing_mandatory_segment_is_rejected_with_its_position(exchange: Exchange) -> None:
    body = [s for s in ACK_855 if not s.startswith("BAK")]
    drop(exchange, "nobak.edi", supplier_interchange([("855", body)], functional_id="PR"))
    await exchange.poll(Sink())
    error, segs = rejection(exchange, "nobak.edi")
    assert "mandatory segment BAK is missing" in error
    assert ["AK3", "BAK", "2", "", "3"] in segs and ["AK5", "R", "5"] in segs


async def test_bad_number_in_a_line_names_the_element(exchange: Exchange) -> None:
    body = [s.replace("*120*EA", "*12O*EA") for s in ACK_855]
    drop(exchange, "nan.edi", supplier_interchange([("855", body)], functional_id="PR"))
    await exchange.poll(Sink())
    error, segs = rejection(exchange, "nan.edi")
    assert "PO102 '12O' is not a number (segment 6 PO1)" in error
    assert ["AK3", "PO1", "4", "", "8"] in segs


async def test_mismatched_group_control_number_is_rejected_at_group_level(
    exchange: Exchange,
) -> None:
    text = supplier_interchange([("855", ACK_855)], functional_id="PR")
    drop(exchange, "ge.edi", text.replace("GE*1*417", "GE*1*418"))
    await exchange.poll(Sink())
    error, segs = rejection(exchange, "ge.edi")
    assert "GE02 '418' does not match GS06 '417'" in error
    assert ["AK9", "R", "0", "0", "0", "4"] in segs


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("hello, this is not EDI", "does not start with ISA"),
        ("ISA*00*short~", "shorter than 106"),
    ],
)
async def test_unreadable_file_is_set_aside_with_its_reason(
    exchange: Exchange, content: str, reason: str
) -> None:
    drop(exchange, "junk.edi", content)
    result = await exchange.poll(Sink())
    assert result.rejected == ["junk.edi"]
    error = (exchange.rejected / "junk.edi.error.txt").read_text()
    assert reason in error and "sender could not be identified" in error
    assert list(exchange.outbox.iterdir()) == []


async def test_truncated_file_without_iea_is_rejected(exchange: Exchange) -> None:
    text = supplier_interchange([("856", ASN_856)], functional_id="SH")
    drop(exchange, "cut.edi", text[: text.index("GE*")])
    await exchange.poll(Sink())
    error, segs = rejection(exchange, "cut.edi")
    assert "ends without IEA" in error
    assert ["AK1", "SH", "417"] in segs and ["AK9", "R", "0", "0", "0", "3"] in segs


async def test_document_from_another_sender_is_rejected(exchange: Exchange) -> None:
    text = supplier_interchange([("855", ACK_855)], functional_id="PR", sender="MALLORY")
    drop(exchange, "who.edi", text)
    await exchange.poll(Sink())
    assert (
        "sent by ZZ/MALLORY, expected ZZ/ACMESUPPLY"
        in (exchange.rejected / "who.edi.error.txt").read_text()
    )


async def test_unsupported_version_and_set_are_rejected(exchange: Exchange) -> None:
    drop(
        exchange,
        "v5.edi",
        supplier_interchange([("855", ACK_855)], functional_id="PR", version="005010"),
    )
    drop(exchange, "ps.edi", supplier_interchange([("830", ["BFR*00"])], functional_id="PS"))
    result = await exchange.poll(Sink())
    assert sorted(result.rejected) == ["ps.edi", "v5.edi"]
    assert "not supported (004010)" in (exchange.rejected / "v5.edi.error.txt").read_text()
    assert (
        "830 is not one this connector reads"
        in (exchange.rejected / "ps.edi.error.txt").read_text()
    )


async def test_a_file_stays_in_the_inbox_until_its_messages_are_published(
    exchange: Exchange,
) -> None:
    drop(exchange, "ack.edi", supplier_interchange([("855", ACK_855)], functional_id="PR"))
    sink = Sink(fail=1)
    with pytest.raises(ConnectionError):
        await exchange.poll(sink)
    assert (exchange.inbox / "ack.edi").exists() and sink.envelopes == []
    assert list(exchange.outbox.iterdir()) == []  # no 997 for what was not handed over
    result = await exchange.poll(sink)
    assert result.processed == ["ack.edi"] and len(sink.envelopes) == 1


async def test_files_still_being_written_are_left_alone(tmp_path: Path) -> None:
    ex = x12_exchange(tmp_path, PARTNER, settle_seconds=60)
    (ex.inbox / "fresh.edi").write_text(
        supplier_interchange([("855", ACK_855)], functional_id="PR")
    )
    result = await ex.poll(Sink())
    assert result.processed == [] and (ex.inbox / "fresh.edi").exists()


def test_separators_are_taken_from_the_isa() -> None:
    text = supplier_interchange([("855", ACK_855)], functional_id="PR")
    other = re.sub(r"\*", "|", text).replace(">~", "^~", 1)
    ic = read(other)
    assert ic.element_sep == "|" and ic.component_sep == "^"
    assert ic.groups[0].sets[0].segments[0].get(3) == "PO-2026-0042"


async def test_a_reader_fault_sets_the_file_aside_without_blocking_the_next(
    exchange: Exchange, monkeypatch: pytest.MonkeyPatch
) -> None:
    drop(exchange, "a.edi", supplier_interchange([("855", ACK_855)], functional_id="PR"))
    real_parse = exchange.codec.parse
    calls = 0

    def flaky(data: bytes) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise KeyError("bug")
        return real_parse(data)

    monkeypatch.setattr(exchange.codec, "parse", flaky)
    drop(exchange, "b.edi", supplier_interchange([("856", ASN_856)], functional_id="SH"))
    sink = Sink()
    result = await exchange.poll(sink)
    assert len(result.rejected) == 1 and len(result.processed) == 1
    note = (exchange.rejected / f"{result.rejected[0]}.error.txt").read_text()
    assert "the fault is ours" in note and "KeyError" in note
    assert not list(exchange.outbox.glob("997-*")) or all(
        "AK9*R" not in p.read_text() for p in exchange.outbox.glob("997-*")
    )


# --- 860 change and cancellation out --------------------------------------------------------


def test_a_change_goes_out_as_an_860_replacing_the_order(exchange: Exchange) -> None:
    change = PurchaseOrderChanged(
        po_number=PO.po_number,
        supplier=PO.supplier,
        revision=2,
        issued_at=PO.issued_at,
        changed_at=datetime(2026, 11, 23, 8, 0, tzinfo=UTC),
        currency="USD",
        expected_delivery=date(2026, 12, 3),
        lines=(PO.lines[0].model_copy(update={"quantity": 96}),),
    )
    path = exchange.write_outbound(change)
    text = path.read_text()
    doc = badx12_parse(text)
    assert doc.interchange.groups[0].transaction_sets[0].header.st01.content == "860"
    segs = segments(text)
    tags = [s[0] for s in segs]
    assert segs[tags.index("GS")][1] == "PC"
    assert segs[tags.index("SE")][1] == str(tags.index("SE") - tags.index("ST") + 1)
    bch = segs[tags.index("BCH")]
    assert bch[1:4] == ["05", "SA", "PO-2026-0042"] and bch[5:7] == ["2", "20261122"]
    poc = [s for s in segs if s[0] == "POC"]
    assert poc == [
        ["POC", "1", "RZ", "96", "96", "EA", "12.5", "PE", "SK", "TEE-RED-M", "VP", "VND-88-RED-M"]
    ]
    assert path.name.startswith("860-PO-2026-0042-")


def test_a_cancellation_goes_out_as_an_860_with_bch01_01(exchange: Exchange) -> None:
    cancel = PurchaseOrderCancelled(
        po_number=PO.po_number,
        supplier=PO.supplier,
        issued_at=PO.issued_at,
        cancelled_at=datetime(2026, 11, 24, tzinfo=UTC),
        reason="supplier rejected the order",
    )
    text = exchange.write_outbound(cancel).read_text()
    badx12_parse(text)
    segs = segments(text)
    bch = next(s for s in segs if s[0] == "BCH")
    assert bch[1:4] == ["01", "SA", "PO-2026-0042"] and bch[6] == "20261122"
    assert not [s for s in segs if s[0] == "POC"]
