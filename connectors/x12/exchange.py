"""The X12 exchange directory: `Exchange` from edi_common with the X12 codec."""

from __future__ import annotations

from pathlib import Path

from connectors.edi_common.control import ControlNumbers
from connectors.edi_common.exchange import Exchange
from connectors.edi_common.settings import EdiAccount
from connectors.x12.codec import X12Codec, X12Partner
from connectors.x12.syntax import Party
from hub.config import AccountConfig, ConfigError


def x12_exchange(root: Path | str, partner: X12Partner, *, settle_seconds: float = 2.0) -> Exchange:
    """Exchange folders under `root`; control numbers persist in `root/control-numbers.json`."""
    numbers = ControlNumbers(Path(root) / "control-numbers.json")
    return Exchange(root, X12Codec(partner, numbers), settle_seconds=settle_seconds)


def x12_exchange_for(
    name: str, config: AccountConfig, *, supplier: str | None = None, currency: str = "USD"
) -> Exchange:
    """The exchange of a configured `x12` supplier account (keys: connectors.edi_common.settings).
    `currency`: an invoice's when neither it nor the account says (the hub passes the books')."""
    acc = EdiAccount.from_config(name, config, currency=currency)
    try:
        partner = X12Partner(
            supplier=supplier or name,
            us=Party(acc.our_qualifier, acc.our_id),
            them=Party(acc.partner_qualifier, acc.partner_id),
            currency=acc.currency,
            usage=acc.usage,
        )
    except ValueError as exc:
        raise ConfigError(f"account {name!r}: {exc}") from None
    if acc.usage not in ("P", "T"):
        raise ConfigError(f"account {name!r}: usage must be P (production) or T (test)")
    return x12_exchange(acc.path, partner, settle_seconds=acc.settle_seconds)
