"""Hypothesis strategies and helpers for the ISO 20022 tests: payments and reports in the
shapes SCO banks send them (Cyrillic, Chinese and Persian names, every currency scopay knows,
three-decimal dinars, groups of many transactions)."""

from __future__ import annotations

import string
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from hypothesis import strategies as st
from lxml import etree

from scopay.domain.money import CURRENCIES
from scopay.domain.payment import (
    ChargeBearer,
    Party,
    Payment,
    PostalAddress,
    Priority,
    SettlementMethod,
)
from scopay.iso20022.codes import (
    CancellationStatus,
    EntryStatus,
    InvestigationConfirmation,
    TransactionStatus,
)
from scopay.iso20022.codes import SettlementMethod as IsoSettlementMethod
from scopay.iso20022.credit_transfer import read_credit_transfer
from scopay.iso20022.document import open_document
from scopay.iso20022.model import (
    BusinessAppHeader,
    CancellationRequest,
    CancellationResolution,
    Case,
    CreditTransferMessage,
    Entry,
    Notification,
    OriginalGroupStatus,
    PaymentReturn,
    ReturnInstruction,
    Statement,
    StatusReport,
    TransactionCancellation,
    TransactionCancellationStatus,
    TransactionStatusReport,
)
from scopay.iso20022.pacs008 import MESSAGE_TYPES, VERSIONS, read_transaction
from scopay.iso20022.parsing import MessageRefused

SAMPLES_DIR = Path(__file__).parent / "samples"
CUSTOMER_TRANSFER = (SAMPLES_DIR / "pacs008_cbpr_customer_transfer.xml").read_bytes()
CURRENT_VERSION = (SAMPLES_DIR / "pacs008_v13_customer_transfer.xml").read_bytes()
DAY_US = 86_400_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FIRST_DAY = (datetime(2020, 1, 1, tzinfo=UTC) - EPOCH).days
LAST_DAY = (datetime(2035, 12, 31, tzinfo=UTC) - EPOCH).days


def assert_schema_valid(schema: etree.XMLSchema, data: bytes) -> None:
    if not schema.validate(etree.fromstring(data)):
        raise AssertionError(f"not schema-valid: {schema.error_log}\n{data.decode()[:3000]}")


# Texts -------------------------------------------------------------------------------------

_LATIN = string.ascii_letters
_CYRILLIC = "АБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯабвгдеёжзийклмнопрстуфхцчшщъыьэюяҚқҒғӘәҮүҰұӨө"
_CHINESE = "中国人民银行上海北京贸易有限公司工商农业建设交通招商深圳广州天津重庆货物服务"
_PERSIAN = "ابپتثجچحخدذرزژسشصضطظعغفقکگلمنوهیآ"
_PUNCTUATION = " .,-/&'()"
NAME_ALPHABET = _LATIN + _CYRILLIC + _CHINESE + _PERSIAN + string.digits + _PUNCTUATION
ID_ALPHABET = string.ascii_letters + string.digits + "-/."


def texts(length_max: int, alphabet: str = NAME_ALPHABET) -> st.SearchStrategy[str]:
    return st.text(alphabet, min_size=1, max_size=length_max)


ids = texts(35, ID_ALPHABET)
names = st.one_of(
    texts(140),
    st.sampled_from(["ООО «Ромашка»", "上海贸易有限公司", "شرکت بازرگانی پارس",
                     "Kazakh Grain LLP", "Тоҷикистон Савдо"]),
)
# Not a head office's BIC11 (branch XXX): that reads as its BIC8 (ISO 9362), so no round trip.
bics = st.from_regex(r"[A-Z]{4}(CN|RU|IN|KZ|KG|TJ|UZ|PK|IR|BY)[A-Z0-9]{2}([A-Z0-9]{3})?",
                     fullmatch=True).filter(lambda bic: not bic.endswith("XXX"))
uetrs = st.uuids(version=4).map(str)
countries = st.sampled_from(["CN", "RU", "IN", "KZ", "KG", "TJ", "UZ", "PK", "IR", "BY", "MN"])
currencies = st.sampled_from(sorted(CURRENCIES))
amounts = st.integers(min_value=1, max_value=10**15)
reason_codes = st.sampled_from(["AC04", "AM04", "DUPL", "FF01", "NARR", "AG01", "RC01", "TM01"])
reason_texts = st.none() | texts(300)
days = st.integers(FIRST_DAY, LAST_DAY).map(lambda d: date.fromordinal(date(1970, 1, 1)
                                                                        .toordinal() + d))
moments_us = st.integers(FIRST_DAY * DAY_US, LAST_DAY * DAY_US)


