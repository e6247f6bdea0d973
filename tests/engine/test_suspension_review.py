"""Queued payments of a suspended participant, on either side, wait for its reinstatement:
they are neither rejected by whatever happens to arrive meanwhile nor settled, and settle
once it is reinstated, with no other event needed."""

from __future__ import annotations

import sqlite3
import uuid
from dataclasses import replace

import pytest

from scopay.domain.account import Account, AccountKind
from scopay.domain.ledger import Ledger, Transfer
from scopay.domain.participant import Participant, Role, Status, Tier
from scopay.domain.payment import Party, Payment, PaymentStatus, Priority
from scopay.domain.rtgs import Order, Rtgs
from scopay.store.sqlite import SQLiteStore

ICBK, ABOC = "ICBKCNBJ", "ABOCCNBJ"
AT_US = 2_000_000


def payment(debtor: str, creditor: str, amount_minor: int) -> Payment:
    return Payment(str(uuid.uuid4()), uuid.uuid4().hex[:16], "E2E", debtor, creditor,
                   Party("Debtor"), Party("Creditor"), amount_minor, "CNY")


def held_through_funding(engine, network, creditor: str) -> Payment:
    """ICBK's payment to `creditor`, queued, `creditor` suspended; then ICBK gets the money
    and a resolution runs: the payment still waits."""
    waiting = payment(ICBK, creditor, 200_000)  # 2,000.00: more than ICBK's 1,000.00
    (result,) = engine.submit_payments(ICBK, [waiting], AT_US)
    assert result.status == PaymentStatus.QUEUED
    engine.set_participant_status(creditor, Status.SUSPENDED, AT_US + 1)
    engine.submit([Transfer("top-up", network.cny_issuance, network.icbk_cny, 500_000, "CNY")],
                  AT_US + 2)
    engine.resolve_gridlock(AT_US + 3)
    assert engine.payment(waiting.uetr).status == PaymentStatus.QUEUED
    return waiting


def test_a_payment_to_a_suspended_creditor_waits_and_settles_when_it_is_reinstated(
        engine, network):
    waiting = held_through_funding(engine, network, ABOC)
    engine.set_participant_status(ABOC, Status.ACTIVE, AT_US + 4)
    assert engine.payment(waiting.uetr).status == PaymentStatus.SETTLED


def test_a_suspended_debtors_queued_payment_waits_through_a_raised_credit_line(engine, network):
    waiting = payment(ABOC, ICBK, 60_000)  # 600.00: beyond ABOC's 500.00 credit line
    (result,) = engine.submit_payments(ABOC, [waiting], AT_US)
    assert result.status == PaymentStatus.QUEUED
    engine.set_participant_status(ABOC, Status.SUSPENDED, AT_US + 1)
    engine.set_credit_line(network.aboc_cny, 100_000, AT_US + 2)  # room enough now
    assert engine.payment(waiting.uetr).status == PaymentStatus.QUEUED
    engine.set_participant_status(ABOC, Status.ACTIVE, AT_US + 3)
    assert engine.payment(waiting.uetr).status == PaymentStatus.SETTLED


def admitted(engine, participant: Participant, account_id: int | None = None) -> None:
    engine.admit_participant(participant, AT_US - 2)
    if account_id is not None:
        engine.open_account(Account(account_id, participant.bic, "CNY"), AT_US - 1)


def test_a_suspended_indirect_agents_queued_payment_waits_on_its_sponsors_open_account(
        engine, network):
    """An indirect agent settles on its sponsor's account, which its suspension leaves open:
    its payments are held all the same."""
    indirect = "ABOCCNBJ001"
    admitted(engine, Participant(indirect, "ABC branch", Role.INDIRECT, "CN", Tier.MEMBER,
                                 sponsor_bic=ABOC))
    waiting = held_through_funding(engine, network, indirect)
    engine.close()  # held after a restart too
    engine = type(engine)(SQLiteStore(engine.store.path))
    try:
        engine.tick(AT_US + 4)
        assert engine.payment(waiting.uetr).status == PaymentStatus.QUEUED
        engine.set_participant_status(indirect, Status.ACTIVE, AT_US + 5)
        assert engine.payment(waiting.uetr).status == PaymentStatus.SETTLED
    finally:
        engine.close()


