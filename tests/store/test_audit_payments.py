"""The audit chain over payment rows: the queue state the engine recovers from (status,
sequence, priority, latest and reject-by times) and the columns fixed at a payment's first
write, on real SQLite files; and databases whose entries recorded payments the older way."""

from __future__ import annotations

import json
import sqlite3
import uuid
from contextlib import closing

import pytest
from test_ledger_store_review import tamper, verify_audit  # this folder's helpers
from typer.testing import CliRunner

from scopay.cli.main import app
from scopay.domain.payment import Party, Payment, PaymentStatus, Priority
from scopay.store import sqlite as sqlite_module
from scopay.store.audit import digest_rows

ICBK, ABOC = "ICBKCNBJ", "ABOCCNBJ"  # ICBK holds 1000.00 CNY; ABOC 0 with a 500.00 line
SECOND_US = 1_000_000


def payment(debtor, creditor, amount_minor, **extra) -> Payment:
    return Payment(str(uuid.uuid4()), uuid.uuid4().hex[:12], "e2e", debtor, creditor,
                   Party("Ли Вэй"), Party("محمد رضایی"), amount_minor, "CNY", **extra)


def payloads(db_path) -> list[tuple[int, dict]]:
    with closing(sqlite3.connect(db_path)) as db:
        return [(seq, json.loads(text)) for seq, text in
                db.execute("SELECT seq, payload FROM audit_log ORDER BY seq")]


def run_queue(engine, network) -> dict[str, str]:
    """Three queued payments reordered, reprioritised and retimed, one settled, one
    cancelled; the engine closed. Returns the UETRs by role."""
    t = network.funded_at_us
    first, second, third, cancelled = (payment(ICBK, ABOC, 150_000) for _ in range(4))
    settled = payment(ICBK, ABOC, 10_000)
    engine.submit_payments(ICBK, [first, second, third, cancelled, settled], t + 1)
    engine.move_payment(third.uetr, True, t + 2)
    engine.change_payment_priority(second.uetr, Priority.URGENT, t + 3)
    engine.set_payment_times(first.uetr, t + 60 * SECOND_US, t + 90 * SECOND_US, t + 4)
    engine.cancel_payment(cancelled.uetr, t + 5)
    assert engine.payment(settled.uetr).status == PaymentStatus.SETTLED
    engine.close()
    return {"first": first.uetr, "second": second.uetr, "third": third.uetr,
            "cancelled": cancelled.uetr, "settled": settled.uetr}


@pytest.fixture
def queued(engine, network, db_path) -> dict[str, str]:
    return run_queue(engine, network)


def last_entry_recording(db_path, uetr: str) -> int:
    return max(seq for seq, payload in payloads(db_path)
               if any(row[0] == uetr for row in payload.get("payment_states", ())))


def test_queue_operations_verify_and_each_entry_records_the_rows_queue_state(queued, db_path,
                                                                           network):
    report = verify_audit(db_path)
    assert report.ok and report.unchecked is None
    written = [row for _, payload in payloads(db_path)
               for row in payload.get("payment_states", ()) if row[0] == queued["first"]]
    uetr, status, _, priority, latest_us, reject_by_us = written[-1]  # the state, in full
    assert (status, priority) == ("queued", "normal")
    assert (latest_us, reject_by_us) == (network.funded_at_us + 60 * SECOND_US,
                                         network.funded_at_us + 90 * SECOND_US)


@pytest.mark.parametrize(("role", "assignment"), [
    ("second", "priority = 'normal'"),
    ("third", "sequence = sequence + 100"),
    ("first", "latest_us = latest_us + 1"),
    ("first", "reject_by_us = NULL"),
    ("first", "status = 'settled'"),
    ("cancelled", "status = 'queued'"),
    ("settled", "priority = 'urgent'"),
], ids=["priority", "sequence", "latest", "reject-by", "status-queued", "status-cancelled",
        "priority-settled"])
def test_a_changed_queue_state_is_named_with_the_entry_that_recorded_it(queued, db_path, role,
                                                                         assignment):
    uetr = queued[role]
    tamper(db_path, f"UPDATE payment SET {assignment} WHERE uetr = '{uetr}'")
    report = verify_audit(db_path)
    assert not report.ok
    assert f"payment {uetr} is not what the audit entries recorded" in report.reason
    assert report.first_broken_seq == last_entry_recording(db_path, uetr)


def appending_entry(db_path, uetr: str) -> int:
    """The entry whose payment rowid range holds the row of this UETR."""
    with closing(sqlite3.connect(db_path)) as db:
        (rowid,) = db.execute("SELECT rowid FROM payment WHERE uetr = ?", (uetr,)).fetchone()
    (seq,) = [seq for seq, payload in payloads(db_path)
              if payload.get("payment", [0, -1])[0] <= rowid <= payload.get("payment", [0, -1])[1]]
    return seq


@pytest.mark.parametrize("assignment", [
    "sender_bic = 'ABOCCNBJ'",
    "instruction_id = 'another'",
    "content = replace(content, '150000', '150001')",
    "debtor_account = 12",
    "creditor_account = NULL",
], ids=["sender", "instruction-id", "content", "debtor-account", "creditor-account"])
def test_a_changed_fixed_column_is_named_at_the_entry_that_appended_the_row(
        queued, db_path, assignment):
    uetr = queued["third"]
    entry = appending_entry(db_path, uetr)
    tamper(db_path, f"UPDATE payment SET {assignment} WHERE uetr = '{uetr}'")
    report = verify_audit(db_path)
    assert not report.ok and report.first_broken_seq == entry
    assert "payment rows" in report.reason and "changed after they were written" in report.reason


