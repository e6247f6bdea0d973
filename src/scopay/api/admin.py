"""Operator and settlement-agent routes: admit and suspend participants, open accounts, set
credit lines, and move central-bank money in and out of scopay (funds-in / funds-out)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import Response

from scopay.api import auth
from scopay.api.errors import PROBLEM, ApiError, rejected
from scopay.api.payments import amount_of
from scopay.api.schemas import (
    AccountIdPath,
    AccountIn,
    BalanceOut,
    CreditLineIn,
    FundsIn,
    ParticipantIn,
    ParticipantOut,
    TransferOut,
)
from scopay.api.security import Caller
from scopay.api.views import balance_out, participant_out
from scopay.domain.account import Account, AccountKind
from scopay.domain.ledger import Transfer
from scopay.domain.participant import Participant, Role, Status, Tier
from scopay.engine.engine import CommandRefused
from scopay.engine.runner import Runner

router = APIRouter()
_ANSWERS = {401: PROBLEM, 403: PROBLEM, 404: PROBLEM, 409: PROBLEM, 422: PROBLEM}


def _runner(request: Request) -> Runner:
    return request.app.state.runner


def _operator_only(caller) -> None:
    if caller.role != Role.OPERATOR:
        raise ApiError(403, "Forbidden", "only the operator does this")


async def _run(request: Request, command):
    try:
        return await asyncio.wrap_future(_runner(request).call(command))
    except CommandRefused as error:
        raise ApiError(409, "Refused", str(error)) from None


@router.post("/v1/participants", response_model=ParticipantOut, status_code=201,
             tags=["operator"], responses=_ANSWERS)
async def admit_participant(body: ParticipantIn, caller: Caller,
                            request: Request) -> ParticipantOut:
    """Admit a participant; the access policy of its state's tier applies."""
    _operator_only(caller)
    participant = Participant(body.bic, body.name, Role(body.role), body.country,
                              Tier(body.tier), body.sponsor_bic, body.settlement_currency)
    await _run(request, lambda e, now: e.admit_participant(participant, now))
    return participant_out(participant)


@router.post("/v1/participants/{bic}/suspend", status_code=204,
             response_class=Response, tags=["operator"],
             responses=_ANSWERS)
async def suspend_participant(bic: str, caller: Caller, request: Request) -> None:
    """Suspend a participant: its accounts are blocked, its keys stop working for payments."""
    _operator_only(caller)
    _known_participant(request, bic)
    await _run(request, lambda e, now: e.set_participant_status(bic, Status.SUSPENDED, now))


@router.post("/v1/participants/{bic}/reinstate", status_code=204,
             response_class=Response, tags=["operator"],
             responses=_ANSWERS)
async def reinstate_participant(bic: str, caller: Caller, request: Request) -> None:
    _operator_only(caller)
    _known_participant(request, bic)
    await _run(request, lambda e, now: e.set_participant_status(bic, Status.ACTIVE, now))


def _known_participant(request: Request, bic: str) -> None:
    if bic not in _runner(request).engine.participants:
        raise ApiError(404, "Not found", f"no participant {bic}")


@router.post("/v1/accounts", response_model=BalanceOut, status_code=201, tags=["operator"],
             responses=_ANSWERS)
async def open_account(body: AccountIn, caller: Caller, request: Request) -> BalanceOut:
    """Open an account (settlement, or a settlement agent's issuance account)."""
    _operator_only(caller)
    credit_line = amount_of(body.credit_line, body.currency)

    def open_(engine, now):
        account = Account(engine.next_account_id(), body.owner_bic, body.currency,
                          AccountKind(body.kind), credit_line)
        engine.open_account(account, now)
        return account.id

    account_id = await _run(request, open_)
    return balance_out(_runner(request).engine.balance(account_id))


@router.put("/v1/accounts/{account_id}/credit-line", status_code=204,
            response_class=Response, tags=["operator"],
            responses=_ANSWERS)
async def set_credit_line(account_id: AccountIdPath, body: CreditLineIn, caller: Caller,
                          request: Request) -> None:
    """Set the intraday credit line: the account's floor becomes minus the line. The operator
    on any account; a settlement agent (the central bank that grants intraday credit) on the
    accounts of its currency."""
    if caller.role not in auth.GRANTS_CREDIT:
        raise ApiError(403, "Forbidden", "only the operator and settlement agents set credit "
                       "lines")
    account = _runner(request).engine.accounts.get(account_id)
    if account is None or not auth.may_see_account(caller, account):
        raise ApiError(404, "Not found", f"no account {account_id} visible to you")
    if not auth.may_set_credit_line(caller, account):
        raise ApiError(403, "Forbidden", "a settlement agent, while active, grants credit on "
                       "the banks' accounts of its currency only")
    line = amount_of(body.credit_line, account.currency)
    await _run(request, lambda e, now: e.set_credit_line(account_id, line, now))


@router.post("/v1/funds-in", response_model=TransferOut, status_code=201,
             tags=["settlement agent"], responses=_ANSWERS)
async def funds_in(body: FundsIn, caller: Caller, request: Request) -> TransferOut:
    """The settlement agent credits a bank's account from its issuance account (money
    arriving from its RTGS)."""
    return await _move_central_bank_money(body, caller, request, inward=True)


@router.post("/v1/funds-out", response_model=TransferOut, status_code=201,
             tags=["settlement agent"], responses=_ANSWERS)
async def funds_out(body: FundsIn, caller: Caller, request: Request) -> TransferOut:
    """The settlement agent debits a bank's account back into its issuance account."""
    return await _move_central_bank_money(body, caller, request, inward=False)


async def _move_central_bank_money(body: FundsIn, caller, request: Request,
                                   inward: bool) -> TransferOut:
    engine = _runner(request).engine
    agent = caller.participant
    if agent.role != Role.SETTLEMENT_AGENT:  # whatever the account: it tells nothing of it
        raise ApiError(403, "Forbidden", "only a settlement agent moves central-bank money in "
                       "and out of scopay (funds-in, funds-out)")
    account = engine.accounts.get(body.account_id)
    if account is None or account.currency != agent.settlement_currency:
        raise ApiError(404, "Not found", f"no account {body.account_id} in your currency")
    if agent.status != Status.ACTIVE:
        raise ApiError(403, "Forbidden", "a suspended settlement agent moves no money")
    issuance = engine.issuance_account(account.currency)
    amount = amount_of(body.amount, account.currency)  # within an ISO amount's 18 digits
    debit, credit = (issuance, account.id) if inward else (account.id, issuance)
    future = _runner(request).submit([Transfer(auth.ledger_transfer_id(agent.bic, body.id),
                                               debit, credit, amount, account.currency)])
    (outcome,) = await asyncio.wrap_future(future)
    if outcome.rejection is not None:
        raise rejected(outcome.rejection)
    return TransferOut(id=body.id, status="accepted", timestamp_us=outcome.timestamp_us)
