"""Payments over real HTTP: send, queue, track by UETR, manage the queue, mailboxes."""

import uuid
from decimal import Decimal

BANK_A, BANK_B, OTHER = "DEMACNX0", "DEMBCNX0", "DEMARUX0"
OPERATOR, PBOC = "SCOPCNX0", "PBOCCNBJ"


def payment(amount="100.00", debtor=BANK_A, creditor=BANK_B, currency="CNY", **extra):
    return {"uetr": str(uuid.uuid4()), "instruction_id": uuid.uuid4().hex[:16],
            "end_to_end_id": "E2E-1", "debtor_agent": debtor, "creditor_agent": creditor,
            "debtor": {"name": "Иван Петров"}, "creditor": {"name": "张伟",
                                                           "address": {"country": "CN",
                                                                       "town": "北京"}},
            "amount": amount, "currency": currency, **extra}


def test_covered_payment_settles_and_both_agents_can_track_it(live_server):
    body = payment("250.00")
    with live_server.client(BANK_A) as a, live_server.client(BANK_B) as b, \
            live_server.client(OTHER) as other:
        sent = a.post("/v1/payments", json=body)
        seen_by_creditor = b.get(f"/v1/payments/{body['uetr']}")
        seen_by_other = other.get(f"/v1/payments/{body['uetr']}")
    assert sent.status_code == 201, sent.text
    assert sent.json()["status"] == "settled" and sent.json()["iso_status"] == "ACSC"
    assert [h["status"] for h in sent.json()["history"]] == ["received", "accepted", "settled"]
    assert seen_by_creditor.json()["history"] == sent.json()["history"]
    assert seen_by_other.status_code == 404


def test_uncovered_payment_queues_and_settles_when_money_arrives(live_server):
    big = payment("19000000.00")  # nearly twice the demo bank's funding
    with live_server.client(BANK_A) as a, live_server.client(BANK_B) as b:
        queued = a.post("/v1/payments", json=big).json()
        assert queued["status"] == "queued" and queued["iso_status"] == "PDNG"
        assert queued["reason"] == "insufficient_liquidity"
        b.post("/v1/payments", json=payment("9999000.00", debtor=BANK_B, creditor=BANK_A))
        tracked = a.get(f"/v1/payments/{big['uetr']}").json()
    assert tracked["status"] == "settled"


def test_same_payment_twice_returns_its_outcome_and_changed_content_is_refused(live_server):
    body = payment("5.00")
    with live_server.client(BANK_A) as a:
        first = a.post("/v1/payments", json=body).json()
        again = a.post("/v1/payments", json=body).json()
        changed = a.post("/v1/payments", json={**body, "amount": "6.00"})
    assert again == first
    assert changed.status_code == 409
    assert changed.json()["rejection"] == "payment_exists_with_different_content"


def test_sender_cancels_a_queued_payment_and_others_cannot(live_server):
    body = payment("90000000.00")
    with live_server.client(BANK_A) as a, live_server.client(BANK_B) as b:
        assert a.post("/v1/payments", json=body).json()["status"] == "queued"
        assert b.post(f"/v1/payments/{body['uetr']}/cancel").status_code == 403
        cancelled = a.post(f"/v1/payments/{body['uetr']}/cancel")
        twice = a.post(f"/v1/payments/{body['uetr']}/cancel")
    assert cancelled.json()["status"] == "cancelled" and cancelled.json()["iso_status"] == "CANC"
    assert twice.status_code == 409


def test_nobody_sends_for_another_bank(live_server):
    with live_server.client(BANK_B) as b, live_server.client(OPERATOR) as operator:
        assert b.post("/v1/payments", json=payment()).status_code == 403
        assert operator.post("/v1/payments", json=payment()).status_code == 403


