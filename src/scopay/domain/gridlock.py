"""Multilateral gridlock resolution for the RTGS liquidity-saving mechanism.

`resolve_gridlock` takes a snapshot (balances, floors, the queue) and returns the ids of queued
payments to settle simultaneously, as one linked batch, so that no account ends below its
floor, settling as much value as it can find. It changes nothing: the engine writes the batch.

How (docs/settlement.md, "Gridlock resolution", has the long version):
1. LP relaxation as a min-cost flow. Payments between the same debtor and creditor have
   proportional columns, so the relaxation only decides how much of each pair's total
   settles. Start from "everything settles": an account whose net outflow exceeds its
   liquidity has an excess that must move, along pairs whose settlement is cut, to accounts
   with room; cutting 1 unit costs 1 unit of value. Successive shortest paths with node
   potentials (a Dinic blocking flow per distance) solve it exactly, in integers. The value
   left is the LP bound; the potentials are the LP's dual prices.
2. Rounding by the duals. A pair whose creditor's potential is more than 1 above its
   debtor's is cut whole, less than 1 above kept whole: the LP does the same, and going
   against it lowers the bound on what is reachable by at least the payment's amount. Pairs
   exactly 1 apart are "tied": the LP is indifferent how they are cut. Accounts, upstream
   first, cut whole tied payments until covered: per pair up to the LP's cut, then the least
   extra, owed to creditors with room to spare or who pass it on downstream. An account
   those cannot cover stays short.
3. Fill: accounts with room settle waiting payments, largest that fits first.
4. Repair: a short account is paid a waiting payment if its debtor can make room for it
   cheaply; else it takes back the least value owed to creditors who can lose it; failing
   that, one payment (which may make its creditor short in turn).
5. Fill again, then exchange: a waiting payment enters when taking back smaller settled
   payments of the same debtor, whose creditors have the room, frees enough room for it.
6. A queue of at most SHORT_QUEUE_PAYMENTS_MAX payments is also settled greedily (largest
   covered payment first), and the greedy result wins if it settles more.

With `respect_priority=True` a payment of priority k from debtor D settles only if every
queued payment of D with a lower priority number (more urgent) settles too; payments of the
same priority are not ordered among themselves (bypass FIFO). The LP and its rounding ignore
priority; the closure is then enforced and kept by repair, fill and exchange. An account
already below its floor (a reduced credit line) may not go further below: net outflow <= 0.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import add, attrgetter, eq, lt, mul

ITERATIONS_MAX = 10_000  # flow phases + exchange rounds; each costs O(pairs) or O(payments)
QUEUE_PAYMENTS_MAX = 1_000_000
REPAIR_CANDIDATES_MAX = 16  # outgoing payments weighed per one-payment repair step
EXCHANGE_SCAN_MAX = 64  # smallest settled payments an account may give up in one exchange
SHORT_QUEUE_PAYMENTS_MAX = 256  # queues this short are also settled greedily; the best wins
PRIORITY_LEVELS = (0, 1, 2)  # urgent, high, normal
_UNREACHED = 1 << 62


@dataclass(frozen=True, slots=True)
class QueuedPayment:
    id: str
    debtor: int  # account id
    creditor: int  # account id
    amount_minor: int  # > 0
    priority: int  # 0 urgent, 1 high, 2 normal
    sequence: int  # queue position; unique


@dataclass(frozen=True, slots=True)
class Resolution:
    settle: tuple[str, ...]  # ids, in queue (sequence) order
    value_minor: int
    iterations: int
    bound_minor: int | None = None  # the LP bound, None when the budget cut the LP short


def resolve_gridlock(
    balances: Mapping[int, int],
    floors: Mapping[int, int],
    queue: Sequence[QueuedPayment],
    *,
    iterations_max: int = ITERATIONS_MAX,
    respect_priority: bool = False,
) -> Resolution:
    """Choose the queued payments to settle together: most value, no floor broken."""
    assert iterations_max >= 0
    assert len(queue) <= QUEUE_PAYMENTS_MAX, "queue longer than QUEUE_PAYMENTS_MAX"
    if not queue:
        return Resolution(settle=(), value_minor=0, iterations=0, bound_minor=0)
    problem = _index_problem(balances, floors, queue, respect_priority)
    budget = _Budget(iterations_max)
    chosen, bound_minor = choose_settled(problem, budget)
    if not all(map(lt, problem.sequence, problem.sequence[1:])):
        chosen.sort(key=problem.sequence.__getitem__)  # else index order is queue order
    payments = list(map(queue.__getitem__, chosen))
    # Checks independent of the bookkeeping that chose: a failure here is a bug.
    assert_floors_kept(balances, floors, payments)
    if respect_priority:
        assert_priority_kept(queue, payments)
    return Resolution(
        settle=tuple(map(attrgetter("id"), payments)),
        value_minor=sum(map(problem.amount.__getitem__, chosen)),
        iterations=budget.spent,
        bound_minor=bound_minor,
    )


def choose_settled(problem: _Problem, budget: _Budget) -> tuple[list[int], int | None]:
    """Indexes of the payments to settle, and the LP bound (None if not reached)."""
    settled, bound_minor = settle_by_lp_duals(problem, budget)
    state = _State(problem, settled)
    state.close_priority()
    state.fill()  # first: short accounts get paid what others can now pay them
    state.repair()
    state.fill()
    exchange_payments(state, budget)
    chosen = [k for k, flag in enumerate(state.settled) if flag]
    if len(problem.amount) <= SHORT_QUEUE_PAYMENTS_MAX:
        # Integrality dominates short queues, where rounding the LP can lose to the plain
        # greedy; checking costs little there. Longer ones rely on the LP (bench/gridlock.py).
        greedy = [k for k, flag in enumerate(settle_greedily(problem)) if flag]
        value_of = problem.amount.__getitem__
        if sum(map(value_of, greedy)) > sum(map(value_of, chosen)):
            chosen = greedy
    return chosen, bound_minor


def assert_floors_kept(
    balances: Mapping[int, int], floors: Mapping[int, int], settled: Sequence[QueuedPayment]
) -> None:
    """Integer check of a result: no account ends below min(floor, balance)."""
    net = dict.fromkeys(balances, 0)
    for payment in settled:
        net[payment.debtor] -= payment.amount_minor
        net[payment.creditor] += payment.amount_minor
    for account, change in net.items():
        balance = balances[account]
        assert balance + change >= min(floors[account], balance), f"account {account} floor"


def assert_priority_kept(queue: Sequence[QueuedPayment], settled: Sequence[QueuedPayment]) -> None:
    """No debtor settles a payment while one of its more urgent payments waits."""
    settled_ids = {p.id for p in settled}
    most_urgent_waiting: dict[int, int] = {}
    for p in queue:
        if p.id not in settled_ids:
            level = most_urgent_waiting.get(p.debtor, p.priority)
            most_urgent_waiting[p.debtor] = min(level, p.priority)
    for p in settled:
        assert p.priority <= most_urgent_waiting.get(p.debtor, p.priority), f"{p.id} priority"


@dataclass(frozen=True, slots=True)
class _Problem:
    liquidity: list[int]  # per account index: room above the floor, >= 0
    debtor: list[int]  # per payment index: account index
    creditor: list[int]
    amount: list[int]
    level: list[int]  # priority when it is respected, else 0 for all
    sequence: list[int]
    pairs: list[tuple[int, int]]  # distinct (debtor, creditor) account indexes
    pair_total: list[int]  # value queued per pair
    pair_members: list[list[int]]  # payment indexes per pair


def _index_problem(
    balances: Mapping[int, int],
    floors: Mapping[int, int],
    queue: Sequence[QueuedPayment],
    respect_priority: bool,
) -> _Problem:
    accounts = sorted(balances)
    assert floors.keys() == balances.keys(), "balances and floors name different accounts"
    index = {account: i for i, account in enumerate(accounts)}
    # Below the floor already: it may not pay out net, so its room is 0, not negative.
    liquidity = [max(balances[a] - floors[a], 0) for a in accounts]
    # map/attrgetter keep the checks at C speed: they run on every call, on the whole queue.
    debtors = list(map(attrgetter("debtor"), queue))
    creditors = list(map(attrgetter("creditor"), queue))
    amounts = list(map(attrgetter("amount_minor"), queue))
    priorities = list(map(attrgetter("priority"), queue))
    sequences = list(map(attrgetter("sequence"), queue))
    assert len(set(map(attrgetter("id"), queue))) == len(queue), "payment ids are not unique"
    assert len(set(sequences)) == len(queue), "sequences are not unique"
    assert min(amounts) > 0, "a queued amount is not positive"
    assert not any(map(eq, debtors, creditors)), "a payment to its own account"
    assert index.keys() >= set(debtors) | set(creditors), "an account without a balance"
    assert set(priorities) <= set(PRIORITY_LEVELS), "an unknown priority"
    debtor = list(map(index.__getitem__, debtors))
    creditor = list(map(index.__getitem__, creditors))
    pairs, pair_total, pair_members = _group_pairs(debtor, creditor, amounts, len(accounts))
    return _Problem(
        liquidity=liquidity,
        debtor=debtor,
        creditor=creditor,
        amount=amounts,
        level=priorities if respect_priority else [0] * len(queue),
        sequence=sequences,
        pairs=pairs,
        pair_total=pair_total,
        pair_members=pair_members,
    )


def _group_pairs(
    debtor: list[int], creditor: list[int], amount: list[int], accounts_count: int
) -> tuple[list[tuple[int, int]], list[int], list[list[int]]]:
    members: dict[int, list[int]] = {}
    for k, code in enumerate(map(add, map(mul, debtor, repeat(accounts_count)), creditor)):
        group = members.get(code)
        if group is None:
            members[code] = [k]
        else:
            group.append(k)
    pairs = [divmod(code, accounts_count) for code in members]
    pair_members = list(members.values())
    pair_total = [sum(map(amount.__getitem__, group)) for group in pair_members]
    return pairs, pair_total, pair_members


class _Budget:
    """Iterations left; spending past the limit is refused, never an error."""

    __slots__ = ("limit", "spent")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.spent = 0

    def spend(self) -> bool:
        if self.spent >= self.limit:
            return False
        self.spent += 1
        return True


# --- 1. The LP relaxation as a min-cost flow ---------------------------------------------------


def settle_by_lp_duals(problem: _Problem, budget: _Budget) -> tuple[list[bool], int | None]:
    """Per payment: settled or not (some accounts may still be short: repair follows), and
    the LP bound (None if the budget ran out before the LP was solved)."""
    room = compute_rooms(problem)
    if min(room) >= 0:
        return [True] * len(problem.amount), sum(problem.pair_total)
    lp_cut, potential, solved = solve_lp_flow(problem, room, budget)
    bound = sum(problem.pair_total) - sum(lp_cut) if solved else None
    return round_by_potential(problem, lp_cut, potential), bound


def compute_rooms(problem: _Problem) -> list[int]:
    """Per account: liquidity - net outflow when every queued payment settles."""
    room = list(problem.liquidity)
    for (i, j), total in zip(problem.pairs, problem.pair_total, strict=True):
        room[i] -= total
        room[j] += total
    return room


def solve_lp_flow(
    problem: _Problem, room: list[int], budget: _Budget
) -> tuple[list[int], list[int], bool]:
    """Min-cost flow of every account's excess to the accounts with room, over arcs that
    cut a pair (cost 1 per unit). Returns the cut per pair, the node potentials (every
    residual arc has reduced cost >= 0) and whether all the excess moved."""
    accounts_count = len(room)
    source, sink = accounts_count, accounts_count + 1
    graph = _FlowGraph(accounts_count + 2)
    pair_arcs = [graph.add_arc(i, j, total, 1) for (i, j), total in
                 zip(problem.pairs, problem.pair_total, strict=True)]
    source_arcs = []
    for i, r in enumerate(room):
        if r < 0:
            source_arcs.append(graph.add_arc(source, i, -r, 0))
        elif r > 0:
            graph.add_arc(i, sink, r, 0)
    potential = [0] * (accounts_count + 2)
    graph.push_min_cost(source, sink, potential, budget)
    solved = all(graph.capacity[arc] == 0 for arc in source_arcs)
    return [graph.capacity[arc ^ 1] for arc in pair_arcs], potential[:accounts_count], solved


# --- 2. Rounding by the LP's duals --------------------------------------------------------------


def round_by_potential(problem: _Problem, lp_cut: list[int], potential: list[int]) -> list[bool]:
    """Settled flags: pairs the duals condemn are cut, the others kept, and the tied ones cut
    in whole payments, account by account in rising potential. A tied cut burdens only its
    creditor, one potential further downstream, visited later. Accounts may be left short."""
    amount, creditor = problem.amount, problem.creditor
    settled = [True] * len(amount)
    room = list(problem.liquidity)
    tied: list[list[int]] = [[] for _ in room]
    planned = [0] * len(room)  # LP cuts still to come from accounts not visited yet
    for p, (i, j) in enumerate(problem.pairs):
        gap = potential[j] - potential[i]
        if gap > 1:
            for k in problem.pair_members[p]:
                settled[k] = False
            continue
        room[i] -= problem.pair_total[p]
        room[j] += problem.pair_total[p]
        if gap == 1:
            tied[i].append(p)
            planned[j] += lp_cut[p]
    passes_on = [bool(pairs) for pairs in tied]
    for i in sorted(range(len(room)), key=potential.__getitem__):
        for p in tied[i]:
            planned[problem.pairs[p][1]] -= lp_cut[p]
        if room[i] >= 0 or not tied[i]:
            continue
        spare = list(map(int.__sub__, room, planned))
        for k in choose_tied_cut(problem, tied[i], lp_cut, -room[i], spare, passes_on):
            settled[k] = False
            room[i] += amount[k]
            room[creditor[k]] -= amount[k]
    return settled


def choose_tied_cut(
    problem: _Problem, pairs: list[int], lp_cut: list[int], need: int, spare: list[int],
    passes_on: list[bool],
) -> list[int]:
    """Payments to cut from one account's tied pairs, at least `need` in all if it can: per
    pair up to the LP's cut, then the least extra among those owed to creditors with room to
    spare or who pass the cut on downstream (all of those, when they are not enough: a
    creditor at the end of the line, with no room, is better not overdrawn here)."""
    amount, creditor = problem.amount, problem.creditor
    chosen: list[int] = []
    rest: list[int] = []
    for p in pairs:
        members = sorted(problem.pair_members[p], key=amount.__getitem__, reverse=True)
        cut = fit_largest_first(amount, members, min(lp_cut[p], need))
        need -= sum(map(amount.__getitem__, cut))
        chosen += cut
        for k in cut:
            spare[creditor[k]] -= amount[k]
        taken = set(cut)
        rest += [k for k in members if k not in taken]
    if need > 0:
        rest.sort(key=amount.__getitem__, reverse=True)
        roomy = [k for k in rest if spare[creditor[k]] >= amount[k] or passes_on[creditor[k]]]
        if sum(map(amount.__getitem__, roomy)) >= need:
            chosen += cut_at_least(amount, roomy, need)
        else:
            chosen += roomy
    return chosen


def fit_largest_first(amount: list[int], members: list[int], limit: int) -> list[int]:
    """Members (largest first) taken while they fit under `limit`."""
    chosen = []
    for k in members:
        if amount[k] <= limit:
            limit -= amount[k]
            chosen.append(k)
    return chosen


def cut_at_least(amount: list[int], members: list[int], floor_value: int) -> list[int]:
    """Members (largest first) worth at least `floor_value`, and little more if they can:
    the complement of the largest set that fits under what may stay."""
    if floor_value <= 0:
        return []
    total = sum(map(amount.__getitem__, members))
    kept = set(fit_largest_first(amount, members, total - floor_value))
    return [k for k in members if k not in kept]


def settle_greedily(problem: _Problem) -> list[bool]:
    """What an RTGS without liquidity saving settles at best: the largest waiting payment
    whose debtor covers it settles (none of the debtor's more urgent payments waiting, when
    priority is respected), in passes until one settles nothing."""
    amount, debtor, creditor = problem.amount, problem.debtor, problem.creditor
    level, room = problem.level, list(problem.liquidity)
    settled = [False] * len(amount)
    waiting = [[0] * len(PRIORITY_LEVELS) for _ in room]  # per account and level
    for i, lvl in zip(debtor, level, strict=True):
        waiting[i][lvl] += 1
    order = sorted(range(len(amount)), key=amount.__getitem__, reverse=True)
    progress = True
    while progress:
        progress = False
        for k in order:
            i = debtor[k]
            if settled[k] or room[i] < amount[k] or any(waiting[i][: level[k]]):
                continue
            settled[k], progress = True, True
            waiting[i][level[k]] -= 1
            room[i] -= amount[k]
            room[creditor[k]] += amount[k]
    return settled


# --- The flow network -------------------------------------------------------------------------


class _FlowGraph:
    """Residual graph in flat lists; arc e and e ^ 1 are each other's reverse."""

    __slots__ = ("arcs_of", "head", "capacity", "cost")

    def __init__(self, nodes_count: int) -> None:
        self.arcs_of: list[list[int]] = [[] for _ in range(nodes_count)]
        self.head: list[int] = []
        self.capacity: list[int] = []
        self.cost: list[int] = []

    def add_arc(self, tail: int, head: int, capacity: int, cost: int) -> int:
        arc = len(self.head)
        self.arcs_of[tail].append(arc)
        self.arcs_of[head].append(arc + 1)
        self.head += [head, tail]
        self.capacity += [capacity, 0]
        self.cost += [cost, -cost]
        return arc

    def push_min_cost(
        self, source: int, sink: int, potential: list[int], budget: _Budget
    ) -> None:
        """Primal-dual: shortest distances under potentials, then a max flow on the arcs
        of reduced cost 0, until the sink is out of reach (every excess has moved).
        `potential` must make every reduced cost >= 0; it is updated in place."""
        while budget.spend():
            distance = self._find_distances(source, potential)
            reach = distance[sink]
            if reach == _UNREACHED:
                return
            for node, d in enumerate(distance):
                potential[node] += min(d, reach)  # keeps every reduced cost >= 0
            while budget.spend() and self._push_blocking_flow(source, sink, potential):
                pass

    def _find_distances(self, source: int, potential: list[int]) -> list[int]:
        """Dijkstra on reduced costs (all >= 0 thanks to the potentials)."""
        distance = [_UNREACHED] * len(self.arcs_of)
        distance[source] = 0
        frontier = [(0, source)]
        head, capacity, cost = self.head, self.capacity, self.cost
        while frontier:
            d, node = heapq.heappop(frontier)
            if d > distance[node]:
                continue
            base = d + potential[node]
            for arc in self.arcs_of[node]:
                if capacity[arc] > 0:
                    nxt = head[arc]
                    candidate = base + cost[arc] - potential[nxt]
                    if candidate < distance[nxt]:
                        distance[nxt] = candidate
                        heapq.heappush(frontier, (candidate, nxt))
        return distance

    def _admissible_levels(self, source: int, potential: list[int]) -> list[int]:
        """BFS depth over arcs with room and reduced cost 0; -1 where unreachable."""
        level = [-1] * len(self.arcs_of)
        level[source] = 0
        layer = [source]
        head, capacity, cost = self.head, self.capacity, self.cost
        while layer:
            following = []
            for node in layer:
                for arc in self.arcs_of[node]:
                    nxt = head[arc]
                    if (
                        level[nxt] < 0
                        and capacity[arc] > 0
                        and cost[arc] + potential[node] == potential[nxt]
                    ):
                        level[nxt] = level[node] + 1
                        following.append(nxt)
            layer = following
        return level

    def _push_blocking_flow(self, source: int, sink: int, potential: list[int]) -> int:
        """One Dinic round on the admissible graph; returns the value pushed (0: none left).
        Depth-first with an explicit stack; each node's arc list is consumed from its end,
        so an arc found saturated or leading to a dead end is never looked at again."""
        level = self._admissible_levels(source, potential)
        if level[sink] < 0:
            return 0
        forward = self._list_level_arcs(level, potential)
        head, capacity = self.head, self.capacity
        pushed_total = 0
        nodes, path = [source], []
        while True:
            node = nodes[-1]
            if node == sink:
                pushed = min(capacity[arc] for arc in path)
                for arc in path:
                    capacity[arc] -= pushed
                    capacity[arc ^ 1] += pushed
                pushed_total += pushed
                nodes, path = [source], []
                continue
            arcs = forward[node]
            while arcs and capacity[arcs[-1]] == 0:
                arcs.pop()
            if arcs:
                path.append(arcs[-1])
                nodes.append(head[arcs[-1]])
            elif node == source:
                return pushed_total
            else:
                nodes.pop()
                path.pop()
                forward[nodes[-1]].pop()

    def _list_level_arcs(self, level: list[int], potential: list[int]) -> list[list[int]]:
        """Per node: its admissible arcs one level down, for the blocking flow."""
        head, capacity, cost = self.head, self.capacity, self.cost
        forward: list[list[int]] = []
        for node, arcs in enumerate(self.arcs_of):
            if level[node] < 0:
                forward.append([])
                continue
            below, height = level[node] + 1, potential[node]
            forward.append([
                arc for arc in arcs
                if capacity[arc] > 0 and level[head[arc]] == below
                and cost[arc] + height == potential[head[arc]]
            ])
        return forward


