"""Payments through the engine over real SQLite: durable queue, history, mailboxes, time."""

import uuid

import pytest

from scopay.domain.ledger import Transfer, TransferKind
from scopay.domain.participant import Status
from scopay.domain.payment import Party, Payment, PaymentStatus, Priority
from scopay.domain.rejection import Rejection
from scopay.engine import engine as engine_module
from scopay.engine import payments as payments_module
from scopay.engine.engine import Engine
from scopay.engine.payments import GRIDLOCK_INTERVAL_US, PaymentRefused
from scopay.store.sqlite import SQLiteStore

ICBK, ABOC = "ICBKCNBJ", "ABOCCNBJ"  # ICBK holds 1000.00 CNY; ABOC 0 with a 500.00 line
SECOND_US = 1_000_000


def payment(debtor, creditor, amount_minor, **extra):
    return Payment(str(uuid.uuid4()), uuid.uuid4().hex[:12], "e2e", debtor, creditor,
                   Party("Ли Вэй"), Party("محمد رضایی"), amount_minor, "CNY", **extra)


def test_queued_payment_survives_a_restart_and_settles_afterwards(engine, network,
                                                                 open_engine):
    t = network.funded_at_us
    big = payment(ICBK, ABOC, 150_000)
    (result,) = engine.submit_payments(ICBK, [big], t + 1)
    assert result.status == PaymentStatus.QUEUED
    engine.close()

    reopened = open_engine()
    assert big.uetr in reopened.rtgs.orders
    assert reopened.payment(big.uetr).status == PaymentStatus.QUEUED
    # ABOC pays ICBK using its credit line: ICBK can now cover the queued payment
    reopened.submit_payments(ABOC, [payment(ABOC, ICBK, 50_000)], t + 2)
    record = reopened.payment(big.uetr)
    assert [c.status for c in record.history] == [
        PaymentStatus.RECEIVED, PaymentStatus.ACCEPTED, PaymentStatus.QUEUED,
        PaymentStatus.SETTLED]
    assert reopened.reconcile().ok


def test_cancelling_the_urgent_payment_that_held_a_queue_back_settles_the_rest(
        engine, network, open_engine):
    t = network.funded_at_us
    urgent = payment(ICBK, ABOC, 150_000, priority=Priority.URGENT)  # more than ICBK holds
    behind = payment(ICBK, ABOC, 500)
    engine.submit_payments(ICBK, [urgent, behind], t + 1)
    assert engine.payment(behind.uetr).status == PaymentStatus.QUEUED
    engine.cancel_payment(urgent.uetr, t + 2)
    assert engine.payment(behind.uetr).status == PaymentStatus.SETTLED  # at once, live
    assert engine.balance(11).posted_minor == 100_000 - 500
    engine.close()
    reopened = open_engine()  # and so it stays after a restart
    assert reopened.payment(behind.uetr).status == PaymentStatus.SETTLED
    assert reopened.reconcile().ok


def test_history_and_notices_are_durable_with_the_state_change(engine, network, open_engine):
    t = network.funded_at_us
    paid = payment(ICBK, ABOC, 10_000)
    engine.submit_payments(ICBK, [paid], t + 1)
    engine.close()
    reopened = open_engine()
    kinds = {(n.participant_bic, n.kind.value) for _, n, _ in reopened.mailbox(ICBK)
             + reopened.mailbox(ABOC) if n.uetr == paid.uetr}
    assert kinds == {(ICBK, "status_report"), (ABOC, "incoming_payment")}
    assert reopened.payment(paid.uetr).history[-1].status == PaymentStatus.SETTLED


def test_acknowledged_notices_leave_the_mailbox_for_good(engine, network, open_engine):
    engine.submit_payments(ICBK, [payment(ICBK, ABOC, 1)], network.funded_at_us + 1)
    seqs = [seq for seq, _, _ in engine.mailbox(ABOC)]
    engine.acknowledge(ABOC, seqs, network.funded_at_us + 2)
    engine.acknowledge(ICBK, seqs, network.funded_at_us + 2)  # not ICBK's: changes nothing
    engine.close()
    assert open_engine().mailbox(ABOC) == []


