"""The embedded store: one SQLite file in WAL mode with synchronous=FULL.

Every `commit` is one transaction: when it returns, the batch is on disk and survives a
crash of the process or the machine. The engine holds the only writing handle; an exclusive
lock file beside the database keeps a second writer out.
"""

from __future__ import annotations

import fcntl
import json
import operator
import os
import re
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from importlib import resources
from pathlib import Path

from scopay.domain.account import Account, AccountKind
from scopay.domain.ledger import JournalEntry, RejectionRecord, Transfer, TransferKind
from scopay.domain.mailbox import Notice, NoticeKind
from scopay.domain.participant import Participant, Role, Status, Tier
from scopay.domain.payment import PaymentRecord, PaymentStatus, Priority, StatusChange
from scopay.domain.rejection import Rejection
from scopay.domain.rtgs import AccountPolicy
from scopay.store.answer_codec import decode_answer, encode_answer
from scopay.store.audit import (
    COVERED_TABLES,
    LAST_ROW,
    PAYMENT_STATE_COLUMNS,
    AuditHead,
    AuditReport,
    answer_sha256,
    append_entry,
    digest_rows,
    last_sha256,
    payment_fixed_columns,
    record_payment_states,
)
from scopay.store.audit import head as audit_head
from scopay.store.audit import verify as verify_audit
from scopay.store.payment_codec import decode_payment, enum_members

_JOURNAL_COLUMNS = (
    "id, kind, debit_account_id, credit_account_id, amount_minor, currency, pending_id, "
    "timeout_s, linked, timestamp_us"
)
JOURNAL_INSERT = f"INSERT INTO journal ({_JOURNAL_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)"
_REJECTION_INSERT = (
    f"INSERT OR IGNORE INTO transfer_rejection ({_JOURNAL_COLUMNS}, rejection) "
    "VALUES (?,?,?,?,?,?,?,?,?,?,?)"
)
_KINDS = {kind.value: kind for kind in TransferKind}
# The journal's transfer ids past a seq, in order: what the map of them lacks (_transfer_seqs)
_IDS_PAST = "SELECT seq, id FROM journal WHERE seq > ? ORDER BY seq"


class _ThreadConnection:
    """A thread's read connection, held by that thread's local storage alone, and closed
    when that thread ends and lets go of it (a connection is otherwise freed only by a
    collection of the cycle its statement cache makes). The store keeps weak references to
    these (a connection takes none), to close those of the threads still running."""

    __slots__ = ("db", "__weakref__")

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __del__(self) -> None:
        self.db.close()


class StoreLockedError(RuntimeError):
    """Another process holds this database for writing."""


class StoreLinkedError(RuntimeError):
    """The database file has hard links: another name could let a second writer in."""


class SchemaTooNewError(RuntimeError):
    """The database was written by a newer scopay: this one must not read or change it."""


class SchemaTooOldError(RuntimeError):
    """The database needs schema changes this scopay would apply, but it was opened to read
    only: a reader changes nothing."""


LOCK_WAIT_S = 5.0  # how long a connection waits for another's lock (sqlite3's default)
SQLITE_VERSION_MIN = (3, 33, 0)  # UPDATE ... FROM (schema version 5), window functions


def _use_wal(db: sqlite3.Connection) -> None:
    """Switch a database to WAL. On a new file another opener may hold it for a moment, and
    SQLite answers that switch "locked" at once rather than waiting: try again, for at most
    as long as the connection waits for any lock."""
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def migrations() -> list[tuple[int, str]]:
    """(version, SQL) for every migration shipped with scopay, in order."""
    folder = resources.files("scopay.store") / "migrations"
    found = []
    for item in folder.iterdir():
        if item.name.endswith(".sql"):
            found.append((int(item.name.split("_", 1)[0]), item.read_text(encoding="utf-8")))
    return sorted(found)


_transfer_columns = operator.attrgetter(
    "id", "kind._value_", "debit_account_id", "credit_account_id", "amount_minor", "currency",
    "pending_id", "timeout_s", "linked",
)


_SCHEMA_OBJECT = re.compile(r"(CREATE|DROP)\s+(?:UNIQUE\s+)?(?:INDEX|TRIGGER)\s+"
                            r"(?:IF\s+(?:NOT\s+)?EXISTS\s+)?(\w+)", re.IGNORECASE)
_DROPPED_TABLE = re.compile(r"DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?(\w+)", re.IGNORECASE)


def _own_objects(version: int) -> set[str]:
    """The names of scopay's own indexes and triggers as of a migration: those the ones
    before it left, and those it makes."""
    own: set[str] = set()
    for number, text in migrations():
        for verb, name in _SCHEMA_OBJECT.findall(text):
            if verb.upper() == "CREATE":
                own.add(name.lower())
            elif number < version:
                own.discard(name.lower())
        if number == version:
            break
    return own


def _operators_objects(db: sqlite3.Connection, version: int,
                       sql: str) -> list[tuple[str, str, str]]:
    """(name, table, SQL) of the indexes and triggers an operator made (not scopay's own as
    of this migration) on the tables the migration drops: SQLite drops them with the table,
    and where the migration rebuilds the table the upgrade is to keep them (_recreate)."""
    dropped = {name.lower() for name in _DROPPED_TABLE.findall(sql)}
    if not dropped:
        return []
    own = _own_objects(version)
    return [(name, table, text) for name, table, text in db.execute(
                "SELECT name, tbl_name, sql FROM sqlite_master WHERE type IN ('index', "
                "'trigger') AND sql IS NOT NULL ORDER BY rowid")
            if table.lower() in dropped and name.lower() not in own]


