"""Ledger behaviour: each bad input gets its own rejection and changes nothing."""

import gc
from dataclasses import replace

import pytest

from scopay.domain.account import Account
from scopay.domain.ledger import (
    EXPIRY_ID_PREFIX,
    TIMEOUT_S_MAX,
    JournalEntry,
    Ledger,
    RejectionRecord,
    Transfer,
    TransferKind,
    TransferOutcome,
    fold_journal,
    invariant_violations,
)
from scopay.domain.money import AMOUNT_MINOR_MAX, BALANCE_MINOR_MAX
from scopay.domain.rejection import Rejection

POSTED, PENDING = TransferKind.POSTED, TransferKind.PENDING
POST, VOID = TransferKind.POST_PENDING, TransferKind.VOID_PENDING
T1_US = 2_000_000  # after the network was funded
SECOND_US = 1_000_000


def balances_of(ledger: Ledger) -> dict[int, tuple[int, int, int]]:
    return {i: (b.posted_minor, b.debits_pending_minor, b.credits_pending_minor)
            for i, b in ledger.balances.items()}


def state_of(ledger: Ledger):
    return balances_of(ledger), sorted(ledger.pending_ids())


def posted_of(ledger: Ledger, account_id: int) -> int:
    return ledger.balances[account_id].posted_minor


def pay(n, transfer_id="t1", amount=1000, **fields) -> Transfer:
    """ICBK CNY -> ABOC CNY, 10.00 unless told otherwise."""
    return Transfer(transfer_id, n.icbk_cny, n.aboc_cny, amount, "CNY", **fields)


def reserve(n, transfer_id="p1", amount=30_000, timeout_s=0) -> Transfer:
    return Transfer(transfer_id, n.icbk_cny, n.aboc_cny, amount, "CNY", PENDING,
                    timeout_s=timeout_s)


def resolve(kind, transfer_id, pending_id, amount=0) -> Transfer:
    return Transfer(transfer_id, 0, 0, amount, "", kind, pending_id)


def execute_one(ledger: Ledger, transfer: Transfer, timestamp_us: int = T1_US):
    result = ledger.execute([transfer], timestamp_us)
    assert len(result.outcomes) == 1
    return result


def assert_refused_without_effect(ledger: Ledger, transfer: Transfer, expected: Rejection):
    before = state_of(ledger)
    result = execute_one(ledger, transfer)
    assert result.outcomes[0].rejection is expected
    assert result.journal == []
    assert state_of(ledger) == before
    assert invariant_violations(ledger) == []


# -- one rejection per broken rule ---------------------------------------------------------

