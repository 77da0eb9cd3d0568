"""PO lines: acknowledgements change what is expected, receipts fill lines, short and over
deliveries stay visible."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.purchasing.receiving import (
    LineStatus,
    PoLine,
    acknowledge,
    close,
    has_open_line,
    inbound,
    new_lines,
    receive,
)
from schemas.purchasing import (
    AcknowledgedLine,
    AckStatus,
    LineAckStatus,
    PurchaseOrderAcknowledged,
)

NOW = datetime(2026, 11, 23, tzinfo=UTC)
LINES = new_lines([(1, "TEE-RED-M", 120), (2, "TEE-BLU-M", 48)])


def ack(
    status: AckStatus, *lines: tuple[int, str, LineAckStatus, int]
) -> PurchaseOrderAcknowledged:
    return PurchaseOrderAcknowledged(
        po_number="PO-1",
        supplier="s",
        acknowledgement_id="A-1",
        acknowledged_at=NOW,
        status=status,
        lines=tuple(
            AcknowledgedLine(line_number=n, sku=sku, status=st_, quantity=q)
            for n, sku, st_, q in lines
        ),
    )


def test_acknowledged_changes_and_rejections_change_inbound() -> None:
    lines = acknowledge(
        LINES,
        ack(
            AckStatus.ACCEPTED_WITH_CHANGES,
            (1, "TEE-RED-M", LineAckStatus.CHANGED, 96),
            (2, "TEE-BLU-M", LineAckStatus.REJECTED, 0),
        ),
    )
    assert inbound(lines, "TEE-RED-M") == 96 and inbound(lines, "TEE-BLU-M") == 0
    assert lines[1].status is LineStatus.REJECTED
    assert not has_open_line(lines, "TEE-BLU-M")  # the policy may order it elsewhere now


def test_an_answer_numbered_by_the_supplier_goes_to_the_line_of_its_sku() -> None:
    """The supplier numbers its answers itself: its line 1 refuses TEE-BLU-M, the PO's line 2,
    and its line 2 cuts TEE-RED-M, the PO's line 1. Each answer changes its SKU's line."""
    lines = acknowledge(
        LINES,
        ack(
            AckStatus.ACCEPTED_WITH_CHANGES,
            (1, "TEE-BLU-M", LineAckStatus.REJECTED, 0),
            (2, "TEE-RED-M", LineAckStatus.CHANGED, 96),
        ),
    )
    assert inbound(lines, "TEE-RED-M") == 96 and inbound(lines, "TEE-BLU-M") == 0
    assert [line.status for line in lines] == [LineStatus.OPEN, LineStatus.REJECTED]


def test_a_line_refused_and_then_confirmed_by_a_revision_is_expected_again() -> None:
    refused = acknowledge(
        LINES, ack(AckStatus.ACCEPTED_WITH_CHANGES, (2, "TEE-BLU-M", LineAckStatus.REJECTED, 0))
    )
    assert refused[1].status is LineStatus.REJECTED and inbound(refused, "TEE-BLU-M") == 0
    revised = acknowledge(
        refused, ack(AckStatus.ACCEPTED_WITH_CHANGES, (2, "TEE-BLU-M", LineAckStatus.CHANGED, 40))
    )
    assert revised[1].status is LineStatus.OPEN and inbound(revised, "TEE-BLU-M") == 40
    assert has_open_line(revised, "TEE-BLU-M")


def test_a_revision_accepting_the_order_whole_restores_refused_and_cut_lines() -> None:
    """A revision that accepts the order as ordered, with no line detail (an 855 AK, an ORDRSP
    29 without lines), undoes the first answer's refusal and cut."""
    first = acknowledge(
        LINES,
        ack(
            AckStatus.ACCEPTED_WITH_CHANGES,
            (1, "TEE-RED-M", LineAckStatus.CHANGED, 96),
            (2, "TEE-BLU-M", LineAckStatus.REJECTED, 0),
        ),
    )
    revised = acknowledge(first, ack(AckStatus.ACCEPTED))
    assert (inbound(revised, "TEE-RED-M"), inbound(revised, "TEE-BLU-M")) == (120, 48)
    assert [line.status for line in revised] == [LineStatus.OPEN, LineStatus.OPEN]


