"""Writes transfers through the engine as fast as it can and prints each acknowledged id.

Run by test_crash.py, which kills it with SIGKILL mid-stream. A line "ACK <id>" is printed
only after the batch holding <id> has been committed: it is the acknowledgement that the
crash must not undo. Usage: crash_writer.py DB SEED
"""

import random
import sys

from scopay.domain.ledger import Transfer
from scopay.engine.engine import Engine
from scopay.store.sqlite import SQLiteStore


def main() -> None:
    db, seed = sys.argv[1], int(sys.argv[2])
    rng = random.Random(seed)
    engine = Engine(SQLiteStore(db))
    by_currency: dict[str, list[int]] = {}
    for account in engine.accounts.values():
        if account.kind == "settlement":
            by_currency.setdefault(account.currency, []).append(account.id)
    pools = [ids for ids in by_currency.values() if len(ids) >= 2]
    print("READY", flush=True)
    n = 0
    now_us = 1_000_000
    while True:
        batch = []
        for _ in range(rng.choice((1, 7, 100, 1000))):
            ids = rng.choice(pools)
            debit, credit = rng.sample(ids, 2)
            currency = engine.accounts[debit].currency
            batch.append(Transfer(f"s{seed}-{n}", debit, credit, rng.randrange(1, 10**9),
                                  currency, linked=rng.random() < 0.1))
            n += 1
        batch[-1] = Transfer(batch[-1].id, batch[-1].debit_account_id,
                             batch[-1].credit_account_id, batch[-1].amount_minor,
                             batch[-1].currency)
        now_us += 1000
        outcomes = engine.submit(batch, now_us)
        sys.stdout.write("".join(f"ACK {o.id}\n" for o in outcomes if o.rejection is None))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
