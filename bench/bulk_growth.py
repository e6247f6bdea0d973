"""How a bulk payment's cost in the engine and its store changes as the day's payments pile up:
rounds of bulk requests on one database, each round against the first (an empty database) in
the same run.

    .venv/bin/python bench/bulk_growth.py             # 8 rounds of 20,000 payments (a minute)
    .venv/bin/python bench/bulk_growth.py --rounds 30 # 600,000 payments: a full collection
    .venv/bin/python bench/bulk_growth.py --quick     # 3 rounds of 2,000, for a smoke test

A fresh database is seeded with the SCO reference network; the engine then settles rounds of
payments, 1,000 a request, 0.01 CNY each between two funded demo banks (alternating
directions), with UETRs and instruction ids drawn at random as banks make them. Each request
is what POST /v1/payments/bulk hands the engine: the payments decided, then their rows (the
payment, three status changes, the journal entry, two notices, the audit entry) committed
durably (WAL, synchronous=FULL). HTTP, JSON and signatures are left out (bench/api.py has
them). Per round: CPU and wall time a payment, the database's size after it, and the longest
stop of CPython's cyclic garbage collector in the round (a callback times each collection). A
cost that grows from round to round comes from the store's indexes: one keyed at random
dirties a page of its own for each row once it outgrows a commit (docs/architecture.md,
Storage); a stop that grows, from the collector, which rescans at each full collection every
object it tracks (the engine holds every payment, finished ones folded into bytes it never
tracks: engine/book.py). After the rounds, one full collection is timed with all the
payments still held. The last line is one JSON object.
"""

from __future__ import annotations

import gc
import json
import sys
import time
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


def requests(count: int, first: int) -> list[tuple[str, list[Payment]]]:
    """`count` requests of PER_REQUEST payments, built ahead (a bank's own work)."""
    built = []
    for n in range(count):
        debtor = BANKS[(first + n) % 2]
        creditor = BANKS[1] if debtor == BANKS[0] else BANKS[0]
        built.append((debtor, [
            Payment(str(uuid.uuid4()), uuid.uuid4().hex[:20], "GROWTH", debtor, creditor,
                    Party("Growth debtor"), Party("Growth creditor"), 1, "CNY")
            for _ in range(PER_REQUEST)]))
    return built


class CollectorClock:
    """A gc callback: the generation and duration of each collection since the last `take`."""

    def __init__(self) -> None:
        self.stops: list[tuple[int, float]] = []
        self._started = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.stops.append((info["generation"], time.perf_counter() - self._started))

    def take(self) -> list[tuple[int, float]]:
        stops, self.stops = self.stops, []
        return stops


def size_of(db: Path) -> int:
    return sum(path.stat().st_size for path in (db, db.with_name(db.name + "-wal"))
               if path.exists())


def main(argv: list[str]) -> None:
    options = parser(__doc__, "3 rounds of 2,000 payments", writes="the database")
    options.add_argument("--rounds", type=int, default=8, help="rounds of 20,000 payments")
    args = options.parse_args(argv)
    rounds, per_round = (3, 2_000) if args.quick else (args.rounds, 20_000)
    measured = []
    clock = CollectorClock()
    with scratch(args, "scopay-growth-") as folder:
        db = Path(folder) / "growth.db"
        engine = Engine(SQLiteStore(db))
        seed_reference_network(engine, START_US)
        at = START_US + 1_000_000
        gc.callbacks.append(clock)
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("settling rounds of bulk payments", total=rounds)
            for round_number in range(rounds):
                batch = requests(per_round // PER_REQUEST, round_number * per_round)
                clock.take()  # the collections that building the requests made
                cpu, wall = time.process_time(), time.perf_counter()
                for debtor, payments in batch:
                    results = engine.submit_payments(debtor, payments, at)
                    assert all(r.status.value == "settled" for r in results), results[0]
                    at += 1_000
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
                stops = clock.take()
                measured.append((round_number * per_round, 1e6 * cpu / per_round,
                                 1e6 * wall / per_round, size_of(db),
                                 max((seconds for _, seconds in stops), default=0.0),
                                 sum(1 for generation, _ in stops if generation == 2)))
                progress.advance(task)
        gc.callbacks.remove(clock)
        # What a full collection costs now, with every payment of the run held: the stop the
        # oldest generation's next collection makes, whenever it comes.
        started = time.perf_counter()
        gc.collect()
        full_collection_s = time.perf_counter() - started
        engine.close()
    table = Table(title=f"bulk payments through the engine, {rounds} rounds of {per_round:,}")
    for column in ("payments before", "CPU µs a payment", "wall µs a payment",
                   "vs first round", "database", "longest collector stop"):
        table.add_column(column, justify="right")
    first_cpu = measured[0][1]
    for before, cpu_us, wall_us, size, stop_s, full in measured:
        table.add_row(f"{before:,}", f"{cpu_us:.1f}", f"{wall_us:.1f}",
                      f"{cpu_us / first_cpu:.2f}", f"{size / 1e6:.0f} MB",
                      f"{1e3 * stop_s:.0f} ms" + (" (full)" if full else ""))
    console.print(table)
    total = rounds * per_round
    console.print(f"a full collection with the {total:,} payments held: "
                  f"{1e3 * full_collection_s:.0f} ms")
    print(json.dumps({
        "rounds": rounds, "payments_per_round": per_round,
        "first_round_cpu_us": round(first_cpu, 1),
        "last_round_cpu_us": round(measured[-1][1], 1),
        "growth_ratio": round(measured[-1][1] / first_cpu, 2),
        "last_round_payments_per_s": round(1e6 / measured[-1][2]),
        "database_bytes_per_payment": round(measured[-1][3] / total),
        "longest_collector_stop_ms": round(1e3 * max(m[4] for m in measured), 1),
        "first_round_longest_stop_ms": round(1e3 * measured[0][4], 1),
        "full_collections": sum(m[5] for m in measured),
        "full_collection_ms_at_end": round(1e3 * full_collection_s, 1)}))


if __name__ == "__main__":
    main(sys.argv[1:])
