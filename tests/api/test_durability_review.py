"""Review of what clients are told while a batch's COMMIT runs on the commit thread.

A real server on loopback (uvicorn, the app, the LoopRunner) over real SQLite, whose store holds
each COMMIT until the test lets it go or fails it. Where a thread-pool route has to be caught
between two of its own steps, the engine method it calls is wrapped to wait on an event there:
what a worker thread losing the GIL at that point does, made certain. Some tests pin
defects the review found (fixed since); the others pin guarantees that hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest
from serving import start_serving

from held_commit import HeldStore
from scopay.api import payments as payments_api
from scopay.api import security, signing
from scopay.api.app import create_app
from scopay.api.views import balance_out
from scopay.cli.main import seed_reference_network
from scopay.client import KeyFile, ScopayClient, new_private_key
from scopay.engine.engine import Engine
from scopay.engine.runner import LoopRunner

BANK_A, BANK_B, OPERATOR = "DEMACNX0", "DEMBCNX0", "SCOPCNX0"
WAIT_S = 20


@dataclass
class HeldServer:
    url: str
    engine: Engine
    store: HeldStore
    thread: threading.Thread  # the server's, whose event loop runs the engine
    keys: dict[str, KeyFile]

    def client(self, bic: str) -> ScopayClient:
        return ScopayClient(self.url, self.keys[bic])

    @contextlib.contextmanager
    def commits_go_through(self):
        self.store.release.set()
        try:
            yield
        finally:
            self.store.release.clear()
            self.store.finishing.clear()


@pytest.fixture
def held_server(tmp_path):
    store = HeldStore(tmp_path / "held.db")
    store.release.set()
    engine = Engine(store)
    seed_reference_network(engine, 1)
    keys = {}
    for bic in (BANK_A, BANK_B, OPERATOR):
        keys[bic] = KeyFile(signing.new_key_id(), bic, new_private_key())
        engine.register_key(keys[bic].key_id, bic, keys[bic].public_key, 2)
    runner = LoopRunner(engine, lambda: time.time_ns() // 1000).start()
    server, thread, url = start_serving(create_app(runner), log_level="critical")
    store.release.clear()
    store.finishing.clear()
    try:
        yield HeldServer(url, engine, store, thread, keys)
    finally:
        store.fail_next = False
        store.release.set()  # never leave a commit waiting at the end
        server.should_exit = True
        thread.join()
        runner.stop()
        engine.close()


def payment(amount: str, debtor: str = BANK_A, creditor: str = BANK_B) -> dict:
    return {"uetr": str(uuid.uuid4()), "instruction_id": uuid.uuid4().hex[:16],
            "end_to_end_id": "E2E-1", "debtor_agent": debtor, "creditor_agent": creditor,
            "debtor": {"name": "Ivan Petrov"}, "creditor": {"name": "Zhang Wei"},
            "amount": amount, "currency": "CNY"}


class InThread:
    """An HTTP call made on a thread of its own, its answer collected when it ends."""

    def __init__(self, call: Callable[[], httpx.Response]) -> None:
        self.answer: httpx.Response | BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(call,), daemon=True)
        self._thread.start()

    def _run(self, call) -> None:
        try:
            self.answer = call()
        except BaseException as error:  # noqa: BLE001 — handed to the test
            self.answer = error

    def result(self) -> httpx.Response:
        self._thread.join(WAIT_S)
        assert not self._thread.is_alive(), "the call never ended"
        assert isinstance(self.answer, httpx.Response), self.answer
        return self.answer

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()


def pause_in_thread_pool(server: HeldServer, name: str, *, after: bool):
    """Wrap engine.<name> so that, on a thread-pool worker (not the server's loop), it waits
    on `go` before (after=False) or after (after=True) the real call. Returns (reached, go)."""
    real = getattr(server.engine, name)
    reached, go = threading.Event(), threading.Event()

    def wrapped(*args, **kwargs):
        if threading.current_thread() is server.thread or reached.is_set():
            return real(*args, **kwargs)
        if not after:
            reached.set()
            assert go.wait(WAIT_S)
            return real(*args, **kwargs)
        value = real(*args, **kwargs)
        reached.set()
        assert go.wait(WAIT_S)
        return value

    setattr(server.engine, name, wrapped)
    return reached, go


def durable_status(server: HeldServer, uetr: str) -> str | None:
    found = [r.status.value for r in server.store.payments() if r.payment.uetr == uetr]
    return found[0] if found else None


# -- defects -------------------------------------------------------------------------------------


def test_tracking_a_payment_never_answers_a_status_that_is_not_durable(held_server):
    server = held_server
    body = payment("90000000.00")  # far beyond the bank's funding: it queues
    with server.commits_go_through(), server.client(BANK_A) as a:
        assert a.post("/v1/payments", json=body).json()["status"] == "queued"
    got, go = pause_in_thread_pool(server, "payment", after=True)
    with server.client(BANK_A) as tracker, server.client(BANK_A) as canceller:
        tracking = InThread(lambda: tracker.get(f"/v1/payments/{body['uetr']}"))
        assert got.wait(WAIT_S)  # the route holds the record, the lock let go
        server.store.fail_next = True
        cancelling = InThread(lambda: canceller.post(f"/v1/payments/{body['uetr']}/cancel"))
        assert server.store.finishing.wait(WAIT_S)  # the cancel is written, not durable
        go.set()
        tracked = tracking.result()  # answered while the commit still waits
        server.store.release.set()
        cancelled = cancelling.result()
    assert cancelled.status_code == 503  # the cancel's commit failed: storage unavailable
    assert durable_status(server, body["uetr"]) == "queued"
    assert tracked.status_code == 200
    assert tracked.json()["status"] == "queued", tracked.json()["status"]


def test_tracking_a_payment_whose_commit_fails_is_answered_404_not_500(held_server):
    server = held_server
    body = payment("1.00")  # covered: it would settle
    reached, go = pause_in_thread_pool(server, "payment_identity", after=False)
    asked = threading.Event()
    real_payment = server.engine.payment

    def payment_noting(uetr):
        if threading.current_thread() is not server.thread:
            asked.set()
        return real_payment(uetr)

    server.engine.payment = payment_noting
    with server.client(BANK_A) as tracker, server.client(BANK_A) as sender:
        # admitted while nothing is in flight, then on its worker thread...
        tracking = InThread(lambda: tracker.get(f"/v1/payments/{body['uetr']}"))
        assert reached.wait(WAIT_S)
        server.store.fail_next = True
        sending = InThread(lambda: sender.post("/v1/payments", json=body))
        assert server.store.finishing.wait(WAIT_S)  # ...the payment is written meanwhile
        go.set()
        assert asked.wait(WAIT_S)  # it saw the payment and waits for the lock
        assert not tracking.done
        server.store.release.set()  # the commit fails: the payment never existed
        sent, tracked = sending.result(), tracking.result()
    assert sent.status_code == 503  # the commit failed: storage unavailable
    assert durable_status(server, body["uetr"]) is None
    assert tracked.status_code == 404, tracked.text


# -- guarantees checked and found to hold ------------------------------------------------------


def test_a_request_admitted_during_a_commit_waits_for_it_and_sees_only_what_is_durable(
        held_server):
    """The guard waits on until_durable: a read that arrives while a payment's commit waits is
    answered only after it, and about the payment not at all when that commit failed."""
    server = held_server
    body = payment("2.00")
    with server.client(BANK_A) as sender, server.client(BANK_A) as tracker:
        server.store.fail_next = True
        sending = InThread(lambda: sender.post("/v1/payments", json=body))
        assert server.store.finishing.wait(WAIT_S)
        tracking = InThread(lambda: tracker.get(f"/v1/payments/{body['uetr']}"))
        mailbox = InThread(lambda: tracker.get("/v1/mailbox"))
        accounts = InThread(lambda: tracker.get("/v1/accounts"))
        server.store.release.set()
        sent, tracked = sending.result(), tracking.result()
        notices, balances = mailbox.result(), accounts.result()
    assert sent.status_code == 503  # the commit failed: storage unavailable
    assert tracked.status_code == 404
    assert all(n["uetr"] != body["uetr"] for n in notices.json())
    assert durable_status(server, body["uetr"]) is None
    engine = server.engine
    assert engine.reconcile().ok
    durable = {b.account_id: balance_out(b).balance for b in engine.balances()}
    shown = {b["account_id"]: b["balance"] for b in balances.json()}
    assert shown and all(durable[account_id] == shown[account_id] for account_id in shown)


def test_an_idempotent_retry_after_a_failed_commit_runs_again_and_settles_once(held_server):
    """No answer is kept under an Idempotency-Key unless its batch is durable: a retry after
    a failed commit is not replayed an answer that was rolled back, it settles the payment."""
    server = held_server
    body = payment("3.00")
    key = uuid.uuid4().hex
    with server.client(BANK_A) as a:
        server.store.fail_next = True
        first = InThread(lambda: a.send_payment(body, key))
        assert server.store.finishing.wait(WAIT_S)
        server.store.release.set()
        assert first.result().status_code == 503  # the commit failed
    with server.client(BANK_A) as a:  # the server closed the connection of the 500
        retried = a.send_payment(body, key)
        replayed = a.send_payment(body, key)
    assert retried.status_code == 201 and retried.json()["status"] == "settled"
    assert replayed.headers.get("Idempotent-Replay") == "true"
    assert replayed.json() == retried.json()
    assert durable_status(server, body["uetr"]) == "settled"
    assert server.engine.reconcile().ok


def test_a_payment_is_answered_only_once_its_commit_returned(held_server):
    server = held_server
    body = payment("4.00")
    with server.client(BANK_A) as a:
        sending = InThread(lambda: a.post("/v1/payments", json=body))
        assert server.store.finishing.wait(WAIT_S)
        time_to_answer = sending.done  # no sleep: it cannot end while the commit is held
        assert not time_to_answer
        assert durable_status(server, body["uetr"]) is None
        server.store.release.set()
        sent = sending.result()
    assert sent.status_code == 201
    assert durable_status(server, body["uetr"]) == "settled"


def test_a_payment_sent_during_a_commit_is_read_before_it_returns_and_answered_after(
        held_server, monkeypatch):
    """The guard reads and converts a payment's body while a commit is in flight (that work
    overlaps the commit), but the payment joins a batch, and is answered, only after it."""
    server = held_server
    first, second = payment("5.00"), payment("6.00")
    read = threading.Event()
    real_parsed = payments_api._parsed

    def parsed(adapter, scope, body):
        value = real_parsed(adapter, scope, body)
        if getattr(value, "uetr", None) == second["uetr"]:
            read.set()
        return value

    monkeypatch.setattr(payments_api, "_parsed", parsed)
    with server.client(BANK_A) as a, server.client(BANK_A) as b:
        sending_first = InThread(lambda: a.post("/v1/payments", json=first))
        assert server.store.finishing.wait(WAIT_S)
        sending_second = InThread(lambda: b.post("/v1/payments", json=second))
        assert read.wait(WAIT_S), "the body was not read while the commit was held"
        assert not sending_first.done and not sending_second.done
        server.store.release.set()
        answers = sending_first.result(), sending_second.result()
    assert [answer.status_code for answer in answers] == [201, 201], [a.text for a in answers]
    assert durable_status(server, first["uetr"]) == "settled"
    assert durable_status(server, second["uetr"]) == "settled"


def _parked(monkeypatch) -> threading.Event:
    """Set when a request waits for a commit in flight at the guard."""
    parked = threading.Event()
    real = security._until_durable

    async def until_durable(runner):
        if runner.until_durable() is not None:
            parked.set()
        return await real(runner)

    monkeypatch.setattr(security, "_until_durable", until_durable)
    return parked


@pytest.mark.parametrize("commit_fails", [True, False])
def test_a_request_refused_on_a_revocation_being_committed_waits_for_that_commit(
        held_server, monkeypatch, commit_fails):
    """A key revoked in a batch not yet durable: a request signed with it is refused only
    once the revocation is, and not at all if its commit fails (the key is then still good)."""
    server = held_server
    parked = _parked(monkeypatch)
    key_id = server.keys[BANK_A].key_id
    with server.client(OPERATOR) as operator, server.client(BANK_A) as bank:
        server.store.fail_next = commit_fails
        revoking = InThread(lambda: operator.delete(f"/v1/keys/{key_id}"))
        assert server.store.finishing.wait(WAIT_S)
        reading = InThread(lambda: bank.get("/v1/accounts"))
        assert parked.wait(WAIT_S), "the refusal did not wait for the commit"
        assert not reading.done
        server.store.release.set()
        revoked, read = revoking.result(), reading.result()
    assert revoked.status_code == (503 if commit_fails else 204)
    assert read.status_code == (200 if commit_fails else 401), read.text
    assert (server.engine.keys[key_id][2] is None) is commit_fails


class _CommitsInFlight:
    """A runner with a commit in flight whenever asked (until_durable's wait ends at once),
    or with none."""

    def __init__(self, in_flight: bool) -> None:
        self.in_flight = in_flight
        self.waits = 0

    def until_durable(self):
        if not self.in_flight:
            return None
        self.waits += 1
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


@pytest.mark.parametrize("in_flight", [True, False])
def test_a_refusal_on_the_keys_state_waits_for_a_bounded_number_of_commits(
        monkeypatch, in_flight):
    """Under constant load a commit is nearly always in flight: a request refused on its
    key's state waits for at most KEY_RECHECKS_MAX of them, then the refusal stands; with
    none in flight it is refused at once."""
    attempts = []

    async def refused(scope, headers, body):
        attempts.append(body)
        raise security.KeyStateRefused(401, "Unauthenticated", "revoked")

    monkeypatch.setattr(security, "authenticate", refused)
    runner = _CommitsInFlight(in_flight)

    async def scenario():
        with pytest.raises(security.KeyStateRefused):
            await security._authenticated({}, {}, b"", runner)

    asyncio.run(scenario())
    rechecks = security.KEY_RECHECKS_MAX if in_flight else 0
    assert (len(attempts), runner.waits) == (rechecks + 1, rechecks)


def test_an_unknown_key_is_refused_at_once_even_while_a_commit_is_in_flight(held_server):
    """A key not in memory cannot become known by a commit in flight: no wait for it."""
    server = held_server
    stranger = KeyFile(signing.new_key_id(), BANK_A, new_private_key())
    with server.client(BANK_A) as a, ScopayClient(server.url, stranger) as unknown:
        sending = InThread(lambda: a.post("/v1/payments", json=payment("7.00")))
        assert server.store.finishing.wait(WAIT_S)
        refused = unknown.get("/v1/accounts")  # answered while the commit is still held
        assert not sending.done
        server.store.release.set()
        assert sending.result().status_code == 201
    assert refused.status_code == 401
