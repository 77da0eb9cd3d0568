"""A Kafka record as the core sees it, independent of the client library."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def time_ms(stamp: object) -> int:
    """A record's time in ms since the epoch, as an int or its text; -1 for none, one out of
    range or not a number: part of a dead letter's identity, the same wherever it is read."""
    if isinstance(stamp, str):
        try:
            stamp = int(stamp)
        except ValueError:
            return -1
    return stamp if isinstance(stamp, int) and 0 <= stamp < 2**63 else -1


def record_ms(record: Any) -> int:
    """A consumed record's time (its Kafka timestamp): `time_ms`."""
    return time_ms(getattr(record, "timestamp", None))


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp_ms: int = -1

    @classmethod
    def from_consumer_record(cls, r: object) -> Record:
        return cls(
            topic=r.topic,  # type: ignore[attr-defined]
            partition=r.partition,  # type: ignore[attr-defined]
            offset=r.offset,  # type: ignore[attr-defined]
            key=r.key,  # type: ignore[attr-defined]
            value=r.value,  # type: ignore[attr-defined]
            headers=tuple(r.headers or ()),  # type: ignore[attr-defined]
            timestamp_ms=record_ms(r),
        )

    @property
    def origin(self) -> str:
        return f"{self.topic}/{self.partition}@{self.offset}"
