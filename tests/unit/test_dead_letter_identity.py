"""The core stores its own dead letters and publishes them; the recorder reads the published
letter back. Both must give one identity, whatever time the record has, or one failure would
be two letters."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from hub.core.batch import DeadLetterInfo, dead_letter_outbox_row
from hub.core.records import Record
from hub.deadletters import letter_row
from hub.store.db import payload_digest
from schemas import topics


@pytest.mark.parametrize("timestamp", [None, -2, -1, 0, 5, 1_767_225_600_000, 2**63])
def test_the_core_and_the_recorder_give_a_letter_one_identity(timestamp):
    consumed = SimpleNamespace(
        topic=topics.ORDERS,
        partition=3,
        offset=41,
        key=b"s:1",
        value=b"not json",
        headers=[("ce_type", b"hub.order.placed.v1")],
        timestamp=timestamp,
    )
    rec = Record.from_consumer_record(consumed)
    out = dead_letter_outbox_row(DeadLetterInfo(rec, "bad"), "hub-core")
    published = SimpleNamespace(
        topic=topics.DLQ,
        partition=0,
        offset=7,
        key=out["key"].encode(),
        value=out["payload"],
        headers=[(k, v.encode()) for k, v in out["headers"]],
        timestamp=1_767_225_700_000,  # the letter's own time in the dead-letter topic
    )
    row = letter_row(published)
    # What the core stores (`CoreProcessor._dead_letter`) and what the recorder would store.
    core = ("hub-core", rec.topic, rec.partition, rec.offset, payload_digest(rec.value))
    recorded = (row["consumer"], row["topic"], row["partition"], row["offset"], row["digest"])
    assert recorded == core and row["timestamp_ms"] == rec.timestamp_ms
    in_range = isinstance(timestamp, int) and 0 <= timestamp < 2**63
    assert rec.timestamp_ms == (timestamp if in_range else -1)
