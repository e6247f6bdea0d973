"""The ledger: double-entry balances per account, one journal, per currency summing to zero.

`Ledger.execute` takes a batch of transfers and a timestamp, decides each transfer against
the state left by the ones before it, applies the accepted ones, and returns what happened:
an outcome per transfer and the journal entries to make durable. Linked transfers (a chain
ending at the first transfer whose `linked` is False) commit all or none.

Transfers are idempotent by id and content: a transfer whose id is known returns the first
outcome when its content is the same, and `exists_with_different_*` when it is not.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from marshal import dumps as _dumps
from marshal import loads as _loads
from typing import NamedTuple

from scopay.domain.account import Account
from scopay.domain.money import AMOUNT_MINOR_MAX, BALANCE_MINOR_MAX, CURRENCIES
from scopay.domain.rejection import Rejection

BATCH_TRANSFERS_MAX = 8190
TRANSFER_ID_LENGTH_MAX = 64
TIMEOUT_S_MAX = 7 * 24 * 3600
_ID_PATTERN = re.compile(r"[A-Za-z0-9._:/-]{1,64}")
_is_valid_id = _ID_PATTERN.fullmatch
EXPIRY_ID_PREFIX = "expire#"  # '#' is outside the id alphabet: no client id can collide


class TransferKind(StrEnum):
    POSTED = "posted"  # moves the amount at once
    PENDING = "pending"  # reserves the amount on the debit account
    POST_PENDING = "post_pending"  # moves (part of) a reservation
    VOID_PENDING = "void_pending"  # releases a reservation
    EXPIRE_PENDING = "expire_pending"  # the ledger released a reservation at its timeout


@dataclass(frozen=True, slots=True)
class Transfer:
    """One movement of one currency from a debit account to a credit account.

    For post/void of a pending transfer, accounts and currency may be left 0 / "" and the
    amount 0 (the whole reservation): they are taken from the pending transfer.
    """

    id: str
    debit_account_id: int
    credit_account_id: int
    amount_minor: int
    currency: str
    kind: TransferKind = TransferKind.POSTED
    pending_id: str | None = None
    timeout_s: int = 0
    linked: bool = False


# The three records below are named tuples, not dataclasses: the engine makes one or two per
# transfer on its hot path, and a tuple is the cheapest immutable value Python builds.


class TransferOutcome(NamedTuple):
    id: str
    rejection: Rejection | None
    timestamp_us: int

    @property
    def accepted(self) -> bool:
        return self.rejection is None


class JournalEntry(NamedTuple):
    """An accepted transfer as the journal keeps it: complete, with its time."""

    transfer: Transfer
    timestamp_us: int


class RejectionRecord(NamedTuple):
    """A refused transfer, kept so that a resubmission returns the same first outcome."""

    transfer: Transfer
    rejection: Rejection
    timestamp_us: int


@dataclass(slots=True)
class Balance:
    """Mutable balance of one account. Available = posted - debits_pending."""

    account_id: int
    currency: str
    floor_minor: int | None
    posted_minor: int = 0
    debits_pending_minor: int = 0
    credits_pending_minor: int = 0
    blocked: bool = False

    @property
    def available_minor(self) -> int:
        return self.posted_minor - self.debits_pending_minor


@dataclass
class ExecuteResult:
    outcomes: list[TransferOutcome]
    journal: list[JournalEntry]
    rejections: list[RejectionRecord]
    remember_refusals: bool = True


class Ledger:
    """In-memory ledger state. Pure: no I/O; time comes in as an argument."""

    def __init__(self) -> None:
        self.balances: dict[int, Balance] = {}
        # Every transfer id ever seen, with its first outcome: idempotency by id and content.
        # Folded (_fold): the ledger holds one for every transfer of the day.
        self._known: dict[str, bytes] = {}
        self._pending: dict[str, tuple[Transfer, int]] = {}  # id -> (transfer, expires_at_us)
        self._resolved: dict[str, TransferKind] = {}  # pending id -> how it ended
        self._expiries: list[tuple[int, str]] = []  # heap of (expires_at_us, pending id)
        self.blocked_accounts: set[int] = set()  # those blocked, to skip looking when none

    # -- accounts -------------------------------------------------------------------------

    def open_account(self, account: Account) -> None:
        assert account.id not in self.balances, "account opened twice"
        self.balances[account.id] = Balance(account.id, account.currency, account.floor_minor)

    def set_floor(self, account_id: int, floor_minor: int | None) -> bool:
        """Change an account's floor; refused (False) if the balance is already below it."""
        balance = self.balances[account_id]
        if floor_minor is not None and balance.available_minor < floor_minor:
            return False
        balance.floor_minor = floor_minor
        return True

    def set_blocked(self, account_id: int, blocked: bool) -> None:
        self.balances[account_id].blocked = blocked
        (self.blocked_accounts.add if blocked else self.blocked_accounts.discard)(account_id)

    # -- queries ----------------------------------------------------------------------------

    def outcome_of(self, transfer_id: str) -> TransferOutcome | None:
        known = self._known.get(transfer_id)
        return None if known is None else _outcome(transfer_id, _loads(known))

    def transfer_of(self, transfer_id: str) -> Transfer | None:
        known = self._known.get(transfer_id)
        return None if known is None else _unfold_transfer(transfer_id, _loads(known))

    @property
    def transfer_count(self) -> int:
        return len(self._known)

    def pending_ids(self) -> list[str]:
        return list(self._pending)

    # -- execution ----------------------------------------------------------------------

    def execute(self, transfers: Sequence[Transfer], timestamp_us: int, *,
                remember_refusals: bool = True) -> ExecuteResult:
        """Decide and apply a batch in order; return outcomes and what to make durable.

        A plain posted transfer that passes every rule is decided and applied inline: this
        loop is the engine's hot path. Anything else, and any transfer that breaks a rule,
        goes through `_execute_single`, which checks every rule in precedence order.

        With remember_refusals=False a refused id stays free: settlement of a queued payment
        may try again later under the same ledger id (the payment layer has its own ids).
        """
        assert len(transfers) <= BATCH_TRANSFERS_MAX, "batch larger than BATCH_TRANSFERS_MAX"
        result = ExecuteResult([], [], [], remember_refusals)
        known = self._known
        balance_of = self.balances.get
        accept_entry = result.journal.append
        answer = result.outcomes.append
        posted = TransferKind.POSTED
        count = len(transfers)
        index = 0
        while index < count:
            t = transfers[index]
            if t.linked:
                index = self._execute_chain_at(transfers, index, timestamp_us, result)
                continue
            index += 1
            transfer_id = t.id
            amount = t.amount_minor
            if (t.kind is not posted or transfer_id.__class__ is not str
                    or transfer_id in known or t.pending_id is not None or t.timeout_s
                    or amount.__class__ is not int or not 0 < amount <= AMOUNT_MINOR_MAX
                    or not _is_valid_id(transfer_id)):
                self._execute_single(t, timestamp_us, result)
                continue
            debit = balance_of(t.debit_account_id)
            credit = balance_of(t.credit_account_id)
            if (debit is None or credit is None or debit is credit or debit.blocked
                    or credit.blocked or debit.currency != t.currency
                    or credit.currency != t.currency
                    or credit.posted_minor + credit.credits_pending_minor + amount
                    > BALANCE_MINOR_MAX):
                self._execute_single(t, timestamp_us, result)
                continue
            available_after = debit.posted_minor - debit.debits_pending_minor - amount
            floor = debit.floor_minor
            if available_after < (-BALANCE_MINOR_MAX if floor is None else floor):
                self._execute_single(t, timestamp_us, result)
                continue
            # -- decided: nothing below may fail --
            debit.posted_minor -= amount
            credit.posted_minor += amount
            known[transfer_id] = _fold(t, timestamp_us, None)
            accept_entry(JournalEntry(t, timestamp_us))
            answer(TransferOutcome(transfer_id, None, timestamp_us))
        return result

    def _execute_chain_at(self, transfers: Sequence[Transfer], start: int, timestamp_us: int,
                          result: ExecuteResult) -> int:
        """Execute the linked chain starting at `start`; return the index after it."""
        end = start
        while end < len(transfers) and transfers[end].linked:
            end += 1
        if end == len(transfers):
            for open_transfer in transfers[start:]:
                self._refuse(open_transfer, Rejection.LINKED_EVENT_CHAIN_OPEN, timestamp_us,
                             result)
            return end
        self._execute_chain(transfers[start:end + 1], timestamp_us, result)
        return end + 1

    def execute_simultaneous(self, transfers: Sequence[Transfer], timestamp_us: int, *,
                             remember_refusals: bool = True) -> ExecuteResult:
        """Settle posted transfers at one instant, all or none.

        Each transfer is checked on its own except for the floor, which is checked once on
        the net result: a set of payments that offset each other (A pays B, B pays C, C pays
        A) settles even when no single one of them is covered. Liquidity saving uses this.
        """
        assert len(transfers) <= BATCH_TRANSFERS_MAX, "batch larger than BATCH_TRANSFERS_MAX"
        result = ExecuteResult([], [], [], remember_refusals)
        failed_at, failure = self._check_simultaneous(transfers)
        if failure is not None:
            for position, transfer in enumerate(transfers):
                reason = failure if position == failed_at else Rejection.LINKED_EVENT_FAILED
                self._refuse(transfer, reason, timestamp_us, result)
            return result
        # -- decided: nothing below may fail --
        for transfer in transfers:
            self._apply(transfer, timestamp_us, undo=None)
            self._accept(transfer, timestamp_us, result)
        return result

    def _check_simultaneous(self, transfers: Sequence[Transfer]) -> tuple[int, Rejection | None]:
        seen: set[str] = set()
        net: dict[int, int] = {}
        first_debit: dict[int, int] = {}
        for position, t in enumerate(transfers):
            if t.kind is not TransferKind.POSTED or t.id in self._known or t.id in seen:
                return position, Rejection.LINKED_EVENT_FAILED
            rejection = self._check_posted(t, floor_checked=False)
            if rejection is not None:
                return position, rejection
            seen.add(t.id)
            net[t.debit_account_id] = net.get(t.debit_account_id, 0) - t.amount_minor
            net[t.credit_account_id] = net.get(t.credit_account_id, 0) + t.amount_minor
            first_debit.setdefault(t.debit_account_id, position)
        for account_id, change in net.items():
            balance = self.balances[account_id]
            floor = balance.floor_minor
            if change < 0 and floor is not None and balance.available_minor + change < floor:
                return first_debit[account_id], Rejection.INSUFFICIENT_LIQUIDITY
            if balance.posted_minor + balance.credits_pending_minor + change > BALANCE_MINOR_MAX:
                return len(transfers) - 1, Rejection.OVERFLOWS_BALANCE
        return -1, None

    def expire_pending(self, now_us: int) -> list[JournalEntry]:
        """Release every reservation whose timeout has passed; return the journal entries."""
        entries: list[JournalEntry] = []
        while self._expiries and self._expiries[0][0] <= now_us:
            due_us, pending_id = heapq.heappop(self._expiries)
            entry = self._pending.get(pending_id)
            if entry is None or entry[1] != due_us:
                continue  # posted or voided before its timeout, or undone and made again
            pending, _ = entry
            expiry = Transfer(
                EXPIRY_ID_PREFIX + pending_id, pending.debit_account_id,
                pending.credit_account_id, pending.amount_minor, pending.currency,
                TransferKind.EXPIRE_PENDING, pending_id,
            )
            self.replay(JournalEntry(expiry, now_us))
            entries.append(JournalEntry(expiry, now_us))
        return entries

    def replay(self, entry: JournalEntry) -> None:
        """Apply a journal entry that was accepted before (recovery). No checks: it was valid."""
        transfer, timestamp_us = entry.transfer, entry.timestamp_us
        if transfer.kind != TransferKind.EXPIRE_PENDING:
            self._known[transfer.id] = _fold(transfer, timestamp_us, None)
        self._apply(transfer, timestamp_us, undo=None)

    def remember_rejection(self, record: RejectionRecord) -> None:
        """Restore a refused transfer's first outcome (recovery)."""
        self._known[record.transfer.id] = _fold(record.transfer, record.timestamp_us,
                                                record.rejection)

    # -- deciding -------------------------------------------------------------------------

    def _execute_single(self, transfer: Transfer, timestamp_us: int,
                        result: ExecuteResult) -> None:
        known = self._known.get(transfer.id)
        if known is not None:
            result.outcomes.append(self._resubmitted(transfer, known, timestamp_us))
            return
        if transfer.kind is not TransferKind.POSTED:
            rejection = self.check(transfer, timestamp_us)
            if rejection is not None:
                self._refuse(transfer, rejection, timestamp_us, result)
                return
            effective = self._effective(transfer)
            self._apply(effective, timestamp_us, undo=None)
            self._accept(effective, timestamp_us, result)
            return
        rejection = self._check_posted(transfer)
        if rejection is not None:
            self._refuse(transfer, rejection, timestamp_us, result)
            return
        self._apply(transfer, timestamp_us, undo=None)
        self._accept(transfer, timestamp_us, result)

    def _execute_chain(self, chain: Sequence[Transfer], timestamp_us: int,
                       result: ExecuteResult) -> None:
        known = [self._known.get(transfer.id) for transfer in chain]
        if all(k is not None for k in known):
            for transfer, first in zip(chain, known, strict=True):
                result.outcomes.append(self._resubmitted(transfer, first, timestamp_us))
            return
        undo: list[tuple] = []
        effective: list[Transfer] = []
        failed_at, failure = -1, None
        seen: set[str] = set()
        for position, transfer in enumerate(chain):
            if known[position] is not None or transfer.id in seen:
                failed_at, failure = position, Rejection.LINKED_EVENT_FAILED
                if known[position] is not None:
                    failure = self._resubmitted(transfer, known[position], timestamp_us).rejection
                    failure = failure or Rejection.LINKED_EVENT_FAILED
                break
            seen.add(transfer.id)
            failure = self.check(transfer, timestamp_us)
            if failure is not None:
                failed_at = position
                break
            effective.append(self._effective(transfer))
            self._apply(effective[-1], timestamp_us, undo)
        if failed_at < 0:
            for transfer in effective:
                self._accept(transfer, timestamp_us, result)
            return
        self._undo(undo)
        for position, transfer in enumerate(chain):
            reason = failure if position == failed_at else Rejection.LINKED_EVENT_FAILED
            if known[position] is not None:
                result.outcomes.append(self._resubmitted(transfer, known[position], timestamp_us))
            else:
                self._refuse(transfer, reason, timestamp_us, result)

    def _check_posted(self, t: Transfer, floor_checked: bool = True) -> Rejection | None:
        if not (t.id.__class__ is str and _is_valid_id(t.id)):
            return Rejection.ID_INVALID
        amount = t.amount_minor
        if amount <= 0:
            return Rejection.AMOUNT_MUST_BE_POSITIVE
        if amount > AMOUNT_MINOR_MAX:
            return Rejection.AMOUNT_TOO_LARGE
        if t.debit_account_id == t.credit_account_id:
            return Rejection.ACCOUNTS_MUST_BE_DIFFERENT
        if t.pending_id is not None:
            return Rejection.PENDING_ID_MUST_BE_EMPTY
        if t.kind is TransferKind.PENDING:
            if not 0 <= t.timeout_s <= TIMEOUT_S_MAX:
                return Rejection.TIMEOUT_INVALID
        elif t.timeout_s:
            return Rejection.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER
        if t.currency not in CURRENCIES:
            return Rejection.CURRENCY_UNKNOWN
        debit = self.balances.get(t.debit_account_id)
        if debit is None:
            return Rejection.DEBIT_ACCOUNT_NOT_FOUND
        credit = self.balances.get(t.credit_account_id)
        if credit is None:
            return Rejection.CREDIT_ACCOUNT_NOT_FOUND
        return self._check_movement(t, debit, credit, amount if floor_checked else 0)

    def check(self, t: Transfer, timestamp_us: int) -> Rejection | None:
        """The first rule a new transfer breaks against the current state, or None."""
        if t.kind in (TransferKind.POSTED, TransferKind.PENDING):
            if t.kind is TransferKind.POSTED:
                return self._check_posted(t)
            return self._check_pending(t)
        if not (isinstance(t.id, str) and _ID_PATTERN.fullmatch(t.id)):
            return Rejection.ID_INVALID
        if t.kind is TransferKind.EXPIRE_PENDING:
            return Rejection.ID_INVALID  # only the ledger expires reservations
        return self._check_resolution(t, timestamp_us)

    def _check_pending(self, t: Transfer) -> Rejection | None:
        return self._check_posted(t)  # the same rules; _check_posted knows the timeout

    def _check_resolution(self, t: Transfer, timestamp_us: int) -> Rejection | None:
        if t.amount_minor < 0:
            return Rejection.AMOUNT_MUST_BE_POSITIVE
        if t.amount_minor > AMOUNT_MINOR_MAX:
            return Rejection.AMOUNT_TOO_LARGE
        if not t.pending_id:
            return Rejection.PENDING_ID_REQUIRED
        if t.timeout_s:
            return Rejection.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER
        if t.currency and t.currency not in CURRENCIES:
            return Rejection.CURRENCY_UNKNOWN
        if t.debit_account_id and t.debit_account_id not in self.balances:
            return Rejection.DEBIT_ACCOUNT_NOT_FOUND
        if t.credit_account_id and t.credit_account_id not in self.balances:
            return Rejection.CREDIT_ACCOUNT_NOT_FOUND
        pending_entry = self._pending.get(t.pending_id)
        if pending_entry is None:
            ended = self._resolved.get(t.pending_id)
            if ended is TransferKind.POST_PENDING:
                return Rejection.PENDING_TRANSFER_ALREADY_POSTED
            if ended is TransferKind.VOID_PENDING:
                return Rejection.PENDING_TRANSFER_ALREADY_VOIDED
            if ended is TransferKind.EXPIRE_PENDING:
                return Rejection.PENDING_TRANSFER_EXPIRED
            if t.pending_id in self._known:
                return Rejection.PENDING_TRANSFER_NOT_PENDING
            return Rejection.PENDING_TRANSFER_NOT_FOUND
        pending, expires_at_us = pending_entry
        if expires_at_us and timestamp_us >= expires_at_us:
            return Rejection.PENDING_TRANSFER_EXPIRED
        if t.debit_account_id and t.debit_account_id != pending.debit_account_id:
            return Rejection.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT
        if t.credit_account_id and t.credit_account_id != pending.credit_account_id:
            return Rejection.PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT
        if t.currency and t.currency != pending.currency:
            return Rejection.PENDING_TRANSFER_HAS_DIFFERENT_CURRENCY
        if t.amount_minor > pending.amount_minor:
            return Rejection.EXCEEDS_PENDING_TRANSFER_AMOUNT
        if t.kind is TransferKind.POST_PENDING:  # money moves: a suspended party takes none
            if self.balances[pending.debit_account_id].blocked:
                return Rejection.DEBIT_ACCOUNT_BLOCKED
            credit = self.balances[pending.credit_account_id]
            if credit.blocked:
                return Rejection.CREDIT_ACCOUNT_BLOCKED
            amount = t.amount_minor or pending.amount_minor
            if credit.posted_minor + amount > BALANCE_MINOR_MAX:
                return Rejection.OVERFLOWS_BALANCE
        return None

    @staticmethod
    def _check_movement(t: Transfer, debit: Balance, credit: Balance,
                        amount: int) -> Rejection | None:
        if debit.currency != credit.currency:
            return Rejection.ACCOUNTS_MUST_HAVE_SAME_CURRENCY
        if t.currency != debit.currency:
            return Rejection.CURRENCY_DIFFERS_FROM_ACCOUNTS
        if debit.blocked:
            return Rejection.DEBIT_ACCOUNT_BLOCKED
        if credit.blocked:
            return Rejection.CREDIT_ACCOUNT_BLOCKED
        # The debit side first: whether the credit account would overflow says something of
        # its balance, which only a debtor able to pay the amount may learn that way.
        floor = debit.floor_minor
        available_after = debit.posted_minor - debit.debits_pending_minor - amount
        if floor is None:
            if available_after < -BALANCE_MINOR_MAX:
                return Rejection.OVERFLOWS_BALANCE
        elif available_after < floor:
            return Rejection.INSUFFICIENT_LIQUIDITY
        if credit.posted_minor + credit.credits_pending_minor + amount > BALANCE_MINOR_MAX:
            return Rejection.OVERFLOWS_BALANCE
        return None

    def _resubmitted(self, transfer: Transfer, known: bytes,
                     timestamp_us: int) -> TransferOutcome:
        first = _loads(known)
        if (first[_REJECTION] is None and transfer.kind is TransferKind.POST_PENDING
                and not transfer.amount_minor):
            # The journal keeps a post as it took effect, and a blank amount posts the whole
            # reservation: compare that amount.
            reserved = self._known.get(transfer.pending_id)
            if reserved is not None:
                transfer = replace(transfer, amount_minor=_loads(reserved)[_AMOUNT])
        difference = _first_difference(transfer, _unfold_transfer(transfer.id, first))
        if difference is None:
            return _outcome(transfer.id, first)
        return TransferOutcome(transfer.id, difference, timestamp_us)

    # -- applying (nothing below may fail: every rule was checked) -----------------------

    def _effective(self, t: Transfer) -> Transfer:
        """The transfer as the journal keeps it: post/void complete with the pending's data."""
        if t.kind in (TransferKind.POSTED, TransferKind.PENDING):
            return t
        pending, _ = self._pending[t.pending_id]
        amount = t.amount_minor or pending.amount_minor
        if t.kind is TransferKind.VOID_PENDING:
            amount = pending.amount_minor
        return replace(t, debit_account_id=pending.debit_account_id,
                       credit_account_id=pending.credit_account_id,
                       currency=pending.currency, amount_minor=amount)

    def _apply(self, t: Transfer, timestamp_us: int, undo: list | None) -> None:
        kind = t.kind
        if kind is TransferKind.POSTED:
            self._move(t.debit_account_id, t.credit_account_id, t.amount_minor, 0, undo)
            return
        if kind is TransferKind.PENDING:
            self._move(t.debit_account_id, t.credit_account_id, 0, t.amount_minor, undo)
            expires_at_us = timestamp_us + t.timeout_s * 1_000_000 if t.timeout_s else 0
            self._pending[t.id] = (t, expires_at_us)
            if expires_at_us:
                heapq.heappush(self._expiries, (expires_at_us, t.id))
            if undo is not None:
                undo.append(("pending_added", t.id))
            return
        pending, expires_at_us = self._pending.pop(t.pending_id)
        self._resolved[t.pending_id] = kind
        if undo is not None:
            undo.append(("pending_resolved", t.pending_id, pending, expires_at_us))
        moved = t.amount_minor if kind is TransferKind.POST_PENDING else 0
        self._move(pending.debit_account_id, pending.credit_account_id, moved,
                   -pending.amount_minor, undo)

    def _move(self, debit_id: int, credit_id: int, posted: int, reserved: int,
              undo: list | None) -> None:
        debit, credit = self.balances[debit_id], self.balances[credit_id]
        debit.posted_minor -= posted
        credit.posted_minor += posted
        debit.debits_pending_minor += reserved
        credit.credits_pending_minor += reserved
        if undo is not None:
            undo.append(("move", debit_id, credit_id, posted, reserved))

    def _undo(self, undo: list[tuple]) -> None:
        for step in reversed(undo):
            if step[0] == "move":
                _, debit_id, credit_id, posted, reserved = step
                self._move(debit_id, credit_id, -posted, -reserved, None)
            elif step[0] == "pending_added":
                del self._pending[step[1]]
            else:
                _, pending_id, pending, expires_at_us = step
                del self._resolved[pending_id]
                self._pending[pending_id] = (pending, expires_at_us)

    def _accept(self, t: Transfer, timestamp_us: int, result: ExecuteResult) -> None:
        self._known[t.id] = _fold(t, timestamp_us, None)
        result.outcomes.append(TransferOutcome(t.id, None, timestamp_us))
        result.journal.append(JournalEntry(t, timestamp_us))

    def _refuse(self, t: Transfer, rejection: Rejection, timestamp_us: int,
                result: ExecuteResult) -> None:
        outcome = TransferOutcome(t.id, rejection, timestamp_us)
        result.outcomes.append(outcome)
        if rejection is Rejection.ID_INVALID or not isinstance(t.id, str):
            return  # no usable id to remember it by
        if not result.remember_refusals or not _within_64_bits(t):
            return  # a refusal kept only in memory would not survive a restart
        if t.id in self._known:
            return  # a duplicate id inside one chain: the first keeps its outcome
        self._known[t.id] = _fold(t, timestamp_us, rejection)
        result.rejections.append(RejectionRecord(t, rejection, timestamp_us))


