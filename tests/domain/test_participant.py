import csv
from dataclasses import replace
from pathlib import Path

import pytest

from scopay.domain.account import Account, AccountKind, check_account
from scopay.domain.money import AMOUNT_MINOR_MAX, CURRENCIES
from scopay.domain.participant import (
    Participant,
    Role,
    Status,
    Tier,
    check_participant,
    is_test_bic,
    is_valid_bic,
)

SCO_COUNTRIES_CSV = Path("/work/shared/data/sco_countries.csv")
CURRENCY_CODES = frozenset(CURRENCIES)


@pytest.mark.parametrize("bic", ["PBOCCNBJ", "PBOCCNBJXXX", "NATJTJ22", "ICBKCNBJ100"])
def test_valid_bics_of_8_and_11_characters_are_accepted(bic):
    assert is_valid_bic(bic)


@pytest.mark.parametrize(
    "bic",
    ["pboccnbj", "PBOCcnBJ", "PBOCCNB", "PBOCCNBJX", "PBOCCNBJXX", "PBOCCNBJXXXX", "PB0CCNBJ",
     "1BOCCNBJ", "PBOC1NBJ", "PBOC CNBJ", "PBOCCNBJ\n", "", None, 12345678],
)
def test_malformed_bics_are_refused(bic):
    assert not is_valid_bic(bic)


@pytest.mark.parametrize(
    ("bic", "is_test"),
    [("PBOCCNB0", True), ("PBOCCN20", True), ("PBOCCNB0XXX", True), ("PBOCCNBJ", False),
     ("PBOCCN0B", False), ("pboccnb0", False)],
)
def test_test_bic_is_detected_by_second_location_character_zero(bic, is_test):
    assert is_test_bic(bic) is is_test


def test_every_central_bank_bic_in_the_reference_data_is_valid_for_its_country():
    with SCO_COUNTRIES_CSV.open(encoding="utf-8", newline="") as f:
        rows = [row for row in csv.DictReader(f) if row["bic"]]
    assert rows
    for row in rows:
        assert is_valid_bic(row["bic"]), row["bic"]
        assert row["bic"][4:6] == row["code"], row["bic"]


# -- check_participant --------------------------------------------------------------------


def agent(bic="PBOCCNBJ", country="CN", currency="CNY", tier=Tier.MEMBER):
    return Participant(bic, "central bank", Role.SETTLEMENT_AGENT, country, tier,
                       settlement_currency=currency)


def bank(bic="ICBKCNBJ", country="CN", role=Role.DIRECT, tier=Tier.MEMBER, sponsor=None):
    return Participant(bic, "bank", role, country, tier, sponsor_bic=sponsor)


def test_participants_of_the_network_are_admitted(network):
    existing: dict[str, Participant] = {}
    for participant in network.participants:
        assert check_participant(participant, existing, CURRENCY_CODES) is None
        existing[participant.bic] = participant


def test_second_settlement_agent_for_a_currency_is_refused(network):
    problem = check_participant(agent("ZZZZCNBJ"), network.participants_by_bic, CURRENCY_CODES)
    assert problem is not None and "settlement agent already" in problem


def test_observer_central_bank_cannot_be_settlement_agent():
    problem = check_participant(agent("BOMUMNUB", "MN", "MNT", Tier.OBSERVER), {},
                                CURRENCY_CODES)
    assert problem is not None and "cannot be a settlement agent" in problem


def test_member_central_bank_with_unknown_currency_is_refused():
    problem = check_participant(agent(currency="XXX"), {}, CURRENCY_CODES)
    assert problem is not None and "unknown" in problem


def test_dialogue_partner_bank_cannot_be_direct_participant():
    problem = check_participant(bank("NCBKSAJE", "SA", tier=Tier.DIALOGUE_PARTNER), {},
                                CURRENCY_CODES)
    assert problem is not None and "may not be direct participants" in problem


def test_observer_bank_may_be_direct_participant():
    assert check_participant(bank("KHANMNUB", "MN", tier=Tier.OBSERVER), {},
                             CURRENCY_CODES) is None


