"""Group commit: the engine runs on one thread at a time, and many callers become few commits.

EngineRunner gives the engine a thread of its own; LoopRunner runs it on the event loop's
thread, which is what the HTTP server uses.

Callers from any thread (HTTP handlers, CLI, simulator) hand in requests and get a future.
The runner takes every request waiting, up to BATCH_TRANSFERS_MAX transfers, executes each
as its own ledger batch, commits them all in one transaction, and only then resolves the
futures. Under load, one fsync serves thousands of transfers; idle, a lone request commits at
once. The clock is read here, at the edge, and passed into the engine.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future
from typing import Any

from scopay.domain.ledger import BATCH_TRANSFERS_MAX, Transfer, TransferOutcome
from scopay.domain.payment import Payment
from scopay.engine.engine import Engine
from scopay.engine.payments import PaymentResult, Receipt

QUEUE_REQUESTS_MAX = 100_000  # requests waiting before callers are refused (back-pressure)


def _size_of(item: tuple) -> int:
    kind, payload = item
    if kind == "remember":
        return 1
    return len(payload) if kind == "transfers" else len(payload[1])


class RunnerBusyError(RuntimeError):
    """The runner's queue is full: the caller should retry later (HTTP 503)."""


class Runner:
    """What callers see of a runner: requests in, futures out. The two kinds below differ in
    where the engine's batches run."""

    def __init__(self, engine: Engine, clock_us: Callable[[], int]) -> None:
        self.engine = engine
        self._clock_us = clock_us
        self._stopped = threading.Event()

    def _start_heartbeat(self, heartbeat_s: float | None) -> None:
        """With `heartbeat_s`, a clock that lets time pass in the engine (expiries, reject-by
        times, gridlock resolution) even when nobody calls."""
        if heartbeat_s is not None:
            threading.Thread(target=self._beat, args=(heartbeat_s,), name="scopay-heartbeat",
                             daemon=True).start()

    def _beat(self, interval_s: float) -> None:
        while not self._stopped.wait(interval_s):
            try:
                self.call(lambda engine, now_us: engine.heartbeat(now_us))
            except (RunnerBusyError, RuntimeError):
                continue  # busy or stopping: the next beat comes soon enough

    def submit(self, transfers: Sequence[Transfer]) -> Future[list[TransferOutcome]]:
        """Queue one request (a ledger batch); the future resolves once it is durable."""
        if len(transfers) > BATCH_TRANSFERS_MAX:
            raise ValueError(f"at most {BATCH_TRANSFERS_MAX} transfers in one request")
        return self._put(("transfers", list(transfers)))

    def submit_payments(self, sender_bic: str, payments: Sequence[Payment],
                        receipt: Receipt | None = None) -> Future[list[PaymentResult]]:
        """Queue one sender's payments; the future resolves once their outcome is durable
        (with `receipt`, once the answer rendered from it is durable too)."""
        if len(payments) > BATCH_TRANSFERS_MAX:
            raise ValueError(f"at most {BATCH_TRANSFERS_MAX} payments in one request")
        return self._put(("payments", (sender_bic, list(payments), receipt)))

    def remember(self, bic: str, key: str, request_sha256: str, status_code: int,
                 body: bytes) -> Future[None]:
        """Keep an answer under its idempotency key; many are committed together."""
        return self._put(("remember", (bic, key, request_sha256, status_code, body)))

    def call(self, command: Callable[[Engine, int], Any]) -> Future[Any]:
        """Run an administrative command on the engine's thread with the current time."""
        return self._put(("call", command))

    def until_durable(self) -> Awaitable[None] | None:
        """None when nothing the engine has done is waiting for its commit; else an awaitable
        that completes once it is durable. Whoever reads engine or store state to answer a
        client waits for it first: no one is told what is not yet durable."""
        return None

    def _put(self, item: tuple) -> Any:
        raise NotImplementedError

    def _run_waiting(self, waiting: list[tuple[tuple, Any]]) -> None:
        """Run requests in the order they came: a command alone, and each run of requests of
        one kind together, in commits of at most BATCH_TRANSFERS_MAX transfers or payments."""
        start = 0
        while start < len(waiting):
            (kind, payload), future = waiting[start]
            if kind == "call":
                self._run_call(payload, future)
                start += 1
                continue
            end, size = start, 0
            while end < len(waiting) and waiting[end][0][0] == kind:
                item_size = _size_of(waiting[end][0])
                if end > start and size + item_size > BATCH_TRANSFERS_MAX:
                    break
                size += item_size
                end += 1
            requests = [(payload, future) for (_, payload), future in waiting[start:end]]
            self._run_batch(self._execute(kind), requests)
            start = end

    def _execute(self, kind: str) -> Callable:
        return {"transfers": self.engine.submit_many,
                "remember": self.engine.remember_responses,
                "payments": self.engine.submit_payment_requests}[kind]

    def _run_batch(self, execute: Callable, requests: list) -> None:
        try:
            answers = execute([r for r, _ in requests], self._clock_us())
        except BaseException as error:  # the engine rebuilt itself; every caller must know
            for _, future in requests:
                _resolve(future, error=error)
            if not isinstance(error, Exception):
                raise
            return
        for (_, future), outcomes in zip(requests, answers, strict=True):
            _resolve(future, outcomes)

    def _run_call(self, command: Callable[[Engine, int], Any], future: Any) -> None:
        try:
            result = command(self.engine, self._clock_us())
        except BaseException as error:  # noqa: BLE001 — the caller gets it and decides
            _resolve(future, error=error)
        else:
            _resolve(future, result)


