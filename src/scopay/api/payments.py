"""Payment routes: send (one or bulk), track by UETR, manage the queue, read the mailbox.

Thin: each route checks the caller's right, turns JSON into domain values (refusing bad
input before a command exists), hands the command to the engine runner and shapes the answer.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Query, Request, Response
from pydantic import TypeAdapter, ValidationError
from pydantic_core import to_json

from scopay.api import auth
from scopay.api.errors import (
    PROBLEM,
    ApiError,
    invalid_input_detail,
    media_type_for,
    rejected,
    without_frames,
)
from scopay.api.schemas import (
    AccountIdPath,
    AckIn,
    MoveIn,
    NoticeOut,
    PaymentBulkIn,
    PaymentIn,
    PaymentOut,
    PolicyIn,
    PolicyOut,
    PriorityIn,
    ReturnIn,
    TimesIn,
)
from scopay.api.security import ANSWER_KEPT_STATE, IDEMPOTENCY_STATE, Caller, DirectRoute
from scopay.domain.mailbox import MAILBOX_PAGE_MAX, NOTIFICATION_KINDS, Notice, NoticeKind
from scopay.domain.money import (
    CURRENCIES,
    AmountError,
    CurrencyError,
    format_amount,
    parse_message_amount,
)
from scopay.domain.participant import Participant
from scopay.domain.payment import (
    TIME_RANGE_TEXT,
    ChargeBearer,
    Party,
    Payment,
    PaymentRecord,
    PaymentStatus,
    Priority,
    SettlementMethod,
    in_time_range,
    new_party,
    new_payment,
    new_postal_address,
    on_one_date,
)
from scopay.domain.rejection import Rejection
from scopay.domain.rtgs import AccountPolicy
from scopay.engine.payments import PaymentRefused, PaymentResult, Receipt, ReturnRequest
from scopay.engine.runner import Runner
from scopay.iso20022.codes import PAYMENT_STATUS_CODE, REJECTION_REASON_CODE
from scopay.store.payment_codec import enum_members

router = APIRouter()
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_ANSWERS = {401: PROBLEM, 403: PROBLEM, 404: PROBLEM, 409: PROBLEM, 422: PROBLEM}
_PAYMENT_IN = TypeAdapter(PaymentIn)
_PAYMENT_BULK_IN = TypeAdapter(PaymentBulkIn)


def _runner(request: Request) -> Runner:
    return request.app.state.runner


@router.post("/v1/payments", response_model=PaymentOut, status_code=201, tags=["payments"],
             responses=_ANSWERS)
async def send_payment(body: PaymentIn, caller: Caller, request: Request) -> Response:
    """Send one payment. It settles at once when covered, else it waits in the queue
    (status `queued`); a refused payment answers with the reason and its ISO code."""
    return _response(*await accept_payments(request.scope, caller, _converted([body], caller),
                                            single=True))


@router.post("/v1/payments/bulk", response_model=list[PaymentOut], tags=["payments"],
             responses=_ANSWERS)
async def send_payments(body: PaymentBulkIn, caller: Caller, request: Request) -> Response:
    """Send up to 8,190 payments in one request; one answer each, in order."""
    return _response(*await accept_payments(request.scope, caller,
                                            _converted(body.payments, caller), single=False))


# The guard (api/security.py) answers the two routes above itself, past FastAPI's routing
# and dependency layers, which cost more than the payment: same models, same code below.
# Their bodies are read and converted before the request waits for a commit in flight.
Converted = list[tuple[PaymentIn, Payment | ApiError]]


def _preparing(adapter: TypeAdapter, items_of: Callable[[object], list[PaymentIn]]):
    """A direct route's prepare: the body read by `adapter`, its payments converted."""

    def prepare(scope, body: bytes, caller: auth.Caller) -> Converted | ApiError:
        try:
            return _converted(items_of(_parsed(adapter, scope, body)), caller)
        except ApiError as error:
            return without_frames(error)  # kept, to be raised later

    return prepare


def _sending(single: bool):
    async def run(scope, prepared: Converted | ApiError,
                  caller: auth.Caller) -> tuple[int, bytes]:
        if isinstance(prepared, ApiError):
            raise prepared
        return await accept_payments(scope, caller, prepared, single)

    return run


