"""Who may call what: one table of every /v1 endpoint x caller, checked over real HTTP.

Callers (ROLE_BIC):
  operator               SCOPCNX0, the scopay operator
  agent                  PBOCCNBJ, settlement agent for CNY, acting on CNY resources
  agent-other-currency   PBOCCNBJ acting on RUB resources
  own                    DEMACNX0 acting on its own resources
  foreign                DEMACNX0 acting on DEMBCNX0's resources (DEMBCNX0's payments go to
                         the Mongolian central bank BOMUMNUB, so DEMACNX0 is no party to them)
  auditor                OVSTCNX0, an oversight body: reads everything, changes nothing
  unsigned               no signature at all

A denied call answers with problem+json and changes nothing (balances, queue, payments, keys,
participants, accounts, policies, mailboxes). A foreign object gets the same answer as one that
does not exist, so a caller cannot learn what others have. Idempotency records are not part of
the compared state: the answer to every signed state-changing call is kept under its key, a
refusal included, so that a retry gets the same refusal.
"""

from __future__ import annotations

import contextlib
import itertools
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import pytest

from scopay.api import signing
from scopay.client import KeyFile, new_private_key
from scopay.domain.participant import Participant, Role, Status, Tier
from scopay.domain.payment import Party, Payment
from scopay.iso20022.model import CreditTransferMessage
from scopay.iso20022.pacs008 import PACS008_V08, build_pacs008

OPERATOR, PBOC, BANK_A, BANK_B = "SCOPCNX0", "PBOCCNBJ", "DEMACNX0", "DEMBCNX0"
RU_A, RU_B, MONGOLIA = "DEMARUX0", "DEMBRUX0", "BOMUMNUB"
AUDITOR_BIC = "OVSTCNX0"  # the auditor live_server (conftest.py) admits
ROLE_BIC = {"operator": OPERATOR, "agent": PBOC, "agent-other-currency": PBOC, "own": BANK_A,
            "foreign": BANK_A, "auditor": AUDITOR_BIC, "unsigned": None}
CORE_ROLES = ("operator", "agent", "own", "auditor", "unsigned")
MISSING_ACCOUNT, MISSING_BIC, MISSING_TRANSFER = 999_999, "ZZZZCNX0", "no-such-transfer"
MAILBOX_LEAD = 60  # notices B gets that no one else does (world)
MISSING_KEY, MISSING_SEQ = "k0000000000000000", 10**9
TODAY = datetime.now(UTC).date().isoformat()
MORE_THAN_A_BANK_HOLDS = "90000000.00"  # the demo banks hold 10,000,000.00 each
PROBLEM_JSON = "application/problem+json"
PROBLEM_XML = "application/problem+xml"  # the ISO 20022 endpoint refuses in XML, by design


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    body: object = None
    params: dict | None = None
    subject: str = ""  # the object's id as it may appear in a refusal's detail
    content: bytes | None = None  # a raw body (ISO 20022 XML) instead of JSON


@dataclass
class World:
    """The module's resources, and ways to make fresh ones for calls that consume them."""

    server: object
    clients: dict[str | None, httpx.Client]
    a_cny: int
    b_cny: int
    ru_account: int
    a_settled: str
    b_settled: str
    b_queued: str
    ru_settled: str
    a_notice: int
    b_notice: int
    _ids: itertools.count = field(default_factory=itertools.count)

    def send(self, bic: str | None, call: Call) -> httpx.Response:
        if call.content is not None:
            return self.clients[bic].request(call.method, call.path, content=call.content,
                                             headers={"content-type": "application/xml"})
        return self.clients[bic].request(call.method, call.path, json=call.body,
                                         params=call.params)

    def fresh_id(self, prefix: str) -> str:
        return f"matrix-{prefix}-{next(self._ids)}"

    def fresh_queued(self, sender: str, creditor: str) -> str:
        body = payment_body(sender, creditor, MORE_THAN_A_BANK_HOLDS)
        answer = self.clients[sender].post("/v1/payments", json=body)
        assert answer.json()["status"] == "queued", answer.text
        return body["uetr"]

    def fresh_settled(self, sender: str, creditor: str) -> str:
        body = payment_body(sender, creditor, "0.01")
        answer = self.clients[sender].post("/v1/payments", json=body)
        assert answer.json()["status"] == "settled", answer.text
        return body["uetr"]

    def fresh_key(self, bic: str) -> str:
        key = KeyFile(signing.new_key_id(), bic, new_private_key())
        self.server.engine.register_key(key.key_id, bic, key.public_key, now_us())
        return key.key_id

    def fresh_bic(self) -> str:
        n = next(self._ids)
        return f"MX{chr(65 + n // 26 % 26)}{chr(65 + n % 26)}CNX0"

    def fresh_participant(self, status: Status = Status.ACTIVE) -> str:
        bic = self.fresh_bic()
        engine = self.server.engine
        engine.admit_participant(
            Participant(bic, "Matrix test bank (fictional)", Role.DIRECT, "CN", Tier.MEMBER),
            now_us())
        if status != Status.ACTIVE:
            engine.set_participant_status(bic, status, now_us())
        return bic


def now_us() -> int:
    return time.time_ns() // 1000


def payment_body(debtor: str, creditor: str, amount: str = "1.00",
                 currency: str = "CNY") -> dict:
    return {"uetr": str(uuid.uuid4()), "instruction_id": uuid.uuid4().hex[:16],
            "end_to_end_id": "MATRIX", "debtor_agent": debtor, "creditor_agent": creditor,
            "debtor": {"name": "Debtor"}, "creditor": {"name": "Creditor"}, "amount": amount,
            "currency": currency}


def transfer_body(transfer_id: str, debit: int, credit: int, amount: str = "0.01") -> dict:
    return {"id": transfer_id, "debit_account_id": debit, "credit_account_id": credit,
            "amount": amount, "currency": "CNY"}


def public_key() -> str:
    return KeyFile("unused", BANK_B, new_private_key()).public_key


# -- the state a denied call must leave as it was ---------------------------------------------


