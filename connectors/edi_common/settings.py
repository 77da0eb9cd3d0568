"""An EDI supplier account's settings from the hub config (`[accounts.NAME]`).

```toml
[accounts.acme-supply]
connector = "x12"              # or "edifact"
path = "var/edi/acme-supply"   # the exchange folder (inbox/, outbox/, processed/, rejected/)
our_id = "STOCKHUB"            # ISA06 / UNB sender
our_qualifier = "ZZ"
partner_id = "ACMESUPPLY"      # ISA08 / UNB recipient
partner_qualifier = "ZZ"
currency = "CNY"               # for invoices that do not state one (default: the books')
usage = "P"                    # X12 ISA15: P production, T test
settle_seconds = 2             # leave files younger than this alone
```
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub.config import AccountConfig, ConfigError


@dataclass(frozen=True, slots=True)
class EdiAccount:
    supplier: str
    path: Path
    our_id: str
    our_qualifier: str
    partner_id: str
    partner_qualifier: str
    currency: str
    usage: str
    settle_seconds: float

    @classmethod
    def from_config(cls, name: str, config: AccountConfig, *, currency: str) -> EdiAccount:
        extra: dict[str, Any] = config.extra

        def need(key: str) -> str:
            value = extra.get(key)
            if not isinstance(value, str) or not value:
                raise ConfigError(f"account {name!r}: {key} is required for {config.connector}")
            return value

        if not config.path:
            raise ConfigError(f"account {name!r}: path (the exchange folder) is required")
        try:
            settle = float(extra.get("settle_seconds", 2.0))
        except (TypeError, ValueError):
            raise ConfigError(f"account {name!r}: settle_seconds must be a number") from None
        return cls(
            supplier=name,
            path=Path(config.path),
            our_id=need("our_id"),
            our_qualifier=str(extra.get("our_qualifier", "ZZ")),
            partner_id=need("partner_id"),
            partner_qualifier=str(extra.get("partner_qualifier", "ZZ")),
            currency=str(extra.get("currency", currency)),
            usage=str(extra.get("usage", "P")),
            settle_seconds=settle,
        )
