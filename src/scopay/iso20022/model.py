"""What scopay's ISO 20022 messages carry, for messages the domain has no object for yet.

Credit transfers map to the domain's Payment; a CreditTransferMessage is the group of them one
pacs.008 or pacs.009 carries. Status reports, returns, cancellation requests and answers,
statements, notifications and the business application header are small frozen values here,
in scopay's words (integer minor units, microseconds since the Unix epoch, BICs), so no ISO tag
name leaves this package. Counts and control sums are derived, never stored: the parser refuses
a message whose declared ones differ from its transactions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from scopay.domain.money import format_amount
from scopay.domain.payment import ChargeBearer, Payment, positional_constructor
from scopay.iso20022.codes import (
    CancellationStatus,
    EntryStatus,
    InvestigationConfirmation,
    SettlementMethod,
    TransactionStatus,
)


def control_sum(amounts: list[tuple[int, str]]) -> Decimal:
    """ISO control sum: the plain sum of the amounts as decimals, whatever their currencies."""
    return sum((Decimal(format_amount(minor, currency)) for minor, currency in amounts),
               Decimal(0))


@dataclass(frozen=True, slots=True)
class CreditTransferMessage:
    """A pacs.008 (customer) or pacs.009 (institution) credit transfer group."""

    message_id: str
    created_at_us: int
    payments: tuple[Payment, ...]
    settlement_method: SettlementMethod = SettlementMethod.CLEARING_SYSTEM
    # the agent the message goes to (each transaction's InstdAgt), when not the next agent
    # on each payment's route: scopay forwarding a settled payment to the mailbox it fills
    instructed_agent: str | None = None

    @property
    def number_of_transactions(self) -> int:
        return len(self.payments)

    @property
    def control_sum(self) -> Decimal:
        return control_sum([(p.settlement_amount_minor, p.settlement_currency)
                            for p in self.payments])


# (message_id, created_at_us, payments, settlement_method): the text reader's constructor.
new_credit_transfer_message = positional_constructor(CreditTransferMessage)


@dataclass(frozen=True, slots=True)
class OriginalGroupStatus:
    """A pacs.002's verdict on a whole original message (e.g. RJCT FF01 for a bad file)."""

    original_message_id: str
    original_message_type: str  # e.g. "pacs.008.001.08"
    status: TransactionStatus | None = None
    reason_code: str | None = None
    reason_text: str | None = None


@dataclass(frozen=True, slots=True)
class TransactionStatusReport:
    """A pacs.002's status of one original transaction."""

    original_message_id: str
    original_message_type: str
    status: TransactionStatus
    original_uetr: str | None = None
    original_end_to_end_id: str | None = None
    original_instruction_id: str | None = None
    reason_code: str | None = None  # ExternalStatusReason1Code
    reason_text: str | None = None
    status_id: str | None = None
    accepted_at_us: int | None = None
    effective_settlement_date: date | None = None
    instructing_agent: str | None = None  # BIC
    instructed_agent: str | None = None  # BIC


@dataclass(frozen=True, slots=True)
class StatusReport:
    """pacs.002: statuses of transactions, and optionally of their original message as a whole."""

    message_id: str
    created_at_us: int
    transactions: tuple[TransactionStatusReport, ...] = ()
    original_group: OriginalGroupStatus | None = None
    instructing_agent: str | None = None
    instructed_agent: str | None = None


@dataclass(frozen=True, slots=True)
class PaymentReturn:
    """One returned transaction of a pacs.004."""

    return_id: str
    original_message_id: str
    original_message_type: str
    returned_amount_minor: int
    currency: str
    reason_code: str  # ExternalReturnReason1Code, e.g. AC04, AM09, FOCR
    original_uetr: str | None = None
    original_end_to_end_id: str | None = None
    original_instruction_id: str | None = None
    original_amount_minor: int | None = None
    original_currency: str | None = None
    settlement_date: date | None = None
    charge_bearer: ChargeBearer | None = None
    instructing_agent: str | None = None
    instructed_agent: str | None = None
    reason_text: str | None = None


@dataclass(frozen=True, slots=True)
class ReturnInstruction:
    """pacs.004: returns of settled payments, each moving money back."""

    message_id: str
    created_at_us: int
    returns: tuple[PaymentReturn, ...]
    settlement_method: SettlementMethod = SettlementMethod.CLEARING_SYSTEM

    @property
    def number_of_transactions(self) -> int:
        return len(self.returns)

    @property
    def control_sum(self) -> Decimal:
        return control_sum([(r.returned_amount_minor, r.currency) for r in self.returns])


@dataclass(frozen=True, slots=True)
class Case:
    case_id: str
    creator: str  # BIC of the agent that opened the case


@dataclass(frozen=True, slots=True)
class TransactionCancellation:
    """One transaction a camt.056 asks to cancel."""

    original_message_id: str
    original_message_type: str
    reason_code: str  # ExternalCancellationReason1Code, e.g. DUPL, FRAD, TECH, CUST
    cancellation_id: str | None = None
    original_uetr: str | None = None
    original_end_to_end_id: str | None = None
    original_instruction_id: str | None = None
    original_amount_minor: int | None = None
    original_currency: str | None = None
    original_settlement_date: date | None = None
    reason_text: str | None = None
    case: Case | None = None  # CBPR+ opens one case per transaction


