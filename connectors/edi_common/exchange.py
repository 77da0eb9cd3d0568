"""The exchange directory: the usual SFTP/AS2 drop, polled.

    inbox/      documents from partners (`*.edi`), picked up oldest first
    processed/  documents whose messages were handed over
    rejected/   malformed documents, each with `NAME.error.txt` saying why
    outbox/     what we send: purchase orders and functional acknowledgements

Nothing is lost: a document leaves the inbox only after `publish` returned for every message in
it. If publishing fails the document stays and is read again on the next poll; message ids are
derived from the document's content and control numbers, so a re-read duplicates nothing
downstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import structlog

from connectors.edi_common.control import atomic_write, exclusive
from connectors.edi_common.errors import EdiError
from schemas.base import CanonicalMessage
from schemas.envelope import Envelope

log = structlog.get_logger(__name__)

Publish = Callable[[Sequence[Envelope]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class OutboundFile:
    name: str
    content: bytes


@dataclass(frozen=True, slots=True)
class Parsed:
    """What one inbound document said."""

    envelopes: tuple[Envelope, ...]
    replies: tuple[OutboundFile, ...] = ()  # acknowledgements to send back
    notes: tuple[str, ...] = ()  # things worth logging (e.g. a partner's 997 for our 850)


class Codec(Protocol):
    """One EDI standard: read partner documents, answer them, write our own."""

    def parse(self, data: bytes) -> Parsed: ...

    def reject(self, data: bytes, error: EdiError) -> OutboundFile | None: ...

    def render(self, message: CanonicalMessage) -> OutboundFile: ...


@dataclass(slots=True)
class PollResult:
    processed: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    published: int = 0
    notes: list[str] = field(default_factory=list)


class Exchange:
    def __init__(
        self,
        root: Path | str,
        codec: Codec,
        *,
        pattern: str = "*.edi",
        settle_seconds: float = 2.0,
    ) -> None:
        """`settle_seconds`: leave files younger than this alone (a partner may still be writing)."""
        self.root = Path(root)
        self.codec = codec
        self.pattern = pattern
        self.settle_seconds = settle_seconds
        for d in (self.inbox, self.processed, self.rejected, self.outbox):
            d.mkdir(parents=True, exist_ok=True)

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def processed(self) -> Path:
        return self.root / "processed"

    @property
    def rejected(self) -> Path:
        return self.root / "rejected"

    @property
    def outbox(self) -> Path:
        return self.root / "outbox"

    def write_outbound(self, message: CanonicalMessage) -> Path:
        """Render a message (a PO) into the outbox for the partner to collect."""
        return self._write(self.codec.render(message))

    def send(self, envelope: Envelope) -> Path | None:
        """Write an outbound message once per message id: a redelivered `PurchaseOrderIssued`
        must not become a second purchase order at the supplier. Returns None for a repeat.

        The rendered document is recorded under `.sent/` before it goes to the outbox, and
        marked done after: a crash in between writes the very same bytes again (same name,
        same control numbers) on the next delivery, which the partner's translator discards as
        a duplicate interchange; control numbers are never spent twice. An exclusive lock on
        `.sent/.lock` serialises replicas sharing the folder.
        """
        sent = self.root / ".sent"
        marker = sent / _safe(envelope.id)
        pending = marker.with_name(marker.name + ".pending")
        with exclusive(sent / ".lock"):
            if marker.exists():
                log.info("edi.already_sent", message_id=envelope.id)
                return None
            try:
                name, content = _read_pending(pending)
            except FileNotFoundError:
                out = self.codec.render(envelope.data)
                name, content = out.name, out.content
                atomic_write(pending, name.encode() + b"\n" + content)
            path = self.outbox / name
            atomic_write(path, content)
            atomic_write(marker, name.encode())
            pending.unlink(missing_ok=True)
            return path

    def was_sent(self, message_id: str) -> bool:
        return (self.root / ".sent" / _safe(message_id)).exists()

    def pending(self) -> list[Path]:
        """Settled inbox files, oldest first."""
        cutoff = time.time() - self.settle_seconds
        ready: list[tuple[float, str, Path]] = []
        for p in self.inbox.glob(self.pattern):
            try:
                st = p.stat()
            except FileNotFoundError:
                continue
            if p.is_file() and st.st_mtime <= cutoff:
                ready.append((st.st_mtime, p.name, p))
        return [p for _, _, p in sorted(ready)]

    async def poll(self, publish: Publish) -> PollResult:
        """Handle every settled inbox file once. A failing `publish` stops the poll and raises;
        the file it was publishing stays in the inbox. When another process is polling the same
        folder this poll does nothing (an advisory lock on `.poll.lock`)."""
        result = PollResult()
        fd = os.open(self.root / ".poll.lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return result
            await self._poll(publish, result)
        finally:
            os.close(fd)  # closing releases the lock
        return result

    async def _poll(self, publish: Publish, result: PollResult) -> None:
        for path in self.pending():
            try:
                data = path.read_bytes()
            except FileNotFoundError:  # taken away by an operator meanwhile
                continue
            try:
                parsed = self.codec.parse(data)
            except EdiError as exc:
                self._reject(path, data, exc)
                result.rejected.append(path.name)
                continue
            except Exception as exc:  # a fault of ours must not block every later file
                log.exception("edi.parse_failed", file=path.name)
                self._set_aside(
                    path,
                    f"{path.name}: the hub failed to read it ({type(exc).__name__}: {exc}).\n"
                    "No acknowledgement was sent: the fault is ours, not the partner's. "
                    "Move the file back to inbox/ once it is fixed.\n",
                )
                result.rejected.append(path.name)
                continue
            if parsed.envelopes:
                await publish(parsed.envelopes)
            for reply in parsed.replies:
                self._write(reply)
            _move(path, self.processed)
            result.processed.append(path.name)
            result.published += len(parsed.envelopes)
            result.notes.extend(parsed.notes)
            for note in parsed.notes:
                log.info("edi.note", file=path.name, note=note)
            log.info("edi.processed", file=path.name, messages=len(parsed.envelopes))

    async def run(self, publish: Publish, *, interval: float, stop: asyncio.Event) -> None:
        """Poll until `stop` is set; a failed poll is logged and retried after `interval`."""
        while not stop.is_set():
            try:
                await self.poll(publish)
            except Exception:
                log.exception("edi.poll_failed", root=str(self.root))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)

    def _reject(self, path: Path, data: bytes, error: EdiError) -> None:
        reply = None
        try:
            reply = self.codec.reject(data, error)
        except EdiError as exc:  # too broken to address a reply to
            log.warning("edi.no_rejection_ack", file=path.name, reason=str(exc))
        if reply is not None:
            self._write(reply)
        note = f"{path.name}: {error}\n"
        if reply is None:
            note += "no rejection acknowledgement sent: the sender could not be identified\n"
        else:
            note += f"rejection acknowledgement: outbox/{reply.name}\n"
        self._set_aside(path, note)
        log.warning("edi.rejected", file=path.name, reason=str(error))

    def _set_aside(self, path: Path, note: str) -> None:
        target = _move(path, self.rejected)
        atomic_write(target.with_name(target.name + ".error.txt"), note.encode())

    def _write(self, out: OutboundFile) -> Path:
        target = _free_name(self.outbox / out.name)
        atomic_write(target, out.content)
        return target


def _read_pending(path: Path) -> tuple[str, bytes]:
    name, _, content = path.read_bytes().partition(b"\n")
    return name.decode(), content


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _free_name(target: Path) -> Path:
    n = 1
    candidate = target
    while candidate.exists():
        candidate = target.with_name(f"{target.stem}.{n}{target.suffix}")
        n += 1
    return candidate


def _move(path: Path, directory: Path) -> Path:
    target = _free_name(directory / path.name)
    path.replace(target)
    return target
