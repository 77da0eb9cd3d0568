"""CONTRL (syntax and service report, D:3) rejecting a partner's interchange or message."""

from __future__ import annotations

from connectors.edi_common.errors import EdiError
from connectors.edifact.syntax import UNSPECIFIED, Element

CONTRL = ["CONTRL", "D", "3", "UN"]
REJECTED = "4"  # 0083: this level and all lower levels rejected


def rejection(
    error: EdiError, *, sender: list[str], recipient: list[str]
) -> list[tuple[str, list[Element]]] | None:
    """UCI (interchange) and, when the error is inside a message, UCM and UCS naming it.
    `sender`/`recipient` are the rejected interchange's parties. None without a UNB reference."""
    ctx = error.context
    if not ctx.get("unb05"):
        return None
    code = error.code or UNSPECIFIED
    if not ctx.get("unh01"):
        tag = error.segment if error.segment in ("UNB", "UNZ", "UNH", "UNT") else ""
        return [("UCI", [ctx["unb05"], sender, recipient, REJECTED, code, tag])]
    body: list[tuple[str, list[Element]]] = [
        ("UCI", [ctx["unb05"], sender, recipient, REJECTED]),
    ]
    ucm: list[Element] = [ctx["unh01"], ctx.get("unh02", "").split(":"), REJECTED, code]
    if error.segment in ("UNH", "UNT"):
        ucm.append(error.segment)
    body.append(("UCM", ucm))
    if error.position is not None and error.segment not in ("UNH", "UNT"):
        in_message = error.position - int(ctx.get("unh_position", "0")) + 1
        body.append(("UCS", [str(in_message), code]))
    return body
