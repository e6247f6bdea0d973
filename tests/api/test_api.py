"""The HTTP API over real loopback HTTP: authentication, scoping, transfers, bad input."""

import concurrent.futures
import re

import pytest

BANK_A, BANK_B, RU_BANK = "DEMACNX0", "DEMBCNX0", "DEMARUX0"
OPERATOR, PBOC = "SCOPCNX0", "PBOCCNBJ"


def transfer_body(server, transfer_id, amount="10.00", debit=BANK_A, credit=BANK_B,
                  currency="CNY", **extra):
    return {"id": transfer_id, "debit_account_id": server.account_of(debit, currency),
            "credit_account_id": server.account_of(credit, currency), "amount": amount,
            "currency": currency, **extra}


def balances(server):
    return {view.account_id: view.posted_minor for view in server.engine.balances()}


def test_health_answers_without_credentials(live_server):
    with live_server.client(None) as client:
        body = client.get("/health").json()
    assert body["status"] == "ok"
    assert body["participants"] == len(live_server.engine.participants)


def test_unsigned_pages_tell_nothing_of_the_traffic(live_server):
    """/health and / are for anyone who reaches the port: a payment between two banks must
    change nothing they show."""
    with live_server.client(None) as client:
        before = client.get("/health").json(), client.get("/").text
        with live_server.client(BANK_A) as bank:
            answer = bank.post("/v1/transfers",
                               json=transfer_body(live_server, "unseen-traffic", "1.00"))
            assert answer.status_code == 201, answer.text
        assert client.get("/health").json() == before[0]
        assert client.get("/").text == before[1]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_api_docs_load_nothing_from_outside_scopay(live_server, page):
    """A central bank's network reaches no CDN: /docs and /redoc name only scopay's own
    files (and its OpenAPI document), which scopay serves."""
    with live_server.client(None) as client:
        html = client.get(page)
        assert html.status_code == 200 and "text/html" in html.headers["content-type"]
        sources = re.findall(r"""(?:src|href|url)\s*[:=]\s*['"]([^'"]+)['"]""", html.text)
        assert sources and all(s.startswith("/") for s in sources), sources
        for source in sources:
            assert client.get(source).status_code == 200, source


def test_every_v1_route_needs_a_signed_request(live_server):
    with live_server.client(None) as client:
        for path in ("/v1/participants", "/v1/accounts", "/v1/accounts/11"):
            answer = client.get(path)
            assert answer.status_code == 401
            assert answer.headers["content-type"] == "application/problem+json"


def test_openapi_document_lists_the_routes(live_server):
    with live_server.client(None) as client:
        paths = client.get("/openapi.json").json()["paths"]
    assert {"/health", "/v1/accounts", "/v1/transfers", "/v1/transfers/batch"} <= set(paths)


def test_openapi_document_names_the_signing_headers_and_the_xml_bodies(live_server):
    with live_server.client(None) as client:
        document = client.get("/openapi.json").json()
    schemes = document["components"]["securitySchemes"]
    assert {s["name"] for s in schemes.values()} == {
        "X-Scopay-Key-Id", "X-Scopay-Timestamp", "X-Scopay-Nonce", "X-Scopay-Signature"}
    iso = document["paths"]["/v1/iso20022"]["post"]
    assert set(iso["requestBody"]["content"]) == {"application/xml"}
    assert set(iso["responses"]["200"]["content"]) == {"application/xml"}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if not path.startswith("/v1/"):
                continue
            assert set(operation["security"][0]) == set(schemes), (method, path)
            headers = {p["name"] for p in operation.get("parameters", ()) if p["in"] == "header"}
            assert ("Idempotency-Key" in headers) == (method != "get"), (method, path)


def test_participant_sees_only_its_own_accounts(live_server):
    with live_server.client(BANK_A) as client:
        owners = {account["owner_bic"] for account in client.get("/v1/accounts").json()}
        foreign = client.get(f"/v1/accounts/{live_server.account_of(BANK_B, 'CNY')}")
        missing = client.get("/v1/accounts/999999")
    assert owners == {BANK_A}
    assert foreign.status_code == missing.status_code == 404
    detail = foreign.json()["detail"]
    assert detail.startswith("no account") and "visible" in detail


def test_settlement_agent_sees_its_currency_and_operator_sees_all(live_server):
    with live_server.client(PBOC) as client:
        currencies = {a["currency"] for a in client.get("/v1/accounts").json()}
    with live_server.client(OPERATOR) as client:
        everything = client.get("/v1/accounts").json()
    assert currencies == {"CNY"}
    assert len(everything) == len(live_server.engine.accounts)


