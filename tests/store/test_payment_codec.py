import dataclasses
import json
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from scopay.domain.payment import (
    ChargeBearer,
    Party,
    Payment,
    PostalAddress,
    Priority,
    SettlementMethod,
)
from scopay.store.payment_codec import decode_payment, encode_payment

# Text as JSON may carry it: any character but a lone surrogate, which no UTF-8 text holds.
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)


def a_payment(text: str = "Bench", **changes) -> Payment:
    fields = dict(
        uetr="3af99518-475c-4286-9ba5-078df73e93f3", instruction_id="I1", end_to_end_id="E1",
        debtor_agent="DEMACNX0", creditor_agent="DEMBCNX0",
        debtor=Party(text, f"CN{text}", PostalAddress("CN", text, "100000", "Chang'an Jie",
                                                       "1", (text, "floor 2"))),
        creditor=Party(text), settlement_amount_minor=12_345, settlement_currency="CNY",
        instructed_amount_minor=160_000, instructed_currency="RUB",
        exchange_rate=Decimal("0.0771562500"), charge_bearer=ChargeBearer.DEBTOR,
        remittance=text, purpose="GDDS", priority=Priority.URGENT,
        settlement_method=SettlementMethod.NET, earliest_us=1, latest_us=2, reject_by_us=3,
        message_id="M1", sender_bic="DEMCCNX0", intermediary_agents=("DEMDCNX0", text),
        charges=((100, "CNY", "DEMACNX0"), (7, "RUB", "DEMBCNX0")),
    )
    return Payment(**{**fields, **changes})


def canonical_json(text: str) -> str:
    """What earlier versions stored: json.dumps with sorted keys, compact, non-ASCII kept."""
    return json.dumps(json.loads(text), sort_keys=True, ensure_ascii=False,
                      separators=(",", ":"))


@given(TEXT)
def test_a_payment_is_stored_as_canonical_json_and_read_back_equal(text):
    payment = a_payment(text)
    stored = encode_payment(payment)
    assert stored == canonical_json(stored)
    assert decode_payment(stored) == payment


def test_every_field_of_a_payment_is_stored():
    payment = a_payment(message_type="pacs.009.001.08")
    stored = encode_payment(payment)
    assert set(json.loads(stored)) == {field.name for field in dataclasses.fields(Payment)}
    assert stored == canonical_json(stored)
    assert decode_payment(stored) == payment


def test_a_payment_with_only_required_fields_reads_back_equal():
    payment = Payment("3af99518-475c-4286-9ba5-078df73e93f3", "I1", "E1", "DEMACNX0",
                      "DEMBCNX0", Party("x"), Party("y"), 1, "CNY")
    stored = encode_payment(payment)
    assert stored == canonical_json(stored)
    assert json.loads(stored) == {
        "uetr": "3af99518-475c-4286-9ba5-078df73e93f3", "instruction_id": "I1",
        "end_to_end_id": "E1", "debtor_agent": "DEMACNX0", "creditor_agent": "DEMBCNX0",
        "debtor": {"name": "x"}, "creditor": {"name": "y"}, "settlement_amount_minor": 1,
        "settlement_currency": "CNY"}  # no defaults: null, [], SHAR, normal, gross
    assert decode_payment(stored) == payment


def test_text_stored_by_earlier_versions_reads_back_as_the_payment():
    payment = a_payment("Müller 中")
    earlier = ('{"charge_bearer":"DEBT","charges":[[100,"CNY","DEMACNX0"],[7,"RUB","DEMBCNX0"]],'
               '"creditor":{"account":null,"address":null,"name":"Müller 中"},'
               '"creditor_agent":"DEMBCNX0","debtor":{"account":"CNMüller 中","address":'
               '{"address_lines":["Müller 中","floor 2"],"building_number":"1","country":"CN",'
               '"post_code":"100000","street":"Chang\'an Jie","town":"Müller 中"},'
               '"name":"Müller 中"},"debtor_agent":"DEMACNX0","earliest_us":1,'
               '"end_to_end_id":"E1","exchange_rate":"0.0771562500",'
               '"instructed_amount_minor":160000,"instructed_currency":"RUB",'
               '"instruction_id":"I1","intermediary_agents":["DEMDCNX0","Müller 中"],'
               '"latest_us":2,"message_id":"M1","priority":"urgent","purpose":"GDDS",'
               '"reject_by_us":3,"remittance":"Müller 中","sender_bic":"DEMCCNX0",'
               '"settlement_amount_minor":12345,"settlement_currency":"CNY",'
               '"settlement_method":"net","uetr":"3af99518-475c-4286-9ba5-078df73e93f3"}')
    assert decode_payment(earlier) == payment
    # written now, the same payment leaves out what it holds by default (its creditor's
    # account and address), and reads back alike
    now = json.loads(earlier)
    now["creditor"] = {"name": "Müller 中"}
    assert encode_payment(payment) == canonical_json(json.dumps(now))
    assert decode_payment(encode_payment(payment)) == payment


OPTIONAL_TEXT = st.none() | TEXT
OPTIONAL_NUMBER = st.none() | st.integers(0, 10**18 - 1)
ADDRESSES = st.none() | st.builds(
    PostalAddress, OPTIONAL_TEXT, OPTIONAL_TEXT, OPTIONAL_TEXT, OPTIONAL_TEXT, OPTIONAL_TEXT,
    st.lists(TEXT, max_size=2).map(tuple))
PARTIES = st.builds(Party, TEXT, OPTIONAL_TEXT, ADDRESSES)


@given(debtor=PARTIES, creditor=PARTIES, instructed=OPTIONAL_NUMBER, currency=OPTIONAL_TEXT,
       rate=st.none() | st.decimals(allow_nan=False, allow_infinity=False, places=6),
       charge_bearer=st.sampled_from(ChargeBearer), priority=st.sampled_from(Priority),
       method=st.sampled_from(SettlementMethod), texts=st.lists(OPTIONAL_TEXT, min_size=4,
                                                                max_size=4),
       times=st.lists(OPTIONAL_NUMBER, min_size=3, max_size=3),
       agents=st.lists(TEXT, max_size=2),
       charges=st.lists(st.tuples(st.integers(0, 10**6), TEXT, TEXT), max_size=2))
def test_any_payment_reads_back_equal_with_no_default_stored(
        debtor, creditor, instructed, currency, rate, charge_bearer, priority, method, texts,
        times, agents, charges):
    remittance, purpose, message_id, sender_bic = texts
    payment = Payment(
        "3af99518-475c-4286-9ba5-078df73e93f3", "I1", "E1", "DEMACNX0", "DEMBCNX0", debtor,
        creditor, 5, "CNY", instructed, currency, rate, charge_bearer, remittance, purpose,
        priority, method, *times, message_id, sender_bic, tuple(agents),
        tuple(charges), message_id and "pacs.008.001.08")
    stored = encode_payment(payment)
    assert stored == canonical_json(stored)
    assert decode_payment(stored) == payment
    data = json.loads(stored)
    assert not [key for key, value in leaves(data) if value is None or value == []]
    assert data.get("charge_bearer") != "SHAR" and data.get("priority") != "normal"
    assert data.get("settlement_method") != "gross"


def leaves(data: dict, prefix: str = ""):
    for key, value in data.items():
        yield prefix + key, value
        if isinstance(value, dict):
            yield from leaves(value, f"{prefix}{key}.")
