"""Whatever the queue, the balances, the currencies and what is done to them, settlement and
liquidity saving never break the ledger's rules.

Banks hold accounts in two or three currencies and pay in each. Mixed into the payments:
funds in and out, reservations on the ledger (held, voided, expiring), credit lines moved,
reservations for urgent and high payments and bilateral and multilateral limits set, queued
payments cancelled, reprioritised, moved and retimed, time passing (across business days) and
gridlock resolution. After every operation: every currency sums to zero and holds exactly
what its funding and settled payments say, no account is below its floor, no payment settles
twice or after it was cancelled or rejected, the queue holds exactly the payments left
waiting, and no limit ends higher than both its value and where the position stood.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from scopay.domain.account import Account, AccountKind
from scopay.domain.ledger import Ledger, Transfer, TransferKind, invariant_violations
from scopay.domain.payment import Priority
from scopay.domain.rejection import Rejection
from scopay.domain.rtgs import PAYMENT_TRANSFER_PREFIX, AccountPolicy, Order, Rtgs, Step

BANKS = 4
CURRENCIES = ("CNY", "RUB", "INR")
SECOND_US = 1_000_000
TERMINAL = ("settled", "rejected", "cancelled")


@dataclass
class Network:
    """A ledger and its RTGS with a model of what every account must hold."""

    currencies: tuple[str, ...]
    ledger: Ledger = field(default_factory=Ledger)
    rtgs: Rtgs | None = None
    accounts: dict[tuple[int, str], int] = field(default_factory=dict)  # (bank, ccy) -> id
    holders: dict[str, list[int]] = field(default_factory=dict)  # ccy -> banks holding it
    issuance: dict[str, int] = field(default_factory=dict)
    expected: dict[int, int] = field(default_factory=dict)  # account -> posted, by the model
    state: dict[str, str] = field(default_factory=dict)  # uetr -> queued / settled / ...
    moved: Counter = field(default_factory=Counter)  # ledger transfer id -> times journaled
    now_us: int = 0
    serial: int = 0

    def open(self, holdings: list[list[bool]], credit_lines: list[int]) -> None:
        for currency in self.currencies:
            self.holders[currency] = []
        for bank in range(1, BANKS + 1):
            for n, currency in enumerate(self.currencies):
                if bank <= 2 or holdings[bank - 1][n]:  # two banks at least in each currency
                    line = credit_lines[(bank * len(CURRENCIES) + n) % len(credit_lines)]
                    self._open(Account(len(self.ledger.balances) + 1, f"B{bank}", currency,
                                       credit_line_minor=line))
                    self.accounts[(bank, currency)] = len(self.ledger.balances)
                    self.holders[currency].append(bank)
        for currency in self.currencies:
            self._open(Account(len(self.ledger.balances) + 1, f"CB-{currency}", currency,
                               AccountKind.ISSUANCE))
            self.issuance[currency] = len(self.ledger.balances)

    def _open(self, account: Account) -> None:
        self.ledger.open_account(account)
        self.expected[account.id] = 0

    def account(self, index: int, currency_index: int) -> tuple[int, str]:
        currency = self.currencies[currency_index % len(self.currencies)]
        holders = self.holders[currency]
        return self.accounts[(holders[index % len(holders)], currency)], currency

    def pair(self, debtor: int, creditor: int, currency_index: int) -> tuple[int, int, str]:
        """Two different holders of a currency: the debtor's account, then another's."""
        debtor_id, currency = self.account(debtor, currency_index)
        others = len(self.holders[currency]) - 1
        creditor_id, _ = self.account(debtor + 1 + creditor % others, currency_index)
        return debtor_id, creditor_id, currency

    def queued(self, pick: int) -> Order | None:
        uetrs = sorted(self.rtgs.orders)
        return self.rtgs.orders[uetrs[pick % len(uetrs)]] if uetrs else None

    def move_funds(self, debit: int, credit: int, amount: int, currency: str) -> bool:
        self.serial += 1
        result = self.ledger.execute(
            [Transfer(f"f{self.serial}", debit, credit, amount, currency)], self.now_us)
        self.journaled(result.journal)
        if result.outcomes[0].rejection is not None:
            return False
        self.expected[debit] -= amount
        self.expected[credit] += amount
        return True

    def journaled(self, journal) -> None:
        self.moved.update(entry.transfer.id for entry in journal)


# -- operations: each returns the RTGS steps it took --------------------------------------


def pay(net: Network, debtor: int, creditor: int, ccy: int, amount: int, priority: Priority,
        earliest_s: int | None, reject_by_s: int | None) -> list[Step]:
    debtor_id, creditor_id, currency = net.pair(debtor, creditor, ccy)
    return submit(net, Order("", debtor_id, creditor_id, amount, currency, priority,
                             earliest_us=_later(net, earliest_s),
                             reject_by_us=_later(net, reject_by_s)))


def submit(net: Network, order: Order) -> list[Step]:
    net.serial += 1
    order.uetr = f"u{net.serial}"
    net.state[order.uetr] = "entering"
    return [net.rtgs.submit(order, net.now_us)]


def pay_back(net: Network, pick: int, amount: int, priority: Priority) -> list[Step]:
    """Pay the other way of a queued payment: the pairs bilateral offsetting works on."""
    order = net.queued(pick)
    if order is None:
        return []
    return submit(net, Order("", order.creditor_account, order.debtor_account, amount,
                             order.currency, priority))


def fund(net: Network, bank: int, ccy: int, amount: int) -> list[Step]:
    account, currency = net.account(bank, ccy)
    if not net.move_funds(net.issuance[currency], account, amount, currency):
        return []
    return [net.rtgs.release([account], net.now_us)]


def defund(net: Network, bank: int, ccy: int, amount: int) -> list[Step]:
    account, currency = net.account(bank, ccy)
    net.move_funds(account, net.issuance[currency], amount, currency)
    return []


def hold(net: Network, bank: int, ccy: int, amount: int, timeout_s: int) -> list[Step]:
    """Reserve liquidity on the ledger (a pending funds-out), voided or expiring later."""
    account, currency = net.account(bank, ccy)
    net.serial += 1
    result = net.ledger.execute([Transfer(f"h{net.serial}", account, net.issuance[currency],
                                          amount, currency, TransferKind.PENDING,
                                          timeout_s=timeout_s)], net.now_us)
    net.journaled(result.journal)
    return []


def void(net: Network, pick: int) -> list[Step]:
    pending = sorted(net.ledger.pending_ids())
    if not pending:
        return []
    held = net.ledger.transfer_of(pending[pick % len(pending)])
    net.serial += 1
    result = net.ledger.execute([Transfer(f"v{net.serial}", 0, 0, 0, "",
                                          TransferKind.VOID_PENDING, held.id)], net.now_us)
    net.journaled(result.journal)
    return [net.rtgs.release([held.debit_account_id], net.now_us)]


def credit_line(net: Network, bank: int, ccy: int, line: int) -> list[Step]:
    account, _ = net.account(bank, ccy)
    if not net.ledger.set_floor(account, -line):
        return []  # refused: the account already uses more than the new line
    return [net.rtgs.release([account], net.now_us)]


def policy(net: Network, bank: int, ccy: int, reserved_urgent: int, reserved_high: int,
           bilateral: dict[int, int], multilateral: int | None) -> list[Step]:
    account, _ = net.account(bank, ccy)
    limits = {net.account(other, ccy)[0]: limit for other, limit in bilateral.items()}
    limits.pop(account, None)
    return [net.rtgs.set_policy(account, AccountPolicy(reserved_urgent, reserved_high, limits,
                                                       multilateral), net.now_us)]


def cancel(net: Network, pick: int) -> list[Step]:
    order = net.queued(pick)
    if order is not None:
        assert net.rtgs.cancel(order.uetr) is order
        net.state[order.uetr] = "cancelled"
    return []


def reprioritise(net: Network, pick: int, priority: Priority) -> list[Step]:
    order = net.queued(pick)
    return [] if order is None else [net.rtgs.change_priority(order.uetr, priority,
                                                              net.now_us)]


def move(net: Network, pick: int, to_front: bool) -> list[Step]:
    order = net.queued(pick)
    return [] if order is None else [net.rtgs.move(order.uetr, to_front, net.now_us)]


def retime(net: Network, pick: int, latest_s: int | None, reject_by_s: int | None) -> list[Step]:
    order = net.queued(pick)
    if order is None:
        return []
    net.rtgs.set_times(order.uetr, _later(net, latest_s), _later(net, reject_by_s))
    return [net.rtgs.tick(net.now_us)]  # a reject-by time already passed takes effect now


def tick(net: Network, seconds: int) -> list[Step]:
    """Time passes: reservations expire (as the engine does it), then the queue's times."""
    net.now_us += seconds * SECOND_US
    expired = net.ledger.expire_pending(net.now_us)
    net.journaled(expired)
    steps = [net.rtgs.tick(net.now_us)]
    return steps + [net.rtgs.release({e.transfer.debit_account_id for e in expired},
                                     net.now_us)]


