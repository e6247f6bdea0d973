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
   that, what costs least counting OVERDRAFT_WEIGHT per unit it overdraws a creditor: one
   payment, or those safe ones and one more (the creditor may become short in turn), or
   (plain mode) the least owed to the creditors with the most room first.
5. Fill again, then exchange: a waiting payment enters when taking back smaller settled
   payments of the same debtor, whose creditors have the room, frees enough room for it.
6. A queue of at most SHORT_QUEUE_PAYMENTS_MAX payments is also settled greedily (largest
   covered payment first), and the greedy result wins if it settles more.
7. A meltdown (repair took back more than half the LP's value: shortfalls cascaded) is
   settled again from the same LP, rounded the other way: a tied pair is cut by at least
   its LP cut, not at most. The better result wins.

With `respect_priority=True` a payment of priority k from debtor D settles only if every
queued payment of D with a lower priority number (more urgent) settles too; payments of the
same priority are not ordered among themselves (bypass FIFO). The LP then groups payments by
pair and level and counts cuts of more urgent ones more (PRIORITY_CUT_COSTS), so its
rounding tends to keep them; a debtor left with settled payments behind a waiting more
urgent one chooses its cut-off level by the value kept, and repair, fill and exchange keep
the order. An account already below its floor (a reduced credit line) may not go further
below: net outflow <= 0.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate, compress, repeat
from operator import add, eq, itemgetter, lt, mul, ne

ITERATIONS_MAX = 10_000  # flow phases + exchange rounds; each costs O(pairs) or O(payments)
QUEUE_PAYMENTS_MAX = 1_000_000
REPAIR_CANDIDATES_MAX = 16  # outgoing payments weighed per one-payment repair step
EXCHANGE_SCAN_MAX = 64  # smallest settled payments an account may give up in one exchange
# Cost of overdrawing a creditor in repair, per unit, on top of the value taken back: it must
# take back at least as much in turn, whole payments overshoot, and it may cascade further.
# Chosen by measurement (bench/gridlock.py and other seeds): 2 and 3 do as well without
# priority, 3 better in priority mode; 1 loses most.
OVERDRAFT_WEIGHT = 3
SHORT_QUEUE_PAYMENTS_MAX = 256  # queues this short are also settled greedily; the best wins
PRIORITY_LEVELS = (0, 1, 2)  # urgent, high, normal
# In priority mode the LP counts a unit cut of an urgent payment three times, of a high one
# twice: a debtor's waiting urgent payment holds back all its less urgent ones, so the
# rounding had better find it settled. Measured against the priority-respecting LP bound on
# 45 instances (bench/gridlock.py's 18 and 27 others of 50 x 2,000): 0.009 of it better than
# unweighted on average, 0.009 worse at worst; (2, 1, 1) and (5, 3, 1) did less well.
PRIORITY_CUT_COSTS = (3, 2, 1)  # per level in PRIORITY_LEVELS
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
    # The LP bound; None when the budget cut the LP short, and in priority mode (its LP is
    # weighted by priority: its value bounds nothing).
    bound_minor: int | None = None


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
        settle=tuple([p.id for p in payments]),
        value_minor=sum(map(problem.amount.__getitem__, chosen)),
        iterations=budget.spent,
        bound_minor=bound_minor,
    )


def choose_settled(problem: _Problem, budget: _Budget) -> tuple[list[int], int | None]:
    """Indexes of the payments to settle, and the LP bound (None if not reached)."""
    room = compute_rooms(problem)
    lp = solve_lp_flow(problem, room, budget) if min(room) < 0 else None
    state, taken_back = settle_and_repair(problem, lp, room, budget, overshoot=False)
    lp_value = sum(problem.pair_total) - (sum(lp[0]) if lp else 0)
    if taken_back > lp_value // 2 and lp is not None:
        # A meltdown: the shortfalls rounding left cascaded round the network. They come from
        # lumpy pairs cut by less than the LP's cut; cutting those by more is tried instead.
        other, _ = settle_and_repair(problem, lp, room, budget, overshoot=True)
        if sum(compress(problem.amount, other.settled)) > sum(
            compress(problem.amount, state.settled)
        ):
            state = other
    chosen = list(compress(range(len(state.settled)), state.settled))
    if len(problem.amount) <= SHORT_QUEUE_PAYMENTS_MAX:
        # Integrality dominates short queues, where rounding the LP can lose to the plain
        # greedy; checking costs little there. Longer ones rely on the LP (bench/gridlock.py).
        greedy = list(compress(range(len(state.settled)), settle_greedily(problem)))
        value_of = problem.amount.__getitem__
        if sum(map(value_of, greedy)) > sum(map(value_of, chosen)):
            chosen = greedy
    # With priority the flow is weighted (PRIORITY_CUT_COSTS): its value bounds nothing.
    bounded = lp is None or (lp[2] and not problem.weighted)
    return chosen, lp_value if bounded else None