def test_dialogue_partner_bank_may_be_indirect_through_a_direct_sponsor(network):
    participant = bank("NCBKSAJE", "SA", Role.INDIRECT, Tier.DIALOGUE_PARTNER, "ICBKCNBJ")
    assert check_participant(participant, network.participants_by_bic, CURRENCY_CODES) is None


@pytest.mark.parametrize("sponsor", [None, "ZZZZCNBJ", "PBOCCNBJ"])
def test_indirect_participant_needs_a_direct_sponsor(network, sponsor):
    participant = bank("BKCHCNBJ", role=Role.INDIRECT, sponsor=sponsor)
    problem = check_participant(participant, network.participants_by_bic, CURRENCY_CODES)
    assert problem is not None and "sponsor" in problem


def test_inactive_state_institution_cannot_be_indirect(network):
    participant = bank("AFIBAFKA", "AF", Role.INDIRECT, Tier.INACTIVE, "ICBKCNBJ")
    problem = check_participant(participant, network.participants_by_bic, CURRENCY_CODES)
    assert problem is not None and "may not participate" in problem


def test_direct_participant_with_a_sponsor_is_refused(network):
    problem = check_participant(bank("BKCHCNBJ", sponsor="ICBKCNBJ"),
                                network.participants_by_bic, CURRENCY_CODES)
    assert problem is not None and "only an indirect participant has a sponsor" in problem


def test_country_must_match_the_bic():
    problem = check_participant(bank("ICBKCNBJ", country="RU"), {}, CURRENCY_CODES)
    assert problem is not None and "names country CN" in problem


def test_settlement_currency_only_for_a_settlement_agent():
    participant = replace(bank(), settlement_currency="CNY")
    problem = check_participant(participant, {}, CURRENCY_CODES)
    assert problem is not None and "only a settlement agent" in problem


def test_duplicate_bic_and_malformed_bic_and_empty_name_are_refused(network):
    existing = network.participants_by_bic
    assert "exists already" in check_participant(bank("ICBKCNBJ"), existing, CURRENCY_CODES)
    assert "not a BIC" in check_participant(bank("icbkcnbj"), existing, CURRENCY_CODES)
    nameless = replace(bank("BKCHCNBJ"), name="")
    assert "name" in check_participant(nameless, existing, CURRENCY_CODES)
    too_long = replace(bank("BKCHCNBJ"), name="x" * 141)
    assert "name" in check_participant(too_long, existing, CURRENCY_CODES)


def test_a_primary_office_bic11_is_refused_beside_or_instead_of_its_bic8(network):
    existing = network.participants_by_bic
    for bic in ("ICBKCNBJXXX", "BKCHCNBJXXX"):
        problem = check_participant(bank(bic), existing, CURRENCY_CODES)
        assert problem is not None and f"admit it as {bic[:8]}" in problem
    assert check_participant(bank("BKCHCNBJ001"), existing, CURRENCY_CODES) is None  # a branch


@pytest.mark.parametrize("name", ["Bank\x00of China", "Bank\nof China", "Bank\u202eof China",
                                  "Bank\u2028of China"])
def test_a_name_with_control_or_format_characters_is_refused(network, name):
    problem = check_participant(replace(bank("BKCHCNBJ"), name=name),
                                network.participants_by_bic, CURRENCY_CODES)
    assert problem is not None and "control or format" in problem
    fine = replace(bank("BKCHCNBJ"), name="Банк Китая 中国银行 بانک")
    assert check_participant(fine, network.participants_by_bic, CURRENCY_CODES) is None


def test_an_indirect_participant_needs_an_active_sponsor(network):
    existing = dict(network.participants_by_bic)
    existing["ICBKCNBJ"] = replace(existing["ICBKCNBJ"], status=Status.SUSPENDED)
    indirect = replace(bank("BKCHCNBJ"), role=Role.INDIRECT, sponsor_bic="ICBKCNBJ")
    problem = check_participant(indirect, existing, CURRENCY_CODES)
    assert problem is not None and "suspended" in problem


