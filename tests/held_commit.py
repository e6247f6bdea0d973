"""A store whose COMMIT the test holds, for the moments between a batch written and durable.

The real SQLite store; finish() (the COMMIT, on the server's commit thread) waits until the
test sets `release`, and fails instead when `fail_next` is set. Shared by the runner's tests
(tests/engine) and the API's durability tests (tests/api).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading

from scopay.engine.engine import Engine
from scopay.store.sqlite import SQLiteStore

RELEASE_WAIT_S = 20


class HeldStore(SQLiteStore):
    def __init__(self, path) -> None:
        super().__init__(path)
        self.release = threading.Event()
        self.fail_next = False
        self.finishing = threading.Event()
        self.finished_on: list[str] = []  # the thread of each COMMIT that went through

    def finish(self) -> None:
        self.finishing.set()
        assert self.release.wait(RELEASE_WAIT_S), "the test never let the commit go"
        if self.fail_next:
            self.fail_next = False
            self.discard()
            raise sqlite3.OperationalError("disk I/O error")
        if self._staged is not None:
            self.finished_on.append(threading.current_thread().name)
        super().finish()

    def hold_from_now(self) -> None:
        """Commits so far went through at once; from now on each waits for `release`."""
        self.release.clear()
        self.finishing.clear()
        self.finished_on.clear()


async def until(condition) -> None:
    """Let the loop run until `condition()` holds (the commit thread hands back through it)."""
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


async def submitted_and_held(runner, store: HeldStore, transfers) -> asyncio.Future:
    """Run the runner on this loop, submit `transfers`, and return (the caller's future)
    once their batch's COMMIT is held."""
    runner.attach(asyncio.get_running_loop())
    future = runner.submit(transfers)
    await until(store.finishing.is_set)
    return future


def lock_free_on_another_thread(engine: Engine) -> bool:
    """Whether a reader on another thread would get the engine's lock now."""
    taken: list[bool] = []

    def try_it() -> None:
        taken.append(engine._lock.acquire(False))
        if taken[0]:
            engine._lock.release()

    thread = threading.Thread(target=try_it)
    thread.start()
    thread.join()
    return taken[0]


def fail_next_commit(monkeypatch, store: SQLiteStore) -> None:
    """The store's next COMMIT fails as a full disk makes it fail (the batch rolled back);
    those after it go through."""
    finish, failures = store.finish, []

    def fails_once() -> None:
        if not failures:
            failures.append(1)
            store.discard()
            raise sqlite3.OperationalError("database or disk is full")
        finish()

    monkeypatch.setattr(store, "finish", fails_once)
