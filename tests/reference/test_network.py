"""The SCO reference network is seeded from the facts, with nothing real-looking invented."""

import csv

from scopay.cli.main import seed_reference_network
from scopay.domain.account import AccountKind
from scopay.domain.participant import Role, Tier, is_test_bic
from scopay.engine.engine import Engine
from scopay.reference.network import load_countries, plan_reference_network
from scopay.store.sqlite import SQLiteStore


def test_packaged_facts_match_the_shared_reference_data(shared_data):
    countries = shared_data("sco_countries.csv")
    shared = list(csv.DictReader(countries.read_text(encoding="utf-8").splitlines()))
    packaged = load_countries()
    assert [c.code for c in packaged] == [row["code"] for row in shared]
    for country, row in zip(packaged, shared, strict=True):
        assert (country.currency, country.minor_units) == (row["currency"],
                                                           int(row["minor_units"]))
        assert country.bic == (row["bic"] or None)


def test_each_member_central_bank_is_the_settlement_agent_of_its_currency():
    plan = plan_reference_network()
    members = [c for c in load_countries() if c.tier == Tier.MEMBER]
    agents = {p.settlement_currency: p for p in plan.participants
              if p.role == Role.SETTLEMENT_AGENT}
    assert len(members) == 10
    assert set(agents) == {c.currency for c in members}
    for country in members:
        agent = agents[country.currency]
        assert agent.country == country.code and agent.name == country.central_bank
        # a published BIC is used as given; a missing one is a synthetic test BIC
        assert agent.bic == country.bic or (country.bic is None and is_test_bic(agent.bic))
    issuance = {a.currency for a in plan.accounts if a.kind == AccountKind.ISSUANCE}
    assert issuance == set(agents)


def test_demo_banks_are_fictional_with_test_bics_and_funded():
    plan = plan_reference_network()
    demo = [p for p in plan.participants if p.role == Role.DIRECT and p.tier == Tier.MEMBER]
    assert len(demo) == 20
    assert all(is_test_bic(p.bic) and "fictional" in p.name for p in demo)
    funded = {t.credit_account_id for t in plan.funding}
    demo_accounts = {a.id for a in plan.accounts if a.owner_bic in {p.bic for p in demo}}
    assert funded == demo_accounts


def test_observers_and_partners_follow_the_access_policy():
    plan = plan_reference_network()
    by_country = {p.country: p for p in plan.participants if p.role != Role.OPERATOR
                  and "Demo" not in p.name}
    assert by_country["MN"].role == Role.DIRECT and by_country["MN"].tier == Tier.OBSERVER
    assert "AF" not in by_country  # observer inactive since 2021: no access
    assert by_country["TR"].role == Role.INDIRECT
    assert by_country["TR"].tier == Tier.DIALOGUE_PARTNER
    assert by_country["TR"].sponsor_bic is not None


def test_seeded_network_balances_and_reconciles(tmp_path):
    engine = Engine(SQLiteStore(tmp_path / "seed.db"))
    try:
        participants, accounts, fundings = seed_reference_network(engine, 1)
        report = engine.reconcile()
    finally:
        engine.close()
    assert (participants, accounts, fundings) == (47, 31, 20)
    assert report.ok and report.journal_entries == fundings
