"""LoopRunner: the engine on the event loop's thread, as `scopay serve` runs it."""

import asyncio
import sqlite3
import sys
import threading

import pytest

from held_commit import lock_free_on_another_thread, submitted_and_held, until
from scopay.domain.ledger import Transfer
from scopay.domain.participant import Participant, Role, Tier
from scopay.engine import runner as runner_module
from scopay.engine.runner import HELD_ANSWER, HeldAnswer, LoopRunner, RunnerBusyError


def transfers(network, prefix: str, count: int) -> list[Transfer]:
    icbk = next(a.id for a in network.accounts if a.owner_bic == "ICBKCNBJ")
    aboc = next(a.id for a in network.accounts if a.owner_bic == "ABOCCNBJ")
    return [Transfer(f"{prefix}-{n}", icbk, aboc, 1, "CNY") for n in range(count)]


def test_requests_made_in_one_turn_of_the_loop_share_one_commit(engine, network):
    runner = LoopRunner(engine, lambda: network.funded_at_us + 1)
    batches: list[int] = []
    submit_many = engine.submit_many

    def counting(requests, now_us):
        batches.append(len(requests))
        return submit_many(requests, now_us)

    engine.submit_many = counting

    async def main():
        runner.attach(asyncio.get_running_loop())
        futures = [runner.submit([t]) for t in transfers(network, "turn", 20)]
        return await asyncio.gather(*futures)

    outcomes = asyncio.run(main())
    assert [o.rejection for (o,) in outcomes] == [None] * 20
    assert batches == [20]
    assert engine.journal_count == len(network.funding_transfers()) + 20


def test_calls_from_other_threads_are_handed_to_the_loop(engine, network):
    runner = LoopRunner(engine, lambda: network.funded_at_us + 1)
    loop = asyncio.new_event_loop()
    threads = []
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        runner.attach(loop)

        def engine_thread_name(_engine, _now_us):
            return threading.current_thread().name

        names = []
        for _ in range(3):
            threads.append(threading.Thread(
                target=lambda: names.append(runner.call(engine_thread_name).result(10))))
            threads[-1].start()
        for worker in threads:
            worker.join()
        (outcome,) = runner.submit(transfers(network, "thread", 1)).result(10)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
    assert names == [thread.name] * 3
    assert outcome.rejection is None


def test_a_full_queue_answers_busy_and_a_cancelled_caller_leaves_the_batch_intact(
        engine, network, monkeypatch):
    monkeypatch.setattr(runner_module, "QUEUE_REQUESTS_MAX", 3)
    runner = LoopRunner(engine, lambda: network.funded_at_us + 1)

    async def main():
        runner.attach(asyncio.get_running_loop())
        first, gone, third = (runner.submit([t]) for t in transfers(network, "full", 3))
        with pytest.raises(RunnerBusyError):
            runner.submit(transfers(network, "over", 1))
        gone.cancel()  # its caller stopped waiting: the transfer still happens, once
        return await first, await third

    (first,), (third,) = asyncio.run(main())
    assert first.rejection is None and third.rejection is None
    assert engine.ledger.transfer_of("full-1") is not None


def test_without_a_loop_the_runner_refuses_rather_than_hangs(engine, network):
    runner = LoopRunner(engine, lambda: network.funded_at_us + 1)
    with pytest.raises(RuntimeError):
        runner.submit(transfers(network, "no-loop", 1))


def test_the_next_batch_gathers_while_a_commit_waits_for_the_disk_and_runs_after_it(
        held, network):
    engine, store = held
    runner = LoopRunner(engine, lambda: network.funded_at_us + 1)
    entries = engine.journal_count

    async def main():
        first = await submitted_and_held(runner, store, transfers(network, "first", 1))
        gate = runner.until_durable()
        assert gate is not None and not first.done()
        second = [runner.submit([t]) for t in transfers(network, "second", 5)]
        for _ in range(20):
            await asyncio.sleep(0)
        # nothing more reaches the engine, and no one is answered, before the disk says so
        assert engine.journal_count == entries + 1 and not first.done()
        assert not any(f.done() for f in second) and not gate.done()
        store.finishing.clear()
        store.release.set()
        await gate
        return await first, await asyncio.gather(*second)

    (first,), second = asyncio.run(main())
    runner.stop()
    assert first.rejection is None and all(o.rejection is None for (o,) in second)
    assert engine.journal_count == entries + 6
    assert engine.store.journal_entry("second-4") is not None


def test_a_commit_that_fails_tells_its_batch_and_the_engine_forgets_it(held, network):
    engine, store = held
    runner = LoopRunner(engine, lambda: network.funded_at_us + 1)
    before = {b.account_id: b.posted_minor for b in engine.balances()}

    async def main():
        runner.attach(asyncio.get_running_loop())
        store.fail_next = True
        lost = [runner.submit([t]) for t in transfers(network, "lost", 3)]
        await until(store.finishing.is_set)
        store.release.set()
        errors = await asyncio.gather(*lost, return_exceptions=True)
        kept = await runner.submit(transfers(network, "kept", 1))
        return errors, kept

    errors, (kept,) = asyncio.run(main())
    runner.stop()
    assert all(isinstance(e, sqlite3.OperationalError) for e in errors)
    assert kept.rejection is None
    assert engine.ledger.transfer_of("lost-0") is None
    assert engine.store.journal_entry("lost-0") is None
    after = {b.account_id: b.posted_minor for b in engine.balances()}
    moved = {k: after[k] - before[k] for k in after if after[k] != before[k]}
    assert sorted(moved.values()) == [-1, 1]  # only "kept" moved money
    assert engine.reconcile().ok


