"""ISO 20022 over real HTTP: post pacs.008 / camt.056, fetch mailbox messages and statements;
every message scopay answers with is valid against the official schema."""

import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx
from lxml import etree

from scopay.api import signing
from scopay.api.app import create_app
from scopay.client import KeyFile, SignedAuth, new_private_key
from scopay.domain.ledger import Transfer
from scopay.domain.payment import Party, Payment, PostalAddress
from scopay.domain.rejection import Rejection
from scopay.engine.runner import EngineRunner
from scopay.iso20022.camt056 import CAMT056_V09, build_camt056
from scopay.iso20022.message import parse_message
from scopay.iso20022.model import (
    CancellationRequest,
    CreditTransferMessage,
    TransactionCancellation,
)
from scopay.iso20022.pacs008 import PACS008_V08, PACS008_V13, build_pacs008
from scopay.iso20022.pacs009 import PACS009_V08, build_pacs009

BANK_A, BANK_B = "DEMACNX0", "DEMBCNX0"
OPERATOR = "SCOPCNX0"
XML = {"content-type": "application/xml"}


def valid(xsd, message_type, data: bytes) -> bool:
    schema = xsd(message_type)
    ok = schema.validate(etree.fromstring(data))
    assert ok, schema.error_log
    return ok


def payment(amount_minor, creditor=BANK_B):
    return Payment(str(uuid.uuid4()), uuid.uuid4().hex[:16], "E2E-" + uuid.uuid4().hex[:8],
                   BANK_A, creditor,
                   Party("Сергей Иванов", address=PostalAddress("RU", "Москва")),
                   Party("王芳", address=PostalAddress("CN", "上海")), amount_minor, "CNY")


def message(*payments):
    return CreditTransferMessage("MSG" + uuid.uuid4().hex[:20],
                                 int(datetime.now(UTC).timestamp()) * 1_000_000, payments)


def test_pacs008_gets_a_pacs002_with_each_transaction_status(live_server, xsd):
    settles, waits, unknown = payment(1_000), payment(99_000_000_000), payment(5, "ZZZZCNX0")
    body = build_pacs008(message(settles, waits, unknown), PACS008_V08)
    with live_server.client(BANK_A) as a:
        answer = a.post("/v1/iso20022", content=body, headers=XML)
        a.post(f"/v1/payments/{waits.uetr}/cancel")
    assert answer.status_code == 200, answer.text
    assert valid(xsd, "pacs.002.001.10", answer.content)
    message_type, report = parse_message(answer.content)
    statuses = {t.original_uetr: (t.status.value, t.reason_code) for t in report.transactions}
    assert statuses == {settles.uetr: ("ACSC", None), waits.uetr: ("PDNG", None),
                        unknown.uetr: ("RJCT", "RC04")}


