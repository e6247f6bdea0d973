"""Returns (pacs.004) over real HTTP: the creditor agent of a settled payment, or the operator,
sends it back whole; the debtor agent gets the pacs.004, the returner a pacs.002; anyone else
gets the answer a missing payment gets, and nothing moves twice."""

import time
import uuid
from datetime import UTC, datetime

import httpx
from lxml import etree

from held_commit import fail_next_commit
from scopay.domain.ledger import Transfer
from scopay.domain.payment import Party, Payment, PostalAddress
from scopay.domain.rejection import Rejection
from scopay.engine.payments import ReturnRequest
from scopay.iso20022.message import parse_message
from scopay.iso20022.model import CreditTransferMessage, PaymentReturn, ReturnInstruction
from scopay.iso20022.pacs004 import PACS004_V09, build_pacs004
from scopay.iso20022.pacs008 import PACS008_V08, build_pacs008

BANK_A, BANK_B, OPERATOR = "DEMACNX0", "DEMBCNX0", "SCOPCNX0"
STRANGER, AGENT, AUDITOR = "DEMARUX0", "PBOCCNBJ", "OVSTCNX0"
XML = {"content-type": "application/xml"}


def now_us() -> int:
    return int(datetime.now(UTC).timestamp()) * 1_000_000


def valid(xsd, message_type, data: bytes) -> bool:
    schema = xsd(message_type)
    ok = schema.validate(etree.fromstring(data))
    assert ok, schema.error_log
    return ok


def pay(live_server, amount_minor: int) -> Payment:
    """BANK_A pays BANK_B in a pacs.008; the payment as sent."""
    return pay_in_message(live_server, amount_minor)[0]


def pay_in_message(live_server, amount_minor: int) -> tuple[Payment, bytes]:
    """The payment, and the pacs.008 it was sent in."""
    paid = Payment(str(uuid.uuid4()), uuid.uuid4().hex[:16], "E2E-" + uuid.uuid4().hex[:8],
                   BANK_A, BANK_B, Party("Сергей Иванов", address=PostalAddress("RU", "Москва")),
                   Party("王芳", address=PostalAddress("CN", "上海")), amount_minor, "CNY")
    body = build_pacs008(CreditTransferMessage("MSG" + uuid.uuid4().hex[:20], now_us(),
                                               (paid,)), PACS008_V08)
    with live_server.client(BANK_A) as a:
        assert a.post("/v1/iso20022", content=body, headers=XML).status_code == 200
    return paid, body


def pacs004(*items: tuple[str, int], reason="AC04", text=None,
            message_id=None) -> tuple[str, bytes]:
    """A pacs.004 returning (UETR, amount) pairs of CNY; its message id and bytes."""
    message_id = message_id or "RTRMSG" + uuid.uuid4().hex[:12]
    returns = tuple(PaymentReturn("RTR" + uuid.uuid4().hex[:12], "MSG1", PACS008_V08, amount,
                                  "CNY", reason, original_uetr=uetr, reason_text=text)
                    for uetr, amount in items)
    return message_id, build_pacs004(ReturnInstruction(message_id, now_us(), returns))


def post_return(live_server, bic: str, body: bytes):
    with live_server.client(bic) as client:
        answer = client.post("/v1/iso20022", content=body, headers=XML)
    assert answer.status_code == 200, answer.text
    _, report = parse_message(answer.content)
    return answer, report


def statuses(report) -> list[tuple[str, str | None, str | None]]:
    return [(t.status.value, t.reason_code, t.reason_text) for t in report.transactions]


def balances(live_server) -> tuple[int, int]:
    return tuple(live_server.engine.balance(live_server.account_of(bic, "CNY")).posted_minor
                 for bic in (BANK_A, BANK_B))


def notice_of(client, uetr: str, kind: str) -> dict:
    return next(n for n in client.get("/v1/mailbox", params={"limit": 500}).json()
                if n["uetr"] == uetr and n["kind"] == kind and n["status"] == "returned")