def test_heartbeat_rejects_past_reject_by_and_resolves_gridlock(engine, network):
    t = network.funded_at_us
    late = payment(ABOC, ICBK, 80_000, reject_by_us=t + 5 * SECOND_US)
    engine.submit_payments(ABOC, [late], t + 1)
    assert engine.payment(late.uetr).status == PaymentStatus.QUEUED
    engine.heartbeat(t + 5 * SECOND_US)
    record = engine.payment(late.uetr)
    assert record.status == PaymentStatus.REJECTED
    assert record.history[-1].reason == Rejection.REJECT_TIME_PASSED

    # a two-bank gridlock: each pays the other more than it can alone; equal amounts net out
    a = payment(ICBK, ABOC, 300_000)
    b = payment(ABOC, ICBK, 290_000, priority=Priority.HIGH)
    engine.submit_payments(ICBK, [a], t + 6 * SECOND_US)
    engine.submit_payments(ABOC, [b], t + 6 * SECOND_US)
    statuses = {engine.payment(a.uetr).status, engine.payment(b.uetr).status}
    if statuses != {PaymentStatus.SETTLED}:  # offsetting on entry may already settle them
        engine.heartbeat(t + 6 * SECOND_US + GRIDLOCK_INTERVAL_US)
    assert engine.payment(a.uetr).status == PaymentStatus.SETTLED
    assert engine.payment(b.uetr).status == PaymentStatus.SETTLED
    assert engine.reconcile().ok


def test_duplicate_uetr_with_other_content_is_refused_and_not_recorded(engine, network):
    first = payment(ICBK, ABOC, 100)
    engine.submit_payments(ICBK, [first], network.funded_at_us + 1)
    clash = Payment(first.uetr, "other-instr", "e2e", ICBK, ABOC, first.debtor, first.creditor,
                    200, "CNY")
    (result,) = engine.submit_payments(ICBK, [clash], network.funded_at_us + 2)
    assert result.reason == Rejection.PAYMENT_EXISTS_WITH_DIFFERENT_CONTENT
    assert engine.payment(first.uetr).payment == first


def test_indirect_participant_settles_through_its_sponsor(engine, network):
    from scopay.domain.participant import Participant, Role, Tier

    t = network.funded_at_us
    engine.admit_participant(Participant("KASPKZKA", "Kaspi Bank", Role.INDIRECT, "KZ",
                                         Tier.MEMBER, sponsor_bic=ICBK), t)
    (result,) = engine.submit_payments(ICBK, [payment("KASPKZKA", ABOC, 500)], t + 1)
    assert result.status == PaymentStatus.SETTLED
    assert engine.balance(11).posted_minor == 100_000 - 500  # ICBK's account paid


def test_an_answer_under_an_idempotency_key_is_committed_with_its_payments(engine, network,
                                                                          open_engine):
    from scopay.engine.payments import Receipt

    rendered = []

    def render(results):
        rendered.append(results)
        return 201, f"{results[0].uetr} {results[0].status.value}".encode()

    paid = payment(ICBK, ABOC, 10_000)
    receipt = Receipt("retry-me", "f" * 64, render)
    (results,) = engine.submit_payment_requests([(ICBK, [paid], receipt)],
                                                network.funded_at_us + 1)
    assert receipt.answer == (201, f"{paid.uetr} settled".encode())
    assert rendered == [results]
    engine.close()

    reopened = open_engine()
    assert reopened.idempotency[(ICBK, "retry-me")] == ("f" * 64, *receipt.answer)
    assert reopened.payment(paid.uetr).status == PaymentStatus.SETTLED