DIRECT_ROUTES = {
    ("POST", "/v1/payments"): DirectRoute(_preparing(_PAYMENT_IN, lambda one: [one]),
                                          _sending(single=True)),
    ("POST", "/v1/payments/bulk"): DirectRoute(
        _preparing(_PAYMENT_BULK_IN, lambda bulk: bulk.payments), _sending(single=False)),
}


async def accept_payments(scope, caller: auth.Caller, items: Converted,
                          single: bool) -> tuple[int, bytes]:
    """Check and submit the payments; the answer (HTTP status, JSON) is rendered from the
    decided outcome and, under an idempotency key, committed with the payments."""
    runner: Runner = scope["app"].state.runner
    payments = [_authorised(item, payment, runner, caller) for item, payment in items]

    def render(results: list[PaymentResult]) -> tuple[int, bytes]:
        return _render(payments, results, single)

    state = scope.setdefault("state", {})
    kept = state.get(IDEMPOTENCY_STATE)
    receipt = None if kept is None else Receipt(kept[0], kept[1], render)
    results = await _submit(runner, caller, payments, receipt)
    if receipt is None or receipt.answer is None:
        return render(results)
    state[ANSWER_KEPT_STATE] = True
    return receipt.answer


def _render(payments: list[Payment], results: list[PaymentResult],
            single: bool) -> tuple[int, bytes]:
    if not single:
        return 200, to_json(
            [_payment_out(r, p) for r, p in zip(results, payments, strict=True)])
    (result,) = results
    if result.status == PaymentStatus.REJECTED and result.reason is not None:
        refusal = rejected(result.reason, REJECTION_REASON_CODE[result.reason].value)
        return refusal.status, refusal.problem_body()
    return 201, to_json(_payment_out(result, payments[0]))


def _parsed(adapter: TypeAdapter, scope, body: bytes):
    """The body read and validated as FastAPI reads a JSON body, refusals worded alike:
    JSON when the content type says so, else the raw bytes (which no model accepts)."""
    if not body:
        raise ApiError(422, "Invalid request", "body: Field required")
    content_type = next((value for name, value in scope["headers"]
                         if name == b"content-type"), b"").decode("latin-1")
    media_type = content_type.partition(";")[0].strip().lower()
    data: object = body
    if media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        # pydantic-core reads and checks the bytes in one pass, in a third less time than
        # json.loads and validate_python (about 4 us a payment of a bulk request). What it
        # refuses is read again as below, so a refusal is worded as FastAPI words it; what
        # it takes, the json module reads alike (tests/api/test_json_reading.py).
        try:
            return adapter.validate_json(body)
        except ValidationError:
            pass
        try:
            data = json.loads(body)
        except json.JSONDecodeError as error:
            raise ApiError(422, "Invalid request", f"{error.pos}: JSON decode error") from None
        except (UnicodeDecodeError, RecursionError, ValueError):
            # not UTF-8, nested past the parser, or an integer of more digits than Python
            # converts (sys.get_int_max_str_digits)
            raise ApiError(422, "Invalid request", "There was an error parsing the body") from None
    try:
        return adapter.validate_python(data, from_attributes=True)
    except ValidationError as error:
        raise ApiError(422, "Invalid request", invalid_input_detail(error.errors())) from None


def _response(status: int, content: bytes) -> Response:
    return Response(content, status_code=status, media_type=media_type_for(status))


@router.get("/v1/payments/{uetr}", response_model=PaymentOut, tags=["payments"],
            responses=_ANSWERS)
def track_payment(uetr: str, caller: Caller, request: Request) -> dict:
    """Where is my payment? Its status and full history, for its sender and agents."""
    runner = _runner(request)
    _visible_payment(runner, caller, uetr)
    record = runner.engine.payment(uetr)
    if record is None:  # seen while its batch was committing, and that commit failed
        raise ApiError(404, "Not found", f"no payment {uetr} visible to you")
    return _record_out(record, caller, runner.engine.participants)


@router.post("/v1/payments/{uetr}/cancel", response_model=PaymentOut, tags=["payments"],
             responses=_ANSWERS)
