"""The audit log: one hash-chained entry per commit, written in that same commit.

An entry's payload says what the commit changed: for each append-only table (journal, refused
transfers, payment status history, mailbox) the range of rows it appended and a SHA-256 of
their contents (a notice's number in its participant's mailbox follows from their order, and is
checked against it); for the small administrative changes (participants, accounts, keys, limits,
acknowledgements) their canonical text. Payment rows are appended once and then updated in
place: an entry covers the rows it appended like an append-only table's (by rowid range and a
digest of the columns nothing updates: UETR, sender, instruction id, content, accounts), and
records every row it wrote by its queue state in full (`payment_states`: UETR, status,
sequence, priority, latest and reject-by times). Each entry's hash covers the previous entry's
hash and its own payload, so changing, removing or reordering any entry, or any row an entry
covers, breaks the chain from there on. `verify` recomputes everything and names the first
broken link; the tables the engine recovers from that later commits update in place
(participants, accounts, keys, policies, payment queue state) must end up as the entries say
they were last written.

Entries written before 2026-11-29 recorded payment rows by count and a digest of their first
four columns only (`payments`), which says neither which rows they were nor, once a row is
written again, what it held. The rows appended then are not checked, except for the queue
state of those written again since; `AuditReport.unchecked` says how many.

One thing a chain cannot show by itself: the log and the rows it covers cut back together to an
earlier entry still form an intact chain. So the head (the last entry's number and hash) is
published, to auditors and settlement agents who keep it outside scopay (`GET /v1/audit/head`,
`scopay audit head`); `verify` given such anchors checks that each entry is still there with
the hash it had, and, the chain being intact, so is everything before it.
"""

from __future__ import annotations

import hashlib
import io
import json
import operator
import pickle
import sqlite3
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from scopay.store.answer_codec import AnswerUnreadable, decode_answer

GENESIS_SHA256 = "0" * 64


def digest_rows(rows: Sequence[tuple]) -> str:
    """SHA-256 of rows of plain values (str, int, None, bool), the same from any source.

    Pickle in "fast" mode writes every value in full (no memo of repeated objects), so the
    bytes depend on the values alone; it is several times faster than any text rendering.
    """
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=4)
    pickler.fast = True
    pickler.dump(list(rows))
    return hashlib.sha256(buffer.getvalue()).hexdigest()


def answer_sha256(body: bytes) -> str:
    """The hash an entry records of an answer kept under an idempotency key."""
    return hashlib.sha256(body).hexdigest()


def chain_sha256(prev_sha256: str, payload: str) -> str:
    return hashlib.sha256(f"{prev_sha256}\n{payload}".encode()).hexdigest()


def canonical(payload: dict) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# How to read back the rows an entry covers, in the form they had when written.
COVERED_TABLES = {
    "journal": (
        "SELECT id, kind, debit_account_id, credit_account_id, amount_minor, currency, "
        "pending_id, timeout_s, linked, timestamp_us FROM journal "
        "WHERE seq BETWEEN ? AND ? ORDER BY seq",
        lambda r: (*r[:8], bool(r[8]), r[9]),
    ),
    "rejections": (
        "SELECT id, kind, debit_account_id, credit_account_id, amount_minor, currency, "
        "pending_id, timeout_s, linked, timestamp_us, rejection FROM transfer_rejection "
        "WHERE rowid BETWEEN ? AND ? ORDER BY rowid",
        lambda r: (*r[:8], bool(r[8]), r[9], r[10]),
    ),
    "payment_events": (
        "SELECT uetr, status, at_us, reason, detail FROM payment_event "
        "WHERE seq BETWEEN ? AND ? ORDER BY seq",
        tuple,
    ),
    "mailbox": (
        "SELECT participant_bic, kind, uetr, status, reason, created_us FROM mailbox "
        "WHERE seq BETWEEN ? AND ? ORDER BY seq",
        tuple,
    ),
    "payment": (  # the columns a payment row keeps from when it was appended
        "SELECT uetr, sender_bic, instruction_id, content, debtor_account, creditor_account "
        "FROM payment WHERE rowid BETWEEN ? AND ? ORDER BY rowid",
        tuple,
    ),
}
# Each covered table's SQL table and the column its rows are numbered by.
_NUMBERED_BY = {
    "journal": ("journal", "seq"),
    "rejections": ("transfer_rejection", "rowid"),
    "payment_events": ("payment_event", "seq"),
    "mailbox": ("mailbox", "seq"),
    "payment": ("payment", "rowid"),
}
LAST_ROW = {name: f"SELECT coalesce(max({column}), 0) FROM {table}"
            for name, (table, column) in _NUMBERED_BY.items()}
