"""Supplier documents to canonical messages: 855 acknowledgement, 856 ship notice, 810 invoice,
846 inventory advice. Each function takes one transaction set's segments (between ST and SE)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

from connectors.edi_common.canonical import build
from connectors.edi_common.errors import EdiError
from connectors.x12.syntax import Segment, date_of, decimal_of, require, units_of
from schemas.purchasing import (
    AcknowledgedLine,
    AckStatus,
    InvoiceLine,
    LineAckStatus,
    PurchaseOrderAcknowledged,
    ShipmentNotified,
    ShippedLine,
    SupplierInvoiceReceived,
    SupplierStockReported,
    reported_units,
)

# BAK02 acknowledgement type
_ACK_TYPE = {
    "AC": AckStatus.ACCEPTED_WITH_CHANGES,  # with detail and change
    "AE": AckStatus.ACCEPTED_WITH_CHANGES,  # with exception detail only
    "AD": AckStatus.ACCEPTED,  # with detail, no change
    "AK": AckStatus.ACCEPTED,  # no detail or change
    "AT": AckStatus.ACCEPTED,
    "RD": AckStatus.REJECTED,  # rejected with detail
    "RJ": AckStatus.REJECTED,  # rejected, no detail
}
# ACK01 line item status
_LINE_STATUS = {
    "IA": LineAckStatus.ACCEPTED,
    "AR": LineAckStatus.ACCEPTED,
    "AC": LineAckStatus.ACCEPTED,
    "IC": LineAckStatus.CHANGED,
    "IQ": LineAckStatus.CHANGED,
    "IP": LineAckStatus.CHANGED,
    "DR": LineAckStatus.CHANGED,
    "IS": LineAckStatus.CHANGED,
    "IB": LineAckStatus.BACKORDERED,
    "IR": LineAckStatus.REJECTED,
    "ID": LineAckStatus.REJECTED,
    "R1": LineAckStatus.REJECTED,
    "R2": LineAckStatus.REJECTED,
}
_OUR_SKU = ("SK", "BP", "IN")
_THEIR_SKU = ("VP", "VN", "VA")


def _ids(seg: Segment, first: int) -> dict[str, str]:
    """Product id qualifier/value pairs from element `first` on (PO106/PO107…, LIN02/LIN03…)."""
    return {
        seg.get(i): seg.get(i + 1)
        for i in range(first, len(seg.elements) + 1, 2)
        if seg.get(i) and seg.get(i + 1)
    }


def _sku(seg: Segment, first: int) -> tuple[str, str | None]:
    ids = _ids(seg, first)
    ours = next((ids[q] for q in _OUR_SKU if q in ids), None)
    if ours is None:
        raise seg.error(f"{seg.tag} names no SKU of ours (qualifier SK, BP or IN)")
    return ours, next((ids[q] for q in _THEIR_SKU if q in ids), None)


def _line_number(seg: Segment, i: int) -> int | None:
    raw = seg.get(i)
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise seg.error(f"{seg.tag}{i:02d} {raw!r} is not a PO line number")
    return int(raw)


def _first(segments: list[Segment], tag: str) -> Segment:
    for seg in segments:
        if seg.tag == tag:
            return seg
    pos = segments[0].position if segments else None
    raise EdiError(f"mandatory segment {tag} is missing", position=pos, segment=tag, code="3")


def ack855(segments: list[Segment], *, supplier: str, at: datetime, doc_id: str) -> Iterator[Any]:
    bak = _first(segments, "BAK")
    require(bak, 1, 2, 3)
    status = _ACK_TYPE.get(bak.get(2))
    if status is None:
        raise bak.error(f"BAK02 {bak.get(2)!r} is not an acknowledgement type code", "7")
    lines: list[AcknowledgedLine] = []
    i = 0
    while i < len(segments):
        seg = segments[i]
        i += 1
        if seg.tag != "PO1":
            continue
        acks: list[Segment] = []
        while i < len(segments) and segments[i].tag not in ("PO1", "CTT"):
            if segments[i].tag == "ACK":
                acks.append(segments[i])
            i += 1
        lines.append(_ack_line(seg, acks))
    yield build(
        PurchaseOrderAcknowledged,
        bak.error,
        po_number=bak.get(3),
        supplier=supplier,
        acknowledgement_id=bak.get(8) or doc_id,
        acknowledged_at=at,
        status=status,
        lines=tuple(lines),
    )


def _ack_line(po1: Segment, acks: list[Segment]) -> AcknowledgedLine:
    number = _line_number(po1, 1)
    if number is None:
        raise po1.error("PO101 (the PO line number) is required in an 855")
    require(po1, 2)
    ordered = units_of(po1, 2)
    sku, _ = _sku(po1, 6)
    price = decimal_of(po1, 4) if po1.get(4) else None
    statuses: list[LineAckStatus] = []
    confirmed = 0
    promised = None
    for ack in acks:
        require(ack, 1)
        st = _LINE_STATUS.get(ack.get(1))
        if st is None:
            raise ack.error(f"ACK01 {ack.get(1)!r} is not a line item status code", "7")
        statuses.append(st)
        if st is not LineAckStatus.REJECTED:
            confirmed += units_of(ack, 2) if ack.get(2) else ordered
        if ack.get(5):
            promised = date_of(ack, 5).date()
    if not acks:
        statuses, confirmed = [LineAckStatus.ACCEPTED], ordered
    if all(s is LineAckStatus.REJECTED for s in statuses):
        status = LineAckStatus.REJECTED
    elif LineAckStatus.BACKORDERED in statuses:
        status = LineAckStatus.BACKORDERED
    elif LineAckStatus.CHANGED in statuses or confirmed != ordered:
        status = LineAckStatus.CHANGED
    else:
        status = LineAckStatus.ACCEPTED
    return build(
        AcknowledgedLine,
        po1.error,
        line_number=number,
        sku=sku,
        status=status,
        quantity=0 if status is LineAckStatus.REJECTED else confirmed,
        unit_price=price,
        expected_delivery=promised,
    )


def asn856(segments: list[Segment], *, supplier: str, at: datetime, doc_id: str) -> Iterator[Any]:
    bsn = _first(segments, "BSN")
    require(bsn, 2, 3)
    shipped_at = date_of(bsn, 3, 4)
    delivery = None
    carrier = tracking = ""
    po_of: dict[str, str] = {}  # HL id → PO number, inherited from the order level down
    hl_id = ""
    lines: dict[str, list[ShippedLine]] = {}
    pending_lin: Segment | None = None
    for seg in segments:
        if seg.tag == "HL":
            require(seg, 1, 3)
            hl_id = seg.get(1)
            if seg.get(2) in po_of:
                po_of[hl_id] = po_of[seg.get(2)]
            pending_lin = None
        elif seg.tag == "DTM" and seg.get(1) == "011":
            shipped_at = date_of(seg, 2, 3)
        elif seg.tag == "DTM" and seg.get(1) in ("017", "067"):
            delivery = date_of(seg, 2).date()
        elif seg.tag == "TD5" and not carrier:
            carrier = seg.get(3)
        elif seg.tag == "REF" and seg.get(1) in ("CN", "2I") and not tracking:
            tracking = seg.get(2)
        elif seg.tag == "PRF":
            require(seg, 1)
            po_of[hl_id] = seg.get(1)
        elif seg.tag == "LIN":
            pending_lin = seg
        elif seg.tag == "SN1":
            if pending_lin is None:
                raise seg.error("SN1 without a LIN naming the item", "2")
            if hl_id not in po_of:
                raise seg.error("item is not under an order level with a PRF (PO number)", "3")
            sku, _ = _sku(pending_lin, 2)
            require(seg, 2)
            line = build(
                ShippedLine,
                seg.error,
                line_number=_line_number(pending_lin, 1),
                sku=sku,
                quantity=units_of(seg, 2),
            )
            lines.setdefault(po_of[hl_id], []).append(line)
            pending_lin = None
    if not lines:
        raise EdiError("the ship notice has no item (LIN/SN1)", position=bsn.position, code="3")
    for po_number, po_lines in lines.items():
        yield build(
            ShipmentNotified,
            bsn.error,
            po_number=po_number,
            supplier=supplier,
            shipment_id=bsn.get(2),
            shipped_at=shipped_at,
            expected_delivery=delivery,
            carrier=carrier,
            tracking_number=tracking,
            lines=tuple(po_lines),
        )


def invoice810(
    segments: list[Segment], *, supplier: str, at: datetime, doc_id: str, currency: str
) -> Iterator[Any]:
    big = _first(segments, "BIG")
    require(big, 1, 2, 4)
    tds = _first(segments, "TDS")
    require(tds, 1)
    lines: list[InvoiceLine] = []
    tax = charges = Decimal(0)
    for seg in segments:
        if seg.tag == "CUR" and seg.get(1) in ("SE", "BY") and seg.get(2):
            currency = seg.get(2)
        elif seg.tag == "IT1":
            require(seg, 2, 4)
            sku, _ = _sku(seg, 6)
            lines.append(
                build(
                    InvoiceLine,
                    seg.error,
                    line_number=_line_number(seg, 1),
                    sku=sku,
                    quantity=units_of(seg, 2),
                    unit_price=decimal_of(seg, 4),
                )
            )
        elif seg.tag == "TXI" and seg.get(2):
            tax += decimal_of(seg, 2)
        elif seg.tag == "SAC" and seg.get(5):
            value = decimal_of(seg, 5, implied=2)  # N2
            charges += -value if seg.get(1) == "A" else value
    if not lines:
        raise EdiError("the invoice has no IT1 line", position=big.position, code="3")
    yield build(
        SupplierInvoiceReceived,
        big.error,
        po_number=big.get(4),
        supplier=supplier,
        invoice_number=big.get(2),
        invoiced_at=date_of(big, 1),
        currency=currency,
        lines=tuple(lines),
        subtotal=sum((line.amount for line in lines), Decimal(0)),
        tax=tax,
        charges=charges,
        total=decimal_of(tds, 1, implied=2),  # TDS01 is N2: implied two decimals
    )


def inventory846(
    segments: list[Segment], *, supplier: str, at: datetime, doc_id: str
) -> Iterator[Any]:
    bia = _first(segments, "BIA")
    require(bia, 3, 4)
    reported_at = date_of(bia, 4, 5)
    if not bia.get(5) and at.date() == reported_at.date():
        # A report dated without a time: the group's time that day, so that an afternoon's
        # report is newer than the morning's rather than ignored as no later.
        reported_at = at
    report_id = bia.get(3)
    lin: Segment | None = None
    found: dict[str, int] = {}

    def flush() -> Iterator[Any]:
        if lin is None:
            return
        sku, their = _sku(lin, 2)
        qty = found.get("33", found.get("17"))
        if qty is None:
            raise lin.error(f"no QTY*33 (available) or QTY*17 (on hand) for {sku}", "3")
        yield build(
            SupplierStockReported,
            lin.error,
            supplier=supplier,
            sku=sku,
            supplier_sku=their,
            quantity=reported_units(qty),
            reported_at=reported_at,
            report_id=report_id,
        )

    for seg in segments:
        if seg.tag == "LIN":
            yield from flush()
            lin, found = seg, {}
        elif seg.tag == "QTY" and lin is not None:
            require(seg, 1, 2)
            found[seg.get(1)] = units_of(seg, 2)
    yield from flush()
    if lin is None:
        raise EdiError("the inventory advice has no LIN item", position=bia.position, code="3")
