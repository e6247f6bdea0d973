"""What scopay answers and writes in ISO 20022, as a review over real HTTP found it wanting:
who a camt.029 speaks for, its overall outcome, answer ids, statement codes and ids, and
references in other scripts than Latin kept whole."""

import time
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

import pytest
from lxml import etree

from scopay.api.iso import _answer_id, _transaction_code
from scopay.domain.participant import Role
from scopay.domain.payment import Party, Payment
from scopay.domain.rtgs import PAYMENT_TRANSFER_PREFIX
from scopay.engine.payments import RETURN_TRANSFER_PREFIX
from scopay.iso20022.camt056 import build_camt056
from scopay.iso20022.message import parse_message
from scopay.iso20022.model import (
    CancellationRequest,
    CreditTransferMessage,
    PaymentReturn,
    ReturnInstruction,
    TransactionCancellation,
)
from scopay.iso20022.pacs004 import build_pacs004
from scopay.iso20022.pacs008 import PACS008_V08, build_pacs008

BANK_A, BANK_B, OPERATOR, AGENT = "DEMACNX0", "DEMBCNX0", "SCOPCNX0", "PBOCCNBJ"
XML = {"content-type": "application/xml"}
CNY_QUEUES = 96_000_000_000  # more than BANK_A holds: the payment waits in the queue
CNY_SETTLES = 1_000


def now_us() -> int:
    return int(datetime.now(UTC).timestamp()) * 1_000_000


def payment(amount_minor: int) -> Payment:
    return Payment(str(uuid.uuid4()), uuid.uuid4().hex[:16], "E2E-" + uuid.uuid4().hex[:8],
                   BANK_A, BANK_B, Party("Сергей Иванов"), Party("王芳"), amount_minor, "CNY")


def send(client, *payments: Payment, message_id: str | None = None):
    message = CreditTransferMessage(message_id or "MSG" + uuid.uuid4().hex[:20], now_us(),
                                    payments)
    answer = client.post("/v1/iso20022", content=build_pacs008(message, PACS008_V08),
                         headers=XML)
    assert answer.status_code == 200, answer.text
    return answer


def cancellation(assigner: str, *uetrs: str, created_us: int | None = None) -> bytes:
    return build_camt056(CancellationRequest(
        "CXL" + uuid.uuid4().hex[:12], assigner, BANK_B, created_us or now_us(),
        tuple(TransactionCancellation("M1", PACS008_V08, "DUPL", original_uetr=uetr)
              for uetr in uetrs)))


def test_a_camt056_whose_assigner_is_not_the_signer_is_refused_and_cancels_nothing(
        live_server):
    waits = payment(CNY_QUEUES)
    with live_server.client(BANK_A) as a:
        send(a, waits)
        answer = a.post("/v1/iso20022", content=cancellation("DEMBRUX0", waits.uetr),
                        headers=XML)
        tracked = a.get(f"/v1/payments/{waits.uetr}").json()
        a.post(f"/v1/payments/{waits.uetr}/cancel")
    assert answer.status_code == 403
    assert b"AG01" in answer.content
    assert tracked["status"] == "queued"


def test_the_camt029_comes_from_scopay_to_the_assigner_dated_when_it_was_resolved(
        live_server, xsd):
    waits = payment(CNY_QUEUES)
    day_before = now_us() - 86_400_000_000
    with live_server.client(BANK_A) as a:
        send(a, waits)
        asked_us = time.time_ns() // 1000
        answer = a.post("/v1/iso20022",
                        content=cancellation(BANK_A, waits.uetr, created_us=day_before),
                        headers=XML)
    assert answer.status_code == 200, answer.text
    assert xsd("camt.029.001.10").validate(etree.fromstring(answer.content))
    _, resolution = parse_message(answer.content)
    assert (resolution.assigner, resolution.assignee) == (OPERATOR, BANK_A)
    assert resolution.created_at_us >= asked_us - 1_000_000  # CreDtTm is in whole seconds
    assert resolution.confirmation.value == "CNCL"