def resolve(net: Network, ccy: int | None) -> list[Step]:
    currency = None if ccy is None else net.currencies[ccy % len(net.currencies)]
    return [net.rtgs.resolve(net.now_us, currency)]


def _later(net: Network, seconds: int | None) -> int | None:
    return None if seconds is None else net.now_us + seconds * SECOND_US


OPERATIONS = {op.__name__: op for op in (pay, pay_back, fund, defund, hold, void, credit_line,
                                         policy, cancel, reprioritise, move, retime, tick,
                                         resolve)}

# -- what every operation must leave true -------------------------------------------------


def record(net: Network, steps: list[Step]) -> None:
    """Follow the steps in the model, refusing any payment that settles twice, settles or is
    refused after it left the queue, or settles other than as ordered."""
    for step in steps:
        net.journaled(step.ledger.journal)
        for order, _reason in step.queued:
            assert net.state[order.uetr] == "entering"
            net.state[order.uetr] = "queued"
        for order in step.settled:
            assert net.state[order.uetr] not in TERMINAL, f"{order.uetr} settled again"
            assert order.earliest_us is None or order.earliest_us <= net.now_us, (
                f"{order.uetr} settled before its earliest time")
            net.state[order.uetr] = "settled"
            transfer = net.ledger.transfer_of(order.transfer_id)
            assert net.ledger.outcome_of(order.transfer_id).rejection is None
            assert (transfer.debit_account_id, transfer.credit_account_id,
                    transfer.amount_minor, transfer.currency) == (
                order.debtor_account, order.creditor_account, order.amount_minor,
                order.currency)
            assert {net.ledger.balances[order.debtor_account].currency,  # its own currency
                    net.ledger.balances[order.creditor_account].currency} == {order.currency}
            net.expected[order.debtor_account] -= order.amount_minor
            net.expected[order.creditor_account] += order.amount_minor
        for order, rejection in step.rejected:
            assert net.state[order.uetr] not in TERMINAL, f"{order.uetr} refused after it left"
            assert rejection is Rejection.REJECT_TIME_PASSED  # lacking liquidity, it waits
            net.state[order.uetr] = "rejected"