def test_a_line_cut_and_received_to_the_cut_is_expected_again_when_restored() -> None:
    """Cut from 120 to 60, the 60 arrive and the line closes; a revision accepting the order
    whole expects the other 60. A line a person closed short stays closed."""
    cut = acknowledge(
        LINES, ack(AckStatus.ACCEPTED_WITH_CHANGES, (1, "TEE-RED-M", LineAckStatus.CHANGED, 60))
    )
    got = receive(cut, "TEE-RED-M", 60).lines
    assert got[0].status is LineStatus.RECEIVED and inbound(got, "TEE-RED-M") == 0
    restored = acknowledge(got, ack(AckStatus.ACCEPTED))
    assert restored[0].status is LineStatus.PARTIAL and inbound(restored, "TEE-RED-M") == 60
    short = close(receive(LINES, "TEE-RED-M", 60).lines, 1)
    assert acknowledge(short, ack(AckStatus.ACCEPTED))[0].closed


def test_a_rejected_order_closes_every_line() -> None:
    lines = acknowledge(LINES, ack(AckStatus.REJECTED))
    assert all(line.status is LineStatus.REJECTED for line in lines)
    assert inbound(lines, "TEE-RED-M") == 0


def test_partial_delivery_keeps_the_rest_inbound_and_closing_records_the_shortfall() -> None:
    r = receive(LINES, "TEE-RED-M", 60)
    line = r.lines[0]
    assert (line.status, line.open_quantity, r.applied, r.over_delivered) == (
        LineStatus.PARTIAL,
        60,
        ((1, 60),),
        0,
    )
    assert has_open_line(r.lines, "TEE-RED-M")
    closed = close(r.lines, 1)[0]
    assert (closed.status, closed.under_delivered, closed.open_quantity) == (
        LineStatus.CLOSED_SHORT,
        60,
        0,
    )


def test_over_delivery_is_received_and_recorded() -> None:
    r = receive(LINES, "TEE-BLU-M", 50)
    assert r.over_delivered == 2 and r.lines[1].over_delivered == 2
    assert r.lines[1].status is LineStatus.RECEIVED and inbound(r.lines, "TEE-BLU-M") == 0


def test_units_of_a_sku_not_on_the_order_are_all_over_delivery() -> None:
    r = receive(LINES, "MUG-WHT", 5)
    assert r.over_delivered == 5 and r.applied == () and r.lines == LINES


def test_a_receipt_fills_the_lowest_line_first() -> None:
    lines = new_lines([(2, "A", 10), (1, "A", 5)])
    r = receive(lines, "A", 8)
    assert r.applied == ((1, 5), (2, 3))


def test_a_receipt_of_nothing_is_refused() -> None:
    with pytest.raises(ValueError):
        receive(LINES, "TEE-RED-M", 0)


line_sets = st.lists(st.integers(1, 50), min_size=1, max_size=4).map(
    lambda qs: new_lines([(n, "A", q) for n, q in enumerate(qs, start=1)])
)


@given(line_sets, st.lists(st.integers(1, 40), min_size=1, max_size=6))
def test_receiving_in_parts_ends_where_receiving_at_once_does(
    lines: tuple[PoLine, ...], parts: list[int]
) -> None:
    split = lines
    over = 0
    for q in parts:
        r = receive(split, "A", q)
        split, over = r.lines, over + r.over_delivered
    whole = receive(lines, "A", sum(parts))
    assert split == whole.lines and over == whole.over_delivered
    total_ordered = sum(li.ordered for li in lines)
    assert inbound(split, "A") == max(total_ordered - sum(parts), 0)
    assert sum(li.received for li in split) == sum(parts)  # nothing received goes missing
