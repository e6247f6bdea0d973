"""Multilateral gridlock resolution: known instances, then properties over random small queues.

The properties check every result against the rules with plain integer arithmetic, never
with the module's own bookkeeping. On queues of up to 12 payments the result is compared with
the optimum found by trying every subset: the ratio is recorded (printed with `-s`), and only
what the algorithm guarantees is asserted (it is not an exact solver).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scopay.domain.gridlock import QueuedPayment, Resolution, resolve_gridlock

A, B, C, D = 1, 2, 3, 4
NORMAL, HIGH, URGENT = 2, 1, 0


def pay(pid: str, debtor: int, creditor: int, amount: int, priority: int = NORMAL,
        sequence: int | None = None) -> QueuedPayment:
    sequence = int(pid.lstrip("P")) if sequence is None else sequence
    return QueuedPayment(pid, debtor, creditor, amount, priority, sequence)


def net_changes(queue: Sequence[QueuedPayment], settled: set[str]) -> dict[int, int]:
    net: dict[int, int] = {}
    for p in queue:
        if p.id in settled:
            net[p.debtor] = net.get(p.debtor, 0) - p.amount_minor
            net[p.creditor] = net.get(p.creditor, 0) + p.amount_minor
    return net


def is_feasible(balances: Mapping[int, int], floors: Mapping[int, int],
                queue: Sequence[QueuedPayment], settled: set[str]) -> bool:
    """No account ends below its floor (or, already below it, below where it started)."""
    net = net_changes(queue, settled)
    return all(balances[a] + net.get(a, 0) >= min(floors[a], balances[a]) for a in balances)


def settle_greedily(balances: Mapping[int, int], floors: Mapping[int, int],
                    queue: Sequence[QueuedPayment]) -> int:
    """Value of the plain greedy: the largest payment its debtor covers, until none."""
    room = {a: max(balances[a] - floors[a], 0) for a in balances}
    waiting = sorted(queue, key=lambda p: p.amount_minor, reverse=True)
    value, progress = 0, True
    while progress:
        progress = False
        for p in list(waiting):
            if room[p.debtor] >= p.amount_minor:
                room[p.debtor] -= p.amount_minor
                room[p.creditor] += p.amount_minor
                value += p.amount_minor
                waiting.remove(p)
                progress = True
    return value


def keeps_priority(queue: Sequence[QueuedPayment], settled: set[str]) -> bool:
    """No settled payment has a more urgent payment of its debtor waiting."""
    return not any(p.id in settled and q.id not in settled and q.debtor == p.debtor
                   and q.priority < p.priority for p in queue for q in queue)


def find_optimum(balances: Mapping[int, int], floors: Mapping[int, int],
                 queue: Sequence[QueuedPayment], respect_priority: bool = False) -> int:
    best = 0
    for size in range(1, len(queue) + 1):
        for subset in combinations(queue, size):
            value = sum(p.amount_minor for p in subset)
            settled = {p.id for p in subset}
            if (value > best and is_feasible(balances, floors, queue, settled)
                    and (not respect_priority or keeps_priority(queue, settled))):
                best = value
    return best


# --- Known instances ---------------------------------------------------------------------------


def test_three_bank_gridlock_without_liquidity_settles_in_full() -> None:
    balances, floors = {A: 0, B: 0, C: 0}, {A: 0, B: 0, C: 0}
    queue = [pay("P1", A, B, 500_00), pay("P2", B, C, 500_00), pay("P3", C, A, 500_00)]

    resolution = resolve_gridlock(balances, floors, queue)

    assert resolution == Resolution(("P1", "P2", "P3"), 1500_00, resolution.iterations, 1500_00)


def test_gridlock_partly_resolved_settles_the_cycle_and_leaves_what_breaks_a_floor() -> None:
    # A->B->C->A is a closed cycle. A->D and D->A would leave A 30 short (A has nothing)
    # unless A->D is dropped, and then D (20 of room) cannot pay 50 to A.
    balances, floors = {A: 0, B: 0, C: 0, D: 20}, {A: 0, B: 0, C: 0, D: 0}
    queue = [pay("P1", A, B, 100), pay("P2", B, C, 100), pay("P3", C, A, 100),
             pay("P4", D, A, 50), pay("P5", A, D, 80)]

    resolution = resolve_gridlock(balances, floors, queue)

    assert resolution.settle == ("P1", "P2", "P3")
    assert resolution.value_minor == 300 == find_optimum(balances, floors, queue)


def test_gridlock_prefers_two_smaller_payments_over_one_larger_when_they_settle_more() -> None:
    # A has 50 of room and 20 coming from B: it can pay 70. Paying 40 + 30 (with B's 20)
    # settles 90; paying the 60 instead settles at most 80.
    balances, floors = {A: 50, B: 20, C: 0, D: 0}, {A: 0, B: 0, C: 0, D: 0}
    queue = [pay("P1", A, B, 60), pay("P2", A, C, 40), pay("P3", A, D, 30), pay("P4", B, A, 20)]

    resolution = resolve_gridlock(balances, floors, queue)

    assert set(resolution.settle) == {"P2", "P3", "P4"}
    assert resolution.value_minor == 90 == find_optimum(balances, floors, queue)


def test_short_account_gives_up_payments_to_creditors_with_room_rather_than_overdraw_one() -> None:
    # Rounding leaves A 21 short; it takes back P6, and B, 119 short then, gives up P2 and P5
    # (120) but keeps P1: A then has the room for the P4 that C, overdrawn by 3, pulls in.
    # Giving up all it owed A and P5 (131), the cheapest repair by one payment more, left A
    # short of P4, and only P1 settled. P1 + P3 + P4 is the optimum.
    balances, floors = {A: 36, B: 12, C: 17}, {A: 0, B: 0, C: 0}
    queue = [pay("P1", B, A, 11), pay("P2", B, A, 59), pay("P3", C, A, 20), pay("P4", A, C, 60),
             pay("P5", B, C, 61), pay("P6", A, B, 147)]

    resolution = resolve_gridlock(balances, floors, queue)

    assert resolution.settle == ("P1", "P3", "P4")
    assert resolution.value_minor == 91 == find_optimum(balances, floors, queue)


def test_repair_that_takes_back_most_of_the_value_is_redone_with_lumpy_pairs_cut_whole() -> None:
    # The LP cuts 45 of B->C (one payment of 188) and 90 of A->D (one of 123). Rounding keeps
    # both (nothing fits in those cuts), B and D end short, and repair takes back 385 of the
    # LP's 396: only P5 + P9 (43) were left. Rounding them the other way, both cut whole,
    # leaves the optimum.
    balances, floors = {A: 12, B: 34, C: 39, D: 53}, {A: 0, B: 0, C: 0, D: 0}
    queue = [pay("P1", B, C, 188), pay("P3", D, C, 15), pay("P4", D, B, 109),
             pay("P5", D, C, 22), pay("P6", A, D, 123), pay("P7", C, D, 67), pay("P9", D, A, 21)]

    resolution = resolve_gridlock(balances, floors, queue)

    assert resolution.settle == ("P3", "P5", "P7", "P9")
    assert resolution.value_minor == 125 == find_optimum(balances, floors, queue)


def test_credit_line_counts_as_room_below_a_zero_balance() -> None:
    balances, floors = {A: 0, B: 0}, {A: -100, B: 0}
    queue = [pay("P1", A, B, 100), pay("P2", A, B, 1)]

    resolution = resolve_gridlock(balances, floors, queue)

    assert resolution.settle == ("P1",)


def test_account_already_below_its_floor_may_only_receive_net() -> None:
    # B's credit line was cut: balance -50, floor 0. It may pay 30 only against 30 coming in.
    balances, floors = {A: 100, B: -50}, {A: 0, B: 0}
    queue = [pay("P1", B, A, 30), pay("P2", A, B, 30), pay("P3", B, A, 10)]

    resolution = resolve_gridlock(balances, floors, queue)

    assert set(resolution.settle) == {"P1", "P2"}


def test_urgent_payment_that_cannot_settle_holds_back_its_debtors_normal_ones() -> None:
    balances, floors = {A: 50, B: 0, C: 0}, {A: 0, B: 0, C: 0}
    queue = [pay("P1", A, B, 100, URGENT), pay("P2", A, C, 40, NORMAL)]

    assert resolve_gridlock(balances, floors, queue).settle == ("P2",)
    assert resolve_gridlock(balances, floors, queue, respect_priority=True).settle == ()


def test_normal_payment_settles_once_its_debtors_urgent_ones_do() -> None:
    # A's urgent 100 settles thanks to C's 60 coming in; then the normal 10 fits as well.
    balances, floors = {A: 50, B: 0, C: 60}, {A: 0, B: 0, C: 0}
    queue = [pay("P1", A, B, 100, URGENT), pay("P2", A, C, 10, NORMAL),
             pay("P3", C, A, 60, HIGH)]

    resolution = resolve_gridlock(balances, floors, queue, respect_priority=True)

    assert resolution.settle == ("P1", "P2", "P3")


def test_debtor_settles_its_urgent_payment_rather_than_give_up_the_normal_ones_that_pay_back(
) -> None:
    # A's normal 50 and 30 to C let C pay A 60. Keeping them and settling A's urgent 20 too
    # (160 in all) beats giving them up for the larger normal 79 to D, which C's 60 would
    # not follow.
    balances, floors = {A: 100, B: 0, C: 0, D: 0}, {A: 0, B: 0, C: 0, D: 0}
    queue = [pay("P1", A, B, 20, URGENT), pay("P2", A, C, 50), pay("P3", A, C, 30),
             pay("P4", A, D, 79), pay("P5", C, A, 60)]

    resolution = resolve_gridlock(balances, floors, queue, respect_priority=True)

    assert resolution.settle == ("P1", "P2", "P3", "P5")
    assert resolution.value_minor == 160 == find_optimum(balances, floors, queue, True)


def test_priority_mode_reports_no_bound_its_weighted_relaxation_does_not_give() -> None:
    balances, floors = {A: 4, B: 0, C: 0}, {A: 0, B: 0, C: 0}  # not everything fits
    queue = [pay("P1", A, B, 30, URGENT), pay("P2", B, C, 25), pay("P3", C, A, 25)]

    assert resolve_gridlock(balances, floors, queue).bound_minor is not None
    assert resolve_gridlock(balances, floors, queue, respect_priority=True).bound_minor is None


def test_payments_of_the_same_priority_may_bypass_each_other() -> None:
    balances, floors = {A: 50, B: 0, C: 0}, {A: 0, B: 0, C: 0}
    queue = [pay("P1", A, B, 100, HIGH), pay("P2", A, C, 40, HIGH)]

    assert resolve_gridlock(balances, floors, queue, respect_priority=True).settle == ("P2",)


def test_empty_queue_settles_nothing() -> None:
    assert resolve_gridlock({A: 10}, {A: 0}, []) == Resolution((), 0, 0, 0)


def test_lp_bound_is_reported_and_never_below_the_value() -> None:
    balances, floors = {A: 10, B: 0, C: 0}, {A: 0, B: 0, C: 0}
    queue = [pay("P1", A, B, 30), pay("P2", B, C, 25), pay("P3", C, A, 25)]

    resolution = resolve_gridlock(balances, floors, queue)

    assert resolution.value_minor == 80
    assert resolution.bound_minor is not None and resolution.bound_minor >= 80


def test_zero_iterations_still_returns_a_feasible_set() -> None:
    balances, floors = {A: 0, B: 0, C: 0}, {A: 0, B: 0, C: 0}
    queue = [pay("P1", A, B, 5), pay("P2", B, C, 5), pay("P3", C, A, 5), pay("P4", A, C, 7)]

    resolution = resolve_gridlock(balances, floors, queue, iterations_max=0)

    assert resolution.iterations == 0
    assert resolution.bound_minor is None
    assert is_feasible(balances, floors, queue, set(resolution.settle))


def test_duplicate_payment_ids_are_a_programmer_error() -> None:
    queue = [pay("P1", A, B, 1), pay("P1", B, A, 1, sequence=2)]
    with pytest.raises(AssertionError):
        resolve_gridlock({A: 0, B: 0}, {A: 0, B: 0}, queue)


# --- Properties over random small queues -------------------------------------------------------

ACCOUNT_IDS = (1, 2, 3, 4, 5, 6)


@st.composite
def instances(draw: st.DrawFn, payments_max: int = 12):
    accounts = ACCOUNT_IDS[: draw(st.integers(2, len(ACCOUNT_IDS)))]
    balances = {a: draw(st.integers(-100, 400)) for a in accounts}
    floors = {a: draw(st.integers(-200, 100)) for a in accounts}
    count = draw(st.integers(0, payments_max))
    queue = []
    for n in range(count):
        debtor, creditor = draw(st.lists(st.sampled_from(accounts), min_size=2, max_size=2,
                                         unique=True))
        amount = draw(st.one_of(st.integers(1, 50), st.integers(1, 500)))
        queue.append(QueuedPayment(f"P{n}", debtor, creditor, amount,
                                   draw(st.sampled_from((URGENT, HIGH, NORMAL))), 10 * n))
    return balances, floors, queue


def assert_result_keeps_the_rules(balances, floors, queue, resolution: Resolution) -> None:
    ids = list(resolution.settle)
    by_id = {p.id: p for p in queue}
    assert len(ids) == len(set(ids)), "a payment listed twice"
    assert set(ids) <= by_id.keys(), "an id that is not queued"
    assert [by_id[i].sequence for i in ids] == sorted(by_id[i].sequence for i in ids)
    assert resolution.value_minor == sum(by_id[i].amount_minor for i in ids)
    net = net_changes(queue, set(ids))
    assert sum(net.values()) == 0, "value created or destroyed"
    assert is_feasible(balances, floors, queue, set(ids)), "an account ends below its floor"
    if resolution.bound_minor is not None:
        assert resolution.value_minor <= resolution.bound_minor


@st.composite
def long_queues_of_few_amounts(draw: st.DrawFn):
    """Longer than the greedy cross-check covers, and amounts drawn from a handful of values,
    so many payments tie on amount (the sorted per-account lists must keep them apart)."""
    accounts = ACCOUNT_IDS[: draw(st.integers(3, len(ACCOUNT_IDS)))]
    balances = {a: draw(st.integers(-100, 2_000)) for a in accounts}
    floors = {a: draw(st.integers(-1_000, 100)) for a in accounts}
    amounts = draw(st.lists(st.integers(1, 400), min_size=1, max_size=4))
    queue = []
    for n in range(draw(st.integers(260, 400))):
        debtor, creditor = draw(st.lists(st.sampled_from(accounts), min_size=2, max_size=2,
                                         unique=True))
        queue.append(QueuedPayment(f"P{n}", debtor, creditor, draw(st.sampled_from(amounts)),
                                   draw(st.sampled_from((URGENT, HIGH, NORMAL))), 10 * n))
    return balances, floors, queue


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.data_too_large])
@given(long_queues_of_few_amounts(), st.booleans(), st.integers(0, 40))
def test_long_queues_with_tied_amounts_keep_the_rules(instance, respect_priority, budget) -> None:
    balances, floors, queue = instance

    resolution = resolve_gridlock(balances, floors, queue, iterations_max=budget,
                                  respect_priority=respect_priority)

    assert resolution.iterations <= budget
    assert_result_keeps_the_rules(balances, floors, queue, resolution)


def test_result_lists_ids_in_sequence_order_whatever_the_order_of_the_queue() -> None:
    balances, floors = {A: 0, B: 0, C: 0}, {A: 0, B: 0, C: 0}
    queue = [pay("P3", C, A, 500_00), pay("P2", B, C, 500_00), pay("P1", A, B, 500_00)]

    resolution = resolve_gridlock(balances, floors, queue)

    assert resolution.settle == ("P1", "P2", "P3")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_result_keeps_floors_lists_each_queued_payment_once_and_conserves_value(instance) -> None:
    balances, floors, queue = instance

    resolution = resolve_gridlock(balances, floors, queue)

    assert_result_keeps_the_rules(balances, floors, queue, resolution)


@settings(max_examples=100, deadline=None)
@given(instances(), st.integers(0, 3))
def test_result_keeps_the_rules_however_small_the_iteration_budget(instance, budget) -> None:
    balances, floors, queue = instance

    resolution = resolve_gridlock(balances, floors, queue, iterations_max=budget)

    assert resolution.iterations <= budget
    assert_result_keeps_the_rules(balances, floors, queue, resolution)


@settings(max_examples=100, deadline=None)
@given(instances())
def test_with_priority_no_debtor_settles_while_a_more_urgent_payment_of_it_waits(instance) -> None:
    balances, floors, queue = instance

    resolution = resolve_gridlock(balances, floors, queue, respect_priority=True)

    assert_result_keeps_the_rules(balances, floors, queue, resolution)
    settled = set(resolution.settle)
    for p in queue:
        if p.id in settled:
            assert all(q.id in settled for q in queue
                       if q.debtor == p.debtor and q.priority < p.priority), p.id


@settings(max_examples=120, deadline=None)
@given(instances(payments_max=12))
def test_small_queues_settle_at_least_the_greedy_and_at_most_the_optimum(instance) -> None:
    balances, floors, queue = instance

    resolution = resolve_gridlock(balances, floors, queue)

    optimum = find_optimum(balances, floors, queue)
    assert settle_greedily(balances, floors, queue) <= resolution.value_minor <= optimum