def check_reservations(net: Network, steps: list[Step], available_before: dict[int, int]
                       ) -> None:
    """A debtor whose money went out in these steps keeps the liquidity reserved for
    priorities above the most urgent payment of it that settled: what a normal payment
    may not use is reserved for urgent and high ones, what a high one may not, for urgent
    ones. (Money that came in meanwhile only helps; an account that ends with no less than
    it had is not asked.)"""
    most_urgent: dict[int, int] = {}
    for step in steps:
        for order in step.settled:
            most_urgent[order.debtor_account] = min(
                order.rank, most_urgent.get(order.debtor_account, order.rank))
    for account, rank in most_urgent.items():
        balance = net.ledger.balances[account]
        policy = net.rtgs.policies.get(account)
        if balance.floor_minor is None or policy is None or rank == 0:
            continue
        if balance.available_minor >= available_before[account]:
            continue
        reserved = policy.reserved_urgent_minor + (policy.reserved_high_minor if rank == 2
                                                   else 0)
        assert balance.available_minor - reserved >= balance.floor_minor, (
            f"account {account} spent liquidity reserved above rank {rank}")


def check_ledger(net: Network) -> None:
    ledger = net.ledger
    assert invariant_violations(ledger) == []  # floors, reservations, zero sums
    for currency in net.currencies:
        accounts = [b for b in ledger.balances.values() if b.currency == currency]
        assert sum(b.posted_minor for b in accounts) == 0, f"{currency} not conserved"
    for account, posted in net.expected.items():
        assert ledger.balances[account].posted_minor == posted, f"account {account}"
    assert all(times == 1 for times in net.moved.values()), "a transfer journaled twice"