def test_an_answer_that_cannot_be_rendered_leaves_no_payment_settled_in_memory_alone(
        engine, network, open_engine):
    from scopay.engine.payments import Receipt

    def render(results):
        raise OverflowError("the answer cannot be written")

    before = engine.balance(11).posted_minor
    paid = payment(ICBK, ABOC, 10_000)
    with pytest.raises(OverflowError):
        engine.submit_payment_requests([(ICBK, [paid], Receipt("k", "f" * 64, render))],
                                       network.funded_at_us + 1)
    # nothing was committed, and memory says so too: no payment, no money moved
    assert engine.payment(paid.uetr) is None
    assert engine.balance(11).posted_minor == before
    assert engine.reconcile().ok
    (result,) = engine.submit_payments(ICBK, [paid], network.funded_at_us + 2)  # sent again
    assert result.status == PaymentStatus.SETTLED
    assert engine.balance(11).posted_minor == before - 10_000
    engine.close()
    assert open_engine().payment(paid.uetr).status == PaymentStatus.SETTLED


def test_limit_positions_survive_a_restart_within_the_day_and_reset_the_next(engine, network,
                                                                           open_engine):
    from scopay.domain.rtgs import BUSINESS_DAY_US, AccountPolicy

    day_start = (network.funded_at_us // BUSINESS_DAY_US + 1) * BUSINESS_DAY_US
    icbk = engine._settlement_account(ICBK, "CNY")
    aboc = engine._settlement_account(ABOC, "CNY")
    engine.set_account_policy(icbk, AccountPolicy(bilateral_limits={aboc: 10_000}), day_start)
    engine.submit_payments(ICBK, [payment(ICBK, ABOC, 8_000)], day_start + 1)
    engine.close()

    reopened = open_engine()  # the day's 80.00 sent still counts against the 100.00 limit
    held = payment(ICBK, ABOC, 3_000)
    (result,) = reopened.submit_payments(ICBK, [held], day_start + 2)
    assert (result.status, result.detail) == (PaymentStatus.QUEUED, "bilateral_limit")
    reopened.tick(day_start + BUSINESS_DAY_US)  # the next business day
    assert reopened.payment(held.uetr).status == PaymentStatus.SETTLED
    reopened.close()

    again = open_engine()  # recovery counts only the latest day: 30.00 of 100.00 used
    (result,) = again.submit_payments(ICBK, [payment(ICBK, ABOC, 7_000)],
                                      day_start + BUSINESS_DAY_US + 1)
    assert result.status == PaymentStatus.SETTLED


@pytest.mark.parametrize("restart", [False, True], ids=["live", "restarted"])
def test_a_new_day_reached_first_by_a_mailbox_acknowledgement_still_frees_the_limits(
        engine, network, open_engine, restart):
    """An administrative commit (here a mailbox acknowledgement) moves the engine's time into
    a new day without turning the settlement side's business day; live or after a restart,
    the next step turns it: the limits count afresh and the queue they held back settles."""
    from scopay.domain.rtgs import BUSINESS_DAY_US, AccountPolicy

    day_start = (network.funded_at_us // BUSINESS_DAY_US + 1) * BUSINESS_DAY_US
    icbk = engine._settlement_account(ICBK, "CNY")
    aboc = engine._settlement_account(ABOC, "CNY")
    engine.set_account_policy(icbk, AccountPolicy(bilateral_limits={aboc: 10_000}), day_start)
    engine.submit_payments(ICBK, [payment(ICBK, ABOC, 10_000)], day_start + 1)
    held = payment(ICBK, ABOC, 5_000)
    (result,) = engine.submit_payments(ICBK, [held], day_start + 2)
    assert (result.status, result.detail) == (PaymentStatus.QUEUED, "bilateral_limit")
    next_day = day_start + BUSINESS_DAY_US + 10 * SECOND_US
    (seq, _, _), *_ = engine.mailbox(ABOC)
    engine.acknowledge(ABOC, [seq], next_day)
    if restart:
        engine.close()
        engine = open_engine()
    engine.tick(next_day + SECOND_US)
    assert engine.payment(held.uetr).status == PaymentStatus.SETTLED


def test_reordered_and_reprioritised_queue_survives_a_restart(engine, network, open_engine):
    t = network.funded_at_us
    first, second, third = (payment(ICBK, ABOC, 150_000) for _ in range(3))
    engine.submit_payments(ICBK, [first, second, third], t + 1)
    engine.move_payment(third.uetr, True, t + 2)
    engine.change_payment_priority(second.uetr, Priority.HIGH, t + 3)

    def queue_of(e):
        account = e._settlement_account(ICBK, "CNY")
        return [(o.uetr, o.priority) for o in e.rtgs.queues[account]]

    expected = [(second.uetr, Priority.HIGH), (third.uetr, Priority.NORMAL),
                (first.uetr, Priority.NORMAL)]
    assert queue_of(engine) == expected
    engine.close()
    reopened = open_engine()
    assert queue_of(reopened) == expected
    assert reopened.payment(second.uetr).priority == Priority.HIGH


def test_answers_are_forgotten_a_day_after_they_were_kept(engine, network, open_engine):
    from scopay.engine.answers import ANSWER_RETENTION_US
    from scopay.engine.payments import Receipt

    t = network.funded_at_us
    old, young = payment(ICBK, ABOC, 100), payment(ICBK, ABOC, 200)
    engine.submit_payment_requests(
        [(ICBK, [old], Receipt("old", "a" * 64, lambda r: (201, b"old answer")))], t + 1)
    engine.submit_payment_requests(
        [(ICBK, [young], Receipt("young", "b" * 64, lambda r: (201, b"young answer")))],
        t + 1 + ANSWER_RETENTION_US // 2)
    engine.heartbeat(t + 1 + ANSWER_RETENTION_US)  # not yet more than a day: both stay
    assert (ICBK, "old") in engine.idempotency and (ICBK, "young") in engine.idempotency
    engine.heartbeat(t + 2 + ANSWER_RETENTION_US)
    assert (ICBK, "old") not in engine.idempotency
    assert engine.idempotency[(ICBK, "young")] == ("b" * 64, 201, b"young answer")
    engine.close()

    reopened = open_engine()
    assert (ICBK, "old") not in reopened.idempotency
    assert reopened.idempotency.get((ICBK, "young")) == ("b" * 64, 201, b"young answer")
    assert reopened.payment(old.uetr).status == PaymentStatus.SETTLED  # the payment stays
    assert reopened.store.verify_audit().ok


def test_recovery_reports_its_progress_up_to_every_entry_and_payment(engine, network, db_path,
                                                                     monkeypatch):
    t = network.funded_at_us
    engine.submit_payments(ICBK, [payment(ICBK, ABOC, 1) for _ in range(7)], t + 1)
    journal_entries, payments_count = engine.journal_count, len(engine.payments)
    engine.close()
    monkeypatch.setattr(engine_module, "RECOVERY_PROGRESS_EVERY", 3)
    monkeypatch.setattr(payments_module, "RECOVERY_PROGRESS_EVERY", 3)
    heard: list[tuple[str, int, int]] = []
    reopened = Engine(SQLiteStore(db_path), progress=lambda *report: heard.append(report))
    try:
        assert reopened.journal_count == journal_entries
    finally:
        reopened.close()
    by_kind = {kind: [(done, total) for k, done, total in heard if k == kind]
               for kind in ("journal entries", "payments")}
    assert set(by_kind) == {kind for kind, _, _ in heard}
    assert by_kind["journal entries"][-1] == (journal_entries, journal_entries)
    assert by_kind["payments"] == [(3, 7), (6, 7), (7, 7)] and payments_count == 7
    dones = [done for done, _ in by_kind["journal entries"]]
    assert dones == sorted(dones) and len(dones) == journal_entries // 3 + 1


def test_payment_to_or_from_a_suspended_agent_is_refused_as_blocked_not_unknown(engine, network):
    t = network.funded_at_us
    engine.set_participant_status(ABOC, Status.SUSPENDED, t + 1)
    (to_suspended,) = engine.submit_payments(ICBK, [payment(ICBK, ABOC, 1)], t + 2)
    assert (to_suspended.status, to_suspended.reason) == (
        PaymentStatus.REJECTED, Rejection.CREDIT_ACCOUNT_BLOCKED)
    engine.set_participant_status(ABOC, Status.ACTIVE, t + 3)
    engine.set_participant_status(ICBK, Status.SUSPENDED, t + 3)
    (from_suspended,) = engine.submit_payments(ICBK, [payment(ICBK, ABOC, 1)], t + 4)
    assert from_suspended.reason == Rejection.DEBIT_ACCOUNT_BLOCKED
    (to_nobody,) = engine.submit_payments(ABOC, [payment(ABOC, "ZZZZCNX0", 1)], t + 5)
    assert to_nobody.reason == Rejection.CREDITOR_AGENT_UNKNOWN


def test_a_cancellation_keeps_who_asked_and_why_in_the_history_and_the_notice(engine, network,
                                                                             open_engine):
    t = network.funded_at_us
    asked, plain = payment(ICBK, ABOC, 150_000), payment(ICBK, ABOC, 160_000)
    engine.submit_payments(ICBK, [asked, plain], t + 1)
    result = engine.cancel_payment(asked.uetr, t + 2, "DUPL: cancelled by its sender ICBKCNBJ")
    assert (result.status, result.detail) == (
        PaymentStatus.CANCELLED, "DUPL: cancelled by its sender ICBKCNBJ")
    engine.cancel_payment(plain.uetr, t + 3)
    engine.close()

    reopened = open_engine()
    last = reopened.payment(asked.uetr).history[-1]
    assert (last.status, last.at_us, last.reason, last.detail) == (
        PaymentStatus.CANCELLED, t + 2, None, "DUPL: cancelled by its sender ICBKCNBJ")
    assert reopened.payment(plain.uetr).history[-1].detail == (
        "cancelled by its sender or the operator")
    told = [n.reason for _, n, _ in reopened.mailbox(ICBK)
            if n.uetr == asked.uetr and n.status == "cancelled"]
    assert told == ["DUPL: cancelled by its sender ICBKCNBJ"]


def test_a_message_id_names_one_message_of_its_sender_live_and_after_restart(
        engine, network, open_engine):
    t = network.funded_at_us
    first = [payment(ICBK, ABOC, 1, message_id="MSG-1") for _ in range(2)]
    assert [r.status for r in engine.submit_payments(ICBK, first, t + 1)] == [
        PaymentStatus.SETTLED] * 2
    again = engine.submit_payments(ICBK, first, t + 2)  # the same message: its outcomes
    assert [r.status for r in again] == [PaymentStatus.SETTLED] * 2
    other = [payment(ICBK, ABOC, 1, message_id="MSG-1")]
    by_another = [payment(ABOC, ICBK, 1, message_id="MSG-1")]  # another sender's own id
    engine.close()
    reopened = open_engine()
    journal = reopened.journal_count
    refused = reopened.submit_payments(ICBK, other, t + 3)
    fewer = reopened.submit_payments(ICBK, first[:1], t + 3)
    assert [(r.status, r.reason) for r in refused + fewer] == [
        (PaymentStatus.REJECTED, Rejection.MESSAGE_ID_USED)] * 2
    assert other[0].uetr not in reopened.payments and reopened.journal_count == journal
    assert reopened.submit_payments(ABOC, by_another, t + 4)[0].status == PaymentStatus.SETTLED
    assert reopened.reconcile().ok


def test_a_payment_still_queued_at_its_latest_time_warns_its_sender_once(
        engine, network, open_engine):
    t = network.funded_at_us
    late = payment(ABOC, ICBK, 80_000, latest_us=t + 5 * SECOND_US)
    engine.submit_payments(ABOC, [late], t + 1)

    def warnings(of):
        return [n for _, n, _ in of.mailbox(ABOC, 0, 500)
                if n.uetr == late.uetr and n.reason == "latest_time_passed"]

    engine.heartbeat(t + 5 * SECOND_US - 1)
    assert warnings(engine) == []
    engine.heartbeat(t + 5 * SECOND_US)
    engine.heartbeat(t + 6 * SECOND_US)
    (warned,) = warnings(engine)
    assert (warned.status, warned.kind.value) == ("queued", "status_report")
    assert engine.payment(late.uetr).status == PaymentStatus.QUEUED  # a warning, no more
    engine.close()
    reopened = open_engine()
    reopened.heartbeat(t + 7 * SECOND_US)
    assert len(warnings(reopened)) == 1  # told before the restart: not again
    reopened.set_payment_times(late.uetr, t + 9 * SECOND_US, None, t + 8 * SECOND_US)
    reopened.heartbeat(t + 9 * SECOND_US)
    assert len(warnings(reopened)) == 2  # a new latest time, passed: told again


def test_a_latest_time_passed_before_a_restart_unwarned_is_warned_after_it_and_only_once(
        engine, network, open_engine):
    """A commit that is no settlement step (an acknowledgement) moves time on without
    warning; the restarted engine still owes the warning, and gives it once."""
    t = network.funded_at_us
    late = payment(ABOC, ICBK, 80_000, latest_us=t + 5 * SECOND_US)
    engine.submit_payments(ABOC, [late], t + 1)
    engine.acknowledge(ABOC, [], t + 6 * SECOND_US)
    engine.acknowledge(ABOC, [seq for seq, _, _ in engine.mailbox(ABOC)], t + 6 * SECOND_US)
    engine.close()
    reopened = open_engine()

    def warnings():
        return [n for _, n, _ in reopened.mailbox(ABOC, 0, 500)
                if n.uetr == late.uetr and n.reason == "latest_time_passed"]

    reopened.heartbeat(t + 7 * SECOND_US)
    reopened.heartbeat(t + 8 * SECOND_US)
    assert len(warnings()) == 1
    # the same latest time given again with another reject-by time: no second warning
    reopened.set_payment_times(late.uetr, t + 5 * SECOND_US, t + 60 * SECOND_US,
                               t + 9 * SECOND_US)
    reopened.heartbeat(t + 10 * SECOND_US)
    assert len(warnings()) == 1


def test_times_set_on_two_dates_are_refused_and_change_nothing(engine, network, open_engine):
    """ISO 20022 gives a payment's times as clock times on one settlement date: the engine
    refuses latest and reject-by times on two dates, or on another date than the earliest."""
    t = network.funded_at_us
    day = 86_400 * SECOND_US
    start = t - t % day + day  # the next UTC midnight
    big = payment(ICBK, ABOC, 150_000)
    timed = payment(ICBK, ABOC, 150_000, earliest_us=start + SECOND_US)
    engine.submit_payments(ICBK, [big, timed], t + 1)
    commits = engine.store.last_seq(), len(engine.mailbox(ICBK, 0, 500))
    refused = [(big.uetr, start - SECOND_US, start + SECOND_US),  # either side of midnight
               (timed.uetr, start + day, None)]  # not on the earliest time's date
    for uetr, latest_us, reject_by_us in refused:
        with pytest.raises(PaymentRefused, match="one UTC date"):
            engine.set_payment_times(uetr, latest_us, reject_by_us, t + 2)
    assert (engine.store.last_seq(), len(engine.mailbox(ICBK, 0, 500))) == commits
    engine.close()
    reopened = open_engine()
    for original in (big, timed):
        record = reopened.payment(original.uetr)
        assert (record.latest_us, record.reject_by_us) == (None, None)
    accepted = reopened.set_payment_times(big.uetr, start + SECOND_US, start + 2 * SECOND_US,
                                          t + 3)
    assert accepted.status == PaymentStatus.QUEUED


def _broken(*_args, **_kwargs):
    raise RuntimeError("a defect in the step")  # what the rebuild after a raise is there for


def test_a_credit_line_whose_step_raises_is_not_set_in_memory_nor_store(
        engine, network, open_engine):
    """Raising the credit line and trying the account's queue are one step, one commit:
    if trying the queue raises, the line is not raised either (in memory and in the store),
    under the server's deferred commits as inline."""
    aboc = engine._settlement_account(ABOC, "CNY")
    before = engine.accounts[aboc].credit_line_minor
    engine.rtgs.release = _broken
    engine.defer_commits = True  # as the server's runner runs commands
    with pytest.raises(RuntimeError):
        engine.set_credit_line(aboc, before + 100_000, network.funded_at_us + 1)
    engine.defer_commits = False
    assert not engine.commit_pending
    assert engine.accounts[aboc].credit_line_minor == before
    assert engine.balance(aboc).floor_minor == -before
    engine.close()
    assert open_engine().accounts[aboc].credit_line_minor == before


def test_a_transfer_step_that_raises_leaves_nothing_in_memory_alone(engine, network,
                                                                   open_engine):
    t = network.funded_at_us
    (queued,) = engine.submit_payments(ICBK, [payment(ICBK, ABOC, 150_000)], t + 1)
    assert queued.status == PaymentStatus.QUEUED  # so a transfer is a step of the RTGS too
    before = engine.balance(12).posted_minor
    engine.rtgs.release = _broken
    with pytest.raises(RuntimeError):
        engine.submit([Transfer("t-broken", 11, 12, 1_000, "CNY")], t + 2)
    assert engine.balance(12).posted_minor == before
    assert engine.reconcile().ok
    engine.close()
    assert open_engine().balance(12).posted_minor == before


def test_the_queue_is_listed_in_the_order_it_settles_live_and_after_a_restart(
        engine, network, open_engine):
    """queued_payments lists each debtor's queue as it would settle: urgent before high
    before normal, then by place (a payment moved to the front first), not by arrival."""
    t = network.funded_at_us
    first, second, third = (payment(ICBK, ABOC, 200_000) for _ in range(3))  # each > 1000.00
    urgent = payment(ICBK, ABOC, 200_000, priority=Priority.URGENT)
    for n, paid in enumerate((first, second, third, urgent)):
        (result,) = engine.submit_payments(ICBK, [paid], t + 1 + n)
        assert result.status == PaymentStatus.QUEUED
    engine.move_payment(third.uetr, True, t + 10)
    expected = [urgent.uetr, third.uetr, first.uetr, second.uetr]
    assert [r.payment.uetr for r in engine.queued_payments()] == expected
    engine.close()
    assert [r.payment.uetr for r in open_engine().queued_payments()] == expected


def test_a_credit_line_lowered_as_a_due_payment_uses_it_is_refused_cleanly(
        engine, network, open_engine):
    """Lowering ABOC's line at a time when its dated payment falls due: the step settles the
    payment on the line it had, and the new line, which the account now uses more than, is
    refused (CommandRefused: 409), the settlement kept; not an internal error."""
    t = network.funded_at_us
    due = payment(ABOC, ICBK, 40_000, earliest_us=t + 2_000_000)  # on ABOC's 500.00 line
    (queued,) = engine.submit_payments(ABOC, [due], t + 1)
    assert queued.status == PaymentStatus.QUEUED
    with pytest.raises(engine_module.CommandRefused):
        engine.set_credit_line(network.aboc_cny, 0, t + 3_000_000)
    assert engine.payment(due.uetr).status == PaymentStatus.SETTLED
    assert engine.accounts[network.aboc_cny].credit_line_minor == network.aboc_credit_line_minor
    engine.close()
    reopened = open_engine()
    assert reopened.payment(due.uetr).status == PaymentStatus.SETTLED
    assert reopened.balance(network.aboc_cny).floor_minor == -network.aboc_credit_line_minor


def test_a_credit_line_is_judged_on_the_account_as_it_stands_when_set(engine, network):
    """A reservation that expired before the line is set no longer uses the account: the
    lower line is taken (it was refused on the balance of before time moved on)."""
    t = network.funded_at_us
    held = Transfer("held-for-1s", network.aboc_cny, network.icbk_cny, 40_000, "CNY",
                    TransferKind.PENDING, timeout_s=1)
    (outcome,) = engine.submit([held], t + 1)
    assert outcome.rejection is None
    engine.set_credit_line(network.aboc_cny, 10_000, t + 5_000_000)  # the hold is gone by then
    assert engine.accounts[network.aboc_cny].credit_line_minor == 10_000
