"""The HTTP protocol `scopay serve` runs sends an answer's head and body in one write, holds
back at most one write, never reorders, and drops nothing it should send."""

import asyncio
import json

import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from scopay.api import http_protocol
from scopay.api.http_protocol import JOIN_BYTES_MAX, OneWriteHttpProtocol, OneWriteTransport


class RecordingTransport(asyncio.Transport):
    """What reached the socket, write by write (writelines, one writev, counts as one)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.joined_by_writelines = 0
        self.writes_after_close = 0  # counted, not asserted: a flush runs in a loop callback
        self.closed = False
        self.aborted = False
        self.protocol = None

    def write(self, data) -> None:
        if self.closed:
            self.writes_after_close += 1
        self.writes.append(bytes(data))

    def writelines(self, lines) -> None:
        self.joined_by_writelines += 1
        self.write(b"".join(lines))

    def write_eof(self) -> None:
        self.writes.append(b"<end of output>")

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


def held_over() -> tuple[RecordingTransport, OneWriteTransport]:
    """A socket's recording, and a OneWriteTransport over it on the running loop."""
    socket = RecordingTransport()
    return socket, OneWriteTransport(socket, asyncio.get_running_loop())


async def next_turns(count: int = 2) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


def test_two_writes_in_one_turn_leave_as_one_in_order():
    async def scenario():
        socket, transport = held_over()
        transport.write(b"HTTP/1.1 201 Created\r\n\r\n")
        transport.write(b'{"status":"settled"}')
        assert socket.writes == [b'HTTP/1.1 201 Created\r\n\r\n{"status":"settled"}']
        await next_turns()
        assert len(socket.writes) == 1  # the turn's end found nothing held

    asyncio.run(scenario())


def test_a_lone_write_leaves_when_the_turn_ends():
    async def scenario():
        socket, transport = held_over()
        transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        assert socket.writes == []
        assert transport.get_write_buffer_size() == len(b"HTTP/1.1 100 Continue\r\n\r\n")
        await next_turns()
        assert socket.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]

    asyncio.run(scenario())


def test_at_most_one_write_is_held_and_order_is_kept():
    async def scenario():
        socket, transport = held_over()
        for chunk in (b"a", b"b", b"c", b"d", b"e"):
            transport.write(chunk)
            assert transport.get_write_buffer_size() <= 1
        assert socket.writes == [b"ab", b"cd"]
        await next_turns()
        assert socket.writes == [b"ab", b"cd", b"e"]

    asyncio.run(scenario())


def test_close_sends_what_is_held_first_and_abort_drops_it():
    async def scenario():
        socket, transport = held_over()
        transport.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        transport.close()
        assert socket.writes == [b"HTTP/1.1 400 Bad Request\r\n\r\n"] and socket.closed
        await next_turns()  # the scheduled flush finds nothing, and writes nothing after close
        assert socket.writes_after_close == 0

        socket, transport = held_over()
        transport.write(b"partial")
        transport.abort()
        await next_turns()
        assert socket.writes == [] and socket.aborted

    asyncio.run(scenario())


def test_a_write_held_when_the_socket_closes_is_dropped_as_the_socket_would():
    async def scenario():
        socket, transport = held_over()
        transport.write(b"late")
        socket.close()  # the peer went away meanwhile
        await next_turns()
        assert socket.writes == [] and socket.writes_after_close == 0

    asyncio.run(scenario())


def test_write_eof_and_writelines_keep_the_order():
    async def scenario():
        socket, transport = held_over()
        transport.writelines([b"HTTP/1.1 200 OK\r\n", b"\r\n"])
        transport.write_eof()
        assert socket.writes == [b"HTTP/1.1 200 OK\r\n\r\n", b"<end of output>"]

    asyncio.run(scenario())


def serving(app, server_state: ServerState | None = None
            ) -> tuple[OneWriteHttpProtocol, RecordingTransport]:
    """uvicorn's protocol over a OneWriteTransport, on the running loop, for `app` (one
    connection of the server whose `server_state` is given, else of a server of its own)."""
    protocol = OneWriteHttpProtocol(Config(app, log_level="warning"),
                                    server_state or ServerState(), app_state={},
                                    _loop=asyncio.get_running_loop())
    socket = RecordingTransport()
    protocol.connection_made(socket)
    return protocol, socket


