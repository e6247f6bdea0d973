"""Currencies and amounts.

An amount is an integer number of minor units of one ISO 4217 currency. Decimal text
("1234.56") is parsed and formatted here and nowhere else; too many decimals is an error,
never a rounding.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

AMOUNT_MINOR_MAX = 2**63 - 1  # what a 64-bit signed column holds
# The largest balance, either sign, and the largest amount scopay takes in, in minor units:
# an ISO 20022 amount has at most 18 digits, and every amount and balance must be writable
# in the messages about it (camt.053, camt.054, pacs.008 ...).
BALANCE_MINOR_MAX = 10**18 - 1
AMOUNT_TEXT_LENGTH_MAX = 40


@dataclass(frozen=True, slots=True)
class Currency:
    code: str
    minor_units: int
    name: str


# ISO 4217 (list one, current): every currency of the SCO states, members, observers and
# partners, and the other currencies a cross-border system meets. Exponent per ISO 4217.
_ISO4217 = (
    ("AED", 2, "UAE Dirham"), ("AFN", 2, "Afghani"), ("AMD", 2, "Armenian Dram"),
    ("AUD", 2, "Australian Dollar"), ("AZN", 2, "Azerbaijan Manat"), ("BDT", 2, "Taka"),
    ("BHD", 3, "Bahraini Dinar"), ("BRL", 2, "Brazilian Real"), ("BYN", 2, "Belarusian Ruble"),
    ("CAD", 2, "Canadian Dollar"), ("CHF", 2, "Swiss Franc"), ("CLP", 0, "Chilean Peso"),
    ("CNY", 2, "Yuan Renminbi"), ("EGP", 2, "Egyptian Pound"), ("EUR", 2, "Euro"),
    ("GBP", 2, "Pound Sterling"), ("GEL", 2, "Lari"), ("HKD", 2, "Hong Kong Dollar"),
    ("IDR", 2, "Rupiah"), ("INR", 2, "Indian Rupee"), ("IQD", 3, "Iraqi Dinar"),
    ("IRR", 2, "Iranian Rial"), ("JOD", 3, "Jordanian Dinar"), ("JPY", 0, "Yen"),
    ("KGS", 2, "Som"), ("KHR", 2, "Riel"), ("KRW", 0, "Won"), ("KWD", 3, "Kuwaiti Dinar"),
    ("KZT", 2, "Tenge"), ("LAK", 2, "Lao Kip"), ("LKR", 2, "Sri Lanka Rupee"),
    ("LYD", 3, "Libyan Dinar"), ("MMK", 2, "Kyat"), ("MNT", 2, "Tugrik"),
    ("MVR", 2, "Rufiyaa"), ("MYR", 2, "Malaysian Ringgit"), ("NPR", 2, "Nepalese Rupee"),
    ("OMR", 3, "Rial Omani"), ("PKR", 2, "Pakistan Rupee"), ("QAR", 2, "Qatari Rial"),
    ("RUB", 2, "Russian Ruble"), ("SAR", 2, "Saudi Riyal"), ("SGD", 2, "Singapore Dollar"),
    ("THB", 2, "Baht"), ("TJS", 2, "Somoni"), ("TMT", 2, "Turkmenistan New Manat"),
    ("TND", 3, "Tunisian Dinar"), ("TRY", 2, "Turkish Lira"), ("UAH", 2, "Hryvnia"),
    ("USD", 2, "US Dollar"), ("UZS", 2, "Uzbekistan Sum"), ("VND", 0, "Dong"),
    ("ZAR", 2, "Rand"),
)
CURRENCIES: dict[str, Currency] = {
    code: Currency(code, units, name) for code, units, name in _ISO4217
}

_AMOUNT_PATTERN = re.compile(r"(?P<whole>0|[1-9][0-9]*)(?:\.(?P<fraction>[0-9]+))?")


class AmountError(ValueError):
    """Amount text that cannot be an amount of the currency (refused at the edge)."""


class CurrencyError(ValueError):
    """A currency code that is not in the ISO 4217 table."""


def currency_of(code: str) -> Currency:
    currency = CURRENCIES.get(code)
    if currency is None:
        raise CurrencyError(f"unknown currency {code!r}: not an ISO 4217 code scopay knows")
    return currency


def parse_amount(text: str, currency_code: str) -> int:
    """Parse a non-negative decimal string into minor units of the currency, exactly."""
    currency = currency_of(currency_code)
    if not isinstance(text, str):
        raise AmountError(f"amount must be a decimal string, not {type(text).__name__}")
    if len(text) > AMOUNT_TEXT_LENGTH_MAX:
        raise AmountError(f"amount text longer than {AMOUNT_TEXT_LENGTH_MAX} characters")
    match = _AMOUNT_PATTERN.fullmatch(text)
    if match is None:
        raise AmountError(f"amount {text!r} is not a plain decimal such as 1234.56")
    whole, fraction = match.groups("")
    units = currency.minor_units
    if len(fraction) > units:
        raise AmountError(
            f"amount {text!r} has {len(fraction)} decimals; {currency.code} allows {units}")
    minor = int(whole + fraction.ljust(units, "0"))  # whole * 10**units + the fraction
    if minor > AMOUNT_MINOR_MAX:
        raise AmountError(f"amount {text!r} is larger than scopay can hold")
    return minor


def parse_message_amount(text: str, currency_code: str) -> int:
    """parse_amount, within the 18 digits of an ISO 20022 amount (BALANCE_MINOR_MAX): an
    amount scopay takes in is one every message about it can carry."""
    minor = parse_amount(text, currency_code)
    if minor > BALANCE_MINOR_MAX:
        raise AmountError(f"{format_amount(minor, currency_code)} {currency_code} is outside "
                          "what an ISO amount holds")
    return minor


def format_amount(amount_minor: int, currency_code: str) -> str:
    """Format minor units as a decimal string with exactly the currency's decimals."""
    units = currency_of(currency_code).minor_units
    sign = "-" if amount_minor < 0 else ""
    whole, fraction = divmod(abs(amount_minor), 10**units)
    if units == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{fraction:0{units}d}"


@dataclass(frozen=True, slots=True)
class Money:
    """An amount with its currency; adding two currencies is a programmer error."""

    amount_minor: int
    currency: str

    def __add__(self, other: Money) -> Money:
        assert self.currency == other.currency, "cannot add amounts of two currencies"
        return Money(self.amount_minor + other.amount_minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        assert self.currency == other.currency, "cannot subtract amounts of two currencies"
        return Money(self.amount_minor - other.amount_minor, self.currency)

    def __str__(self) -> str:
        return f"{format_amount(self.amount_minor, self.currency)} {self.currency}"
