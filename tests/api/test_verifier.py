"""The verifier process checks request signatures for the server, off its event loop.

Every check a turn of the loop asks for goes to it as one batch and is answered in order; a
forged signature is refused through it; whatever happens to it, every check is still answered
and never "valid" by default: without a running verifier (no loop, another loop, stopped,
killed) checks are made in the server's own process.

Checks made in this process are counted by wrapping signing.verify_raw here; the verifier
process runs its own, unwrapped copy, so a count of 0 means the verifier answered.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pytest
import uvloop
from fastapi import FastAPI

from held_commit import until
from scopay.api import signing, verifier
from scopay.api.app import create_app
from scopay.api.verifier import BATCH_CHECKS_MAX, Verifier
from scopay.client import KeyFile, SignedAuth, new_private_key, sign_request
from scopay.engine.engine import Engine
from scopay.engine.runner import LoopRunner

BANK = "ICBKCNBJ"
WAIT_S_MAX = 20  # for a condition another thread or process brings about


class InProcess:
    """Counts the signature checks made in this process."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = signing.verify_raw

        def counted(public_key: bytes, signature: bytes, message: bytes) -> bool:
            self.count += 1
            return real(public_key, signature, message)

        monkeypatch.setattr(signing, "verify_raw", counted)


@pytest.fixture
def in_process(monkeypatch) -> InProcess:
    return InProcess(monkeypatch)


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request) -> Callable:
    """Run a coroutine on a new loop of each kind (the server's is uvloop)."""
    factory = asyncio.new_event_loop if request.param == "asyncio" else uvloop.new_event_loop

    def run_(coroutine):
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(coroutine)

    return run_


def _flip_a_bit(signature_b64: str) -> str:
    raw = bytearray(base64.urlsafe_b64decode(signature_b64 + "=" * (-len(signature_b64) % 4)))
    raw[7] ^= 0x01
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


@dataclass(frozen=True)
class Case:
    public_key: str
    signature: str
    message: bytes
    valid: bool
    well_formed: bool = True  # a malformed signature is refused before any check


def mixed_cases(count: int) -> list[Case]:
    """Valid signatures between forged ones of every kind, in no regular pattern."""
    key, other = new_private_key(), new_private_key()
    public_key = signing.public_key_b64(key)
    cases = []
    for n in range(count):
        message = f"scopay-v1\nGET\n/v1/accounts\n{n}".encode()
        signature = signing.sign(key, message)
        kind = (n * 7) % 5
        if kind == 0:
            cases.append(Case(public_key, signature, message + b"!", valid=False))
        elif kind == 1:
            cases.append(Case(public_key, signing.sign(other, message), message, valid=False))
        elif kind == 2:
            cases.append(Case(public_key, _flip_a_bit(signature), message, valid=False))
        elif kind == 3 and n % 2:
            cases.append(Case(public_key, signature[:-4], message, valid=False,
                              well_formed=False))
        else:
            cases.append(Case(public_key, signature, message, valid=True))
    return cases


async def _verify_all(verifier_: Verifier, cases: list[Case]) -> list[bool]:
    return await asyncio.gather(*(verifier_.verify(c.public_key, c.signature, c.message)
                                  for c in cases))


def _wait_until(condition: Callable[[], bool]) -> None:
    """Wait until `condition` holds (it is brought about by another thread or process)."""
    deadline = time.monotonic() + WAIT_S_MAX
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.001)


# -- the verifier on its own -------------------------------------------------------------------


def test_checks_asked_for_in_one_turn_go_as_one_batch_answered_in_order(run, in_process,
                                                                       monkeypatch):
    batches: list[int] = []
    send = verifier._Connection.send

    def counted_send(connection, checks) -> None:
        batches.append(len(checks))
        send(connection, checks)

    monkeypatch.setattr(verifier._Connection, "send", counted_send)
    cases = mixed_cases(BATCH_CHECKS_MAX + 500)

    async def scenario() -> list[bool]:
        started = await Verifier.start()
        try:
            return await _verify_all(started, cases)
        finally:
            started.stop()

    assert run(scenario()) == [c.valid for c in cases]
    assert in_process.count == 0
    sent = sum(c.well_formed for c in cases)
    assert batches == [BATCH_CHECKS_MAX, sent - BATCH_CHECKS_MAX]  # one turn, at most a batch


@pytest.mark.skipif(not hasattr(os, "sched_getscheduler"),
                    reason="scheduling policies are a Linux feature")
