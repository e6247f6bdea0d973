"""Payment rows are found by their row number, which the store keeps in memory by UETR, not
by an index of the UETR or of the instruction id (schema version 7): neither key comes in
order, and such indexes made every payment dirty pages of its own in each commit. A payment
written again (its queue state changed) changes its own row, found by that number, after a
restart, after a batch that was not kept, and in a database upgraded from version 6."""

from __future__ import annotations

import dataclasses
import sqlite3
import uuid
from contextlib import closing

from test_ledger_store_review import verify_audit  # this folder's helpers

from schema_versions import undo_payment_rows_by_number
from scopay.domain.ledger import Transfer
from scopay.domain.payment import Party, Payment, PaymentStatus
from scopay.store.payment_codec import payment_row
from scopay.store.sqlite import migrations

ICBK, ABOC = "ICBKCNBJ", "ABOCCNBJ"


def payment(amount: int, n: int) -> Payment:
    return Payment(str(uuid.uuid4()), f"rows-{n}", "e2e", ABOC, ICBK, Party("Debtor"),
                   Party("Creditor"), amount, "CNY")


def table(db_path) -> list[tuple]:
    with closing(sqlite3.connect(db_path)) as db:
        return db.execute("SELECT rowid, uetr, status, sequence FROM payment "
                          "ORDER BY rowid").fetchall()


def queued_then_settled(engine, network, first: int = 0) -> tuple[list[str], int]:
    """ABOC (a 50,000 credit line, no funds) pays three small payments and two it cannot
    cover, which queue; (the queued UETRs, a time after them)."""
    at = network.funded_at_us + 1
    small = [payment(1_000, first + n) for n in range(3)]
    large = [payment(60_000, first + 3 + n) for n in range(2)]
    results = engine.submit_payments(ABOC, [*small, *large], at)
    assert [r.status for r in results] == [PaymentStatus.SETTLED] * 3 + [
        PaymentStatus.QUEUED] * 2
    return [p.uetr for p in large], at + 1


def fund_aboc(engine, network, at: int) -> None:
    engine.submit([Transfer(f"fund-aboc-{at}", network.icbk_cny, 12, 100_000, "CNY")], at)


def test_a_payment_written_again_changes_its_own_row(engine, network, db_path):
    queued, at = queued_then_settled(engine, network)
    before = table(db_path)
    fund_aboc(engine, network, at)  # the queued two settle: their rows change in place
    after = table(db_path)
    assert [row[:2] for row in after] == [row[:2] for row in before]
    changed = {row[1]: row[2] for row in after if row not in before}
    assert changed == {uetr: "settled" for uetr in queued}
    engine.close()
    assert verify_audit(db_path).ok


def test_after_a_restart_the_row_numbers_are_read_back(engine, network, db_path,
                                                       open_engine):
    queued, at = queued_then_settled(engine, network)
    engine.close()
    reopened = open_engine()
    try:
        fund_aboc(reopened, network, at)
        assert {uetr: status for _, uetr, status, _ in table(db_path)
                if uetr in queued} == dict.fromkeys(queued, "settled")
        assert len(table(db_path)) == 5
    finally:
        reopened.close()
    assert verify_audit(db_path).ok
    assert verify_audit(db_path).ok


def test_a_batch_not_kept_takes_no_row_numbers(engine, network, db_path):
    """A staged batch rolled back (discard): its new payment's number is not kept, and its
    UETR is not taken for one with a row."""
    queued_then_settled(engine, network)
    record = engine.payment(table(db_path)[-1][1])
    never = dataclasses.replace(record, payment=dataclasses.replace(
        record.payment, uetr=str(uuid.uuid4()), instruction_id="never-kept"))
    engine.store.stage(payments=[payment_row(never)], at_us=network.funded_at_us + 5)
    engine.store.discard()
    queued_then_settled(engine, network, first=10)  # numbered on from the last kept row
    assert [row[0] for row in table(db_path)] == list(range(1, 11))
    assert never.payment.uetr not in {row[1] for row in table(db_path)}
    # now it is new
    engine.store.commit(payments=[payment_row(never)], at_us=network.funded_at_us + 6)
    assert table(db_path)[-1][:2] == (11, never.payment.uetr)
    engine.close()