def snapshot(server) -> dict:
    engine = server.engine
    with contextlib.closing(sqlite3.connect(engine.store.path)) as db:
        mailbox = db.execute("SELECT participant_bic, count(*), count(acked_us) FROM mailbox "
                             "GROUP BY participant_bic ORDER BY participant_bic").fetchall()
    return {
        "balances": engine.balances(),
        "journal_entries": engine.journal_count,
        "queue": [(uetr, o.priority, o.sequence) for uetr, o in engine.rtgs.orders.items()],
        "payments": {uetr: (r.status, len(r.history), r.priority)
                     for uetr, r in engine.payments.items()},
        "keys": dict(engine.keys),
        "participants": dict(engine.participants),
        "accounts": dict(engine.accounts),
        "policies": dict(engine.rtgs.policies),
        "mailbox": mailbox,
    }


# -- the table ---------------------------------------------------------------------------------

Builder = Callable[[World], Call]


@dataclass(frozen=True)
class Row:
    endpoint: str
    role: str
    expect: int
    call: Builder
    missing: Builder | None = None  # the same call on an object that does not exist
    check: Callable[[World, httpx.Response], None] | None = None
    changes_nothing: bool = False  # allowed, and by design without effect
    cleanup: Callable[[World, Call], None] | None = None
    refusal_type: str = PROBLEM_JSON

    @property
    def denied(self) -> bool:
        return self.expect >= 400

    @property
    def id(self) -> str:
        return f"{self.endpoint} :: {self.role}"


def get(path: str, **params) -> Builder:
    return lambda w: Call("GET", path.format(w=w), params=params or None)


def cancel_payment(w: World, call: Call) -> None:
    uetr = call.path.split("/")[3]
    sender = w.server.engine.payment(uetr).sender_bic
    assert w.clients[sender].post(f"/v1/payments/{uetr}/cancel").status_code == 200


def lists_every_account(w, answer):
    assert len(answer.json()) == len(w.server.engine.accounts)


def lists_only_cny(w, answer):
    assert {a["currency"] for a in answer.json()} == {"CNY"}


def lists_only_own_accounts(w, answer):
    assert {a["owner_bic"] for a in answer.json()} == {BANK_A}


def omits_foreign_account(w, answer):
    assert w.b_cny not in {a["account_id"] for a in answer.json()}


def lists_the_foreign_queued_payment(w, answer):
    assert w.b_queued in {p["uetr"] for p in answer.json()}


def lists_only_payments_of_the_caller(w, answer):
    assert all(BANK_A in (p["debtor_agent"], p["creditor_agent"]) for p in answer.json())


def omits_the_foreign_queued_payment(w, answer):
    assert w.b_queued not in {p["uetr"] for p in answer.json()}


def omits_foreign_notices(w, answer):
    """Numbers run per mailbox, so another's notice cannot even be named: B's notice about
    its own payment is not listed, nor any number as high as B's (see `world`)."""
    listed = answer.json()
    assert all(n["seq"] < w.b_notice for n in listed)
    assert not any(n["uetr"] == w.b_settled and n["kind"] == "status_report" for n in listed)


def row_set(endpoint: str, *rows: tuple) -> list[Row]:
    return [Row(endpoint, *row) for row in rows]


