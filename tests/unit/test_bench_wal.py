"""WAL per order: log sequence numbers as byte positions, and their growth per order."""

from __future__ import annotations

from hub.bench import wal


def test_a_log_sequence_number_is_a_64_bit_byte_position() -> None:
    assert wal.lsn_bytes("0/0") == 0
    assert wal.lsn_bytes("0/16B3748") == 0x16B3748
    assert wal.lsn_bytes("16/B374D848") == (0x16 << 32) + 0xB374D848
    # Across the 4 GB boundary: the high word counts, not only the low one.
    assert wal.lsn_bytes("1/0") - wal.lsn_bytes("0/FFFFFFFF") == 1


def test_bytes_per_order_between_two_positions() -> None:
    before = wal.lsn_bytes("3/FFFFF000")
    after = before + 400 * 2_345 + 100
    assert wal.per_order(before, after, 400) == 2_345  # 2,345.25 → whole bytes
    assert wal.per_order(None, after, 400) is None
    assert wal.per_order(before, None, 400) is None
    assert wal.per_order(before, after, 0) is None