# The first row of each: rows are numbered from 1, so a row numbered 0 or below was put there
# by hand (SQLite takes any number given), where no entry's range reaches.
FIRST_ROW = {name: f"SELECT coalesce(min({column}), 1) FROM {table}"
             for name, (table, column) in _NUMBERED_BY.items()}


# A payment row in the order the store writes it: uetr, sender_bic, instruction_id, content,
# status, debtor_account, creditor_account, sequence, priority, latest_us, reject_by_us. A
# write of a row already there updates its queue state only.
PAYMENT_STATE_COLUMNS = "uetr, status, sequence, priority, latest_us, reject_by_us"
payment_fixed_columns = operator.itemgetter(0, 1, 2, 3, 5, 6)  # as COVERED_TABLES reads them
_payment_state = operator.itemgetter(0, 4, 7, 8, 9, 10)


def record_payment_states(rows: Sequence[tuple]) -> list[tuple]:
    """The queue state of payment rows as written, for an entry. Hot path (8,190 rows a bulk
    commit): itemgetter slices each row in C."""
    return list(map(_payment_state, rows))


class AuditHead(NamedTuple):
    """The last entry of the log: what an auditor writes down to anchor the chain."""

    seq: int
    sha256: str
    at_us: int


@dataclass(frozen=True)
class AuditReport:
    entries: int
    first_broken_seq: int | None
    reason: str | None
    unchecked: str | None = None  # what an intact chain could not vouch for (old entries)

    @property
    def ok(self) -> bool:
        return self.first_broken_seq is None