BAD_TRANSFERS = {
    "empty_id": (lambda n: pay(n, ""), Rejection.ID_INVALID),
    "id_of_65_characters": (lambda n: pay(n, "a" * 65), Rejection.ID_INVALID),
    "id_with_hash": (lambda n: pay(n, "a#b"), Rejection.ID_INVALID),
    "id_with_space": (lambda n: pay(n, "a b"), Rejection.ID_INVALID),
    "id_with_newline": (lambda n: pay(n, "ab\n"), Rejection.ID_INVALID),
    "id_not_a_string": (lambda n: pay(n, 17), Rejection.ID_INVALID),
    "zero_amount": (lambda n: pay(n, amount=0), Rejection.AMOUNT_MUST_BE_POSITIVE),
    "negative_amount": (lambda n: pay(n, amount=-5), Rejection.AMOUNT_MUST_BE_POSITIVE),
    "amount_above_64_bits": (lambda n: pay(n, amount=AMOUNT_MINOR_MAX + 1),
                             Rejection.AMOUNT_TOO_LARGE),
    "unknown_debit_account": (
        lambda n: Transfer("t1", 999, n.aboc_cny, 100, "CNY"), Rejection.DEBIT_ACCOUNT_NOT_FOUND),
    "unknown_credit_account": (
        lambda n: Transfer("t1", n.icbk_cny, 999, 100, "CNY"), Rejection.CREDIT_ACCOUNT_NOT_FOUND),
    "same_account_both_sides": (
        lambda n: Transfer("t1", n.icbk_cny, n.icbk_cny, 100, "CNY"),
        Rejection.ACCOUNTS_MUST_BE_DIFFERENT),
    "cny_account_to_rub_account": (
        lambda n: Transfer("t1", n.icbk_cny, n.sabr_rub, 100, "CNY"),
        Rejection.ACCOUNTS_MUST_HAVE_SAME_CURRENCY),
    "currency_differs_from_accounts": (
        lambda n: Transfer("t1", n.icbk_cny, n.aboc_cny, 100, "RUB"),
        Rejection.CURRENCY_DIFFERS_FROM_ACCOUNTS),
    "unknown_currency_code": (
        lambda n: Transfer("t1", n.icbk_cny, n.aboc_cny, 100, "XXX"), Rejection.CURRENCY_UNKNOWN),
    "timeout_on_posted_transfer": (
        lambda n: pay(n, timeout_s=60), Rejection.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER),
    "pending_id_on_posted_transfer": (
        lambda n: pay(n, pending_id="p0"), Rejection.PENDING_ID_MUST_BE_EMPTY),
    "pending_id_on_pending_transfer": (
        lambda n: replace(reserve(n), pending_id="p0"), Rejection.PENDING_ID_MUST_BE_EMPTY),
    "negative_timeout": (lambda n: reserve(n, timeout_s=-1), Rejection.TIMEOUT_INVALID),
    "timeout_beyond_a_week": (
        lambda n: reserve(n, timeout_s=TIMEOUT_S_MAX + 1), Rejection.TIMEOUT_INVALID),
    "debtor_lacks_liquidity": (
        lambda n: pay(n, amount=n.funding_minor + 1), Rejection.INSUFFICIENT_LIQUIDITY),
    "reservation_beyond_liquidity": (
        lambda n: reserve(n, amount=n.funding_minor + 1), Rejection.INSUFFICIENT_LIQUIDITY),
    "post_without_pending_id": (
        lambda n: resolve(POST, "t1", None), Rejection.PENDING_ID_REQUIRED),
    "post_of_unknown_pending": (
        lambda n: resolve(POST, "t1", "nope"), Rejection.PENDING_TRANSFER_NOT_FOUND),
    "void_of_unknown_pending": (
        lambda n: resolve(VOID, "t1", "nope"), Rejection.PENDING_TRANSFER_NOT_FOUND),
    "post_of_a_posted_transfer": (
        lambda n: resolve(POST, "t1", "fund-icbk-cny"), Rejection.PENDING_TRANSFER_NOT_PENDING),
    "post_with_negative_amount": (
        lambda n: resolve(POST, "t1", "nope", amount=-1), Rejection.AMOUNT_MUST_BE_POSITIVE),
    "client_sent_expiry": (
        lambda n: resolve(TransferKind.EXPIRE_PENDING, "t1", "nope"), Rejection.ID_INVALID),
}


@pytest.mark.parametrize("case", sorted(BAD_TRANSFERS))
def test_transfer_refused_for_the_broken_rule_and_changes_nothing(ledger, network, case):
    build, expected = BAD_TRANSFERS[case]
    assert_refused_without_effect(ledger, build(network), expected)


def test_transfer_refused_when_debtor_lacks_liquidity(ledger, network):
    assert_refused_without_effect(ledger, pay(network, amount=network.funding_minor + 1),
                                  Rejection.INSUFFICIENT_LIQUIDITY)
    assert execute_one(ledger, pay(network, "t2", network.funding_minor)).outcomes[0].accepted


def test_id_of_64_characters_from_the_whole_alphabet_is_accepted(ledger, network):
    transfer_id = ("Az09._:/-" * 8)[:64]
    result = execute_one(ledger, pay(network, transfer_id))
    assert result.outcomes[0].accepted
    assert [entry.transfer.id for entry in result.journal] == [transfer_id]


def test_posted_transfer_moves_the_amount_and_journals_it(ledger, network):
    transfer = pay(network, amount=2500)
    result = execute_one(ledger, transfer)
    assert result.outcomes[0].accepted and result.outcomes[0].timestamp_us == T1_US
    assert [(e.transfer, e.timestamp_us) for e in result.journal] == [(transfer, T1_US)]
    assert posted_of(ledger, network.icbk_cny) == network.funding_minor - 2500
    assert posted_of(ledger, network.aboc_cny) == 2500
    assert invariant_violations(ledger) == []


def test_rejections_are_remembered_for_resubmission_but_invalid_ids_are_not(ledger, network):
    refused = execute_one(ledger, pay(network, amount=0))
    assert [r.transfer.id for r in refused.rejections] == ["t1"]
    invalid = execute_one(ledger, pay(network, "bad id"))
    assert invalid.rejections == []
    assert ledger.outcome_of("bad id") is None


def test_rejection_precedence_follows_the_enum_order(ledger, network):
    # TIMEOUT_INVALID is listed before CURRENCY_UNKNOWN in Rejection (rejection.py docstring:
    # "When a transfer breaks several rules, the one listed first here is reported").
    transfer = replace(reserve(network, timeout_s=-1), currency="XXX")
    assert_refused_without_effect(ledger, transfer, Rejection.TIMEOUT_INVALID)


# -- floors --------------------------------------------------------------------------------