class EngineRunner(Runner):
    """The engine on a thread of its own, fed by a queue: for callers without an event loop."""

    def __init__(self, engine: Engine, clock_us: Callable[[], int]) -> None:
        super().__init__(engine, clock_us)
        self._queue: queue.Queue = queue.Queue(maxsize=QUEUE_REQUESTS_MAX)
        self._thread = threading.Thread(target=self._run, name="scopay-engine", daemon=True)

    def start(self, heartbeat_s: float | None = None) -> EngineRunner:
        """Start the engine thread (and the heartbeat, every `heartbeat_s`)."""
        self._thread.start()
        self._start_heartbeat(heartbeat_s)
        return self

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join()
        self._stopped.set()

    def _put(self, item: tuple) -> Future:
        if self._stopped.is_set():
            raise RuntimeError("the engine runner has stopped")
        future: Future = Future()
        try:
            self._queue.put_nowait((item, future))
        except queue.Full:
            raise RunnerBusyError("scopay is at capacity; retry shortly") from None
        return future

    def _run(self) -> None:
        while True:
            waiting = [self._queue.get()]  # wait for one, then take all that wait with it
            while True:
                try:
                    waiting.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = None in waiting
            if stop:
                waiting = waiting[:waiting.index(None)]
            self._run_waiting(waiting)
            if stop:
                self._stopped.set()
                return


def _resolve(future: Any, result: Any = None, error: BaseException | None = None) -> None:
    """Answer a caller, unless it stopped waiting (its future was cancelled): what was done
    stays done, and the other callers of the batch still get their answers."""
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class LoopRunner(Runner):
    """The engine on the event loop's own thread: what `scopay serve` runs.

    Requests made on the loop join a batch that runs once the loop has handled what is ready
    (so the requests of many connections share one commit); requests from other threads (the
    heartbeat, tests) are handed over with call_soon_threadsafe. The commit then blocks the
    loop for its fsync, a fraction of a millisecond on a quiet disk, and batches grow when it
    takes longer. Measured against EngineRunner's engine thread on the same server: about
    0.6 of the CPU per payment. Two Python threads busy at once pay for every hand-over of
    the GIL, and the sqlite3 module hands it over at each statement.
    """

    def __init__(self, engine: Engine, clock_us: Callable[[], int]) -> None:
        super().__init__(engine, clock_us)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiting: list[tuple[tuple, Any]] = []
        self._scheduled = False

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Run batches on this loop (the server's, once it runs)."""
        self._loop = loop

    def start(self, heartbeat_s: float | None = None) -> LoopRunner:
        """Start the heartbeat, every `heartbeat_s`; batches run once attached to a loop."""
        self._start_heartbeat(heartbeat_s)
        return self

    def stop(self) -> None:
        self._stopped.set()

    def _put(self, item: tuple) -> Any:
        loop = self._loop
        if self._stopped.is_set() or loop is None or loop.is_closed():
            raise RuntimeError("the engine runner is not running")
        try:
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            future: Any = loop.create_future()
            self._enqueue(item, future)
            return future
        future = Future()
        loop.call_soon_threadsafe(self._enqueue, item, future)
        return future

    def _enqueue(self, item: tuple, future: Any) -> None:
        if len(self._waiting) >= QUEUE_REQUESTS_MAX:
            error = RunnerBusyError("scopay is at capacity; retry shortly")
            if isinstance(future, Future):
                _resolve(future, error=error)
                return
            raise error
        self._waiting.append((item, future))
        if not self._scheduled:
            self._scheduled = True
            # Two turns of the loop: requests whose data arrived together reach this point
            # in the turn after their data, so one more turn gathers them into the batch.
            self._loop.call_soon(self._loop.call_soon, self._drain)

    def _drain(self) -> None:
        self._scheduled = False
        waiting, self._waiting = self._waiting, []
        self._run_waiting(waiting)
