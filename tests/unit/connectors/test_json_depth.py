"""The JSON depth limit of incoming payloads: exactly `MAX_JSON_DEPTH` levels, whichever way
`parse_json` checks it (a bracket count for small bodies, a walk for the others); and the other
rules of the bodies and headers the connectors read."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.base import MAX_JSON_DEPTH, header, parse_json
from connectors.errors import MalformedPayload


def depth(value: Any) -> int:
    """The deepest value's level, the top level being 1."""
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    return 1


def accepted(value: Any) -> bool:
    try:
        parse_json(json.dumps(value).encode())
    except MalformedPayload:
        return False
    return True


def nest(levels: int, leaf: Any, wide: bool) -> Any:
    """`levels` arrays or objects around `leaf`, each beside shallow siblings when `wide`."""
    value = leaf
    for i in range(levels):
        siblings = [1, "[{", {"b": None}] if wide else []
        value = {"k": value, "s": siblings} if i % 2 else [value, *siblings]
    return value


@pytest.mark.parametrize("wide", [False, True])
@pytest.mark.parametrize("leaf", [1, "x", None, [], {}, [1], {"a": 1}])
@pytest.mark.parametrize("levels", [MAX_JSON_DEPTH - 2, MAX_JSON_DEPTH - 1, MAX_JSON_DEPTH])
def test_the_limit_is_exact(levels: int, leaf: Any, wide: bool) -> None:
    value = nest(levels, leaf, wide)
    assert accepted(value) == (depth(value) <= MAX_JSON_DEPTH)


@pytest.mark.parametrize("leaf", ["1", "[]", "{}", '{"a":1}'])
@pytest.mark.parametrize("levels", [MAX_JSON_DEPTH - 2, MAX_JSON_DEPTH - 1, MAX_JSON_DEPTH])
def test_the_limit_is_exact_for_bare_chains(levels: int, leaf: str) -> None:
    """Arrays in arrays and nothing else: as few brackets as the depth allows."""
    value = json.loads("[" * levels + leaf + "]" * levels)
    assert accepted(value) == (depth(value) <= MAX_JSON_DEPTH)


def test_brackets_inside_strings_do_not_count_as_depth() -> None:
    assert accepted({"note": "[" * 500 + "{" * 500})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet="ab[{}]", max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=2), inner),
    max_leaves=40,
)


@given(json_values, st.integers(min_value=MAX_JSON_DEPTH - 12, max_value=MAX_JSON_DEPTH + 1))
def test_accepted_exactly_when_no_value_is_deeper_than_the_limit(value: Any, levels: int) -> None:
    for v in (value, nest(levels, value, wide=False)):
        assert accepted(v) == (depth(v) <= MAX_JSON_DEPTH)


def test_a_body_with_a_byte_order_mark_is_refused_with_that_reason() -> None:
    with pytest.raises(MalformedPayload, match="byte order mark"):
        parse_json("\ufeff{}".encode())
    assert parse_json(b'{"price": 9.90, "n": 2}') == {"price": Decimal("9.90"), "n": 2}
    with pytest.raises(MalformedPayload, match="NaN is not allowed"):
        parse_json(b'{"price": NaN}')


def test_header_lookup_ignores_case_whichever_case_the_mapping_holds() -> None:
    assert header({"X-Shopify-Topic": "orders/create"}, "x-shopify-topic") == "orders/create"
    assert header({"x-shopify-topic": "orders/create"}, "X-Shopify-Topic") == "orders/create"
    assert header({"X-SHOPIFY-TOPIC": "a", "other": "b"}, "X-Shopify-Topic") == "a"
    assert header({"other": "b"}, "X-Shopify-Topic") is None
