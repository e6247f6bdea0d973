"""The engine's payments by UETR, the finished ones kept out of the garbage collector's way.

The engine holds every payment of the day: a duplicate must be known as one, a settled payment
can be returned, its tracker read. A PaymentRecord is about ten objects that CPython's cyclic
garbage collector tracks (the record, its payment, parties, history list and status changes),
and each of its collections of the oldest generation visits every one: stops that grow with
the payments held (about 2 s at 600,000, bench/bulk_growth.py --rounds 30).

A finished payment (settled, rejected, cancelled, returned) changes rarely, if ever, so the
book keeps it folded into bytes, which the collector never tracks: its status, then (by
`marshal`) its row as the store writes it (payment_codec.payment_row, the payment as JSON
text) followed by its history, four values a status change. The row is the one the store is
given in the same commit, so folding costs little more than the write did alone. (A tuple
of plain values would be untracked too, but only once a collection had seen it: until then
each new one adds to the young generation the collector scans.)

A folded record is unfolded when asked for: `get` (for a command, which may change it)
keeps the unfolded record until the next commit folds it again; `peek` (for reading) gives
an unfolded copy and keeps nothing.
"""

from __future__ import annotations

import marshal
from collections.abc import Iterable, Iterator

from scopay.domain.payment import PaymentRecord, PaymentStatus, Priority, StatusChange
from scopay.domain.rejection import Rejection
from scopay.store.payment_codec import decode_payment, enum_members, payment_row

# Statuses a payment leaves only by a command naming it (a return), by value: their records
# are folded.
_FINISHED = frozenset(status.value for status in (
    PaymentStatus.SETTLED, PaymentStatus.REJECTED, PaymentStatus.CANCELLED,
    PaymentStatus.RETURNED))
_ROW_LENGTH = 11  # payment_row's columns; the history follows
_STATUS = 4  # where payment_row has the status
_MARSHAL_VERSION = 2  # the quickest to write of marshal's formats for these values
# What a folded record starts with: its status, before the values marshal wrote.
_PREFIXES = {status.value: status.value.encode("ascii") + b"\x00" for status in PaymentStatus}

_STATUSES = enum_members(PaymentStatus)
_REASONS = {None: None, **enum_members(Rejection)}
_PRIORITIES = enum_members(Priority)


def fold(record: PaymentRecord, row: tuple | None = None) -> bytes:
    """The record as bytes: its status, then its `row` (payment_row's) and its history."""
    history: list = []
    for status, at_us, reason, detail in record.history:
        history += (status._value_, at_us, None if reason is None else reason._value_, detail)
    row = row or payment_row(record)
    return _PREFIXES[row[_STATUS]] + marshal.dumps(row + tuple(history), _MARSHAL_VERSION)


def unfold(folded: bytes) -> PaymentRecord:
    """The record `fold` folded (an equal one)."""
    values = marshal.loads(memoryview(folded)[folded.index(0) + 1:])
    history = [StatusChange(_STATUSES[values[at]], values[at + 1], _REASONS[values[at + 2]],
                            values[at + 3]) for at in range(_ROW_LENGTH, len(values), 4)]
    return PaymentRecord(decode_payment(values[3]), values[1], history, values[5], values[6],
                         values[7], _PRIORITIES[values[8]], values[9], values[10])


class PaymentBook:
    """PaymentRecords by UETR: open ones as they are, finished ones folded (see above).

    `get` and `[]` are for the engine's commands, under its lock: a folded record comes back
    unfolded, and that record is the one the book holds until the next fold, so what the
    command changes in it is kept. A command must not keep a record past its commit: once
    folded, changing it would change nothing the book holds. `peek` is for readers."""

    __slots__ = ("_entries", "_unfolded")

    def __init__(self) -> None:
        self._entries: dict[str, PaymentRecord | bytes] = {}
        self._unfolded: list[PaymentRecord] = []  # by get, since the last fold

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, uetr: object) -> bool:
        return uetr in self._entries

    def __setitem__(self, uetr: str, record: PaymentRecord) -> None:
        self._entries[uetr] = record

    def __getitem__(self, uetr: str) -> PaymentRecord:
        record = self.get(uetr)
        if record is None:
            raise KeyError(uetr)
        return record

    def get(self, uetr: str) -> PaymentRecord | None:
        entry = self._entries.get(uetr)
        if type(entry) is bytes:
            entry = self._entries[uetr] = unfold(entry)
            self._unfolded.append(entry)
        return entry

    def peek(self, uetr: str) -> PaymentRecord | None:
        """The record to read, not to change (a folded one's copy)."""
        entry = self._entries.get(uetr)
        return unfold(entry) if type(entry) is bytes else entry

    def items(self) -> Iterator[tuple[str, PaymentRecord]]:
        """Every payment, in the order recorded, as peek gives them."""
        for uetr, entry in list(self._entries.items()):
            yield uetr, unfold(entry) if type(entry) is bytes else entry

    def with_status(self, status: PaymentStatus) -> Iterator[PaymentRecord]:
        """The payments in `status`, as peek gives them; no other is unfolded."""
        prefix = _PREFIXES[status.value]
        for entry in list(self._entries.values()):
            if type(entry) is bytes:
                if entry.startswith(prefix):
                    yield unfold(entry)
            elif entry.status == status:
                yield entry

    def rows_to_write(self, records: Iterable[PaymentRecord]) -> list[tuple]:
        """The store's rows (payment_row) of `records`, each held by this book, for the
        commit about to write them; the finished among them are folded, with the rows the
        store is given, and so are those `get` unfolded since the last fold. Should the
        commit fail, the engine rebuilds its book from the store."""
        rows = []
        for record in records:
            row = payment_row(record)
            rows.append(row)
            self._fold_if_finished(record, row)
        self.fold()
        return rows

    def fold(self, records: Iterable[PaymentRecord] = ()) -> None:
        """Fold the finished among `records` (each held by this book) and among those `get`
        unfolded since the last fold."""
        for batch in (records, self._unfolded):
            for record in batch:
                if record.history[-1].status._value_ in _FINISHED:
                    self._fold_if_finished(record, payment_row(record))
        self._unfolded.clear()

    def _fold_if_finished(self, record: PaymentRecord, row: tuple) -> None:
        """Fold `record`, whose row is `row`, if it is finished and the one the book holds
        (not one a later fold or a rebuild has replaced)."""
        uetr = row[0]
        if row[_STATUS] in _FINISHED and self._entries.get(uetr) is record:
            self._entries[uetr] = fold(record, row)
