"""The engine over a real SQLite file: durable outcomes, recovery, failures, administration."""

import sqlite3
from contextlib import closing
from dataclasses import replace

import pytest

from scopay.domain.account import Account
from scopay.domain.ledger import Transfer, TransferKind
from scopay.domain.money import AMOUNT_MINOR_MAX
from scopay.domain.participant import Participant, Role, Status, Tier
from scopay.domain.rejection import Rejection
from scopay.engine.engine import CommandRefused, Engine
from scopay.store.sqlite import SQLiteStore

SECOND_US = 1_000_000
PENDING, POST = TransferKind.PENDING, TransferKind.POST_PENDING


def pay(n, transfer_id, amount, debit=None, credit=None, **fields) -> Transfer:
    """ICBK CNY -> ABOC CNY unless told otherwise."""
    return Transfer(transfer_id, debit or n.icbk_cny, credit or n.aboc_cny, amount, "CNY",
                    **fields)


def rejections_of(outcomes) -> list[Rejection | None]:
    return [outcome.rejection for outcome in outcomes]


def query(db_path, sql: str) -> list[tuple]:
    with closing(sqlite3.connect(db_path)) as db:
        return db.execute(sql).fetchall()


def durable_state(db_path):
    """Balances, reservations and count of remembered transfers, rebuilt from the file alone."""
    engine = Engine(SQLiteStore(db_path, lock=False))
    try:
        return live_state(engine)
    finally:
        engine.close()


def live_state(engine: Engine):
    return engine.balances(), sorted(engine.ledger.pending_ids()), engine.ledger.transfer_count


def run_activity(engine: Engine, n) -> list[tuple[list[Transfer], int, list]]:
    """A little of everything; returns (batch, now_us, outcomes) per submission."""
    t = n.funded_at_us
    batches = [
        ([pay(n, "a1", 10_000),
          pay(n, "p-open", 20_000, kind=PENDING),
          pay(n, "p-part", 8_000, kind=PENDING),
          Transfer("p-timed", n.sabr_rub, n.rub_issuance, 5_000, "RUB", PENDING, timeout_s=60),
          pay(n, "r1", 10**9)], t + SECOND_US),
        ([Transfer("post-part", 0, 0, 3_000, "", POST, "p-part"),
          pay(n, "c1", 1_000, n.aboc_cny, n.icbk_cny, linked=True),
          pay(n, "c2", 10**9, n.aboc_cny, n.icbk_cny),
          pay(n, "c3", 500, linked=True),
          Transfer("c4", n.sabr_rub, n.rub_issuance, 100, "RUB")], t + 2 * SECOND_US),
    ]
    done = []
    for batch, now_us in batches:
        done.append((batch, now_us, engine.submit(batch, now_us)))
    assert rejections_of(done[0][2]) == [None, None, None, None,
                                         Rejection.INSUFFICIENT_LIQUIDITY]
    assert rejections_of(done[1][2]) == [None, Rejection.LINKED_EVENT_FAILED,
                                         Rejection.INSUFFICIENT_LIQUIDITY, None, None]
    return done


class FlakyStore:
    """The real store, except that commit raises OSError when told to."""

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store
        self.fail_commits = False

    def commit(self, *args, **kwargs):
        if self.fail_commits:
            raise OSError("disk I/O error (test double)")
        return self._store.commit(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._store, name)


@pytest.fixture
def flaky(open_engine, network, db_path):
    store = FlakyStore(SQLiteStore(db_path))
    return open_engine(store, with_network=network), store


# -- durability ----------------------------------------------------------------------------


def test_outcomes_are_on_disk_when_submit_returns(engine, network, db_path):
    outcomes = engine.submit([pay(network, "a1", 100), pay(network, "r1", 10**9)],
                             network.funded_at_us + 1)
    assert rejections_of(outcomes) == [None, Rejection.INSUFFICIENT_LIQUIDITY]
    journal = query(db_path, "SELECT id, amount_minor, timestamp_us FROM journal ORDER BY seq")
    assert journal[-1] == ("a1", 100, outcomes[0].timestamp_us)
    assert query(db_path, "SELECT id, rejection FROM transfer_rejection") == [
        ("r1", "insufficient_liquidity")]


