"""What managing one payment in a long queue costs: a move to the front or back and a change
of priority, against trying the debtor's whole queue after each, each payment with the full
check (as scopay did before), in the same run.

    .venv/bin/python bench/queue_moves.py            # 100,000 queued payments (about 20 s)
    .venv/bin/python bench/queue_moves.py --quick    # 20,000

The pure domain (`Rtgs` over a `Ledger`): one bank queues N normal payments it cannot cover
to another, with one high payment of its ahead of them for the priority changes. Each
operation is timed over 50 payments spread through the queue, on the RTGS as it is and on
one whose move and priority change try the whole queue. The last line is one JSON object.
"""

from __future__ import annotations

import json
import sys
import time

from rich.console import Console
from rich.table import Table

from _options import parser
from scopay.domain.account import Account, AccountKind
from scopay.domain.ledger import Ledger, Transfer
from scopay.domain.payment import Priority
from scopay.domain.rtgs import Order, Rtgs, Step

OPERATIONS = 50
START_US = 1_000_000


class WholeQueueRetry(Rtgs):
    """The RTGS as it was: a move or a new priority tries the debtor's whole queue, each
    payment with the full check."""

    pass_uncovered_quickly = False

    def _retry_reordered(self, order: Order, normals_were_blocked: bool, now_us: int) -> Step:
        return self.release([order.debtor_account], now_us)


def queue_of(kind: type[Rtgs], size: int) -> Rtgs:
    ledger = Ledger()
    for account in (Account(1, "CBANCNBJ", "CNY", AccountKind.ISSUANCE),
                    Account(2, "PAYSCNBJ", "CNY"), Account(3, "PAIDCNBJ", "CNY")):
        ledger.open_account(account)
    assert ledger.execute([Transfer("fund", 1, 2, 50, "CNY")], START_US).outcomes[0].accepted
    rtgs = kind(ledger)
    for n in range(size):
        assert rtgs.submit(Order(f"n{n}", 2, 3, 100 + n % 7, "CNY", Priority.NORMAL),
                           START_US).queued
    return rtgs


def timed(rtgs: Rtgs, size: int, operation: str) -> float:
    """Seconds per operation, over OPERATIONS payments spread through the queue."""
    picks = [f"n{n * size // OPERATIONS}" for n in range(OPERATIONS)]
    began = time.perf_counter()
    for n, uetr in enumerate(picks):
        at = START_US + 1 + n
        if operation == "move to front":
            rtgs.move(uetr, True, at)
        elif operation == "move to back":
            rtgs.move(uetr, False, at)
        else:  # made high (it then holds the normal ones back), then normal again
            rtgs.change_priority(uetr, Priority.HIGH, at)
            rtgs.change_priority(uetr, Priority.NORMAL, at)
    elapsed = time.perf_counter() - began
    return elapsed / (OPERATIONS * (2 if operation == "priority high, then normal" else 1))


def main(argv: list[str]) -> None:
    size = 20_000 if parser(__doc__, "20,000 queued payments").parse_args(argv).quick else 100_000
    console = Console()
    table = Table(title=f"one payment managed in a queue of {size:,} normal payments")
    for column in ("operation", "scopay ms", "whole-queue retry ms", "ratio"):
        table.add_column(column, justify="right")
    results = {}
    for operation in ("move to front", "move to back", "priority high, then normal"):
        ours = timed(queue_of(Rtgs, size), size, operation)
        whole = timed(queue_of(WholeQueueRetry, size), size, operation)
        results[operation] = {"ms": round(ours * 1e3, 3), "whole_queue_ms": round(whole * 1e3, 3),
                              "ratio": round(ours / whole, 4)}
        table.add_row(operation, f"{ours * 1e3:.2f}", f"{whole * 1e3:.2f}",
                      f"{ours / whole:.3f}")
    console.print(table)
    console.print("made high, a payment not covered holds the normal ones back; made normal "
                  "again it no longer does, and they are all tried again (both ways alike): "
                  "what is left of the cost of a long queue")
    print(json.dumps({"queued": size, "operations": results,
                      "worst_ratio_vs_whole_queue": max(r["ratio"] for r in results.values())}))


if __name__ == "__main__":
    main(sys.argv[1:])
