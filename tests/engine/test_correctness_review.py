"""Correctness review of the engine, the RTGS and the store: each defect found has a test
(it failed before its fix); the property test compares a live engine with one recovered from
its store after random queue operations.

The network here has three CNY banks so that offsetting and limits have a third party:

    PBOCCNBJ  settlement agent   account 1 (issuance)
    ICBKCNBJ  bank A             account 11
    ABOCCNBJ  bank B             account 12
    BKCHCNBJ  bank C             account 13
"""

from __future__ import annotations

import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scopay.domain.account import Account, AccountKind
from scopay.domain.ledger import Transfer, TransferKind
from scopay.domain.participant import Participant, Role, Tier
from scopay.domain.payment import Party, Payment, PaymentStatus, Priority
from scopay.domain.rtgs import BUSINESS_DAY_US, PAYMENT_TRANSFER_PREFIX, AccountPolicy
from scopay.engine.engine import Engine
from scopay.engine.payments import PaymentRefused
from scopay.store.sqlite import SQLiteStore

A, B, C = "ICBKCNBJ", "ABOCCNBJ", "BKCHCNBJ"
BANKS = (A, B, C)
ACCOUNT = {A: 11, B: 12, C: 13}
ISSUANCE = 1
SECOND_US = 1_000_000
DAY_START_US = 20_000 * BUSINESS_DAY_US  # midnight UTC of some day
T0 = DAY_START_US + 3600 * SECOND_US  # 01:00 UTC


def build(path, funds: dict[str, int], credit_lines: dict[str, int] | None = None) -> Engine:
    """An engine over a new SQLite file with the three banks, funded as given at T0."""
    engine = Engine(SQLiteStore(path))
    at = T0 - 1000
    engine.admit_participants([
        Participant("PBOCCNBJ", "People's Bank of China", Role.SETTLEMENT_AGENT, "CN",
                    Tier.MEMBER, settlement_currency="CNY"),
        *(Participant(bic, bic, Role.DIRECT, "CN", Tier.MEMBER) for bic in BANKS),
    ], at)
    lines = credit_lines or {}
    engine.open_accounts([
        Account(ISSUANCE, "PBOCCNBJ", "CNY", AccountKind.ISSUANCE),
        *(Account(ACCOUNT[bic], bic, "CNY", credit_line_minor=lines.get(bic, 0))
          for bic in BANKS),
    ], at)
    fund(engine, funds, T0)
    return engine


def fund(engine: Engine, funds: dict[str, int], at: int) -> None:
    # Named by bank and time, not at random: a live and a recovered engine funded alike must
    # tell the same transfer ids in their camt.054 notices.
    transfers = [Transfer(f"fund-{bic}-{at}", ISSUANCE, ACCOUNT[bic], amount, "CNY")
                 for bic, amount in funds.items() if amount]
    if transfers:
        assert all(o.accepted for o in engine.submit(transfers, at))


def payment(debtor: str, creditor: str, amount_minor: int, **extra) -> Payment:
    return Payment(str(uuid.uuid4()), uuid.uuid4().hex[:12], "e2e", debtor, creditor,
                   Party("Ли Вэй"), Party("Али Валиев"), amount_minor, "CNY", **extra)


def send(engine: Engine, paid: Payment, at: int) -> PaymentStatus:
    (result,) = engine.submit_payments(paid.debtor_agent, [paid], at)
    return result.status


def status(engine: Engine, paid: Payment) -> PaymentStatus:
    return engine.payment(paid.uetr).status


def posted(engine: Engine, bic: str) -> int:
    return engine.balance(ACCOUNT[bic]).posted_minor


@pytest.fixture
def engines(tmp_path):
    """Open engines by name in tmp_path; every one opened is closed at teardown."""
    opened: list[Engine] = []

    def open_(name: str, funds=None, credit_lines=None) -> Engine:
        path = tmp_path / f"{name}.db"
        engine = (Engine(SQLiteStore(path)) if funds is None
                  else build(path, funds, credit_lines))
        opened.append(engine)
        return engine

    yield open_
    for engine in opened:
        engine.close()  # closing twice is harmless


