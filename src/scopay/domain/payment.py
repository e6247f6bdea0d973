"""Payments: what a bank asks scopay to move, and the states it passes through.

A payment is identified by its UETR and by its sender's instruction and end-to-end ids. Its
life is a status machine with an explicit table of allowed transitions; every transition is
recorded with its time and reason, and the tracker shows that history.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from decimal import Decimal
from enum import StrEnum
from typing import Any, NamedTuple, TypeVar

from scopay.domain.rejection import Rejection

UETR_PATTERN = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
TEXT_ID_LENGTH_MAX = 35  # ISO 20022 Max35Text
NAME_LENGTH_MAX = 140  # ISO 20022 Max140Text
REMITTANCE_LENGTH_MAX = 140


class Priority(StrEnum):
    URGENT = "urgent"
    HIGH = "high"
    NORMAL = "normal"


class ChargeBearer(StrEnum):
    DEBTOR = "DEBT"
    CREDITOR = "CRED"
    SHARED = "SHAR"
    FOLLOWING_SERVICE_LEVEL = "SLEV"


class SettlementMethod(StrEnum):
    GROSS = "gross"
    NET = "net"


class PaymentStatus(StrEnum):
    RECEIVED = "received"
    ACCEPTED = "accepted"
    SCREENING_HOLD = "screening_hold"
    QUEUED = "queued"
    SETTLED = "settled"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    RETURNED = "returned"


ALLOWED_TRANSITIONS: dict[PaymentStatus, frozenset[PaymentStatus]] = {
    PaymentStatus.RECEIVED: frozenset({PaymentStatus.ACCEPTED, PaymentStatus.REJECTED}),
    PaymentStatus.ACCEPTED: frozenset({
        PaymentStatus.SCREENING_HOLD, PaymentStatus.QUEUED, PaymentStatus.SETTLED,
        PaymentStatus.REJECTED, PaymentStatus.CANCELLED,
    }),
    PaymentStatus.SCREENING_HOLD: frozenset({
        PaymentStatus.ACCEPTED, PaymentStatus.REJECTED, PaymentStatus.CANCELLED,
    }),
    PaymentStatus.QUEUED: frozenset({
        PaymentStatus.SETTLED, PaymentStatus.REJECTED, PaymentStatus.CANCELLED,
    }),
    PaymentStatus.SETTLED: frozenset({PaymentStatus.RETURNED}),
    PaymentStatus.REJECTED: frozenset(),
    PaymentStatus.CANCELLED: frozenset(),
    PaymentStatus.RETURNED: frozenset(),
}


@dataclass(frozen=True, slots=True)
class PostalAddress:
    country: str | None = None  # ISO 3166 alpha-2
    town: str | None = None
    post_code: str | None = None
    street: str | None = None
    building_number: str | None = None
    address_lines: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Party:
    """A debtor or creditor: a name, an address, an account (IBAN or other id)."""

    name: str
    account: str | None = None
    address: PostalAddress | None = None


@dataclass(frozen=True, slots=True)
class Payment:
    uetr: str
    instruction_id: str
    end_to_end_id: str
    debtor_agent: str  # BIC
    creditor_agent: str  # BIC
    debtor: Party
    creditor: Party
    settlement_amount_minor: int
    settlement_currency: str
    instructed_amount_minor: int | None = None
    instructed_currency: str | None = None
    exchange_rate: Decimal | None = None
    charge_bearer: ChargeBearer = ChargeBearer.SHARED
    remittance: str | None = None
    purpose: str | None = None  # ISO external purpose code, e.g. GDDS, SUPP, TRAD
    priority: Priority = Priority.NORMAL
    settlement_method: SettlementMethod = SettlementMethod.GROSS
    earliest_us: int | None = None
    latest_us: int | None = None
    reject_by_us: int | None = None
    message_id: str | None = None  # the sender's message (group header) id
    sender_bic: str | None = None  # instructing agent, when it differs from the debtor agent
    intermediary_agents: tuple[str, ...] = ()
    charges: tuple[tuple[int, str, str], ...] = ()  # (amount_minor, currency, agent BIC)
    message_type: str | None = None  # the ISO 20022 message it came in, e.g. pacs.009.001.08


Frozen = TypeVar("Frozen")


def positional_constructor(cls: type[Frozen]) -> Callable[..., Frozen]:
    """A function taking every field of `cls` (a frozen slots dataclass) positionally, in field
    order, and returning the instance `cls(...)` would: same class, equal, same hash, still
    frozen, `dataclasses.replace` works on it.

    Why: a frozen dataclass's __init__ sets each field through object.__setattr__, which for
    Payment's 24 fields costs about ten times what plain slot assignments do, and readers of
    bulk messages build thousands. The function fills the slots of an unfrozen class with the
    same layout and then makes the value a `cls` (Python allows that __class__ assignment
    because the layouts are the same). Every field must be given; nothing is checked, as
    `cls`'s own __init__ checks nothing (no __post_init__ is skipped)."""
    names = tuple(field.name for field in fields(cls))
    assert getattr(cls, "__slots__", None) == names, f"{cls.__name__} is not a slots dataclass"
    assert not hasattr(cls, "__post_init__"), f"{cls.__name__} checks in __post_init__"
    assert not {"value", "unfrozen", "cls"} & set(names), "a field named as a local below"
    unfrozen = type(f"Unfrozen{cls.__name__}", (), {"__slots__": names})
    unfrozen().__class__ = cls  # a TypeError here, at import, if the layouts differ
    source = "\n".join([
        f"def new_{cls.__name__}({', '.join(names)}):",
        "    value = unfrozen()",
        *(f"    value.{name} = {name}" for name in names),
        "    value.__class__ = cls",
        "    return value",
    ])
    namespace: dict[str, Any] = {"unfrozen": unfrozen, "cls": cls}
    exec(source, namespace)  # as dataclasses does: one plain assignment per field
    return namespace[f"new_{cls.__name__}"]


