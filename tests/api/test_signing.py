"""Signed requests over real HTTP: every tampered, stale, replayed or foreign request is refused
and changes nothing; idempotency keys give a retry the first answer; the rate limit answers 429.

Requests are built raw (httpx.Request + scopay.client.sign_request) and sent by an unsigned
client, so each test controls exactly which bytes were signed and which were sent.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import sqlite3
import time
import uuid

import httpx
import pytest

from scopay.api import signing
from scopay.api.app import create_app
from scopay.api.auth import OWN_TRANSFER_ID_MAX
from scopay.api.security import RateLimiter
from scopay.client import KeyFile, ScopayClient, SignedAuth, new_private_key, sign_request
from scopay.engine.runner import EngineRunner

OPERATOR, BANK_A, BANK_B = "SCOPCNX0", "DEMACNX0", "DEMBCNX0"
PROBLEM_JSON = "application/problem+json"
SKEW_S = signing.SKEW_S_MAX


# -- building requests -------------------------------------------------------------------------


def signed(server, key: KeyFile, method: str, path: str, body: object = None, *,
           idempotency_key: str | None = None, now_s: int | None = None,
           nonce: str | None = None) -> httpx.Request:
    headers = {} if body is None else {"content-type": "application/json"}
    if idempotency_key is not None:
        headers[signing.IDEMPOTENCY_HEADER] = idempotency_key
    content = b"" if body is None else json.dumps(body).encode()
    request = httpx.Request(method, server.url + path, content=content, headers=headers)
    sign_request(request, key, now_s=now_s, nonce=nonce)
    return request


def altered(request: httpx.Request, *, path: str | None = None, content: bytes | None = None,
            headers: dict[str, str | bytes | None] | None = None) -> httpx.Request:
    """The request as sent after someone changed it: its signature headers stay as they were."""
    kept = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
    for name, value in (headers or {}).items():
        kept = {k: v for k, v in kept.items() if k.lower() != name.lower()}
        if value is not None:
            kept[name] = value
    url = request.url if path is None else request.url.copy_with(raw_path=path.encode())
    return httpx.Request(request.method, url, headers=kept,
                         content=request.content if content is None else content)


def transfer(server, transfer_id: str, amount: str = "1.00", debtor: str = BANK_A,
             creditor: str = BANK_B) -> dict:
    return {"id": transfer_id, "debit_account_id": server.account_of(debtor, "CNY"),
            "credit_account_id": server.account_of(creditor, "CNY"), "amount": amount,
            "currency": "CNY"}


def payment(debtor: str = BANK_A, creditor: str = BANK_B, amount: str = "1.00") -> dict:
    return {"uetr": str(uuid.uuid4()), "instruction_id": uuid.uuid4().hex[:16],
            "end_to_end_id": "SIGNING", "debtor_agent": debtor, "creditor_agent": creditor,
            "debtor": {"name": "Debtor"}, "creditor": {"name": "Creditor"}, "amount": amount,
            "currency": "CNY"}


def snapshot(server, with_idempotency: bool = True) -> dict:
    """What a refused request must leave as it was. A request refused after its signature was
    verified (403, 404) keeps its answer under its idempotency key, by design."""
    engine = server.engine
    with contextlib.closing(sqlite3.connect(engine.store.path)) as db:
        mailbox = db.execute("SELECT count(*), count(acked_us) FROM mailbox").fetchone()
        idempotency = db.execute("SELECT count(*) FROM idempotency_record").fetchone()
    return {"balances": engine.balances(), "journal_entries": engine.journal_count,
            "queue": [(u, o.priority, o.sequence) for u, o in engine.rtgs.orders.items()],
            "payments": {u: r.status for u, r in engine.payments.items()},
            "keys": dict(engine.keys), "mailbox": mailbox,
            "idempotency": idempotency if with_idempotency else None}


def assert_refused(answer: httpx.Response, status: int = 401, fragment: str = "") -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == PROBLEM_JSON
    assert fragment in answer.json()["detail"]


@pytest.fixture(scope="module")
def raw(live_server):
    """An unsigned client: it sends requests exactly as the tests built them."""
    with live_server.client(None) as client:
        yield client


@pytest.fixture(scope="module")
def bank_a(live_server):
    with live_server.client(BANK_A) as client:
        yield client


def fresh_key(server, bic: str) -> KeyFile:
    key = KeyFile(signing.new_key_id(), bic, new_private_key())
    server.engine.register_key(key.key_id, bic, key.public_key, time.time_ns() // 1000)
    return key


# -- refused signatures ------------------------------------------------------------------------


def test_replayed_request_is_refused_and_the_transfer_settles_once(live_server, raw):
    key = live_server.keys[BANK_A]
    request = signed(live_server, key, "POST", "/v1/transfers", transfer(live_server, "sig-1"))
    first = raw.send(request)
    after_first = snapshot(live_server)
    replayed = raw.send(request)
    assert first.status_code == 201, first.text
    assert_refused(replayed, 401, "replay")
    assert snapshot(live_server) == after_first


def test_replay_of_a_refused_request_is_refused_as_a_replay(live_server, raw):
    request = signed(live_server, live_server.keys[BANK_A], "GET", "/v1/accounts/999999")
    assert raw.send(request).status_code == 404
    assert_refused(raw.send(request), 401, "replay")


def _flip_a_byte(signature: str) -> str:
    raw_bytes = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw_bytes[7] ^= 0x01
    return base64.urlsafe_b64encode(bytes(raw_bytes)).rstrip(b"=").decode()


def test_forged_signature_is_refused_and_changes_nothing(live_server, raw):
    request = signed(live_server, live_server.keys[BANK_A], "POST", "/v1/transfers",
                     transfer(live_server, "sig-forged"))
    forged = altered(request, headers={
        signing.SIGNATURE_HEADER: _flip_a_byte(request.headers[signing.SIGNATURE_HEADER])})
    before = snapshot(live_server)
    assert_refused(raw.send(forged), 401, "wrong signature")
    assert snapshot(live_server) == before


@pytest.mark.parametrize("signature", ["", "not base64 at all", "A" * 86, "A" * 300])
def test_malformed_signature_is_refused(live_server, raw, signature):
    request = signed(live_server, live_server.keys[BANK_A], "GET", "/v1/accounts")
    answer = raw.send(altered(request, headers={signing.SIGNATURE_HEADER: signature or None}))
    assert_refused(answer, 401)


def test_signature_by_another_participants_key_under_this_key_id_is_refused(live_server, raw):
    impostor = KeyFile(live_server.keys[BANK_A].key_id, BANK_A,
                       live_server.keys[BANK_B].private_key)
    request = signed(live_server, impostor, "POST", "/v1/transfers",
                     transfer(live_server, "sig-impostor"))
    before = snapshot(live_server)
    assert_refused(raw.send(request), 401, "wrong signature")
    assert snapshot(live_server) == before


def test_unknown_key_id_is_refused(live_server, raw):
    stranger = KeyFile(signing.new_key_id(), BANK_A, new_private_key())
    assert_refused(raw.send(signed(live_server, stranger, "GET", "/v1/accounts")), 401,
                   "unknown or revoked key")


def test_revoked_key_is_refused_and_changes_nothing(live_server, raw):
    key = fresh_key(live_server, BANK_A)
    assert raw.send(signed(live_server, key, "GET", "/v1/accounts")).status_code == 200
    revoked = raw.send(signed(live_server, key, "DELETE", f"/v1/keys/{key.key_id}"))
    assert revoked.status_code == 204
    before = snapshot(live_server)
    answer = raw.send(signed(live_server, key, "POST", "/v1/transfers",
                             transfer(live_server, "sig-revoked")))
    assert_refused(answer, 401, "unknown or revoked key")
    assert snapshot(live_server) == before


def test_key_of_one_bank_reaches_none_of_another_banks_resources(live_server, raw):
    key = live_server.keys[BANK_A]
    b_account = live_server.account_of(BANK_B, "CNY")
    before = snapshot(live_server, with_idempotency=False)
    seen = raw.send(signed(live_server, key, "GET", f"/v1/accounts/{b_account}"))
    debit = raw.send(signed(live_server, key, "POST", "/v1/transfers",
                            transfer(live_server, "sig-steal", debtor=BANK_B, creditor=BANK_A)))
    pay = raw.send(signed(live_server, key, "POST", "/v1/payments", payment(BANK_B, BANK_A)))
    assert_refused(seen, 404)
    assert_refused(debit, 404)
    assert_refused(pay, 403)
    assert snapshot(live_server, with_idempotency=False) == before


@pytest.mark.parametrize("offset_s", [-(SKEW_S + 1), SKEW_S + 1, -86_400, 86_400],
                         ids=["stale-301s", "future-301s", "stale-1d", "future-1d"])
def test_timestamp_outside_the_window_is_refused(live_server, raw, offset_s):
    # whole seconds rounded away from the server's clock, so the offset is at least offset_s
    now_s = math.ceil(time.time()) if offset_s > 0 else math.floor(time.time())
    request = signed(live_server, live_server.keys[BANK_A], "POST", "/v1/transfers",
                     transfer(live_server, f"sig-time{offset_s}"), now_s=now_s + offset_s)
    before = snapshot(live_server)
    assert_refused(raw.send(request), 401, "timestamp")
    assert snapshot(live_server) == before


@pytest.mark.parametrize("offset_s", [-(SKEW_S - 10), SKEW_S - 10])
def test_timestamp_inside_the_window_is_accepted(live_server, raw, offset_s):
    request = signed(live_server, live_server.keys[BANK_A], "GET", "/v1/accounts",
                     now_s=int(time.time()) + offset_s)
    assert raw.send(request).status_code == 200


@pytest.mark.parametrize("timestamp", ["", "-5", "1.5e9", "now", "\xb9\xb2\xb3"],
                         ids=["empty", "negative", "float", "word", "latin1-superscripts"])
def test_timestamp_that_is_not_unix_seconds_is_refused(live_server, raw, timestamp):
    # HTTP header bytes arrive as Latin-1 text: superscript digits are str.isdigit() but not int()
    request = signed(live_server, live_server.keys[BANK_A], "GET", "/v1/accounts")
    value = timestamp.encode("latin-1") if timestamp else None
    assert_refused(raw.send(altered(request, headers={signing.TIMESTAMP_HEADER: value})), 401)


@pytest.mark.parametrize("header", [signing.KEY_ID_HEADER, signing.TIMESTAMP_HEADER,
                                    signing.NONCE_HEADER, signing.SIGNATURE_HEADER])
def test_request_missing_a_signing_header_is_refused(live_server, raw, header):
    request = signed(live_server, live_server.keys[BANK_A], "POST", "/v1/transfers",
                     transfer(live_server, f"sig-missing-{header}"))
    before = snapshot(live_server)
    assert_refused(raw.send(altered(request, headers={header: None})), 401, "sign the request")
    assert snapshot(live_server) == before


@pytest.mark.parametrize("nonce", ["a" * 15, "a" * 65, "has.dots.in.it.16", "base64+/=padded==",
                                   "spaces are not ok"])
def test_nonce_of_the_wrong_format_is_refused(live_server, raw, nonce):
    request = signed(live_server, live_server.keys[BANK_A], "POST", "/v1/transfers",
                     transfer(live_server, f"sig-nonce-{len(nonce)}"), nonce=nonce)
    before = snapshot(live_server)
    assert_refused(raw.send(request), 401, "nonce")
    assert snapshot(live_server) == before


def test_body_changed_after_signing_is_refused(live_server, raw):
    request = signed(live_server, live_server.keys[BANK_A], "POST", "/v1/transfers",
                     transfer(live_server, "sig-body", "1.00"))
    tampered = json.dumps(transfer(live_server, "sig-body", "1000.00")).encode()
    before = snapshot(live_server)
    assert_refused(raw.send(altered(request, content=tampered)), 401, "wrong signature")
    assert snapshot(live_server) == before


def test_path_changed_after_signing_is_refused(live_server, raw, bank_a):
    queued = [payment(amount="90000000.00") for _ in range(2)]
    for body in queued:
        assert bank_a.post("/v1/payments", json=body).json()["status"] == "queued"
    request = signed(live_server, live_server.keys[BANK_A], "POST",
                     f"/v1/payments/{queued[0]['uetr']}/cancel")
    before = snapshot(live_server)
    redirected = altered(request, path=f"/v1/payments/{queued[1]['uetr']}/cancel")
    assert_refused(raw.send(redirected), 401, "wrong signature")
    assert snapshot(live_server) == before
    for body in queued:
        assert bank_a.post(f"/v1/payments/{body['uetr']}/cancel").status_code == 200


def test_query_changed_after_signing_is_refused(live_server, raw):
    request = signed(live_server, live_server.keys[BANK_A], "GET", "/v1/mailbox?limit=1")
    answer = raw.send(altered(request, path="/v1/mailbox?limit=500"))
    assert_refused(answer, 401, "wrong signature")


@pytest.mark.parametrize("sent", ["/v1/mailbox?limit=1?", "/v1/mailbox?limit=1??"])
def test_a_question_mark_added_to_a_signed_query_is_refused(live_server, raw, sent):
    request = signed(live_server, live_server.keys[BANK_A], "GET", "/v1/mailbox?limit=1")
    assert_refused(raw.send(altered(request, path=sent)), 401, "wrong signature")


def test_a_target_ending_in_an_empty_query_is_signed_as_one_without():
    assert signing.canonical_request("GET", "/v1/mailbox?", "1", "n" * 16, "", b"") == (
        signing.canonical_request("GET", "/v1/mailbox", "1", "n" * 16, "", b""))


@pytest.mark.parametrize("changed_key", ["another-key", None], ids=["changed", "removed"])
def test_idempotency_key_changed_after_signing_is_refused(live_server, raw, changed_key):
    request = signed(live_server, live_server.keys[BANK_A], "POST", "/v1/transfers",
                     transfer(live_server, f"sig-idem-{changed_key}"),
                     idempotency_key="signed-key")
    before = snapshot(live_server)
    answer = raw.send(altered(request, headers={signing.IDEMPOTENCY_HEADER: changed_key}))
    assert_refused(answer, 401, "wrong signature")
    assert snapshot(live_server) == before


def test_method_changed_after_signing_is_refused(live_server, raw):
    request = signed(live_server, live_server.keys[OPERATOR], "POST", "/v1/reconcile",
                     idempotency_key="sig-method")
    as_get = httpx.Request("GET", request.url, headers=request.headers)
    assert_refused(raw.send(as_get), 401, "wrong signature")


def test_signed_request_to_a_percent_encoded_path_is_verified(live_server):
    # The reference client signs the path as sent (percent-encoded); the server must verify
    # the same bytes, so a correctly signed request is judged on its merits (404), not 401.
    with live_server.client(OPERATOR) as operator:
        answer = operator.get("/v1/transfers/no%20such%20transfer")
    assert answer.status_code == 404, answer.text


# -- idempotency keys --------------------------------------------------------------------------


def test_retry_with_the_same_idempotency_key_gets_the_first_answer_and_no_second_effect(
        live_server, raw):
    operator = live_server.keys[OPERATOR]
    body = {"public_key": KeyFile("x", BANK_B, new_private_key()).public_key}
    path = f"/v1/participants/{BANK_B}/keys"
    keys_before = len(live_server.engine.keys)
    first = raw.send(signed(live_server, operator, "POST", path, body,
                            idempotency_key="register-b-1"))
    retry = raw.send(signed(live_server, operator, "POST", path, body,
                            idempotency_key="register-b-1"))
    assert first.status_code == retry.status_code == 201
    assert retry.content == first.content  # the same key id, not a second key
    assert retry.headers["Idempotent-Replay"] == "true"
    assert "Idempotent-Replay" not in first.headers
    assert len(live_server.engine.keys) == keys_before + 1


def sent_twice(server, raw, path: str, body: dict, idempotency_key: str
               ) -> tuple[httpx.Response, httpx.Response]:
    """A request and its retry under one idempotency key; the retry changes nothing."""
    key = server.keys[BANK_A]
    first = raw.send(signed(server, key, "POST", path, body, idempotency_key=idempotency_key))
    after_first = snapshot(server)
    retry = raw.send(signed(server, key, "POST", path, body, idempotency_key=idempotency_key))
    assert retry.content == first.content
    assert retry.headers["Idempotent-Replay"] == "true"
    assert snapshot(server) == after_first
    return first, retry


def test_retried_payment_gets_byte_identical_answer_and_settles_once(live_server, raw):
    first, retry = sent_twice(live_server, raw, "/v1/payments", payment(amount="3.00"),
                              "pay-once")
    assert first.status_code == retry.status_code == 201
    assert retry.headers["content-type"] == "application/json"


def test_retried_bulk_gets_byte_identical_answer_kept_deflated(live_server, raw):
    """A bulk answer is large: the store keeps it deflated (answer_codec), and a retry is
    given the first answer's own bytes, with nothing settled twice."""
    body = {"payments": [payment(amount="0.01") for _ in range(60)]}
    first, retry = sent_twice(live_server, raw, "/v1/payments/bulk", body, "bulk-once")
    assert first.status_code == retry.status_code == 200
    with contextlib.closing(sqlite3.connect(live_server.engine.store.path)) as db:
        stored, encoding = db.execute(
            "SELECT response_body, body_encoding FROM idempotency_record WHERE "
            "idempotency_key = 'bulk-once'").fetchone()
    assert encoding == "deflate"
    assert len(first.content) >= 8 * 1024 and len(stored) < len(first.content) / 3


