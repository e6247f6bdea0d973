"""Durable transfers per second of the scopay engine on SQLite, against baselines in the same run.

    .venv/bin/python bench/ledger.py            # full run (about two minutes)
    .venv/bin/python bench/ledger.py --quick    # smaller counts, for a smoke test

Measured, each on a fresh SQLite file (WAL, synchronous=FULL) in the same folder:
- engine: Engine.submit at batch sizes 1, 100 and 8190; a uniform workload over 10,000
  accounts and a hot one (90% of debits from 10 accounts);
- naive: one SQLite transaction per transfer: read the debit balance, check, update both
  balances, insert the journal row, commit (the row-lock design of many switches);
- ceiling: the same journal rows inserted in batches of 8190 with no logic at all, by the
  same multi-row statements the store uses (scopay.store.sqlite.insert_rows); also, as a
  second figure, by executemany (one statement step per row), the ceiling as first defined.
Each figure is the median of three runs over equal slices of the workload. The last line is
one JSON object with the figures and ratios.
"""

from __future__ import annotations

import json
import random
import sqlite3
import statistics
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from _options import parser, scratch
from scopay.domain.account import Account, AccountKind
from scopay.domain.ledger import BATCH_TRANSFERS_MAX, Transfer
from scopay.domain.participant import Participant, Role, Tier
from scopay.engine.engine import Engine
from scopay.store.sqlite import (
    JOURNAL_INSERT,
    SQLiteStore,
    insert_rows,
    journal_row,
    migrations,
)

ACCOUNTS = 10_000
HOT_ACCOUNTS = 10
HOT_SHARE = 0.9
# 10,000 accounts funded with 10**13 each take the issuance account to -10**17, within the
# ledger's 18-digit balance cap (10**14 each reached it, and the last funding was refused)
FUNDING_MINOR = 10**13
ISSUANCE_ID = ACCOUNTS + 1
ROUNDS = 3  # each figure is the median of three runs over equal slices
console = Console(stderr=True)


def build_engine(path: Path) -> Engine:
    """A CNY ledger: the settlement agent's issuance account and 10,000 funded accounts."""
    engine = Engine(SQLiteStore(path))
    agent = Participant("PBOCCNBJ", "People's Bank of China", Role.SETTLEMENT_AGENT, "CN",
                        Tier.MEMBER, settlement_currency="CNY")
    bank = Participant("DEMACNX0", "Demo bank (fictional)", Role.DIRECT, "CN", Tier.MEMBER)
    engine.admit_participants([agent, bank], 1)
    # One account per participant and currency: the 10,000 accounts belong to 10,000
    # synthetic participants.
    participants = [Participant(_bic(i), f"Bench bank {i}", Role.DIRECT, "CN", Tier.MEMBER)
                    for i in range(ACCOUNTS)]
    engine.admit_participants(participants, 1)
    accounts = [Account(i + 1, _bic(i), "CNY") for i in range(ACCOUNTS)]
    accounts.append(Account(ISSUANCE_ID, "PBOCCNBJ", "CNY", AccountKind.ISSUANCE))
    engine.open_accounts(accounts, 1)
    funding = [Transfer(f"fund-{i}", ISSUANCE_ID, i + 1, FUNDING_MINOR, "CNY")
               for i in range(ACCOUNTS)]
    for start in range(0, len(funding), BATCH_TRANSFERS_MAX):
        outcomes = engine.submit(funding[start:start + BATCH_TRANSFERS_MAX], 2)
        refused = [o for o in outcomes if not o.accepted]
        assert not refused, f"funding refused: {refused[0]}"
    return engine


def _bic(index: int) -> str:
    """A distinct synthetic test BIC (location 'X0') for bench bank `index`."""
    letters = "Z"
    for _ in range(3):
        index, digit = divmod(index, 26)
        letters += chr(ord("A") + digit)
    return f"{letters}CNX0"