def test_credit_line_lets_an_account_go_to_minus_the_line_but_not_below(ledger, network):
    line = network.aboc_credit_line_minor
    overdraw = Transfer("over", network.aboc_cny, network.icbk_cny, line + 1, "CNY")
    assert_refused_without_effect(ledger, overdraw, Rejection.INSUFFICIENT_LIQUIDITY)
    use_all = Transfer("use", network.aboc_cny, network.icbk_cny, line, "CNY")
    assert execute_one(ledger, use_all).outcomes[0].accepted
    assert posted_of(ledger, network.aboc_cny) == -line
    one_more = Transfer("more", network.aboc_cny, network.icbk_cny, 1, "CNY")
    assert_refused_without_effect(ledger, one_more, Rejection.INSUFFICIENT_LIQUIDITY)
    assert invariant_violations(ledger) == []


def test_issuance_account_has_no_floor(ledger, network):
    issue = Transfer("issue", network.cny_issuance, network.aboc_cny, 10**15, "CNY")
    assert execute_one(ledger, issue).outcomes[0].accepted
    assert posted_of(ledger, network.cny_issuance) == -(network.funding_minor + 10**15)
    assert invariant_violations(ledger) == []


def test_transfer_refused_when_credit_balance_would_overflow(ledger, network):
    issue = Transfer("issue", network.cny_issuance, network.icbk_cny, AMOUNT_MINOR_MAX, "CNY")
    assert_refused_without_effect(ledger, issue, Rejection.OVERFLOWS_BALANCE)


def test_no_balance_grows_past_the_18_digits_of_an_iso_amount(ledger, network):
    """Every balance must be writable in a statement: the transfer that would take one
    past 10**18 - 1 minor units is refused, on the credited side and on the issuing side."""
    n = network
    fill = Transfer("fill", n.cny_issuance, n.icbk_cny, BALANCE_MINOR_MAX - n.funding_minor,
                    "CNY")
    assert execute_one(ledger, fill).outcomes[0].accepted
    assert_refused_without_effect(
        ledger, Transfer("one-more", n.cny_issuance, n.aboc_cny, 1, "CNY"),
        Rejection.OVERFLOWS_BALANCE)  # the issuance account would pass -(10**18 - 1)
    assert_refused_without_effect(
        ledger, Transfer("over", n.aboc_cny, n.icbk_cny, 1, "CNY"),
        Rejection.OVERFLOWS_BALANCE)


def test_a_debtor_unable_to_pay_learns_nothing_of_the_credit_balance(ledger, network):
    """A transfer its debtor cannot cover is refused for liquidity, whether or not it would
    take the credit account past 18 digits: the refusal must not tell a bank with no money
    how much another bank holds (by probing amounts until the reason changes)."""
    n = network
    fill = Transfer("fill", n.cny_issuance, n.icbk_cny, BALANCE_MINOR_MAX - 2 * n.funding_minor,
                    "CNY")
    assert execute_one(ledger, fill).outcomes[0].accepted
    held = ledger.balances[n.icbk_cny].posted_minor
    for amount in (BALANCE_MINOR_MAX - held + 1, BALANCE_MINOR_MAX - held):  # over, just not
        assert_refused_without_effect(
            ledger, Transfer(f"probe-{amount}", n.aboc_cny, n.icbk_cny, amount, "CNY"),
            Rejection.INSUFFICIENT_LIQUIDITY)


def test_lowering_a_floor_below_the_balance_is_refused(ledger, network):
    use = Transfer("use", network.aboc_cny, network.icbk_cny, 20_000, "CNY")
    assert execute_one(ledger, use).outcomes[0].accepted
    assert ledger.set_floor(network.aboc_cny, -19_999) is False
    assert ledger.balances[network.aboc_cny].floor_minor == -network.aboc_credit_line_minor
    assert ledger.set_floor(network.aboc_cny, -20_000) is True


# -- pending transfers ------------------------------------------------------------------------


def test_pending_transfer_reserves_without_moving(ledger, network):
    result = execute_one(ledger, reserve(network, amount=30_000))
    assert result.outcomes[0].accepted
    debit, credit = ledger.balances[network.icbk_cny], ledger.balances[network.aboc_cny]
    assert (debit.posted_minor, debit.debits_pending_minor) == (network.funding_minor, 30_000)
    assert (credit.posted_minor, credit.credits_pending_minor) == (0, 30_000)
    assert ledger.pending_ids() == ["p1"]
    assert_refused_without_effect(ledger, pay(network, "t2", network.funding_minor - 30_000 + 1),
                                  Rejection.INSUFFICIENT_LIQUIDITY)


