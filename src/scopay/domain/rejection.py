"""Why the ledger refused a transfer: one value per broken rule, in precedence order.

When a transfer breaks several rules, the one listed first here is reported. The ISO 20022
reason code for each lives in iso20022/, the HTTP mapping in api/: one table each.
"""

from __future__ import annotations

from enum import StrEnum


class Rejection(StrEnum):
    LINKED_EVENT_FAILED = "linked_event_failed"
    LINKED_EVENT_CHAIN_OPEN = "linked_event_chain_open"
    ID_INVALID = "id_invalid"
    AMOUNT_MUST_BE_POSITIVE = "amount_must_be_positive"
    AMOUNT_TOO_LARGE = "amount_too_large"
    ACCOUNTS_MUST_BE_DIFFERENT = "accounts_must_be_different"
    PENDING_ID_MUST_BE_EMPTY = "pending_id_must_be_empty"
    PENDING_ID_REQUIRED = "pending_id_required"
    TIMEOUT_RESERVED_FOR_PENDING_TRANSFER = "timeout_reserved_for_pending_transfer"
    TIMEOUT_INVALID = "timeout_invalid"
    CURRENCY_UNKNOWN = "currency_unknown"
    EXISTS_WITH_DIFFERENT_KIND = "exists_with_different_kind"
    EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT = "exists_with_different_debit_account"
    EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT = "exists_with_different_credit_account"
    EXISTS_WITH_DIFFERENT_AMOUNT = "exists_with_different_amount"
    EXISTS_WITH_DIFFERENT_CURRENCY = "exists_with_different_currency"
    EXISTS_WITH_DIFFERENT_PENDING_ID = "exists_with_different_pending_id"
    EXISTS_WITH_DIFFERENT_TIMEOUT = "exists_with_different_timeout"
    EXISTS_WITH_DIFFERENT_LINKED = "exists_with_different_linked"
    DEBIT_ACCOUNT_NOT_FOUND = "debit_account_not_found"
    CREDIT_ACCOUNT_NOT_FOUND = "credit_account_not_found"
    PENDING_TRANSFER_NOT_FOUND = "pending_transfer_not_found"
    PENDING_TRANSFER_NOT_PENDING = "pending_transfer_not_pending"
    PENDING_TRANSFER_ALREADY_POSTED = "pending_transfer_already_posted"
    PENDING_TRANSFER_ALREADY_VOIDED = "pending_transfer_already_voided"
    PENDING_TRANSFER_EXPIRED = "pending_transfer_expired"
    PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT = "pending_transfer_has_different_debit_account"
    PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT = "pending_transfer_has_different_credit_account"
    PENDING_TRANSFER_HAS_DIFFERENT_CURRENCY = "pending_transfer_has_different_currency"
    EXCEEDS_PENDING_TRANSFER_AMOUNT = "exceeds_pending_transfer_amount"
    ACCOUNTS_MUST_HAVE_SAME_CURRENCY = "accounts_must_have_same_currency"
    CURRENCY_DIFFERS_FROM_ACCOUNTS = "currency_differs_from_accounts"
    DEBIT_ACCOUNT_BLOCKED = "debit_account_blocked"
    CREDIT_ACCOUNT_BLOCKED = "credit_account_blocked"
    OVERFLOWS_BALANCE = "overflows_balance"
    INSUFFICIENT_LIQUIDITY = "insufficient_liquidity"
    # Payments (before and after the ledger):
    PAYMENT_EXISTS_WITH_DIFFERENT_CONTENT = "payment_exists_with_different_content"
    MESSAGE_ID_USED = "message_id_used"
    DEBTOR_AGENT_UNKNOWN = "debtor_agent_unknown"
    CREDITOR_AGENT_UNKNOWN = "creditor_agent_unknown"
    NO_SETTLEMENT_ACCOUNT = "no_settlement_account"
    QUEUE_FULL = "queue_full"
    REJECT_TIME_PASSED = "reject_time_passed"
    # Returns (before the ledger):
    PAYMENT_NOT_FOUND = "payment_not_found"
    PAYMENT_RETURNED_ALREADY = "payment_returned_already"
    PAYMENT_NOT_SETTLED = "payment_not_settled"
    RETURN_AMOUNT_DIFFERS = "return_amount_differs"