def test_transfer_settles_and_resubmission_returns_the_first_outcome(live_server):
    body = transfer_body(live_server, "api-1", "125.50")
    with live_server.client(BANK_A) as client:
        first = client.post("/v1/transfers", json=body)
        again = client.post("/v1/transfers", json=body)
        changed = client.post("/v1/transfers", json={**body, "amount": "125.51"})
        seen = client.get("/v1/transfers/api-1")
    assert first.status_code == 201 and first.json()["status"] == "accepted"
    assert again.json() == first.json()
    assert changed.status_code == 409
    assert changed.json()["rejection"] == "exists_with_different_amount"
    assert seen.json()["timestamp_us"] == first.json()["timestamp_us"]


def test_transfers_with_a_slash_in_their_id_are_found_by_it(live_server):
    with live_server.client(BANK_A) as client:
        assert client.post("/v1/transfers", json=transfer_body(
            live_server, "invoice/2026/7", "1.00")).status_code == 201
        escaped = client.get("/v1/transfers/invoice%2F2026%2F7")
        plain = client.get("/v1/transfers/invoice/2026/7")
        payment = client.post("/v1/payments", json={
            "uetr": "0b0d8d1e-2a57-4c1e-9e52-6a1f0c3c7a11", "instruction_id": "SLASH-1",
            "end_to_end_id": "SLASH-1", "debtor_agent": BANK_A, "creditor_agent": BANK_B,
            "debtor": {"name": "A"}, "creditor": {"name": "B"}, "amount": "1.00",
            "currency": "CNY"})
        assert payment.json()["status"] == "settled", payment.text
        settled_payment = client.get("/v1/transfers/pay/0b0d8d1e-2a57-4c1e-9e52-6a1f0c3c7a11")
    assert escaped.status_code == plain.status_code == 200, escaped.text
    assert escaped.json()["id"] == plain.json()["id"] == "invoice/2026/7"
    assert settled_payment.status_code == 200, settled_payment.text
    assert settled_payment.json()["id"] == "pay/0b0d8d1e-2a57-4c1e-9e52-6a1f0c3c7a11"


def test_participant_cannot_debit_a_foreign_account(live_server):
    body = transfer_body(live_server, "steal-1", debit=BANK_B, credit=BANK_A)
    before = balances(live_server)
    with live_server.client(BANK_A) as client:
        answer = client.post("/v1/transfers", json=body)
    assert answer.status_code == 404
    assert balances(live_server) == before


@pytest.mark.parametrize("change, status, fragment", [
    ({"amount": "1.234"}, 422, "3 decimals"),
    ({"amount": "-5.00"}, 422, "plain decimal"),
    ({"amount": "1e3"}, 422, "plain decimal"),
    ({"amount": 10.5}, 422, "valid string"),
    ({"amount": "0"}, 422, "amount must be positive"),
    ({"currency": "XYZ"}, 422, "unknown currency"),
    ({"id": "x" * 65}, 422, "id"),
    ({"id": "bad id"}, 422, "id"),
    ({"credit_account_id": 999_999}, 404, "credit account"),
    ({"unexpected": 1}, 422, "unexpected"),
])
def test_bad_transfer_input_is_refused_clearly_and_changes_nothing(live_server, change, status,
                                                                 fragment, request):
    transfer_id = "bad-" + request.node.callspec.id.replace("[", "").replace("]", "")
    transfer_id = "".join(c if c.isalnum() or c == "-" else "." for c in transfer_id)[:60]
    body = {**transfer_body(live_server, transfer_id), **change}
    before = balances(live_server)
    with live_server.client(BANK_A) as client:
        answer = client.post("/v1/transfers", json=body)
    assert answer.status_code == status, answer.text
    assert fragment in answer.json()["detail"]
    assert balances(live_server) == before
    assert live_server.engine.store.journal_entry(body["id"]) is None


def test_cross_currency_transfer_is_refused(live_server):
    body = {"id": "x-ccy", "debit_account_id": live_server.account_of(BANK_A, "CNY"),
            "credit_account_id": live_server.account_of(RU_BANK, "RUB"), "amount": "1.00",
            "currency": "CNY"}
    with live_server.client(BANK_A) as client:
        answer = client.post("/v1/transfers", json=body)
    assert answer.json()["rejection"] == "accounts_must_have_same_currency"


def test_malformed_json_is_refused(live_server):
    with live_server.client(BANK_A) as client:
        answer = client.post("/v1/transfers", content=b"{not json",
                             headers={"content-type": "application/json"})
    assert answer.status_code == 422


def test_oversize_body_is_refused_before_parsing(live_server):
    with live_server.client(BANK_A) as client:
        answer = client.post("/v1/transfers", content=b" " * (5 * 1024 * 1024),
                             headers={"content-type": "application/json"})
    assert answer.status_code == 413


