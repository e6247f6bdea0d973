"""The audit chain over answers kept under idempotency keys: a retry is given the stored
answer again, so `scopay audit verify` checks each kept answer (request digest, status and
body) against what the entries recorded, and a forgotten one against its forgetting."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from contextlib import closing

import pytest
from test_ledger_store_review import tamper, verify_audit  # this folder's helpers

from scopay.engine.answers import ANSWER_RETENTION_US
from scopay.store.audit import append_entry, last_sha256

ICBK, ABOC = "ICBKCNBJ", "ABOCCNBJ"
SETTLED = b'{"status":"settled"}'
QUEUED = b'{"status":"queued"}'


def kept_answers(engine, network) -> int:
    """Two answers kept under idempotency keys, the engine closed; the time they were kept."""
    at = network.funded_at_us + 1
    engine.remember_responses([(ICBK, "key-1", "a" * 64, 201, SETTLED),
                               (ABOC, "key-2", "b" * 64, 202, QUEUED)], at)
    engine.close()
    return at


def recorded_answers(db_path) -> list[list]:
    with closing(sqlite3.connect(db_path)) as db:
        return [row for (text,) in db.execute("SELECT payload FROM audit_log ORDER BY seq")
                for row in json.loads(text).get("idempotency", ())]


def test_kept_answers_are_recorded_with_their_body_and_time_and_verify(engine, network,
                                                                      db_path):
    at = kept_answers(engine, network)
    assert recorded_answers(db_path) == [
        [ICBK, "key-1", "a" * 64, 201, hashlib.sha256(SETTLED).hexdigest(), at],
        [ABOC, "key-2", "b" * 64, 202, hashlib.sha256(QUEUED).hexdigest(), at],
    ]
    assert verify_audit(db_path).ok


@pytest.mark.parametrize(("change", "key"), [
    ("UPDATE idempotency_record SET response_body = X'7b2273746174757322' "
     "WHERE idempotency_key = 'key-1'", "key-1"),
    ("UPDATE idempotency_record SET response_body = 'rejected' WHERE idempotency_key = 'key-1'",
     "key-1"),
    ("UPDATE idempotency_record SET status_code = 422 WHERE idempotency_key = 'key-2'", "key-2"),
    ("UPDATE idempotency_record SET request_sha256 = 'c' WHERE idempotency_key = 'key-1'",
     "key-1"),
    ("DELETE FROM idempotency_record WHERE idempotency_key = 'key-2'", "key-2"),
    # kept longer (or forgotten sooner) than the retention the time it was kept gives
    ("UPDATE idempotency_record SET created_us = created_us + 8640000000000 "
     "WHERE idempotency_key = 'key-1'", "key-1"),
    ("INSERT INTO idempotency_record (participant_bic, idempotency_key, request_sha256, "
     f"status_code, response_body, created_us) VALUES ('{ICBK}', 'key-3', 'd', 201, X'7b7d', 1)",
     "key-3"),
])
def test_an_answer_changed_removed_or_added_behind_scopays_back_is_named(
        engine, network, db_path, change, key):
    kept_answers(engine, network)
    tamper(db_path, change)
    report = verify_audit(db_path)
    assert not report.ok
    assert f"idempotency key {key!r}" in report.reason


def test_answers_forgotten_after_their_retention_verify(engine, network, db_path,
                                                        open_engine):
    at = kept_answers(engine, network)
    reopened = open_engine()
    reopened.heartbeat(at + ANSWER_RETENTION_US + 1)
    reopened.close()
    with closing(sqlite3.connect(db_path)) as db:
        assert db.execute("SELECT count(*) FROM idempotency_record").fetchone() == (0,)
    assert verify_audit(db_path).ok


def an_answer_kept_in_the_older_form(db_path, at_us: int) -> None:
    """An answer kept as scopay wrote it before entries hashed kept bodies: its entry records
    the request digest and the status only."""
    with closing(sqlite3.connect(db_path)) as db:
        db.execute("INSERT INTO idempotency_record (participant_bic, idempotency_key, "
                   "request_sha256, status_code, response_body, created_us) "
                   "VALUES (?,?,?,?,?,?)",
                   (ICBK, "key-old", "e" * 64, 201, SETTLED, at_us))
        append_entry(db, last_sha256(db), at_us, {"idempotency": [[ICBK, "key-old", "e" * 64,
                                                                   201]]})
        db.commit()


def test_an_answer_of_the_older_form_is_checked_by_its_digest_and_status(engine, network,
                                                                          db_path):
    an_answer_kept_in_the_older_form(db_path, kept_answers(engine, network) + 1)
    assert verify_audit(db_path).ok
    for change in ("UPDATE idempotency_record SET status_code = 422",
                   "UPDATE idempotency_record SET request_sha256 = 'f'"):
        tamper(db_path, f"{change} WHERE idempotency_key = 'key-old'")
        report = verify_audit(db_path)
        assert not report.ok and "idempotency key 'key-old'" in report.reason
        tamper(db_path, "UPDATE idempotency_record SET status_code = 201, request_sha256 = "
               f"'{'e' * 64}' WHERE idempotency_key = 'key-old'")
        assert verify_audit(db_path).ok


def test_an_answer_of_the_older_form_has_its_body_unchecked_the_newer_ones_not(
        engine, network, db_path):
    """What the older entries cannot prove: an edited body of theirs goes unseen, while the
    same edit to an answer kept since is named."""
    an_answer_kept_in_the_older_form(db_path, kept_answers(engine, network) + 1)
    tamper(db_path, "UPDATE idempotency_record SET response_body = X'7b7d' "
           "WHERE idempotency_key = 'key-old'")
    assert verify_audit(db_path).ok
    tamper(db_path, "UPDATE idempotency_record SET response_body = X'7b7d' "
           "WHERE idempotency_key = 'key-1'")
    report = verify_audit(db_path)
    assert not report.ok and "idempotency key 'key-1'" in report.reason