def check_queue(net: Network) -> None:
    rtgs = net.rtgs
    assert "entering" not in net.state.values()  # every new payment settled, queued or not
    assert {u for u, s in net.state.items() if s == "queued"} == set(rtgs.orders)
    queued = [order for queue in rtgs.queues.values() for order in queue]
    assert sorted(o.uetr for o in queued) == sorted(rtgs.orders)
    for debtor, queue in rtgs.queues.items():
        assert all(order.debtor_account == debtor for order in queue)
        assert [(o.rank, o.sequence) for o in queue] == sorted((o.rank, o.sequence)
                                                               for o in queue)
    for uetr in net.state:  # a payment that has not settled has moved no money
        if net.state[uetr] != "settled":
            outcome = net.ledger.outcome_of(PAYMENT_TRANSFER_PREFIX + uetr)
            assert outcome is None or outcome.rejection is not None


def check_limits(net: Network, before: dict[tuple[int, int], int]) -> None:
    """No position ends above its limit unless it stood higher before (a limit lowered, or
    a bilateral one lifted into the multilateral position, may only be worked down)."""
    rtgs = net.rtgs
    for debtor, account_policy in rtgs.policies.items():
        for creditor, limit in account_policy.bilateral_limits.items():
            after = rtgs.positions.get((debtor, creditor), 0)
            assert after <= max(limit, before.get((debtor, creditor), 0))
        if account_policy.multilateral_limit_minor is not None:
            after = rtgs.multilateral_position(debtor)
            assert after <= max(account_policy.multilateral_limit_minor,
                                rtgs.multilateral_position(debtor, before))


# -- strategies ---------------------------------------------------------------------------

index = st.integers(0, BANKS - 1)  # a bank among a currency's holders
currency_index = st.integers(0, len(CURRENCIES) - 1)
amount = st.integers(1, 2_000)
priority = st.sampled_from(list(Priority))
delay_s = st.one_of(st.none(), st.integers(0, 900))
pick = st.integers(0, 1_000)  # a queued payment (or reservation), by its rank among them

# (earliest, reject-by) in seconds from now: mostly neither, in one draw
timing = st.sampled_from([(None, None)] * 6 + [(60, None), (900, None), (None, 1),
                                                (None, 600), (30, 60), (600, 300)])
payment = st.tuples(st.just("pay"), index, index, currency_index, amount, priority,
                    timing).map(lambda row: (*row[:-1], *row[-1]))
# (bank, currency, urgent and high reservations, bilateral limits, multilateral limit)
policy_set = st.tuples(index, currency_index, st.sampled_from([0, 0, 500]),
                       st.sampled_from([0, 0, 500]),
                       st.dictionaries(index, st.integers(0, 1_500), max_size=2),
                       st.one_of(st.none(), st.integers(0, 2_500)))
management = st.one_of(
    st.tuples(st.just("fund"), index, currency_index, st.integers(1, 3_000)),
    st.tuples(st.just("defund"), index, currency_index, st.integers(1, 3_000)),
    st.tuples(st.just("hold"), index, currency_index, st.integers(1, 2_000),
              st.integers(1, 900)),
    st.tuples(st.just("void"), pick),
    st.tuples(st.just("credit_line"), index, currency_index, st.sampled_from([0, 300, 1_000])),
    policy_set.map(lambda args: ("policy", *args)),
    st.tuples(st.just("cancel"), pick),
    st.tuples(st.just("reprioritise"), pick, priority),
    st.tuples(st.just("move"), pick, st.booleans()),
    st.tuples(st.just("retime"), pick, delay_s, delay_s),
    st.tuples(st.just("tick"), st.sampled_from([1, 60, 600, 86_400])),
    st.tuples(st.just("resolve"), st.one_of(st.none(), currency_index)),
)
payment_back = st.tuples(st.just("pay_back"), pick, amount, priority)
operation = st.sampled_from((payment, payment, payment_back, management, management)).flatmap(
    lambda kind: kind)
