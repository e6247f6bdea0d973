"""Adversarial review of the ledger, the SQLite store, the audit chain and the CLI.

Each defect found has a test (it failed before its fix); the other tests pin what held. The
property test compares a live engine with one recovered from its store after random
transfers, reservations, resolutions, resubmissions and suspensions.
"""

from __future__ import annotations

import copy
import os
import shutil
import sqlite3
import stat
from contextlib import closing

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from scopay.cli.main import app
from scopay.domain.ledger import (
    Ledger,
    Transfer,
    TransferKind,
    fold_journal,
    invariant_violations,
)
from scopay.domain.money import AMOUNT_MINOR_MAX, AmountError, parse_amount
from scopay.domain.participant import Status
from scopay.domain.rejection import Rejection
from scopay.engine.engine import Engine
from scopay.reference.network import OPERATOR_BIC
from scopay.store.sqlite import SQLiteStore

runner = CliRunner()
SECOND_US = 1_000_000
CNY_ISSUANCE, ICBK, ABOC, SABR = 1, 11, 12, 21


def execute_one(ledger: Ledger, transfer: Transfer, at_us: int) -> Rejection | None:
    (outcome,) = ledger.execute([transfer], at_us).outcomes
    return outcome.rejection


def tamper(db_path, *statements: str) -> None:
    """Change the file behind scopay's back, as someone with write access to it could."""
    with closing(sqlite3.connect(db_path)) as db:
        for statement in statements:
            db.execute(statement)
        db.commit()


def build_network(engine: Engine, network) -> None:
    """tests/conftest.py's network, built in an engine opened here (hypothesis runs many)."""
    now_us = network.funded_at_us - 1000
    engine.admit_participants(network.participants, now_us)
    engine.open_accounts(network.accounts, now_us)
    outcomes = engine.submit(network.funding_transfers(), network.funded_at_us)
    assert all(outcome.accepted for outcome in outcomes)


def verify_audit(db_path):
    store = SQLiteStore(db_path, lock=False)
    try:
        return store.verify_audit()
    finally:
        store.close()


# -- money: amounts at the edge ----------------------------------------------------------


@pytest.mark.parametrize("text", [
    "١٢٣", "１２", "1_000", " 1", "1 ", "1\n", "+1", "-0", "-1", "1e3", "1E2", "1.", ".5",
    "00.1", "0x10", "1,00", "∞", "NaN", "1.001", "",
])
def test_amount_text_that_is_not_a_plain_ascii_decimal_is_refused(text):
    with pytest.raises(AmountError):
        parse_amount(text, "CNY")


@pytest.mark.parametrize(("text", "currency", "minor"), [
    ("12", "JPY", 12), ("0.5", "KWD", 500), ("0.005", "BHD", 5), ("92233720368547758.07",
                                                                    "CNY", AMOUNT_MINOR_MAX),
    (str(AMOUNT_MINOR_MAX), "JPY", AMOUNT_MINOR_MAX), ("9223372036854775.807", "KWD",
                                                       AMOUNT_MINOR_MAX),
])
def test_amounts_are_exact_in_each_exponent_up_to_the_largest(text, currency, minor):
    assert parse_amount(text, currency) == minor


@pytest.mark.parametrize(("text", "currency"), [
    ("1.0", "JPY"), ("0.0001", "KWD"), ("92233720368547758.08", "CNY"),
    (str(AMOUNT_MINOR_MAX + 1), "JPY"), ("9" * 41, "JPY"),
])
def test_over_precise_or_too_large_amounts_are_refused(text, currency):
    with pytest.raises(AmountError):
        parse_amount(text, currency)


# -- the ledger ----------------------------------------------------------------------------


@pytest.fixture
def reserved(ledger, network) -> Ledger:
    """The shared ledger with 100.00 CNY reserved from ICBK to ABOC for 10 s."""
    pending = Transfer("p", ICBK, ABOC, 10_000, "CNY", TransferKind.PENDING, timeout_s=10)
    assert execute_one(ledger, pending, network.funded_at_us) is None
    return ledger


def test_posting_a_reservation_to_a_blocked_creditor_is_refused(reserved, network):
    reserved.set_blocked(ABOC, True)
    post = Transfer("q", 0, 0, 0, "", TransferKind.POST_PENDING, "p")
    assert execute_one(reserved, post, network.funded_at_us + 1) is (
        Rejection.CREDIT_ACCOUNT_BLOCKED)
    assert reserved.balances[ABOC].posted_minor == 0