def test_hostile_message_is_refused_with_ff01_and_changes_nothing(live_server):
    bomb = (b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa">'
            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><Document>&b;</Document>')
    before = len(live_server.engine.payments)
    with live_server.client(BANK_A) as a:
        answer = a.post("/v1/iso20022", content=bomb, headers=XML)
    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith("application/problem+xml")
    assert b"<reason_code>FF01</reason_code>" in answer.content
    assert len(live_server.engine.payments) == before


def test_sending_for_another_bank_is_refused(live_server):
    body = build_pacs008(message(payment(100)), PACS008_V08)
    with live_server.client(BANK_B) as b:
        answer = b.post("/v1/iso20022", content=body, headers=XML)
    assert answer.status_code == 403


def test_creditor_fetches_the_incoming_payment_as_a_pacs008(live_server, xsd):
    paid = payment(2_500)
    with live_server.client(BANK_A) as a, live_server.client(BANK_B) as b:
        a.post("/v1/iso20022", content=build_pacs008(message(paid), PACS008_V08), headers=XML)
        notice = next(n for n in b.get("/v1/mailbox", params={"limit": 500}).json()
                      if n["uetr"] == paid.uetr)
        incoming = b.get(f"/v1/mailbox/{notice['seq']}/message")
        status = next(n for n in a.get("/v1/mailbox", params={"limit": 500}).json()
                      if n["uetr"] == paid.uetr)
        report = a.get(f"/v1/mailbox/{status['seq']}/message")
        foreign = b.get(f"/v1/mailbox/{status['seq']}/message")
    assert valid(xsd, "pacs.008.001.08", incoming.content)
    _, received = parse_message(incoming.content)
    assert received.payments[0].uetr == paid.uetr
    assert received.payments[0].settlement_amount_minor == 2_500
    assert valid(xsd, "pacs.002.001.10", report.content)
    assert foreign.status_code == 404


def forwarded(live_server, body: bytes, uetr: str) -> httpx.Response:
    """BANK_A posts the message; BANK_B fetches the incoming payment of `uetr`."""
    with live_server.client(BANK_A) as a, live_server.client(BANK_B) as b:
        answer = a.post("/v1/iso20022", content=body, headers=XML)
        assert answer.status_code == 200, answer.text
        notice = next(n for n in b.get("/v1/mailbox", params={"limit": 500}).json()
                      if n["uetr"] == uetr and n["kind"] == "incoming_payment")
        return b.get(f"/v1/mailbox/{notice['seq']}/message")


def test_a_pacs008_v13_is_forwarded_as_v13_with_its_long_address(live_server, xsd):
    street = "Улица " + "Б" * 114  # 120 characters: room in .13 (140), none in .08 (70)
    paid = replace(payment(3_300), creditor=Party(
        "王芳", address=PostalAddress("CN", "上海", street=street, building_number="12")))
    incoming = forwarded(live_server, build_pacs008(message(paid), PACS008_V13), paid.uetr)
    assert incoming.status_code == 200, incoming.text
    assert valid(xsd, PACS008_V13, incoming.content)
    message_type, received = parse_message(incoming.content)
    assert message_type == PACS008_V13
    assert received.payments[0].uetr == paid.uetr
    assert received.payments[0].creditor.address.street == street


def test_a_forwarded_payment_is_instructed_to_its_recipient_past_named_intermediaries(
        live_server, xsd):
    """scopay settles on the creditor agent's account: the copy it forwards names the
    creditor agent as instructed agent, not the first intermediary the sender named."""
    paid = replace(payment(3_400), intermediary_agents=("SABRRUMM", "BKCHCNBJ"))
    incoming = forwarded(live_server, build_pacs008(message(paid), PACS008_V08), paid.uetr)
    assert incoming.status_code == 200, incoming.text
    assert valid(xsd, PACS008_V08, incoming.content)
    ns = {"d": "urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08"}
    tx = etree.fromstring(incoming.content).find(".//d:CdtTrfTxInf", ns)
    assert [tx.findtext(f"d:{agent}/d:FinInstnId/d:BICFI", namespaces=ns) for agent in (
        "InstgAgt", "InstdAgt", "IntrmyAgt1")] == [BANK_A, BANK_B, "SABRRUMM"]


def test_a_pacs009_is_forwarded_as_a_pacs009(live_server, xsd):
    transfer = Payment(str(uuid.uuid4()), uuid.uuid4().hex[:16], "E2E-" + uuid.uuid4().hex[:8],
                       BANK_A, BANK_B, Party("Demo Bank A", address=PostalAddress("CN", "北京")),
                       Party("Demo Bank B"), 7_700, "CNY")
    incoming = forwarded(live_server, build_pacs009(message(transfer)), transfer.uetr)
    assert incoming.status_code == 200, incoming.text
    assert valid(xsd, PACS009_V08, incoming.content)
    message_type, received = parse_message(incoming.content)
    assert message_type == PACS009_V08
    got = received.payments[0]
    assert (got.uetr, got.debtor_agent, got.creditor_agent) == (transfer.uetr, BANK_A, BANK_B)
    assert (got.debtor.name, got.creditor.name) == ("Demo Bank A", "Demo Bank B")
    assert got.settlement_amount_minor == 7_700


def test_an_incoming_payment_that_cannot_be_written_is_a_problem_not_a_server_error(
        live_server):
    """A payment entered at the engine with what no pacs.008.001.08 holds (the API refuses
    it at the door): the fetch says so, on every retry, and the notice stays."""
    unwritable = replace(payment(1_100), creditor=Party("王芳", address=PostalAddress(
        "CN", "上海", street="S" * 120)))
    (result,) = live_server.engine.submit_payments(BANK_A, [unwritable],
                                                   time.time_ns() // 1000)
    assert result.status.value == "settled"
    with live_server.client(BANK_B) as b:
        notice = next(n for n in b.get("/v1/mailbox", params={"limit": 500}).json()
                      if n["uetr"] == unwritable.uetr)
        answers = [b.get(f"/v1/mailbox/{notice['seq']}/message") for _ in range(2)]
    for answer in answers:
        assert answer.status_code == 422
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert "cannot be written as pacs.008.001.08" in answer.json()["detail"]


def send_then_cancel(live_server, sent: Payment, *uetrs: str):
    """BANK_A sends the payment in a pacs.008, then asks in a camt.056 to cancel the payments
    of `uetrs`; the answer to the camt.056, and the sent payment as tracked afterwards."""
    request = CancellationRequest(
        "CXL" + uuid.uuid4().hex[:12], BANK_A, BANK_B,
        int(datetime.now(UTC).timestamp()) * 1_000_000,
        tuple(TransactionCancellation("M1", PACS008_V08, "DUPL", original_uetr=uetr)
              for uetr in uetrs))
    with live_server.client(BANK_A) as a:
        a.post("/v1/iso20022", content=build_pacs008(message(sent), PACS008_V08), headers=XML)
        answer = a.post("/v1/iso20022", content=build_camt056(request), headers=XML)
        tracked = a.get(f"/v1/payments/{sent.uetr}").json()
    return answer, tracked


def test_camt056_cancels_a_queued_payment_and_answers_camt029(live_server, xsd):
    waits = payment(98_000_000_000)
    answer, tracked = send_then_cancel(live_server, waits, waits.uetr)
    assert answer.status_code == 200, answer.text
    assert valid(xsd, "camt.029.001.10", answer.content)
    assert tracked["status"] == "cancelled"
    assert tracked["history"][-1]["detail"].startswith(
        f'DUPL: cancelled by its sender {BANK_A} (camt.056 "CXL')
    _, resolution = parse_message(answer.content)
    assert resolution.transactions[0].status.value == "ACCR"
    assert CAMT056_V09 == "camt.056.001.09"
    # resolved when the payment was cancelled, as its history says
    assert resolution.created_at_us == live_server.engine.payment(waits.uetr).history[-1].at_us


def test_camt056_sent_again_is_answered_as_the_first_time_and_changes_nothing(live_server):
    """A bank that got no answer sends its camt.056 again: it learns the payment is cancelled
    as it asked (ACCR, resolved when it was cancelled), not that it is no longer queued; a
    cancellation asked for another reason is another request, refused as before."""
    waits = payment(96_000_000_000)
    request = CancellationRequest(
        "CXL" + uuid.uuid4().hex[:12], BANK_A, BANK_B,
        int(datetime.now(UTC).timestamp()) * 1_000_000,
        (TransactionCancellation("M1", PACS008_V08, "DUPL", original_uetr=waits.uetr),))
    other = replace(request, transactions=(replace(request.transactions[0],
                                                   reason_code="CUST"),))
    with live_server.client(BANK_A) as a:
        a.post("/v1/iso20022", content=build_pacs008(message(waits), PACS008_V08), headers=XML)
        first = a.post("/v1/iso20022", content=build_camt056(request), headers=XML)
        history = live_server.engine.payment(waits.uetr).history
        told = [n for n in a.get("/v1/mailbox", params={"limit": 500}).json()
                if n["uetr"] == waits.uetr]
        assert told  # its notices are within the page compared
        again = a.post("/v1/iso20022", content=build_camt056(request), headers=XML)
        refused = a.post("/v1/iso20022", content=build_camt056(other), headers=XML)
        assert [n for n in a.get("/v1/mailbox", params={"limit": 500}).json()
                if n["uetr"] == waits.uetr] == told
    assert first.status_code == again.status_code == refused.status_code == 200
    assert again.content == first.content
    assert parse_message(first.content)[1].transactions[0].status.value == "ACCR"
    assert [(t.status.value, t.reason_code)
            for t in parse_message(refused.content)[1].transactions] == [("RJCR", "NOAS")]
    assert live_server.engine.payment(waits.uetr).history == history


def test_only_the_same_camt056_is_a_resend_and_its_camt029_dates_the_last_cancellation(
        live_server):
    """Another camt.056 for the same reason is another request (the payment is no longer
    queued: NOAS); the same one sent again with a transaction more cancels that one now, and
    its camt.029 is dated then, not at the first sending's cancellation."""
    first, second = payment(95_000_000_000), payment(94_000_000_000)
    now = int(datetime.now(UTC).timestamp()) * 1_000_000

    def camt056(assignment_id: str, *waiting: Payment) -> bytes:
        return build_camt056(CancellationRequest(assignment_id, BANK_A, BANK_B, now, tuple(
            TransactionCancellation("M1", PACS008_V08, "DUPL", original_uetr=p.uetr)
            for p in waiting)))

    assignment = "CXL" + uuid.uuid4().hex[:12]
    with live_server.client(BANK_A) as a:
        for waiting in (first, second):
            a.post("/v1/iso20022", content=build_pacs008(message(waiting), PACS008_V08),
                   headers=XML)
        a.post("/v1/iso20022", content=camt056(assignment, first), headers=XML)
        other = a.post("/v1/iso20022", content=camt056("CXL" + uuid.uuid4().hex[:12], first),
                       headers=XML)
        both = a.post("/v1/iso20022", content=camt056(assignment, first, second),
                      headers=XML)
    assert [(t.status.value, t.reason_code)
            for t in parse_message(other.content)[1].transactions] == [("RJCR", "NOAS")]
    resolution = parse_message(both.content)[1]
    assert [t.status.value for t in resolution.transactions] == ["ACCR", "ACCR"]
    cancelled_at = [live_server.engine.payment(p.uetr).history[-1].at_us
                    for p in (first, second)]
    assert cancelled_at[0] < cancelled_at[1] == resolution.created_at_us


def test_camt056_from_the_operator_is_recorded_as_the_operators_with_its_reason(live_server):
    waits = payment(97_000_000_000)
    request = CancellationRequest(
        "CXL" + uuid.uuid4().hex[:12], OPERATOR, BANK_A,
        int(datetime.now(UTC).timestamp()) * 1_000_000,
        (TransactionCancellation("M1", PACS008_V08, "FRAD", original_uetr=waits.uetr,
                                 reason_text="reported by the debtor"),))
    with live_server.client(BANK_A) as a, live_server.client(OPERATOR) as operator:
        a.post("/v1/iso20022", content=build_pacs008(message(waits), PACS008_V08), headers=XML)
        answer = operator.post("/v1/iso20022", content=build_camt056(request), headers=XML)
        tracked = a.get(f"/v1/payments/{waits.uetr}").json()
    assert answer.status_code == 200, answer.text
    assert tracked["status"] == "cancelled"
    assert tracked["history"][-1]["detail"] == (
        f'FRAD: cancelled by the operator (camt.056 "{request.assignment_id}"): reported by '
        "the debtor")


def test_camt056_for_a_settled_or_unknown_payment_is_refused_with_its_reason(live_server, xsd):
    settled = payment(1_000)
    answer, tracked = send_then_cancel(live_server, settled, settled.uetr, str(uuid.uuid4()))
    assert answer.status_code == 200, answer.text
    assert valid(xsd, "camt.029.001.10", answer.content)
    assert tracked["status"] == "settled"
    _, resolution = parse_message(answer.content)
    assert [(t.status.value, t.reason_code) for t in resolution.transactions] == [
        ("RJCR", "ARDT"), ("RJCR", "NOOR")]


def test_statement_is_a_valid_camt053_that_adds_up(live_server, xsd):
    account = live_server.account_of(BANK_A, "CNY")
    today = datetime.now(UTC).date().isoformat()
    with live_server.client(BANK_A) as a:
        answer = a.get(f"/v1/accounts/{account}/statement", params={"day": today})
    assert answer.status_code == 200, answer.text
    assert valid(xsd, "camt.053.001.08", answer.content)
    _, statement = parse_message(answer.content)
    assert statement.opening_balance_minor + sum(e.amount_minor for e in statement.entries) == (
        statement.closing_balance_minor)
    assert statement.closing_balance_minor == live_server.engine.balance(account).posted_minor


def test_statements_of_successive_days_chain_and_match_the_journal(engine, network, serve_app):
    """Statements are computed back from the balance now over the entries since the day
    began; checked here against a fold of the whole journal, day by day."""
    icbk, aboc = "ICBKCNBJ", "ABOCCNBJ"
    account = next(a.id for a in network.accounts if a.owner_bic == icbk and a.currency == "CNY")
    other = next(a.id for a in network.accounts if a.owner_bic == aboc and a.currency == "CNY")
    day_us = 86_400_000_000
    first_day = network.funded_at_us // day_us + 1
    for n, (day, amount) in enumerate([(0, 1_000), (0, 2_500), (1, 700), (3, 4_000), (3, 1)]):
        at = (first_day + day) * day_us + 1 + n
        debit, credit = (account, other) if n % 2 == 0 else (other, account)
        (outcome,) = engine.submit([Transfer(f"st-{n}", debit, credit, amount, "CNY")], at)
        assert outcome.rejection is None
    key = KeyFile(signing.new_key_id(), icbk, new_private_key())
    engine.register_key(key.key_id, icbk, key.public_key, (first_day + 4) * day_us)
    runner = EngineRunner(engine, lambda: time.time_ns() // 1000).start()
    url = serve_app(create_app(runner))

    def posted_before(us):
        total = 0
        for _, entry in engine.store.journal():
            t = entry.transfer
            if entry.timestamp_us < us and account in (t.debit_account_id, t.credit_account_id):
                total += -t.amount_minor if t.debit_account_id == account else t.amount_minor
        return total

    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    with httpx.Client(base_url=url, auth=SignedAuth(key)) as client:
        for day in range(first_day - 1, first_day + 5):
            date_text = (epoch + timedelta(days=day)).date().isoformat()
            answer = client.get(f"/v1/accounts/{account}/statement", params={"day": date_text})
            assert answer.status_code == 200, answer.text
            _, statement = parse_message(answer.content)
            assert statement.opening_balance_minor == posted_before(day * day_us)
            assert statement.closing_balance_minor == posted_before((day + 1) * day_us)
            assert statement.opening_balance_minor + sum(
                e.amount_minor for e in statement.entries) == statement.closing_balance_minor
    runner.stop()


def test_balances_stay_within_what_an_iso_amount_holds_so_statements_are_written(
        engine, network, serve_app, xsd):
    """The ledger keeps every balance within the 18 digits of an ISO amount: the movement
    that would take one past is refused, and the day's statement is written."""
    most = 10**18 - 1  # 9999999999999999.99 CNY
    (filled,) = engine.submit([Transfer("most-0", network.cny_issuance, network.icbk_cny,
                                        most - network.funding_minor, "CNY")],
                              network.funded_at_us + 1)
    (over,) = engine.submit([Transfer("most-1", network.cny_issuance, network.icbk_cny, 1,
                                      "CNY")], network.funded_at_us + 2)
    assert filled.rejection is None
    assert over.rejection == Rejection.OVERFLOWS_BALANCE
    key = KeyFile(signing.new_key_id(), "ICBKCNBJ", new_private_key())
    engine.register_key(key.key_id, "ICBKCNBJ", key.public_key, network.funded_at_us + 3)
    runner = EngineRunner(engine, lambda: time.time_ns() // 1000).start()
    url = serve_app(create_app(runner))
    day = (datetime(1970, 1, 1, tzinfo=UTC)
           + timedelta(microseconds=network.funded_at_us)).date().isoformat()
    with httpx.Client(base_url=url, auth=SignedAuth(key)) as client:
        statement = client.get(f"/v1/accounts/{network.icbk_cny}/statement",
                               params={"day": day})
    runner.stop()
    assert statement.status_code == 200, statement.text
    assert valid(xsd, "camt.053.001.08", statement.content)
    assert parse_message(statement.content)[1].closing_balance_minor == most


def test_a_status_report_that_refuses_every_transaction_is_dated_now(live_server):
    first = payment(1_000)
    again = replace(first, uetr=str(uuid.uuid4()))  # a new UETR under a used instruction id
    with live_server.client(BANK_A) as bank:
        assert bank.post("/v1/iso20022", content=build_pacs008(message(first)),
                         headers=XML).status_code == 200
        asked_us = time.time_ns() // 1000
        answer = bank.post("/v1/iso20022", content=build_pacs008(message(again)), headers=XML)
    assert answer.status_code == 200, answer.text
    _, report = parse_message(answer.content)
    assert [t.status.value for t in report.transactions] == ["RJCT"]
    assert report.created_at_us >= asked_us - 1_000_000  # CreDtTm to the second


def test_an_oversize_message_is_refused_in_xml_with_ff01_and_nothing_is_read(live_server):
    from scopay.api.security import REQUEST_BYTES_MAX

    oversize = b"<Document>" + b" " * REQUEST_BYTES_MAX + b"</Document>"
    journal_before = live_server.engine.journal_count
    with live_server.client(BANK_A) as bank:
        answer = bank.post("/v1/iso20022", content=oversize, headers=XML)
    assert answer.status_code == 413
    assert answer.headers["content-type"] == "application/problem+xml"
    assert etree.fromstring(answer.content).findtext("{urn:ietf:rfc:7807}reason_code") == "FF01"
    assert live_server.engine.journal_count == journal_before


def test_a_message_id_used_again_for_another_message_is_refused_as_a_duplicate(live_server):
    first, later = message(payment(1_00)), message(payment(2_00))
    reused = replace(later, message_id=first.message_id)
    with live_server.client(BANK_A) as a:
        assert a.post("/v1/iso20022", content=build_pacs008(first, PACS008_V08),
                      headers=XML).status_code == 200
        journal_before = live_server.engine.journal_count
        answer = a.post("/v1/iso20022", content=build_pacs008(reused, PACS008_V08),
                        headers=XML)
        again = a.post("/v1/iso20022", content=build_pacs008(first, PACS008_V08), headers=XML)
    _, report = parse_message(answer.content)
    assert [(t.status.value, t.reason_code) for t in report.transactions] == [("RJCT", "DUPL")]
    assert live_server.engine.journal_count == journal_before
    assert later.payments[0].uetr not in live_server.engine.payments
    _, replayed = parse_message(again.content)  # the same message again: its outcome
    assert [t.status.value for t in replayed.transactions] == ["ACSC"]


def test_a_message_with_a_business_header_is_answered_with_one_and_the_mailbox_gives_one(
        live_server, xsd):
    from scopay.iso20022.head001 import build_envelope
    from scopay.iso20022.model import BusinessAppHeader, BusinessMessage

    sent = message(payment(3_00))
    header = BusinessAppHeader(BANK_A, "SCOPCNX0", "BIZ" + uuid.uuid4().hex[:20],
                               PACS008_V08, sent.created_at_us, "swift.cbprplus.02")
    with live_server.client(BANK_A) as a, live_server.client(BANK_B) as b:
        answer = a.post("/v1/iso20022", content=build_envelope(
            header, build_pacs008(sent, PACS008_V08)), headers=XML)
        seq = next(n["seq"] for n in b.get("/v1/mailbox", params={"limit": 500}).json()
                   if n["uetr"] == sent.payments[0].uetr and n["kind"] == "incoming_payment")
        bare = b.get(f"/v1/mailbox/{seq}/message")
        headed = b.get(f"/v1/mailbox/{seq}/message", params={"head": "true"})
    assert answer.status_code == 200, answer.text
    message_type, enveloped = parse_message(answer.content)
    assert message_type == "pacs.002.001.10" and isinstance(enveloped, BusinessMessage)
    replied = enveloped.header
    assert (replied.from_bic, replied.to_bic, replied.message_definition_id) == (
        OPERATOR, BANK_A, "pacs.002.001.10")
    assert replied.business_service == "swift.cbprplus.02"
    assert [t.status.value for t in enveloped.document.transactions] == ["ACSC"]
    for data in (answer.content, headed.content):
        header_element, document = etree.fromstring(data).getchildren()
        assert valid(xsd, "head.001.001.02", etree.tostring(header_element))
    _, forwarded = parse_message(headed.content)
    assert (forwarded.header.to_bic, forwarded.header.message_definition_id) == (
        BANK_B, PACS008_V08)
    assert forwarded.document == parse_message(bare.content)[1]


def test_a_forwarded_payment_carries_the_priority_and_times_it_settled_with(xsd):
    """The queue may change a payment's priority and times before it settles: the copy its
    creditor agent gets says what its tracker says, not what was first sent."""
    from scopay.api.iso import _forwarded
    from scopay.domain.payment import PaymentRecord, Priority

    sent = payment(4_100)
    at = int(datetime(2026, 11, 30, 9, tzinfo=UTC).timestamp()) * 1_000_000
    record = PaymentRecord(sent, BANK_A, priority=Priority.URGENT, latest_us=at + 60_000_000,
                           reject_by_us=at + 120_000_000)
    data = _forwarded(7, at, record, BANK_B)
    assert valid(xsd, PACS008_V08, data)
    (got,) = parse_message(data)[1].payments
    assert (got.priority, got.latest_us, got.reject_by_us) == (
        Priority.URGENT, at + 60_000_000, at + 120_000_000)
    assert sent.priority == Priority.NORMAL and sent.latest_us is None


def test_a_message_whose_header_names_another_receiver_than_scopay_is_refused(live_server):
    """A head.001's To names scopay's operator or a currency's settlement agent (the central
    bank whose ledger scopay keeps); one addressed to a bank is not scopay's to act on."""
    from scopay.iso20022.head001 import build_envelope
    from scopay.iso20022.model import BusinessAppHeader

    answers = {}
    for receiver in (BANK_B, "PBOCCNBJ"):
        sent = message(payment(2_00))
        header = BusinessAppHeader(BANK_A, receiver, "BIZ" + uuid.uuid4().hex[:20],
                                   PACS008_V08, sent.created_at_us)
        with live_server.client(BANK_A) as a:
            answers[receiver] = a.post("/v1/iso20022", content=build_envelope(
                header, build_pacs008(sent, PACS008_V08)), headers=XML)
        settled = live_server.engine.payment(sent.payments[0].uetr)
        answers[receiver] = (answers[receiver], settled)
    refused, nothing = answers[BANK_B]
    assert refused.status_code == 422 and b"AG01" in refused.content and nothing is None
    accepted, paid = answers["PBOCCNBJ"]
    assert accepted.status_code == 200, accepted.text
    assert paid is not None and paid.status.value == "settled"


def test_no_mailbox_message_shares_its_id_with_an_answer_whatever_ids_senders_choose(
        live_server):
    """A bank whose own message ids are numbers (as many are) gets answers SCOPAY<its id>;
    the mailbox messages it fetches are MBX<its BIC>/<seq>, in the document and in the
    header."""
    from scopay.iso20022.head001 import build_envelope
    from scopay.iso20022.model import BusinessAppHeader

    paid = payment(1_50)
    with live_server.client(BANK_A) as a, live_server.client(BANK_B) as b:
        assert a.post("/v1/iso20022", content=build_pacs008(message(paid), PACS008_V08),
                      headers=XML).status_code == 200
        seq = next(n["seq"] for n in b.get("/v1/mailbox", params={"limit": 500}).json()
                   if n["uetr"] == paid.uetr and n["kind"] == "incoming_payment")
        back = replace(payment(1_10), debtor_agent=BANK_B, creditor_agent=BANK_A)
        sent = CreditTransferMessage(str(seq), int(datetime.now(UTC).timestamp()) * 1_000_000,
                                     (back,))
        header = BusinessAppHeader(BANK_B, OPERATOR, f"MBX{BANK_B}/{seq}", PACS008_V08,
                                   sent.created_at_us)
        answer = b.post("/v1/iso20022", content=build_envelope(
            header, build_pacs008(sent, PACS008_V08)), headers=XML)
        fetched = b.get(f"/v1/mailbox/{seq}/message", params={"head": "true"})
    assert answer.status_code == 200 and fetched.status_code == 200, answer.text
    answered, forwarded = parse_message(answer.content)[1], parse_message(fetched.content)[1]
    assert answered.document.message_id == f"SCOPAY{seq}"
    assert answered.header.business_message_id == f"SCOPAYMBX{BANK_B}/{seq}"
    assert (forwarded.document.message_id == forwarded.header.business_message_id
            == f"MBX{BANK_B}/{seq}")


def test_messages_to_two_banks_under_one_mailbox_number_have_two_ids(live_server):
    """Mailbox numbers run per participant, so two banks' messages share numbers; scopay, the
    one sender of both, still gives each message its own MsgId and BizMsgIdr."""
    ids = {}
    for bic in (BANK_A, BANK_B):
        with live_server.client(bic) as client:
            fetched = client.get("/v1/mailbox/1/message", params={"head": "true"})
        assert fetched.status_code == 200, fetched.text
        header = parse_message(fetched.content)[1].header
        ids[bic] = header.business_message_id
    assert ids == {BANK_A: f"MBX{BANK_A}/1", BANK_B: f"MBX{BANK_B}/1"}
    # a BIC's branch may be digits: the / keeps a BIC8's message 1001 apart from the
    # message 1 of a BIC11 that begins like it
    from scopay.api.iso import _mailbox_id
    assert _mailbox_id("DEMACNX0", 1001) != _mailbox_id("DEMACNX0100", 1)
    assert len(_mailbox_id("DEMACNX0100", 2**63 - 1)) <= 35