def make_transfers(count: int, hot: bool, seed: int, prefix: str) -> list[Transfer]:
    rng = random.Random(seed)
    transfers = []
    for n in range(count):
        if hot and rng.random() < HOT_SHARE:
            debit = rng.randrange(HOT_ACCOUNTS) + 1
        else:
            debit = rng.randrange(ACCOUNTS) + 1
        credit = rng.randrange(ACCOUNTS) + 1
        if credit == debit:
            credit = credit % ACCOUNTS + 1
        transfers.append(Transfer(f"{prefix}-{n}", debit, credit, rng.randrange(1, 100_000),
                                  "CNY"))
    return transfers


def measure_engine(engine: Engine, transfers: list[Transfer], batch: int) -> float:
    """Median of ROUNDS runs over equal slices: one slow fsync does not decide the figure."""
    rates = []
    size = len(transfers) // ROUNDS
    for round_ in range(ROUNDS):
        part = transfers[round_ * size:(round_ + 1) * size]
        started = time.perf_counter()
        for start in range(0, len(part), batch):
            outcomes = engine.submit(part[start:start + batch], 10 + round_)
            assert all(o.rejection is None for o in outcomes), "benchmark transfers must settle"
        rates.append(len(part) / (time.perf_counter() - started))
    return statistics.median(rates)


def measure_naive(path: Path, transfers: list[Transfer]) -> float:
    """One durable transaction per transfer, read-check-update: the row-lock design."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    _create_journal(db)
    db.execute("CREATE TABLE balance (id INTEGER PRIMARY KEY, posted INTEGER, floor INTEGER)")
    db.executemany("INSERT INTO balance VALUES (?, ?, 0)",
                   [(i + 1, FUNDING_MINOR) for i in range(ACCOUNTS)])
    started = time.perf_counter()
    for t in transfers:
        db.execute("BEGIN IMMEDIATE")
        posted, floor = db.execute("SELECT posted, floor FROM balance WHERE id = ?",
                                   (t.debit_account_id,)).fetchone()
        if posted - t.amount_minor < floor:
            db.execute("ROLLBACK")
            continue
        db.execute("UPDATE balance SET posted = posted - ? WHERE id = ?",
                   (t.amount_minor, t.debit_account_id))
        db.execute("UPDATE balance SET posted = posted + ? WHERE id = ?",
                   (t.amount_minor, t.credit_account_id))
        db.execute(JOURNAL_INSERT, (t.id, "posted", t.debit_account_id, t.credit_account_id,
                                    t.amount_minor, t.currency, None, 0, 0, 1))
        db.execute("COMMIT")
    rate = len(transfers) / (time.perf_counter() - started)
    db.close()
    return rate


def measure_ceiling(path: Path, transfers: list[Transfer], multi_row: bool = True) -> float:
    """The same journal rows, durably inserted in batches of 8190 by the store's multi-row
    statements (or by executemany), no logic at all."""
    from scopay.domain.ledger import JournalEntry

    rows = [journal_row(JournalEntry(t, 11)) for t in transfers]
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    _create_journal(db)
    rates = []
    size = len(rows) // ROUNDS
    for round_ in range(ROUNDS):
        part = rows[round_ * size:(round_ + 1) * size]
        started = time.perf_counter()
        for start in range(0, len(part), BATCH_TRANSFERS_MAX):
            db.execute("BEGIN IMMEDIATE")
            if multi_row:
                insert_rows(db, JOURNAL_INSERT, part[start:start + BATCH_TRANSFERS_MAX])
            else:
                db.executemany(JOURNAL_INSERT, part[start:start + BATCH_TRANSFERS_MAX])
            db.execute("COMMIT")
        rates.append(len(part) / (time.perf_counter() - started))
    db.close()
    return statistics.median(rates)


def _create_journal(db: sqlite3.Connection) -> None:
    """The journal table exactly as scopay's first migration makes it."""
    sql = migrations()[0][1]
    statement = next(s for s in sql.split(";") if "CREATE TABLE journal" in s)
    db.execute(statement)


