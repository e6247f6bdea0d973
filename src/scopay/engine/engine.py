"""The engine: the single writer of ledger state.

Commands go through the domain (decide, then apply) on in-memory state; each batch is made
durable in one store transaction before any outcome is returned. On open, the engine rebuilds
its state from the store by replaying the journal. Time always comes in as an argument.

If a commit fails, the in-memory state is ahead of the store: the engine rebuilds itself from
the store and re-raises, so no caller is ever told an outcome that is not durable.
"""

from __future__ import annotations

import functools
import gc
import operator
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

from scopay.domain.account import Account, AccountKind, account_key, check_account
from scopay.domain.ledger import (
    JournalEntry,
    Ledger,
    Transfer,
    TransferKind,
    TransferOutcome,
    fold_journal,
    invariant_violations,
    posted_change,
)
from scopay.domain.mailbox import (
    BOOKED,
    NOTIFICATION_ENTRIES_MAX,
    Notice,
    NoticeKind,
    statement_notice,
)
from scopay.domain.money import AMOUNT_MINOR_MAX, CURRENCIES
from scopay.domain.participant import (
    Participant,
    Role,
    StateFacts,
    Status,
    check_participant,
)
from scopay.domain.rtgs import BUSINESS_DAY_US, PAYMENT_TRANSFER_PREFIX, Rtgs
from scopay.engine.answers import AnswerIndex
from scopay.engine.payments import (
    RECOVERY_PROGRESS_EVERY,
    RETURN_TRANSFER_PREFIX,
    PaymentOperations,
    RecoveryProgress,
    _Changes,
    _new_notice,
    accounts_given_room,
)
from scopay.engine.port import Store


def _exclusive(method):
    """Run an engine method holding the state lock: one writer, readers see committed state."""

    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)

    return locked


# Allocations (net of what was freed) between young collections; CPython's default is 700.
GC_YOUNG_THRESHOLD = 200_000


def _tune_garbage_collector() -> None:
    """Keep the cyclic garbage collector off the hot path.

    What the engine keeps of a finished payment, and of each transfer's first outcome, is
    bytes, which the collector never tracks (book.py, ledger._fold): settling adds nothing to
    the young generation that outlives the request. A young collection then comes only when
    the objects of requests in flight pass the threshold: at CPython's default, every few
    hundred allocations; at 50,000, about once a 1,000-payment bulk request, 10-25 ms each
    (about 6.5 us a payment, docs/benchmarks.md); at 200,000, seldom (a request of several
    thousand payments). The recovered state is frozen out of the collector's sight; the
    collector still runs, so a real cycle is still reclaimed.
    """
    gc.collect()
    gc.freeze()
    young, middle, old = gc.get_threshold()
    gc.set_threshold(max(young, GC_YOUNG_THRESHOLD), middle, old)


# Entries whose parties are told otherwise: a payment by its pacs.002 and pacs.008, a return
# by its pacs.004 and pacs.002. Every other entry that moves posted money gets a camt.054.
_NOTIFIED_OTHERWISE = (PAYMENT_TRANSFER_PREFIX, RETURN_TRANSFER_PREFIX)
_MOVES_POSTED = frozenset({TransferKind.POSTED, TransferKind.POST_PENDING})
_POSTED_KINDS = sorted(kind.value for kind in _MOVES_POSTED)  # as the store names them


def notified(transfer: Transfer) -> bool:
    """Whether a journal entry is told by debit and credit notifications: it moved posted
    money and is not a payment's or a return's (their messages tell them)."""
    return transfer.kind in _MOVES_POSTED and not transfer.id.startswith(_NOTIFIED_OTHERWISE)


def _booked_more_than_once(entries: Sequence[JournalEntry]) -> list[tuple[str, int]]:
    """(transfer id, times) of each id the journal books more than once, in journal order.
    The store refuses such a batch; this finds rows written behind its back."""
    times = Counter(entry.transfer.id for entry in entries)
    if len(times) == len(entries):
        return []
    return [(transfer_id, count) for transfer_id, count in times.items() if count > 1]


class CommandRefused(ValueError):
    """An administrative command broke a rule; nothing was changed."""


class AccountActivity(NamedTuple):
    opening_minor: int
    closing_minor: int
    postings: list[tuple[Transfer, int]]  # (the entry's transfer, change to the account)
    in_period: int  # postings in the whole period: those asked for may be a page of them


