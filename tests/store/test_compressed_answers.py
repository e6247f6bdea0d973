"""Answers kept under idempotency keys may be stored deflated (schema version 6): a retry
still gets the answer's own bytes, `scopay audit verify` checks those bytes against the hash
its entry recorded, and a stored body that does not decode is named, never trusted."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import zlib
from contextlib import closing

import pytest
from test_ledger_store_review import tamper, verify_audit  # this folder's helpers

from schema_versions import undo_compressed_answers
from scopay.store import answer_codec
from scopay.store.answer_codec import (
    COMPRESS_FROM_BYTES,
    AnswerUnreadable,
    decode_answer,
    encode_answer,
)

ICBK = "ICBKCNBJ"
SMALL = b'{"status":"settled"}'
LARGE = json.dumps([{"uetr": f"{n:032x}", "status": "settled", "amount": "0.01"}
                    for n in range(400)]).encode()


def keep(engine, network) -> None:
    engine.remember_responses([(ICBK, "small", "a" * 64, 201, SMALL),
                               (ICBK, "large", "b" * 64, 200, LARGE)],
                              network.funded_at_us + 1)
    engine.close()


def stored(db_path) -> dict[str, tuple[bytes, str]]:
    with closing(sqlite3.connect(db_path)) as db:
        return {key: (body, encoding) for key, body, encoding in db.execute(
            "SELECT idempotency_key, response_body, body_encoding FROM idempotency_record")}


def test_a_large_answer_is_stored_deflated_a_small_one_as_given(engine, network, db_path):
    assert len(LARGE) > COMPRESS_FROM_BYTES > len(SMALL)
    keep(engine, network)
    rows = stored(db_path)
    assert rows["small"] == (SMALL, "identity")
    body, encoding = rows["large"]
    assert encoding == "deflate" and len(body) < len(LARGE) / 4
    assert zlib.decompress(body) == LARGE
    assert verify_audit(db_path).ok


def test_a_retry_after_a_restart_gets_the_answers_own_bytes(engine, network, db_path,
                                                            open_engine):
    keep(engine, network)
    reopened = open_engine()
    assert reopened.idempotency.get((ICBK, "large")) == ("b" * 64, 200, LARGE)
    assert reopened.idempotency.get((ICBK, "small")) == ("a" * 64, 201, SMALL)
    reopened.close()


@pytest.mark.parametrize("change", [
    # another answer, deflated as scopay would: the bytes differ from those recorded
    "UPDATE idempotency_record SET response_body = X'{other}' WHERE idempotency_key = 'large'",
    # the deflated body cut short, or read as if stored as given
    "UPDATE idempotency_record SET response_body = substr(response_body, 1, 40) "
    "WHERE idempotency_key = 'large'",
    "UPDATE idempotency_record SET body_encoding = 'identity' WHERE idempotency_key = 'large'",
    # an encoding scopay does not write
    "UPDATE idempotency_record SET body_encoding = 'gzip' WHERE idempotency_key = 'large'",
    # an answer kept as given, said to be deflated, or of another encoding: a retry could
    # not read it, though its bytes are those recorded (found by review)
    "UPDATE idempotency_record SET body_encoding = 'deflate' WHERE idempotency_key = 'small'",
    "UPDATE idempotency_record SET body_encoding = 'gzip' WHERE idempotency_key = 'small'",
    # text that is no UTF-8, which sqlite3 cannot read as text (found by review: a crash)
    "UPDATE idempotency_record SET body_encoding = CAST(x'ff' AS TEXT) "
    "WHERE idempotency_key = 'small'",
    "UPDATE idempotency_record SET response_body = CAST(x'ff' AS TEXT) "
    "WHERE idempotency_key = 'small'",
])
def test_a_stored_body_that_does_not_give_the_recorded_bytes_is_named(engine, network,
                                                                      db_path, change):
    keep(engine, network)
    other = zlib.compress(LARGE.replace(b"settled", b"queued!"), 1).hex()
    tamper(db_path, change.format(other=other))
    report = verify_audit(db_path)
    assert not report.ok
    assert "idempotency key 'large'" in report.reason or (
        "'small'" in change and "idempotency key 'small'" in report.reason)


def test_encoding_round_trips_and_keeps_what_deflate_would_not_shrink():
    for body in (b"", SMALL, LARGE, bytes(range(256)) * 64):
        assert decode_answer(*encode_answer(body)) == body
    # hashes: bytes deflate cannot shrink, kept as given
    dense = b"".join(hashlib.sha256(str(n).encode()).digest() for n in range(400))
    assert len(dense) > COMPRESS_FROM_BYTES
    assert encode_answer(dense) == (dense, "identity")


def test_decoding_refuses_damaged_data_trailing_bytes_and_bombs(monkeypatch):
    deflated, _ = encode_answer(LARGE)
    for damaged in (deflated[:-5], deflated + b"more", b"not deflate data"):
        with pytest.raises(AnswerUnreadable):
            decode_answer(damaged, "deflate")
    with pytest.raises(AnswerUnreadable, match="unknown body encoding"):
        decode_answer(deflated, "br")
    monkeypatch.setattr(answer_codec, "ANSWER_BYTES_MAX", len(LARGE) - 1)
    with pytest.raises(AnswerUnreadable):  # inflates past the bound: not read whole
        decode_answer(deflated, "deflate")


def test_answers_kept_before_version_6_are_read_as_given_after_the_upgrade(
        engine, network, db_path, open_engine):
    keep(engine, network)
    with closing(sqlite3.connect(db_path)) as db, db:
        undo_compressed_answers(db)
        assert {key: len(body) for key, body in db.execute(
            "SELECT idempotency_key, response_body FROM idempotency_record")} == {
            "small": len(SMALL), "large": len(LARGE)}
    reopened = open_engine()  # a writer upgrades the schema: the rows stay as they were
    try:
        assert stored(db_path) == {"small": (SMALL, "identity"), "large": (LARGE, "identity")}
        assert reopened.idempotency.get((ICBK, "large")) == ("b" * 64, 200, LARGE)
        reopened.remember_responses([(ICBK, "later", "c" * 64, 200, LARGE)],
                                    network.funded_at_us + 2)
    finally:
        reopened.close()
    assert stored(db_path)["later"][1] == "deflate"
    assert verify_audit(db_path).ok
