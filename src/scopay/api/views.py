"""How domain values look in the API's answers."""

from __future__ import annotations

from scopay.api.schemas import BalanceOut, ParticipantOut
from scopay.domain.money import format_amount
from scopay.domain.participant import Participant
from scopay.engine.engine import BalanceView


def balance_out(view: BalanceView) -> BalanceOut:
    c = view.currency
    return BalanceOut(
        account_id=view.account_id, owner_bic=view.owner_bic, currency=c, kind=view.kind,
        floor=None if view.floor_minor is None else format_amount(view.floor_minor, c),
        balance=format_amount(view.posted_minor, c),
        reserved=format_amount(view.debits_pending_minor, c),
        incoming_reserved=format_amount(view.credits_pending_minor, c),
        available=format_amount(view.available_minor, c), blocked=view.blocked)


def participant_out(p: Participant) -> ParticipantOut:
    return ParticipantOut(bic=p.bic, name=p.name, role=p.role.value, country=p.country,
                          tier=p.tier.value, status=p.status.value, sponsor_bic=p.sponsor_bic,
                          settlement_currency=p.settlement_currency)
