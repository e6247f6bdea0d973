"""Gridlock resolution against the HiGHS LP bound and a plain FIFO RTGS, in the same run.

    .venv/bin/python bench/gridlock.py            # full run: 50 x 2,000 and 100 x 20,000
    .venv/bin/python bench/gridlock.py --quick    # 30 banks x 500 payments, one seed
    .venv/bin/python bench/gridlock.py --mip-s 10 # also HiGHS's MIPs (<= 2,000 payments)

Instances are seeded: Zipf-weighted banks (a few large banks send and receive most payments),
lognormal amounts, liquidity (room above the floors, part of it credit lines) of 5%, 20% and
50% of the gross queued value, shared by the banks in proportion to their outgoing value times
a random factor; `--seeds` instances per size and liquidity. Per instance:
- LP bound: HiGHS on the relaxation (x_p in [0, 1], maximise value, one row per account:
  net outflow <= balance - floor); its time is passModel + run, the matrix built beforehand.
  The bound `resolve_gridlock` computes itself must equal it (checked);
- ours: `resolve_gridlock`, timed on the same snapshot; also with respect_priority=True,
  judged against its own relaxation, which keeps each debtor's priority order (a payment
  settles at most as far as every more urgent payment of its debtor);
- FIFO: the queue in sequence order, a payment settles when its debtor covers it, passes
  repeated until nothing more settles (an RTGS without liquidity saving);
- MIP (optional): HiGHS's integer optimum within a time limit: the LP bound is not reachable
  when the integrality gap is wide (few payments per bank, heavy tails, little liquidity);
  also the integer problem with the priority order, whose solver often runs to the limit (its
  best solution then understates the optimum, so ours against it is flattering).
Times are the best of `--repeat` runs, ours and HiGHS's alternating. Liquidity efficiency =
value settled / liquidity provided; the liquidity is the same for both, so the efficiency
ratio is a value ratio.
The last line is one JSON object with the worst ratios and the per-instance figures.
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import highspy
import numpy as np
from rich.console import Console
from rich.table import Table

from _options import parser
from scopay.domain.gridlock import QueuedPayment, resolve_gridlock

SEED = 20261129
AMOUNT_MEDIAN_MINOR = 2_500_000  # 25,000.00
AMOUNT_SIGMA = 1.5  # lognormal shape: the largest of 20,000 is about 300x the median
ZIPF_EXPONENT = 1.1  # bank size ~ 1 / rank^1.1: the top 5 of 100 banks carry about half
PRIORITY_WEIGHTS = (0.05, 0.15, 0.80)  # urgent, high, normal
CREDIT_LINE_SHARE_MAX = 0.5  # up to half of a bank's room may be an intraday credit line
LIQUIDITY_SHARES = (0.05, 0.20, 0.50)
FULL_SIZES = ((50, 2_000), (100, 20_000))
QUICK_SIZES = ((30, 500),)
MIP_PAYMENTS_MAX = 2_000  # larger MIPs do not get near optimal within a bench's patience
console = Console(stderr=True, width=150)


@dataclass(frozen=True, slots=True)
class Instance:
    name: str
    balances: dict[int, int]
    floors: dict[int, int]
    queue: list[QueuedPayment]
    liquidity_minor: int


def build_instance(banks: int, payments: int, liquidity_share: float, seed: int) -> Instance:
    rng = random.Random(seed)
    accounts = list(range(1, banks + 1))
    weights = [1 / rank**ZIPF_EXPONENT for rank in range(1, banks + 1)]
    queue = [_draw_payment(rng, accounts, weights, sequence) for sequence in range(payments)]
    gross = sum(p.amount_minor for p in queue)
    sent = dict.fromkeys(accounts, 0)
    for p in queue:
        sent[p.debtor] += p.amount_minor
    shares = {a: sent[a] * rng.uniform(0.5, 1.5) for a in accounts}
    scale = liquidity_share * gross / sum(shares.values())
    balances, floors = {}, {}
    for a in accounts:
        room = int(shares[a] * scale)
        credit_line = int(room * rng.uniform(0, CREDIT_LINE_SHARE_MAX))
        floors[a] = -credit_line
        balances[a] = room - credit_line
    liquidity = sum(balances[a] - floors[a] for a in accounts)
    name = f"{banks}x{payments} @{liquidity_share:.0%}"
    return Instance(name, balances, floors, queue, liquidity)


def _draw_payment(
    rng: random.Random, accounts: list[int], weights: list[float], sequence: int
) -> QueuedPayment:
    debtor, creditor = rng.choices(accounts, weights, k=2)
    while creditor == debtor:
        creditor = rng.choices(accounts, weights)[0]
    amount = max(1, round(AMOUNT_MEDIAN_MINOR * math.exp(rng.gauss(0, AMOUNT_SIGMA))))
    priority = rng.choices((0, 1, 2), PRIORITY_WEIGHTS)[0]
    return QueuedPayment(f"P{sequence}", debtor, creditor, amount, priority, sequence)


def build_lp(instance: Instance) -> highspy.HighsLp:
    accounts = sorted(instance.balances)
    row = {a: r for r, a in enumerate(accounts)}
    queue = instance.queue
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = len(queue), len(accounts)
    lp.sense_ = highspy.ObjSense.kMaximize
    lp.col_cost_ = np.array([p.amount_minor for p in queue], dtype=np.float64)
    lp.col_lower_ = np.zeros(len(queue))
    lp.col_upper_ = np.ones(len(queue))
    lp.row_lower_ = np.full(len(accounts), -highspy.kHighsInf)
    lp.row_upper_ = np.array(
        [max(instance.balances[a] - instance.floors[a], 0) for a in accounts], dtype=np.float64
    )
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = np.arange(0, 2 * len(queue) + 1, 2, dtype=np.int32)
    lp.a_matrix_.index_ = np.array(
        [r for p in queue for r in (row[p.debtor], row[p.creditor])], dtype=np.int32
    )
    lp.a_matrix_.value_ = np.array(
        [v for p in queue for v in (p.amount_minor, -p.amount_minor)], dtype=np.float64
    )
    return lp


def build_priority_lp(instance: Instance) -> highspy.HighsLp:
    """The relaxation with each debtor's priority order kept, a bound for
    respect_priority=True: a payment settles at most as far as every more urgent payment of
    its debtor does. One gate z per debtor and level above the most urgent:
    x_p <= z(debtor, level of p) <= x_q for each more urgent q of the same debtor."""
    base = build_lp(instance)
    queue = instance.queue
    levels_by_debtor: dict[int, set[int]] = {}
    for p in queue:
        levels_by_debtor.setdefault(p.debtor, set()).add(p.priority)
    gates = {(d, level): len(queue) + n for n, (d, level) in enumerate(
        (d, level) for d, levels in sorted(levels_by_debtor.items())
        for level in sorted(levels) if level > min(levels))}
    rows: list[tuple[int, int]] = []  # (column held lower, column held higher): lower <= higher
    for k, p in enumerate(queue):
        if (p.debtor, p.priority) in gates:
            rows.append((k, gates[(p.debtor, p.priority)]))
        for (d, level), gate in gates.items():
            if d == p.debtor and p.priority < level:
                rows.append((gate, k))
    columns = len(queue) + len(gates)
    entries: list[list[tuple[int, float]]] = [[] for _ in range(columns)]
    for k in range(len(queue)):
        start, end = base.a_matrix_.start_[k], base.a_matrix_.start_[k + 1]
        entries[k] = list(zip(base.a_matrix_.index_[start:end],
                              base.a_matrix_.value_[start:end], strict=True))
    for n, (lower, higher) in enumerate(rows):
        entries[lower].append((base.num_row_ + n, 1.0))
        entries[higher].append((base.num_row_ + n, -1.0))
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = columns, base.num_row_ + len(rows)
    lp.sense_ = highspy.ObjSense.kMaximize
    lp.col_cost_ = np.concatenate([base.col_cost_, np.zeros(len(gates))])
    lp.col_lower_ = np.zeros(columns)
    lp.col_upper_ = np.ones(columns)
    lp.row_lower_ = np.full(lp.num_row_, -highspy.kHighsInf)
    lp.row_upper_ = np.concatenate([base.row_upper_, np.zeros(len(rows))])
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = np.cumsum([0] + [len(e) for e in entries], dtype=np.int32)
    lp.a_matrix_.index_ = np.array([r for e in entries for r, _ in e], dtype=np.int32)
    lp.a_matrix_.value_ = np.array([v for e in entries for _, v in e], dtype=np.float64)
    return lp


def solve_lp(lp: highspy.HighsLp) -> float:
    highs = highspy.Highs()
    highs.setOptionValue("output_flag", False)
    highs.passModel(lp)
    highs.run()
    assert highs.getModelStatus() == highspy.HighsModelStatus.kOptimal
    return highs.getInfo().objective_function_value


def solve_mip(lp: highspy.HighsLp, time_limit_s: float) -> tuple[float, float]:
    """HiGHS's best integer value and its proven upper bound within the time limit."""
    lp.integrality_ = [highspy.HighsVarType.kInteger] * lp.num_col_
    highs = highspy.Highs()
    highs.setOptionValue("output_flag", False)
    highs.setOptionValue("time_limit", time_limit_s)
    highs.passModel(lp)
    highs.run()
    info = highs.getInfo()
    return info.objective_function_value, info.mip_dual_bound


