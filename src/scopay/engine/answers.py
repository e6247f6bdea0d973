"""Answers kept under idempotency keys, for a retry to get the first answer again.

In memory, per (participant, key): the request's digest and the answer's status, in the
order they were kept. The answer's body stays in the store and is read back only for a retry,
which is rare: a bulk answer of 1,000 payments is half a megabyte, and a busy day sees
hundreds of thousands of keys. Answers are forgotten after ANSWER_RETENTION_US (on the
engine's heartbeat, in a commit of their own); a retry after that runs the request afresh,
where payments and transfers are still idempotent by their own ids.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

ANSWER_RETENTION_US = 24 * 3600 * 1_000_000  # a day: far beyond any client's retry window

Key = tuple[str, str]  # (participant BIC, idempotency key)


class AnswerIndex:
    def __init__(self, kept: Iterable[tuple[str, str, str, int, int]],
                 read_body: Callable[[str, str], bytes | None]) -> None:
        """`kept`: (bic, key, request digest, status, kept at) of every stored answer."""
        self._read_body = read_body
        self._kept: dict[Key, tuple[str, int]] = {}
        self._order: deque[tuple[int, str, str]] = deque()
        for bic, key, digest, status, at_us in sorted(kept, key=lambda row: row[4]):
            self.add(bic, key, digest, status, at_us)

    def __contains__(self, key: Key) -> bool:
        return key in self._kept

    def __len__(self) -> int:
        return len(self._kept)

    def get(self, key: Key) -> tuple[str, int, bytes] | None:
        """(request digest, status, body) of the answer kept under the key, if any."""
        found = self._kept.get(key)
        if found is None:
            return None
        body = self._read_body(*key)
        return None if body is None else (*found, body)

    def __getitem__(self, key: Key) -> tuple[str, int, bytes]:
        found = self.get(key)
        if found is None:
            raise KeyError(key)
        return found

    def add(self, bic: str, key: str, digest: str, status: int, at_us: int) -> None:
        """Note an answer once it is durable."""
        self._kept[(bic, key)] = (digest, status)
        self._order.append((at_us, bic, key))

    def add_rows(self, rows: Iterable[tuple[str, str, str, int, bytes, int]]) -> None:
        """Note answers as the store keeps them (bic, key, digest, status, body, kept at),
        once their commit is durable; the bodies stay in the store."""
        for bic, key, digest, status, _, at_us in rows:
            self.add(bic, key, digest, status, at_us)

    def due(self, now_us: int) -> list[Key]:
        """Keys kept longer than the retention, oldest first (still kept until forget)."""
        cutoff = now_us - ANSWER_RETENTION_US
        due = []
        for at_us, bic, key in self._order:
            if at_us >= cutoff:
                break
            due.append((bic, key))
        return due

    def forget(self, keys: list[Key]) -> None:
        """Drop the keys due() returned, once their rows are deleted durably."""
        for expected in keys:
            _, bic, key = self._order.popleft()
            assert (bic, key) == expected, "forget what due() returned, in its order"
            del self._kept[(bic, key)]
