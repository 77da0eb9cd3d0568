from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from connectors.base import Account, sign
from connectors.errors import SignatureInvalid
from connectors.shopify import webhooks as shopify
from connectors.woocommerce import webhooks as woo
from hub.config import AccountConfig, ConfigError

NOW = datetime(2026, 11, 22, 4, 0, tzinfo=UTC)
BODY = b'{"id": 450789469}'


def _rotating(**extra) -> Account:
    return Account(
        "acme",
        AccountConfig(
            connector="shopify",
            webhook_secret="new-secret",
            previous_webhook_secret="old-secret",
            previous_secret_valid_until=NOW + timedelta(hours=1),
            **extra,
        ),
    )


def _headers(secret: str, **extra: str) -> dict[str, str]:
    return {"X-Shopify-Hmac-Sha256": sign(secret, BODY), **extra}


def test_current_secret_is_accepted():
    shopify.verify(BODY, _headers("new-secret"), _rotating(), NOW)


def test_previous_secret_is_accepted_inside_the_rotation_window():
    shopify.verify(BODY, _headers("old-secret"), _rotating(), NOW + timedelta(minutes=59))


def test_previous_secret_is_refused_after_the_rotation_window():
    with pytest.raises(SignatureInvalid):
        shopify.verify(BODY, _headers("old-secret"), _rotating(), NOW + timedelta(hours=1))


def test_header_name_is_case_insensitive():
    shopify.verify(BODY, {"x-shopify-hmac-sha256": sign("new-secret", BODY)}, _rotating(), NOW)


@pytest.mark.parametrize("value", ["", "not-base64", sign("new-secret", BODY + b" "), "é"])
def test_wrong_or_garbled_signatures_are_refused(value):
    with pytest.raises(SignatureInvalid):
        shopify.verify(BODY, {"X-Shopify-Hmac-Sha256": value}, _rotating(), NOW)


def test_account_without_a_secret_refuses_everything():
    account = Account("acme", AccountConfig(connector="shopify"))
    with pytest.raises(SignatureInvalid):
        shopify.verify(BODY, _headers(""), account, NOW)


def test_delivery_triggered_long_ago_is_refused_as_a_replay():
    old = (NOW - timedelta(hours=7)).isoformat()
    with pytest.raises(SignatureInvalid, match="window"):
        shopify.verify(
            BODY, _headers("new-secret", **{"X-Shopify-Triggered-At": old}), _rotating(), NOW
        )


def test_retry_within_shopifys_retry_period_is_accepted():
    recent = (NOW - timedelta(hours=4)).isoformat()
    shopify.verify(
        BODY, _headers("new-secret", **{"X-Shopify-Triggered-At": recent}), _rotating(), NOW
    )


def test_replay_window_is_configurable_per_account():
    ten_minutes_ago = (NOW - timedelta(minutes=10)).isoformat()
    headers = _headers("new-secret", **{"X-Shopify-Triggered-At": ten_minutes_ago})
    with pytest.raises(SignatureInvalid):
        shopify.verify(BODY, headers, _rotating(replay_window_seconds=300), NOW)
    shopify.verify(BODY, headers, _rotating(replay_window_seconds=0), NOW)  # 0: off


def test_woocommerce_signature_with_rotation():
    account = Account(
        "corner",
        AccountConfig(
            connector="woocommerce",
            webhook_secret="new",
            previous_webhook_secret="old",
            previous_secret_valid_until=NOW + timedelta(minutes=5),
        ),
    )
    woo.verify(BODY, {"X-WC-Webhook-Signature": sign("old", BODY)}, account, NOW)
    with pytest.raises(SignatureInvalid):
        woo.verify(
            BODY, {"X-WC-Webhook-Signature": sign("old", BODY)}, account, NOW + timedelta(minutes=6)
        )


def test_secret_references_resolve_from_the_environment(monkeypatch):
    monkeypatch.setenv("ACME_WEBHOOK_SECRET", "from-env")
    account = Account(
        "acme", AccountConfig(connector="shopify", webhook_secret="env:ACME_WEBHOOK_SECRET")
    )
    shopify.verify(BODY, _headers("from-env"), account, NOW)


def test_shopify_nanosecond_trigger_times_are_understood():
    at = (NOW - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S.877041743Z")
    shopify.verify(BODY, _headers("new-secret", **{"X-Shopify-Triggered-At": at}), _rotating(), NOW)


def test_a_secret_rotated_out_is_not_read_so_its_variable_may_go(monkeypatch):
    """The last step of a rotation removes the old secret's variable: past its window it is
    never read, and deliveries signed with the new one are taken (they were answered 503)."""
    monkeypatch.setenv("ACME_NEW", "new-secret")
    monkeypatch.delenv("ACME_OLD", raising=False)
    account = Account(
        "acme",
        AccountConfig(
            connector="shopify",
            webhook_secret="env:ACME_NEW",
            previous_webhook_secret="env:ACME_OLD",
            previous_secret_valid_until=NOW - timedelta(minutes=1),
        ),
    )
    shopify.verify(BODY, _headers("new-secret"), account, NOW)
    with pytest.raises(ConfigError, match="ACME_OLD"):  # inside the window it is still needed
        shopify.verify(BODY, _headers("new-secret"), account, NOW - timedelta(hours=1))


@pytest.mark.parametrize("window", ["6h", 1e300, "nan"])
def test_a_replay_window_that_is_no_number_of_seconds_is_the_account_s_fault(window):
    """Past the signature, a bad `replay_window_seconds` raised `ValueError` (or overflowed),
    which the gateway answered 401: every genuine delivery refused as forged."""
    triggered = {"X-Shopify-Triggered-At": NOW.isoformat()}
    with pytest.raises(ConfigError, match="replay_window_seconds"):
        shopify.verify(
            BODY, _headers("new-secret", **triggered), _rotating(replay_window_seconds=window), NOW
        )
