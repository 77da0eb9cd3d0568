import dataclasses
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas import Envelope, EnvelopeError, OrderLine, OrderPlaced, decode, message_id
from schemas.envelope import _NAMESPACE as ENVELOPE_NAMESPACE


def _order() -> OrderPlaced:
    return OrderPlaced(
        order_key="acme:1",
        account="acme",
        channel="online",
        platform_order_id="1",
        placed_at=datetime(2026, 1, 1, tzinfo=UTC),
        currency="CNY",
        lines=[OrderLine(sku="A-1", quantity=2, unit_price=Decimal("9.90"))],
        total=Decimal("19.80"),
    )


def test_round_trip_keeps_every_attribute_and_decimal_money():
    env = Envelope(
        id=message_id("x"), source="shopify/acme", data=_order(), correlation_id="corr-1"
    )
    back = decode(env.headers(), env.body())
    assert back.data == env.data
    assert back.id == env.id and back.source == "shopify/acme" and back.type == env.type
    assert back.correlation_id == "corr-1"
    assert isinstance(back.data.lines[0].unit_price, Decimal)  # type: ignore[attr-defined]


def test_headers_are_cloudevents_binary_mode():
    h = dict(Envelope(id="i", source="s", data=_order()).headers())
    assert h["ce_specversion"] == b"1.0"
    assert h["ce_type"] == b"hub.order.placed.v1"
    assert h["content-type"] == b"application/json"


def test_body_is_the_models_json_and_ce_time_the_envelopes_own_time():
    order = _order()
    utc = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)
    shanghai = utc.astimezone(timezone(timedelta(hours=8)))  # equal to `utc`, other text
    texts = []
    for t in (utc, utc, shanghai, utc):
        h = dict(Envelope(id="i", source="s", data=order, time=t).header_texts())
        texts.append(h["ce_time"])
    assert texts == [utc.isoformat(), utc.isoformat(), "2026-03-01T12:00:00+08:00", utc.isoformat()]
    assert Envelope(id="i", source="s", data=order).body() == order.model_dump_json().encode()


def test_correlated_changes_the_correlation_id_and_keeps_every_other_field():
    env = Envelope(
        id="i",
        source="s",
        data=_order(),
        time=datetime(2026, 3, 1, tzinfo=UTC),
        correlation_id="before",
        causes=("c1", "c2"),
    )
    # Every field holds a value other than its default, so a field `correlated` forgot shows.
    assert all(
        getattr(env, f.name) != f.default
        for f in dataclasses.fields(env)
        if f.default is not dataclasses.MISSING
    )
    again = env.correlated("after")
    assert again == dataclasses.replace(env, correlation_id="after")
    assert env.correlation_id == "before"


def test_unknown_schema_version_is_refused_with_reason():
    env = Envelope(id="i", source="s", data=_order())
    headers = [(k, b"hub.order.placed.v2" if k == "ce_type" else v) for k, v in env.headers()]
    with pytest.raises(EnvelopeError, match="unknown message type or schema version"):
        decode(headers, env.body())


@pytest.mark.parametrize(
    ("headers", "body", "reason"),
    [
        ([], b"{}", "missing CloudEvents header"),
        (
            [("ce_specversion", b"0.3"), ("ce_id", b"1"), ("ce_type", b"t"), ("ce_source", b"s")],
            b"{}",
            "unsupported ce_specversion",
        ),
        (
            [
                ("ce_specversion", b"1.0"),
                ("ce_id", b"1"),
                ("ce_type", b"hub.order.placed.v1"),
                ("ce_source", b"s"),
            ],
            b"\xff\xfe not json",
            "invalid hub.order.placed.v1 body",
        ),
        (
            [
                ("ce_specversion", b"1.0"),
                ("ce_id", b"\xff"),
                ("ce_type", b"x"),
                ("ce_source", b"s"),
            ],
            b"{}",
            "not UTF-8",
        ),
    ],
)
def test_bad_records_raise_envelope_error_naming_the_problem(headers, body, reason):
    with pytest.raises(EnvelopeError, match=reason):
        decode(headers, body)


def test_naive_times_and_float_quantities_are_refused():
    with pytest.raises(ValueError):
        OrderPlaced(
            order_key="a:1",
            account="a",
            channel="c",
            platform_order_id="1",
            placed_at=datetime(2026, 1, 1),
            currency="CNY",
            lines=[OrderLine(sku="A", quantity=1)],
            total=Decimal(1),
        )
    with pytest.raises(ValueError):
        OrderLine(sku="A", quantity=1.5)  # type: ignore[arg-type]


def test_unknown_currency_is_refused():
    with pytest.raises(ValueError, match="ISO 4217"):
        OrderPlaced(
            order_key="a:1",
            account="a",
            channel="c",
            platform_order_id="1",
            placed_at=datetime(2026, 1, 1, tzinfo=UTC),
            currency="XXY",
            lines=[OrderLine(sku="A", quantity=1)],
            total=Decimal(1),
        )


@given(st.lists(st.text(), min_size=1, max_size=5))
def test_message_ids_are_the_uuid5_of_their_parts(parts: list[str]) -> None:
    assert message_id(*parts) == str(uuid.uuid5(ENVELOPE_NAMESPACE, "\x1f".join(parts)))


def test_message_ids_are_deterministic():
    assert message_id("shopify", "acme", "42") == message_id("shopify", "acme", "42")
    assert message_id("shopify", "acme", "42") != message_id("shopify", "acme", "43")


@pytest.mark.parametrize("bad_id", ["m" * 65, "id-\x00-1"])
def test_an_id_no_store_column_holds_is_refused_with_reason(bad_id):
    """Taken, it would be applied on SQLite and refused by PostgreSQL's inbox and journal."""
    env = Envelope(id="i", source="s", data=_order())
    headers = [(k, bad_id.encode() if k == "ce_id" else v) for k, v in env.headers()]
    with pytest.raises(EnvelopeError, match="ce_id is not an id of at most 64 characters"):
        decode(headers, env.body())
    ok = [(k, b"m" * 64 if k == "ce_id" else v) for k, v in env.headers()]
    assert decode(ok, env.body()).id == "m" * 64