def test_restart_rebuilds_balances_reservations_and_idempotent_answers(engine, network,
                                                                       open_engine):
    done = run_activity(engine, network)
    before = live_state(engine)
    seq_before = engine.store.last_seq()
    engine.close()

    reopened = open_engine()
    assert live_state(reopened) == before
    assert sorted(reopened.ledger.pending_ids()) == ["p-open", "p-timed"]
    later_us = network.funded_at_us + 10 * SECOND_US
    for batch, _, first in done:
        assert reopened.submit(batch, later_us) == first
    assert reopened.store.last_seq() == seq_before
    assert live_state(reopened) == before
    assert reopened.reconcile().ok


def test_reservation_made_before_restart_can_be_posted_or_expires_after_it(engine, network,
                                                                          open_engine):
    run_activity(engine, network)
    engine.close()
    reopened = open_engine()
    t = network.funded_at_us
    posted = reopened.submit([Transfer("post-open", 0, 0, 0, "", POST, "p-open")],
                             t + 10 * SECOND_US)
    assert rejections_of(posted) == [None]
    assert reopened.balance(network.aboc_cny).posted_minor == 10_000 + 3_000 + 500 + 20_000
    # "p-timed" was reserved at t + 1 s for 60 s.
    assert reopened.expire(t + 60 * SECOND_US) == 0
    assert reopened.expire(t + 61 * SECOND_US) == 1
    sabr = reopened.balance(network.sabr_rub)
    assert (sabr.posted_minor, sabr.debits_pending_minor) == (network.funding_minor - 100, 0)
    assert reopened.reconcile().ok


def test_reconcile_is_ok_after_activity_and_after_a_checkpoint(engine, network):
    run_activity(engine, network)
    report = engine.reconcile()
    assert report.ok and report.checkpoint_seq is None
    assert report.journal_entries == engine.store.last_seq() == engine.journal_count
    as_of_seq = engine.checkpoint(network.funded_at_us + 3 * SECOND_US)
    engine.submit([pay(network, "after", 1)], network.funded_at_us + 4 * SECOND_US)
    report = engine.reconcile()
    assert report.ok, report
    assert report.checkpoint_seq == as_of_seq < engine.store.last_seq()


def test_reconcile_finds_a_journal_that_differs_from_the_balances(engine, network, db_path):
    with closing(sqlite3.connect(db_path)) as db, db:
        db.execute("INSERT INTO journal (id, kind, debit_account_id, credit_account_id, "
                   "amount_minor, currency, pending_id, timeout_s, linked, timestamp_us) "
                   "VALUES ('forged', 'posted', 1, 12, 5, 'CNY', NULL, 0, 0, 9)")
    report = engine.reconcile()
    assert not report.ok
    assert any(f"account {network.aboc_cny}" in m for m in report.mismatches)


def test_reconcile_finds_a_checkpoint_that_differs_from_the_journal(engine, network, db_path):
    engine.checkpoint(network.funded_at_us + 1)
    with closing(sqlite3.connect(db_path)) as db, db:
        db.execute("UPDATE checkpoint_balance SET posted_minor = posted_minor + 1 "
                   "WHERE account_id = 11")
    report = engine.reconcile()
    assert not report.ok
    assert any("checkpoint" in m and "account 11" in m for m in report.mismatches)


@pytest.mark.parametrize(("change", "named"), [
    ("DELETE FROM checkpoint_balance WHERE account_id = 11", "account 11"),
    ("DELETE FROM checkpoint_balance", "account 11"),
    ("UPDATE checkpoint SET as_of_seq = as_of_seq + 1000", "past the journal's last entry"),
])
def test_reconcile_finds_a_checkpoint_cut_short_or_ahead_of_the_journal(engine, network, db_path,
                                                                       change, named):
    engine.checkpoint(network.funded_at_us + 1)
    assert engine.reconcile().ok
    with closing(sqlite3.connect(db_path)) as db, db:
        db.execute(change)
    report = engine.reconcile()
    assert not report.ok
    assert any(named in m for m in report.mismatches), report.mismatches


# -- failures ----------------------------------------------------------------------------------


