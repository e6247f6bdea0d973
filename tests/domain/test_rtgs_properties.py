"""Whatever the queue and the balances, liquidity saving never breaks the ledger's rules."""

from hypothesis import given, settings
from hypothesis import strategies as st

from scopay.domain.account import Account, AccountKind
from scopay.domain.ledger import Ledger, Transfer, invariant_violations
from scopay.domain.payment import Priority
from scopay.domain.rtgs import Order, Rtgs

BANKS = 6
ISSUANCE = BANKS + 1

payments = st.lists(
    st.tuples(st.integers(1, BANKS), st.integers(1, BANKS), st.integers(1, 5_000),
              st.sampled_from(list(Priority))),
    min_size=1, max_size=40,
).map(lambda rows: [row for row in rows if row[0] != row[1]])


def network(funding, credit_lines):
    ledger = Ledger()
    for bank in range(1, BANKS + 1):
        ledger.open_account(Account(bank, f"B{bank}", "CNY",
                                    credit_line_minor=credit_lines[bank - 1]))
    ledger.open_account(Account(ISSUANCE, "CB", "CNY", AccountKind.ISSUANCE))
    for bank, amount in enumerate(funding, start=1):
        if amount:
            ledger.execute([Transfer(f"f{bank}", ISSUANCE, bank, amount, "CNY")], 0)
    return ledger


@settings(max_examples=80, deadline=None)
@given(payments, st.lists(st.integers(0, 3_000), min_size=BANKS, max_size=BANKS),
       st.lists(st.sampled_from([0, 0, 500]), min_size=BANKS, max_size=BANKS),
       st.booleans())
def test_settlement_and_resolution_keep_every_rule(rows, funding, credit_lines, bypass):
    ledger = network(funding, credit_lines)
    rtgs = Rtgs(ledger, bypass_fifo_normal=bypass)
    total_before = sum(b.posted_minor for b in ledger.balances.values())
    settled: list[str] = []
    for n, (debtor, creditor, amount, priority) in enumerate(rows):
        step = rtgs.submit(Order(f"u{n}", debtor, creditor, amount, "CNY", priority), n)
        settled += [o.uetr for o in step.settled]
        assert invariant_violations(ledger) == []
    step = rtgs.resolve(len(rows))
    settled += [o.uetr for o in step.settled]

    assert invariant_violations(ledger) == []  # no floor broken, CNY sums to zero
    assert sum(b.posted_minor for b in ledger.balances.values()) == total_before
    assert len(settled) == len(set(settled))  # nothing settles twice
    assert not set(settled) & set(rtgs.orders)  # a settled payment left the queue
    journal_ids = {f"pay/{uetr}" for uetr in settled}
    assert all(ledger.outcome_of(t).rejection is None for t in journal_ids)
    # what was paid equals what the settled orders say, per bank
    amounts = {f"u{n}": row for n, row in enumerate(rows)}
    for bank in range(1, BANKS + 1):
        paid = sum(a for u in settled for d, _c, a, _p in [amounts[u]] if d == bank)
        received = sum(a for u in settled for _d, c, a, _p in [amounts[u]] if c == bank)
        assert ledger.balances[bank].posted_minor == funding[bank - 1] - paid + received


@settings(max_examples=30, deadline=None)
@given(payments)
def test_resolution_settles_a_pure_cycle_without_any_liquidity(rows):
    ledger = network([0] * BANKS, [0] * BANKS)
    rtgs = Rtgs(ledger)
    for n, (debtor, creditor, amount, _priority) in enumerate(rows):
        # each payment is matched by the same amount coming back: a set of 2-cycles
        rtgs.submit(Order(f"a{n}", debtor, creditor, amount, "CNY", Priority.NORMAL), n)
        rtgs.submit(Order(f"b{n}", creditor, debtor, amount, "CNY", Priority.NORMAL), n)
    rtgs.resolve(len(rows))
    assert rtgs.orders == {}
    assert all(ledger.balances[bank].posted_minor == 0 for bank in range(1, BANKS + 1))


limits = st.dictionaries(
    st.integers(1, BANKS),
    st.tuples(st.dictionaries(st.integers(1, BANKS), st.integers(0, 4_000), max_size=3),
              st.one_of(st.none(), st.integers(0, 6_000))),
    max_size=BANKS,
)


@settings(max_examples=80, deadline=None)
@given(payments, st.lists(st.integers(0, 3_000), min_size=BANKS, max_size=BANKS), limits)
def test_resolution_ends_no_debtor_over_a_limit(rows, funding, limits_by_bank):
    """Whatever the limits, a resolution leaves every position within its limit, or no
    higher than it stood (positions over a limit that was lowered may only come down)."""
    from scopay.domain.rtgs import AccountPolicy

    ledger = network(funding, [0] * BANKS)
    rtgs = Rtgs(ledger)
    for bank, (bilateral, multilateral) in limits_by_bank.items():
        rtgs.set_policy(bank, AccountPolicy(
            bilateral_limits={c: v for c, v in bilateral.items() if c != bank},
            multilateral_limit_minor=multilateral), 0)
    for n, (debtor, creditor, amount, priority) in enumerate(rows):
        rtgs.submit(Order(f"u{n}", debtor, creditor, amount, "CNY", priority), n)
    bilateral_before = dict(rtgs.positions)
    multilateral_before = dict(rtgs.multilateral_positions)
    rtgs.resolve(len(rows))

    assert invariant_violations(ledger) == []
    for debtor, policy in rtgs.policies.items():
        for creditor, limit in policy.bilateral_limits.items():
            after = rtgs.positions.get((debtor, creditor), 0)
            assert after <= max(limit, bilateral_before.get((debtor, creditor), 0))
        if policy.multilateral_limit_minor is not None:
            after = rtgs.multilateral_positions.get(debtor, 0)
            assert after <= max(policy.multilateral_limit_minor,
                                multilateral_before.get(debtor, 0))
