import csv
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scopay.domain.money import (
    AMOUNT_MINOR_MAX,
    AMOUNT_TEXT_LENGTH_MAX,
    CURRENCIES,
    AmountError,
    CurrencyError,
    Money,
    currency_of,
    format_amount,
    parse_amount,
)


def sco_currency_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_currency_table_covers_every_sco_currency_with_its_minor_units(shared_data):
    rows = sco_currency_rows(shared_data("sco_countries.csv"))
    assert len(rows) >= 27
    for row in rows:
        currency = currency_of(row["currency"])
        assert currency.minor_units == int(row["minor_units"]), row["currency"]


def test_three_decimal_currencies_have_three_minor_units():
    assert CURRENCIES["BHD"].minor_units == 3
    assert CURRENCIES["KWD"].minor_units == 3
    assert CURRENCIES["CNY"].minor_units == 2


def test_unknown_currency_code_is_refused():
    with pytest.raises(CurrencyError, match="XXX"):
        currency_of("XXX")


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("1234.56", "CNY", 123456),
        ("1234.5", "CNY", 123450),
        ("1234", "CNY", 123400),
        ("0", "CNY", 0),
        ("0.01", "CNY", 1),
        ("0.001", "KWD", 1),
        ("1.234", "BHD", 1234),
        ("7", "JPY", 7),
        ("92233720368547758.07", "CNY", AMOUNT_MINOR_MAX),
    ],
)
def test_parse_amount_is_exact(text, currency, minor):
    assert parse_amount(text, currency) == minor


def test_parse_amount_refuses_more_decimals_than_the_currency_has():
    with pytest.raises(AmountError, match=r"3 decimals; CNY allows 2"):
        parse_amount("1.234", "CNY")
    with pytest.raises(AmountError, match=r"1 decimals; JPY allows 0"):
        parse_amount("1.0", "JPY")


@pytest.mark.parametrize(
    "text",
    ["-1", "1e3", " 1", "1 ", "1.", ".5", "", "01", "00.5", "1,5", "NaN", "Infinity", "+1",
     "1\n", "１", "0x10", "1_000"],
)
def test_parse_amount_refuses_text_that_is_not_a_plain_decimal(text):
    with pytest.raises(AmountError):
        parse_amount(text, "CNY")


@pytest.mark.parametrize("value", [1, 1.5, Decimal("1"), None, b"1"])
def test_parse_amount_refuses_values_that_are_not_strings(value):
    with pytest.raises(AmountError, match="decimal string"):
        parse_amount(value, "CNY")


def test_parse_amount_refuses_amounts_too_large_to_hold():
    with pytest.raises(AmountError, match="larger"):
        parse_amount("92233720368547758.08", "CNY")


def test_parse_amount_refuses_overlong_text():
    with pytest.raises(AmountError, match="longer"):
        parse_amount("1" * (AMOUNT_TEXT_LENGTH_MAX + 1), "JPY")


def test_parse_amount_refuses_unknown_currency():
    with pytest.raises(CurrencyError):
        parse_amount("1.00", "XXX")


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [(123456, "CNY", "1234.56"), (1, "KWD", "0.001"), (5, "JPY", "5"), (-5, "CNY", "-0.05"),
     (0, "BHD", "0.000"), (100, "RUB", "1.00")],
)
def test_format_amount_writes_exactly_the_currency_decimals(minor, currency, text):
    assert format_amount(minor, currency) == text


currency_codes = st.sampled_from(sorted(CURRENCIES))


@settings(max_examples=200, deadline=None)
@given(minor=st.integers(min_value=0, max_value=AMOUNT_MINOR_MAX), code=currency_codes)
def test_format_then_parse_returns_the_same_minor_units(minor, code):
    text = format_amount(minor, code)
    assert parse_amount(text, code) == minor
    units = CURRENCIES[code].minor_units
    if units:
        assert len(text.split(".")[1]) == units
    else:
        assert "." not in text


@settings(max_examples=100, deadline=None)
@given(minor=st.integers(min_value=1, max_value=AMOUNT_MINOR_MAX), code=currency_codes)
def test_format_of_a_negative_amount_is_the_positive_with_a_minus(minor, code):
    assert format_amount(-minor, code) == "-" + format_amount(minor, code)


def test_money_refuses_to_add_or_subtract_two_currencies():
    with pytest.raises(AssertionError):
        _ = Money(100, "CNY") + Money(100, "RUB")
    with pytest.raises(AssertionError):
        _ = Money(100, "CNY") - Money(100, "RUB")


def test_money_adds_and_subtracts_within_one_currency():
    assert Money(150, "CNY") + Money(50, "CNY") == Money(200, "CNY")
    assert Money(150, "CNY") - Money(200, "CNY") == Money(-50, "CNY")
    assert str(Money(123456, "CNY")) == "1234.56 CNY"


@given(whole=st.integers(0, 10**12), fraction=st.text("0123456789", max_size=3),
       code=currency_codes)
def test_parse_amount_agrees_with_decimal_arithmetic(whole, fraction, code):
    """Any plain decimal with no more decimals than the currency has is read exactly: as
    Decimal arithmetic reads it, in minor units."""
    units = CURRENCIES[code].minor_units
    text = f"{whole}.{fraction}" if fraction else str(whole)
    if len(fraction) > units:
        with pytest.raises(AmountError):
            parse_amount(text, code)
        return
    assert parse_amount(text, code) == int(Decimal(text).scaleb(units))
