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
