"""The guard answers POST /v1/payments and /v1/payments/bulk itself, past FastAPI's layers.
The same requests through FastAPI's routing (direct_routes=False) must get the same answers:
status, content type and body, for settled, queued, refused and malformed payments."""

import json
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic_core import to_json

from scopay.api import payments as payments_module
from scopay.api.schemas import PaymentOut
from scopay.domain.payment import (
    PAYMENT_TIME_US_MAX,
    PAYMENT_TIME_US_MIN,
    Party,
    Payment,
    PaymentStatus,
    Priority,
    StatusChange,
)

ICBK, ABOC = "ICBKCNBJ", "ABOCCNBJ"  # tests/conftest.py: ICBK holds 1000.00 CNY
VARIABLE_FIELDS = ("uetr", "at")


def payment(amount: str, creditor: str = ABOC, **extra) -> dict:
    return {"uetr": str(uuid.uuid4()), "instruction_id": uuid.uuid4().hex[:16],
            "end_to_end_id": "E2E", "debtor_agent": ICBK, "creditor_agent": creditor,
            "debtor": {"name": "Ли Вэй"}, "creditor": {"name": "张伟"},
            "amount": amount, "currency": "CNY", **extra}


def _comparable(answer: httpx.Response):
    """The answer with what differs between two distinct payments (ids, times) blanked."""

    def blank(value):
        if isinstance(value, dict):
            return {k: "*" if k in VARIABLE_FIELDS else blank(v) for k, v in value.items()}
        if isinstance(value, list):
            return [blank(v) for v in value]
        return value

    return answer.status_code, answer.headers["content-type"], blank(answer.json())


CASES = {
    "settles": lambda: ("/v1/payments", payment("1.00")),
    "queues": lambda: ("/v1/payments", payment("900000.00")),
    "unknown creditor agent": lambda: ("/v1/payments", payment("1.00", creditor="NOPECNX0")),
    "too many decimals": lambda: ("/v1/payments", payment("1.001")),
    "unknown field": lambda: ("/v1/payments", payment("1.00", colour="red")),
    "missing field": lambda: ("/v1/payments", {"uetr": str(uuid.uuid4())}),
    "not an object": lambda: ("/v1/payments", [1, 2]),
    "bulk": lambda: ("/v1/payments/bulk", {"payments": [payment("1.00"), payment("2.00")]}),
    "empty bulk": lambda: ("/v1/payments/bulk", {"payments": []}),
    # What a pacs.008 cannot carry (scopay forwards each settled payment as one).
    "empty town": lambda: ("/v1/payments", payment(
        "1.00", creditor={"name": "张伟", "address": {"town": ""}})),
    "control character in a name": lambda: ("/v1/payments", payment(
        "1.00", debtor={"name": "Ли\u0007Вэй"})),
    "empty account": lambda: ("/v1/payments", payment(
        "1.00", debtor={"name": "Ли Вэй", "account": ""})),
    "address line of 71 characters": lambda: ("/v1/payments/bulk", {"payments": [payment(
        "1.00", creditor={"name": "张伟", "address": {"address_lines": ["x" * 71]}})]}),
    "times on two UTC dates": lambda: ("/v1/payments", payment(
        "1.00", earliest="2026-11-28T23:00:00Z", latest="2026-11-29T01:00:00+00:00")),
}


@pytest.mark.parametrize("case", CASES)
def test_direct_and_fastapi_routes_answer_alike(both_doors, case):
    answers = []
    for client in both_doors:
        path, body = CASES[case]()
        answers.append(client.post(path, json=body,
                                   headers={"Idempotency-Key": uuid.uuid4().hex}))
    assert _comparable(answers[0]) == _comparable(answers[1])


UNFORWARDABLE = ("empty town", "control character in a name", "empty account",
                 "address line of 71 characters", "times on two UTC dates")


@pytest.mark.parametrize("case", UNFORWARDABLE)
def test_payments_a_pacs008_cannot_carry_are_refused_by_both_doors(both_doors, engine, case):
    path, body = CASES[case]()
    answers = [client.post(path, json=body, headers={"Idempotency-Key": uuid.uuid4().hex})
               for client in both_doors]
    assert [a.status_code for a in answers] == [422, 422]
    assert answers[0].json() == answers[1].json()
    assert engine.payment((body.get("payments") or [body])[0]["uetr"]) is None


REFUSAL_ORDER = {
    # Whose payment it is comes first: another bank's payment is refused as forbidden,
    # whatever its content, so a caller learns nothing about it from a 422.
    "another bank's, with too many decimals": (
        "/v1/payments", lambda: payment("1.001", debtor_agent=ABOC, creditor=ICBK), 403),
    "another bank's, in a bulk after a valid one": (
        "/v1/payments/bulk", lambda: {"payments": [
            payment("1.00"), payment("0.00", debtor_agent=ABOC, creditor=ICBK)]}, 403),
    # In a bulk the first refused payment is the one answered for.
    "a bad amount before another bank's": (
        "/v1/payments/bulk", lambda: {"payments": [
            payment("1.001"), payment("1.00", debtor_agent=ABOC, creditor=ICBK)]}, 422),
}