new_postal_address = positional_constructor(PostalAddress)
new_party = positional_constructor(Party)
new_payment = positional_constructor(Payment)


class StatusChange(NamedTuple):
    """One step of a payment's history. A named tuple, as the ledger's records are: a payment
    that settles at once makes three, on the engine's hot path."""

    status: PaymentStatus
    at_us: int
    reason: Rejection | None = None
    detail: str | None = None


@dataclass(slots=True)
class PaymentRecord:
    """A payment with its history and settlement routing; the engine keeps one per UETR."""

    payment: Payment
    sender_bic: str
    history: list[StatusChange] = field(default_factory=list)
    debtor_account: int | None = None  # settlement accounts (a sponsor's for an indirect)
    creditor_account: int | None = None
    sequence: int = 0
    priority: Priority = Priority.NORMAL  # current: the queue may change it
    latest_us: int | None = None
    reject_by_us: int | None = None

    @property
    def status(self) -> PaymentStatus:
        return self.history[-1].status

    def move_to(self, status: PaymentStatus, at_us: int, reason: Rejection | None = None,
                detail: str | None = None) -> StatusChange:
        """Record a transition; the table of allowed transitions is the law."""
        history = self.history
        if history:
            assert can_transition(history[-1].status, status), f"{self.status} -> {status}"
        change = StatusChange(status, at_us, reason, detail)
        history.append(change)
        return change


def check_return(record: PaymentRecord | None, amount_minor: int,
                 currency: str) -> Rejection | None:
    """Why this return of a payment cannot be made, or None: only a settled payment goes
    back, once, and whole (a partial return would leave the payment half returned). The
    ledger then decides whether its creditor's account can pay it back."""
    if record is None:
        return Rejection.PAYMENT_NOT_FOUND
    if record.status == PaymentStatus.RETURNED:
        return Rejection.PAYMENT_RETURNED_ALREADY
    if record.status != PaymentStatus.SETTLED:
        return Rejection.PAYMENT_NOT_SETTLED
    payment = record.payment
    if (amount_minor, currency) != (payment.settlement_amount_minor,
                                    payment.settlement_currency):
        return Rejection.RETURN_AMOUNT_DIFFERS
    return None


def is_valid_uetr(uetr: str) -> bool:
    return isinstance(uetr, str) and UETR_PATTERN.fullmatch(uetr) is not None


def can_transition(current: PaymentStatus, new: PaymentStatus) -> bool:
    return new in ALLOWED_TRANSITIONS[current]


TERMINAL_STATUSES = frozenset(s for s, nexts in ALLOWED_TRANSITIONS.items() if not nexts)


DAY_US = 86_400_000_000  # a UTC day in microseconds
# The payment times scopay takes (earliest, latest, reject-by), in microseconds since the Unix
# epoch: from its start to the end of 9999-12-30 UTC, the last day that every UTC offset still
# names within the four-digit years ISO 20022 and RFC 3339 write, so every stored time can be
# written back in any message or answer.
PAYMENT_TIME_US_MIN = 0
PAYMENT_TIME_US_MAX = 2_932_896 * DAY_US - 1  # days from 1970-01-01 to 9999-12-31
TIME_RANGE_TEXT = "payment times must fall from 1970-01-01 to 9999-12-30 UTC"


def in_time_range(moments: Iterable[int | None]) -> bool:
    """Whether each of a payment's times given (None: not given) is one scopay takes."""
    return all(PAYMENT_TIME_US_MIN <= moment <= PAYMENT_TIME_US_MAX
               for moment in moments if moment is not None)


def on_one_date(moments: Iterable[int | None]) -> bool:
    """Whether a payment's times (earliest, latest, reject-by; None for one not given) fall
    on one UTC date: ISO 20022 gives them as clock times on the one settlement date."""
    day = None  # (a loop: most payments give no times, and a set costs them more)
    for moment in moments:
        if moment is not None:
            if day is None:
                day = moment // DAY_US
            elif moment // DAY_US != day:
                return False
    return True
