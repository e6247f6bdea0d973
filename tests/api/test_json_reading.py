"""The payment routes read a JSON body with pydantic-core in one pass (validate_json), and
only what that refuses the way FastAPI reads a body (json.loads, then validate_python), for
the refusal's words. So whatever the one pass takes must be what the other reads: the same
payments, field by field. Hypothesis writes bodies near the edges of both readers."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from scopay.api.errors import ApiError
from scopay.api.payments import _PAYMENT_BULK_IN, _PAYMENT_IN, _parsed

# Texts ISO MaxNText takes: no control characters but tab and line ends, no U+FFFE/FFFF.
XML_CHARS = st.characters(codec="utf-8", exclude_characters="\ufffe\uffff",
                          exclude_categories=("Cc", "Cs")) | st.sampled_from("\t\n\r")
TEXT = st.text(XML_CHARS, min_size=1, max_size=12) | st.sampled_from(
    ["Ли Вэй", "王芳", "محمد رضایی", "a" * 140, " ", "\u00e9\u0301"])
MOMENTS = st.sampled_from(
    ["2026-11-29T10:00:00Z", "2026-11-29T10:00:00+03:00", "2026-11-29T10:00:00",
     "2026-11-29", "2026-11-29T10:00:00.123456Z", "2026-11-29t10:00:00z", "1795939200",
     "2026-11-29T24:00:00Z"]) | st.integers(min_value=-10**11, max_value=10**11) | st.floats(
    allow_nan=False, allow_infinity=False, min_value=-1e11, max_value=1e11)
ODD = st.none() | st.booleans() | st.integers() | st.floats() | st.lists(
    st.integers(), max_size=2) | st.text(max_size=5) | st.dictionaries(st.text(max_size=3),
                                                                      st.integers(), max_size=2)
PARTY = st.fixed_dictionaries({"name": TEXT}, optional={
    "account": TEXT | st.none(),
    "address": st.none() | st.fixed_dictionaries({}, optional={
        "country": st.sampled_from(["CN", "RU", "IR"]), "town": TEXT, "post_code": TEXT,
        "street": TEXT, "building_number": TEXT, "address_lines": st.lists(TEXT, max_size=7)})})
VALID = st.fixed_dictionaries(
    {"uetr": st.uuids(version=4).map(str), "instruction_id": TEXT, "end_to_end_id": TEXT,
     "debtor_agent": st.sampled_from(["ICBKCNBJ", "SABRRUMMXXX", "BMJIIRTH"]),
     "creditor_agent": st.sampled_from(["ABOCCNBJ", "SABRRUMM"]), "debtor": PARTY,
     "creditor": PARTY,
     "amount": st.sampled_from(["1.00", "0.01", "12", "1e3", "-5", " 7.5", "1" * 40]),
     "currency": st.sampled_from(["CNY", "RUB", "IRR"])},
    optional={"priority": st.sampled_from(["urgent", "high", "normal"]),
              "charge_bearer": st.sampled_from(["SHAR", "DEBT", "CRED", "SLEV"]),
              "remittance": TEXT | st.none(), "purpose": st.sampled_from(["GDDS", "SUPP"]),
              "earliest": MOMENTS | st.none(), "latest": MOMENTS, "reject_by": MOMENTS})


@st.composite
def payments(draw) -> dict:
    """A payment the models take, or one changed in one place (a field of another type or
    value, one too many, one missing)."""
    payment = draw(VALID)
    change = draw(st.sampled_from(["none", "none", "replace", "add", "drop"]))
    key = draw(st.sampled_from(sorted(payment)))
    if change == "replace":
        payment[key] = draw(ODD)
    elif change == "add":
        payment[draw(st.sampled_from(["extra", "Uetr", key + " "]))] = draw(ODD)
    elif change == "drop":
        del payment[key]
    return payment


def as_json(value: object, ascii_only: bool) -> bytes:
    return json.dumps(value, ensure_ascii=ascii_only).encode()


def read_both(adapter, body: bytes):
    """(one pass, the two steps): each a model or the exception it raised."""
    outcomes = []
    for read in (lambda: adapter.validate_json(body),
                 lambda: adapter.validate_python(json.loads(body), from_attributes=True)):
        try:
            outcomes.append(read())
        except (ValidationError, ValueError, RecursionError) as error:
            outcomes.append(error)
    return outcomes


@settings(max_examples=300, deadline=None)
@given(payments(), st.booleans())
def test_what_one_pass_takes_the_two_steps_read_alike(payment, ascii_only):
    for adapter, value in ((_PAYMENT_IN, payment), (_PAYMENT_BULK_IN, {"payments": [payment]})):
        one_pass, two_steps = read_both(adapter, as_json(value, ascii_only))
        if not isinstance(one_pass, Exception):
            assert one_pass == two_steps
        elif not isinstance(two_steps, Exception):  # refused in one pass, read in two: the
            assert isinstance(one_pass, ValidationError)  # route reads it the second way


@given(st.sampled_from([
    b'{"payments": [{"uetr": "\\ud800"}]}',  # a lone surrogate: json reads it, jiter not
    b'\xef\xbb\xbf{"payments": []}',  # a byte order mark
    b'{"payments": []} x',  # trailing bytes
    b'{"payments": [' * 3000,  # nested past both parsers
    b'{"payments": [], "payments": []}',  # the same key twice
    b'{"payments": NaN}',
]))
def test_a_body_either_reader_refuses_is_refused_in_fastapis_words(body):
    scope = {"headers": [(b"content-type", b"application/json")]}
    try:
        _parsed(_PAYMENT_BULK_IN, scope, body)
    except ApiError as error:
        assert error.status == 422
        words = str(error.detail)
        assert "Invalid JSON" not in words  # jiter's wording never reaches the caller
    else:  # pragma: no cover — every body above is refused by one reader at least
        raise AssertionError(f"{body[:40]!r} was taken")
