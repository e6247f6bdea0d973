"""Returns through the engine over real SQLite: a settled payment goes back whole, once, in
one commit with its history and notices, or not at all."""

import uuid

from scopay.domain.ledger import invariant_violations
from scopay.domain.payment import Party, Payment, PaymentStatus
from scopay.domain.rejection import Rejection
from scopay.engine.payments import RETURN_TRANSFER_PREFIX, ReturnRequest

ICBK, ABOC = "ICBKCNBJ", "ABOCCNBJ"  # ICBK holds 1000.00 CNY; ABOC 0 with a 500.00 line
DETAIL = "AC04: returned by its creditor agent ABOCCNBJ (pacs.004 M1, return R1)"


def payment(debtor, creditor, amount_minor):
    return Payment(str(uuid.uuid4()), uuid.uuid4().hex[:12], "e2e", debtor, creditor,
                   Party("Ли Вэй"), Party("محمد رضایی"), amount_minor, "CNY")


def returned(paid: Payment, returner=ABOC, amount_minor=None, detail=DETAIL) -> ReturnRequest:
    amount = paid.settlement_amount_minor if amount_minor is None else amount_minor
    return ReturnRequest(paid.uetr, amount, "CNY", returner, detail)


def posted(engine, account_id):
    return engine.balance(account_id).posted_minor


def test_a_returned_payment_moves_the_money_back_durably_with_its_history_and_notices(
        engine, network, open_engine):
    t = network.funded_at_us
    paid = payment(ICBK, ABOC, 10_000)
    engine.submit_payments(ICBK, [paid], t + 1)
    assert (posted(engine, 11), posted(engine, 12)) == (90_000, 10_000)

    (outcome,) = engine.return_payments([returned(paid)], t + 2)
    assert (outcome.uetr, outcome.rejection, outcome.at_us) == (paid.uetr, None, t + 2)
    assert (posted(engine, 11), posted(engine, 12)) == (100_000, 0)
    positions = dict(engine.rtgs.positions)  # the day's limits still count the payment
    engine.close()

    reopened = open_engine()
    assert (posted(reopened, 11), posted(reopened, 12)) == (100_000, 0)
    assert reopened.rtgs.positions == positions and positions
    record = reopened.payment(paid.uetr)
    assert [c.status for c in record.history][-2:] == [PaymentStatus.SETTLED,
                                                        PaymentStatus.RETURNED]
    last = record.history[-1]
    assert (last.at_us, last.reason, last.detail) == (t + 2, None, DETAIL)
    entries = [e for _, e in reopened.store.journal()
               if e.transfer.id == RETURN_TRANSFER_PREFIX + paid.uetr]
    assert [(e.transfer.debit_account_id, e.transfer.credit_account_id,
             e.transfer.amount_minor) for e in entries] == [(12, 11, 10_000)]
    notices = {(n.participant_bic, n.kind.value, n.reason) for _, n, _ in
               reopened.mailbox(ICBK) + reopened.mailbox(ABOC)
               if n.uetr == paid.uetr and n.status == "returned"}
    assert notices == {(ICBK, "incoming_payment", DETAIL), (ABOC, "status_report", DETAIL)}
    assert reopened.reconcile().ok
    assert invariant_violations(reopened.ledger) == []
    assert reopened.store.verify_audit().ok  # the payment's row changed by the engine only


def test_a_return_the_returner_cannot_pay_changes_nothing_and_may_come_later(engine, network):
    t = network.funded_at_us
    paid = payment(ICBK, ABOC, 10_000)
    engine.submit_payments(ICBK, [paid], t + 1)
    engine.submit_payments(ABOC, [payment(ABOC, ICBK, 60_000)], t + 2)  # ABOC at its floor
    before = (posted(engine, 11), posted(engine, 12), engine.journal_count,
              len(engine.mailbox(ICBK)), len(engine.mailbox(ABOC)))

    (outcome,) = engine.return_payments([returned(paid)], t + 3)
    assert outcome.rejection == Rejection.INSUFFICIENT_LIQUIDITY
    assert (posted(engine, 11), posted(engine, 12), engine.journal_count,
            len(engine.mailbox(ICBK)), len(engine.mailbox(ABOC))) == before
    assert engine.payment(paid.uetr).status == PaymentStatus.SETTLED

    engine.submit_payments(ICBK, [payment(ICBK, ABOC, 20_000)], t + 4)  # ABOC gets room
    (outcome,) = engine.return_payments([returned(paid)], t + 5)
    assert outcome.rejection is None  # the refused attempt did not use up the return's id
    assert engine.payment(paid.uetr).status == PaymentStatus.RETURNED
    assert engine.reconcile().ok


