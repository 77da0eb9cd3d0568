from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from hub.domain.allocation import Level, Rule, channel_available, share_from_float


def test_available_subtracts_reserved_and_safety_stock():
    assert channel_available([Level(50, 12, 3)], Rule()) == 35


def test_share_rounds_down():
    assert channel_available([Level(7, 0)], Rule(share=Decimal("0.5"))) == 3


def test_buffer_and_cap_apply_after_share():
    rule = Rule(share=Decimal("0.5"), buffer=2, cap=10)
    assert channel_available([Level(100, 0)], rule) == 10
    assert channel_available([Level(10, 0)], rule) == 3


def test_never_negative_when_reserved_exceeds_on_hand_or_buffer_exceeds_stock():
    assert channel_available([Level(3, 5)], Rule()) == 0
    assert channel_available([Level(3, 0)], Rule(buffer=10)) == 0


def test_only_the_channels_locations_are_summed_by_the_caller():
    levels = [Level(10, 2), Level(5, 0)]
    assert channel_available(levels, Rule()) == 13


def test_share_from_float_keeps_four_decimals_exactly():
    assert share_from_float(0.3333333) == Decimal("0.3333")


@given(
    on_hand=st.integers(-5, 10_000),
    reserved=st.integers(0, 10_000),
    safety=st.integers(0, 100),
    share=st.decimals(0, 1, places=4),
    buffer=st.integers(0, 100),
    cap=st.integers(0, 1000),
)
def test_channel_never_offered_more_than_is_free(on_hand, reserved, safety, share, buffer, cap):
    value = channel_available([Level(on_hand, reserved, safety)], Rule(share, buffer, cap))
    assert 0 <= value <= max(0, on_hand - reserved - safety)
    if cap:
        assert value <= cap
