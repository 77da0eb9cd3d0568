"""Interchange, group and message control numbers that never repeat, across restarts."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

Load = Callable[[], dict[str, int]]
Save = Callable[[dict[str, int]], None]


class ControlNumbers:
    """A monotonic counter per name (`isa`, `gs`, `st`, `unb`, …), each persisted before use.

    Give it a JSON file (kept next to the exchange directory) or your own `load`/`save` pair, e.g.
    a row in the store (its `save` must commit). A number is saved before it is returned, so a
    crash can skip a number but never hand one out twice. With a file, an exclusive lock on
    `PATH.lock` serialises every process sharing it (two hub replicas on one exchange folder). Counters wrap to 1 after `limit` (X12 ISA13 has 9 digits), which
    takes a billion documents.
    """

    def __init__(
        self,
        path: Path | str | None = None,
        *,
        load: Load | None = None,
        save: Save | None = None,
        limit: int = 999_999_999,
    ) -> None:
        self._file_lock: Path | None = None
        if path is not None:
            file = Path(path)
            self._load: Load = lambda: _read_json(file)
            self._save: Save = lambda state: _write_json(file, state)
            self._file_lock = file.with_name(file.name + ".lock")
        elif load is not None and save is not None:
            self._load, self._save = load, save
        else:
            raise ValueError("ControlNumbers needs a file path or both load and save")
        self._limit = limit
        self._lock = threading.Lock()

    def next(self, name: str) -> int:
        with self._lock, exclusive(self._file_lock):
            state = self._load()
            value = state.get(name, 0) + 1
            if value > self._limit:
                value = 1
            state[name] = value
            self._save(state)
            return value


@contextlib.contextmanager
def exclusive(lock_path: Path | None) -> Iterator[None]:
    """An advisory lock across processes (POSIX flock); nothing without a file."""
    if lock_path is None:
        yield
        return
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _read_json(path: Path) -> dict[str, int]:
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(v, int) for v in raw.values()):
        raise ValueError(f"{path}: control number file is corrupt; fix it by hand, never reset it")
    return {str(k): int(v) for k, v in raw.items()}


def _write_json(path: Path, state: dict[str, int]) -> None:
    atomic_write(path, json.dumps(state, sort_keys=True).encode())


def atomic_write(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same directory, fsync, rename: never a half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