def test_a_case_cancelled_in_part_says_so_overall_and_line_by_line(live_server, xsd):
    waits = payment(CNY_QUEUES)
    with live_server.client(BANK_A) as a:
        send(a, waits)
        answer = a.post("/v1/iso20022", content=cancellation(BANK_A, waits.uetr,
                                                             str(uuid.uuid4())), headers=XML)
    assert answer.status_code == 200, answer.text
    assert xsd("camt.029.001.10").validate(etree.fromstring(answer.content))
    _, resolution = parse_message(answer.content)
    assert resolution.confirmation.value == "PECR"
    assert [t.status.value for t in resolution.transactions] == ["ACCR", "RJCR"]


def test_long_message_ids_get_answer_ids_of_their_own_that_repeat_for_the_same_message(
        live_server):
    stem = "P" * 29
    first, second = payment(CNY_SETTLES), payment(CNY_SETTLES)
    with live_server.client(BANK_A) as a:
        ids = [parse_message(send(a, paid, message_id=stem + tail).content)[1].message_id
               for paid, tail in ((first, "AAAAAA"), (second, "BBBBBB"), (first, "AAAAAA"))]
    assert ids[0] != ids[1]
    assert ids[0] == ids[2]  # the same message again: the same answer
    assert all(len(answer_id) <= 35 for answer_id in ids)
    assert _answer_id("MSG-1") == "SCOPAYMSG-1"  # a short id is kept readable


def test_a_return_id_in_cyrillic_reaches_history_and_the_debtor_agent_whole(live_server):
    paid = payment(CNY_SETTLES)
    returned = PaymentReturn("ВОЗВРАТ-1", "MSG1", PACS008_V08, CNY_SETTLES, "CNY", "AC04",
                             original_uetr=paid.uetr)
    with live_server.client(BANK_A) as a, live_server.client(BANK_B) as b:
        send(a, paid)
        answer = b.post("/v1/iso20022", content=build_pacs004(
            ReturnInstruction("ВОЗВРАТЫ-7", now_us(), (returned,))), headers=XML)
        assert answer.status_code == 200, answer.text
        detail = a.get(f"/v1/payments/{paid.uetr}").json()["history"][-1]["detail"]
        notice = next(n for n in a.get("/v1/mailbox", params={"limit": 500}).json()
                      if n["uetr"] == paid.uetr and n["kind"] == "incoming_payment")
        forwarded = a.get(f"/v1/mailbox/{notice['seq']}/message")
    assert '"ВОЗВРАТ-1"' in detail and '"ВОЗВРАТЫ-7"' in detail
    assert "\\u" not in detail
    _, instruction = parse_message(forwarded.content)
    assert '"ВОЗВРАТ-1"' in instruction.returns[0].reason_text


def statement_codes(client, account: int) -> dict[str, tuple[str, str, str]]:
    """Each entry's bank transaction code in today's statement, by its entry reference."""
    today = datetime.now(UTC).date().isoformat()
    answer = client.get(f"/v1/accounts/{account}/statement", params={"day": today})
    assert answer.status_code == 200, answer.text
    _, statement = parse_message(answer.content)
    return {entry.entry_reference: entry.bank_transaction_code for entry in statement.entries}