def _recreate(db: sqlite3.Connection, version: int, kept: list[tuple[str, str, str]]) -> None:
    """Make again each operator's index and trigger that a migration's rebuild dropped; one
    that no longer fits the table stops the upgrade (rolled back) with the reason. Those on
    a table the migration dropped for good went with it."""
    for name, table, text in kept:
        if db.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (name,)).fetchone():
            continue
        if not db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                          (table,)).fetchone():
            continue
        try:
            db.execute(text)
        except sqlite3.Error as error:
            raise sqlite3.OperationalError(
                f"schema version {version} rebuilds table {table}; its {name} (not scopay's) "
                f"cannot be made again on the new table ({error}): drop it, upgrade, and "
                "make it again to fit") from error


def _statements(sql: str) -> list[str]:
    """Split a migration into statements (comments dropped; no ';' inside literals)."""
    text = "\n".join(line.split("--", 1)[0] for line in sql.splitlines())
    return [statement for statement in text.split(";") if statement.strip()]


_NOTICE_COLUMNS = "participant_bic, kind, uetr, status, reason, created_us"
_NOTICE_AUDITED = operator.itemgetter(0, 1, 2, 3, 4, 5)  # a mailbox row but its number


def _notice(row: Sequence) -> Notice:
    """A notice from its _NOTICE_COLUMNS."""
    return Notice(row[0], NoticeKind(row[1]), row[2], row[3], row[4], row[5])


def journal_row(entry: JournalEntry) -> tuple:
    """The journal row of an entry, in plain values. Hot path: attrgetter builds the tuple in
    C; `linked` stays a bool, which SQLite stores as 0/1."""
    return (*_transfer_columns(entry[0]), entry[1])


def _transfer_from_row(row: tuple) -> Transfer:
    return Transfer(row[0], row[2], row[3], row[4], row[5], _KINDS[row[1]], row[6], row[7],
                    bool(row[8]))


PAYMENT_INSERT = (  # the row number first, then payment_codec.payment_row's columns
    "INSERT INTO payment (rowid, uetr, sender_bic, instruction_id, content, status, "
    "debtor_account, creditor_account, sequence, priority, latest_us, reject_by_us) "
    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)")
PAYMENT_EVENT_INSERT = ("INSERT INTO payment_event (uetr, status, at_us, reason, detail) "
                        "VALUES (?,?,?,?,?)")
MAILBOX_INSERT = ("INSERT INTO mailbox (participant_bic, kind, uetr, status, reason, "
                  "created_us, number) VALUES (?,?,?,?,?,?,?)")

# A payment row already there takes the new queue state only: the columns the audit entries
# record of it (PAYMENT_STATE_COLUMNS, but the UETR), found by its row number.
_PAYMENT_STATE_UPDATE = ("UPDATE payment SET "
                         + ", ".join(f"{column} = ?"
                                     for column in PAYMENT_STATE_COLUMNS.split(", ")[1:])
                         + " WHERE rowid = ?")

_ROWS_PER_STATEMENT_MAX = 256
_multi_row_sql: dict[tuple[str, int], str] = {}


def insert_rows(db: sqlite3.Connection, sql: str, rows: Sequence[tuple]) -> None:
    """Insert rows with a few multi-row statements rather than one step per row.

    The sqlite3 module lets go of the GIL around every step; with executemany, every row is
    a step, and under load each one waits for the event loop's thread to give the GIL back.
    Chunks are powers of two, so a handful of statement texts serve every batch size and stay
    in the connection's statement cache. `sql` is a one-row INSERT whose first parenthesised
    group after VALUES is the row's placeholders (an ON CONFLICT tail may follow).
    """
    start = 0
    while start < len(rows):
        size = min(_ROWS_PER_STATEMENT_MAX, 1 << ((len(rows) - start).bit_length() - 1))
        chunk = rows[start:start + size]
        db.execute(_multi_row(sql, size), [value for row in chunk for value in row])
        start += size


def _multi_row(sql: str, size: int) -> str:
    text = _multi_row_sql.get((sql, size))
    if text is None:
        head, _, rest = sql.partition(" VALUES (")
        group, _, tail = rest.partition(")")
        text = f"{head} VALUES " + ",".join([f"({group})"] * size) + tail
        _multi_row_sql[(sql, size)] = text
    return text


