"""An answer under an idempotency key is committed with the change it answers, for every
command, not only payments: a retry after a crash (here: the separate keeping of answers
failing, as a crash between two commits would leave it) gets the first answer again, never
the command run a second time and answered as refused. And a commit that fails undoes the
change and its answer alike: the request is answered 503 and may be retried."""

from __future__ import annotations

import sqlite3
import time
import uuid

import pytest

from held_commit import fail_next_commit
from scopay.api import iso as iso_module
from scopay.domain.payment import PaymentStatus
from scopay.iso20022.camt056 import build_camt056
from scopay.iso20022.message import parse_message
from scopay.iso20022.model import CancellationRequest, TransactionCancellation
from scopay.iso20022.pacs008 import PACS008_V08

BANK_A, BANK_B, OPERATOR = "DEMACNX0", "DEMBCNX0", "SCOPCNX0"


def queued_payment(live_server) -> str:
    """BANK_A's payment of more than it holds: it waits in the queue. Its UETR."""
    body = {"uetr": str(uuid.uuid4()), "instruction_id": uuid.uuid4().hex[:16],
            "end_to_end_id": "E2E", "debtor_agent": BANK_A, "creditor_agent": BANK_B,
            "debtor": {"name": "A"}, "creditor": {"name": "B"},
            "amount": "900000000.00", "currency": "CNY"}
    with live_server.client(BANK_A) as a:
        answer = a.post("/v1/payments", json=body)
    assert answer.status_code == 201 and answer.json()["status"] == "queued", answer.text
    return body["uetr"]


@pytest.fixture
def no_separate_keeping(live_server, monkeypatch):
    """Answers may no longer be kept in a commit of their own."""
    def refuse(*_args, **_kwargs):
        raise sqlite3.OperationalError("disk I/O error")
    monkeypatch.setattr(live_server.engine, "remember_responses", refuse)


@pytest.mark.parametrize("command", ["cancel", "priority", "move"])
def test_a_queue_command_retried_gets_its_first_answer(live_server, no_separate_keeping,
                                                       command):
    uetr = queued_payment(live_server)
    path, body = {"cancel": (f"/v1/payments/{uetr}/cancel", None),
                  "priority": (f"/v1/payments/{uetr}/priority", {"priority": "high"}),
                  "move": (f"/v1/payments/{uetr}/move", {"to": "front"})}[command]
    key = {"Idempotency-Key": f"{command}-{uuid.uuid4().hex}"}
    with live_server.client(BANK_A) as a:
        first = a.post(path, json=body, headers=key)
        assert first.status_code == 200, first.text
        sequence = live_server.engine.payment(uetr).sequence
        again = a.post(path, json=body, headers=key)
        if command != "cancel":
            a.post(f"/v1/payments/{uetr}/cancel")
    assert again.status_code == 200 and again.headers.get("Idempotent-Replay") == "true"
    assert again.content == first.content
    if command == "move":  # not moved a second time
        assert live_server.engine.payment(uetr).sequence == sequence


def test_a_credit_line_retried_does_not_undo_a_later_one(live_server, no_separate_keeping):
    account = live_server.account_of(BANK_B, "CNY")
    key = {"Idempotency-Key": f"line-{uuid.uuid4().hex}"}
    path = f"/v1/accounts/{account}/credit-line"
    with live_server.client(OPERATOR) as operator:
        assert operator.put(path, json={"credit_line": "70000.00"},
                            headers=key).status_code == 204
        assert operator.put(path, json={"credit_line": "0.00"}).status_code == 204
        again = operator.put(path, json={"credit_line": "70000.00"}, headers=key)
    assert again.status_code == 204 and again.headers.get("Idempotent-Replay") == "true"
    assert live_server.engine.accounts[account].credit_line_minor == 0


