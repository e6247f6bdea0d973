"""How long CPython's garbage collector stops the engine as the day's payments pile up in
memory: with the engine's survivor freezing, and without it, in the same run.

    .venv/bin/python bench/collector.py            # 600,000 payments a side (about 3 minutes)
    .venv/bin/python bench/collector.py --quick    # 20,000 a side, for a smoke test

Each side runs in a process of its own (a fresh heap) on a fresh database seeded with the SCO
reference network; the engine settles bulk requests of 1,000 payments as bench/bulk_growth.py
makes them. A callback on the collector times every collection made after the engine opened.
Per side: collections by generation, the longest stop, the collector's time and the engine's
CPU per payment, over the whole run and over its last tenth. The baseline side switches the
freezing off (SurvivorFreezing.enabled) and is otherwise the same. Without freezing, the oldest
generation is rescanned whole each time it has grown by a quarter: the longest stop grows with
the payments held. The last line is one JSON object.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from _options import parser, scratch
from bulk_growth import PER_REQUEST, START_US, requests
from scopay.cli.main import seed_reference_network
from scopay.engine.engine import SURVIVOR_FREEZING, Engine
from scopay.store.sqlite import SQLiteStore

SIDES = ("frozen", "unfrozen")
ROUND_REQUESTS = 20  # requests built, then submitted, at a time
console = Console(stderr=True)


class CollectorClock:
    """A gc callback timing each collection: (generation, seconds) of every one."""

    def __init__(self) -> None:
        self.stops: list[tuple[int, float]] = []
        self._started = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.stops.append((info["generation"], time.perf_counter() - self._started))

    def seconds(self) -> float:
        return sum(seconds for _, seconds in self.stops)


def run_side(side: str, payments: int, folder: Path) -> dict:
    """Settle `payments` on a fresh engine; what the collector cost it."""
    SURVIVOR_FREEZING.enabled = side == "frozen"
    engine = Engine(SQLiteStore(folder / f"{side}.db"))
    seed_reference_network(engine, START_US)
    clock = CollectorClock()
    gc.callbacks.append(clock)
    at = START_US + 1_000_000
    rounds = payments // (ROUND_REQUESTS * PER_REQUEST)
    cpu_s = last_cpu_s = last_gc_s = 0.0
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"settling payments, {side}", total=rounds)
        for round_number in range(rounds):
            batch = requests(ROUND_REQUESTS, round_number * ROUND_REQUESTS)
            gc_before, started = clock.seconds(), time.process_time()
            for debtor, round_payments in batch:
                engine.submit_payments(debtor, round_payments, at)
                at += 1_000
            spent = time.process_time() - started
            cpu_s += spent
            if round_number >= rounds - max(1, rounds // 10):
                last_cpu_s += spent
                last_gc_s += clock.seconds() - gc_before
            progress.advance(task)
    gc.callbacks.remove(clock)
    engine.close()
    last_payments = max(1, rounds // 10) * ROUND_REQUESTS * PER_REQUEST
    settled = rounds * ROUND_REQUESTS * PER_REQUEST
    return {
        "side": side, "payments": settled,
        "collections": [sum(1 for g, _ in clock.stops if g == generation)
                        for generation in range(3)],
        "longest_stop_ms": round(1e3 * max((s for _, s in clock.stops), default=0.0), 1),
        "gc_us_per_payment": round(1e6 * clock.seconds() / settled, 2),
        "cpu_us_per_payment": round(1e6 * cpu_s / settled, 1),
        "last_tenth_gc_us_per_payment": round(1e6 * last_gc_s / last_payments, 2),
        "last_tenth_cpu_us_per_payment": round(1e6 * last_cpu_s / last_payments, 1),
    }


def main(argv: list[str]) -> None:
    options = parser(__doc__, "20,000 payments a side", writes="the databases")
    options.add_argument("--side", choices=SIDES, help="run one side here (used by the run)")
    args = options.parse_args(argv)
    payments = 20_000 if args.quick else 600_000
    with scratch(args, "scopay-collector-") as folder:
        if args.side is not None:
            print(json.dumps(run_side(args.side, payments, Path(folder))))
            return
        results = {}
        for side in SIDES:
            command = [sys.executable, __file__, "--side", side, "--dir", folder]
            if args.quick:
                command.append("--quick")
            done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
            results[side] = json.loads(done.stdout.strip().splitlines()[-1])
    table = Table(title=f"the collector while the engine settles {payments:,} payments",
                  caption="collections: young, middle, old; pmt: payment")
    for column in ("side", "collections", "longest stop", "GC µs/pmt", "CPU µs/pmt",
                   "last 10%: GC", "last 10%: CPU"):
        table.add_column(column, justify="right")
    for side, r in results.items():
        table.add_row(side, ", ".join(map(str, r["collections"])), f"{r['longest_stop_ms']} ms",
                      f"{r['gc_us_per_payment']}", f"{r['cpu_us_per_payment']}",
                      f"{r['last_tenth_gc_us_per_payment']}",
                      f"{r['last_tenth_cpu_us_per_payment']}")
    console.print(table)
    frozen, unfrozen = results["frozen"], results["unfrozen"]
    print(json.dumps({
        "payments_per_side": payments,
        "longest_stop_ms_frozen": frozen["longest_stop_ms"],
        "longest_stop_ms_unfrozen": unfrozen["longest_stop_ms"],
        "longest_stop_ratio": round(frozen["longest_stop_ms"]
                                    / max(unfrozen["longest_stop_ms"], 0.1), 3),
        "gc_us_per_payment_frozen": frozen["gc_us_per_payment"],
        "gc_us_per_payment_unfrozen": unfrozen["gc_us_per_payment"],
        "cpu_us_per_payment_frozen": frozen["cpu_us_per_payment"],
        "cpu_us_per_payment_unfrozen": unfrozen["cpu_us_per_payment"],
        "collections_frozen": frozen["collections"],
        "collections_unfrozen": unfrozen["collections"]}))


if __name__ == "__main__":
    main(sys.argv[1:])
