"""Gridlock resolution and limits: payments no resolution could settle within their debtor's
limit are not weighed at all (a bank's queue held by a limit was resolved, in vain, at every
heartbeat), and those that payments coming back could bring within it still are."""

from __future__ import annotations

import pytest

from scopay.domain import rtgs as rtgs_module
from scopay.domain.account import Account, AccountKind
from scopay.domain.ledger import Ledger, Transfer
from scopay.domain.payment import Priority
from scopay.domain.rtgs import AccountPolicy, Order, Rtgs

ISSUANCE, A, B, C = 1, 2, 3, 4
NOW_US = 1_000_000


@pytest.fixture
def weighed(monkeypatch) -> list[int]:
    """The size of each queue a resolution weighs."""
    sizes: list[int] = []
    resolve = rtgs_module.resolve_gridlock

    def counting(balances, floors, queue, **kwargs):
        sizes.append(len(queue))
        return resolve(balances, floors, queue, **kwargs)

    monkeypatch.setattr(rtgs_module, "resolve_gridlock", counting)
    return sizes


def network(funds: dict[int, int]) -> Rtgs:
    ledger = Ledger()
    ledger.open_account(Account(ISSUANCE, "CBANCNBJ", "CNY", AccountKind.ISSUANCE))
    for account_id, bic in ((A, "AAAACNBJ"), (B, "BBBBCNBJ"), (C, "CCCCCNBJ")):
        ledger.open_account(Account(account_id, bic, "CNY"))
    for account_id, amount in funds.items():
        assert ledger.execute([Transfer(f"fund-{account_id}", ISSUANCE, account_id, amount,
                                        "CNY")], NOW_US).outcomes[0].accepted
    return Rtgs(ledger)


def pay(rtgs: Rtgs, n: int, debtor: int, creditor: int, amount: int) -> None:
    rtgs.submit(Order(f"u{n}", debtor, creditor, amount, "CNY", Priority.NORMAL), NOW_US)


def test_payments_held_by_a_limit_nothing_could_offset_are_not_weighed(weighed):
    rtgs = network({A: 10_000})
    rtgs.set_policy(A, AccountPolicy(bilateral_limits={B: 0}), NOW_US)
    for n in range(50):
        pay(rtgs, n, A, B, 10)  # covered, but over the limit of 0
    assert len(rtgs.orders) == 50
    step = rtgs.resolve(NOW_US)
    assert not step.settled and weighed == []  # no resolution ran over them, in vain


def test_payments_held_by_a_limit_settle_with_what_comes_back(weighed):
    rtgs = network({A: 10_000})
    pay(rtgs, 2, B, A, 100)  # B has no money: it waits
    rtgs.set_policy(A, AccountPolicy(bilateral_limits={B: 0}), NOW_US)
    pay(rtgs, 1, A, B, 100)  # covered, but over the limit: it waits (no offsetting on entry)
    assert len(rtgs.orders) == 2
    step = rtgs.resolve(NOW_US)
    assert {o.uetr for o in step.settled} == {"u1", "u2"}  # net 0: within A's limit
