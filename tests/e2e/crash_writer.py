"""Writes transfers through the engine as fast as it can and prints each acknowledged id.

Run by test_crash.py, which kills it with SIGKILL mid-stream. A line "ACK <id>" is printed
only after the batch holding <id> has been committed: it is the acknowledgement that the
crash must not undo. Usage: crash_writer.py DB SEED [transfers|payments]
"""

import random
import sys
import uuid

from scopay.domain.ledger import Transfer
from scopay.domain.payment import Party, Payment
from scopay.engine.engine import Engine
from scopay.store.sqlite import SQLiteStore


def write_payments(engine: Engine, rng: random.Random) -> None:
    """Payments between the demo banks of each currency, many too large to settle at once:
    they queue, and later payments release them, so notices come from every kind of step."""
    banks: dict[str, list[str]] = {}
    for account in engine.accounts.values():
        if account.kind == "settlement" and account.owner_bic.startswith("DEM"):
            banks.setdefault(account.currency, []).append(account.owner_bic)
    print("READY", flush=True)
    now_us = 1_000_000
    while True:
        currency = rng.choice(sorted(banks))
        debtor, creditor = rng.sample(banks[currency], 2)
        batch = [Payment(str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                         f"i{rng.getrandbits(48):x}", "e2e", debtor, creditor, Party("Debtor"),
                         Party("Creditor"), rng.randrange(1, 2 * 10**9), currency)
                 for _ in range(rng.choice((1, 5, 50)))]
        now_us += 1000
        results = engine.submit_payments(debtor, batch, now_us)
        sys.stdout.write("".join(f"ACK {r.uetr}\n" for r in results))
        sys.stdout.flush()


def main() -> None:
    db, seed = sys.argv[1], int(sys.argv[2])
    rng = random.Random(seed)
    engine = Engine(SQLiteStore(db))
    if sys.argv[3:] == ["payments"]:
        write_payments(engine, rng)
        return
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
