"""`scopay iso inbox` against a live server: a refusal is one line, and with --fetch --ack a
message whose fetch failed is not acknowledged (it would be lost to its participant)."""

from __future__ import annotations

import uuid

from typer.testing import CliRunner

from scopay.api import iso as iso_module
from scopay.api import signing
from scopay.api.errors import ApiError
from scopay.cli.main import app
from scopay.client import KeyFile, new_private_key, write_key_file

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