currencies = st.integers(2, len(CURRENCIES)).map(lambda n: CURRENCIES[:n])
holdings = st.lists(st.lists(st.booleans(), min_size=len(CURRENCIES),
                             max_size=len(CURRENCIES)), min_size=BANKS, max_size=BANKS)
credit_lines = st.lists(st.sampled_from([0, 0, 500]), min_size=1, max_size=BANKS)
funding = st.lists(st.tuples(index, currency_index, st.sampled_from([0, 500, 2_000, 20_000])),
                   max_size=12)


def build(codes, held, lines, funds, bypass) -> Network:
    net = Network(codes)
    net.open(held, lines)
    net.rtgs = Rtgs(net.ledger, bypass_fifo_normal=bypass)
    for bank, ccy, value in funds:
        if value:
            account, currency = net.account(bank, ccy)
            net.move_funds(net.issuance[currency], account, value, currency)
    return net


@settings(max_examples=80, deadline=None)
@given(currencies, holdings, credit_lines, funding, st.booleans(),
       st.lists(policy_set, max_size=4), st.lists(operation, min_size=15, max_size=40))
def test_every_operation_keeps_every_rule_in_every_currency(codes, held, lines, funds, bypass,
                                                            policies, operations):
    net = build(codes, held, lines, funds, bypass)
    for args in policies:
        record(net, policy(net, *args))
    for name, *args in [*operations, ("resolve", None)]:  # and a last resolution
        before = dict(net.rtgs.positions)
        available = {i: b.available_minor for i, b in net.ledger.balances.items()}
        steps = OPERATIONS[name](net, *args)
        record(net, steps)
        check_reservations(net, steps, available)
        check_ledger(net)
        check_queue(net)
        check_limits(net, before)


payments = st.lists(st.tuples(index, index, currency_index, amount, priority),
                    min_size=1, max_size=40)


@settings(max_examples=30, deadline=None)
@given(currencies, holdings, payments)
def test_resolution_settles_pure_cycles_without_any_liquidity_in_every_currency(
        codes, held, rows):
    net = build(codes, held, [0], [], True)
    for debtor, creditor, ccy, value, _priority in rows:
        # each payment is matched by the same amount coming back: a set of 2-cycles
        debtor_id, creditor_id, currency = net.pair(debtor, creditor, ccy)
        for payer, payee in ((debtor_id, creditor_id), (creditor_id, debtor_id)):
            record(net, submit(net, Order("", payer, payee, value, currency,
                                          Priority.NORMAL)))
    record(net, resolve(net, None))
    check_ledger(net)
    assert net.rtgs.orders == {}
    assert all(b.posted_minor == 0 for b in net.ledger.balances.values())


limits = st.lists(st.tuples(index, currency_index,
                            st.dictionaries(index, st.integers(0, 4_000), max_size=3),
                            st.one_of(st.none(), st.integers(0, 6_000))), max_size=BANKS * 2)


@settings(max_examples=60, deadline=None)
@given(currencies, holdings, funding, limits, payments)
def test_resolution_ends_no_debtor_over_a_limit(codes, held, funds, limits_set, rows):
    """Whatever the limits, a resolution leaves every position within its limit, or no
    higher than it stood (positions over a limit that was lowered may only come down)."""
    net = build(codes, held, [0], funds, True)
    for bank, ccy, bilateral, multilateral in limits_set:
        record(net, policy(net, bank, ccy, 0, 0, bilateral, multilateral))
    for debtor, creditor, ccy, value, urgency in rows:
        record(net, pay(net, debtor, creditor, ccy, value, urgency, None, None))
    before = dict(net.rtgs.positions)
    record(net, resolve(net, None))
    check_ledger(net)
    check_queue(net)
    check_limits(net, before)
