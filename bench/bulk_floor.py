"""What a durable bulk payment costs at the least in CPython and SQLite on this machine, beside
what scopay costs for the same requests, in the same run.

    .venv/bin/python bench/bulk_floor.py           # 6 rounds of 20,000 payments a side
    .venv/bin/python bench/bulk_floor.py --quick   # 2 rounds of 2,000, for a smoke test

All sides take the same bulk requests, 1,000 payments of 0.01 CNY a request between two
funded demo banks, as the JSON bytes a bank sends, each on a fresh database seeded with
the SCO reference network (WAL, synchronous=FULL), and end with the JSON answer.

- scopay: what POST /v1/payments/bulk does but HTTP, the signature and the idempotency key:
  the body read and checked by the API's model (pydantic-core), each payment made a domain
  Payment, the engine's decision (routing, status machine, RTGS, ledger), its rows and audit
  entry committed durably, the answer rendered.
- floor: the least any design keeping scopay's records could do. The body read with
  json.loads, no check at all, the balances moved in a dict, and the same rows scopay keeps
  for a settled payment (its payment row with the payment as JSON, three status changes, the
  journal entry, the two notices) inserted as scopay inserts them, with the same schema,
  one audit entry hashing them, one commit a request; a bare answer of UETR and status.
- floor, two threads: the same, its writes on a second thread while the next request's rows
  are built (SQLite lets go of Python's GIL while it steps; the rest holds it).
- floor, two processes: the same, its writes in a second process with a GIL of its own, the
  rows sent over a pipe: the floor using both cores.

The floor is a bound, not a design: it checks nothing, so it refuses nothing. What it shows
is how much of a goal is left for everything else. At 50,000 payments a second one core has
20 us a payment for HTTP, signatures, checks, the decision, the rows and the commit (and on
a 2-core machine bench/api.py's load generator shares the other). The last line is one JSON
object.
"""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from _options import parser, scratch
from api import BANKS, payment_body
from scopay.api.payments import _PAYMENT_BULK_IN, _payment_from, _render
from scopay.cli.main import seed_reference_network
from scopay.domain.account import AccountKind
from scopay.engine.engine import Engine
from scopay.store.audit import append_entry, digest_rows, last_sha256
from scopay.store.sqlite import (
    JOURNAL_INSERT,
    MAILBOX_INSERT,
    PAYMENT_EVENT_INSERT,
    PAYMENT_INSERT,
    SQLiteStore,
    insert_rows,
)

PER_REQUEST = 1000
START_US = 1_795_939_200_000_000  # 2026-11-29T00:00:00Z
GOAL_PAYMENTS_PER_S = 50_000
console = Console(stderr=True)


def bodies(count: int, first: int) -> list[tuple[str, bytes]]:
    """(debtor, JSON body) of `count` bulk requests, built ahead (a bank's own work), with
    bench/api.py's payments."""
    built = []
    for n in range(count):
        debtor = BANKS[(first + n) % 2]
        built.append((debtor, json.dumps({"payments": [
            payment_body(debtor, (first + n) * PER_REQUEST + i)
            for i in range(PER_REQUEST)]}).encode()))
    return built


def writer_connection(path: Path | str) -> sqlite3.Connection:
    """A connection that writes as scopay's store does (WAL, each commit on disk)."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA temp_store=MEMORY")
    return db


def seeded(path: Path) -> dict[str, int]:
    """A fresh scopay database with the reference network; each demo bank's CNY account."""
    engine = Engine(SQLiteStore(path))
    seed_reference_network(engine, START_US)
    accounts = {a.owner_bic: a.id for a in engine.accounts.values() if a.owner_bic in BANKS
                and a.currency == "CNY" and a.kind == AccountKind.SETTLEMENT}
    engine.close()
    return accounts


