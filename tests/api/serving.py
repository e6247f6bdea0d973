"""Serving an app on a free loopback port, in a thread, with the HTTP protocol `scopay serve`
runs: for the API tests' live servers."""

import socket
import threading
import time

import uvicorn

from scopay.api.http_protocol import SERVER_OPTIONS

STARTUP_S_MAX = 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_serving(app, log_level: str = "warning") -> tuple[uvicorn.Server, threading.Thread, str]:
    """Serve the app on a free loopback port in a thread; return the server, thread and URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level=log_level,
                                           **SERVER_OPTIONS))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_S_MAX
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    return server, thread, f"http://127.0.0.1:{port}"
