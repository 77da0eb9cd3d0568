"""EDIFACT (ISO 9735, syntax 3) interchanges: read into messages, and write one.

The reader honours UNA (service string advice) and the release character, and checks the
envelope: UNT01 = segments from UNH to UNT, UNT02 = UNH01, UNZ01 = messages, UNZ02 = UNB05.
Every failure is an `EdiError` with the segment position (UNB = 1, UNA not counted) and, in
`code`, the CONTRL syntax error code (0085) for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from connectors.edi_common.errors import EdiError

# syntax error codes (data element 0085) used in CONTRL
MISSING = "13"
INVALID_VALUE = "12"
NOT_SUPPORTED_HERE = "15"
REFERENCE_MISMATCH = "28"
COUNT_MISMATCH = "29"
UNSPECIFIED = "18"
UNKNOWN_SENDER = "23"


@dataclass(frozen=True, slots=True)
class Delimiters:
    component: str = ":"
    element: str = "+"
    decimal: str = "."
    release: str = "?"
    segment: str = "'"

    def una(self) -> str:
        return f"UNA{self.component}{self.element}{self.decimal}{self.release} {self.segment}"


@dataclass(frozen=True, slots=True)
class Segment:
    tag: str
    elements: tuple[tuple[str, ...], ...]
    position: int  # within the interchange, UNB = 1
    decimal: str = "."

    def get(self, i: int, c: int = 1) -> str:
        """Element i, component c (both 1-based, as in the directory: C507.2 = get(1, 2))."""
        if not 0 < i <= len(self.elements):
            return ""
        comps = self.elements[i - 1]
        return comps[c - 1] if 0 < c <= len(comps) else ""

    def error(self, reason: str, code: str = INVALID_VALUE) -> EdiError:
        return EdiError(reason, position=self.position, segment=self.tag, code=code)

    def number(self, i: int, c: int = 1) -> Decimal:
        raw = self.get(i, c)
        try:
            value = Decimal(raw.replace(self.decimal, ".") if self.decimal != "." else raw)
        except InvalidOperation:
            raise self.error(f"{self.tag} element {i}.{c} {raw!r} is not a number") from None
        if not value.is_finite():
            raise self.error(f"{self.tag} element {i}.{c} {raw!r} is not a number")
        return value

    def units(self, i: int, c: int = 1) -> int:
        value = self.number(i, c)
        if value != value.to_integral_value():
            raise self.error(f"{self.tag} {self.get(i, c)!r} is not a whole number of units")
        return int(value)

    def date(self, i: int = 1) -> datetime:
        """A C507 date/time/period (qualifier:value:format) as UTC."""
        value, fmt = self.get(i, 2), self.get(i, 3) or "102"
        patterns = {"102": "%Y%m%d", "203": "%Y%m%d%H%M", "204": "%Y%m%d%H%M%S"}
        if fmt not in patterns:
            raise self.error(f"DTM format {fmt!r} is not supported (102, 203, 204)")
        try:
            return datetime.strptime(value, patterns[fmt]).replace(tzinfo=UTC)
        except ValueError:
            raise self.error(f"{value!r} is not a date in format {fmt}") from None


@dataclass(slots=True)
class Message:
    reference: str
    type: str  # ORDRSP, DESADV, …
    version: str  # D:96A
    header: Segment
    segments: list[Segment] = field(default_factory=list)  # between UNH and UNT


@dataclass(slots=True)
class Interchange:
    syntax: str
    sender: str
    sender_qualifier: str
    recipient: str
    recipient_qualifier: str
    prepared_at: datetime
    control: str
    delimiters: Delimiters
    messages: list[Message] = field(default_factory=list)


def tokenize(text: str, d: Delimiters) -> list[list[list[str]]]:
    """Segments → elements → components, with release characters resolved."""
    segments: list[list[list[str]]] = []
    elements: list[list[str]] = []
    comps: list[str] = []
    buf: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == d.release:
            if i + 1 >= n:
                raise EdiError("the file ends with a release character")
            buf.append(text[i + 1])
            i += 2
            continue
        if ch == d.component:
            comps.append("".join(buf))
            buf = []
        elif ch == d.element:
            comps.append("".join(buf))
            elements.append(comps)
            comps, buf = [], []
        elif ch == d.segment:
            comps.append("".join(buf))
            elements.append(comps)
            segments.append(elements)
            elements, comps, buf = [], [], []
        elif ch in "\r\n" and not elements and not comps and not buf:
            pass  # line breaks between segments
        else:
            buf.append(ch)
        i += 1
    if "".join(buf).strip() or comps or elements:
        raise EdiError(
            "the file ends inside a segment (truncated?)",
            position=len(segments) + 1,
            code=MISSING,
        )
    return segments


def read(text: str) -> Interchange:
    text = text.lstrip("\ufeff \r\n\t")
    d = Delimiters()
    if text.startswith("UNA"):
        if len(text) < 9:
            raise EdiError("the UNA service string advice is shorter than 9 characters")
        d = Delimiters(text[3], text[4], text[5], text[6], text[8])
        text = text[9:]
    if not text.lstrip("\r\n").startswith("UNB"):
        raise EdiError("not an EDIFACT interchange: it does not start with UNA or UNB", position=1)
    raw = tokenize(text, d)
    segs = [
        Segment(s[0][0].strip(), tuple(tuple(c) for c in s[1:]), n, d.decimal)
        for n, s in enumerate(raw, start=1)
    ]
    unb = segs[0]
    ic = Interchange(
        syntax=unb.get(1, 1),
        sender=unb.get(2, 1),
        sender_qualifier=unb.get(2, 2),
        recipient=unb.get(3, 1),
        recipient_qualifier=unb.get(3, 2),
        prepared_at=_unb_time(unb),
        control=unb.get(5),
        delimiters=d,
    )
    ctx = {"sender": ic.sender, "unb05": ic.control}
    for i in (1, 2, 3, 5):
        if not unb.get(i):
            raise EdiError(f"UNB element {i} is required", position=1, segment="UNB", code=MISSING)
    try:
        _read_messages(ic, segs[1:], ctx)
    except EdiError as exc:
        exc.context = {**ctx, **exc.context}
        raise
    return ic


def _unb_time(unb: Segment) -> datetime:
    day, hhmm = unb.get(4, 1), unb.get(4, 2)
    try:
        fmt = "%y%m%d%H%M" if len(day) == 6 else "%Y%m%d%H%M"
        return datetime.strptime(day + hhmm, fmt).replace(tzinfo=UTC)
    except ValueError:
        raise unb.error(f"UNB date/time {day!r}:{hhmm!r} is not YYMMDD:HHMM") from None


def _read_messages(ic: Interchange, segs: list[Segment], ctx: dict[str, str]) -> None:
    msg: Message | None = None
    ended = False
    for seg in segs:
        if ended:
            raise seg.error("segments after UNZ", NOT_SUPPORTED_HERE)
        if seg.tag == "UNH":
            if msg is not None:
                raise seg.error(f"UNH before the UNT of message {msg.reference}", MISSING)
            msg = Message(
                reference=seg.get(1),
                type=seg.get(2, 1),
                version=f"{seg.get(2, 2)}:{seg.get(2, 3)}",
                header=seg,
            )
            ctx.update(
                unh01=msg.reference,
                unh02=":".join(seg.elements[1][:4]) if len(seg.elements) > 1 else "",
                unh_position=str(seg.position),
            )
            if not msg.reference or not msg.type:
                raise seg.error("UNH needs a message reference and a message type", MISSING)
        elif seg.tag == "UNT":
            if msg is None:
                raise seg.error("UNT without UNH", NOT_SUPPORTED_HERE)
            count = len(msg.segments) + 2
            if seg.get(1) != str(count):
                raise seg.error(
                    f"UNT01 says {seg.get(1) or 'nothing'} segments, the message has {count}",
                    COUNT_MISMATCH,
                )
            if seg.get(2) != msg.reference:
                raise seg.error(
                    f"UNT02 {seg.get(2)!r} does not match UNH01 {msg.reference!r}",
                    REFERENCE_MISMATCH,
                )
            ic.messages.append(msg)
            msg = None
            for k in ("unh01", "unh02", "unh_position"):
                ctx.pop(k, None)
        elif seg.tag == "UNZ":
            if msg is not None:
                raise seg.error(f"UNZ before the UNT of message {msg.reference}", MISSING)
            if seg.get(1) != str(len(ic.messages)):
                raise seg.error(
                    f"UNZ01 says {seg.get(1)} messages, the interchange has {len(ic.messages)}",
                    COUNT_MISMATCH,
                )
            if seg.get(2) != ic.control:
                raise seg.error(
                    f"UNZ02 {seg.get(2)!r} does not match UNB05 {ic.control!r}",
                    REFERENCE_MISMATCH,
                )
            ended = True
        elif msg is None:
            raise seg.error(f"{seg.tag} outside a message", NOT_SUPPORTED_HERE)
        else:
            msg.segments.append(seg)
    if not ended:
        last = segs[-1].position if segs else 1
        raise EdiError(
            "the interchange ends without UNZ (truncated file?)", position=last, code=MISSING
        )


# --- writing ---------------------------------------------------------------------------------

Element = str | list[str]


def escape(value: str, d: Delimiters) -> str:
    for ch in (d.release, d.component, d.element, d.segment):
        value = value.replace(ch, d.release + ch)
    return value


def render_segment(tag: str, elements: list[Element], d: Delimiters) -> str:
    parts = [tag]
    for el in elements:
        comps = [el] if isinstance(el, str) else list(el)
        while len(comps) > 1 and comps[-1] == "":
            comps.pop()
        parts.append(d.component.join(escape(c, d) for c in comps))
    while len(parts) > 1 and parts[-1] == "":
        parts.pop()
    return d.element.join(parts) + d.segment + "\n"


@dataclass(frozen=True, slots=True)
class Party:
    id: str
    qualifier: str = "ZZ"  # 0007: ZZ mutually defined, 14 EAN, 1 DUNS


def render_interchange(
    messages: list[tuple[str, list[str], list[tuple[str, list[Element]]]]],
    *,
    sender: Party,
    recipient: Party,
    control: str,
    at: datetime,
    d: Delimiters = Delimiters(),
) -> str:
    """`messages` are (UNH01 reference, UNH02 identifier, body segments); the text is to be
    encoded as the ISO 8859-1 its UNB declares (`latin_1`)."""
    at = at.astimezone(UTC)
    out = [d.una() + "\n"]
    out.append(
        render_segment(
            "UNB",
            [
                ["UNOC", "3"],
                [sender.id, sender.qualifier],
                [recipient.id, recipient.qualifier],
                [at.strftime("%y%m%d"), at.strftime("%H%M")],
                control,
            ],
            d,
        )
    )
    for reference, identifier, body in messages:
        out.append(render_segment("UNH", [reference, identifier], d))
        out.extend(render_segment(tag, els, d) for tag, els in body)
        out.append(render_segment("UNT", [str(len(body) + 2), reference], d))
    out.append(render_segment("UNZ", [str(len(messages)), control], d))
    return "".join(out)


# UNB's syntax identifier → the encoding of the interchange's bytes (ISO 9735, 0001).
CHARSETS = {
    "UNOA": "ascii",
    "UNOB": "ascii",
    "UNOC": "latin-1",
    "UNOD": "iso8859-2",
    "UNOE": "iso8859-5",
    "UNOF": "iso8859-7",
    "UNOG": "iso8859-3",
    "UNOH": "iso8859-4",
    "UNOI": "iso8859-6",
    "UNOJ": "iso8859-8",
    "UNOK": "iso8859-9",
    "UNOW": "utf-8",
    "UNOY": "utf-8",
}


def declared_syntax(data: bytes) -> str | None:
    """The syntax identifier UNB declares (UNOC…), read from the bytes before decoding them:
    the service characters and the identifier are ASCII in every one of these encodings."""
    head = data[:512].decode("latin-1").lstrip("\ufeff\u00ef\u00bb\u00bf \t\r\n")
    component, element, terminator = ":", "+", "'"
    if head.startswith("UNA") and len(head) >= 9:
        component, element, terminator = head[3], head[4], head[8]
        head = head[9:]
    at = head.find("UNB" + element)
    if at < 0:
        return None
    start = end = at + 4
    while end < len(head) and head[end] not in (component, element, terminator):
        end += 1
    return head[start:end] or None


def decoded(data: bytes) -> str:
    """An interchange's text. UTF-8 when its bytes are UTF-8 (what UNOW and UNOY declare, and
    what many write under UNOC all the same; a Latin-1 text is almost never valid UTF-8 once it
    holds a letter beyond ASCII), else the single-byte set its UNB declares, Latin-1 where it
    declares none of them (UNOA and UNOB allow ASCII alone, but a stray byte is no reason to
    refuse a supplier's invoice)."""
    syntax = declared_syntax(data) or ""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if CHARSETS.get(syntax) == "utf-8":
            raise EdiError(
                f"not text: byte {exc.start} is not UTF-8, which {syntax} declares"
            ) from None
    charset = CHARSETS.get(syntax, "latin-1")  # (a declared UTF-8 raised above)
    return data.decode("latin-1" if charset == "ascii" else charset)


def latin_1(text: str) -> bytes:
    """Our interchange as the ISO 8859-1 its UNB declares (UNOC, which every partner reads): a
    character it has not (a SKU with € or Ł) is an error naming the segment, not a garbled
    value at the supplier."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError as exc:
        segment = text[: exc.start].count("\n")  # a segment a line, after UNA's: UNB is 1
        raise EdiError(
            f"{text[exc.start]!r} in segment {segment} has no ISO 8859-1 (UNOC) code: give the item a"
            " supplier SKU or a name without it"
        ) from None
