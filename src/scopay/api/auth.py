"""Who is calling, and what they may see and move.

Every request is signed with a participant's registered Ed25519 key (api/signing.py); the
rules here say what the participant behind the key may see and do, in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from scopay.domain.account import Account, AccountKind
from scopay.domain.participant import Participant, Role, Status
from scopay.domain.payment import Payment, PaymentRecord

# A participant names its transfers with its own ids; the ledger's id puts the participant's
# BIC in front, so one participant's ids never meet another's: none can take an id another
# will use, or learn from a refusal that another used it.
TRANSFER_ID_SEPARATOR = ":"
OWN_TRANSFER_ID_MAX = 64 - 11 - len(TRANSFER_ID_SEPARATOR)  # the ledger takes 64; a BIC 11


def ledger_transfer_id(bic: str, own_id: str) -> str:
    return f"{bic}{TRANSFER_ID_SEPARATOR}{own_id}"


def shown_transfer_id(bic: str, ledger_id: str) -> str:
    """The id as the participant knows it: its own ids without the prefix, others' whole."""
    return ledger_id.removeprefix(f"{bic}{TRANSFER_ID_SEPARATOR}")


@dataclass(frozen=True, slots=True)
class Caller:
    participant: Participant
    key_id: str

    @property
    def role(self) -> Role:
        return self.participant.role


# Who sees every account and payment: the operator, and the auditor, who changes nothing.
SEES_EVERYTHING = frozenset({Role.OPERATOR, Role.AUDITOR})


def may_see_account(caller: Caller, account: Account) -> bool:
    p = caller.participant
    if p.role in SEES_EVERYTHING:
        return True
    if p.role == Role.SETTLEMENT_AGENT and account.currency == p.settlement_currency:
        return True
    return account.owner_bic == p.bic


def may_read_audit_head(caller: Caller) -> bool:
    """Those who keep the head of the audit log outside scopay, to anchor it."""
    return caller.role in (Role.OPERATOR, Role.AUDITOR, Role.SETTLEMENT_AGENT)


# Who sets intraday credit lines at all (on which accounts: may_set_credit_line).
GRANTS_CREDIT = frozenset({Role.OPERATOR, Role.SETTLEMENT_AGENT})


def may_set_credit_line(caller: Caller, account: Account) -> bool:
    """Intraday credit is granted by the operator, or by the central bank of the account's
    currency (an active settlement agent), on a bank's settlement account."""
    p = caller.participant
    if p.role == Role.OPERATOR:
        return True
    return (p.role == Role.SETTLEMENT_AGENT and p.status == Status.ACTIVE
            and account.currency == p.settlement_currency
            and account.kind != AccountKind.ISSUANCE)


def may_resolve_gridlock(caller: Caller, currency: str | None) -> bool:
    """The operator resolves any currency's queue (or all); an active settlement agent its
    own currency's."""
    p = caller.participant
    if p.role == Role.OPERATOR:
        return True
    return (p.role == Role.SETTLEMENT_AGENT and p.status == Status.ACTIVE
            and currency == p.settlement_currency)


def may_move(caller: Caller, debit: Account, credit: Account) -> bool:
    """A participant debits only its own accounts, and credits no issuance account; a
    settlement agent also moves money between its issuance account and accounts in its
    currency (funds-in / funds-out)."""
    p = caller.participant
    if p.status != Status.ACTIVE or p.role == Role.AUDITOR:
        return False
    if credit.kind == AccountKind.ISSUANCE and credit.owner_bic != p.bic:
        return False  # money leaves scopay only by its settlement agent's funds-out
    if debit.owner_bic == p.bic and p.role != Role.OPERATOR:
        return True
    if p.role == Role.SETTLEMENT_AGENT and p.settlement_currency == debit.currency:
        return credit.owner_bic == p.bic and credit.kind == AccountKind.ISSUANCE
    return False


