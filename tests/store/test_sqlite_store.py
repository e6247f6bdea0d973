import sqlite3
import threading
from contextlib import closing

import pytest

from scopay.domain.account import Account, AccountKind
from scopay.domain.ledger import JournalEntry, RejectionRecord, Transfer, TransferKind
from scopay.domain.mailbox import Notice, NoticeKind
from scopay.domain.money import AMOUNT_MINOR_MAX
from scopay.domain.participant import Participant, Role, Status, Tier
from scopay.domain.rejection import Rejection
from scopay.store.sqlite import SQLiteStore, StoreLockedError, migrations


@pytest.fixture
def store(db_path):
    store = SQLiteStore(db_path)
    yield store
    store.close()


def query(db_path, sql: str) -> list[tuple]:
    """Read the file through a connection of our own, as another process would."""
    with closing(sqlite3.connect(db_path)) as db:
        return db.execute(sql).fetchall()


ENTRIES = [
    JournalEntry(Transfer("fund:1/a", 1, 11, AMOUNT_MINOR_MAX, "CNY"), 1_000_000),
    JournalEntry(Transfer("p.1", 11, 12, 30_000, "CNY", TransferKind.PENDING, None, 3600,
                          linked=True), 1_000_001),
    JournalEntry(Transfer("post-1", 11, 12, 10_000, "CNY", TransferKind.POST_PENDING, "p.1"),
                 1_000_001),
    JournalEntry(Transfer("p_2", 21, 2, 7, "RUB", TransferKind.PENDING, None, 1), 2_000_000),
    JournalEntry(Transfer("void_2", 21, 2, 7, "RUB", TransferKind.VOID_PENDING, "p_2"),
                 3_000_000),
    JournalEntry(Transfer("p3", 21, 2, 5, "RUB", TransferKind.PENDING, None, 1), 3_000_000),
    JournalEntry(Transfer("expire#p3", 21, 2, 5, "RUB", TransferKind.EXPIRE_PENDING, "p3"),
                 4_000_000),
]


def test_migrations_are_applied_once(db_path):
    latest = migrations()[-1][0]
    for _ in range(3):
        store = SQLiteStore(db_path)
        assert store.schema_version() == latest
        store.close()
    versions = query(db_path, "SELECT version FROM schema_migration ORDER BY version")
    assert versions == [(version,) for version, _ in migrations()]


def test_database_runs_in_wal_mode_with_full_sync(store, db_path):
    assert query(db_path, "PRAGMA journal_mode") == [("wal",)]
    # synchronous is a per-connection setting: look at the store's writing connection.
    assert store._db.execute("PRAGMA synchronous").fetchone() == (2,)  # 2 = FULL
    # Statement journals of multi-row inserts stay in memory, never spilled to a temp file.
    assert store._db.execute("PRAGMA temp_store").fetchone() == (2,)  # 2 = MEMORY


def test_journal_round_trip_preserves_every_field(store, db_path):
    store.commit(ENTRIES[:3])
    store.commit(ENTRIES[3:])
    assert list(store.journal()) == list(enumerate(ENTRIES, start=1))
    assert store.last_seq() == len(ENTRIES)
    assert list(store.journal(after_seq=2, until_seq=4)) == [(3, ENTRIES[2]), (4, ENTRIES[3])]
    assert store.journal_entry("post-1") == (3, ENTRIES[2])
    assert store.journal_entry("unknown") is None
    # And what another reader of the file sees is the same batch.
    assert len(query(db_path, "SELECT * FROM journal")) == len(ENTRIES)


def test_rejections_round_trip_and_keep_the_first_record_per_id(store):
    records = [
        RejectionRecord(Transfer("r1", 11, 12, 100, "CNY"), Rejection.INSUFFICIENT_LIQUIDITY, 5),
        RejectionRecord(Transfer("r2", 0, 0, 0, "", TransferKind.POST_PENDING, "p9", 0, True),
                        Rejection.LINKED_EVENT_FAILED, 6),
        RejectionRecord(Transfer("r3", 11, 12, 1, "CNY", TransferKind.PENDING, None, -1),
                        Rejection.TIMEOUT_INVALID, 7),
    ]
    store.commit(rejections=records)
    store.commit(rejections=[RejectionRecord(Transfer("r1", 11, 12, 999, "CNY"),
                                             Rejection.DEBIT_ACCOUNT_BLOCKED, 8)])
    assert list(store.rejections()) == records
    assert list(store.journal()) == []


