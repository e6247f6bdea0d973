"""Review of the commit thread (LoopRunner with Engine.defer_commits, commits 976a11a..6e563c0).

Real SQLite throughout. A HeldStore holds each COMMIT until the test lets it go (or fails it),
so the moments between a batch being written and it being durable are reached on purpose,
never by sleeping. Some tests pin defects the review found (fixed since); the others pin
guarantees that were checked and hold.
"""

import asyncio
import sqlite3
import threading
import uuid

import pytest

from held_commit import lock_free_on_another_thread, submitted_and_held, until
from scopay.domain.ledger import Transfer, TransferKind
from scopay.domain.payment import Party, Payment, PaymentStatus
from scopay.engine.answers import ANSWER_RETENTION_US
from scopay.engine.engine import Engine
from scopay.engine.payments import PaymentRefused
from scopay.engine.runner import LoopRunner
from scopay.store.sqlite import SQLiteStore

ICBK, ABOC = "ICBKCNBJ", "ABOCCNBJ"  # ICBK holds 1000.00 CNY; ABOC 0 with a 500.00 line
SECOND_US = 1_000_000



def payment(debtor: str, creditor: str, amount_minor: int, **extra) -> Payment:
    return Payment(str(uuid.uuid4()), uuid.uuid4().hex[:12], "e2e", debtor, creditor,
                   Party("Li Wei"), Party("Mohammad Rezaei"), amount_minor, "CNY", **extra)


def move(network, transfer_id: str, amount_minor: int = 1, **extra) -> Transfer:
    return Transfer(transfer_id, network.icbk_cny, network.aboc_cny, amount_minor, "CNY",
                    **extra)


def durable_statuses(engine: Engine) -> dict[str, PaymentStatus]:
    return {record.payment.uetr: record.status for record in engine.store.payments()}


# -- defects -------------------------------------------------------------------------------------


def test_a_cancel_refused_because_time_settled_the_payment_leaves_it_settled(held, network):
    engine, store = held
    store.release.set()  # every commit goes through at once here
    t = network.funded_at_us
    waiting = payment(ICBK, ABOC, 10_000, earliest_us=t + 10 * SECOND_US)
    (entered,) = engine.submit_payments(ICBK, [waiting], t + 1)
    assert entered.status == PaymentStatus.QUEUED  # covered, but its earliest time is ahead
    runner = LoopRunner(engine, lambda: t + 20 * SECOND_US)

    async def main():
        runner.attach(asyncio.get_running_loop())
        with pytest.raises(PaymentRefused) as refused:
            await runner.call(lambda e, now: e.cancel_payment(waiting.uetr, now))
        return refused.value.status

    told = asyncio.run(main())
    runner.stop()
    assert told == PaymentStatus.SETTLED  # what the caller of the cancel is told...
    assert durable_statuses(engine)[waiting.uetr] == PaymentStatus.SETTLED  # ...is durable
    assert engine.payment(waiting.uetr).status == PaymentStatus.SETTLED


def test_a_heartbeat_whose_first_commit_fails_leaves_memory_equal_to_the_store(held, network):
    engine, store = held
    store.release.set()
    t = network.funded_at_us
    engine.remember_responses([(ICBK, "old-answer", "0" * 64, 201, b"{}")], t + 1)
    (reserved,) = engine.submit([move(network, "reservation", 5_000,
                                      kind=TransferKind.PENDING, timeout_s=1)], t + 2)
    assert reserved.rejection is None
    runner = LoopRunner(engine, lambda: t + ANSWER_RETENTION_US + 10 * SECOND_US)

    async def main():
        runner.attach(asyncio.get_running_loop())
        store.fail_next = True  # the heartbeat's first step (the expiry) fails to commit
        with pytest.raises(sqlite3.OperationalError):
            await runner.call(lambda e, now: e.heartbeat(now))

    asyncio.run(main())
    runner.stop()
    assert engine.store.journal_entry("reservation") is not None
    durable_expiries = [entry for _, entry in engine.store.journal()
                        if entry.transfer.kind is TransferKind.EXPIRE_PENDING]
    assert durable_expiries == []  # the failed step is not in the store...
    assert engine.balance(network.icbk_cny).debits_pending_minor == 5_000  # ...nor in memory
    assert engine.reconcile().ok


def test_the_shutdown_checkpoint_never_includes_a_batch_whose_commit_failed(
        held, network, tmp_path):
    engine, store = held
    runner = LoopRunner(engine, lambda: network.funded_at_us + 1)

    async def main():
        runner.attach(asyncio.get_running_loop())
        store.fail_next = True
        lost = runner.submit([move(network, "lost-at-shutdown", 7)])
        await until(store.finishing.is_set)
        store.release.set()
        runner.stop()  # what create_app's lifespan runs at SIGTERM, on the loop's thread
        engine.checkpoint(network.funded_at_us + 2)
        engine.close()
        lost.cancel()  # its answer cannot come: the engine is closed

    asyncio.run(main())
    reopened = Engine(SQLiteStore(tmp_path / "held.db"))
    try:
        assert reopened.store.journal_entry("lost-at-shutdown") is None
        assert reopened.reconcile().ok, reopened.reconcile().mismatches
    finally:
        reopened.close()