CUSTOMER_TRANSFER_FAMILY = "pacs.008"  # what a payment that came in no message counts as


def names_payment(item: TransactionCancellation | PaymentReturn, payment: Payment) -> bool:
    """Whether the original references a camt.056 or pacs.004 transaction gives besides the
    UETR all name that payment (any it leaves out is not compared): with a mistyped UETR it
    then finds none, not another payment. The message name is compared by family (pacs.008,
    pacs.009), the version being the sender's business (a payment that came in no message
    is a pacs.008's); the original message id is not compared, as a creditor agent knows the
    payment by the message scopay forwarded it in."""
    given = ((item.original_end_to_end_id, payment.end_to_end_id),
             (item.original_instruction_id, payment.instruction_id),
             (item.original_amount_minor, payment.settlement_amount_minor),
             (item.original_currency, payment.settlement_currency))
    if any(theirs is not None and theirs != ours for theirs, ours in given):
        return False
    family = (payment.message_type or CUSTOMER_TRANSFER_FAMILY)[:len(CUSTOMER_TRANSFER_FAMILY)]
    return item.original_message_type[:len(family)] == family


@dataclass(frozen=True, slots=True)
class CancellationRequest:
    """camt.056: an agent (assigner) asks another (assignee) to cancel transactions."""

    assignment_id: str
    assigner: str  # BIC
    assignee: str  # BIC
    created_at_us: int
    transactions: tuple[TransactionCancellation, ...]


@dataclass(frozen=True, slots=True)
class TransactionCancellationStatus:
    """camt.029's answer for one transaction of a cancellation request."""

    original_message_id: str
    original_message_type: str
    status: CancellationStatus
    cancellation_status_id: str | None = None
    original_uetr: str | None = None
    original_end_to_end_id: str | None = None
    original_instruction_id: str | None = None
    original_amount_minor: int | None = None
    original_currency: str | None = None
    reason_code: str | None = None  # ExternalPaymentCancellationRejection1Code, e.g. ARDT
    reason_text: str | None = None


@dataclass(frozen=True, slots=True)
class CancellationResolution:
    """camt.029: how a cancellation case was resolved."""

    assignment_id: str
    assigner: str
    assignee: str
    created_at_us: int
    confirmation: InvestigationConfirmation
    transactions: tuple[TransactionCancellationStatus, ...] = ()
    resolved_case: Case | None = None


@dataclass(frozen=True, slots=True)
class Entry:
    """One booking on an account, as a statement or notification reports it."""

    amount_minor: int  # signed: a credit is positive, a debit negative
    currency: str
    status: EntryStatus
    bank_transaction_code: tuple[str, str, str]  # ISO domain, family, sub-family
    booking_date: date | None = None
    value_date: date | None = None
    entry_reference: str | None = None
    account_servicer_reference: str | None = None
    message_id: str | None = None
    instruction_id: str | None = None
    end_to_end_id: str | None = None
    uetr: str | None = None
    debtor_agent: str | None = None  # BIC
    creditor_agent: str | None = None  # BIC
    remittance: str | None = None


@dataclass(frozen=True, slots=True)
class Statement:
    """camt.053: an account's opening and closing booked balances and the entries between."""

    message_id: str
    created_at_us: int
    statement_id: str
    account: str  # IBAN or other account id
    currency: str
    opening_balance_minor: int  # signed: negative is a debit balance
    opening_date: date
    closing_balance_minor: int
    closing_date: date
    entries: tuple[Entry, ...] = ()
    account_servicer: str | None = None  # BIC
    sequence_number: int | None = None
    final: bool = True  # the day is over (closing balance CLBD); else interim (ITBD)
    page: int = 1  # a statement too long for one message comes in pages, numbered from 1
    last_page: bool = True  # a page before the last closes on an interim balance (ITBD
    # CIBD), and the next opens on it (ITBD OIBD): such a page is read back as final


@dataclass(frozen=True, slots=True)
class Notification:
    """camt.054: debit and credit notification of entries on one account."""

    message_id: str
    created_at_us: int
    notification_id: str
    account: str
    currency: str
    entries: tuple[Entry, ...]
    account_servicer: str | None = None


@dataclass(frozen=True, slots=True)
class BusinessAppHeader:
    """head.001: who sends what to whom, outside the business document."""

    from_bic: str
    to_bic: str
    business_message_id: str
    message_definition_id: str  # the document's message type, e.g. "pacs.008.001.08"
    created_at_us: int
    business_service: str | None = None  # e.g. "swift.cbprplus.02"
    possible_duplicate: bool = False


@dataclass(frozen=True, slots=True)
class BusinessMessage:
    """A document with its business application header (scopay's envelope)."""

    header: BusinessAppHeader
    message_type: str
    document: object