def test_the_verifier_runs_as_a_batch_process_beside_the_event_loop(run, in_process):
    """Woken by a message, the verifier must not preempt the loop that sent it (SCHED_BATCH);
    it answers all the same."""
    if os.sched_getscheduler(0) == os.SCHED_BATCH:
        pytest.skip("the tests themselves run as SCHED_BATCH: the verifier would inherit it")
    cases = mixed_cases(20)

    async def scenario() -> tuple[int, list[bool]]:
        started = await Verifier.start()
        try:
            answers = await _verify_all(started, cases)
            return os.sched_getscheduler(started.pid), answers
        finally:
            started.stop()

    policy, answers = run(scenario())
    assert policy == os.SCHED_BATCH
    assert answers == [c.valid for c in cases]
    assert in_process.count == 0


def test_checks_owed_by_a_killed_verifier_are_made_in_process_and_it_is_replaced(run,
                                                                                  in_process):
    cases = mixed_cases(300)
    sent = sum(c.well_formed for c in cases)

    async def scenario() -> None:
        started = await Verifier.start()
        try:
            first = started.pid
            os.kill(first, signal.SIGSTOP)  # it takes the batch but cannot answer
            answers = asyncio.ensure_future(_verify_all(started, cases))
            await until(lambda: started.checks_owed == sent)
            os.kill(first, signal.SIGKILL)
            assert await answers == [c.valid for c in cases]
            assert in_process.count == sent
            await until(lambda: started.pid not in (None, first))
            assert await _verify_all(started, cases) == [c.valid for c in cases]
            assert in_process.count == sent  # the new verifier answered
        finally:
            started.stop()

    run(scenario())


def test_a_garbled_answer_is_trusted_for_nothing(run, in_process):
    """An answer that does not fit what was asked: every check it owed is made in-process."""
    cases = [c for c in mixed_cases(40) if c.well_formed]

    async def scenario() -> None:
        started = await Verifier.start()
        try:
            os.kill(started.pid, signal.SIGSTOP)
            answers = asyncio.ensure_future(_verify_all(started, cases))
            await until(lambda: started.checks_owed == len(cases))
            started._connection.data_received(b"\x00\x00\x00\x01\x01")  # one "valid", not 40
            assert await answers == [c.valid for c in cases]
            assert in_process.count == len(cases)
        finally:
            started.stop()

    run(scenario())


def test_a_verifier_asked_from_another_loop_or_once_stopped_checks_in_process(run,
                                                                             in_process):
    case, forged = [c for c in mixed_cases(4) if c.well_formed][-2:]
    assert (case.valid, forged.valid) == (True, False)

    async def scenario() -> None:
        started = await Verifier.start()
        pid = started.pid
        elsewhere = await asyncio.to_thread(
            asyncio.run, started.verify(case.public_key, case.signature, case.message))
        assert elsewhere is True
        assert in_process.count == 1
        started.stop()
        assert started.pid is None
        assert await started.verify(case.public_key, case.signature, case.message) is True
        assert await started.verify(forged.public_key, forged.signature,
                                    forged.message) is False
        assert in_process.count == 3
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # stopped and reaped

    run(scenario())


# -- the verifier behind the server ------------------------------------------------------------


@dataclass
class Served:
    app: FastAPI
    url: str
    engine: Engine
    runner: LoopRunner
    key: KeyFile

    @property
    def verifier(self) -> Verifier:
        return self.app.state.verifier

    def signed(self, path: str = "/v1/participants", nonce: str | None = None,
               key: KeyFile | None = None) -> httpx.Request:
        request = httpx.Request("GET", self.url + path)
        sign_request(request, key or self.key, nonce=nonce)
        return request


def _forged(request: httpx.Request) -> httpx.Request:
    headers = dict(request.headers)
    headers[signing.SIGNATURE_HEADER] = _flip_a_bit(headers[signing.SIGNATURE_HEADER])
    return httpx.Request(request.method, request.url, headers=headers)


def _send(request: httpx.Request) -> httpx.Response:
    with httpx.Client(timeout=30) as client:
        return client.send(request)


def _status_of(request: httpx.Request) -> int:
    return _send(request).status_code


def _new_key(engine: Engine, bic: str = BANK) -> KeyFile:
    key = KeyFile(signing.new_key_id(), bic, new_private_key())
    engine.register_key(key.key_id, bic, key.public_key, 2_000_000)
    return key


