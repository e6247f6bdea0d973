"""LoopRunner: the engine on the event loop's thread, as `scopay serve` runs it."""

import asyncio
import threading

import pytest

from scopay.domain.ledger import Transfer
from scopay.engine import runner as runner_module
from scopay.engine.runner import LoopRunner, RunnerBusyError


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