def test_posting_a_pending_transfer_in_full_moves_the_reserved_amount(ledger, network):
    execute_one(ledger, reserve(network, amount=30_000))
    result = execute_one(ledger, resolve(POST, "post1", "p1"))
    assert result.outcomes[0].accepted
    (entry,) = result.journal
    assert (entry.transfer.debit_account_id, entry.transfer.credit_account_id,
            entry.transfer.amount_minor, entry.transfer.currency) == (
        network.icbk_cny, network.aboc_cny, 30_000, "CNY")
    assert balances_of(ledger)[network.icbk_cny] == (network.funding_minor - 30_000, 0, 0)
    assert balances_of(ledger)[network.aboc_cny] == (30_000, 0, 0)
    assert ledger.pending_ids() == []


def test_posting_part_of_a_pending_transfer_releases_the_rest(ledger, network):
    execute_one(ledger, reserve(network, amount=30_000))
    assert execute_one(ledger, resolve(POST, "post1", "p1", 10_000)).outcomes[0].accepted
    assert balances_of(ledger)[network.icbk_cny] == (network.funding_minor - 10_000, 0, 0)
    assert balances_of(ledger)[network.aboc_cny] == (10_000, 0, 0)
    assert invariant_violations(ledger) == []


def test_voiding_a_pending_transfer_releases_the_reservation(ledger, network):
    before = balances_of(ledger)
    execute_one(ledger, reserve(network, amount=30_000))
    result = execute_one(ledger, resolve(VOID, "void1", "p1"))
    assert result.outcomes[0].accepted
    assert result.journal[0].transfer.amount_minor == 30_000
    assert balances_of(ledger) == before
    assert ledger.pending_ids() == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"amount_minor": 30_001}, Rejection.EXCEEDS_PENDING_TRANSFER_AMOUNT),
        ({"debit_account_id": 1}, Rejection.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT),
        ({"credit_account_id": 1}, Rejection.PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT),
        ({"debit_account_id": 999}, Rejection.DEBIT_ACCOUNT_NOT_FOUND),
        ({"credit_account_id": 999}, Rejection.CREDIT_ACCOUNT_NOT_FOUND),
        ({"currency": "RUB"}, Rejection.PENDING_TRANSFER_HAS_DIFFERENT_CURRENCY),
        ({"currency": "XXX"}, Rejection.CURRENCY_UNKNOWN),
        ({"timeout_s": 5}, Rejection.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER),
    ],
)
def test_posting_a_pending_transfer_with_other_terms_is_refused(ledger, network, change,
                                                               expected):
    execute_one(ledger, reserve(network, amount=30_000))
    assert_refused_without_effect(ledger, replace(resolve(POST, "post1", "p1"), **change),
                                  expected)
    assert ledger.pending_ids() == ["p1"]


def test_posting_an_already_posted_pending_transfer_is_refused(ledger, network):
    execute_one(ledger, reserve(network))
    execute_one(ledger, resolve(POST, "post1", "p1"))
    assert_refused_without_effect(ledger, resolve(POST, "post2", "p1"),
                                  Rejection.PENDING_TRANSFER_ALREADY_POSTED)
    assert_refused_without_effect(ledger, resolve(VOID, "void2", "p1"),
                                  Rejection.PENDING_TRANSFER_ALREADY_POSTED)


def test_posting_a_voided_pending_transfer_is_refused(ledger, network):
    execute_one(ledger, reserve(network))
    execute_one(ledger, resolve(VOID, "void1", "p1"))
    assert_refused_without_effect(ledger, resolve(POST, "post1", "p1"),
                                  Rejection.PENDING_TRANSFER_ALREADY_VOIDED)


def test_pending_transfer_expires_at_its_timeout(ledger, network):
    before = balances_of(ledger)
    execute_one(ledger, reserve(network, timeout_s=10), T1_US)
    expires_at_us = T1_US + 10 * SECOND_US
    assert ledger.expire_pending(expires_at_us - 1) == []
    assert ledger.pending_ids() == ["p1"]
    # At its timeout the reservation can no longer be posted, even before the sweep ran.
    late = ledger.execute([resolve(POST, "post1", "p1")], expires_at_us)
    assert late.outcomes[0].rejection is Rejection.PENDING_TRANSFER_EXPIRED
    entries = ledger.expire_pending(expires_at_us)
    assert [(e.transfer.id, e.transfer.kind, e.transfer.pending_id, e.transfer.amount_minor,
             e.timestamp_us) for e in entries] == [
        (EXPIRY_ID_PREFIX + "p1", TransferKind.EXPIRE_PENDING, "p1", 30_000, expires_at_us)]
    assert balances_of(ledger) == before
    assert ledger.pending_ids() == []
    assert ledger.expire_pending(expires_at_us + 10**9) == []