# --- 3-4. Fill and repair, with incremental net positions --------------------------------------


class _State:
    """The settled set, each account's room left (liquidity - net outflow), and per account and
    priority level the settled and unsettled outgoing payments as sorted keys
    amount * payments_count + index, so a bisect finds the smallest or largest by amount."""

    def __init__(self, problem: _Problem, settled: list[bool]) -> None:
        self.problem = problem
        self.width = len(problem.amount)
        self.levels_count = max(problem.level) + 1
        accounts_count = len(problem.liquidity)
        self.room = list(problem.liquidity)
        self.settled = settled
        self.sent_keys = [[[] for _ in range(self.levels_count)] for _ in range(accounts_count)]
        self.waiting_keys = [[[] for _ in range(self.levels_count)] for _ in range(accounts_count)]
        # Keys sort as amounts do (ties by index), so each list below is born sorted.
        keys = sorted(map(add, map(mul, problem.amount, repeat(self.width)), range(self.width)))
        debtor, level = problem.debtor, problem.level
        for key in keys:
            k = key % self.width
            if settled[k]:
                self.sent_keys[debtor[k]][level[k]].append(key)
            else:
                self.waiting_keys[debtor[k]][level[k]].append(key)
        room = self.room
        creditor, amounts = problem.creditor, problem.amount
        for i, j, amount, flag in zip(debtor, creditor, amounts, settled, strict=True):
            if flag:
                room[i] -= amount
                room[j] += amount

    def unsettle(self, key: int) -> None:
        k = key % self.width
        i, level, amount = self.problem.debtor[k], self.problem.level[k], key // self.width
        keys = self.sent_keys[i][level]
        del keys[bisect_left(keys, key)]
        waiting = self.waiting_keys[i][level]
        waiting.insert(bisect_left(waiting, key), key)
        self.settled[k] = False
        self.room[i] += amount
        self.room[self.problem.creditor[k]] -= amount

    def settle(self, key: int) -> None:
        k = key % self.width
        i, level, amount = self.problem.debtor[k], self.problem.level[k], key // self.width
        keys = self.waiting_keys[i][level]
        del keys[bisect_left(keys, key)]
        sent = self.sent_keys[i][level]
        sent.insert(bisect_left(sent, key), key)
        self.settled[k] = True
        self.room[i] -= amount
        self.room[self.problem.creditor[k]] += amount

    def close_priority(self) -> None:
        """Take back every settled payment above an account's most urgent waiting level."""
        for i in range(len(self.room)):
            open_level = self.open_level(i)
            for level in range(open_level + 1, self.levels_count):
                for key in list(self.sent_keys[i][level]):
                    self.unsettle(key)

    def open_level(self, i: int) -> int:
        """The most urgent level of account i that still has waiting payments."""
        for level in range(self.levels_count):
            if self.waiting_keys[i][level]:
                return level
        return self.levels_count

    def top_sent_level(self, i: int) -> int:
        for level in range(self.levels_count - 1, -1, -1):
            if self.sent_keys[i][level]:
                return level
        return -1

    def repair(self) -> None:
        """Until no account is below its floor: a short account is paid what its debtors can
        cheaply make room for (`pull_in`), then takes back payments (`choose_take_back`)."""
        short = [i for i, room in enumerate(self.room) if room < 0]
        waiting_in = self.list_waiting_incoming() if short else []
        while short:
            i = short.pop()
            while self.room[i] < 0 and self.pull_in(i, waiting_in[i]):
                pass
            while self.room[i] < 0:
                for key in self.choose_take_back(i):
                    creditor = self.problem.creditor[key % self.width]
                    self.unsettle(key)
                    if self.room[creditor] < 0:
                        short.append(creditor)

    def list_waiting_incoming(self) -> list[list[int]]:
        """Per account: keys of the waiting payments owed to it, largest first."""
        waiting_in: list[list[int]] = [[] for _ in self.room]
        creditor, width = self.problem.creditor, self.width
        for keys_by_level in self.waiting_keys:
            for keys in keys_by_level:
                for key in keys:
                    waiting_in[creditor[key % width]].append(key)
        for keys in waiting_in:
            keys.sort(reverse=True)
        return waiting_in

    def pull_in(self, i: int, waiting_in: list[int]) -> bool:
        """Relieve short account i by settling a payment owed to it, its debtor making room
        by giving up smaller payments to creditors who have the room; done only when the
        value given up, net of the payment, is less than the relief (taking back costs about
        the relief). Returns whether it did."""
        width, debtor_of, need = self.width, self.problem.debtor, -self.room[i]
        best, best_score, tried = None, 0, 0
        freeable_of: dict[int, tuple[list[int], list[int]]] = {}  # rooms hold still here
        for key in waiting_in:
            k = key % width
            if tried == REPAIR_CANDIDATES_MAX:
                break
            if self.settled[k]:
                continue
            debtor, level, amount = debtor_of[k], self.problem.level[k], key // width
            if level != self.open_level(debtor) or self.top_sent_level(debtor) not in (level, -1):
                continue  # in priority mode it could not settle without breaking the closure
            tried += 1
            if debtor not in freeable_of:
                freeable_of[debtor] = list_freeable(self, debtor, level)
            freeable, freed = freeable_of[debtor]
            position = bisect_left(freed, amount - self.room[debtor])
            if amount <= self.room[debtor]:
                given, value_given = [], 0
            elif position < len(freed):
                given, value_given = freeable[: position + 1], freed[position]
            else:
                continue
            score = value_given - amount - min(amount, need)
            if score < best_score:
                best, best_score = (key, given), score
        if best is None:
            return False
        for small in best[1]:
            self.unsettle(small)
        self.settle(best[0])
        return True

    def choose_take_back(self, i: int) -> list[int]:
        """Payments to take back from short account i, from its least urgent settled level:
        if it can, the least value that clears it owed to creditors with the room to lose
        it (nothing cascades); else one payment, among the smallest that clear the
        shortfall the one that least overdraws its creditor (what the creditor then takes
        back is value lost too), or the largest when none clears it."""
        keys = self.sent_keys[i][self.top_sent_level(i)]
        assert keys, "a short account always has a settled outgoing payment"
        width, creditor, room = self.width, self.problem.creditor, self.room
        amount, need = self.problem.amount, -room[i]
        safe = [key % width for key in reversed(keys)
                if room[creditor[key % width]] >= key // width]
        if sum(map(amount.__getitem__, safe)) >= need:
            return [amount[k] * width + k for k in cut_at_least(amount, safe, need)]
        if safe:  # all of them: relief at no more than its value, before any cascade
            return [amount[k] * width + k for k in safe]
        start = bisect_left(keys, need * width)
        if start == len(keys):
            return [keys[-1]]
        best_key, best_cost = keys[start], None
        for key in keys[start : start + REPAIR_CANDIDATES_MAX]:
            value = key // width
            cost = value + max(0, value - room[creditor[key % width]])
            if best_cost is None or cost < best_cost:
                best_key, best_cost = key, cost
        return [best_key]

    def fill(self, accounts: list[int] | None = None) -> None:
        """Accounts with room settle their waiting payments, largest that fits first; a
        creditor's room grows, so it is looked at again."""
        pending = list(range(len(self.room))) if accounts is None else accounts
        while pending:
            i = pending.pop()
            while True:
                key = self.find_largest_fitting(i)
                if key is None:
                    break
                self.settle(key)
                pending.append(self.problem.creditor[key % self.width])

    def find_largest_fitting(self, i: int) -> int | None:
        level = self.open_level(i)
        if level == self.levels_count:
            return None
        keys = self.waiting_keys[i][level]
        position = bisect_right(keys, self.room[i] * self.width + self.width - 1)
        return keys[position - 1] if position > 0 else None


# --- 5. Exchange: one larger waiting payment for smaller settled ones --------------------------


def exchange_payments(state: _State, budget: _Budget) -> None:
    """Rounds over the accounts: a waiting payment enters when taking back smaller settled
    payments of the same debtor, whose creditors have the room to lose them, frees enough
    room; each such swap gains value. A round that gains nothing ends the phase."""
    while budget.spend():
        touched: list[int] = []
        for i in range(len(state.room)):
            touched += exchange_at(state, i)
        if not touched:
            return
        state.fill(touched)


def exchange_at(state: _State, i: int) -> list[int]:
    """Swaps at debtor i, its waiting payments largest first; returns the accounts whose
    room grew."""
    level = state.open_level(i)
    if level == state.levels_count or level != state.top_sent_level(i):
        return []  # in priority mode only the open level may trade, so the closure holds
    touched: list[int] = []
    width = state.width
    freeable, freed = list_freeable(state, i, level)
    for key in reversed(list(state.waiting_keys[i][level])):
        if not freed:
            break  # nothing i could give up
        amount = key // width
        need = amount - state.room[i]
        position = bisect_left(freed, need)
        if need <= 0 or position == len(freed) or freed[position] >= amount:
            continue
        for small in freeable[: position + 1]:
            state.unsettle(small)
        state.settle(key)
        touched += (state.problem.creditor[key % width], i)
        freeable, freed = list_freeable(state, i, level)
    return touched


def list_freeable(state: _State, i: int, level: int) -> tuple[list[int], list[int]]:
    """The smallest settled payments of i whose creditors can lose them all, with the
    running total of their values."""
    width, creditor_of, room = state.width, state.problem.creditor, state.room
    lost: dict[int, int] = {}
    freeable, freed, total = [], [], 0
    for small in state.sent_keys[i][level][:EXCHANGE_SCAN_MAX]:
        value, creditor = small // width, creditor_of[small % width]
        if room[creditor] - lost.get(creditor, 0) >= value:
            lost[creditor] = lost.get(creditor, 0) + value
            total += value
            freeable.append(small)
            freed.append(total)
    return freeable, freed
