"""Chart of accounts: which account each kind of posting goes to.

Rules never name account codes; they ask the chart for a role (`Role.RECEIVABLE`). The default
chart follows the Chinese small-business standard (小企业会计准则); `ifrs-en` is an English,
IFRS-style alternative. The config file picks one and may override any role:

```toml
[chart]
name = "cn-small-business"     # or "ifrs-en"
currency = "CNY"               # the books' currency (inventory is valued in it)
timezone = "Asia/Shanghai"     # accounting dates and periods are taken in this zone
bank_gateways = ["bank_transfer", "cash"]   # these settle to the bank, others to clearing

[chart.accounts]
bank = "100201"                               # just a code: keeps the default name
platform_clearing = { code = "101201", name = "其他货币资金-支付宝" }
```
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hub.config import ConfigError, HubConfig
from schemas.base import ISO_4217


class Role(StrEnum):
    """What an account is used for by the voucher rules."""

    BANK = "bank"
    PLATFORM_CLEARING = "platform_clearing"
    RECEIVABLE = "receivable"
    INVENTORY = "inventory"
    INPUT_VAT = "input_vat"
    STOCKTAKE_SUSPENSE = "stocktake_suspense"
    PAYABLE = "payable"
    GRNI = "grni"
    OUTPUT_VAT = "output_vat"
    REVENUE = "revenue"
    COST_OF_SALES = "cost_of_sales"
    PRICE_VARIANCE = "price_variance"
    STOCKTAKE_GAIN = "stocktake_gain"
    STOCKTAKE_LOSS = "stocktake_loss"


class Kind(StrEnum):
    """Account class; decides the Beancount root and the sign of a normal balance."""

    ASSET = "asset"
    LIABILITY = "liability"
    EQUITY = "equity"
    INCOME = "income"
    EXPENSE = "expense"


@dataclass(frozen=True, slots=True)
class Account:
    code: str
    name: str
    kind: Kind
    label: str  # ASCII words, for systems that want them (Beancount account names)


@dataclass(frozen=True, slots=True)
class Chart:
    name: str
    accounts: Mapping[Role, Account]
    currency: str = "CNY"
    timezone: str = "UTC"
    bank_gateways: frozenset[str] = field(default_factory=frozenset)

    def __getitem__(self, role: Role) -> Account:
        return self.accounts[role]

    def by_code(self, code: str) -> Account | None:
        for acc in self.accounts.values():
            if acc.code == code:
                return acc
        return None

    def settlement(self, gateway: str) -> Role:
        """Where a shop payment lands: the bank for bank gateways, else platform clearing."""
        return Role.BANK if gateway.lower() in self.bank_gateways else Role.PLATFORM_CLEARING

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


A, L, INC, E = Kind.ASSET, Kind.LIABILITY, Kind.INCOME, Kind.EXPENSE

CN_SMALL_BUSINESS = Chart(
    name="cn-small-business",
    currency="CNY",
    timezone="Asia/Shanghai",
    bank_gateways=frozenset({"bank", "bank_transfer", "manual", "cash"}),
    accounts={
        Role.BANK: Account("1002", "银行存款", A, "Bank"),
        Role.PLATFORM_CLEARING: Account("1012", "其他货币资金", A, "Platform-Clearing"),
        Role.RECEIVABLE: Account("1122", "应收账款", A, "Receivables"),
        Role.INVENTORY: Account("1405", "库存商品", A, "Inventory"),
        Role.STOCKTAKE_SUSPENSE: Account("1901", "待处理财产损溢", A, "Stocktake-Suspense"),
        Role.PAYABLE: Account("2202", "应付账款", L, "Payables"),
        Role.GRNI: Account("220201", "应付账款-暂估应付", L, "Goods-Received-Not-Invoiced"),
        Role.INPUT_VAT: Account("222101", "应交税费-应交增值税(进项税额)", L, "VAT-Input"),
        Role.OUTPUT_VAT: Account("222102", "应交税费-应交增值税(销项税额)", L, "VAT-Output"),
        Role.REVENUE: Account("6001", "主营业务收入", INC, "Revenue"),
        Role.STOCKTAKE_GAIN: Account("6301", "营业外收入", INC, "Stocktake-Gains"),
        Role.COST_OF_SALES: Account("6401", "主营业务成本", E, "Cost-Of-Sales"),
        Role.PRICE_VARIANCE: Account(
            "640102", "主营业务成本-采购价差", E, "Purchase-Price-Variance"
        ),
        Role.STOCKTAKE_LOSS: Account("6711", "营业外支出", E, "Stocktake-Losses"),
    },
)

IFRS_EN = Chart(
    name="ifrs-en",
    currency="USD",
    timezone="UTC",
    bank_gateways=frozenset({"bank", "bank_transfer", "manual", "cash"}),
    accounts={
        Role.BANK: Account("1000", "Cash at bank", A, "Bank"),
        Role.PLATFORM_CLEARING: Account(
            "1050", "Payment platform clearing", A, "Platform-Clearing"
        ),
        Role.RECEIVABLE: Account("1100", "Trade receivables", A, "Receivables"),
        Role.INVENTORY: Account("1200", "Inventories", A, "Inventory"),
        Role.INPUT_VAT: Account("1300", "VAT recoverable (input)", A, "VAT-Input"),
        Role.STOCKTAKE_SUSPENSE: Account("1900", "Stock count suspense", A, "Stocktake-Suspense"),
        Role.PAYABLE: Account("2000", "Trade payables", L, "Payables"),
        Role.GRNI: Account("2010", "Goods received not invoiced", L, "Goods-Received-Not-Invoiced"),
        Role.OUTPUT_VAT: Account("2200", "VAT payable (output)", L, "VAT-Output"),
        Role.REVENUE: Account("4000", "Revenue from sale of goods", INC, "Revenue"),
        Role.STOCKTAKE_GAIN: Account("4900", "Inventory count gains", INC, "Stocktake-Gains"),
        Role.COST_OF_SALES: Account("5000", "Cost of sales", E, "Cost-Of-Sales"),
        Role.PRICE_VARIANCE: Account(
            "5010", "Purchase price variance", E, "Purchase-Price-Variance"
        ),
        Role.STOCKTAKE_LOSS: Account("5020", "Inventory count losses", E, "Stocktake-Losses"),
    },
)

CHARTS: dict[str, Chart] = {c.name: c for c in (CN_SMALL_BUSINESS, IFRS_EN)}
DEFAULT_CHART = CN_SMALL_BUSINESS.name


def chart_from_config(config: HubConfig | None) -> Chart:
    """The chart the config's `[chart]` table describes (the default chart when absent)."""
    raw: Any = ((config.model_extra or {}) if config else {}).get("chart", {})
    if not isinstance(raw, dict):
        raise ConfigError("[chart] must be a table")
    return build_chart(raw)