@pytest.fixture
def served(engine, serve_app):
    """The app as `scopay serve` runs it (engine on the loop), with its verifier process."""
    key = _new_key(engine)
    runner = LoopRunner(engine, lambda: time.time_ns() // 1000).start()
    app = create_app(runner)
    yield Served(app, serve_app(app), engine, runner, key)
    runner.stop()


def test_forged_signature_is_refused_by_the_verifier_process(served, in_process):
    request = served.signed()
    with httpx.Client(timeout=30) as raw:
        forged = raw.send(_forged(request))
        assert served.verifier.pid is not None
        assert forged.status_code == 401, forged.text
        assert "wrong signature" in forged.json()["detail"]
        assert raw.send(request).status_code == 200  # its nonce was not burnt by the forgery
        replayed = raw.send(request)
    assert replayed.status_code == 401
    assert "replay" in replayed.json()["detail"]
    assert in_process.count == 0


def test_requests_waiting_on_a_killed_verifier_are_answered_rightly(served, in_process):
    requests = [served.signed() for _ in range(8)]
    requests[1::2] = [_forged(r) for r in requests[1::2]]
    first = served.verifier.pid
    os.kill(first, signal.SIGSTOP)
    with ThreadPoolExecutor(len(requests)) as pool:
        answers = pool.map(_status_of, requests)
        _wait_until(lambda: served.verifier.checks_owed == len(requests))
        os.kill(first, signal.SIGKILL)
        assert list(answers) == [200, 401] * (len(requests) // 2)
    assert in_process.count == len(requests)
    _wait_until(lambda: served.verifier.pid not in (None, first))
    with httpx.Client(timeout=30) as raw:
        assert raw.send(served.signed()).status_code == 200
        assert raw.send(_forged(served.signed())).status_code == 401
    assert in_process.count == len(requests)  # the new verifier answered


def test_key_revoked_while_its_signature_is_checked_is_refused(served):
    os.kill(served.verifier.pid, signal.SIGSTOP)
    try:
        with ThreadPoolExecutor(1) as pool:
            answer = pool.submit(_send, served.signed())
            _wait_until(lambda: served.verifier.checks_owed == 1)
            served.runner.call(lambda e, now: e.revoke_key(served.key.key_id, now)).result()
            os.kill(served.verifier.pid, signal.SIGCONT)
            refused = answer.result()
    finally:
        os.kill(served.verifier.pid, signal.SIGCONT)
    assert refused.status_code == 401
    assert "revoked" in refused.json()["detail"]


def test_without_a_verifier_process_signatures_are_checked_in_process(engine, run,
                                                                    in_process):
    """No lifespan, so no verifier: the app checks signatures itself, as rightly."""
    key = _new_key(engine)
    app = create_app(LoopRunner(engine, lambda: time.time_ns() // 1000))

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://scopay") as client:
            good, forged = (client.build_request("GET", "/v1/participants") for _ in range(2))
            sign_request(good, key)
            sign_request(forged, key)
            assert (await client.send(good)).status_code == 200
            assert (await client.send(_forged(forged))).status_code == 401

    run(scenario())
    assert not hasattr(app.state, "verifier")
    assert in_process.count == 2


# -- waiting until what the engine did is durable ---------------------------------------------


class Gate:
    """Runner.until_durable as while a commit is in flight, until opened."""

    def __init__(self, runner: LoopRunner) -> None:
        self.open = asyncio.get_running_loop().create_future()
        self.reached = 0
        runner.until_durable = self.until_durable

    def until_durable(self):
        if self.open.done():
            return None
        self.reached += 1
        return asyncio.shield(self.open)


def test_answers_wait_until_the_engine_is_durable_and_keys_are_looked_up_again(engine, run):
    kept, revoked = _new_key(engine), _new_key(engine)
    runner = LoopRunner(engine, lambda: time.time_ns() // 1000)
    app = create_app(runner)

    async def scenario() -> None:
        gate = Gate(runner)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://scopay") as client:
            answers = [asyncio.ensure_future(client.get(path, auth=auth))
                       for path, auth in (("/v1/participants", SignedAuth(kept)),
                                          ("/v1/participants", SignedAuth(revoked)),
                                          ("/health", None))]
            await until(lambda: gate.reached == len(answers))
            assert not any(answer.done() for answer in answers)
            engine.revoke_key(revoked.key_id, 3_000_000)  # while the commit is in flight
            gate.open.set_result(None)
            statuses = [(await answer).status_code for answer in answers]
        assert statuses == [200, 401, 200]

    run(scenario())
