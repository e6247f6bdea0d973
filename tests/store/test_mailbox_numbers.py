"""Mailbox numbers: each participant's notices are numbered 1, 2, 3 ... in its own mailbox,
whatever others are sent in between, so a participant can tell it has them all (no gap) and
learns nothing of how busy the network is. It names its notices by these numbers alone."""

from __future__ import annotations

import json
import sqlite3
import uuid
from contextlib import closing

import pytest
from test_ledger_store_review import verify_audit  # this folder's helpers

from schema_versions import undo_mailbox_numbers
from scopay.domain.ledger import Transfer
from scopay.domain.mailbox import Notice, NoticeKind
from scopay.domain.payment import Party, Payment
from scopay.engine.engine import Engine
from scopay.store.sqlite import SQLiteStore

ICBK, ABOC, SABR = "ICBKCNBJ", "ABOCCNBJ", "SABRRUMM"


def traffic(engine, network, rounds: int = 5) -> None:
    """Interleaved notices: transfers and payments between ICBK and ABOC (a notice each to
    both), and SABR's funds moved within RUB (to SABR alone, between theirs)."""
    t = network.funded_at_us
    for n in range(rounds):
        engine.submit([Transfer(f"cny-{n}", network.icbk_cny, network.aboc_cny, 10, "CNY")],
                      t + 10 * n + 1)
        engine.submit([Transfer(f"rub-{n}", network.sabr_rub, network.rub_issuance, 1, "RUB",
                                )], t + 10 * n + 2)
        engine.submit_payments(ICBK, [Payment(str(uuid.uuid4()), f"i-{n}", "e2e", ICBK, ABOC,
                                              Party("Ли Вэй"), Party("王芳"), 20, "CNY")],
                               t + 10 * n + 3)


def numbers(engine, bic: str) -> list[int]:
    return [number for number, _, _ in engine.mailbox(bic, 0, 500)]


def rows(db_path) -> list[tuple]:
    with closing(sqlite3.connect(db_path)) as db:
        return db.execute("SELECT seq, participant_bic, number, acked_us FROM mailbox "
                          "ORDER BY seq").fetchall()


def test_each_mailbox_is_numbered_from_1_without_gaps(engine, network):
    traffic(engine, network)
    for bic in (ICBK, ABOC, SABR):
        found = numbers(engine, bic)
        assert found == list(range(1, len(found) + 1)), bic
        assert len(found) >= 5
    # the network's own order (seq) interleaves them: numbers are not seqs
    assert numbers(engine, ICBK) != [seq for seq, bic, _, _ in rows(engine.store.path)
                                     if bic == ICBK]


def test_a_page_starts_after_the_number_given(engine, network):
    traffic(engine, network)
    whole = engine.mailbox(ABOC, 0, 500)
    assert engine.mailbox(ABOC, 3, 2) == whole[3:5]
    assert engine.mailbox(ABOC, len(whole), 10) == []


def test_an_acknowledgement_names_the_callers_own_notice_and_is_audited_by_row(
        engine, network, db_path):
    traffic(engine, network)
    t = network.funded_at_us + 1_000
    engine.acknowledge(ABOC, [2, 4, 4, 999], t)  # a repeat and a number not given: nothing
    assert numbers(engine, ABOC)[:4] == [1, 3, 5, 6]
    assert numbers(engine, ICBK)[:4] == [1, 2, 3, 4]  # its 2 and 4 are its own, unread
    acked = [(seq, bic) for seq, bic, _, at in rows(db_path) if at is not None]
    assert [bic for _, bic in acked] == [ABOC, ABOC]
    engine.close()
    with closing(sqlite3.connect(db_path)) as db:
        (payload,), = db.execute("SELECT payload FROM audit_log ORDER BY seq DESC LIMIT 1")
    assert [tuple(row[:2]) for row in json.loads(payload)["acknowledged"]] == acked
    assert verify_audit(db_path).ok


def test_a_database_of_before_numbers_is_numbered_in_each_mailboxs_order(
        engine, network, db_path):
    traffic(engine, network)
    engine.acknowledge(ABOC, [1], network.funded_at_us + 1_000)
    before = {bic: engine.mailbox(bic, 0, 500) for bic in (ICBK, ABOC, SABR)}
    numbered = rows(db_path)
    engine.close()
    with closing(sqlite3.connect(db_path)) as db, db:
        undo_mailbox_numbers(db)
    assert all(len(row) == 3 for row in sqlite3.connect(db_path).execute(
        "SELECT seq, participant_bic, acked_us FROM mailbox"))
    again = Engine(SQLiteStore(db_path))  # a writer upgrades the schema
    try:
        assert rows(db_path) == numbered
        assert {bic: again.mailbox(bic, 0, 500) for bic in before} == before
        traffic(again, network, rounds=1)  # and numbers on from there
        found = numbers(again, ICBK)
        assert found == list(range(1, len(found) + 1))
    finally:
        again.close()
    assert verify_audit(db_path).ok


def test_a_batch_that_is_not_kept_takes_no_numbers(tmp_path):
    store = SQLiteStore(tmp_path / "mailbox.db")
    try:
        def notice(uetr: str) -> Notice:
            return Notice(ICBK, NoticeKind.STATUS_REPORT, uetr, "settled", None, 1)

        store.commit(notices=[notice("a"), notice("b")], at_us=1)
        store.stage(notices=[notice("gone")], at_us=2)
        store.discard()
        with pytest.raises(sqlite3.IntegrityError):  # a batch that fails on its last row
            store.commit(notices=[notice("gone too"), Notice(
                ICBK, NoticeKind.STATUS_REPORT, "no time", "settled", None, None)], at_us=3)
        store.commit(notices=[notice("c")], at_us=4)
        assert [(n, x.uetr) for n, x, _ in store.mailbox(ICBK)] == [(1, "a"), (2, "b"),
                                                                     (3, "c")]
    finally:
        store.close()


def test_a_sqlite_older_than_scopay_needs_is_named_before_anything_is_opened(tmp_path,
                                                                            monkeypatch):
    """Schema version 5 numbers the notices with UPDATE ... FROM and a window function
    (SQLite 3.33): an older library is named, not met by a syntax error mid-migration."""
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 32, 3))
    monkeypatch.setattr(sqlite3, "sqlite_version", "3.32.3")
    with pytest.raises(RuntimeError, match=r"SQLite 3\.33\.0 or newer.*links SQLite 3\.32\.3"):
        SQLiteStore(tmp_path / "old.db")
    assert list(tmp_path.iterdir()) == []


def test_a_notice_is_found_by_its_number_acknowledged_or_not(engine, network):
    """Each number is in one of two indexes, of the notices unread and of those read (a
    notice moves when acknowledged): fetched by number from either, never another's."""
    traffic(engine, network, rounds=2)
    listed = {number: notice for number, notice, _ in engine.mailbox(ABOC, 0, 500)}
    engine.acknowledge(ABOC, [1, 3], network.funded_at_us + 1_000)
    for number, notice in listed.items():
        assert engine.store.mailbox_notice(ABOC, number) == notice
    assert engine.store.mailbox_notice(ABOC, len(listed) + 1) is None
    assert engine.store.mailbox_notice(SABR, 1) != listed[1]