def build_chart(raw: Mapping[str, Any]) -> Chart:
    unknown = set(raw) - {"name", "currency", "timezone", "bank_gateways", "accounts"}
    if unknown:
        raise ConfigError(f"[chart]: unknown keys {sorted(unknown)}")
    name = raw.get("name", DEFAULT_CHART)
    if name not in CHARTS:
        raise ConfigError(f"[chart] name {name!r}: choose one of {sorted(CHARTS)}")
    chart = CHARTS[name]
    currency = raw.get("currency", chart.currency)
    if currency not in ISO_4217:
        raise ConfigError(f"[chart] currency {currency!r} is not an ISO 4217 code")
    timezone = raw.get("timezone", chart.timezone)
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"[chart] timezone {timezone!r} is unknown") from None
    gateways = raw.get("bank_gateways")
    accounts = dict(chart.accounts)
    for key, value in dict(raw.get("accounts", {})).items():
        try:
            role = Role(key)
        except ValueError:
            raise ConfigError(
                f"[chart.accounts] {key!r}: roles are {[r.value for r in Role]}"
            ) from None
        base = accounts[role]
        if isinstance(value, str):
            accounts[role] = replace(base, code=value)
        elif isinstance(value, dict):
            bad = set(value) - {"code", "name", "label"}
            if bad or "code" not in value:
                raise ConfigError(f"[chart.accounts] {key}: give code (and name, label)")
            accounts[role] = replace(
                base,
                code=str(value["code"]),
                name=str(value.get("name", base.name)),
                label=str(value.get("label", base.label)),
            )
        else:
            raise ConfigError(f"[chart.accounts] {key}: a code or a table")
    codes = [a.code for a in accounts.values()]
    if len(set(codes)) != len(codes):
        raise ConfigError("[chart.accounts]: two roles share one account code")
    return Chart(
        name=name,
        accounts=accounts,
        currency=currency,
        timezone=timezone,
        bank_gateways=(
            frozenset(g.lower() for g in gateways) if gateways is not None else chart.bank_gateways
        ),
    )
