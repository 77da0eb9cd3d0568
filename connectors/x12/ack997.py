"""997 functional acknowledgements: ours for partner documents, theirs for our 850s."""

from __future__ import annotations

import re

from connectors.edi_common.errors import EdiError
from connectors.x12.syntax import Group, Segment, TransactionSet, require


def accept(group: Group) -> list[list[str]]:
    """Every transaction set of the group accepted."""
    body = [["AK1", group.functional_id, group.control]]
    for ts in group.sets:
        body += [["AK2", ts.id, ts.control], ["AK5", "A"]]
    n = str(len(group.sets))
    body.append(["AK9", "A", n, n, n])
    return body


def _echo(value: str | None, size: int = 9) -> str:
    """A partner's identifier echoed back: only what is safe in any X12 element (a malformed
    file may carry delimiters or garbage where the control number should be)."""
    return re.sub(r"[^A-Za-z0-9]", "", value or "")[:size]


def reject(error: EdiError) -> list[list[str]] | None:
    """A rejection naming the group, the set and the segment in error, as far as they are known.
    None when not even the group is known (an ISA-level error: nothing to address)."""
    ctx = {k: _echo(v) for k, v in error.context.items()}
    if not ctx.get("gs01") or not ctx.get("gs06"):
        return None
    body = [["AK1", ctx["gs01"], ctx["gs06"]]]
    if error.segment in ("GE", "IEA") or not ctx.get("st01"):
        # group-level: AK905 4 = control numbers differ, 5 = set count differs, 3 = no trailer
        code = error.code if error.code in ("3", "4", "5") else "3"
        body.append(["AK9", "R", "0", "0", "0", code])
        return body
    body.append(["AK2", ctx["st01"], ctx.get("st02") or "0"])
    if error.segment == "SE":
        ak5 = "4" if error.code == "4" else "3"  # segment count / control number mismatch
    else:
        ak5 = "5"  # one or more segments in error
        if error.position is not None and ctx.get("st_position"):
            in_set = error.position - int(ctx["st_position"]) + 1
            ak304 = error.code if error.code in ("1", "2", "3", "8") else "8"
            body.append(["AK3", _echo(error.segment, 3), str(in_set), "", ak304])
    body += [["AK5", "R", ak5], ["AK9", "R", "1", "1", "0"]]
    return body


def describe(ts: TransactionSet) -> str:
    """A partner's 997, in words, for the log: which of our groups it accepted or rejected."""
    ak1: Segment | None = None
    ak9: Segment | None = None
    for seg in ts.segments:
        if seg.tag == "AK1":
            ak1 = seg
        elif seg.tag == "AK9":
            ak9 = seg
    if ak1 is None or ak9 is None:
        raise EdiError(
            "a 997 needs AK1 and AK9", position=ts.header.position, segment="AK1", code="3"
        )
    require(ak1, 1, 2)
    require(ak9, 1)
    words = {"A": "accepted", "E": "accepted with errors", "P": "partially accepted"}
    status = words.get(ak9.get(1), "rejected")
    return f"997: group {ak1.get(1)} {ak1.get(2)} {status} by the partner"
