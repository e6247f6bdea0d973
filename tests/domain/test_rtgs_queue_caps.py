"""The queue's caps: one on all queued payments, one on each holder's share of it (its
accounts in every currency together). Only a payment that would wait meets them; one that
can settle settles whatever is queued."""

from __future__ import annotations

import pytest

from scopay.domain import rtgs as rtgs_module
from scopay.domain.account import Account, AccountKind
from scopay.domain.ledger import Ledger, Transfer
from scopay.domain.payment import Priority
from scopay.domain.rejection import Rejection
from scopay.domain.rtgs import Order, Rtgs

ISSUANCE, RICH, POOR, OTHER_POOR, CREDITOR = 1, 2, 3, 4, 5
RUB_ISSUANCE, POOR_RUB, RUB_CREDITOR = 6, 7, 8  # POOR's bank holds a RUB account too
NOW_US = 1_000_000


@pytest.fixture
def rtgs(monkeypatch) -> Rtgs:
    monkeypatch.setattr(rtgs_module, "QUEUE_ORDERS_MAX", 5)
    monkeypatch.setattr(rtgs_module, "QUEUE_ORDERS_PER_HOLDER_MAX", 3)
    ledger = Ledger()
    accounts = [Account(ISSUANCE, "CBANCNBJ", "CNY", AccountKind.ISSUANCE),
                Account(RUB_ISSUANCE, "CBANRUMM", "RUB", AccountKind.ISSUANCE),
                Account(POOR_RUB, "POORCNBJ", "RUB"), Account(RUB_CREDITOR, "CREDCNBJ", "RUB")]
    accounts += [Account(account_id, bic, "CNY") for account_id, bic in (
        (RICH, "RICHCNBJ"), (POOR, "POORCNBJ"), (OTHER_POOR, "POOOCNBJ"),
        (CREDITOR, "CREDCNBJ"))]
    for account in accounts:
        ledger.open_account(account)
    assert ledger.execute([Transfer("fund", ISSUANCE, RICH, 1_000, "CNY")],
                          NOW_US).outcomes[0].accepted
    rtgs = Rtgs(ledger)
    rtgs.set_account_holders({a.id: a.owner_bic for a in accounts})
    return rtgs


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


def test_a_holders_accounts_in_every_currency_share_its_part_of_the_queue(rtgs):
    """A bank holding accounts in several currencies fills no more of the queue with all of
    them than with one."""
    assert rtgs.submit(order(1, POOR), NOW_US).queued
    assert rtgs.submit(order(2, POOR), NOW_US).queued
    rub = Order("uetr-rub", POOR_RUB, RUB_CREDITOR, 10, "RUB", Priority.NORMAL)
    assert rtgs.submit(rub, NOW_US).queued  # its third
    more = Order("uetr-rub-2", POOR_RUB, RUB_CREDITOR, 10, "RUB", Priority.NORMAL)
    assert [reason for _, reason in rtgs.submit(more, NOW_US).rejected] == [
        Rejection.QUEUE_FULL]
    assert rtgs.submit(order(3, OTHER_POOR), NOW_US).queued  # another bank's share is its own


def test_a_cancelled_order_leaves_its_queue_wherever_it_stood(rtgs, monkeypatch):
    monkeypatch.setattr(rtgs_module, "QUEUE_ORDERS_PER_HOLDER_MAX", 100)
    monkeypatch.setattr(rtgs_module, "QUEUE_ORDERS_MAX", 100)
    for n in range(6):
        rtgs.submit(order(n, POOR), NOW_US)
    rtgs.move("uetr-4", True, NOW_US)  # to the front: a sequence below the others'
    for uetr in ("uetr-5", "uetr-4", "uetr-2"):
        assert rtgs.cancel(uetr).uetr == uetr
    assert [o.uetr for o in rtgs.queues[POOR]] == ["uetr-0", "uetr-1", "uetr-3"]
    assert rtgs.cancel("uetr-2") is None
