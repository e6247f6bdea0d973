"""Debit/credit notifications (camt.054) and end-of-day statements (camt.053) in the mailbox,
over real HTTP: valid against the official schema, each to its owner only, acknowledged like
any other notice."""

import uuid

from lxml import etree

from scopay.iso20022.message import parse_message

BANK_A, BANK_B, AGENT = "DEMACNX0", "DEMBCNX0", "PBOCCNBJ"


def not_theirs(client, number: int, account: int) -> bool:
    """Mailbox numbers run per participant: the caller's number is its own notice (or none),
    never the statement or notification of another's account."""
    answer = client.get(f"/v1/mailbox/{number}/message")
    if answer.status_code == 404:
        return True
    assert answer.status_code == 200, answer.text
    _, message = parse_message(answer.content)
    return getattr(message, "account", None) != str(account)


def valid(xsd, message_type, data: bytes) -> bool:
    schema = xsd(message_type)
    ok = schema.validate(etree.fromstring(data))
    assert ok, schema.error_log
    return ok


def notice_about(client, transfer_id: str, kind: str) -> dict:
    """The notice of that kind about the transfer, listed by its id as the caller knows it."""
    after = 0
    while page := client.get("/v1/mailbox", params={"after": after, "limit": 500}).json():
        for notice in page:
            if notice["reference"] == transfer_id and notice["kind"] == kind:
                assert notice["uetr"] is None  # a ledger movement, not a payment
                return notice
        after = page[-1]["seq"]
    raise AssertionError(f"no {kind} about {transfer_id}")


def test_a_transfer_is_a_camt054_debit_to_the_sender_and_credit_to_the_receiver(
        live_server, xsd):
    own_id = "t-" + uuid.uuid4().hex[:10]
    debit = live_server.account_of(BANK_A, "CNY")
    credit = live_server.account_of(BANK_B, "CNY")
    with live_server.client(BANK_A) as a, live_server.client(BANK_B) as b:
        sent = a.post("/v1/transfers", json={"id": own_id, "debit_account_id": debit,
                                             "credit_account_id": credit, "amount": "12.34",
                                             "currency": "CNY"})
        assert sent.status_code == 201, sent.text
        ledger_id = f"{BANK_A}:{own_id}"
        told_a = notice_about(a, own_id, "debit_notification")  # its own id, as it knows it
        told_b = notice_about(b, ledger_id, "credit_notification")  # another's, whole
        assert told_a["status"] == told_b["status"] == "booked"
        fetched_a = a.get(f"/v1/mailbox/{told_a['seq']}/message")
        fetched_b = b.get(f"/v1/mailbox/{told_b['seq']}/message")
        assert not_theirs(b, told_a["seq"], debit) and not_theirs(a, told_b["seq"], credit)
    for answer in (fetched_a, fetched_b):
        assert answer.status_code == 200, answer.text
        assert valid(xsd, "camt.054.001.08", answer.content)
    _, of_a = parse_message(fetched_a.content)
    _, of_b = parse_message(fetched_b.content)
    # the accounts are serviced by the central bank of their currency, not by their owners
    assert (of_a.account, of_a.currency, of_a.account_servicer) == (str(debit), "CNY", AGENT)
    assert (of_b.account, of_b.currency, of_b.account_servicer) == (str(credit), "CNY", AGENT)
    (entry_a,), (entry_b,) = of_a.entries, of_b.entries
    assert (entry_a.amount_minor, entry_b.amount_minor) == (-1234, 1234)
    # the servicer's reference names the ledger's transfer, the same for both sides, and
    # not the journal's sequence number (its gaps would count everyone's entries)
    assert entry_a.account_servicer_reference == entry_b.account_servicer_reference == (
        f"T{ledger_id}")
    assert entry_a.entry_reference == own_id  # its own id, as it knows it
    assert entry_b.entry_reference == ledger_id[:35]  # another's id, whole
    assert of_a.created_at_us == sent.json()["timestamp_us"]  # booked then
    assert entry_a.booking_date == entry_b.booking_date


def test_funds_in_notifies_the_bank_and_the_agent_and_ack_clears_it(live_server, xsd):
    own_id = "in-" + uuid.uuid4().hex[:10]
    account = live_server.account_of(BANK_A, "CNY")
    with live_server.client(AGENT) as agent, live_server.client(BANK_A) as a:
        moved = agent.post("/v1/funds-in", json={"id": own_id, "account_id": account,
                                                 "amount": "5.00"})
        assert moved.status_code == 201, moved.text
        ledger_id = f"{AGENT}:{own_id}"
        told = notice_about(a, ledger_id, "credit_notification")
        agent_told = notice_about(agent, own_id, "debit_notification")
        answer = a.get(f"/v1/mailbox/{told['seq']}/message")
        agent_answer = agent.get(f"/v1/mailbox/{agent_told['seq']}/message")
        assert a.post("/v1/mailbox/ack", json={"seqs": [told["seq"]]}).status_code == 204
        left = [n["seq"] for n in a.get("/v1/mailbox", params={"after": told["seq"] - 1,
                                                                "limit": 500}).json()]
        again = a.get(f"/v1/mailbox/{told['seq']}/message")
    assert told["seq"] not in left
    assert again.status_code == 200  # an acknowledged message can still be fetched
    assert valid(xsd, "camt.054.001.08", answer.content)
    assert valid(xsd, "camt.054.001.08", agent_answer.content)
    _, notification = parse_message(answer.content)
    assert [(e.amount_minor, e.entry_reference) for e in notification.entries] == [
        (500, ledger_id)]
    _, of_agent = parse_message(agent_answer.content)
    assert [(e.amount_minor, e.entry_reference) for e in of_agent.entries] == [(-500, own_id)]