def test_commit_is_all_or_nothing(store, network):
    duplicate = JournalEntry(Transfer("same-id", 11, 12, 2, "CNY"), 2)
    with pytest.raises(sqlite3.IntegrityError):
        store.commit(
            [ENTRIES[0], duplicate, JournalEntry(Transfer("same-id", 11, 12, 3, "CNY"), 2)],
            [RejectionRecord(Transfer("r1", 11, 12, 1, "CNY"), Rejection.ID_INVALID, 2)],
            participants=network.participants, accounts=network.accounts,
            keys=[("key-1", "ICBKCNBJ", "pub", 2)],
        )
    assert list(store.journal()) == []
    assert list(store.rejections()) == []
    assert store.participants() == [] and store.accounts() == []
    assert store.keys() == {}
    assert store.verify_audit().entries == 0
    assert store.last_seq() == 0
    # The store is still usable after the rolled-back batch.
    store.commit([ENTRIES[0]])
    assert list(store.journal()) == [(1, ENTRIES[0])]


def test_participants_and_accounts_round_trip(store, network):
    store.commit(participants=network.participants, accounts=network.accounts)
    assert store.participants() == list(network.participants)
    assert store.accounts() == [(account, False) for account in network.accounts]
    suspended = Participant("ICBKCNBJ", "ICBC Ltd", Role.DIRECT, "CN", Tier.MEMBER,
                            status=Status.SUSPENDED)
    wider = Account(12, "ABOCCNBJ", "CNY", AccountKind.SETTLEMENT, credit_line_minor=70_000)
    store.commit(participants=[suspended], accounts=[wider], blocked=[(11, True)])
    by_bic = {p.bic: p for p in store.participants()}
    assert by_bic["ICBKCNBJ"] == suspended
    by_id = {a.id: (a, blocked) for a, blocked in store.accounts()}
    assert by_id[12] == (wider, False)
    assert by_id[11] == (network.accounts_by_id[11], True)


def test_keys_are_stored_and_revoked_once(store, network):
    store.commit(participants=network.participants[:1],
                 keys=[("key-1", "PBOCCNBJ", "pub", 10)])
    assert store.keys()["key-1"] == ("PBOCCNBJ", "pub", None)
    store.commit(revoked_keys=[("key-1", 20)])
    store.commit(revoked_keys=[("key-1", 30)])
    assert store.keys()["key-1"] == ("PBOCCNBJ", "pub", 20)


def test_every_commit_is_in_the_audit_chain(store, network):
    store.commit(participants=network.participants, accounts=network.accounts, at_us=1)
    store.commit(ENTRIES[:2], at_us=2)
    report = store.verify_audit()
    assert report.ok and report.entries == 2


@pytest.mark.parametrize("column, reason", [("payload", "does not match its hash"),
                                            ("prev_sha256", "link to the previous entry")])
def test_audit_verify_names_the_entry_that_was_changed(network, db_path, column, reason):
    """Entry 3 of 4 edited (its payload, or its link alone): verify names entry 3."""
    store = SQLiteStore(db_path)
    store.commit(participants=network.participants, accounts=network.accounts, at_us=1)
    for n in range(3):
        store.commit(ENTRIES[n:n + 1], at_us=2 + n)
    store.close()
    with closing(sqlite3.connect(db_path)) as raw, raw:
        raw.execute(f"UPDATE audit_log SET {column} = replace({column}, '1', '2') "
                    "WHERE seq = 3")
    store = SQLiteStore(db_path)
    try:
        report = store.verify_audit()
        assert (report.ok, report.first_broken_seq) == (False, 3) and reason in report.reason
    finally:
        store.close()


def test_audit_anchor_shows_a_log_cut_back_or_rewritten_up_to_it(network, db_path):
    store = SQLiteStore(db_path)
    assert store.audit_head() is None
    store.commit(participants=network.participants, accounts=network.accounts, at_us=1)
    store.commit(ENTRIES[:2], at_us=2)
    head = store.audit_head()
    assert (head.seq, head.at_us) == (2, 2)
    assert store.verify_audit([(head.seq, head.sha256.upper())]).ok  # hex of either case
    store.commit(ENTRIES[2:3], at_us=3)
    assert store.verify_audit([head[:2], store.audit_head()[:2]]).ok
    store.close()
    with closing(sqlite3.connect(db_path)) as raw, raw:  # cut back to the first entry
        raw.execute("DELETE FROM journal")
        raw.execute("DELETE FROM audit_log WHERE seq > 1")
    store = SQLiteStore(db_path)
    try:
        assert store.verify_audit().ok, "a chain cut back with its rows stays intact"
        gone = store.verify_audit([head[:2]])
        assert (gone.first_broken_seq, gone.ok) == (2, False) and "cut back" in gone.reason
        store.commit(ENTRIES[:1], at_us=4)  # a new second entry, with another hash
        assert store.verify_audit().ok
        rewritten = store.verify_audit([head[:2]])
        assert rewritten.first_broken_seq == 2 and "rewritten" in rewritten.reason
    finally:
        store.close()


