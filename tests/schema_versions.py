"""Databases as an older scopay left them, for tests of the upgrade a writer applies."""

from __future__ import annotations

import sqlite3


def undo_mailbox_numbers(db: sqlite3.Connection) -> None:
    """Take a database of schema version 5 back to version 4: mailbox rows without their
    numbers, the unread index by seq."""
    db.execute("DROP INDEX mailbox_acked")
    db.execute("DROP INDEX mailbox_unacked")
    db.execute("ALTER TABLE mailbox DROP COLUMN number")
    db.execute("CREATE INDEX mailbox_unacked ON mailbox (participant_bic, seq) "
               "WHERE acked_us IS NULL")
    db.execute("DELETE FROM schema_migration WHERE version = 5")