def may_send_payment(caller: Caller, debtor_agent: Participant | None) -> bool:
    """A direct participant sends its own payments, or those of an indirect participant it
    sponsors. An indirect participant sends none itself: its payments settle on its sponsor's
    account, which only the sponsor moves (it reaches scopay through its sponsor, as in T2 or
    CIPS, and may hold a key to track its payments and read its mailbox). The operator and
    settlement agents send none either (an agent moves money by transfers)."""
    p = caller.participant
    if (p.status != Status.ACTIVE
            or p.role in (Role.OPERATOR, Role.SETTLEMENT_AGENT, Role.AUDITOR, Role.INDIRECT)
            or debtor_agent is None):
        return False
    return debtor_agent.bic == p.bic or debtor_agent.sponsor_bic == p.bic


def send_refusal(caller: Caller, debtor_agent_bic: str) -> str:
    """Why may_send_payment said no, in words the caller can act on."""
    p = caller.participant
    if p.status != Status.ACTIVE:
        return f"{p.bic} is {p.status}: it sends no payments until the operator reinstates it"
    return f"you may not send payments for debtor agent {debtor_agent_bic}"


def may_see(caller: Caller, payment: Payment, sender_bic: str,
            participants: Mapping[str, Participant]) -> bool:
    """The payment's sender and agents, the sponsor of an indirect agent (the payment settles
    on the sponsor's account), its currency's settlement agent, the operator, the auditor."""
    p = caller.participant
    if p.role in SEES_EVERYTHING:
        return True
    if p.role == Role.SETTLEMENT_AGENT and p.settlement_currency == payment.settlement_currency:
        return True
    if p.bic in (sender_bic, payment.debtor_agent, payment.creditor_agent):
        return True
    return any(agent is not None and agent.sponsor_bic == p.bic
               for agent in (participants.get(payment.debtor_agent),
                             participants.get(payment.creditor_agent)))


def may_see_why_it_waits(caller: Caller, payment: Payment, sender_bic: str,
                         participants: Mapping[str, Participant]) -> bool:
    """Why a payment waits (insufficient liquidity, a limit, a payment ahead) tells of its
    debtor's liquidity: its sender and debtor agent (and that agent's sponsor), the operator,
    the auditor and its currency's settlement agent learn it; the creditor side does not."""
    p = caller.participant
    if p.role in SEES_EVERYTHING or p.bic in (sender_bic, payment.debtor_agent):
        return True
    if p.role == Role.SETTLEMENT_AGENT and p.settlement_currency == payment.settlement_currency:
        return True
    debtor_agent = participants.get(payment.debtor_agent)
    return debtor_agent is not None and debtor_agent.sponsor_bic == p.bic


THE_OPERATOR = "the operator"  # how a payment's history names an operator that acted on it


def returner(caller: Caller, payment: Payment,
             participants: Mapping[str, Participant]) -> str | None:
    """Who the caller is to a settled payment, if it may send it back: the creditor agent
    (whose account was credited), the sponsor of an indirect one (whose account it was), or
    the operator; None for anyone else (answered as for a payment that does not exist)."""
    p = caller.participant
    if p.role == Role.OPERATOR:
        return THE_OPERATOR
    if p.status != Status.ACTIVE or p.role in (Role.AUDITOR, Role.SETTLEMENT_AGENT,
                                                Role.INDIRECT):
        return None  # an indirect participant's sponsor returns for it (may_send_payment)
    if p.bic == payment.creditor_agent:
        return f"its creditor agent {p.bic}"
    agent = participants.get(payment.creditor_agent)
    if agent is not None and agent.role == Role.INDIRECT and agent.sponsor_bic == p.bic:
        return f"{p.bic}, sponsor of its creditor agent {agent.bic}"
    return None


def may_see_payment(caller: Caller, record: PaymentRecord,
                    participants: Mapping[str, Participant]) -> bool:
    return may_see(caller, record.payment, record.sender_bic, participants)


def may_manage(caller: Caller, sender_bic: str) -> bool:
    """Queue management (cancel, priority, order): the sender, or the operator."""
    p = caller.participant
    return p.role == Role.OPERATOR or (
        p.status == Status.ACTIVE and p.role != Role.AUDITOR and p.bic == sender_bic)


def manager(caller: Caller, sender_bic: str | None) -> str:
    """Who manages a payment (may_manage), as its history names them: its sender, or the
    operator."""
    return f"its sender {sender_bic}" if caller.participant.bic == sender_bic else THE_OPERATOR


def may_manage_payment(caller: Caller, record: PaymentRecord) -> bool:
    return may_manage(caller, record.sender_bic)