def settle_fifo(instance: Instance) -> int:
    """Value an RTGS without liquidity saving settles: FIFO passes until nothing moves."""
    room = {a: instance.balances[a] - instance.floors[a] for a in instance.balances}
    waiting = sorted(instance.queue, key=lambda p: p.sequence)
    value = 0
    while True:
        left = []
        for p in waiting:
            if room[p.debtor] >= p.amount_minor:
                room[p.debtor] -= p.amount_minor
                room[p.creditor] += p.amount_minor
                value += p.amount_minor
            else:
                left.append(p)
        if len(left) == len(waiting):
            return value
        waiting = left


def time_best(run: Callable[[], object], repeat: int) -> tuple[object, float]:
    best, result = math.inf, None
    for _ in range(repeat):
        started = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - started)
    return result, best


def time_both(
    first: Callable[[], object], second: Callable[[], object], repeat: int
) -> tuple[tuple[object, float], tuple[object, float]]:
    """Best times of two solvers, their runs alternating: on a shared machine the load moves
    within seconds, and back-to-back blocks would hand it to one of them."""
    timed = [time_best(run, 1) for _ in range(repeat) for run in (first, second)]
    return min(timed[0::2], key=lambda t: t[1]), min(timed[1::2], key=lambda t: t[1])


def measure(instance: Instance, repeat: int, mip_s: float) -> dict[str, object]:
    lp = build_lp(instance)
    (bound, highs_s), (resolution, ours_s) = time_both(
        lambda: solve_lp(lp),
        lambda: resolve_gridlock(instance.balances, instance.floors, instance.queue),
        repeat,
    )
    assert resolution.bound_minor is not None
    assert abs(resolution.bound_minor - bound) <= 1e-9 * bound + 1, "LP bounds differ"
    with_priority = resolve_gridlock(
        instance.balances, instance.floors, instance.queue, respect_priority=True
    )
    priority_lp = build_priority_lp(instance)
    priority_bound = solve_lp(priority_lp)
    assert with_priority.value_minor <= priority_bound * (1 + 1e-9) + 1, "above its bound"
    fifo_value = settle_fifo(instance)
    gross = sum(p.amount_minor for p in instance.queue)
    row = {
        "instance": instance.name,
        "payments": len(instance.queue),
        "gross_minor": gross,
        "lp_bound_minor": round(bound),
        "ours_minor": resolution.value_minor,
        "fifo_minor": fifo_value,
        "quality": resolution.value_minor / bound if bound > 0 else 1.0,
        "quality_with_priority": with_priority.value_minor / bound if bound > 0 else 1.0,
        "priority_bound_vs_lp": priority_bound / bound if bound > 0 else 1.0,
        "quality_with_priority_vs_its_bound": (
            with_priority.value_minor / priority_bound if priority_bound > 0 else 1.0),
        "ours_s": ours_s,
        "highs_s": highs_s,
        "runtime_ratio": ours_s / highs_s,
        "efficiency_vs_fifo": resolution.value_minor / fifo_value if fifo_value else math.inf,
        "iterations": resolution.iterations,
    }
    if mip_s > 0 and len(instance.queue) <= MIP_PAYMENTS_MAX:
        incumbent, mip_bound = solve_mip(lp, mip_s)
        row["mip_incumbent_vs_lp"] = incumbent / bound
        row["mip_bound_vs_lp"] = mip_bound / bound
        row["quality_vs_mip"] = resolution.value_minor / incumbent
        priority_incumbent, _ = solve_mip(priority_lp, mip_s)
        row["quality_with_priority_vs_mip"] = (
            with_priority.value_minor / priority_incumbent if priority_incumbent > 0 else 1.0)
    return row


