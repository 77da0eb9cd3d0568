"""Two hub processes sharing one exchange folder: numbers stay unique, files are handled once."""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from connectors.edi_common import ControlNumbers, Exchange, Parsed
from connectors.edi_common.errors import EdiError
from connectors.edi_common.exchange import OutboundFile
from schemas.base import CanonicalMessage
from schemas.envelope import Envelope


def _allocate(path: str, n: int) -> list[int]:
    numbers = ControlNumbers(path)
    return [numbers.next("isa") for _ in range(n)]


def test_control_numbers_are_unique_across_processes(tmp_path: Path) -> None:
    path = str(tmp_path / "control-numbers.json")
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=4, mp_context=ctx) as pool:
        results = list(pool.map(_allocate, [path] * 4, [50] * 4))
    issued = [n for chunk in results for n in chunk]
    assert sorted(issued) == list(range(1, 201))
    assert all(chunk == sorted(chunk) for chunk in results)  # monotonic per process


class NullCodec:
    def parse(self, data: bytes) -> Parsed:
        return Parsed(())

    def reject(self, data: bytes, error: EdiError) -> OutboundFile | None:
        return None

    def render(self, message: CanonicalMessage) -> OutboundFile:
        raise EdiError("nothing to send")


async def test_a_second_poller_on_the_same_folder_waits_its_turn(tmp_path: Path) -> None:
    first = Exchange(tmp_path, NullCodec(), settle_seconds=0)
    second = Exchange(tmp_path, NullCodec(), settle_seconds=0)
    (first.inbox / "a.edi").write_text("x")
    started = asyncio.Event()

    async def slow_publish(envelopes: Sequence[Envelope]) -> None:
        started.set()
        await asyncio.sleep(0.05)

    class OneMessage(NullCodec):
        def parse(self, data: bytes) -> Parsed:
            return Parsed((object(),))  # type: ignore[arg-type]

    first.codec = OneMessage()
    task = asyncio.create_task(first.poll(slow_publish))
    await started.wait()
    assert (await second.poll(slow_publish)).processed == []
    assert (await task).processed == ["a.edi"]
    assert (first.processed / "a.edi").exists()