def test_a_command_that_raises_after_writing_keeps_what_it_wrote_as_without_the_thread(
        held, network):
    engine, store = held
    store.release.set()
    runner = LoopRunner(engine, lambda: network.funded_at_us + 1)

    def admit_then_refuse(engine, now_us):
        engine.admit_participant(
            Participant("BKCHCNBJ", "Bank of China", Role.DIRECT, "CN", Tier.MEMBER), now_us)
        raise RuntimeError("refused once the step was written")

    async def main():
        runner.attach(asyncio.get_running_loop())
        with pytest.raises(RuntimeError):
            await runner.call(admit_then_refuse)
        return await runner.submit(transfers(network, "after", 1))

    (after,) = asyncio.run(main())
    runner.stop()
    assert after.rejection is None
    # committed, as a direct call to the engine (which commits at once) would have left it
    assert "BKCHCNBJ" in engine.participants
    assert "BKCHCNBJ" in {p.bic for p in engine.store.participants()}
    assert engine.reconcile().ok


def test_stopping_lets_the_commit_under_way_finish_and_runs_nothing_after_it(held, network):
    engine, store = held
    runner = LoopRunner(engine, lambda: network.funded_at_us + 1)

    async def main():
        first = await submitted_and_held(runner, store, transfers(network, "durable", 1))
        later = runner.call(lambda engine, now_us: engine.journal_count)
        store.release.set()
        runner.stop()  # as the server's shutdown does, before its checkpoint
        engine.checkpoint(network.funded_at_us + 2)
        return await first, await asyncio.gather(later, return_exceptions=True)

    (first,), (later,) = asyncio.run(main())
    assert first.rejection is None
    assert isinstance(later, RuntimeError)
    assert engine.store.journal_entry("durable-0") is not None


def test_readers_see_a_batch_only_once_it_is_durable_and_before_the_next_is_written(
        held, network):
    engine, store = held
    runner = LoopRunner(engine, lambda: network.funded_at_us + 1)

    async def main():
        first = await submitted_and_held(runner, store, transfers(network, "one", 1))
        held_while_committing = not lock_free_on_another_thread(engine)
        second = runner.submit(transfers(network, "two", 1))

        async def reader():
            await runner.until_durable()
            return (engine.ledger.transfer_of("two-0"), engine.store.journal_entry("one-0"),
                    lock_free_on_another_thread(engine))

        reading = asyncio.ensure_future(reader())
        await asyncio.sleep(0)  # the reader reaches its wait
        store.finishing.clear()
        store.release.set()
        seen = await reading
        await first, await second
        return held_while_committing, seen

    held_while_committing, (second_seen, first_entry, free_after) = asyncio.run(main())
    runner.stop()
    assert held_while_committing  # a reader on another thread waits for the commit
    assert first_entry is not None  # the reader on the loop resumes once it is durable...
    assert second_seen is None  # ...before the next batch is written
    assert free_after


def test_the_gil_switch_interval_is_short_only_while_a_commit_is_in_flight(held, network):
    """The commit thread takes the GIL from the busy loop to start the COMMIT and to hand
    the outcome back: while it is in flight the interpreter's switch interval is short;
    once the outcome is back, the interval in force before is restored."""
    engine, store = held
    runner = LoopRunner(engine, lambda: network.funded_at_us + 1)
    before = sys.getswitchinterval()

    async def main():
        first = await submitted_and_held(runner, store, transfers(network, "gil", 1))
        during = sys.getswitchinterval()
        store.release.set()
        await first
        return during, sys.getswitchinterval()

    try:
        sys.setswitchinterval(0.005)
        during, after = asyncio.run(main())
    finally:
        sys.setswitchinterval(before)
        runner.stop()
    assert during == pytest.approx(runner_module.GIL_SWITCH_INTERVAL_S)
    assert after == pytest.approx(0.005)


def test_a_request_given_up_before_its_command_ran_holds_no_commit(engine, network):
    """A HeldAnswer closed before any commit was held for it (its request stopped while its
    command waited to run) is not waited for: the command commits at once, not after the
    seconds an answer is waited for."""
    runner = LoopRunner(engine, lambda: network.funded_at_us + 1)
    aboc = next(a.id for a in network.accounts if a.owner_bic == "ABOCCNBJ")
    held = HeldAnswer("ABOCCNBJ", "k-closed", "0" * 64)

    async def main():
        runner.attach(asyncio.get_running_loop())
        context = HELD_ANSWER.set(held)
        try:
            future = runner.call(lambda e, now: e.set_credit_line(aboc, 70_000, now))
        finally:
            HELD_ANSWER.reset(context)
        held.give(None)  # the request is gone before its command ran
        await future
        waiting = runner.until_durable()
        if waiting is not None:
            await waiting

    asyncio.run(main())
    assert not held.engaged  # no commit was held for it
    assert engine.accounts[aboc].credit_line_minor == 70_000 and not engine.commit_pending
