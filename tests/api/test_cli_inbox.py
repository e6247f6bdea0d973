"""The command line against a live server: `scopay iso inbox` tells a refusal in one line,
and with --fetch --ack leaves a message whose fetch failed unacknowledged (it would be lost
to its participant); `scopay keys issue --url` onboards a bank while scopay runs."""

from __future__ import annotations

import uuid

from typer.testing import CliRunner

from scopay.api import iso as iso_module
from scopay.api import signing
from scopay.api.errors import ApiError
from scopay.cli.main import app
from scopay.client import KeyFile, ScopayClient, new_private_key, read_key_file, write_key_file

BANK_A, BANK_B = "DEMACNX0", "DEMBCNX0"
runner = CliRunner()


def key_file_of(live_server, bic: str, tmp_path) -> tuple[str, str]:
    """A fresh key registered for `bic`, in a key file: (its id, the file's path)."""
    key = KeyFile(signing.new_key_id(), bic, new_private_key())
    live_server.engine.register_key(key.key_id, bic, key.public_key, 3)
    path = tmp_path / f"{bic}-{key.key_id}.key"
    write_key_file(path, key)
    return key.key_id, str(path)


def unacked(live_server, bic: str) -> set[int]:
    with live_server.client(bic) as client:
        return {n["seq"] for n in client.get("/v1/mailbox", params={"limit": 500}).json()}


def test_a_revoked_key_is_told_in_one_line(live_server, tmp_path):
    key_id, path = key_file_of(live_server, BANK_B, tmp_path)
    live_server.engine.revoke_key(key_id, 4)
    result = runner.invoke(app, ["iso", "inbox", "--key", path, "--url", live_server.url])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)  # no traceback
    assert "401" in " ".join(result.output.split())


def test_a_message_whose_fetch_fails_is_not_acknowledged(live_server, tmp_path, monkeypatch):
    with live_server.client(BANK_A) as a:
        for _ in range(2):
            body = {"uetr": str(uuid.uuid4()), "instruction_id": uuid.uuid4().hex[:16],
                    "end_to_end_id": "E2E", "debtor_agent": BANK_A, "creditor_agent": BANK_B,
                    "debtor": {"name": "A"}, "creditor": {"name": "B"}, "amount": "1.00",
                    "currency": "CNY"}
            assert a.post("/v1/payments", json=body).status_code == 201
    waiting = sorted(unacked(live_server, BANK_B))
    failing = waiting[-1]
    render = iso_module._mailbox_message

    def fails_for_one(seq, caller, request):
        if seq == failing:
            raise ApiError(500, "Broken", "this message could not be written")
        return render(seq, caller, request)

    monkeypatch.setattr(iso_module, "_mailbox_message", fails_for_one)
    _, path = key_file_of(live_server, BANK_B, tmp_path)
    result = runner.invoke(app, ["iso", "inbox", "--key", path, "--url", live_server.url,
                                 "--fetch", "--ack"])
    assert result.exit_code == 1, result.output
    assert f"message {failing} not fetched" in " ".join(result.output.split())
    assert unacked(live_server, BANK_B) == {failing}


def test_the_inbox_shows_a_notification_of_several_entries_by_its_first_and_last(
        live_server, tmp_path):
    prefix = "inb-" + uuid.uuid4().hex[:8]
    debit, credit = live_server.account_of(BANK_A, "CNY"), live_server.account_of(BANK_B, "CNY")
    with live_server.client(BANK_A) as a:
        sent = a.post("/v1/transfers/batch", json={"transfers": [
            {"id": f"{prefix}-{n}", "debit_account_id": debit, "credit_account_id": credit,
             "amount": "0.10", "currency": "CNY"} for n in range(3)]})
        assert sent.status_code == 200, sent.text
    _, path = key_file_of(live_server, BANK_A, tmp_path)
    result = runner.invoke(app, ["iso", "inbox", "--key", path, "--url", live_server.url],
                           env={"COLUMNS": "250"})  # the table's cells unfolded
    assert result.exit_code == 0, result.output
    assert f"{prefix}-0 ... {prefix}-2" in result.output


def test_a_key_is_issued_through_the_running_server(live_server, tmp_path):
    """Onboarding a bank while scopay runs: keys issue --url registers the key through the
    API (signed by the operator) and writes the private half; the bank then signs with it."""
    operator_key = tmp_path / "operator.key"
    write_key_file(operator_key, live_server.keys["SCOPCNX0"])
    out = tmp_path / "demb.key"
    result = runner.invoke(app, ["keys", "issue", BANK_B, "--out", str(out), "--url",
                                 live_server.url, "--key", str(operator_key)])
    assert result.exit_code == 0, result.output
    made = read_key_file(out)
    assert made.participant_bic == BANK_B and made.key_id in live_server.engine.keys
    assert not list(tmp_path.glob(".*pending"))
    with ScopayClient(live_server.url, made) as bank:
        assert bank.get(f"/v1/participants/{BANK_B}").status_code == 200
    refused = runner.invoke(app, ["keys", "issue", "ZZZZCNX0", "--out",
                                  str(tmp_path / "nobody.key"), "--url", live_server.url,
                                  "--key", str(operator_key)])
    assert refused.exit_code == 1 and "404" in " ".join(refused.output.split())
    assert not (tmp_path / "nobody.key").exists() and not list(tmp_path.glob(".*pending"))