@pytest.mark.parametrize("damage", ["'gzip'", "CAST(x'ff' AS TEXT)"])
def test_a_retry_whose_kept_answer_cannot_be_read_is_told_so_and_runs_nothing(live_server,
                                                                             raw, damage):
    """A kept answer damaged in the database (found by review: a 500 with no words), its
    encoding an unknown one or no text at all: the retry is refused in words, and the
    request, done once, is not run again."""
    key = live_server.keys[BANK_A]
    body = {"payments": [payment(amount="0.01")]}
    idempotency_key = f"bulk-damaged-{len(damage)}"
    first = raw.send(signed(live_server, key, "POST", "/v1/payments/bulk", body,
                            idempotency_key=idempotency_key))
    assert first.status_code == 200
    with contextlib.closing(sqlite3.connect(live_server.engine.store.path)) as db, db:
        db.execute(f"UPDATE idempotency_record SET body_encoding = {damage} "
                   "WHERE idempotency_key = ?", (idempotency_key,))
    before = snapshot(live_server)
    retry = raw.send(signed(live_server, key, "POST", "/v1/payments/bulk", body,
                            idempotency_key=idempotency_key))
    assert retry.status_code == 500
    assert retry.headers["content-type"] == PROBLEM_JSON
    assert retry.json()["title"] == "Kept answer unreadable"
    assert snapshot(live_server) == before


