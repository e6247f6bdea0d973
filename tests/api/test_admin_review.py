"""The operator's and settlement agents' routes, as a review over real HTTP found them
wanting: amounts beyond what ISO 20022 can write, a primary-office BIC admitted beside its
institution, and the operator suspending itself."""

import uuid

import pytest

from scopay.client import KeyFile, new_private_key

OPERATOR, PBOC, BANK_A = "SCOPCNX0", "PBOCCNBJ", "DEMACNX0"
NINETEEN_DIGITS = "10000000000000000.00"  # one digit past an ISO 20022 amount


@pytest.mark.parametrize("route", ["/v1/funds-in", "/v1/funds-out"])
def test_central_bank_money_past_18_digits_is_refused_and_moves_nothing(live_server, route):
    account = live_server.account_of(BANK_A, "CNY")
    before = live_server.engine.balances()
    with live_server.client(PBOC) as agent:
        answer = agent.post(route, json={"id": "big-" + uuid.uuid4().hex[:8],
                                         "account_id": account, "amount": NINETEEN_DIGITS})
    assert answer.status_code == 422, answer.text
    assert answer.json()["title"] == "Invalid amount"
    assert live_server.engine.balances() == before


def test_a_credit_line_past_18_digits_is_refused(live_server):
    account = live_server.account_of(BANK_A, "CNY")
    floor = live_server.engine.balance(account).floor_minor
    with live_server.client(OPERATOR) as operator:
        answer = operator.put(f"/v1/accounts/{account}/credit-line",
                              json={"credit_line": NINETEEN_DIGITS})
    assert answer.status_code == 422, answer.text
    assert live_server.engine.balance(account).floor_minor == floor


def test_an_account_opened_with_a_credit_line_past_18_digits_is_refused(live_server):
    accounts = len(live_server.engine.accounts)
    with live_server.client(OPERATOR) as operator:
        answer = operator.post("/v1/accounts", json={
            "owner_bic": "DEMARUX0", "currency": "CNY", "credit_line": NINETEEN_DIGITS})
    assert answer.status_code == 422, answer.text
    assert len(live_server.engine.accounts) == accounts


def test_a_primary_office_bic11_is_not_admitted_beside_its_institution(live_server):
    with live_server.client(OPERATOR) as operator:
        answer = operator.post("/v1/participants", json={
            "bic": "DEMACNX0XXX", "name": "Look-alike", "role": "direct_participant",
            "country": "CN", "tier": "member"})
    assert answer.status_code == 409, answer.text
    assert "DEMACNX0XXX" not in live_server.engine.participants


def test_the_operator_cannot_suspend_itself(live_server):
    with live_server.client(OPERATOR) as operator:
        answer = operator.post(f"/v1/participants/{OPERATOR}/suspend")
    assert answer.status_code == 409, answer.text
    assert live_server.engine.participants[OPERATOR].status == "active"


def test_a_bank_cannot_pay_money_into_a_central_banks_issuance_account(live_server):
    issuance = next(a.id for a in live_server.engine.accounts.values()
                    if a.owner_bic == PBOC and a.kind == "issuance")
    before = live_server.engine.balances()
    with live_server.client(BANK_A) as bank:
        for kind in ("posted", "pending"):
            answer = bank.post("/v1/transfers", json={
                "id": "to-issuance-" + uuid.uuid4().hex[:8], "kind": kind,
                "debit_account_id": live_server.account_of(BANK_A, "CNY"),
                "credit_account_id": issuance, "amount": "1.00", "currency": "CNY"})
            assert answer.status_code == 404, answer.text
    assert live_server.engine.balances() == before


@pytest.mark.parametrize("creditor", ["missing", "rub", "issuance", "itself"])
def test_a_bilateral_limit_must_name_another_settlement_account_of_the_currency(
        live_server, creditor):
    accounts = live_server.engine.accounts
    own = live_server.account_of(BANK_A, "CNY")
    named = {"missing": 999_999, "rub": live_server.account_of("DEMARUX0", "RUB"),
             "issuance": next(a.id for a in accounts.values()
                              if a.owner_bic == PBOC and a.kind == "issuance"),
             "itself": own}[creditor]
    before = live_server.engine.rtgs.policies.get(own)
    with live_server.client(BANK_A) as bank:
        answer = bank.put(f"/v1/accounts/{own}/policy",
                          json={"bilateral_limits": {str(named): "10.00"}})
    assert answer.status_code == 422, answer.text
    assert "no other settlement account in CNY" in answer.json()["detail"]
    assert live_server.engine.rtgs.policies.get(own) == before


