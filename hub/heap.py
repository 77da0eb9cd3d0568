"""The garbage collector and long-lived objects: what a process keeps for good (modules, schemas,
table metadata, a benchmark's prepared data) is taken out of the collector's scans, so a full
collection under load scans only what the work made."""

from __future__ import annotations

import gc


def freeze_heap() -> None:
    """Collect what is garbage now, then freeze everything left (never scanned again)."""
    gc.collect()
    gc.freeze()