def test_retry_of_a_refusal_gets_the_same_refusal(live_server, raw):
    key = live_server.keys[BANK_A]
    body = transfer(live_server, "sig-refusal", debtor=BANK_B, creditor=BANK_A)
    first = raw.send(signed(live_server, key, "POST", "/v1/transfers", body,
                            idempotency_key="refused-once"))
    retry = raw.send(signed(live_server, key, "POST", "/v1/transfers", body,
                            idempotency_key="refused-once"))
    assert first.status_code == retry.status_code == 404
    assert retry.content == first.content
    assert retry.headers["content-type"] == PROBLEM_JSON


def test_same_idempotency_key_with_another_request_is_refused_and_changes_nothing(
        live_server, raw):
    key = live_server.keys[BANK_A]
    first = raw.send(signed(live_server, key, "POST", "/v1/transfers",
                            transfer(live_server, "sig-reuse-1"), idempotency_key="reused"))
    before = snapshot(live_server)
    other = raw.send(signed(live_server, key, "POST", "/v1/transfers",
                            transfer(live_server, "sig-reuse-2"), idempotency_key="reused"))
    assert first.status_code == 201
    assert_refused(other, 422, "different request")
    assert snapshot(live_server) == before
    assert live_server.engine.store.journal_entry("sig-reuse-2") is None


