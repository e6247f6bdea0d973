"""Mailboxes: what each participant is told, kept until it acknowledges.

A notice is written in the same commit as the state change it reports, so a participant is
told of every change that happened and of none that did not. Notices are domain facts;
iso20022/ renders them as messages (pacs.002, pacs.008, camt.054, camt.053) when they are
fetched.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

MAILBOX_PAGE_MAX = 500  # notices returned by one fetch


class NoticeKind(StrEnum):
    STATUS_REPORT = "status_report"  # to the sender: its payment changed status (pacs.002)
    INCOMING_PAYMENT = "incoming_payment"  # to the creditor agent: a payment settled (pacs.008)
    # A ledger movement that is no payment (transfers, funds-in and -out, a reservation's
    # post): camt.054 to the owner of the account debited, and of the account credited.
    # `uetr` holds the journal entry's transfer id.
    DEBIT_NOTIFICATION = "debit_notification"
    CREDIT_NOTIFICATION = "credit_notification"


NOTIFICATION_KINDS = frozenset({NoticeKind.DEBIT_NOTIFICATION, NoticeKind.CREDIT_NOTIFICATION})
BOOKED = "booked"  # the status of a debit or credit notification: the entry is booked


@dataclass(frozen=True, slots=True)
class Notice:
    participant_bic: str
    kind: NoticeKind
    uetr: str | None
    status: str | None
    reason: str | None
    created_us: int
