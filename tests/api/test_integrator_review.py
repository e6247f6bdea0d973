"""What an integrator meets at the edges, as a review writing a client from the docs found
it: a trailing slash, and refusals of the ISO 20022 route before it runs."""

import asyncio
import time
import uuid

import httpx
import pytest

from scopay.api import signing
from scopay.api.app import create_app
from scopay.client import (
    AsyncScopayClient,
    KeyFile,
    ScopayClient,
    ScopayProblem,
    new_private_key,
    raise_for_problem,
)
from scopay.engine.runner import LoopRunner, RunnerBusyError

BANK_A = "DEMACNX0"


def test_a_path_with_a_trailing_slash_is_not_found_not_redirected(live_server):
    """A redirect would be followed unsigned (a 401 to puzzle over): a plain 404 says it."""
    with live_server.client(BANK_A) as bank:
        answer = bank.get("/v1/accounts/")
    assert answer.status_code == 404, answer.text
    assert "location" not in answer.headers


def test_the_iso_route_refuses_an_unsigned_or_forged_request_in_xml(live_server):
    with httpx.Client(base_url=live_server.url) as plain:
        unsigned = plain.post("/v1/iso20022", content=b"<Document/>",
                              headers={"content-type": "application/xml"})
        forged = plain.post("/v1/iso20022", content=b"<Document/>", headers={
            "content-type": "application/xml", "Idempotency-Key": "forged-1",
            signing.KEY_ID_HEADER: live_server.keys[BANK_A].key_id,
            signing.TIMESTAMP_HEADER: str(int(time.time())),
            signing.NONCE_HEADER: "n" * 16, signing.SIGNATURE_HEADER: "A" * 86})
    for answer in (unsigned, forged):
        assert answer.status_code == 401, answer.text
        assert answer.headers["content-type"].startswith("application/problem+xml")
        assert b"<reason_code>NARR</reason_code>" in answer.content


def test_the_openapi_document_declares_the_headers_answers_carry(live_server):
    with httpx.Client(base_url=live_server.url) as plain:
        paths = plain.get("/openapi.json").json()["paths"]
    send = paths["/v1/payments"]["post"]["responses"]
    assert "Idempotent-Replay" in send["201"]["headers"]
    for status in ("429", "503"):
        assert "Retry-After" in send[status]["headers"]
    assert "Idempotent-Replay" not in paths["/v1/accounts"]["get"]["responses"]["200"].get(
        "headers", {})


def test_the_async_client_sends_tracks_and_retries_under_one_key(live_server):
    payment = {"uetr": str(uuid.uuid4()), "instruction_id": uuid.uuid4().hex[:16],
               "end_to_end_id": "E2E", "debtor_agent": BANK_A, "creditor_agent": "DEMBCNX0",
               "debtor": {"name": "Debtor"}, "creditor": {"name": "Creditor"},
               "amount": "1.00", "currency": "CNY"}

    async def run():
        async with AsyncScopayClient(live_server.url, live_server.keys[BANK_A]) as client:
            first = await client.send_payment(payment, idempotency_key="async-retry")
            again = await client.send_payment(payment, idempotency_key="async-retry")
            tracked = await client.track(payment["uetr"])
        return first, again, tracked

    first, again, tracked = asyncio.run(run())
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replay"] == "true" and again.content == first.content
    assert tracked.json()["status"] == "settled"


def test_the_iso_route_refuses_a_missing_or_reused_idempotency_key_in_xml(live_server):
    xml = {"content-type": "application/xml"}
    key_file, now, nonce = live_server.keys[BANK_A], str(int(time.time())), "m" * 20
    message = signing.canonical_request("POST", "/v1/iso20022", now, nonce, "", b"<Document/>")
    unkeyed = {**xml, signing.KEY_ID_HEADER: key_file.key_id, signing.TIMESTAMP_HEADER: now,
               signing.NONCE_HEADER: nonce,
               signing.SIGNATURE_HEADER: signing.sign(key_file.private_key, message)}
    with httpx.Client(base_url=live_server.url) as plain:
        without = plain.post("/v1/iso20022", content=b"<Document/>", headers=unkeyed)
    with live_server.client(BANK_A) as bank:
        key = {**xml, signing.IDEMPOTENCY_HEADER: "xml-reuse-" + uuid.uuid4().hex}
        bank.post("/v1/iso20022", content=b"<Document/>", headers=key)
        reused = bank.post("/v1/iso20022", content=b"<Other/>", headers=key)
    for answer, status in ((without, 400), (reused, 422)):
        assert answer.status_code == status, answer.text
        assert answer.headers["content-type"].startswith("application/problem+xml")


