"""A commit the store fails (disk full, an I/O error) is answered 503 with a problem and
Retry-After, on every kind of route, never a bare 500: nothing of the request happened, and
the same request succeeds once the store writes again."""

from __future__ import annotations

import sqlite3
import time
import uuid

import pytest

from scopay.api import signing
from scopay.api.app import create_app
from scopay.client import KeyFile, ScopayClient, new_private_key
from scopay.domain.payment import Party, Payment
from scopay.engine.runner import LoopRunner
from scopay.iso20022.model import CreditTransferMessage
from scopay.iso20022.pacs008 import build_pacs008

ICBK, ABOC = "ICBKCNBJ", "ABOCCNBJ"


@pytest.fixture
def failing(engine, serve_app, monkeypatch):
    """A served app whose store fails every commit while `broken` holds True."""
    key = KeyFile(signing.new_key_id(), ICBK, new_private_key())
    engine.register_key(key.key_id, ICBK, key.public_key, 2_000_000)
    runner = LoopRunner(engine, lambda: time.time_ns() // 1000)
    runner.start()
    broken = [False]
    write = engine._write

    def failing_write(*args, **kwargs):
        if broken[0]:
            raise sqlite3.OperationalError("database or disk is full")
        return write(*args, **kwargs)

    monkeypatch.setattr(engine, "_write", failing_write)
    with ScopayClient(serve_app(create_app(runner)), key) as client:
        yield client, broken
    runner.stop()


def payment() -> dict:
    return {"uetr": str(uuid.uuid4()), "instruction_id": uuid.uuid4().hex[:16],
            "end_to_end_id": "E2E", "debtor_agent": ICBK, "creditor_agent": ABOC,
            "debtor": {"name": "Debtor"}, "creditor": {"name": "Creditor"},
            "amount": "1.00", "currency": "CNY"}


def pacs008_of(debtor: str, creditor: str) -> bytes:
    paid = Payment(str(uuid.uuid4()), uuid.uuid4().hex[:16], "E2E", debtor, creditor,
                   Party("Debtor"), Party("Creditor"), 100, "CNY")
    return build_pacs008(CreditTransferMessage("MSG" + uuid.uuid4().hex[:12],
                                               time.time_ns() // 1000, (paid,)))


def transfer() -> dict:
    return {"id": "t-" + uuid.uuid4().hex[:8], "debit_account_id": 11, "credit_account_id": 12,
            "amount": "1.00", "currency": "CNY"}


@pytest.mark.parametrize("route, body", [("/v1/payments", payment),
                                         ("/v1/transfers", transfer)])
def test_a_failed_commit_is_a_503_problem_and_the_retry_succeeds(failing, route, body):
    client, broken = failing
    sent = body()
    headers = {signing.IDEMPOTENCY_HEADER: "disk-" + uuid.uuid4().hex}
    broken[0] = True
    refused = client.post(route, json=sent, headers=headers)
    broken[0] = False
    assert refused.status_code == 503, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["Retry-After"].isdigit()
    assert "nothing of this request was done" in refused.json()["detail"]
    retried = client.post(route, json=sent, headers=headers)
    assert retried.status_code == 201, retried.text
    assert "Idempotent-Replay" not in retried.headers


def test_a_failed_commit_of_an_iso_message_is_a_503_in_xml(failing):
    client, broken = failing
    broken[0] = True
    refused = client.post("/v1/iso20022", content=pacs008_of(ICBK, ABOC),
                          headers={"content-type": "application/xml"})
    broken[0] = False
    assert refused.status_code == 503, refused.text
    assert refused.headers["content-type"].startswith("application/problem+xml")
    assert b"<reason_code>NARR</reason_code>" in refused.content


def test_an_answer_that_cannot_be_kept_is_still_given(engine, serve_app, monkeypatch):
    """The transfer is durable before its answer is kept under the idempotency key (a commit
    of its own): should that second commit fail, the answer is given all the same."""
    key = KeyFile(signing.new_key_id(), ICBK, new_private_key())
    engine.register_key(key.key_id, ICBK, key.public_key, 2_000_000)
    runner = LoopRunner(engine, lambda: time.time_ns() // 1000)
    runner.start()
    write = engine._write

    def keeping_fails(*args, **kwargs):
        if kwargs.get("idempotency") and not kwargs.get("journal"):
            raise sqlite3.OperationalError("database or disk is full")
        return write(*args, **kwargs)

    monkeypatch.setattr(engine, "_write", keeping_fails)
    sent = transfer()
    try:
        with ScopayClient(serve_app(create_app(runner)), key) as client:
            answer = client.post("/v1/transfers", json=sent,
                                 headers={signing.IDEMPOTENCY_HEADER: "keep-" + sent["id"]})
    finally:
        runner.stop()
    assert answer.status_code == 201, answer.text
    assert engine.ledger.transfer_of(f"{ICBK}:{sent['id']}") is not None
