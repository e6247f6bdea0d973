"""The HTTP protocol `scopay serve` runs sends an answer's head and body in one write, holds
back at most one write, never reorders, and drops nothing it should send."""

import asyncio

import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from scopay.api.http_protocol import OneWriteHttpProtocol, OneWriteTransport


class RecordingTransport(asyncio.Transport):
    """What reached the socket, write by write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False
        self.protocol = None

    def write(self, data) -> None:
        assert not self.closed, "a write after close"
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_protocol(self, protocol) -> None:
        self.protocol = protocol

    def get_extra_info(self, name, default=None):
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(
            name, default)


async def next_turns(count: int = 2) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


def test_two_writes_in_one_turn_leave_as_one_in_order():
    async def scenario():
        socket = RecordingTransport()
        transport = OneWriteTransport(socket, asyncio.get_running_loop())
        transport.write(b"HTTP/1.1 201 Created\r\n\r\n")
        transport.write(b'{"status":"settled"}')
        assert socket.writes == [b'HTTP/1.1 201 Created\r\n\r\n{"status":"settled"}']
        await next_turns()
        assert len(socket.writes) == 1  # the turn's end found nothing held

    asyncio.run(scenario())


def test_a_lone_write_leaves_when_the_turn_ends():
    async def scenario():
        socket = RecordingTransport()
        transport = OneWriteTransport(socket, asyncio.get_running_loop())
        transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        assert socket.writes == []
        assert transport.get_write_buffer_size() == len(b"HTTP/1.1 100 Continue\r\n\r\n")
        await next_turns()
        assert socket.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]

    asyncio.run(scenario())


def test_at_most_one_write_is_held_and_order_is_kept():
    async def scenario():
        socket = RecordingTransport()
        transport = OneWriteTransport(socket, asyncio.get_running_loop())
        for chunk in (b"a", b"b", b"c", b"d", b"e"):
            transport.write(chunk)
            assert transport.get_write_buffer_size() <= 1
        assert socket.writes == [b"ab", b"cd"]
        await next_turns()
        assert socket.writes == [b"ab", b"cd", b"e"]

    asyncio.run(scenario())


def test_close_sends_what_is_held_first_and_abort_drops_it():
    async def scenario():
        loop = asyncio.get_running_loop()
        socket = RecordingTransport()
        transport = OneWriteTransport(socket, loop)
        transport.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        transport.close()
        assert socket.writes == [b"HTTP/1.1 400 Bad Request\r\n\r\n"] and socket.closed
        await next_turns()  # the scheduled flush finds nothing, and writes nothing after close

        socket = RecordingTransport()
        transport = OneWriteTransport(socket, loop)
        transport.write(b"partial")
        transport.abort()
        await next_turns()
        assert socket.writes == [] and socket.aborted

    asyncio.run(scenario())


def test_a_write_held_when_the_socket_closes_is_dropped_as_the_socket_would():
    async def scenario():
        socket = RecordingTransport()
        transport = OneWriteTransport(socket, asyncio.get_running_loop())
        transport.write(b"late")
        socket.close()  # the peer went away meanwhile
        await next_turns()
        assert socket.writes == []

    asyncio.run(scenario())


@pytest.mark.parametrize("body_size", [0, 20, 300_000])
def test_uvicorns_protocol_sends_an_answer_in_one_write(body_size):
    body = b"x" * body_size

    async def app(scope, receive, send):
        assert scope["type"] == "http"
        await receive()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def scenario():
        loop = asyncio.get_running_loop()
        protocol = OneWriteHttpProtocol(Config(app, log_level="warning"), ServerState(),
                                        app_state={}, _loop=loop)
        socket = RecordingTransport()
        protocol.connection_made(socket)
        protocol.data_received(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        while protocol.cycle is None or not protocol.cycle.response_complete:
            await asyncio.sleep(0)
        await next_turns()
        assert len(socket.writes) == 1
        head, _, sent_body = socket.writes[0].partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n") and sent_body == body
        protocol.connection_lost(None)

    asyncio.run(scenario())
