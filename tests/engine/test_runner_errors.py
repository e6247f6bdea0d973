"""An error a runner hands to its callers is freed with its last reference: the traceback
keeps no frame variable that leads back to the callers' futures or to the engine's state
(which, after a rebuild, would be the state from before it)."""

import time

import pytest

from cycles import cyclic_garbage
from scopay.engine.runner import EngineRunner


class Refused(Exception):
    pass


def refused(engine, now_us):
    state = engine.ledger  # as a command's frame holds the engine's state
    raise Refused(f"refused at {now_us} with {len(state.balances)} balances")


@pytest.fixture
def runner(engine):
    started = EngineRunner(engine, lambda: time.time_ns() // 1000).start()
    yield started
    started.stop()


def test_a_command_that_raises_leaves_no_reference_cycle(runner):
    with cyclic_garbage() as found:
        future = runner.call(refused)
        error = future.exception(timeout=30)  # (result() would add this frame to it)
        assert isinstance(error, Refused)
        del error, future
        # the runner's thread lets go of the finished batch once it takes the next
        assert runner.call(lambda engine, now_us: now_us).result(timeout=30) > 0
    assert [o for o in found if isinstance(o, BaseException)] == []
