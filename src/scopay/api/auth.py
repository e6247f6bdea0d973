"""Who is calling, and what they may see and move.

Credentials are issued by the operator: a key id and a 256-bit random secret, shown once.
Only the secret's SHA-256 is stored (a random 256-bit secret needs no slow hash: it cannot be
guessed from its digest). A request carries `Authorization: Bearer <key id>.<secret>`.
Request signing with registered Ed25519 keys replaces bearer secrets in the API issue; the
authorisation rules below stay.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from scopay.domain.account import Account, AccountKind
from scopay.domain.participant import Participant, Role, Status
from scopay.domain.payment import PaymentRecord

KEY_ID_BYTES = 8
SECRET_BYTES = 32


@dataclass(frozen=True, slots=True)
class Caller:
    participant: Participant
    key_id: str

    @property
    def role(self) -> Role:
        return self.participant.role


def new_credential() -> tuple[str, str, str]:
    """(key id, secret, secret's SHA-256 hex). Only the digest is ever stored."""
    key_id = "k" + secrets.token_hex(KEY_ID_BYTES)
    secret = secrets.token_urlsafe(SECRET_BYTES)
    return key_id, secret, digest_of(secret)


def digest_of(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def token_matches(secret: str, stored_digest: str) -> bool:
    return hmac.compare_digest(digest_of(secret), stored_digest)


def may_see_account(caller: Caller, account: Account) -> bool:
    p = caller.participant
    if p.role == Role.OPERATOR:
        return True
    if p.role == Role.SETTLEMENT_AGENT and account.currency == p.settlement_currency:
        return True
    return account.owner_bic == p.bic


def may_move(caller: Caller, debit: Account, credit: Account) -> bool:
    """A participant debits only its own accounts; a settlement agent also moves money
    between its issuance account and accounts in its currency (funds-in / funds-out)."""
    p = caller.participant
    if p.status != Status.ACTIVE:
        return False
    if debit.owner_bic == p.bic and p.role != Role.OPERATOR:
        return True
    if p.role == Role.SETTLEMENT_AGENT and p.settlement_currency == debit.currency:
        return credit.owner_bic == p.bic and credit.kind == AccountKind.ISSUANCE
    return False


def may_send_payment(caller: Caller, debtor_agent: Participant | None) -> bool:
    """A bank sends its own payments, or those of an indirect participant it sponsors."""
    p = caller.participant
    if p.status != Status.ACTIVE or p.role == Role.OPERATOR or debtor_agent is None:
        return False
    return debtor_agent.bic == p.bic or debtor_agent.sponsor_bic == p.bic


def may_see_payment(caller: Caller, record: PaymentRecord) -> bool:
    """The payment's sender and agents, its currency's settlement agent, the operator."""
    p = caller.participant
    payment = record.payment
    if p.role == Role.OPERATOR:
        return True
    if p.role == Role.SETTLEMENT_AGENT and p.settlement_currency == payment.settlement_currency:
        return True
    return p.bic in (record.sender_bic, payment.debtor_agent, payment.creditor_agent)


def may_manage_payment(caller: Caller, record: PaymentRecord) -> bool:
    """Queue management (cancel, priority, order): the sender, or the operator."""
    p = caller.participant
    return p.role == Role.OPERATOR or (p.status == Status.ACTIVE and p.bic == record.sender_bic)