def test_unknown_creditor_agent_is_rejected_with_its_reason_and_iso_code(live_server):
    with live_server.client(BANK_A) as a:
        answer = a.post("/v1/payments", json=payment(creditor="ZZZZCNX0"))
        in_bulk = a.post("/v1/payments/bulk", json={"payments": [
            payment(creditor="ZZZZCNX0"), payment("1.00")]})
    assert answer.status_code == 422
    assert answer.json()["rejection"] == "creditor_agent_unknown"
    assert answer.json()["iso_code"] == "RC04"  # what its pacs.002 would say
    refused, settled = in_bulk.json()
    assert (refused["status"], refused["iso_status"], refused["iso_reason"]) == (
        "rejected", "RJCT", "RC04")
    assert (settled["iso_status"], settled["iso_reason"]) == ("ACSC", None)


def test_bad_payment_input_is_refused_before_anything_happens(live_server):
    with live_server.client(BANK_A) as a:
        for change in ({"amount": "1.001"}, {"amount": "0"}, {"uetr": "not-a-uuid"},
                       {"currency": "cny"}, {"priority": "asap"}, {"surprise": True},
                       {"amount": "10000000000000000.00"}):  # 19 digits: no ISO amount
            body = {**payment(), **change}
            answer = a.post("/v1/payments", json=body)
            assert answer.status_code == 422, change
            assert a.get(f"/v1/payments/{body['uetr']}").status_code == 404


# Times every UTC offset allows but no answer could write: year 0 and year 10000 in UTC.
TIMES_OUT_OF_RANGE = ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00",
                      "1969-12-31T23:59:59Z")


def test_payment_times_out_of_range_are_refused_and_change_nothing(live_server):
    with live_server.client(BANK_A) as a, live_server.client(OPERATOR) as operator:
        queued = payment("90000000.00")
        assert a.post("/v1/payments", json=queued).json()["status"] == "queued"
        for moment in TIMES_OUT_OF_RANGE:
            for field in ("earliest", "latest", "reject_by"):
                body = payment(**{field: moment})
                for path, sent in (("/v1/payments", body),
                                   ("/v1/payments/bulk", {"payments": [payment(), body]})):
                    answer = a.post(path, json=sent)
                    assert answer.status_code == 422, (path, field, moment, answer.text)
                    assert "1970-01-01 to 9999-12-30 UTC" in answer.json()["detail"]
                assert a.get(f"/v1/payments/{body['uetr']}").status_code == 404
            changed = a.post(f"/v1/payments/{queued['uetr']}/times", json={"latest": moment})
            assert changed.status_code == 422, changed.text
        assert a.get(f"/v1/payments/{queued['uetr']}").json()["latest"] is None
        assert operator.get("/v1/queue").status_code == 200
        assert operator.post("/v1/reconcile").json()["ok"]


def test_priority_change_and_queue_listing(live_server):
    body = payment("80000000.00")
    with live_server.client(BANK_A) as a:
        a.post("/v1/payments", json=body)
        changed = a.post(f"/v1/payments/{body['uetr']}/priority", json={"priority": "urgent"})
        queue = a.get("/v1/queue").json()
        a.post(f"/v1/payments/{body['uetr']}/cancel")
    assert changed.json()["priority"] == "urgent"
    assert body["uetr"] in {p["uetr"] for p in queue}


def test_bulk_payments_answer_in_order(live_server):
    bodies = [payment("1.00") for _ in range(50)]
    with live_server.client(BANK_A) as a:
        answers = a.post("/v1/payments/bulk", json={"payments": bodies}).json()
    assert [x["uetr"] for x in answers] == [b["uetr"] for b in bodies]
    assert {x["status"] for x in answers} == {"settled"}


