"""ISO 20022 simple data types, read strictly from elements and written exactly.

Reading refuses (MessageRefused, naming the place) whatever the ISO type or scopay's stricter
rule refuses: texts over their Max length, BICs and UETRs off their pattern, amounts with more
decimals than their currency has, date-times without a UTC offset. Writing raises ValueError
for a value the ISO type cannot hold, so a message scopay builds is always schema-valid.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import TypeVar

from lxml import etree

from scopay.domain.money import (
    AMOUNT_MINOR_MAX,
    CURRENCIES,
    AmountError,
    format_amount,
    parse_amount,
)
from scopay.domain.participant import is_valid_bic
from scopay.domain.payment import DAY_US, UETR_PATTERN, is_valid_uetr
from scopay.iso20022.codes import ReasonCode
from scopay.iso20022.pattern import Unreadable, code_rule, non_capturing, text_rule
from scopay.iso20022.shape import TextReader, add, refuse_at

ID_LENGTH_MAX = 35  # Max35Text: message, instruction, end-to-end and case ids
NAME_LENGTH_MAX = 140  # Max140Text
REASON_TEXT_LENGTH_MAX = 105  # Max105Text, one AddtlInf line
REASON_LINES_MAX = 4  # AddtlInf lines scopay writes for one reason
AMOUNT_DIGITS_MAX = 18  # totalDigits of ISO currency amounts
RATE_DIGITS_MAX = 11  # BaseOneRate totalDigits
RATE_FRACTION_DIGITS_MAX = 10  # BaseOneRate fractionDigits
CONTROL_SUM_DIGITS_MAX = 18  # DecimalNumber totalDigits

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EPOCH_ORDINAL = EPOCH.toordinal()
ONE_MICROSECOND = timedelta(microseconds=1)

_FORMAT = ReasonCode.INVALID_FILE_FORMAT
_DATE_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})"
)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_TIME = re.compile(r"[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})")
_DECIMAL = re.compile(r"(0|[1-9][0-9]*)(\.[0-9]+)?")
_COUNT = re.compile(r"[0-9]{1,15}")
_EXTERNAL_CODE = re.compile(r"[A-Z0-9]{4}")
_BOOLEAN = {"true": True, "1": True, "false": False, "0": False}

Code = TypeVar("Code", bound=StrEnum)


# Reading ---------------------------------------------------------------------------------

def text_reader(length_max: int) -> TextReader:
    """A leaf reader for ISO MaxNText."""
    reader = _text_readers.get(length_max)
    if reader is None:
        reader = _text_readers[length_max] = TextReader(length_max)
    return reader


_text_readers: dict[int, TextReader] = {}
read_id = text_reader(ID_LENGTH_MAX)
read_name = text_reader(NAME_LENGTH_MAX)
read_reason_line = text_reader(REASON_TEXT_LENGTH_MAX)


def read_bic(element: etree._Element) -> str:
    """A BIC as scopay names institutions: a head office's BIC11 (branch XXX) is its BIC8."""
    bic = element.text
    if bic is None or not is_valid_bic(bic) or len(element):
        refuse_at(element, ReasonCode.BANK_IDENTIFIER_INCORRECT,
                  f"{bic!r} is not a BIC (ISO 9362: 4 letters, 2 letters, 2 or 5 alphanumerics)")
    return institution_bic(bic)


def institution_bic(bic: str) -> str:
    """ISO 9362: branch code XXX names the institution itself, as its 8-character BIC does;
    participants are registered by the latter."""
    return bic[:8] if bic.endswith(_HEAD_OFFICE_BRANCH) and len(bic) == 11 else bic


def bic_text(text: str) -> str:
    """read_bic's rule, remembering the BICs it took with the institution each names (a
    batch names the same few, and every message its agents)."""
    institution = _VALID_BICS.get(text)
    if institution is None:
        if not is_valid_bic(text):
            raise Unreadable
        institution = institution_bic(text)
        if len(_VALID_BICS) < _VALID_BICS_MAX:
            _VALID_BICS[text] = institution
    return institution


