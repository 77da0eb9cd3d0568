"""EDIFACT D.96A: our ORDERS read by pydifact; supplier ORDRSP/DESADV/INVOIC built with pydifact
read by us; malformed interchanges set aside with a CONTRL rejection."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydifact.parser import Parser
from pydifact.segmentcollection import Interchange, Message
from pydifact.segments import Segment

from connectors.edi_common import Exchange
from connectors.edi_common.errors import EdiError
from connectors.edifact import EdifactCodec, EdifactPartner, Party, edifact_exchange
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
)

# pydifact ships no segment directory for these versions and says so on every read
pytestmark = pytest.mark.filterwarnings("ignore:segments.xml not found")

NOW = datetime(2026, 11, 22, 4, 2, tzinfo=UTC)
PARTNER = EdifactPartner(
    supplier="euro-parts", us=Party("STOCKHUB"), them=Party("EUROPARTS"), currency="EUR"
)
PO = PurchaseOrderIssued(
    po_number="PO-2026-0050",
    supplier="euro-parts",
    issued_at=NOW,
    currency="EUR",
    expected_delivery=date(2026, 12, 4),
    lines=(
        PurchaseOrderLine(
            line_number=1,
            sku="BOLT+M8'ZINC",  # delimiters in data must be released, not break the file
            supplier_sku="EP-4471",
            quantity=500,
            unit_price=Decimal("0.085"),
        ),
        PurchaseOrderLine(line_number=2, sku="NUT-M8", quantity=500, unit_price=Decimal("0.04")),
    ),
)


@pytest.fixture
def exchange(tmp_path: Path) -> Exchange:
    ex = edifact_exchange(tmp_path, PARTNER, settle_seconds=0)
    assert isinstance(ex.codec, EdifactCodec)
    ex.codec.clock = lambda: NOW
    return ex


class Sink:
    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []

    async def __call__(self, envelopes: Sequence[Envelope]) -> None:
        self.envelopes.extend(envelopes)

    @property
    def messages(self) -> list[Any]:
        return [e.data for e in self.envelopes]


def supplier_interchange(
    doc_type: str, segments: list[Segment], *, sender: str = "EUROPARTS", ref: str = "7001"
) -> str:
    """A supplier's interchange, built and serialised by pydifact."""
    ic = Interchange(
        sender=[sender, "ZZ"],
        recipient=["STOCKHUB", "ZZ"],
        control_reference=ref,
        syntax_identifier=("UNOC", 3),
        timestamp=datetime(2026, 11, 23, 9, 30),
    )
    msg = Message("1", [doc_type, "D", "96A", "UN"])
    for seg in segments:
        msg.add_segment(seg)
    ic.add_message(msg)
    return ic.serialize(break_lines=True)


def pydifact_segments(text: str) -> list[Segment]:
    """Every segment as pydifact's parser reads it, service segments included."""
    return [s for s in Parser().parse(text) if s.tag != "UNA"]


# --- ORDERS out ----------------------------------------------------------------------------


def test_our_orders_is_read_by_pydifact_with_matching_counts_and_references(
    exchange: Exchange,
) -> None:
    path = exchange.write_outbound(PO)
    text = path.read_text()
    ic = Interchange.from_str(text)
    [msg] = list(ic.get_messages())
    assert (msg.type, msg.version) == ("ORDERS", "D.96A")
    segs = pydifact_segments(text)
    tags = [s.tag for s in segs]
    assert tags[0] == "UNB" and segs[0].elements[4] == ic.control_reference
    unh, unt = tags.index("UNH"), tags.index("UNT")
    assert segs[unt].elements == [str(unt - unh + 1), segs[unh].elements[0]]
    assert segs[-1].tag == "UNZ" and segs[-1].elements == ["1", ic.control_reference]
    assert ic.sender == ["STOCKHUB", "ZZ"] and ic.recipient == ["EUROPARTS", "ZZ"]
    by_tag = {t: [s for s in segs if s.tag == t] for t in set(tags)}
    assert by_tag["BGM"][0].elements == ["220", "PO-2026-0050", "9"]
    assert [s.elements[2] for s in by_tag["LIN"]] == [["BOLT+M8'ZINC", "IN"], ["NUT-M8", "IN"]]
    assert by_tag["PIA"][0].elements == ["1", ["EP-4471", "SA"]]
    assert [s.elements[0] for s in by_tag["QTY"]] == [["21", "500", "EA"]] * 2
    assert [s.elements[0] for s in by_tag["PRI"]] == [["AAA", "0.085"], ["AAA", "0.04"]]
    assert by_tag["CNT"][0].elements == [["2", "2"]]
    assert ["2", "20261204", "102"] in [s.elements[0] for s in by_tag["DTM"]]
    assert path.name.startswith("ORDERS-PO-2026-0050-")