def test_voiding_a_reservation_of_a_blocked_account_still_releases_it(reserved, network):
    reserved.set_blocked(ICBK, True)
    void = Transfer("v", 0, 0, 0, "", TransferKind.VOID_PENDING, "p")
    assert execute_one(reserved, void, network.funded_at_us + 1) is None
    assert reserved.balances[ICBK].debits_pending_minor == 0


def test_resubmitting_a_partial_post_as_a_whole_post_is_refused(reserved, network):
    at = network.funded_at_us + 1
    partial = Transfer("q", 0, 0, 3_000, "", TransferKind.POST_PENDING, "p")
    assert execute_one(reserved, partial, at) is None
    whole = Transfer("q", 0, 0, 0, "", TransferKind.POST_PENDING, "p")
    assert execute_one(reserved, whole, at + 1) is Rejection.EXISTS_WITH_DIFFERENT_AMOUNT


def test_resubmitting_a_post_with_the_pendings_own_data_filled_in_is_the_same(reserved, network):
    at = network.funded_at_us + 1
    assert execute_one(reserved, Transfer("q", 0, 0, 0, "", TransferKind.POST_PENDING, "p"),
                       at) is None
    filled = Transfer("q", ICBK, ABOC, 10_000, "CNY", TransferKind.POST_PENDING, "p")
    (outcome,) = reserved.execute([filled], at + 5).outcomes
    assert outcome == (("q", None, at))


def test_posting_more_than_reserved_and_after_expiry_is_refused(reserved, network):
    at = network.funded_at_us
    over = Transfer("q1", 0, 0, 10_001, "", TransferKind.POST_PENDING, "p")
    assert execute_one(reserved, over, at + 1) is Rejection.EXCEEDS_PENDING_TRANSFER_AMOUNT
    late = Transfer("q2", 0, 0, 0, "", TransferKind.POST_PENDING, "p")
    assert execute_one(reserved, late, at + 10 * SECOND_US) is (
        Rejection.PENDING_TRANSFER_EXPIRED)
    late_void = Transfer("v", 0, 0, 0, "", TransferKind.VOID_PENDING, "p")
    assert execute_one(reserved, late_void, at + 10 * SECOND_US) is (
        Rejection.PENDING_TRANSFER_EXPIRED)
    assert reserved.expire_pending(at + 10 * SECOND_US)
    assert execute_one(reserved, Transfer("q3", 0, 0, 0, "", TransferKind.POST_PENDING, "p"),
                       at + 11 * SECOND_US) is Rejection.PENDING_TRANSFER_EXPIRED
    assert invariant_violations(reserved) == []


def test_a_reservation_and_its_partial_post_in_one_chain_commit_together(ledger, network):
    at = network.funded_at_us + 1
    chain = [
        Transfer("p", ICBK, ABOC, 10_000, "CNY", TransferKind.PENDING, linked=True),
        Transfer("q", 0, 0, 4_000, "", TransferKind.POST_PENDING, "p", linked=True),
        Transfer("r", ABOC, SABR, 1, "CNY"),  # another currency: the chain fails
    ]
    outcomes = ledger.execute(chain, at).outcomes
    assert [o.rejection for o in outcomes] == [
        Rejection.LINKED_EVENT_FAILED, Rejection.LINKED_EVENT_FAILED,
        Rejection.ACCOUNTS_MUST_HAVE_SAME_CURRENCY]
    icbk = ledger.balances[ICBK]
    assert (icbk.posted_minor, icbk.debits_pending_minor) == (network.funding_minor, 0)
    assert ledger.pending_ids() == []
    assert invariant_violations(ledger) == []


def test_an_undone_reservation_leaves_no_expiry_behind(ledger, network):
    at = network.funded_at_us + 1
    chain = [Transfer("p", ICBK, ABOC, 100, "CNY", TransferKind.PENDING, timeout_s=10,
                      linked=True),
             Transfer("z", ICBK, ABOC, 10**12, "CNY")]
    ledger.execute(chain, at, remember_refusals=False)
    again = Transfer("p", ICBK, ABOC, 100, "CNY", TransferKind.PENDING, timeout_s=1000)
    assert execute_one(ledger, again, at + 5 * SECOND_US) is None
    assert ledger.expire_pending(at + 20 * SECOND_US) == []
    assert ledger.pending_ids() == ["p"]