def test_mailbox_holds_notices_until_acknowledged(live_server):
    body = payment("3.00")
    with live_server.client(BANK_A) as a, live_server.client(BANK_B) as b:
        a.post("/v1/payments", json=body)
        inbox = b.get("/v1/mailbox", params={"limit": 500}).json()
        mine = [n for n in inbox if n["uetr"] == body["uetr"]]
        assert [n["kind"] for n in mine] == ["incoming_payment"]
        assert b.post("/v1/mailbox/ack", json={"seqs": [mine[0]["seq"]]}).status_code == 204
        assert a.post("/v1/mailbox/ack", json={"seqs": [mine[0]["seq"]]}).status_code == 204
        after = b.get("/v1/mailbox", params={"limit": 500}).json()
    assert mine[0]["seq"] not in {n["seq"] for n in after}


def test_operator_resolves_a_gridlock(live_server):
    # three banks of one currency each pay more than they hold, in a cycle
    ru_a, ru_b = "DEMARUX0", "DEMBRUX0"
    with live_server.client(ru_a) as a, live_server.client(OPERATOR) as operator:
        first = a.post("/v1/payments", json=payment("15000000.00", ru_a, ru_b, "RUB")).json()
        assert first["status"] == "queued"
        assert operator.post("/v1/gridlock/resolve").status_code == 200
        assert a.post("/v1/gridlock/resolve").status_code == 403
        a.post(f"/v1/payments/{first['uetr']}/cancel")


def test_an_indirect_participant_does_not_move_its_sponsors_money_itself(live_server):
    """Its payments settle on its sponsor's account: the sponsor sends them, and an indirect
    participant holding a key of its own may read (its mailbox) but send none."""
    from scopay.client import KeyFile, ScopayClient, new_private_key
    from scopay.domain.participant import Role

    indirect = next(p.bic for p in live_server.engine.participants.values()
                    if p.role == Role.INDIRECT and p.sponsor_bic == BANK_A)
    private = new_private_key()
    with live_server.client(OPERATOR) as operator:
        registered = operator.post(f"/v1/participants/{indirect}/keys", json={
            "public_key": KeyFile("x", indirect, private).public_key})
    assert registered.status_code == 201, registered.text
    own = payment("5.00", debtor=indirect)
    with ScopayClient(live_server.url, KeyFile(registered.json()["key_id"], indirect,
                                               private)) as client, \
            live_server.client(BANK_A) as sponsor:
        assert client.get("/v1/mailbox").status_code == 200
        refused = client.post("/v1/payments", json=own)
        bulk = client.post("/v1/payments/bulk", json={"payments": [payment("5.00",
                                                                            debtor=indirect)]})
        assert sponsor.get(f"/v1/payments/{own['uetr']}").status_code == 404  # nothing made
        sent = sponsor.post("/v1/payments", json=own)  # the sponsor sends it
    assert (refused.status_code, bulk.status_code) == (403, 403)
    assert sent.status_code == 201, sent.text


def test_a_sponsor_tracks_the_payments_of_the_indirect_participant_it_settles_for(live_server):
    from scopay.domain.participant import Role

    indirect = next(p.bic for p in live_server.engine.participants.values()
                    if p.role == Role.INDIRECT and p.sponsor_bic == BANK_A)
    body = payment("12.00", debtor=BANK_B, creditor=indirect)
    with live_server.client(BANK_B) as b, live_server.client(BANK_A) as sponsor, \
            live_server.client(OTHER) as other:
        sent = b.post("/v1/payments", json=body)
        seen_by_sponsor = sponsor.get(f"/v1/payments/{body['uetr']}")
        seen_by_other = other.get(f"/v1/payments/{body['uetr']}")
    assert sent.status_code == 201 and sent.json()["status"] == "settled", sent.text
    assert seen_by_sponsor.status_code == 200
    assert seen_by_sponsor.json()["history"] == sent.json()["history"]
    assert seen_by_other.status_code == 404
    # the money landed on the sponsor's account: its mailbox has the incoming payment too,
    # and the message for it is a pacs.008 it may fetch
    with live_server.client(BANK_A) as sponsor:
        notices = [n for n in sponsor.get("/v1/mailbox", params={"limit": 500}).json()
                   if n["uetr"] == body["uetr"]]
        assert [n["kind"] for n in notices] == ["incoming_payment"]
        message = sponsor.get(f"/v1/mailbox/{notices[0]['seq']}/message")
    assert message.status_code == 200 and b"pacs.008" in message.content


