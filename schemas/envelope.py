"""CloudEvents 1.0 Kafka protocol binding, binary mode: attributes in `ce_*` headers, JSON body."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import ValidationError

from schemas.base import CanonicalMessage, now_utc
from schemas.registry import MESSAGE_TYPES

SPECVERSION = "1.0"
CORRELATION_HEADER = "ce_correlationid"
# On a stock level: the correlation ids of the orders that changed it, comma-separated, newest last.
CAUSES_HEADER = "ce_causes"
CONTENT_TYPE = "application/json"
_NAMESPACE = uuid.UUID("6b1c3f0e-2d7a-4c59-9a43-0f3e0c1d9b21")
_NAMESPACE_BYTES = _NAMESPACE.bytes
# The RFC 4122 variant bits (10xx) over the hash's nibble at that place, indexed by the nibble.
_VARIANT = "89ab" * 4


class EnvelopeError(ValueError):
    """A record that is not a valid canonical message; `reason` names what is wrong."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def message_id(*parts: str) -> str:
    """A deterministic message id from platform identities (a duplicate maps to the same id).

    The text of `uuid.uuid5(namespace, "\\x1f".join(parts))`, formatted from the SHA-1 digest
    directly: a third of the cost, and every order and stock level takes several.
    """
    h = hashlib.sha1(_NAMESPACE_BYTES + "\x1f".join(parts).encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[int(h[16], 16)]}{h[17:20]}-{h[20:32]}"


def content_id(*parts: str | bytes) -> str:
    """A short stable digest, for ids derived from content rather than names."""
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else p.encode())
        h.update(b"\x1f")
    return h.hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Envelope:
    """A canonical message with its CloudEvents attributes."""

    id: str
    source: str
    data: CanonicalMessage
    time: datetime = field(default_factory=now_utc)
    correlation_id: str | None = None
    causes: tuple[str, ...] = ()

    @property
    def type(self) -> str:
        return self.data.ce_type

    @property
    def topic(self) -> str:
        return self.data.topic

    @property
    def key(self) -> str:
        return self.data.kafka_key()

    def correlated(self, correlation_id: str) -> Envelope:
        """This envelope with `correlation_id`: `dataclasses.replace` without looking up the
        fields on every call (the gateway does this for every message it receives)."""
        return Envelope(self.id, self.source, self.data, self.time, correlation_id, self.causes)

    def header_texts(self) -> list[tuple[str, str]]:
        """The headers as text (the outbox stores them so)."""
        h = [
            ("ce_specversion", SPECVERSION),
            ("ce_id", self.id),
            ("ce_type", self.type),
            ("ce_source", self.source),
            ("ce_time", _time_text(self.time)),
            ("content-type", CONTENT_TYPE),
        ]
        if self.correlation_id:
            h.append((CORRELATION_HEADER, self.correlation_id))
        if self.causes:
            h.append((CAUSES_HEADER, ",".join(self.causes)))
        return h

    def headers(self) -> list[tuple[str, bytes]]:
        return [(k, v.encode()) for k, v in self.header_texts()]

    def body(self) -> bytes:
        # `model_dump_json().encode()` without the keyword handling and the round trip
        # through str: the same bytes.
        return self.data.__pydantic_serializer__.to_json(self.data)


# The ISO text of the last time formatted, as one (time, text) pair: a batch's messages share
# one time object, and formatting it again for each was a tenth of their headers' cost. Matched
# by identity, not equality (equal times in two zones have different texts); the pair is
# replaced whole, so a thread never sees one time with another's text.
_last_time: list[tuple[datetime | None, str]] = [(None, "")]


def _time_text(time: datetime) -> str:
    last, text = _last_time[0]
    if last is not time:
        text = time.isoformat()
        _last_time[0] = (time, text)
    return text


# A message id is stored with every effect (the inbox, the journal's `cause`): one longer than
# those columns would be taken by SQLite and refused by PostgreSQL. Ids the hub makes are 36.
MAX_ID = 64


def decode(
    headers: list[tuple[str, bytes]] | tuple[tuple[str, bytes], ...], body: bytes | None
) -> Envelope:
    """Parse a Kafka record into an Envelope, or raise EnvelopeError with the reason."""
    h: dict[str, str] = {}
    for k, v in headers or ():
        try:
            h[k] = v.decode() if v is not None else ""
        except UnicodeDecodeError:
            raise EnvelopeError(f"header {k!r} is not UTF-8") from None
    for required in ("ce_specversion", "ce_id", "ce_type", "ce_source"):
        if not h.get(required):
            raise EnvelopeError(f"missing CloudEvents header {required}")
    if len(h["ce_id"]) > MAX_ID or "\x00" in h["ce_id"]:
        raise EnvelopeError(f"ce_id is not an id of at most {MAX_ID} characters without NUL")
    if h["ce_specversion"] != SPECVERSION:
        raise EnvelopeError(f"unsupported ce_specversion {h['ce_specversion']!r}")
    model = MESSAGE_TYPES.get(h["ce_type"])
    if model is None:
        raise EnvelopeError(f"unknown message type or schema version {h['ce_type']!r}")
    if body is None:
        raise EnvelopeError("empty body")
    try:
        data = model.model_validate_json(body)
    except ValidationError as exc:
        raise EnvelopeError(f"invalid {h['ce_type']} body: {_summarise(exc)}") from None
    try:
        time = datetime.fromisoformat(h["ce_time"]) if h.get("ce_time") else now_utc()
    except ValueError:
        raise EnvelopeError(f"ce_time {h['ce_time']!r} is not ISO 8601") from None
    if time.tzinfo is None:
        raise EnvelopeError("ce_time has no timezone")
    return Envelope(
        id=h["ce_id"],
        source=h["ce_source"],
        data=data,
        time=time,
        correlation_id=h.get("ce_correlationid"),
    )


def _summarise(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{loc}: {err['msg']}")
    more = exc.error_count() - 3
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")