_PAYMENT_PATH = "/v1/payments/{uetr}"
MATRIX: list[Row] = [
    *row_set(
        "GET /v1/participants",
        ("operator", 200, get("/v1/participants")),
        ("agent", 200, get("/v1/participants")),
        ("own", 200, get("/v1/participants")),
        ("foreign", 200, get("/v1/participants")),  # the directory is shared by everyone
        ("unsigned", 401, get("/v1/participants")),
    ),
    *row_set(
        "GET /v1/participants/{bic}",
        ("operator", 200, get(f"/v1/participants/{BANK_B}")),
        ("agent", 200, get(f"/v1/participants/{BANK_B}")),
        ("own", 200, get(f"/v1/participants/{BANK_A}")),
        ("foreign", 200, get(f"/v1/participants/{BANK_B}")),
        ("unsigned", 401, get(f"/v1/participants/{BANK_B}")),
    ),
    *row_set(
        "GET /v1/accounts",
        ("operator", 200, get("/v1/accounts"), None, lists_every_account),
        ("agent", 200, get("/v1/accounts"), None, lists_only_cny),
        ("own", 200, get("/v1/accounts"), None, lists_only_own_accounts),
        ("foreign", 200, get("/v1/accounts"), None, omits_foreign_account),
        ("unsigned", 401, get("/v1/accounts")),
    ),
    *row_set(
        "GET /v1/accounts/{id}",
        ("operator", 200, get("/v1/accounts/{w.b_cny}")),
        ("agent", 200, get("/v1/accounts/{w.b_cny}")),
        ("agent-other-currency", 404,
         lambda w: Call("GET", f"/v1/accounts/{w.ru_account}", subject=str(w.ru_account)),
         lambda w: Call("GET", f"/v1/accounts/{MISSING_ACCOUNT}", subject=str(MISSING_ACCOUNT))),
        ("own", 200, get("/v1/accounts/{w.a_cny}")),
        ("foreign", 404,
         lambda w: Call("GET", f"/v1/accounts/{w.b_cny}", subject=str(w.b_cny)),
         lambda w: Call("GET", f"/v1/accounts/{MISSING_ACCOUNT}", subject=str(MISSING_ACCOUNT))),
        ("unsigned", 401, get("/v1/accounts/{w.a_cny}")),
    ),
    *row_set(
        "POST /v1/transfers",
        # the operator sees every account but moves no money
        ("operator", 404, lambda w: Call("POST", "/v1/transfers", transfer_body(
            w.fresh_id("op"), w.b_cny, w.a_cny))),
        ("agent", 201, lambda w: Call("POST", "/v1/transfers", transfer_body(
            w.fresh_id("fund"), 1, w.a_cny))),  # funds-in from its issuance account 1
        ("own", 201, lambda w: Call("POST", "/v1/transfers", transfer_body(
            w.fresh_id("own"), w.a_cny, w.b_cny))),
        ("foreign", 404,
         lambda w: Call("POST", "/v1/transfers", transfer_body(
             w.fresh_id("steal"), w.b_cny, w.a_cny), subject=str(w.b_cny)),
         lambda w: Call("POST", "/v1/transfers", transfer_body(
             w.fresh_id("steal"), MISSING_ACCOUNT, w.a_cny), subject=str(MISSING_ACCOUNT))),
        ("unsigned", 401, lambda w: Call("POST", "/v1/transfers", transfer_body(
            w.fresh_id("anon"), w.a_cny, w.b_cny))),
    ),
    *row_set(
        "POST /v1/transfers/batch",
        ("operator", 404, lambda w: Call("POST", "/v1/transfers/batch", {"transfers": [
            transfer_body(w.fresh_id("op"), w.b_cny, w.a_cny)]})),
        ("agent", 200, lambda w: Call("POST", "/v1/transfers/batch", {"transfers": [
            transfer_body(w.fresh_id("fund"), 1, w.a_cny)]})),
        ("own", 200, lambda w: Call("POST", "/v1/transfers/batch", {"transfers": [
            transfer_body(w.fresh_id("own"), w.a_cny, w.b_cny)]})),
        ("foreign", 404,
         lambda w: Call("POST", "/v1/transfers/batch", {"transfers": [
             transfer_body(w.fresh_id("steal"), w.b_cny, w.a_cny)]}, subject=str(w.b_cny)),
         lambda w: Call("POST", "/v1/transfers/batch", {"transfers": [
             transfer_body(w.fresh_id("steal"), MISSING_ACCOUNT, w.a_cny)]},
             subject=str(MISSING_ACCOUNT))),
        ("unsigned", 401, lambda w: Call("POST", "/v1/transfers/batch", {"transfers": [
            transfer_body(w.fresh_id("anon"), w.a_cny, w.b_cny)]})),
    ),
    *row_set(
        "GET /v1/transfers/{id}",
        ("operator", 200, get(f"/v1/transfers/seed-funds-in-{BANK_B}-CNY")),
        ("agent", 200, get(f"/v1/transfers/seed-funds-in-{BANK_B}-CNY")),
        ("agent-other-currency", 404,
         lambda w: Call("GET", f"/v1/transfers/seed-funds-in-{RU_A}-RUB",
                        subject=f"seed-funds-in-{RU_A}-RUB"),
         lambda w: Call("GET", f"/v1/transfers/{MISSING_TRANSFER}", subject=MISSING_TRANSFER)),
        ("own", 200, get(f"/v1/transfers/seed-funds-in-{BANK_A}-CNY")),
        ("foreign", 404,
         lambda w: Call("GET", f"/v1/transfers/seed-funds-in-{BANK_B}-CNY",
                        subject=f"seed-funds-in-{BANK_B}-CNY"),
         lambda w: Call("GET", f"/v1/transfers/{MISSING_TRANSFER}", subject=MISSING_TRANSFER)),
        ("unsigned", 401, get(f"/v1/transfers/seed-funds-in-{BANK_A}-CNY")),
    ),
    *row_set(
        "POST /v1/reconcile",
        ("operator", 200, lambda w: Call("POST", "/v1/reconcile")),
        ("agent", 403, lambda w: Call("POST", "/v1/reconcile")),
        ("own", 403, lambda w: Call("POST", "/v1/reconcile")),
        ("unsigned", 401, lambda w: Call("POST", "/v1/reconcile")),
    ),
    *row_set(
        "POST /v1/participants/{bic}/keys",
        ("operator", 201, lambda w: Call("POST", f"/v1/participants/{BANK_B}/keys",
                                         {"public_key": public_key()})),
        ("agent", 403, lambda w: Call("POST", f"/v1/participants/{BANK_A}/keys",
                                      {"public_key": public_key()})),
        ("own", 403, lambda w: Call("POST", f"/v1/participants/{BANK_A}/keys",
                                    {"public_key": public_key()})),
        ("foreign", 403,
         lambda w: Call("POST", f"/v1/participants/{BANK_B}/keys",
                        {"public_key": public_key()}, subject=BANK_B),
         lambda w: Call("POST", f"/v1/participants/{MISSING_BIC}/keys",
                        {"public_key": public_key()}, subject=MISSING_BIC)),
        ("unsigned", 401, lambda w: Call("POST", f"/v1/participants/{BANK_A}/keys",
                                         {"public_key": public_key()})),
    ),
    *row_set(
        "DELETE /v1/keys/{key_id}",
        ("operator", 204, lambda w: Call("DELETE", f"/v1/keys/{w.fresh_key(BANK_B)}")),
        ("agent", 404, lambda w: Call("DELETE", f"/v1/keys/{w.fresh_key(BANK_A)}")),
        ("own", 204, lambda w: Call("DELETE", f"/v1/keys/{w.fresh_key(BANK_A)}")),
        ("foreign", 404,
         lambda w: (lambda key: Call("DELETE", f"/v1/keys/{key}", subject=key))(
             w.fresh_key(BANK_B)),
         lambda w: Call("DELETE", f"/v1/keys/{MISSING_KEY}", subject=MISSING_KEY)),
        ("unsigned", 401, lambda w: Call("DELETE", f"/v1/keys/{w.fresh_key(BANK_A)}")),
    ),
    *row_set(
        "POST /v1/payments",
        ("operator", 403, lambda w: Call("POST", "/v1/payments", payment_body(BANK_A, BANK_B))),
        ("agent", 403, lambda w: Call("POST", "/v1/payments", payment_body(BANK_A, BANK_B))),
        ("own", 201, lambda w: Call("POST", "/v1/payments", payment_body(BANK_A, BANK_B))),
        ("foreign", 403,
         lambda w: Call("POST", "/v1/payments", payment_body(BANK_B, BANK_A), subject=BANK_B),
         lambda w: Call("POST", "/v1/payments", payment_body(MISSING_BIC, BANK_A),
                        subject=MISSING_BIC)),
        ("unsigned", 401, lambda w: Call("POST", "/v1/payments", payment_body(BANK_A, BANK_B))),
    ),
    *row_set(
        "POST /v1/payments/bulk",
        ("operator", 403, lambda w: Call("POST", "/v1/payments/bulk", {"payments": [
            payment_body(BANK_A, BANK_B)]})),
        ("agent", 403, lambda w: Call("POST", "/v1/payments/bulk", {"payments": [
            payment_body(BANK_A, BANK_B)]})),
        ("own", 200, lambda w: Call("POST", "/v1/payments/bulk", {"payments": [
            payment_body(BANK_A, BANK_B)]})),
        ("foreign", 403,
         lambda w: Call("POST", "/v1/payments/bulk", {"payments": [
             payment_body(BANK_B, BANK_A)]}, subject=BANK_B),
         lambda w: Call("POST", "/v1/payments/bulk", {"payments": [
             payment_body(MISSING_BIC, BANK_A)]}, subject=MISSING_BIC)),
        ("unsigned", 401, lambda w: Call("POST", "/v1/payments/bulk", {"payments": [
            payment_body(BANK_A, BANK_B)]})),
    ),
    *row_set(
        "GET /v1/payments/{uetr}",
        ("operator", 200, get(_PAYMENT_PATH.format(uetr="{w.b_settled}"))),
        ("agent", 200, get(_PAYMENT_PATH.format(uetr="{w.b_settled}"))),
        ("agent-other-currency", 404,
         lambda w: Call("GET", f"/v1/payments/{w.ru_settled}", subject=w.ru_settled),
         lambda w: (lambda u: Call("GET", f"/v1/payments/{u}", subject=u))(str(uuid.uuid4()))),
        ("own", 200, get(_PAYMENT_PATH.format(uetr="{w.a_settled}"))),
        ("foreign", 404,
         lambda w: Call("GET", f"/v1/payments/{w.b_settled}", subject=w.b_settled),
         lambda w: (lambda u: Call("GET", f"/v1/payments/{u}", subject=u))(str(uuid.uuid4()))),
        ("unsigned", 401, get(_PAYMENT_PATH.format(uetr="{w.a_settled}"))),
    ),
]