def test_the_creditor_agent_returns_a_settled_payment_and_both_sides_are_told(live_server, xsd):
    paid = pay(live_server, 4_200)
    before = balances(live_server)
    message_id, body = pacs004((paid.uetr, 4_200), text="account closed")
    answer, report = post_return(live_server, BANK_B, body)

    assert valid(xsd, "pacs.002.001.10", answer.content)
    (status,) = report.transactions
    assert (status.status.value, status.original_message_id, status.original_message_type,
            status.original_uetr) == ("ACSC", message_id, PACS004_V09, paid.uetr)
    assert balances(live_server) == (before[0] + 4_200, before[1] - 4_200)
    with live_server.client(BANK_A) as a, live_server.client(BANK_B) as b:
        tracked = a.get(f"/v1/payments/{paid.uetr}").json()
        back = a.get(f"/v1/mailbox/{notice_of(a, paid.uetr, 'incoming_payment')['seq']}/message")
        told = b.get(f"/v1/mailbox/{notice_of(b, paid.uetr, 'status_report')['seq']}/message")
        statement = a.get(f"/v1/accounts/{live_server.account_of(BANK_A, 'CNY')}/statement",
                          params={"day": datetime.now(UTC).date().isoformat()})
    assert tracked["status"] == "returned"
    assert tracked["history"][-1]["detail"] == (
        f'AC04: returned by its creditor agent {BANK_B} (pacs.004 "{message_id}", return '
        f'"{status.original_instruction_id}"): account closed')

    assert back.status_code == 200, back.text
    assert valid(xsd, PACS004_V09, back.content)
    message_type, instruction = parse_message(back.content)
    (item,) = instruction.returns
    assert message_type == PACS004_V09
    assert (item.original_uetr, item.returned_amount_minor, item.currency, item.reason_code,
            item.original_instruction_id) == (paid.uetr, 4_200, "CNY", "AC04",
                                              paid.instruction_id)
    assert "account closed" in item.reason_text

    assert told.status_code == 200, told.text
    assert valid(xsd, "pacs.002.001.10", told.content)
    _, status_report = parse_message(told.content)
    (told_status,) = status_report.transactions
    assert (told_status.status.value, told_status.original_message_id,
            told_status.original_instruction_id) == ("ACSC", message_id,
                                                     status.original_instruction_id)
    _, camt053 = parse_message(statement.content)
    assert sorted(e.amount_minor for e in camt053.entries if e.uetr == paid.uetr) == [
        -4_200, 4_200]
    assert live_server.engine.reconcile().ok


def test_the_returners_status_names_the_pacs004s_ids_whatever_their_text(live_server):
    paid = pay(live_server, 700)
    message_id, body = pacs004((paid.uetr, 700), message_id='BATCH 7, return "of" goods)')
    _, report = post_return(live_server, BANK_B, body)
    (status,) = report.transactions
    with live_server.client(BANK_B) as b:
        told = b.get(f"/v1/mailbox/{notice_of(b, paid.uetr, 'status_report')['seq']}/message")
    _, status_report = parse_message(told.content)
    (told_status,) = status_report.transactions
    assert (told_status.original_message_id, told_status.original_instruction_id) == (
        message_id, status.original_instruction_id)


def test_the_operator_may_return_a_payment(live_server):
    paid = pay(live_server, 300)
    _, body = pacs004((paid.uetr, 300), reason="FOCR")
    _, report = post_return(live_server, OPERATOR, body)
    assert statuses(report) == [("ACSC", None, None)]
    detail = live_server.engine.payment(paid.uetr).history[-1].detail
    assert detail.startswith("FOCR: returned by the operator (pacs.004 ")


def test_a_return_by_anyone_else_is_answered_as_one_of_a_missing_payment(live_server):
    paid = pay(live_server, 500)
    before = balances(live_server)
    _, unknown_body = pacs004((str(uuid.uuid4()), 500))
    _, missing = post_return(live_server, BANK_B, unknown_body)
    assert statuses(missing) == [
        ("RJCT", "NARR", "no payment with this UETR that you may return")]
    for bic in (BANK_A, STRANGER, AGENT, AUDITOR):  # the debtor agent sees it, may not return
        _, body = pacs004((paid.uetr, 500))
        _, report = post_return(live_server, bic, body)
        assert statuses(report) == statuses(missing), bic
    assert balances(live_server) == before
    assert live_server.engine.payment(paid.uetr).status.value == "settled"


