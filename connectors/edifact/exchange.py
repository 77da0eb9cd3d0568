"""The EDIFACT exchange directory: `Exchange` from edi_common with the EDIFACT codec."""

from __future__ import annotations

from pathlib import Path

from connectors.edi_common.control import ControlNumbers
from connectors.edi_common.exchange import Exchange
from connectors.edi_common.settings import EdiAccount
from connectors.edifact.codec import EdifactCodec, EdifactPartner
from connectors.edifact.syntax import Party
from hub.config import AccountConfig


def edifact_exchange(
    root: Path | str, partner: EdifactPartner, *, settle_seconds: float = 2.0
) -> Exchange:
    """Exchange folders under `root`; control references persist in `root/control-numbers.json`."""
    numbers = ControlNumbers(Path(root) / "control-numbers.json", limit=99_999_999_999_999)
    return Exchange(root, EdifactCodec(partner, numbers), settle_seconds=settle_seconds)


def edifact_exchange_for(
    name: str, config: AccountConfig, *, supplier: str | None = None, currency: str = "EUR"
) -> Exchange:
    """The exchange of a configured `edifact` supplier account (keys: edi_common.settings).
    `currency`: an invoice's when neither it nor the account says (the hub passes the books')."""
    acc = EdiAccount.from_config(name, config, currency=currency)
    partner = EdifactPartner(
        supplier=supplier or name,
        us=Party(acc.our_id, acc.our_qualifier),
        them=Party(acc.partner_id, acc.partner_qualifier),
        currency=acc.currency,
    )
    return edifact_exchange(acc.path, partner, settle_seconds=acc.settle_seconds)