for _action, _body in (("cancel", None), ("priority", {"priority": "high"}),
                       ("move", {"to": "front"}), ("times", {"latest": None})):
    _cleanup = None if _action == "cancel" else cancel_payment
    MATRIX += row_set(
        f"POST /v1/payments/{{uetr}}/{_action}",
        ("operator", 200, lambda w, a=_action, b=_body: Call(
            "POST", f"/v1/payments/{w.fresh_queued(BANK_B, MONGOLIA)}/{a}", b),
         None, None, False, _cleanup),
        # the agent sees its currency's payments but manages none: no existence to hide
        ("agent", 403, lambda w, a=_action, b=_body: Call(
            "POST", f"/v1/payments/{w.b_queued}/{a}", b)),
        ("own", 200, lambda w, a=_action, b=_body: Call(
            "POST", f"/v1/payments/{w.fresh_queued(BANK_A, BANK_B)}/{a}", b),
         None, None, False, _cleanup),
        ("foreign", 404,
         lambda w, a=_action, b=_body: Call("POST", f"/v1/payments/{w.b_queued}/{a}", b,
                                            subject=w.b_queued),
         lambda w, a=_action, b=_body: (lambda u: Call(
             "POST", f"/v1/payments/{u}/{a}", b, subject=u))(str(uuid.uuid4()))),
        ("unsigned", 401, lambda w, a=_action, b=_body: Call(
            "POST", f"/v1/payments/{w.b_queued}/{a}", b)),
    )

def returning(uetr: str) -> Call:
    return Call("POST", f"/v1/payments/{uetr}/return", {"reason": "AC04"}, subject=uetr)


def returning_a_missing_payment(_w: World) -> Call:
    return returning(str(uuid.uuid4()))


# A settled payment goes back by its creditor agent (or the operator); to anyone else it is
# as if it did not exist.
MATRIX += row_set(
    "POST /v1/payments/{uetr}/return",
    ("operator", 200, lambda w: returning(w.fresh_settled(BANK_A, BANK_B))),
    ("agent", 404, lambda w: returning(w.fresh_settled(BANK_A, BANK_B)),
     returning_a_missing_payment),
    ("own", 200, lambda w: returning(w.fresh_settled(BANK_B, BANK_A))),
    ("foreign", 404, lambda w: returning(w.b_settled), returning_a_missing_payment),
    ("auditor", 404, lambda w: returning(w.fresh_settled(BANK_A, BANK_B)),
     returning_a_missing_payment),
    ("unsigned", 401, lambda w: returning(w.b_settled)),
)

