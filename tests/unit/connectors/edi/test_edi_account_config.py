"""EDI supplier accounts come from the hub config; mistakes are reported by account and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.edifact import EdifactCodec, edifact_exchange_for
from connectors.x12 import X12Codec, x12_exchange_for
from hub.config import ConfigError, HubConfig


def config(tmp_path: Path, body: str) -> HubConfig:
    file = tmp_path / "hub.toml"
    file.write_text(body.replace("PATH", str(tmp_path / "edi")))
    return HubConfig.load(file)


def test_x12_account_builds_its_exchange_folder(tmp_path: Path) -> None:
    cfg = config(
        tmp_path,
        """
[accounts.acme-supply]
connector = "x12"
path = "PATH"
our_id = "STOCKHUB"
partner_id = "ACMESUPPLY"
partner_qualifier = "01"
usage = "T"
settle_seconds = 0
""",
    )
    ex = x12_exchange_for("acme-supply", cfg.accounts["acme-supply"])
    assert isinstance(ex.codec, X12Codec)
    assert ex.codec.partner.them.qualifier == "01" and ex.codec.partner.usage == "T"
    assert ex.settle_seconds == 0 and ex.inbox == tmp_path / "edi" / "inbox"
    assert ex.inbox.is_dir() and ex.outbox.is_dir()


def test_edifact_account_defaults_to_euro_and_mutually_defined_ids(tmp_path: Path) -> None:
    cfg = config(
        tmp_path,
        """
[accounts.euro-parts]
connector = "edifact"
path = "PATH"
our_id = "STOCKHUB"
partner_id = "EUROPARTS"
""",
    )
    ex = edifact_exchange_for("euro-parts", cfg.accounts["euro-parts"])
    assert isinstance(ex.codec, EdifactCodec)
    assert ex.codec.partner.currency == "EUR" and ex.codec.partner.them.qualifier == "ZZ"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('our_id = "STOCKHUB"', "partner_id is required"),
        ('our_id = "A-VERY-LONG-INTERCHANGE-ID"\npartner_id = "P"', "id ≤ 15"),
        ('our_id = "S"\npartner_id = "P"\nusage = "X"', "usage must be P"),
        ('our_id = "S"\npartner_id = "P"\nsettle_seconds = "soon"', "settle_seconds"),
    ],
)
def test_bad_x12_settings_name_the_account_and_key(
    tmp_path: Path, extra: str, message: str
) -> None:
    cfg = config(tmp_path, f'[accounts.acme]\nconnector = "x12"\npath = "PATH"\n{extra}\n')
    with pytest.raises(ConfigError, match=message) as err:
        x12_exchange_for("acme", cfg.accounts["acme"])
    assert "'acme'" in str(err.value)


def test_an_exchange_folder_is_required(tmp_path: Path) -> None:
    cfg = config(tmp_path, '[accounts.acme]\nconnector = "x12"\nour_id = "S"\npartner_id = "P"\n')
    with pytest.raises(ConfigError, match="path"):
        x12_exchange_for("acme", cfg.accounts["acme"])


def test_an_invoice_that_states_no_currency_is_in_the_books_currency(tmp_path: Path) -> None:
    """An 810 without CUR, an INVOIC without CUX: the hub's supplier link takes the books'
    currency (the one it orders in by default), unless the account names one."""
    from hub.config import Settings
    from hub.supplierworker import EdiLink, build_link

    cfg = config(
        tmp_path,
        """
[chart]
currency = "CNY"

[accounts.acme-supply]
connector = "x12"
path = "PATH"
our_id = "STOCKHUB"
partner_id = "ACMESUPPLY"

[accounts.bolt-works]
connector = "edifact"
path = "PATH"
our_id = "STOCKHUB"
partner_id = "BOLTWORKS"

[accounts.usd-supply]
connector = "x12"
path = "PATH"
our_id = "STOCKHUB"
partner_id = "USDSUPPLY"
currency = "USD"
""",
    )
    settings = Settings(var_dir=tmp_path)
    settings.__dict__["hub"] = cfg
    found = {}
    for name in ("acme-supply", "bolt-works", "usd-supply"):
        link = build_link(name, cfg.accounts[name], settings)
        assert isinstance(link, EdiLink)
        found[name] = link.exchange.codec.partner.currency  # type: ignore[attr-defined]
    assert found == {"acme-supply": "CNY", "bolt-works": "CNY", "usd-supply": "USD"}