def iban_for(country: str, bban: str) -> str:
    """An IBAN with correct ISO 7064 check digits."""
    rearranged = bban + country + "00"
    check = 98 - int("".join(str(int(c, 36)) for c in rearranged)) % 97
    return f"{country}{check:02d}{bban}"


accounts = st.one_of(
    st.builds(iban_for, countries, st.text(string.ascii_uppercase + string.digits, min_size=10,
                                           max_size=28)),
    st.text(string.digits, min_size=8, max_size=34),
    texts(34, ID_ALPHABET),
)


def addresses(town_max: int = 35, street_max: int = 70) -> st.SearchStrategy[PostalAddress]:
    return st.builds(
        PostalAddress,
        country=st.none() | countries,
        town=st.none() | texts(town_max),
        post_code=st.none() | texts(16, string.digits + string.ascii_uppercase),
        street=st.none() | texts(street_max),
        building_number=st.none() | texts(16, string.digits + "-/"),
        address_lines=st.lists(texts(70), max_size=3).map(tuple),
    )


parties = st.builds(Party, name=names, account=st.none() | accounts,
                    address=st.none() | addresses())


# Payments ------------------------------------------------------------------------------------

@st.composite
def timings(draw, created_at_us: int) -> dict:
    """Earliest, latest and reject-by times, all on one UTC day as ISO times require. On a
    later day than the creation's there is an earliest time: such a day is a value date, which
    reads as an earliest time at its start (a payment without one is not what a reader gives)."""
    if not draw(st.booleans()):
        return {}
    days_later = draw(st.integers(0, 3))
    day_start = created_at_us - created_at_us % DAY_US + days_later * DAY_US
    given = st.integers(0, DAY_US - 1).map(lambda us: day_start + us)
    moment = st.none() | given
    return {"earliest_us": draw(given if days_later else moment), "latest_us": draw(moment),
            "reject_by_us": draw(moment)}


@st.composite
def payments(draw, message_id: str, created_at_us: int, institution: bool = False) -> Payment:
    debtor_agent = draw(bics)
    customer = {} if institution else {
        "instructed_amount_minor": None, "instructed_currency": None,
        "exchange_rate": None, "charge_bearer": draw(st.sampled_from(ChargeBearer)),
        "charges": tuple(draw(st.lists(st.tuples(amounts, currencies, bics), max_size=2))),
    }
    settlement_currency = draw(currencies)
    if not institution and draw(st.booleans()):
        customer["instructed_amount_minor"] = draw(amounts)
        customer["instructed_currency"] = instructed = draw(currencies)
        # a rate exactly when the currencies differ (InstructedAmountAndExchangeRate1/2Rule)
        customer["exchange_rate"] = None if instructed == settlement_currency else draw(
            st.decimals(min_value=Decimal("0.000001"), max_value=Decimal("99999"), places=6))
    return Payment(
        uetr=draw(uetrs), instruction_id=draw(ids), end_to_end_id=draw(ids),
        debtor_agent=debtor_agent, creditor_agent=draw(bics), debtor=draw(parties),
        creditor=draw(parties), settlement_amount_minor=draw(amounts),
        settlement_currency=settlement_currency,
        remittance=draw(st.none() | texts(140)),
        purpose=draw(st.none() | st.sampled_from(["GDDS", "SUPP", "TRAD", "INTC", "CORT"])),
        priority=draw(st.sampled_from(Priority)),
        settlement_method=draw(st.sampled_from(SettlementMethod)),
        message_id=message_id,
        sender_bic=draw(st.none() | bics.filter(lambda bic: bic != debtor_agent)),
        intermediary_agents=tuple(draw(st.lists(bics, max_size=3))),
        **draw(timings(created_at_us)),
        **customer,
    )


@st.composite
def credit_transfers(draw, institution: bool = False,
                     size_max: int = 4) -> CreditTransferMessage:
    message_id = draw(ids)
    created_at_us = draw(moments_us)
    group = draw(st.lists(payments(message_id, created_at_us, institution), min_size=1,
                          max_size=size_max,
                          unique_by=(lambda p: p.uetr, lambda p: p.instruction_id)))
    return CreditTransferMessage(
        message_id=message_id, created_at_us=created_at_us, payments=tuple(group),
        settlement_method=draw(st.sampled_from(IsoSettlementMethod)),
    )


# Other messages ----------------------------------------------------------------------------

message_types = st.sampled_from(["pacs.008.001.08", "pacs.008.001.13", "pacs.009.001.08"])


def original_references() -> dict:
    return {
        "original_message_id": ids, "original_message_type": message_types,
        "original_uetr": st.none() | uetrs, "original_end_to_end_id": st.none() | ids,
        "original_instruction_id": st.none() | ids,
    }


