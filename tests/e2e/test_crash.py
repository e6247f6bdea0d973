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


def acknowledged_until_killed(db: Path, seed: int, kill_after_acks: int) -> list[str]:
    """Run the writer, read its acknowledgements, SIGKILL it after `kill_after_acks`."""
    writer = subprocess.Popen([sys.executable, str(WRITER), str(db), str(seed)],
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