@pytest.mark.parametrize("role", ["second", "settled"], ids=["within", "last"])
def test_a_removed_payment_row_is_named_at_the_entry_that_appended_it(queued, db_path, role):
    entry = appending_entry(db_path, queued[role])
    tamper(db_path, f"DELETE FROM payment WHERE uetr = '{queued[role]}'")
    report = verify_audit(db_path)
    assert not report.ok and report.first_broken_seq == entry


def test_an_added_payment_row_is_covered_by_no_entry(queued, db_path):
    tamper(db_path, "INSERT INTO payment SELECT 'x' || uetr, sender_bic, 'x' || instruction_id, "
                    "content, status, debtor_account, creditor_account, sequence + 1000, "
                    f"priority, latest_us, reject_by_us FROM payment WHERE uetr = "
                    f"'{queued['first']}'")
    report = verify_audit(db_path)
    assert not report.ok and "payment rows" in report.reason
    assert "covered by no entry" in report.reason
    assert report.first_broken_seq == report.entries + 1


def test_a_commit_appending_one_row_and_rewriting_another_covers_each_its_way(
        queued, db_path, open_engine, network):
    engine = open_engine()  # ICBK gets enough to settle the head of its queue: the urgent one
    (result,) = engine.submit_payments(ABOC, [payment(ABOC, ICBK, 60_000)],
                                       network.funded_at_us + 10)
    assert engine.payment(queued["second"]).status == PaymentStatus.SETTLED
    engine.close()
    _, last = payloads(db_path)[-1]
    assert last["payment"][1] == last["payment"][0]  # one row appended
    assert {row[0] for row in last["payment_states"]} == {result.uetr, queued["second"]}
    assert verify_audit(db_path).ok
    tamper(db_path, f"UPDATE payment SET status = 'queued' WHERE uetr = '{queued['second']}'")
    assert f"payment {queued['second']}" in verify_audit(db_path).reason


def test_the_last_recorded_state_wins_over_earlier_ones(queued, db_path):
    """Putting back the state an earlier entry recorded is a change too."""
    uetr = queued["second"]
    recorded = [row for _, payload in payloads(db_path)
                for row in payload.get("payment_states", ()) if row[0] == uetr]
    assert [row[3] for row in recorded][-1] == "urgent" and "normal" in [r[3] for r in recorded]
    tamper(db_path, f"UPDATE payment SET priority = 'normal' WHERE uetr = '{uetr}'")
    assert not verify_audit(db_path).ok


# -- databases whose entries recorded payment rows the older way ------------------------------


def write_payments_in_the_older_form(monkeypatch) -> None:
    """Make the store write audit entries as before 2026-11-29: a payment row recorded by
    its count and a digest of its first four columns, nothing of its queue state."""
    write = sqlite_module.SQLiteStore._write_payments

    def write_older_form(self, db, payload, last_rows, payments, *rest):
        payments = list(payments)
        write(self, db, payload, last_rows, payments, *rest)
        payload.pop("payment", None)
        if payload.pop("payment_states", None) is not None:
            payload["payments"] = [len(payments), digest_rows(
                [row[:4] for row in payments])]  # UETR, sender, instruction id, text

    monkeypatch.setattr(sqlite_module.SQLiteStore, "_write_payments", write_older_form)


@pytest.fixture
def older(monkeypatch, open_engine, network, db_path) -> dict[str, str]:
    with monkeypatch.context() as patched:
        write_payments_in_the_older_form(patched)
        uetrs = run_queue(open_engine(with_network=network), network)
    assert any("payments" in payload for _, payload in payloads(db_path))
    assert not any("payment_states" in payload or "payment" in payload
                   for _, payload in payloads(db_path))
    return uetrs


def test_a_database_written_in_the_older_form_verifies_and_says_what_it_could_not_check(
        older, db_path):
    report = verify_audit(db_path)
    assert report.ok
    assert report.unchecked is not None and report.unchecked.startswith("5 payment rows")
    assert report.unchecked.endswith("nor the queue state of the 5 not written since")
    shown = CliRunner().invoke(app, ["audit", "verify", "--db", str(db_path)])
    assert shown.exit_code == 0
    assert "not checked: 5 payment rows" in " ".join(shown.output.split())


def test_after_an_upgrade_new_rows_are_checked_and_older_ones_written_again_in_part(
        older, db_path, open_engine, network):
    engine = open_engine()
    engine.change_payment_priority(older["third"], Priority.HIGH, network.funded_at_us + 10)
    new = payment(ICBK, ABOC, 1)
    engine.submit_payments(ICBK, [new], network.funded_at_us + 11)
    engine.close()
    report = verify_audit(db_path)
    assert report.ok and report.unchecked.endswith("the 4 not written since")
    tamper(db_path, f"UPDATE payment SET priority = 'urgent' WHERE uetr = '{older['third']}'")
    report = verify_audit(db_path)
    assert not report.ok and f"payment {older['third']}" in report.reason
    tamper(db_path, f"UPDATE payment SET priority = 'high' WHERE uetr = '{older['third']}'",
           f"UPDATE payment SET content = content || ' ' WHERE uetr = '{new.uetr}'")
    report = verify_audit(db_path)
    assert not report.ok and report.first_broken_seq == appending_entry(db_path, new.uetr)

