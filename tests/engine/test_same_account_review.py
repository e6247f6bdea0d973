"""A payment whose debtor and creditor agents settle on one account (a sponsor paying its own
indirect participant) can never settle: it is refused as it enters, never left to wait where
it broke gridlock resolution and the heartbeat for every currency."""

from __future__ import annotations

import uuid
from concurrent.futures import Future

from scopay.domain.participant import Participant, Role, Tier
from scopay.domain.payment import Party, Payment, PaymentStatus, Priority
from scopay.domain.rejection import Rejection
from scopay.domain.rtgs import Order, Rtgs
from scopay.engine.runner import log_failed_beat

SPONSOR, INDIRECT = "ICBKCNBJ", "ICBKCNBJ001"
AT_US = 2_000_000


def payment(debtor: str, creditor: str, amount_minor: int) -> Payment:
    return Payment(str(uuid.uuid4()), uuid.uuid4().hex[:16], "E2E", debtor, creditor,
                   Party("Debtor"), Party("Creditor"), amount_minor, "CNY")


def test_a_sponsor_paying_its_indirect_is_refused_at_once_even_without_the_money(engine):
    engine.admit_participant(Participant(INDIRECT, "ICBC branch", Role.INDIRECT, "CN",
                                         Tier.MEMBER, sponsor_bic=SPONSOR), AT_US)
    waiting = payment(SPONSOR, "ABOCCNBJ", 10_000_000)  # more than ICBK holds: it queues
    to_self = payment(SPONSOR, INDIRECT, 10_000_000)
    first, second = engine.submit_payments(SPONSOR, [waiting, to_self], AT_US + 1)
    assert first.status == PaymentStatus.QUEUED
    assert (second.status, second.reason) == (PaymentStatus.REJECTED,
                                              Rejection.ACCOUNTS_MUST_BE_DIFFERENT)
    assert engine.resolve_gridlock(AT_US + 2) == (0, 0)
    assert [record.payment.uetr for record in engine.queued_payments()] == [waiting.uetr]


def test_resolution_passes_over_an_order_to_its_own_account_queued_by_an_older_scopay(ledger):
    rtgs = Rtgs(ledger)
    rtgs.restore(Order("same", 11, 11, 5_000, "CNY", Priority.NORMAL, sequence=1))
    rtgs.restore(Order("a-b", 12, 11, 10_000, "CNY", Priority.NORMAL, sequence=2))
    step = rtgs.resolve(AT_US)
    assert [order.uetr for order in step.settled] == ["a-b"]


def test_a_heartbeat_that_fails_is_logged(caplog):
    failed, busy = Future(), Future()
    failed.set_exception(AssertionError("a payment to its own account"))
    busy.set_exception(RuntimeError("stopping"))
    with caplog.at_level("ERROR", logger="scopay.engine.runner"):
        log_failed_beat(failed)
        log_failed_beat(busy)
    assert [record.exc_info[1] for record in caplog.records] == [failed.exception()]
    assert "heartbeat step failed" in caplog.records[0].getMessage()