def test_linked_batch_commits_all_or_none(live_server):
    a, b = live_server.account_of(BANK_A, "CNY"), live_server.account_of(BANK_B, "CNY")
    ok = {"id": "chain-1", "debit_account_id": a, "credit_account_id": b, "amount": "1.00",
          "currency": "CNY", "linked": True}
    too_big = {"id": "chain-2", "debit_account_id": a, "credit_account_id": b,
               "amount": "99999999999.00", "currency": "CNY"}
    before = balances(live_server)
    with live_server.client(BANK_A) as client:
        results = client.post("/v1/transfers/batch", json={"transfers": [ok, too_big]}).json()
    assert [r["rejection"] for r in results] == ["linked_event_failed", "insufficient_liquidity"]
    assert balances(live_server) == before


def test_settlement_agent_funds_in_and_out(live_server):
    issuance = live_server.account_of(PBOC, "CNY")
    bank = live_server.account_of(BANK_A, "CNY")
    with live_server.client(PBOC) as client:
        funds_in = client.post("/v1/transfers", json={
            "id": "fin-1", "debit_account_id": issuance, "credit_account_id": bank,
            "amount": "1000.00", "currency": "CNY"})
        funds_out = client.post("/v1/transfers", json={
            "id": "fout-1", "debit_account_id": bank, "credit_account_id": issuance,
            "amount": "400.00", "currency": "CNY"})
        elsewhere = client.post("/v1/transfers", json={
            "id": "fout-2", "debit_account_id": bank,
            "credit_account_id": live_server.account_of(BANK_B, "CNY"), "amount": "1.00",
            "currency": "CNY"})
        unwritable = client.post("/v1/transfers", json={  # 19 digits: no ISO amount
            "id": "fin-2", "debit_account_id": issuance, "credit_account_id": bank,
            "amount": "10000000000000000.00", "currency": "CNY"})
    assert funds_in.status_code == funds_out.status_code == 201
    assert elsewhere.status_code == 404
    assert unwritable.status_code == 422 and "ISO amount" in unwritable.json()["detail"]


def test_concurrent_clients_with_shared_ids_settle_each_transfer_once(live_server):
    bodies = [transfer_body(live_server, f"conc-{n % 40}", "1.00") for n in range(200)]

    def post(body):
        with live_server.client(BANK_A) as client:
            return client.post("/v1/transfers", json=body).json()

    before = live_server.engine.balance(live_server.account_of(BANK_A, "CNY")).posted_minor
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(post, bodies))
    assert all(answer["status"] == "accepted" for answer in answers)
    after = live_server.engine.balance(live_server.account_of(BANK_A, "CNY")).posted_minor
    assert before - after == 40 * 100
    assert live_server.engine.reconcile().ok


def test_revoked_key_is_refused_and_a_rotated_one_works(live_server):
    from scopay.client import KeyFile, ScopayClient, new_private_key

    new_key = new_private_key()
    with live_server.client(OPERATOR) as operator:
        public = KeyFile("x", BANK_B, new_key).public_key
        registered = operator.post(f"/v1/participants/{BANK_B}/keys",
                                   json={"public_key": public}).json()
        rotated = KeyFile(registered["key_id"], BANK_B, new_key)
        with ScopayClient(live_server.url, rotated) as bank:
            assert bank.get("/v1/accounts").status_code == 200
            assert bank.delete(f"/v1/keys/{rotated.key_id}").status_code == 204
            assert bank.get("/v1/accounts").status_code == 401


def test_the_operator_cannot_revoke_its_last_key(live_server):
    from scopay.client import KeyFile, ScopayClient, new_private_key

    last = live_server.keys[OPERATOR].key_id
    private = new_private_key()
    with live_server.client(OPERATOR) as operator:
        refused = operator.delete(f"/v1/keys/{last}")
        second = operator.post(f"/v1/participants/{OPERATOR}/keys", json={
            "public_key": KeyFile("x", OPERATOR, private).public_key}).json()["key_id"]
        with ScopayClient(live_server.url, KeyFile(second, OPERATOR, private)) as other:
            assert other.get("/v1/accounts").status_code == 200
            assert other.delete(f"/v1/keys/{second}").status_code == 204  # one is left
        refused_again = operator.delete(f"/v1/keys/{last}")
        still = operator.get("/v1/accounts")
    assert refused.status_code == refused_again.status_code == 409
    assert "last key" in refused.json()["detail"]
    assert still.status_code == 200


def test_only_the_operator_reconciles(live_server):
    with live_server.client(BANK_A) as bank, live_server.client(OPERATOR) as operator:
        assert bank.post("/v1/reconcile").status_code == 403
        report = operator.post("/v1/reconcile").json()
    assert report["ok"] is True and report["mismatches"] == []
