"""A payment still queued at its latest time is named once (its sender is warned); one that
settles or is rejected in the same step is not: its sender is told the final status, never
that it still waits."""

from __future__ import annotations

from scopay.domain.account import Account, AccountKind
from scopay.domain.ledger import Ledger, Transfer
from scopay.domain.payment import Priority
from scopay.domain.rtgs import Order, Rtgs

ISSUANCE, DEBTOR, CREDITOR = 1, 2, 3
T = 1_000_000


def rtgs(funds: int) -> Rtgs:
    ledger = Ledger()
    for account in (Account(ISSUANCE, "CBANCNBJ", "CNY", AccountKind.ISSUANCE),
                    Account(DEBTOR, "DEBTCNBJ", "CNY"), Account(CREDITOR, "CREDCNBJ", "CNY")):
        ledger.open_account(account)
    if funds:
        assert ledger.execute([Transfer("fund", ISSUANCE, DEBTOR, funds, "CNY")],
                              T).outcomes[0].accepted
    return Rtgs(ledger)


def order(n: int, **times) -> Order:
    return Order(f"uetr-{n}", DEBTOR, CREDITOR, 100, "CNY", Priority.NORMAL, **times)


def test_a_payment_settling_in_the_step_of_its_latest_time_is_not_warned():
    settlement = rtgs(funds=1_000)
    assert settlement.submit(order(1, earliest_us=T + 10, latest_us=T + 20), T).queued
    step = settlement.tick(T + 30)  # earliest and latest both passed: it settles
    assert [o.uetr for o in step.settled] == ["uetr-1"] and step.late == []


def test_a_payment_rejected_in_the_step_of_its_latest_time_is_not_warned():
    settlement = rtgs(funds=0)
    assert settlement.submit(order(2, latest_us=T + 10, reject_by_us=T + 20), T).queued
    step = settlement.tick(T + 30)
    assert [o.uetr for o, _ in step.rejected] == ["uetr-2"] and step.late == []


def test_a_payment_still_queued_at_its_latest_time_is_warned_once():
    settlement = rtgs(funds=0)
    assert settlement.submit(order(3, latest_us=T + 10), T).queued
    assert [o.uetr for o in settlement.tick(T + 30).late] == ["uetr-3"]
    assert settlement.tick(T + 40).late == []