def test_a_batch_is_one_camt054_for_each_account_and_side_with_all_its_entries(
        live_server, xsd):
    """BANK_A's batch pays BANK_B three times, in one commit: BANK_A gets one debit
    notification of the three entries, BANK_B one credit notification of the same three."""
    prefix = "b-" + uuid.uuid4().hex[:8]
    debit = live_server.account_of(BANK_A, "CNY")
    credit = live_server.account_of(BANK_B, "CNY")
    amounts = ("1.00", "2.50", "3.75")
    with live_server.client(BANK_A) as a, live_server.client(BANK_B) as b:
        sent = a.post("/v1/transfers/batch", json={"transfers": [
            {"id": f"{prefix}-{n}", "debit_account_id": debit, "credit_account_id": credit,
             "amount": amount, "currency": "CNY"} for n, amount in enumerate(amounts)]})
        assert sent.status_code == 200, sent.text
        told_a = notice_about(a, f"{prefix}-0", "debit_notification")
        told_b = notice_about(b, f"{BANK_A}:{prefix}-0", "credit_notification")
        assert (told_a["last_reference"], told_b["last_reference"]) == (
            f"{prefix}-2", f"{BANK_A}:{prefix}-2")
        assert told_a["reason"] is None and told_b["reason"] is None
        fetched_a = a.get(f"/v1/mailbox/{told_a['seq']}/message")
        fetched_b = b.get(f"/v1/mailbox/{told_b['seq']}/message")
    for answer in (fetched_a, fetched_b):
        assert answer.status_code == 200, answer.text
        assert valid(xsd, "camt.054.001.08", answer.content)
    _, of_a = parse_message(fetched_a.content)
    _, of_b = parse_message(fetched_b.content)
    assert [(e.entry_reference, e.amount_minor) for e in of_a.entries] == [
        (f"{prefix}-0", -100), (f"{prefix}-1", -250), (f"{prefix}-2", -375)]
    assert [(e.account_servicer_reference, e.amount_minor) for e in of_b.entries] == [
        (f"T{BANK_A}:{prefix}-0", 100), (f"T{BANK_A}:{prefix}-1", 250),
        (f"T{BANK_A}:{prefix}-2", 375)]


def test_a_notification_of_several_entries_holds_only_its_account_and_side(engine, network,
                                                                          monkeypatch):
    """Between a notification's first and last entry, the commit may hold others: the
    other side of the same account, other accounts. Its camt.054 holds only its own, read
    by the store filtered to its account (not the commit's whole journal, which a commit
    of 8,190 transfers makes 20 ms a fetch)."""
    from scopay.api.iso import _notification
    from scopay.domain.ledger import Transfer
    from scopay.domain.mailbox import NoticeKind

    t = network.funded_at_us
    engine.submit([Transfer("a-1", 11, 12, 100, "CNY"), Transfer("b-1", 12, 11, 50, "CNY"),
                   Transfer("r-1", 21, 2, 7, "RUB"), Transfer("a-2", 11, 12, 200, "CNY")],
                  t + 1)
    ((number, notice),) = [(n, x) for n, x, _ in engine.mailbox("ICBKCNBJ", 0, 500)
                           if x.kind == NoticeKind.DEBIT_NOTIFICATION and x.created_us == t + 1]
    assert (notice.uetr, notice.reason) == ("a-1", "a-2")

    def whole_journal(*_):
        raise AssertionError("the commit's whole journal read for one account's notice")

    monkeypatch.setattr(engine.store, "journal", whole_journal)
    _, told = parse_message(_notification(engine, number, notice))
    assert [(e.entry_reference, e.amount_minor) for e in told.entries] == [
        ("a-1", -100), ("a-2", -200)]
    assert (told.account, told.currency) == ("11", "CNY")


def statement_notice(client) -> dict:
    """The statement of the day the server was seeded on (1970-01-01), issued at its first
    step of a later day (the heartbeat's, or any request's)."""
    after = 0
    while page := client.get("/v1/mailbox", params={"after": after, "limit": 500}).json():
        found = [n for n in page if n["kind"] == "statement"]
        if found:
            return found[0]
        after = page[-1]["seq"]
    raise AssertionError("no statement in the mailbox")


def test_the_end_of_day_statement_is_in_the_mailbox_as_the_camt053_of_that_day(
        live_server, xsd):
    account = live_server.account_of(BANK_A, "CNY")
    with live_server.client(BANK_A) as a, live_server.client(BANK_B) as b:
        a.get("/v1/mailbox")  # a step of today's: the seeding day is over
        told = statement_notice(a)
        assert (told["reference"], told["status"]) == (f"{account}-19700101", "1970-01-01")
        fetched = a.get(f"/v1/mailbox/{told['seq']}/message")
        asked = a.get(f"/v1/accounts/{account}/statement", params={"day": "1970-01-01"})
        assert not_theirs(b, told["seq"], account)
        assert a.post("/v1/mailbox/ack", json={"seqs": [told["seq"]]}).status_code == 204
        assert all(n["seq"] != told["seq"] for n in a.get(
            "/v1/mailbox", params={"after": told["seq"] - 1}).json())
    assert fetched.status_code == 200, fetched.text
    assert valid(xsd, "camt.053.001.08", fetched.content)
    assert fetched.content == asked.content  # the same statement as asked for
    _, statement = parse_message(fetched.content)
    assert (statement.account, statement.opening_balance_minor) == (str(account), 0)
    assert statement.account_servicer == AGENT  # the CNY settlement agent
    assert statement.closing_balance_minor == sum(e.amount_minor for e in statement.entries)
    assert statement.closing_balance_minor > 0  # seeded with funds that day