async def cancel_payment(uetr: str, caller: Caller, request: Request) -> dict:
    """Cancel a queued payment: its sender, or the operator (the history says which)."""
    sender = _runner(request).engine.payment_sender(uetr)
    detail = f"cancelled by {auth.manager(caller, sender)}"
    return await _manage(request, caller, uetr,
                         lambda e, now: e.cancel_payment(uetr, now, detail))


@router.post("/v1/payments/{uetr}/return", response_model=PaymentOut, tags=["payments"],
             responses=_ANSWERS)
async def return_payment(uetr: str, body: ReturnIn, caller: Caller, request: Request) -> dict:
    """Send a settled payment back whole, as a pacs.004 would: its creditor agent, the
    sponsor of an indirect one, or the operator. The money goes from the creditor agent's
    account to the debtor agent's in one commit with the payment's move to `returned`; the
    debtor agent gets the return in its mailbox. Anyone else is answered as for a payment
    that does not exist."""
    runner = _runner(request)
    engine = runner.engine
    payment = engine.payment_identity(uetr)
    who = None if payment is None else auth.returner(caller, payment, engine.participants)
    if who is None:
        raise ApiError(404, "Not found", f"no payment {uetr} that you may return")
    detail = f"{body.reason}: returned by {who}"
    asked = ReturnRequest(uetr, payment.settlement_amount_minor, payment.settlement_currency,
                          caller.participant.bic,
                          detail if body.text is None else f"{detail}: {body.text}")
    (outcome,) = await asyncio.wrap_future(
        runner.call(lambda e, now: e.return_payments([asked], now)))
    if outcome.rejection is not None:
        raise rejected(outcome.rejection, REJECTION_REASON_CODE[outcome.rejection].value)
    return _record_out(engine.payment(uetr), caller, engine.participants)


@router.post("/v1/payments/{uetr}/priority", response_model=PaymentOut, tags=["payments"],
             responses=_ANSWERS)
async def change_priority(uetr: str, body: PriorityIn, caller: Caller,
                          request: Request) -> dict:
    priority = Priority(body.priority)
    return await _manage(request, caller, uetr,
                         lambda e, now: e.change_payment_priority(uetr, priority, now))


@router.post("/v1/payments/{uetr}/move", response_model=PaymentOut, tags=["payments"],
             responses=_ANSWERS)
async def move_payment(uetr: str, body: MoveIn, caller: Caller, request: Request) -> dict:
    """Reorder the queue: put the payment first or last among its debtor's of its priority."""
    to_front = body.to == "front"
    return await _manage(request, caller, uetr,
                         lambda e, now: e.move_payment(uetr, to_front, now))


@router.post("/v1/payments/{uetr}/times", response_model=PaymentOut, tags=["payments"],
             responses=_ANSWERS)
async def set_payment_times(uetr: str, body: TimesIn, caller: Caller,
                            request: Request) -> dict:
    """Change a queued payment's latest settlement time and its reject-by time (both are
    replaced; null clears one). A reject-by time already past rejects it at once."""
    payment = _managed_payment(_runner(request), caller, uetr)
    latest_us, reject_by_us = _micros(body.latest), _micros(body.reject_by)
    if not on_one_date((payment.earliest_us, latest_us, reject_by_us)):
        raise ApiError(422, "Invalid request", "latest and reject_by must fall on one UTC "
                       "date, that of the payment's earliest time if it has one")
    return await _manage(request, caller, uetr, lambda e, now: e.set_payment_times(
        uetr, latest_us, reject_by_us, now), payment)


QUEUE_PAGE_MAX = 500  # queued payments in one answer of GET /v1/queue, as the mailbox's


@router.get("/v1/queue", response_model=list[PaymentOut], tags=["payments"],
            responses=_ANSWERS)