def test_call_shows_the_status_of_an_answer_without_a_body(live_server, tmp_path):
    operator_key = tmp_path / "operator.key"
    write_key_file(operator_key, live_server.keys["SCOPCNX0"])
    account = next(a.id for a in live_server.engine.accounts.values()
                   if a.owner_bic == BANK_B and a.currency == "CNY")
    result = runner.invoke(app, ["call", "PUT", f"/v1/accounts/{account}/credit-line",
                                 "--data", '{"credit_line": "0.00"}', "--key",
                                 str(operator_key), "--url", live_server.url])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "204 No Content"


def test_keys_issue_url_never_writes_over_a_key_file_that_appeared_meanwhile(
        live_server, tmp_path, monkeypatch):
    operator_key = tmp_path / "operator.key"
    write_key_file(operator_key, live_server.keys["SCOPCNX0"])
    out = tmp_path / "demb.key"
    register = live_server.engine.register_key

    def appearing(*args, **kwargs):  # another key file lands at --out during the request
        out.write_text("a key in use\n")
        return register(*args, **kwargs)

    monkeypatch.setattr(live_server.engine, "register_key", appearing)
    result = runner.invoke(app, ["keys", "issue", BANK_B, "--out", str(out), "--url",
                                 live_server.url, "--key", str(operator_key)])
    assert result.exit_code == 2 and "appeared meanwhile" in " ".join(result.output.split())
    assert out.read_text() == "a key in use\n"
    (kept,) = tmp_path.glob(f".{out.name}.*")  # its private half, kept beside
    assert read_key_file(kept).key_id in live_server.engine.keys


def test_keys_issue_url_keeps_a_key_it_cannot_tell_is_registered_and_takes_it_up_again(
        live_server, tmp_path, monkeypatch):
    """A server error (a gateway's 504, say) may hide a registration: the pending key stays,
    and the same command run again registers that same public key (once: the same id) and
    finishes."""
    operator_key = tmp_path / "operator.key"
    write_key_file(operator_key, live_server.keys["SCOPCNX0"])
    out = tmp_path / "demb.key"
    register = live_server.engine.register_key
    calls = []

    def registers_then_fails(*args, **kwargs):
        calls.append(register(*args, **kwargs))
        raise RuntimeError("the answer is lost on its way back")

    command = ["keys", "issue", BANK_B, "--out", str(out), "--url", live_server.url,
               "--key", str(operator_key)]
    with monkeypatch.context() as failing:
        failing.setattr(live_server.engine, "register_key", registers_then_fails)
        first = runner.invoke(app, command)
    assert first.exit_code != 0 and "may be registered" in " ".join(first.output.split())
    assert not out.exists()
    (pending,) = tmp_path.glob(f".{out.name}.pending")
    again = runner.invoke(app, command)
    assert again.exit_code == 0, again.output
    made = read_key_file(out)
    assert made.key_id == calls[0]  # the key registered by the first run, finished
    assert not pending.exists()


def test_the_example_messages_validate_and_do_what_they_say(live_server, tmp_path, xsd):
    """`scopay iso example` writes a pacs.008 the server settles, a camt.056 and a pacs.004
    of a payment by its UETR; each is valid against the official schema."""
    from lxml import etree

    from scopay.iso20022.message import parse_message

    def example(*args: str) -> bytes:
        path = tmp_path / f"{uuid.uuid4().hex}.xml"
        result = runner.invoke(app, ["iso", "example", *args, "--out", str(path)])
        assert result.exit_code == 0, result.output
        assert runner.invoke(app, ["iso", "validate", str(path)]).exit_code == 0
        return path.read_bytes()

    def send(bic: str, data: bytes) -> object:
        _, path = key_file_of(live_server, bic, tmp_path)
        message = tmp_path / "sent.xml"
        message.write_bytes(data)
        result = runner.invoke(app, ["iso", "send", str(message), "--key", path,
                                     "--url", live_server.url])
        assert result.exit_code == 0, result.output
        return parse_message(result.output.encode())[1]

    pay = example("pacs.008", "--amount", "12.34")
    _, message = parse_message(pay)
    assert xsd("pacs.008.001.08").validate(etree.fromstring(pay))
    (paid,) = message.payments
    assert (paid.debtor_agent, paid.creditor_agent, paid.settlement_amount_minor) == (
        BANK_A, BANK_B, 1_234)
    assert [t.status.value for t in send(BANK_A, pay).transactions] == ["ACSC"]
    again = example("pacs.008")
    assert parse_message(again)[1].payments[0].uetr != paid.uetr  # fresh ids each time

    cancel = example("camt.056", "--uetr", paid.uetr)  # settled already: ARDT
    assert xsd("camt.056.001.09").validate(etree.fromstring(cancel))
    assert [t.reason_code for t in send(BANK_A, cancel).transactions] == ["ARDT"]
    back = example("pacs.004", "--uetr", paid.uetr, "--amount", "12.34")
    assert xsd("pacs.004.001.09").validate(etree.fromstring(back))
    assert [t.status.value for t in send(BANK_B, back).transactions] == ["ACSC"]
    assert live_server.engine.payment(paid.uetr).status.value == "returned"


def test_an_example_without_what_it_needs_is_refused_in_one_line():
    for args, says in ((["camt.056"], "give --uetr"), (["pacs.002"], "no example of"),
                       (["pacs.008", "--amount", "1.001"], "3 decimals")):
        result = runner.invoke(app, ["iso", "example", *args])
        assert result.exit_code == 2 and says in " ".join(result.output.split())