class Scopay:
    def __init__(self, path: Path) -> None:
        seeded(path)
        self.engine = Engine(SQLiteStore(path))
        self.at = START_US + 1_000_000

    def run(self, requests: list[tuple[str, bytes]]) -> None:
        for debtor, body in requests:
            self.request(debtor, body)

    def request(self, debtor: str, body: bytes) -> bytes:
        items = _PAYMENT_BULK_IN.validate_json(body).payments
        payments = [_payment_from(item, debtor) for item in items]
        results = self.engine.submit_payments(debtor, payments, self.at)
        self.at += 1_000
        status, answer = _render(payments, results, single=False)
        assert status == 200 and all(r.status.value == "settled" for r in results)
        return answer

    def close(self) -> None:
        self.engine.close()


class Floor:
    def __init__(self, path: Path) -> None:
        self.accounts = seeded(path)
        self.db = writer_connection(path)
        self.balances = dict.fromkeys(self.accounts.values(), 10**15)
        self.numbers = {bic: self.db.execute(
            "SELECT coalesce(max(number), 0) FROM mailbox WHERE participant_bic = ?",
            (bic,)).fetchone()[0] for bic in BANKS}
        self.sha = last_sha256(self.db)
        # each payment's row number, and its place in the queue's order, as scopay's
        self.sequence = self.db.execute("SELECT coalesce(max(rowid), 0) FROM payment").fetchone()[0]
        self.at = START_US + 1_000_000

    def run(self, requests: list[tuple[str, bytes]]) -> None:
        for debtor, body in requests:
            self.write(*self.rows(debtor, body))

    def rows(self, debtor: str, body: bytes) -> tuple[int, tuple[list, ...], bytes]:
        """(time, the rows of a request, its answer): the Python side of the floor."""
        at, balances, numbers = self.at, self.balances, self.numbers
        self.at += 1_000
        payments, events, journal, notices, answer = [], [], [], [], []
        for p in json.loads(body)["payments"]:
            uetr, creditor = p["uetr"], p["creditor_agent"]
            debit, credit = self.accounts[debtor], self.accounts[creditor]
            balances[debit] -= 1
            balances[credit] += 1
            self.sequence += 1
            payments.append((self.sequence, uetr, debtor, p["instruction_id"],
                             json.dumps(p, sort_keys=True), "settled", debit, credit,
                             self.sequence, "normal", None, None))
            events += [(uetr, "received", at, None, None), (uetr, "accepted", at, None, None),
                       (uetr, "settled", at, None, None)]
            journal.append((f"pay/{uetr}", "posted", debit, credit, 1, "CNY", None, 0, False, at))
            numbers[debtor] += 1
            numbers[creditor] += 1
            notices += [(debtor, "status_report", uetr, "settled", None, at, numbers[debtor]),
                        (creditor, "incoming_payment", uetr, "settled", None, at,
                         numbers[creditor])]
            answer.append({"uetr": uetr, "status": "settled"})
        return at, (payments, events, journal, notices), json.dumps(answer).encode()

    def write(self, at: int, rows: tuple[list, ...], answer: bytes) -> bytes:
        """The rows of a request in one commit: SQLite's side of the floor."""
        payments, events, journal, notices = rows
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        for sql, rows in ((PAYMENT_INSERT, payments), (PAYMENT_EVENT_INSERT, events),
                          (JOURNAL_INSERT, journal), (MAILBOX_INSERT, notices)):
            insert_rows(db, sql, rows)
        self.sha = append_entry(db, self.sha, at, {
            table: digest_rows(rows) for table, rows in (
                ("payment", payments), ("payment_events", events), ("journal", journal),
                ("mailbox", notices))})
        db.execute("COMMIT")
        return answer

    def close(self) -> None:
        self.db.close()


class FloorOnTwoProcesses(Floor):
    """The floor with its writes in a second process, which has a GIL of its own: the rows
    of the next request are built while the other process writes this one (the rows go
    over a pipe, pickled)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.db.close()  # the writer process opens its own
        context = multiprocessing.get_context("spawn")
        self.pipe, theirs = context.Pipe()
        self.writer = context.Process(target=_write_in_process, args=(str(path), theirs))
        self.writer.start()

    def run(self, requests: list[tuple[str, bytes]]) -> None:
        waiting = 0
        for debtor, body in requests:
            rows = self.rows(debtor, body)
            if waiting:
                self.pipe.recv()
                waiting -= 1
            self.pipe.send(rows)
            waiting += 1
        for _ in range(waiting):
            self.pipe.recv()

    def close(self) -> None:
        self.pipe.send(None)
        self.writer.join()


def _write_in_process(path: str, pipe) -> None:
    """The writer process of FloorOnTwoProcesses: each request's rows in one commit."""
    floor = Floor.__new__(Floor)
    floor.db = writer_connection(path)
    floor.sha = last_sha256(floor.db)
    while (rows := pipe.recv()) is not None:
        pipe.send(floor.write(*rows))
    floor.db.close()