# -- offsetting on entry ------------------------------------------------------------------


def test_offsetting_keeps_a_counter_payment_behind_a_more_urgent_one_waiting(engines):
    engine = engines("e", {A: 0, B: 2_000})
    stuck = payment(B, C, 100_000, priority=Priority.URGENT)  # B cannot cover it
    behind = payment(B, A, 5_000)  # normal, waits behind the urgent one
    assert send(engine, stuck, T0 + 1) == PaymentStatus.QUEUED
    assert send(engine, behind, T0 + 2) == PaymentStatus.QUEUED
    # A has nothing; its payment to B offsets against B's normal payment to A
    send(engine, payment(A, B, 4_000), T0 + 3)
    # B's normal payment may not go (and take B's liquidity) while B's urgent one waits
    assert status(engine, behind) == PaymentStatus.QUEUED
    assert posted(engine, B) == 2_000


def test_offsetting_keeps_the_urgent_reservation_from_normal_counter_payments(engines):
    engine = engines("e", {A: 1_000, B: 10_000})
    engine.set_account_policy(ACCOUNT[B], AccountPolicy(reserved_urgent_minor=10_000), T0 + 1)
    urgent = payment(B, A, 30_000, priority=Priority.URGENT)  # uncovered: 100.00 < 300.00
    normal = payment(B, A, 5_000)  # only the reservation is left: waits
    assert send(engine, urgent, T0 + 2) == PaymentStatus.QUEUED
    assert send(engine, normal, T0 + 3) == PaymentStatus.QUEUED
    # A pays B 260.00, which A covers only on the net with B's payments the other way
    send(engine, payment(A, B, 26_000), T0 + 4)
    # the urgent payment may offset (urgent uses everything, reservation included); the
    # normal one may not take B further below its urgent reservation of 100.00
    assert status(engine, urgent) == PaymentStatus.SETTLED
    assert status(engine, normal) == PaymentStatus.QUEUED
    assert posted(engine, B) == 10_000 + 26_000 - 30_000


# -- earliest time ----------------------------------------------------------------------------


def later_and_now() -> tuple[Payment, Payment]:
    """Two urgent payments of 10.00 from A to B: one active only in an hour, one now."""
    return (payment(A, B, 1_000, priority=Priority.URGENT, earliest_us=T0 + 3600 * SECOND_US),
            payment(A, B, 1_000, priority=Priority.URGENT))


def test_payment_not_yet_active_does_not_hold_back_a_covered_urgent_payment(engines):
    engine = engines("e", {A: 100_000})
    later, now = later_and_now()
    assert send(engine, later, T0 + 1) == PaymentStatus.QUEUED
    # A covers it a hundred times over, and nothing active waits ahead of it
    assert send(engine, now, T0 + 2) == PaymentStatus.SETTLED


def test_not_yet_active_payment_does_not_block_the_queue_on_release(engines):
    """The release path does the same with such a queue as the entry path."""
    engine = engines("e", {A: 0})
    later, now = later_and_now()
    assert send(engine, later, T0 + 1) == PaymentStatus.QUEUED
    assert send(engine, now, T0 + 2) == PaymentStatus.QUEUED
    fund(engine, {A: 1_000}, T0 + 3)
    assert status(engine, now) == PaymentStatus.SETTLED
    assert status(engine, later) == PaymentStatus.QUEUED


# -- queue management racing time ----------------------------------------------------------


DUE = T0 + 10 * SECOND_US  # when the normal payment of race_priority_change becomes active


def race_priority_change(engine: Engine) -> tuple[Payment, PaymentRefused]:
    """A's normal payment of 100.00 to B, its whole bilateral limit, waits for DUE; a change
    to urgent arrives in the step at DUE, which settles it first. The payment and the
    refusal of the change."""
    engine.set_account_policy(ACCOUNT[A], AccountPolicy(bilateral_limits={ACCOUNT[B]: 10_000}),
                              T0 + 1)
    normal = payment(A, B, 10_000, earliest_us=DUE)
    assert send(engine, normal, T0 + 2) == PaymentStatus.QUEUED
    with pytest.raises(PaymentRefused) as refused:
        engine.change_payment_priority(normal.uetr, Priority.URGENT, DUE)
    return normal, refused.value