def test_sender_changes_a_queued_payments_times_and_a_past_reject_by_rejects_it(live_server):
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC).replace(microsecond=0)
    day_end = now.replace(hour=23, minute=59, second=59)
    body = payment("90000000.00")
    uetr = body["uetr"]
    with live_server.client(BANK_A) as a, live_server.client(BANK_B) as b:
        assert a.post("/v1/payments", json=body).json()["status"] == "queued"
        changed = a.post(f"/v1/payments/{uetr}/times",
                         json={"latest": day_end.isoformat(), "reject_by": day_end.isoformat()})
        tracked = b.get(f"/v1/payments/{uetr}").json()
        refused = [
            a.post(f"/v1/payments/{uetr}/times", json={"latest": "2026-11-29T10:00:00"}),
            a.post(f"/v1/payments/{uetr}/times", json={
                "latest": now.isoformat(), "reject_by": (now + timedelta(days=1)).isoformat()}),
            a.post(f"/v1/payments/{uetr}/times", json={"latest": None, "earliest": None}),
            b.post(f"/v1/payments/{uetr}/times", json={"latest": None}),
        ]
        unchanged = a.get(f"/v1/payments/{uetr}").json()
        cleared = a.post(f"/v1/payments/{uetr}/times", json={}).json()
        past = a.post(f"/v1/payments/{uetr}/times",
                      json={"reject_by": (now - timedelta(seconds=1)).isoformat()}).json()
        settled = payment("1.00")
        a.post("/v1/payments", json=settled)
        too_late = a.post(f"/v1/payments/{settled['uetr']}/times", json={})
    assert changed.status_code == 200, changed.text
    expected = day_end.isoformat().replace("+00:00", "Z")
    assert (changed.json()["latest"], changed.json()["reject_by"]) == (expected, expected)
    assert (tracked["latest"], tracked["reject_by"]) == (expected, expected)
    assert [r.status_code for r in refused] == [422, 422, 422, 403]
    assert (unchanged["latest"], unchanged["reject_by"]) == (expected, expected)
    assert (cleared["status"], cleared["latest"], cleared["reject_by"]) == ("queued", None, None)
    if now.date() == (now - timedelta(seconds=1)).date():  # not at midnight: one UTC date
        assert (past["status"], past["reason"]) == ("rejected", "reject_time_passed")
    assert too_late.status_code == 409


def test_creditor_agent_sees_that_a_payment_waits_but_not_why(live_server):
    body = payment("90000000.00")
    with live_server.client(BANK_A) as a, live_server.client(BANK_B) as b, \
            live_server.client(PBOC) as agent:
        sent = a.post("/v1/payments", json=body).json()
        by_creditor = b.get(f"/v1/payments/{body['uetr']}").json()
        in_creditors_queue = [p for p in b.get("/v1/queue").json()
                              if p["uetr"] == body["uetr"]]
        by_sender = a.get(f"/v1/payments/{body['uetr']}").json()
        by_agent = agent.get(f"/v1/payments/{body['uetr']}").json()
        a.post(f"/v1/payments/{body['uetr']}/cancel")
    assert sent["status"] == "queued" and sent["reason"] == "insufficient_liquidity"
    assert by_sender["reason"] == by_agent["reason"] == "insufficient_liquidity"
    for seen in (by_creditor, *in_creditors_queue):
        assert seen["status"] == "queued" and seen["reason"] is None
        assert all(change["detail"] is None for change in seen["history"])
    assert len(in_creditors_queue) == 1


