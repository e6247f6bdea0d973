"""A queued payment moved or reprioritised makes its debtor's queue be tried only where the
change can matter (the urgent and high payments, the normal ones when no longer held back,
the payment itself): differentially tested against trying the whole queue, as every change
did before, over the same random operations. The shortcut relies on queues being at rest
between operations (every operation that frees liquidity tries the queues it touches;
cancellations here release what they held back, as the engine's do). One state is not at
rest, and the model builds it too: an offset one side sees and the other does not (a
payment entering is tried from its own side only, and offsetting takes the creditor's
payments from the front of its queue), which a move leaves to a later change or a gridlock
resolution (docs/settlement.md, scenarios/an_offset_seen_from_one_side_waits_for_resolution.scn).
So every queue is tried whole, in both networks alike, before each move or new priority:
the comparison starts from rest."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from test_rtgs_properties import (  # this folder's model of a network
    OPERATIONS,
    Network,
    build,
    credit_lines,
    currencies,
    funding,
    holdings,
    operation,
    policy,
    policy_set,
    record,
)

from scopay.domain.rtgs import Order, Rtgs, Step
from scopay.sim.scenario import run_scenario


class WholeQueueRetry(Rtgs):
    """The RTGS as it was: a move or a new priority tries the debtor's whole queue."""

    def _retry_reordered(self, order: Order, normals_were_blocked: bool, now_us: int) -> Step:
        return self.release([order.debtor_account], now_us)


def withdraw(net: Network, pick: int) -> list[Step]:
    order = net.queued(pick)
    if order is None:
        return []
    withdrawn, step = net.rtgs.withdraw(order.uetr, net.now_us)
    assert withdrawn is order
    net.state[order.uetr] = "cancelled"
    return [step]


def run(net: Network, operations, from_rest: frozenset[str]) -> list[tuple]:
    """What each operation left: payment states, balances and the queues' order. Before an
    operation named in `from_rest`, every queue is tried whole (what settles is recorded)."""
    seen = []
    for name, *args in operations:
        if name in from_rest:
            record(net, [net.rtgs.release(list(net.rtgs.queues), net.now_us)])
        record(net, (withdraw if name == "cancel" else OPERATIONS[name])(net, *args))
        seen.append((name, dict(net.state),
                     {i: b.posted_minor for i, b in net.ledger.balances.items()},
                     {a: [o.uetr for o in q] for a, q in net.rtgs.queues.items() if q}))
    return seen


def assert_same_outcomes(baseline: type[Rtgs], codes, held, lines, funds, bypass, policies,
                         operations, from_rest: frozenset[str] = frozenset()) -> None:
    """The RTGS as it is and `baseline`, driven by the same operations, leave the same
    payment states, balances and queues after each (see run for `from_rest`)."""
    nets = []
    for kind in (Rtgs, baseline):
        net = build(codes, held, lines, funds, bypass)
        net.rtgs = kind(net.ledger, bypass_fifo_normal=bypass)
        for args in policies:
            record(net, policy(net, *args))
        nets.append(net)
    ours, theirs = (run(net, operations, from_rest) for net in nets)
    for (name, *after_ours), (_, *after_theirs) in zip(ours, theirs, strict=True):
        assert after_ours == after_theirs, f"differs after {name}"


# (currencies, holdings, credit lines, funding, bypass FIFO, policies, operations)
NETWORKS = st.tuples(currencies, holdings, credit_lines, funding, st.booleans(),
                     st.lists(policy_set, max_size=3),
                     st.lists(operation, min_size=10, max_size=40))


@settings(max_examples=150, deadline=None)
@given(NETWORKS)
def test_a_move_or_new_priority_settles_what_trying_the_whole_queue_settles(network):
    assert_same_outcomes(WholeQueueRetry, *network,
                         from_rest=frozenset({"move", "reprioritise"}))


def test_a_move_as_the_first_step_of_a_day_tries_every_queue():
    """A new business day starts the limits' positions afresh, so every queue may go: a move
    that is the day's first step tries them all, as any first step does."""
    scenario = run_scenario("""
        participant A accounts CNY
        participant B accounts CNY
        participant C accounts CNY
        fund A CNY 1000.00
        fund C CNY 10.00
        limit A -> B CNY 100.00
        pay P1 A -> B CNY 80.00 settled
        pay P2 A -> B CNY 30.00 queued
        pay Q1 C -> B CNY 50.00 queued
        pay Q2 C -> B CNY 60.00 queued
        """)
    next_day = 86_400 * 1_000_000
    step = scenario.rtgs.move("Q2", True, next_day)  # C's queue, the day's first step
    assert [order.uetr for order in step.settled] == ["P2"]  # A's limit starts afresh
    assert set(scenario.rtgs.orders) == {"Q1", "Q2"}


class FullCheck(Rtgs):
    """Every queued payment tried with the full check, none passed quickly."""

    pass_uncovered_quickly = False


@settings(max_examples=150, deadline=None)
@given(NETWORKS)
def test_passing_uncovered_payments_quickly_settles_what_the_full_check_settles(network):
    assert_same_outcomes(FullCheck, *network)