def test_posting_an_expired_pending_transfer_is_refused(ledger, network):
    execute_one(ledger, reserve(network, timeout_s=1), T1_US)
    ledger.expire_pending(T1_US + 5 * SECOND_US)
    result = ledger.execute([resolve(POST, "post1", "p1")], T1_US + 6 * SECOND_US)
    assert result.outcomes[0].rejection is Rejection.PENDING_TRANSFER_EXPIRED
    assert result.journal == []


def test_pending_transfer_without_timeout_never_expires(ledger, network):
    execute_one(ledger, reserve(network, timeout_s=0))
    assert ledger.expire_pending(T1_US + TIMEOUT_S_MAX * SECOND_US * 10) == []
    assert ledger.pending_ids() == ["p1"]


def test_resolved_pending_transfer_does_not_expire_later(ledger, network):
    execute_one(ledger, reserve(network, timeout_s=1))
    execute_one(ledger, resolve(POST, "post1", "p1"))
    after_post = balances_of(ledger)
    assert ledger.expire_pending(T1_US + 5 * SECOND_US) == []
    assert balances_of(ledger) == after_post


# -- linked chains ---------------------------------------------------------------------------


def chain(*transfers: Transfer) -> list[Transfer]:
    """Link every transfer to the next; the last one closes the chain."""
    last = len(transfers) - 1
    return [replace(t, linked=i < last) for i, t in enumerate(transfers)]


def test_linked_chain_commits_all_transfers_together(ledger, network):
    n = network
    batch = chain(pay(n, "a", 100_000), Transfer("b", n.aboc_cny, n.icbk_cny, 150_000, "CNY"),
                  Transfer("c", n.sabr_rub, n.rub_issuance, 1, "RUB"))
    result = ledger.execute(batch, T1_US)
    assert [o.rejection for o in result.outcomes] == [None, None, None]
    assert [e.transfer.id for e in result.journal] == ["a", "b", "c"]
    # "b" was only possible because "a" credited ABOC first (credit line 500.00 alone is short).
    assert posted_of(ledger, n.aboc_cny) == -50_000
    assert invariant_violations(ledger) == []


def test_linked_chain_failing_in_the_middle_rolls_back_earlier_members(ledger, network):
    n = network
    batch = chain(pay(n, "a", 1000), reserve(n, "b", n.funding_minor), pay(n, "c", 1000))
    before = state_of(ledger)
    result = ledger.execute(batch, T1_US)
    assert [o.rejection for o in result.outcomes] == [
        Rejection.LINKED_EVENT_FAILED, Rejection.INSUFFICIENT_LIQUIDITY,
        Rejection.LINKED_EVENT_FAILED]
    assert result.journal == []
    assert state_of(ledger) == before
    assert {r.transfer.id: r.rejection for r in result.rejections} == {
        "a": Rejection.LINKED_EVENT_FAILED, "b": Rejection.INSUFFICIENT_LIQUIDITY,
        "c": Rejection.LINKED_EVENT_FAILED}


def test_failed_chain_rolls_back_a_reservation_made_and_posted_inside_it(ledger, network):
    n = network
    batch = chain(reserve(n, "p", 5000, timeout_s=1), resolve(POST, "post", "p"),
                  pay(n, "too-much", n.funding_minor))
    before = state_of(ledger)
    result = ledger.execute(batch, T1_US)
    assert [o.rejection for o in result.outcomes] == [
        Rejection.LINKED_EVENT_FAILED, Rejection.LINKED_EVENT_FAILED,
        Rejection.INSUFFICIENT_LIQUIDITY]
    assert state_of(ledger) == before
    assert ledger.expire_pending(T1_US + 5 * SECOND_US) == []


def test_chain_left_open_at_end_of_batch_is_refused(ledger, network):
    n = network
    batch = [pay(n, "single", 100), replace(pay(n, "a", 100), linked=True),
             replace(pay(n, "b", 100), linked=True)]
    result = ledger.execute(batch, T1_US)
    assert [o.rejection for o in result.outcomes] == [
        None, Rejection.LINKED_EVENT_CHAIN_OPEN, Rejection.LINKED_EVENT_CHAIN_OPEN]
    assert [e.transfer.id for e in result.journal] == ["single"]
    assert posted_of(ledger, n.aboc_cny) == 100


def test_chain_with_a_duplicate_id_fails_as_a_whole(ledger, network):
    batch = chain(pay(network, "a", 100), pay(network, "a", 100), pay(network, "c", 100))
    before = state_of(ledger)
    result = ledger.execute(batch, T1_US)
    assert all(o.rejection is Rejection.LINKED_EVENT_FAILED for o in result.outcomes)
    assert state_of(ledger) == before


