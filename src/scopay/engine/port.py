"""The store port: what the engine needs from durable storage, owned by the engine.

SQLite (scopay.store.sqlite) implements it; PostgreSQL will implement the same methods.
`commit` writes one batch in one durable transaction, all or nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol

from scopay.domain.account import Account
from scopay.domain.ledger import JournalEntry, RejectionRecord
from scopay.domain.mailbox import Notice
from scopay.domain.participant import Participant
from scopay.domain.payment import PaymentRecord, StatusChange
from scopay.domain.rtgs import AccountPolicy


class Store(Protocol):
    def commit(self, journal: Iterable[JournalEntry] = (),
               rejections: Iterable[RejectionRecord] = (), **rows) -> None:
        """stage() then finish(): one batch durable, or nothing."""

    def finish(self) -> None:
        """Make the staged batch durable (any thread); rolled back if it fails."""

    def stage(
        self,
        journal: Iterable[JournalEntry] = (),
        rejections: Iterable[RejectionRecord] = (),
        *,
        participants: Iterable[Participant] = (),
        accounts: Iterable[Account] = (),
        blocked: Iterable[tuple[int, bool]] = (),
        keys: Iterable[tuple[str, str, str, int]] = (),
        revoked_keys: Iterable[tuple[str, int]] = (),
        payments: Iterable[tuple] = (),  # payment_codec.payment_row's
        payment_events: Iterable[tuple[str, StatusChange]] = (),
        policies: Iterable[tuple[int, AccountPolicy]] = (),
        notices: Iterable[Notice] = (),
        acknowledged: Iterable[tuple[int, str, int]] = (),  # (number, participant, at)
        idempotency: Iterable[tuple[str, str, str, int, bytes, int]] = (),
        forgotten_answers: Iterable[tuple[str, str]] = (),
        at_us: int = 0,
    ) -> None: ...

    def write_checkpoint(self, as_of_seq: int, timestamp_us: int,
                         balances: Iterable[tuple[int, int, int, int]]) -> None: ...

    def participants(self) -> list[Participant]: ...

    def accounts(self) -> list[tuple[Account, bool]]: ...

    def journal(self, after_seq: int = 0,
                until_seq: int | None = None) -> Iterator[tuple[int, JournalEntry]]: ...

    def journal_entry(self, transfer_id: str) -> tuple[int, JournalEntry] | None: ...

    def last_seq(self) -> int: ...

    def last_commit_us(self) -> int: ...

    def rejections(self) -> Iterator[RejectionRecord]: ...

    def checkpoint(self) -> tuple[int, int, dict[int, tuple[int, int, int]]] | None: ...

    def keys(self) -> dict[str, tuple[str, str, int | None]]: ...

    def first_journal_seq_from(self, timestamp_us: int, last_seq: int) -> int: ...

    def idempotency_records(self) -> list[tuple[str, str, str, int, int]]: ...

    def idempotency_body(self, bic: str, key: str) -> bytes | None: ...

    def payments(self) -> Iterator[PaymentRecord]: ...

    def payment_count(self) -> int: ...

    def accounts_posted(self, first_seq: int, last_seq: int, before_us: int, day_us: int,
                        kinds: Sequence[str]) -> list[tuple[int, int]]:
        """(day number, account id) of each account with a journal entry of these kinds in
        seqs first_seq..last_seq before `before_us`, sorted."""

    def account_movements(self, account_id: int, first_seq: int, last_seq: int,
                          kinds: Sequence[str], limit: int = -1) -> tuple[int, int]:
        """(count, net change) of the account's entries of these kinds in seqs
        first_seq..last_seq, the first `limit` of them (all for -1)."""

    def account_entries(self, account_id: int, first_seq: int, last_seq: int,
                        kinds: Sequence[str], offset: int, limit: int,
                        ) -> list[tuple[int, JournalEntry]]:
        """The account's entries of these kinds in seqs first_seq..last_seq, in order,
        `limit` of them from the `offset`-th."""

    def last_notice_times(self, reason: str) -> dict[str, int]:
        """Per UETR, the time of the last notice about it with this reason."""

    def policies(self) -> dict[int, AccountPolicy]: ...

    def mailbox(self, bic: str, after: int = 0,
                limit: int = 100) -> list[tuple[int, Notice, int | None]]:
        """(number, notice, acknowledged at) of the participant's unacknowledged notices
        numbered after `after` in its mailbox (1, 2, 3 ... per participant), oldest first."""

    def mailbox_notice(self, bic: str, number: int) -> Notice | None:
        """A notice of the participant's, acknowledged or not, by its number there."""

    def audit_head(self) -> tuple[int, str, int] | None:
        """The audit log's last entry: (number, SHA-256, time), or None while it is empty."""

    def close(self) -> None: ...