_HEAD_OFFICE_BRANCH = "XXX"
_VALID_BICS: dict[str, str] = {}  # BIC -> institution_bic
_VALID_BICS_MAX = 10_000
text_rule(read_bic, "[A-Z0-9]{8}(?:[A-Z0-9]{3})?", bic_text)


def read_uetr(element: etree._Element) -> str:
    uetr = element.text
    if uetr is None or not is_valid_uetr(uetr) or len(element):
        refuse_at(element, _FORMAT, f"{uetr!r} is not a UETR (lower-case UUID version 4)")
    return uetr


text_rule(read_uetr, UETR_PATTERN.pattern)  # is_valid_uetr's rule


def code_reader(codes: type[Code]) -> Callable[[etree._Element], Code]:
    """A leaf reader for one ISO code list."""
    by_value = {code.value: code for code in codes}
    allowed = ", ".join(by_value)

    def read_code(element: etree._Element) -> Code:
        code = by_value.get(element.text or "")
        if code is None or len(element):
            refuse_at(element, _FORMAT, f"{element.text!r} is not one of {allowed}")
        return code

    text_rule(read_code, *code_rule(by_value))
    return read_code


def read_external_code(element: etree._Element) -> str:
    """A code of an ISO external code set: four upper-case letters or digits."""
    code = element.text
    if code is None or not _EXTERNAL_CODE.fullmatch(code) or len(element):
        refuse_at(element, _FORMAT, f"{code!r} is not an ISO external code (4 characters)")
    return code


text_rule(read_external_code, _EXTERNAL_CODE.pattern)


def read_currency(element: etree._Element, code: str | None) -> str:
    if code is None:
        refuse_at(element, _FORMAT, "amount lacks its Ccy attribute")
    if code not in CURRENCIES:
        refuse_at(element, ReasonCode.NOT_ALLOWED_CURRENCY,
                  f"currency {code!r} is not an ISO 4217 code scopay knows")
    return code


def read_currency_code(element: etree._Element) -> str:
    if len(element):
        refuse_at(element, _FORMAT, "currency code expected, found elements")
    return read_currency(element, element.text)


def read_amount(element: etree._Element) -> tuple[int, str]:
    """(minor units, currency): exact, with no more decimals than the currency has."""
    currency = read_currency(element, element.get("Ccy"))
    text = element.text
    if text is None or len(element):
        refuse_at(element, ReasonCode.INVALID_AMOUNT, "amount is empty")
    try:
        minor = parse_amount(text, currency)
    except AmountError as error:
        refuse_at(element, ReasonCode.INVALID_AMOUNT, str(error))
    if len(text) - ("." in text) > AMOUNT_DIGITS_MAX:
        refuse_at(element, ReasonCode.INVALID_AMOUNT,
                  f"amount {text!r} has more than {AMOUNT_DIGITS_MAX} digits")
    return minor, currency


def amount_text(text: str) -> tuple[int, str]:
    """read_amount's rule on `XXX">1234.56` (Ccy, then a text of _AMOUNT_TEXT): a currency
    scopay knows, parse_amount's exact reading (no more decimals than the currency has, at most
    AMOUNT_MINOR_MAX minor units) and at most AMOUNT_DIGITS_MAX digits, which also keeps within
    parse_amount's text length."""
    currency = text[:3]
    units = _MINOR_UNITS.get(currency)
    whole, _, fraction = text[5:].partition(".")
    if (units is None or len(fraction) > units
            or len(whole) + len(fraction) > AMOUNT_DIGITS_MAX):
        raise Unreadable
    minor = int(whole + fraction) * _SCALES[units - len(fraction)]
    if minor > AMOUNT_MINOR_MAX:
        raise Unreadable
    return minor, currency


# Minor units per currency; the decimal text parse_amount reads.
_MINOR_UNITS = {code: currency.minor_units for code, currency in CURRENCIES.items()}
_SCALES = tuple(10 ** missing for missing in range(max(_MINOR_UNITS.values()) + 1))
_AMOUNT_TEXT = r"(?:0|[1-9][0-9]*)(?:\.[0-9]+)?"
text_rule(read_amount, f'[A-Z]{{3}}">{_AMOUNT_TEXT}', amount_text, attribute="Ccy",
          distinct=True)