def test_a_payment_goes_back_once_whole_and_only_when_settled(live_server):
    paid = pay(live_server, 800)
    waits = pay(live_server, 95_000_000_000)  # more than BANK_A holds: queued
    _, body = pacs004((paid.uetr, 799), (waits.uetr, 1))
    _, report = post_return(live_server, BANK_B, body)
    assert [s[:2] for s in statuses(report)] == [("RJCT", "AM09"), ("RJCT", "NARR")]
    _, body = pacs004((paid.uetr, 800))  # (one message names a payment once: AM05 else)
    _, report = post_return(live_server, BANK_B, body)
    assert [s[:2] for s in statuses(report)] == [("ACSC", None)]
    after_first = balances(live_server)
    _, again = pacs004((paid.uetr, 800))
    _, report = post_return(live_server, BANK_B, again)
    assert statuses(report)[0][:2] == ("RJCT", "DUPL")
    assert balances(live_server) == after_first
    with live_server.client(BANK_A) as a:
        a.post(f"/v1/payments/{waits.uetr}/cancel")


def test_a_pacs004_sent_again_is_answered_as_the_first_time_and_moves_nothing(live_server):
    """A bank that got no answer sends the same pacs.004 again: it learns the return went
    through (the same answer), not that the payment was returned already (DUPL); the same
    message id with another return id is another message under a used id, refused (DUPL)."""
    paid = pay(live_server, 700)
    message_id, body = pacs004((paid.uetr, 700), text="goods refused")
    first, report = post_return(live_server, BANK_B, body)
    assert [s[:2] for s in statuses(report)] == [("ACSC", None)]
    after_first = balances(live_server)
    history = live_server.engine.payment(paid.uetr).history
    with live_server.client(BANK_A) as a:
        told = [n for n in a.get("/v1/mailbox", params={"limit": 500}).json()
                if n["uetr"] == paid.uetr]
    assert told  # its notices are within the page compared
    again, _ = post_return(live_server, BANK_B, body)
    assert again.content == first.content
    _, other = pacs004((paid.uetr, 700), text="goods refused", message_id=message_id)
    _, refused = post_return(live_server, BANK_B, other)  # its own return id
    assert statuses(refused)[0][:2] == ("RJCT", "DUPL")
    assert balances(live_server) == after_first
    assert live_server.engine.payment(paid.uetr).history == history
    with live_server.client(BANK_A) as a:
        assert [n for n in a.get("/v1/mailbox", params={"limit": 500}).json()
                if n["uetr"] == paid.uetr] == told


def test_a_pacs004_id_names_one_message_as_a_pacs008_id_does(live_server):
    """A returner's pacs.004 under an id it used before must name every return made under
    it: another payment under that id is refused whole (DUPL) and nothing moves; the same
    message with one more return is taken (the first answered as before, the new made)."""
    first, second = pay(live_server, 610), pay(live_server, 620)
    message_id, body = pacs004((first.uetr, 610))
    _, report = post_return(live_server, BANK_B, body)
    assert [s[:2] for s in statuses(report)] == [("ACSC", None)]
    after_first = balances(live_server)
    _, reused = pacs004((second.uetr, 620), message_id=message_id)
    _, refused = post_return(live_server, BANK_B, reused)
    assert [s[:2] for s in statuses(refused)] == [("RJCT", "DUPL")]
    assert balances(live_server) == after_first
    assert live_server.engine.payment(second.uetr).status.value == "settled"
    _, first_message = parse_message(body)
    more = build_pacs004(ReturnInstruction(message_id, now_us(), (
        *first_message.returns, PaymentReturn("RTR" + uuid.uuid4().hex[:12], "MSG1",
                                              PACS008_V08, 620, "CNY", "AC04",
                                              original_uetr=second.uetr))))
    _, both = post_return(live_server, BANK_B, more)
    assert [s[:2] for s in statuses(both)] == [("ACSC", None), ("ACSC", None)]
    assert live_server.engine.payment(second.uetr).status.value == "returned"