def test_priority_change_arriving_as_the_payment_settles_leaves_its_priority_alone(engines):
    engine = engines("e", {A: 100_000})
    normal, refusal = race_priority_change(engine)
    assert refusal.status == PaymentStatus.SETTLED  # it settled, as normal, first
    assert engine.payment(normal.uetr).priority == Priority.NORMAL


def test_bilateral_limit_holds_after_restart_when_priority_change_raced_settlement(engines):
    engine = engines("e", {A: 100_000})
    race_priority_change(engine)
    over = payment(A, B, 1)
    engine.close()
    reopened = engines("e")
    # the limit of 100.00 towards B is used up today: one more normal minor unit waits
    assert send(reopened, over, DUE + 1) == PaymentStatus.QUEUED


# -- limit positions across a restart ---------------------------------------------------------


def limits_script(engine: Engine, restart) -> tuple[Engine, PaymentStatus]:
    """A pays B (no limits yet), then gets a bilateral limit towards B and a multilateral
    limit of 150.00; then A pays C 100.00. `restart(engine)` may reopen the engine."""
    send(engine, payment(A, B, 10_000), T0 + 1)
    engine.set_account_policy(ACCOUNT[A], AccountPolicy(
        bilateral_limits={ACCOUNT[B]: 1_000_000}, multilateral_limit_minor=15_000), T0 + 2)
    engine = restart(engine)
    return engine, send(engine, payment(A, C, 10_000), T0 + 3)


def live_and_restarted(engines, funds: dict[str, int], script):
    """`script(engine, restart)` run on an engine that stays up, then on one reopened from its
    store where the script says restart; both results, live first."""
    def reopen(engine: Engine) -> Engine:
        engine.close()
        return engines("recovered")

    return (script(engines("live", funds), lambda engine: engine),
            script(engines("recovered", funds), reopen))


def test_limit_positions_after_restart_equal_live_ones_when_a_policy_changed(engines):
    (live, live_status), (recovered, recovered_status) = live_and_restarted(
        engines, {A: 100_000}, limits_script)
    # A's payment to B now counts under its bilateral limit alone, so the multilateral
    # position holds only A -> C: 100.00 of 150.00, live and after a restart alike.
    assert recovered_status == live_status == PaymentStatus.SETTLED
    assert recovered.rtgs.multilateral_positions == live.rtgs.multilateral_positions


# -- credit lines and the business day ---------------------------------------------------------


def test_raised_credit_line_releases_the_payments_it_covers(engines):
    engine = engines("e", {A: 0})
    waiting = payment(A, B, 10_000)
    assert send(engine, waiting, T0 + 1) == PaymentStatus.QUEUED
    engine.set_credit_line(ACCOUNT[A], 20_000, T0 + 2)
    engine.tick(T0 + 3)
    assert status(engine, waiting) == PaymentStatus.SETTLED


def reserve_all_then_queue(engine: Engine, timeout_s: int = 3600) -> tuple[str, Payment]:
    """A reserves all its 100.00 for B; then its payment of 50.00 to B waits."""
    pending_id = f"hold-{uuid.uuid4().hex[:8]}"
    (held,) = engine.submit([Transfer(pending_id, ACCOUNT[A], ACCOUNT[B], 10_000, "CNY",
                                      TransferKind.PENDING, timeout_s=timeout_s)], T0 + 1)
    assert held.accepted
    waiting = payment(A, B, 5_000)
    assert send(engine, waiting, T0 + 2) == PaymentStatus.QUEUED
    return pending_id, waiting


def test_voided_reservation_releases_the_payments_it_covered(engines):
    engine = engines("e", {A: 10_000})
    pending_id, waiting = reserve_all_then_queue(engine)
    (voided,) = engine.submit([Transfer(f"void-{pending_id}", 0, 0, 0, "",
                                        TransferKind.VOID_PENDING, pending_id)], T0 + 3)
    assert voided.accepted
    assert status(engine, waiting) == PaymentStatus.SETTLED