def test_failed_commit_raises_and_leaves_no_trace(flaky, network, db_path):
    engine, store = flaky
    engine.submit([pay(network, "p1", 1_000, kind=PENDING)], network.funded_at_us + 1)
    before = live_state(engine)
    seq_before = engine.store.last_seq()
    batch = [pay(network, "x1", 2_000), pay(network, "x2", 10**9),
             Transfer("x3", 0, 0, 0, "", POST, "p1")]
    store.fail_commits = True
    with pytest.raises(OSError):
        engine.submit(batch, network.funded_at_us + 2)
    assert live_state(engine) == before
    assert live_state(engine) == durable_state(db_path)
    assert engine.store.last_seq() == seq_before
    assert engine.ledger.outcome_of("x1") is None and engine.ledger.outcome_of("x2") is None
    store.fail_commits = False
    outcomes = engine.submit(batch, network.funded_at_us + 3)
    assert rejections_of(outcomes) == [None, Rejection.INSUFFICIENT_LIQUIDITY, None]
    assert {o.timestamp_us for o in outcomes} == {network.funded_at_us + 3}
    assert engine.reconcile().ok


def test_failed_expiry_commit_keeps_the_reservation(flaky, network, db_path):
    engine, store = flaky
    engine.submit([pay(network, "p1", 1_000, kind=PENDING, timeout_s=1)],
                  network.funded_at_us + 1)
    store.fail_commits = True
    with pytest.raises(OSError):
        engine.expire(network.funded_at_us + 5 * SECOND_US)
    assert engine.ledger.pending_ids() == ["p1"]
    assert engine.balance(network.icbk_cny).debits_pending_minor == 1_000
    store.fail_commits = False
    assert engine.expire(network.funded_at_us + 5 * SECOND_US) == 1
    assert engine.balance(network.icbk_cny).debits_pending_minor == 0


def test_failed_admin_commit_changes_nothing(flaky, network):
    engine, store = flaky
    store.fail_commits = True
    newcomer = Participant("BKCHCNBJ", "Bank of China", Role.DIRECT, "CN", Tier.MEMBER)
    with pytest.raises(OSError):
        engine.admit_participant(newcomer, network.funded_at_us + 1)
    with pytest.raises(OSError):
        engine.set_participant_status("ICBKCNBJ", Status.SUSPENDED, network.funded_at_us + 1)
    assert "BKCHCNBJ" not in engine.participants
    assert engine.participants["ICBKCNBJ"].status is Status.ACTIVE
    assert not engine.balance(network.icbk_cny).blocked


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        (lambda n: pay(n, "big", AMOUNT_MINOR_MAX + 1), Rejection.AMOUNT_TOO_LARGE),
        (lambda n: pay(n, "huge-debit", 1, debit=AMOUNT_MINOR_MAX + 1),
         Rejection.DEBIT_ACCOUNT_NOT_FOUND),
        (lambda n: pay(n, "huge-timeout", 1, kind=PENDING, timeout_s=AMOUNT_MINOR_MAX + 1),
         Rejection.TIMEOUT_INVALID),
    ],
    ids=["amount", "debit_account_id", "timeout_s"],
)
def test_transfer_with_values_beyond_64_bits_is_refused_not_raised(engine, network, bad,
                                                                   expected):
    outcomes = engine.submit([pay(network, "ok", 100), bad(network)], network.funded_at_us + 1)
    assert rejections_of(outcomes) == [None, expected]
    assert engine.store.journal_entry("ok") is not None


# -- time ------------------------------------------------------------------------------------


def test_timestamps_never_go_backwards_when_the_clock_does(engine, network, db_path):
    t = network.funded_at_us
    first = engine.submit([pay(network, "a", 1)], t + 10 * SECOND_US)
    second = engine.submit([pay(network, "b", 1), pay(network, "r", 10**9)], t + 5 * SECOND_US)
    assert first[0].timestamp_us == t + 10 * SECOND_US
    assert [o.timestamp_us for o in second] == [t + 10 * SECOND_US] * 2
    engine.admit_participant(
        Participant("BKCHCNBJ", "Bank of China", Role.DIRECT, "CN", Tier.MEMBER), 0)
    third = engine.submit([pay(network, "c", 1)], t)
    assert third[0].timestamp_us == t + 10 * SECOND_US
    stamps = [row[0] for row in query(db_path, "SELECT timestamp_us FROM journal ORDER BY seq")]
    assert stamps == sorted(stamps)