def test_second_store_on_the_same_file_is_refused_while_the_first_is_open(db_path):
    first = SQLiteStore(db_path)
    try:
        with pytest.raises(StoreLockedError):
            SQLiteStore(db_path)
    finally:
        first.close()
    second = SQLiteStore(db_path)
    second.close()


def test_a_second_writer_is_refused_whatever_name_it_gives_the_file(db_path, tmp_path):
    link = tmp_path / "elsewhere.db"
    link.symlink_to(db_path)
    first = SQLiteStore(db_path)
    try:
        for other in (link, tmp_path / "." / link.name):
            with pytest.raises(StoreLockedError):
                SQLiteStore(other)
    finally:
        first.close()


def test_checkpoint_round_trip(store):
    assert store.checkpoint() is None
    store.write_checkpoint(7, 1_000, [(1, -100, 0, 0), (11, 100, 30, 0), (12, 0, 0, 30)])
    assert store.checkpoint() == (7, 1_000, {1: (-100, 0, 0), 11: (100, 30, 0), 12: (0, 0, 30)})
    store.write_checkpoint(9, 2_000, [(1, -5, 0, 0)])
    assert store.checkpoint() == (9, 2_000, {1: (-5, 0, 0)})


def test_data_survives_closing_and_reopening(db_path, network):
    store = SQLiteStore(db_path)
    store.commit(ENTRIES, participants=network.participants, accounts=network.accounts)
    store.close()
    reopened = SQLiteStore(db_path)
    try:
        assert list(reopened.journal()) == list(enumerate(ENTRIES, start=1))
        assert reopened.participants() == list(network.participants)
    finally:
        reopened.close()


def test_openers_racing_on_a_new_database_all_open_it_and_migrate_it_once(tmp_path):
    for n in range(10):
        path = tmp_path / f"new-{n}.db"
        start = threading.Barrier(4)
        failures: list[BaseException] = []

        def open_and_close(path=path, start=start, failures=failures) -> None:
            start.wait()
            try:
                SQLiteStore(path, lock=False).close()
            except BaseException as error:  # noqa: BLE001 — recorded, asserted below
                failures.append(error)

        openers = [threading.Thread(target=open_and_close) for _ in range(4)]
        for opener in openers:
            opener.start()
        for opener in openers:
            opener.join()
        assert failures == []
        with closing(sqlite3.connect(path)) as db:
            versions = [v for (v,) in db.execute("SELECT version FROM schema_migration")]
        assert versions == [version for version, _ in migrations()]  # each once


def test_a_notice_is_fetched_by_its_number_without_walking_the_notices_of_others(tmp_path):
    """Fetching one's notice costs the same however many notices of others follow it: a
    read-only participant fetching an old number must not make the store walk the table."""
    store = SQLiteStore(tmp_path / "mailbox.db")
    mine = Notice("DEMACNX0", NoticeKind.STATUS_REPORT, "u-1", "settled", None, 1)
    store.commit(notices=[mine], at_us=1)
    steps = []

    def cost(seq: int, bic: str = "DEMACNX0"):
        count = [0]
        reader = store._reader()
        reader.set_progress_handler(lambda: count.__setitem__(0, count[0] + 1) or 0, 1)
        found = store.mailbox_notice(bic, seq)
        reader.set_progress_handler(None, 1)
        steps.append(count[0])
        return found

    assert cost(1) == mine
    others = [Notice("DEMBCNX0", NoticeKind.STATUS_REPORT, f"u-{n}", "settled", None, 2)
              for n in range(20_000)]
    store.commit(notices=others, at_us=2)
    assert cost(1) == mine and cost(2) is None  # another's notice: as if none
    assert cost(99_999) is None
    assert max(steps[1:]) <= 2 * steps[0]  # not 20,000 rows later
    store.close()