def test_interchange_references_never_repeat_across_restarts(tmp_path: Path) -> None:
    refs = []
    for _ in range(2):
        ex = edifact_exchange(tmp_path, PARTNER, settle_seconds=0)
        for _ in range(2):
            refs.append(Interchange.from_str(ex.write_outbound(PO).read_text()).control_reference)
    assert refs == ["1", "2", "3", "4"]


# --- supplier messages in ------------------------------------------------------------------

ORDRSP = [
    Segment("BGM", "231", "RSP-9001", "4"),
    Segment("DTM", ["137", "20261123", "102"]),
    Segment("RFF", ["ON", "PO-2026-0050"]),
    Segment("NAD", "SU", ["EUROPARTS", "", "92"]),
    Segment("LIN", "1", "3", ["BOLT+M8'ZINC", "IN"]),
    Segment("PIA", "1", ["EP-4471", "SA"]),
    Segment("QTY", ["21", "500"]),
    Segment("QTY", ["113", "400"]),
    Segment("DTM", ["69", "20261208", "102"]),
    Segment("PRI", ["AAA", "0.085"]),
    Segment("LIN", "2", "7", ["NUT-M8", "IN"]),
    Segment("QTY", ["21", "500"]),
    Segment("UNS", "S"),
]


async def test_ordrsp_with_a_reduced_and_a_refused_line(exchange: Exchange) -> None:
    (exchange.inbox / "rsp.edi").write_text(supplier_interchange("ORDRSP", ORDRSP))
    sink = Sink()
    result = await exchange.poll(sink)
    assert result.processed == ["rsp.edi"]
    [ack] = sink.messages
    assert isinstance(ack, PurchaseOrderAcknowledged)
    assert (ack.po_number, ack.acknowledgement_id) == ("PO-2026-0050", "RSP-9001")
    assert ack.status is AckStatus.ACCEPTED_WITH_CHANGES
    # Dated by day only, the day the interchange was prepared: its time (UNB), so that a
    # revision sent later the same day is later.
    assert ack.acknowledged_at == datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
    bolt, nut = ack.lines
    assert (bolt.sku, bolt.status, bolt.quantity) == ("BOLT+M8'ZINC", LineAckStatus.CHANGED, 400)
    assert bolt.expected_delivery == date(2026, 12, 8) and bolt.unit_price == Decimal("0.085")
    assert (nut.status, nut.quantity) == (LineAckStatus.REJECTED, 0)
    assert sink.envelopes[0].source == "edifact/euro-parts"


DESADV = [
    Segment("BGM", "351", "DN-20261124-3", "9"),
    Segment("DTM", ["137", "20261124", "102"]),
    Segment("DTM", ["11", "202611241400", "203"]),
    Segment("DTM", ["132", "20261126", "102"]),
    Segment("RFF", ["ON", "PO-2026-0050"]),
    Segment("TDT", "20", "", "30", "", ["DHL"]),
    Segment("CPS", "1"),
    Segment("LIN", "1", "", ["BOLT+M8'ZINC", "IN"]),
    Segment("QTY", ["12", "250"]),
    Segment("RFF", ["LI", "1"]),
]


async def test_desadv_partial_despatch_becomes_a_ship_notice(exchange: Exchange) -> None:
    (exchange.inbox / "asn.edi").write_text(supplier_interchange("DESADV", DESADV))
    sink = Sink()
    await exchange.poll(sink)
    [asn] = sink.messages
    assert isinstance(asn, ShipmentNotified)
    assert (asn.shipment_id, asn.po_number, asn.carrier) == (
        "DN-20261124-3",
        "PO-2026-0050",
        "DHL",
    )
    assert asn.shipped_at == datetime(2026, 11, 24, 14, 0, tzinfo=UTC)
    assert asn.expected_delivery == date(2026, 11, 26)
    assert [(li.line_number, li.sku, li.quantity) for li in asn.lines] == [(1, "BOLT+M8'ZINC", 250)]


INVOIC = [
    Segment("BGM", "380", "RE-2026-7781", "9"),
    Segment("DTM", ["137", "20261127", "102"]),
    Segment("RFF", ["ON", "PO-2026-0050"]),
    Segment("CUX", ["2", "EUR", "4"]),
    Segment("LIN", "1", "", ["BOLT+M8'ZINC", "IN"]),
    Segment("QTY", ["47", "250"]),
    Segment("MOA", ["203", "23.75"]),
    Segment("PRI", ["AAA", "0.095"]),
    Segment("UNS", "S"),
    Segment("MOA", ["79", "23.75"]),
    Segment("MOA", ["124", "4.51"]),
    Segment("MOA", ["77", "28.26"]),
]