def test_a_database_of_version_6_keeps_its_row_numbers_and_upgrades(engine, network, db_path,
                                                                    open_engine):
    queued, at = queued_then_settled(engine, network)
    engine.close()
    with closing(sqlite3.connect(db_path)) as db:
        undo_payment_rows_by_number(db)
        db.commit()
        indexes = {name for (name,) in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'payment'")}
    assert any(name.startswith("sqlite_autoindex_payment") for name in indexes)  # version 6
    before = table(db_path)
    reopened = open_engine()  # a writer upgrades the schema
    try:
        assert table(db_path) == before
        with closing(sqlite3.connect(db_path)) as db:
            assert {name for (name,) in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND "
                "tbl_name = 'payment'")} == {"payment_open"}
        fund_aboc(reopened, network, at)
        assert {uetr: status for _, uetr, status, _ in table(db_path)
                if uetr in queued} == dict.fromkeys(queued, "settled")
    finally:
        reopened.close()
    assert verify_audit(db_path).ok


def test_an_operators_view_on_payments_does_not_stop_the_upgrade(engine, network, db_path,
                                                                 open_engine):
    """Version 7 rebuilds the payment table; a view of the operator's own on it (a report)
    stays as written and reads the new table (found by review: the upgrade failed, and with
    it every writer's start)."""
    queued, _ = queued_then_settled(engine, network)
    engine.close()
    with closing(sqlite3.connect(db_path)) as db, db:
        undo_payment_rows_by_number(db)
        db.execute("CREATE VIEW waiting AS SELECT uetr FROM payment WHERE status = 'queued'")
    reopened = open_engine()
    try:
        with closing(sqlite3.connect(db_path)) as db:
            assert {uetr for (uetr,) in db.execute("SELECT uetr FROM waiting")} == set(queued)
            assert db.execute("SELECT max(version) FROM schema_migration").fetchone() == (
                max(version for version, _ in migrations()),)
    finally:
        reopened.close()


def test_the_first_payment_after_a_start_reads_no_row_numbers_again(engine, network,
                                                                     open_engine):
    """Recovery reads every payment row: the store notes their numbers on the way, so the
    first payment written after a start does not read them all a second time (found by
    review: 328 ms at 400,000 payments, inside the first commit)."""
    queued, at = queued_then_settled(engine, network)
    engine.close()
    reopened = open_engine()
    statements: list[str] = []
    reopened.store._db.set_trace_callback(statements.append)
    try:
        fund_aboc(reopened, network, at)  # the queued two settle: rows written again
    finally:
        reopened.store._db.set_trace_callback(None)
        reopened.close()
    assert statements, "the writer's statements are traced"
    assert not [text for text in statements if "rowid, uetr FROM payment" in text]


def test_a_read_of_the_payments_older_than_a_commit_hands_over_no_row_numbers(
        engine, network, db_path, open_engine):
    """payments() notes each UETR's number as it reads: a batch that appends payments while
    it reads (its snapshot older) must not leave the writer without their numbers, or the
    next write of one would append it a second row."""
    queued_then_settled(engine, network)
    engine.close()
    reopened = open_engine()
    store = reopened.store
    try:
        store._forget_numbers()  # as after a failed batch: the numbers are to be read again
        reading = store.payments()
        next(reading)  # its snapshot taken
        newer = dataclasses.replace(reopened.payment(table(db_path)[0][1]))
        newer.payment = dataclasses.replace(newer.payment, uetr=str(uuid.uuid4()),
                                            instruction_id="newer")
        store.commit(payments=[payment_row(newer)], at_us=network.funded_at_us + 10)
        store._forget_numbers()  # a batch failed meanwhile: the numbers are unknown again
        list(reading)  # read to its end, from its older snapshot
        # written again
        store.commit(payments=[payment_row(newer)], at_us=network.funded_at_us + 11)
        rows = [row for row in table(db_path) if row[1] == newer.payment.uetr]
        assert len(rows) == 1
    finally:
        reopened.close()