def main() -> None:
    args = parser(__doc__, "small counts, for a smoke test",
                  writes="the database files").parse_args()
    scale = 0.1 if args.quick else 1.0
    counts = {1: int(3_000 * scale), 100: int(60_000 * scale), 8190: int(491_400 * scale)}
    naive_count = int(2_000 * scale)
    results: dict[str, float] = {}
    with (scratch(args, "scopay-bench-") as temporary,
          Progress(console=console, transient=True) as progress):
        folder = Path(temporary)
        task = progress.add_task("benchmarking", total=9)
        for workload in ("uniform", "hot"):
            engine = build_engine(folder / f"engine-{workload}.db")
            for batch, count in counts.items():
                progress.update(task, description=f"engine {workload} batch {batch}")
                transfers = make_transfers(count, workload == "hot", batch, f"{workload}{batch}")
                results[f"{workload}_batch{batch}"] = measure_engine(engine, transfers, batch)
                progress.advance(task)
            report = engine.reconcile()
            assert report.ok, report
            engine.close()
        progress.update(task, description="naive baseline")
        results["naive"] = measure_naive(folder / "naive.db",
                                         make_transfers(naive_count, False, 7, "naive"))
        progress.advance(task)
        progress.update(task, description="ceiling")
        ceiling_transfers = make_transfers(counts[8190], False, 8190, "ceil")
        results["ceiling"] = measure_ceiling(folder / "ceiling.db", ceiling_transfers)
        progress.advance(task)
        progress.update(task, description="ceiling by executemany")
        results["ceiling_executemany"] = measure_ceiling(
            folder / "ceiling-executemany.db", ceiling_transfers, multi_row=False)
        progress.advance(task)

    summary = {
        "engine_tps_batch1": round(results["uniform_batch1"]),
        "engine_tps_batch100": round(results["uniform_batch100"]),
        "engine_tps_batch8190": round(results["uniform_batch8190"]),
        "engine_hot_tps_batch8190": round(results["hot_batch8190"]),
        "naive_tps": round(results["naive"]),
        "ceiling_tps": round(results["ceiling"]),
        "ratio_vs_naive": round(results["uniform_batch8190"] / results["naive"], 1),
        "ratio_vs_ceiling": round(results["uniform_batch8190"] / results["ceiling"], 3),
        "ceiling_executemany_tps": round(results["ceiling_executemany"]),
        "ratio_vs_ceiling_executemany": round(
            results["uniform_batch8190"] / results["ceiling_executemany"], 3),
        "hot_over_uniform": round(results["hot_batch8190"] / results["uniform_batch8190"], 3),
        "transfers_batch8190": counts[8190],
        "quick": args.quick,
    }
    table = Table(title="scopay ledger on SQLite (durable: WAL, synchronous=FULL)")
    for column in ("measure", "batch", "uniform tps", "hot tps"):
        table.add_column(column, justify="right")
    for batch in counts:
        table.add_row("engine", str(batch), f"{results[f'uniform_batch{batch}']:,.0f}",
                      f"{results[f'hot_batch{batch}']:,.0f}")
    table.add_row("naive (1 txn/transfer)", "1", f"{results['naive']:,.0f}", "")
    table.add_row("ceiling (raw multi-row inserts)", "8190", f"{results['ceiling']:,.0f}", "")
    table.add_row("ceiling (raw executemany)", "8190",
                  f"{results['ceiling_executemany']:,.0f}", "")
    Console().print(table)
    print(f"engine/naive {summary['ratio_vs_naive']}x, engine/ceiling "
          f"{summary['ratio_vs_ceiling']} (vs the executemany ceiling "
          f"{summary['ratio_vs_ceiling_executemany']}), "
          f"hot/uniform {summary['hot_over_uniform']}")
    print(json.dumps(summary))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
