"""An adversarial review of the HTTP API, over real HTTP against the seeded live server.

The tests under "defects" pin behaviour the review found broken, now fixed (each failed
before its fix). The other tests probe attacks that are correctly refused and that the rest
of the suite did not cover: routes hidden from OpenAPI, partly foreign bulk and ISO
messages, camt.056 on a foreign payment, duplicated signed headers, hostile XML over HTTP, a
suspended agent.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
import uuid

import httpx
import pytest
from fastapi.routing import APIRoute

from scopay.api import app as app_module
from scopay.api import security, signing
from scopay.api.errors import ApiError
from scopay.client import sign_request
from scopay.domain.participant import Status
from scopay.domain.payment import Party, Payment
from scopay.engine import runner as runner_module
from scopay.engine.runner import LoopRunner
from scopay.iso20022.camt056 import build_camt056
from scopay.iso20022.message import parse_message
from scopay.iso20022.model import (
    CancellationRequest,
    CreditTransferMessage,
    TransactionCancellation,
)
from scopay.iso20022.pacs008 import PACS008_V08, build_pacs008

OPERATOR, PBOC, BANK_A, BANK_B = "SCOPCNX0", "PBOCCNBJ", "DEMACNX0", "DEMBCNX0"
RU_A, MONGOLIA = "DEMARUX0", "BOMUMNUB"
MORE_THAN_A_BANK_HOLDS = "90000000.00"  # the demo banks hold 10,000,000.00 each
XML = {"content-type": "application/xml"}
PROBLEM_JSON, PROBLEM_XML = "application/problem+json", "application/problem+xml"


# -- building requests -------------------------------------------------------------------------


def payment_body(debtor: str, creditor: str, amount: str = "1.00") -> dict:
    return {"uetr": str(uuid.uuid4()), "instruction_id": uuid.uuid4().hex[:16],
            "end_to_end_id": "ADVERSARIAL", "debtor_agent": debtor, "creditor_agent": creditor,
            "debtor": {"name": "Debtor"}, "creditor": {"name": "Creditor"}, "amount": amount,
            "currency": "CNY"}


def transfer_body(transfer_id: str, debit: int, credit: int, amount: str = "0.01") -> dict:
    return {"id": transfer_id, "debit_account_id": debit, "credit_account_id": credit,
            "amount": amount, "currency": "CNY"}


def iso_payment(debtor: str, creditor: str, amount_minor: int = 100) -> Payment:
    return Payment(str(uuid.uuid4()), uuid.uuid4().hex[:16], "ADVERSARIAL", debtor, creditor,
                   Party("Debtor"), Party("Creditor"), amount_minor, "CNY")


def pacs008(*payments: Payment) -> bytes:
    message = CreditTransferMessage("ADV" + uuid.uuid4().hex[:16], time.time_ns() // 1000,
                                    payments)
    return build_pacs008(message, PACS008_V08)


def minimal_pacs008(transactions: int, debtor: str, creditor: str) -> bytes:
    """A schema-shaped pacs.008 with only what scopay requires of each transaction, so that
    many transactions fit in a request body."""
    tag = uuid.uuid4().hex[:8]
    tx = ("<CdtTrfTxInf><PmtId><InstrId>{tag}{i:x}</InstrId><EndToEndId>E</EndToEndId>"
          "<UETR>{uetr}</UETR></PmtId><IntrBkSttlmAmt Ccy=\"CNY\">0.01</IntrBkSttlmAmt>"
          "<ChrgBr>SHAR</ChrgBr><Dbtr><Nm>D</Nm></Dbtr>"
          "<DbtrAgt><FinInstnId><BICFI>{debtor}</BICFI></FinInstnId></DbtrAgt>"
          "<CdtrAgt><FinInstnId><BICFI>{creditor}</BICFI></FinInstnId></CdtrAgt>"
          "<Cdtr><Nm>C</Nm></Cdtr></CdtTrfTxInf>")
    body = "".join(tx.format(tag=tag, i=i, uetr=uuid.uuid4(), debtor=debtor, creditor=creditor)
                   for i in range(transactions))
    return ('<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08">'
            "<FIToFICstmrCdtTrf><GrpHdr><MsgId>ADV" + tag + "</MsgId>"
            "<CreDtTm>2026-11-29T12:00:00Z</CreDtTm><NbOfTxs>" + str(transactions) +
            "</NbOfTxs><SttlmInf><SttlmMtd>CLRG</SttlmMtd></SttlmInf></GrpHdr>" + body +
            "</FIToFICstmrCdtTrf></Document>").encode()


def signed(server, bic: str, method: str, path: str, content: bytes = b"",
           headers: dict | list | None = None, **sign_options) -> httpx.Request:
    request = httpx.Request(method, server.url + path, content=content, headers=headers)
    sign_request(request, server.keys[bic], **sign_options)
    return request


def audit_payloads_since(server, seq: int) -> list[dict]:
    with contextlib.closing(sqlite3.connect(server.engine.store.path)) as db:
        rows = db.execute("SELECT payload FROM audit_log WHERE seq > ? ORDER BY seq",
                          (seq,)).fetchall()
    return [json.loads(payload) for (payload,) in rows]


def last_audit_seq(server) -> int:
    with contextlib.closing(sqlite3.connect(server.engine.store.path)) as db:
        return db.execute("SELECT coalesce(max(seq), 0) FROM audit_log").fetchone()[0]


def now_us() -> int:
    return time.time_ns() // 1000


@pytest.fixture(scope="module")
def clients(live_server):
    made = {bic: live_server.client(bic) for bic in (OPERATOR, PBOC, BANK_A, BANK_B, RU_A)}
    made[None] = live_server.client(None)
    yield made
    for client in made.values():
        client.close()


# -- defects: replay protection and signing ----------------------------------------------------


def test_replay_guard_keeps_a_nonce_exactly_as_long_as_its_timestamp_is_acceptable() -> None:
    guard, signed_s = security.ReplayGuard(), 1_800_000_000
    window_end = signed_s + signing.SKEW_S_MAX

    assert guard.first_use("key", "n" * 16, signed_s, signed_s)
    assert not guard.first_use("key", "n" * 16, signed_s, window_end)
    assert guard.first_use("other-key", "n" * 16, signed_s, window_end)
    assert len(guard) == 2
    assert guard.first_use("key", "m" * 16, window_end + 1, window_end + 1)
    assert len(guard) == 1  # the first second's nonces are stale now, and forgotten


def test_a_full_nonce_memory_refuses_the_participants_holding_their_share_not_the_others():
    guard, now_s = security.ReplayGuard(limit=10), 1_800_000_000
    flood = [guard.first_use("key-a", f"a{n:015d}", now_s + 200, now_s, "BANKA")
             for n in range(10)]
    assert all(flood)
    with pytest.raises(ApiError) as busy:
        guard.first_use("key-a", "a" * 16, now_s + 200, now_s, "BANKA")
    assert busy.value.status == 503
    # another participant is still served, up to its share of the memory
    served = 0
    with contextlib.suppress(ApiError):
        for n in range(20):
            assert guard.first_use("key-b", f"b{n:015d}", now_s, now_s, "BANKB")
            served += 1
    assert served == 5  # the limit over the two participants holding nonces
    assert len(guard) <= 2 * guard.limit
    # once BANKB's second is stale, its nonces are forgotten and it is served again
    assert guard.first_use("key-b", "c" * 16, now_s + 301, now_s + 301, "BANKB")
    assert len(guard) == 11


def test_the_nonce_memory_never_holds_more_than_twice_its_limit():
    """Participants filling it one after another each get a smaller share: without a cap the
    total would grow like limit x (1 + 1/2 + 1/3 ...)."""
    guard, now_s = security.ReplayGuard(limit=100), 1_800_000_000
    for owner in range(60):
        with contextlib.suppress(ApiError):
            for n in range(200):
                guard.first_use(f"key-{owner}", f"n{n:015d}", now_s, now_s, f"BANK{owner}")
    assert len(guard) <= 2 * guard.limit


def test_replay_is_refused_even_when_the_nonce_memory_is_full(live_server, clients,
                                                               monkeypatch):
    monkeypatch.setattr(security, "NONCES_REMEMBERED_MAX", 3)
    captured = signed(live_server, BANK_A, "GET", "/v1/participants")
    assert clients[None].send(captured).status_code == 200
    for _ in range(2):  # ordinary traffic from another participant fills the memory
        assert clients[None].send(signed(live_server, BANK_B, "GET",
                                         "/v1/participants")).status_code == 200
    busy = clients[None].send(signed(live_server, BANK_B, "GET", "/v1/participants"))
    assert busy.status_code == 503, "a nonce inside the window was forgotten to make room"
    replay = clients[None].send(captured)
    assert replay.status_code == 401, "a replay inside the window was accepted"


def test_request_with_an_empty_query_signed_by_the_reference_client_is_accepted(clients):
    answer = clients[BANK_A].get("/v1/accounts?")
    assert answer.status_code == 200, answer.text


# -- defects: idempotency ------------------------------------------------------------------------


def test_iso20022_retry_gets_the_first_answer_in_its_own_media_type(clients):
    message = pacs008(iso_payment(BANK_A, BANK_B))
    headers = {**XML, "Idempotency-Key": "adv-iso-" + uuid.uuid4().hex}
    first = clients[BANK_A].post("/v1/iso20022", content=message, headers=headers)
    retry = clients[BANK_A].post("/v1/iso20022", content=message, headers=headers)
    assert first.status_code == retry.status_code == 200
    assert retry.headers["Idempotent-Replay"] == "true"
    assert retry.content == first.content
    assert retry.headers["content-type"] == first.headers["content-type"] == "application/xml"


def test_iso20022_retry_of_a_refused_message_gets_the_problem_in_xml_again(clients):
    headers = {**XML, "Idempotency-Key": "adv-iso-bad-" + uuid.uuid4().hex}
    first = clients[BANK_A].post("/v1/iso20022", content=b"<Document", headers=headers)
    retry = clients[BANK_A].post("/v1/iso20022", content=b"<Document", headers=headers)
    assert first.status_code == retry.status_code == 400
    assert retry.headers["Idempotent-Replay"] == "true"
    assert retry.content == first.content
    assert retry.headers["content-type"] == first.headers["content-type"] == PROBLEM_XML


# -- defects: what a participant learns or blocks of others' objects ---------------------------


def test_transfer_id_of_another_participant_is_answered_like_an_unused_id(live_server, clients):
    a, b = live_server.account_of(BANK_A, "CNY"), live_server.account_of(BANK_B, "CNY")
    foreign = clients[BANK_A].post("/v1/transfers", json=transfer_body(
        f"seed-funds-in-{BANK_B}-CNY", a, b, MORE_THAN_A_BANK_HOLDS))
    unused = clients[BANK_A].post("/v1/transfers", json=transfer_body(
        "adv-unused-" + uuid.uuid4().hex, a, b, MORE_THAN_A_BANK_HOLDS))
    assert unused.json()["rejection"] == "insufficient_liquidity"
    assert (foreign.status_code, foreign.json()["rejection"]) == (
        unused.status_code, unused.json()["rejection"])


def test_a_participant_cannot_take_the_transfer_id_another_will_use(live_server, clients):
    a, b = live_server.account_of(BANK_A, "CNY"), live_server.account_of(BANK_B, "CNY")
    bank_b_next_id = "DEMBCNX0-" + uuid.uuid4().hex[:8]  # say B numbers its ids predictably
    squatted = clients[BANK_A].post("/v1/transfers", json=transfer_body(bank_b_next_id, a, b))
    assert squatted.status_code == 201
    own = clients[BANK_B].post("/v1/transfers", json=transfer_body(bank_b_next_id, b, a))
    assert own.status_code == 201, own.text


# -- defects: authorisation against the documented table -----------------------------------------


def test_settlement_agent_may_not_send_a_payment_even_as_its_own_debtor_agent(live_server,
                                                                             clients):
    body = payment_body(PBOC, BANK_A)
    answer = clients[PBOC].post("/v1/payments", json=body)
    assert answer.status_code == 403, answer.text
    assert body["uetr"] not in live_server.engine.payments


def test_acknowledging_another_participants_notice_leaves_no_audit_record(live_server, clients):
    body = payment_body(BANK_B, MONGOLIA)
    assert clients[BANK_B].post("/v1/payments", json=body).status_code == 201
    b_notice = next(seq for seq, n, _ in live_server.engine.mailbox(BANK_B, 0, 500)
                    if n.uetr == body["uetr"])
    since = last_audit_seq(live_server)
    assert clients[BANK_A].post("/v1/mailbox/ack", json={"seqs": [b_notice]}).status_code == 204
    acknowledged = [row for payload in audit_payloads_since(live_server, since)
                    for row in payload.get("acknowledged", [])]
    assert acknowledged == []
    assert b_notice in {seq for seq, _, _ in live_server.engine.mailbox(BANK_B, 0, 500)}


# -- defects: transfers API ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["posted", "pending"])
def test_transfer_naming_its_kind_is_accepted(live_server, clients, kind):
    a, b = live_server.account_of(BANK_A, "CNY"), live_server.account_of(BANK_B, "CNY")
    body = {**transfer_body("adv-kind-" + uuid.uuid4().hex, a, b), "kind": kind}
    answer = clients[BANK_A].post("/v1/transfers", json=body)
    assert answer.status_code == 201, answer.text


def test_transfer_may_not_ask_for_the_ledgers_own_expiry(live_server, clients):
    a, b = live_server.account_of(BANK_A, "CNY"), live_server.account_of(BANK_B, "CNY")
    body = {**transfer_body("adv-kind-" + uuid.uuid4().hex, a, b), "kind": "expire_pending"}
    answer = clients[BANK_A].post("/v1/transfers", json=body)
    assert answer.status_code == 422, answer.text
    assert live_server.engine.ledger.transfer_of(f"{BANK_A}:{body['id']}") is None


def test_resolving_a_foreign_pending_transfer_is_answered_like_an_unknown_one(live_server,
                                                                             clients):
    b, a = live_server.account_of(BANK_B, "CNY"), live_server.account_of(BANK_A, "CNY")
    pending_id = "adv-pending-" + uuid.uuid4().hex[:12]
    reserved = clients[BANK_B].post("/v1/transfers", json={
        **transfer_body(pending_id, b, a), "kind": "pending", "timeout_s": 3600})
    assert reserved.status_code == 201, reserved.text

    def void(pending: str) -> tuple[int, str]:
        answer = clients[RU_A].post("/v1/transfers", json={
            "id": "adv-void-" + uuid.uuid4().hex[:8], "kind": "void_pending",
            "pending_id": pending})
        return answer.status_code, answer.json()["detail"]

    assert void(pending_id) == void(f"{BANK_B}:{pending_id}") == void("adv-no-such-pending") == (
        404, "no pending transfer of that id that you may resolve")
    assert f"{BANK_B}:{pending_id}" in live_server.engine.ledger.pending_ids()  # still reserved


# -- defects: ISO 20022 endpoint -----------------------------------------------------------------


def test_pacs008_with_more_transactions_than_a_batch_is_refused_not_a_server_error(live_server,
                                                                                 clients):
    message = minimal_pacs008(8191, BANK_A, BANK_B)
    assert len(message) <= security.REQUEST_BYTES_MAX  # the limit the server reads by
    assert len(parse_message(message)[1].payments) == 8191  # scopay's reader takes it
    payments_before = len(live_server.engine.payments)
    with live_server.client(BANK_A) as bank_a:  # its own connection: a 500 drops it
        answer = bank_a.post("/v1/iso20022", content=message, headers=XML)
    assert len(live_server.engine.payments) == payments_before
    assert answer.status_code == 422, answer.status_code
    assert answer.headers["content-type"].startswith(PROBLEM_XML)
    assert b"<reason_code>AM18</reason_code>" in answer.content


# -- attacks correctly refused -----------------------------------------------------------------


def test_every_v1_route_of_the_app_depends_on_the_signed_caller(live_server):
    """Walks app.routes, hidden routes included, not the OpenAPI document: a /v1 route
    without the Caller dependency would run for a request the guard never admitted."""
    app = app_module.create_app(LoopRunner(live_server.engine, now_us))  # built, not started

    def routes(items):
        for route in items:
            if isinstance(route, APIRoute):
                yield route
            elif hasattr(route, "original_router"):
                yield from routes(route.original_router.routes)

    v1 = [route for route in routes(app.routes) if route.path.startswith("/v1/")]
    assert len(v1) >= 30
    unguarded = [f"{sorted(r.methods)} {r.path}" for r in v1
                 if security.current_caller not in {d.call for d in r.dependant.dependencies}]
    assert unguarded == []


def test_bulk_with_one_foreign_payment_is_refused_whole_and_enters_none(live_server, clients):
    own, foreign = payment_body(BANK_A, BANK_B), payment_body(BANK_B, BANK_A)
    answer = clients[BANK_A].post("/v1/payments/bulk", json={"payments": [own, foreign]})
    assert answer.status_code == 403
    assert answer.headers["content-type"] == PROBLEM_JSON
    assert own["uetr"] not in live_server.engine.payments
    assert foreign["uetr"] not in live_server.engine.payments


def test_pacs008_with_one_foreign_transaction_is_refused_whole_and_enters_none(live_server,
                                                                              clients):
    own, foreign = iso_payment(BANK_A, BANK_B), iso_payment(BANK_B, BANK_A)
    answer = clients[BANK_A].post("/v1/iso20022", content=pacs008(own, foreign), headers=XML)
    assert answer.status_code == 403
    assert answer.headers["content-type"].startswith(PROBLEM_XML)
    assert b"<reason_code>AG01</reason_code>" in answer.content
    assert own.uetr not in live_server.engine.payments
    assert foreign.uetr not in live_server.engine.payments


def _camt056(uetr: str) -> bytes:
    item = TransactionCancellation("M1", PACS008_V08, "DUPL", original_uetr=uetr)
    request = CancellationRequest("CXL" + uuid.uuid4().hex[:12], BANK_A, BANK_B,
                                  int(time.time()) * 1_000_000, (item,))
    return build_camt056(request)


def test_camt056_for_a_foreign_payment_is_answered_like_an_unknown_one_and_cancels_nothing(
        live_server, clients):
    body = payment_body(BANK_B, MONGOLIA, MORE_THAN_A_BANK_HOLDS)
    assert clients[BANK_B].post("/v1/payments", json=body).json()["status"] == "queued"
    try:
        foreign = clients[BANK_A].post("/v1/iso20022", content=_camt056(body["uetr"]),
                                       headers=XML)
        unknown_uetr = str(uuid.uuid4())
        unknown = clients[BANK_A].post("/v1/iso20022", content=_camt056(unknown_uetr),
                                       headers=XML)
        assert foreign.status_code == unknown.status_code == 200
        statuses = []
        for answer in (foreign, unknown):
            _, resolution = parse_message(answer.content)
            (status,) = resolution.transactions
            statuses.append((status.status, status.reason_code))
        assert statuses[0] == statuses[1]
        assert statuses[0][1] == "NOOR"
        assert live_server.engine.payment(body["uetr"]).status.value == "queued"
    finally:
        assert clients[BANK_B].post(f"/v1/payments/{body['uetr']}/cancel").status_code == 200


def test_a_second_idempotency_header_neither_breaks_the_signature_nor_changes_the_key(
        live_server, clients):
    """Of a repeated header the first counts, for the signature and for idempotency alike:
    a second Idempotency-Key added after signing cannot make a new request of a retry."""
    a, b = live_server.account_of(BANK_A, "CNY"), live_server.account_of(BANK_B, "CNY")
    content = json.dumps(transfer_body("adv-dup-" + uuid.uuid4().hex, a, b)).encode()
    first_key = "adv-first-" + uuid.uuid4().hex[:8]

    def with_second_key(second: str) -> httpx.Request:
        request = signed(live_server, BANK_A, "POST", "/v1/transfers", content,
                         {"content-type": "application/json", "Idempotency-Key": first_key})
        request.headers = httpx.Headers([*request.headers.multi_items(),
                                         ("Idempotency-Key", second)])
        return request

    first = clients[None].send(with_second_key("adv-smuggled-1"))
    retry = clients[None].send(with_second_key("adv-smuggled-2"))
    assert first.status_code == retry.status_code == 201
    assert "Idempotent-Replay" not in first.headers
    assert retry.headers["Idempotent-Replay"] == "true"
    assert retry.content == first.content


def test_a_key_id_header_added_after_signing_does_not_switch_the_key(live_server, clients):
    request = signed(live_server, BANK_A, "GET", "/v1/accounts")
    forged = httpx.Request("GET", request.url, headers=[
        (signing.KEY_ID_HEADER, live_server.keys[BANK_B].key_id),
        *[(k, v) for k, v in request.headers.multi_items()]])
    assert clients[None].send(forged).status_code == 401


_HOSTILE_XML = {
    "utf16_bom": "<Document/>".encode("utf-16"),
    "latin1_declared": b'<?xml version="1.0" encoding="ISO-8859-1"?><Document/>',
    "external_entity": (b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM '
                        b'"file:///etc/passwd">]><Document>&x;</Document>'),
    "deep_nesting": b"<a>" * 5000 + b"</a>" * 5000,
    "wrong_namespace": pacs008(iso_payment(BANK_A, BANK_B)).replace(
        b"pacs.008.001.08", b"pacs.008.001.99"),
    "huge_attribute": (b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08" a="'
                       + b"x" * 3_000_000 + b'"/>'),
    "not_xml": b"\xef\xbb\xbf{\"payments\": []}",
}


@pytest.mark.parametrize("message", _HOSTILE_XML.values(), ids=_HOSTILE_XML.keys())
def test_hostile_xml_is_refused_over_http_in_problem_xml_and_writes_nothing(live_server,
                                                                            clients, message):
    payments_before = len(live_server.engine.payments)
    answer = clients[BANK_A].post("/v1/iso20022", content=message, headers=XML)
    assert answer.status_code in (400, 422), answer.text[:300]
    assert answer.headers["content-type"].startswith(PROBLEM_XML)
    assert len(live_server.engine.payments) == payments_before


def test_suspended_settlement_agent_moves_no_central_bank_money(live_server, clients):
    engine = live_server.engine
    account = live_server.account_of(BANK_A, "CNY")
    balance_before = engine.balance(account).posted_minor
    engine.set_participant_status(PBOC, Status.SUSPENDED, now_us())
    try:
        for path in ("/v1/funds-in", "/v1/funds-out"):
            answer = clients[PBOC].post(path, json={
                "id": "adv-suspended-" + uuid.uuid4().hex[:8], "account_id": account,
                "amount": "1.00"})
            assert answer.status_code >= 400, (path, answer.text)
            assert answer.headers["content-type"] == PROBLEM_JSON
    finally:
        engine.set_participant_status(PBOC, Status.ACTIVE, now_us())
    assert engine.balance(account).posted_minor == balance_before


def test_a_full_engine_queue_answers_busy_on_every_kind_of_route(live_server, clients,
                                                                  monkeypatch):
    monkeypatch.setattr(runner_module, "QUEUE_REQUESTS_MAX", 0)  # every command finds it full
    a = live_server.account_of(BANK_A, "CNY")
    answers = {
        "funds-in": clients[PBOC].post("/v1/funds-in", json={
            "id": "adv-busy-" + uuid.uuid4().hex[:8], "account_id": a, "amount": "1.00"}),
        "transfer": clients[BANK_A].post("/v1/transfers", json=transfer_body(
            "adv-busy-" + uuid.uuid4().hex[:8], a, live_server.account_of(BANK_B, "CNY"))),
        "payment": clients[BANK_A].post("/v1/payments", json=payment_body(BANK_A, BANK_B)),
        "pacs.008": clients[BANK_A].post("/v1/iso20022", headers=XML,
                                         content=pacs008(iso_payment(BANK_A, BANK_B))),
    }
    assert {name: answer.status_code for name, answer in answers.items()} == dict.fromkeys(
        answers, 503)
    assert answers["pacs.008"].headers["content-type"] == PROBLEM_XML
