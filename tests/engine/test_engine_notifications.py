"""Debit and credit notifications (camt.054) through the engine over real SQLite: every ledger
movement that is no payment tells the owners of both accounts, in the commit that booked it;
payments and returns are told otherwise, and what moved no posted money tells no one."""

import uuid

from scopay.domain.ledger import Transfer, TransferKind
from scopay.domain.mailbox import NoticeKind
from scopay.domain.payment import Party, Payment
from scopay.engine.payments import ReturnRequest

PBOC, ICBK, ABOC = "PBOCCNBJ", "ICBKCNBJ", "ABOCCNBJ"
DEBIT, CREDIT = NoticeKind.DEBIT_NOTIFICATION, NoticeKind.CREDIT_NOTIFICATION


def notifications(engine, *bics):
    """(bic, kind, transfer id, created) of the camt.054 notices in these mailboxes."""
    return sorted((n.participant_bic, n.kind, n.uetr, n.created_us) for bic in bics
                  for _, n, _ in engine.mailbox(bic, 0, 500)
                  if n.kind in (DEBIT, CREDIT))


def payment(debtor, creditor, amount_minor):
    return Payment(str(uuid.uuid4()), uuid.uuid4().hex[:12], "e2e", debtor, creditor,
                   Party("Ли Вэй"), Party("Анна"), amount_minor, "CNY")


def test_funding_leaves_a_debit_to_the_agent_and_a_credit_to_the_bank(engine, network):
    t = network.funded_at_us
    assert notifications(engine, PBOC, ICBK) == [
        (ICBK, CREDIT, "fund-icbk-cny", t), (PBOC, DEBIT, "fund-icbk-cny", t)]


def test_a_transfer_notifies_both_owners_durably_and_a_refused_one_no_one(
        engine, network, open_engine):
    t = network.funded_at_us
    outcomes = engine.submit([Transfer("move-1", 11, 12, 2_500, "CNY"),
                              Transfer("too-much", 11, 12, 10**9, "CNY")], t + 5)
    assert [o.rejection is None for o in outcomes] == [True, False]
    engine.close()
    reopened = open_engine()
    told = [n for n in notifications(reopened, ICBK, ABOC) if n[2] != "fund-icbk-cny"]
    assert told == [(ABOC, CREDIT, "move-1", t + 5), (ICBK, DEBIT, "move-1", t + 5)]


def test_a_reservation_notifies_when_posted_not_when_made_voided_or_expired(engine, network):
    t = network.funded_at_us
    engine.submit([Transfer("hold-1", 11, 12, 1_000, "CNY", TransferKind.PENDING),
                   Transfer("hold-2", 11, 12, 1_000, "CNY", TransferKind.PENDING),
                   Transfer("hold-3", 11, 12, 1_000, "CNY", TransferKind.PENDING,
                            timeout_s=1)], t + 1)
    engine.submit([Transfer("post-1", 0, 0, 400, "", TransferKind.POST_PENDING,
                            pending_id="hold-1"),
                   Transfer("void-2", 0, 0, 0, "", TransferKind.VOID_PENDING,
                            pending_id="hold-2")], t + 2)
    engine.tick(t + 3_000_000)  # hold-3 expires
    assert "hold-3" not in engine.ledger.pending_ids()
    told = [n for n in notifications(engine, ICBK, ABOC) if n[2] != "fund-icbk-cny"]
    assert told == [(ABOC, CREDIT, "post-1", t + 2), (ICBK, DEBIT, "post-1", t + 2)]


def test_payments_and_returns_leave_no_notification(engine, network):
    t = network.funded_at_us
    paid = payment(ICBK, ABOC, 3_000)
    engine.submit_payments(ICBK, [paid], t + 1)
    (returned,) = engine.return_payments(
        [ReturnRequest(paid.uetr, 3_000, "CNY", ABOC, "AC04: returned")], t + 2)
    assert returned.rejection is None
    assert [n[2] for n in notifications(engine, ICBK, ABOC)] == ["fund-icbk-cny"]


def test_a_transfer_that_releases_a_queued_payment_notifies_only_itself(engine, network):
    """Money arriving by transfer settles a waiting payment in the same commit: the transfer
    gets its camt.054, the payment its pacs.002 and pacs.008 only."""
    t = network.funded_at_us
    waits = payment(ABOC, ICBK, 60_000)  # ABOC has 0 and a 500.00 line
    (queued,) = engine.submit_payments(ABOC, [waits], t + 1)
    assert queued.status == "queued"
    engine.submit([Transfer("cover", 11, 12, 20_000, "CNY")], t + 2)
    assert engine.payment(waits.uetr).status == "settled"
    told = [n[2] for n in notifications(engine, ICBK, ABOC)]
    assert sorted(told) == ["cover", "cover", "fund-icbk-cny"]
