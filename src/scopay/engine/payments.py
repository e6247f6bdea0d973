"""Payments through the engine: accept, route, settle or queue, and tell everyone.

Part of the single writer (Engine inherits these operations). A payment is received,
routed to the settlement accounts of its agents (a sponsor's for an indirect participant),
accepted, then handed to the RTGS, whose step says what settled, queued or was rejected.
Every status change and every notice for a mailbox is committed with the ledger entries of
the same step, in one transaction, before anyone is answered.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import NamedTuple, NoReturn

from scopay.domain.account import AccountKind
from scopay.domain.ledger import JournalEntry, Transfer, TransferKind
from scopay.domain.mailbox import MAILBOX_PAGE_MAX, Notice, NoticeKind
from scopay.domain.money import CURRENCIES
from scopay.domain.participant import Role, Status
from scopay.domain.payment import (
    Payment,
    PaymentRecord,
    PaymentStatus,
    Priority,
    StatusChange,
    check_return,
    on_one_date,
    positional_constructor,
)
from scopay.domain.rejection import Rejection
from scopay.domain.rtgs import AccountPolicy, Order, Step, check_policy
from scopay.engine.book import PaymentBook

PAYMENTS_PER_REQUEST_MAX = 8190
LATEST_TIME_PASSED = "latest_time_passed"  # a queued payment's warning notice, no new status
GRIDLOCK_INTERVAL_US = 10_000_000  # multilateral resolution at most this often on heartbeat
ANSWERS_FORGOTTEN_PER_BEAT_MAX = 100_000  # keeps one heartbeat's commit short
# Called as the engine recovers, with (what it reads, how many so far, how many in all): a
# store of millions of payments takes a while to read, and an operator should see it move.
RecoveryProgress = Callable[[str, int, int], None]
RECOVERY_PROGRESS_EVERY = 20_000  # records read between two calls
RETURN_TRANSFER_PREFIX = "ret/"  # ledger ids of returned payments: "ret/<uetr>"
# Only a payment's sender or the operator may cancel it; said when the caller says no more.
CANCELLED_ON_REQUEST = "cancelled by its sender or the operator"
_new_notice = positional_constructor(Notice)  # a Notice without its frozen __init__'s cost


def accounts_given_room(journal: Sequence[JournalEntry]) -> set[int]:
    """Accounts whose liquidity these entries raised: every credited one, and the debtor of
    a reservation voided, expired or posted (what was reserved and not moved is free)."""
    accounts = {entry.transfer.credit_account_id for entry in journal}
    accounts.update(entry.transfer.debit_account_id for entry in journal
                    if entry.transfer.kind in _RESERVATION_ENDS)
    return accounts


_RESERVATION_ENDS = frozenset({TransferKind.VOID_PENDING, TransferKind.EXPIRE_PENDING,
                               TransferKind.POST_PENDING})


class PaymentRefused(ValueError):
    """A queue-management command that does not apply to the payment as it stands."""

    def __init__(self, message: str, status: PaymentStatus | None = None) -> None:
        super().__init__(message)
        self.status = status  # the payment's status, when there is such a payment


class PaymentResult(NamedTuple):
    """A payment's outcome as decided, with a snapshot of its history: callers shape their
    answers from it without touching the engine's live state. A named tuple: a bulk request
    makes one for each of its payments."""

    uetr: str
    status: PaymentStatus
    reason: Rejection | None = None
    detail: str | None = None
    history: tuple[StatusChange, ...] = ()
    priority: Priority | None = None


@dataclass(slots=True)
class Receipt:
    """The answer to a request sent under an idempotency key, rendered from the decided
    outcome and committed in the same transaction as the payments: a retry after any crash
    gets this answer again, never a second settlement nor a different answer."""

    key: str
    request_sha256: str
    render: Callable[[list[PaymentResult]], tuple[int, bytes]]  # -> (HTTP status, body)
    answer: tuple[int, bytes] | None = None  # filled in before the commit


PaymentRequest = tuple[str, Sequence[Payment], Receipt | None]  # (sender BIC, payments, ...)


class ReturnRequest(NamedTuple):
    """A settled payment to go back whole, from its creditor's account to its debtor's."""

    uetr: str
    amount_minor: int  # must be the settlement amount: a return is whole
    currency: str
    returner_bic: str  # told the outcome in its mailbox
    detail: str  # who returns it and why (the return reason code), for history and notices


class ReturnOutcome(NamedTuple):
    uetr: str
    rejection: Rejection | None  # None: returned
    at_us: int


@dataclass
class _Changes:
    """Everything one engine step makes durable, gathered in order."""

    journal: list[JournalEntry] = field(default_factory=list)
    records: dict[str, PaymentRecord] = field(default_factory=dict)
    events: list[tuple[str, StatusChange]] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    policies: list[tuple[int, AccountPolicy]] = field(default_factory=list)
    idempotency: list[tuple[str, str, str, int, bytes, int]] = field(default_factory=list)
    # rows of the command itself (participants, accounts, blocked), by the store's names:
    # written in the same commit as what the step did
    rows: dict[str, list] = field(default_factory=dict)
    # True once the store holds these changes, or memory was rebuilt without them (_step)
    closed: bool = False


class PaymentOperations:
    """Payment commands of the Engine; they run under the engine's lock."""

    # -- commands ---------------------------------------------------------------------------

    def submit_payments(self, sender_bic: str, payments: Sequence[Payment],
                        now_us: int) -> list[PaymentResult]:
        return self.submit_payment_requests([(sender_bic, payments, None)], now_us)[0]

    def submit_payment_requests(self, requests: Sequence[PaymentRequest],
                                now_us: int) -> list[list[PaymentResult]]:
        """Enter the payments of several senders' requests; one commit for all of them.
        A request may carry a Receipt: its answer is rendered and committed with them."""
        with self._lock, self._step(now_us) as (changes, at):
            answers = []
            for sender_bic, payments, receipt in requests:
                assert len(payments) <= PAYMENTS_PER_REQUEST_MAX, "too many in one request"
                results = self._enter_message(sender_bic, payments, at, changes)
                answers.append(results)
                if receipt is not None:  # the caller's code renders the answer: it may raise
                    self._keep_answer(sender_bic, receipt, results, at, changes)
            self._commit_changes(changes)
            self.idempotency.add_rows(changes.idempotency)
            return answers

    def cancel_payment(self, uetr: str, now_us: int,
                       detail: str = CANCELLED_ON_REQUEST) -> PaymentResult:
        """Take a queued payment out of the queue for good. `detail`, who asked and why (a
        camt.056's reason code, say), goes into its history and its sender's notice."""
        with self._lock:
            record = self._queued_record(uetr)
            with self._step(now_us) as (changes, at):
                order, step = self.rtgs.withdraw(uetr, at)
                if order is None:
                    return self._no_longer_queued(record, changes)
                self._transition(record, PaymentStatus.CANCELLED, at, changes, detail=detail)
                self._apply_step(step, at, changes)  # what it held back, settled now
                self._commit_changes(changes)
                return _result_of(record)

    def cancel_payments(self, requests: Sequence[tuple[str, str]],
                        now_us: int) -> list[PaymentRefused | None]:
        """Take queued payments (UETR, detail) out of the queue for good, in one commit: for
        each, None once cancelled, else why not (a camt.056's transactions: one message,
        one outcome for each, all durable together)."""
        assert len(requests) <= PAYMENTS_PER_REQUEST_MAX, "too many in one request"
        with self._lock, self._step(now_us) as (changes, at):
            outcomes: list[PaymentRefused | None] = []
            held_back: set[int] = set()  # the queues to try once all are out
            for uetr, detail in requests:
                record = self.payments.get(uetr)
                order = self.rtgs.cancel(uetr)
                if record is None or order is None:  # (settled meanwhile, say)
                    status = None if record is None else record.status
                    outcomes.append(PaymentRefused(f"payment {uetr} is {status}, not queued",
                                                   status))
                    continue
                self._transition(record, PaymentStatus.CANCELLED, at, changes, detail=detail)
                held_back.add(self.rtgs.queue_it_held_back(order))
                outcomes.append(None)
            # each queue once, not once for each payment cancelled
            self._apply_step(self.rtgs.release(held_back, at), at, changes)
            self._commit_changes(changes)
            return outcomes

    def return_payments(self, requests: Sequence[ReturnRequest],
                        now_us: int) -> list[ReturnOutcome]:
        """Give settled payments back, each whole or not at all, in one commit: the ledger
        transfer, the payment moved to RETURNED with the detail, and the notices (the debtor
        agent and its sponsor get the return, the returner its status)."""
        assert len(requests) <= PAYMENTS_PER_REQUEST_MAX, "too many in one request"
        with self._lock, self._step(now_us) as (changes, at):
            outcomes = [self._return(request, at, changes) for request in requests]
            self._commit_changes(changes)
            return outcomes

    def change_payment_priority(self, uetr: str, priority: Priority,
                                now_us: int) -> PaymentResult:
        with self._lock:
            record = self._queued_record(uetr)
            with self._step(now_us) as (changes, at):
                if uetr not in self.rtgs.orders:  # time moving on settled or rejected it
                    return self._no_longer_queued(record, changes)
                self._apply_step(self.rtgs.change_priority(uetr, priority, at), at, changes)
                record.priority = priority
                self._follow_queue(record)
                changes.records[uetr] = record
                self._commit_changes(changes)
                return _result_of(record)

    def move_payment(self, uetr: str, to_front: bool, now_us: int) -> PaymentResult:
        with self._lock:
            record = self._queued_record(uetr)
            with self._step(now_us) as (changes, at):
                if uetr not in self.rtgs.orders:
                    return self._no_longer_queued(record, changes)
                self._apply_step(self.rtgs.move(uetr, to_front, at), at, changes)
                self._follow_queue(record)
                changes.records[uetr] = record
                self._commit_changes(changes)
                return _result_of(record)

    def set_payment_times(self, uetr: str, latest_us: int | None, reject_by_us: int | None,
                          now_us: int) -> PaymentResult:
        with self._lock:
            record = self._queued_record(uetr)
            if not on_one_date((record.payment.earliest_us, latest_us, reject_by_us)):
                raise PaymentRefused(f"payment {uetr}: latest and reject-by times must fall on "
                                     "one UTC date, that of its earliest time if it has one")
            with self._step(now_us) as (changes, at):
                if uetr not in self.rtgs.orders:
                    return self._no_longer_queued(record, changes)
                self.rtgs.set_times(uetr, latest_us, reject_by_us)
                record.latest_us, record.reject_by_us = latest_us, reject_by_us
                changes.records[uetr] = record
                self._apply_step(self.rtgs.tick(at), at, changes)
                self._commit_changes(changes)
                return _result_of(record)

    def set_account_policy(self, account_id: int, policy: AccountPolicy, now_us: int) -> None:
        with self._lock:
            if account_id not in self.accounts:
                raise PaymentRefused(f"no account {account_id}")
            problem = check_policy(self.accounts[account_id], policy, self.accounts)
            if problem is not None:
                raise PaymentRefused(problem)
            with self._step(now_us) as (changes, at):
                changes.policies.append((account_id, policy))
                self._apply_step(self.rtgs.set_policy(account_id, policy, at), at, changes)
                self._commit_changes(changes)

    def resolve_gridlock(self, now_us: int, currency: str | None = None) -> tuple[int, int]:
        """Run multilateral gridlock resolution; return (payments settled, value in minor)."""
        with self._lock, self._step(now_us) as (changes, at):
            step = self.rtgs.resolve(at, currency)
            self._apply_step(step, at, changes)
            self._commit_changes(changes)
            return len(step.settled), sum(o.amount_minor for o in step.settled)

    def tick(self, now_us: int) -> None:
        """Let time pass: reservations expire, reject-by times reject, earliest times release."""
        with self._lock, self._step(now_us) as (changes, _):
            self._commit_changes(changes)

    def heartbeat(self, now_us: int) -> None:
        """Called at intervals: time passes, a gridlocked queue gets a resolution, and
        answers kept under idempotency keys past their retention are forgotten."""
        with self._lock:
            with self._step(now_us) as (changes, at):
                if self.rtgs.orders and at - self._resolved_at_us >= GRIDLOCK_INTERVAL_US:
                    self._resolved_at_us = at
                    self._apply_step(self.rtgs.resolve(at), at, changes)
                self._commit_changes(changes)
            due = self.idempotency.due(at)[:ANSWERS_FORGOTTEN_PER_BEAT_MAX]
            if due:
                self._write(forgotten_answers=due, at_us=at)
                self.idempotency.forget(due)

    def acknowledge(self, bic: str, numbers: Sequence[int], now_us: int) -> None:
        """Acknowledge notices by their numbers in the participant's mailbox."""
        with self._lock:
            at = self._tick(now_us)
            self._write(acknowledged=[(number, bic, at) for number in numbers], at_us=at)

    # -- reading ------------------------------------------------------------------------------

    def payment(self, uetr: str) -> PaymentRecord | None:
        """A copy of the payment's record, taken under the engine's lock (committed state
        only): the record itself moves on with the next batch, durable or not."""
        with self._lock:
            record = self.payments.peek(uetr)
            return None if record is None else _snapshot(record)

    def payment_identity(self, uetr: str) -> Payment | None:
        """The payment as sent (immutable), without waiting for the engine's lock: enough to
        decide who may see or manage it. Its status comes from a PaymentResult or payment()."""
        record = self.payments.peek(uetr)
        return None if record is None else record.payment

    def payment_sender(self, uetr: str) -> str | None:
        record = self.payments.peek(uetr)
        return None if record is None else record.sender_bic

    def queued_payments(self, visible: Callable[[PaymentRecord], bool] | None = None,
                        offset: int = 0, limit: int | None = None) -> list[PaymentRecord]:
        """Copies of the queued payments' records, as payment() gives them: each debtor
        account's in the order they would settle (priority, then place in the queue). With
        `visible`, only those it takes; `offset` and `limit` page them, and only the page is
        copied."""
        page: list[PaymentRecord] = []
        with self._lock:
            for _, queue in sorted(self.rtgs.queues.items()):
                for order in queue:
                    record = self.payments[order.uetr]
                    if visible is not None and not visible(record):
                        continue
                    if offset:
                        offset -= 1
                        continue
                    if limit is not None and len(page) >= limit:
                        return page
                    page.append(_snapshot(record))
        return page

    def mailbox(self, bic: str, after: int = 0, limit: int = 100):
        return self.store.mailbox(bic, after, min(limit, MAILBOX_PAGE_MAX))

    # -- internals --------------------------------------------------------------------------

    def _recover_payments(self, progress: RecoveryProgress | None) -> None:
        self.rtgs.policies.update(self.store.policies())
        self.rtgs.suspended_agents = {bic for bic, p in self.participants.items()
                                      if p.status != Status.ACTIVE}
        self.payments = PaymentBook()
        self._resolved_at_us = 0
        self._instructions: dict[str, str] = {}  # _instruction_key -> UETR
        # (sender, message id) -> the UETRs recorded under it: one id, one message
        self._messages: dict[tuple[str, str], set[str]] = {}
        total = self.store.payment_count() if progress is not None else 0
        for count, record in enumerate(self.store.payments(), 1):
            if progress is not None and not count % RECOVERY_PROGRESS_EVERY:
                progress("payments", count, total)
            self._record(record)
            last_change_us = record.history[-1].at_us
            self._last_timestamp_us = max(self._last_timestamp_us, last_change_us)
            self._last_step_us = max(self._last_step_us, last_change_us)
            if record.status == PaymentStatus.QUEUED:
                self.rtgs.restore(_order_of(record))
            elif record.status == PaymentStatus.SETTLED:
                self.rtgs.restore_settled(_order_of(record), record.history[-1].at_us)
            elif record.status == PaymentStatus.RETURNED:  # counted as it was before a restart
                self.rtgs.restore_settled(_order_of(record), record.history[-2].at_us)
            self.payments.fold((record,))
        if self._last_step_us:
            self.rtgs.restore_day(self._last_step_us,
                                  self.store.last_notice_times(LATEST_TIME_PASSED))
        if progress is not None:
            progress("payments", len(self.payments), len(self.payments))

    @contextmanager
    def _step(self, now_us: int) -> Iterator[tuple[_Changes, int]]:
        """A command's step, from _begin to its commit. Commands refuse before their step
        begins or after it has committed; should one raise between (a defect, or the caller's
        code that renders an answer), memory is rebuilt (_rebuilt_on_raise)."""
        begun: list[_Changes] = []
        with self._rebuilt_on_raise(lambda: bool(begun) and begun[0].closed):
            changes, at = self._begin(now_us)
            begun.append(changes)
            yield changes, at

    @contextmanager
    def _rebuilt_on_raise(self, closed: Callable[[], bool] = lambda: False) -> Iterator[None]:
        """Should the block raise before its changes are `closed` (committed, or undone),
        memory holds what the store does not, and is rebuilt from the store: nothing settles
        in memory alone. What the command staged before is kept first, as an inline commit
        would have kept it."""
        try:
            yield
        except BaseException:
            if not closed():
                if self._commit_pending:
                    with contextlib.suppress(BaseException):  # else rolled back: rebuilt below
                        self.finish_commit()
                self._recover()
            raise

    def _begin(self, now_us: int) -> tuple[_Changes, int]:
        """Start a step: time moves on, so reservations and queues react to it first."""
        at = self._tick(now_us)
        changes = _Changes()
        expired = self.ledger.expire_pending(at)
        changes.journal.extend(expired)
        self._apply_step(self.rtgs.tick(at), at, changes)
        if expired:  # a released reservation gives its debtor room: try its queue
            self._apply_step(self.rtgs.release(accounts_given_room(expired), at), at, changes)
        return changes, at

    def _record(self, record: PaymentRecord) -> None:
        """Keep a payment and index it by its sender's instruction id and message id: the
        same indexes live (a payment entered) and after a restart (a payment recovered)."""
        payment, sender_bic = record.payment, record.sender_bic
        self.payments[payment.uetr] = record
        self._instructions[_instruction_key(sender_bic, payment.instruction_id)] = payment.uetr
        if payment.message_id is not None:
            self._messages.setdefault((sender_bic, payment.message_id), set()).add(payment.uetr)

    def _enter_message(self, sender_bic: str, payments: Sequence[Payment], at: int,
                       changes: _Changes) -> list[PaymentResult]:
        """Enter one request's payments. Those of an ISO message carry its id: a sender's
        message id names one message, so a message under an id used before must repeat every
        transaction recorded under it (the same message again: each gets its outcome, and one
        refused before it was recorded is refused again alike); otherwise each of its
        payments is refused, and nothing is recorded."""
        message_id = payments[0].message_id if payments else None
        known = self._messages.get((sender_bic, message_id)) if message_id else None
        if known is not None and known - {p.uetr for p in payments}:
            return [PaymentResult(p.uetr, PaymentStatus.REJECTED, Rejection.MESSAGE_ID_USED)
                    for p in payments]
        return [self._enter(sender_bic, p, at, changes) for p in payments]

    def _enter(self, sender_bic: str, payment: Payment, at: int,
               changes: _Changes) -> PaymentResult:
        known_uetr = self._instructions.get(_instruction_key(sender_bic,
                                                              payment.instruction_id))
        existing = self.payments.get(payment.uetr) or self.payments.get(known_uetr or "")
        if existing is not None:
            if existing.payment == payment and existing.sender_bic == sender_bic:
                return _result_of(existing)  # the same payment again: its outcome so far
            return PaymentResult(payment.uetr, PaymentStatus.REJECTED,
                                 Rejection.PAYMENT_EXISTS_WITH_DIFFERENT_CONTENT)
        record = PaymentRecord(payment, sender_bic, priority=payment.priority,
                               latest_us=payment.latest_us, reject_by_us=payment.reject_by_us)
        self._record(record)
        self._transition(record, PaymentStatus.RECEIVED, at, changes, notify=False)
        refusal = self._route(record)
        if refusal is not None:
            self._transition(record, PaymentStatus.REJECTED, at, changes, refusal)
            return _result_of(record)
        self._transition(record, PaymentStatus.ACCEPTED, at, changes, notify=False)
        order = _order_of(record)
        step = self.rtgs.submit(order, at)
        record.sequence = order.sequence
        changes.records[payment.uetr] = record
        self._apply_step(step, at, changes)
        return _result_of(record)

    def _return(self, request: ReturnRequest, at: int, changes: _Changes) -> ReturnOutcome:
        record = self.payments.get(request.uetr)
        refusal = check_return(record, request.amount_minor, request.currency)
        if refusal is None:  # the money goes back: from the creditor's side to the debtor's
            payment = record.payment
            refusal = self.rtgs.movement_refusal(record.creditor_account, record.debtor_account,
                                                 payment.creditor_agent, payment.debtor_agent)
        if refusal is not None:
            return ReturnOutcome(request.uetr, refusal, at)
        # The id names the payment: a second return could never post it again.
        transfer = Transfer(RETURN_TRANSFER_PREFIX + request.uetr, record.creditor_account,
                            record.debtor_account, request.amount_minor, request.currency)
        result = self.ledger.execute([transfer], at, remember_refusals=False)
        refusal = result.outcomes[0].rejection
        if refusal is not None:  # e.g. the returner lacks the liquidity: nothing changed
            return ReturnOutcome(request.uetr, refusal, at)
        # -- the money went back: nothing below may fail --
        changes.journal.extend(result.journal)
        self._transition(record, PaymentStatus.RETURNED, at, changes, detail=request.detail,
                         notify=False)
        debtor_agent = record.payment.debtor_agent
        told = dict.fromkeys(bic for bic in (debtor_agent, self._sponsor_of(debtor_agent))
                             if bic is not None)
        for bic in told:  # the money came back to them, as a payment comes in
            changes.notices.append(_new_notice(bic, NoticeKind.INCOMING_PAYMENT, request.uetr,
                                               PaymentStatus.RETURNED.value, request.detail, at))
        # the returner (the operator may return), whose account paid (an indirect creditor
        # agent's sponsor), and the creditor agent, which was told the payment came in
        debited = self.accounts[record.creditor_account].owner_bic
        for bic in dict.fromkeys((request.returner_bic, debited,
                                  record.payment.creditor_agent)):
            changes.notices.append(_new_notice(bic, NoticeKind.STATUS_REPORT, request.uetr,
                                               PaymentStatus.RETURNED.value, request.detail, at))
        # The debtor's account got room: its queued payments may settle now.
        self._apply_step(self.rtgs.release(accounts_given_room(result.journal), at), at,
                         changes)
        return ReturnOutcome(request.uetr, None, at)

    def _route(self, record: PaymentRecord) -> Rejection | None:
        payment = record.payment
        if payment.settlement_currency not in CURRENCIES:
            return Rejection.CURRENCY_UNKNOWN
        accounts = []
        for bic, unknown, blocked in (
                (payment.debtor_agent, Rejection.DEBTOR_AGENT_UNKNOWN,
                 Rejection.DEBIT_ACCOUNT_BLOCKED),
                (payment.creditor_agent, Rejection.CREDITOR_AGENT_UNKNOWN,
                 Rejection.CREDIT_ACCOUNT_BLOCKED)):
            participant = self.participants.get(bic)
            if participant is None:
                return unknown
            if participant.status != Status.ACTIVE:  # suspended: its accounts are blocked
                return blocked
            holder = self._sponsor_of(bic) or bic  # an indirect settles on its sponsor's
            account = self._settlement_account(holder, payment.settlement_currency)
            if account is None:
                return Rejection.NO_SETTLEMENT_ACCOUNT
            accounts.append(account)
        record.debtor_account, record.creditor_account = accounts
        return None

    def _settlement_account(self, bic: str | None, currency: str) -> int | None:
        return self._account_index.get((bic, currency, AccountKind.SETTLEMENT))

    def _apply_step(self, step: Step, at: int, changes: _Changes) -> None:
        changes.journal.extend(step.ledger.journal)
        for order, reason in step.queued:
            self._transition(self.payments[order.uetr], PaymentStatus.QUEUED, at, changes,
                             detail=reason.value)
        for order in step.settled:
            record = self.payments[order.uetr]
            record.sequence, record.priority = order.sequence, order.priority
            self._transition(record, PaymentStatus.SETTLED, at, changes)
        for order, rejection in step.rejected:
            self._transition(self.payments[order.uetr], PaymentStatus.REJECTED, at, changes,
                             rejection)
        for order in step.late:  # no new status: a warning to the sender, as T2 gives one
            changes.notices.append(_new_notice(
                self.payments[order.uetr].sender_bic, NoticeKind.STATUS_REPORT, order.uetr,
                PaymentStatus.QUEUED.value, LATEST_TIME_PASSED, at))

    def _transition(self, record: PaymentRecord, status: PaymentStatus, at: int,
                    changes: _Changes, reason: Rejection | None = None,
                    detail: str | None = None, notify: bool = True) -> None:
        change = record.move_to(status, at, reason, detail)
        uetr = record.payment.uetr
        changes.records[uetr] = record
        changes.events.append((uetr, change))
        if not notify:
            return
        # `_value_`, not `.value` (a Python-level property): paid for each status change
        reason_text = reason._value_ if reason else detail
        changes.notices.append(_new_notice(record.sender_bic, NoticeKind.STATUS_REPORT, uetr,
                                           status._value_, reason_text, at))
        if status == PaymentStatus.SETTLED:
            creditor_agent = record.payment.creditor_agent
            changes.notices.append(_new_notice(creditor_agent, NoticeKind.INCOMING_PAYMENT,
                                               uetr, status._value_, None, at))
            sponsor = self._sponsor_of(creditor_agent)
            if sponsor is not None:  # the money landed on the sponsor's account: tell it
                changes.notices.append(_new_notice(sponsor, NoticeKind.INCOMING_PAYMENT, uetr,
                                                   status._value_, None, at))

    def _sponsor_of(self, bic: str) -> str | None:
        """The sponsor of an indirect participant, whose accounts it settles on."""
        participant = self.participants.get(bic)
        if participant is None or participant.role != Role.INDIRECT:
            return None
        return participant.sponsor_bic

    def _follow_queue(self, record: PaymentRecord) -> None:
        """A queued payment's place (sequence, priority) as the RTGS now has it."""
        order = self.rtgs.orders.get(record.payment.uetr)
        if order is not None:
            record.sequence, record.priority = order.sequence, order.priority

    def _keep_answer(self, bic: str, receipt: Receipt, results: list[PaymentResult], at: int,
                     changes: _Changes) -> None:
        receipt.answer = receipt.render(results)
        if (bic, receipt.key) not in self.idempotency:
            changes.idempotency.append((bic, receipt.key, receipt.request_sha256,
                                        *receipt.answer, at))

    def _no_longer_queued(self, record: PaymentRecord, changes: _Changes) -> NoReturn:
        """The step that was to change a queued payment found it settled or rejected as time
        moved on: that is committed, and the change refused, the payment left as it is."""
        self._commit_changes(changes)
        raise PaymentRefused(f"payment {record.payment.uetr} is {record.status}, not queued",
                             record.status)

    def _queued_record(self, uetr: str) -> PaymentRecord:
        record = self.payments.get(uetr)
        if record is None:
            raise PaymentRefused(f"no payment {uetr}")
        if record.status != PaymentStatus.QUEUED:
            raise PaymentRefused(f"payment {uetr} is {record.status}, not queued", record.status)
        return record

    def _commit_changes(self, changes: _Changes) -> None:
        changes.closed = True  # written below, or memory rebuilt if the write fails
        if not (changes.journal or changes.records or changes.notices or changes.policies
                or changes.idempotency or changes.rows or self._day_turned()):
            self.payments.fold()  # those a command read (book.py)
            return
        try:
            self._write(changes.journal, (),
                        payments=self.payments.rows_to_write(changes.records.values()),
                        payment_events=changes.events, policies=changes.policies,
                        notices=changes.notices, idempotency=changes.idempotency,
                        at_us=self._last_timestamp_us, **changes.rows)
        except BaseException:
            self._recover()
            raise
        self._journal_count += len(changes.journal)


def _instruction_key(sender_bic: str, instruction_id: str) -> str:
    """A sender's instruction id as one string (a BIC holds no space): a key the garbage
    collector does not track, where a tuple is tracked until a collection first sees it."""
    return f"{sender_bic} {instruction_id}"


def _snapshot(record: PaymentRecord) -> PaymentRecord:
    return replace(record, history=list(record.history))


def _order_of(record: PaymentRecord) -> Order:
    payment = record.payment
    return Order(payment.uetr, record.debtor_account, record.creditor_account,
                 payment.settlement_amount_minor, payment.settlement_currency, record.priority,
                 record.sequence, payment.earliest_us, record.latest_us, record.reject_by_us,
                 None, payment.debtor_agent, payment.creditor_agent)


def _result_of(record: PaymentRecord) -> PaymentResult:
    last = record.history[-1]
    return PaymentResult(record.payment.uetr, last.status, last.reason, last.detail,
                         tuple(record.history), record.priority)
