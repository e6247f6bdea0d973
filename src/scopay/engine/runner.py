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
import contextlib
import contextvars
import logging
import queue
import sys
import threading
import traceback
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, NamedTuple

from scopay.domain.ledger import BATCH_TRANSFERS_MAX, Transfer, TransferOutcome
from scopay.domain.payment import Payment
from scopay.engine.engine import CommandRefused, Engine
from scopay.engine.payments import PaymentRefused, PaymentResult, Receipt

QUEUE_REQUESTS_MAX = 100_000  # requests waiting before callers are refused (back-pressure)
# How long a thread waiting for the GIL waits before the interpreter makes the running
# thread let go (sys.setswitchinterval; CPython's default is 5 ms), while a batch's COMMIT is
# on the commit thread. See LoopRunner._run_groups.
GIL_SWITCH_INTERVAL_S = 0.0002


# The engine's refusals of a command: answers its callers give on, not defects to trace.
REFUSALS = (CommandRefused, PaymentRefused)

ANSWER_WAIT_S = 5.0  # a commit held for a route's answer goes on without it after this


class HeldAnswer:
    """The answer to a request sent under an idempotency key, to be committed with the change
    its command makes, so that a retry after any crash gets this answer and never runs the
    command again (a cancellation or a return run twice would be answered as refused).

    The request's handler makes one and sets it in HELD_ANSWER while the route runs; the
    first command the route hands a LoopRunner, from the loop, carries it. When that command
    leaves a commit pending, the runner tells the route the outcome at once (nobody else
    learns it: the batch is not durable, so readers wait) and holds the commit until the
    handler gives the route's answer: the answer is written into the same transaction, then
    both commit. `durable` (set once the runner holds a commit for it) resolves to True when
    the answer was committed with the change, False when it was not (none given, a second
    command came first, or the key held an answer), or with the commit's error."""

    def __init__(self, bic: str, key: str, request_sha256: str) -> None:
        self.bic, self.key, self.request_sha256 = bic, key, request_sha256
        self.attached = False  # a command of the request carries it
        self.closed = False  # given up on before any commit was held for it: hold none
        self.durable: asyncio.Future | None = None
        self._on_answer: Callable[[tuple[int, bytes] | None], None] | None = None

    @property
    def engaged(self) -> bool:
        """A command's commit was held for this answer."""
        return self.durable is not None

    def give(self, answer: tuple[int, bytes] | None) -> None:
        """The route's answer (HTTP status, body), or None for none to keep: the commit held
        for it goes on. Once; later calls, and calls while nothing is held, do nothing."""
        on_answer, self._on_answer = self._on_answer, None
        if on_answer is not None:
            on_answer(answer)
        elif self.durable is None:  # (a request that stopped before its command ran)
            self.closed = True


HELD_ANSWER: contextvars.ContextVar[HeldAnswer | None] = contextvars.ContextVar(
    "scopay_held_answer", default=None)


def _size_of(item: tuple) -> int:
    kind, payload = item
    if kind == "remember":
        return 1
    return len(payload) if kind == "transfers" else len(payload[1])


class RunnerBusyError(RuntimeError):
    """The runner's queue is full: the caller should retry later (HTTP 503)."""


log = logging.getLogger(__name__)