def read_decimal(element: etree._Element, digits_max: int,
                 fraction_digits_max: int | None = None) -> Decimal:
    """A non-negative plain decimal (rates, control sums) within its ISO digit limits."""
    text = element.text
    match = _DECIMAL.fullmatch(text or "")
    if match is None or len(element):
        refuse_at(element, _FORMAT, f"{text!r} is not a plain non-negative decimal")
    fraction = len(match.group(2) or ".") - 1
    if fraction_digits_max is not None and fraction > fraction_digits_max:
        refuse_at(element, _FORMAT, f"{text!r} has more than {fraction_digits_max} decimals")
    if len(match.group(1)) + fraction > digits_max:
        refuse_at(element, _FORMAT, f"{text!r} has more than {digits_max} digits")
    return Decimal(text)


def decimal_rule(reader: Callable[[etree._Element], Decimal], digits_max: int,
                 fraction_digits_max: int | None = None) -> None:
    """Register the text rule of a reader calling read_decimal with these limits."""
    def convert(text: str) -> Decimal:
        whole, _, fraction = text.partition(".")
        if ((fraction_digits_max is not None and len(fraction) > fraction_digits_max)
                or len(whole) + len(fraction) > digits_max):
            raise Unreadable
        return Decimal(text)

    text_rule(reader, non_capturing(_DECIMAL.pattern), convert)


def read_count(element: etree._Element) -> int:
    text = element.text
    if text is None or not _COUNT.fullmatch(text) or len(element):
        refuse_at(element, _FORMAT, f"{text!r} is not a count of 1 to 15 digits")
    return int(text)


text_rule(read_count, _COUNT.pattern, int)


def read_boolean(element: etree._Element) -> bool:
    value = _BOOLEAN.get(element.text or "")
    if value is None or len(element):
        refuse_at(element, _FORMAT, f"{element.text!r} is not true or false")
    return value


def read_datetime_us(element: etree._Element) -> int:
    """An ISODateTime as microseconds since the Unix epoch; its UTC offset is required."""
    text = element.text or ""
    if not _DATE_TIME.fullmatch(text) or len(element):
        refuse_at(element, _FORMAT,
                  f"{text!r} is not a date-time with UTC offset, e.g. 2026-11-29T09:30:00+00:00")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as error:
        refuse_at(element, _FORMAT, f"{text!r} is not a date-time: {error}")
    return (moment - EPOCH) // ONE_MICROSECOND


def datetime_us_text(text: str) -> int:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise Unreadable from None
    return (moment - EPOCH) // ONE_MICROSECOND


text_rule(read_datetime_us, non_capturing(_DATE_TIME.pattern), datetime_us_text)


def read_date(element: etree._Element) -> date:
    text = element.text or ""
    if not _DATE.fullmatch(text) or len(element):
        refuse_at(element, _FORMAT, f"{text!r} is not an ISO date such as 2026-11-29")
    try:
        return date.fromisoformat(text)
    except ValueError as error:
        refuse_at(element, _FORMAT, f"{text!r} is not a date: {error}")