@pytest.mark.parametrize("case", REFUSAL_ORDER)
def test_refusals_come_in_the_order_of_the_checks_by_both_doors(both_doors, engine, case):
    """The guard reads and converts a payment before it waits for a commit in flight, and
    looks at the caller's right to send it after: the order of the answers is unchanged."""
    path, body, status = REFUSAL_ORDER[case]
    answers = []
    for client in both_doors:
        sent = body()
        answers.append(client.post(path, json=sent, headers={"Idempotency-Key": uuid.uuid4().hex}))
        assert all(engine.payment(p["uetr"]) is None for p in sent.get("payments", [sent]))
    assert [a.status_code for a in answers] == [status, status]
    assert answers[0].json() == answers[1].json()


@pytest.mark.parametrize(("content", "content_type"), [
    (b'{"uetr": ', "application/json"),  # cut short
    (b'{"uetr": "\xff"}', "application/json"),  # not UTF-8
    (b'{"uetr": "\\ud800"}', "application/json"),  # a lone surrogate, escaped
    (b'{"uetr": NaN}', "application/json"),  # not JSON, though json.loads reads it
    (b"[" * 100_000 + b"]" * 100_000, "application/json"),  # nested past the parser's depth
    (b'{"uetr": ' + b"9" * 5_000 + b"}", "application/json"),  # more digits than Python reads
    (b"", "application/json"),  # empty
    (b'{"uetr": "x"}', None),  # no content type
    (b'{"uetr": "x"}', "text/plain"),
    (b'{"uetr": "x"}', "application/problem+json; charset=utf-8"),
])
def test_bodies_that_are_not_payments_are_refused_alike(both_doors, content, content_type):
    headers = {"Idempotency-Key": ""}
    if content_type is not None:
        headers["content-type"] = content_type
    answers = []
    for client in both_doors:
        headers["Idempotency-Key"] = uuid.uuid4().hex
        answers.append(client.post("/v1/payments", content=content, headers=headers))
    assert [a.status_code for a in answers] == [422, 422]
    assert answers[0].json() == answers[1].json()
    assert {a.headers["content-type"] for a in answers} == {"application/problem+json"}


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-8-sig"])
def test_a_payment_in_any_json_encoding_is_read_alike(both_doors, encoding):
    answers = []
    for client in both_doors:
        content = json.dumps(payment("1.00"), ensure_ascii=False).encode(encoding)
        answers.append(client.post("/v1/payments", content=content, headers={
            "content-type": "application/json", "Idempotency-Key": uuid.uuid4().hex}))
    assert _comparable(answers[0]) == _comparable(answers[1])


def test_the_answer_is_kept_with_the_payment_and_replayed(both_doors, engine):
    """Under an idempotency key the answer is committed with the payment: the record is there
    once the answer is, and a retry gets the same bytes without a second payment."""
    direct = both_doors[0]
    body, key = payment("3.00"), uuid.uuid4().hex
    first = direct.post("/v1/payments", json=body, headers={"Idempotency-Key": key})
    kept = engine.idempotency[(ICBK, key)]
    assert (kept[1], kept[2]) == (first.status_code, first.content)
    journal_before = engine.journal_count
    again = direct.post("/v1/payments", json=body, headers={"Idempotency-Key": key})
    assert again.headers.get("Idempotent-Replay") == "true"
    assert again.content == first.content and engine.journal_count == journal_before


def test_a_posted_answer_equals_the_payment_tracked_afterwards(both_doors):
    """The posted answer is serialised without building PaymentOut; it must read exactly as
    the tracker's answer, which FastAPI checks against PaymentOut."""
    direct = both_doors[0]
    body = payment("4.00")
    sent = direct.post("/v1/payments", json=body, headers={"Idempotency-Key": uuid.uuid4().hex})
    tracked = direct.get(f"/v1/payments/{body['uetr']}")
    assert sent.status_code == 201 and tracked.status_code == 200
    assert sent.json() == tracked.json()
    assert sent.json()["history"][-1]["at"].endswith("Z")


@given(at_us=st.integers(PAYMENT_TIME_US_MIN, PAYMENT_TIME_US_MAX))
def test_a_moment_in_an_answer_reads_as_the_response_model_writes_it(at_us):
    """Answers carry moments as text written once (payments._time_text); PaymentOut reads
    that text back as the moment, and writes the same bytes."""
    history = (StatusChange(PaymentStatus.RECEIVED, at_us, None, None),)
    shaped = payments_module._shape(
        Payment("8a562c67-ca16-48ba-b074-65581be6f011", "I1", "E1", ICBK, "ABOCCNBJ",
                Party("A"), Party("B"), 100, "CNY", latest_us=at_us),
        history, Priority.NORMAL, at_us, None)
    model = PaymentOut.model_validate(shaped)
    assert model.history[0].at == datetime(1970, 1, 1, tzinfo=UTC) + timedelta(
        microseconds=at_us)
    assert model.model_dump_json().encode() == to_json(shaped)
