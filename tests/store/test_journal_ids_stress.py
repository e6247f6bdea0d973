"""The map of transfer ids (schema version 8) under everything at once. A writer stages batches
(some booking an id the journal holds, some more than once), adds to them (stage_more),
finishes them on another thread, discards some, and has some COMMITs fail; reader threads
look ids up and read the whole journal (as recovery does, handing its map over). Checked:
no id is booked twice, every batch that books one again is refused, a lookup returns only
committed entries of that id, and finds every entry whose commit returned before it began."""

from __future__ import annotations

import random
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing

import pytest

from scopay.domain.ledger import JournalEntry, Transfer
from scopay.store.sqlite import SQLiteStore

AT = 1_000_000


def entry(transfer_id: str) -> JournalEntry:
    return JournalEntry(Transfer(transfer_id, 11, 12, 1, "CNY"), AT)


class FlakyCommit:
    """The writer's connection, whose next COMMIT fails when told (as a full disk's)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db, self.fail_next = db, False

    def execute(self, sql, *args):
        if sql == "COMMIT" and self.fail_next:
            self.fail_next = False
            self._db.execute("ROLLBACK")  # as SQLite does after an I/O error in COMMIT
            raise sqlite3.OperationalError("disk I/O error (injected)")
        return self._db.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self._db, name)


@pytest.mark.parametrize("seed", range(4))
def test_the_map_under_writers_failures_and_readers(db_path, seed):
    rng = random.Random(seed)
    store = SQLiteStore(db_path)
    store._db.execute("PRAGMA synchronous=OFF")
    flaky = store._db = FlakyCommit(store._db)
    committed: dict[str, int] = {}  # id -> seq, once its commit has returned
    tried: list[str] = []
    errors: list[str] = []
    stop = threading.Event()

    def reader(k: int) -> None:
        r = random.Random(seed * 100 + k)
        while not stop.is_set():
            if r.random() < 0.02:  # a whole read, as recovery makes (it may hand its map over)
                sum(1 for _ in store.journal())
                continue
            if not tried:
                continue
            transfer_id = r.choice(tried)
            before = transfer_id in committed
            found = store.journal_entry(transfer_id)
            if found is None:
                if before:
                    errors.append(f"missed {transfer_id} committed before the lookup")
            elif found[1].transfer.id != transfer_id:
                errors.append(f"{transfer_id} found as {found[1].transfer.id}")
            else:
                found_seqs.append((transfer_id, found[0]))

    found_seqs: list[tuple[str, int]] = []
    readers = [threading.Thread(target=reader, args=(k,)) for k in range(3)]
    for thread in readers:
        thread.start()
    n = 0
    with ThreadPoolExecutor(max_workers=1) as finisher:
        for _ in range(600):
            ids = []
            for _ in range(rng.randint(1, 6)):
                if committed and rng.random() < 0.1:
                    ids.append(rng.choice(list(committed)))  # booked already
                elif tried and rng.random() < 0.1:
                    ids.append(rng.choice(tried))  # tried: booked, discarded or failed
                else:
                    n += 1
                    ids.append(f"t{n}")
            if rng.random() < 0.05:
                ids.append(ids[0])  # twice in the batch
            tried.extend(i for i in ids if i not in tried)
            again = len(set(ids)) != len(ids) or any(i in committed for i in ids)
            try:
                store.stage([entry(i) for i in ids], at_us=AT)
            except sqlite3.IntegrityError:
                if not again:
                    errors.append(f"refused {ids} that books no id again")
                continue
            if again:
                errors.append(f"staged {ids}, which books an id again")
            choice = rng.random()
            if choice < 0.1:
                store.discard()
                continue
            if choice < 0.2:
                store.stage_more(idempotency=[("B", f"k{n}-{choice}", "d", 200, b"{}", AT)],
                                 at_us=AT)
            flaky.fail_next = rng.random() < 0.1
            last = store._staged.get("journal")
            try:
                finisher.submit(store.finish).result()  # finish on another thread
            except sqlite3.OperationalError:
                continue
            for offset, transfer_id in enumerate(ids):
                committed[transfer_id] = last - len(ids) + 1 + offset
    stop.set()
    for thread in readers:
        thread.join()
    store.close()
    with closing(sqlite3.connect(db_path)) as db:
        rows = db.execute("SELECT seq, id FROM journal").fetchall()
    booked: dict[str, int] = {}
    for seq, transfer_id in rows:
        if transfer_id in booked:
            errors.append(f"{transfer_id} booked twice")
        booked[transfer_id] = seq
    assert booked == committed
    for transfer_id, seq in found_seqs:
        if booked.get(transfer_id) != seq:
            errors.append(f"lookup of {transfer_id} gave seq {seq}, not committed")
    assert not errors, errors[:10]