# -- check_account ------------------------------------------------------------------------


def test_accounts_of_the_network_are_opened(network):
    opened: dict[int, Account] = {}
    for account in network.accounts:
        assert check_account(account, network.participants_by_bic, opened) is None
        opened[account.id] = account


def test_issuance_account_only_for_the_settlement_agent_of_its_currency(network):
    participants = network.participants_by_bic
    for account in (Account(50, "ICBKCNBJ", "CNY", AccountKind.ISSUANCE),
                    Account(51, "PBOCCNBJ", "RUB", AccountKind.ISSUANCE)):
        problem = check_account(account, participants, {})
        assert problem is not None and "only the settlement agent" in problem


def test_issuance_account_has_no_credit_line(network):
    account = Account(1, "PBOCCNBJ", "CNY", AccountKind.ISSUANCE, credit_line_minor=1)
    problem = check_account(account, network.participants_by_bic, {})
    assert problem is not None and "no credit line" in problem


def test_second_account_of_same_owner_currency_and_kind_is_refused(network):
    accounts = network.accounts_by_id
    problem = check_account(Account(99, "ICBKCNBJ", "CNY"), network.participants_by_bic, accounts)
    assert problem is not None and "has a settlement account in CNY" in problem


def test_owner_may_hold_one_account_per_currency_and_kind(network):
    participants, accounts = network.participants_by_bic, network.accounts_by_id
    assert check_account(Account(99, "ICBKCNBJ", "RUB"), participants, accounts) is None
    assert check_account(Account(98, "PBOCCNBJ", "CNY"), participants, accounts) is None


def test_indirect_participant_holds_no_accounts(network):
    participants = dict(network.participants_by_bic)
    participants["BKCHCNBJ"] = bank("BKCHCNBJ", role=Role.INDIRECT, sponsor="ICBKCNBJ")
    problem = check_account(Account(99, "BKCHCNBJ", "CNY"), participants, {})
    assert problem is not None and "settles through its sponsor" in problem


def test_auditor_is_admitted_alone_and_holds_no_accounts(network):
    participants = dict(network.participants_by_bic)
    auditor = Participant("OVSTCNX0", "Payments oversight (fictional)", Role.AUDITOR, "CN",
                          Tier.MEMBER)
    assert check_participant(auditor, participants, CURRENCY_CODES) is None
    assert "sponsor" in check_participant(replace(auditor, sponsor_bic="ICBKCNBJ"),
                                          participants, CURRENCY_CODES)
    assert "settlement currency" in check_participant(
        replace(auditor, settlement_currency="CNY"), participants, CURRENCY_CODES)
    participants[auditor.bic] = auditor
    problem = check_account(Account(99, auditor.bic, "CNY"), participants, {})
    assert problem is not None and "an auditor holds no accounts" in problem


@pytest.mark.parametrize(
    ("account", "expected"),
    [
        (Account(11, "ICBKCNBJ", "RUB"), "exists already"),
        (Account(0, "ICBKCNBJ", "RUB"), "positive"),
        (Account(AMOUNT_MINOR_MAX + 1, "ICBKCNBJ", "RUB"), "positive"),
        (Account(99, "ICBKCNBJ", "XXX"), "unknown currency"),
        (Account(99, "ZZZZCNBJ", "CNY"), "no participant"),
        (Account(99, "ICBKCNBJ", "RUB", credit_line_minor=-1), "credit line"),
        (Account(99, "ICBKCNBJ", "RUB", credit_line_minor=AMOUNT_MINOR_MAX + 1), "credit line"),
    ],
)
def test_malformed_accounts_are_refused(network, account, expected):
    problem = check_account(account, network.participants_by_bic, network.accounts_by_id)
    assert problem is not None and expected in problem


def test_suspended_participant_opens_no_account(network):
    participants = dict(network.participants_by_bic)
    participants["ICBKCNBJ"] = replace(participants["ICBKCNBJ"], status=Status.SUSPENDED)
    problem = check_account(Account(99, "ICBKCNBJ", "RUB"), participants, {})
    assert problem is not None and "suspended" in problem