def test_a_failed_commit_undoes_the_change_and_its_answer(live_server, monkeypatch):
    uetr = queued_payment(live_server)
    fail_next_commit(monkeypatch, live_server.engine.store)
    key = {"Idempotency-Key": f"cancel-{uuid.uuid4().hex}"}
    with live_server.client(BANK_A) as a:
        refused = a.post(f"/v1/payments/{uetr}/cancel", headers=key)
        assert refused.status_code == 503 and "Retry-After" in refused.headers, refused.text
        assert live_server.engine.payment(uetr).status == PaymentStatus.QUEUED
        retried = a.post(f"/v1/payments/{uetr}/cancel", headers=key)
    assert retried.status_code == 200, retried.text
    assert "Idempotent-Replay" not in retried.headers
    assert live_server.engine.payment(uetr).status == PaymentStatus.CANCELLED


def test_a_camt056_retried_gets_its_first_camt029(live_server, no_separate_keeping):
    """A camt.056 cancelling two queued payments is one command and one commit, its camt.029
    kept with it: sent again, it is answered ACCR for both again, not refused as having
    nothing left to cancel."""
    uetrs = [queued_payment(live_server), queued_payment(live_server)]
    body = build_camt056(CancellationRequest(
        "CXL" + uuid.uuid4().hex[:12], BANK_A, BANK_B, int(time.time()) * 1_000_000,
        tuple(TransactionCancellation("M1", PACS008_V08, "DUPL", original_uetr=uetr)
              for uetr in uetrs)))
    key = {"Idempotency-Key": f"camt056-{uuid.uuid4().hex}",
           "content-type": "application/xml"}
    with live_server.client(BANK_A) as a:
        first = a.post("/v1/iso20022", content=body, headers=key)
        again = a.post("/v1/iso20022", content=body, headers=key)
    assert first.status_code == 200, first.text
    _, resolution = parse_message(first.content)
    assert [s.status.value for s in resolution.transactions] == ["ACCR", "ACCR"]
    request_id = parse_message(body)[1].assignment_id
    assert resolution.assignment_id == f"SCOPAY{request_id}"  # its own, naming the request
    assert again.headers.get("Idempotent-Replay") == "true" and again.content == first.content
    assert all(live_server.engine.payment(u).status == PaymentStatus.CANCELLED for u in uetrs)


def test_a_camt056_over_the_batch_limit_is_refused_whole(live_server, monkeypatch):
    monkeypatch.setattr(iso_module, "BATCH_TRANSFERS_MAX", 2)
    uetrs = [queued_payment(live_server) for _ in range(3)]
    body = build_camt056(CancellationRequest(
        "CXL" + uuid.uuid4().hex[:12], BANK_A, BANK_B, int(time.time()) * 1_000_000,
        tuple(TransactionCancellation("M1", PACS008_V08, "DUPL", original_uetr=uetr)
              for uetr in uetrs)))
    with live_server.client(BANK_A) as a:
        answer = a.post("/v1/iso20022", content=body, headers={"content-type": "application/xml"})
        for uetr in uetrs:
            a.post(f"/v1/payments/{uetr}/cancel")
    assert answer.status_code == 422 and b"<reason_code>AM18</reason_code>" in answer.content
    assert all(live_server.engine.payment(u).status == PaymentStatus.CANCELLED for u in uetrs)


def test_the_queue_is_listed_a_page_at_a_time(live_server):
    """GET /v1/queue pages with offset and limit (500 at most): the pages, in settlement
    order, together list what one long answer would, each once."""
    mine = {queued_payment(live_server) for _ in range(5)}
    with live_server.client(BANK_A) as a:
        whole = [p["uetr"] for p in a.get("/v1/queue").json()]
        pages = [a.get("/v1/queue", params={"offset": start, "limit": 2}).json()
                 for start in range(0, len(whole) + 2, 2)]
        too_many = a.get("/v1/queue", params={"limit": 501})
        for uetr in mine:
            a.post(f"/v1/payments/{uetr}/cancel")
    assert mine <= set(whole)
    assert [p["uetr"] for page in pages for p in page] == whole
    assert all(len(page) <= 2 for page in pages) and pages[-1] == []
    assert too_many.status_code == 422