_ZERO_POLICY = {"reserved_urgent": "0", "reserved_high": "0"}
MATRIX += [
    *row_set(
        "GET /v1/queue",
        ("operator", 200, get("/v1/queue"), None, lists_the_foreign_queued_payment),
        ("agent", 200, get("/v1/queue"), None, lists_the_foreign_queued_payment),
        ("own", 200, get("/v1/queue"), None, lists_only_payments_of_the_caller),
        ("foreign", 200, get("/v1/queue"), None, omits_the_foreign_queued_payment),
        ("unsigned", 401, get("/v1/queue")),
    ),
    *row_set(
        "POST /v1/gridlock/resolve",
        ("operator", 200, lambda w: Call("POST", "/v1/gridlock/resolve")),
        ("agent", 200, lambda w: Call("POST", "/v1/gridlock/resolve")),  # its CNY queue
        ("agent-other-currency", 403, lambda w: Call("POST", "/v1/gridlock/resolve",
                                                     params={"currency": "RUB"})),
        ("own", 403, lambda w: Call("POST", "/v1/gridlock/resolve")),
        ("unsigned", 401, lambda w: Call("POST", "/v1/gridlock/resolve")),
    ),
    *row_set(
        "PUT /v1/accounts/{id}/policy",
        ("operator", 204, lambda w: Call("PUT", f"/v1/accounts/{w.b_cny}/policy", _ZERO_POLICY)),
        # the agent sees a bank's account, but sets no bank's policy
        ("agent", 404, lambda w: Call("PUT", f"/v1/accounts/{w.a_cny}/policy", _ZERO_POLICY)),
        ("own", 204, lambda w: Call("PUT", f"/v1/accounts/{w.a_cny}/policy", _ZERO_POLICY)),
        ("foreign", 404,
         lambda w: Call("PUT", f"/v1/accounts/{w.b_cny}/policy", _ZERO_POLICY,
                        subject=str(w.b_cny)),
         lambda w: Call("PUT", f"/v1/accounts/{MISSING_ACCOUNT}/policy", _ZERO_POLICY,
                        subject=str(MISSING_ACCOUNT))),
        ("unsigned", 401, lambda w: Call("PUT", f"/v1/accounts/{w.a_cny}/policy",
                                         _ZERO_POLICY)),
    ),
    *row_set(
        "GET /v1/accounts/{id}/policy",
        ("operator", 200, get("/v1/accounts/{w.b_cny}/policy")),
        ("agent", 200, get("/v1/accounts/{w.b_cny}/policy")),
        ("agent-other-currency", 404,
         lambda w: Call("GET", f"/v1/accounts/{w.ru_account}/policy", subject=str(w.ru_account)),
         lambda w: Call("GET", f"/v1/accounts/{MISSING_ACCOUNT}/policy",
                        subject=str(MISSING_ACCOUNT))),
        ("own", 200, get("/v1/accounts/{w.a_cny}/policy")),
        ("foreign", 404,
         lambda w: Call("GET", f"/v1/accounts/{w.b_cny}/policy", subject=str(w.b_cny)),
         lambda w: Call("GET", f"/v1/accounts/{MISSING_ACCOUNT}/policy",
                        subject=str(MISSING_ACCOUNT))),
        ("unsigned", 401, get("/v1/accounts/{w.a_cny}/policy")),
    ),
    *row_set(
        "GET /v1/mailbox",
        ("operator", 200, get("/v1/mailbox", limit=500), None, omits_foreign_notices),
        ("agent", 200, get("/v1/mailbox", limit=500), None, omits_foreign_notices),
        ("own", 200, get("/v1/mailbox", limit=500),
         None, lambda w, answer: assert_has_notice(answer, w.a_notice)),
        ("foreign", 200, get("/v1/mailbox", limit=500), None, omits_foreign_notices),
        ("unsigned", 401, get("/v1/mailbox")),
    ),
    *row_set(
        "POST /v1/mailbox/ack",
        # acknowledging another's notice is accepted and changes nothing, for everyone
        ("operator", 204, lambda w: Call("POST", "/v1/mailbox/ack", {"seqs": [w.b_notice]}),
         None, None, True),
        ("agent", 204, lambda w: Call("POST", "/v1/mailbox/ack", {"seqs": [w.b_notice]}),
         None, None, True),
        ("own", 204, lambda w: Call("POST", "/v1/mailbox/ack", {"seqs": [w.a_notice]})),
        ("foreign", 204,
         lambda w: Call("POST", "/v1/mailbox/ack", {"seqs": [w.b_notice]},
                        subject=str(w.b_notice)),
         lambda w: Call("POST", "/v1/mailbox/ack", {"seqs": [MISSING_SEQ]},
                        subject=str(MISSING_SEQ)),
         None, True),
        ("unsigned", 401, lambda w: Call("POST", "/v1/mailbox/ack", {"seqs": [w.b_notice]})),
    ),
    *row_set(
        "POST /v1/participants",
        ("operator", 201, lambda w: Call("POST", "/v1/participants", participant_body(w))),
        ("agent", 403, lambda w: Call("POST", "/v1/participants", participant_body(w))),
        ("own", 403, lambda w: Call("POST", "/v1/participants", participant_body(w))),
        ("unsigned", 401, lambda w: Call("POST", "/v1/participants", participant_body(w))),
    ),
]

for _action, _status in (("suspend", Status.ACTIVE), ("reinstate", Status.SUSPENDED)):
    MATRIX += row_set(
        f"POST /v1/participants/{{bic}}/{_action}",
        ("operator", 204, lambda w, a=_action, s=_status: Call(
            "POST", f"/v1/participants/{w.fresh_participant(s)}/{a}")),
        ("agent", 403, lambda w, a=_action: Call("POST", f"/v1/participants/{BANK_B}/{a}")),
        ("own", 403, lambda w, a=_action: Call("POST", f"/v1/participants/{BANK_A}/{a}")),
        ("foreign", 403,
         lambda w, a=_action: Call("POST", f"/v1/participants/{BANK_B}/{a}", subject=BANK_B),
         lambda w, a=_action: Call("POST", f"/v1/participants/{MISSING_BIC}/{a}",
                                   subject=MISSING_BIC)),
        ("unsigned", 401, lambda w, a=_action: Call("POST", f"/v1/participants/{BANK_B}/{a}")),
    )

_NO_CREDIT_LINE = {"credit_line": "0.00"}  # what the demo banks have: setting it is neutral
MATRIX += [
    *row_set(
        "POST /v1/accounts",
        ("operator", 201, lambda w: Call("POST", "/v1/accounts", {
            "owner_bic": w.fresh_participant(), "currency": "CNY"})),
        ("agent", 403, lambda w: Call("POST", "/v1/accounts", {
            "owner_bic": w.fresh_participant(), "currency": "CNY"})),
        ("own", 403, lambda w: Call("POST", "/v1/accounts", {
            "owner_bic": BANK_A, "currency": "RUB"})),
        ("unsigned", 401, lambda w: Call("POST", "/v1/accounts", {
            "owner_bic": BANK_A, "currency": "RUB"})),
    ),
    *row_set(
        "PUT /v1/accounts/{id}/credit-line",
        ("operator", 204, lambda w: Call("PUT", f"/v1/accounts/{w.a_cny}/credit-line",
                                         _NO_CREDIT_LINE)),
        # the central bank grants intraday credit in its currency
        ("agent", 204, lambda w: Call("PUT", f"/v1/accounts/{w.a_cny}/credit-line",
                                      _NO_CREDIT_LINE)),
        ("agent-other-currency", 404,
         lambda w: Call("PUT", f"/v1/accounts/{w.ru_account}/credit-line", _NO_CREDIT_LINE,
                        subject=str(w.ru_account)),
         lambda w: Call("PUT", f"/v1/accounts/{MISSING_ACCOUNT}/credit-line", _NO_CREDIT_LINE,
                        subject=str(MISSING_ACCOUNT))),
        ("own", 403, lambda w: Call("PUT", f"/v1/accounts/{w.a_cny}/credit-line",
                                    _NO_CREDIT_LINE)),
        ("foreign", 403,
         lambda w: Call("PUT", f"/v1/accounts/{w.b_cny}/credit-line", _NO_CREDIT_LINE,
                        subject=str(w.b_cny)),
         lambda w: Call("PUT", f"/v1/accounts/{MISSING_ACCOUNT}/credit-line", _NO_CREDIT_LINE,
                        subject=str(MISSING_ACCOUNT))),
        ("unsigned", 401, lambda w: Call("PUT", f"/v1/accounts/{w.a_cny}/credit-line",
                                         _NO_CREDIT_LINE)),
    ),
]

