"""X12 004010 for one supplier: 850 and 860 out; 855, 856, 810, 846 and 997 in; 997 back."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connectors.edi_common.canonical import envelope
from connectors.edi_common.control import ControlNumbers
from connectors.edi_common.errors import EdiError
from connectors.edi_common.exchange import OutboundFile, Parsed
from connectors.x12 import ack997, inbound
from connectors.x12.outbound import po850, po860
from connectors.x12.syntax import Interchange, Party, TransactionSet, read, render_interchange
from schemas.base import CanonicalMessage, now_utc
from schemas.envelope import Envelope
from schemas.purchasing import (
    PurchaseOrderCancelled,
    PurchaseOrderChanged,
    PurchaseOrderIssued,
)


@dataclass(frozen=True, slots=True)
class X12Partner:
    supplier: str  # the supplier account in the hub config
    us: Party
    them: Party
    currency: str = "USD"  # when an 810 has no CUR segment
    usage: str = "P"  # ISA15: P production, T test


class X12Codec:
    def __init__(
        self,
        partner: X12Partner,
        numbers: ControlNumbers,
        *,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        self.partner = partner
        self.numbers = numbers
        self.clock = clock

    @property
    def source(self) -> str:
        return f"x12/{self.partner.supplier}"

    # --- out ---------------------------------------------------------------------------------

    def render(self, message: CanonicalMessage) -> OutboundFile:
        if isinstance(message, PurchaseOrderIssued):
            text, isa = self._interchange("PO", [("850", po850(message))])
            return OutboundFile(f"850-{message.po_number}-{isa:09d}.edi", text.encode())
        if isinstance(message, PurchaseOrderChanged | PurchaseOrderCancelled):
            text, isa = self._interchange("PC", [("860", po860(message))])
            return OutboundFile(f"860-{message.po_number}-{isa:09d}.edi", text.encode())
        raise EdiError(f"the X12 connector does not send {type(message).__name__}")

    def _interchange(self, functional_id: str, sets: list[tuple[str, list[list[str]]]]):
        isa, gs = self.numbers.next("isa"), self.numbers.next("gs")
        numbered = [(st01, f"{self.numbers.next('st'):04d}", body) for st01, body in sets]
        text = render_interchange(
            numbered,
            functional_id=functional_id,
            sender=self.partner.us,
            receiver=self.partner.them,
            isa_control=isa,
            gs_control=gs,
            at=self.clock(),
            usage=self.partner.usage,
        )
        return text, isa

    def _reply(self, body: list[list[str]]) -> OutboundFile:
        text, isa = self._interchange("FA", [("997", body)])
        return OutboundFile(f"997-{isa:09d}.edi", text.encode())

    # --- in ----------------------------------------------------------------------------------

    def parse(self, data: bytes) -> Parsed:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise EdiError(f"not text: byte {exc.start} is not UTF-8") from None
        ic = read(text)
        self._check_parties(ic)
        envelopes: list[Envelope] = []
        replies: list[OutboundFile] = []
        notes: list[str] = []
        for group in ic.groups:
            ctx = {
                "sender": ic.sender,
                "isa13": ic.control,
                "gs01": group.functional_id,
                "gs06": group.control,
            }
            if not group.version.startswith("004010"):
                raise EdiError(
                    f"GS08 version {group.version!r} is not supported (004010)",
                    position=group.header.position,
                    segment="GS",
                    code="2",
                    context=ctx,
                )
            for ts in group.sets:
                try:
                    if ts.id == "997":
                        notes.append(ack997.describe(ts))
                        continue
                    for k, msg in enumerate(self._messages(ts, group.created_at)):
                        envelopes.append(self._envelope(ts, k, msg, group.created_at))
                except EdiError as exc:
                    exc.context = {
                        **ctx,
                        "st01": ts.id,
                        "st02": ts.control,
                        "st_position": str(ts.header.position),
                        **exc.context,
                    }
                    raise
            if group.functional_id != "FA":  # never acknowledge an acknowledgement
                replies.append(self._reply(ack997.accept(group)))
        return Parsed(tuple(envelopes), tuple(replies), tuple(notes))

    def reject(self, data: bytes, error: EdiError) -> OutboundFile | None:
        body = ack997.reject(error)
        return None if body is None else self._reply(body)

    def _check_parties(self, ic: Interchange) -> None:
        them, us = self.partner.them, self.partner.us
        if (ic.sender_qualifier, ic.sender) != (them.qualifier, them.id):
            raise EdiError(
                f"sent by {ic.sender_qualifier}/{ic.sender}, expected {them.qualifier}/{them.id}",
                position=1,
                segment="ISA",
            )
        if (ic.receiver_qualifier, ic.receiver) != (us.qualifier, us.id):
            raise EdiError(
                f"addressed to {ic.receiver_qualifier}/{ic.receiver}, not to us "
                f"({us.qualifier}/{us.id})",
                position=1,
                segment="ISA",
            )

    def _messages(self, ts: TransactionSet, at: datetime) -> Iterator[Any]:
        kw: dict[str, Any] = {
            "supplier": self.partner.supplier,
            "at": at,
            "doc_id": f"{ts.id}-{ts.control}",
        }
        if ts.id == "855":
            return inbound.ack855(ts.segments, **kw)
        if ts.id == "856":
            return inbound.asn856(ts.segments, **kw)
        if ts.id == "810":
            return inbound.invoice810(ts.segments, currency=self.partner.currency, **kw)
        if ts.id == "846":
            return inbound.inventory846(ts.segments, **kw)
        raise EdiError(
            f"transaction set {ts.id} is not one this connector reads (855, 856, 810, 846, 997)",
            position=ts.header.position,
            segment="ST",
            code="1",
        )

    def _envelope(self, ts: TransactionSet, k: int, msg: Any, at: datetime) -> Envelope:
        content = "\n".join("*".join((s.tag, *s.elements)) for s in ts.segments)
        return envelope(
            source=self.source, doc_type=ts.id, content=content, index=k, data=msg, at=at
        )
