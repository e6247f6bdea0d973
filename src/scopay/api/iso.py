"""ISO 20022 over HTTP: post a message, get the answer message; fetch mailbox notices and
statements as messages.

POST /v1/iso20022 takes a pacs.008 or pacs.009 (bare, or in scopay's head.001 envelope) and
answers with a pacs.002 giving each transaction's status; a pacs.004 (returns of settled
payments) and answers with a pacs.002 giving each return's status; or a camt.056 and answers
with a camt.029. A message refused before any payment exists (malformed, hostile, schema-invalid)
answers 400 with an RFC 9457 problem document in XML naming the ISO reason code; nothing is
written. Messages are built and read only by scopay.iso20022; this module maps between them
and the engine.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import re
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from lxml import etree

from scopay.api import auth
from scopay.api.errors import PROBLEM, ApiError, busy, problem_xml
from scopay.api.schemas import AccountIdPath, SeqPath
from scopay.api.security import Caller
from scopay.domain.ledger import BATCH_TRANSFERS_MAX
from scopay.domain.mailbox import (
    NOTIFICATION_KINDS,
    Notice,
    NoticeKind,
    day_digits,
    statement_id,
    statement_of,
)
from scopay.domain.participant import Role
from scopay.domain.payment import Payment, PaymentRecord, PaymentStatus, StatusChange
from scopay.domain.rejection import Rejection
from scopay.domain.rtgs import PAYMENT_TRANSFER_PREFIX
from scopay.engine.payments import (
    RETURN_TRANSFER_PREFIX,
    PaymentRefused,
    PaymentResult,
    ReturnOutcome,
    ReturnRequest,
)
from scopay.engine.runner import Runner, RunnerBusyError
from scopay.iso20022.camt029 import build_camt029
from scopay.iso20022.camt053 import PAGE_NUMBER_MAX, build_camt053
from scopay.iso20022.camt054 import build_camt054
from scopay.iso20022.codes import (
    PAYMENT_STATUS_CODE,
    CancellationStatus,
    EntryStatus,
    InvestigationConfirmation,
    TransactionStatus,
    reason_for,
)
from scopay.iso20022.document import message_type_of, namespace_of
from scopay.iso20022.head001 import build_envelope
from scopay.iso20022.message import parse_message
from scopay.iso20022.model import (
    BusinessAppHeader,
    BusinessMessage,
    CancellationRequest,
    CancellationResolution,
    CreditTransferMessage,
    Entry,
    Notification,
    PaymentReturn,
    ReturnInstruction,
    Statement,
    StatusReport,
    TransactionCancellation,
    TransactionCancellationStatus,
    TransactionStatusReport,
    names_payment,
)
from scopay.iso20022.pacs002 import build_pacs002
from scopay.iso20022.pacs004 import PACS004_V09, build_pacs004
from scopay.iso20022.pacs008 import PACS008_V08, PACS008_V13, build_pacs008
from scopay.iso20022.pacs009 import PACS009_V08, build_pacs009
from scopay.iso20022.parsing import MessageRefused

router = APIRouter()
XML = "application/xml"
_ANSWERS = {400: {"content": {"application/problem+xml": {}}}, 401: PROBLEM, 403: PROBLEM,
            404: PROBLEM}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ISO_ID_LENGTH_MAX = 35  # Max35Text: the ids of the messages scopay writes
RETURN_TEXT_LENGTH_MAX = 4 * 105  # the AddtlInf lines scopay writes for one reason
# The last day whose end (the statement's CreDtTm) a date-time can still name.
STATEMENT_DAY_LAST = date(9999, 12, 30)
STATEMENT_PAGE_ENTRIES = 1_000  # entries a camt.053 page holds at most (about 0.3 MB of XML)


def _runner(request: Request) -> Runner:
    return request.app.state.runner


@router.post("/v1/iso20022", tags=["iso20022"], responses=_ANSWERS,
             response_class=Response)
async def post_message(request: Request, caller: Caller) -> Response:
    """Post an ISO 20022 message (pacs.008, pacs.009, pacs.004, camt.056); the answer is a
    message."""
    body = await request.body()
    try:
        message_type, value = await _parsed(request, body)
    except MessageRefused as refusal:
        return problem_xml(400, refusal.reason_code, refusal.text)
    header = None
    if isinstance(value, BusinessMessage):
        if value.header.from_bic != caller.participant.bic:
            return problem_xml(403, "AG01", "the header's sender is not the signing participant")
        if not _addressed_to_scopay(_runner(request).engine, value.header.to_bic):
            return problem_xml(422, "AG01", f"the header's receiver {value.header.to_bic} is "
                               "neither scopay's operator nor a currency's settlement agent: "
                               "the message is not addressed to scopay")
        header, value = value.header, value.document
    try:
        if isinstance(value, CreditTransferMessage):
            answer = await _credit_transfers(request, caller, message_type, value)
        elif isinstance(value, CancellationRequest):
            answer = await _cancellations(request, caller, value)
        elif isinstance(value, ReturnInstruction):
            answer = await _returns(request, caller, value)
        else:
            return problem_xml(422, "AG03", f"scopay does not take {message_type} here")
    except RunnerBusyError as error:  # not kept for the idempotency key: a retry runs again
        return busy(request.url.path, str(error))
    if header is None or answer.status_code != 200:
        return answer
    # A message that came with a business application header is answered with one.
    return Response(_with_header(_runner(request).engine, caller, answer.body,
                                 _answer_id(header.business_message_id),
                                 header.business_service), media_type=XML)


# A message this long is read on a thread of its own, one at a time (the others wait their
# turn): reading takes about 0.1 ms per transaction, and on the event loop a 6,000-transaction
# message held every other request for 0.75 s. Shorter ones are read inline (the hop would
# cost more than the read). One thread for the process: the XSD validators it loads (one set
# per thread, see schemas.schema_for) are loaded once.
READ_ON_THREAD_BYTES = 64 * 1024
_reader: ThreadPoolExecutor | None = None


async def _parsed(request: Request, body: bytes) -> tuple[str, object]:
    global _reader
    if len(body) < READ_ON_THREAD_BYTES:
        return parse_message(body)
    if _reader is None:
        _reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scopay-iso-reader")
    return await asyncio.get_running_loop().run_in_executor(_reader, parse_message, body)


@router.get("/v1/mailbox/{seq}/message", tags=["mailbox"], responses=_ANSWERS,
            response_class=Response)
def fetch_message(seq: SeqPath, caller: Caller, request: Request,
                  head: bool = Query(False, description="wrap the message with a business "
                                     "application header (head.001), as CBPR+ sends it")
                  ) -> Response:
    """A mailbox notice as its ISO 20022 message (see _mailbox_message), with a head.001 in
    scopay's envelope when asked."""
    answer = _mailbox_message(seq, caller, request)
    if not head or answer.status_code != 200:
        return answer
    return Response(_with_header(_runner(request).engine, caller, answer.body,
                                 _mailbox_id(caller.participant.bic, seq), None),
                    media_type=XML)