def list_queue(caller: Caller, request: Request,
               offset: int = Query(0, ge=0, le=2**31 - 1, description="queued payments the "
                                   "caller may see to pass over (the page's start)"),
               limit: int = Query(QUEUE_PAGE_MAX, ge=1, le=QUEUE_PAGE_MAX)) -> list[dict]:
    """Queued payments the caller may see, in settlement order per debtor, a page at a time
    (`offset`, `limit`): only the page is copied, whatever the queue's length."""
    engine = _runner(request).engine
    participants = engine.participants
    return [_record_out(r, caller, participants) for r in engine.queued_payments(
        lambda record: auth.may_see_payment(caller, record, participants), offset, limit)]



@router.post("/v1/gridlock/resolve", tags=["operator", "settlement agent"],
             responses=_ANSWERS)
async def resolve_gridlock(caller: Caller, request: Request, currency: str | None = Query(
        None, pattern=r"^[A-Z]{3}$", description="only this currency's queue (default: "
        "every currency for the operator, its own for a settlement agent)")) -> dict:
    """Run multilateral gridlock resolution now (it also runs at intervals): the operator
    for any currency, a settlement agent for its own."""
    if caller.role == auth.Role.SETTLEMENT_AGENT:
        currency = currency or caller.participant.settlement_currency
    if not auth.may_resolve_gridlock(caller, currency):
        raise ApiError(403, "Forbidden", "the operator runs gridlock resolution, an active "
                       "settlement agent for its own currency")
    if currency is not None and currency not in CURRENCIES:
        raise ApiError(422, "Invalid request", f"unknown currency {currency}")
    count, value = await asyncio.wrap_future(
        _runner(request).call(lambda e, now: e.resolve_gridlock(now, currency)))
    return {"settled": count, "value_minor": value}


@router.get("/v1/accounts/{account_id}/policy", response_model=PolicyOut, tags=["accounts"],
            responses=_ANSWERS)
async def get_policy(account_id: AccountIdPath, caller: Caller, request: Request) -> PolicyOut:
    """An account's reservations and limits, and its positions against the limits today,
    for whoever may see the account. (On the event loop: the engine's own thread.)"""
    engine = _runner(request).engine
    account = engine.accounts.get(account_id)
    if account is None or not auth.may_see_account(caller, account):
        raise ApiError(404, "Not found", f"no account {account_id} visible to you")
    rtgs, currency = engine.rtgs, account.currency
    policy = rtgs.policies.get(account_id) or AccountPolicy()

    def shown(minor: int) -> str:
        return format_amount(minor, currency)

    limit = policy.multilateral_limit_minor
    return PolicyOut(
        account_id=account_id, currency=currency,
        reserved_urgent=shown(policy.reserved_urgent_minor),
        reserved_high=shown(policy.reserved_high_minor),
        multilateral_limit=None if limit is None else shown(limit),
        bilateral_limits={k: shown(v) for k, v in policy.bilateral_limits.items()},
        multilateral_position=shown(rtgs.multilateral_position(account_id)),
        bilateral_positions={k: shown(rtgs.positions.get((account_id, k), 0))
                             for k in policy.bilateral_limits})


@router.put("/v1/accounts/{account_id}/policy", status_code=204,
            response_class=Response, tags=["accounts"],
            responses=_ANSWERS)
async def set_policy(account_id: AccountIdPath, body: PolicyIn, caller: Caller,
                     request: Request) -> None:
    """Liquidity reservations for urgent/high payments and limits for normal ones."""
    runner = _runner(request)
    account = runner.engine.accounts.get(account_id)
    if account is None or not auth.may_see_account(caller, account) or not (
        caller.role == auth.Role.OPERATOR or account.owner_bic == caller.participant.bic
    ):
        raise ApiError(404, "Not found", f"no account {account_id} whose policy you set")
    policy = _policy_from(body, account.currency)
    try:
        await asyncio.wrap_future(
            runner.call(lambda e, now: e.set_account_policy(account_id, policy, now)))
    except PaymentRefused as refusal:  # the domain's rules on policies (rtgs.check_policy)
        raise ApiError(422, "Invalid request", str(refusal)) from None


@router.get("/v1/mailbox", response_model=list[NoticeOut], tags=["mailbox"],
            responses=_ANSWERS)