def test_a_payment_goes_back_once_whole_and_only_when_settled(engine, network, open_engine):
    t = network.funded_at_us
    paid, waits = payment(ICBK, ABOC, 10_000), payment(ICBK, ABOC, 150_000)
    engine.submit_payments(ICBK, [paid, waits], t + 1)
    assert engine.payment(waits.uetr).status == PaymentStatus.QUEUED

    outcomes = engine.return_payments([
        returned(paid, amount_minor=4_000),  # partial: refused
        returned(paid), returned(paid),  # the second of one message finds it returned
        returned(waits),
        ReturnRequest(str(uuid.uuid4()), 1, "CNY", ABOC, DETAIL),
    ], t + 2)
    assert [o.rejection for o in outcomes] == [
        Rejection.RETURN_AMOUNT_DIFFERS, None, Rejection.PAYMENT_RETURNED_ALREADY,
        Rejection.PAYMENT_NOT_SETTLED, Rejection.PAYMENT_NOT_FOUND]
    engine.close()

    reopened = open_engine()
    (again,) = reopened.return_payments([returned(paid)], t + 3)
    assert again.rejection == Rejection.PAYMENT_RETURNED_ALREADY
    assert (posted(reopened, 11), posted(reopened, 12)) == (100_000, 0)  # settled once only
    assert [c.status for c in reopened.payment(paid.uetr).history].count(
        PaymentStatus.RETURNED) == 1
    assert reopened.reconcile().ok


def test_money_returned_lets_the_debtors_queued_payment_settle(engine, network):
    t = network.funded_at_us
    paid = payment(ICBK, ABOC, 60_000)
    engine.submit_payments(ICBK, [paid], t + 1)  # ICBK keeps 400.00
    waits = payment(ICBK, ABOC, 50_000)
    engine.submit_payments(ICBK, [waits], t + 2)
    assert engine.payment(waits.uetr).status == PaymentStatus.QUEUED
    (outcome,) = engine.return_payments([returned(paid)], t + 3)
    assert outcome.rejection is None
    assert engine.payment(waits.uetr).status == PaymentStatus.SETTLED
    assert (posted(engine, 11), posted(engine, 12)) == (50_000, 50_000)
    assert engine.reconcile().ok


def test_an_indirect_creditor_agent_is_told_its_payment_went_back(engine, network):
    """It was told the payment came in (as was its sponsor, whose account was credited), so
    it is told the payment was returned, whoever returned it."""
    from scopay.domain.participant import Participant, Role, Tier

    t = network.funded_at_us
    indirect = "KASPKZKA"
    engine.admit_participant(Participant(indirect, "Kaspi Bank", Role.INDIRECT, "KZ",
                                         Tier.MEMBER, sponsor_bic=ABOC), t)
    paid = payment(ICBK, indirect, 700)
    engine.submit_payments(ICBK, [paid], t + 1)
    (outcome,) = engine.return_payments([returned(paid)], t + 2)  # by the sponsor
    assert outcome.rejection is None

    def told(bic):
        return {(n.kind.value, n.status) for _, n, _ in engine.mailbox(bic, 0, 500)
                if n.uetr == paid.uetr}

    assert told(indirect) == {("incoming_payment", "settled"), ("status_report", "returned")}
    assert told(ABOC) == {("incoming_payment", "settled"), ("status_report", "returned")}
    assert ("incoming_payment", "returned") in told(ICBK)
