"""The SCO reference network: the states, their central banks, and fictional demo banks.

Facts (countries, currencies, central banks, BICs where a public source gave one) come from
`data/sco_countries.csv` (its sources are listed with the reference data the project keeps
beside the repository, shared/data/README.md; its `bic_verified` column says whether a BIC is
official or from a secondary source). What the data leaves blank is not invented:
a central bank with no published BIC gets a synthetic test BIC (bank code "ZZCB", location
"X0": ISO 9362 marks a location ending in "0" as test-and-training), and every demo bank is
plainly fictional with a test BIC of the same kind.
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from importlib import resources

from scopay.domain.account import Account, AccountKind
from scopay.domain.ledger import Transfer
from scopay.domain.money import parse_amount
from scopay.domain.participant import Participant, Role, StateFacts, Tier

OPERATOR_BIC = "SCOPCNX0"  # synthetic: the scopay operator, seated with the SCO in Beijing
DEMO_BANK_CODES = ("DEMA", "DEMB")
DEMO_FUNDING = "10000000.00"  # major units funded into each demo bank's home account
OBSERVER_ACCOUNT_CURRENCY = "CNY"  # where an observer's central bank gets its first account


@dataclass(frozen=True, slots=True)
class Country:
    code: str
    name: str
    tier: Tier
    currency: str
    minor_units: int
    central_bank: str
    bic: str | None
    bic_source: str | None
    timezone: str


@dataclass(frozen=True)
class NetworkPlan:
    participants: list[Participant]
    accounts: list[Account]
    funding: list[Transfer]


def tier_of(status: str) -> Tier:
    """Map the data's status column ("observer (inactive since 2021)" ...) to a tier."""
    if "inactive" in status:
        return Tier.INACTIVE
    if status.startswith("member"):
        return Tier.MEMBER
    if status.startswith("observer"):
        return Tier.OBSERVER
    if status.startswith("dialogue_partner"):
        return Tier.DIALOGUE_PARTNER
    raise ValueError(f"unknown SCO status {status!r}")


def load_countries() -> list[Country]:
    text = (resources.files("scopay.reference") / "data" / "sco_countries.csv").read_text(
        encoding="utf-8"
    )
    countries = []
    for row in csv.DictReader(text.splitlines()):
        countries.append(Country(
            code=row["code"], name=row["name"], tier=tier_of(row["status"]),
            currency=row["currency"], minor_units=int(row["minor_units"]),
            central_bank=row["central_bank"], bic=row["bic"] or None,
            bic_source=row["bic_verified"] or None, timezone=row["timezone"],
        ))
    return countries


@functools.cache
def state_facts() -> dict[str, StateFacts]:
    """The reference data's states by ISO country code, as admissions are checked against."""
    return {c.code: StateFacts(c.name, c.tier, c.currency) for c in load_countries()}


def central_bank_bic(country: Country) -> str:
    return country.bic or f"ZZCB{country.code}X0"


def plan_reference_network() -> NetworkPlan:
    """Participants, accounts and funding of the reference network, in admission order."""
    countries = load_countries()
    participants = [Participant(OPERATOR_BIC, "scopay operator (synthetic)", Role.OPERATOR,
                                "CN", Tier.MEMBER)]
    accounts: list[Account] = []
    funding: list[Transfer] = []
    issuance: dict[str, int] = {}
    members = [c for c in countries if c.tier == Tier.MEMBER]
    for country in members:
        bic = central_bank_bic(country)
        participants.append(Participant(bic, country.central_bank, Role.SETTLEMENT_AGENT,
                                        country.code, Tier.MEMBER,
                                        settlement_currency=country.currency))
        accounts.append(Account(len(accounts) + 1, bic, country.currency, AccountKind.ISSUANCE))
        issuance[country.currency] = accounts[-1].id
    for country in members:
        for code in DEMO_BANK_CODES:
            bic = f"{code}{country.code}X0"
            participants.append(Participant(
                bic, f"Demo Bank {code[-1]} of {country.name} (fictional)", Role.DIRECT,
                country.code, Tier.MEMBER))
            account = Account(len(accounts) + 1, bic, country.currency)
            accounts.append(account)
            funding.append(Transfer(f"seed-funds-in-{bic}-{country.currency}",
                                    issuance[country.currency], account.id,
                                    parse_amount(DEMO_FUNDING, country.currency),
                                    country.currency))
    sponsor = f"{DEMO_BANK_CODES[0]}CNX0"
    for country in countries:
        bic = central_bank_bic(country)
        if country.tier == Tier.OBSERVER:
            participants.append(Participant(bic, country.central_bank, Role.DIRECT,
                                            country.code, Tier.OBSERVER))
            accounts.append(Account(len(accounts) + 1, bic, OBSERVER_ACCOUNT_CURRENCY))
        elif country.tier == Tier.DIALOGUE_PARTNER:
            participants.append(Participant(bic, country.central_bank, Role.INDIRECT,
                                            country.code, Tier.DIALOGUE_PARTNER,
                                            sponsor_bic=sponsor))
    return NetworkPlan(participants, accounts, funding)
