"""The HTTP/1.1 protocol `scopay serve` runs: uvicorn's httptools protocol, with each answer's
head and body sent to the socket in one write.

uvicorn writes an answer's status line and headers when the app starts the answer and its body
when the app sends it: two writes, so two system calls, two loopback segments and two wake-ups
of the client for every answer. OneWriteTransport holds a write back until the next one (then
sends both together) or until the callbacks the loop runs next, whichever comes first: a small
answer, sent in one turn as scopay's routes send theirs, leaves in one write. At most one write
is held, nothing is reordered, and whatever closes the connection sends the held write first:
a close by uvicorn, or the client's end of input (OneWriteHttpProtocol.eof_received), after
which the transport closes itself.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from scopay.api.errors import PROBLEM_MEDIA_TYPE, problem_body

JOIN_BYTES_MAX = 64 * 1024  # a held write and the next are copied into one up to this size
HEAD_BYTES_MAX = 64 * 1024  # a request's line and headers; scopay's own need under 2 KiB
HEAD_TIMEOUT_S = 10.0  # to send a request's head, from the connection or its first byte
BODY_TIMEOUT_S = 60.0  # to send a body (at most 4 MiB) once its head is in
_HEAD, _BODY = "head", "body"  # what a connection is reading
# Open connections one client address may hold (more are closed at once): the banks connect
# from a few addresses each; an address opening thousands would take every file descriptor.
CONNECTIONS_PER_CLIENT_MAX = 1024


def _open_connections(server_state: Any) -> Counter:
    """The count of open connections by client address, kept on uvicorn's state of the server
    (one per server, shared by its connections' protocols)."""
    counts = getattr(server_state, "scopay_open_by_client", None)
    if counts is None:
        counts = server_state.scopay_open_by_client = Counter()
    return counts


class HeadTooLarge(Exception):
    """A request's line and headers over HEAD_BYTES_MAX: raised to stop the parser."""


class OneWriteTransport:
    """A transport that joins a write with the next one (see the module's text); everything
    else goes to the transport it wraps."""

    __slots__ = ("_transport", "_loop", "_held")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        held = self._held
        if held is None:
            self._held = bytes(data)
            self._loop.call_soon(self.flush)
        elif len(held) + len(data) <= JOIN_BYTES_MAX:
            self._held = None
            self._transport.write(held + data)
        else:  # large: handed over together, without copying the body
            self._held = None
            self._transport.writelines((held, data))

    def flush(self) -> None:
        """Send the write held back, if any. A transport that has closed and sent all it had
        drops it, as it would drop the write itself."""
        held, self._held = self._held, None
        transport = self._transport
        if held is not None and not (transport.is_closing()
                                     and transport.get_write_buffer_size() == 0):
            transport.write(held)

    def writelines(self, lines: Iterable[bytes]) -> None:
        self.write(b"".join(lines))

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + len(self._held or b"")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class OneWriteHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol over a OneWriteTransport, with the limits uvicorn leaves
    out: a request's head (request line and headers) of at most HEAD_BYTES_MAX, answered 431
    past it, and deadlines for a client to send what it started: its request's head within
    HEAD_TIMEOUT_S of the connection or of the request's first byte, its body within
    BODY_TIMEOUT_S of the head. A client past a deadline has its connection closed. Idle
    between requests, uvicorn's keep-alive timeout applies. Deadlines are set only when a
    read ends inside a head or a body: a request that arrives whole costs no timer."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(OneWriteTransport(transport, self.loop))
        self._reading: str | None = _HEAD  # what the client is sending now; None: nothing
        self._head_bytes = 0  # bytes read while in this request's head
        self._deadline: asyncio.TimerHandle | None = None
        self._deadline_for: str | None = None
        self._head_refused = False
        self._set_deadline()  # a connection that never sends its request is closed too
        # connections open per client address, across this server's protocols
        counts = self._open_by_client = _open_connections(self.server_state)
        self._address = self.client[0] if self.client else None
        counts[self._address] += 1
        if counts[self._address] > CONNECTIONS_PER_CLIENT_MAX:
            self.transport.close()  # one address may not hold every connection scopay has

    def data_received(self, data: bytes) -> None:
        if self._reading is _HEAD:
            self._head_bytes += len(data)
        super().data_received(data)
        if self.transport.is_closing():
            return
        if self._reading is _HEAD and self._head_bytes > HEAD_BYTES_MAX:
            self._refuse_head()
            return
        self._set_deadline()

    def on_message_begin(self) -> None:
        self._reading = _HEAD
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._reading, self._head_bytes = _BODY, 0
        if len(self.url) + sum(len(name) + len(value) for name, value in self.headers) > (
                HEAD_BYTES_MAX):  # a head that arrived whole, in one read: stop parsing
            self._head_refused = True
            raise HeadTooLarge
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        # uvicorn answers a parser callback's error as a malformed request
        if self._head_refused:
            self._refuse_head()
        else:
            super().send_400_response(msg)

    def on_message_complete(self) -> None:
        self._reading = None
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        counts = self._open_by_client
        counts[self._address] -= 1
        if not counts[self._address]:
            del counts[self._address]
        super().connection_lost(exc)

    def eof_received(self) -> bool | None:
        # The client sent all it will send; the transport closes itself once this returns,
        # and a write held back then would be dropped: it goes first.
        self.transport.flush()
        return super().eof_received()

    def _set_deadline(self) -> None:
        """One deadline for each head or body, from when it began: sending a byte now and
        then does not put it off."""
        if self._reading is self._deadline_for:
            return
        self._cancel_deadline()
        if self._reading is not None:
            timeout_s = HEAD_TIMEOUT_S if self._reading is _HEAD else BODY_TIMEOUT_S
            self._deadline = self.loop.call_later(timeout_s, self._past_deadline)
            self._deadline_for = self._reading

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = self._deadline_for = None

    def _past_deadline(self) -> None:
        self._deadline = self._deadline_for = None
        if not self.transport.is_closing():
            self.transport.close()  # a route reading the body sees the client gone

    def _refuse_head(self) -> None:
        self._cancel_deadline()
        self.transport.write(_HEAD_REFUSAL)
        self.transport.close()


# The answer to a head over HEAD_BYTES_MAX, in the API's one error shape. The head was not
# read to its end, so the route (and whether it speaks XML) is unknown: problem JSON.
_HEAD_PROBLEM = problem_body(431, "Request header fields too large",
                             f"the request line and headers are over {HEAD_BYTES_MAX} bytes")
_HEAD_REFUSAL = (b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                 b"content-type: " + PROBLEM_MEDIA_TYPE.encode() + b"\r\n"
                 b"content-length: " + str(len(_HEAD_PROBLEM)).encode() + b"\r\n"
                 b"connection: close\r\n\r\n" + _HEAD_PROBLEM)


# How `scopay serve` runs uvicorn, and so the tests' live servers: this protocol; no
# X-Forwarded-For or X-Forwarded-Proto trusted (scopay listens to its clients directly, and a
# local process could otherwise name any client address); no Server header naming the
# software; no access log, which the warning log level leaves unwritten all the same.
SERVER_OPTIONS: dict[str, Any] = {"http": OneWriteHttpProtocol, "proxy_headers": False,
                                  "server_header": False, "access_log": False}
