"""Many clients at once over real HTTP: retries, shared idempotency keys and shared payment ids
race each other, and every payment and transfer still settles exactly once.

8 threads x 100 requests, each thread with its own signed clients for DEMACNX0 and DEMBCNX0.
The work is fixed by a seeded shuffle, so a failure names the same requests on every run.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import random
import sqlite3
import threading
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass

import pytest

from scopay.domain.money import parse_amount

BANK_A, BANK_B = "DEMACNX0", "DEMBCNX0"
THREADS, REQUESTS_PER_THREAD = 8, 100
SENDS_EACH = 3  # a payment or transfer is sent this many times, racing itself
SEED = 20261129


@dataclass(frozen=True)
class Send:
    bic: str
    path: str
    body: dict
    idempotency_key: str
    debit_bic: str
    credit_bic: str
    identity: str  # "pay/<uetr>" or the transfer id: what must settle once
    amount_minor: int


def payment_body(debtor: str, creditor: str, amount: str) -> dict:
    return {"uetr": str(uuid.uuid4()), "instruction_id": uuid.uuid4().hex[:16],
            "end_to_end_id": "CONCURRENT", "debtor_agent": debtor, "creditor_agent": creditor,
            "debtor": {"name": "Debtor"}, "creditor": {"name": "Creditor"}, "amount": amount,
            "currency": "CNY"}


def plan_work(server, rng: random.Random) -> list[Send]:
    """800 sends: 200 payments and 200 transfers... each sent three times or once.

    Half the repeated ones reuse one Idempotency-Key for all three sends (the client retried);
    the other half send the same payment or transfer under a new key each time (a resubmission
    by id). The rest are sent once.
    """
    accounts = {BANK_A: server.account_of(BANK_A, "CNY"), BANK_B: server.account_of(BANK_B, "CNY")}
    sends: list[Send] = []
    total = THREADS * REQUESTS_PER_THREAD
    n = 0
    while len(sends) < total:
        debtor, creditor = (BANK_A, BANK_B) if n % 2 else (BANK_B, BANK_A)
        amount = f"0.{rng.randint(1, 99):02d}"
        if n % 4 < 2:
            body = payment_body(debtor, creditor, amount)
            path, identity = "/v1/payments", f"pay/{body['uetr']}"
        else:
            body = {"id": f"conc-{n}", "debit_account_id": accounts[debtor],
                    "credit_account_id": accounts[creditor], "amount": amount,
                    "currency": "CNY"}
            path, identity = "/v1/transfers", body["id"]
        repeats = SENDS_EACH if n % 3 else 1
        shared_key = n % 6 in (1, 2)
        for attempt in range(min(repeats, total - len(sends))):
            key = f"conc-key-{n}" if shared_key else f"conc-key-{n}-{attempt}"
            sends.append(Send(debtor, path, body, key, debtor, creditor, identity,
                              parse_amount(amount, "CNY")))
        n += 1
    rng.shuffle(sends)
    return sends


def run_concurrently(server, sends: list[Send]) -> list[tuple[Send, int, bytes, bool]]:
    slices = [sends[i::THREADS] for i in range(THREADS)]
    start = threading.Barrier(THREADS)

    def worker(mine: list[Send]) -> list[tuple[Send, int, bytes, bool]]:
        clients = {bic: server.client(bic) for bic in (BANK_A, BANK_B)}
        try:
            start.wait()
            answers = []
            for send in mine:
                answer = clients[send.bic].post(send.path, json=send.body,
                                                headers={"Idempotency-Key": send.idempotency_key})
                answers.append((send, answer.status_code, answer.content,
                                answer.headers.get("Idempotent-Replay") == "true"))
            return answers
        finally:
            for client in clients.values():
                client.close()

    with concurrent.futures.ThreadPoolExecutor(THREADS) as pool:
        return [a for answers in pool.map(worker, slices) for a in answers]


def journal_counts(server, identities: set[str]) -> Counter:
    with contextlib.closing(sqlite3.connect(server.engine.store.path)) as db:
        rows = db.execute("SELECT id FROM journal WHERE id LIKE 'pay/%' OR id LIKE '%:conc-%'")
        # A bank's own transfer ids stand in the ledger behind its BIC: "DEMACNX0:conc-1".
        return Counter(shown for (ledger_id,) in rows
                       if (shown := ledger_id.partition(":")[2] or ledger_id) in identities)


def incoming_notices(server) -> Counter:
    with contextlib.closing(sqlite3.connect(server.engine.store.path)) as db:
        rows = db.execute("SELECT uetr FROM mailbox WHERE kind = 'incoming_payment'")
        return Counter(row[0] for row in rows)


def posted(server, bic: str) -> int:
    return server.engine.balance(server.account_of(bic, "CNY")).posted_minor


@pytest.fixture(scope="module")
def raced(live_server):
    """The 800 sends, raced once; the tests below judge the outcome."""
    sends = plan_work(live_server, random.Random(SEED))
    before = {bic: posted(live_server, bic) for bic in (BANK_A, BANK_B)}
    return sends, before, run_concurrently(live_server, sends)


def test_racing_retries_settle_every_payment_and_transfer_exactly_once(live_server, raced):
    sends, before, answers = raced
    assert len(answers) == THREADS * REQUESTS_PER_THREAD
    assert {status for _, status, _, _ in answers} == {201}
    distinct = {send.identity: send for send in sends}
    counts = journal_counts(live_server, set(distinct))
    assert counts == Counter(dict.fromkeys(distinct, 1)), "something settled twice or never"
    a_gain = sum(s.amount_minor if s.credit_bic == BANK_A else -s.amount_minor
                 for s in distinct.values())
    assert posted(live_server, BANK_A) - before[BANK_A] == a_gain
    assert posted(live_server, BANK_B) - before[BANK_B] == -a_gain
    notices = incoming_notices(live_server)
    for identity in distinct:
        if identity.startswith("pay/"):
            assert notices[identity.removeprefix("pay/")] == 1, identity
    report = live_server.engine.reconcile()
    assert report.ok, report
    assert live_server.engine.store.verify_audit().ok


def test_answers_under_one_idempotency_key_or_one_id_are_identical(raced):
    sends, _, answers = raced
    by_key: dict[tuple[str, str], set] = defaultdict(set)
    by_identity: dict[str, set] = defaultdict(set)
    for send, status, content, _ in answers:
        by_key[(send.bic, send.idempotency_key)].add((status, content))
        by_identity[send.identity].add((status, content))
    assert all(len(found) == 1 for found in by_key.values()), "one key, different answers"
    assert all(len(found) == 1 for found in by_identity.values()), "one id, different answers"
    assert all(b'"rejected"' not in content for _, _, content, _ in answers)


def test_retries_under_a_used_idempotency_key_are_replayed(raced):
    sends, _, answers = raced
    uses = Counter((send.bic, send.idempotency_key) for send in sends)
    replayed = [send for send, _, _, replay in answers if replay]
    assert replayed, "no retry was answered from the idempotency record"
    assert all(uses[(send.bic, send.idempotency_key)] > 1 for send in replayed)


RACE_ROUNDS = 10


def test_concurrent_different_requests_under_one_idempotency_key_take_effect_once(live_server):
    # Each round: 8 clients send 8 different transfers under one Idempotency-Key at the same
    # moment. One may take effect; the others must be refused (422 key reused).
    accounts = (live_server.account_of(BANK_A, "CNY"), live_server.account_of(BANK_B, "CNY"))
    clients = [live_server.client(BANK_A) for _ in range(THREADS)]
    start = threading.Barrier(THREADS)

    def post(round_: int, n: int) -> int:
        start.wait()
        return clients[n].post(
            "/v1/transfers", headers={"Idempotency-Key": f"race-{round_}"},
            json={"id": f"race-{round_}-{n}", "debit_account_id": accounts[0],
                  "credit_account_id": accounts[1], "amount": "0.01", "currency": "CNY"},
        ).status_code

    took_effect = {}
    try:
        with concurrent.futures.ThreadPoolExecutor(THREADS) as pool:
            for round_ in range(RACE_ROUNDS):
                statuses = list(pool.map(lambda n, r=round_: post(r, n), range(THREADS)))
                settled = sum(1 for n in range(THREADS) if live_server.engine.store
                              .journal_entry(f"{BANK_A}:race-{round_}-{n}") is not None)
                took_effect[round_] = (settled, sorted(statuses))
    finally:
        for client in clients:
            client.close()
    assert live_server.engine.reconcile().ok
    assert all(settled == 1 for settled, _ in took_effect.values()), (
        f"(transfers that took effect, answers) per round: {took_effect}")