def list_mailbox(caller: Caller, request: Request, after: int = Query(0, ge=0, le=2**63 - 1),
                 limit: int = Query(100, ge=1, le=MAILBOX_PAGE_MAX)) -> list[NoticeOut]:
    """Unacknowledged notices, oldest first; they stay until acknowledged. `after`: the
    number (seq) of the last notice seen; numbers run 1, 2, 3 ... in each mailbox."""
    engine = _runner(request).engine
    bic = caller.participant.bic
    return [_notice_out(seq, notice, bic) for seq, notice, _ in engine.mailbox(bic, after, limit)]


def _notice_out(seq: int, notice: Notice, bic: str) -> NoticeOut:
    """A notice as its owner sees it: a payment's by its UETR, a ledger movement's by the
    transfer id as the owner knows it, a statement's by account and day."""
    about_payment = notice.kind in (NoticeKind.STATUS_REPORT, NoticeKind.INCOMING_PAYMENT)
    reference = last_reference = None
    reason = notice.reason
    if notice.kind in NOTIFICATION_KINDS:  # its entries, first and last (NoticeKind)
        reference = auth.shown_transfer_id(bic, notice.uetr or "")
        last_reference = None if reason is None else auth.shown_transfer_id(bic, reason)
        reason = None
    elif not about_payment:
        reference = notice.uetr
    return NoticeOut(seq=seq, kind=notice.kind.value,
                     uetr=notice.uetr if about_payment else None, reference=reference,
                     last_reference=last_reference, status=notice.status, reason=reason,
                     created=_time(notice.created_us))


@router.post("/v1/mailbox/ack", status_code=204,
             response_class=Response, tags=["mailbox"], responses=_ANSWERS)
async def acknowledge(body: AckIn, caller: Caller, request: Request) -> None:
    """Acknowledge notices by their numbers (seqs) in your mailbox; acknowledging one twice,
    or a number not yet given, changes nothing."""
    bic = caller.participant.bic
    await asyncio.wrap_future(
        _runner(request).call(lambda e, now: e.acknowledge(bic, body.seqs, now)))


# -- shaping -----------------------------------------------------------------------------------


def _converted(items: list[PaymentIn], caller: auth.Caller) -> Converted:
    """Each payment as the domain's value, or the refusal of its content: pure work, done
    before the caller's right to send it is looked at (_authorised), which comes first."""
    converted: Converted = []
    for item in items:
        try:
            converted.append((item, _payment_from(item, caller.participant.bic)))
        except ApiError as error:
            # kept, to be raised later: its frames (this one among them, which holds the
            # list that holds it) would keep the whole request in a reference cycle
            converted.append((item, without_frames(error)))
    return converted


def _authorised(body: PaymentIn, payment: Payment | ApiError, runner: Runner,
                caller: auth.Caller) -> Payment:
    debtor_agent = runner.engine.participants.get(body.debtor_agent)
    if not auth.may_send_payment(caller, debtor_agent):
        raise ApiError(403, "Forbidden", auth.send_refusal(caller, body.debtor_agent))
    if isinstance(payment, ApiError):
        raise payment
    return payment


def amount_of(text: str, currency: str) -> int:
    """An amount of the JSON API in minor units: exact to its currency's decimals, and within
    the 18 digits of an ISO 20022 amount, so that every message about it can be written."""
    try:
        return parse_message_amount(text, currency)
    except (AmountError, CurrencyError) as error:
        raise ApiError(422, "Invalid amount", str(error)) from None


def _payment_from(body: PaymentIn, sender_bic: str) -> Payment:
    amount_minor = amount_of(body.amount, body.currency)
    if amount_minor == 0:
        raise ApiError(422, "Invalid amount", "a payment amount must be positive")
    earliest_us, latest_us = _micros(body.earliest), _micros(body.latest)
    reject_by_us = _micros(body.reject_by)
    if not on_one_date((earliest_us, latest_us, reject_by_us)):
        raise ApiError(422, "Invalid request", "earliest, latest and reject_by must fall on one "
                       "UTC date (the settlement date ISO 20022 gives them on)")
    # new_payment: Payment's fields set without a frozen __init__'s cost, every one named
    return new_payment(
        uetr=body.uetr, instruction_id=body.instruction_id, end_to_end_id=body.end_to_end_id,
        debtor_agent=body.debtor_agent, creditor_agent=body.creditor_agent,
        debtor=_party(body.debtor), creditor=_party(body.creditor),
        settlement_amount_minor=amount_minor, settlement_currency=body.currency,
        instructed_amount_minor=None, instructed_currency=None, exchange_rate=None,
        charge_bearer=_CHARGE_BEARERS[body.charge_bearer], remittance=body.remittance,
        purpose=body.purpose, priority=_PRIORITIES[body.priority],
        settlement_method=SettlementMethod.GROSS, earliest_us=earliest_us,
        latest_us=latest_us, reject_by_us=reject_by_us, message_id=None,
        sender_bic=sender_bic, intermediary_agents=(), charges=(),
        message_type=None,
    )


