"""What a history costs the engine: start-up time and memory per payment kept, against reading
the same rows with SQLite alone in the same run.

    .venv/bin/python bench/recovery.py            # 200,000 payments (about two minutes)
    .venv/bin/python bench/recovery.py --quick    # 20,000 payments, for a smoke test

A fresh database is seeded with the SCO reference network; the engine then settles the
payments (1,000 a request, 0.01 CNY each between two funded demo banks, alternating
directions), each with its journal entry, three status changes and two notices, as the API
would. Measured, each in a fresh Python process:
- start-up: opening the engine on that database (recovery: journal replay, every payment
  read back with its history, queues and limit positions rebuilt), and the resident memory it
  then holds beyond an engine opened on the seeded network alone;
- baseline: reading every row recovery reads (journal, payments, payment events) with the
  sqlite3 module and nothing else.
The last line is one JSON object. Memory is read from /proc (Linux).
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from _options import parser, scratch
from scopay.cli.main import seed_reference_network
from scopay.domain.payment import Party, Payment
from scopay.engine.engine import Engine
from scopay.store.sqlite import SQLiteStore

BANKS = ("DEMACNX0", "DEMBCNX0")
PER_REQUEST = 1000
START_US = 1_795_939_200_000_000  # 2026-11-29T00:00:00Z
console = Console(stderr=True)

# Run in a fresh interpreter: start-up time and the memory the engine holds once open.
OPEN = """
import os, sys, time
from scopay.engine.engine import Engine
from scopay.store.sqlite import SQLiteStore
def resident():
    with open("/proc/self/statm") as f:  # Linux: resident pages
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
before = resident()
started = time.perf_counter()
engine = Engine(SQLiteStore(sys.argv[1], lock=False))
seconds = time.perf_counter() - started
print(seconds, resident() - before, len(engine.payments))
"""

# The same rows recovery reads, read with sqlite3 alone.
READ = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1])
started = time.perf_counter()
rows = 0
for table in ("journal", "payment_event", "payment"):
    for _ in db.execute(f"SELECT * FROM {table}"):
        rows += 1
print(time.perf_counter() - started, rows)
"""


def build(db: Path, payments: int) -> None:
    engine = Engine(SQLiteStore(db))
    seed_reference_network(engine, START_US)
    at = START_US + 1_000_000
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("settling payments", total=payments)
        for first in range(0, payments, PER_REQUEST):
            debtor = BANKS[(first // PER_REQUEST) % 2]
            creditor = BANKS[1] if debtor == BANKS[0] else BANKS[0]
            batch = [Payment(str(uuid.uuid4()), f"R{n}", f"RECOVERY-{n}", debtor, creditor,
                             Party("Recovery debtor"), Party("Recovery creditor"), 1, "CNY")
                     for n in range(first, min(first + PER_REQUEST, payments))]
            results = engine.submit_payments(debtor, batch, at)
            assert all(r.status.value == "settled" for r in results), results[0]
            at += 1_000
            progress.advance(task, len(batch))
    engine.close()


def fresh(script: str, db: Path) -> list[str]:
    done = subprocess.run([sys.executable, "-c", script, str(db)], capture_output=True,
                          text=True, check=True, timeout=3600)
    return done.stdout.split()


def main(argv: list[str]) -> None:
    args = parser(__doc__, "20,000 payments", writes="the databases").parse_args(argv)
    payments = 20_000 if args.quick else 200_000
    with scratch(args, "scopay-recovery-") as folder:
        empty, full = Path(folder) / "seeded.db", Path(folder) / "history.db"
        build(empty, 0)
        build(full, payments)
        console.print("opening the engine on each database in a fresh process ...")
        empty_s, empty_bytes, _ = fresh(OPEN, empty)
        start_s, start_bytes, kept = fresh(OPEN, full)
        read_s, rows = fresh(READ, full)
    start_s, read_s = float(start_s), float(read_s)
    start_us = 1e6 * (start_s - float(empty_s)) / payments
    memory = (int(start_bytes) - int(empty_bytes)) / payments
    table = Table(title=f"recovery of {payments:,} settled payments")
    for column in ("measure", "figure"):
        table.add_column(column)
    table.add_row("engine start-up", f"{start_s:.2f} s ({start_us:.1f} µs a payment)")
    table.add_row("sqlite3 reading the same rows", f"{read_s:.2f} s ({int(rows):,} rows)")
    table.add_row("start-up / reading", f"{start_s / read_s:.1f}")
    table.add_row("memory held a payment", f"{memory:,.0f} bytes")
    console.print(table)
    assert int(kept) == payments
    print(json.dumps({"payments": payments, "startup_s": round(start_s, 3),
                      "startup_us_per_payment": round(start_us, 1),
                      "read_rows_s": round(read_s, 3),
                      "ratio_vs_read": round(start_s / read_s, 2),
                      "memory_bytes_per_payment": round(memory)}))


if __name__ == "__main__":
    main(sys.argv[1:])
