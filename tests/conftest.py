"""Shared fixtures: a small SCO network (two settlement agents, three direct banks).

    PBOCCNBJ  settlement agent for CNY   account 1  (issuance, no floor)
    CBRFRUMM  settlement agent for RUB   account 2  (issuance, no floor)
    ICBKCNBJ  direct bank                account 11 (CNY, funded 1000.00)
    ABOCCNBJ  direct bank                account 12 (CNY, unfunded, credit line 500.00)
    SABRRUMM  direct bank                account 21 (RUB, funded 1000.00)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from lxml import etree

from scopay.domain.account import Account, AccountKind
from scopay.domain.ledger import Ledger, Transfer
from scopay.domain.participant import Participant, Role, Tier
from scopay.engine.engine import Engine
from scopay.store.sqlite import SQLiteStore

NETWORK_FUNDED_AT_US = 1_000_000


@dataclass(frozen=True)
class Network:
    participants: tuple[Participant, ...]
    accounts: tuple[Account, ...]
    cny_issuance: int = 1
    rub_issuance: int = 2
    icbk_cny: int = 11
    aboc_cny: int = 12
    sabr_rub: int = 21
    funding_minor: int = 100_000  # 1000.00 on ICBK CNY and SABR RUB
    aboc_credit_line_minor: int = 50_000  # 500.00
    funded_at_us: int = NETWORK_FUNDED_AT_US

    @property
    def participants_by_bic(self) -> dict[str, Participant]:
        return {p.bic: p for p in self.participants}

    @property
    def accounts_by_id(self) -> dict[int, Account]:
        return {a.id: a for a in self.accounts}

    def funding_transfers(self) -> list[Transfer]:
        return [
            Transfer("fund-icbk-cny", self.cny_issuance, self.icbk_cny, self.funding_minor, "CNY"),
            Transfer("fund-sabr-rub", self.rub_issuance, self.sabr_rub, self.funding_minor, "RUB"),
        ]


@pytest.fixture(scope="session")
def network() -> Network:
    participants = (
        Participant("PBOCCNBJ", "People's Bank of China", Role.SETTLEMENT_AGENT, "CN",
                    Tier.MEMBER, settlement_currency="CNY"),
        Participant("CBRFRUMM", "Bank of Russia", Role.SETTLEMENT_AGENT, "RU", Tier.MEMBER,
                    settlement_currency="RUB"),
        Participant("ICBKCNBJ", "ICBC", Role.DIRECT, "CN", Tier.MEMBER),
        Participant("ABOCCNBJ", "Agricultural Bank of China", Role.DIRECT, "CN", Tier.MEMBER),
        Participant("SABRRUMM", "Sberbank", Role.DIRECT, "RU", Tier.MEMBER),
    )
    accounts = (
        Account(1, "PBOCCNBJ", "CNY", AccountKind.ISSUANCE),
        Account(2, "CBRFRUMM", "RUB", AccountKind.ISSUANCE),
        Account(11, "ICBKCNBJ", "CNY"),
        Account(12, "ABOCCNBJ", "CNY", credit_line_minor=50_000),
        Account(21, "SABRRUMM", "RUB"),
    )
    return Network(participants, accounts)


@pytest.fixture
def ledger(network: Network) -> Ledger:
    """A ledger with the network's accounts open and ICBK CNY / SABR RUB funded."""
    ledger = Ledger()
    for account in network.accounts:
        ledger.open_account(account)
    result = ledger.execute(network.funding_transfers(), network.funded_at_us)
    assert all(outcome.accepted for outcome in result.outcomes)
    return ledger


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "scopay.db"


@pytest.fixture
def open_engine(db_path):
    """Open an Engine over a real SQLite file (or the store given), optionally building the
    network in it; every engine opened is closed at teardown."""
    opened: list[Engine] = []

    def open_(store=None, *, with_network: Network | None = None) -> Engine:
        engine = Engine(store if store is not None else SQLiteStore(db_path))
        opened.append(engine)
        if with_network is not None:
            build_network(engine, with_network)
        return engine

    yield open_
    for engine in opened:
        engine.close()


def build_network(engine: Engine, network: Network) -> None:
    """Admit the network's participants, open its accounts and fund the banks."""
    now_us = network.funded_at_us - 1000
    for participant in network.participants:
        engine.admit_participant(participant, now_us)
    for account in network.accounts:
        engine.open_account(account, now_us)
    outcomes = engine.submit(network.funding_transfers(), network.funded_at_us)
    assert all(outcome.accepted for outcome in outcomes)


@pytest.fixture
def engine(open_engine, network: Network) -> Engine:
    """An engine over a SQLite file in tmp_path with the network built and funded."""
    return open_engine(with_network=network)


SHARED_DATA = Path(os.environ.get(
    "SCOPAY_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data():
    """shared_data(*parts) -> a path in the reference data kept beside the repository
    (../shared/data: facts with sources, official ISO 20022 schemas). Without that folder the
    test is skipped with the reason, except in CI (CI=true), where it must run."""

    def locate(*parts: str) -> Path:
        path = SHARED_DATA.joinpath(*parts)
        if path.exists():
            return path
        reason = f"reference data {path} not found (it lies beside the repository)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must run this test")
        pytest.skip(reason)

    return locate


@pytest.fixture(scope="session")
def xsd(shared_data):
    """xsd(message_type) -> the official XMLSchema, loaded from the shared folder once."""
    directory = shared_data("iso20022")
    loaded: dict[str, etree.XMLSchema] = {}

    def load(message_type: str) -> etree.XMLSchema:
        if message_type not in loaded:
            loaded[message_type] = etree.XMLSchema(
                etree.parse(str(directory / f"{message_type}.xsd")))
        return loaded[message_type]

    return load
