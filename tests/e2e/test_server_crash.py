"""The whole system as an operator runs it: `scopay serve` killed with SIGKILL under load by
concurrent HTTP clients; after restart every acknowledged transfer is there exactly once."""

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from scopay.client import KeyFile, ScopayClient, read_key_file

SCOPAY = Path(sys.executable).parent / "scopay"
STARTUP_S_MAX = 60
CLIENTS = 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(db: Path, port: int, *options: str) -> subprocess.Popen:
    server = subprocess.Popen([str(SCOPAY), "serve", "--db", str(db), "--port", str(port),
                               *options], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + STARTUP_S_MAX
    while True:
        assert server.poll() is None, server.stderr.read().decode()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "scopay serve did not answer /health"
        time.sleep(0.05)  # polling for readiness, not timing anything


def post_until_refused(url: str, key: KeyFile, worker: int, acknowledged: list, stop) -> None:
    with ScopayClient(url, key, timeout=10) as client:
        n = 0
        while not stop.is_set():
            transfer_id = f"w{worker}-{n}"
            body = {"id": transfer_id, "debit_account_id": 11, "credit_account_id": 12,
                    "amount": "0.01", "currency": "CNY"}
            try:
                answer = client.post("/v1/transfers", json=body)
            except httpx.TransportError:
                return  # the server is gone
            if answer.status_code == 201:
                acknowledged.append(transfer_id)
            n += 1


@pytest.mark.slow
def test_served_transfers_survive_sigkill_of_the_server(tmp_path):
    db = tmp_path / "served.db"
    subprocess.run([str(SCOPAY), "init", "--db", str(db)], check=True, capture_output=True)
    operator_key = db.with_name("operator.key")
    bank_key = tmp_path / "bank.key"
    subprocess.run([str(SCOPAY), "keys", "issue", "DEMACNX0", "--out", str(bank_key), "--db",
                    str(db)], check=True, capture_output=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(db, port)
    try:
        acknowledged: list[str] = []
        stop = threading.Event()
        workers = [threading.Thread(target=post_until_refused,
                                    args=(url, read_key_file(bank_key), w, acknowledged,
                                          stop))
                   for w in range(CLIENTS)]
        for worker in workers:
            worker.start()
        while len(acknowledged) < 300:
            assert all(w.is_alive() for w in workers)
            time.sleep(0.005)  # let the client threads run; polling, not timing
        os.kill(server.pid, signal.SIGKILL)
        stop.set()
        for worker in workers:
            worker.join()
    finally:
        server.kill()
        server.wait()

    server = start_server(db, port)
    try:
        with ScopayClient.from_key_file(url, operator_key) as client:
            # The operator names a bank's transfer by the ledger's id, the bank's own prefixed.
            missing = [t for t in acknowledged
                       if client.get(f"/v1/transfers/DEMACNX0:{t}").status_code != 200]
            report = client.post("/v1/reconcile").json()
            balance = client.get("/v1/accounts/11").json()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    assert missing == []
    assert report["ok"], report
    # Each settled transfer moved 0.01 exactly once: the balance moved by the number of
    # journal rows, which include every acknowledged one (unacknowledged ones may have landed).
    with sqlite3.connect(db) as raw:
        settled = raw.execute(
            "SELECT count(*) FROM journal WHERE id LIKE 'DEMACNX0:w%'").fetchone()[0]
    moved_minor = 10_000_000_00 - int(balance["balance"].replace(".", ""))
    assert moved_minor == settled >= len(acknowledged)


@pytest.mark.slow
def test_sigterm_stops_the_server_cleanly_with_a_checkpoint_of_the_last_entry(tmp_path):
    db = tmp_path / "stopped.db"
    subprocess.run([str(SCOPAY), "init", "--db", str(db)], check=True, capture_output=True)
    bank_key = tmp_path / "bank.key"
    subprocess.run([str(SCOPAY), "keys", "issue", "DEMACNX0", "--out", str(bank_key), "--db",
                    str(db)], check=True, capture_output=True)
    port = free_port()
    server = start_server(db, port)
    try:
        with ScopayClient(f"http://127.0.0.1:{port}", read_key_file(bank_key)) as client:
            answer = client.post("/v1/transfers", json={
                "id": "before-sigterm", "debit_account_id": 11, "credit_account_id": 12,
                "amount": "0.01", "currency": "CNY"})
            assert answer.status_code == 201, answer.text
            assert "server" not in answer.headers  # the answer does not name the software
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    finally:
        server.kill()
        server.wait()
    with sqlite3.connect(db) as raw:
        last_seq = raw.execute("SELECT max(seq) FROM journal").fetchone()[0]
        checkpoint = raw.execute("SELECT as_of_seq FROM checkpoint").fetchall()
    assert checkpoint == [(last_seq,)], "the server stopped without its checkpoint"
    assert "Traceback" not in server.stderr.read().decode()


@pytest.mark.slow
def test_the_operator_sets_each_participants_rate_limit(tmp_path):
    """`scopay serve --rate-limit 1 --rate-burst 2`: a participant's requests beyond the burst
    are refused (429, Retry-After); another participant's rate is its own."""
    db = tmp_path / "limited.db"
    subprocess.run([str(SCOPAY), "init", "--db", str(db)], check=True, capture_output=True)
    keys = {}
    for bic in ("DEMACNX0", "DEMBCNX0"):
        keys[bic] = tmp_path / f"{bic}.key"
        subprocess.run([str(SCOPAY), "keys", "issue", bic, "--out", str(keys[bic]), "--db",
                        str(db)], check=True, capture_output=True)
    port = free_port()
    server = start_server(db, port, "--rate-limit", "1", "--rate-burst", "2")
    url = f"http://127.0.0.1:{port}"
    try:
        with ScopayClient(url, read_key_file(keys["DEMACNX0"])) as a, \
                ScopayClient(url, read_key_file(keys["DEMBCNX0"])) as b:
            # the bucket gains one request a second: of six sent at once, the burst of two
            # passes and the rest are refused, unless the six took seconds
            answers = [a.get("/v1/participants/DEMACNX0") for _ in range(6)]
            other = b.get("/v1/participants/DEMBCNX0")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    statuses = [answer.status_code for answer in answers]
    assert statuses[:2] == [200, 200] and 429 in statuses[2:], statuses
    refused = answers[statuses.index(429)]
    assert int(refused.headers["retry-after"]) >= 1
    assert other.status_code == 200