def test_chain_reusing_an_accepted_id_with_other_linking_is_refused(ledger, network):
    execute_one(ledger, pay(network, "a", 100))
    before = state_of(ledger)
    result = ledger.execute(chain(pay(network, "a", 100), pay(network, "b", 100)), T1_US + 1)
    assert [o.rejection for o in result.outcomes] == [
        Rejection.EXISTS_WITH_DIFFERENT_LINKED, Rejection.LINKED_EVENT_FAILED]
    assert state_of(ledger) == before


# -- idempotency -------------------------------------------------------------------------------


def test_resubmitting_an_accepted_transfer_returns_its_first_outcome(ledger, network):
    first = execute_one(ledger, pay(network, amount=700), T1_US).outcomes[0]
    before = state_of(ledger)
    again = execute_one(ledger, pay(network, amount=700), T1_US + 5)
    assert again.outcomes == [first]
    assert again.journal == [] and again.rejections == []
    assert state_of(ledger) == before


def test_resubmitting_a_refused_transfer_returns_the_first_rejection(ledger, network):
    too_much = pay(network, amount=network.funding_minor + 1)
    first = execute_one(ledger, too_much, T1_US).outcomes[0]
    assert first.rejection is Rejection.INSUFFICIENT_LIQUIDITY
    top_up = Transfer("top-up", network.cny_issuance, network.icbk_cny, 10, "CNY")
    execute_one(ledger, top_up)
    before = state_of(ledger)
    again = execute_one(ledger, too_much, T1_US + 5)
    assert again.outcomes == [first]
    assert again.journal == [] and again.rejections == []
    assert state_of(ledger) == before


def test_resubmitting_a_linked_chain_returns_every_first_outcome(ledger, network):
    batch = chain(pay(network, "a", 1000), reserve(network, "b", network.funding_minor))
    first = ledger.execute(batch, T1_US).outcomes
    before = state_of(ledger)
    again = ledger.execute(batch, T1_US + 5)
    assert again.outcomes == first
    assert again.journal == [] and state_of(ledger) == before


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"amount_minor": 701}, Rejection.EXISTS_WITH_DIFFERENT_AMOUNT),
        ({"debit_account_id": 1}, Rejection.EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT),
        ({"credit_account_id": 1}, Rejection.EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT),
        ({"currency": "RUB"}, Rejection.EXISTS_WITH_DIFFERENT_CURRENCY),
        ({"kind": PENDING}, Rejection.EXISTS_WITH_DIFFERENT_KIND),
        ({"pending_id": "p9"}, Rejection.EXISTS_WITH_DIFFERENT_PENDING_ID),
        ({"timeout_s": 5}, Rejection.EXISTS_WITH_DIFFERENT_TIMEOUT),
    ],
)
@pytest.mark.parametrize("first_accepted", [True, False])
def test_reusing_an_id_with_other_content_is_refused(ledger, network, change, expected,
                                                     first_accepted):
    transfer = pay(network, amount=700)
    if not first_accepted:
        ledger.set_blocked(network.icbk_cny, True)
        assert execute_one(ledger, transfer).outcomes[0].rejection is (
            Rejection.DEBIT_ACCOUNT_BLOCKED)
        ledger.set_blocked(network.icbk_cny, False)
    else:
        assert execute_one(ledger, transfer).outcomes[0].accepted
    assert_refused_without_effect(ledger, replace(transfer, **change), expected)
    assert ledger.transfer_of("t1") == transfer


def test_resubmitting_a_pending_with_another_timeout_is_refused(ledger, network):
    execute_one(ledger, reserve(network, timeout_s=10))
    assert_refused_without_effect(ledger, reserve(network, timeout_s=11),
                                  Rejection.EXISTS_WITH_DIFFERENT_TIMEOUT)


def test_resubmitting_a_post_with_blank_or_explicit_terms_returns_its_first_outcome(
        ledger, network):
    execute_one(ledger, reserve(network, amount=30_000))
    first = execute_one(ledger, resolve(POST, "post1", "p1"), T1_US).outcomes[0]
    before = state_of(ledger)
    explicit = Transfer("post1", network.icbk_cny, network.aboc_cny, 30_000, "CNY", POST, "p1")
    for again in (resolve(POST, "post1", "p1"), explicit):
        result = execute_one(ledger, again, T1_US + 9)
        assert result.outcomes == [first]
    assert state_of(ledger) == before
    assert_refused_without_effect(ledger, resolve(POST, "post1", "p1", 29_999),
                                  Rejection.EXISTS_WITH_DIFFERENT_AMOUNT)


def test_resubmitting_a_void_that_named_an_amount_returns_its_first_outcome(ledger, network):
    execute_one(ledger, reserve(network, amount=30_000))
    void = resolve(VOID, "void1", "p1", amount=10_000)
    first = execute_one(ledger, void, T1_US).outcomes[0]
    assert first.accepted
    before = state_of(ledger)
    again = execute_one(ledger, void, T1_US + 9)
    assert again.outcomes == [first]
    assert state_of(ledger) == before


