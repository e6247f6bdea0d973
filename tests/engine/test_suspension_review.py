"""Queued payments of a suspended participant, on either side, wait for its reinstatement:
they are neither rejected by whatever happens to arrive meanwhile nor settled, and settle
once it is reinstated, with no other event needed."""

from __future__ import annotations

import uuid

from scopay.domain.ledger import Transfer
from scopay.domain.participant import Status
from scopay.domain.payment import Party, Payment, PaymentStatus

ICBK, ABOC = "ICBKCNBJ", "ABOCCNBJ"
AT_US = 2_000_000


def payment(debtor: str, creditor: str, amount_minor: int) -> Payment:
    return Payment(str(uuid.uuid4()), uuid.uuid4().hex[:16], "E2E", debtor, creditor,
                   Party("Debtor"), Party("Creditor"), amount_minor, "CNY")


def test_a_payment_to_a_suspended_creditor_waits_and_settles_when_it_is_reinstated(
        engine, network):
    waiting = payment(ICBK, ABOC, 200_000)  # 2,000.00: more than ICBK's 1,000.00
    (result,) = engine.submit_payments(ICBK, [waiting], AT_US)
    assert result.status == PaymentStatus.QUEUED
    engine.set_participant_status(ABOC, Status.SUSPENDED, AT_US + 1)
    engine.submit([Transfer("top-up", network.cny_issuance, network.icbk_cny, 500_000, "CNY")],
                  AT_US + 2)
    engine.resolve_gridlock(AT_US + 3)
    assert engine.payment(waiting.uetr).status == PaymentStatus.QUEUED
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
