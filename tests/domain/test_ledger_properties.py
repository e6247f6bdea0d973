"""Properties of the ledger over random streams of transfer batches.

Each example funds the banks, then runs batches of new transfers (posted, pending, post,
void, linked chains, chains left open), resubmissions of earlier transfers with the same or
changed content and duplicates inside a batch, at random non-decreasing times so that
reservations expire. After every batch: the invariants hold, balances equal the fold of the
journal so far, chains are all-or-none, every id keeps its first outcome, and no reservation
outlives its timeout.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from hypothesis import given, settings
from hypothesis import strategies as st

from scopay.domain.account import Account, AccountKind
from scopay.domain.ledger import (
    JournalEntry,
    Ledger,
    Transfer,
    TransferKind,
    TransferOutcome,
    fold_journal,
    invariant_violations,
)
from scopay.domain.rejection import Rejection

# The ledger does not look at owners: the KWD agent stands in for any issuer of a 3-decimal
# currency (participant rules are tested elsewhere).
ACCOUNTS = (
    Account(1, "PBOCCNBJ", "CNY", AccountKind.ISSUANCE),
    Account(2, "CBKUKWKW", "KWD", AccountKind.ISSUANCE),
    Account(11, "ICBKCNBJ", "CNY"),
    Account(12, "ABOCCNBJ", "CNY", credit_line_minor=50_000),
    Account(13, "BKCHCNBJ", "CNY"),
    Account(21, "NBOKKWKW", "KWD", credit_line_minor=20_000),
    Account(22, "KFHOKWKW", "KWD"),
)
CURRENCY_OF = {a.id: a.currency for a in ACCOUNTS}
ACCOUNT_IDS = sorted(CURRENCY_OF)
FUNDING = [
    Transfer(f"fund-{a.id}", 1 if a.currency == "CNY" else 2, a.id, 100_000, a.currency)
    for a in ACCOUNTS if a.kind == AccountKind.SETTLEMENT
]
T0_US = 1_000_000
KINDS = [TransferKind.POSTED] * 4 + [TransferKind.PENDING] * 2 + [
    TransferKind.POST_PENDING, TransferKind.VOID_PENDING]
UNIT_SHAPES = ["new"] * 5 + ["chain"] * 2 + ["resubmit", "resubmit_changed", "duplicate"]


@dataclass
class Stream:
    """What the test remembers of everything submitted so far."""

    ledger: Ledger
    journal: list[JournalEntry]
    first: dict[str, TransferOutcome] = field(default_factory=dict)
    units: list[list[Transfer]] = field(default_factory=list)  # closed units, as submitted
    pending_ids: list[str] = field(default_factory=list)
    open_reservations: dict[str, int] = field(default_factory=dict)  # id -> expires at (0: never)
    next_id: int = 0

    def fresh_id(self) -> str:
        self.next_id += 1
        return f"t{self.next_id}"


def balances_of(ledger: Ledger) -> dict[int, tuple[int, int, int]]:
    return {i: (b.posted_minor, b.debits_pending_minor, b.credits_pending_minor)
            for i, b in ledger.balances.items()}


def draw_amount(data, low: int, high: int) -> int:
    """Mostly a valid amount, sometimes zero (refused for posted/pending, "all" for post)."""
    if data.draw(st.integers(0, 9)) == 0:
        return 0
    return data.draw(st.integers(low, high))


def draw_new_transfer(data, stream: Stream) -> Transfer:
    kind = data.draw(st.sampled_from(KINDS))
    transfer_id = stream.fresh_id()
    if kind in (TransferKind.POST_PENDING, TransferKind.VOID_PENDING):
        # Mostly a reservation still open; sometimes any pending ever sent, or none at all.
        live = stream.ledger.pending_ids()
        choices = live * 3 + stream.pending_ids + ["no-such-pending"]
        pending_id = data.draw(st.sampled_from(choices))
        amount = draw_amount(data, 1, 100_000) if kind is TransferKind.POST_PENDING else 0
        return Transfer(transfer_id, 0, 0, amount, "", kind, pending_id)
    debit = data.draw(st.sampled_from(ACCOUNT_IDS))
    same_currency = [i for i in ACCOUNT_IDS if CURRENCY_OF[i] == CURRENCY_OF[debit] and i != debit]
    credit = data.draw(st.sampled_from(same_currency * 4 + ACCOUNT_IDS))
    currency = data.draw(st.sampled_from([CURRENCY_OF[debit]] * 8 + ["CNY", "KWD"]))
    amount = draw_amount(data, 1, 150_000)
    timeout_s = 0
    if kind is TransferKind.PENDING:
        timeout_s = data.draw(st.sampled_from([0, 1, 1, 2, 5]))
        stream.pending_ids.append(transfer_id)
    return Transfer(transfer_id, debit, credit, amount, currency, kind, timeout_s=timeout_s)


def draw_chain(data, stream: Stream, closed: bool) -> list[Transfer]:
    size = data.draw(st.integers(2, 3))
    members = [replace(draw_new_transfer(data, stream), linked=True) for _ in range(size)]
    if closed:
        members[-1] = replace(members[-1], linked=False)
    return members


def draw_changed(data, stream: Stream) -> tuple[Transfer, Rejection] | None:
    """An earlier single posted/pending transfer under its id, with one field changed."""
    singles = [unit[0] for unit in stream.units if len(unit) == 1
               and unit[0].kind in (TransferKind.POSTED, TransferKind.PENDING)]
    if not singles:
        return None
    earlier = data.draw(st.sampled_from(singles))
    if data.draw(st.booleans()):
        return replace(earlier, amount_minor=earlier.amount_minor + 1), (
            Rejection.EXISTS_WITH_DIFFERENT_AMOUNT)
    other = [i for i in ACCOUNT_IDS if i != earlier.credit_account_id]
    credit = data.draw(st.sampled_from(other))
    return replace(earlier, credit_account_id=credit), (
        Rejection.EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT)


@dataclass
class Batch:
    transfers: list[Transfer] = field(default_factory=list)
    new_chains: list[range] = field(default_factory=list)  # positions of chains of fresh ids
    open_chain: range | None = None
    resubmitted: list[int] = field(default_factory=list)  # positions with an earlier first
    changed: dict[int, Rejection] = field(default_factory=dict)
    duplicates: dict[int, int] = field(default_factory=dict)  # position -> first position
    new_units: list[list[Transfer]] = field(default_factory=list)

    def add(self, transfers: list[Transfer]) -> range:
        start = len(self.transfers)
        self.transfers.extend(transfers)
        return range(start, len(self.transfers))


def draw_batch(data, stream: Stream) -> Batch:
    batch = Batch()
    only_resubmissions = bool(stream.units) and data.draw(st.integers(0, 9)) == 0
    for _ in range(data.draw(st.integers(1, 6))):
        shape = "resubmit" if only_resubmissions else data.draw(st.sampled_from(UNIT_SHAPES))
        if shape == "resubmit" and stream.units:
            batch.resubmitted.extend(batch.add(data.draw(st.sampled_from(stream.units))))
        elif shape == "resubmit_changed" and (changed := draw_changed(data, stream)):
            transfer, rejection = changed
            batch.changed[batch.add([transfer])[0]] = rejection
        elif shape == "duplicate" and batch.new_units and len(batch.new_units[0]) == 1:
            first = batch.transfers.index(batch.new_units[0][0])
            batch.duplicates[batch.add(batch.new_units[0])[0]] = first
        elif shape == "chain":
            members = draw_chain(data, stream, closed=True)
            batch.new_chains.append(batch.add(members))
            batch.new_units.append(members)
        else:
            transfer = draw_new_transfer(data, stream)
            batch.add([transfer])
            batch.new_units.append([transfer])
    if not only_resubmissions and data.draw(st.integers(0, 7)) == 0:
        batch.open_chain = batch.add(draw_chain(data, stream, closed=False))
    return batch


def check_batch(stream: Stream, batch: Batch, outcomes: list[TransferOutcome],
                batch_journal: list[JournalEntry], timestamp_us: int) -> None:
    assert len(outcomes) == len(batch.transfers)
    known_before = set(stream.first)
    for position in batch.resubmitted:
        transfer = batch.transfers[position]
        assert outcomes[position] == stream.first[transfer.id], transfer
    for position, rejection in batch.changed.items():
        assert outcomes[position] == TransferOutcome(
            batch.transfers[position].id, rejection, timestamp_us)
    for position, first_position in batch.duplicates.items():
        assert outcomes[position] == outcomes[first_position]
    for chain in batch.new_chains:
        rejections = [outcomes[i].rejection for i in chain]
        if any(r is not None for r in rejections):
            assert None not in rejections, f"chain partly accepted: {rejections}"
            reasons = [r for r in rejections if r is not Rejection.LINKED_EVENT_FAILED]
            assert len(reasons) == 1, rejections
    if batch.open_chain is not None:
        assert all(outcomes[i].rejection is Rejection.LINKED_EVENT_CHAIN_OPEN
                   for i in batch.open_chain)
    accepted_new = {o.id for o in outcomes if o.accepted and o.id not in known_before}
    journal_ids = [entry.transfer.id for entry in batch_journal]
    assert sorted(journal_ids) == sorted(accepted_new), "journal differs from accepted"
    for transfer, outcome in zip(batch.transfers, outcomes, strict=True):
        if transfer.id not in known_before:
            assert outcome.timestamp_us == timestamp_us
            stream.first.setdefault(transfer.id, outcome)


def track_reservations(stream: Stream, entries: list[JournalEntry]) -> None:
    """Follow reservations through the journal; an expiry must come at or after its time."""
    for entry in entries:
        transfer = entry.transfer
        if transfer.kind is TransferKind.PENDING:
            timeout_us = transfer.timeout_s * 1_000_000
            stream.open_reservations[transfer.id] = entry.timestamp_us + timeout_us if (
                timeout_us) else 0
        elif transfer.kind is TransferKind.EXPIRE_PENDING:
            expires_at_us = stream.open_reservations.pop(transfer.pending_id)
            assert 0 < expires_at_us <= entry.timestamp_us
        elif transfer.kind is not TransferKind.POSTED:
            del stream.open_reservations[transfer.pending_id]


def check_expired(stream: Stream, now_us: int) -> None:
    """After the sweep at now_us, no reservation outlives its timeout."""
    assert all(not at or at > now_us for at in stream.open_reservations.values())


def check_state(stream: Stream) -> None:
    ledger = stream.ledger
    assert invariant_violations(ledger) == []
    assert balances_of(ledger) == fold_journal(ACCOUNTS, stream.journal)
    for transfer_id, outcome in stream.first.items():
        assert ledger.outcome_of(transfer_id) == outcome
    assert sorted(ledger.pending_ids()) == sorted(stream.open_reservations)


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_random_transfer_streams_keep_every_ledger_property(data):
    ledger = Ledger()
    for account in ACCOUNTS:
        ledger.open_account(account)
    funded = ledger.execute(FUNDING, T0_US)
    stream = Stream(ledger, list(funded.journal))
    stream.units.extend([t] for t in FUNDING)
    stream.first.update({o.id: o for o in funded.outcomes})
    timestamp_us = T0_US
    for _ in range(data.draw(st.integers(1, 12), label="batches")):
        timestamp_us += data.draw(st.integers(0, 3_000_000), label="elapsed_us")
        expired = ledger.expire_pending(timestamp_us)
        stream.journal.extend(expired)
        track_reservations(stream, expired)
        check_expired(stream, timestamp_us)
        batch = draw_batch(data, stream)
        before = balances_of(ledger)
        result = ledger.execute(batch.transfers, timestamp_us)
        stream.journal.extend(result.journal)
        track_reservations(stream, result.journal)
        if len(batch.resubmitted) == len(batch.transfers):
            assert result.journal == [] and balances_of(ledger) == before
        check_batch(stream, batch, result.outcomes, result.journal, timestamp_us)
        stream.units.extend(batch.new_units)
        check_state(stream)