def test_a_pacs004_whose_commit_failed_leaves_its_id_free(live_server, monkeypatch):
    """Nothing of a pacs.004 whose commit failed (503) is kept, its id's use neither: the
    bank, told nothing happened, may send another message under that id."""
    first, second = pay(live_server, 310), pay(live_server, 320)
    fail_next_commit(monkeypatch, live_server.engine.store)
    message_id, body = pacs004((first.uetr, 310))
    with live_server.client(BANK_B) as b:
        answer = b.post("/v1/iso20022", content=body, headers=XML)
    assert answer.status_code == 503, answer.text
    assert live_server.engine.payment(first.uetr).status.value == "settled"  # rolled back
    _, other = pacs004((second.uetr, 320), message_id=message_id)
    _, report = post_return(live_server, BANK_B, other)
    assert [s[:2] for s in statuses(report)] == [("ACSC", None)]


def test_a_used_pacs004_id_is_known_again_after_a_restart(open_engine, network):
    """The returns made under each id are read back from the payments' histories."""
    from scopay.api.iso import _return_detail, _returned_once

    t = network.funded_at_us
    engine = open_engine(with_network=network)
    paid = [Payment(str(uuid.uuid4()), f"i-{n}", "e2e", "ICBKCNBJ", "ABOCCNBJ", Party("A"),
                    Party("B"), 100 + n, "CNY") for n in range(2)]
    engine.submit_payments("ICBKCNBJ", paid, t + 1)

    def returning(engine, payment: Payment, now_us: int):
        item = PaymentReturn("R-" + payment.instruction_id, "M1", PACS008_V08,
                             payment.settlement_amount_minor, "CNY", "AC04",
                             original_uetr=payment.uetr)
        request = ReturnRequest(payment.uetr, payment.settlement_amount_minor, "CNY",
                                "ABOCCNBJ", _return_detail("RTN-1", item,
                                                           "its creditor agent ABOCCNBJ"))
        return _returned_once(engine, "ABOCCNBJ", "RTN-1", {(payment.uetr, item.return_id)},
                              [request], [item.return_id], now_us)

    assert [o.rejection for o in returning(engine, paid[0], t + 2)] == [None]
    engine.close()
    again = open_engine()
    (refused,) = returning(again, paid[1], t + 3)
    assert refused.rejection == Rejection.MESSAGE_ID_USED
    assert again.payment(paid[1].uetr).status.value == "settled"


def test_operators_ids_are_one_namespace_before_and_after_a_restart(open_engine, network):
    """A return's history names "the operator", not which: an id one operator used is used
    for every operator, the same before a restart as after it."""
    from scopay.api.iso import _return_detail, _returned_once
    from scopay.domain.participant import Participant, Role, Tier

    t = network.funded_at_us
    engine = open_engine(with_network=network)
    engine.admit_participants([
        Participant("OPAACNX0", "Operator one", Role.OPERATOR, "CN", Tier.MEMBER),
        Participant("OPBBCNX0", "Operator two", Role.OPERATOR, "CN", Tier.MEMBER)], t)
    paid = [Payment(str(uuid.uuid4()), f"i-{n}", "e2e", "ICBKCNBJ", "ABOCCNBJ", Party("A"),
                    Party("B"), 100 + n, "CNY") for n in range(3)]
    engine.submit_payments("ICBKCNBJ", paid, t + 1)

    def returning(engine, operator: str, payment: Payment, now_us: int):
        item = PaymentReturn("R-" + payment.instruction_id, "M1", PACS008_V08,
                             payment.settlement_amount_minor, "CNY", "AC04",
                             original_uetr=payment.uetr)
        request = ReturnRequest(payment.uetr, payment.settlement_amount_minor, "CNY", operator,
                                _return_detail("OPS-1", item, "the operator"))
        (outcome,) = _returned_once(engine, operator, "OPS-1",
                                    {(payment.uetr, item.return_id)}, [request],
                                    [item.return_id], now_us)
        return outcome.rejection

    assert returning(engine, "OPBBCNX0", paid[0], t + 2) is None
    assert returning(engine, "OPAACNX0", paid[1], t + 3) == Rejection.MESSAGE_ID_USED
    engine.close()
    again = open_engine()
    assert returning(again, "OPAACNX0", paid[1], t + 4) == Rejection.MESSAGE_ID_USED
    assert returning(again, "OPBBCNX0", paid[2], t + 5) == Rejection.MESSAGE_ID_USED