for _path in ("/v1/funds-in", "/v1/funds-out"):
    MATRIX += row_set(
        f"POST {_path}",
        ("operator", 403, lambda w, p=_path: Call("POST", p, funds_body(w, w.a_cny))),
        ("agent", 201, lambda w, p=_path: Call("POST", p, funds_body(w, w.a_cny))),
        ("own", 403, lambda w, p=_path: Call("POST", p, funds_body(w, w.a_cny))),
        ("foreign", 403,
         lambda w, p=_path: Call("POST", p, funds_body(w, w.b_cny), subject=str(w.b_cny)),
         lambda w, p=_path: Call("POST", p, funds_body(w, MISSING_ACCOUNT),
                                 subject=str(MISSING_ACCOUNT))),
        ("unsigned", 401, lambda w, p=_path: Call("POST", p, funds_body(w, w.a_cny))),
    )


MATRIX += [
    *row_set(
        "POST /v1/iso20022",
        ("operator", 403, lambda w: pacs008(BANK_A, BANK_B), None, None, False, None,
         PROBLEM_XML),
        ("agent", 403, lambda w: pacs008(BANK_A, BANK_B), None, None, False, None,
         PROBLEM_XML),
        ("own", 200, lambda w: pacs008(BANK_A, BANK_B)),
        ("foreign", 403, lambda w: pacs008(BANK_B, BANK_A),
         lambda w: pacs008(MISSING_BIC, BANK_A), None, False, None, PROBLEM_XML),
        ("unsigned", 401, lambda w: pacs008(BANK_A, BANK_B), None, None, False, None,
         PROBLEM_XML),
    ),
    *row_set(
        # a mailbox is its owner's alone: the operator and the agent read only their own
        "GET /v1/mailbox/{seq}/message",
        ("operator", 404, lambda w: Call("GET", f"/v1/mailbox/{w.b_notice}/message",
                                         subject=str(w.b_notice)),
         lambda w: Call("GET", f"/v1/mailbox/{MISSING_SEQ}/message", subject=str(MISSING_SEQ))),
        ("agent", 404, lambda w: Call("GET", f"/v1/mailbox/{w.b_notice}/message",
                                      subject=str(w.b_notice)),
         lambda w: Call("GET", f"/v1/mailbox/{MISSING_SEQ}/message", subject=str(MISSING_SEQ))),
        ("own", 200, get("/v1/mailbox/{w.a_notice}/message")),
        ("foreign", 404, lambda w: Call("GET", f"/v1/mailbox/{w.b_notice}/message",
                                        subject=str(w.b_notice)),
         lambda w: Call("GET", f"/v1/mailbox/{MISSING_SEQ}/message", subject=str(MISSING_SEQ))),
        ("unsigned", 401, get("/v1/mailbox/{w.a_notice}/message")),
    ),
    *row_set(
        "GET /v1/accounts/{id}/statement",
        ("operator", 200, get("/v1/accounts/{w.b_cny}/statement", day=TODAY)),
        ("agent", 200, get("/v1/accounts/{w.b_cny}/statement", day=TODAY)),
        ("agent-other-currency", 404,
         lambda w: Call("GET", f"/v1/accounts/{w.ru_account}/statement", params={"day": TODAY},
                        subject=str(w.ru_account)),
         lambda w: Call("GET", f"/v1/accounts/{MISSING_ACCOUNT}/statement",
                        params={"day": TODAY}, subject=str(MISSING_ACCOUNT))),
        ("own", 200, get("/v1/accounts/{w.a_cny}/statement", day=TODAY)),
        ("foreign", 404,
         lambda w: Call("GET", f"/v1/accounts/{w.b_cny}/statement", params={"day": TODAY},
                        subject=str(w.b_cny)),
         lambda w: Call("GET", f"/v1/accounts/{MISSING_ACCOUNT}/statement",
                        params={"day": TODAY}, subject=str(MISSING_ACCOUNT))),
        ("unsigned", 401, get("/v1/accounts/{w.a_cny}/statement", day=TODAY)),
    ),
]

MATRIX += row_set(
    "GET /v1/audit/head",
    ("operator", 200, get("/v1/audit/head"), None, lambda w, a: is_the_audit_head(w, a)),
    ("agent", 200, get("/v1/audit/head"), None, lambda w, a: is_the_audit_head(w, a)),
    ("own", 403, get("/v1/audit/head")),
    ("auditor", 200, get("/v1/audit/head"), None, lambda w, a: is_the_audit_head(w, a)),
    ("unsigned", 401, get("/v1/audit/head")),
)