async def answered(protocol: OneWriteHttpProtocol) -> None:
    async def complete() -> None:
        while protocol.cycle is None or not protocol.cycle.response_complete:
            await asyncio.sleep(0)

    await asyncio.wait_for(complete(), timeout=10)


def answering(body: bytes):
    async def app(scope, receive, send):
        assert scope["type"] == "http"
        await receive()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return app


@pytest.mark.parametrize("body_size", [0, 20, 300_000])
def test_uvicorns_protocol_sends_an_answer_in_one_write(body_size):
    body = b"x" * body_size

    async def scenario():
        protocol, socket = serving(answering(body))
        protocol.data_received(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await answered(protocol)
        await next_turns()
        assert len(socket.writes) == 1
        head, _, sent_body = socket.writes[0].partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n") and sent_body == body
        # a large body is handed over with the head, not copied into one buffer with it
        assert socket.joined_by_writelines == (len(socket.writes[0]) > JOIN_BYTES_MAX)
        protocol.connection_lost(None)

    asyncio.run(scenario())


def test_an_answer_held_when_the_client_ends_its_input_is_sent_before_the_close():
    """A HEAD answer is a lone write, held until the loop's next callbacks; the client's end
    of input may be read before them, and the transport then closes itself."""
    ended: list = []

    async def app(scope, receive, send):
        await receive()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})
        protocol, socket = ended[0]
        assert socket.writes == []  # held
        if not protocol.eof_received():  # the end of input, read now: the transport closes
            socket.close()

    async def scenario():
        protocol, socket = serving(app)
        ended.append((protocol, socket))
        protocol.data_received(b"HEAD /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await answered(protocol)
        await next_turns()
        assert len(socket.writes) == 1 and socket.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
        assert socket.closed and socket.writes_after_close == 0

    asyncio.run(scenario())


def test_a_100_continue_leaves_before_the_body_it_asks_for_arrives():
    """A client that sends `Expect: 100-continue` waits for it before sending the body: the
    lone interim answer must not wait for a next write."""
    bodies: list[bytes] = []

    async def app(scope, receive, send):
        bodies.append((await receive())["body"])
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    async def scenario():
        protocol, socket = serving(app)
        protocol.data_received(b"POST /v1/payments HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                               b"Expect: 100-continue\r\nContent-Length: 4\r\n\r\n")
        await next_turns(4)
        assert socket.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"] and bodies == []
        protocol.data_received(b"{}{}")
        await answered(protocol)
        await next_turns()
        assert bodies == [b"{}{}"]
        assert len(socket.writes) == 2 and socket.writes[1].startswith(b"HTTP/1.1 200 OK\r\n")

    asyncio.run(scenario())


def test_pipelined_requests_are_answered_in_order_each_in_one_write():
    async def app(scope, receive, send):
        await receive()
        body = scope["path"].encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def scenario():
        protocol, socket = serving(app)
        protocol.data_received(b"GET /first HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                               b"GET /second HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")

        async def both_answered() -> None:
            while len(socket.writes) < 2:
                await asyncio.sleep(0)

        await asyncio.wait_for(both_answered(), timeout=10)
        assert [write.endswith(path) for write, path in
                zip(socket.writes, (b"/first", b"/second"), strict=True)] == [True, True]
        assert all(write.startswith(b"HTTP/1.1 200 OK\r\n") for write in socket.writes)

    asyncio.run(scenario())


async def closed(socket: RecordingTransport, feed=None) -> None:
    """Until the server closes the connection (feeding it a byte a turn, if given)."""
    async def until_closed() -> None:
        while not socket.closed:
            if feed is not None:
                feed()
            await asyncio.sleep(0.01)

    await asyncio.wait_for(until_closed(), timeout=10)


def test_a_request_head_over_the_limit_is_answered_431_and_the_connection_closed():
    seen: list = []

    async def app(scope, receive, send):
        seen.append(scope["path"])

    async def scenario():
        protocol, socket = serving(app)
        protocol.data_received(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: ")
        for _ in range(64):  # one header that never ends: 512 KiB
            if socket.closed:
                break
            protocol.data_received(b"x" * 8192)
        await next_turns()
        assert socket.closed
        assert len(socket.writes) == 1
        assert socket.writes[0].startswith(b"HTTP/1.1 431 ")
        assert seen == []

    asyncio.run(scenario())


@pytest.mark.parametrize("head_kib", [65, 120, 250])
def test_a_request_head_over_the_limit_in_one_read_is_answered_431(head_kib):
    seen: list = []

    async def app(scope, receive, send):
        seen.append(scope["path"])

    async def scenario():
        protocol, socket = serving(app)
        protocol.data_received(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: "
                               + b"x" * (head_kib * 1024) + b"\r\n\r\n")
        await next_turns()
        assert socket.closed and len(socket.writes) == 1
        assert socket.writes[0].startswith(b"HTTP/1.1 431 ")
        assert seen == []
        head, _, body = socket.writes[0].partition(b"\r\n\r\n")
        assert b"content-type: application/problem+json" in head.split(b"\r\n")
        assert f"content-length: {len(body)}".encode() in head.split(b"\r\n")
        problem = json.loads(body)
        assert problem["status"] == 431 and "over 65536 bytes" in problem["detail"]

    asyncio.run(scenario())


def test_a_request_head_just_under_the_limit_is_served():
    async def scenario():
        protocol, socket = serving(answering(b"ok"))
        protocol.data_received(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: "
                               + b"x" * 60_000 + b"\r\n\r\n")
        await answered(protocol)
        await next_turns()
        assert not socket.closed and socket.writes[0].startswith(b"HTTP/1.1 200 ")

    asyncio.run(scenario())


def test_a_head_sent_too_slowly_or_never_closes_the_connection(monkeypatch):
    monkeypatch.setattr(http_protocol, "HEAD_TIMEOUT_S", 0.05)
    seen: list = []

    async def app(scope, receive, send):
        seen.append(scope["path"])

    async def scenario():
        _, silent = serving(app)  # connects and never sends
        await closed(silent)
        protocol, trickled = serving(app)
        head = iter(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Pad: x\r\n" * 1000)
        await closed(trickled, lambda: protocol.data_received(bytes([next(head)])))
        assert next(head, None) is not None  # closed before the head was in: not put off
        assert silent.writes == trickled.writes == [] and seen == []

    asyncio.run(scenario())


def test_a_body_sent_too_slowly_closes_the_connection_and_the_route_sees_the_client_gone(
        monkeypatch):
    monkeypatch.setattr(http_protocol, "BODY_TIMEOUT_S", 0.05)
    received: list = []

    async def app(scope, receive, send):
        while True:
            message = await receive()
            received.append(message["type"])
            if message["type"] != "http.request" or not message.get("more_body"):
                return

    async def scenario():
        protocol, socket = serving(app)
        protocol.data_received(b"POST /v1/payments HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                               b"Content-Length: 100\r\n\r\n{")
        await closed(socket)
        protocol.connection_lost(None)
        await next_turns(4)
        assert received[-1] == "http.disconnect" and socket.writes == []

    asyncio.run(scenario())


def test_a_request_that_arrives_whole_sets_no_deadline():
    async def scenario():
        protocol, socket = serving(answering(b"ok"))
        protocol.data_received(b"POST /v1/payments HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                               b"Content-Length: 2\r\n\r\n{}")
        await answered(protocol)
        assert protocol._deadline is None  # neither deadline was set for this request
        assert not socket.closed and len(socket.writes) == 1

    asyncio.run(scenario())


def test_one_client_address_holds_at_most_its_share_of_connections(monkeypatch):
    monkeypatch.setattr(http_protocol, "CONNECTIONS_PER_CLIENT_MAX", 3)

    async def scenario():
        state = ServerState()

        def connect() -> tuple[OneWriteHttpProtocol, RecordingTransport]:
            return serving(answering(b"ok"), state)

        connections = [connect() for _ in range(4)]  # all from 127.0.0.1
        assert [socket.closed for _, socket in connections] == [False, False, False, True]
        connections[3][0].connection_lost(None)
        connections[0][0].connection_lost(None)  # one of the three goes: room for another
        assert not connect()[1].closed

    asyncio.run(scenario())
