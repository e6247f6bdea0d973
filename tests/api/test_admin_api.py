"""Operator and settlement-agent routes over real HTTP."""

import uuid

OPERATOR, PBOC, BANK_A, BANK_B = "SCOPCNX0", "PBOCCNBJ", "DEMACNX0", "DEMBCNX0"


def test_operator_admits_a_bank_opens_its_account_and_sets_a_credit_line(live_server):
    with live_server.client(OPERATOR) as operator, live_server.client(BANK_A) as bank:
        assert bank.post("/v1/participants", json={
            "bic": "ICBKCNBJ", "name": "x", "role": "direct_participant", "country": "CN",
            "tier": "member"}).status_code == 403
        admitted = operator.post("/v1/participants", json={
            "bic": "ICBKCNBJ", "name": "Industrial and Commercial Bank of China",
            "role": "direct_participant", "country": "CN", "tier": "member"})
        assert admitted.status_code == 201, admitted.text
        again = operator.post("/v1/participants", json={
            "bic": "ICBKCNBJ", "name": "x", "role": "direct_participant", "country": "CN",
            "tier": "member"})
        assert again.status_code == 409 and "exists" in again.json()["detail"]
        opened = operator.post("/v1/accounts", json={"owner_bic": "ICBKCNBJ",
                                                      "currency": "CNY"}).json()
        line = operator.put(f"/v1/accounts/{opened['account_id']}/credit-line",
                            json={"credit_line": "500.00"})
        assert line.status_code == 204
        account = operator.get(f"/v1/accounts/{opened['account_id']}").json()
    assert account["floor"] == "-500.00" and account["available"] == "0.00"


def test_observer_state_cannot_have_a_settlement_agent(live_server):
    with live_server.client(OPERATOR) as operator:
        answer = operator.post("/v1/participants", json={
            "bic": "BOMUMNUB", "name": "Bank of Mongolia", "role": "settlement_agent",
            "country": "MN", "tier": "observer", "settlement_currency": "MNT"})
    assert answer.status_code == 409


def test_settlement_agent_moves_money_in_and_out_of_its_currency_only(live_server):
    bank = live_server.account_of(BANK_A, "CNY")
    ru_bank = live_server.account_of("DEMARUX0", "RUB")
    before = live_server.engine.balance(bank).posted_minor
    with live_server.client(PBOC) as agent, live_server.client(BANK_A) as not_agent:
        assert agent.post("/v1/funds-in", json={"id": "fi-1", "account_id": bank,
                                                "amount": "100.00"}).status_code == 201
        assert agent.post("/v1/funds-out", json={"id": "fo-1", "account_id": bank,
                                                 "amount": "40.00"}).status_code == 201
        assert agent.post("/v1/funds-in", json={"id": "fi-2", "account_id": ru_bank,
                                                "amount": "1.00"}).status_code == 404
        refused = not_agent.post("/v1/funds-in", json={"id": "fi-3", "account_id": bank,
                                                       "amount": "1.00"})
        assert refused.status_code == 403  # its role moves no central-bank money, anywhere
        assert "only a settlement agent" in refused.json()["detail"]
    assert live_server.engine.balance(bank).posted_minor == before + 6_000


def test_suspended_bank_cannot_pay_and_is_reinstated(live_server):
    def pay():
        return {"uetr": str(uuid.uuid4()), "instruction_id": uuid.uuid4().hex[:12],
                "end_to_end_id": "e", "debtor_agent": BANK_B, "creditor_agent": BANK_A,
                "debtor": {"name": "d"}, "creditor": {"name": "c"}, "amount": "1.00",
                "currency": "CNY"}

    with live_server.client(OPERATOR) as operator, live_server.client(BANK_B) as bank:
        assert operator.post(f"/v1/participants/{BANK_B}/suspend").status_code == 204
        refused = bank.post("/v1/payments", json=pay())
        assert operator.post(f"/v1/participants/{BANK_B}/reinstate").status_code == 204
        accepted = bank.post("/v1/payments", json=pay())
    assert refused.status_code == 403
    assert f"{BANK_B} is suspended" in refused.json()["detail"]  # why, in words to act on
    assert accepted.status_code == 201 and accepted.json()["status"] == "settled"


def test_suspending_or_reinstating_an_unknown_participant_is_not_found(live_server):
    with live_server.client(OPERATOR) as operator:
        for action in ("suspend", "reinstate"):
            answer = operator.post(f"/v1/participants/ZZZZCNX0/{action}")
            assert answer.status_code == 404, answer.text
            assert answer.json()["type"] == "/problems/not-found"


def test_an_unknown_route_is_not_found_in_the_documented_shape(live_server):
    with live_server.client(BANK_A) as bank:
        answer = bank.get("/v1/no-such-route")
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/problem+json"
    assert (answer.json()["type"], answer.json()["title"]) == ("/problems/not-found",
                                                               "Not found")