@dataclass(frozen=True, slots=True)
class BalanceView:
    account_id: int
    owner_bic: str
    currency: str
    kind: str
    floor_minor: int | None
    posted_minor: int
    debits_pending_minor: int
    credits_pending_minor: int
    blocked: bool

    @property
    def available_minor(self) -> int:
        return self.posted_minor - self.debits_pending_minor


@dataclass(frozen=True)
class ReconcileReport:
    journal_entries: int
    accounts: int
    mismatches: list[str]
    invariant_violations: list[str]
    checkpoint_seq: int | None

    @property
    def ok(self) -> bool:
        return not self.mismatches and not self.invariant_violations


class Engine(PaymentOperations):
    """The single writer over one store. Thread-safe by one lock; the runner gives it one
    thread so that concurrent callers share commits."""

    def __init__(self, store: Store, *, bypass_fifo_normal: bool = True,
                 respect_priority_in_resolution: bool = True,
                 progress: RecoveryProgress | None = None,
                 states: Mapping[str, StateFacts] | None = None) -> None:
        """`bypass_fifo_normal`: a covered normal payment may settle past a waiting one.
        `respect_priority_in_resolution`: gridlock resolution settles a payment only with
        every more urgent payment of the same debtor. `progress` hears how recovery goes.
        `states`: the reference data admissions are checked against (check_participant)."""
        self.store = store
        self._states = states
        # With defer_commits, a command's last batch is written but left for the caller to
        # commit (finish_commit): the server's runner commits it off its event loop.
        self.defer_commits = False
        self._commit_pending = False
        self._commit_failed = False
        self._rtgs_settings = {"bypass_fifo_normal": bypass_fifo_normal,
                               "respect_priority_in_resolution": respect_priority_in_resolution}
        # Held while a batch is applied and committed: readers see committed state only.
        self._lock = threading.RLock()
        # Counts the times the in-memory state was read back from the store (at start, and
        # after a failed commit): what others derive from it is stale once it moves on.
        self.recoveries = 0
        with self._lock:
            self._recover(progress)
        _tune_garbage_collector()

    # -- recovery -------------------------------------------------------------------------

    def _recover(self, progress: RecoveryProgress | None = None) -> None:
        self.recoveries += 1
        self.ledger = Ledger()
        self.participants: dict[str, Participant] = {}
        self.accounts: dict[int, Account] = {}
        for participant in self.store.participants():
            self.participants[participant.bic] = participant
        for account, blocked in self.store.accounts():
            self.accounts[account.id] = account
            self.ledger.open_account(account)
            self.ledger.set_blocked(account.id, blocked)
        self._last_timestamp_us = 0
        self._journal_count = 0
        journal_total = self.store.last_seq() if progress is not None else 0
        for _, entry in self.store.journal():
            self.ledger.replay(entry)
            self._last_timestamp_us = max(self._last_timestamp_us, entry.timestamp_us)
            self._journal_count += 1
            if progress is not None and not self._journal_count % RECOVERY_PROGRESS_EVERY:
                progress("journal entries", self._journal_count, journal_total)
        if progress is not None:
            progress("journal entries", self._journal_count, self._journal_count)
        for record in self.store.rejections():
            self.ledger.remember_rejection(record)
            self._last_timestamp_us = max(self._last_timestamp_us, record.timestamp_us)
        # The last step the settlement side took (the RTGS's day is that of its last step),
        # before administrative commits, which move time on too but turn no business day:
        # time never goes back past any commit.
        self._last_step_us = self._last_timestamp_us
        self._last_timestamp_us = max(self._last_timestamp_us, self.store.last_commit_us())
        self._account_index = {account_key(a): a.id for a in self.accounts.values()}
        self.keys = self.store.keys()
        self.idempotency = AnswerIndex(self.store.idempotency_records(),
                                       self.store.idempotency_body)
        self.rtgs = Rtgs(self.ledger, **self._rtgs_settings)
        self._tell_account_holders()
        self._recover_payments(progress)
        # Every commit carries the statements of the days before its own (see _write): so
        # those of every day before the last commit's were issued, and none of its day yet.
        self._statement_day = self._last_timestamp_us // BUSINESS_DAY_US
        self._commit_failed = False

    # -- transfers ------------------------------------------------------------------------

    def submit(self, transfers: Sequence[Transfer], now_us: int) -> list[TransferOutcome]:
        """Execute one batch of transfers and commit it durably; return one outcome each."""
        return self.submit_many([transfers], now_us)[0]

    def submit_many(self, requests: Sequence[Sequence[Transfer]],
                    now_us: int) -> list[list[TransferOutcome]]:
        """Execute several independent requests and commit them in one transaction.

        Each request is its own ledger batch, so a linked chain never spans two requests;
        all of them become durable together (group commit) before any outcome is returned.
        """
        with self._lock:
            timestamp_us = self._tick(now_us)
            with self._rebuilt_on_raise():  # a step of the ledger, and of the RTGS if it waits
                journal = self.ledger.expire_pending(timestamp_us)
                rejections = []
                answers = []
                for transfers in requests:
                    result = self.ledger.execute(transfers, timestamp_us)
                    journal.extend(result.journal)
                    rejections.extend(result.rejections)
                    answers.append(result.outcomes)
                notices = self._movement_notices(journal)
                changes = (self._queues_released(journal, notices, timestamp_us)
                           if self.rtgs.orders else None)
            if changes is not None:
                self._commit_released(changes, rejections, timestamp_us)
            else:
                self._commit(journal, rejections, notices)
            return answers

    def _movement_notices(self, journal: Sequence[JournalEntry]) -> list[Notice]:
        """Debit notifications to the owners of the accounts debited and credit notifications
        to the owners of those credited, for the entries that moved posted money and are not
        a payment's or a return's (a reservation, a void or an expiry moves none): one for
        an account's entries of one side in this commit, up to NOTIFICATION_ENTRIES_MAX
        (NoticeKind). Each notice is a row in a mailbox indexed by participant, at a place of
        its own in that index: one for each account and side, not each entry, saves most of
        that where accounts have several entries in a commit (a bank's batch, a network of
        tens of banks), and a quarter where 10,000 accounts have one each (bench/ledger.py;
        docs/benchmarks.md)."""
        told: dict[tuple[int, NoticeKind], list[Transfer]] = {}
        for transfer, _ in journal:
            if not notified(transfer):
                continue
            for account_id, kind in ((transfer.debit_account_id, NoticeKind.DEBIT_NOTIFICATION),
                                     (transfer.credit_account_id,
                                      NoticeKind.CREDIT_NOTIFICATION)):
                entries = told.get((account_id, kind))
                if entries is None:
                    told[account_id, kind] = [transfer]
                else:
                    entries.append(transfer)
        notices = []
        at = journal[-1].timestamp_us if journal else 0  # one commit: one time for all
        for (account_id, kind), entries in told.items():
            owner = self.accounts[account_id].owner_bic
            for first in range(0, len(entries), NOTIFICATION_ENTRIES_MAX):
                chunk = entries[first:first + NOTIFICATION_ENTRIES_MAX]
                notices.append(_new_notice(owner, kind, chunk[0].id, BOOKED,
                                           chunk[-1].id if len(chunk) > 1 else None, at))
        return notices

    def _queues_released(self, journal: list, notices: list[Notice],
                         timestamp_us: int) -> _Changes:
        """Money arrived by plain transfers: queued payments of those accounts may settle."""
        changes = _Changes(journal=journal, notices=notices)
        self._apply_step(self.rtgs.tick(timestamp_us), timestamp_us, changes)
        self._apply_step(self.rtgs.release(accounts_given_room(journal), timestamp_us),
                         timestamp_us, changes)
        return changes

    def _commit_released(self, changes: _Changes, rejections: list, timestamp_us: int) -> None:
        try:
            self._write(changes.journal, rejections,
                        payments=self.payments.rows_to_write(changes.records.values()),
                        payment_events=changes.events, notices=changes.notices,
                        at_us=timestamp_us)
        except BaseException:
            self._recover()
            raise
        self._journal_count += len(changes.journal)

    def expire(self, now_us: int) -> int:
        """Release reservations whose timeout has passed; return how many."""
        with self._lock, self._step(now_us) as (changes, _):  # released room moves queues too
            self._commit_changes(changes)
            return sum(entry.transfer.kind is TransferKind.EXPIRE_PENDING
                       for entry in changes.journal)

    def _commit(self, journal: list, rejections: list, notices: list[Notice]) -> None:
        if not journal and not rejections and not self._day_turned():
            return
        try:
            self._write(journal, rejections, notices=notices,
                              at_us=self._last_timestamp_us)
        except BaseException:
            self._recover()
            raise
        self._journal_count += len(journal)

    # -- administration -----------------------------------------------------------------

    def admit_participant(self, participant: Participant, now_us: int) -> None:
        self.admit_participants([participant], now_us)

    @_exclusive
    def admit_participants(self, participants: Sequence[Participant], now_us: int) -> None:
        """Admit several participants in one commit; all or none."""
        admitted = dict(self.participants)
        for participant in participants:
            problem = check_participant(participant, admitted, frozenset(CURRENCIES),
                                        self._states)
            if problem is not None:
                raise CommandRefused(problem)
            admitted[participant.bic] = participant
        self._write(participants=participants, at_us=self._tick(now_us))
        self.participants = admitted

    def open_account(self, account: Account, now_us: int) -> None:
        self.open_accounts([account], now_us)

    @_exclusive
    def open_accounts(self, accounts: Sequence[Account], now_us: int) -> None:
        """Open several accounts in one commit; all or none."""
        opened = dict(self.accounts)
        taken = {account_key(account) for account in opened.values()}
        for account in accounts:
            problem = check_account(account, self.participants, opened, taken)
            if problem is not None:
                raise CommandRefused(problem)
            opened[account.id] = account
            taken.add(account_key(account))
        self._write(accounts=accounts, at_us=self._tick(now_us))
        self.accounts = opened
        for account in accounts:
            self.ledger.open_account(account)
            self._account_index[account_key(account)] = account.id
        self._tell_account_holders()

    def _tell_account_holders(self) -> None:
        """Who holds each account, for the queue's cap per holder (Rtgs.set_account_holders)."""
        self.rtgs.set_account_holders({a.id: a.owner_bic for a in self.accounts.values()})

    @_exclusive
    def issuance_account(self, currency: str) -> int | None:
        agent = next((p for p in self.participants.values()
                      if p.settlement_currency == currency), None)
        if agent is None:
            return None
        return self._account_index.get((agent.bic, currency, AccountKind.ISSUANCE))

    @_exclusive
    def next_account_id(self) -> int:
        return max(self.accounts, default=0) + 1

    @_exclusive
    def set_credit_line(self, account_id: int, credit_line_minor: int, now_us: int) -> None:
        account = self.accounts.get(account_id)
        if account is None:
            raise CommandRefused(f"no account {account_id}")
        changed = replace(account, credit_line_minor=credit_line_minor)
        if not 0 <= credit_line_minor <= AMOUNT_MINOR_MAX or changed.floor_minor is None:
            raise CommandRefused("credit line must be >= 0 on a settlement account")
        # One commit for the line and what it lets settle: a failed one undoes both.
        with self._step(now_us) as (changes, at):
            # checked once time has moved on in the step (a reservation expired, a payment
            # due now settled on the old line): the account as it stands now
            if not self.ledger.set_floor(account_id, changed.floor_minor):
                self._commit_changes(changes)  # what time did stands
                raise CommandRefused("the account already uses more than the new credit line")
            self.accounts[account_id] = changed
            changes.rows["accounts"] = [changed]
            if credit_line_minor > account.credit_line_minor:  # room grew: try its queue
                self._apply_step(self.rtgs.release([account_id], at), at, changes)
            self._commit_changes(changes)

    @_exclusive
    def set_participant_status(self, bic: str, status: Status, now_us: int) -> None:
        """Suspend or re-admit a participant: its accounts are blocked while suspended."""
        participant = self.participants.get(bic)
        if participant is None:
            raise CommandRefused(f"no participant {bic}")
        if participant.role == Role.OPERATOR and status != Status.ACTIVE:  # none above it
            raise CommandRefused(f"{bic} is the operator: it cannot be suspended")
        changed = replace(participant, status=status)
        own = [a.id for a in self.accounts.values() if a.owner_bic == bic]
        blocked = status != Status.ACTIVE
        # One commit for the status and what it lets settle: a failed one undoes both.
        with self._step(now_us) as (changes, at):
            self.participants[bic] = changed
            for account_id in own:
                self.ledger.set_blocked(account_id, blocked)
            (self.rtgs.suspended_agents.add if blocked
             else self.rtgs.suspended_agents.discard)(bic)
            changes.rows["participants"] = [changed]
            changes.rows["blocked"] = [(a, blocked) for a in own]
            # Reinstated, its queued payments, held meanwhile, may settle; suspended, the
            # payments they held back behind them may: the queues holding its payments are
            # tried.
            touched = self.rtgs.queues_involving(set(own), bic)
            if touched:
                self._apply_step(self.rtgs.release(touched, at), at, changes)
            self._commit_changes(changes)

    @_exclusive
    def register_key(self, key_id: str, bic: str, public_key: str, now_us: int) -> str:
        """Register a participant's Ed25519 public key (rotation: register, then revoke);
        the id it is registered under. A public key is registered once: again for the same
        participant (a retry whose first answer was lost), it keeps the id it has, and no
        second id can outlive a revocation of the first; for another participant, or once
        revoked, it is refused."""
        if bic not in self.participants:
            raise CommandRefused(f"no participant {bic}")
        if key_id in self.keys:
            raise CommandRefused(f"key {key_id} exists already")
        for known_id, (owner, known_key, revoked_us) in self.keys.items():
            if known_key != public_key:
                continue
            if owner != bic:
                raise CommandRefused("this public key is registered to another participant")
            if revoked_us is not None:
                raise CommandRefused(f"this public key was revoked (as {known_id}); make a "
                                     "new key pair")
            return known_id
        at = self._tick(now_us)
        self._write(keys=[(key_id, bic, public_key, at)], at_us=at)
        self.keys[key_id] = (bic, public_key, None)
        return key_id

    @_exclusive
    def revoke_key(self, key_id: str, now_us: int) -> None:
        found = self.keys.get(key_id)
        if found is None:
            raise CommandRefused(f"no key {key_id}")
        if found[2] is not None:
            return  # revoked already: nothing changes
        owner = self.participants.get(found[0])
        if owner is not None and owner.role == Role.OPERATOR and not any(
                other != key_id and bic == found[0] and revoked is None
                for other, (bic, _, revoked) in self.keys.items()):
            raise CommandRefused(f"the operator's last key: register another one first "
                                 f"(`scopay keys issue {found[0]} --out FILE`, with --url while "
                                 "scopay runs)")
        at = self._tick(now_us)
        self._write(revoked_keys=[(key_id, at)], at_us=at)
        self.keys[key_id] = (found[0], found[1], at)

    @_exclusive
    def remember_responses(self, answers: Sequence[tuple[str, str, str, int, bytes]],
                           now_us: int) -> list[None]:
        """Keep answers given under idempotency keys (bic, key, request digest, status,
        body), to give them again on a retry; one commit for all."""
        at = self._tick(now_us)
        fresh = {}
        for bic, key, digest, status_code, body in answers:
            if (bic, key) not in self.idempotency:
                fresh[(bic, key)] = (bic, key, digest, status_code, body, at)
        if fresh:
            self._write(idempotency=list(fresh.values()), at_us=at)
            self.idempotency.add_rows(fresh.values())
        return [None] * len(answers)

    def keep_answer_in_commit(self, bic: str, key: str, request_sha256: str, status_code: int,
                              body: bytes) -> bool:
        """Keep an answer under its idempotency key in the pending commit, that of the
        command it answers: a retry after any crash then gets this answer, never the
        command again. False if the key holds an answer already (nothing written). If the
        write fails, the pending batch is rolled back with it: the caller rebuilds
        (rebuild_after_failed_commit), as after a failed commit."""
        assert self._commit_pending, "no pending commit to keep the answer in"
        if (bic, key) in self.idempotency:
            return False
        # stamped with the batch's own time, never a later one (so it takes no clock): a
        # batch's last entry stamped past midnight would stand for a day whose statements it
        # does not carry
        at = self._last_timestamp_us
        row = (bic, key, request_sha256, status_code, body, at)
        try:
            self.store.stage_more(idempotency=[row], at_us=at)
        except BaseException:
            self._commit_pending, self._commit_failed = False, True
            raise
        self.idempotency.add_rows([row])  # as the batch's own rows: ahead of the store until
        return True  # its commit (a failed one rebuilds memory from the store)

    # -- reading (committed state only) --------------------------------------------------

    def balances(self) -> list[BalanceView]:
        with self._lock:
            return [self._balance_view(account_id) for account_id in self.accounts]

    def balance(self, account_id: int) -> BalanceView | None:
        with self._lock:
            return self._balance_view(account_id) if account_id in self.accounts else None

    def account_activity(self, account_id: int, start_us: int, end_us: int, offset: int = 0,
                         limit: int = -1) -> AccountActivity:
        """An account's postings between start_us and end_us, for a statement: `limit` of
        them from the `offset`-th (all for -1), with the posted balance before and after
        them, and how many the period holds. The balance at start_us is worked back from
        the balance now over the account's postings since (journal times never go
        backwards, so those entries are a range of seqs); the store sums and filters the
        range, so only the account's postings asked for are read into Python."""
        with self._lock:
            posted_now = self.ledger.balances[account_id].posted_minor
            last_seq = self._journal_count
        store, kinds = self.store, _POSTED_KINDS
        first_seq = store.first_journal_seq_from(start_us, last_seq)
        end_seq = store.first_journal_seq_from(end_us, last_seq)  # the first after the period
        _, since_start = store.account_movements(account_id, first_seq, last_seq, kinds)
        in_period, _ = store.account_movements(account_id, first_seq, end_seq - 1, kinds)
        _, before = store.account_movements(account_id, first_seq, end_seq - 1, kinds,
                                            limit=offset)
        postings = [(entry.transfer, posted_change(entry.transfer, account_id))
                    for _, entry in store.account_entries(account_id, first_seq,
                                                            end_seq - 1, kinds, offset, limit)]
        opening = posted_now - since_start + before
        return AccountActivity(opening, opening + sum(change for _, change in postings),
                               postings, in_period)

    def notified_entries(self, account_id: int, credit: bool, first_seq: int,
                         last_seq: int) -> list[Transfer]:
        """The entries a credit (else debit) notification of the account tells, between its
        first and last entry's seqs: the store reads the account's entries of that range
        (filtered in SQLite, not the whole commit in Python), then its side and what
        notifications tell are kept."""
        side = operator.attrgetter("credit_account_id" if credit else "debit_account_id")
        return [entry.transfer for _, entry in self.store.account_entries(
                    account_id, first_seq, last_seq, _POSTED_KINDS, 0, -1)
                if side(entry.transfer) == account_id and notified(entry.transfer)]

    @property
    def journal_count(self) -> int:
        return self._journal_count

    # -- checks -----------------------------------------------------------------------------

    @_exclusive
    def checkpoint(self, now_us: int) -> int:
        """Write every account's balance with the journal position it reflects."""
        self.finish_commit()
        if self._commit_failed:  # a deferred commit failed and its caller has not rebuilt
            self._recover()
        as_of_seq = self.store.last_seq()
        rows = [(b.account_id, b.posted_minor, b.debits_pending_minor, b.credits_pending_minor)
                for b in self.ledger.balances.values()]
        self.store.write_checkpoint(as_of_seq, self._tick(now_us), rows)
        return as_of_seq

    @_exclusive
    def reconcile(self) -> ReconcileReport:
        """Prove that balances equal the fold of the durable journal.

        The engine's live balances were built transfer by transfer; here the journal is read
        back from the store and folded from zero. The last checkpoint is checked against a
        fold of the journal up to the position it names.
        """
        accounts = list(self.accounts.values())
        entries = [entry for _, entry in self.store.journal()]
        folded = fold_journal(accounts, entries)
        mismatches = [f"transfer {transfer_id} is booked {count} times"
                      for transfer_id, count in _booked_more_than_once(entries)]
        for account_id, balance in self.ledger.balances.items():
            live = (balance.posted_minor, balance.debits_pending_minor,
                    balance.credits_pending_minor)
            if folded[account_id] != live:
                mismatches.append(
                    f"account {account_id}: live {live} != journal {folded[account_id]}")
        checkpoint = self.store.checkpoint()
        if checkpoint is not None:
            as_of_seq, _, saved = checkpoint
            last_seq = self.store.last_seq()
            if as_of_seq > last_seq:  # the journal was cut back, or the checkpoint moved
                mismatches.append(f"checkpoint as of seq {as_of_seq}, past the journal's last "
                                  f"entry {last_seq}")
            partial = fold_journal(accounts, (e for _, e in self.store.journal(0, as_of_seq)))
            # every account the journal had moved by then, and only those, with its balance:
            # a row missing from the checkpoint is as wrong as a changed one
            untouched = (0, 0, 0)
            for account_id in sorted(saved.keys() | partial.keys()):
                values = saved.get(account_id, untouched)
                if partial.get(account_id, untouched) != values:
                    mismatches.append(f"account {account_id}: checkpoint {values} != journal "
                                      f"{partial.get(account_id, untouched)} at seq {as_of_seq}")
        return ReconcileReport(len(entries), len(accounts), mismatches,
                               invariant_violations(self.ledger),
                               None if checkpoint is None else checkpoint[0])

    def close(self) -> None:
        self.finish_commit()  # a batch written is kept: its answers may be replayed by key
        self.store.close()

    # -- internals --------------------------------------------------------------------------

    def _write(self, journal: Sequence[JournalEntry] = (), rejections: Sequence = (), *,
               at_us: int, notices: Sequence[Notice] = (), **rows) -> None:
        """Commit one step through the store. The first commit of a new UTC day carries the
        statement notices of the days before it; a turn of the day with nothing to tell and
        nothing else to write commits nothing."""
        if self._commit_pending:  # a second step in one command: the first is made durable
            try:
                self.finish_commit()
            except BaseException:
                self._recover()  # the store rolled the first step back: so does memory
                raise
        day = at_us // BUSINESS_DAY_US
        if day > self._statement_day:
            statements = self._statement_notices(day, at_us)
            if not (statements or journal or rejections or notices or any(rows.values())):
                self._statement_day = day  # no entries since the last commit's day
                return
            notices = [*notices, *statements]
        if self.defer_commits:
            self.store.stage(journal, rejections, notices=notices, at_us=at_us, **rows)
            self._commit_pending = True
        else:
            self.store.commit(journal, rejections, notices=notices, at_us=at_us, **rows)
        self._statement_day = max(self._statement_day, day)

    # -- commits left to the caller ----------------------------------------------------------

    @property
    def commit_pending(self) -> bool:
        """A command's batch is written but not yet durable: its caller must call
        finish_commit (or, if that fails, rebuild_after_failed_commit) before anything else
        is asked of the engine or anyone is told what the command did."""
        return self._commit_pending

    def finish_commit(self) -> None:
        """Make the pending batch durable. Callable from another thread than the command's:
        the store's wait for the disk then runs beside the caller's own work."""
        if self._commit_pending:
            try:
                self.store.finish()
            except BaseException:
                self._commit_failed = True  # memory is ahead of the store until _recover
                raise
            finally:
                self._commit_pending = False

    def hold(self) -> None:
        """Take the engine's lock until release(), on this thread: readers on other threads
        wait meanwhile. The server's runner holds it from a batch's start until its deferred
        commit has returned."""
        self._lock.acquire()

    def release(self) -> None:
        self._lock.release()

    def rebuild_after_failed_commit(self) -> None:
        """finish_commit failed and the store rolled the batch back: rebuild the in-memory
        state, which includes it, from the store."""
        with self._lock:
            self._recover()

    def _day_turned(self) -> bool:
        """The step now under way is the first of a new UTC day: it must commit statements."""
        return self._last_timestamp_us // BUSINESS_DAY_US > self._statement_day

    def _statement_notices(self, day: int, at_us: int) -> list[Notice]:
        """One statement notice per account and finished day with postings, to its owner:
        the committed journal from the start of the last day told, up to the start of `day`
        (journal times never go backwards, so these entries are a range of seqs). Once a day,
        in the first step of the day, under the engine's lock: the store finds the accounts
        (a DISTINCT over the day's range, in SQLite), not Python over every entry."""
        last_seq = self.store.last_seq()
        first_seq = self.store.first_journal_seq_from(self._statement_day * BUSINESS_DAY_US,
                                                      last_seq)
        booked = self.store.accounts_posted(first_seq, last_seq, day * BUSINESS_DAY_US,
                                            BUSINESS_DAY_US, _POSTED_KINDS)
        return [statement_notice(self.accounts[account_id].owner_bic, account_id, finished,
                                 at_us) for finished, account_id in booked]

    def _tick(self, now_us: int) -> int:
        """Timestamps never go backwards, whatever the clock passed in does."""
        self._last_timestamp_us = max(self._last_timestamp_us, now_us)
        return self._last_timestamp_us

    def _balance_view(self, account_id: int) -> BalanceView:
        account = self.accounts[account_id]
        b = self.ledger.balances[account_id]
        return BalanceView(account_id, account.owner_bic, account.currency, account.kind.value,
                           b.floor_minor, b.posted_minor, b.debits_pending_minor,
                           b.credits_pending_minor, b.blocked)