def settle_and_repair(
    problem: _Problem, lp: tuple[list[int], list[int], bool] | None, room: list[int],
    budget: _Budget, overshoot: bool,
) -> tuple[_State, int]:
    """Round the LP (everything settles without one: `room`, compute_rooms's, is then what
    is left), then fill, repair, fill and exchange; returns the state and the value repair
    took back."""
    if lp is None:
        settled = [True] * len(problem.amount)
    else:
        settled, room = round_by_potential(problem, lp[0], lp[1], overshoot)
    state = _State(problem, settled, room)
    state.close_priority()
    state.fill()  # first: short accounts get paid what others can now pay them
    taken_back = state.repair()
    state.fill()
    exchange_payments(state, budget)
    return state, taken_back


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
    debtor: list[int]  # per payment index (its place in the queue): account index
    creditor: list[int]
    amount: list[int]
    level: list[int]  # priority when it is respected, else 0 for all
    sequence: list[int]
    pairs: list[tuple[int, int]]  # distinct (debtor, creditor) account indexes
    pair_total: list[int]  # value queued per pair
    pair_members: list[list[int]]  # payment indexes per pair
    pair_cost: list[int]  # LP cost per unit of the pair cut: 1, more for urgent in priority mode
    weighted: bool  # some pair_cost is not 1 (priority mode)


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
    # This runs on every call over the whole queue: comprehensions (whose attribute reads
    # the interpreter specialises) and map over C functions keep it cheap.
    debtors = [p.debtor for p in queue]
    creditors = [p.creditor for p in queue]
    amounts = [p.amount_minor for p in queue]
    priorities = [p.priority for p in queue]
    sequences = [p.sequence for p in queue]
    assert len({p.id for p in queue}) == len(queue), "payment ids are not unique"
    assert all(map(lt, sequences, sequences[1:])) or len(set(sequences)) == len(queue), (
        "sequences are not unique"
    )
    assert min(amounts) > 0, "a queued amount is not positive"
    assert index.keys() >= set(debtors) | set(creditors), "an account without a balance"
    assert set(priorities) <= set(PRIORITY_LEVELS), "an unknown priority"
    debtor = list(map(index.__getitem__, debtors))
    creditor = list(map(index.__getitem__, creditors))
    level = priorities if respect_priority else [0] * len(queue)
    pairs, pair_total, pair_members, pair_cost = _group_pairs(
        debtor, creditor, level, amounts, len(accounts), respect_priority
    )
    assert not any(map(eq, *zip(*pairs, strict=True))), "a payment to its own account"
    return _Problem(
        liquidity=liquidity,
        debtor=debtor,
        creditor=creditor,
        amount=amounts,
        level=level,
        sequence=sequences,
        pairs=pairs,
        pair_total=pair_total,
        pair_members=pair_members,
        pair_cost=pair_cost,
        weighted=respect_priority,
    )