class SQLiteStore:
    """SQLite implementation of the engine's store port."""

    def __init__(self, path: str | os.PathLike[str], *, lock: bool = True,
                 migrate: bool = True) -> None:
        """`lock`: the only writer (a lock file keeps a second one out). `migrate`: apply the
        schema changes the database lacks; without it, a database that lacks any is
        refused (SchemaTooOldError), as readers change nothing."""
        if sqlite3.sqlite_version_info < SQLITE_VERSION_MIN:
            raise RuntimeError(
                f"scopay needs SQLite {'.'.join(map(str, SQLITE_VERSION_MIN))} or newer (window "
                f"functions, UPDATE ... FROM); this Python links SQLite {sqlite3.sqlite_version}")
        self.path = Path(path)
        self._lock_file = None
        if lock:
            # beside the file itself, however it is named (a symbolic link, another path)
            self._lock_file = open(  # noqa: SIM115 — held open
                f"{os.path.realpath(self.path)}.lock", "a+")
            try:
                fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self._lock_file.close()
                raise StoreLockedError(
                    f"{self.path} is open for writing by another scopay process"
                ) from None
            # The lock goes beside the file's real path; a hard link is another path to the
            # same file, whose writer would lock another lock file: refused.
            links = self.path.stat().st_nlink if self.path.exists() else 1
            if links > 1:
                self._lock_file.close()
                raise StoreLinkedError(
                    f"{self.path} has {links} names (hard links), so a second writer could "
                    "open it under another: keep one (a symbolic link is fine)")
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                   cached_statements=512, timeout=LOCK_WAIT_S)
        _use_wal(self._db)
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        # A multi-row INSERT (insert_rows) keeps a statement journal, the pages it changed as
        # they were, to undo itself if a later row breaks a constraint. Past 64 KiB SQLite
        # spills that journal to a temporary file; rows with a random key (a UETR, a journal
        # id) each change another page, so a batch of payments spilled at every commit. In
        # memory, a batch's inserts take about a fifth less time. (Temporary tables and sorts
        # of this connection stay in memory too; its queries sort little: migrations, the
        # accounts of a day's statements.)
        self._db.execute("PRAGMA temp_store=MEMORY")
        self._readers = threading.local()
        # Each thread's connections, held by its thread-local storage: a thread that ends
        # lets go of them, which closes them (_ThreadConnection); close() closes those of the
        # threads still running.
        self._reader_connections: weakref.WeakSet[_ThreadConnection] = weakref.WeakSet()
        self._connections_lock = threading.Lock()
        self._closed = False
        try:
            if migrate:
                self.migrate()
            else:
                self._check_schema()
        except BaseException:
            self.close()  # a database this scopay cannot take: let go of it
            raise
        self._audit_sha256 = last_sha256(self._db)
        # The last row of each append-only table, known after each commit (this is the only
        # writer): a commit then needs no query to learn where its rows start.
        self._last_rows: dict[str, int] = {}
        self._staged: dict[str, int] | None = None  # last rows of the batch awaiting finish()
        # Each participant's last mailbox number, read the first time it gets a notice; the
        # staged batch's are kept apart until finish().
        self._mailbox_numbers: dict[str, int] = {}
        self._staged_numbers: dict[str, int] = {}
        # Each payment's row number by its UETR (no index has them: schema version 7), noted
        # while recovery reads the payments (payments()), else read at the first payment
        # written (_payment_numbers); the staged batch's new ones kept apart.
        self._payment_rows: dict[str, int] | None = None
        self._staged_payment_numbers: dict[str, int] = {}
        # Counts each change to what is known of the numbers (rows appended, or the numbers
        # forgotten after a batch rolled back): payments() hands over what it noted only if
        # none happened while it read.
        self._payment_numbers_changes = 0
        self._numbers_lock = threading.Lock()  # over the maps' hand-over and their updates
        # Each journal entry's seq by its transfer id (no index has them: schema version 8):
        # the store's guard that no id is booked twice, and how an entry is found by its id
        # (journal_entry). Every entry up to seq _transfer_seqs_through is in it, the staged
        # batch's too (added before its COMMIT: once a reader can see a row, its id is here;
        # a lookup by seq does not see a row before its commit; the map is forgotten only
        # when the staged batch is rolled back, _forget_numbers). Noted while recovery reads
        # the journal (journal()), else read at the first need (_transfer_seqs_of); readers
        # bring it up to date with entries another process committed (_transfer_seq).
        self._transfer_seqs: dict[str, int] | None = None
        self._transfer_seqs_through = 0

    def _payment_numbers(self, db: sqlite3.Connection) -> dict[str, int]:
        """Each committed payment's row number by UETR: as recovery noted them (payments()),
        else read here, once."""
        with self._numbers_lock:
            if self._payment_rows is None:
                self._payment_rows = {uetr: number for number, uetr in
                                      db.execute("SELECT rowid, uetr FROM payment")}
            return self._payment_rows

    def _transfer_seqs_of(self) -> dict[str, int]:
        """The writer's map of transfer ids, begun empty when there is none yet (the caller
        holds _numbers_lock, and fills it with _catch_up_transfer_seqs)."""
        if self._transfer_seqs is None:
            self._transfer_seqs, self._transfer_seqs_through = {}, 0
        return self._transfer_seqs

    def _catch_up_transfer_seqs(self, db: sqlite3.Connection) -> None:
        """Add the entries after _transfer_seqs_through that `db` sees. The caller holds
        _numbers_lock."""
        self._merge_transfer_seqs(db.execute(_IDS_PAST, (self._transfer_seqs_through,)))

    def _merge_transfer_seqs(self, rows: Iterable[tuple[int, str]]) -> None:
        """Add (seq, id) rows read in order to the map, those past what it holds (the first
        seq of an id, should it be there twice). The caller holds _numbers_lock."""
        seqs = self._transfer_seqs
        assert seqs is not None
        for seq, transfer_id in rows:
            if seq > self._transfer_seqs_through:
                seqs.setdefault(transfer_id, seq)
                self._transfer_seqs_through = seq

    def _transfer_seq(self, transfer_id: str) -> int | None:
        """The seq of the entry that booked `transfer_id` (perhaps not committed yet), or
        None. A readers' lookup: an id not in the map is looked for in the entries past it,
        read without the lock (the writer goes on meanwhile) through this thread's catch-up
        connection, whose every read is whole and so begins at the call (its reader could
        be in the middle of an older read)."""
        with self._numbers_lock:
            seqs, through = self._transfer_seqs, self._transfer_seqs_through
            seq = None if seqs is None else seqs.get(transfer_id)
        if seq is not None:
            return seq
        rows = self._catch_up_reader().execute(
            _IDS_PAST, (0 if seqs is None else through,)).fetchall()
        with self._numbers_lock:
            if seqs is None:  # there was no map: this read is all of it
                seqs = self._transfer_seqs_of()
            if self._transfer_seqs is seqs:
                self._merge_transfer_seqs(rows)
                return seqs.get(transfer_id)
        # the map was forgotten meanwhile (a batch rolled back): what this read found stands
        return next((seq_read for seq_read, id_read in rows if id_read == transfer_id), None)

    def _catch_up_reader(self) -> sqlite3.Connection:
        """This thread's connection for reading the journal's newest entries: every read on
        it is fetched whole, so none is left open and each starts from the latest commit."""
        return self._thread_connection("catch_up")

    def _reader(self) -> sqlite3.Connection:
        """This thread's read connection: it sees committed batches only."""
        return self._thread_connection("db")

    def _thread_connection(self, purpose: str) -> sqlite3.Connection:
        held = getattr(self._readers, purpose, None)
        if held is None:
            with self._connections_lock:
                if self._closed:
                    raise sqlite3.ProgrammingError("Cannot operate on a closed store.")
                held = _ThreadConnection(sqlite3.connect(
                    self.path, isolation_level=None, check_same_thread=False))
                self._reader_connections.add(held)
            setattr(self._readers, purpose, held)
        return held.db

    # -- schema ----------------------------------------------------------------------------

    def migrate(self) -> None:
        db = self._db
        db.execute("CREATE TABLE IF NOT EXISTS schema_migration (version INTEGER PRIMARY KEY)")
        applied = self._applied_versions()
        # A migration that rebuilds a table drops it and renames the copy: SQLite's newer
        # rename checks every view and trigger in between, and one of an operator's own
        # views on the table (a report) would fail it. The legacy rename leaves them as
        # written, naming the table that is back by the end of the migration.
        db.execute("PRAGMA legacy_alter_table=ON")
        try:
            self._apply_migrations(db, applied)
        finally:
            db.execute("PRAGMA legacy_alter_table=OFF")

    def _apply_migrations(self, db: sqlite3.Connection, applied: set[int]) -> None:
        for version, sql in migrations():
            if version in applied:
                continue
            db.execute("BEGIN IMMEDIATE")
            if db.execute("SELECT 1 FROM schema_migration WHERE version = ?",
                          (version,)).fetchone():  # another opener applied it meanwhile
                db.execute("COMMIT")
                continue
            try:
                kept = _operators_objects(db, version, sql)
                for statement in _statements(sql):
                    db.execute(statement)
                _recreate(db, version, kept)
                db.execute("INSERT INTO schema_migration VALUES (?)", (version,))
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _check_schema(self) -> None:
        """A reader's check: the database has every schema change this scopay knows."""
        applied = self._applied_versions()
        known = {version for version, _ in migrations()}
        if known - applied:
            raise SchemaTooOldError(
                f"{self.path} has schema version {max(applied, default=0)}; this scopay reads "
                f"version {max(known)} and upgrades a database when it opens it to write "
                "(scopay serve, or any command that writes)")

    def _applied_versions(self) -> set[int]:
        """The schema versions the database records (none before its first migration), or
        SchemaTooNewError when one is newer than this scopay knows."""
        db = self._db
        versioned = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                               "name = 'schema_migration'").fetchone()
        applied = ({row[0] for row in db.execute("SELECT version FROM schema_migration")}
                   if versioned else set())
        newest = max(version for version, _ in migrations())
        if applied and max(applied) > newest:
            raise SchemaTooNewError(f"{self.path} has schema version {max(applied)}, from a newer "
                                    f"scopay; this one knows up to {newest}: upgrade scopay")
        return applied

    def schema_version(self) -> int:
        return self._db.execute("SELECT max(version) FROM schema_migration").fetchone()[0]

    # -- writing ------------------------------------------------------------------------

    def commit(self, journal: Iterable[JournalEntry] = (),
               rejections: Iterable[RejectionRecord] = (), **rows) -> None:
        """Write one batch, and its audit entry, in one durable transaction, or nothing."""
        self.stage(journal, rejections, **rows)
        self.finish()

    def stage(
        self,
        journal: Iterable[JournalEntry] = (),
        rejections: Iterable[RejectionRecord] = (),
        *,
        participants: Iterable[Participant] = (),
        accounts: Iterable[Account] = (),
        blocked: Iterable[tuple[int, bool]] = (),
        keys: Iterable[tuple[str, str, str, int]] = (),
        revoked_keys: Iterable[tuple[str, int]] = (),
        payments: Iterable[tuple] = (),  # payment_codec.payment_row's
        payment_events: Iterable[tuple[str, StatusChange]] = (),
        policies: Iterable[tuple[int, AccountPolicy]] = (),
        notices: Iterable[Notice] = (),
        acknowledged: Iterable[tuple[int, str, int]] = (),
        idempotency: Iterable[tuple[str, str, str, int, bytes, int]] = (),
        forgotten_answers: Iterable[tuple[str, str]] = (),
        at_us: int = 0,
    ) -> None:
        """Write one batch and its audit entry into a transaction left open for finish(),
        or nothing. Nothing else may use the store until finish() has returned."""
        assert self._staged is None, "a staged batch is not finished"
        db = self._db
        payload: dict = {}
        last_rows: dict[str, int] = {}
        db.execute("BEGIN IMMEDIATE")
        try:
            self._notice_another_writer(db)
            self._append_journal(db, payload, last_rows, [journal_row(e) for e in journal])
            self._append(db, payload, last_rows, "rejections", _REJECTION_INSERT,
                         [(*journal_row(JournalEntry(r.transfer, r.timestamp_us)),
                           r.rejection.value) for r in rejections])
            self._write_admin(db, payload, participants, accounts, blocked, keys, revoked_keys,
                              policies, acknowledged, idempotency, forgotten_answers)
            self._write_payments(db, payload, last_rows, payments, payment_events, notices)
            if payload:
                self._audit_sha256 = append_entry(db, self._audit_sha256, at_us, payload)
        except BaseException:
            # SQLite may have rolled the transaction back itself (an I/O error, an interrupt,
            # no memory): then there is none to roll back, and the error to raise is this one
            if db.in_transaction:
                db.execute("ROLLBACK")
            self._forget_numbers()  # before anything else can fail
            self._audit_sha256 = last_sha256(db)
            raise
        self._staged = last_rows

    def _notice_another_writer(self, db: sqlite3.Connection) -> None:
        """In a write transaction: if the audit log's head is not the one this store wrote
        last, another writer has committed (a store opened without the lock), and what this
        one knows of the tables' last rows and numbers is read again."""
        head = last_sha256(db)
        if head != self._audit_sha256:
            self._forget_numbers()
            self._audit_sha256 = head

    def stage_more(self, *, idempotency: Iterable[tuple[str, str, str, int, bytes, int]],
                   at_us: int) -> None:
        """Add answers kept under idempotency keys, with an audit entry of their own, to the
        staged batch: they commit with it, or not at all. If writing them fails, the whole
        batch is rolled back (discard), and the caller must rebuild what it derived from it."""
        assert self._staged is not None, "no staged batch to add to"
        db = self._db
        payload: dict = {}
        try:
            self._write_admin(db, payload, (), (), (), (), (), (), (), idempotency, ())
            if payload:
                self._audit_sha256 = append_entry(db, self._audit_sha256, at_us, payload)
        except BaseException:
            self.discard()
            raise

    def finish(self) -> None:
        """Commit the staged batch durably. May run on another thread than stage() (its wait
        for the disk does not hold Python's GIL). If it fails, the batch is rolled back, and
        the caller must rebuild whatever it derived from it."""
        if self._staged is None:
            return
        try:
            self._db.execute("COMMIT")
        except BaseException:
            self.discard()
            raise
        self._last_rows.update(self._staged)
        self._mailbox_numbers.update(self._staged_numbers)
        self._staged_numbers.clear()
        if self._staged_payment_numbers:
            with self._numbers_lock:
                self._payment_numbers_changes += 1
                if self._payment_rows is not None:
                    self._payment_rows.update(self._staged_payment_numbers)
            self._staged_payment_numbers.clear()
        self._staged = None

    def discard(self) -> None:
        """Roll the staged batch back: it is not to be kept (or its COMMIT failed)."""
        if self._staged is None:
            return
        self._staged = None
        self._forget_numbers()
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")
        self._audit_sha256 = last_sha256(self._db)

    def _forget_numbers(self) -> None:
        """After a batch rolled back: what was known of the tables is read again."""
        self._last_rows.clear()
        self._mailbox_numbers.clear()
        self._staged_numbers.clear()
        with self._numbers_lock:
            self._payment_rows = None
            self._transfer_seqs = None
            self._payment_numbers_changes += 1
        self._staged_payment_numbers.clear()

    def _append(self, db: sqlite3.Connection, payload: dict, last_rows: dict[str, int],
                table: str, sql: str, rows: list[tuple],
                covered: Callable[[tuple], tuple] | None = None) -> None:
        """Append rows to an append-only table and note their range and digest for audit:
        the digest of the rows, or of `covered` of each where the audit covers fewer
        columns than are written."""
        if not rows:
            return
        known = self._last_rows.get(table)
        first = (db.execute(LAST_ROW[table]).fetchone()[0] if known is None else known) + 1
        insert_rows(db, sql, rows)
        if " OR IGNORE " in sql:  # some rows may have been ignored (a known id)
            last = db.execute(LAST_ROW[table]).fetchone()[0]
            if last - first + 1 != len(rows):  # hash what landed
                read, shape = COVERED_TABLES[table]
                rows = [shape(row) for row in db.execute(read, (first, last))]
                covered = None
        else:  # every row lands, numbered on from the last, or the insert raises
            last = first + len(rows) - 1
        last_rows[table] = last
        if rows:
            payload[table] = [first, last, digest_rows(
                rows if covered is None else list(map(covered, rows)))]

    def _append_journal(self, db: sqlite3.Connection, payload: dict, last_rows: dict[str, int],
                        rows: list[tuple]) -> None:
        """Append journal rows, refused whole (sqlite3.IntegrityError, as a UNIQUE index
        would) if one books a transfer id the journal holds or another row of theirs books."""
        if not rows:
            return
        ids = [row[0] for row in rows]
        with self._numbers_lock:
            booked = self._transfer_seqs_of()
            # the entries the map lacks, read in this write transaction: all of them when it
            # is new, and any another writer booked (none should: the lock file keeps it
            # out, but a store opened without the lock can write), as an index would refuse
            self._catch_up_transfer_seqs(db)
            if len(set(ids)) != len(ids) or not booked.keys().isdisjoint(ids):
                seen: set[str] = set()
                twice = next(i for i in ids if i in booked or i in seen or seen.add(i))
                raise sqlite3.IntegrityError(f"transfer id {twice!r} is booked already: the "
                                             "journal books each transfer once")
        self._append(db, payload, last_rows, "journal", JOURNAL_INSERT, rows)
        last = last_rows["journal"]
        with self._numbers_lock:  # before the COMMIT (a failed batch forgets the map)
            if self._transfer_seqs is booked:  # (else forgotten: caught up when next needed)
                booked.update(zip(ids, range(last - len(ids) + 1, last + 1), strict=True))
                self._transfer_seqs_through = last

    def _numbered(self, db: sqlite3.Connection, notices: Iterable[Notice]) -> list[tuple]:
        """Mailbox rows of the notices, each with its number in its participant's mailbox:
        one more than that participant's last."""
        numbers, staged = self._mailbox_numbers, self._staged_numbers
        rows = []
        for n in notices:
            bic = n.participant_bic
            number = staged.get(bic)
            if number is None:
                number = numbers.get(bic)
                if number is None:  # the last of either index (see migration 5)
                    number = numbers[bic] = db.execute(
                        "SELECT coalesce(max(last), 0) FROM (SELECT max(number) AS last "
                        "FROM mailbox WHERE participant_bic = ? AND acked_us IS NULL UNION ALL "
                        "SELECT max(number) FROM mailbox WHERE participant_bic = ? AND "
                        "acked_us IS NOT NULL)", (bic, bic)).fetchone()[0]
            staged[bic] = number = number + 1
            rows.append((n.participant_bic, n.kind._value_, n.uetr, n.status, n.reason,
                         n.created_us, number))
        return rows

    @staticmethod
    def _write_admin(db, payload, participants, accounts, blocked, keys, revoked_keys,
                     policies, acknowledged, idempotency, forgotten_answers) -> None:
        rows = [(p.bic, p.name, p.role.value, p.country, p.tier.value, p.sponsor_bic,
                 p.settlement_currency, p.status.value) for p in participants]
        if rows:
            db.executemany(
                "INSERT INTO participant VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (bic) DO UPDATE "
                "SET status = excluded.status, name = excluded.name", rows)
            payload["participants"] = rows
        rows = [(a.id, a.owner_bic, a.currency, a.kind.value, a.credit_line_minor)
                for a in accounts]
        if rows:
            db.executemany(
                "INSERT INTO account (id, owner_bic, currency, kind, credit_line_minor) "
                "VALUES (?,?,?,?,?) ON CONFLICT (id) DO UPDATE "
                "SET credit_line_minor = excluded.credit_line_minor", rows)
            payload["accounts"] = rows
        rows = [(int(flag), account_id) for account_id, flag in blocked]
        if rows:
            db.executemany("UPDATE account SET blocked = ? WHERE id = ?", rows)
            payload["blocked"] = rows
        rows = list(keys)
        if rows:
            db.executemany("INSERT INTO participant_key VALUES (?,?,?,?,NULL)", rows)
            payload["keys"] = rows
        rows = [(at, key_id) for key_id, at in revoked_keys]
        if rows:
            db.executemany("UPDATE participant_key SET revoked_us = ? WHERE key_id = ? "
                           "AND revoked_us IS NULL", rows)
            payload["revoked_keys"] = rows
        rows = [(account_id, p.reserved_urgent_minor, p.reserved_high_minor,
                 p.multilateral_limit_minor,
                 json.dumps({str(k): v for k, v in sorted(p.bilateral_limits.items())}))
                for account_id, p in policies]
        if rows:
            db.executemany("INSERT OR REPLACE INTO account_policy VALUES (?,?,?,?,?)", rows)
            payload["policies"] = rows
        # Only the notices this commit acknowledges go on the record: not one acknowledged
        # before. A participant names its notices by their numbers in its mailbox, which
        # reach no one else's; the record names them by seq, as it always has.
        rows = []
        for number, bic, at in acknowledged:
            row = db.execute("SELECT seq FROM mailbox WHERE participant_bic = ? AND number = ? "
                             "AND acked_us IS NULL", (bic, number)).fetchone()
            if row is not None:
                db.execute("UPDATE mailbox SET acked_us = ? WHERE seq = ?", (at, row[0]))
                rows.append((row[0], bic, at))
        if rows:
            payload["acknowledged"] = rows
        rows = list(idempotency)
        if rows:
            insert_rows(db, "INSERT INTO idempotency_record (participant_bic, idempotency_key, "
                        "request_sha256, status_code, created_us, response_body, body_encoding) "
                        "VALUES (?,?,?,?,?,?,?)",
                        [(bic, key, digest, status, created, *encode_answer(body))
                         for bic, key, digest, status, body, created in rows])
            # the answer itself by its hash (a retry is given these bytes again), and when it
            # was kept (which decides when it is forgotten)
            payload["idempotency"] = [(bic, key, digest, status, answer_sha256(body), created)
                                      for bic, key, digest, status, body, created in rows]
        rows = list(forgotten_answers)
        if rows:
            db.executemany("DELETE FROM idempotency_record WHERE participant_bic = ? AND "
                           "idempotency_key = ?", rows)
            payload["forgotten_answers"] = rows

    def _write_payments(self, db, payload, last_rows, payments, payment_events,
                        notices) -> None:
        rows = list(payments)  # payment_row's, built by the engine (it keeps them: book.py)
        if rows:
            known = self._last_rows.get("payment")
            first = (db.execute(LAST_ROW["payment"]).fetchone()[0] if known is None
                     else known) + 1
            # Rows new here are numbered on from the last, in this order; a row already there
            # (found by its UETR's number, kept in memory: schema version 7) keeps its number
            # and takes the new queue state only.
            numbers, staged = self._payment_numbers(db), self._staged_payment_numbers
            states = record_payment_states(rows)  # (uetr, then the queue state) of each
            new, changed = [], []
            for row, state in zip(rows, states, strict=True):
                number = staged.get(row[0]) or numbers.get(row[0])
                if number is None:
                    staged[row[0]] = number = first + len(new)
                    new.append((number, *row))
                else:
                    changed.append((*state[1:], number))
            if new:
                insert_rows(db, PAYMENT_INSERT, new)
                last = last_rows["payment"] = first + len(new) - 1
                payload["payment"] = [first, last, digest_rows(
                    [payment_fixed_columns(row[1:]) for row in new])]
            if changed:
                db.executemany(_PAYMENT_STATE_UPDATE, changed)
            # the queue state of every row written, in full: the engine recovers from it
            payload["payment_states"] = states
        self._append(db, payload, last_rows, "payment_events",
                     PAYMENT_EVENT_INSERT,
                     [(uetr, c.status._value_, c.at_us,
                       None if c.reason is None else c.reason._value_, c.detail)
                      for uetr, c in payment_events])
        # A notice's number is not in the audit digest: it follows from the rows' order
        # (verify checks it), and digests of notices written before numbers lack it.
        self._append(db, payload, last_rows, "mailbox",
                     MAILBOX_INSERT,
                     self._numbered(db, notices), _NOTICE_AUDITED)

    def write_checkpoint(self, as_of_seq: int, timestamp_us: int,
                         balances: Iterable[tuple[int, int, int, int]]) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("DELETE FROM checkpoint_balance")
            db.executemany("INSERT INTO checkpoint_balance VALUES (?,?,?,?)", balances)
            db.execute("INSERT OR REPLACE INTO checkpoint VALUES (1, ?, ?)",
                       (as_of_seq, timestamp_us))
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    # -- reading --------------------------------------------------------------------------

    def participants(self) -> list[Participant]:
        rows = self._reader().execute(
            "SELECT bic, name, role, country, tier, sponsor_bic, settlement_currency, status "
            "FROM participant ORDER BY rowid"
        )
        return [Participant(r[0], r[1], Role(r[2]), r[3], Tier(r[4]), r[5], r[6], Status(r[7]))
                for r in rows]

    def accounts(self) -> list[tuple[Account, bool]]:
        rows = self._reader().execute(
            "SELECT id, owner_bic, currency, kind, credit_line_minor, blocked FROM account "
            "ORDER BY id"
        )
        return [(Account(r[0], r[1], r[2], AccountKind(r[3]), r[4]), bool(r[5])) for r in rows]

    def journal(self, after_seq: int = 0, until_seq: int | None = None,
                ) -> Iterator[tuple[int, JournalEntry]]:
        """(seq, entry) in journal order, streamed."""
        sql = f"SELECT seq, {_JOURNAL_COLUMNS} FROM journal WHERE seq > ?"
        params: list[int] = [after_seq]
        if until_seq is not None:
            sql += " AND seq <= ?"
            params.append(until_seq)
        # Each entry's seq by its id, noted on the way when the whole journal is read (the
        # engine's recovery): the writer then need not read them (_transfer_seqs_of). This
        # read's snapshot may be older than the last commit (this thread's connection could
        # be in the middle of an older read): handed over, the map is brought up to date.
        seqs: dict[str, int] = {}
        noting, through = after_seq == 0 and until_seq is None and self._transfer_seqs is None, 0
        cursor = self._reader().execute(sql + " ORDER BY seq", params)
        while rows := cursor.fetchmany(10_000):
            for row in rows:
                if noting:
                    seqs.setdefault(row[1], row[0])
                yield row[0], JournalEntry(_transfer_from_row(row[1:]), row[10])
            through = rows[-1][0]
        if noting:
            newer = self._catch_up_reader().execute(_IDS_PAST, (through,)).fetchall()
            with self._numbers_lock:
                if self._transfer_seqs is None:
                    self._transfer_seqs, self._transfer_seqs_through = seqs, through
                    self._merge_transfer_seqs(newer)

    def first_journal_seq_from(self, timestamp_us: int, last_seq: int) -> int:
        """The first seq (up to last_seq + 1) whose entry is at or after timestamp_us: a
        binary search by seq, as journal times never go backwards."""
        db = self._reader()
        low, high = 1, last_seq + 1
        while low < high:
            middle = (low + high) // 2
            row = db.execute("SELECT timestamp_us FROM journal WHERE seq = ?",
                             (middle,)).fetchone()
            if row is not None and row[0] >= timestamp_us:
                high = middle
            else:
                low = middle + 1
        return low

    def account_movements(self, account_id: int, first_seq: int, last_seq: int,
                          kinds: Sequence[str], limit: int = -1) -> tuple[int, int]:
        """(count, net change) of the account's journal entries of the given kinds with seq in
        [first_seq, last_seq], the first `limit` of them (all for -1). Summed in SQLite:
        each partial sum is a difference of two balances, so it stays within 64 bits."""
        query, params = self._movements(account_id, first_seq, last_seq, kinds)
        return self._reader().execute(
            f"SELECT count(*), coalesce(sum(change), 0) FROM (SELECT CASE WHEN "
            f"debit_account_id = ? THEN -amount_minor ELSE amount_minor END AS change {query} "
            "ORDER BY seq LIMIT ?)", (account_id, *params, limit)).fetchone()

    def account_entries(self, account_id: int, first_seq: int, last_seq: int,
                        kinds: Sequence[str], offset: int, limit: int,
                        ) -> list[tuple[int, JournalEntry]]:
        """(seq, entry) of the account's journal entries of the given kinds with seq in
        [first_seq, last_seq], in journal order, `limit` of them from the `offset`-th."""
        query, params = self._movements(account_id, first_seq, last_seq, kinds)
        rows = self._reader().execute(
            f"SELECT seq, {_JOURNAL_COLUMNS} {query} ORDER BY seq LIMIT ? OFFSET ?",
            (*params, limit, offset))
        return [(row[0], JournalEntry(_transfer_from_row(row[1:]), row[10])) for row in rows]

    @staticmethod
    def _movements(account_id: int, first_seq: int, last_seq: int,
                   kinds: Sequence[str]) -> tuple[str, tuple]:
        """The FROM and WHERE of an account's journal entries in a seq range: the range is
        read by its rowids and filtered in SQLite, not in Python."""
        marks = ",".join("?" * len(kinds))
        return (f"FROM journal WHERE seq BETWEEN ? AND ? AND kind IN ({marks}) "
                "AND (debit_account_id = ? OR credit_account_id = ?)",
                (first_seq, last_seq, *kinds, account_id, account_id))

    def journal_entry(self, transfer_id: str) -> tuple[int, JournalEntry] | None:
        """(seq, entry) of the committed entry that booked a transfer id, or None."""
        seq = self._transfer_seq(transfer_id)
        if seq is None:
            return None
        # read whole on the catch-up connection, as the map was: from the latest commit
        row = self._catch_up_reader().execute(
            f"SELECT seq, {_JOURNAL_COLUMNS} FROM journal WHERE seq = ?", (seq,)).fetchall()
        row = row[0] if row else None
        if row is None or row[1] != transfer_id:  # not committed (yet, or ever)
            return None
        return row[0], JournalEntry(_transfer_from_row(row[1:]), row[10])

    def last_seq(self) -> int:
        return self._reader().execute("SELECT coalesce(max(seq), 0) FROM journal").fetchone()[0]

    def last_commit_us(self) -> int:
        """The engine time of the latest commit of any kind (0 for none)."""
        return self._reader().execute(
            "SELECT coalesce(max(at_us), 0) FROM audit_log").fetchone()[0]

    def rejections(self) -> Iterator[RejectionRecord]:
        cursor = self._reader().execute(
            f"SELECT {_JOURNAL_COLUMNS}, rejection FROM transfer_rejection ORDER BY rowid"
        )
        while rows := cursor.fetchmany(10_000):
            for row in rows:
                yield RejectionRecord(_transfer_from_row(row), Rejection(row[10]), row[9])

    def checkpoint(self) -> tuple[int, int, dict[int, tuple[int, int, int]]] | None:
        head = self._reader().execute("SELECT as_of_seq, timestamp_us FROM checkpoint").fetchone()
        if head is None:
            return None
        balances = {r[0]: (r[1], r[2], r[3])
                    for r in self._reader().execute("SELECT * FROM checkpoint_balance")}
        return head[0], head[1], balances

    def keys(self) -> dict[str, tuple[str, str, int | None]]:
        """key id -> (participant BIC, Ed25519 public key, revoked at) for every key."""
        return {r[0]: (r[1], r[2], r[4]) for r in self._reader().execute(
            "SELECT * FROM participant_key ORDER BY created_us")}

    def idempotency_records(self) -> list[tuple[str, str, str, int, int]]:
        """(bic, key, request digest, status, kept at) of every kept answer, bodies aside."""
        return self._reader().execute(
            "SELECT participant_bic, idempotency_key, request_sha256, status_code, created_us "
            "FROM idempotency_record").fetchall()

    def idempotency_body(self, bic: str, key: str) -> bytes | None:
        """The answer's own bytes (the store may keep them deflated, answer_codec), or
        AnswerUnreadable. Read as bytes: a text edited in that is no UTF-8 would stop sqlite3
        reading the row."""
        row = self._reader().execute(
            "SELECT CAST(response_body AS BLOB), CAST(body_encoding AS BLOB) FROM "
            "idempotency_record WHERE participant_bic = ? AND idempotency_key = ?",
            (bic, key)).fetchone()
        return None if row is None else decode_answer(*row)

    def verify_audit(self, anchors: Sequence[tuple[int, str]] = ()) -> AuditReport:
        return verify_audit(self._reader(), anchors)

    def audit_head(self) -> AuditHead | None:
        return audit_head(self._reader())

    def payments(self) -> Iterator[PaymentRecord]:
        """Every payment with its history, in the order they arrived."""
        events: dict[str, list[StatusChange]] = {}
        statuses, reasons = enum_members(PaymentStatus), {None: None, **enum_members(Rejection)}
        for uetr, status, at_us, reason, detail in self._reader().execute(
            "SELECT uetr, status, at_us, reason, detail FROM payment_event ORDER BY seq"
        ):
            change = StatusChange(statuses[status], at_us, reasons[reason or None], detail)
            history = events.get(uetr)
            if history is None:
                events[uetr] = [change]
            else:
                history.append(change)
        priorities = enum_members(Priority)
        # Each UETR's row number, noted on the way (the engine's recovery reads them all): the
        # writer then need not read them at its first payment (_payment_numbers). Kept only if
        # what is known of them did not change meanwhile (rows this reader's snapshot might
        # lack, or numbers forgotten after a batch rolled back).
        changes, numbers = self._payment_numbers_changes, {}
        cursor = self._reader().execute(
            "SELECT rowid, content, sender_bic, debtor_account, creditor_account, sequence, "
            "priority, latest_us, reject_by_us FROM payment ORDER BY rowid"
        )
        for row in cursor:
            payment = decode_payment(row[1])
            numbers[payment.uetr] = row[0]
            yield PaymentRecord(payment, row[2], events.get(payment.uetr, []), row[3], row[4],
                                row[5], priorities[row[6]], row[7], row[8])
        with self._numbers_lock:  # checked and handed over as one step
            if self._payment_rows is None and self._payment_numbers_changes == changes:
                self._payment_rows = numbers

    def accounts_posted(self, first_seq: int, last_seq: int, before_us: int, day_us: int,
                        kinds: Sequence[str]) -> list[tuple[int, int]]:
        marks = ",".join("?" * len(kinds))
        entries = (f"FROM journal WHERE seq BETWEEN ? AND ? AND timestamp_us < ? "
                   f"AND kind IN ({marks})")
        bounds = (first_seq, last_seq, before_us, *kinds)
        return self._reader().execute(
            f"SELECT DISTINCT timestamp_us / ? AS day, debit_account_id {entries} UNION "
            f"SELECT DISTINCT timestamp_us / ? AS day, credit_account_id {entries} "
            "ORDER BY 1, 2", (day_us, *bounds, day_us, *bounds)).fetchall()

    def last_notice_times(self, reason: str) -> dict[str, int]:
        return dict(self._reader().execute(
            "SELECT uetr, max(created_us) FROM mailbox WHERE reason = ? GROUP BY uetr",
            (reason,)))

    def payment_count(self) -> int:
        return self._reader().execute("SELECT count(*) FROM payment").fetchone()[0]

    def policies(self) -> dict[int, AccountPolicy]:
        found = {}
        for row in self._reader().execute("SELECT * FROM account_policy"):
            limits = {int(k): v for k, v in json.loads(row[4]).items()}
            found[row[0]] = AccountPolicy(row[1], row[2], limits, row[3])
        return found

    def mailbox(self, bic: str, after: int = 0,
                limit: int = 100) -> list[tuple[int, Notice, int | None]]:
        """(number, notice, acknowledged at) of a participant's unacknowledged notices after
        the one numbered `after` in its mailbox, oldest first (by the index of those)."""
        rows = self._reader().execute(
            f"SELECT number, {_NOTICE_COLUMNS}, acked_us FROM mailbox WHERE participant_bic = ? "
            "AND number > ? AND acked_us IS NULL ORDER BY number LIMIT ?", (bic, after, limit))
        return [(r[0], _notice(r[1:7]), r[7]) for r in rows]

    def mailbox_notice(self, bic: str, number: int) -> Notice | None:
        """One notice of a participant's, acknowledged or not, by its number in that
        participant's mailbox: a lookup in the index of those unacknowledged, then of those
        acknowledged (never a walk over the notices of others)."""
        reader = self._reader()
        for acknowledged in ("IS NULL", "IS NOT NULL"):
            r = reader.execute(
                f"SELECT {_NOTICE_COLUMNS} FROM mailbox WHERE participant_bic = ? AND "
                f"number = ? AND acked_us {acknowledged}", (bic, number)).fetchone()
            if r is not None:
                return _notice(r)
        return None

    def close(self) -> None:
        with self._connections_lock:
            self._closed = True
            for held in list(self._reader_connections):
                held.db.close()
        self._db.close()
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None