def test_suspending_a_creditor_lets_the_payments_behind_its_held_one_go(engine):
    admitted(engine, Participant("BKCHCNBJ", "Bank of China", Role.DIRECT, "CN", Tier.MEMBER),
             13)
    urgent = replace(payment(ICBK, ABOC, 200_000), priority=Priority.URGENT)  # uncovered
    behind = replace(payment(ICBK, "BKCHCNBJ", 10_000), priority=Priority.HIGH)  # covered
    first, second = engine.submit_payments(ICBK, [urgent, behind], AT_US)
    assert (first.status, second.status) == (PaymentStatus.QUEUED, PaymentStatus.QUEUED)
    engine.set_participant_status(ABOC, Status.SUSPENDED, AT_US + 1)
    assert engine.payment(behind.uetr).status == PaymentStatus.SETTLED
    assert engine.payment(urgent.uetr).status == PaymentStatus.QUEUED


def test_suspending_a_participant_with_no_queued_payments_moves_nothing(engine):
    auditor = "AUDTCNBJ"
    admitted(engine, Participant(auditor, "Oversight", Role.AUDITOR, "CN", Tier.MEMBER))
    # three urgent payments that all wait, the last behind the one before it (so it tried no
    # offset on entry): a release of every queue would settle them together
    sent = [replace(payment(debtor, creditor, amount), priority=Priority.URGENT)
            for debtor, creditor, amount in ((ICBK, ABOC, 200_000), (ABOC, ICBK, 60_000),
                                             (ABOC, ICBK, 40_000))]
    for n, one in enumerate(sent):
        engine.submit_payments(one.debtor_agent, [one], AT_US + n)
    engine.tick(AT_US + 10)
    statuses = [engine.payment(p.uetr).status for p in sent]
    assert statuses == [PaymentStatus.QUEUED] * 3
    journal = engine.journal_count
    engine.set_participant_status(auditor, Status.SUSPENDED, AT_US + 11)
    engine.set_participant_status(auditor, Status.ACTIVE, AT_US + 12)
    assert engine.journal_count == journal
    assert [engine.payment(p.uetr).status for p in sent] == statuses


def test_a_suspension_tries_the_queues_whose_offsets_it_changes():
    """Suspending A1 holds B's high payment to A1; B's normal payment to C, behind it, may
    then offset against C's payment back to B: C's queue, which holds nothing of A1's, is
    tried too, and all three settle as a release of every queue would settle them."""
    ledger = Ledger()
    ledger.open_account(Account(100, "CB", "CNY", AccountKind.ISSUANCE))
    for account, funds in ((1, 60), (2, 10), (5, 0)):
        ledger.open_account(Account(account, f"BANK{account}", "CNY"))
        if funds:
            ledger.execute([Transfer(f"fund-{account}", 100, account, funds, "CNY")], 1)
    rtgs = Rtgs(ledger)
    for order in (Order("urgent", 2, 5, 80, "CNY", Priority.URGENT, creditor_agent="BANK5"),
                  Order("to-a1", 2, 1, 10, "CNY", Priority.HIGH, creditor_agent="BANK1"),
                  Order("normal", 2, 5, 80, "CNY", Priority.NORMAL, creditor_agent="BANK5"),
                  Order("back", 5, 2, 150, "CNY", Priority.NORMAL, creditor_agent="BANK2")):
        rtgs.submit(order, 10)
    assert not rtgs.release(set(rtgs.queues), 15).settled  # nothing more settles now
    ledger.set_blocked(1, True)  # BANK1 suspended, as Engine.set_participant_status does
    rtgs.suspended_agents.add("BANK1")
    settled = rtgs.release(rtgs.queues_involving({1}, "BANK1"), 20).settled
    assert sorted(o.uetr for o in settled) == ["back", "normal", "urgent"]


def test_a_reinstatement_and_what_it_releases_are_one_commit(engine, network, open_engine):
    """Reinstating ABOC settles its held payment in the same commit: one commit, so a
    store failing after a first commit cannot leave the status kept and the held payment
    queued under an active participant."""
    waiting = held_through_funding(engine, network, ABOC)
    commit, calls = engine.store.commit, []

    def second_commit_fails(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise sqlite3.OperationalError("database or disk is full")
        return commit(*args, **kwargs)

    engine.store.commit = second_commit_fails
    try:
        engine.set_participant_status(ABOC, Status.ACTIVE, AT_US + 4)
    except sqlite3.OperationalError:
        pytest.fail("one commit, which succeeded, was expected")
    engine.store.commit = commit
    assert len(calls) == 1
    engine.close()
    reopened = open_engine()
    assert reopened.participants[ABOC].status == Status.ACTIVE
    assert reopened.payment(waiting.uetr).status == PaymentStatus.SETTLED
