"""What a camt.053 statement page costs, against reading the same account's rows of that day
with SQLite alone in the same run.

    .venv/bin/python bench/statements.py            # 3 days of 200,000 transfers (about 2 min)
    .venv/bin/python bench/statements.py --quick    # 3 days of 20,000, for a smoke test

An in-process engine on a fresh SQLite file, three banks of one currency: each day, the
first bank pays the second one transfer in a hundred and the central bank the others, so
the first bank's account is busy (every transfer) and the second's quiet (one in a hundred).
Measured for the first day, two days of traffic after it:
- a page: what `GET /v1/accounts/{id}/statement?day=&page=` builds (its balances worked back
  from now, its entries, the camt.053 written), for the first, a middle and the last page;
- baseline: selecting that page's journal rows of the account with the sqlite3 module.
The last line is one JSON object.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
import tracemalloc
from datetime import UTC, date, datetime
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from _options import parser, scratch
from scopay.api import iso as api_iso
from scopay.domain.account import Account, AccountKind
from scopay.domain.ledger import Transfer
from scopay.domain.participant import Participant, Role, Tier
from scopay.engine.engine import Engine
from scopay.store.sqlite import SQLiteStore

FIRST_DAY = date(2026, 11, 1)
DAY_US = 86_400_000_000
BATCH = 8_000
BUSY, QUIET, CENTRAL = 11, 12, 1


def day_start_us(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 1_000_000


def build(path: Path, per_day: int, days: int, console: Console) -> Engine:
    engine = Engine(SQLiteStore(path))
    for participant in (
            Participant("PBOCCNBJ", "Central", Role.SETTLEMENT_AGENT, "CN", Tier.MEMBER,
                        settlement_currency="CNY"),
            Participant("ICBKCNBJ", "Busy", Role.DIRECT, "CN", Tier.MEMBER),
            Participant("ABOCCNBJ", "Quiet", Role.DIRECT, "CN", Tier.MEMBER)):
        engine.admit_participant(participant, 1)
    for account in (Account(CENTRAL, "PBOCCNBJ", "CNY", AccountKind.ISSUANCE),
                    Account(BUSY, "ICBKCNBJ", "CNY"), Account(QUIET, "ABOCCNBJ", "CNY")):
        engine.open_account(account, 1)
    start = day_start_us(FIRST_DAY)
    engine.submit([Transfer("fund", CENTRAL, BUSY, 10**12, "CNY")], start + 1)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("journal", total=per_day * days)
        for day in range(days):
            at = start + day * DAY_US + 1_000
            for first in range(0, per_day, BATCH):
                batch = [Transfer(f"t{day}-{n}", BUSY, QUIET if n % 100 == 0 else CENTRAL, 1,
                                  "CNY") for n in range(first, min(per_day, first + BATCH))]
                outcomes = engine.submit(batch, at + first)
                assert all(o.rejection is None for o in outcomes)
                progress.advance(task, len(batch))
    return engine


def page_rows(path: Path, account: int, page: int) -> float:
    """Seconds to select the page's journal rows of the account with sqlite3 alone."""
    start_us = day_start_us(FIRST_DAY)
    with sqlite3.connect(path) as db:
        began = time.perf_counter()
        rows = db.execute(
            "SELECT * FROM journal WHERE timestamp_us >= ? AND timestamp_us < ? AND "
            "(debit_account_id = ? OR credit_account_id = ?) ORDER BY seq LIMIT ? OFFSET ?",
            (start_us, start_us + DAY_US, account, account, api_iso.STATEMENT_PAGE_ENTRIES,
             (page - 1) * api_iso.STATEMENT_PAGE_ENTRIES)).fetchall()
        elapsed = time.perf_counter() - began
    assert rows
    return elapsed


def main(argv: list[str]) -> None:
    args = parser(__doc__, "20,000 transfers a day", writes="the database").parse_args(argv)
    per_day, days = (20_000 if args.quick else 200_000), 3
    console = Console()
    with scratch(args, "scopay-statements-") as folder:
        run(Path(folder) / "bench.db", per_day, days, console)


def run(path: Path, per_day: int, days: int, console: Console) -> None:
    engine = build(path, per_day, days, console)
    pages = -(-per_day // api_iso.STATEMENT_PAGE_ENTRIES)
    cases = [("quiet", QUIET, 1), ("busy", BUSY, 1), ("busy", BUSY, pages // 2),
             ("busy", BUSY, pages)]
    table = Table(title=f"statement of {FIRST_DAY}, {engine.journal_count:,} journal entries "
                        f"over {days} days")
    for column in ("account", "page", "scopay s", "sqlite3 rows s", "ratio", "XML bytes",
                   "peak traced MB"):
        table.add_column(column, justify="right")
    results = []
    for label, account, page in cases:
        runs = []
        for _ in range(3):
            began = time.perf_counter()
            body = api_iso._statement(engine, engine.accounts[account], FIRST_DAY, page)
            runs.append(time.perf_counter() - began)
        ours = min(runs)
        tracemalloc.start()  # a run of its own: tracing slows what it traces
        api_iso._statement(engine, engine.accounts[account], FIRST_DAY, page)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        bare = min(page_rows(path, account, page) for _ in range(3))
        results.append({"account": label, "page": page, "seconds": round(ours, 4),
                        "bare_seconds": round(bare, 4), "ratio": round(ours / bare, 1),
                        "xml_bytes": len(body), "peak_mb": round(peak / 1e6, 1)})
        table.add_row(label, str(page), f"{ours:.3f}", f"{bare:.3f}", f"{ours / bare:.1f}",
                      f"{len(body):,}", f"{peak / 1e6:.1f}")
    engine.close()
    console.print(table)
    console.print("scopay's page (best of 3) = balances worked back from now over two later "
                  "days, the page's entries, the camt.053 written")
    print(json.dumps({"journal_entries": engine.journal_count, "per_day": per_day,
                      "page_entries": api_iso.STATEMENT_PAGE_ENTRIES,
                      "worst_page_s": max(r["seconds"] for r in results),
                      "worst_ratio_vs_sqlite3": max(r["ratio"] for r in results),
                      "pages": results}))


if __name__ == "__main__":
    main(sys.argv[1:])