def test_expired_reservation_releases_the_payments_it_covered(engines):
    engine = engines("e", {A: 10_000})
    _, waiting = reserve_all_then_queue(engine, timeout_s=5)
    engine.tick(T0 + 10 * SECOND_US)
    assert status(engine, waiting) == PaymentStatus.SETTLED


def day_boundary_script(engine: Engine, restart) -> tuple[Engine, PaymentStatus]:
    """A queued payment its debtor covers (after a credit line), then the next day."""
    waiting = payment(A, B, 10_000)
    send(engine, waiting, T0 + 1)
    engine.set_credit_line(ACCOUNT[A], 20_000, T0 + 2)
    engine = restart(engine)
    engine.tick(DAY_START_US + BUSINESS_DAY_US + 1)
    return engine, status(engine, waiting)


def test_next_business_day_tries_the_queues_after_a_restart_as_it_does_live(engines):
    (_, live_status), (_, recovered_status) = live_and_restarted(
        engines, {A: 0}, day_boundary_script)
    assert live_status == PaymentStatus.SETTLED
    assert recovered_status == live_status


# -- live engine against a recovered one ----------------------------------------------------

PRIORITIES = st.sampled_from(list(Priority))
OPERATIONS = st.one_of(
    st.tuples(st.just("pay"), st.integers(0, 2), st.integers(1, 2), st.integers(1, 60_000),
              PRIORITIES, st.sampled_from([None, 5, 40]), st.sampled_from([None, 20, 90])),
    st.tuples(st.just("cancel"), st.integers(0, 50)),
    st.tuples(st.just("priority"), st.integers(0, 50), PRIORITIES),
    st.tuples(st.just("move"), st.integers(0, 50), st.booleans()),
    st.tuples(st.just("times"), st.integers(0, 50), st.sampled_from([None, 1, 30])),
    st.tuples(st.just("fund"), st.integers(0, 2), st.integers(1, 40_000)),
    st.tuples(st.just("line"), st.integers(0, 2), st.integers(0, 30_000)),
    st.tuples(st.just("gridlock")),
    st.tuples(st.just("tick"), st.sampled_from([1, 7, 30, 6 * 3600])),
    st.tuples(st.just("restart")),
)


def policy_of(bic: str) -> st.SearchStrategy[AccountPolicy | None]:
    """No policy, or reservations and limits towards the other banks."""
    others = [ACCOUNT[c] for c in BANKS if c != bic]
    return st.one_of(st.none(), st.builds(
        lambda urgent, high, bilateral, multilateral: AccountPolicy(
            urgent, high, {a: v for a, v in zip(others, bilateral, strict=True)
                           if v is not None}, multilateral),
        st.sampled_from([0, 5_000]), st.sampled_from([0, 5_000]),
        st.lists(st.sampled_from([None, 0, 20_000]), min_size=2, max_size=2),
        st.sampled_from([None, 10_000, 50_000])))


POLICIES = st.fixed_dictionaries({bic: policy_of(bic) for bic in BANKS})


def snapshot(engine: Engine) -> dict:
    """What must be the same in a live engine and a recovered one."""
    rtgs = engine.rtgs
    return {
        "queues": {account: [(o.uetr, o.priority) for o in queue]
                   for account, queue in rtgs.queues.items() if queue},
        "balances": [(b.account_id, b.posted_minor, b.debits_pending_minor, b.floor_minor)
                     for b in engine.balances()],
        "payments": {uetr: (r.priority, r.latest_us, r.reject_by_us, tuple(r.history))
                     for uetr, r in engine.payments.items()},
        "positions": {k: v for k, v in rtgs.positions.items() if v},
        "multilateral": {k: v for k, v in rtgs.multilateral_positions.items() if v},
        "mailboxes": {bic: [(n.kind, n.uetr, n.status, n.reason, n.created_us)
                            for _, n, _ in engine.store.mailbox(bic, 0, 10_000)]
                      for bic in BANKS},
    }