def head(db: sqlite3.Connection) -> AuditHead | None:
    row = db.execute(
        "SELECT seq, sha256, at_us FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    return None if row is None else AuditHead(*row)


def last_sha256(db: sqlite3.Connection) -> str:
    last = head(db)
    return GENESIS_SHA256 if last is None else last.sha256


def append_entry(db: sqlite3.Connection, prev_sha256: str, at_us: int, payload: dict) -> str:
    text = canonical({**payload, "at_us": at_us})  # the time is hashed with the rest
    sha = chain_sha256(prev_sha256, text)
    db.execute("INSERT INTO audit_log (at_us, payload, prev_sha256, sha256) VALUES (?,?,?,?)",
               (at_us, text, prev_sha256, sha))
    return sha


def verify(db: sqlite3.Connection,
           anchors: Sequence[tuple[int, str]] = ()) -> AuditReport:
    """Recompute the chain and every covered row range; name the first entry that fails.
    Each anchor (entry number, its hash as published) must still be in the chain."""
    report = _verify_chain(db)
    if not report.ok:
        return report
    for seq, sha in sorted(anchors):
        row = db.execute("SELECT sha256 FROM audit_log WHERE seq = ?", (seq,)).fetchone()
        if row is None:
            return AuditReport(report.entries, seq,
                               f"entry {seq}, published as the head once, is gone: the log "
                               f"was cut back (it has {report.entries} entries)")
        if row[0] != sha.lower():
            return AuditReport(report.entries, seq,
                               f"entry {seq} does not have the hash published for it: the "
                               "log was rewritten up to there")
    return report


def _verify_chain(db: sqlite3.Connection) -> AuditReport:
    prev = GENESIS_SHA256
    count = 0
    expected_next = dict.fromkeys(COVERED_TABLES, 1)
    admin = _AdminState()
    payments = _PaymentState()
    for seq, at_us, payload_text, prev_sha, sha in db.execute(
        "SELECT seq, at_us, payload, prev_sha256, sha256 FROM audit_log ORDER BY seq"
    ):
        count += 1
        if seq != count:  # numbered from 1 without gaps, as appended: a head names its entry
            return AuditReport(count, seq, f"it is numbered {seq} where entry {count} should be")
        if prev_sha != prev:
            return AuditReport(count, seq, "its link to the previous entry is broken")
        if chain_sha256(prev, payload_text) != sha:
            return AuditReport(count, seq, "its payload does not match its hash")
        payload = json.loads(payload_text)
        if payload.get("at_us", at_us) != at_us:  # entries of before 2026-11-29 lack it
            return AuditReport(count, seq, "its time is not the time it recorded")
        payments.admit_older_rows(seq, payload, expected_next)
        problem = _check_covered_rows(db, payload, expected_next)
        if problem is not None:
            return AuditReport(count, seq, problem)
        prev = sha
        admin.apply(payload)
        payments.apply(seq, payload)
    for table, next_row in expected_next.items():
        first = db.execute(FIRST_ROW[table]).fetchone()[0]
        if first < 1:
            return AuditReport(count, None if count == 0 else count + 1,
                               f"{table} rows numbered from {first}, below 1, are covered by "
                               "no entry")
        last = db.execute(LAST_ROW[table]).fetchone()[0]
        if table == "payment" and payments.older_rows_pending:
            payments.admit_older_range(next_row, last)
        elif last >= next_row:
            return AuditReport(count, None if count == 0 else count + 1,
                               f"{table} rows {next_row}..{last} are covered by no entry")
    problem = admin.compare(db) or _misnumbered_notice(db)
    if problem is not None:
        return AuditReport(count, count + 1, problem)
    broken = payments.compare(db)
    if broken is not None:
        seq, problem = broken
        return AuditReport(count, count + 1 if seq is None else seq, problem)
    return AuditReport(count, None, None, payments.unchecked())


class _AdminState:
    """The participants, accounts, keys and policies as the entries say they were written;
    at the end of a verification they must be what the tables hold (the engine recovers
    from those rows, so an edit there, or a deleted entry, would otherwise go unseen). So
    must the answers kept under idempotency keys, which a retry is given again: each by its
    request digest, status and (in entries written since the body was hashed) its body."""

    def __init__(self) -> None:
        # (bic, key) -> (request digest, status[, body's SHA-256]), until forgotten
        self.answers: dict[tuple[str, str], tuple] = {}
        self.participants: dict[str, tuple] = {}
        self.accounts: dict[int, list] = {}  # id -> [id, owner, currency, kind, line, blocked]
        self.keys: dict[str, tuple] = {}  # key id -> (id, bic, public key, created, revoked)
        self.policies: dict[int, tuple] = {}
        self.acknowledged: list[tuple] = []  # (seq, bic, at) as recorded, in order

    def apply(self, payload: dict) -> None:
        for row in payload.get("participants", ()):
            known = self.participants.get(row[0])
            # as written: a participant seen before changes its name and status only
            self.participants[row[0]] = tuple(row) if known is None else (
                known[0], row[1], *known[2:7], row[7])
        for row in payload.get("accounts", ()):
            known = self.accounts.get(row[0])
            if known is None:
                self.accounts[row[0]] = [*row, 0]
            else:
                known[4] = row[4]  # only the credit line changes
        for flag, account_id in payload.get("blocked", ()):
            if account_id in self.accounts:
                self.accounts[account_id][5] = flag
        for row in payload.get("keys", ()):
            self.keys[row[0]] = (*row, None)
        for at_us, key_id in payload.get("revoked_keys", ()):
            known = self.keys.get(key_id)
            if known is not None and known[4] is None:
                self.keys[key_id] = (*known[:4], at_us)
        for row in payload.get("policies", ()):
            self.policies[row[0]] = tuple(row)
        for row in payload.get("idempotency", ()):
            self.answers[row[0], row[1]] = tuple(row[2:])
        for bic, key in payload.get("forgotten_answers", ()):
            self.answers.pop((bic, key), None)
        self.acknowledged.extend(tuple(row) for row in payload.get("acknowledged", ()))

    def _acknowledgements(self, db: sqlite3.Connection) -> dict[int, tuple]:
        """The acknowledged notices the records make, as the store applies them: a notice of
        the acknowledging participant's own, the first time. (Until 2026-11-29 the store
        also recorded acknowledgements that changed nothing: a repeat, another's notice.)
        The holders are the mailbox rows' own, which the entries' digests cover."""
        seqs = sorted({seq for seq, _, _ in self.acknowledged})
        holders: dict[int, str] = {}
        for first in range(0, len(seqs), 500):
            chunk = seqs[first:first + 500]
            holders.update(db.execute(
                f"SELECT seq, participant_bic FROM mailbox WHERE seq IN "
                f"({','.join('?' * len(chunk))})", chunk))
        made: dict[int, tuple] = {}
        for seq, bic, at_us in self.acknowledged:
            if holders.get(seq) == bic and seq not in made:
                made[seq] = (seq, bic, at_us)
        return made

    def compare(self, db: sqlite3.Connection) -> str | None:
        tables = (
            ("participant", "SELECT bic, name, role, country, tier, sponsor_bic, "
             "settlement_currency, status FROM participant", self.participants),
            ("account", "SELECT id, owner_bic, currency, kind, credit_line_minor, blocked "
             "FROM account", {k: tuple(v) for k, v in self.accounts.items()}),
            ("participant_key", "SELECT key_id, participant_bic, public_key, created_us, "
             "revoked_us FROM participant_key", self.keys),
            ("account_policy", "SELECT account_id, reserved_urgent_minor, reserved_high_minor, "
             "multilateral_limit_minor, bilateral_limits FROM account_policy", self.policies),
            # a notice acknowledged leaves its holder's unread list: which were, and when
            ("mailbox", "SELECT seq, participant_bic, acked_us FROM mailbox "
             "WHERE acked_us IS NOT NULL", self._acknowledgements(db)),
        )
        for table, sql, expected in tables:
            found = {row[0]: tuple(row) for row in db.execute(sql)}
            for key in sorted(found.keys() | expected.keys(), key=str):
                if found.get(key) != expected.get(key):
                    return (f"{table} row {key} is not what the audit entries recorded "
                            "(changed, added or its entry removed)")
        # (as bytes: a text edited in that is no UTF-8 would stop sqlite3 reading the row)
        found = {(bic, key): (digest, status, answer_sha256(_kept_body(body, encoding)),
                              created_us)
                 for bic, key, digest, status, body, encoding, created_us in db.execute(
                     "SELECT participant_bic, idempotency_key, request_sha256, status_code, "
                     "CAST(response_body AS BLOB), CAST(body_encoding AS BLOB), created_us "
                     "FROM idempotency_record")}
        for bic, key in sorted(found.keys() | self.answers.keys()):
            recorded, row = self.answers.get((bic, key)), found.get((bic, key))
            if recorded is None or row is None or row[:len(recorded)] != recorded:
                return (f"the answer kept for {bic}'s idempotency key {key!r} is not what the "
                        "audit entries recorded (changed, added or its entry removed)")
        return None


def _kept_body(stored: object, encoding: object) -> bytes:
    """The bytes a retry would be given, as far as they can be read. A body edited into
    another type (text, a number) is hashed as its text, and one that does not decode (a
    damaged deflate body, an encoding changed) as a mark no answer begins with: either then
    differs from the bytes recorded, and is named rather than crashing the check."""
    if not isinstance(stored, bytes):
        return str(stored).encode()
    encoding = encoding if isinstance(encoding, bytes) else str(encoding).encode()
    try:
        return decode_answer(stored, encoding)
    except AnswerUnreadable:
        return b"\0unreadable " + encoding + b" " + stored


class _PaymentState:
    """The payment rows' queue state as the entries say it was last written (the engine
    recovers its queue from it), kept per UETR as a small tuple with the number of the entry
    that recorded it, and compared with the table at the end. The other columns are checked
    by rowid range, as for the append-only tables."""

    def __init__(self) -> None:
        self.state: dict[str, tuple] = {}  # uetr -> (entry, status, sequence, priority, ...)
        self.older_rows_pending = False  # an older-form entry since the last numbered rows
        self.older_last_seq = 0
        self.older_ranges: list[tuple[int, int]] = []  # rowids appended by older entries
        self.state_not_recorded = 0  # of those, rows not written since (set by compare)

    def admit_older_rows(self, seq: int, payload: dict, expected_next: dict[str, int]) -> None:
        """Rows appended by older-form entries (unnumbered) end where the next numbered ones
        begin: take that gap as theirs, and not as rows missing."""
        if "payments" in payload:  # older form: [count, digest of uetr ... content]
            self.older_rows_pending, self.older_last_seq = True, seq
        covered = payload.get("payment")
        if covered is not None and self.older_rows_pending:
            self.admit_older_range(expected_next["payment"], covered[0] - 1)
            expected_next["payment"] = covered[0]
            self.older_rows_pending = False

    def admit_older_range(self, first: int, last: int) -> None:
        if last >= first:
            self.older_ranges.append((first, last))

    def apply(self, seq: int, payload: dict) -> None:
        intern, state = sys.intern, self.state
        for uetr, status, sequence, priority, latest_us, reject_by_us in payload.get(
                "payment_states", ()):
            state[uetr] = (seq, intern(status), sequence, intern(priority), latest_us,
                           reject_by_us)

    def compare(self, db: sqlite3.Connection) -> tuple[int | None, str] | None:
        """(entry to blame, what is wrong) for the first payment row, in table order, whose
        queue state is not as last recorded; then for a recorded row that is gone."""
        state = self.state
        self.state_not_recorded = 0
        for rowid, uetr, *found in db.execute(
                f"SELECT rowid, {PAYMENT_STATE_COLUMNS} FROM payment ORDER BY rowid"):
            recorded = state.pop(uetr, None)
            if recorded is None:
                if not any(first <= rowid <= last for first, last in self.older_ranges):
                    return None, (f"payment {uetr} has a queue state no entry recorded "
                                  "(its entry removed?)")
                self.state_not_recorded += 1
            elif tuple(found) != recorded[1:]:
                return recorded[0], (f"payment {uetr} is not what the audit entries recorded "
                                     f"({_state_difference(recorded[1:], found)})")
        gone = next(iter(state.items()), None)
        if gone is not None:
            uetr, recorded = gone
            return recorded[0], f"payment {uetr}, recorded by entry {recorded[0]}, is gone"
        return None

    def unchecked(self) -> str | None:
        older = sum(last - first + 1 for first, last in self.older_ranges)
        if not older:
            return None
        return (f"{older} payment rows were appended by entries of the older form (up to entry "
                f"{self.older_last_seq}), which did not record them: their sender, instruction "
                f"id, content and accounts are not checked, nor the queue state of the "
                f"{self.state_not_recorded} not written since")


def _misnumbered_notice(db: sqlite3.Connection) -> str | None:
    """A notice's number in its participant's mailbox is not in the entries' digests: it is
    its place among that participant's notices in seq order, which they cover. The first
    notice numbered otherwise, if any."""
    row = db.execute(
        "SELECT seq, participant_bic, number, place FROM (SELECT seq, participant_bic, number, "
        "row_number() OVER (PARTITION BY participant_bic ORDER BY seq) AS place FROM mailbox) "
        "WHERE number IS NOT place ORDER BY seq LIMIT 1").fetchone()
    if row is None:
        return None
    seq, bic, number, place = row
    return (f"mailbox row {seq} is numbered {number} in {bic}'s mailbox, where its place makes "
            f"it {place}")


def _state_difference(recorded: Sequence, found: Sequence) -> str:
    names = PAYMENT_STATE_COLUMNS.split(", ")[1:]
    return ", ".join(f"{name} {have!r}, recorded {want!r}"
                     for name, want, have in zip(names, recorded, found, strict=True)
                     if want != have)


def _check_covered_rows(db: sqlite3.Connection, payload: dict,
                        expected_next: dict[str, int]) -> str | None:
    for table, (sql, shape) in COVERED_TABLES.items():
        covered = payload.get(table)
        if covered is None:
            continue
        first, last, digest = covered
        if first != expected_next[table]:
            return f"{table} rows {expected_next[table]}..{first - 1} are missing or extra"
        rows = [shape(row) for row in db.execute(sql, (first, last))]
        if len(rows) != last - first + 1 or digest_rows(rows) != digest:
            return f"{table} rows {first}..{last} were changed after they were written"
        expected_next[table] = last + 1
    return None
