"""The Beancount account's consumer side: deliver each voucher of `hub.vouchers.v1` to the file.

Config (`[accounts.NAME]`): `connector = "beancount"`, `path = "var/books.beancount"` (default:
`books.beancount` in `HUB_VAR_DIR`). The chart of accounts is the config's `[chart]`.
An account code the chart does not know is a permanent failure (`ConnectorError(retryable=
False)`, for the dead-letter queue); the file is never half-written.
"""

from __future__ import annotations

from pathlib import Path

from connectors.beancount.sink import BeancountSink, UnmappedAccount
from connectors.errors import ConnectorError
from hub.config import AccountConfig, HubConfig
from hub.finance.chart import Chart, chart_from_config
from schemas.finance import VoucherIssued


class BeancountVoucherSink:
    paced = False  # a local file: a batch of 500 takes well under the consumer's poll interval

    def __init__(self, path: Path, chart: Chart) -> None:
        self.sink = BeancountSink(path, chart).open()

    async def deliver(self, voucher: VoucherIssued) -> bool:
        """Append the voucher; False if the file has it already."""
        try:
            return self.sink.write(voucher)
        except UnmappedAccount as exc:
            raise ConnectorError(str(exc), retryable=False) from None
        except OSError as exc:
            raise ConnectorError(f"cannot write {self.sink.path}: {exc}", retryable=True) from None

    async def aclose(self) -> None:
        self.sink.close()


def from_account(account: AccountConfig, config: HubConfig, var_dir: Path) -> BeancountVoucherSink:
    path = Path(account.path) if account.path else var_dir / "books.beancount"
    return BeancountVoucherSink(path, chart_from_config(config))