def log_failed_beat(beat: Future) -> None:
    """A heartbeat step that raised (its changes undone, memory rebuilt) is told to the
    operator's log: each later beat may fail alike, and time-driven events then wait."""
    error = None if beat.cancelled() else beat.exception()
    if error is not None and not isinstance(error, RuntimeError):  # busy, or stopping
        log.error("heartbeat step failed; reservations, reject-by times and gridlock "
                  "resolution wait until one succeeds", exc_info=error)


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
                beat = self.call(lambda engine, now_us: engine.heartbeat(now_us))
            except (RunnerBusyError, RuntimeError):
                continue  # busy or stopping: the next beat comes soon enough
            beat.add_done_callback(log_failed_beat)

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
        return self._put(("call", (command, None)))

    def until_durable(self) -> Awaitable[None] | None:
        """None when nothing the engine has done is waiting for its commit; else an awaitable
        that completes once it is durable. Whoever reads engine or store state to answer a
        client waits for it first: no one is told what is not yet durable."""
        return None

    def _put(self, item: tuple) -> Any:
        raise NotImplementedError

    def _run_waiting(self, waiting: list[tuple[tuple, Any]]) -> None:
        """Run requests in the order they came, each group to its commit (_groups)."""
        for group in _groups(waiting, self._execute):
            _resolve_group(group, _run_group(group, self.engine, self._clock_us()))

    def _execute(self, kind: str) -> Callable:
        return {"transfers": self.engine.submit_many,
                "remember": self.engine.remember_responses,
                "payments": self.engine.submit_payment_requests}[kind]


class _Group(NamedTuple):
    """Requests that share one engine call: an administrative command alone, or a run of
    requests of one kind (at most BATCH_TRANSFERS_MAX transfers or payments)."""
    run: Callable[[Engine, int], list]  # one answer per future
    futures: list[Any]
    held: HeldAnswer | None = None  # a command's: the answer its commit may wait for


def _groups(waiting: list[tuple[tuple, Any]],
            execute: Callable[[str], Callable]) -> Iterator[_Group]:
    start = 0
    while start < len(waiting):
        (kind, payload), future = waiting[start]
        if kind == "call":
            command, held = payload
            yield _Group(lambda engine, now_us, command=command: [command(engine, now_us)],
                         [future], held)
            start += 1
            continue
        end, size = start, 0
        while end < len(waiting) and waiting[end][0][0] == kind:
            item_size = _size_of(waiting[end][0])
            if end > start and size + item_size > BATCH_TRANSFERS_MAX:
                break
            size += item_size
            end += 1
        payloads = [payload for (_, payload), _ in waiting[start:end]]
        yield _Group(lambda _engine, now_us, run=execute(kind), payloads=payloads:
                     run(payloads, now_us), [future for _, future in waiting[start:end]])
        start = end


def _run_group(group: _Group, engine: Engine, now_us: int) -> list | BaseException:
    """The group's answers, or the error every caller of the group gets. What a command
    wrote before it raised is committed all the same, as without deferred commits: a
    command refused once a step of time has run (a payment settled meanwhile, say) keeps
    that step, and says so."""
    try:
        return group.run(engine, now_us)
    except BaseException as error:  # noqa: BLE001 — the callers get it and decide
        return _handed_on(error)


def _handed_on(error: BaseException) -> BaseException:
    """The error as the runner hands it to callers elsewhere: with no frames. They would keep
    the frame that caught it (with the batch and its futures, which hold the error: a
    reference cycle, and the command's variables: after a rebuild, the engine's state from
    before it) until the garbage collector's pass over the generation they reached. A
    refusal is an answer and goes without; any other error keeps its traceback as text, in a
    note (formatting it costs about 0.1 ms), unless even that fails: the callers get it all
    the same."""
    if not isinstance(error, REFUSALS):
        with contextlib.suppress(Exception):
            error.add_note("raised in the engine:\n"
                           + "".join(traceback.format_tb(error.__traceback__)).rstrip())
    return error.with_traceback(None)