def test_a_bank_reads_back_its_policy_and_where_its_limits_stand(live_server):
    a_cny = live_server.account_of(BANK_A, "CNY")
    b_cny = live_server.account_of(BANK_B, "CNY")
    with live_server.client(BANK_A) as a, live_server.client(BANK_B) as b:
        assert a.put(f"/v1/accounts/{a_cny}/policy", json={
            "reserved_urgent": "100.00", "reserved_high": "50.00",
            "multilateral_limit": "5000.00", "bilateral_limits": {str(b_cny): "9000000000.00"},
        }).status_code == 204
        before = a.get(f"/v1/accounts/{a_cny}/policy").json()
        a.post("/v1/payments", json=payment("30.00"))  # a normal payment to BANK_B
        b.post("/v1/payments", json=payment("5.00", debtor=BANK_B, creditor=BANK_A))
        after = a.get(f"/v1/accounts/{a_cny}/policy").json()
        a.put(f"/v1/accounts/{a_cny}/policy", json={})  # back to no reservation or limit
    moved = (Decimal(after["bilateral_positions"][str(b_cny)])
             - Decimal(before["bilateral_positions"][str(b_cny)]))
    assert (after["reserved_urgent"], after["reserved_high"]) == ("100.00", "50.00")
    assert after["multilateral_limit"] == "5000.00"
    assert after["bilateral_limits"] == {str(b_cny): "9000000000.00"}
    assert moved == Decimal("25.00")  # 30.00 out, 5.00 in, on the pair with a bilateral limit


def test_settlement_agent_grants_credit_and_resolves_its_own_currency_only(live_server):
    a_cny = live_server.account_of(BANK_A, "CNY")
    ru = live_server.account_of(OTHER, "RUB")
    with live_server.client(PBOC) as agent:
        granted = agent.put(f"/v1/accounts/{a_cny}/credit-line", json={"credit_line": "10.00"})
        seen = agent.get(f"/v1/accounts/{a_cny}").json()
        foreign = agent.put(f"/v1/accounts/{ru}/credit-line", json={"credit_line": "10.00"})
        issuance = agent.put(f"/v1/accounts/{live_server.engine.issuance_account('CNY')}"
                             "/credit-line", json={"credit_line": "10.00"})
        own_queue = agent.post("/v1/gridlock/resolve")
        other_queue = agent.post("/v1/gridlock/resolve", params={"currency": "RUB"})
        agent.put(f"/v1/accounts/{a_cny}/credit-line", json={"credit_line": "0.00"})
    with live_server.client(OPERATOR) as operator:
        unknown = operator.post("/v1/gridlock/resolve", params={"currency": "XXX"})
    assert granted.status_code == 204 and seen["floor"] == "-10.00"
    assert foreign.status_code == 404 and issuance.status_code == 403
    assert own_queue.status_code == 200 and other_queue.status_code == 403
    assert unknown.status_code == 422


def test_creditor_agent_returns_a_settled_payment_by_json_and_nobody_else_can(live_server):
    body = payment("40.00")
    a_cny, b_cny = live_server.account_of(BANK_A, "CNY"), live_server.account_of(BANK_B, "CNY")
    with live_server.client(BANK_A) as a, live_server.client(BANK_B) as b, \
            live_server.client(OTHER) as other, live_server.client(PBOC) as agent:
        assert a.post("/v1/payments", json=body).json()["status"] == "settled"
        before = {i: live_server.engine.balance(i).posted_minor for i in (a_cny, b_cny)}
        refusals = [client.post(f"/v1/payments/{uetr}/return", json={"reason": "AC04"})
                    for client, uetr in ((a, body["uetr"]), (other, body["uetr"]),
                                         (agent, body["uetr"]), (b, str(uuid.uuid4())))]
        bad_reason = b.post(f"/v1/payments/{body['uetr']}/return", json={"reason": "ac04"})
        returned = b.post(f"/v1/payments/{body['uetr']}/return",
                          json={"reason": "AC04", "text": "account closed"})
        again = b.post(f"/v1/payments/{body['uetr']}/return", json={"reason": "AC04"})
        tracked = a.get(f"/v1/payments/{body['uetr']}").json()
        after = {i: live_server.engine.balance(i).posted_minor for i in (a_cny, b_cny)}
    assert [r.status_code for r in refusals] == [404] * 4
    assert len({r.json()["detail"].replace(body["uetr"], "") for r in refusals[:3]}) == 1
    assert bad_reason.status_code == 422
    assert returned.status_code == 200, returned.text
    assert returned.json()["status"] == tracked["status"] == "returned"
    assert tracked["history"][-1]["detail"] == (
        f"AC04: returned by its creditor agent {BANK_B}: account closed")
    assert (after[a_cny] - before[a_cny], after[b_cny] - before[b_cny]) == (4000, -4000)
    assert again.status_code in (409, 422) and again.json()["iso_code"] is not None


