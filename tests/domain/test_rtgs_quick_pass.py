"""Trying a queue passes a normal payment short of liquidity whose creditor has nothing to
offset against without the full check: it must settle exactly what the full check settles,
at the edge of the liquidity and when an offset in the same try brings money in."""

from __future__ import annotations

from scopay.domain.account import Account, AccountKind
from scopay.domain.ledger import Ledger, Transfer
from scopay.domain.payment import Priority
from scopay.domain.rtgs import Order, Rtgs

ISSUANCE, A, B, C = 1, 2, 3, 4
T = 1_000_000


class FullCheck(Rtgs):
    pass_uncovered_quickly = False


def queued(kind: type[Rtgs], funds: dict[int, int], orders: list[Order]) -> Rtgs:
    """An RTGS whose queues hold `orders` as they were (restored, not yet tried)."""
    ledger = Ledger()
    ledger.open_account(Account(ISSUANCE, "CBANCNBJ", "CNY", AccountKind.ISSUANCE))
    for account, bic in ((A, "AAAACNBJ"), (B, "BBBBCNBJ"), (C, "CCCCCNBJ")):
        ledger.open_account(Account(account, bic, "CNY"))
        if funds.get(account):
            assert ledger.execute([Transfer(f"f{account}", ISSUANCE, account, funds[account],
                                            "CNY")], T).outcomes[0].accepted
    rtgs = kind(ledger)
    for sequence, order in enumerate(orders, 1):
        order.sequence = sequence
        rtgs.restore(order)
    return rtgs


def order(uetr: str, debtor: int, creditor: int, amount: int) -> Order:
    return Order(uetr, debtor, creditor, amount, "CNY", Priority.NORMAL)


def settled_after_trying_a(kind: type[Rtgs], funds, orders) -> list[str]:
    rtgs = queued(kind, funds, orders)
    return sorted(o.uetr for o in rtgs.release([A], T + 1).settled)


def test_a_payment_of_exactly_the_liquidity_left_settles():
    def orders():
        return [order("X0", A, C, 500), order("X1", A, C, 100)]

    assert settled_after_trying_a(Rtgs, {A: 100}, orders()) == ["X1"]
    assert settled_after_trying_a(FullCheck, {A: 100}, orders()) == ["X1"]


def test_money_an_offset_brings_in_the_same_try_is_counted():
    """X1 is passed with A's liquidity at 1.00; Y then settles with B's P, bringing A 1.00
    net; X2 (1.50) fits what A has now and settles."""
    def orders():
        return [order("X0", A, C, 500), order("X1", A, C, 300), order("Y", A, B, 400),
                order("X2", A, C, 150), order("P", B, A, 500)]

    expected = ["P", "X2", "Y"]
    assert settled_after_trying_a(FullCheck, {A: 100, B: 100}, orders()) == expected
    assert settled_after_trying_a(Rtgs, {A: 100, B: 100}, orders()) == expected


def test_a_payment_the_payments_back_would_cover_is_tried_in_full():
    """A cannot pay X1 (4.00) from its 1.00, but with B's P (3.00) back it can: X1 must not
    be passed for want of liquidity alone. X0 (10.00) before it found B's payments back."""
    def orders():
        return [order("X0", A, B, 1_000), order("X1", A, B, 400), order("P", B, A, 300)]

    assert settled_after_trying_a(FullCheck, {A: 100}, orders()) == ["P", "X1"]
    assert settled_after_trying_a(Rtgs, {A: 100}, orders()) == ["P", "X1"]
