"""Mailboxes: what each participant is told, kept until it acknowledges.

A notice is written in the same commit as the state change it reports, so a participant is
told of every change that happened and of none that did not. Notices are domain facts;
iso20022/ renders them as messages (pacs.002, pacs.008, camt.054, camt.053) when they are
fetched.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

MAILBOX_PAGE_MAX = 500  # notices returned by one fetch


class NoticeKind(StrEnum):
    STATUS_REPORT = "status_report"  # to the sender: its payment changed status (pacs.002)
    INCOMING_PAYMENT = "incoming_payment"  # to the creditor agent: a payment settled (pacs.008)
    # Ledger movements that are no payment (transfers, funds-in and -out, a reservation's
    # post): camt.054 to the owner of the account debited, and of the account credited. One
    # notice tells an account's entries of one side booked in one commit, at most
    # NOTIFICATION_ENTRIES_MAX of them (a batch of 8,190 transfers from one account is a
    # few camt.054s, not 8,190): `uetr` holds the first entry's transfer id, `reason` the
    # last one's when there are more (None: that entry alone).
    DEBIT_NOTIFICATION = "debit_notification"
    CREDIT_NOTIFICATION = "credit_notification"
    # The end of a UTC day on which an account had entries: camt.053 of that account and day
    # to its owner, written in the commit of the engine's first step of a later day. `uetr`
    # holds the statement id "<account id>-<YYYYMMDD>", `status` the day (YYYY-MM-DD).
    STATEMENT = "statement"


NOTIFICATION_KINDS = frozenset({NoticeKind.DEBIT_NOTIFICATION, NoticeKind.CREDIT_NOTIFICATION})
NOTIFICATION_ENTRIES_MAX = 1_000  # entries one debit or credit notification tells
BOOKED = "booked"  # the status of a debit or credit notification: its entries are booked


@dataclass(frozen=True, slots=True)
class Notice:
    participant_bic: str
    kind: NoticeKind
    uetr: str | None
    status: str | None
    reason: str | None
    created_us: int


_EPOCH_DAY = date(1970, 1, 1)


def day_digits(day: date) -> str:
    """A date as eight digits, years below 1000 zero-padded (`%Y` does not pad them)."""
    return f"{day.year:04d}{day.month:02d}{day.day:02d}"


def statement_id(account_id: int, day: date) -> str:
    """The id of an account's statement for a UTC day: `<account>-<YYYYMMDD>`."""
    return f"{account_id}-{day_digits(day)}"


def statement_notice(owner_bic: str, account_id: int, day_number: int, at_us: int) -> Notice:
    """The notice of an account's statement for a UTC day (days counted from 1970-01-01)."""
    day = _EPOCH_DAY + timedelta(days=day_number)
    return Notice(owner_bic, NoticeKind.STATEMENT, statement_id(account_id, day),
                  day.isoformat(), None, at_us)


def statement_of(notice: Notice) -> tuple[int, date]:
    """(account id, day) of a statement notice."""
    assert notice.kind == NoticeKind.STATEMENT and notice.uetr and notice.status
    return int(notice.uetr.partition("-")[0]), date.fromisoformat(notice.status)
