"""Nothing acknowledged is ever lost: SIGKILL a writer mid-stream, restart, check the ledger."""

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from scopay.cli.main import seed_reference_network
from scopay.engine.engine import Engine
from scopay.store.sqlite import SQLiteStore

WRITER = Path(__file__).with_name("crash_writer.py")


def seeded_database(path: Path) -> Path:
    engine = Engine(SQLiteStore(path))
    seed_reference_network(engine, 1)
    engine.close()
    return path


def acknowledged_until_killed(db: Path, seed: int, kill_after_acks: int,
                              mode: str = "transfers") -> list[str]:
    """Run the writer, read its acknowledgements, SIGKILL it after `kill_after_acks`."""
    writer = subprocess.Popen([sys.executable, str(WRITER), str(db), str(seed), mode],
                              stdout=subprocess.PIPE, text=True)
    acknowledged: list[str] = []
    try:
        assert writer.stdout.readline().strip() == "READY"
        for line in writer.stdout:
            acknowledged.append(line.split()[1])
            if len(acknowledged) >= kill_after_acks:
                os.kill(writer.pid, signal.SIGKILL)
                break
        # Acknowledgements already in the pipe when the kill landed count too.
        acknowledged.extend(line.split()[1] for line in writer.stdout if line.startswith("ACK"))
    finally:
        writer.kill()
        writer.wait()
    assert writer.returncode == -signal.SIGKILL
    return acknowledged


@pytest.mark.slow
@pytest.mark.parametrize("seed, kill_after_acks", [(1, 1), (2, 150), (3, 2_500), (4, 9_000)])
def test_acknowledged_transfers_survive_sigkill(tmp_path, seed, kill_after_acks):
    db = seeded_database(tmp_path / "crash.db")
    acknowledged = acknowledged_until_killed(db, seed, kill_after_acks)
    assert len(acknowledged) >= kill_after_acks

    with sqlite3.connect(db) as raw:
        counts = dict(raw.execute(
            "SELECT id, count(*) FROM journal WHERE id LIKE ? GROUP BY id", (f"s{seed}-%",)))
    missing = [transfer_id for transfer_id in acknowledged if counts.get(transfer_id) != 1]
    assert missing == [], f"acknowledged but not exactly once in the journal: {missing[:5]}"

    engine = Engine(SQLiteStore(db))  # restart: recovery replays the journal
    try:
        report = engine.reconcile()
        assert report.ok, report
        assert engine.journal_count == sum(counts.values()) + 20  # + reference funds-in
        for transfer_id in acknowledged[-50:]:
            assert engine.ledger.outcome_of(transfer_id).rejection is None
    finally:
        engine.close()


@pytest.mark.slow
@pytest.mark.parametrize("seed, kill_after_acks", [(5, 1), (6, 300), (7, 3_000)])
def test_mailbox_holds_exactly_the_committed_changes_after_sigkill(tmp_path, seed,
                                                                   kill_after_acks):
    db = seeded_database(tmp_path / "mail.db")
    acknowledged = acknowledged_until_killed(db, seed, kill_after_acks, "payments")

    with sqlite3.connect(db) as raw:
        payments = {uetr for (uetr,) in raw.execute("SELECT uetr FROM payment")}
        # every status change a participant is told of (not received/accepted, which are
        # internal) has its notice, and every notice has its committed status change
        changes = sorted(raw.execute(
            "SELECT uetr, status FROM payment_event WHERE status NOT IN ('received', "
            "'accepted') ORDER BY uetr, seq"))
        reports = sorted(raw.execute(
            "SELECT uetr, status FROM mailbox WHERE kind = 'status_report' "
            "ORDER BY uetr, seq"))
        incoming = {uetr for (uetr,) in raw.execute(
            "SELECT uetr FROM mailbox WHERE kind = 'incoming_payment'")}
        settled = {uetr for (uetr,) in raw.execute(
            "SELECT uetr FROM payment WHERE status = 'settled'")}
    assert set(acknowledged) <= payments
    assert changes == reports
    assert incoming == settled

    engine = Engine(SQLiteStore(db))
    try:
        assert engine.reconcile().ok
        queued = {r.payment.uetr for r in engine.queued_payments()}
        assert queued == {u for u in payments if engine.payment(u).status == "queued"}
    finally:
        engine.close()