async def test_invoic_at_a_different_price_is_read_with_its_totals(exchange: Exchange) -> None:
    (exchange.inbox / "inv.edi").write_text(supplier_interchange("INVOIC", INVOIC))
    sink = Sink()
    await exchange.poll(sink)
    [inv] = sink.messages
    assert isinstance(inv, SupplierInvoiceReceived)
    assert (inv.invoice_number, inv.po_number, inv.currency) == (
        "RE-2026-7781",
        "PO-2026-0050",
        "EUR",
    )
    assert inv.lines[0].unit_price == Decimal("0.095") and inv.lines[0].quantity == 250
    assert (inv.subtotal, inv.tax, inv.total) == (
        Decimal("23.75"),
        Decimal("4.51"),
        Decimal("28.26"),
    )
    assert list(exchange.outbox.iterdir()) == []  # no CONTRL for accepted interchanges


async def test_a_custom_una_with_comma_decimals_is_honoured(exchange: Exchange) -> None:
    text = supplier_interchange("INVOIC", INVOIC).replace("0.095", "0,095")
    text = text.replace("23.75", "23,75").replace("4.51", "4,51").replace("28.26", "28,26")
    (exchange.inbox / "una.edi").write_text("UNA:+,? '\n" + text)
    sink = Sink()
    await exchange.poll(sink)
    assert sink.messages[0].lines[0].unit_price == Decimal("0.095")


# --- malformed -----------------------------------------------------------------------------


def contrl(exchange: Exchange) -> list[Segment]:
    [reply] = list(exchange.outbox.glob("CONTRL-*.edi"))
    ic = Interchange.from_str(reply.read_text())
    [msg] = list(ic.get_messages())
    assert msg.type == "CONTRL"
    return pydifact_segments(reply.read_text())


async def test_wrong_unt_count_is_rejected_with_a_contrl(exchange: Exchange) -> None:
    text = supplier_interchange("ORDRSP", ORDRSP).replace("UNT+15+1'", "UNT+14+1'")
    (exchange.inbox / "bad.edi").write_text(text)
    sink = Sink()
    result = await exchange.poll(sink)
    assert result.rejected == ["bad.edi"] and sink.envelopes == []
    error = (exchange.rejected / "bad.edi.error.txt").read_text()
    assert "UNT01 says 14 segments, the message has 15 (segment 16 UNT)" in error
    segs = {s.tag: s.elements for s in contrl(exchange)}
    assert segs["UCI"] == ["7001", ["EUROPARTS", "ZZ"], ["STOCKHUB", "ZZ"], "4"]
    assert segs["UCM"] == ["1", ["ORDRSP", "D", "96A", "UN"], "4", "29", "UNT"]


async def test_missing_order_reference_is_rejected_naming_the_segment(exchange: Exchange) -> None:
    body = [s for s in INVOIC if s.tag != "RFF"]
    (exchange.inbox / "noref.edi").write_text(supplier_interchange("INVOIC", body))
    await exchange.poll(Sink())
    error = (exchange.rejected / "noref.edi.error.txt").read_text()
    assert "RFF+ON (the order number) is missing (segment 3 BGM)" in error
    segs = {s.tag: s.elements for s in contrl(exchange)}
    assert segs["UCM"][2:] == ["4", "13"] and segs["UCS"] == ["2", "13"]


async def test_interchange_from_an_unknown_sender_is_rejected(exchange: Exchange) -> None:
    text = supplier_interchange("ORDRSP", ORDRSP, sender="MALLORY")
    (exchange.inbox / "who.edi").write_text(text)
    await exchange.poll(Sink())
    assert "sent by MALLORY" in (exchange.rejected / "who.edi.error.txt").read_text()
    segs = {s.tag: s.elements for s in contrl(exchange)}
    assert segs["UCI"][3:5] == ["4", "23"]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("ISA*00*this is X12~", "not an EDIFACT interchange"),
        ("UNB+UNOC:3+EUROPARTS:ZZ+STOCKHUB:ZZ+261123:0930+7001'\nUNH+1+ORDRSP:D", "ends inside"),
    ],
)
async def test_unreadable_interchange_is_set_aside(
    exchange: Exchange, content: str, reason: str
) -> None:
    (exchange.inbox / "junk.edi").write_text(content)
    result = await exchange.poll(Sink())
    assert result.rejected == ["junk.edi"]
    assert reason in (exchange.rejected / "junk.edi.error.txt").read_text()