def print_table(rows: Sequence[dict[str, object]]) -> None:
    table = Table(title="Gridlock resolution vs HiGHS LP bound and FIFO RTGS")
    columns = ("instance", "ours/LP", "ours/MIP", "MIP/LP", "with prio/LP",
               "with prio/its bound", "ours s", "HiGHS s", "time ratio", "eff. vs FIFO",
               "iters")
    for column in columns:
        table.add_column(column, justify="right")
    for r in rows:
        table.add_row(
            str(r["instance"]), f"{r['quality']:.4f}", _format(r.get("quality_vs_mip")),
            _format(r.get("mip_incumbent_vs_lp")), f"{r['quality_with_priority']:.4f}",
            f"{r['quality_with_priority_vs_its_bound']:.4f}", f"{r['ours_s']:.4f}",
            f"{r['highs_s']:.4f}", f"{r['runtime_ratio']:.2f}",
            f"{r['efficiency_vs_fifo']:.2f}", str(r["iterations"]),
        )
    console.print(table)


def _format(ratio: object) -> str:
    return "-" if ratio is None else f"{ratio:.4f}"


def summarise(rows: Sequence[dict[str, object]]) -> dict[str, object]:
    """The worst ratios first, then (with --mip-s) ours against the integer optimum."""
    summary: dict[str, object] = _worst(
        rows, ("quality", "quality_with_priority_vs_its_bound", "quality_vs_mip",
               "quality_with_priority_vs_mip"), ("runtime_ratio",))
    summary["efficiency_vs_fifo"] = min(r["efficiency_vs_fifo"] for r in rows)
    summary["quality_mean"] = sum(r["quality"] for r in rows) / len(rows)
    with_mip = [r for r in rows if "quality_vs_mip" in r]
    if with_mip:
        summary["mip_vs_lp_min"] = min(r["mip_incumbent_vs_lp"] for r in with_mip)
        # How far HiGHS's incumbent may be from the integer optimum (0: proven optimal).
        summary["mip_gap_max"] = max(
            r["mip_bound_vs_lp"] / r["mip_incumbent_vs_lp"] - 1 for r in with_mip
        )
    summary["by_size"] = summarise_by_size(rows)
    summary["instances"] = rows
    return summary


