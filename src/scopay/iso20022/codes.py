"""ISO 20022 code lists scopay speaks, and the one table from ledger rejections to reason codes.

Reason codes are values of the ISO external code set ExternalStatusReason1Code; a pacs.002
carries one per refused payment. Where no ISO code names the broken rule (an engine-internal
rule about pending transfers, say) the code is NARR and the rejection's text goes alongside.
Completeness of both tables is asserted by tests/iso20022/test_codes.py rather than at import,
so a rejection added to the domain fails the tests, not the start of every process that reads
ISO messages.
"""

from __future__ import annotations

from enum import StrEnum

from scopay.domain.payment import PaymentStatus
from scopay.domain.rejection import REJECTION_TEXT, Rejection


class ReasonCode(StrEnum):
    """External status reason codes (ExternalStatusReason1Code) scopay sends or reads."""

    INCORRECT_ACCOUNT_NUMBER = "AC01"
    INVALID_DEBTOR_ACCOUNT_NUMBER = "AC02"
    INVALID_CREDITOR_ACCOUNT_NUMBER = "AC03"
    CLOSED_ACCOUNT_NUMBER = "AC04"
    BLOCKED_ACCOUNT = "AC06"
    TRANSACTION_FORBIDDEN = "AG01"
    TRANSACTION_NOT_SUPPORTED = "AG03"
    ZERO_AMOUNT = "AM01"
    NOT_ALLOWED_AMOUNT = "AM02"
    NOT_ALLOWED_CURRENCY = "AM03"
    INSUFFICIENT_FUNDS = "AM04"
    DUPLICATION = "AM05"
    WRONG_AMOUNT = "AM09"
    INVALID_CONTROL_SUM = "AM10"
    INVALID_AMOUNT = "AM12"
    INVALID_NUMBER_OF_TRANSACTIONS = "AM18"
    DUPLICATE_PAYMENT = "DUPL"
    INVALID_DATE = "DT01"
    INVALID_FILE_FORMAT = "FF01"
    NARRATIVE = "NARR"
    BANK_IDENTIFIER_INCORRECT = "RC01"
    INVALID_DEBTOR_BANK_IDENTIFIER = "RC03"
    INVALID_CREDITOR_BANK_IDENTIFIER = "RC04"
    INVALID_CUT_OFF_TIME = "TM01"


class TransactionStatus(StrEnum):
    """Payment status codes (ExternalPaymentTransactionStatus1Code) in a pacs.002."""

    RECEIVED = "RCVD"
    ACCEPTED_TECHNICAL_VALIDATION = "ACTC"
    ACCEPTED_CUSTOMER_PROFILE = "ACCP"
    ACCEPTED_SETTLEMENT_IN_PROCESS = "ACSP"
    ACCEPTED_SETTLEMENT_COMPLETED = "ACSC"
    ACCEPTED_CREDIT_SETTLEMENT_COMPLETED = "ACCC"
    PENDING = "PDNG"
    REJECTED = "RJCT"
    CANCELLED = "CANC"


class CancellationStatus(StrEnum):
    """Answer to one cancelled transaction in a camt.029 (CancellationIndividualStatus1Code)."""

    ACCEPTED = "ACCR"
    REJECTED = "RJCR"
    PENDING = "PDCR"


class InvestigationConfirmation(StrEnum):
    """Outcome of a cancellation case (ExternalInvestigationExecutionConfirmation1Code)."""

    CANCELLED_AS_REQUESTED = "CNCL"
    PENDING_CANCELLATION_REQUEST = "PDCR"
    REJECTED_CANCELLATION_REQUEST = "RJCR"
    PARTIALLY_EXECUTED_CANCELLATION_REQUEST = "PECR"  # some of its transactions cancelled


class EntryStatus(StrEnum):
    """Status of a statement or notification entry (ExternalEntryStatus1Code)."""

    BOOKED = "BOOK"
    PENDING = "PDNG"
    INFORMATION = "INFO"


class SettlementMethod(StrEnum):
    """How a group of interbank transfers settles (SettlementMethod1Code)."""

    CLEARING_SYSTEM = "CLRG"
    INSTRUCTED_AGENT = "INDA"
    INSTRUCTING_AGENT = "INGA"
    COVER = "COVE"