transaction_status_reports = st.builds(
    TransactionStatusReport, **original_references(),
    status=st.sampled_from(TransactionStatus), reason_code=st.none() | reason_codes,
    reason_text=reason_texts, status_id=st.none() | ids,
    accepted_at_us=st.none() | moments_us, effective_settlement_date=st.none() | days,
    instructing_agent=st.none() | bics, instructed_agent=st.none() | bics,
)
status_reports = st.builds(
    StatusReport, message_id=ids, created_at_us=moments_us,
    transactions=st.lists(transaction_status_reports, min_size=1, max_size=3).map(tuple),
    original_group=st.none() | st.builds(
        OriginalGroupStatus, original_message_id=ids, original_message_type=message_types,
        status=st.none() | st.sampled_from(TransactionStatus),
        reason_code=st.none() | reason_codes, reason_text=reason_texts),
    instructing_agent=st.none() | bics, instructed_agent=st.none() | bics,
)


@st.composite
def payment_returns(draw) -> PaymentReturn:
    original = draw(st.booleans())
    return PaymentReturn(
        return_id=draw(ids), original_message_id=draw(ids),
        original_message_type=draw(message_types), returned_amount_minor=draw(amounts),
        currency=draw(currencies), reason_code=draw(reason_codes),
        original_uetr=draw(st.none() | uetrs), original_end_to_end_id=draw(st.none() | ids),
        original_instruction_id=draw(st.none() | ids),
        original_amount_minor=draw(amounts) if original else None,
        original_currency=draw(currencies) if original else None,
        settlement_date=draw(st.none() | days),
        charge_bearer=draw(st.none() | st.sampled_from(ChargeBearer)),
        instructing_agent=draw(st.none() | bics), instructed_agent=draw(st.none() | bics),
        reason_text=draw(reason_texts),
    )


return_instructions = st.builds(
    ReturnInstruction, message_id=ids, created_at_us=moments_us,
    # one payment and one return id per message (else AM05)
    returns=st.lists(payment_returns(), min_size=1, max_size=4,
                     unique_by=(lambda r: r.return_id,
                                lambda r: r.original_uetr or r.return_id)).map(tuple),
    settlement_method=st.sampled_from(IsoSettlementMethod),
)
cases = st.builds(Case, case_id=ids, creator=bics)


@st.composite
def cancellations(draw) -> TransactionCancellation:
    original = draw(st.booleans())
    return TransactionCancellation(
        original_message_id=draw(ids), original_message_type=draw(message_types),
        reason_code=draw(st.sampled_from(["DUPL", "FRAD", "TECH", "CUST", "AGNT"])),
        cancellation_id=draw(st.none() | ids), original_uetr=draw(st.none() | uetrs),
        original_end_to_end_id=draw(st.none() | ids),
        original_instruction_id=draw(st.none() | ids),
        original_amount_minor=draw(amounts) if original else None,
        original_currency=draw(currencies) if original else None,
        original_settlement_date=draw(st.none() | days), reason_text=draw(reason_texts),
        case=draw(st.none() | cases),
    )


cancellation_requests = st.builds(
    CancellationRequest, assignment_id=ids, assigner=bics, assignee=bics,
    created_at_us=moments_us,
    transactions=st.lists(cancellations(), min_size=1, max_size=3,  # each payment once
                          unique_by=lambda c: c.original_uetr or object()).map(tuple),
)


@st.composite
def cancellation_statuses(draw) -> TransactionCancellationStatus:
    original = draw(st.booleans())
    return TransactionCancellationStatus(
        **{name: draw(strategy) for name, strategy in original_references().items()},
        status=draw(st.sampled_from(CancellationStatus)),
        cancellation_status_id=draw(st.none() | ids),
        original_amount_minor=draw(amounts) if original else None,
        original_currency=draw(currencies) if original else None,
        reason_code=draw(st.none() | st.sampled_from(["ARDT", "LEGL", "NOAS", "NOOR", "CUST"])),
        reason_text=draw(reason_texts),
    )


cancellation_resolutions = st.builds(
    CancellationResolution, assignment_id=ids, assigner=bics, assignee=bics,
    created_at_us=moments_us, confirmation=st.sampled_from(InvestigationConfirmation),
    transactions=st.lists(cancellation_statuses(), max_size=3).map(tuple),
    resolved_case=st.none() | cases,
)
bank_transaction_codes = st.sampled_from(
    [("PMNT", "RCDT", "XBCT"), ("PMNT", "ICDT", "XBCT"), ("PMNT", "RRCT", "XBCT"),
     ("PMNT", "RCDT", "FICT"), ("ACMT", "MCOP", "OTHR")])