def test_same_idempotency_key_with_another_query_is_another_request(live_server, raw):
    key = live_server.keys[OPERATOR]
    first = raw.send(signed(live_server, key, "POST", "/v1/gridlock/resolve?currency=CNY",
                            idempotency_key="resolve-once"))
    other = raw.send(signed(live_server, key, "POST", "/v1/gridlock/resolve?currency=RUB",
                            idempotency_key="resolve-once"))
    again = raw.send(signed(live_server, key, "POST", "/v1/gridlock/resolve?currency=CNY",
                            idempotency_key="resolve-once"))
    assert first.status_code == 200, first.text
    assert_refused(other, 422, "different request")
    assert again.content == first.content and again.headers["idempotent-replay"] == "true"


@pytest.mark.parametrize("headers", [
    b"",  # no signature at all
    b"X-Scopay-Key-Id: kffffffffffffffff\r\nX-Scopay-Timestamp: 1\r\n"
    b"X-Scopay-Nonce: nnnnnnnnnnnnnnnn\r\nX-Scopay-Signature: x\r\n",  # stale, unknown key
])
def test_a_request_its_headers_refuse_is_answered_before_its_body_is_read(live_server, headers):
    """An unsigned client declaring a large body is refused on its headers: scopay neither
    waits for nor holds the body."""
    import socket
    from urllib.parse import urlsplit

    url = urlsplit(live_server.url)
    with socket.create_connection((url.hostname, url.port), timeout=10) as client:
        client.sendall(b"POST /v1/payments HTTP/1.1\r\nHost: scopay\r\n"
                       b"Content-Type: application/json\r\nContent-Length: 4000000\r\n"
                       + headers + b"\r\n{")  # one byte of the body, and no more
        answer = client.recv(65536)
    assert answer.startswith(b"HTTP/1.1 401 "), answer[:200]