def _with_header(engine, caller: auth.Caller, document: bytes, business_message_id: str,
                 business_service: str | None) -> bytes:
    """The document in scopay's envelope with a head.001: from scopay (its operator's BIC) to
    the caller, naming the document's message type."""
    operator = _operator_bic(engine, caller)
    header = BusinessAppHeader(
        from_bic=operator, to_bic=caller.participant.bic,
        business_message_id=business_message_id,
        message_definition_id=message_type_of(namespace_of(etree.fromstring(document))),
        created_at_us=time.time_ns() // 1000, business_service=business_service)
    return build_envelope(header, document)


def _servicer(engine, account) -> str | None:
    """The BIC of who services an account, for a report's Acct/Svcr: the settlement agent
    (central bank) of its currency, whose money it holds; none named if it has none."""
    issuance = engine.issuance_account(account.currency)
    return None if issuance is None else engine.accounts[issuance].owner_bic


def _addressed_to_scopay(engine, bic: str) -> bool:
    """A head.001's `To` may name scopay's operator or the settlement agent of a currency
    (the central bank whose ledger scopay keeps), as RTGS members address their RTGS."""
    participant = engine.participants.get(bic)
    return participant is not None and participant.role in (Role.OPERATOR,
                                                            Role.SETTLEMENT_AGENT)


def _operator_bic(engine, caller: auth.Caller) -> str:
    """scopay's own BIC, its operator's, in what scopay writes as itself."""
    return next((p.bic for p in engine.participants.values() if p.role == Role.OPERATOR),
                caller.participant.bic)


def _mailbox_id(recipient: str, seq: int, prefix: str = "MBX") -> str:
    """The message id (and business message id) of mailbox message `seq` of `recipient`:
    `MBX`, the recipient's BIC, `/` (which no BIC holds: DEMACNX0's message 1001 and
    DEMACNX0100's message 1 differ) and the message's number in its mailbox (at most 34
    characters), so no two messages scopay sends share one, whoever gets them. Answers' ids
    begin with SCOPAY and statements' with STMT, so no mailbox message shares its id with an
    answer or a statement, whatever ids the senders chose."""
    return f"{prefix}{recipient}/{seq}"


def _answer_id(message_id: str) -> str:
    """The id of scopay's answer to a message: SCOPAY and the message's id when that fits in
    the 35 characters of an ISO id, else SCOPAY and a digest of it (so that two long ids
    never share an answer id, and a message sent again gets the same one)."""
    return _iso_id("SCOPAY", message_id)


def _payment_part(transfer_id: str) -> tuple[str | None, str | None]:
    """(prefix, UETR) of a payment's ledger transfer (`pay/<uetr>`) or its return's
    (`ret/<uetr>`); (None, None) for any other transfer."""
    for prefix in (PAYMENT_TRANSFER_PREFIX, RETURN_TRANSFER_PREFIX):
        if transfer_id.startswith(prefix):
            return prefix, transfer_id[len(prefix):]
    return None, None


def _servicer_reference(transfer_id: str) -> str:
    """An entry's account servicer's reference (AcctSvcrRef): its ledger transfer, named in
    35 characters. A payment's `P` and its UETR's 32 digits, a return's `R` and those of the
    payment returned, another transfer `T` and its id (the id as scopay keeps it: with its
    owner's BIC), or `H` and a digest of an id too long for that. Unique, as transfer ids are,
    the same in a camt.054 and a camt.053, and found again by `GET /v1/transfers/{id}`; it
    says nothing of other participants' entries (the journal's sequence number, which it
    used to be, counts everyone's)."""
    prefix, uetr = _payment_part(transfer_id)
    if uetr is not None:
        return ("P" if prefix == PAYMENT_TRANSFER_PREFIX else "R") + uetr.replace("-", "")
    if len(transfer_id) < ISO_ID_LENGTH_MAX:
        return "T" + transfer_id
    return "H" + hashlib.sha256(transfer_id.encode()).hexdigest()[:ISO_ID_LENGTH_MAX - 1]


def _iso_id(prefix: str, name: str) -> str:
    """prefix + name when that fits in the 35 characters of an ISO id, else prefix + a
    digest of name: distinct names keep distinct ids, the same name the same id."""
    if len(prefix) + len(name) <= ISO_ID_LENGTH_MAX:
        return prefix + name
    return prefix + hashlib.sha256(name.encode()).hexdigest()[:ISO_ID_LENGTH_MAX - len(prefix)]


def _mailbox_message(seq: int, caller: auth.Caller, request: Request) -> Response:
    """A mailbox notice as its ISO 20022 message: a status report (pacs.002), the incoming
    payment itself, in the message it came in (pacs.008 .08 or .13, pacs.009), a return
    (pacs.004 to the debtor agent; a pacs.002 on it to the returner), a debit or credit
    notification of a ledger movement that is no payment (camt.054), or the statement of an
    account for a finished day (camt.053)."""
    engine = _runner(request).engine
    notice = engine.store.mailbox_notice(caller.participant.bic, seq)
    if notice is None:
        raise ApiError(404, "Not found", f"no message {seq} in your mailbox")
    if notice.kind in NOTIFICATION_KINDS:
        return Response(_notification(engine, seq, notice), media_type=XML)
    if notice.kind == NoticeKind.STATEMENT:
        account_id, day = statement_of(notice)
        return Response(_statement(engine, engine.accounts[account_id], day), media_type=XML)
    record = engine.payment(notice.uetr or "")
    if record is None:
        raise ApiError(404, "Not found", f"message {seq} is about no payment")
    if notice.status == PaymentStatus.RETURNED:
        return Response(_return_notice(seq, notice, record), media_type=XML)
    if notice.kind == "incoming_payment":
        return Response(_forwarded(seq, notice.created_us, record, caller.participant.bic),
                        media_type=XML)
    # the status change the notice tells (of its time: a payment queued twice has two),
    # and what the notice says of it: a warning such as a passed latest time changes no status
    same = [c for c in record.history if c.status.value == notice.status]
    change = next((c for c in same if c.at_us == notice.created_us),
                  same[0] if same else record.history[-1])
    result = PaymentResult(record.payment.uetr, change.status, change.reason, change.detail)
    report = _status_report(_mailbox_id(notice.participant_bic, seq), notice.created_us, record,
                            result)
    if result.reason is None and notice.reason:  # a rejection's code and text say it already
        (transaction,) = report.transactions
        report = replace(report, transactions=(replace(
            transaction, reason_text=notice.reason[:RETURN_TEXT_LENGTH_MAX]),))
    return Response(_written(build_pacs002, report, f"message {seq}"), media_type=XML)


@router.get("/v1/accounts/{account_id}/statement", tags=["accounts"], responses=_ANSWERS,
            response_class=Response)
def statement(account_id: AccountIdPath, caller: Caller, request: Request,
              day: date = Query(description="statement day (UTC)"),
              page: int = Query(1, ge=1, le=PAGE_NUMBER_MAX,
                                description=f"page of the statement: one holds at most "
                                            f"{STATEMENT_PAGE_ENTRIES:,} entries, and says "
                                            "whether it is the last (LastPgInd)"),
              ) -> Response:
    """camt.053 for one account and one UTC day: opening and closing balances and entries.
    Today's is interim (its closing balance ITBD, as of now); a day to come has none. A day
    of more than 1,000 entries comes in pages (MsgPgntn and StmtPgntn), each adding up on
    its own: the first opens on OPBD, each later one on the interim balance the one before
    closed on (ITBD, sub-type OIBD); each but the last closes on ITBD, sub-type CIBD."""
    if day > STATEMENT_DAY_LAST:
        raise ApiError(422, "Invalid request",
                       f"day: a statement day is at most {STATEMENT_DAY_LAST.isoformat()} (its "
                       "end must be a date-time)")
    if day > datetime.now(UTC).date():
        raise ApiError(422, "Invalid request", f"day: {day.isoformat()} has not begun (UTC)")
    engine = _runner(request).engine
    account = engine.accounts.get(account_id)
    if account is None or not auth.may_see_account(caller, account):
        raise ApiError(404, "Not found", f"no account {account_id} visible to you")
    return Response(_statement(engine, account, day, page), media_type=XML)


def _statement(engine, account, day: date, page: int = 1) -> bytes:
    """camt.053 of one account and UTC day, whether asked for or fetched from the mailbox
    (its first page, then). A page holds at most STATEMENT_PAGE_ENTRIES entries; the XML of
    one page only is built, from the account's entries of that page only."""
    account_id = account.id
    start_us = (datetime(day.year, day.month, day.day, tzinfo=UTC) - _EPOCH) // timedelta(
        microseconds=1)
    end_us = start_us + 86_400_000_000
    # Whether the day is over is decided before the rows are read: a page read before
    # midnight is today's, even if midnight passes while it is written (an entry booked
    # meanwhile, before midnight, is not on it). A day over when the rows are read has all
    # its entries committed: a step stamped before midnight holds the engine until its
    # commit, and any later one is stamped after.
    now_us = time.time_ns() // 1000
    final = end_us <= now_us  # else today's, as of now: its entries so far
    activity = engine.account_activity(account_id, start_us, end_us,
                                       (page - 1) * STATEMENT_PAGE_ENTRIES,
                                       STATEMENT_PAGE_ENTRIES)
    pages = max(1, -(-activity.in_period // STATEMENT_PAGE_ENTRIES))
    if page > pages:
        raise ApiError(404, "Not found", f"the statement of account {account_id} for "
                       f"{day.isoformat()} has {pages} page{'s' if pages > 1 else ''}")
    entries = [_entry(engine, t, change, day, account.owner_bic)
               for t, change in activity.postings]
    opening, closing = activity.opening_minor, activity.closing_minor
    # A page is named by what it holds. A finished day's never changes, nor does a full page
    # of today's before the last (it is the same message the day's end gives); today's last
    # page grows, so its name says its last entry (A0 while it has none): two different
    # pages never share a message id, and the same page read again keeps it.
    last_page = page == pages
    as_of = ""
    if not final and last_page:
        as_of = f"A{entries[-1].account_servicer_reference}" if entries else "A0"
    message_id = _iso_id("STMT", f"{account_id}{day_digits(day)}" + (
        f"P{page}" if page > 1 else "") + as_of)
    report = Statement(message_id, end_us if final else now_us,
                       statement_id(account_id, day), str(account_id), account.currency, opening,
                       day, closing, day, tuple(entries),
                       account_servicer=_servicer(engine, account), final=final,
                       page=page, last_page=last_page)
    return _written(build_camt053, report, f"the statement of account {account_id} for {day}")


def _written(build: Callable, report, what: str) -> bytes:
    """The message built, or a clear refusal where a value has no room in it (a balance past
    the 18 digits of an ISO amount, say): a retry would fail alike, so not a server error."""
    try:
        return build(report)
    except ValueError as error:
        raise ApiError(422, "Message cannot be written",
                       f"{what} cannot be written in ISO 20022: {error}") from None


# -- mapping ----------------------------------------------------------------------------------


async def _credit_transfers(request: Request, caller: auth.Caller, message_type: str,
                            message: CreditTransferMessage) -> Response:
    runner = _runner(request)
    bic = caller.participant.bic
    if len(message.payments) > BATCH_TRANSFERS_MAX:  # the engine's largest batch
        return problem_xml(422, "AM18", f"{len(message.payments)} transactions; scopay takes "
                           f"at most {BATCH_TRANSFERS_MAX} in one message: split it")
    payments = []
    for payment in message.payments:
        if not auth.may_send_payment(caller, runner.engine.participants.get(payment.debtor_agent)):
            return problem_xml(403, "AG01", auth.send_refusal(caller, payment.debtor_agent))
        payments.append(replace(payment, sender_bic=bic, message_id=message.message_id,
                                message_type=message_type))
    results = await asyncio.wrap_future(runner.submit_payments(bic, payments))
    stamps = [result.history[-1].at_us for result in results if result.history]
    transactions = [_transaction_status(message.message_id, message_type, payment, result)
                    for payment, result in zip(payments, results, strict=True)]
    report = StatusReport(_answer_id(message.message_id),
                          max(stamps, default=time.time_ns() // 1000),  # none recorded: now
                          tuple(transactions),
                          instructing_agent=None, instructed_agent=bic)
    return Response(build_pacs002(report), media_type=XML)


async def _cancellations(request: Request, caller: auth.Caller,
                         cancellation: CancellationRequest) -> Response:
    runner = _runner(request)
    if cancellation.assigner != caller.participant.bic:  # as a head.001's sender is checked
        return problem_xml(403, "AG01", "the camt.056's assigner is not the signing participant")
    if len(cancellation.transactions) > BATCH_TRANSFERS_MAX:  # one command: bounded
        return problem_xml(422, "AM18", f"{len(cancellation.transactions)} cancellations; "
                           f"scopay takes at most {BATCH_TRANSFERS_MAX} in one message: split it")
    asked: list[tuple[str, str] | None] = []  # (UETR, detail), or None: no such payment
    for item in cancellation.transactions:
        uetr = item.original_uetr or ""
        payment = runner.engine.payment_identity(uetr)
        sender = runner.engine.payment_sender(uetr)
        asked.append((uetr, _cancellation_detail(caller, sender, cancellation.assignment_id,
                                                 item))
                     if payment is not None and auth.may_manage(caller, sender)
                     and names_payment(item, payment) else None)
    requests = [request for request in asked if request is not None]
    decided = iter(await asyncio.wrap_future(runner.call(  # one command, one commit
        lambda e, now: _cancelled_once(e, requests, now))) if requests else ())
    statuses = []
    for item, request in zip(cancellation.transactions, asked, strict=True):
        outcome, reason = CancellationStatus.REJECTED, "NOOR"  # no original transaction
        if request is not None:
            refusal = next(decided)
            if refusal is None:
                outcome, reason = CancellationStatus.ACCEPTED, None
            else:
                reason = "ARDT" if refusal.status == PaymentStatus.SETTLED else "NOAS"
        statuses.append(TransactionCancellationStatus(
            item.original_message_id, item.original_message_type, outcome,
            original_uetr=item.original_uetr, original_end_to_end_id=item.original_end_to_end_id,
            original_instruction_id=item.original_instruction_id, reason_code=reason))
    # scopay, which took the payments out of its queues, resolves the case, to its assigner,
    # when it cancelled the last of them (all in one step, but for those a first sending of
    # the same message cancelled before), else now
    cancelled = [runner.engine.payment(request[0]) for request, status
                 in zip(asked, statuses, strict=True)
                 if status.status == CancellationStatus.ACCEPTED]
    resolved_us = max((record.history[-1].at_us for record in cancelled if record is not None),
                      default=time.time_ns() // 1000)
    resolution = CancellationResolution(  # an assignment of its own, as a pacs.002's id is
        _answer_id(cancellation.assignment_id), _operator_bic(runner.engine, caller),
        cancellation.assigner, resolved_us, _confirmation(statuses), tuple(statuses))
    return Response(build_camt029(resolution), media_type=XML)


def _confirmation(statuses: list[TransactionCancellationStatus]) -> InvestigationConfirmation:
    """The case's outcome: every transaction cancelled, none, or some (each says which)."""
    accepted = sum(s.status == CancellationStatus.ACCEPTED for s in statuses)
    if accepted == len(statuses):
        return InvestigationConfirmation.CANCELLED_AS_REQUESTED
    if accepted == 0:
        return InvestigationConfirmation.REJECTED_CANCELLATION_REQUEST
    return InvestigationConfirmation.PARTIALLY_EXECUTED_CANCELLATION_REQUEST


async def _returns(request: Request, caller: auth.Caller,
                   instruction: ReturnInstruction) -> Response:
    """Each return goes back whole or not at all; one the caller may not make is answered as
    one of a payment that does not exist."""
    runner = _runner(request)
    engine = runner.engine
    if len(instruction.returns) > BATCH_TRANSFERS_MAX:
        return problem_xml(422, "AM18", f"{len(instruction.returns)} returns; scopay takes "
                           f"at most {BATCH_TRANSFERS_MAX} in one message: split it")
    asked: list[ReturnRequest | None] = []
    for item in instruction.returns:
        uetr = item.original_uetr or ""
        payment = engine.payment_identity(uetr)
        who = None if payment is None or not names_payment(item, payment) else (
            auth.returner(caller, payment, engine.participants))
        asked.append(None if who is None else ReturnRequest(
            uetr, item.returned_amount_minor, item.currency, caller.participant.bic,
            _return_detail(instruction.message_id, item, who)))
    requests = [r for r in asked if r is not None]
    return_ids = [item.return_id for item, r in zip(instruction.returns, asked, strict=True)
                  if r is not None]
    named = {(item.original_uetr, item.return_id) for item in instruction.returns}
    decided = iter(await asyncio.wrap_future(runner.call(
        lambda e, now: _returned_once(e, caller.participant.bic, instruction.message_id, named,
                                      requests, return_ids, now))))
    outcomes = [next(decided) if r is not None else None for r in asked]
    transactions = tuple(_return_status(instruction.message_id, item, outcome)
                         for item, outcome in zip(instruction.returns, outcomes, strict=True))
    stamps = [outcome.at_us for outcome in outcomes if outcome is not None]
    # when the engine decided; else now (never the sender's own CreDtTm, which may be off)
    report = StatusReport(_answer_id(instruction.message_id),
                          max(stamps, default=time.time_ns() // 1000), transactions,
                          instructed_agent=caller.participant.bic)
    return Response(build_pacs002(report), media_type=XML)


def _cancelled_once(engine, requests: list[tuple[str, str]],
                    now_us: int) -> list[PaymentRefused | None]:
    """The cancellations made (run by the engine's runner, between its other commands). A
    cancellation asked again by the same camt.056 (its assignment and cancellation ids,
    party, reason and text: the same detail), of a payment it cancelled, is answered as it
    was, accepted: a sender resending a message whose answer it lost learns that it went
    through, not that the payment is no longer queued (NOAS)."""
    return _once([_ended_so(engine, uetr, PaymentStatus.CANCELLED, detail) and (None,)
                   for uetr, detail in requests], requests, engine.cancel_payments, now_us)


def _once(before: list, requests: list, make: Callable, now_us: int) -> list:
    """The outcomes of requests, each the one of `before` (a 1-tuple: what it was answered
    the first time) or, where that is falsy, the one `make` gives, made in one command for
    all of them."""
    fresh = [request for request, done in zip(requests, before, strict=True) if not done]
    made = iter(make(fresh, now_us) if fresh else ())
    return [done[0] if done else next(made) for done in before]


def _ended_so(engine, uetr: str, status: PaymentStatus, detail: str) -> StatusChange | None:
    """The change that took the payment to `status` (CANCELLED, RETURNED: for good), if it
    did so with this detail."""
    record = engine.payment(uetr)
    if record is None or record.status != status:
        return None
    change = next(c for c in reversed(record.history) if c.status == status)
    return change if change.detail == detail else None


def _returned_once(engine, returner: str, message_id: str, named: set[tuple[str | None, str]],
                   requests: list[ReturnRequest], return_ids: list[str],
                   now_us: int) -> list[ReturnOutcome]:
    """The returns made (run by the engine's runner, between its other commands). One
    message id, one message, as for a pacs.008: a pacs.004 under an id its returner used
    before must name every return made under it (`named`: its transactions' UETRs and
    return ids), else it is refused whole (DUPL, message_id_used) and nothing moves. A return
    asked again by the same pacs.004 (its message id, return id, reason and returner, so the
    same detail, and the same amount) is answered as it was the first time, returned then:
    a sender that resends a message it got no answer to learns that it did go through, not
    that the payment was returned already (DUPL) by someone."""
    known = _return_messages(engine)
    returner = OPERATOR_RETURNER if returner in _operators(engine) else returner
    if not known.get((returner, message_id), set()) <= named:
        return [ReturnOutcome(request.uetr, Rejection.MESSAGE_ID_USED, now_us)
                for request in requests]
    outcomes = _once([_returned_before(engine, request) for request in requests], requests,
                     engine.return_payments, now_us)
    made = {(outcome.uetr, return_id) for outcome, return_id
            in zip(outcomes, return_ids, strict=True) if outcome.rejection is None}
    if made:
        known.setdefault((returner, message_id), set()).update(made)
    return outcomes


# engine -> (its recoveries when read, the index): read again once the engine re-read its
# state (a failed commit rolls back returns this index may have taken in)
_returns_by_message: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# The history says "the operator" (auth.THE_OPERATOR), not which: their ids are one namespace.
OPERATOR_RETURNER = auth.THE_OPERATOR


def learn_used_return_ids(engine) -> None:
    """Read the pacs.004 ids used so far (_return_messages) now, as the server starts (run by
    the engine's runner), rather than at the first pacs.004, which would wait for it: about
    5 µs a payment returned by one."""
    _return_messages(engine)


def _operators(engine) -> set[str]:
    return {p.bic for p in engine.participants.values() if p.role == Role.OPERATOR}


def _return_messages(engine) -> dict[tuple[str, str], set[tuple[str, str]]]:
    """(returner's BIC, or OPERATOR_RETURNER; pacs.004 message id) -> {(UETR, return id)} of
    the returns made under it: read from the payments' histories the first time and after
    the engine re-read its state (it holds every payment; called by the engine's runner,
    between its commands), then kept as returns are made."""
    cached = _returns_by_message.get(engine)
    if cached is None or cached[0] != engine.recoveries:
        known: dict[tuple[str, str], set[tuple[str, str]]] = {}
        _returns_by_message[engine] = (engine.recoveries, known)
        for record in engine.payments.with_status(PaymentStatus.RETURNED):
            detail = next(c for c in reversed(record.history)
                          if c.status == PaymentStatus.RETURNED).detail or ""
            references = _return_references(detail)
            who = _RETURNER.match(detail)
            if references is None or who is None:
                continue  # a return by the JSON route: no message
            bic = (OPERATOR_RETURNER if who[1] == OPERATOR_RETURNER
                   else record.payment.creditor_agent
                   if who[1].startswith("its creditor agent ") else who[1].partition(",")[0])
            known.setdefault((bic, references[0]), set()).add(
                (record.payment.uetr, references[1]))
        return known
    return cached[1]


# who returned a payment, as _return_detail writes it (auth.returner's words)
_RETURNER = re.compile(r"[A-Z0-9]{4}: returned by (.+?) \(pacs\.004 ")


def _returned_before(engine, request: ReturnRequest) -> tuple[ReturnOutcome] | None:
    returned = _ended_so(engine, request.uetr, PaymentStatus.RETURNED, request.detail)
    if returned is None:
        return None
    payment = engine.payment_identity(request.uetr)
    if (request.amount_minor, request.currency) != (payment.settlement_amount_minor,
                                                    payment.settlement_currency):
        return None
    return (ReturnOutcome(request.uetr, None, returned.at_us),)


def _return_detail(message_id: str, item: PaymentReturn, who: str) -> str:
    """Who returned the payment and why, for its history and the notices: the pacs.004's
    return reason code first (AC04, MD06, FOCR ...), then its references, each a JSON string
    (any text of theirs is read back whole: _return_references), and its text."""
    detail = (f"{item.reason_code}: returned by {who} (pacs.004 {_quoted(message_id)}, "
              f"return {_quoted(item.return_id)})")
    return detail if item.reason_text is None else f"{detail}: {item.reason_text}"


def _quoted(text: str) -> str:
    """A reference as a JSON string, its letters kept as they are (not `\\uXXXX`): the
    detail is read by people too, and cut into lines in the messages that carry it."""
    return json.dumps(text, ensure_ascii=False)


_QUOTED = r'"(?:[^"\\]|\\.)*"'
# Who returned it holds no ':' (auth.returner); a JSON return's own text, which follows
# a ':', cannot pass for the references.
_RETURN_DETAIL = re.compile(
    rf"[A-Z0-9]{{4}}: returned by [^:]+? \(pacs\.004 ({_QUOTED}), return ({_QUOTED})\)(?:: |$)",
    re.DOTALL)
# as written before the references were quoted (a MsgId holding ", return " splits wrongly)
_UNQUOTED_RETURN_DETAIL = re.compile(
    r"[A-Z0-9]{4}: returned by [^:]+? \(pacs\.004 (.+?), return (.+?)\)(?:: |$)", re.DOTALL)


def _return_references(detail: str) -> tuple[str, str] | None:
    """The pacs.004's message id and return id a return's history detail names, if any."""
    found = _RETURN_DETAIL.match(detail)
    if found is not None:
        return json.loads(found[1]), json.loads(found[2])
    found = _UNQUOTED_RETURN_DETAIL.match(detail)
    return None if found is None else (found[1], found[2])


def _return_status(message_id: str, item: PaymentReturn,
                   outcome: ReturnOutcome | None) -> TransactionStatusReport:
    rejection = Rejection.PAYMENT_NOT_FOUND if outcome is None else outcome.rejection
    code, text = (None, None) if rejection is None else reason_for(rejection)
    return TransactionStatusReport(
        message_id, PACS004_V09,
        TransactionStatus.REJECTED if rejection
        else TransactionStatus.ACCEPTED_SETTLEMENT_COMPLETED,
        original_uetr=item.original_uetr, original_end_to_end_id=item.original_end_to_end_id,
        original_instruction_id=item.return_id,
        reason_code=None if code is None else code.value, reason_text=text)


def _return_notice(seq: int, notice, record: PaymentRecord) -> bytes:
    """A return as its notice's holder gets it: the debtor agent (and its sponsor) the
    pacs.004, the returner a pacs.002 saying its pacs.004 settled."""
    payment = record.payment
    returned = next(c for c in record.history if c.status == PaymentStatus.RETURNED)
    detail = returned.detail or ""
    if notice.kind == NoticeKind.INCOMING_PAYMENT:
        item = PaymentReturn(
            _return_id(payment.uetr), payment.message_id or payment.instruction_id,
            payment.message_type or PACS008_V08, payment.settlement_amount_minor,
            payment.settlement_currency, detail.partition(":")[0],
            original_uetr=payment.uetr, original_end_to_end_id=payment.end_to_end_id,
            original_instruction_id=payment.instruction_id,
            original_amount_minor=payment.settlement_amount_minor,
            original_currency=payment.settlement_currency,
            settlement_date=(_EPOCH + timedelta(microseconds=returned.at_us)).date(),
            instructing_agent=payment.creditor_agent, instructed_agent=payment.debtor_agent,
            reason_text=detail[:RETURN_TEXT_LENGTH_MAX])
        return build_pacs004(ReturnInstruction(_mailbox_id(notice.participant_bic, seq),
                                               notice.created_us, (item,)))
    message_id, return_id = _return_references(detail) or (_return_id(payment.uetr), None)
    if len(message_id) > 35 or (return_id is not None and len(return_id) > 35):
        # a text that looks like the references but is not (a JSON return's own words)
        message_id, return_id = _return_id(payment.uetr), None
    status = TransactionStatusReport(
        message_id, PACS004_V09, TransactionStatus.ACCEPTED_SETTLEMENT_COMPLETED,
        original_uetr=payment.uetr,
        original_end_to_end_id=payment.end_to_end_id, original_instruction_id=return_id)
    return build_pacs002(StatusReport(_mailbox_id(notice.participant_bic, seq),
                                      notice.created_us, (status,)))


def _notification(engine, seq: int, notice: Notice) -> bytes:
    """camt.054 of the journal entries a notice tells, on one account of its holder's, all
    booked in one commit: the first names them (`uetr`), and the last (`reason`) when there
    are more; in between, the entries of that commit on the same side of that account are
    theirs. Each entry's reference is the transfer id as the holder knows it (its own
    without its BIC), the account servicer's reference _servicer_reference's; CreDtTm is the
    booking time (the notice was written in the commit that booked them)."""
    found = engine.store.journal_entry(notice.uetr or "")
    last = found if notice.reason is None else engine.store.journal_entry(notice.reason)
    if found is None or last is None:
        raise ApiError(404, "Not found", f"message {seq} is about no journal entry")
    (first_seq, entry), (last_seq, _) = found, last  # one entry alone: first_seq == last_seq
    credit = notice.kind == NoticeKind.CREDIT_NOTIFICATION
    account_id = entry.transfer.credit_account_id if credit else entry.transfer.debit_account_id
    account = engine.accounts[account_id]
    transfers = engine.notified_entries(account_id, credit, first_seq, last_seq)
    day = (_EPOCH + timedelta(microseconds=entry.timestamp_us)).date()
    booked = tuple(Entry(t.amount_minor if credit else -t.amount_minor, t.currency,
                         EntryStatus.BOOKED,
                         ("PMNT", "RCDT" if credit else "ICDT", "BOOK"),  # internal transfers
                         booking_date=day, value_date=day,
                         entry_reference=auth.shown_transfer_id(notice.participant_bic,
                                                                t.id)[:35],
                         account_servicer_reference=_servicer_reference(t.id))
                   for t in transfers)
    return _written(build_camt054, Notification(
        _mailbox_id(notice.participant_bic, seq), entry.timestamp_us,
        _mailbox_id(notice.participant_bic, seq, "NTF"), str(account_id), account.currency,
        booked, account_servicer=_servicer(engine, account)), f"message {seq}")


def _return_id(uetr: str) -> str:
    """scopay's id of the return it forwards (35 characters, one per payment)."""
    return "RTR" + uetr.replace("-", "")


def _cancellation_detail(caller: auth.Caller, sender: str | None, assignment_id: str,
                         item: TransactionCancellation) -> str:
    """Who cancelled and why, for the payment's history: the camt.056's reason code first
    (DUPL, FRAD, CUST ...), then who, the camt.056's assignment id and the transaction's
    cancellation id (each a JSON string: the same request sent again names the same ones,
    _cancelled_before), then its text if it gave one."""
    references = _quoted(assignment_id) + (
        "" if item.cancellation_id is None else f", cancellation {_quoted(item.cancellation_id)}")
    detail = (f"{item.reason_code}: cancelled by {auth.manager(caller, sender)} "
              f"(camt.056 {references})")
    return detail if item.reason_text is None else f"{detail}: {item.reason_text}"


RETURNED_SINCE_TEXT = "settled, then returned"


def _transaction_status(message_id: str, message_type: str, payment: Payment,
                        result: PaymentResult) -> TransactionStatusReport:
    code, text = (None, None)
    if result.reason is not None:
        code, text = reason_for(result.reason)
    status = PAYMENT_STATUS_CODE[result.status]
    if status is None:  # returned since it settled (a message sent again): what it instructed
        # was done, and a return took it back; the pacs.002 has no status for the return
        status, text = TransactionStatus.ACCEPTED_SETTLEMENT_COMPLETED, RETURNED_SINCE_TEXT
    return TransactionStatusReport(
        message_id, message_type, status,
        original_uetr=payment.uetr, original_end_to_end_id=payment.end_to_end_id,
        original_instruction_id=payment.instruction_id,
        reason_code=None if code is None else code.value, reason_text=text)


def _forwarded(seq: int, created_us: int, record: PaymentRecord, recipient: str) -> bytes:
    """The incoming payment as the creditor agent (or its sponsor, the recipient) receives
    it: in the message type and version it came in (a JSON payment, which came in none, as a
    pacs.008.001.08), instructed to the recipient: scopay settled it on the creditor agent's
    account, past any intermediary the sender named. What cannot be written is a clear
    refusal, not a server error: a retry would fail alike. Its priority and its latest and
    reject-by times are those it settled with, as its history shows them (the queue may
    have changed them)."""
    payment = record.payment
    message_type = payment.message_type or PACS008_V08
    build = _FORWARDERS.get(message_type)
    message = CreditTransferMessage(_mailbox_id(recipient, seq), created_us, (replace(
        payment, message_id=None, priority=record.priority, latest_us=record.latest_us,
        reject_by_us=record.reject_by_us),), instructed_agent=recipient)
    try:
        if build is not None:
            return build(message)
        problem = "scopay writes no such message"
    except ValueError as error:  # a value the message type has no room for
        problem = str(error)
    raise ApiError(422, "Message cannot be written",
                   f"message {seq}: payment {payment.uetr} cannot be written as {message_type} "
                   f"({problem}); GET /v1/payments/{payment.uetr} shows it")


# The builder of each message type a payment may come in, to forward it as it came.
_FORWARDERS: dict[str, Callable[[CreditTransferMessage], bytes]] = {
    PACS008_V08: functools.partial(build_pacs008, message_type=PACS008_V08),
    PACS008_V13: functools.partial(build_pacs008, message_type=PACS008_V13),
    PACS009_V08: build_pacs009,
}


def _status_report(message_id: str, at_us: int, record: PaymentRecord,
                   result: PaymentResult) -> StatusReport:
    payment = record.payment
    # A payment sent as JSON came in no message: its instruction stands for it, as a pacs.008
    transaction = _transaction_status(payment.message_id or payment.instruction_id,
                                      payment.message_type or PACS008_V08, payment, result)
    return StatusReport(message_id, at_us, (transaction,))


def _transaction_code(engine, change: int, prefix: str | None,
                      payment: Payment | None) -> tuple[str, str, str]:
    """The bank transaction code of a statement entry (domain, family, sub-family): a
    credit transfer received (RCDT) or issued (ICDT); a payment between agents of two
    countries cross-border (XBCT) or else domestic (DMCT), a return's money going back RRTN,
    any other movement (funds-in and -out, transfers) an internal book transfer (BOOK), as the
    camt.054 of that movement says."""
    family = "RCDT" if change > 0 else "ICDT"
    if prefix == RETURN_TRANSFER_PREFIX:
        return "PMNT", family, "RRTN"
    if payment is None:
        return "PMNT", family, "BOOK"
    countries = {getattr(engine.participants.get(bic), "country", None)
                 for bic in (payment.debtor_agent, payment.creditor_agent)}
    return "PMNT", family, "DMCT" if len(countries) == 1 else "XBCT"


def _entry(engine, t, change: int, day: date, owner_bic: str) -> Entry:
    """A statement entry: its reference the transfer id as the account's owner knows it (its
    own without its BIC, another's whole; cut to 35 characters), the account servicer's
    reference _servicer_reference's, as a camt.054 of the same entry gives them."""
    prefix, uetr = _payment_part(t.id)  # a payment, or its return
    payment = engine.payment_identity(uetr) if uetr else None
    return Entry(change, t.currency, EntryStatus.BOOKED,
                 _transaction_code(engine, change, prefix, payment), booking_date=day,
                 value_date=day, entry_reference=auth.shown_transfer_id(owner_bic, t.id)[:35],
                 account_servicer_reference=_servicer_reference(t.id),
                 uetr=uetr, end_to_end_id=payment.end_to_end_id if payment else None,
                 instruction_id=payment.instruction_id if payment else None,
                 debtor_agent=payment.debtor_agent if payment else None,
                 creditor_agent=payment.creditor_agent if payment else None)