_INT_MIN = -(2**63)


def _within_64_bits(t: Transfer) -> bool:
    """Every integer of the transfer fits the journal's 64-bit columns."""
    return all(
        value.__class__ is int and _INT_MIN <= value <= AMOUNT_MINOR_MAX
        for value in (t.debit_account_id, t.credit_account_id, t.amount_minor, t.timeout_s)
    )


# A transfer's first outcome as the ledger keeps it: its values written by `marshal` into
# bytes, which CPython's garbage collector never tracks (a Transfer and its JournalEntry it
# would track and scan, for every transfer of the day; a tuple of plain values until a
# collection first saw it). About 0.3 us a transfer to write.
_AMOUNT, _TIMESTAMP, _REJECTION = 2, 8, 9
_MARSHAL_VERSION = 2  # the quickest to write of marshal's formats for these values
_KINDS = {kind.value: kind for kind in TransferKind}
_REJECTIONS = {None: None, **{rejection.value: rejection for rejection in Rejection}}


def _fold(t: Transfer, timestamp_us: int, rejection: Rejection | None) -> bytes:
    """(debit, credit, amount, currency, kind, pending id, timeout, linked, time, rejection),
    each as the transfer holds it but the kind, by its value."""
    kind = t.kind
    return _dumps((t.debit_account_id, t.credit_account_id, t.amount_minor, t.currency,
                   kind._value_ if kind.__class__ is TransferKind else kind, t.pending_id,
                   t.timeout_s, t.linked, timestamp_us,
                   None if rejection is None else rejection._value_), _MARSHAL_VERSION)