def test_a_key_whose_answer_was_large_still_refuses_another_request(live_server, raw):
    """A batch answer past a megabyte is kept too: the key then refuses a different batch."""
    stem = "big-answer-" + uuid.uuid4().hex[:8] + "-"
    items = [transfer(live_server, stem + f"{n:05d}".rjust(OWN_TRANSFER_ID_MAX - len(stem), "0"),
                      amount="0.01") for n in range(8190)]
    first = raw.send(signed(live_server, live_server.keys[BANK_A], "POST", "/v1/transfers/batch",
                            {"transfers": items}, idempotency_key="large-answer"))
    assert first.status_code == 200, first.text
    assert len(first.content) > 1024 * 1024
    before = snapshot(live_server)
    other = [{**item, "id": item["id"][:-1] + "x"} for item in items[:2]]
    again = raw.send(signed(live_server, live_server.keys[BANK_A], "POST", "/v1/transfers/batch",
                            {"transfers": other}, idempotency_key="large-answer"))
    assert again.status_code == 422, again.text
    assert snapshot(live_server) == before
    replayed = raw.send(signed(live_server, live_server.keys[BANK_A], "POST",
                               "/v1/transfers/batch", {"transfers": items},
                               idempotency_key="large-answer"))
    assert replayed.headers.get("Idempotent-Replay") == "true"
    assert replayed.content == first.content