def date_text(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise Unreadable from None


text_rule(read_date, _DATE.pattern, date_text)


def read_time(element: etree._Element) -> time:
    """An ISOTime with its UTC offset (a time without one names no instant)."""
    text = element.text or ""
    if not _TIME.fullmatch(text) or len(element):
        refuse_at(element, _FORMAT, f"{text!r} is not a time with UTC offset, e.g. 09:30:00Z")
    try:
        return time.fromisoformat(text)
    except ValueError as error:
        refuse_at(element, _FORMAT, f"{text!r} is not a time: {error}")


def time_text(text: str) -> time:
    try:
        return time.fromisoformat(text)
    except ValueError:
        raise Unreadable from None


text_rule(read_time, non_capturing(_TIME.pattern), time_text)


def instant_us(day: date, clock: time) -> int:
    """Microseconds since the epoch of a time (with offset) on a date."""
    return (datetime.combine(day, clock) - EPOCH) // ONE_MICROSECOND


def read_date_or_datetime(element: etree._Element) -> date:
    """DateAndDateTime2Choice content: Dt, or the date of DtTm."""
    if etree.QName(element).localname == "Dt":
        return read_date(element)
    read_datetime_us(element)
    return date.fromisoformat(element.text[:10])  # the date as written, in its own offset


# Writing ---------------------------------------------------------------------------------

def check_text(text: str, length_max: int, what: str) -> str:
    if not isinstance(text, str) or not 1 <= len(text) <= length_max:
        raise ValueError(f"{what} must be 1 to {length_max} characters, not {text!r}")
    return text


def add_text(parent: etree._Element, name: str, text: str, length_max: int) -> etree._Element:
    return add(parent, name, check_text(text, length_max, name))


def add_id(parent: etree._Element, name: str, text: str) -> etree._Element:
    return add_text(parent, name, text, ID_LENGTH_MAX)


def add_external_code(parent: etree._Element, name: str, code: str) -> etree._Element:
    if not isinstance(code, str) or not _EXTERNAL_CODE.fullmatch(code):
        raise ValueError(f"{name} {code!r} is not an ISO external code (4 characters)")
    return add(parent, name, code)


def add_bic(parent: etree._Element, name: str, bic: str) -> etree._Element:
    if not is_valid_bic(bic):
        raise ValueError(f"{name} {bic!r} is not a BIC")
    return add(parent, name, bic)


def add_uetr(parent: etree._Element, name: str, uetr: str) -> etree._Element:
    if not is_valid_uetr(uetr):
        raise ValueError(f"{name} {uetr!r} is not a UETR")
    return add(parent, name, uetr)


def format_iso_amount(amount_minor: int, currency: str) -> str:
    text = format_amount(amount_minor, currency)
    if amount_minor < 0 or len(text) - ("." in text) > AMOUNT_DIGITS_MAX:
        raise ValueError(f"{text} {currency} is outside what an ISO amount holds")
    return text


def add_amount(parent: etree._Element, name: str, amount_minor: int,
               currency: str) -> etree._Element:
    element = add(parent, name, format_iso_amount(amount_minor, currency))
    element.set("Ccy", currency)
    return element


def format_decimal(value: Decimal, digits_max: int, fraction_digits_max: int | None,
                   what: str) -> str:
    text = format(value, "f")
    match = _DECIMAL.fullmatch(text)
    fraction = len(match.group(2) or ".") - 1 if match else 0
    if (match is None or len(match.group(1)) + fraction > digits_max
            or (fraction_digits_max is not None and fraction > fraction_digits_max)):
        raise ValueError(f"{what} {value} does not fit an ISO decimal of {digits_max} digits")
    return text


def format_datetime_us(moment_us: int, utc: str = "+00:00") -> str:
    """An ISODateTime in UTC; `utc` is '+00:00' (CBPR+ documents) or 'Z' (CBPR+ headers)."""
    text = (EPOCH + moment_us * ONE_MICROSECOND).isoformat()
    return text[:-6] + utc


def format_time_us(moment_us: int) -> str:
    return (EPOCH + moment_us * ONE_MICROSECOND).time().isoformat() + "Z"


def date_of_us(moment_us: int) -> date:
    """The UTC date of a moment (ValueError outside years 1 to 9999)."""
    return date.fromordinal(EPOCH_ORDINAL + moment_us // DAY_US)


def add_reason_text(parent: etree._Element, text: str | None) -> None:
    """A reason text as as many AddtlInf lines of 105 characters as it needs."""
    if text is None:
        return
    check_text(text, REASON_TEXT_LENGTH_MAX * REASON_LINES_MAX, "reason text")
    for start in range(0, len(text), REASON_TEXT_LENGTH_MAX):
        add(parent, "AddtlInf", text[start:start + REASON_TEXT_LENGTH_MAX])

