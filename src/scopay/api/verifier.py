"""Signature checks off the event loop: a helper process, the verifier, runs Ed25519 for the
server, so the loop's one core is left to HTTP and the engine.

All checks asked for during one turn of the loop go to the verifier as one message; it
answers one byte per check, in order. The verifier holds no secrets: it gets public keys,
signatures and the signed bytes, and says which signatures are valid. Whatever goes wrong
with it (not started, died, too slow, garbled answer), the checks it owes are run again on
the loop with signing.verify_raw: an answer is only ever "valid" because a signature was.

Frames, both ways over a socketpair (network byte order):
    to the verifier:  count (u32), then per check: key (32 bytes), signature (64 bytes),
                      message length (u32), message
    from it:          count (u32), then one byte per check, 1 valid, 0 not
No extra thread in the server: the loop's end is an asyncio transport. The verifier's end
is plain blocking code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
from collections import deque
from collections.abc import Callable

from scopay.api import signing

BATCH_CHECKS_MAX = 1024  # checks in one message to the verifier
MESSAGE_BYTES_MAX = 16 * 1024  # a longer signed message is checked on the loop
ANSWER_TIMEOUT_S = 5.0  # a verifier that owes an answer this long is killed and replaced
RESTARTS_MAX = 10  # verifiers started after the first died; then checks stay on the loop
STOP_TIMEOUT_S = 5.0

_COUNT = struct.Struct("!I")
_CHECK = struct.Struct("!32s64sI")  # key, signature, message length; the message follows

# key, signature, message, and the future its answer goes to
Check = tuple[bytes, bytes, bytes, asyncio.Future]

log = logging.getLogger(__name__)


class Verifier:
    """The server's verifier process, seen from the event loop it was started on.

    `verify` is for coroutines on that loop. From any other place (no loop, another loop, or
    once stopped) it checks in-process, as it does while no verifier process is running.
    A verifier that dies is replaced, at most RESTARTS_MAX times."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._connection: _Connection | None = None
        self._checks: list[Check] = []  # asked for in this turn of the loop
        self._scheduled = False
        self._restarts = 0
        self._restarting: asyncio.Task | None = None
        self._stopped = False

    @classmethod
    async def start(cls) -> Verifier:
        """A verifier process for the running loop."""
        verifier = cls(asyncio.get_running_loop())
        await verifier._connect()
        return verifier

    @property
    def pid(self) -> int | None:
        """The verifier process's id; None while checks run in-process."""
        connection = self._connection
        return None if connection is None else connection.process.pid

    @property
    def checks_owed(self) -> int:
        """Checks sent to the verifier process and not answered yet."""
        connection = self._connection
        return 0 if connection is None else connection.checks_owed

    async def verify(self, public_key_b64: str, signature_b64: str, message: bytes) -> bool:
        """True when the signature is the key's over `message` (as signing.verify)."""
        decoded = signing.decode_signature(public_key_b64, signature_b64)
        if decoded is None:
            return False
        if self._stopped or len(message) > MESSAGE_BYTES_MAX or not self._on_loop():
            return signing.verify_raw(*decoded, message)
        future = self._loop.create_future()
        self._checks.append((*decoded, message, future))
        if len(self._checks) >= BATCH_CHECKS_MAX:
            self._send()
        elif not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._send_scheduled)
        return await future

    def stop(self) -> None:
        """Stop the verifier process; checks still owed are answered in-process first."""
        self._stopped = True
        if self._restarting is not None:
            self._restarting.cancel()
        checks, self._checks = self._checks, []
        _check_here(checks)
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def _on_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    def _send_scheduled(self) -> None:
        self._scheduled = False
        if self._checks:
            self._send()

    def _send(self) -> None:
        checks, self._checks = self._checks, []
        connection = self._connection
        if connection is None:
            _check_here(checks)  # no verifier now (died, being replaced, or stopped)
        else:
            connection.send(checks)

    async def _connect(self) -> None:
        process, ours = _spawn()
        connection = _Connection(self._loop, process, self._lost)
        try:
            await self._loop.connect_accepted_socket(lambda: connection, ours)
        except BaseException:  # cancelled by stop(), or the loop could not take the socket
            connection.close()
            ours.close()
            raise
        if self._stopped:
            connection.close()
        else:
            self._connection = connection

    def _lost(self, connection: _Connection) -> None:
        """The verifier went away; its checks were answered in-process. Start another."""
        if connection is not self._connection:
            return  # stopped or replaced on purpose
        self._connection = None
        if self._stopped:
            return
        if self._restarts >= RESTARTS_MAX:
            log.warning("the signature verifier died %d times; checking signatures on the "
                        "event loop from now on", self._restarts + 1)
            return
        self._restarts += 1
        self._restarting = self._loop.create_task(self._restart())

    async def _restart(self) -> None:
        try:
            await self._connect()
        except OSError as error:  # could not start one: the loop checks, as it always can
            log.warning("could not restart the signature verifier (%s); checking signatures "
                        "on the event loop from now on", error)
            self._stopped = True


