"""`scopay audit verify` over what the entries' row ranges alone would miss: rows numbered
below 1 (SQLite takes any number given, and the engine reads them), acknowledgements of
mailbox notices (an edit brings a notice back as unread, or hides one), and the entries' own
numbers (a published head names its entry by number)."""

from __future__ import annotations

import sqlite3
import uuid

import pytest
from test_ledger_store_review import tamper, verify_audit  # this folder's helpers

from scopay.domain.ledger import Transfer
from scopay.domain.payment import Party, Payment

ICBK, ABOC = "ICBKCNBJ", "ABOCCNBJ"


def activity(engine, network, db_path=None) -> int:
    """A transfer, a payment, its notices, one of them acknowledged; the engine closed. The
    acknowledged notice's row (its seq), found in `db_path` if given."""
    t = network.funded_at_us
    engine.submit([Transfer("cover-1", network.icbk_cny, network.aboc_cny, 100, "CNY")], t + 1)
    engine.submit_payments(ICBK, [Payment(str(uuid.uuid4()), "i-1", "e2e", ICBK, ABOC,
                                          Party("Ли Вэй"), Party("王芳"), 200, "CNY")], t + 2)
    (number, _, _), *_ = engine.mailbox(ABOC)
    engine.acknowledge(ABOC, [number], t + 3)
    engine.close()
    if db_path is None:
        return number
    with sqlite3.connect(db_path) as db:
        return db.execute("SELECT seq FROM mailbox WHERE participant_bic = ? AND number = ?",
                          (ABOC, number)).fetchone()[0]


def test_the_activity_verifies_untouched(engine, network, db_path):
    activity(engine, network)
    assert verify_audit(db_path).ok


_FIRST = "ORDER BY seq LIMIT 1"


@pytest.mark.parametrize(("change", "named"), [
    ("INSERT INTO journal (seq, id, kind, debit_account_id, credit_account_id, amount_minor, "
     "currency, pending_id, timeout_s, linked, timestamp_us) SELECT 0, 'forged', kind, "
     "debit_account_id, credit_account_id, amount_minor, currency, pending_id, timeout_s, "
     f"linked, timestamp_us FROM journal {_FIRST}", "journal rows numbered from 0"),
    ("INSERT INTO payment_event (seq, uetr, status, at_us, reason, detail) SELECT -5, uetr, "
     f"'rejected', at_us, NULL, 'forged' FROM payment_event {_FIRST}",
     "payment_events rows numbered from -5"),
    ("INSERT INTO mailbox (seq, participant_bic, kind, uetr, status, reason, created_us) "
     "SELECT 0, participant_bic, kind, uetr, status, 'forged', created_us FROM mailbox "
     f"{_FIRST}", "mailbox rows numbered from 0"),
])
def test_a_row_numbered_below_1_is_named(engine, network, db_path, change, named):
    activity(engine, network)
    tamper(db_path, change)
    report = verify_audit(db_path)
    assert not report.ok and named in report.reason


def test_an_acknowledgement_undone_or_made_behind_scopays_back_is_named(engine, network,
                                                                        db_path):
    acknowledged = activity(engine, network, db_path)
    tamper(db_path, f"UPDATE mailbox SET acked_us = NULL WHERE seq = {acknowledged}")
    undone = verify_audit(db_path)
    tamper(db_path, f"UPDATE mailbox SET acked_us = 1 WHERE seq = {acknowledged}")
    changed = verify_audit(db_path)
    tamper(db_path, "UPDATE mailbox SET acked_us = NULL",  # back as it was, and another one
           f"UPDATE mailbox SET acked_us = 1 WHERE seq = {acknowledged + 1}")
    made = verify_audit(db_path)
    assert [r.ok for r in (undone, changed, made)] == [False, False, False]
    assert all("mailbox row" in r.reason for r in (undone, changed, made))


def test_an_entry_renumbered_is_named(engine, network, db_path):
    activity(engine, network)
    tamper(db_path, "UPDATE audit_log SET seq = seq + 100 WHERE seq = "
                    "(SELECT max(seq) FROM audit_log)")
    report = verify_audit(db_path)
    assert not report.ok and "should be" in report.reason


def test_acknowledgements_recorded_that_changed_nothing_verify(engine, network, db_path):
    """Until 2026-11-29 the store recorded every acknowledgement asked for, also those that
    changed nothing: a repeat (with a later time) and another participant's notice. A
    database written then verifies: the records are replayed as the store applied them."""
    from contextlib import closing

    from scopay.store.audit import append_entry, last_sha256

    acknowledged = activity(engine, network, db_path)
    with closing(sqlite3.connect(db_path)) as db, db:
        other = db.execute("SELECT seq FROM mailbox WHERE participant_bic != ? AND "
                           "acked_us IS NULL ORDER BY seq LIMIT 1", (ABOC,)).fetchone()[0]
        append_entry(db, last_sha256(db), network.funded_at_us + 9, {"acknowledged": [
            [acknowledged, ABOC, network.funded_at_us + 9],  # again, later: no change
            [other, ABOC, network.funded_at_us + 9],  # another's notice: no change
        ]})
    assert verify_audit(db_path).ok


_IN_ABOC = f"WHERE participant_bic = '{ABOC}'"


@pytest.mark.parametrize("changes", [
    # its notices numbered on from 1000
    (f"UPDATE mailbox SET number = number + 1000 {_IN_ABOC}",),
    # two notices of one mailbox swapping their numbers
    (f"UPDATE mailbox SET number = -1 {_IN_ABOC} AND number = 1",
     f"UPDATE mailbox SET number = 1 {_IN_ABOC} AND number = 2",
     f"UPDATE mailbox SET number = 2 {_IN_ABOC} AND number = -1"),
])
def test_a_notice_renumbered_in_its_mailbox_is_named(engine, network, db_path, changes):
    """A notice's number is not in the entries' digests; its place among its participant's
    notices is, and the number must be that place."""
    activity(engine, network)
    tamper(db_path, *changes)
    report = verify_audit(db_path)
    assert not report.ok and f"in {ABOC}'s mailbox" in report.reason