def test_idempotency_keys_belong_to_one_participant(live_server, raw):
    a = raw.send(signed(live_server, live_server.keys[BANK_A], "POST", "/v1/transfers",
                        transfer(live_server, "sig-scope-a"), idempotency_key="shared-name"))
    b = raw.send(signed(live_server, live_server.keys[BANK_B], "POST", "/v1/transfers",
                        transfer(live_server, "sig-scope-b", debtor=BANK_B, creditor=BANK_A),
                        idempotency_key="shared-name"))
    assert a.status_code == b.status_code == 201
    assert "Idempotent-Replay" not in b.headers
    assert b.json()["id"] == "sig-scope-b"


def _signed_without_idempotency_key(server, key: KeyFile, path: str, body: dict) -> httpx.Request:
    content = json.dumps(body).encode()
    timestamp, nonce = str(int(time.time())), signing.new_nonce()
    message = signing.canonical_request("POST", path, timestamp, nonce, "", content)
    return httpx.Request("POST", server.url + path, content=content, headers={
        "content-type": "application/json", signing.KEY_ID_HEADER: key.key_id,
        signing.TIMESTAMP_HEADER: timestamp, signing.NONCE_HEADER: nonce,
        signing.SIGNATURE_HEADER: signing.sign(key.private_key, message)})


