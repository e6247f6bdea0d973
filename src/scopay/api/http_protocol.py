"""The HTTP/1.1 protocol `scopay serve` runs: uvicorn's httptools protocol, with each answer's
head and body sent to the socket in one write.

uvicorn writes an answer's status line and headers when the app starts the answer and its body
when the app sends it: two writes, so two system calls, two loopback segments and two wake-ups
of the client for every answer. OneWriteTransport holds a write back until the next one (then
sends both as one) or until the loop's current turn ends, whichever comes first. A small
answer, sent in one turn as scopay's routes send theirs, then leaves in one write. At most one
write is ever held, so a long streamed answer is not gathered in memory, and nothing is
reordered: a held write always goes first.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


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
        else:
            self._held = None
            self._transport.write(held + data)

    def flush(self) -> None:
        """Send the write held back, if any (a closed transport drops it, as it would)."""
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def writelines(self, lines) -> None:
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

    def __getattr__(self, name: str):
        return getattr(self._transport, name)


class OneWriteHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol over a OneWriteTransport."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(OneWriteTransport(transport, self.loop))