def test_the_pacs008_of_a_returned_payment_sent_again_reports_it_settled_then_returned(
        live_server, xsd):
    """A bank re-sending a message (its answer was lost) gets each payment's outcome so far:
    for one returned since, ACSC (the transfer it instructed was completed) with a word on
    the return, not a server error."""
    paid, message = pay_in_message(live_server, 650)
    _, body = pacs004((paid.uetr, 650))
    assert statuses(post_return(live_server, BANK_B, body)[1])[0][:2] == ("ACSC", None)
    before = balances(live_server)
    with live_server.client(BANK_A) as a:
        answer = a.post("/v1/iso20022", content=message, headers=XML)
    assert answer.status_code == 200, answer.text
    assert valid(xsd, "pacs.002.001.10", answer.content)
    _, report = parse_message(answer.content)
    ((status, code, text),) = statuses(report)
    assert (status, code) == ("ACSC", None) and "returned" in text
    assert balances(live_server) == before


def test_a_pacs004_refused_whole_is_answered_dated_by_scopay_not_by_its_sender(live_server):
    """A pacs.004 whose every return is refused before the engine (a payment the signer may
    not return) gets a pacs.002 dated now, not with the sender's own CreDtTm (hours ahead)."""
    paid = pay(live_server, 300)
    ahead_us = now_us() + 3 * 3600 * 1_000_000
    returns = (PaymentReturn("RTR" + uuid.uuid4().hex[:12], "MSG1", PACS008_V08, 300, "CNY",
                             "AC04", original_uetr=paid.uetr),)
    body = build_pacs004(ReturnInstruction("RTRMSG" + uuid.uuid4().hex[:12], ahead_us, returns))
    before_us = time.time_ns() // 1000
    _, report = post_return(live_server, BANK_A, body)  # the debtor agent may not return it
    assert statuses(report)[0][:2] == ("RJCT", "NARR")
    assert before_us - 1_000_000 <= report.created_at_us <= time.time_ns() // 1000


def test_a_returner_short_of_liquidity_is_refused_am04_and_nothing_changes(live_server):
    engine = live_server.engine
    paid = pay(live_server, 1_000)
    a_account, b_account = (live_server.account_of(bic, "CNY") for bic in (BANK_A, BANK_B))
    view = engine.balance(b_account)
    spare = view.available_minor - (view.floor_minor or 0)
    drain = f"drain-{uuid.uuid4().hex[:8]}"
    (outcome,) = engine.submit([Transfer(drain, b_account, a_account, spare, "CNY")],
                               time.time_ns() // 1000)
    assert outcome.rejection is None
    before = balances(live_server)
    _, body = pacs004((paid.uetr, 1_000))
    _, report = post_return(live_server, BANK_B, body)
    assert statuses(report) == [("RJCT", "AM04", "debit account lacks the funds above its floor")]
    assert balances(live_server) == before
    assert engine.payment(paid.uetr).status.value == "settled"
    engine.submit([Transfer(drain + "-back", a_account, b_account, spare, "CNY")],
                  time.time_ns() // 1000)


def test_the_used_return_ids_are_read_as_the_server_starts(engine, serve_app):
    """Read at the first pacs.004 instead, they would hold it up (about 5 µs a payment ever
    returned by one)."""
    from scopay.api import iso
    from scopay.api.app import create_app
    from scopay.engine.runner import EngineRunner

    assert engine not in iso._returns_by_message
    runner = EngineRunner(engine, lambda: time.time_ns() // 1000).start()
    try:
        with httpx.Client(base_url=serve_app(create_app(runner)), timeout=30) as client:
            assert client.get("/health").status_code == 200
            assert engine in iso._returns_by_message
    finally:
        runner.stop()