def test_floor_counts_reservations_and_a_credit_line(ledger, network):
    at = network.funded_at_us + 1
    line = network.aboc_credit_line_minor
    reserve = Transfer("p", ABOC, ICBK, line, "CNY", TransferKind.PENDING)
    assert execute_one(ledger, reserve, at) is None
    assert execute_one(ledger, Transfer("t", ABOC, ICBK, 1, "CNY"), at) is (
        Rejection.INSUFFICIENT_LIQUIDITY)
    assert not ledger.set_floor(ABOC, 0)  # the line is in use by the reservation
    assert execute_one(ledger, Transfer("v", 0, 0, 0, "", TransferKind.VOID_PENDING, "p"),
                       at) is None
    assert execute_one(ledger, Transfer("t2", ABOC, ICBK, line, "CNY"), at) is None
    assert ledger.balances[ABOC].posted_minor == -line
    assert invariant_violations(ledger) == []


def test_a_refusal_stands_when_the_situation_changes(ledger, network):
    at = network.funded_at_us + 1
    big = Transfer("t", ABOC, ICBK, network.aboc_credit_line_minor + 1, "CNY")
    assert execute_one(ledger, big, at) is Rejection.INSUFFICIENT_LIQUIDITY
    assert execute_one(ledger, Transfer("fund", CNY_ISSUANCE, ABOC, 10**6, "CNY"), at) is None
    (outcome,) = ledger.execute([big], at + 1).outcomes
    assert (outcome.rejection, outcome.timestamp_us) == (Rejection.INSUFFICIENT_LIQUIDITY, at)


# -- the engine and its store: recovery --------------------------------------------------


def test_time_does_not_go_back_past_an_administrative_commit_after_a_restart(
        db_path, open_engine, network):
    engine = open_engine(with_network=network)
    later_us = network.funded_at_us + 100 * SECOND_US
    engine.set_credit_line(ABOC, 1, later_us)
    engine.close()
    reopened = Engine(SQLiteStore(db_path))
    try:
        (outcome,) = reopened.submit([Transfer("t", ICBK, ABOC, 1, "CNY")],
                                     network.funded_at_us + SECOND_US)
    finally:
        reopened.close()
    assert outcome.timestamp_us >= later_us
    with closing(sqlite3.connect(db_path)) as db:
        times = [row[0] for row in db.execute("SELECT at_us FROM audit_log ORDER BY seq")]
    assert times == sorted(times)


_OPS = st.lists(st.one_of(
    st.tuples(st.just("pay"), st.sampled_from([ICBK, ABOC, CNY_ISSUANCE]),
              st.sampled_from([ICBK, ABOC, CNY_ISSUANCE]), st.integers(1, 80_000)),
    st.tuples(st.just("reserve"), st.sampled_from([ICBK, ABOC]), st.sampled_from([ICBK, ABOC]),
              st.integers(1, 80_000), st.integers(0, 30)),
    st.tuples(st.just("post"), st.integers(0, 9), st.integers(0, 90_000)),
    st.tuples(st.just("void"), st.integers(0, 9)),
    st.tuples(st.just("chain"), st.integers(1, 60_000), st.integers(1, 60_000)),
    st.tuples(st.just("again"), st.integers(0, 30)),
    st.tuples(st.just("wait"), st.integers(1, 20)),
    st.tuples(st.just("suspend"), st.booleans()),
), max_size=14)


def _run(engine: Engine, ops, start_us: int) -> list[Transfer]:
    now, sent = start_us, []
    for number, op in enumerate(ops):
        tid = f"t{number}"
        if op[0] == "pay":
            batch = [Transfer(tid, op[1], op[2], op[3], "CNY")]
        elif op[0] == "reserve":
            batch = [Transfer(tid, op[1], op[2], op[3], "CNY", TransferKind.PENDING,
                              timeout_s=op[4])]
        elif op[0] in ("post", "void"):
            kind = TransferKind.POST_PENDING if op[0] == "post" else TransferKind.VOID_PENDING
            amount = op[2] if op[0] == "post" else 0
            batch = [Transfer(tid, 0, 0, amount, "", kind, f"t{op[1]}")]
        elif op[0] == "chain":
            batch = [Transfer(tid + "a", ICBK, ABOC, op[1], "CNY", TransferKind.PENDING,
                              timeout_s=5, linked=True),
                     Transfer(tid + "b", 0, 0, op[2], "", TransferKind.POST_PENDING, tid + "a")]
        elif op[0] == "again":
            if not sent:
                continue
            batch = [sent[op[1] % len(sent)]]
        elif op[0] == "wait":
            now += op[1] * SECOND_US
            engine.expire(now)
            continue
        else:
            engine.set_participant_status("ABOCCNBJ",
                                          Status.SUSPENDED if op[1] else Status.ACTIVE, now)
            continue
        engine.submit(batch, now)
        sent.extend(batch)
        now += 1
    return sent