def test_timestamps_never_go_backwards_across_a_restart(engine, network, open_engine):
    t = network.funded_at_us
    refused = engine.submit([pay(network, "r", 10**9)], t + 10 * SECOND_US)
    assert refused[0].timestamp_us == t + 10 * SECOND_US
    engine.close()
    reopened = open_engine()
    later = reopened.submit([pay(network, "a", 1)], t + 5 * SECOND_US)
    assert later[0].timestamp_us >= t + 10 * SECOND_US


# -- administration -----------------------------------------------------------------------------


def test_admitted_participant_and_opened_account_are_durable(engine, network, open_engine):
    now_us = network.funded_at_us + 1
    newcomer = Participant("BKCHCNBJ", "Bank of China", Role.DIRECT, "CN", Tier.MEMBER)
    engine.admit_participant(newcomer, now_us)
    account = Account(engine.next_account_id(), "BKCHCNBJ", "RUB")
    engine.open_account(account, now_us)
    assert engine.store.participants()[-1] == newcomer
    assert (account, False) in engine.store.accounts()
    outcomes = engine.submit([Transfer("to-bkch", network.sabr_rub, account.id, 50, "RUB")],
                             now_us)
    assert rejections_of(outcomes) == [None]
    engine.close()
    reopened = open_engine()
    assert reopened.participants["BKCHCNBJ"] == newcomer
    assert reopened.balance(account.id).posted_minor == 50


REFUSED_PARTICIPANTS = {
    "duplicate_bic": Participant("ICBKCNBJ", "ICBC", Role.DIRECT, "CN", Tier.MEMBER),
    "country_not_the_bics": Participant("BKCHCNBJ", "Bank of China", Role.DIRECT, "RU",
                                        Tier.MEMBER),
    "second_agent_for_cny": Participant("BKCHCNBJ", "Bank of China", Role.SETTLEMENT_AGENT,
                                        "CN", Tier.MEMBER, settlement_currency="CNY"),
    "indirect_without_sponsor": Participant("BKCHCNBJ", "Bank of China", Role.INDIRECT, "CN",
                                            Tier.MEMBER),
}


@pytest.mark.parametrize("case", sorted(REFUSED_PARTICIPANTS))
def test_refused_participant_changes_nothing(engine, case):
    participants_before = dict(engine.participants)
    stored_before = engine.store.participants()
    with pytest.raises(CommandRefused):
        engine.admit_participant(REFUSED_PARTICIPANTS[case], 5)
    assert engine.participants == participants_before
    assert engine.store.participants() == stored_before


def test_refused_account_changes_nothing(engine, network):
    indirect = Participant("BKCHCNBJ", "Bank of China", Role.INDIRECT, "CN", Tier.MEMBER,
                           sponsor_bic="ICBKCNBJ")
    engine.admit_participant(indirect, 5)
    stored_before = engine.store.accounts()
    for account in (Account(99, "ICBKCNBJ", "CNY"),  # a second CNY settlement account
                    Account(99, "BKCHCNBJ", "CNY"),  # an indirect participant
                    Account(99, "ZZZZCNBJ", "CNY"),  # nobody
                    Account(99, "ICBKCNBJ", "CNY", credit_line_minor=-1)):
        with pytest.raises(CommandRefused):
            engine.open_account(account, 5)
    assert 99 not in engine.accounts and 99 not in engine.ledger.balances
    assert engine.store.accounts() == stored_before


def test_credit_line_lets_a_bank_pay_beyond_its_balance(engine, network, open_engine):
    now_us = network.funded_at_us + 1
    engine.set_credit_line(network.icbk_cny, 20_000, now_us)
    assert engine.balance(network.icbk_cny).floor_minor == -20_000
    outcomes = engine.submit([pay(network, "all", network.funding_minor + 20_000),
                              pay(network, "one-more", 1)], now_us)
    assert rejections_of(outcomes) == [None, Rejection.INSUFFICIENT_LIQUIDITY]
    engine.close()
    assert open_engine().balance(network.icbk_cny).floor_minor == -20_000