def _unfold_transfer(transfer_id: str, first: tuple) -> Transfer:
    """The transfer of a first outcome `_fold` wrote, as `_loads` reads it back."""
    (debit, credit, amount, currency, kind, pending_id, timeout_s, linked, _, _) = first
    return Transfer(transfer_id, debit, credit, amount, currency, _KINDS.get(kind, kind),
                    pending_id, timeout_s, linked)


def _outcome(transfer_id: str, first: tuple) -> TransferOutcome:
    return TransferOutcome(transfer_id, _REJECTIONS[first[_REJECTION]], first[_TIMESTAMP])


_DIFFERENCES = (
    ("kind", Rejection.EXISTS_WITH_DIFFERENT_KIND),
    ("debit_account_id", Rejection.EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT),
    ("credit_account_id", Rejection.EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT),
    ("amount_minor", Rejection.EXISTS_WITH_DIFFERENT_AMOUNT),
    ("currency", Rejection.EXISTS_WITH_DIFFERENT_CURRENCY),
    ("pending_id", Rejection.EXISTS_WITH_DIFFERENT_PENDING_ID),
    ("timeout_s", Rejection.EXISTS_WITH_DIFFERENT_TIMEOUT),
    ("linked", Rejection.EXISTS_WITH_DIFFERENT_LINKED),
)
_INHERITABLE = frozenset({"debit_account_id", "credit_account_id", "amount_minor", "currency"})


