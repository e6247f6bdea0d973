"""The queue's caps: one on all queued payments, one on each debtor account's share of it.
Only a payment that would wait meets them; one that can settle settles whatever is queued."""

from __future__ import annotations

import pytest

from scopay.domain import rtgs as rtgs_module
from scopay.domain.account import Account, AccountKind
from scopay.domain.ledger import Ledger, Transfer
from scopay.domain.payment import Priority
from scopay.domain.rejection import Rejection
from scopay.domain.rtgs import Order, Rtgs

ISSUANCE, RICH, POOR, OTHER_POOR, CREDITOR = 1, 2, 3, 4, 5
NOW_US = 1_000_000


@pytest.fixture
def rtgs(monkeypatch) -> Rtgs:
    monkeypatch.setattr(rtgs_module, "QUEUE_ORDERS_MAX", 5)
    monkeypatch.setattr(rtgs_module, "QUEUE_ORDERS_PER_ACCOUNT_MAX", 3)
    ledger = Ledger()
    ledger.open_account(Account(ISSUANCE, "CBANCNBJ", "CNY", AccountKind.ISSUANCE))
    for account_id, bic in ((RICH, "RICHCNBJ"), (POOR, "POORCNBJ"), (OTHER_POOR, "POOOCNBJ"),
                            (CREDITOR, "CREDCNBJ")):
        ledger.open_account(Account(account_id, bic, "CNY"))
    assert ledger.execute([Transfer("fund", ISSUANCE, RICH, 1_000, "CNY")],
                          NOW_US).outcomes[0].accepted
    return Rtgs(ledger)


def order(n: int, debtor: int, amount: int = 10) -> Order:
    return Order(f"uetr-{n}", debtor, CREDITOR, amount, "CNY", Priority.NORMAL)


def test_a_debtor_queues_at_most_its_share_and_others_still_queue(rtgs):
    steps = [rtgs.submit(order(n, POOR), NOW_US) for n in range(4)]
    assert [len(step.queued) for step in steps] == [1, 1, 1, 0]
    assert steps[3].rejected == [(steps[3].rejected[0][0], Rejection.QUEUE_FULL)]
    other = rtgs.submit(order(10, OTHER_POOR), NOW_US)
    assert len(other.queued) == 1 and not other.rejected
    assert len(rtgs.orders) == 4 and "uetr-3" not in rtgs.orders


def test_a_covered_payment_settles_when_the_queue_is_full(rtgs):
    for n in range(3):
        assert rtgs.submit(order(n, POOR), NOW_US).queued
    for n in range(3, 5):
        assert rtgs.submit(order(n, OTHER_POOR), NOW_US).queued
    assert len(rtgs.orders) == 5  # full: a payment that would wait is refused
    refused = rtgs.submit(order(20, OTHER_POOR), NOW_US)
    assert [reason for _, reason in refused.rejected] == [Rejection.QUEUE_FULL]
    settled = rtgs.submit(order(21, RICH, amount=100), NOW_US)
    assert [o.uetr for o in settled.settled] == ["uetr-21"] and not settled.rejected
    assert rtgs.ledger.balances[RICH].posted_minor == 900
