"""EDIFACT D.96A for one supplier: ORDERS and ORDCHG out; ORDRSP, DESADV, INVOIC in; CONTRL
rejections."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

from connectors.edi_common.canonical import envelope
from connectors.edi_common.control import ControlNumbers
from connectors.edi_common.errors import EdiError
from connectors.edi_common.exchange import OutboundFile, Parsed
from connectors.edifact import inbound
from connectors.edifact.contrl import CONTRL, rejection
from connectors.edifact.outbound import ORDCHG, ORDERS, ordchg, orders
from connectors.edifact.syntax import (
    NOT_SUPPORTED_HERE,
    UNKNOWN_SENDER,
    Element,
    Interchange,
    Message,
    Party,
    decoded,
    latin_1,
    read,
    render_interchange,
)
from schemas.base import CanonicalMessage, now_utc
from schemas.envelope import Envelope
from schemas.purchasing import (
    PurchaseOrderCancelled,
    PurchaseOrderChanged,
    PurchaseOrderIssued,
)


@dataclass(frozen=True, slots=True)
class EdifactPartner:
    supplier: str  # the supplier account in the hub config
    us: Party
    them: Party
    currency: str = "EUR"  # when an INVOIC has no CUX


class EdifactCodec:
    def __init__(
        self,
        partner: EdifactPartner,
        numbers: ControlNumbers,
        *,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        self.partner = partner
        self.numbers = numbers
        self.clock = clock

    @property
    def source(self) -> str:
        return f"edifact/{self.partner.supplier}"

    def render(self, message: CanonicalMessage) -> OutboundFile:
        parties = {"buyer": self.partner.us.id, "supplier": self.partner.them.id}
        if isinstance(message, PurchaseOrderIssued):
            data, ref = self._interchange(ORDERS, orders(message, **parties))
            return OutboundFile(f"ORDERS-{message.po_number}-{ref}.edi", data)
        if isinstance(message, PurchaseOrderChanged | PurchaseOrderCancelled):
            data, ref = self._interchange(ORDCHG, ordchg(message, **parties))
            return OutboundFile(f"ORDCHG-{message.po_number}-{ref}.edi", data)
        raise EdiError(f"the EDIFACT connector does not send {type(message).__name__}")

    def _interchange(
        self, identifier: list[str], body: list[tuple[str, list[Element]]]
    ) -> tuple[bytes, str]:
        """The interchange's bytes, in the ISO 8859-1 its UNB declares (UNOC): written as UTF-8
        under that declaration, a supplier read ÄRMEL as ÃRMEL."""
        ref = str(self.numbers.next("unb"))
        msg_ref = str(self.numbers.next("unh"))
        text = render_interchange(
            [(msg_ref, identifier, body)],
            sender=self.partner.us,
            recipient=self.partner.them,
            control=ref,
            at=self.clock(),
        )
        return latin_1(text), ref

    def parse(self, data: bytes) -> Parsed:
        text = decoded(data)
        ic = read(text)
        self._check_parties(ic)
        envelopes: list[Envelope] = []
        for msg in ic.messages:
            try:
                for k, m in enumerate(self._messages(msg, ic.prepared_at)):
                    content = "\n".join(
                        "+".join([s.tag, *(":".join(e) for e in s.elements)]) for s in msg.segments
                    )
                    envelopes.append(
                        envelope(
                            source=self.source,
                            doc_type=msg.type,
                            content=content,
                            index=k,
                            data=m,
                            at=ic.prepared_at,
                        )
                    )
            except EdiError as exc:
                exc.context = {
                    "sender": ic.sender,
                    "unb05": ic.control,
                    "unh01": msg.reference,
                    "unh02": ":".join(msg.header.elements[1][:4]),
                    "unh_position": str(msg.header.position),
                    **exc.context,
                }
                raise
        return Parsed(tuple(envelopes))

    def reject(self, data: bytes, error: EdiError) -> OutboundFile | None:
        them, us = self.partner.them, self.partner.us
        body = rejection(error, sender=[them.id, them.qualifier], recipient=[us.id, us.qualifier])
        if body is None:
            return None
        data, ref = self._interchange(CONTRL, body)
        return OutboundFile(f"CONTRL-{ref}.edi", data)

    def _check_parties(self, ic: Interchange) -> None:
        them, us = self.partner.them, self.partner.us
        if ic.sender != them.id:
            raise EdiError(
                f"sent by {ic.sender}, expected {them.id}",
                position=1,
                segment="UNB",
                code=UNKNOWN_SENDER,
                context={"unb05": ic.control},
            )
        if ic.recipient != us.id:
            raise EdiError(
                f"addressed to {ic.recipient}, not to us ({us.id})",
                position=1,
                segment="UNB",
                code="24",  # unknown interchange recipient
                context={"unb05": ic.control},
            )

    def _messages(self, msg: Message, at: datetime) -> Iterator[CanonicalMessage]:
        supplier = self.partner.supplier
        if msg.version != "D:96A":
            raise EdiError(
                f"{msg.type} version {msg.version} is not supported (D:96A)",
                position=msg.header.position,
                segment="UNH",
                code="2",
            )
        if msg.type == "ORDRSP":
            return inbound.ordrsp(msg.segments, supplier=supplier, at=at)
        if msg.type == "DESADV":
            return inbound.desadv(msg.segments, supplier=supplier, at=at)
        if msg.type == "INVOIC":
            return inbound.invoic(
                msg.segments, supplier=supplier, at=at, currency=self.partner.currency
            )
        raise EdiError(
            f"message type {msg.type} is not one this connector reads (ORDRSP, DESADV, INVOIC)",
            position=msg.header.position,
            segment="UNH",
            code=NOT_SUPPORTED_HERE,
        )