async def test_unsupported_message_type_is_rejected(exchange: Exchange) -> None:
    (exchange.inbox / "pri.edi").write_text(
        supplier_interchange("PRICAT", [Segment("BGM", "9", "P1")])
    )
    await exchange.poll(Sink())
    assert (
        "PRICAT is not one this connector reads"
        in (exchange.rejected / "pri.edi.error.txt").read_text()
    )
    segs = {s.tag: s.elements for s in contrl(exchange)}
    assert segs["UCM"][0] == "1" and segs["UCM"][2:4] == ["4", "15"]


# --- ORDCHG out ----------------------------------------------------------------------------


def test_a_change_goes_out_as_ordchg_replacing_the_order(exchange: Exchange) -> None:
    change = PurchaseOrderChanged(
        po_number=PO.po_number,
        supplier=PO.supplier,
        revision=1,
        issued_at=PO.issued_at,
        changed_at=datetime(2026, 11, 23, 8, 0, tzinfo=UTC),
        currency="EUR",
        expected_delivery=date(2026, 12, 6),
        lines=(PO.lines[1].model_copy(update={"quantity": 600}),),
    )
    path = exchange.write_outbound(change)
    ic = Interchange.from_str(path.read_text())
    [msg] = list(ic.get_messages())
    assert msg.type == "ORDCHG"
    segs = pydifact_segments(path.read_text())
    by_tag = {s.tag: s.elements for s in segs}
    assert by_tag["BGM"] == ["230", "PO-2026-0050", "5"]
    assert by_tag["QTY"] == [["21", "600", "EA"]] and by_tag["LIN"][2] == ["NUT-M8", "IN"]
    assert path.name.startswith("ORDCHG-PO-2026-0050-")


def test_a_cancellation_goes_out_as_ordchg_function_1(exchange: Exchange) -> None:
    cancel = PurchaseOrderCancelled(
        po_number=PO.po_number,
        supplier=PO.supplier,
        issued_at=PO.issued_at,
        cancelled_at=datetime(2026, 11, 24, tzinfo=UTC),
    )
    segs = pydifact_segments(exchange.write_outbound(cancel).read_text())
    by_tag = {s.tag: s.elements for s in segs}
    assert by_tag["BGM"] == ["230", "PO-2026-0050", "1"]
    assert by_tag["RFF"] == [["ON", "PO-2026-0050"]] and "LIN" not in by_tag
    tags = [s.tag for s in segs]
    assert by_tag["UNT"][0] == str(tags.index("UNT") - tags.index("UNH") + 1)


async def test_invoic_with_two_tax_rates_counts_the_tax_of_both(exchange: Exchange) -> None:
    """A TAX group per rate, each with its MOA+124: the invoice's tax is their sum, so that its
    totals add up and the match does not hold it for them."""
    at = INVOIC.index(Segment("MOA", ["124", "4.51"]))
    body = [
        *INVOIC[:at],
        Segment("TAX", "7", "VAT", "", "", ["", "", "", "7"]),
        Segment("MOA", ["124", "1.00"]),
        Segment("TAX", "7", "VAT", "", "", ["", "", "", "19"]),
        Segment("MOA", ["124", "3.51"]),
        *INVOIC[at + 1 :],
    ]
    (exchange.inbox / "rates.edi").write_text(supplier_interchange("INVOIC", body))
    sink = Sink()
    await exchange.poll(sink)
    [inv] = sink.messages
    assert (inv.subtotal, inv.tax, inv.total) == (
        Decimal("23.75"),
        Decimal("4.51"),
        Decimal("28.26"),
    )
    assert inv.subtotal + inv.tax + inv.charges == inv.total


async def test_invoic_with_the_message_total_of_taxes_takes_it(exchange: Exchange) -> None:
    body = [*INVOIC, Segment("MOA", ["124", "1.00"]), Segment("MOA", ["176", "4.51"])]
    body[body.index(Segment("MOA", ["124", "4.51"]))] = Segment("MOA", ["124", "3.51"])
    (exchange.inbox / "total.edi").write_text(supplier_interchange("INVOIC", body))
    sink = Sink()
    await exchange.poll(sink)
    assert sink.messages[0].tax == Decimal("4.51")