# The enums by value, as PaymentIn's patterns allow them: a lookup, where calling the enum
# costs a few tenths of a microsecond a payment of a bulk request.
_CHARGE_BEARERS = enum_members(ChargeBearer)
_PRIORITIES = enum_members(Priority)


def _party(body) -> Party:
    address = None
    if body.address is not None:
        a = body.address
        address = new_postal_address(a.country, a.town, a.post_code, a.street,
                                     a.building_number, tuple(a.address_lines))
    return new_party(body.name, body.account, address)


def _policy_from(body: PolicyIn, currency: str) -> AccountPolicy:
    return AccountPolicy(
        reserved_urgent_minor=amount_of(body.reserved_urgent, currency),
        reserved_high_minor=amount_of(body.reserved_high, currency),
        bilateral_limits={k: amount_of(v, currency) for k, v in body.bilateral_limits.items()},
        multilateral_limit_minor=(None if body.multilateral_limit is None
                                  else amount_of(body.multilateral_limit, currency)),
    )


async def _submit(runner: Runner, caller: auth.Caller, payments: list[Payment],
                  receipt: Receipt | None = None) -> list[PaymentResult]:
    # a full queue raises RunnerBusyError: answered 503 with Retry-After (errors.busy), by
    # the app's handler or, for the direct routes, the guard. No variable holds the future:
    # an error it raises here would keep this frame, and so the payments, in a cycle.
    return await asyncio.wrap_future(
        runner.submit_payments(caller.participant.bic, payments, receipt))


async def _manage(request: Request, caller: auth.Caller, uetr: str, command,
                  payment: Payment | None = None) -> dict:
    """Run a queue command on a payment the caller manages (`payment`: already checked)."""
    runner = _runner(request)
    if payment is None:
        payment = _managed_payment(runner, caller, uetr)
    try:
        result = await asyncio.wrap_future(runner.call(command))
    except PaymentRefused as error:
        raise ApiError(409, "Conflict", str(error)) from None
    record = runner.engine.payment(uetr)
    return _payment_out(result, payment, (record.latest_us, record.reject_by_us))


def _managed_payment(runner: Runner, caller: auth.Caller, uetr: str) -> Payment:
    payment, sender = _visible_payment(runner, caller, uetr)
    if not auth.may_manage(caller, sender):
        raise ApiError(403, "Forbidden", "only the sender or the operator manages a payment")
    return payment


def _visible_payment(runner: Runner, caller: auth.Caller,
                     uetr: str) -> tuple[Payment, str]:
    """The payment and its sender, if the caller may see it (no engine lock needed)."""
    payment = runner.engine.payment_identity(uetr)
    sender = runner.engine.payment_sender(uetr)
    if payment is None or not auth.may_see(caller, payment, sender,
                                           runner.engine.participants):
        raise ApiError(404, "Not found", f"no payment {uetr} visible to you")
    return payment, sender


def _payment_out(result: PaymentResult, payment: Payment | None,
                 times: tuple[int | None, int | None] | None = None) -> dict:
    """The answer from the decided outcome's snapshot; a payment refused before it was
    recorded (a clash with another one's id) has no history. `times`: its latest and
    reject-by times now, if the queue changed them (else the payment's own)."""
    reason = result.reason.value if result.reason else result.detail
    if payment is None or not result.history:
        return _answer(result.uetr, result.status.value, reason, _iso(result.status),
                       _iso_reason(result.status, result.reason), None, None, None, None, None,
                       None, None, None, [])
    latest_us, reject_by_us = times or (payment.latest_us, payment.reject_by_us)
    return _shape(payment, result.history, result.priority or payment.priority, latest_us,
                  reject_by_us)


