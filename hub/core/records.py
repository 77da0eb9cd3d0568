"""A Kafka record as the core sees it, independent of the client library."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp_ms: int = 0

    @classmethod
    def from_consumer_record(cls, r: object) -> Record:
        return cls(
            topic=r.topic,  # type: ignore[attr-defined]
            partition=r.partition,  # type: ignore[attr-defined]
            offset=r.offset,  # type: ignore[attr-defined]
            key=r.key,  # type: ignore[attr-defined]
            value=r.value,  # type: ignore[attr-defined]
            headers=tuple(r.headers or ()),  # type: ignore[attr-defined]
            timestamp_ms=r.timestamp or 0,  # type: ignore[attr-defined]
        )

    @property
    def origin(self) -> str:
        return f"{self.topic}/{self.partition}@{self.offset}"
