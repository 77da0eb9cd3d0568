"""X12 envelopes: read an interchange into groups and transaction sets, and write one.

The reader checks what the standard fixes and partners get wrong: the 106-character ISA, ISA13 =
IEA02, GS06 = GE02, ST02 = SE02, SE01 = segments from ST to SE, GE01 = transaction sets, IEA01 =
groups. Every failure is an `EdiError` with the segment position (ISA = 1) and, in `code`, the
997 error code for it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from connectors.edi_common.errors import EdiError

ISA_LENGTH = 106
# ISA01..ISA16 widths (X12.5 fixed-length interchange header)
ISA_WIDTHS = (2, 10, 2, 10, 2, 15, 2, 15, 6, 4, 1, 5, 9, 1, 1, 1)
VERSION = "004010"
_TAG = re.compile(r"^[A-Z][A-Z0-9]{1,2}$")


@dataclass(frozen=True, slots=True)
class Segment:
    tag: str
    elements: tuple[str, ...]
    position: int  # 1-based within the interchange

    def get(self, i: int) -> str:
        """Element i (1-based, as in BEG03); '' when absent."""
        return self.elements[i - 1] if 0 < i <= len(self.elements) else ""

    def error(self, reason: str, code: str = "8") -> EdiError:
        return EdiError(reason, position=self.position, segment=self.tag, code=code)


@dataclass(slots=True)
class TransactionSet:
    id: str
    control: str
    header: Segment
    segments: list[Segment] = field(default_factory=list)  # between ST and SE


@dataclass(slots=True)
class Group:
    functional_id: str
    sender: str
    receiver: str
    control: str
    version: str
    created_at: datetime
    header: Segment
    sets: list[TransactionSet] = field(default_factory=list)


@dataclass(slots=True)
class Interchange:
    sender_qualifier: str
    sender: str
    receiver_qualifier: str
    receiver: str
    control: str
    usage: str
    element_sep: str
    component_sep: str
    segment_term: str
    groups: list[Group] = field(default_factory=list)


def read(text: str) -> Interchange:
    text = text.lstrip("\ufeff \r\n\t")
    if not text.startswith("ISA"):
        raise EdiError("not an X12 interchange: it does not start with ISA", position=1)
    if len(text) < ISA_LENGTH:
        raise EdiError("the ISA segment is shorter than 106 characters", position=1, segment="ISA")
    es = text[3]
    fields = text[: ISA_LENGTH - 1].split(es)
    if len(fields) != 17:
        raise EdiError(
            f"the ISA segment has {len(fields) - 1} elements in its 106 characters, expected 16",
            position=1,
            segment="ISA",
        )
    for i, (value, width) in enumerate(zip(fields[1:], ISA_WIDTHS, strict=True), start=1):
        if len(value) != width:
            raise EdiError(
                f"ISA{i:02d} has {len(value)} characters, the fixed length is {width}",
                position=1,
                segment="ISA",
            )
    cs, st = fields[16], text[ISA_LENGTH - 1]
    if len({es, cs, st}) != 3 or st.isalnum() or es.isalnum():
        raise EdiError("the ISA separators are not three distinct delimiters", position=1)
    ic = Interchange(
        sender_qualifier=fields[5],
        sender=fields[6].strip(),
        receiver_qualifier=fields[7],
        receiver=fields[8].strip(),
        control=fields[13],
        usage=fields[15],
        element_sep=es,
        component_sep=cs,
        segment_term=st,
    )
    ctx = {"sender": ic.sender, "sender_qualifier": ic.sender_qualifier, "isa13": ic.control}
    try:
        _read_body(ic, text[ISA_LENGTH:], ctx)
    except EdiError as exc:
        exc.context = {**ctx, **exc.context}
        raise
    return ic


def _read_body(ic: Interchange, body: str, ctx: dict[str, str]) -> None:
    raw = [s.strip("\r\n\t ") for s in body.split(ic.segment_term)]
    segments: list[Segment] = []
    for n, s in enumerate((s for s in raw if s), start=2):
        parts = s.split(ic.element_sep)
        if not _TAG.match(parts[0]):
            raise EdiError(f"{parts[0][:10]!r} is not a segment id", position=n, code="1")
        segments.append(Segment(parts[0], tuple(parts[1:]), n))
    group: Group | None = None
    ts: TransactionSet | None = None
    ended = False
    for seg in segments:
        if ended:
            raise seg.error("segments after IEA", code="2")
        if ts is not None and seg.tag not in ("SE", "ST", "GE", "IEA"):
            ts.segments.append(seg)
            continue
        if seg.tag == "GS":
            if group is not None:
                raise seg.error("GS before the previous group's GE", code="2")
            group = Group(
                functional_id=seg.get(1),
                sender=seg.get(2),
                receiver=seg.get(3),
                control=seg.get(6),
                version=seg.get(8),
                created_at=_datetime(seg, seg.get(4), seg.get(5)),
                header=seg,
            )
            ctx.update(gs01=group.functional_id, gs06=group.control)
            if not group.control.isdigit():
                raise seg.error("GS06 group control number is not numeric", code="7")
        elif seg.tag == "ST":
            if group is None:
                raise seg.error("ST outside a functional group", code="2")
            if ts is not None:
                raise seg.error(f"ST before the SE of transaction set {ts.control}", code="2")
            ts = TransactionSet(seg.get(1), seg.get(2), seg)
            ctx.update(st01=ts.id, st02=ts.control)
            if not ts.id or not ts.control:
                raise seg.error("ST01 and ST02 are required", code="1")
        elif seg.tag == "SE":
            if ts is None:
                raise seg.error("SE without ST", code="2")
            count = len(ts.segments) + 2
            if seg.get(1) != str(count):
                raise EdiError(
                    f"SE01 says {seg.get(1) or 'nothing'} segments, the set has {count}",
                    position=seg.position,
                    segment="SE",
                    code="4",
                )
            if seg.get(2) != ts.control:
                raise EdiError(
                    f"SE02 {seg.get(2)!r} does not match ST02 {ts.control!r}",
                    position=seg.position,
                    segment="SE",
                    code="3",
                )
            assert group is not None
            group.sets.append(ts)
            ts = None
            for k in ("st01", "st02"):
                ctx.pop(k, None)
        elif seg.tag == "GE":
            if group is None or ts is not None:
                raise seg.error("GE without GS, or inside a transaction set (SE missing)", "2")
            if seg.get(1) != str(len(group.sets)):
                raise EdiError(
                    f"GE01 says {seg.get(1)} transaction sets, the group has {len(group.sets)}",
                    position=seg.position,
                    segment="GE",
                    code="5",
                )
            if seg.get(2) != group.control:
                raise EdiError(
                    f"GE02 {seg.get(2)!r} does not match GS06 {group.control!r}",
                    position=seg.position,
                    segment="GE",
                    code="4",
                )
            ic.groups.append(group)
            group = None
        elif seg.tag == "IEA":
            if group is not None or ts is not None:
                raise seg.error("IEA before the GE/SE that closes what is open", "2")
            if seg.get(1) != str(len(ic.groups)):
                raise seg.error(f"IEA01 says {seg.get(1)} groups, found {len(ic.groups)}", "5")
            if seg.get(2) != ic.control:
                raise seg.error(f"IEA02 {seg.get(2)!r} does not match ISA13 {ic.control!r}", "4")
            ended = True
        else:
            raise seg.error(f"{seg.tag} outside a transaction set", code="2")
    if not ended:
        last = segments[-1].position if segments else 1
        raise EdiError(
            "the interchange ends without IEA (truncated file?)", position=last, code="3"
        )


def _datetime(seg: Segment, day: str, hhmm: str) -> datetime:
    try:
        d = datetime.strptime(day, "%Y%m%d")
        if hhmm:
            t = datetime.strptime(hhmm[:4], "%H%M")
            d = d.replace(hour=t.hour, minute=t.minute)
    except ValueError:
        raise seg.error(f"{day!r} {hhmm!r} is not a CCYYMMDD date and HHMM time", "8") from None
    return d.replace(tzinfo=UTC)


def date_of(seg: Segment, i: int, time_i: int | None = None) -> datetime:
    """Element i as a CCYYMMDD date (with HHMM from element time_i), taken as UTC."""
    return _datetime(seg, seg.get(i), seg.get(time_i) if time_i else "")


def decimal_of(seg: Segment, i: int, *, implied: int = 0) -> Decimal:
    """A numeric element: R type (explicit decimal point) or Nn (n implied decimals)."""
    raw = seg.get(i)
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise seg.error(f"{seg.tag}{i:02d} {raw!r} is not a number") from None
    if not value.is_finite():
        raise seg.error(f"{seg.tag}{i:02d} {raw!r} is not a number")
    return value.scaleb(-implied) if implied else value


def units_of(seg: Segment, i: int) -> int:
    value = decimal_of(seg, i)
    if value != value.to_integral_value():
        raise seg.error(f"{seg.tag}{i:02d} {seg.get(i)!r} is not a whole number of units")
    return int(value)


def require(seg: Segment, *indexes: int) -> None:
    for i in indexes:
        if not seg.get(i):
            raise EdiError(
                f"{seg.tag}{i:02d} is required", position=seg.position, segment=seg.tag, code="8"
            )


# --- writing ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Party:
    qualifier: str
    id: str

    def __post_init__(self) -> None:
        if len(self.qualifier) != 2 or not 1 <= len(self.id) <= 15:
            raise ValueError(f"X12 party {self.qualifier}/{self.id}: 2-char qualifier, id ≤ 15")


@dataclass(frozen=True, slots=True)
class Separators:
    element: str = "*"
    component: str = ">"
    segment: str = "~"


def render_segment(elements: list[str], sep: Separators) -> str:
    while len(elements) > 1 and elements[-1] == "":
        elements = elements[:-1]
    for value in elements:
        for ch in (sep.element, sep.component, sep.segment):
            if ch in value:
                raise EdiError(f"value {value!r} contains the delimiter {ch!r}")
    return sep.element.join(elements) + sep.segment + "\n"


def render_interchange(
    sets: list[tuple[str, str, list[list[str]]]],
    *,
    functional_id: str,
    sender: Party,
    receiver: Party,
    isa_control: int,
    gs_control: int,
    at: datetime,
    usage: str = "P",
    sep: Separators = Separators(),
) -> str:
    """One interchange with one functional group; `sets` are (ST01, ST02, body segments)."""
    at = at.astimezone(UTC)
    isa = [
        "ISA",
        "00",
        " " * 10,
        "00",
        " " * 10,
        sender.qualifier,
        sender.id.ljust(15),
        receiver.qualifier,
        receiver.id.ljust(15),
        at.strftime("%y%m%d"),
        at.strftime("%H%M"),
        "U",
        "00401",
        f"{isa_control:09d}",
        "0",
        usage,
        sep.component,
    ]
    out = [sep.element.join(isa) + sep.segment + "\n"]
    out.append(
        render_segment(
            [
                "GS",
                functional_id,
                sender.id,
                receiver.id,
                at.strftime("%Y%m%d"),
                at.strftime("%H%M"),
                str(gs_control),
                "X",
                VERSION,
            ],
            sep,
        )
    )
    for st01, st02, body in sets:
        out.append(render_segment(["ST", st01, st02], sep))
        out.extend(render_segment(s, sep) for s in body)
        out.append(render_segment(["SE", str(len(body) + 2), st02], sep))
    out.append(render_segment(["GE", str(len(sets)), str(gs_control)], sep))
    out.append(render_segment(["IEA", "1", f"{isa_control:09d}"], sep))
    return "".join(out)
