"""Participants: who they are (BIC), what they do (role) and what their state may do (tier).

Membership tier drives access through ACCESS_POLICY, a table, not code: which tiers may hold
a settlement currency, who may be a direct participant, who may only be reached through a
sponsor.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

# ISO 9362: 4 letters institution, 2 letters country, 2 alphanumerics location, optional
# 3 alphanumerics branch. A location whose second character is "0" marks a test BIC.
_BIC_PATTERN = re.compile(r"[A-Z]{4}[A-Z]{2}[A-Z0-9]{2}(?:[A-Z0-9]{3})?")
PARTICIPANT_NAME_LENGTH_MAX = 140


class Role(StrEnum):
    OPERATOR = "operator"
    SETTLEMENT_AGENT = "settlement_agent"
    DIRECT = "direct_participant"
    INDIRECT = "indirect_participant"
    FX_PROVIDER = "fx_provider"
    AUDITOR = "auditor"  # reads everything, changes nothing, holds no account


class Tier(StrEnum):
    MEMBER = "member"
    OBSERVER = "observer"
    DIALOGUE_PARTNER = "dialogue_partner"
    INACTIVE = "inactive"


class Status(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


@dataclass(frozen=True, slots=True)
class TierPolicy:
    settlement_currency: bool  # the state's currency may be settled in scopay
    direct_participation: bool  # its institutions may hold settlement accounts
    indirect_participation: bool  # its institutions may be reached through a sponsor


ACCESS_POLICY: dict[Tier, TierPolicy] = {
    Tier.MEMBER: TierPolicy(settlement_currency=True, direct_participation=True,
                            indirect_participation=True),
    Tier.OBSERVER: TierPolicy(settlement_currency=False, direct_participation=True,
                              indirect_participation=True),
    Tier.DIALOGUE_PARTNER: TierPolicy(settlement_currency=False, direct_participation=False,
                                      indirect_participation=True),
    Tier.INACTIVE: TierPolicy(settlement_currency=False, direct_participation=False,
                              indirect_participation=False),
}

# The roles that hold accounts of their own; an indirect participant settles through its sponsor.
ACCOUNT_HOLDING_ROLES = frozenset(
    {Role.SETTLEMENT_AGENT, Role.DIRECT, Role.FX_PROVIDER, Role.OPERATOR}
)


PRIMARY_OFFICE_BRANCH = "XXX"
# Unicode categories no name is written with: controls (NUL, line ends), format characters
# (bidirectional overrides), surrogates, private use, unassigned, line and paragraph breaks.
_UNWRITTEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def is_valid_bic(bic: str) -> bool:
    return isinstance(bic, str) and _BIC_PATTERN.fullmatch(bic) is not None


def is_test_bic(bic: str) -> bool:
    """ISO 9362 test-and-training BIC: the location code's second character is '0'."""
    return is_valid_bic(bic) and bic[7] == "0"


@dataclass(frozen=True, slots=True)
class Participant:
    bic: str
    name: str
    role: Role
    country: str  # ISO 3166 alpha-2
    tier: Tier
    sponsor_bic: str | None = None
    settlement_currency: str | None = None  # for a settlement agent: the currency it issues
    status: Status = Status.ACTIVE


@dataclass(frozen=True, slots=True)
class StateFacts:
    """What the reference data says of a state: its name, its SCO tier, its currency."""

    name: str
    tier: Tier
    currency: str


def check_participant(
    participant: Participant, existing: dict[str, Participant], currencies: frozenset[str],
    states: Mapping[str, StateFacts] | None = None,
) -> str | None:
    """The first rule the new participant breaks, as text, or None. Changes nothing.
    `states` (by ISO country code): when given, its country must be one of them, its tier
    that state's, and a settlement agent's currency that state's own."""
    p = participant
    if states is not None:
        problem = _against_states(p, states)
        if problem is not None:
            return problem
    if not is_valid_bic(p.bic):
        return f"{p.bic!r} is not a BIC (ISO 9362: 4 letters, 2 letters, 2 or 5 alphanumerics)"
    if p.bic in existing:
        return f"participant {p.bic} exists already"
    if len(p.bic) == 11 and p.bic.endswith(PRIMARY_OFFICE_BRANCH):
        # ISO 9362: branch XXX is the institution's primary office, the 8-character BIC
        return f"{p.bic} is {p.bic[:8]}'s primary office: admit it as {p.bic[:8]}"
    if p.country != p.bic[4:6]:
        return f"BIC {p.bic} names country {p.bic[4:6]}, participant is in {p.country}"
    if not p.name or len(p.name) > PARTICIPANT_NAME_LENGTH_MAX:
        return f"name must be 1 to {PARTICIPANT_NAME_LENGTH_MAX} characters"
    if any(unicodedata.category(c) in _UNWRITTEN_CATEGORIES for c in p.name):
        return "name must hold no control or format characters"  # names go into messages
    policy = ACCESS_POLICY[p.tier]
    if p.role == Role.SETTLEMENT_AGENT:
        if not policy.settlement_currency:
            return f"a {p.tier} state's central bank cannot be a settlement agent"
        if p.settlement_currency not in currencies:
            return f"settlement currency {p.settlement_currency!r} unknown"
        for other in existing.values():
            if other.role == Role.SETTLEMENT_AGENT and (
                other.settlement_currency == p.settlement_currency
            ):
                return f"{p.settlement_currency} has a settlement agent already: {other.bic}"
    elif p.settlement_currency is not None:
        return "only a settlement agent has a settlement currency"
    if p.role in (Role.DIRECT, Role.FX_PROVIDER) and not policy.direct_participation:
        return f"institutions of a {p.tier} state may not be direct participants"
    if p.role == Role.INDIRECT:
        if not policy.indirect_participation:
            return f"institutions of a {p.tier} state may not participate"
        sponsor = existing.get(p.sponsor_bic or "")
        if sponsor is None or sponsor.role not in (Role.DIRECT, Role.FX_PROVIDER):
            return "an indirect participant needs a direct participant as sponsor"
        if sponsor.status != Status.ACTIVE:
            return f"sponsor {sponsor.bic} is suspended"
    elif p.sponsor_bic is not None:
        return "only an indirect participant has a sponsor"
    return None


def _against_states(p: Participant, states: Mapping[str, StateFacts]) -> str | None:
    state = states.get(p.country)
    if state is None:
        return (f"country {p.country!r} is no SCO member, observer or dialogue partner in "
                "scopay's reference data")
    if p.tier != state.tier:
        return f"{state.name} is a {state.tier.value} state, not {p.tier.value}"
    if p.role == Role.SETTLEMENT_AGENT and p.settlement_currency != state.currency:
        return (f"a settlement agent of {state.name} issues {state.currency}, not "
                f"{p.settlement_currency}")
    return None