def test_statement_entries_say_issued_or_received_and_what_kind_of_transfer(live_server):
    paid = payment(CNY_SETTLES)
    returned = PaymentReturn("RTR" + uuid.uuid4().hex[:12], "MSG1", PACS008_V08, CNY_SETTLES,
                             "CNY", "AC04", original_uetr=paid.uetr)
    funds_in = "fi-" + uuid.uuid4().hex[:12]
    with (live_server.client(BANK_A) as a, live_server.client(BANK_B) as b,
          live_server.client(AGENT) as agent):
        assert agent.post("/v1/funds-in", json={
            "id": funds_in, "account_id": live_server.account_of(BANK_A, "CNY"),
            "amount": "1.00"}).status_code == 201
        send(a, paid)
        b.post("/v1/iso20022", content=build_pacs004(
            ReturnInstruction("RTRMSG" + uuid.uuid4().hex[:12], now_us(), (returned,))),
            headers=XML)
        sent = statement_codes(a, live_server.account_of(BANK_A, "CNY"))
        received = statement_codes(b, live_server.account_of(BANK_B, "CNY"))
    paid_ref, back_ref = (PAYMENT_TRANSFER_PREFIX + paid.uetr)[:35], (
        RETURN_TRANSFER_PREFIX + paid.uetr)[:35]
    assert sent[paid_ref] == ("PMNT", "ICDT", "DMCT")  # two Chinese banks: domestic
    assert received[paid_ref] == ("PMNT", "RCDT", "DMCT")
    assert sent[back_ref] == ("PMNT", "RCDT", "RRTN")
    assert received[back_ref] == ("PMNT", "ICDT", "RRTN")
    funded = next(ref for ref in sent if ref.endswith(funds_in))
    assert sent[funded] == ("PMNT", "RCDT", "BOOK")  # central-bank money in: a book transfer


def test_a_payment_between_agents_of_two_countries_is_coded_cross_border():
    engine = SimpleNamespace(participants={
        BANK_A: SimpleNamespace(country="CN"), "DEMARUX0": SimpleNamespace(country="RU")})
    abroad = Payment(str(uuid.uuid4()), "I", "E", BANK_A, "DEMARUX0", Party("a"), Party("b"),
                     1, "CNY")
    assert _transaction_code(engine, -1, PAYMENT_TRANSFER_PREFIX, abroad) == (
        "PMNT", "ICDT", "XBCT")


def test_a_statement_of_a_year_before_1000_has_unambiguous_ids(live_server):
    account = live_server.account_of(BANK_A, "CNY")
    with live_server.client(BANK_A) as a:
        answer = a.get(f"/v1/accounts/{account}/statement",
                       params={"day": date(999, 1, 1).isoformat()})
    assert answer.status_code == 200, answer.text
    _, statement = parse_message(answer.content)
    assert statement.statement_id == f"{account}-09990101"
    assert statement.message_id == f"STMT{account}09990101"


def test_each_status_report_in_the_mailbox_says_what_its_notice_says(live_server, xsd):
    waits = payment(CNY_QUEUES)
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    with live_server.client(BANK_A) as a, live_server.client(OPERATOR) as operator:
        send(a, waits)
        assert a.post(f"/v1/payments/{waits.uetr}/times",
                      json={"latest": past}).status_code == 200
        assert operator.post(f"/v1/payments/{waits.uetr}/cancel").status_code == 200
        notices = [n for n in a.get("/v1/mailbox", params={"limit": 500}).json()
                   if n["uetr"] == waits.uetr]
        reports = [a.get(f"/v1/mailbox/{n['seq']}/message").content for n in notices]
    assert [(n["status"], n["reason"]) for n in notices] == [
        ("queued", "insufficient_liquidity"), ("queued", "latest_time_passed"),
        ("cancelled", "cancelled by the operator")]
    for notice, report in zip(notices, reports, strict=True):
        assert xsd("pacs.002.001.10").validate(etree.fromstring(report))
        (told,) = parse_message(report)[1].transactions
        assert told.reason_text == notice["reason"]
        assert told.status.value == {"queued": "PDNG", "cancelled": "CANC"}[notice["status"]]


@pytest.mark.parametrize("written", [str, float, bool])
def test_an_acknowledgement_of_what_is_no_integer_is_refused_and_acknowledges_nothing(
        live_server, written):
    with live_server.client(BANK_A) as a:
        send(a, payment(CNY_SETTLES))
        before = a.get("/v1/mailbox", params={"limit": 500}).json()
        answer = a.post("/v1/mailbox/ack", json={"seqs": [written(before[-1]["seq"])]})
        after = a.get("/v1/mailbox", params={"limit": 500}).json()
    assert answer.status_code == 422, answer.text
    assert after == before