@st.composite
def entries(draw, currency: str) -> Entry:
    amount = draw(amounts) * draw(st.sampled_from([1, -1]))
    return Entry(
        amount_minor=amount, currency=currency, status=draw(st.sampled_from(EntryStatus)),
        bank_transaction_code=draw(bank_transaction_codes),
        booking_date=draw(st.none() | days), value_date=draw(st.none() | days),
        entry_reference=draw(st.none() | ids),
        account_servicer_reference=draw(st.none() | ids),
        message_id=draw(st.none() | ids), instruction_id=draw(st.none() | ids),
        end_to_end_id=draw(st.none() | ids), uetr=draw(st.none() | uetrs),
        debtor_agent=draw(st.none() | bics), creditor_agent=draw(st.none() | bics),
        remittance=draw(st.none() | texts(140)),
    )


@st.composite
def statements(draw) -> Statement:
    currency = draw(currencies)
    booked = draw(st.lists(entries(currency), max_size=5))
    opening = draw(st.integers(-10**14, 10**14))
    closing = opening + sum(e.amount_minor for e in booked if e.status == EntryStatus.BOOKED)
    page = draw(st.integers(1, 99_999))
    last_page = draw(st.booleans())
    return Statement(
        message_id=draw(ids), created_at_us=draw(moments_us), statement_id=draw(ids),
        account=draw(accounts), currency=currency, opening_balance_minor=opening,
        opening_date=draw(days), closing_balance_minor=closing, closing_date=draw(days),
        entries=tuple(booked), account_servicer=draw(st.none() | bics),
        sequence_number=draw(st.none() | st.integers(0, 10**17)),
        # a page before the last closes on an interim balance whatever the day: read as final
        final=draw(st.booleans()) if last_page else True, page=page, last_page=last_page,
    )


@st.composite
def notifications(draw) -> Notification:
    currency = draw(currencies)
    return Notification(
        message_id=draw(ids), created_at_us=draw(moments_us), notification_id=draw(ids),
        account=draw(accounts), currency=currency,
        entries=tuple(draw(st.lists(entries(currency), min_size=1, max_size=4))),
        account_servicer=draw(st.none() | bics),
    )


def app_headers(message_type: str) -> st.SearchStrategy[BusinessAppHeader]:
    return st.builds(
        BusinessAppHeader, from_bic=bics, to_bic=bics, business_message_id=ids,
        message_definition_id=st.just(message_type), created_at_us=moments_us,
        business_service=st.none() | st.just("swift.cbprplus.02"),
        possible_duplicate=st.booleans(),
    )


def dinar_group() -> CreditTransferMessage:
    """Fixed group that always runs: three-decimal dinars, a zero-decimal yen, three scripts."""
    created_at_us = 1_795_939_200_000_000
    names = ("شرکت بازرگانی پارس", "上海贸易有限公司", "ООО «Ромашка»", "Kuwait Trading Co")
    amounts_and_currencies = ((1_250_125, "KWD"), (7_500_001, "BHD"), (1_000_000, "JPY"),
                              (99, "CNY"))
    return CreditTransferMessage("DINARS-1", created_at_us, tuple(
        Payment(
            uetr=f"8a562c67-ca16-48ba-b074-65581be6f01{n}", instruction_id=f"I{n}",
            end_to_end_id=f"E{n}", debtor_agent="NBOKKWKW", creditor_agent="BKCHCNBJ",
            debtor=Party(name, account=iban_for("KW", "NBOK0000000000001000372151")),
            creditor=Party(names[-1 - n], address=PostalAddress(country="CN", town="上海")),
            settlement_amount_minor=minor, settlement_currency=currency,
            instructed_amount_minor=minor * 3, instructed_currency="KWD",
            exchange_rate=None if currency == "KWD" else Decimal("0.3333333333"),
            message_id="DINARS-1",
        )
        for n, (name, (minor, currency)) in enumerate(zip(names, amounts_and_currencies,
                                                          strict=True))
    ))


def from_tree(data: bytes) -> CreditTransferMessage:
    """A pacs.008 by the tree reader alone (how it was read before the text reader)."""
    document, message_type = open_document(data, MESSAGE_TYPES)
    return read_credit_transfer(document, VERSIONS[message_type], read_transaction)


def outcome(read, data: bytes):
    """What a reader makes of the bytes: its value, or its refusal's code and text."""
    try:
        return read(data)
    except MessageRefused as refused:
        return refused.reason_code, refused.text


def altered(data: bytes, old: str, new: str) -> bytes:
    """The sample with `old` (which it must contain) replaced by `new`."""
    assert old.encode() in data, f"sample lacks {old!r}"
    return data.replace(old.encode(), new.encode())