REJECTION_TEXT: dict[Rejection, str] = {
    Rejection.LINKED_EVENT_FAILED: "another transfer of the same linked chain was refused",
    Rejection.LINKED_EVENT_CHAIN_OPEN: "the last transfer of the batch is linked to nothing",
    Rejection.ID_INVALID: "id must be 1 to 64 characters of A-Z a-z 0-9 . _ : / -",
    Rejection.AMOUNT_MUST_BE_POSITIVE: "amount must be positive",
    Rejection.AMOUNT_TOO_LARGE: "amount exceeds the largest amount scopay holds",
    Rejection.ACCOUNTS_MUST_BE_DIFFERENT: "debit and credit account are the same",
    Rejection.PENDING_ID_MUST_BE_EMPTY: "only posting or voiding a pending transfer names one",
    Rejection.PENDING_ID_REQUIRED: "posting or voiding needs the pending transfer's id",
    Rejection.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER: "only a pending transfer has a timeout",
    Rejection.TIMEOUT_INVALID: "timeout out of range",
    Rejection.CURRENCY_UNKNOWN: "currency is not an ISO 4217 code scopay knows",
    Rejection.EXISTS_WITH_DIFFERENT_KIND: "id used already for a transfer of another kind",
    Rejection.EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT: "id used already with another debit account",
    Rejection.EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT: "id used already with another credit account",
    Rejection.EXISTS_WITH_DIFFERENT_AMOUNT: "id used already with another amount",
    Rejection.EXISTS_WITH_DIFFERENT_CURRENCY: "id used already with another currency",
    Rejection.EXISTS_WITH_DIFFERENT_PENDING_ID: "id used already with another pending id",
    Rejection.EXISTS_WITH_DIFFERENT_TIMEOUT: "id used already with another timeout",
    Rejection.EXISTS_WITH_DIFFERENT_LINKED: "id used already with other linking",
    Rejection.DEBIT_ACCOUNT_NOT_FOUND: "debit account does not exist",
    Rejection.CREDIT_ACCOUNT_NOT_FOUND: "credit account does not exist",
    Rejection.PENDING_TRANSFER_NOT_FOUND: "no pending transfer has that id",
    Rejection.PENDING_TRANSFER_NOT_PENDING: "that transfer was never pending",
    Rejection.PENDING_TRANSFER_ALREADY_POSTED: "the pending transfer was posted already",
    Rejection.PENDING_TRANSFER_ALREADY_VOIDED: "the pending transfer was voided already",
    Rejection.PENDING_TRANSFER_EXPIRED: "the pending transfer expired",
    Rejection.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT: "pending one debits another account",
    Rejection.PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT: "pending one credits another account",
    Rejection.PENDING_TRANSFER_HAS_DIFFERENT_CURRENCY: "pending transfer is in another currency",
    Rejection.EXCEEDS_PENDING_TRANSFER_AMOUNT: "amount exceeds what the pending transfer reserved",
    Rejection.ACCOUNTS_MUST_HAVE_SAME_CURRENCY: (
        "accounts are in different currencies: a cross-currency payment is two linked "
        "transfers through an FX provider's accounts"
    ),
    Rejection.CURRENCY_DIFFERS_FROM_ACCOUNTS: "transfer currency differs from the accounts'",
    Rejection.DEBIT_ACCOUNT_BLOCKED: "debit account is blocked (its holder is suspended)",
    Rejection.CREDIT_ACCOUNT_BLOCKED: "credit account is blocked (its holder is suspended)",
    Rejection.OVERFLOWS_BALANCE: "the balance would leave the range scopay holds",
    Rejection.INSUFFICIENT_LIQUIDITY: "debit account lacks the funds above its floor",
    Rejection.PAYMENT_EXISTS_WITH_DIFFERENT_CONTENT: (
        "a payment with this UETR or instruction id exists with other content"
    ),
    Rejection.MESSAGE_ID_USED: (
        "the sender used this message id for another message: a message id names one message"
    ),
    Rejection.DEBTOR_AGENT_UNKNOWN: "the debtor agent is not a scopay participant",
    Rejection.CREDITOR_AGENT_UNKNOWN: "the creditor agent is not a scopay participant",
    Rejection.NO_SETTLEMENT_ACCOUNT: (
        "an agent (or its sponsor) has no settlement account in the settlement currency"
    ),
    Rejection.QUEUE_FULL: "the settlement queue is full",
    Rejection.REJECT_TIME_PASSED: "the payment did not settle before its reject-by time",
    Rejection.PAYMENT_NOT_FOUND: "no payment with this UETR that you may return",
    Rejection.PAYMENT_RETURNED_ALREADY: "the payment was returned already",
    Rejection.PAYMENT_NOT_SETTLED: "only a settled payment can be returned",
    Rejection.RETURN_AMOUNT_DIFFERS: (
        "a return gives back the whole settlement amount, in the settlement currency"
    ),
}
assert set(REJECTION_TEXT) == set(Rejection), "every rejection needs its text"