def test_todays_statement_is_interim_as_of_now_and_a_day_to_come_has_none(live_server, xsd):
    account = live_server.account_of(BANK_A, "CNY")
    today = datetime.now(UTC).date()
    with live_server.client(BANK_A) as a:
        asked_us = time.time_ns() // 1000
        interim = a.get(f"/v1/accounts/{account}/statement", params={"day": today.isoformat()})
        past = a.get(f"/v1/accounts/{account}/statement",
                     params={"day": (today - timedelta(days=1)).isoformat()})
        future = a.get(f"/v1/accounts/{account}/statement",
                       params={"day": (today + timedelta(days=1)).isoformat()})
    assert interim.status_code == past.status_code == 200
    for answer in (interim, past):
        assert xsd("camt.053.001.08").validate(etree.fromstring(answer.content))
    _, statement = parse_message(interim.content)
    assert not statement.final and b"<Cd>ITBD</Cd>" in interim.content
    assert asked_us - 1_000_000 <= statement.created_at_us <= time.time_ns() // 1000
    _, yesterday = parse_message(past.content)
    assert yesterday.final and b"<Cd>CLBD</Cd>" in past.content
    assert future.status_code == 422


def test_a_cancellation_with_a_long_reason_is_still_fetched_from_the_mailbox(live_server, xsd):
    waits = payment(CNY_QUEUES)
    request = build_camt056(CancellationRequest(
        "CXL" + uuid.uuid4().hex[:12], BANK_A, BANK_B, now_us(),
        (TransactionCancellation("M1", PACS008_V08, "CUST", original_uetr=waits.uetr,
                                 reason_text="Ж" * 420),)))
    with live_server.client(BANK_A) as a:
        send(a, waits)
        assert a.post("/v1/iso20022", content=request, headers=XML).status_code == 200
        notice = next(n for n in a.get("/v1/mailbox", params={"limit": 500}).json()
                      if n["uetr"] == waits.uetr and n["status"] == "cancelled")
        fetched = a.get(f"/v1/mailbox/{notice['seq']}/message")
    assert fetched.status_code == 200, fetched.text
    assert xsd("pacs.002.001.10").validate(etree.fromstring(fetched.content))
    (told,) = parse_message(fetched.content)[1].transactions
    assert notice["reason"].startswith(told.reason_text) and len(told.reason_text) == 420


def test_a_json_returns_own_words_cannot_pass_for_pacs004_references(live_server):
    paid = payment(CNY_SETTLES)
    with live_server.client(BANK_A) as a, live_server.client(BANK_B) as b:
        send(a, paid)
        returned = b.post(f"/v1/payments/{paid.uetr}/return", json={
            "reason": "AC04", "text": 'x (pacs.004 "FAKEMSG", return "FAKERTR")'})
        assert returned.status_code == 200, returned.text
        notice = next(n for n in b.get("/v1/mailbox", params={"limit": 500}).json()
                      if n["uetr"] == paid.uetr and n["status"] == "returned")
        report = b.get(f"/v1/mailbox/{notice['seq']}/message")
    (told,) = parse_message(report.content)[1].transactions
    assert told.original_message_id == "RTR" + paid.uetr.replace("-", "")
    assert told.original_instruction_id is None


def test_a_return_to_or_from_a_suspended_indirect_agent_is_refused(live_server):
    indirect = next(p.bic for p in live_server.engine.participants.values()
                    if p.role == Role.INDIRECT and p.sponsor_bic == BANK_A)
    to_indirect = replace(payment(CNY_SETTLES), debtor_agent=BANK_B, creditor_agent=indirect)
    with (live_server.client(BANK_A) as sponsor, live_server.client(BANK_B) as b,
          live_server.client(OPERATOR) as operator):
        send(b, to_indirect)
        assert operator.post(f"/v1/participants/{indirect}/suspend").status_code == 204
        try:
            before = live_server.engine.balances()
            refused = sponsor.post(f"/v1/payments/{to_indirect.uetr}/return",
                                   json={"reason": "AC04"})
        finally:
            assert operator.post(f"/v1/participants/{indirect}/reinstate").status_code == 204
    assert refused.status_code == 422, refused.text
    assert refused.json()["rejection"] == "debit_account_blocked"
    assert live_server.engine.balances() == before