def test_duplicate_id_inside_one_batch_is_applied_once(ledger, network):
    result = ledger.execute([pay(network, amount=700), pay(network, amount=700)], T1_US)
    assert result.outcomes[0] == result.outcomes[1]
    assert result.outcomes[0].accepted
    assert [e.transfer.id for e in result.journal] == ["t1"]
    assert posted_of(ledger, network.aboc_cny) == 700


def test_duplicate_id_inside_one_batch_with_other_amount_is_refused(ledger, network):
    result = ledger.execute([pay(network, amount=700), pay(network, amount=800)], T1_US)
    assert [o.rejection for o in result.outcomes] == [
        None, Rejection.EXISTS_WITH_DIFFERENT_AMOUNT]
    assert posted_of(ledger, network.aboc_cny) == 700


# -- blocked accounts -----------------------------------------------------------------------


def test_transfer_refused_when_an_account_is_blocked(ledger, network):
    ledger.set_blocked(network.icbk_cny, True)
    assert_refused_without_effect(ledger, pay(network, "t1"), Rejection.DEBIT_ACCOUNT_BLOCKED)
    assert_refused_without_effect(ledger, reserve(network, "p1"), Rejection.DEBIT_ACCOUNT_BLOCKED)
    into_blocked = Transfer("t2", network.cny_issuance, network.icbk_cny, 5, "CNY")
    assert_refused_without_effect(ledger, into_blocked, Rejection.CREDIT_ACCOUNT_BLOCKED)
    ledger.set_blocked(network.icbk_cny, False)
    assert execute_one(ledger, pay(network, "t3")).outcomes[0].accepted


# -- invariant checkers ----------------------------------------------------------------------


def test_invariant_checkers_see_a_broken_ledger(ledger, network):
    assert invariant_violations(ledger) == []
    ledger.balances[network.icbk_cny].posted_minor += 1
    problems = invariant_violations(ledger)
    assert any("CNY sums to 1" in p for p in problems)
    ledger.balances[network.aboc_cny].posted_minor = -network.aboc_credit_line_minor - 1
    assert any(f"account {network.aboc_cny} below its floor" in p
               for p in invariant_violations(ledger))


def test_fold_of_the_journal_equals_the_live_balances(network):
    ledger = Ledger()
    accounts = list(network.accounts) + [Account(22, "SABRRUMM", "CNY")]
    for account in accounts:
        ledger.open_account(account)
    journal = list(ledger.execute(network.funding_transfers(), 1).journal)
    journal += ledger.execute([reserve(network, "p1", 100, timeout_s=1),
                               reserve(network, "p2", 200), pay(network, "t1", 300)], 2).journal
    journal += ledger.execute([resolve(POST, "post2", "p2", 150)], 3).journal
    journal += ledger.expire_pending(2 + 2 * SECOND_US)
    assert len(journal) == 7
    assert fold_journal(accounts, journal) == balances_of(ledger)


def test_simultaneous_settlement_refused_when_credit_balance_would_overflow(ledger, network):
    n = network
    # Issue until ICBK holds the largest balance (and the issuance account the lowest).
    fill = Transfer("fill", n.cny_issuance, n.icbk_cny, BALANCE_MINOR_MAX - n.funding_minor,
                    "CNY")
    assert execute_one(ledger, fill).outcomes[0].accepted
    assert posted_of(ledger, n.icbk_cny) == BALANCE_MINOR_MAX
    one_more = Transfer("over", n.aboc_cny, n.icbk_cny, 1, "CNY")  # ABOC pays on credit
    assert_refused_without_effect(ledger, one_more, Rejection.OVERFLOWS_BALANCE)
    before = state_of(ledger)
    result = ledger.execute_simultaneous([replace(one_more, id="over-2")], T1_US)
    assert [o.rejection for o in result.outcomes] == [Rejection.OVERFLOWS_BALANCE]
    assert result.journal == [] and state_of(ledger) == before


def test_simultaneous_settlement_counts_what_is_reserved(ledger, network):
    """The net floor check of a simultaneous set uses the available balance: money held by a
    reservation may not be spent by an offset either."""
    n = network
    assert execute_one(ledger, reserve(n, "held", amount=80_000)).outcomes[0].accepted
    before = state_of(ledger)
    out = Transfer("sim-out", n.icbk_cny, n.aboc_cny, 50_000, "CNY")
    back = Transfer("sim-back", n.aboc_cny, n.icbk_cny, 10_000, "CNY")
    result = ledger.execute_simultaneous([out, back], T1_US)
    assert Rejection.INSUFFICIENT_LIQUIDITY in [o.rejection for o in result.outcomes]
    assert result.journal == [] and state_of(ledger) == before