class FloorOnTwoThreads(Floor):
    """The floor with its writes on a second thread: the rows of the next request are built
    while SQLite writes this one (its steps let go of the GIL, its Python does not)."""

    def run(self, requests: list[tuple[str, bytes]]) -> None:
        with ThreadPoolExecutor(max_workers=1) as writer:
            written = None
            for debtor, body in requests:
                rows = self.rows(debtor, body)
                if written is not None:
                    written.result()
                written = writer.submit(self.write, *rows)
            if written is not None:
                written.result()


def main(argv: list[str]) -> None:
    options = parser(__doc__, "2 rounds of 2,000 payments a side", writes="the databases")
    options.add_argument("--rounds", type=int, default=6, help="rounds of 20,000 payments")
    args = options.parse_args(argv)
    rounds, per_round = (2, 2_000) if args.quick else (args.rounds, 20_000)
    best: dict[str, list[float]] = {}  # best (cpu, wall) µs a payment of each side
    with scratch(args, "scopay-floor-") as folder:
        sides = {"scopay": Scopay(Path(folder) / "scopay.db"),
                 "floor": Floor(Path(folder) / "floor.db"),
                 "floor, two threads": FloorOnTwoThreads(Path(folder) / "floor2.db"),
                 "floor, two processes": FloorOnTwoProcesses(Path(folder) / "floor3.db")}
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("bulk requests, the two sides in turn", total=rounds)
            for round_number in range(rounds):
                requests = bodies(per_round // PER_REQUEST, round_number * per_round)
                for name, side in sides.items():  # each side its own copy of the round
                    cpu, wall = time.process_time(), time.perf_counter()
                    side.run(requests)
                    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
                    measured = (1e6 * cpu / per_round, 1e6 * wall / per_round)
                    if name not in best or measured[1] < best[name][1]:
                        best[name] = list(measured)
                progress.advance(task)
        for side in sides.values():
            side.close()
    budget_us = 1e6 / GOAL_PAYMENTS_PER_S
    table = Table(title=f"a bulk payment, best of {rounds} rounds of {per_round:,} a side")
    for column in ("side", "CPU µs", "wall µs", "payments/s", f"of the {budget_us:.0f} µs "
                   "a payment at 50,000/s"):
        table.add_column(column, justify="right")
    for name, (cpu_us, wall_us) in best.items():
        table.add_row(name, f"{cpu_us:.1f}", f"{wall_us:.1f}", f"{1e6 / wall_us:,.0f}",
                      f"{wall_us / budget_us:.2f}×")
    console.print(table)
    scopay_us, floor_us = best["scopay"][1], best["floor"][1]
    threads_us = best["floor, two threads"][1]
    processes_us = best["floor, two processes"][1]
    print(json.dumps({
        "scopay_us_per_payment": round(scopay_us, 1), "floor_us_per_payment": round(floor_us, 1),
        "scopay_payments_per_s": round(1e6 / scopay_us),
        "floor_payments_per_s": round(1e6 / floor_us),
        "ratio_vs_floor": round(floor_us / scopay_us, 3),
        "floor_share_of_goal_budget": round(floor_us / budget_us, 2),
        "floor_two_threads_us_per_payment": round(threads_us, 1),
        "floor_two_threads_payments_per_s": round(1e6 / threads_us),
        "floor_two_processes_us_per_payment": round(processes_us, 1),
        "floor_two_processes_payments_per_s": round(1e6 / processes_us),
        "rounds": rounds, "payments_per_round": per_round, "quick": args.quick}))


if __name__ == "__main__":
    main(sys.argv[1:])