def _state(engine: Engine, ids: list[str]):
    ledger = engine.ledger
    balances = {a: (b.posted_minor, b.debits_pending_minor, b.credits_pending_minor, b.blocked)
                for a, b in ledger.balances.items()}
    outcomes = {tid: ledger.outcome_of(tid) for tid in ids}
    return balances, sorted(ledger.pending_ids()), outcomes


def _probe(ledger: Ledger, ids: list[str], at_us: int):
    """What a copy of the ledger does next: expiries due, then every id resubmitted and
    every reservation posted."""
    copied = copy.deepcopy(ledger)
    expired = [entry.transfer.id for entry in copied.expire_pending(at_us)]
    batch = [copied.transfer_of(tid) for tid in ids if copied.transfer_of(tid) is not None]
    batch += [Transfer(f"probe-{tid}", 0, 0, 0, "", TransferKind.POST_PENDING, tid)
              for tid in ids]
    return expired, [tuple(o) for o in copied.execute(batch, at_us).outcomes]


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(ops=_OPS, probe_after_s=st.integers(0, 40))
def test_an_engine_recovered_from_its_store_equals_the_live_one(tmp_path, network, ops,
                                                                 probe_after_s):
    folder = tmp_path / f"run-{os.urandom(6).hex()}"
    folder.mkdir()
    db_path = folder / "scopay.db"
    live = Engine(SQLiteStore(db_path))
    build_network(live, network)
    start = network.funded_at_us + 1
    sent = _run(live, ops, start)
    ids = sorted({t.id for t in sent} | {t.id for t in network.funding_transfers()})
    probe_at = live.ledger.outcome_of(ids[-1]).timestamp_us + probe_after_s * SECOND_US
    live_state, live_probe = _state(live, ids), _probe(live.ledger, ids, probe_at)
    assert invariant_violations(live.ledger) == []
    live.close()
    recovered = Engine(SQLiteStore(db_path))
    try:
        assert _state(recovered, ids) == live_state
        assert _probe(recovered.ledger, ids, probe_at) == live_probe
        report = recovered.reconcile()
        assert report.ok, report
        assert recovered.store.verify_audit().ok
        folded = fold_journal(recovered.accounts.values(),
                              [entry for _, entry in recovered.store.journal()])
        assert folded == {a: v[:3] for a, v in live_state[0].items()}
    finally:
        recovered.close()
    shutil.rmtree(folder)


# -- the audit chain ------------------------------------------------------------------------


@pytest.fixture
def audited(db_path, open_engine, network):
    """A database with the network built, a transfer, a refusal and a credit line raised;
    the engine closed."""
    engine = open_engine(with_network=network)
    at = network.funded_at_us + SECOND_US
    engine.submit([Transfer("t1", ICBK, ABOC, 100, "CNY"),
                   Transfer("t2", ICBK, ABOC, 10**12, "CNY")], at)
    engine.register_key("k1", "ICBKCNBJ", "A" * 43, at)
    engine.revoke_key("k1", at + 1)
    engine.set_credit_line(ABOC, 60_000, at + 2)
    engine.close()
    assert verify_audit(db_path).ok
    return db_path


@pytest.mark.parametrize("statements", [
    ["UPDATE journal SET amount_minor = amount_minor + 1 WHERE id = 't1'"],
    ["UPDATE transfer_rejection SET rejection = 'linked_event_failed' WHERE id = 't2'"],
    ["DELETE FROM journal WHERE seq = (SELECT max(seq) FROM journal)"],
    ["DELETE FROM audit_log WHERE seq = 3"],
    ["UPDATE audit_log SET payload = (SELECT payload FROM audit_log WHERE seq = 2) "
     "WHERE seq = 1"],
    ["INSERT INTO journal (id, kind, debit_account_id, credit_account_id, amount_minor, "
     "currency, pending_id, timeout_s, linked, timestamp_us) "
     "VALUES ('x', 'posted', 1, 11, 5, 'CNY', NULL, 0, 0, 9)"],
], ids=["edited-journal", "edited-refusal", "dropped-journal-row", "deleted-entry",
        "reordered-entry", "extra-journal-row"])