def apply(engine: Engine, operation: tuple, now: int, made: list[Payment]) -> object:
    """Apply one operation; return what it answered (or the refusal) to compare."""
    kind = operation[0]
    queued = sorted(engine.rtgs.orders)
    try:
        if kind == "pay":
            assert made[-1].uetr not in engine.payments, "made for this step"
            return send(engine, made[-1], now)
        if kind in ("cancel", "priority", "move", "times") and not queued:
            return None
        if kind == "cancel":
            return engine.cancel_payment(queued[operation[1] % len(queued)], now).status
        if kind == "priority":
            uetr = queued[operation[1] % len(queued)]
            if engine.rtgs.orders[uetr].earliest_us is not None:
                return None  # its own defect (test above): a race with its earliest time
            return engine.change_payment_priority(uetr, operation[2], now).status
        if kind == "move":
            return engine.move_payment(queued[operation[1] % len(queued)], operation[2],
                                       now).status
        if kind == "times":
            reject_by = None if operation[2] is None else now + operation[2] * SECOND_US
            return engine.set_payment_times(queued[operation[1] % len(queued)], None,
                                             reject_by, now).status
        if kind == "fund":
            return fund(engine, {BANKS[operation[1]]: operation[2]}, now)
        if kind == "line":
            return engine.set_credit_line(ACCOUNT[BANKS[operation[1]]], operation[2], now)
        if kind == "gridlock":
            return engine.resolve_gridlock(now)
        return engine.tick(now)
    except ValueError as refused:  # CommandRefused, PaymentRefused
        return type(refused).__name__


def check_engine(engine: Engine) -> None:
    assert engine.reconcile().ok
    settled = {u for u, r in engine.payments.items() if r.status == PaymentStatus.SETTLED}
    journal_ids = [e.transfer.id for _, e in engine.store.journal()]
    paid_ids = [i[len(PAYMENT_TRANSFER_PREFIX):] for i in journal_ids
                if i.startswith(PAYMENT_TRANSFER_PREFIX)]
    assert len(paid_ids) == len(set(paid_ids)), "a payment settled twice"
    assert set(paid_ids) == settled
    queued = {u for u, r in engine.payments.items() if r.status == PaymentStatus.QUEUED}
    assert queued == set(engine.rtgs.orders)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies=POLICIES, operations=st.lists(OPERATIONS, min_size=1, max_size=24))
def test_recovered_engine_behaves_as_the_live_one_after_random_operations(
        tmp_path_factory, policies, operations):
    folder = tmp_path_factory.mktemp("live-vs-recovered")
    funds = {A: 30_000, B: 10_000, C: 0}
    live = build(folder / "live.db", funds, {C: 10_000})
    other = build(folder / "recovered.db", funds, {C: 10_000})
    try:
        now = T0 + 1
        for bic, policy in policies.items():
            if policy is not None:
                live.set_account_policy(ACCOUNT[bic], policy, now)
                other.set_account_policy(ACCOUNT[bic], policy, now)
        made: list[Payment] = []
        for operation in operations:
            now += 1_000
            if operation[0] == "restart":
                other.close()
                other = Engine(SQLiteStore(folder / "recovered.db"))
                continue
            if operation[0] == "tick":
                now += operation[1] * SECOND_US
            if operation[0] == "pay":
                _, debtor, shift, amount, priority, earliest_s, reject_s = operation
                made.append(payment(
                    BANKS[debtor], BANKS[(debtor + shift) % 3], amount, priority=priority,
                    earliest_us=None if earliest_s is None else now + earliest_s * SECOND_US,
                    reject_by_us=None if reject_s is None else now + reject_s * SECOND_US))
            answer_live = apply(live, operation, now, made)
            answer_other = apply(other, operation, now, made)
            assert answer_live == answer_other, operation
        now += 1_000
        other.close()
        other = Engine(SQLiteStore(folder / "recovered.db"))
        live.tick(now)
        other.tick(now)
        assert snapshot(other) == snapshot(live)
        check_engine(live)
        check_engine(other)
    finally:
        live.close()
        other.close()
