"""Mailboxes: what each participant is told, kept until it acknowledges.

A notice is written in the same commit as the state change it reports, so a participant is
told of every change that happened and of none that did not. Notices are domain facts;
iso20022/ renders them as messages (pacs.002, pacs.008, camt.054) when they are fetched.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

MAILBOX_PAGE_MAX = 500  # notices returned by one fetch


class NoticeKind(StrEnum):
    STATUS_REPORT = "status_report"  # to the sender: its payment changed status (pacs.002)
    INCOMING_PAYMENT = "incoming_payment"  # to the creditor agent: a payment settled (pacs.008)
    DEBIT_NOTIFICATION = "debit_notification"  # camt.054 debit to the debtor agent
    CREDIT_NOTIFICATION = "credit_notification"  # camt.054 credit to the creditor agent


@dataclass(frozen=True, slots=True)
class Notice:
    participant_bic: str
    kind: NoticeKind
    uetr: str | None
    status: str | None
    reason: str | None
    created_us: int
