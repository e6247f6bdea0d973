"""Databases as an older scopay left them, for tests of the upgrade a writer applies."""

from __future__ import annotations

import sqlite3
import zlib

import pytest


def undo_mailbox_numbers(db: sqlite3.Connection) -> None:
    """Take a database of schema version 5 back to version 4: mailbox rows without their
    numbers, the unread index by seq."""
    if sqlite3.sqlite_version_info < (3, 35):  # scopay itself needs 3.33
        pytest.skip(f"undoing version 5 drops a column, which SQLite {sqlite3.sqlite_version} "
                    "cannot (3.35 can)")
    db.execute("DROP INDEX mailbox_acked")
    db.execute("DROP INDEX mailbox_unacked")
    db.execute("ALTER TABLE mailbox DROP COLUMN number")
    db.execute("CREATE INDEX mailbox_unacked ON mailbox (participant_bic, seq) "
               "WHERE acked_us IS NULL")
    db.execute("DELETE FROM schema_migration WHERE version = 5")


def undo_compressed_answers(db: sqlite3.Connection) -> None:
    """Take a database of schema version 6 back to version 5: every kept answer stored as
    given (inflated where version 6 deflated it), no body_encoding column."""
    if sqlite3.sqlite_version_info < (3, 35):  # scopay itself needs 3.33
        pytest.skip(f"undoing version 6 drops a column, which SQLite {sqlite3.sqlite_version} "
                    "cannot (3.35 can)")
    for rowid, body in db.execute("SELECT rowid, response_body FROM idempotency_record WHERE "
                                  "body_encoding = 'deflate'").fetchall():
        db.execute("UPDATE idempotency_record SET response_body = ? WHERE rowid = ?",
                   (zlib.decompress(body), rowid))
    db.execute("ALTER TABLE idempotency_record DROP COLUMN body_encoding")
    db.execute("DELETE FROM schema_migration WHERE version = 6")


def undo_payment_rows_by_number(db: sqlite3.Connection) -> None:
    """Take a database of schema version 7 back to version 6: payment rows under a UNIQUE
    index of their UETR and of their sender's instruction id, events referring to them, row
    numbers as they were."""
    columns = ("uetr, sender_bic, instruction_id, content, status, debtor_account, "
               "creditor_account, sequence, priority, latest_us, reject_by_us")
    db.executescript(f"""
        CREATE TABLE payment_old (
            uetr TEXT PRIMARY KEY, sender_bic TEXT NOT NULL, instruction_id TEXT NOT NULL,
            content TEXT NOT NULL, status TEXT NOT NULL, debtor_account INTEGER,
            creditor_account INTEGER, sequence INTEGER NOT NULL, priority TEXT NOT NULL,
            latest_us INTEGER, reject_by_us INTEGER, UNIQUE (sender_bic, instruction_id));
        INSERT INTO payment_old (rowid, {columns}) SELECT rowid, {columns} FROM payment;
        CREATE TABLE payment_event_old (
            seq INTEGER PRIMARY KEY, uetr TEXT NOT NULL REFERENCES payment (uetr),
            status TEXT NOT NULL, at_us INTEGER NOT NULL, reason TEXT, detail TEXT);
        INSERT INTO payment_event_old SELECT * FROM payment_event;
        DROP TABLE payment_event;
        DROP TABLE payment;
        ALTER TABLE payment_old RENAME TO payment;
        ALTER TABLE payment_event_old RENAME TO payment_event;
        CREATE INDEX payment_open ON payment (status) WHERE status IN ('queued', 'accepted');
        DELETE FROM schema_migration WHERE version = 7;
    """)


def undo_journal_ids_in_memory(db: sqlite3.Connection) -> None:
    """Take a database of schema version 8 back to version 7: journal entries under a UNIQUE
    index of their transfer id, seqs as they were."""
    db.executescript("""
        CREATE TABLE journal_old (
            seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL,
            debit_account_id INTEGER NOT NULL, credit_account_id INTEGER NOT NULL,
            amount_minor INTEGER NOT NULL, currency TEXT NOT NULL, pending_id TEXT,
            timeout_s INTEGER NOT NULL, linked INTEGER NOT NULL, timestamp_us INTEGER NOT NULL);
        INSERT INTO journal_old SELECT * FROM journal;
        DROP TABLE journal;
        ALTER TABLE journal_old RENAME TO journal;
        DELETE FROM schema_migration WHERE version = 8;
    """)