def _first_difference(new: Transfer, first: Transfer) -> Rejection | None:
    resolves = new.kind in (TransferKind.POST_PENDING, TransferKind.VOID_PENDING)
    for field, rejection in _DIFFERENCES:
        if field == "amount_minor" and new.kind is TransferKind.VOID_PENDING:
            continue  # a void releases the whole reservation: its amount is not used
        value = getattr(new, field)
        if resolves and field in _INHERITABLE and not value:
            continue  # left blank: taken from the pending transfer the first time too
        if value != getattr(first, field):
            return rejection
    return None


# -- invariants: functions the tests call after every step --------------------------------


def posted_change(transfer: Transfer, account_id: int) -> int:
    """What a journal entry moves in an account's posted balance (a reservation moves none)."""
    if transfer.kind not in (TransferKind.POSTED, TransferKind.POST_PENDING):
        return 0
    if transfer.debit_account_id == account_id:
        return -transfer.amount_minor
    return transfer.amount_minor if transfer.credit_account_id == account_id else 0


def fold_journal(accounts: Iterable[Account],
                 entries: Iterable[JournalEntry]) -> dict[int, tuple[int, int, int]]:
    """Balances (posted, debits pending, credits pending) computed from the journal alone."""
    ledger = Ledger()
    for account in accounts:
        ledger.open_account(account)
    for entry in entries:
        ledger.replay(entry)
    return {
        account_id: (b.posted_minor, b.debits_pending_minor, b.credits_pending_minor)
        for account_id, b in ledger.balances.items()
    }


def invariant_violations(ledger: Ledger) -> list[str]:
    """Every currency sums to zero; no account below its floor; reservations balance."""
    problems: list[str] = []
    posted: dict[str, int] = {}
    debits_pending: dict[str, int] = {}
    credits_pending: dict[str, int] = {}
    for b in ledger.balances.values():
        posted[b.currency] = posted.get(b.currency, 0) + b.posted_minor
        debits_pending[b.currency] = debits_pending.get(b.currency, 0) + b.debits_pending_minor
        credits_pending[b.currency] = (
            credits_pending.get(b.currency, 0) + b.credits_pending_minor
        )
        if b.floor_minor is not None and b.available_minor < b.floor_minor:
            problems.append(f"account {b.account_id} below its floor: {b.available_minor}")
        if b.debits_pending_minor < 0 or b.credits_pending_minor < 0:
            problems.append(f"account {b.account_id} has a negative reservation")
    for currency, total in posted.items():
        if total != 0:
            problems.append(f"{currency} sums to {total}, not zero")
        if debits_pending[currency] != credits_pending[currency]:
            problems.append(f"{currency} reservations do not balance")
    return problems
