"""Test helpers: supplier X12 documents built independently of the connector's writer, and the
badx12 envelope parser (which needs `collections.Iterable`, gone since Python 3.10)."""

from __future__ import annotations

import collections
import collections.abc
from typing import Any

if not hasattr(collections, "Iterable"):
    collections.Iterable = collections.abc.Iterable  # type: ignore[attr-defined]

from badx12 import Parser as BadX12Parser


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
