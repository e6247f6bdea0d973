"""An error a runner hands to its callers is freed with its last reference: the traceback
keeps no frame variable that leads back to the callers' futures or to the engine's state
(which, after a rebuild, would be the state from before it)."""

import time

import pytest

from cycles import cyclic_garbage
from scopay.engine import runner as runner_module
from scopay.engine.engine import CommandRefused
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


def test_an_error_reaches_its_callers_with_its_engine_traceback_as_a_note(runner):
    error = runner.call(refused).exception(timeout=30)
    assert error.__traceback__ is None
    (note,) = error.__notes__
    assert note.startswith("raised in the engine:") and "in refused" in note


def test_a_refusal_reaches_its_callers_without_a_note(runner):
    def refuse(engine, now_us):
        raise CommandRefused("no such participant")

    error = runner.call(refuse).exception(timeout=30)
    assert isinstance(error, CommandRefused)
    assert getattr(error, "__notes__", None) is None


def test_an_error_whose_note_cannot_be_written_still_reaches_its_callers(runner, monkeypatch):
    def failing(_traceback):
        raise MemoryError

    monkeypatch.setattr(runner_module.traceback, "format_tb", failing)
    error = runner.call(refused).exception(timeout=30)
    assert isinstance(error, Refused)
    assert runner.call(lambda engine, now_us: now_us).result(timeout=30) > 0  # still serving


def test_a_commit_that_fails_on_the_callers_thread_leaves_no_reference_cycle():
    """A runner whose commit thread has stopped commits on the caller's thread
    (_finished_here); the error it hands on keeps its traceback as text only."""
    class FailingCommit:
        def finish_commit(self):
            raise OSError("disk I/O error (test double)")

    with cyclic_garbage() as found:
        done = runner_module._finished_here(FailingCommit())
        error = done.exception()
        assert isinstance(error, OSError)
        assert error.__traceback__ is None and "in finish_commit" in error.__notes__[0]
        del error, done
    assert [o for o in found if isinstance(o, BaseException)] == []