def _group_pairs(
    debtor: list[int], creditor: list[int], level: list[int], amount: list[int],
    accounts_count: int, respect_priority: bool,
) -> tuple[list[tuple[int, int]], list[int], list[list[int]], list[int]]:
    """Payments grouped by (debtor, creditor), and by priority level too when it is
    respected, so that each group has one cost per unit cut in the LP."""
    codes = map(add, map(mul, debtor, repeat(accounts_count)), creditor)
    levels_count = len(PRIORITY_LEVELS) if respect_priority else 1
    if respect_priority:
        codes = map(add, map(mul, codes, repeat(levels_count)), level)
    members: dict[int, list[int]] = {}
    for k, code in enumerate(codes):
        group = members.get(code)
        if group is None:
            members[code] = [k]
        else:
            group.append(k)
    if respect_priority:
        pairs = [divmod(code // levels_count, accounts_count) for code in members]
        pair_cost = [PRIORITY_CUT_COSTS[code % levels_count] for code in members]
    else:
        pairs = [divmod(code, accounts_count) for code in members]
        pair_cost = [1] * len(pairs)
    pair_members = list(members.values())
    pair_total = [sum(map(amount.__getitem__, group)) for group in pair_members]
    return pairs, pair_total, pair_members, pair_cost


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
    first = graph.add_arcs(problem.pairs, problem.pair_total,
                           problem.pair_cost if problem.weighted else 1)
    pair_arcs = range(first, first + 2 * len(problem.pairs), 2)
    source_arcs = []
    for i, r in enumerate(room):
        if r < 0:
            source_arcs.append(graph.add_arc(source, i, -r, 0))
        elif r > 0:
            graph.add_arc(i, sink, r, 0)
    potential = [0] * (accounts_count + 2)
    graph.push_min_cost(source, sink, -sum(r for r in room if r < 0), potential, budget)
    solved = all(graph.capacity[arc] == 0 for arc in source_arcs)
    return [graph.capacity[arc ^ 1] for arc in pair_arcs], potential[:accounts_count], solved


# --- 2. Rounding by the LP's duals --------------------------------------------------------------


def round_by_potential(
    problem: _Problem, lp_cut: list[int], potential: list[int], overshoot: bool
) -> tuple[list[bool], list[int]]:
    """Settled flags and the rooms left: pairs the duals condemn are cut, the others kept, and
    the tied ones cut in whole payments, account by account in rising potential. A tied cut
    burdens only its creditor, one potential further downstream, visited later. Accounts may
    be left short."""
    amount, creditor = problem.amount, problem.creditor
    settled = [True] * len(amount)
    room = list(problem.liquidity)
    tied: list[list[int]] = [[] for _ in room]
    planned = [0] * len(room)  # LP cuts still to come from accounts not visited yet
    costs = problem.pair_cost
    for p, (i, j) in enumerate(problem.pairs):
        gap = potential[j] - potential[i] - costs[p]
        if gap > 0:
            _set_each(settled, problem.pair_members[p], False)
            continue
        room[i] -= problem.pair_total[p]
        room[j] += problem.pair_total[p]
        if gap == 0:
            tied[i].append(p)
            planned[j] += lp_cut[p]
    passes_on = [bool(pairs) for pairs in tied]
    for i in sorted(range(len(room)), key=potential.__getitem__):
        for p in tied[i]:
            planned[problem.pairs[p][1]] -= lp_cut[p]
        if room[i] >= 0 or not tied[i]:
            continue
        spare = list(map(int.__sub__, room, planned))
        cuts = choose_tied_cut(problem, tied[i], lp_cut, -room[i], spare, passes_on, overshoot)
        for k in cuts:
            settled[k] = False
            room[i] += amount[k]
            room[creditor[k]] -= amount[k]
    return settled, room


def _set_each(flags: list[bool], indexes: list[int], value: bool) -> None:
    """flags[k] = value for each k, the loop in C (setitem returns None, so `any` runs on)."""
    any(map(flags.__setitem__, indexes, repeat(value)))


def choose_tied_cut(
    problem: _Problem, pairs: list[int], lp_cut: list[int], need: int, spare: list[int],
    passes_on: list[bool], overshoot: bool,
) -> list[int]:
    """Payments to cut from one account's tied pairs, at least `need` in all if it can: per
    pair up to the LP's cut, then the least extra among those owed to creditors with room to
    spare or who pass the cut on downstream (all of those, when they are not enough: a
    creditor at the end of the line, with no room, is better not overdrawn here)."""
    amount, creditor = problem.amount, problem.creditor
    chosen: list[int] = []
    rest: list[int] = []
    for p in pairs:
        members, limit = problem.pair_members[p], min(lp_cut[p], need)
        if limit <= 0:
            rest += members
            continue
        if limit >= problem.pair_total[p]:
            cut = members  # all of them fit
        else:
            members = sorted(members, key=amount.__getitem__, reverse=True)
            if overshoot:
                cut = cut_at_least(amount, members, limit)
            else:
                cut = fit_largest_first(amount, members, limit)
            taken = set(cut)
            rest += [k for k in members if k not in taken]
        value = sum(map(amount.__getitem__, cut))
        need -= value
        chosen += cut
        spare[problem.pairs[p][1]] -= value
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

    def add_arcs(self, ends: list[tuple[int, int]], capacities: list[int],
                 costs: list[int] | int) -> int:
        """Arcs (tail, head) in bulk, of one cost or a cost each; returns the first one's
        number (they are numbered first, first + 2, ...)."""
        first, count = len(self.head), len(ends)
        heads = [0] * (2 * count)
        heads[0::2] = map(itemgetter(1), ends)
        heads[1::2] = map(itemgetter(0), ends)
        self.head += heads
        room = [0] * (2 * count)
        room[0::2] = capacities
        self.capacity += room
        if isinstance(costs, int):  # one cost for all
            self.cost += [costs, -costs] * count
        else:
            both = [0] * (2 * count)
            both[0::2] = costs
            both[1::2] = map(int.__neg__, costs)
            self.cost += both
        arcs_of = self.arcs_of
        for arc, (tail, head) in zip(range(first, first + 2 * count, 2), ends, strict=True):
            arcs_of[tail].append(arc)
            arcs_of[head].append(arc + 1)
        return first

    def push_min_cost(
        self, source: int, sink: int, demand: int, potential: list[int], budget: _Budget
    ) -> None:
        """Primal-dual: shortest distances under potentials, then a blocking flow on the
        arcs of reduced cost 0, until `demand` (what the source's arcs carry) has moved or
        the sink is out of reach. The next search for distances also tells whether paths of
        reduced cost 0 are left (distance 0), so no pass over the graph is spent only to
        find none. `potential` must make every reduced cost >= 0; it is updated in place."""
        while demand > 0 and budget.spend():
            distance = self._find_distances(source, sink, potential)
            reach = distance[sink]
            if reach == _UNREACHED:
                return
            for node, d in enumerate(distance):
                potential[node] += min(d, reach)  # keeps every reduced cost >= 0
            if not budget.spend():
                return
            demand -= self._push_blocking_flow(source, sink, potential)

    def _find_distances(self, source: int, sink: int, potential: list[int]) -> list[int]:
        """Dijkstra on reduced costs (integers >= 0 thanks to the potentials) with a bucket
        per distance, stopped once the sink is settled: nodes not settled by then are at
        least as far, and are reported at the sink's distance, which is all the potential
        update needs."""
        distance = [_UNREACHED] * len(self.arcs_of)
        distance[source] = 0
        buckets: list[list[int]] = [[source]]
        head, capacity, cost = self.head, self.capacity, self.cost
        d = 0
        while d < len(buckets):
            for node in buckets[d]:
                if distance[node] != d:
                    continue  # settled nearer already
                if node == sink:
                    return [min(x, d) for x in distance]
                base = d + potential[node]
                for arc in self.arcs_of[node]:
                    if capacity[arc] > 0:
                        nxt = head[arc]
                        candidate = base + cost[arc] - potential[nxt]
                        if candidate < distance[nxt]:
                            distance[nxt] = candidate
                            while len(buckets) <= candidate:
                                buckets.append([])
                            buckets[candidate].append(nxt)
            d += 1
        return distance

    def _list_admissible_arcs(
        self, source: int, sink: int, potential: list[int]
    ) -> list[list[int]]:
        """Per node: its arcs with room and reduced cost 0 that lead one BFS level down from
        the source, in one pass; an empty list when the sink is out of reach. Levels past the
        sink's are not explored: no shortest augmenting path goes there."""
        level = [-1] * len(self.arcs_of)
        forward: list[list[int]] = [[] for _ in self.arcs_of]
        level[source] = 0
        layer = [source]
        head, capacity, cost = self.head, self.capacity, self.cost
        depth = 0
        while layer and level[sink] < 0:
            following = []
            depth += 1
            for node in layer:
                height = potential[node]
                admissible = forward[node]
                for arc in self.arcs_of[node]:
                    if capacity[arc] > 0:
                        nxt = head[arc]
                        if cost[arc] + height == potential[nxt]:
                            if level[nxt] < 0:
                                level[nxt] = depth
                                following.append(nxt)
                                admissible.append(arc)
                            elif level[nxt] == depth:
                                admissible.append(arc)
            layer = following
        if level[sink] < 0:
            return []
        return forward

    def _push_blocking_flow(self, source: int, sink: int, potential: list[int]) -> int:
        """One Dinic round on the admissible graph; returns the value pushed (0: none left).
        Depth-first with an explicit stack; each node's arc list is consumed from its end,
        so an arc found saturated or leading to a dead end is never looked at again; after
        each augmentation the search resumes where the path was cut, not at the source."""
        forward = self._list_admissible_arcs(source, sink, potential)
        if not forward:
            return 0
        head, capacity = self.head, self.capacity
        pushed_total = 0
        nodes, path = [source], []
        while True:
            node = nodes[-1]
            if node == sink:
                pushed = min(map(capacity.__getitem__, path))
                for arc in path:
                    capacity[arc] -= pushed
                    capacity[arc ^ 1] += pushed
                pushed_total += pushed
                # Back to the tail of the first arc it saturated; the rest stays usable.
                first_full = list(map(capacity.__getitem__, path)).index(0)
                del nodes[first_full + 1 :], path[first_full:]
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


# --- 3-4. Fill and repair, with incremental net positions --------------------------------------


class _State:
    """The settled set, each account's room left (liquidity - net outflow), and per account and
    priority level its settled and waiting outgoing payments, as lists of payment indexes
    sorted by amount (ties in any order), so a bisect keyed by amount finds the largest that
    fits or the smallest that clears a shortfall."""

    def __init__(self, problem: _Problem, settled: list[bool], room: list[int]) -> None:
        self.problem = problem
        self.amount = problem.amount
        self.amount_of = problem.amount.__getitem__  # the key of every sorted list here
        self.levels_count = max(problem.level) + 1
        self.room = room
        self.settled = settled
        levels = range(self.levels_count)
        self.sent_keys: list[list[list[int]]] = [[[] for _ in levels] for _ in room]
        self.waiting_keys: list[list[list[int]]] = [[[] for _ in levels] for _ in room]
        sent, waiting = self.sent_keys, self.waiting_keys
        debtor, level = problem.debtor, problem.level
        for k in sorted(range(len(settled)), key=self.amount_of):  # so each list is born sorted
            (sent if settled[k] else waiting)[debtor[k]][level[k]].append(k)

    def _move(self, k: int, source: list[int], target: list[int]) -> None:
        """Payment k out of one sorted list into another."""
        amount_of = self.amount_of
        position = bisect_left(source, amount_of(k), key=amount_of)
        while source[position] != k:  # past the others of the same amount
            position += 1
        del source[position]
        insort(target, k, key=amount_of)

    def unsettle(self, k: int) -> None:
        i, level, amount = self.problem.debtor[k], self.problem.level[k], self.amount[k]
        self._move(k, self.sent_keys[i][level], self.waiting_keys[i][level])
        self.settled[k] = False
        self.room[i] += amount
        self.room[self.problem.creditor[k]] -= amount

    def settle(self, k: int) -> None:
        i, level, amount = self.problem.debtor[k], self.problem.level[k], self.amount[k]
        self._move(k, self.waiting_keys[i][level], self.sent_keys[i][level])
        self.settled[k] = True
        self.room[i] -= amount
        self.room[self.problem.creditor[k]] += amount

    def close_priority(self) -> None:
        """Make every debtor keep its priority order: it settles all of its more urgent
        levels, part of one level (its cut-off) and nothing less urgent. Per debtor whose
        settled payments pass a waiting more urgent one, the cut-off is chosen by the value
        it keeps: settling the waiting payments above it and taking back the settled ones
        below it, less what it must then give up at the cut-off level to stay covered and
        OVERDRAFT_WEIGHT per unit the take-backs overdraw creditors. Accounts left short go
        to repair."""
        if self.levels_count == 1:
            return
        for i in range(len(self.room)):
            open_level, top_level = self.open_level(i), self.top_sent_level(i)
            if top_level <= open_level:
                continue
            cut_off = self.choose_cut_off(i, open_level, top_level)
            for level in range(cut_off):
                for k in list(self.waiting_keys[i][level]):
                    self.settle(k)
            for level in range(cut_off + 1, self.levels_count):
                for k in list(self.sent_keys[i][level]):
                    self.unsettle(k)

    def choose_cut_off(self, i: int, open_level: int, top_level: int) -> int:
        """The level, from the most urgent waiting one to the least urgent settled one, up
        to which account i should settle, by the value it keeps (see close_priority)."""
        amount, creditor, room = self.amount, self.problem.creditor, self.room
        waiting, sent = self.waiting_keys[i], self.sent_keys[i]
        best, best_score = open_level, None
        for cut_off in range(open_level, top_level + 1):
            added = [k for level in range(cut_off) for k in waiting[level]]
            dropped = [k for level in range(cut_off + 1, self.levels_count) for k in sent[level]]
            added_value = sum(map(amount.__getitem__, added))
            dropped_value = sum(map(amount.__getitem__, dropped))
            left = room[i] - added_value + dropped_value
            if left + sum(map(amount.__getitem__, sent[cut_off])) < 0:
                continue  # even giving up its whole cut-off level would not cover it
            lost: dict[int, int] = {}  # per creditor
            for k in dropped:
                lost[creditor[k]] = lost.get(creditor[k], 0) + amount[k]
            for k in added:
                lost[creditor[k]] = lost.get(creditor[k], 0) - amount[k]
            overdraft = sum(max(0, value - room[j]) for j, value in lost.items())
            score = added_value - dropped_value - max(0, -left) - OVERDRAFT_WEIGHT * overdraft
            if best_score is None or score > best_score:
                best, best_score = cut_off, score
        return best

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

    def repair(self) -> int:
        """Until no account is below its floor: a short account is paid what its debtors can
        cheaply make room for (`pull_in`), then takes back payments (`choose_take_back`).
        Returns the value taken back."""
        short = [i for i, room in enumerate(self.room) if room < 0]
        waiting_in = self.list_waiting_incoming() if short else []
        taken_back = 0
        while short:
            i = short.pop()
            while self.room[i] < 0 and self.pull_in(i, waiting_in[i]):
                pass
            while self.room[i] < 0:
                for k in self.choose_take_back(i):
                    creditor = self.problem.creditor[k]
                    self.unsettle(k)
                    taken_back += self.amount[k]
                    if self.room[creditor] < 0:
                        short.append(creditor)
        return taken_back

    def list_waiting_incoming(self) -> list[list[int]]:
        """Per account: the waiting payments owed to it, largest first."""
        waiting_in: list[list[int]] = [[] for _ in self.room]
        creditor = self.problem.creditor
        for keys_by_level in self.waiting_keys:
            for keys in keys_by_level:
                for k in keys:
                    waiting_in[creditor[k]].append(k)
        for keys in waiting_in:
            keys.sort(key=self.amount_of, reverse=True)
        return waiting_in

    def pull_in(self, i: int, waiting_in: list[int]) -> bool:
        """Relieve short account i by settling a payment owed to it, its debtor making room
        by giving up smaller payments to creditors who have the room; done only when the
        value given up, net of the payment, is less than the relief (taking back costs about
        the relief). Returns whether it did."""
        debtor_of, need = self.problem.debtor, -self.room[i]
        best, best_score, tried = None, 0, 0
        freeable_of: dict[int, tuple[list[int], list[int]]] = {}  # rooms hold still here
        for k in waiting_in:
            if tried == REPAIR_CANDIDATES_MAX:
                break
            if self.settled[k]:
                continue
            debtor, level, amount = debtor_of[k], self.problem.level[k], self.amount[k]
            if self.levels_count > 1 and (
                level != self.open_level(debtor) or self.top_sent_level(debtor) not in (level, -1)
            ):
                continue  # in priority mode it could not settle without breaking the closure
            tried += 1
            shortfall = amount - self.room[debtor]  # what the debtor must give up at least
            if max(shortfall, 0) - amount - min(amount, need) >= best_score:
                continue  # cannot beat the best so far, whatever it gives up
            if debtor not in freeable_of:  # later candidates of it are smaller: the limit
                freeable_of[debtor] = list_freeable(self, debtor, level, amount)
            freeable, freed = freeable_of[debtor]
            position = bisect_left(freed, shortfall)
            if shortfall <= 0:
                given, value_given = [], 0
            elif position < len(freed):
                given, value_given = freeable[: position + 1], freed[position]
            else:
                continue
            score = value_given - amount - min(amount, need)
            if score < best_score:
                best, best_score = (k, given), score
        if best is None:
            return False
        for small in best[1]:
            self.unsettle(small)
        self.settle(best[0])
        return True

    def choose_take_back(self, i: int) -> list[int]:
        """Payments to take back from short account i, from its least urgent settled level.
        If it can: the least value that clears it owed to creditors with the room to lose it
        (nothing cascades). Else the cheapest of: one payment among the smallest that clear
        the shortfall, or all those safe ones and one more for the rest; the cost is the
        value taken back plus OVERDRAFT_WEIGHT times what the last one overdraws its
        creditor, who must take back in turn. The largest, when nothing clears it. Without
        priority, also what `spread_take_back` finds, if it costs less (counted per
        creditor): several smaller payments overshoot the shortfall less than the one that
        clears it. With priority that moved single results too far both ways
        (docs/settlement.md)."""
        keys = self.sent_keys[i][self.top_sent_level(i)]
        assert keys, "a short account always has a settled outgoing payment"
        creditor, room, amount = self.problem.creditor, self.room, self.amount
        need = -room[i]
        safe = [k for k in reversed(keys) if room[creditor[k]] >= amount[k]]
        safe_total = sum(map(amount.__getitem__, safe))
        if safe_total >= need:
            return cut_at_least(amount, safe, need)
        best, best_cost = [keys[-1]], None
        options: list[tuple[list[int], int]] = [([], 0)]
        if safe:
            options.append((safe, safe_total))  # all the safe ones, and one more for the rest
        for base, base_value in options:
            start = bisect_left(keys, need - base_value, key=amount.__getitem__)
            for k in keys[start : start + REPAIR_CANDIDATES_MAX]:
                overdraft = amount[k] - room[creditor[k]]
                if overdraft <= 0 and base:
                    continue  # one of the safe ones already
                cost = base_value + amount[k] + OVERDRAFT_WEIGHT * max(0, overdraft)
                if best_cost is None or cost < best_cost:
                    best, best_cost = [*base, k], cost
        if self.levels_count > 1:
            return best
        spread = self.spread_take_back(keys, need)
        if spread and self.cost_take_back(spread) < self.cost_take_back(best):
            return spread
        return best

    def spread_take_back(self, keys: list[int], need: int) -> list[int]:
        """Payments among `keys` worth at least `need`, owed to the creditors with the most
        room first (per creditor the smaller first), then trimmed to little more than `need`;
        none if all of them are not worth `need`."""
        creditor, room, amount = self.problem.creditor, self.room, self.amount
        rooms = [room[j] for j in map(creditor.__getitem__, keys)]
        order = sorted(range(len(keys)), key=rooms.__getitem__, reverse=True)  # stable
        chosen = list(map(keys.__getitem__, order))
        position = bisect_left(list(accumulate(map(amount.__getitem__, chosen))), need)
        if position == len(chosen):
            return []
        del chosen[position + 1 :]
        chosen.sort(key=amount.__getitem__, reverse=True)
        return cut_at_least(amount, chosen, need)

    def cost_take_back(self, keys: list[int]) -> int:
        """Value taken back plus OVERDRAFT_WEIGHT per unit it overdraws the creditors."""
        creditor, room, amount = self.problem.creditor, self.room, self.amount
        lost: dict[int, int] = {}
        for k in keys:
            lost[creditor[k]] = lost.get(creditor[k], 0) + amount[k]
        overdraft = sum(max(0, value - max(room[j], 0)) for j, value in lost.items())
        return sum(map(amount.__getitem__, keys)) + OVERDRAFT_WEIGHT * overdraft

    def fill(self, accounts: list[int] | None = None) -> None:
        """Accounts with room settle their waiting payments, largest that fits first; a
        creditor's room grows, so it is looked at again."""
        pending = list(range(len(self.room))) if accounts is None else accounts
        creditor = self.problem.creditor
        while pending:
            i = pending.pop()
            while True:
                k = self.find_largest_fitting(i)
                if k is None:
                    break
                self.settle(k)
                pending.append(creditor[k])

    def find_largest_fitting(self, i: int) -> int | None:
        level = self.open_level(i)
        if level == self.levels_count:
            return None
        keys = self.waiting_keys[i][level]
        position = bisect_right(keys, self.room[i], key=self.amount.__getitem__)
        return keys[position - 1] if position > 0 else None


# --- 5. Exchange: one larger waiting payment for smaller settled ones --------------------------


def exchange_payments(state: _State, budget: _Budget) -> None:
    """Rounds over the accounts: a waiting payment enters when taking back smaller settled
    payments of the same debtor, whose creditors have the room to lose them, frees enough
    room; each such swap gains value. A round that gains nothing ends the phase. What an
    account can swap depends only on its own payments and room and on its creditors' rooms,
    so after the first round only the accounts whose room changed, and the debtors of those
    whose room grew (a creditor with less room can only lose fewer payments), are looked at
    again."""
    debtors_of: list[set[int]] = [set() for _ in state.room]
    for i, j in state.problem.pairs:
        debtors_of[j].add(i)
    accounts: Iterable[int] = range(len(state.room))
    while budget.spend():
        before = list(state.room)
        touched: list[int] = []
        for i in accounts:
            touched += exchange_at(state, i)
        if not touched:
            return
        state.fill(touched)
        changed = compress(range(len(before)), map(ne, before, state.room))
        richer = compress(range(len(before)), map(lt, before, state.room))
        accounts = sorted(set(changed).union(*map(debtors_of.__getitem__, richer)))


def exchange_at(state: _State, i: int) -> list[int]:
    """Swaps at debtor i, its waiting payments largest first; returns the accounts whose
    room grew."""
    level = state.open_level(i)
    if level == state.levels_count or level != state.top_sent_level(i):
        return []  # in priority mode only the open level may trade, so the closure holds
    amount, waiting, sent = state.amount, state.waiting_keys[i][level], state.sent_keys[i][level]
    if amount[sent[0]] >= amount[waiting[-1]]:
        return []  # giving up even its smallest payment frees as much as it would gain
    touched: list[int] = []
    freeable, freed = list_freeable(state, i, level, amount[waiting[-1]])
    for k in reversed(list(waiting)):
        if not freed:
            break  # nothing i could give up
        need = amount[k] - state.room[i]
        position = bisect_left(freed, need)
        if need <= 0 or position == len(freed) or freed[position] >= amount[k]:
            continue
        for small in freeable[: position + 1]:
            state.unsettle(small)
        state.settle(k)
        touched += (state.problem.creditor[k], i)
        freeable, freed = list_freeable(state, i, level, amount[k])
    return touched


def list_freeable(
    state: _State, i: int, level: int, limit: int
) -> tuple[list[int], list[int]]:
    """The smallest settled payments of i whose creditors can lose them all, with the
    running total of their values, up to the first total of at least `limit` (giving up
    more would not pay for what is gained)."""
    creditor_of, room, amount = state.problem.creditor, state.room, state.amount
    lost: dict[int, int] = {}
    lost_get = lost.get
    freeable: list[int] = []
    freed: list[int] = []
    total = 0
    for small in state.sent_keys[i][level][:EXCHANGE_SCAN_MAX]:
        value, creditor = amount[small], creditor_of[small]
        after = lost_get(creditor, 0) + value
        if room[creditor] >= after:
            lost[creditor] = after
            total += value
            freeable.append(small)
            freed.append(total)
            if total >= limit:
                break
    return freeable, freed