def _resolve_group(group: _Group, answers: list | BaseException) -> None:
    """Answer the group's callers; an interrupt (not an Exception) goes on up once they know."""
    if isinstance(answers, BaseException):
        for future in group.futures:
            _resolve(future, error=answers)
        if not isinstance(answers, Exception):
            raise answers
    else:
        for future, answer in zip(group.futures, answers, strict=True):
            _resolve(future, answer)


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
    heartbeat, tests) are handed over with call_soon_threadsafe. Measured against
    EngineRunner's engine thread on the same server: about 0.6 of the CPU per payment. Two
    Python threads busy at once pay for every hand-over of the GIL, and the sqlite3 module
    hands it over at each statement.

    One step is the exception: the COMMIT of each batch, a single statement that writes the
    WAL and waits for the disk, runs on a thread of its own (engine.defer_commits). Meanwhile
    the loop goes on reading, authenticating and parsing the next requests, which gather into
    the next batch. Until the commit has returned no batch runs, readers on other threads
    wait for the engine's lock (held from the batch's start), and readers on the loop wait on
    until_durable; those resume before the next batch is written. So no one is told what is
    not yet durable. If the commit fails, the engine rolls back and rebuilds, and the batch's
    callers get the error.
    """

    def __init__(self, engine: Engine, clock_us: Callable[[], int]) -> None:
        super().__init__(engine, clock_us)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiting: list[tuple[tuple, Any]] = []
        self._scheduled = False
        self._committer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scopay-commit")
        self._busy = False  # groups taken from _waiting are still being run
        self._in_flight = False  # a batch's COMMIT runs on the commit thread
        self._switch_interval = sys.getswitchinterval()  # in force before the commit
        self._durable_waiters: list[asyncio.Future] = []

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Run batches on this loop (the server's, once it runs)."""
        self._loop = loop

    def start(self, heartbeat_s: float | None = None) -> LoopRunner:
        """Start the heartbeat, every `heartbeat_s`; batches run once attached to a loop."""
        self._start_heartbeat(heartbeat_s)
        return self

    def stop(self) -> None:
        """Take no more requests; a commit under way finishes first."""
        self._stopped.set()
        self._committer.shutdown(wait=True)

    def until_durable(self) -> Awaitable[None] | None:
        if not self._in_flight:
            return None
        waiter = self._loop.create_future()  # one each: a waiter cancelled cancels only its own
        self._durable_waiters.append(waiter)
        return waiter

    def call(self, command: Callable[[Engine, int], Any]) -> Any:
        """As Runner.call; from the loop, during a request sent under an idempotency key
        (HELD_ANSWER), the request's first command carries its HeldAnswer."""
        held = HELD_ANSWER.get()
        if held is None or not self._on_loop():
            return super().call(command)
        if held.attached:  # a second command: the first's commit goes on without the answer
            held.give(None)
            return super().call(command)
        held.attached = True
        return self._put(("call", (command, held)))

    def _on_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

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
        if not self._scheduled and not self._busy:
            self._scheduled = True
            # Two turns of the loop: requests whose data arrived together reach this point
            # in the turn after their data, so one more turn gathers them into the batch.
            self._then(self._drain)

    def _drain(self) -> None:
        self._scheduled = False
        if self._busy:
            return  # the groups under way drain what waits when they are done
        waiting, self._waiting = self._waiting, []
        self._busy = True
        self._run_groups(_groups(waiting, self._execute))

    def _run_groups(self, groups: Iterator[_Group]) -> None:
        """Run groups until one leaves a commit to make; the commit's end runs the rest."""
        engine = self.engine
        for group in groups:
            if self._stopped.is_set():  # the engine may be closed: no more batches
                _resolve_group(group, RuntimeError("the engine runner has stopped"))
                continue
            engine.hold()  # other threads' readers wait until this batch is durable
            try:
                engine.defer_commits = True
                try:
                    answers = _run_group(group, engine, self._clock_us())
                finally:
                    engine.defer_commits = False
            finally:
                if not engine.commit_pending:
                    engine.release()
            if not engine.commit_pending:
                _resolve_group(group, answers)
                self._then(self._run_groups, groups)
                return
            self._in_flight = True
            if (group.held is not None and not group.held.closed
                    and not self._stopped.is_set()):
                self._hold_for_answer(group, answers, groups)
                return
            self._start_commit(group, answers, groups)
            return
        self._busy = False
        if self._waiting and not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._drain)  # they waited for a commit: run them now

    def _hold_for_answer(self, group: _Group, answers: list | BaseException,
                         groups: Iterator[_Group]) -> None:
        """Tell the command's route its outcome now and commit once its answer is given
        (HeldAnswer), or after ANSWER_WAIT_S without it. Meanwhile the batch is in flight:
        the engine's lock stays held and readers wait, as for any commit."""
        held = group.held
        held.durable = self._loop.create_future()
        timer = self._loop.call_later(ANSWER_WAIT_S, held.give, None)

        def answered(answer: tuple[int, bytes] | None) -> None:
            timer.cancel()
            kept = False
            if answer is not None:
                try:
                    kept = self.engine.keep_answer_in_commit(
                        held.bic, held.key, held.request_sha256, *answer)
                except BaseException as error:  # noqa: BLE001 — the batch was rolled back
                    failed: Future = Future()
                    failed.set_exception(error)
                    self._committed(group, answers, groups, failed, held, False)
                    return
            self._start_commit(group, answers, groups, held, kept)

        held._on_answer = answered
        _resolve_group(group, answers)  # the route shapes its answer from this

    def _start_commit(self, group: _Group, answers: list | BaseException,
                      groups: Iterator[_Group], held: HeldAnswer | None = None,
                      kept: bool = False) -> None:
        """The batch's COMMIT, on the commit thread; its end runs the next groups."""
        engine = self.engine
        # The loop's thread holds the GIL while it works; the commit thread needs it
        # twice, to start the COMMIT and to hand the outcome back, and with CPython's
        # 5 ms switch interval the start waited 2.3 ms at the median under load (longer
        # than the COMMIT), the batch's callers with it. Shortened while the commit is in
        # flight only: between commits, threads of the pool run on the default, where a
        # short interval cost their reads about 7% of throughput.
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        try:
            done = self._committer.submit(engine.finish_commit)
        except RuntimeError:  # stopped: commit here, as any caller would
            self._committed(group, answers, groups, _finished_here(engine), held, kept)
            return
        done.add_done_callback(lambda done, group=group, answers=answers:
                               self._hand_back(self._committed, group, answers, groups,
                                               done, held, kept))

    def _hand_back(self, *callback) -> None:
        """From the commit thread to the loop; a loop closed meanwhile has no one to tell
        (the commit itself has happened)."""
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(*callback)

    def _committed(self, group: _Group, answers: list | BaseException,
                   groups: Iterator[_Group], done: Future, held: HeldAnswer | None = None,
                   kept: bool = False) -> None:
        """The batch's commit has returned (`done`): its callers are answered (a held
        answer's request through `durable`, its route having been told the outcome before)."""
        error = done.exception()
        try:
            if error is not None:
                answers = error
                self.engine.rebuild_after_failed_commit()
        except Exception as rebuild_error:  # noqa: BLE001 — the store cannot be read either
            answers = rebuild_error
        finally:
            sys.setswitchinterval(self._switch_interval)
            self.engine.release()
            self._in_flight = False
            waiters, self._durable_waiters = self._durable_waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
            try:
                if held is None:
                    _resolve_group(group, answers)
                elif not held.durable.done():
                    if isinstance(answers, BaseException) and error is not None:
                        held.durable.set_exception(answers)  # the change and answer undone
                    else:
                        held.durable.set_result(kept)
            finally:
                self._then(self._run_groups, groups)

    def _then(self, callback: Callable, *args) -> None:
        """Run `callback` two turns of the loop from now. After answers: the callers just
        answered (and the readers let through) resume in the next turn, so they read the
        state they were answered from, not a next batch's, not yet durable."""
        self._loop.call_soon(self._loop.call_soon, callback, *args)


def _finished_here(engine: Engine) -> Future:
    """finish_commit run on the caller's thread, as a done future."""
    done: Future = Future()
    try:
        engine.finish_commit()
    except BaseException as error:  # noqa: BLE001 — handed on with the future
        done.set_exception(_handed_on(error))  # its frames lead back to `done`
    else:
        done.set_result(None)
    return done
