"""What a PO line expects, and what acknowledgements and receipts do to it. Pure.

A line's **open** quantity is what still counts as inbound stock: confirmed − received, never
below zero, and zero once the line is closed. A receipt fills the SKU's open lines in line
order; units beyond every line's quantity are an **over-delivery** (received, on hand, but not
ordered). Closing a line that was not filled records the **under-delivery**.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from schemas.purchasing import (
    AcknowledgedLine,
    AckStatus,
    LineAckStatus,
    PurchaseOrderAcknowledged,
)


class LineStatus(StrEnum):
    OPEN = "open"  # nothing received yet
    PARTIAL = "partial"  # some received, more expected
    RECEIVED = "received"  # everything confirmed has arrived
    CLOSED_SHORT = "closed_short"  # closed with less than confirmed (under-delivery)
    REJECTED = "rejected"  # the supplier refused the line


@dataclass(frozen=True, slots=True)
class PoLine:
    line_number: int
    sku: str
    ordered: int
    confirmed: int  # what the supplier committed to; `ordered` until acknowledged
    received: int = 0
    closed: bool = False

    @property
    def open_quantity(self) -> int:
        """Units still counted as inbound."""
        return 0 if self.closed else max(self.confirmed - self.received, 0)

    @property
    def over_delivered(self) -> int:
        return max(self.received - self.confirmed, 0)

    @property
    def under_delivered(self) -> int:
        return max(self.confirmed - self.received, 0) if self.closed else 0

    @property
    def status(self) -> LineStatus:
        if self.closed and self.confirmed == 0 and self.received == 0:
            return LineStatus.REJECTED
        if self.received >= self.confirmed:
            return LineStatus.RECEIVED
        if self.closed:
            return LineStatus.CLOSED_SHORT
        return LineStatus.PARTIAL if self.received else LineStatus.OPEN


def new_lines(lines: Sequence[tuple[int, str, int]]) -> tuple[PoLine, ...]:
    """Lines of a freshly issued PO from (line number, sku, quantity)."""
    return tuple(PoLine(n, sku, qty, qty) for n, sku, qty in lines)


def inbound(lines: Sequence[PoLine], sku: str) -> int:
    return sum(line.open_quantity for line in lines if line.sku == sku)


def has_open_line(lines: Sequence[PoLine], sku: str) -> bool:
    """What the replenishment policy needs: is a PO line for this SKU still expected?"""
    return any(line.sku == sku and line.open_quantity > 0 for line in lines)


def acknowledge(lines: Sequence[PoLine], ack: PurchaseOrderAcknowledged) -> tuple[PoLine, ...]:
    """Confirmed quantities from the supplier's answer. A rejected line closes with nothing; a
    line the answer does not mention keeps its quantity; a wholly rejected PO closes every line.
    A line an earlier answer rejected and a revised one confirms is open again."""
    answers = answered(lines, ack.lines)
    out = []
    for line in lines:
        a = answers.get(line.line_number)
        if a is None:
            if ack.status is AckStatus.REJECTED:
                line = replace(line, confirmed=0, closed=True)
            elif ack.status is AckStatus.ACCEPTED:
                # Accepted as ordered, line by line or not: a revision of an earlier refusal or
                # cut restores the line.
                line = _confirm(line, line.ordered)
        elif a.status is LineAckStatus.REJECTED:
            line = replace(line, confirmed=0, closed=line.received == 0)
        else:
            line = _confirm(line, a.quantity)
        out.append(line)
    return tuple(out)


def _confirm(line: PoLine, quantity: int) -> PoLine:
    """`quantity` confirmed. A line closed only because the supplier's earlier answer left
    nothing more to come (refused, or cut to what has arrived) is expected again for what the
    new answer confirms beyond its receipts; one a person closed short stays closed."""
    reopen = line.status in (LineStatus.REJECTED, LineStatus.RECEIVED) and quantity > line.received
    return replace(line, confirmed=quantity, closed=line.closed and not reopen)


def answered(
    lines: Sequence[PoLine], answers: Sequence[AcknowledgedLine]
) -> dict[int, AcknowledgedLine]:
    """The supplier's answer to each PO line, by line number: the answer of that number where
    it names the line's SKU, else the first answer left for the SKU (a supplier that numbers
    its answers itself, so that its line 1 is the PO's line 2)."""
    by_number = {a.line_number: a for a in answers}
    out: dict[int, AcknowledgedLine] = {}
    for line in lines:
        a = by_number.get(line.line_number)
        if a is not None and a.sku == line.sku:
            out[line.line_number] = a
    taken = {id(a) for a in out.values()}
    for line in lines:
        if line.line_number in out:
            continue
        a = next((a for a in answers if a.sku == line.sku and id(a) not in taken), None)
        if a is not None:
            out[line.line_number] = a
            taken.add(id(a))
    return out


@dataclass(frozen=True, slots=True)
class Receipt:
    lines: tuple[PoLine, ...]
    applied: tuple[tuple[int, int], ...]  # (line number, units) this receipt put on each line
    over_delivered: int  # units beyond every line of the SKU


def receive(lines: Sequence[PoLine], sku: str, quantity: int) -> Receipt:
    """Put `quantity` received units of `sku` on its open lines, lowest line number first; the
    rest lands on the SKU's last line as an over-delivery (a SKU not on the PO: all of it)."""
    if quantity <= 0:
        raise ValueError(f"a receipt of {quantity} units")
    left = quantity
    out = list(lines)
    applied: list[tuple[int, int]] = []
    candidates = sorted(
        (i for i, line in enumerate(out) if line.sku == sku), key=lambda i: out[i].line_number
    )
    for i in candidates:
        take = min(out[i].open_quantity, left)
        if take:
            out[i] = replace(out[i], received=out[i].received + take)
            applied.append((out[i].line_number, take))
            left -= take
    over = left
    if over and candidates:
        last = candidates[-1]
        out[last] = replace(out[last], received=out[last].received + over)
        applied.append((out[last].line_number, over))
    return Receipt(tuple(out), tuple(applied), over)


def close(lines: Sequence[PoLine], line_number: int) -> tuple[PoLine, ...]:
    """The supplier will send no more on this line (final ASN, agreed short close)."""
    return tuple(replace(li, closed=True) if li.line_number == line_number else li for li in lines)