# The one table: every ledger rejection and the reason code a pacs.002 reports it with.
REJECTION_REASON_CODE: dict[Rejection, ReasonCode] = {
    Rejection.LINKED_EVENT_FAILED: ReasonCode.NARRATIVE,
    Rejection.LINKED_EVENT_CHAIN_OPEN: ReasonCode.NARRATIVE,
    Rejection.ID_INVALID: ReasonCode.INVALID_FILE_FORMAT,
    Rejection.AMOUNT_MUST_BE_POSITIVE: ReasonCode.ZERO_AMOUNT,
    Rejection.AMOUNT_TOO_LARGE: ReasonCode.NOT_ALLOWED_AMOUNT,
    Rejection.ACCOUNTS_MUST_BE_DIFFERENT: ReasonCode.TRANSACTION_FORBIDDEN,
    Rejection.PENDING_ID_MUST_BE_EMPTY: ReasonCode.NARRATIVE,
    Rejection.PENDING_ID_REQUIRED: ReasonCode.NARRATIVE,
    Rejection.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER: ReasonCode.NARRATIVE,
    Rejection.TIMEOUT_INVALID: ReasonCode.NARRATIVE,
    Rejection.CURRENCY_UNKNOWN: ReasonCode.NOT_ALLOWED_CURRENCY,
    Rejection.EXISTS_WITH_DIFFERENT_KIND: ReasonCode.DUPLICATE_PAYMENT,
    Rejection.EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT: ReasonCode.DUPLICATE_PAYMENT,
    Rejection.EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT: ReasonCode.DUPLICATE_PAYMENT,
    Rejection.EXISTS_WITH_DIFFERENT_AMOUNT: ReasonCode.DUPLICATE_PAYMENT,
    Rejection.EXISTS_WITH_DIFFERENT_CURRENCY: ReasonCode.DUPLICATE_PAYMENT,
    Rejection.EXISTS_WITH_DIFFERENT_PENDING_ID: ReasonCode.DUPLICATE_PAYMENT,
    Rejection.EXISTS_WITH_DIFFERENT_TIMEOUT: ReasonCode.DUPLICATE_PAYMENT,
    Rejection.EXISTS_WITH_DIFFERENT_LINKED: ReasonCode.DUPLICATE_PAYMENT,
    Rejection.DEBIT_ACCOUNT_NOT_FOUND: ReasonCode.INVALID_DEBTOR_ACCOUNT_NUMBER,
    Rejection.CREDIT_ACCOUNT_NOT_FOUND: ReasonCode.INVALID_CREDITOR_ACCOUNT_NUMBER,
    Rejection.PENDING_TRANSFER_NOT_FOUND: ReasonCode.NARRATIVE,
    Rejection.PENDING_TRANSFER_NOT_PENDING: ReasonCode.NARRATIVE,
    Rejection.PENDING_TRANSFER_ALREADY_POSTED: ReasonCode.NARRATIVE,
    Rejection.PENDING_TRANSFER_ALREADY_VOIDED: ReasonCode.NARRATIVE,
    Rejection.PENDING_TRANSFER_EXPIRED: ReasonCode.NARRATIVE,
    Rejection.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT: ReasonCode.NARRATIVE,
    Rejection.PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT: ReasonCode.NARRATIVE,
    Rejection.PENDING_TRANSFER_HAS_DIFFERENT_CURRENCY: ReasonCode.NARRATIVE,
    Rejection.EXCEEDS_PENDING_TRANSFER_AMOUNT: ReasonCode.WRONG_AMOUNT,
    Rejection.ACCOUNTS_MUST_HAVE_SAME_CURRENCY: ReasonCode.NOT_ALLOWED_CURRENCY,
    Rejection.CURRENCY_DIFFERS_FROM_ACCOUNTS: ReasonCode.NOT_ALLOWED_CURRENCY,
    Rejection.DEBIT_ACCOUNT_BLOCKED: ReasonCode.BLOCKED_ACCOUNT,
    Rejection.CREDIT_ACCOUNT_BLOCKED: ReasonCode.BLOCKED_ACCOUNT,
    Rejection.OVERFLOWS_BALANCE: ReasonCode.NOT_ALLOWED_AMOUNT,
    Rejection.INSUFFICIENT_LIQUIDITY: ReasonCode.INSUFFICIENT_FUNDS,
    Rejection.PAYMENT_EXISTS_WITH_DIFFERENT_CONTENT: ReasonCode.DUPLICATE_PAYMENT,
    Rejection.MESSAGE_ID_USED: ReasonCode.DUPLICATE_PAYMENT,
    Rejection.DEBTOR_AGENT_UNKNOWN: ReasonCode.INVALID_DEBTOR_BANK_IDENTIFIER,
    Rejection.CREDITOR_AGENT_UNKNOWN: ReasonCode.INVALID_CREDITOR_BANK_IDENTIFIER,
    Rejection.NO_SETTLEMENT_ACCOUNT: ReasonCode.NOT_ALLOWED_CURRENCY,
    Rejection.QUEUE_FULL: ReasonCode.NARRATIVE,
    Rejection.REJECT_TIME_PASSED: ReasonCode.INVALID_CUT_OFF_TIME,
    Rejection.PAYMENT_NOT_FOUND: ReasonCode.NARRATIVE,
    Rejection.PAYMENT_RETURNED_ALREADY: ReasonCode.DUPLICATE_PAYMENT,
    Rejection.PAYMENT_NOT_SETTLED: ReasonCode.NARRATIVE,
    Rejection.RETURN_AMOUNT_DIFFERS: ReasonCode.WRONG_AMOUNT,
}

# What a pacs.002 says about a payment in each of its states; a return is a pacs.004 instead.
PAYMENT_STATUS_CODE: dict[PaymentStatus, TransactionStatus | None] = {
    PaymentStatus.RECEIVED: TransactionStatus.RECEIVED,
    PaymentStatus.ACCEPTED: TransactionStatus.ACCEPTED_TECHNICAL_VALIDATION,
    PaymentStatus.SCREENING_HOLD: TransactionStatus.PENDING,
    PaymentStatus.QUEUED: TransactionStatus.PENDING,
    PaymentStatus.SETTLED: TransactionStatus.ACCEPTED_SETTLEMENT_COMPLETED,
    PaymentStatus.REJECTED: TransactionStatus.REJECTED,
    PaymentStatus.CANCELLED: TransactionStatus.CANCELLED,
    PaymentStatus.RETURNED: None,
}


def reason_for(rejection: Rejection) -> tuple[ReasonCode, str]:
    """The reason code and the text to send with it (the text matters most for NARR)."""
    return REJECTION_REASON_CODE[rejection], REJECTION_TEXT[rejection]