class _Connection(asyncio.Protocol):
    """The loop's end of one verifier process: the batches sent to it, answered in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop, process: subprocess.Popen,
                 on_lost: Callable[[_Connection], None]) -> None:
        self.process = process
        self._loop = loop
        self._on_lost = on_lost
        self._transport: asyncio.Transport | None = None
        self._sent: deque[tuple[float, list[Check]]] = deque()  # (sent at, checks)
        self._answers = bytearray()
        self._watchdog: asyncio.TimerHandle | None = None

    @property
    def checks_owed(self) -> int:
        return sum(len(checks) for _, checks in self._sent)

    def connection_made(self, transport) -> None:
        self._transport = transport

    def send(self, checks: list[Check]) -> None:
        self._sent.append((self._loop.time(), checks))
        if self._transport.is_closing():
            return  # abandoned: connection_lost follows and checks what was sent in-process
        parts = [_COUNT.pack(len(checks))]
        for key, signature, message, _ in checks:
            parts.append(_CHECK.pack(key, signature, len(message)))
            parts.append(message)
        self._transport.write(b"".join(parts))
        if self._watchdog is None:
            self._watchdog = self._loop.call_later(ANSWER_TIMEOUT_S, self._check_late)

    def data_received(self, data: bytes) -> None:
        answers = self._answers
        answers += data
        while len(answers) >= _COUNT.size:
            (count,) = _COUNT.unpack_from(answers)
            if len(answers) < _COUNT.size + count:
                return
            if not self._sent or len(self._sent[0][1]) != count:
                self._abandon()  # not the answer to what was asked: trust none of it
                return
            _, checks = self._sent.popleft()
            end = _COUNT.size + count
            for (_, _, _, future), answer in zip(checks, answers[_COUNT.size:end], strict=True):
                if not future.done():  # a request that went away stopped waiting
                    future.set_result(answer == 1)
            del answers[:end]

    def connection_lost(self, exc: Exception | None) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        self._transport = None
        self._end_process()
        self._answer_owed_here()
        self._on_lost(self)

    def close(self) -> None:
        """End the process now; what it owes is answered in-process."""
        transport = self._transport
        if transport is not None:
            transport.abort()  # connection_lost follows on the loop's next turn
        self._answer_owed_here()
        self._end_process()

    def _answer_owed_here(self) -> None:
        """Make in-process every check sent and not answered yet."""
        sent, self._sent = self._sent, deque()
        for _, checks in sent:
            _check_here(checks)

    def _check_late(self) -> None:
        """Replace a verifier that owes an answer for more than ANSWER_TIMEOUT_S."""
        self._watchdog = None
        if not self._sent:
            return
        due = self._sent[0][0] + ANSWER_TIMEOUT_S
        if self._loop.time() >= due:
            log.warning("the signature verifier did not answer in %g s; replacing it",
                        ANSWER_TIMEOUT_S)
            self._abandon()
        else:
            self._watchdog = self._loop.call_at(due, self._check_late)

    def _abandon(self) -> None:
        self.process.kill()
        if self._transport is not None:
            self._transport.abort()

    def _end_process(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _check_here(checks: list[Check]) -> None:
    for key, signature, message, future in checks:
        if not future.done():
            future.set_result(signing.verify_raw(key, signature, message))


def _spawn() -> tuple[subprocess.Popen, socket.socket]:
    """A verifier process and the server's end of its socket. A fresh interpreter, not a
    fork: the server has threads (the heartbeat), and the verifier needs none of its state."""
    ours, theirs = socket.socketpair()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "scopay.api.verifier", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL)
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    return process, ours


# -- the verifier process --------------------------------------------------------------------


def serve(sock: socket.socket) -> None:
    """Answer batches of checks until the server closes its end (or dies)."""
    reader = sock.makefile("rb")
    while (head := _read(reader, _COUNT.size)) is not None:
        (count,) = _COUNT.unpack(head)
        assert count <= BATCH_CHECKS_MAX, count
        answers = bytearray(count)
        for n in range(count):
            fixed = _read(reader, _CHECK.size)
            if fixed is None:
                return
            key, signature, length = _CHECK.unpack(fixed)
            assert length <= MESSAGE_BYTES_MAX, length
            message = _read(reader, length)
            if message is None:
                return
            answers[n] = signing.verify_raw(key, signature, message)
        try:
            sock.sendall(_COUNT.pack(count) + answers)
        except (BrokenPipeError, ConnectionResetError):
            return  # the server went away


def _read(reader, size: int) -> bytes | None:
    """Exactly `size` bytes; None at the end of the stream."""
    data = reader.read(size)
    return data if len(data) == size else None


def _yield_to_the_loop() -> None:
    """Run as a batch process (Linux SCHED_BATCH): woken by a message, the verifier waits
    for a free core instead of preempting the event loop that sent it, which would stall
    the loop in its write for as long as the checks take on a busy machine. Where the
    policy does not exist or cannot be set, the verifier runs as any process: slower
    beside a busy loop, not less right."""
    if hasattr(os, "sched_setscheduler") and hasattr(os, "SCHED_BATCH"):
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))


def main() -> None:
    # Ctrl-C reaches the whole process group: the server stops, then stops this process.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _yield_to_the_loop()
    with socket.socket(fileno=int(sys.argv[1])) as sock:
        serve(sock)


if __name__ == "__main__":
    main()
