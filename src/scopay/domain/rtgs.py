"""Real-time gross settlement: settle at once when covered, else queue; liquidity saving.

A payment order settles at once when its debtor account covers it and nothing of higher
priority (or, for urgent and high, of the same priority) waits ahead of it for the same
debtor. Otherwise it waits in the debtor's queue: FIFO per priority, urgent before high before
normal. Normal payments may bypass FIFO (a later normal payment that is covered settles while
an earlier, larger one waits), as the operator configures.

Liquidity saving:
- bilateral offsetting: a payment that is not covered alone settles together with queued
  payments coming the other way, when the pair (or more) is covered on the net;
- receipt-reactive release: when money arrives on an account, its queue is tried again,
  each payment alone or, not covered alone, offset bilaterally by the same rules as on entry;
- multilateral gridlock resolution (domain/gridlock.py), on demand and at intervals; it
  keeps the limits too: payments that would end a debtor over a limit are left out and the
  resolution chooses again (a few rounds at most; failing that, nothing settles).

Limits and reservations apply to what a payment may use: urgent payments use all available
liquidity; high payments leave the urgent reservation alone; normal payments leave both
reservations alone and stay within the debtor's bilateral and multilateral limits. Limits
bound the net sent within one business day (a UTC day): positions start from zero each day,
and payments a limit held back are tried again.

Everything here is pure: balances come from the Ledger, settlement goes through it, time is an
argument, and each step returns what happened for the engine to make durable.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from heapq import heapify, heappop, heappush

from scopay.domain.account import Account, AccountKind
from scopay.domain.gridlock import QueuedPayment, resolve_gridlock
from scopay.domain.ledger import ExecuteResult, Ledger, Transfer, TransferKind
from scopay.domain.payment import DAY_US, Priority, positional_constructor
from scopay.domain.rejection import Rejection

PAYMENT_TRANSFER_PREFIX = "pay/"  # ledger ids of settled payments: "pay/<uetr>"
QUEUE_ORDERS_MAX = 1_000_000  # queued payments in all
# queued payments of one holder's accounts together (a bank's in every currency, its
# indirect participants' with them): no bank fills the queue for all (a tenth of it)
QUEUE_ORDERS_PER_HOLDER_MAX = QUEUE_ORDERS_MAX // 10
OFFSET_CANDIDATES_MAX = 64  # queued counter-payments weighed when offsetting one payment
RANK = {Priority.URGENT: 0, Priority.HIGH: 1, Priority.NORMAL: 2}
BUSINESS_DAY_US = DAY_US  # limit positions count one UTC day
LIMIT_ROUNDS_MAX = 16  # resolutions tried, each leaving out payments over a limit
LIMIT_ROUNDS_ONE_BY_ONE = 3  # rounds that leave out one payment a limit, before all its excess
_REJECT_BY, _EARLIEST, _LATEST = 0, 1, 2  # kinds of timed events
_NO_FLOOR = -(2**63)  # an issuance account, for the resolution's arithmetic
_new_transfer = positional_constructor(Transfer)  # a Transfer without its frozen __init__'s cost


class WaitReason(StrEnum):
    """Why a payment waits in the queue (ISO 20022 pending reasons map from these)."""

    EARLIEST_TIME = "earliest_time_not_reached"
    AHEAD_IN_QUEUE = "higher_or_earlier_payment_waiting"
    INSUFFICIENT_LIQUIDITY = "insufficient_liquidity"
    BILATERAL_LIMIT = "bilateral_limit"
    MULTILATERAL_LIMIT = "multilateral_limit"


@dataclass(slots=True)
class Order:
    """A payment as settlement sees it: who pays whom, how much, how urgently, by when."""

    uetr: str
    debtor_account: int
    creditor_account: int
    amount_minor: int
    currency: str
    priority: Priority
    sequence: int = 0
    earliest_us: int | None = None
    latest_us: int | None = None
    reject_by_us: int | None = None
    latest_warned_us: int | None = None  # the latest time its sender was warned of
    # the payment's agents (BICs): an indirect one settles on its sponsor's account, so its
    # suspension shows on no account of its own (Rtgs.suspended_agents)
    debtor_agent: str | None = None
    creditor_agent: str | None = None

    @property
    def rank(self) -> int:
        return RANK[self.priority]

    @property
    def transfer_id(self) -> str:
        return PAYMENT_TRANSFER_PREFIX + self.uetr


@dataclass(slots=True)
class AccountPolicy:
    reserved_urgent_minor: int = 0
    reserved_high_minor: int = 0
    bilateral_limits: dict[int, int] = field(default_factory=dict)  # creditor account -> limit
    multilateral_limit_minor: int | None = None


def check_policy(account: Account, policy: AccountPolicy,
                 accounts: Mapping[int, Account]) -> str | None:
    """What is wrong with setting the policy on the account, as text, or None: a policy is a
    settlement account's, and its bilateral limits name other settlement accounts of its
    currency (one that does not exist is told alike: no existence leaks)."""
    if account.kind != AccountKind.SETTLEMENT:
        return "policies are set on settlement accounts only"
    for creditor_id in policy.bilateral_limits:
        creditor = accounts.get(creditor_id)
        if (creditor is None or creditor_id == account.id or creditor.currency != account.currency
                or creditor.kind != AccountKind.SETTLEMENT):
            return (f"bilateral_limits: {creditor_id} is no other settlement account in "
                    f"{account.currency}")
    return None


@dataclass
class Step:
    """What one RTGS step did, in order: for the engine to record and make durable."""

    settled: list[Order] = field(default_factory=list)
    queued: list[tuple[Order, WaitReason]] = field(default_factory=list)
    rejected: list[tuple[Order, Rejection]] = field(default_factory=list)
    late: list[Order] = field(default_factory=list)  # still queued at their latest time
    ledger: ExecuteResult = field(default_factory=lambda: ExecuteResult([], [], []))

    def absorb(self, result: ExecuteResult) -> None:
        self.ledger.outcomes.extend(result.outcomes)
        self.ledger.journal.extend(result.journal)
        self.ledger.rejections.extend(result.rejections)


def _track(order: Order, positions: dict[tuple[int, int], int]) -> None:
    """Count a settled payment in the limits' net positions given: the debtor's normal
    payments out, every payment in."""
    debtor, creditor, amount = order.debtor_account, order.creditor_account, order.amount_minor
    if order.rank == 2:
        positions[(debtor, creditor)] = positions.get((debtor, creditor), 0) + amount
    positions[(creditor, debtor)] = positions.get((creditor, debtor), 0) - amount


class Rtgs:
    """Queues, limits and liquidity saving over one Ledger (every currency)."""

    # Pass an uncovered normal payment with nothing to offset against without the full
    # check (_settle_from_queue); the same outcome, told apart only by its cost. Off in the
    # test that compares the two and in bench/queue_moves.py's baseline.
    pass_uncovered_quickly = True

    def __init__(self, ledger: Ledger, *, bypass_fifo_normal: bool = True,
                 respect_priority_in_resolution: bool = True) -> None:
        self.ledger = ledger
        self.bypass_fifo_normal = bypass_fifo_normal
        self.respect_priority_in_resolution = respect_priority_in_resolution
        self.orders: dict[str, Order] = {}  # queued, by UETR
        self.queues: dict[int, list[Order]] = {}  # debtor account -> orders by (rank, sequence)
        # account -> every account of its holder (set_account_holders), for the queue's cap
        self._holder_accounts: dict[int, tuple[int, ...]] = {}
        self.policies: dict[int, AccountPolicy] = {}
        # (debtor, creditor) -> net sent today, counting the debtor's normal payments out and
        # all payments in; a multilateral position is the sum over the creditors without a
        # bilateral limit under the policy as it stands (so a policy changed during the day
        # counts the same live and after a restart).
        self.positions: dict[tuple[int, int], int] = {}
        self._counterparties: dict[int, set[int]] = {}  # account -> accounts in its positions
        self.business_day: int | None = None  # the day the positions count, in whole days
        # (due time, kind, UETR) of queued orders' reject-by and earliest times, soonest
        # first: time passing costs the orders that fall due, not the whole queue. Entries
        # of orders that left or whose times changed are skipped when they come up.
        self._timed: list[tuple[int, int, str]] = []
        self._next_sequence = 1
        self._front_sequence = 0
        # Agents whose participant is suspended: their orders are held, as those of blocked
        # accounts (an indirect agent's account is its sponsor's, which stays open).
        self.suspended_agents: set[str] = set()

    # -- entering ---------------------------------------------------------------------------

    def submit(self, order: Order, now_us: int) -> Step:
        """Settle the new order at once if it may, else offset it, else queue it."""
        assert order.uetr not in self.orders, "an order enters the queue once"
        step = Step()
        self._enter_day(now_us, step)
        if order.reject_by_us is not None and now_us >= order.reject_by_us:
            step.rejected.append((order, Rejection.REJECT_TIME_PASSED))
            return step
        if order.debtor_account == order.creditor_account:  # (a sponsor paying its indirect)
            step.rejected.append((order, Rejection.ACCOUNTS_MUST_BE_DIFFERENT))
            return step  # it could never settle: refused now, never queued
        blocked = self._blocked_account(order)
        if blocked is not None:  # a new order for a blocked account is refused, not held
            step.rejected.append((order, blocked))
            return step
        order.sequence = self._take_sequence()
        wait = self._wait_reason(order, now_us, entering=True)
        if wait is None:
            self._settle_alone(order, now_us, step)
        elif wait is WaitReason.INSUFFICIENT_LIQUIDITY and self._offset(order, now_us, step):
            pass
        elif any(rejected is order for rejected, _ in step.rejected):
            pass  # an offset the ledger refused for the order itself (say for a blocked
            # creditor account) rejected it: it does not wait as well
        elif self._queue_full(order):  # only an order that would wait: one that settles does
            step.rejected.append((order, Rejection.QUEUE_FULL))
        else:
            self._enqueue(order)
            step.queued.append((order, wait))
        self._release({o.creditor_account for o in step.settled}, now_us, step)
        return step

    # -- queue management --------------------------------------------------------------------

    def set_account_holders(self, holders: Mapping[int, str]) -> None:
        """Who holds each account (its owner's BIC): a holder's queued payments in all its
        accounts count together against QUEUE_ORDERS_PER_HOLDER_MAX."""
        by_holder: dict[str, list[int]] = {}
        for account_id, holder in holders.items():
            by_holder.setdefault(holder, []).append(account_id)
        self._holder_accounts = {account_id: tuple(by_holder[holder])
                                 for account_id, holder in holders.items()}

    def cancel(self, uetr: str) -> Order | None:
        order = self.orders.pop(uetr, None)
        if order is not None:
            # found by its place, (rank, sequence), not by comparing it with each order ahead
            # of it: a long queue cancelled from the back cost its length for each
            queue = self.queues[order.debtor_account]
            at = bisect_left(queue, (order.rank, order.sequence),
                             key=lambda o: (o.rank, o.sequence))
            if at < len(queue) and queue[at] is order:
                del queue[at]
            else:  # (a queue is kept in that order: never)
                queue.remove(order)
        return order

    def withdraw(self, uetr: str, now_us: int) -> tuple[Order | None, Step]:
        """Take a queued order out for good (a cancellation): the payments it held back in
        its debtor's queue (an urgent or high one not covered holds back those after it)
        are tried at once."""
        order = self.cancel(uetr)
        if order is None:
            return order, Step()
        return order, self.release([self.queue_it_held_back(order)], now_us)

    def queue_it_held_back(self, order: Order) -> int:
        """The account whose queue to try once this order has left the queue. An urgent or
        high one (or any, where normal payments keep FIFO) held back its debtor's later
        payments: the debtor's. A normal one kept nothing of its debtor's waiting, but,
        uncovered at the head of the payments its creditor may offset against, it kept those
        back: the creditor's (not the debtor's, which may be long and has nothing new)."""
        if order.rank < RANK[Priority.NORMAL] or not self.bypass_fifo_normal:
            return order.debtor_account
        return order.creditor_account

    def change_priority(self, uetr: str, priority: Priority, now_us: int) -> Step:
        def reprioritise(order: Order) -> None:
            order.priority = priority

        return self._reorder(uetr, reprioritise, now_us)

    def move(self, uetr: str, to_front: bool, now_us: int) -> Step:
        """Put a queued payment first (or last) among those of its debtor and priority."""
        def place(order: Order) -> None:
            if to_front:
                self._front_sequence -= 1
                order.sequence = self._front_sequence
            else:
                order.sequence = self._take_sequence()

        return self._reorder(uetr, place, now_us)

    def _reorder(self, uetr: str, change: Callable[[Order], None], now_us: int) -> Step:
        """Take a queued order out, `change` its place or priority, queue it again, and try
        what that may let settle (_retry_reordered)."""
        order = self.orders[uetr]
        blocked = self._normals_blocked(order.debtor_account, now_us)
        self.cancel(uetr)
        change(order)
        self._enqueue(order)
        return self._retry_reordered(order, blocked, now_us)

    def _retry_reordered(self, order: Order, normals_were_blocked: bool, now_us: int) -> Step:
        """Try what a new place or priority of a queued order may let settle, and no more.
        Before the change its debtor's queue stood settled as far as it could go (every step
        that adds liquidity or frees a limit tries the queues it touches), and no liquidity
        came: so only the urgent and high payments' order, and whether they still hold the
        normal ones back, can have changed (a normal one's own place matters to none: each
        settles when covered, whatever its place). One exception: an offset one side sees
        and the other does not (a payment entering is tried from its own side only, not at
        all when a limit holds it, and offsetting takes the creditor's payments back from
        the front of its queue); a move does not look for it: it waits for a change to the
        other side's queue or a gridlock resolution that can settle it. The urgent and high
        payments are tried in their new order (they stop at the first not covered); the
        normal ones all again only if they were held back and no longer are. Where normal
        payments keep FIFO the whole queue is tried: that stops at the first not covered
        anyway. A queue of 100,000 normal payments cost 0.15 s a move when tried whole. (On
        a new business day every queue is tried, as after any step.)"""
        debtor, step = order.debtor_account, Step()
        new_day = self._start_day(now_us // BUSINESS_DAY_US)
        if new_day or not self.bypass_fifo_normal:
            self._release(set(self.queues) if new_day else {debtor}, now_us, step)
            return step
        queue = self.queues.get(debtor, [])
        first = len(step.settled)
        self._settle_from_queue(debtor, now_us, step, queue[:self._normals_start(queue)])
        if normals_were_blocked and not self._normals_blocked(debtor, now_us):
            self._settle_from_queue(debtor, now_us, step)
        # what settled paid its creditors (and, offset, this debtor): their queues next, in
        # the order trying the debtor's queue whole takes them (the last paid first)
        self._cascade([o.creditor_account for o in step.settled[first:]], now_us, step)
        return step

    @staticmethod
    def _normals_start(queue: list[Order]) -> int:
        """Where a queue's normal payments begin (it is sorted by rank, then sequence)."""
        return bisect_left(queue, RANK[Priority.NORMAL], key=lambda o: o.rank)

    def _normals_blocked(self, account: int, now_us: int) -> bool:
        """Does an urgent or high payment hold the account's normal ones back? One that is
        active (its earliest time reached, not held) and still queued: queues are tried
        after each change, so it is not covered."""
        queue = self.queues.get(account, [])
        holding = self._holding()
        return any((o.earliest_us is None or now_us >= o.earliest_us)
                   and not (holding and self._held(o))
                   for o in queue[:self._normals_start(queue)])

    def set_times(self, uetr: str, latest_us: int | None, reject_by_us: int | None) -> None:
        order = self.orders[uetr]
        order.latest_us, order.reject_by_us = latest_us, reject_by_us
        self._schedule(order)

    def set_policy(self, account_id: int, policy: AccountPolicy, now_us: int) -> Step:
        self.policies[account_id] = policy
        return self.release([account_id], now_us)

    # -- time and liquidity ---------------------------------------------------------------

    def tick(self, now_us: int) -> Step:
        """Reject what passed its reject-by time; try what reached its earliest time; name
        what is still queued at its latest time (its sender is warned); on a new business
        day, start the limits' positions afresh and try every queue."""
        step = Step()
        due: set[int] = set()
        if self._start_day(now_us // BUSINESS_DAY_US):
            due.update(self.queues)
        timed = self._timed
        while timed and timed[0][0] <= now_us:
            at_us, kind, uetr = heappop(timed)
            order = self.orders.get(uetr)
            if order is None:
                continue
            if kind == _REJECT_BY and order.reject_by_us == at_us:
                self.cancel(uetr)
                step.rejected.append((order, Rejection.REJECT_TIME_PASSED))
                due.add(order.debtor_account)  # what it held back may go now
            elif kind == _EARLIEST and order.earliest_us == at_us:
                due.add(order.debtor_account)
            elif (kind == _LATEST and order.latest_us == at_us
                  and order.latest_warned_us != at_us):  # once, however often scheduled
                order.latest_warned_us = at_us
                step.late.append(order)
        self._release({a for a in due if a in self.queues}, now_us, step)
        # warned only if still queued: one rejected or settled in this step is told that
        step.late = [order for order in step.late if self.orders.get(order.uetr) is order]
        return step

    def release(self, accounts: Iterable[int], now_us: int) -> Step:
        """Try the queues of accounts whose liquidity (or limits) changed."""
        step = Step()
        self._enter_day(now_us, step)
        self._release(set(accounts), now_us, step)
        return step

    def resolve(self, now_us: int, currency: str | None = None) -> Step:
        """Multilateral gridlock resolution over every queued payment (of one currency)."""
        step = Step()
        self._enter_day(now_us, step)
        currencies = {o.currency for o in self.orders.values()} if currency is None else {currency}
        for code in sorted(currencies):
            self._resolve_currency(code, now_us, step)
        return step

    # -- deciding ---------------------------------------------------------------------------

    def _wait_reason(self, order: Order, now_us: int, entering: bool) -> WaitReason | None:
        if order.earliest_us is not None and now_us < order.earliest_us:
            return WaitReason.EARLIEST_TIME
        if entering and self._blocked_by_queue(order, now_us):
            return WaitReason.AHEAD_IN_QUEUE
        return self._cover_reason(order, order.amount_minor)

    def _blocked_by_queue(self, order: Order, now_us: int) -> bool:
        """Does an active payment of the debtor wait that this one may not pass? One whose
        earliest time has not come neither settles nor blocks (as on release)."""
        rank = order.rank
        # A normal payment that may bypass FIFO is held back only by an urgent or high one,
        # all of which come first in the queue: the normal ones after them need no look (a
        # bank's long normal queue would otherwise be walked for each of its new payments).
        last_rank = rank - 1 if rank == RANK[Priority.NORMAL] and self.bypass_fifo_normal \
            else rank
        holding = self._holding()
        for waiting in self.queues.get(order.debtor_account, ()):
            if waiting.rank > last_rank:
                break
            if (waiting.earliest_us is not None and now_us < waiting.earliest_us
                    or holding and self._held(waiting)):
                continue
            if waiting.rank < rank or rank < 2 or not self.bypass_fifo_normal:
                return True
        return False

    def _queue_full(self, order: Order) -> bool:
        if len(self.orders) >= QUEUE_ORDERS_MAX:
            return True
        accounts = self._holder_accounts.get(order.debtor_account, (order.debtor_account,))
        return sum(len(self.queues.get(a, ())) for a in accounts) >= QUEUE_ORDERS_PER_HOLDER_MAX

    def _blocked_account(self, order: Order) -> Rejection | None:
        return self.movement_refusal(order.debtor_account, order.creditor_account,
                                     order.debtor_agent, order.creditor_agent)

    def movement_refusal(self, debit_account: int, credit_account: int,
                         debit_agent: str | None, credit_agent: str | None
                         ) -> Rejection | None:
        """Why money may not move now between these accounts for these agents (a blocked
        account, or a suspended agent: an indirect one's account is its sponsor's, open),
        the debit side first; None when it may. Payments and their returns alike. (Hot:
        asked of every queued order looked at, so the usual case, nothing blocked or
        suspended, costs two lookups.)"""
        blocked, suspended = self.ledger.blocked_accounts, self.suspended_agents
        if not blocked and not suspended:
            return None
        if debit_account in blocked or debit_agent in suspended:
            return Rejection.DEBIT_ACCOUNT_BLOCKED
        if credit_account in blocked or credit_agent in suspended:
            return Rejection.CREDIT_ACCOUNT_BLOCKED
        return None

    def _holding(self) -> bool:
        """Is any account blocked or any agent suspended (else no order is held)?"""
        return bool(self.ledger.blocked_accounts or self.suspended_agents)

    def _held(self, order: Order) -> bool:
        """A queued order of a blocked account or a suspended agent, either side: it waits,
        neither tried nor refused, until the account is unblocked, or its sender cancels it
        or its reject-by time passes. (New orders for a blocked account are refused.)"""
        return self._blocked_account(order) is not None

    def queues_involving(self, accounts: set[int], agent: str) -> set[int]:
        """The queues a suspension or a reinstatement may change: those holding an order of
        these accounts or this agent, either side, and those of the creditors their orders
        go to (whose payments back may now offset against an order no longer held behind
        a held one, or held itself). Empty when no queued order involves them."""
        touched = {order.debtor_account for order in self.orders.values()
                   if order.debtor_account in accounts or order.creditor_account in accounts
                   or agent in (order.debtor_agent, order.creditor_agent)}
        creditors = {order.creditor_account for account in touched
                     for order in self.queues.get(account, ())}
        return touched | (creditors & self.queues.keys())

    def _cover_reason(self, order: Order, outflow_minor: int) -> WaitReason | None:
        """Is `outflow_minor` more leaving the debtor covered for an order of this rank?"""
        balance = self.ledger.balances.get(order.debtor_account)
        if balance is None:
            return None  # the ledger refuses it with the precise reason
        policy = self.policies.get(order.debtor_account)
        rank = order.rank
        reserved = 0
        if policy is not None and rank >= 1:
            reserved = policy.reserved_urgent_minor
            if rank == 2:
                reserved += policy.reserved_high_minor
        floor = balance.floor_minor
        if floor is not None and balance.available_minor - reserved - outflow_minor < floor:
            return WaitReason.INSUFFICIENT_LIQUIDITY
        if rank == 2 and policy is not None and outflow_minor > 0:
            return self._limit_reason(order, outflow_minor)
        return None

    def _limit_reason(self, order: Order, outflow_minor: int) -> WaitReason | None:
        found = self._limit_on(order.debtor_account, order.creditor_account)
        if found is None:
            return None
        limit, position, bilateral = found
        if position + outflow_minor <= limit:
            return None
        return WaitReason.BILATERAL_LIMIT if bilateral else WaitReason.MULTILATERAL_LIMIT

    def _limit_on(self, debtor: int, creditor: int) -> tuple[int, int, bool] | None:
        """The limit a normal payment from debtor to creditor counts against, the position
        it counts in as it stands, and whether that limit is bilateral (else multilateral);
        None when the debtor's policy sets neither."""
        policy = self.policies.get(debtor)
        if policy is None:
            return None
        limit = policy.bilateral_limits.get(creditor)
        if limit is not None:
            return limit, self.positions.get((debtor, creditor), 0), True
        if policy.multilateral_limit_minor is not None:
            return policy.multilateral_limit_minor, self.multilateral_position(debtor), False
        return None

    def _multilateral(self, moves: Mapping[tuple[int, int], int]) -> dict[int, int]:
        """Of changes to bilateral positions ((account, counterparty) -> amount), what each
        account's multilateral position takes: those towards counterparties its policy sets
        no bilateral limit for."""
        totals: dict[int, int] = {}
        for (account, other), amount in moves.items():
            policy = self.policies.get(account)
            if policy is None or other not in policy.bilateral_limits:
                totals[account] = totals.get(account, 0) + amount
        return totals

    # -- settling ---------------------------------------------------------------------------

    def _settle_alone(self, order: Order, now_us: int, step: Step) -> bool:
        transfer = _new_transfer(  # a payment that settles at once comes this way
            id=order.transfer_id, debit_account_id=order.debtor_account,
            credit_account_id=order.creditor_account, amount_minor=order.amount_minor,
            currency=order.currency, kind=TransferKind.POSTED, pending_id=None, timeout_s=0,
            linked=False)
        result = self.ledger.execute([transfer], now_us, remember_refusals=False)
        return self._record(result, [order], step)

    def _settle_together(self, orders: list[Order], now_us: int, step: Step) -> bool:
        transfers = [Transfer(o.transfer_id, o.debtor_account, o.creditor_account,
                              o.amount_minor, o.currency, linked=n < len(orders) - 1)
                     for n, o in enumerate(orders)]
        result = self.ledger.execute_simultaneous(transfers, now_us, remember_refusals=False)
        return self._record(result, orders, step)

    def _record(self, result: ExecuteResult, orders: list[Order], step: Step) -> bool:
        step.absorb(result)
        if result.journal:
            for order in orders:
                self.cancel(order.uetr)  # no-op for a payment that never queued
                self._track_positions(order)
                step.settled.append(order)
            return True
        for order, outcome in zip(orders, result.outcomes, strict=True):
            if outcome.rejection is not Rejection.LINKED_EVENT_FAILED:
                self.cancel(order.uetr)
                step.rejected.append((order, outcome.rejection))
        return False

    def multilateral_position(self, account: int,
                              positions: dict[tuple[int, int], int] | None = None) -> int:
        """Net sent to the creditors without a bilateral limit in the account's policy now."""
        positions = self.positions if positions is None else positions
        policy = self.policies.get(account)
        bilateral = policy.bilateral_limits if policy is not None else {}
        return sum(positions.get((account, other), 0)
                   for other in self._counterparties.get(account, ()) if other not in bilateral)

    @property
    def multilateral_positions(self) -> dict[int, int]:
        """Every account's multilateral position now (for inspection and tests)."""
        return {account: self.multilateral_position(account) for account in self._counterparties}

    def _track_positions(self, order: Order) -> None:
        _track(order, self.positions)
        debtor, creditor = order.debtor_account, order.creditor_account
        self._counterparties.setdefault(debtor, set()).add(creditor)
        self._counterparties.setdefault(creditor, set()).add(debtor)

    def _offset(self, order: Order, now_us: int, step: Step,
                against: list[Order] | None = None) -> bool:
        """Settle the order with queued payments the other way when the net is covered:
        with as many of them, in the creditor's queue order, as the creditor covers
        (`against`: the creditor's counter-payments, when already found)."""
        if against is None:
            against = self._counter_payments(order, now_us)
        if not against or not self._debtor_covers_offset(order, against):
            return False  # the debtor lacks even with every counter-payment
        count = self._counter_payments_covered(order, against)
        if count == 0 or not self._debtor_covers_offset(order, against[:count]):
            return False  # with only those the creditor covers, the debtor lacks
        return self._settle_together([order, *against[:count]], now_us, step)

    def _debtor_covers_offset(self, order: Order, against: list[Order]) -> bool:
        incoming = sum(o.amount_minor for o in against)
        return self._cover_reason(order, order.amount_minor - incoming) is None

    def _counter_payments(self, order: Order, now_us: int) -> list[Order]:
        """The creditor's active queued payments to the order's debtor that its queue lets
        go: none behind an active payment to another that it may not pass (an urgent or high
        one, or any when normal payments keep FIFO). In queue order, the first
        OFFSET_CANDIDATES_MAX."""
        found: list[Order] = []
        holding = self._holding()
        for waiting in self.queues.get(order.creditor_account, ()):
            if (waiting.earliest_us is not None and now_us < waiting.earliest_us
                    or holding and self._held(waiting)):
                continue  # not yet active, or held: neither settles nor blocks
            if (waiting.creditor_account == order.debtor_account
                    and waiting.currency == order.currency):
                found.append(waiting)
                if len(found) == OFFSET_CANDIDATES_MAX:
                    break
            elif waiting.rank < 2 or not self.bypass_fifo_normal:
                break
        return found

    def _counter_payments_covered(self, order: Order, against: list[Order]) -> int:
        """How many of the counter-payments, from the first, the creditor covers net of the
        order, at every priority: the urgent ones from all its liquidity, the high ones above
        the urgent reservation, the normal ones above both reservations and within their
        limits. The first one it cannot cover ends the count: a longer run pays more back
        at that priority (or leaves the one it belongs to uncovered), so it fails too."""
        paid = 0
        for n, counter in enumerate(against):  # in queue order: most urgent first
            paid += counter.amount_minor
            if self._cover_reason(counter, paid - order.amount_minor) is not None:
                return n
        return len(against)

    def _release(self, accounts: set[int], now_us: int, step: Step) -> None:
        """Receipt-reactive: try queues of accounts that received money, cascading."""
        self._cascade(sorted(accounts), now_us, step)

    def _cascade(self, work: list[int], now_us: int, step: Step) -> None:
        """Try the queues of `work`, the last first, each followed by those of the accounts
        its settlements paid."""
        # Terminates: an account goes back on the list only when a payment settled, and
        # every settlement takes a payment out of the queue for good.
        while work:
            account = work.pop()
            for order in self._settle_from_queue(account, now_us, step):
                work.append(order.creditor_account)

    def _settle_from_queue(self, account: int, now_us: int, step: Step,
                           orders: list[Order] | None = None) -> list[Order]:
        """Settle what the account's queue lets go now (or of `orders`, a part of it in
        queue order): each payment alone when covered, else offset against the payments
        coming back, by the rules of entry. Returns what settled, counter-payments included
        (their creditor is this account)."""
        first = len(step.settled)
        counters: dict[int, list[Order]] = {}  # creditor -> its payments back to this account
        holding = self._holding()
        # A normal payment short of liquidity even with all its creditor's payments back
        # (found earlier in this try) is passed at once, as the full check would pass it
        # (the offset fails on that same test): about a third of the cost in a long queue.
        # `room`: what the account has above its floor and both reservations, worked out
        # again whenever something settled or was refused.
        passing = self.bypass_fifo_normal and self.pass_uncovered_quickly
        room, room_after = None, (-1, -1)
        incoming: dict[int, tuple[list[Order], int]] = {}  # creditor -> (its counters, sum)
        for order in list(self.queues.get(account, ())) if orders is None else orders:
            if order.earliest_us is not None and now_us < order.earliest_us:
                continue  # not yet active: neither settles nor blocks
            if holding and self._held(order):
                continue  # a suspended agent's: waits for reinstatement, blocks nothing
            against = counters.get(order.creditor_account) if passing else None
            if against is not None and order.rank == 2:
                back = incoming.get(order.creditor_account)
                if back is None or back[0] is not against:
                    back = incoming[order.creditor_account] = (
                        against, sum(o.amount_minor for o in against))
                if room_after != (len(step.settled), len(step.rejected)):
                    room_after = (len(step.settled), len(step.rejected))
                    room = self._room_for_normal(account)
                if room is not None and order.amount_minor - back[1] > room:
                    continue  # waits: short of liquidity even with every payment back
            wait = self._cover_reason(order, order.amount_minor)
            if wait is None:
                self._settle_alone(order, now_us, step)
                continue
            if (wait is WaitReason.INSUFFICIENT_LIQUIDITY
                    and self._offset_queued(order, now_us, step, counters)):
                continue
            if order.rank < 2 or not self.bypass_fifo_normal:
                break  # FIFO: nothing behind an uncovered urgent/high payment settles
        return step.settled[first:]

    def _offset_queued(self, order: Order, now_us: int, step: Step,
                       counters: dict[int, list[Order]]) -> bool:
        """Offset a queued order, finding its creditor's counter-payments once per pass over
        a queue (they stay the same until an offset with that creditor settles or is
        refused): a queue of n payments to creditors with m queued costs n + m, not n * m."""
        creditor = order.creditor_account
        against = counters.get(creditor)
        if against is None:
            against = counters[creditor] = self._counter_payments(order, now_us)
        refused = len(step.rejected)
        settled = self._offset(order, now_us, step, against)
        if settled or len(step.rejected) != refused:
            del counters[creditor]  # the creditor's queue changed
        return settled

    def _resolve_currency(self, currency: str, now_us: int, step: Step) -> None:
        # (an order to its own account, queued before submit refused such orders, is left to
        # the ledger's refusal when its queue is tried: no resolution can settle it)
        active = [o for o in self.orders.values() if o.currency == currency
                  and (o.earliest_us is None or o.earliest_us <= now_us)
                  and o.debtor_account != o.creditor_account and not self._held(o)]
        if self.policies:
            active = self._within_reach_of_limits(active)
        if not active:
            return
        accounts = {o.debtor_account for o in active} | {o.creditor_account for o in active}
        balances, floors = {}, {}
        for account in accounts:
            balance = self.ledger.balances[account]
            reserved = self._reserved_for_normal(account)
            balances[account] = balance.available_minor - reserved
            floors[account] = _NO_FLOOR if balance.floor_minor is None else balance.floor_minor
        candidates = {o.uetr: o for o in active}
        for round_ in range(LIMIT_ROUNDS_MAX):
            queue = [QueuedPayment(o.uetr, o.debtor_account, o.creditor_account,
                                   o.amount_minor, o.rank, o.sequence)
                     for o in candidates.values()]
            resolution = resolve_gridlock(balances, floors, queue,
                                          respect_priority=self.respect_priority_in_resolution)
            chosen = [candidates[uetr] for uetr in resolution.settle]
            # the largest payment over each limit a round, as long as that stays cheap (the
            # next round may bring in payments back that let the others fit); then all of
            # each limit's excess at once, so that rounds stay few however far over it is
            over = self._over_limits(chosen, whole_excess=round_ >= LIMIT_ROUNDS_ONE_BY_ONE)
            if not over:
                if chosen and self._settle_together(chosen, now_us, step):
                    # the money the resolution moved gives room, as any settled payment
                    # does: the queues it reached are tried, cascading
                    self._release({o.creditor_account for o in chosen}, now_us, step)
                return
            for order in over:  # leave out, and choose again without them
                del candidates[order.uetr]

    def _within_reach_of_limits(self, active: list[Order]) -> list[Order]:
        """The orders a resolution may settle, limits considered: a normal payment that
        would take its debtor's position past its limit (and past where it stands) even if
        every queued payment the other way settled with it is left out. (A bank's queue of
        payments held by a limit would else be resolved, in vain, at every heartbeat.)"""
        # what every queued payment coming in would take off its payee's positions
        incoming: dict[tuple[int, int], int] = {}  # (payee, payer) -> minus the amounts
        for o in active:
            key = (o.creditor_account, o.debtor_account)
            incoming[key] = incoming.get(key, 0) - o.amount_minor
        incoming_multilateral = self._multilateral(incoming)
        kept = []
        for o in active:
            found = None if o.rank != 2 else self._limit_on(o.debtor_account,
                                                             o.creditor_account)
            if found is not None:
                limit, before, bilateral = found
                best = before + o.amount_minor + (
                    incoming.get((o.debtor_account, o.creditor_account), 0) if bilateral
                    else incoming_multilateral.get(o.debtor_account, 0))
                if best > max(limit, before):
                    continue  # past its limit whatever else settles
            kept.append(o)
        return kept

    def _over_limits(self, chosen: list[Order], whole_excess: bool = False) -> list[Order]:
        """Of normal payments settled together, for each debtor whose bilateral or
        multilateral position would end above its limit (and above where it stands), the
        largest payment that pushed it there, or with `whole_excess` as many of the largest
        as take it back within; none when every limit holds."""
        moved: dict[tuple[int, int], int] = {}  # what settling `chosen` adds to each position
        for order in chosen:
            _track(order, moved)
        moved_multilateral = self._multilateral(moved)
        over: dict[tuple[int, int | None], tuple[int, list[Order]]] = {}  # excess, payments
        for order in chosen:
            debtor, creditor = order.debtor_account, order.creditor_account
            found = None if order.rank != 2 else self._limit_on(debtor, creditor)
            if found is None:
                continue
            limit, before, bilateral = found
            if bilateral:
                key: tuple[int, int | None] = (debtor, creditor)
                after = before + moved[(debtor, creditor)]
            else:
                key, after = (debtor, None), before + moved_multilateral[debtor]
            if after > limit and after > before:
                over.setdefault(key, (after - max(limit, before), []))[1].append(order)
        dropped = []
        for excess, orders in over.values():
            for order in sorted(orders, key=lambda o: o.amount_minor, reverse=True):
                if excess <= 0:
                    break
                dropped.append(order)
                excess -= order.amount_minor
                if not whole_excess:
                    break
        return dropped

    def _room_for_normal(self, account: int) -> int | None:
        """What a normal payment of the account may take as _cover_reason judges it: its
        liquidity above its floor and both reservations (None: no floor, no such check)."""
        balance = self.ledger.balances.get(account)
        if balance is None or balance.floor_minor is None:
            return None
        return (balance.available_minor - self._reserved_for_normal(account)
                - balance.floor_minor)

    def _reserved_for_normal(self, account: int) -> int:
        """What a normal payment leaves untouched: both reservations (resolution treats
        every payment as normal)."""
        policy = self.policies.get(account)
        if policy is None:
            return 0
        return policy.reserved_urgent_minor + policy.reserved_high_minor

    # -- internals ----------------------------------------------------------------------------

    def _enqueue(self, order: Order) -> None:
        self.orders[order.uetr] = order
        insort(self.queues.setdefault(order.debtor_account, []), order,
               key=lambda o: (o.rank, o.sequence))
        self._schedule(order)

    def _schedule(self, order: Order) -> None:
        if order.reject_by_us is not None:
            heappush(self._timed, (order.reject_by_us, _REJECT_BY, order.uetr))
        if order.earliest_us is not None:
            heappush(self._timed, (order.earliest_us, _EARLIEST, order.uetr))
        if order.latest_us is not None:
            heappush(self._timed, (order.latest_us, _LATEST, order.uetr))
        if len(self._timed) > 2 * len(self.orders) + 1024:  # mostly orders gone: rebuild
            self._timed = [entry for entry in self._timed if entry[2] in self.orders]
            heapify(self._timed)

    def _enter_day(self, now_us: int, step: Step) -> None:
        """Count positions for the day of `now_us`, whichever step comes first in it (tick
        does the same): on a new day they start from zero, and every queue is tried, as a
        limit may have held its payments back."""
        if self._start_day(now_us // BUSINESS_DAY_US):
            self._release(set(self.queues), now_us, step)

    def _start_day(self, day: int) -> bool:
        """Count positions for `day` from now on; True when that cleared an earlier day."""
        if self.business_day is not None and day <= self.business_day:
            return False  # the same day (or a clock that went back): positions stand
        first = self.business_day is None
        self.business_day = day
        if first:
            return False  # nothing counted yet belongs to an earlier day
        self.positions.clear()
        self._counterparties.clear()
        return True

    def _take_sequence(self) -> int:
        sequence = self._next_sequence
        self._next_sequence += 1
        return sequence

    def restore(self, order: Order) -> None:
        """Put back a queued order as it was (recovery)."""
        self._next_sequence = max(self._next_sequence, order.sequence + 1)
        self._front_sequence = min(self._front_sequence, order.sequence)
        self._enqueue(order)

    def restore_day(self, last_step_us: int, warned_us: Mapping[str, int]) -> None:
        """After recovery: the business day is that of the engine's last step, whether or
        not a payment settled in it (positions of an earlier day no longer count). A latest
        time its sender was warned of (at `warned_us[uetr]`, at or after it) is not warned
        of again; one that passed unwarned is, at the next tick."""
        self._start_day(last_step_us // BUSINESS_DAY_US)
        for uetr, at_us in warned_us.items():
            order = self.orders.get(uetr)
            if order is not None and order.latest_us is not None and order.latest_us <= at_us:
                order.latest_warned_us = order.latest_us  # tick's "once" then holds

    def restore_settled(self, order: Order, settled_us: int) -> None:
        """Count a payment settled earlier in the limits' positions, if it settled on the
        latest business day seen so far (recovery; any order of payments)."""
        day = settled_us // BUSINESS_DAY_US
        self._start_day(day)
        if day == self.business_day:
            self._track_positions(order)
