"""The chart of accounts comes from `[chart]` in the config: a named chart, overrides per role."""

from __future__ import annotations

import pytest

from hub.config import ConfigError, HubConfig
from hub.finance.chart import CN_SMALL_BUSINESS, Role, build_chart, chart_from_config


def test_default_chart_is_the_chinese_small_business_standard() -> None:
    chart = chart_from_config(HubConfig())
    assert chart is CN_SMALL_BUSINESS or chart == CN_SMALL_BUSINESS
    assert (chart[Role.BANK].code, chart[Role.BANK].name) == ("1002", "银行存款")
    assert chart[Role.OUTPUT_VAT].code == "222102" and chart[Role.INPUT_VAT].code == "222101"
    assert chart.currency == "CNY" and chart.timezone == "Asia/Shanghai"


def test_config_picks_a_chart_and_overrides_accounts() -> None:
    cfg = HubConfig.model_validate(
        {
            "chart": {
                "name": "ifrs-en",
                "currency": "EUR",
                "timezone": "Europe/Berlin",
                "bank_gateways": ["SEPA"],
                "accounts": {
                    "bank": "1010",
                    "platform_clearing": {"code": "1060", "name": "Stripe clearing"},
                },
            }
        }
    )
    chart = chart_from_config(cfg)
    assert chart.name == "ifrs-en" and chart.currency == "EUR"
    assert chart[Role.BANK].code == "1010" and chart[Role.BANK].name == "Cash at bank"
    assert chart[Role.PLATFORM_CLEARING].name == "Stripe clearing"
    assert chart.settlement("sepa") is Role.BANK
    assert chart.settlement("stripe") is Role.PLATFORM_CLEARING
    assert chart.by_code("1060") == chart[Role.PLATFORM_CLEARING]


@pytest.mark.parametrize(
    "raw",
    [
        {"name": "nope"},
        {"currency": "XXX1"},
        {"timezone": "Mars/Olympus"},
        {"accounts": {"treasure": "1"}},
        {"accounts": {"bank": "1122"}},  # two roles on one code
        {"accounts": {"bank": {"name": "no code"}}},
        {"colour": "blue"},
    ],
)
def test_a_bad_chart_is_a_config_error(raw: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        build_chart(raw)
