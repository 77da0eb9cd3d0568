"""Supplier messages (D.96A) to canonical messages: ORDRSP, DESADV, INVOIC.

Each function takes one message's segments (between UNH and UNT). Line groups start at LIN.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from connectors.edi_common.canonical import build
from connectors.edi_common.errors import EdiError
from connectors.edifact.syntax import MISSING, Segment
from schemas.base import CanonicalMessage
from schemas.purchasing import (
    AcknowledgedLine,
    AckStatus,
    InvoiceLine,
    LineAckStatus,
    PurchaseOrderAcknowledged,
    ShipmentNotified,
    ShippedLine,
    SupplierInvoiceReceived,
)

PRICE_PLACES = Decimal("0.000001")  # a unit price's places (schemas.purchasing.UnitPrice)
_OUR_SKU = ("IN", "BP")  # 7143: buyer's item number, buyer's part number
_THEIR_SKU = ("SA", "VN", "VP")


def _first(segments: list[Segment], tag: str, qualifier: str | None = None) -> Segment:
    for seg in segments:
        if seg.tag == tag and (qualifier is None or seg.get(1, 1) == qualifier):
            return seg
    pos = segments[0].position if segments else None
    what = tag + (f"+{qualifier}" if qualifier else "")
    raise EdiError(f"mandatory segment {what} is missing", position=pos, segment=tag, code=MISSING)


def _find(segments: list[Segment], tag: str, qualifiers: tuple[str, ...]) -> Segment | None:
    for q in qualifiers:
        for seg in segments:
            if seg.tag == tag and seg.get(1, 1) == q:
                return seg
    return None


def _written_at(dtm: Segment | None, at: datetime) -> datetime:
    """When a document was written: its DTM; where that gives a day only, the interchange's
    time (UNB) if it was prepared that day, else the end of that day if it was prepared
    later. A document is sent after it is written: of two answers dated the same day the one
    sent later is the later (a revision sent after midnight too), and one dated a later day is
    later whichever comes first in an interchange."""
    if dtm is None:
        return at
    day = dtm.date()
    if (dtm.get(1, 3) or "102") != "102" or day.date() > at.date():
        return day
    if day.date() == at.date():
        return at
    return day + timedelta(days=1, microseconds=-1)


def _header_and_lines(segments: list[Segment]) -> tuple[list[Segment], list[list[Segment]]]:
    """Segments before the first LIN, and one group per LIN up to the next LIN or UNS+S."""
    header: list[Segment] = []
    lines: list[list[Segment]] = []
    for seg in segments:
        if seg.tag == "UNS" and seg.get(1) == "S":
            break
        if seg.tag == "LIN":
            lines.append([seg])
        elif lines:
            lines[-1].append(seg)
        elif seg.tag != "UNS":
            header.append(seg)
    return header, lines


def _summary(segments: list[Segment]) -> list[Segment]:
    for i, seg in enumerate(segments):
        if seg.tag == "UNS" and seg.get(1) == "S":
            return segments[i + 1 :]
    return []


def _sku(group: list[Segment]) -> tuple[str, str | None]:
    lin = group[0]
    ids: dict[str, str] = {}
    if lin.get(3, 1):
        ids[lin.get(3, 2) or "IN"] = lin.get(3, 1)
    for seg in group:
        if seg.tag == "PIA":
            for i in range(2, len(seg.elements) + 1):
                if seg.get(i, 1) and seg.get(i, 2):
                    ids.setdefault(seg.get(i, 2), seg.get(i, 1))
    ours = next((ids[q] for q in _OUR_SKU if q in ids), None)
    if ours is None:
        raise lin.error("the line names no SKU of ours (item number type IN or BP)", MISSING)
    return ours, next((ids[q] for q in _THEIR_SKU if q in ids), None)


def _line_no(seg: Segment, i: int, c: int = 1) -> int | None:
    raw = seg.get(i, c)
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise seg.error(f"{seg.tag} {raw!r} is not a PO line number")
    return int(raw)


def _order_number(segments: list[Segment]) -> str | None:
    ref = _find(segments, "RFF", ("ON",))
    return ref.get(1, 2) if ref is not None else None


_RESPONSE = {
    "29": AckStatus.ACCEPTED,
    "4": AckStatus.ACCEPTED_WITH_CHANGES,
    "27": AckStatus.REJECTED,
}
_ACTION = {  # 1229 action request/notification
    "5": LineAckStatus.ACCEPTED,
    "3": LineAckStatus.CHANGED,
    "6": LineAckStatus.CHANGED,
    "7": LineAckStatus.REJECTED,
    "2": LineAckStatus.REJECTED,
}


def ordrsp(segments: list[Segment], *, supplier: str, at: datetime) -> Iterator[CanonicalMessage]:
    bgm = _first(segments, "BGM")
    header, groups = _header_and_lines(segments)
    po = _order_number(header)
    if po is None:
        raise bgm.error("RFF+ON (the order number) is missing", MISSING)
    lines = [_ack_line(g) for g in groups]
    status = _RESPONSE.get(bgm.get(3))
    if status is None:
        if lines and all(li.status is LineAckStatus.REJECTED for li in lines):
            status = AckStatus.REJECTED
        elif any(li.status is not LineAckStatus.ACCEPTED for li in lines):
            status = AckStatus.ACCEPTED_WITH_CHANGES
        else:
            status = AckStatus.ACCEPTED
    dtm = _find(header, "DTM", ("137",))
    yield build(
        PurchaseOrderAcknowledged,
        bgm.error,
        po_number=po,
        supplier=supplier,
        acknowledgement_id=bgm.get(2) or f"ORDRSP-{po}",
        acknowledged_at=_written_at(dtm, at),
        status=status,
        lines=tuple(lines),
    )


def _ack_line(group: list[Segment]) -> AcknowledgedLine:
    lin = group[0]
    number = _line_no(lin, 1)
    if number is None:
        raise lin.error("LIN01 (the PO line number) is required in an ORDRSP", MISSING)
    sku, _ = _sku(group)
    ordered = _find(group, "QTY", ("21",))
    confirmed = _find(group, "QTY", ("113", "194", "12"))
    action = _ACTION.get(lin.get(2), LineAckStatus.ACCEPTED)
    qty = confirmed.units(1, 2) if confirmed else (ordered.units(1, 2) if ordered else None)
    if qty is None and action is not LineAckStatus.REJECTED:
        raise lin.error("the line has no QTY+21 or QTY+113", MISSING)
    if action is LineAckStatus.ACCEPTED and ordered and qty != ordered.units(1, 2):
        action = LineAckStatus.CHANGED
    price = _find(group, "PRI", ("AAA", "AAB"))
    promised = _find(group, "DTM", ("69", "2", "17"))
    return build(
        AcknowledgedLine,
        lin.error,
        line_number=number,
        sku=sku,
        status=action,
        quantity=0 if action is LineAckStatus.REJECTED else qty,
        unit_price=price.number(1, 2) if price else None,
        expected_delivery=promised.date().date() if promised else None,
    )


def desadv(segments: list[Segment], *, supplier: str, at: datetime) -> Iterator[CanonicalMessage]:
    bgm = _first(segments, "BGM")
    header, groups = _header_and_lines(segments)
    header_po = _order_number(header)
    shipped = _find(header, "DTM", ("11", "137"))
    arrival = _find(header, "DTM", ("132", "17", "2"))
    tdt = _find(header, "TDT", ("20",))
    tracking = _find(header, "RFF", ("CN", "AAS"))
    by_po: dict[str, list[ShippedLine]] = {}
    for group in groups:
        po = _order_number(group) or header_po
        if po is None:
            raise group[0].error("no RFF+ON (order number) for this line or the message", MISSING)
        qty = _find(group, "QTY", ("12",))
        if qty is None:
            raise group[0].error("QTY+12 (despatch quantity) is missing", MISSING)
        sku, _ = _sku(group)
        li = _find(group, "RFF", ("LI",))
        by_po.setdefault(po, []).append(
            build(
                ShippedLine,
                qty.error,
                line_number=_line_no(li, 1, 2) if li else None,
                sku=sku,
                quantity=qty.units(1, 2),
            )
        )
    if not by_po:
        raise bgm.error("the despatch advice has no LIN line", MISSING)
    for po, lines in by_po.items():
        yield build(
            ShipmentNotified,
            bgm.error,
            po_number=po,
            supplier=supplier,
            shipment_id=bgm.get(2),
            shipped_at=shipped.date() if shipped else at,
            expected_delivery=arrival.date().date() if arrival else None,
            carrier=tdt.get(5, 1) if tdt else "",
            tracking_number=tracking.get(1, 2) if tracking else "",
            lines=tuple(lines),
        )


def invoic(
    segments: list[Segment], *, supplier: str, at: datetime, currency: str
) -> Iterator[CanonicalMessage]:
    bgm = _first(segments, "BGM")
    header, groups = _header_and_lines(segments)
    po = _order_number(header)
    if po is None:
        raise bgm.error("RFF+ON (the order number) is missing", MISSING)
    cux = _find(header, "CUX", ("2",))
    if cux is not None and cux.get(1, 2):
        currency = cux.get(1, 2)
    lines: list[InvoiceLine] = []
    for group in groups:
        sku, _ = _sku(group)
        qty = _find(group, "QTY", ("47",))
        if qty is None:
            raise group[0].error("QTY+47 (invoiced quantity) is missing", MISSING)
        units = qty.units(1, 2)
        pri = _find(group, "PRI", ("AAA", "AAB"))
        moa = _find(group, "MOA", ("203",))
        if pri is not None:
            price = pri.number(1, 2)
        elif moa is not None and units:
            # The line amount over its units, to the six places a price holds (100.00 for 3
            # is 33.333333: the lines' sum stays within a cent of the amount).
            price = (moa.number(1, 2) / units).quantize(PRICE_PLACES, ROUND_HALF_UP)
        else:
            raise group[0].error("the line has neither PRI+AAA nor MOA+203", MISSING)
        li = _find(group, "RFF", ("LI",))
        lines.append(
            build(
                InvoiceLine,
                group[0].error,
                line_number=_line_no(li, 1, 2) if li else _line_no(group[0], 1),
                sku=sku,
                quantity=units,
                unit_price=price,
            )
        )
    if not lines:
        raise bgm.error("the invoice has no LIN line", MISSING)
    summary = _summary(segments)
    total = _find(summary, "MOA", ("77", "86", "9"))
    if total is None:
        raise bgm.error("the invoice amount (MOA+77, 86 or 9 after UNS) is missing", MISSING)
    subtotal = _find(summary, "MOA", ("79",))
    # The message's total of taxes (MOA+176), else every rate's own (a TAX group with its
    # MOA+124 per rate: 7% and 19% on one invoice).
    tax_total = _find(summary, "MOA", ("176",))
    rates = [seg for seg in summary if seg.tag == "MOA" and seg.get(1, 1) == "124"]
    charges = _find(summary, "MOA", ("131",))
    line_sum = sum((li.amount for li in lines), Decimal(0))
    dtm = _find(header, "DTM", ("137", "3"))
    yield build(
        SupplierInvoiceReceived,
        bgm.error,
        po_number=po,
        supplier=supplier,
        invoice_number=bgm.get(2),
        invoiced_at=dtm.date() if dtm else at,
        currency=currency,
        lines=tuple(lines),
        subtotal=subtotal.number(1, 2) if subtotal else line_sum,
        tax=(
            tax_total.number(1, 2)
            if tax_total
            else sum((seg.number(1, 2) for seg in rates), Decimal(0))
        ),
        charges=charges.number(1, 2) if charges else Decimal(0),
        total=total.number(1, 2),
    )