def test_a_rebuild_that_fails_after_a_failed_commit_still_answers_and_frees_the_runner(
        held, network):
    engine, store = held
    runner = LoopRunner(engine, lambda: network.funded_at_us + 1)
    real_participants = store.participants
    failed_reads: list[int] = []

    def participants_failing_once():
        if not failed_reads:
            failed_reads.append(1)
            raise sqlite3.OperationalError("disk I/O error")
        return real_participants()

    async def main():
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, _context: None)  # the escaped error
        runner.attach(loop)
        store.fail_next = True
        lost = runner.submit([move(network, "lost-twice")])
        await until(store.finishing.is_set)
        waiter = runner.until_durable()
        store.participants = participants_failing_once
        store.release.set()
        await until(lambda: bool(failed_reads))
        for _ in range(50):
            await asyncio.sleep(0)
        answered = lost.done() and lost.exception() is not None
        return answered, waiter.done(), runner._in_flight, runner._busy

    answered, waiter_done, in_flight, busy = asyncio.run(main())
    assert answered  # the batch's caller is told its commit failed
    assert waiter_done and not in_flight and not busy


# -- guarantees checked and found to hold ------------------------------------------------------


def test_the_commit_runs_on_the_commit_thread_and_the_lock_is_free_once_it_returned(
        held, network):
    engine, store = held
    runner = LoopRunner(engine, lambda: network.funded_at_us + 1)

    async def main():
        first = await submitted_and_held(runner, store, [move(network, "on-thread")])
        during = lock_free_on_another_thread(engine)
        store.release.set()
        await first
        await until(lambda: not runner._busy)
        return during, lock_free_on_another_thread(engine)

    during, after = asyncio.run(main())
    runner.stop()
    assert store.finished_on and all(name.startswith("scopay-commit")
                                     for name in store.finished_on)
    assert not during and after
    assert not runner._in_flight and not runner._busy


def test_a_thread_reader_waits_for_the_commit_and_sees_the_batch_durable(held, network):
    """A thread-pool route reading balances (engine.balances, under the lock) never answers
    with a batch that is not yet durable, nor with one whose commit then failed."""
    engine, store = held
    runner = LoopRunner(engine, lambda: network.funded_at_us + 1)
    before = engine.balance(network.icbk_cny).posted_minor
    seen: list[int] = []
    reading = threading.Event()

    def reader() -> None:
        reading.set()
        seen.append(engine.balance(network.icbk_cny).posted_minor)

    async def main():
        runner.attach(asyncio.get_running_loop())
        store.fail_next = True
        lost = runner.submit([move(network, "never", 40)])
        await until(store.finishing.is_set)
        thread = threading.Thread(target=reader)
        thread.start()
        await until(reading.is_set)
        assert seen == []  # it waits on the engine's lock
        store.release.set()
        with pytest.raises(sqlite3.OperationalError):
            await lost
        await until(lambda: bool(seen))
        thread.join()

    asyncio.run(main())
    runner.stop()
    assert seen == [before]  # never the 40 that was rolled back
    assert engine.store.journal_entry("never") is None


def test_requests_queued_behind_a_failed_commit_run_once_in_order_on_the_rebuilt_engine(
        held, network):
    engine, store = held
    runner = LoopRunner(engine, lambda: network.funded_at_us + 1)
    order: list[str] = []

    def note(name):
        def command(_engine, _now_us):
            order.append(name)
            return name
        return command

    async def main():
        runner.attach(asyncio.get_running_loop())
        store.fail_next = True
        lost = runner.submit([move(network, "failed")])
        await until(store.finishing.is_set)
        behind = [runner.call(note("a")), runner.submit([move(network, "b")]),
                  runner.call(note("c")), runner.submit([move(network, "d")])]
        store.release.set()
        lost_error = await asyncio.gather(lost, return_exceptions=True)
        return lost_error, await asyncio.gather(*behind)

    (lost_error,), (a, (b,), c, (d,)) = asyncio.run(main())
    runner.stop()
    assert isinstance(lost_error, sqlite3.OperationalError)
    assert (a, c) == ("a", "c") and order == ["a", "c"]
    assert b.rejection is None and d.rejection is None
    seqs = [engine.store.journal_entry(i)[0] for i in ("b", "d")]
    assert seqs == sorted(seqs)
    assert engine.store.journal_entry("failed") is None
    assert engine.reconcile().ok
    assert not runner._in_flight and not runner._busy


def test_a_heartbeat_from_its_thread_during_a_deferred_commit_waits_for_it(held, network):
    engine, store = held
    clock = [network.funded_at_us + 1]
    runner = LoopRunner(engine, lambda: clock[0])

    async def main():
        first = await submitted_and_held(runner, store, [move(network, "before-beat")])
        store.finishing.clear()
        beat_result: list = []
        thread = threading.Thread(target=lambda: beat_result.append(
            runner.call(lambda e, now: (e.heartbeat(now), e.journal_count)[1])))
        thread.start()
        thread.join()
        (beat,) = beat_result
        for _ in range(20):
            await asyncio.sleep(0)
        assert not beat.done()  # nothing runs on the engine before the commit returns
        store.release.set()
        await first
        return await asyncio.wrap_future(beat)

    count = asyncio.run(main())
    runner.stop()
    assert count == engine.journal_count
    assert engine.store.journal_entry("before-beat") is not None
