"""Hand-written messages in the shapes CBPR+ and T2 market practice give them all parse, with
and without run-time XSD validation, into the values a bank meant."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from iso_support import SAMPLES_DIR

from scopay.domain.payment import ChargeBearer, Priority, SettlementMethod
from scopay.iso20022.codes import (
    CancellationStatus,
    EntryStatus,
    InvestigationConfirmation,
    TransactionStatus,
)
from scopay.iso20022.message import parse_message
from scopay.iso20022.model import BusinessMessage

SAMPLES = sorted(SAMPLES_DIR.glob("*.xml"))


def read_sample(name: str) -> tuple[str, object]:
    return parse_message((SAMPLES_DIR / name).read_bytes())


def test_there_is_a_sample_for_every_message_scopay_reads():
    from scopay.iso20022.message import MESSAGE_TYPES

    found = {read_sample(path.name)[0] for path in SAMPLES}
    assert found == {*MESSAGE_TYPES, "head.001.001.02"}


@pytest.mark.parametrize("path", SAMPLES, ids=lambda path: path.stem)
def test_sample_parses_with_run_time_schema_validation(schemas_configured, path):
    parse_message(path.read_bytes())


@pytest.mark.parametrize("path", SAMPLES, ids=lambda path: path.stem)
def test_sample_parses_with_scopay_parser_alone(schemas_unconfigured, path):
    parse_message(path.read_bytes())


def test_cbpr_customer_transfer_maps_amounts_rate_charges_and_addresses():
    message_type, message = read_sample("pacs008_cbpr_customer_transfer.xml")
    (payment,) = message.payments
    assert message_type == "pacs.008.001.08"
    assert (payment.settlement_amount_minor, payment.settlement_currency) == (125_000_000, "RUB")
    assert (payment.instructed_amount_minor, payment.instructed_currency) == (10_000_000, "CNY")
    assert payment.exchange_rate == Decimal("12.5")
    assert payment.charges == ((15_000, "CNY", "ICBKCNBJ"),)
    assert payment.debtor.name == "上海丝路贸易有限公司"
    assert payment.debtor.address.town == "上海"
    assert payment.creditor.address.street == "Тверская улица"
    assert payment.creditor.account == "40702810938000012345"
    assert payment.priority == Priority.HIGH
    assert payment.sender_bic is None  # the instructing agent is the debtor agent
    assert payment.message_id == "ICBKCNBJ20261129001"


def test_t2_batch_applies_group_settlement_date_and_channel():
    message_type, enveloped = read_sample("pacs008_t2_batch_envelope.xml")
    assert isinstance(enveloped, BusinessMessage)
    assert enveloped.header.from_bic == "HSBKKZKX"
    first, second, third = enveloped.document.payments
    assert first.priority == Priority.URGENT
    # 09:30 and 16:00 at +05:00 on 2026-11-29 are 04:30 and 11:00 UTC.
    assert first.earliest_us == 1_795_926_600_000_000
    assert first.latest_us == 1_795_950_000_000_000
    assert first.debtor.account == "KZ86125KZT5004100100"
    assert second.settlement_amount_minor == 25_000_050
    assert second.debtor.address.address_lines == ("Душанбе, кӯчаи Рӯдакӣ 45",)
    assert first.settlement_method == SettlementMethod.GROSS
    assert third.settlement_method == SettlementMethod.NET
    assert third.intermediary_agents == ("CITIKZKA",)


def test_current_pacs008_version_reads_long_street_names_and_instruction_priority():
    _, message = read_sample("pacs008_v13_customer_transfer.xml")
    (payment,) = message.payments
    assert len(payment.creditor.address.street) > 70
    assert payment.priority == Priority.HIGH
    assert payment.settlement_method == SettlementMethod.NET
    assert payment.charge_bearer == ChargeBearer.CREDITOR


def test_institution_transfer_names_institutions_by_bic_and_name():
    message_type, enveloped = read_sample("pacs009_fx_leg_envelope.xml")
    (payment,) = enveloped.document.payments
    assert message_type == "pacs.009.001.08"
    assert (payment.debtor_agent, payment.debtor.name) == ("BKCHCNBJ", "Bank of China")
    assert (payment.creditor_agent, payment.creditor.name) == ("SABRRUMM", "Сбербанк")
    assert payment.purpose == "INTC"


def test_cbpr_rejection_carries_reason_code_and_text():
    _, report = read_sample("pacs002_cbpr_rejection.xml")
    (status,) = report.transactions
    assert status.status == TransactionStatus.REJECTED
    assert (status.reason_code, status.reason_text) == (
        "AM04", "debit account lacks the funds above its floor")
    assert report.instructed_agent == "ICBKCNBJ"


def test_t2_status_takes_the_original_message_from_the_group():
    _, report = read_sample("pacs002_t2_group_status.xml")
    assert report.original_group.status == TransactionStatus.ACCEPTED_SETTLEMENT_COMPLETED
    assert {s.original_message_id for s in report.transactions} == {"HSBK-20261129-0007"}
    assert [s.effective_settlement_date for s in report.transactions] == [date(2026, 11, 29)] * 2


def test_return_names_reason_and_original():
    _, instruction = read_sample("pacs004_return.xml")
    (returned,) = instruction.returns
    assert (returned.reason_code, returned.returned_amount_minor) == ("AC04", 125_000_000)
    assert returned.original_uetr == "8a562c67-ca16-48ba-b074-65581be6f011"


def test_cancellation_request_and_its_rejection():
    _, request = read_sample("camt056_cancellation_request.xml")
    _, resolution = read_sample("camt029_cancellation_rejected.xml")
    (cancellation,) = request.transactions
    (answer,) = resolution.transactions
    assert cancellation.reason_code == "DUPL"
    assert cancellation.case.case_id == resolution.resolved_case.case_id
    assert resolution.confirmation == InvestigationConfirmation.REJECTED_CANCELLATION_REQUEST
    assert (answer.status, answer.reason_code) == (CancellationStatus.REJECTED, "ARDT")


def test_statement_balances_add_up_over_booked_entries():
    _, statement = read_sample("camt053_statement.xml")
    assert statement.opening_balance_minor == 500_000_000
    assert statement.closing_balance_minor == 595_000_000
    assert [e.amount_minor for e in statement.entries] == [125_000_000, -30_000_000, -8_000_000]
    assert statement.entries[2].status == EntryStatus.PENDING
    assert statement.entries[1].booking_date == date(2026, 11, 29)


def test_three_decimal_dinar_notification():
    _, notification = read_sample("camt054_credit_notification.xml")
    (credit,) = notification.entries
    assert (credit.amount_minor, credit.currency) == (12_500_125, "BHD")


def test_header_sent_alongside_its_document():
    message_type, header = read_sample("head001_app_header.xml")
    assert message_type == "head.001.001.02"
    assert header.possible_duplicate
    assert header.message_definition_id == "pacs.008.001.08"