def test_a_simultaneous_set_naming_one_id_twice_moves_nothing(ledger, network):
    before = state_of(ledger)
    twice = pay(network, "sim-twice", 1_000)
    result = ledger.execute_simultaneous([twice, twice], T1_US)
    assert all(o.rejection is not None for o in result.outcomes)
    assert result.journal == [] and state_of(ledger) == before
    outcome = ledger.outcome_of("sim-twice")
    assert outcome is None or outcome.rejection is not None  # never settled


def test_a_reservation_is_not_posted_out_of_a_blocked_account(ledger, network):
    assert execute_one(ledger, reserve(network, "held-b")).outcomes[0].accepted
    ledger.set_blocked(network.icbk_cny, True)
    assert_refused_without_effect(ledger, resolve(POST, "post-b", "held-b"),
                                  Rejection.DEBIT_ACCOUNT_BLOCKED)


@pytest.mark.parametrize("linked", [False, True])
def test_the_balance_cap_counts_credits_already_reserved(ledger, network, linked):
    """A credit that would take the account past 18 digits once its incoming reservations
    are posted is refused now: else those reservations could never be posted."""
    n = network
    fill = Transfer("fill", n.cny_issuance, n.icbk_cny,
                    BALANCE_MINOR_MAX - n.funding_minor - 100, "CNY")
    assert execute_one(ledger, fill).outcomes[0].accepted
    incoming = Transfer("in-held", n.aboc_cny, n.icbk_cny, 50, "CNY", PENDING)
    assert execute_one(ledger, incoming).outcomes[0].accepted
    credit = Transfer("in-more", n.aboc_cny, n.icbk_cny, 60, "CNY", linked=linked)
    if not linked:
        assert_refused_without_effect(ledger, credit, Rejection.OVERFLOWS_BALANCE)
        return
    before = state_of(ledger)
    chain = [credit, Transfer("in-tail", n.aboc_cny, n.icbk_cny, 1, "CNY")]
    result = ledger.execute(chain, T1_US)
    assert Rejection.OVERFLOWS_BALANCE in [o.rejection for o in result.outcomes]
    assert result.journal == [] and state_of(ledger) == before


def tracked_transfer_records() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects()
               if type(o) in (Transfer, JournalEntry, RejectionRecord))


def test_first_outcomes_are_kept_in_no_object_the_garbage_collector_tracks(ledger, network):
    """The ledger keeps every transfer id of the day with its first outcome: as tuples of
    plain values, which the collector stops tracking, not as Transfers and entries it would
    scan at each full collection."""
    before = tracked_transfer_records()
    transfers = [pay(network, f"t{n}", 10) for n in range(100)]
    transfers.append(pay(network, "too-much", network.funding_minor * 2))
    result = ledger.execute(transfers, T1_US)
    assert [o.accepted for o in result.outcomes] == [True] * 100 + [False]
    first = list(result.outcomes)
    del transfers, result
    assert tracked_transfer_records() == before
    # ... and each first outcome and transfer is still known, for a resubmission
    again = ledger.execute([pay(network, "t7", 10), pay(network, "t8", 11),
                            pay(network, "too-much", network.funding_minor * 2)], T1_US + 1)
    assert list(again.outcomes) == [first[7], TransferOutcome(
        "t8", Rejection.EXISTS_WITH_DIFFERENT_AMOUNT, T1_US + 1), first[100]]
    assert ledger.outcome_of("t3") == first[3]
    assert ledger.transfer_of("t3") == pay(network, "t3", 10)


@pytest.mark.parametrize("fields", [{}, {"linked": None}, {"timeout_s": None}],
                         ids=["plain", "linked None", "timeout None"])
def test_the_same_transfer_resubmitted_gets_its_first_outcome_and_is_known_as_given(
        ledger, network, fields):
    transfer = pay(network, "t1", 100, **fields)
    (first,) = ledger.execute([transfer], T1_US).outcomes
    (again,) = ledger.execute([transfer], T1_US + 1).outcomes
    assert first.accepted and again == first
    assert ledger.transfer_of("t1") == transfer


def test_a_refused_transfer_whose_kind_is_given_by_its_value_is_remembered(ledger, network):
    transfer = Transfer("t2", network.icbk_cny, network.aboc_cny, 100, "XXX", "posted")
    (outcome,) = ledger.execute([transfer], T1_US).outcomes
    assert outcome.rejection == Rejection.CURRENCY_UNKNOWN
    assert ledger.transfer_of("t2") == transfer and ledger.outcome_of("t2") == outcome