def test_an_issuance_account_has_no_policy(live_server):
    issuance = next(a.id for a in live_server.engine.accounts.values()
                    if a.owner_bic == PBOC and a.kind == "issuance")
    with live_server.client(OPERATOR) as operator:
        answer = operator.put(f"/v1/accounts/{issuance}/policy", json={"reserved_urgent": "1"})
    assert answer.status_code == 422, answer.text
    assert issuance not in live_server.engine.rtgs.policies


def test_a_suspended_settlement_agent_is_forbidden_to_move_money(live_server):
    account = live_server.account_of(BANK_A, "CNY")
    before = live_server.engine.balances()
    with live_server.client(OPERATOR) as operator, live_server.client(PBOC) as agent:
        assert operator.post(f"/v1/participants/{PBOC}/suspend").status_code == 204
        try:
            answer = agent.post("/v1/funds-in", json={"id": "while-suspended",
                                                      "account_id": account, "amount": "1.00"})
        finally:
            assert operator.post(f"/v1/participants/{PBOC}/reinstate").status_code == 204
    assert answer.status_code == 403, answer.text
    assert live_server.engine.balances() == before


@pytest.mark.parametrize("body, reason", [
    ({"bic": "CITIUS33", "country": "US", "tier": "member"}, "no SCO member"),
    ({"bic": "QQQQQQ22", "country": "QQ", "tier": "member"}, "no SCO member"),
    ({"bic": "KHANMNUB", "country": "MN", "tier": "member"}, "observer state"),
    ({"bic": "NBKZKZ22", "country": "KZ", "tier": "member", "role": "settlement_agent",
      "settlement_currency": "USD"}, "issues KZT"),
])
def test_admission_follows_the_reference_data_of_the_states(live_server, body, reason):
    request = {"name": "Applicant", "role": "direct_participant", **body}
    with live_server.client(OPERATOR) as operator:
        answer = operator.post("/v1/participants", json=request)
    assert answer.status_code == 409, answer.text
    assert reason in answer.json()["detail"]
    assert body["bic"] not in live_server.engine.participants


def test_registering_the_same_public_key_again_gives_its_id_and_no_second_one(live_server):
    """A retry whose first answer was lost (a crash between commit and answer) must not leave
    a second, unknown id that outlives the revocation of the one the operator was told."""
    public_key = KeyFile("unused", BANK_A, new_private_key()).public_key
    with live_server.client(OPERATOR) as operator:
        first = operator.post(f"/v1/participants/{BANK_A}/keys", json={"public_key": public_key})
        again = operator.post(f"/v1/participants/{BANK_A}/keys", json={"public_key": public_key})
        elsewhere = operator.post("/v1/participants/DEMBCNX0/keys",
                                  json={"public_key": public_key})
        assert operator.delete(f"/v1/keys/{first.json()['key_id']}").status_code == 204
        revoked = operator.post(f"/v1/participants/{BANK_A}/keys",
                                json={"public_key": public_key})
    assert first.status_code == again.status_code == 201
    assert again.json()["key_id"] == first.json()["key_id"]
    assert [k for k, (_, key, _) in live_server.engine.keys.items() if key == public_key] == [
        first.json()["key_id"]]
    assert elsewhere.status_code == 409 and "another participant" in elsewhere.json()["detail"]
    assert revoked.status_code == 409 and "revoked" in revoked.json()["detail"]


def test_a_batch_may_make_a_reservation_and_post_it(live_server):
    pending = "res-" + uuid.uuid4().hex[:8]
    a, b = live_server.account_of(BANK_A, "CNY"), live_server.account_of("DEMBCNX0", "CNY")
    before = live_server.engine.balance(b).posted_minor
    with live_server.client(BANK_A) as bank:
        answer = bank.post("/v1/transfers/batch", json={"transfers": [
            {"id": pending, "kind": "pending", "debit_account_id": a, "credit_account_id": b,
             "amount": "2.00", "currency": "CNY", "timeout_s": 60, "linked": True},
            {"id": pending + "-post", "kind": "post_pending", "pending_id": pending,
             "debit_account_id": a, "credit_account_id": b, "amount": "2.00",
             "currency": "CNY"}]})
    assert answer.status_code == 200, answer.text
    assert [t["status"] for t in answer.json()] == ["accepted", "accepted"]
    assert live_server.engine.balance(b).posted_minor == before + 200