def test_the_bank_whose_account_a_return_debits_is_told_even_when_the_operator_returns(
        live_server):
    body = payment("2.00")
    with live_server.client(BANK_A) as a, live_server.client(BANK_B) as b, \
            live_server.client(OPERATOR) as operator:
        assert a.post("/v1/payments", json=body).json()["status"] == "settled"
        returned = operator.post(f"/v1/payments/{body['uetr']}/return", json={"reason": "FRAD"})
        told = [n for n in b.get("/v1/mailbox", params={"limit": 500}).json()
                if n["uetr"] == body["uetr"]]
    assert returned.status_code == 200, returned.text
    assert [(n["kind"], n["status"]) for n in told] == [
        ("incoming_payment", "settled"), ("status_report", "returned")]


def test_an_indirect_creditor_agent_returns_through_its_sponsor_only(live_server):
    from scopay.client import KeyFile, ScopayClient, new_private_key
    from scopay.domain.participant import Role

    indirect = next(p.bic for p in live_server.engine.participants.values()
                    if p.role == Role.INDIRECT and p.sponsor_bic == BANK_A)
    private = new_private_key()
    with live_server.client(OPERATOR) as operator:
        key_id = operator.post(f"/v1/participants/{indirect}/keys", json={
            "public_key": KeyFile("x", indirect, private).public_key}).json()["key_id"]
    body = payment("3.00", debtor=BANK_B, creditor=indirect)
    with live_server.client(BANK_B) as b, live_server.client(BANK_A) as sponsor, \
            ScopayClient(live_server.url, KeyFile(key_id, indirect, private)) as client:
        assert b.post("/v1/payments", json=body).json()["status"] == "settled"
        refused = client.post(f"/v1/payments/{body['uetr']}/return", json={"reason": "AC04"})
        returned = sponsor.post(f"/v1/payments/{body['uetr']}/return", json={"reason": "AC04"})
    assert refused.status_code == 404
    assert returned.status_code == 200, returned.text


def test_a_cancellation_says_who_cancelled(live_server):
    body = payment("90000000.00")
    with live_server.client(BANK_A) as a:
        assert a.post("/v1/payments", json=body).json()["status"] == "queued"
        cancelled = a.post(f"/v1/payments/{body['uetr']}/cancel").json()
    assert cancelled["history"][-1]["detail"] == f"cancelled by its sender {BANK_A}"


def test_a_return_text_that_mimics_the_references_does_not_break_the_returners_message(
        live_server):
    body = payment("3.00")
    with live_server.client(BANK_A) as a, live_server.client(BANK_B) as b:
        assert a.post("/v1/payments", json=body).json()["status"] == "settled"
        mimic = "(pacs.004 " + "X" * 40 + ", return " + "Y" * 40 + ")"
        assert b.post(f"/v1/payments/{body['uetr']}/return",
                      json={"reason": "AC04", "text": mimic}).status_code == 200
        told = next(n for n in b.get("/v1/mailbox", params={"limit": 500}).json()
                    if n["uetr"] == body["uetr"] and n["status"] == "returned")
        fetched = b.get(f"/v1/mailbox/{told['seq']}/message")
    assert fetched.status_code == 200, fetched.text