def _record_out(record: PaymentRecord, caller: auth.Caller,
                participants: Mapping[str, Participant]) -> dict:
    """A payment as the caller may see it: the creditor side sees that it waits, not why."""
    history = tuple(record.history)
    if not auth.may_see_why_it_waits(caller, record.payment, record.sender_bic, participants):
        history = tuple(change._replace(detail=None) if change.status == PaymentStatus.QUEUED
                        else change for change in history)
    return _shape(record.payment, history, record.priority, record.latest_us,
                  record.reject_by_us)


def _shape(payment: Payment, history, priority: Priority, latest_us: int | None,
           reject_by_us: int | None) -> dict:
    """A payment as the API shows it: a PaymentOut as a plain dict, which FastAPI checks
    against the response model, and which the payment posts serialise with pydantic-core
    directly (building the models costs more than settling the payment). Enums by
    `_value_`: `.value` is a Python-level property, and a bulk answer shapes thousands;
    moments as their JSON text (_time_text)."""
    last = history[-1]
    return _answer(
        payment.uetr, last.status._value_, last.reason._value_ if last.reason else last.detail,
        _iso(last.status), _iso_reason(last.status, last.reason), payment.debtor_agent,
        payment.creditor_agent,
        format_amount(payment.settlement_amount_minor, payment.settlement_currency),
        payment.settlement_currency, priority._value_, _time_text_or_none(payment.earliest_us),
        _time_text_or_none(latest_us), _time_text_or_none(reject_by_us),
        [{"status": c.status._value_, "at": _time_text(c.at_us),
          "reason": c.reason._value_ if c.reason else None, "detail": c.detail}
         for c in history])


def _answer(uetr, status, reason, iso_status, iso_reason, debtor_agent, creditor_agent, amount,
            currency, priority, earliest, latest, reject_by, history: list[dict]) -> dict:
    """PaymentOut's fields in PaymentOut's order, so both ways of serialising agree."""
    return {"uetr": uetr, "status": status, "reason": reason, "iso_status": iso_status,
            "iso_reason": iso_reason, "debtor_agent": debtor_agent,
            "creditor_agent": creditor_agent, "amount": amount, "currency": currency,
            "priority": priority, "earliest": earliest, "latest": latest,
            "reject_by": reject_by, "history": history}


def _time_text_or_none(at_us: int | None) -> str | None:
    return None if at_us is None else _time_text(at_us)


def _iso(status: PaymentStatus) -> str | None:
    code = PAYMENT_STATUS_CODE.get(status)
    return None if code is None else code._value_


def _iso_reason(status: PaymentStatus, reason: Rejection | None) -> str | None:
    """The reason code a pacs.002 gives a rejected payment (from the one table)."""
    if status != PaymentStatus.REJECTED or reason is None:
        return None
    return REJECTION_REASON_CODE[reason].value


def _micros(moment: datetime | None) -> int | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        raise ApiError(422, "Invalid request", "times need a UTC offset, e.g. 2026-11-29T10:00Z")
    at_us = (moment - _EPOCH) // _MICROSECOND
    if not in_time_range((at_us,)):
        raise ApiError(422, "Invalid request", TIME_RANGE_TEXT)
    return at_us


@functools.lru_cache(maxsize=1024)
def _time_text(at_us: int) -> str:
    """A moment as pydantic-core writes a datetime in JSON, written once: a payment's answer
    carries it as this text, the same bytes in a third of the time (a bulk answer names its
    commit's time three times for each payment); a response model reads it back as the
    datetime."""
    return to_json(_time(at_us))[1:-1].decode("ascii")


@functools.lru_cache(maxsize=1024)
def _time(at_us: int) -> datetime:
    """A moment as a datetime (immutable, so shared safely). Remembered: a bulk answer names
    its commit's time three times for each payment, and building the datetimes was a fifth of
    the cost of shaping a payment's answer."""
    return _EPOCH + at_us * _MICROSECOND
