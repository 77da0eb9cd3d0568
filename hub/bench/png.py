"""A tiny PNG line-plot renderer for when matplotlib is not installed: one panel per series,
no text, stdlib only (zlib + struct)."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

COLOURS = ((31, 119, 180), (255, 127, 14), (214, 39, 40), (44, 160, 44))


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def encode(width: int, height: int, pixels: bytearray) -> bytes:
    rows = b"".join(
        b"\x00" + bytes(pixels[y * width * 3 : (y + 1) * width * 3]) for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(rows, 6))
        + _chunk(b"IEND", b"")
    )


def plot(
    path: Path,
    panels: Sequence[tuple[str, Sequence[tuple[float, float]]]],
    width: int = 900,
    panel_height: int = 160,
) -> None:
    height = panel_height * max(1, len(panels))
    px = bytearray(b"\xff" * (width * height * 3))
    xs = [x for _, pts in panels for x, _ in pts]
    x0, x1 = (min(xs), max(xs)) if xs else (0.0, 1.0)
    span = (x1 - x0) or 1.0

    def put(x: int, y: int, colour: tuple[int, int, int]) -> None:
        if 0 <= x < width and 0 <= y < height:
            i = (y * width + x) * 3
            px[i : i + 3] = bytes(colour)

    for n, (_, pts) in enumerate(panels):
        top, bottom = n * panel_height + 8, (n + 1) * panel_height - 8
        for x in range(width):
            put(x, bottom, (160, 160, 160))
        if not pts:
            continue
        ymax = float(max(y for _, y in pts)) or 1.0
        colour = COLOURS[n % len(COLOURS)]
        for tx, ty in pts:
            cx = int((tx - x0) / span * (width - 1))
            cy = bottom - int(ty / ymax * (bottom - top))
            for dx in (0, 1):
                for dy in (0, 1):
                    put(cx + dx, cy + dy, colour)
    path.write_bytes(encode(width, height, px))