def auditor_rows() -> list[Row]:
    """The auditor reads what the operator reads and changes nothing: where the operator may
    act, the auditor is refused as the operator is where the operator is (404 where it sees
    the object but may not move it, 403 for what its role may not do)."""
    rows = []
    for endpoint, expect, call, missing, check, changes_nothing, refusal_type in (
        ("GET /v1/participants", 200, get("/v1/participants"), None, None, False, None),
        ("GET /v1/participants/{bic}", 200, get(f"/v1/participants/{BANK_B}"), None, None,
         False, None),
        ("GET /v1/accounts", 200, get("/v1/accounts"), None, lists_every_account, False, None),
        ("GET /v1/accounts/{id}", 200, get("/v1/accounts/{w.b_cny}"), None, None, False, None),
        ("POST /v1/transfers", 404, lambda w: Call("POST", "/v1/transfers", transfer_body(
            w.fresh_id("audit"), w.b_cny, w.a_cny)), None, None, False, None),
        ("POST /v1/transfers/batch", 404, lambda w: Call("POST", "/v1/transfers/batch", {
            "transfers": [transfer_body(w.fresh_id("audit"), w.b_cny, w.a_cny)]}),
         None, None, False, None),
        ("GET /v1/transfers/{id}", 200, get(f"/v1/transfers/seed-funds-in-{BANK_B}-CNY"),
         None, None, False, None),
        ("POST /v1/reconcile", 403, lambda w: Call("POST", "/v1/reconcile"), None, None, False,
         None),
        ("POST /v1/participants/{bic}/keys", 403, lambda w: Call(
            "POST", f"/v1/participants/{AUDITOR_BIC}/keys", {"public_key": public_key()}),
         None, None, False, None),
        ("DELETE /v1/keys/{key_id}", 404,
         lambda w: (lambda key: Call("DELETE", f"/v1/keys/{key}", subject=key))(
             w.fresh_key(BANK_B)),
         lambda w: Call("DELETE", f"/v1/keys/{MISSING_KEY}", subject=MISSING_KEY), None,
         False, None),
        ("POST /v1/payments", 403, lambda w: Call("POST", "/v1/payments", payment_body(
            BANK_A, BANK_B)), None, None, False, None),
        ("POST /v1/payments/bulk", 403, lambda w: Call("POST", "/v1/payments/bulk", {
            "payments": [payment_body(BANK_A, BANK_B)]}), None, None, False, None),
        ("GET /v1/payments/{uetr}", 200, get(_PAYMENT_PATH.format(uetr="{w.b_settled}")),
         None, None, False, None),
        *[(f"POST /v1/payments/{{uetr}}/{action}", 403,
           lambda w, a=action, b=body: Call("POST", f"/v1/payments/{w.b_queued}/{a}", b),
           None, None, False, None)
          for action, body in (("cancel", None), ("priority", {"priority": "high"}),
                               ("move", {"to": "front"}), ("times", {"latest": None}))],
        ("GET /v1/queue", 200, get("/v1/queue"), None, lists_the_foreign_queued_payment,
         False, None),
        ("POST /v1/gridlock/resolve", 403, lambda w: Call("POST", "/v1/gridlock/resolve"),
         None, None, False, None),
        ("GET /v1/accounts/{id}/policy", 200, get("/v1/accounts/{w.b_cny}/policy"), None,
         None, False, None),
        ("PUT /v1/accounts/{id}/policy", 404, lambda w: Call(
            "PUT", f"/v1/accounts/{w.b_cny}/policy", _ZERO_POLICY, subject=str(w.b_cny)),
         lambda w: Call("PUT", f"/v1/accounts/{MISSING_ACCOUNT}/policy", _ZERO_POLICY,
                        subject=str(MISSING_ACCOUNT)), None, False, None),
        ("GET /v1/mailbox", 200, get("/v1/mailbox", limit=500), None, omits_foreign_notices,
         False, None),
        ("POST /v1/mailbox/ack", 204, lambda w: Call("POST", "/v1/mailbox/ack", {
            "seqs": [w.b_notice]}), None, None, True, None),
        ("POST /v1/participants", 403, lambda w: Call("POST", "/v1/participants",
                                                      participant_body(w)),
         None, None, False, None),
        *[(f"POST /v1/participants/{{bic}}/{action}", 403,
           lambda w, a=action: Call("POST", f"/v1/participants/{BANK_B}/{a}"),
           None, None, False, None) for action in ("suspend", "reinstate")],
        ("POST /v1/accounts", 403, lambda w: Call("POST", "/v1/accounts", {
            "owner_bic": AUDITOR_BIC, "currency": "CNY"}), None, None, False, None),
        ("PUT /v1/accounts/{id}/credit-line", 403, lambda w: Call(
            "PUT", f"/v1/accounts/{w.b_cny}/credit-line", _NO_CREDIT_LINE),
         None, None, False, None),
        *[(f"POST {path}", 403, lambda w, p=path: Call("POST", p, funds_body(w, w.b_cny)),
           None, None, False, None) for path in ("/v1/funds-in", "/v1/funds-out")],
        ("POST /v1/iso20022", 403, lambda w: pacs008(BANK_A, BANK_B), None, None, False,
         PROBLEM_XML),
        ("GET /v1/mailbox/{seq}/message", 404, lambda w: Call(
            "GET", f"/v1/mailbox/{w.b_notice}/message", subject=str(w.b_notice)),
         lambda w: Call("GET", f"/v1/mailbox/{MISSING_SEQ}/message", subject=str(MISSING_SEQ)),
         None, False, None),
        ("GET /v1/accounts/{id}/statement", 200,
         get("/v1/accounts/{w.b_cny}/statement", day=TODAY), None, None, False, None),
    ):
        rows.append(Row(endpoint, "auditor", expect, call, missing, check, changes_nothing,
                        None, refusal_type or PROBLEM_JSON))
    return rows


MATRIX += auditor_rows()


def is_the_audit_head(w: World, answer: httpx.Response) -> None:
    seq, sha256, at_us = w.server.engine.store.audit_head()
    assert answer.json() == {"seq": seq, "sha256": sha256, "at_us": at_us}


def test_auditor_revokes_its_own_key_and_nothing_else_of_its_own_changes(world):
    """Revoking a key of one's own is allowed to every participant, the auditor included:
    a key it suspects stolen must not wait for the operator."""
    key = world.fresh_key(AUDITOR_BIC)
    answer = world.send(AUDITOR_BIC, Call("DELETE", f"/v1/keys/{key}"))
    assert answer.status_code == 204
    assert world.server.engine.keys[key][2] is not None


def test_auditor_is_refused_an_account_and_admitted_only_without_one(world):
    engine = world.server.engine
    assert not any(a.owner_bic == AUDITOR_BIC for a in engine.accounts.values())
    answer = world.send(OPERATOR, Call("POST", "/v1/accounts", {
        "owner_bic": AUDITOR_BIC, "currency": "CNY"}))
    assert answer.status_code == 409, answer.text


