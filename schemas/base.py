"""Shared building blocks of every canonical message: money, UTC time, the base model."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, ClassVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveInt,
)

# ISO 4217 active codes (alphabetic). Kept here so validation needs no network or extra package.
ISO_4217 = frozenset(
    [
        "AED",
        "AFN",
        "ALL",
        "AMD",
        "ANG",
        "AOA",
        "ARS",
        "AUD",
        "AWG",
        "AZN",
        "BAM",
        "BBD",
        "BDT",
        "BGN",
        "BHD",
        "BIF",
        "BMD",
        "BND",
        "BOB",
        "BOV",
        "BRL",
        "BSD",
        "BTN",
        "BWP",
        "BYN",
        "BZD",
        "CAD",
        "CDF",
        "CHE",
        "CHF",
        "CHW",
        "CLF",
        "CLP",
        "CNY",
        "COP",
        "COU",
        "CRC",
        "CUC",
        "CUP",
        "CVE",
        "CZK",
        "DJF",
        "DKK",
        "DOP",
        "DZD",
        "EGP",
        "ERN",
        "ETB",
        "EUR",
        "FJD",
        "FKP",
        "GBP",
        "GEL",
        "GHS",
        "GIP",
        "GMD",
        "GNF",
        "GTQ",
        "GYD",
        "HKD",
        "HNL",
        "HTG",
        "HUF",
        "IDR",
        "ILS",
        "INR",
        "IQD",
        "IRR",
        "ISK",
        "JMD",
        "JOD",
        "JPY",
        "KES",
        "KGS",
        "KHR",
        "KMF",
        "KPW",
        "KRW",
        "KWD",
        "KYD",
        "KZT",
        "LAK",
        "LBP",
        "LKR",
        "LRD",
        "LSL",
        "LYD",
        "MAD",
        "MDL",
        "MGA",
        "MKD",
        "MMK",
        "MNT",
        "MOP",
        "MRU",
        "MUR",
        "MVR",
        "MWK",
        "MXN",
        "MXV",
        "MYR",
        "MZN",
        "NAD",
        "NGN",
        "NIO",
        "NOK",
        "NPR",
        "NZD",
        "OMR",
        "PAB",
        "PEN",
        "PGK",
        "PHP",
        "PKR",
        "PLN",
        "PYG",
        "QAR",
        "RON",
        "RSD",
        "RUB",
        "RWF",
        "SAR",
        "SBD",
        "SCR",
        "SDG",
        "SEK",
        "SGD",
        "SHP",
        "SLE",
        "SLL",
        "SOS",
        "SRD",
        "SSP",
        "STN",
        "SVC",
        "SYP",
        "SZL",
        "THB",
        "TJS",
        "TMT",
        "TND",
        "TOP",
        "TRY",
        "TTD",
        "TWD",
        "TZS",
        "UAH",
        "UGX",
        "USD",
        "USN",
        "UYI",
        "UYU",
        "UYW",
        "UZS",
        "VED",
        "VES",
        "VND",
        "VUV",
        "WST",
        "XAF",
        "XCD",
        "XOF",
        "XPF",
        "XSU",
        "YER",
        "ZAR",
        "ZMW",
        "ZWG",
        "ZWL",
    ]
)

# Minor units per currency where they differ from 2 (ISO 4217 exponent).
CURRENCY_EXPONENT = {
    **{
        c: 0
        for c in [
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "UYI",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ]
    },
    **{c: 3 for c in ["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"]},
    "CLF": 4,
    "UYW": 4,
}


def _check_currency(code: str) -> str:
    if code not in ISO_4217:
        raise ValueError(f"{code!r} is not an ISO 4217 currency code")
    return code


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


Currency = Annotated[
    str,
    AfterValidator(_check_currency),
    Field(description="ISO 4217 currency code", examples=["CNY", "USD", "EUR"]),
]
UtcDatetime = Annotated[
    AwareDatetime,
    AfterValidator(_to_utc),
    Field(
        description="A moment with its timezone, normalised to UTC (ISO 8601)",
        examples=["2026-11-01T12:00:00Z"],
    ),
]
# Units in one message: a billion is no merchant's, and two such stay within the stores' 32-bit
# integer columns (more than those hold is refused by PostgreSQL and taken by SQLite).
MAX_QUANTITY = 1_000_000_000
Units = Annotated[PositiveInt, Field(le=MAX_QUANTITY)]
UnitsOrZero = Annotated[NonNegativeInt, Field(le=MAX_QUANTITY)]  # a count; a line rejected whole
# Text from a platform or a partner that the hub stores: no control characters (a NUL is refused
# by PostgreSQL's text columns and taken by SQLite's, so the two would disagree).
NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"
# An id a platform or partner gives (order, line, payment, shipment), and a stock document's id.
PlatformId = Annotated[str, Field(max_length=64, pattern=NO_CONTROL)]
Reference = Annotated[str, Field(max_length=128, pattern=NO_CONTROL)]
Sku = Annotated[
    str,
    Field(
        min_length=1,
        max_length=128,
        pattern=NO_CONTROL,
        description="Stock keeping unit, the hub's product identity across every system",
        examples=["TEE-RED-M"],
    ),
]
Location = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.\-]+$",
        description="Stock location (warehouse, store) code",
        examples=["main"],
    ),
]
Amount = Annotated[
    Decimal,
    Field(
        max_digits=20,
        decimal_places=6,
        description="A money amount in the message's currency; never a float",
        examples=["19.90"],
    ),
]


def now_utc() -> datetime:
    return datetime.now(UTC)


def minor_unit(currency: str) -> Decimal:
    """The smallest unit of a currency as a Decimal quantum (0.01 for CNY, 1 for JPY)."""
    return Decimal(1).scaleb(-CURRENCY_EXPONENT.get(currency, 2))


class Money(BaseModel):
    """An amount with its currency."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    amount: Amount
    currency: Currency


class CanonicalMessage(BaseModel):
    """Base of every message on the hub's topics.

    The body is this model as JSON; identity, type, source and time travel as CloudEvents headers.
    `ce_type` carries the explicit schema version (`…v1`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    ce_type: ClassVar[str]
    topic: ClassVar[str]

    def kafka_key(self) -> str:
        """The aggregate this message must stay ordered with (the Kafka record key)."""
        raise NotImplementedError
