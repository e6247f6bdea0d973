"""Accounts: one per participant per currency, with a floor.

A settlement account's floor is 0, or minus an approved intraday credit line. A settlement
agent's issuance account has no floor: it holds the negative of all the money of its currency
in scopay, so that every currency sums to zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from scopay.domain.money import AMOUNT_MINOR_MAX, CURRENCIES
from scopay.domain.participant import ACCOUNT_HOLDING_ROLES, Participant, Role, Status


class AccountKind(StrEnum):
    SETTLEMENT = "settlement"
    ISSUANCE = "issuance"


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    owner_bic: str
    currency: str
    kind: AccountKind = AccountKind.SETTLEMENT
    credit_line_minor: int = 0

    @property
    def floor_minor(self) -> int | None:
        """Lowest balance allowed, or None for an issuance account (no floor)."""
        return None if self.kind == AccountKind.ISSUANCE else -self.credit_line_minor


def account_key(account: Account) -> tuple[str, str, AccountKind]:
    """What makes an account unique besides its id: one of each kind per owner and currency."""
    return account.owner_bic, account.currency, account.kind


def check_account(
    account: Account,
    participants: dict[str, Participant],
    accounts: dict[int, Account],
    taken_keys: set[tuple[str, str, AccountKind]] | None = None,
) -> str | None:
    """The first rule the new account breaks, as text, or None. Changes nothing.

    `taken_keys` (the account_key of every account) saves a scan when opening many.
    """
    if account.id in accounts:
        return f"account {account.id} exists already"
    if not 0 < account.id <= AMOUNT_MINOR_MAX:
        return "account id must be a positive 64-bit integer"
    if account.currency not in CURRENCIES:
        return f"unknown currency {account.currency!r}"
    owner = participants.get(account.owner_bic)
    if owner is None:
        return f"no participant {account.owner_bic}"
    if owner.role == Role.AUDITOR:
        return "an auditor holds no accounts: it reads, and moves nothing"
    if owner.role not in ACCOUNT_HOLDING_ROLES:
        return f"a {owner.role} holds no accounts of its own; it settles through its sponsor"
    if owner.status != Status.ACTIVE:
        return f"participant {owner.bic} is {owner.status}"
    if not 0 <= account.credit_line_minor <= AMOUNT_MINOR_MAX:
        return "credit line must be between 0 and the largest amount"
    if account.kind == AccountKind.ISSUANCE:
        if owner.role != Role.SETTLEMENT_AGENT or owner.settlement_currency != account.currency:
            return "only the settlement agent of a currency holds its issuance account"
        if account.credit_line_minor:
            return "an issuance account has no floor and so no credit line"
    if taken_keys is None:
        taken_keys = {account_key(other) for other in accounts.values()}
    if account_key(account) in taken_keys:
        return f"{account.owner_bic} has a {account.kind} account in {account.currency}"
    return None