def pacs008(debtor: str, creditor: str) -> Call:
    """One 1.00 CNY payment as an ISO 20022 pacs.008 message."""
    uetr = str(uuid.uuid4())
    payment = Payment(uetr, uuid.uuid4().hex[:16], "MATRIX", debtor, creditor, Party("Debtor"),
                      Party("Creditor"), 100, "CNY")
    message = CreditTransferMessage("MATRIX" + uuid.uuid4().hex[:16], now_us(), (payment,))
    return Call("POST", "/v1/iso20022", content=build_pacs008(message, PACS008_V08),
                subject=debtor)


def participant_body(w: World) -> dict:
    return {"bic": w.fresh_bic(), "name": "Matrix test bank (fictional)",
            "role": "direct_participant", "country": "CN", "tier": "member"}


def funds_body(w: World, account_id: int) -> dict:
    return {"id": w.fresh_id("funds"), "account_id": account_id, "amount": "1.00"}


def assert_has_notice(answer: httpx.Response, seq: int) -> None:
    assert seq in {n["seq"] for n in answer.json()}


# -- fixtures and tests ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(live_server):
    clients = {bic: live_server.client(bic) for bic in {*ROLE_BIC.values(), BANK_B, RU_A}}

    def pay(sender, creditor, amount="1.00", currency="CNY"):
        body = payment_body(sender, creditor, amount, currency)
        answer = clients[sender].post("/v1/payments", json=body)
        assert answer.status_code == 201, answer.text
        return body["uetr"], answer.json()["status"]

    a_settled, a_status = pay(BANK_A, BANK_B)
    b_settled, b_status = pay(BANK_B, MONGOLIA)  # before b_queued: it would wait behind it
    b_queued, b_queued_status = pay(BANK_B, MONGOLIA, MORE_THAN_A_BANK_HOLDS)
    ru_settled, ru_status = pay(RU_A, RU_B, "1.00", "RUB")
    assert (a_status, b_status, b_queued_status, ru_status) == (
        "settled", "settled", "queued", "settled")
    # Mailbox numbers run 1, 2, 3 ... in each mailbox: B's notice that others try to read or
    # acknowledge is numbered above any notice of theirs, so that asking for it could only
    # reach B's. B is sent notices enough to be well ahead of every other mailbox here.
    filler = clients[BANK_B].post("/v1/payments/bulk", json={"payments": [
        payment_body(BANK_B, MONGOLIA, "0.01") for _ in range(MAILBOX_LEAD)]})
    assert filler.status_code == 200, filler.text
    engine = live_server.engine
    a_notice = next(seq for seq, n, _ in engine.mailbox(BANK_A, 0, 500) if n.uetr == a_settled)
    b_notice = engine.mailbox(BANK_B, 0, 500)[-1][0]
    assert engine.store.mailbox_notice(BANK_B, b_notice) is not None
    for bic in {*ROLE_BIC.values(), RU_A} - {None, BANK_B}:  # the last number each was given
        with sqlite3.connect(live_server.engine.store.path) as db:
            (last,) = db.execute("SELECT coalesce(max(number), 0) FROM mailbox WHERE "
                                 "participant_bic = ?", (bic,)).fetchone()
        assert last < b_notice - MAILBOX_LEAD // 2, bic
    yield World(live_server, clients, live_server.account_of(BANK_A, "CNY"),
                live_server.account_of(BANK_B, "CNY"), live_server.account_of(RU_A, "RUB"),
                a_settled, b_settled, b_queued, ru_settled, a_notice, b_notice)
    for client in clients.values():
        client.close()


def problem_shape(answer: httpx.Response, subject: str) -> tuple:
    """What a caller learns from an answer, with the object's own id taken out."""
    content_type = answer.headers.get("content-type")
    if not answer.content or content_type != PROBLEM_JSON:
        return answer.status_code, content_type, answer.text.replace(subject, "<id>")
    body = answer.json()
    detail = body.get("detail", "").replace(subject, "<id>") if subject else body.get("detail")
    return (answer.status_code, answer.headers.get("content-type"), body.get("type"),
            body.get("title"), detail, body.get("rejection"))


@pytest.mark.parametrize("row", MATRIX, ids=[row.id for row in MATRIX])
def test_caller_gets_exactly_the_access_the_matrix_grants(world, row):
    call = row.call(world)
    before = snapshot(world.server)
    answer = world.send(ROLE_BIC[row.role], call)
    assert answer.status_code == row.expect, answer.text
    if row.denied:
        refusal_type = row.refusal_type  # the ISO 20022 route refuses in XML, 401 too
        assert answer.headers["content-type"] == refusal_type
        if refusal_type == PROBLEM_JSON:
            assert answer.json()["status"] == row.expect
    if row.denied or row.changes_nothing:
        assert snapshot(world.server) == before, "a refused call changed the system"
    if row.missing is not None:
        missing = row.missing(world)
        other = world.send(ROLE_BIC[row.role], missing)
        assert problem_shape(answer, call.subject) == problem_shape(other, missing.subject), (
            "a foreign object is answered differently from a missing one")
        assert snapshot(world.server) == before
    if row.check is not None:
        row.check(world, answer)
    if row.cleanup is not None:
        row.cleanup(world, call)


def test_matrix_covers_every_v1_operation_of_the_openapi_document(world):
    with world.server.client(None) as client:
        paths = client.get("/openapi.json").json()["paths"]
    documented = {f"{method.upper()} {path}" for path, operations in paths.items()
                  for method in operations if path.startswith("/v1/")}
    in_matrix = {_normalise(row.endpoint) for row in MATRIX}
    assert documented - in_matrix == set(), "add the new operations to MATRIX"
    assert in_matrix - documented == set()


def test_matrix_gives_every_endpoint_the_core_callers():
    by_endpoint: dict[str, set[str]] = {}
    for row in MATRIX:
        by_endpoint.setdefault(row.endpoint, set()).add(row.role)
    assert len({row.id for row in MATRIX}) == len(MATRIX)
    for endpoint, roles in by_endpoint.items():
        assert set(CORE_ROLES) <= roles, endpoint


def _normalise(endpoint: str) -> str:
    """The matrix writes {id}; the OpenAPI document names each path parameter."""
    return (endpoint.replace("/accounts/{id}", "/accounts/{account_id}")
            .replace("/transfers/{id}", "/transfers/{transfer_id}"))