def test_busy_answers_say_when_to_try_again(engine, serve_app):
    key = KeyFile(signing.new_key_id(), "ICBKCNBJ", new_private_key())
    engine.register_key(key.key_id, "ICBKCNBJ", key.public_key, 2_000_000)
    runner = LoopRunner(engine, lambda: time.time_ns() // 1000)
    runner.start()

    def full(*_args, **_kwargs):
        raise RunnerBusyError("the engine's queue is full")

    runner.submit_payments = runner.submit = full
    payment = {"uetr": str(uuid.uuid4()), "instruction_id": "busy-1", "end_to_end_id": "E2E",
               "debtor_agent": "ICBKCNBJ", "creditor_agent": "ABOCCNBJ",
               "debtor": {"name": "D"}, "creditor": {"name": "C"}, "amount": "1.00",
               "currency": "CNY"}
    transfer = {"id": "busy-t", "debit_account_id": 11, "credit_account_id": 12,
                "amount": "1.00", "currency": "CNY"}
    try:
        with ScopayClient(serve_app(create_app(runner)), key) as client:
            answers = [client.post("/v1/payments", json=payment),
                       client.post("/v1/transfers", json=transfer)]
    finally:
        runner.stop()
    for answer in answers:
        assert answer.status_code == 503, answer.text
        assert answer.headers["Retry-After"].isdigit()
        assert answer.headers["content-type"] == "application/problem+json"


def test_no_content_answers_carry_no_content_type_first_or_replayed(live_server):
    with live_server.client(BANK_A) as bank:
        notices = bank.get("/v1/mailbox", params={"limit": 1}).json()
        seqs = [n["seq"] for n in notices] or [1]
        key = {signing.IDEMPOTENCY_HEADER: "ack-" + uuid.uuid4().hex}
        first = bank.post("/v1/mailbox/ack", json={"seqs": seqs}, headers=key)
        again = bank.post("/v1/mailbox/ack", json={"seqs": seqs}, headers=key)
    assert first.status_code == again.status_code == 204
    assert again.headers["Idempotent-Replay"] == "true"
    assert "content-type" not in first.headers and "content-type" not in again.headers


def test_a_refusal_is_raised_with_what_its_problem_says(live_server):
    foreign = live_server.account_of("DEMBCNX0", "CNY")
    with live_server.client(BANK_A) as bank:
        poor = bank.post("/v1/transfers", json={
            "id": "too-much-" + uuid.uuid4().hex[:6],
            "debit_account_id": live_server.account_of(BANK_A, "CNY"),
            "credit_account_id": foreign, "amount": "99999999999.00", "currency": "CNY"})
        iso = bank.post("/v1/iso20022", content=b"<not-xml", headers={
            "content-type": "application/xml"})
        fine = bank.get("/v1/accounts")
    assert raise_for_problem(fine) is fine
    with pytest.raises(ScopayProblem) as refused:
        raise_for_problem(poor)
    assert (refused.value.status, refused.value.rejection) == (422, "insufficient_liquidity")
    with pytest.raises(ScopayProblem) as malformed:
        raise_for_problem(iso)
    assert (malformed.value.status, malformed.value.iso_code) == (400, "FF01")
    assert "not well-formed" in malformed.value.detail


@pytest.mark.parametrize("content_type, body", [
    ("application/problem+json", b""),  # a HEAD's answer
    ("application/problem+xml", b""),
    ("application/problem+json", b"[1, 2]"),
    ("application/problem+xml", b'<?xml version="1.0"?><!DOCTYPE p [<!ENTITY e "x">]>'
                                b'<problem><title>&e;</title></problem>'),
    ("application/problem+xml", b'<problem><!-- c --><?pi x?><title>T</title></problem>'),
    ("text/plain", b"Request Header Fields Too Large"),
])
def test_any_refusal_is_raised_as_a_problem_whatever_its_body(content_type, body):
    answer = httpx.Response(431, headers=[(b"content-type", content_type.encode()),
                                          (b"retry-after", "²".encode())],
                            content=body, request=httpx.Request("HEAD", "http://scopay/"))
    with pytest.raises(ScopayProblem) as refused:
        raise_for_problem(answer)
    assert refused.value.status == 431
    assert refused.value.retry_after_s is None  # not ASCII digits
    assert "x" not in (refused.value.title or "")  # the entity was not expanded
