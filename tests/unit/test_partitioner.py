"""The publisher's partitioner puts every key where Kafka's own clients put it."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as reference_murmur2
from hypothesis import given
from hypothesis import strategies as st

from hub.kafka.producer import KeyPartitioner, murmur2


@given(st.binary(max_size=200))
def test_murmur2_is_kafkas(data: bytes) -> None:
    assert murmur2(data) == reference_murmur2(data) & 0xFFFFFFFF


def test_murmur2_known_values() -> None:
    # The Java client's values (Utils.murmur2, as signed ints) for the strings of its own test.
    assert murmur2(b"21") == -973932308 & 0xFFFFFFFF
    assert murmur2(b"foobar") == -790332482 & 0xFFFFFFFF
    assert murmur2(b"a-little-bit-long-string") == -985981536 & 0xFFFFFFFF
    assert murmur2(b"") == 275646681


@given(st.lists(st.binary(min_size=1, max_size=60), max_size=50), st.integers(1, 64))
def test_keys_go_to_the_default_partitioners_partition(keys: list[bytes], n: int) -> None:
    parts = list(range(n))
    ours = KeyPartitioner(remember=8)  # small: the remembered hashes are cleared on the way
    for key in keys * 2:
        assert ours(key, parts, parts) == DefaultPartitioner()(key, parts, parts)


def test_no_key_goes_to_an_available_partition() -> None:
    ours = KeyPartitioner()
    assert {ours(None, [0, 1, 2, 3], [2]) for _ in range(20)} == {2}
    assert {ours(None, [0, 1], []) for _ in range(50)} <= {0, 1}