def summarise_by_size(rows: Sequence[dict[str, object]]) -> dict[str, dict[str, float]]:
    """The worst ratios per queue size ("50x2000"), the goals being judged per size."""
    sizes: dict[str, dict[str, float]] = {}
    for size in dict.fromkeys(str(r["instance"]).split(" @")[0] for r in rows):
        of_size = [r for r in rows if str(r["instance"]).startswith(size + " @")]
        sizes[size] = _worst(
            of_size, ("quality", "quality_with_priority", "quality_with_priority_vs_its_bound",
                      "quality_vs_mip", "quality_with_priority_vs_mip"), ("runtime_ratio",))
    return sizes


def _worst(rows: Sequence[dict[str, object]], lowest: Sequence[str],
           highest: Sequence[str]) -> dict[str, float]:
    """`name_min` of each figure where low is bad and `name_max` where high is bad, over the
    rows that have the figure (the MIP ones only with --mip-s)."""
    worst: dict[str, float] = {}
    for names, pick, suffix in ((lowest, min, "_min"), (highest, max, "_max")):
        for name in names:
            values = [r[name] for r in rows if name in r]
            if values:
                worst[name + suffix] = pick(values)
    return worst


def main(argv: Sequence[str]) -> None:
    options = parser(__doc__, "one small size, one seed")
    options.add_argument("--seeds", type=int, default=3, help="instances per size and liquidity")
    options.add_argument("--repeat", type=int, default=5, help="timed runs per solver (best)")
    options.add_argument("--mip-s", type=float, default=0.0,
                        help="also solve the MIP, this many seconds each (0: no)")
    args = options.parse_args(argv)
    sizes, seeds = (QUICK_SIZES, 1) if args.quick else (FULL_SIZES, args.seeds)
    rows = []
    for n, (banks, payments) in enumerate(sizes):
        for m, share in enumerate(LIQUIDITY_SHARES):
            for seed in range(seeds):
                instance = build_instance(banks, payments, share, SEED + 100 * seed + 10 * n + m)
                instance = replace(instance, name=f"{instance.name} #{seed}")
                rows.append(measure(instance, args.repeat, args.mip_s))
                console.log(f"{instance.name}: done")
    print_table(rows)
    print(json.dumps(summarise(rows)))


if __name__ == "__main__":
    main(sys.argv[1:])