def test_audit_verify_names_a_broken_link(audited, statements):
    tamper(audited, *statements)
    report = verify_audit(audited)
    assert not report.ok and report.first_broken_seq is not None and report.reason


@pytest.mark.parametrize("statement", [
    "UPDATE account SET credit_line_minor = 900000000 WHERE id = 12",
    "UPDATE account SET blocked = 1 WHERE id = 11",
    "UPDATE participant SET status = 'suspended' WHERE bic = 'ICBKCNBJ'",
    "UPDATE participant_key SET revoked_us = NULL WHERE key_id = 'k1'",
], ids=["credit-line", "blocked", "participant-status", "revocation"])
def test_audit_verify_notices_an_edited_administrative_row(audited, statement):
    tamper(audited, statement)
    assert not verify_audit(audited).ok


def test_audit_verify_notices_a_rewritten_entry_time(audited):
    tamper(audited, "UPDATE audit_log SET at_us = 5 WHERE seq = (SELECT max(seq) FROM "
                    "audit_log)")
    assert not verify_audit(audited).ok


def test_audit_verify_notices_the_last_entry_deleted(audited):
    tamper(audited, "DELETE FROM audit_log WHERE seq = (SELECT max(seq) FROM audit_log)")
    assert not verify_audit(audited).ok


# -- the store's schema ---------------------------------------------------------------------


def test_a_database_of_a_newer_schema_is_refused(db_path):
    SQLiteStore(db_path).close()
    tamper(db_path, "INSERT INTO schema_migration VALUES (9999)")
    with pytest.raises((RuntimeError, ValueError, sqlite3.DatabaseError)):
        SQLiteStore(db_path).close()


# -- the CLI ------------------------------------------------------------------------------------


def test_a_key_file_is_never_written_over_a_file_and_is_private(tmp_path):
    """A readable file where the key would go is left alone (init refuses); a key file
    written is private (mode 600), not the mode of whatever was there."""
    key_path = tmp_path / "operator.key"
    key_path.write_text("placeholder\n")
    key_path.chmod(0o644)
    result = runner.invoke(app, ["init", "--db", str(tmp_path / "cli.db"),
                                 "--key-file", str(key_path)])
    assert result.exit_code == 2, result.output
    assert key_path.read_text() == "placeholder\n"
    key_path.unlink()
    result = runner.invoke(app, ["init", "--db", str(tmp_path / "cli.db"),
                                 "--key-file", str(key_path)])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600


@pytest.mark.parametrize("command", [["audit", "verify"], ["reconcile"], ["balances"]],
                         ids=["audit-verify", "reconcile", "balances"])
def test_read_commands_on_a_missing_database_fail_and_create_nothing(tmp_path, command):
    missing = tmp_path / "typo.db"
    result = runner.invoke(app, [*command, "--db", str(missing)])
    assert not missing.exists()
    assert result.exit_code != 0


def test_a_second_writer_is_refused_and_readers_still_work(tmp_path):
    db = tmp_path / "cli.db"
    assert runner.invoke(app, ["init", "--db", str(db)]).exit_code == 0
    holder = SQLiteStore(db)
    try:
        refused = runner.invoke(app, ["keys", "issue", OPERATOR_BIC, "--out",
                                      str(tmp_path / "k.key"), "--db", str(db)])
        assert refused.exit_code == 2 and not (tmp_path / "k.key").exists()
        assert runner.invoke(app, ["audit", "verify", "--db", str(db)]).exit_code == 0
        assert runner.invoke(app, ["reconcile", "--db", str(db)]).exit_code == 0
    finally:
        holder.close()
    issued = runner.invoke(app, ["keys", "issue", OPERATOR_BIC, "--out",
                                 str(tmp_path / "k.key"), "--db", str(db)])
    assert issued.exit_code == 0, issued.output
    assert stat.S_IMODE((tmp_path / "k.key").stat().st_mode) == 0o600
    assert "private_key" not in issued.output