async def test_a_line_priced_by_its_amount_alone_gets_a_price_to_six_places(
    exchange: Exchange,
) -> None:
    """No PRI: the price is MOA+203 over the units, which need not divide evenly."""
    body = [s for s in INVOIC if s.tag != "PRI"]
    body[body.index(Segment("QTY", ["47", "250"]))] = Segment("QTY", ["47", "3"])
    body[body.index(Segment("MOA", ["203", "23.75"]))] = Segment("MOA", ["203", "100.00"])
    (exchange.inbox / "amount.edi").write_text(supplier_interchange("INVOIC", body))
    sink = Sink()
    await exchange.poll(sink)
    [inv] = sink.messages
    assert inv.lines[0].unit_price == Decimal("33.333333") and inv.lines[0].quantity == 3
    assert list(exchange.outbox.iterdir()) == []  # accepted: no CONTRL


async def test_an_ordrsp_dated_by_day_takes_the_time_its_interchange_was_sent(
    exchange: Exchange,
) -> None:
    """A revision dated the day before, sent in a nightly batch after midnight, takes the end
    of its day: later than an original sent that day (which takes its interchange's time).
    One dated after its interchange (a clock ahead) keeps its own date."""
    for day, name in (("20261122", "late.edi"), ("20261124", "ahead.edi")):
        body = [
            Segment("DTM", ["137", day, "102"])
            if s.tag == "DTM" and s.elements[0][0] == "137"
            else s
            for s in ORDRSP
        ]
        (exchange.inbox / name).write_text(supplier_interchange("ORDRSP", body))
    sink = Sink()
    await exchange.poll(sink)
    assert sorted(m.acknowledged_at for m in sink.messages) == [
        datetime(2026, 11, 22, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 11, 24, tzinfo=UTC),
    ]


# --- character sets --------------------------------------------------------------------------


def test_our_orders_are_latin_1_as_unb_declares(exchange: Exchange) -> None:
    """UNB says UNOC (ISO 8859-1): the bytes are Latin-1, so a supplier reads ÄRMEL, not ÃRMEL.
    A SKU Latin-1 has no character for is an error naming it, not a garbled value."""
    line = PO.lines[1]
    latin = PO.model_copy(update={"lines": (line.model_copy(update={"sku": "ÄRMEL-ß"}),)})
    data = exchange.write_outbound(latin).read_bytes()
    assert data.count(b"UNB+UNOC:3+") == 1 and "ÄRMEL-ß".encode("latin-1") in data
    lins = [s for s in pydifact_segments(data.decode("latin-1")) if s.tag == "LIN"]
    assert [s.elements[2][0] for s in lins] == ["ÄRMEL-ß"]
    wide = PO.model_copy(update={"lines": (line.model_copy(update={"sku": "ŁOŚ-€"}),)})
    with pytest.raises(EdiError, match="has no ISO 8859-1"):
        exchange.codec.render(wide)


async def test_a_supplier_interchange_in_latin_1_is_read_by_its_declared_set(
    exchange: Exchange,
) -> None:
    body = [
        Segment("LIN", "1", "3", ["MÜNCHEN-ÄRMEL", "IN"])
        if s.tag == "LIN" and s.elements[0] == "1"
        else s
        for s in ORDRSP
    ]
    text = supplier_interchange("ORDRSP", body)
    assert "UNOC" in text
    (exchange.inbox / "latin.edi").write_bytes(text.encode("latin-1"))
    sink = Sink()
    result = await exchange.poll(sink)
    assert result.processed == ["latin.edi"]
    [ack] = sink.messages
    assert ack.lines[0].sku == "MÜNCHEN-ÄRMEL"


async def test_a_supplier_interchange_declared_latin_1_but_written_as_utf_8_is_read(
    exchange: Exchange,
) -> None:
    body = [
        Segment("LIN", "1", "3", ["MÜNCHEN-ÄRMEL", "IN"])
        if s.tag == "LIN" and s.elements[0] == "1"
        else s
        for s in ORDRSP
    ]
    text = "\r\n" + supplier_interchange("ORDRSP", body)
    (exchange.inbox / "utf8.edi").write_bytes(text.encode("utf-8"))
    sink = Sink()
    assert (await exchange.poll(sink)).processed == ["utf8.edi"]
    [ack] = sink.messages
    assert ack.lines[0].sku == "MÜNCHEN-ÄRMEL"


def test_the_declared_syntax_is_read_past_a_bom_a_una_and_up_to_its_separator() -> None:
    from connectors.edifact.syntax import declared_syntax

    assert declared_syntax(b"\xef\xbb\xbfUNA:*.? 'UNB*UNOD:3*X'") == "UNOD"
    assert declared_syntax(b"\r\nUNB+UNOC'UNH+1") == "UNOC"
    assert declared_syntax(b"UNH+1+ORDERS") is None