def test_state_changing_call_without_idempotency_key_is_refused(live_server, raw):
    request = _signed_without_idempotency_key(live_server, live_server.keys[BANK_A],
                                              "/v1/transfers",
                                              transfer(live_server, "sig-no-key"))
    before = snapshot(live_server)
    assert_refused(raw.send(request), 400, "Idempotency-Key")
    assert snapshot(live_server) == before


@pytest.mark.parametrize("idempotency_key", ["has space", "slash/not/allowed", "k" * 65])
def test_idempotency_key_of_the_wrong_format_is_refused(live_server, raw, idempotency_key):
    request = signed(live_server, live_server.keys[BANK_A], "POST", "/v1/transfers",
                     transfer(live_server, "sig-bad-key"), idempotency_key=idempotency_key)
    before = snapshot(live_server)
    assert_refused(raw.send(request), 400, "Idempotency-Key")
    assert snapshot(live_server) == before


# -- rate limit --------------------------------------------------------------------------------

RATE_PER_S, BURST = 5, 5
REQUESTS_TRIED = 20


@pytest.fixture
def limited_app(engine, serve_app):
    """A fresh app over the small network of tests/conftest.py, limited to 5/s, burst 5,
    served on loopback."""
    keys = {}
    for bic in ("ICBKCNBJ", "ABOCCNBJ"):
        keys[bic] = KeyFile(signing.new_key_id(), bic, new_private_key())
        engine.register_key(keys[bic].key_id, bic, keys[bic].public_key, 2_000_000)
    runner = EngineRunner(engine, lambda: time.time_ns() // 1000).start()
    app = create_app(runner)
    app.state.rate_limiter = RateLimiter(rate_per_s=RATE_PER_S, burst=BURST)
    with httpx.Client(base_url=serve_app(app), timeout=30) as client:
        client.app_state = app.state  # for a test to change the limiter
        yield client, keys
    runner.stop()


def signed_get(client, key: KeyFile) -> httpx.Request:
    request = client.build_request("GET", "/v1/participants")
    sign_request(request, key)
    return request


def _burst(client, key: KeyFile) -> list[httpx.Response]:
    return [client.get("/v1/participants", auth=SignedAuth(key)) for _ in range(REQUESTS_TRIED)]


def test_requests_over_the_burst_get_429_with_retry_after(limited_app):
    client, keys = limited_app
    answers = _burst(client, keys["ICBKCNBJ"])
    statuses = [a.status_code for a in answers]
    assert statuses[:BURST] == [200] * BURST
    limited = [a for a in answers if a.status_code == 429]
    assert limited, statuses
    assert all(a.headers["content-type"] == PROBLEM_JSON for a in limited)
    assert all(int(a.headers["Retry-After"]) >= 1 for a in limited)


def test_rate_limit_of_one_participant_leaves_others_alone(limited_app):
    client, keys = limited_app
    assert 429 in [a.status_code for a in _burst(client, keys["ICBKCNBJ"])]
    assert client.get("/v1/participants", auth=SignedAuth(keys["ABOCCNBJ"])).status_code == 200


def test_a_request_over_the_rate_keeps_its_nonce_unused_so_it_can_be_sent_again(limited_app):
    client, keys = limited_app
    requests = [signed_get(client, keys["ICBKCNBJ"]) for _ in range(REQUESTS_TRIED)]
    answers = [client.send(request) for request in requests]
    refused = next(r for r, a in zip(requests, answers, strict=True) if a.status_code == 429)
    client.app_state.rate_limiter = RateLimiter()  # the rate has room again
    assert client.send(refused).status_code == 200


def test_replays_of_a_captured_request_do_not_spend_the_banks_rate(limited_app):
    client, keys = limited_app
    captured = signed_get(client, keys["ICBKCNBJ"])
    assert client.send(captured).status_code == 200
    replays = [client.send(captured).status_code for _ in range(REQUESTS_TRIED)]
    assert set(replays) == {401}
    fresh = [client.send(signed_get(client, keys["ICBKCNBJ"])).status_code
             for _ in range(BURST - 1)]
    assert fresh == [200] * (BURST - 1)  # the burst is the bank's still


def test_rate_limit_refusal_names_the_configured_rate(limited_app):
    client, keys = limited_app
    limited = next(a for a in _burst(client, keys["ICBKCNBJ"]) if a.status_code == 429)
    assert limited.json()["detail"] == f"over {RATE_PER_S:,} requests a second"


def test_reference_client_signs_requests_the_server_accepts(live_server):
    with ScopayClient(live_server.url, live_server.keys[BANK_A]) as client:
        assert client.get("/v1/accounts").status_code == 200
        assert client.post("/v1/transfers",
                           json=transfer(live_server, "sig-client")).status_code == 201


# -- the signature check itself ----------------------------------------------------------------

ED25519_ORDER = 2**252 + 27742317777372353535851937790883648493  # L of RFC 8032


def test_signature_verifies_only_for_its_key_and_message():
    key, other = new_private_key(), new_private_key()
    message = signing.canonical_request("POST", "/v1/payments", "1795939200", "n" * 16, "k", b"{}")
    signature = signing.sign(key, message)
    assert signing.verify(signing.public_key_b64(key), signature, message)
    assert not signing.verify(signing.public_key_b64(key), signature, message + b" ")
    assert not signing.verify(signing.public_key_b64(other), signature, message)


@pytest.mark.parametrize("mangle", ["short", "long", "not base64", "empty"])
def test_signature_of_the_wrong_shape_does_not_verify(mangle):
    key = new_private_key()
    signature = signing.sign(key, b"m")
    shaped = {"short": signature[:-4], "long": signature + "AAAA", "not base64": "!" * 86,
              "empty": ""}[mangle]
    assert not signing.verify(signing.public_key_b64(key), shaped, b"m")


def test_malleated_signature_is_refused():
    """S + L verifies under the bare group equation; RFC 8032 requires S < L, so a captured
    signature cannot be re-encoded into a second valid one."""
    key = new_private_key()
    raw = base64.urlsafe_b64decode(signing.sign(key, b"m") + "==")
    s = int.from_bytes(raw[32:], "little") + ED25519_ORDER
    malleated = raw[:32] + s.to_bytes(32, "little")
    encoded = base64.urlsafe_b64encode(malleated).rstrip(b"=").decode()
    assert not signing.verify(signing.public_key_b64(key), encoded, b"m")


def test_small_order_public_key_verifies_nothing():
    """The identity point as a public key, with the signature (R = identity, S = 0) that the
    bare group equation accepts for every message: refused."""
    identity = bytes([1]) + bytes(31)
    key = base64.urlsafe_b64encode(identity).rstrip(b"=").decode()
    signature = base64.urlsafe_b64encode(identity + bytes(32)).rstrip(b"=").decode()
    assert not signing.verify(key, signature, b"any message")


@pytest.mark.parametrize("encoded", [bytes([1]) + bytes(31), bytes(32), b"\xff" * 32])
def test_small_order_or_invalid_point_is_not_a_public_key(encoded):
    assert not signing.is_public_key(base64.urlsafe_b64encode(encoded).rstrip(b"=").decode())


def test_generated_key_is_a_public_key():
    assert signing.is_public_key(signing.public_key_b64(new_private_key()))


def test_the_rate_limiters_bucket_holds_its_burst_at_most_however_long_idle():
    """An hour idle gives a participant its burst again, not an hour's worth of requests."""
    limiter = RateLimiter(rate_per_s=10, burst=20)
    assert limiter.allow("DEMACNX0", 0.0) == 0.0
    allowed = 0
    while limiter.allow("DEMACNX0", 3600.0) == 0.0:
        allowed += 1
    assert allowed == 20
    assert limiter.allow("DEMACNX0", 3600.0) == pytest.approx(0.1)  # one token's time
    assert limiter.allow("DEMBCNX0", 3600.0) == 0.0  # another participant's own bucket
