"""The role table's rules on moving money, on accounts no reference network holds (the API
matrix covers the network's own): the operator runs scopay and moves no money of its own."""

from scopay.api.auth import Caller, may_move
from scopay.domain.account import Account, AccountKind
from scopay.domain.participant import Participant, Role, Status, Tier

OPERATOR = Participant("SCOPCNX0", "scopay operator", Role.OPERATOR, "CN", Tier.MEMBER)
BANK = Participant("DEMACNX0", "Bank A", Role.DIRECT, "CN", Tier.MEMBER)


def test_the_operator_debits_no_account_even_one_of_its_own():
    own = Account(90, OPERATOR.bic, "CNY")
    bank = Account(11, BANK.bic, "CNY")
    assert not may_move(Caller(OPERATOR, "k-op"), own, bank)
    assert may_move(Caller(BANK, "k-a"), bank, own)  # a bank pays from its own account


def test_a_suspended_bank_moves_nothing_from_its_own_account():
    own = Account(11, BANK.bic, "CNY")
    other = Account(12, "DEMBCNX0", "CNY")
    suspended = Participant(BANK.bic, BANK.name, Role.DIRECT, "CN", Tier.MEMBER,
                            status=Status.SUSPENDED)
    assert may_move(Caller(BANK, "k-a"), own, other)
    assert not may_move(Caller(suspended, "k-a"), own, other)
    issuance = Account(1, "PBOCCNBJ", "CNY", AccountKind.ISSUANCE)
    assert not may_move(Caller(BANK, "k-a"), own, issuance)  # money leaves by funds-out only
