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
from collections.abc import Iterable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

JOIN_BYTES_MAX = 64 * 1024  # a held write and the next are copied into one up to this size


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
    """uvicorn's httptools protocol over a OneWriteTransport."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(OneWriteTransport(transport, self.loop))

    def eof_received(self) -> bool | None:
        # The client sent all it will send; the transport closes itself once this returns,
        # and a write held back then would be dropped: it goes first.
        self.transport.flush()
        return super().eof_received()


# How `scopay serve` runs uvicorn, and so the tests' live servers: this protocol; no
# X-Forwarded-For or X-Forwarded-Proto trusted (scopay listens to its clients directly, and a
# local process could otherwise name any client address); no Server header naming the
# software; no access log, which the warning log level leaves unwritten all the same.
SERVER_OPTIONS: dict[str, Any] = {"http": OneWriteHttpProtocol, "proxy_headers": False,
                                  "server_header": False, "access_log": False}