def test_credit_line_cannot_drop_below_what_is_used(engine, network, open_engine):
    now_us = network.funded_at_us + 1
    used = engine.submit([pay(network, "use", 30_000, network.aboc_cny, network.icbk_cny)],
                         now_us)
    assert rejections_of(used) == [None]
    with pytest.raises(CommandRefused, match="uses more"):
        engine.set_credit_line(network.aboc_cny, 29_999, now_us)
    assert engine.balance(network.aboc_cny).floor_minor == -network.aboc_credit_line_minor
    assert engine.accounts[network.aboc_cny].credit_line_minor == network.aboc_credit_line_minor
    stored = {a.id: a for a, _ in engine.store.accounts()}
    assert stored[network.aboc_cny].credit_line_minor == network.aboc_credit_line_minor
    engine.set_credit_line(network.aboc_cny, 30_000, now_us)
    assert engine.balance(network.aboc_cny).floor_minor == -30_000


@pytest.mark.parametrize(
    ("account_of", "line"),
    [
        (lambda n: 999, 10),  # no such account
        (lambda n: n.cny_issuance, 10),  # an issuance account has no floor
        (lambda n: n.icbk_cny, -1),
        (lambda n: n.icbk_cny, AMOUNT_MINOR_MAX + 1),
    ],
    ids=["unknown_account", "issuance_account", "negative_line", "line_beyond_64_bits"],
)
def test_refused_credit_line_changes_nothing(engine, network, account_of, line):
    stored_before = engine.store.accounts()
    balances_before = engine.balances()
    with pytest.raises(CommandRefused):
        engine.set_credit_line(account_of(network), line, network.funded_at_us + 1)
    assert engine.store.accounts() == stored_before
    assert engine.balances() == balances_before


def test_suspended_participant_cannot_pay_or_be_paid(engine, network, open_engine):
    now_us = network.funded_at_us + 1
    engine.set_participant_status("ICBKCNBJ", Status.SUSPENDED, now_us)
    issue = Transfer("issue", network.cny_issuance, network.icbk_cny, 5, "CNY")
    outcomes = engine.submit([pay(network, "out", 100), issue,
                              pay(network, "reserve", 100, kind=PENDING)], now_us)
    assert rejections_of(outcomes) == [Rejection.DEBIT_ACCOUNT_BLOCKED,
                                       Rejection.CREDIT_ACCOUNT_BLOCKED,
                                       Rejection.DEBIT_ACCOUNT_BLOCKED]
    engine.close()
    reopened = open_engine()
    assert reopened.participants["ICBKCNBJ"].status is Status.SUSPENDED
    assert reopened.balance(network.icbk_cny).blocked
    assert rejections_of(reopened.submit([pay(network, "out-2", 100)], now_us)) == [
        Rejection.DEBIT_ACCOUNT_BLOCKED]
    reopened.set_participant_status("ICBKCNBJ", Status.ACTIVE, now_us)
    assert rejections_of(reopened.submit([pay(network, "out-3", 100)], now_us)) == [None]


def test_status_of_unknown_participant_is_refused(engine):
    stored_before = engine.store.participants()
    with pytest.raises(CommandRefused):
        engine.set_participant_status("ZZZZCNBJ", Status.SUSPENDED, 5)
    assert engine.store.participants() == stored_before


def test_suspended_participant_opens_no_account(engine, network):
    engine.set_participant_status("ICBKCNBJ", Status.SUSPENDED, 5)
    with pytest.raises(CommandRefused, match="suspended"):
        engine.open_account(replace(network.accounts_by_id[11], id=99, currency="RUB"), 5)


def test_an_answer_kept_with_a_command_carries_the_commands_time(engine, network):
    """The answer a route gives later (past midnight, say) is stamped with its batch's time:
    a batch's last audit entry never stands for a day whose statements it does not carry."""
    day_us = 86_400_000_000
    before_midnight = (network.funded_at_us // day_us + 1) * day_us - 1_000
    engine.defer_commits = True
    engine.set_credit_line(network.aboc_cny, 60_000, before_midnight)
    engine.defer_commits = False
    assert engine.commit_pending
    # the answer is given later (past midnight, say): it takes no time of its own
    assert engine.keep_answer_in_commit("ICBKCNBJ", "k-midnight", "0" * 64, 204, b"")
    engine.finish_commit()
    assert engine.store.audit_head().at_us == before_midnight
    assert engine.idempotency.get(("ICBKCNBJ", "k-midnight")) is not None
