"""What a durable bulk payment costs at the least in CPython and SQLite on this machine, beside
what scopay costs for the same requests, in the same run.

    .venv/bin/python bench/bulk_floor.py           # 6 rounds of 20,000 payments a side
    .venv/bin/python bench/bulk_floor.py --quick   # 2 rounds of 2,000, for a smoke test

Both sides take the same bulk requests, 1,000 payments of 0.01 CNY a request between two
funded demo banks, as the JSON bytes a bank sends, each side on a fresh database seeded with
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

The floor is a bound, not a design: it checks nothing, so it refuses nothing. What it shows
is how much of a goal is left for everything else. At 50,000 payments a second one core has
20 us a payment for HTTP, signatures, checks, the decision, the rows and the commit. Both
sides run on one core; SQLite lets go of Python's GIL while it steps, so a design that wrote
on a second core could hide part of the inserts (about 10 us of the floor's 23-26 here), on
a machine whose second core also runs bench/api.py's load generator. The last line is one
JSON object.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
import uuid
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from _options import parser, scratch
from scopay.api.payments import _PAYMENT_BULK_IN, _payment_from, _render
from scopay.cli.main import seed_reference_network
from scopay.domain.account import AccountKind
from scopay.engine.engine import Engine
from scopay.store.audit import append_entry, digest_rows, last_sha256
from scopay.store.sqlite import JOURNAL_INSERT, SQLiteStore, insert_rows

BANKS = ("DEMACNX0", "DEMBCNX0")
PER_REQUEST = 1000
START_US = 1_795_939_200_000_000  # 2026-11-29T00:00:00Z
GOAL_PAYMENTS_PER_S = 50_000
console = Console(stderr=True)

PAYMENT_INSERT = (
    "INSERT INTO payment (uetr, sender_bic, instruction_id, content, status, debtor_account, "
    "creditor_account, sequence, priority, latest_us, reject_by_us) VALUES (?,?,?,?,?,?,?,?,?,?,?)")
EVENT_INSERT = "INSERT INTO payment_event (uetr, status, at_us, reason, detail) VALUES (?,?,?,?,?)"
NOTICE_INSERT = ("INSERT INTO mailbox (participant_bic, kind, uetr, status, reason, created_us, "
                 "number) VALUES (?,?,?,?,?,?,?)")


def bodies(count: int, first: int) -> list[tuple[str, bytes]]:
    """(debtor, JSON body) of `count` bulk requests, built ahead (a bank's own work)."""
    built = []
    for n in range(count):
        debtor = BANKS[(first + n) % 2]
        creditor = BANKS[1] if debtor == BANKS[0] else BANKS[0]
        built.append((debtor, json.dumps({"payments": [
            {"uetr": str(uuid.uuid4()), "instruction_id": f"F{uuid.uuid4().hex[:20]}",
             "end_to_end_id": f"FLOOR-{first + n}-{i}", "debtor_agent": debtor,
             "creditor_agent": creditor, "debtor": {"name": "Floor debtor"},
             "creditor": {"name": "Floor creditor"}, "amount": "0.01", "currency": "CNY"}
            for i in range(PER_REQUEST)]}).encode()))
    return built


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
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA temp_store=MEMORY")
        self.balances = dict.fromkeys(self.accounts.values(), 10**15)
        self.numbers = {bic: self.db.execute(
            "SELECT coalesce(max(number), 0) FROM mailbox WHERE participant_bic = ?",
            (bic,)).fetchone()[0] for bic in BANKS}
        self.sha = last_sha256(self.db)
        self.sequence = 0
        self.at = START_US + 1_000_000

    def request(self, debtor: str, body: bytes) -> bytes:
        at, balances, numbers = self.at, self.balances, self.numbers
        payments, events, journal, notices, answer = [], [], [], [], []
        for p in json.loads(body)["payments"]:
            uetr, creditor = p["uetr"], p["creditor_agent"]
            debit, credit = self.accounts[debtor], self.accounts[creditor]
            balances[debit] -= 1
            balances[credit] += 1
            self.sequence += 1
            payments.append((uetr, debtor, p["instruction_id"], json.dumps(p, sort_keys=True),
                             "settled", debit, credit, self.sequence, "normal", None, None))
            events += [(uetr, "received", at, None, None), (uetr, "accepted", at, None, None),
                       (uetr, "settled", at, None, None)]
            journal.append((f"pay/{uetr}", "posted", debit, credit, 1, "CNY", None, 0, False, at))
            numbers[debtor] += 1
            numbers[creditor] += 1
            notices += [(debtor, "status_report", uetr, "settled", None, at, numbers[debtor]),
                        (creditor, "incoming_payment", uetr, "settled", None, at,
                         numbers[creditor])]
            answer.append({"uetr": uetr, "status": "settled"})
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        for sql, rows in ((PAYMENT_INSERT, payments), (EVENT_INSERT, events),
                          (JOURNAL_INSERT, journal), (NOTICE_INSERT, notices)):
            insert_rows(db, sql, rows)
        self.sha = append_entry(db, self.sha, at, {
            table: digest_rows(rows) for table, rows in (
                ("payment", payments), ("payment_events", events), ("journal", journal),
                ("mailbox", notices))})
        db.execute("COMMIT")
        self.at += 1_000
        return json.dumps(answer).encode()

    def close(self) -> None:
        self.db.close()


def main(argv: list[str]) -> None:
    options = parser(__doc__, "2 rounds of 2,000 payments a side", writes="the databases")
    options.add_argument("--rounds", type=int, default=6, help="rounds of 20,000 payments")
    args = options.parse_args(argv)
    rounds, per_round = (2, 2_000) if args.quick else (args.rounds, 20_000)
    best: dict[str, list[float]] = {"scopay": [], "floor": []}  # (cpu, wall) µs a payment
    with scratch(args, "scopay-floor-") as folder:
        sides = {"scopay": Scopay(Path(folder) / "scopay.db"),
                 "floor": Floor(Path(folder) / "floor.db")}
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("bulk requests, the two sides in turn", total=rounds)
            for round_number in range(rounds):
                requests = bodies(per_round // PER_REQUEST, round_number * per_round)
                for name, side in sides.items():  # each side its own copy of the round
                    cpu, wall = time.process_time(), time.perf_counter()
                    for debtor, body in requests:
                        side.request(debtor, body)
                    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
                    measured = (1e6 * cpu / per_round, 1e6 * wall / per_round)
                    if not best[name] or measured[1] < best[name][1]:
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
    print(json.dumps({
        "scopay_us_per_payment": round(scopay_us, 1), "floor_us_per_payment": round(floor_us, 1),
        "scopay_payments_per_s": round(1e6 / scopay_us),
        "floor_payments_per_s": round(1e6 / floor_us),
        "ratio_vs_floor": round(floor_us / scopay_us, 3),
        "floor_share_of_goal_budget": round(floor_us / budget_us, 2),
        "rounds": rounds, "payments_per_round": per_round, "quick": args.quick}))


if __name__ == "__main__":
    main(sys.argv[1:])
