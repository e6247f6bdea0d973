"""The command line facing a newcomer's mistakes, as a review following the docs found it:
each is one clear line and a non-zero exit, never a traceback, and changes nothing."""

import json
import re
import shutil

import pytest
from typer.testing import CliRunner

from scopay.cli.main import app

runner = CliRunner()
UNREACHABLE = "http://127.0.0.1:1"  # nothing listens on port 1


def balances(db):
    result = runner.invoke(app, ["balances", "--db", str(db), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def one_line_refusal(result, code: int, fragment: str) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and result.exception is None or isinstance(
        result.exception, SystemExit)
    assert fragment in " ".join(result.output.split())


def test_a_negative_amount_is_refused_as_an_amount_not_as_an_option(db):
    before = balances(db)
    result = runner.invoke(app, ["transfer", "11", "12", "-5", "CNY", "--db", str(db)])
    one_line_refusal(result, 2, "plain decimal")
    assert balances(db) == before


@pytest.mark.parametrize("transfer_id", [
    "DEMACNX0:inv-42", "pay/0f1e2d3c-4b5a-4978-8867-5a4b3c2d1e0f", "ret/x"])
def test_a_transfer_id_of_a_participant_or_a_payment_is_refused(db, transfer_id):
    before = balances(db)
    result = runner.invoke(app, ["transfer", "11", "12", "1.00", "CNY", "--id", transfer_id,
                                 "--db", str(db)])
    one_line_refusal(result, 2, "transfer id")
    assert balances(db) == before


def test_a_missing_key_file_is_one_line(tmp_path):
    result = runner.invoke(app, ["call", "GET", "/v1/accounts", "--key",
                                 str(tmp_path / "none.key"), "--url", UNREACHABLE])
    one_line_refusal(result, 2, "cannot read key file")


@pytest.mark.parametrize("content", ["not json", '{"key_id": "k1"}'])
def test_a_file_that_is_no_key_file_is_one_line(tmp_path, content):
    key = tmp_path / "bad.key"
    key.write_text(content)
    key.chmod(0o600)
    result = runner.invoke(app, ["iso", "inbox", "--key", str(key), "--url", UNREACHABLE])
    one_line_refusal(result, 2, "is not a scopay key file")


def test_a_key_file_others_can_read_is_refused(db, tmp_path):
    key = tmp_path / "open.key"
    shutil.copy(db.with_name("operator.key"), key)
    key.chmod(0o644)
    result = runner.invoke(app, ["call", "GET", "/v1/accounts", "--key", str(key),
                                 "--url", UNREACHABLE])
    one_line_refusal(result, 2, "readable by others")


def test_a_server_that_is_not_running_is_one_line(db):
    result = runner.invoke(app, ["call", "GET", "/v1/accounts", "--key",
                                 str(db.with_name("operator.key")), "--url", UNREACHABLE])
    one_line_refusal(result, 2, "cannot reach scopay")


def test_an_unknown_method_is_refused_before_anything_is_sent(db):
    result = runner.invoke(app, ["call", "FOO", "/v1/accounts", "--key",
                                 str(db.with_name("operator.key")), "--url", UNREACHABLE])
    one_line_refusal(result, 2, "method 'FOO'")


@pytest.mark.parametrize("command", [["iso", "validate"], ["iso", "send"]])
def test_a_message_file_that_cannot_be_read_is_one_line(tmp_path, command):
    for path in (tmp_path / "missing.xml", tmp_path):
        result = runner.invoke(app, [*command, str(path)])
        one_line_refusal(result, 2, "cannot read")


def test_balances_print_every_amount_whole_on_a_narrow_screen(db):
    result = runner.invoke(app, ["balances", "--db", str(db)], terminal_width=80)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for row in balances(db):
        line = next(line for line in lines if f" {row['owner_bic']} " in line
                    and f" {row['account_id']} " in line)
        assert row["balance"] in line and row["available"] in line, line
        assert re.fullmatch(r"none|-?[0-9]+(\.[0-9]+)?", line.split()[-1]), line  # the floor


def test_a_database_with_a_second_name_by_hard_link_gets_no_writer(db):
    """The writer's lock sits beside the file's real path; a hard link is another real path
    to the same file, so a writer through it could run beside the first: refused."""
    link = db.with_name("same.db")
    link.hardlink_to(db)
    before = balances(db)
    for path in (db, link):
        result = runner.invoke(app, ["transfer", "11", "12", "1.00", "CNY", "--db", str(path)])
        one_line_refusal(result, 2, "hard links")
    assert balances(db) == before  # reading is still fine


def test_an_amount_past_18_digits_is_refused_as_the_api_refuses_it(db):
    before = balances(db)
    result = runner.invoke(app, ["transfer", "1", "11", "90000000000000000.00", "CNY",
                                 "--db", str(db)])
    one_line_refusal(result, 2, "outside what an ISO amount holds")
    assert balances(db) == before


def test_serve_on_a_port_in_use_says_so_before_anything_else(db):
    """Not a banner saying it serves, then a server error: one line naming the port, the
    way to choose another, and exit 2."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(app, ["serve", "--db", str(db), "--port", str(port)])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    said = " ".join(result.output.split())
    assert f"port {port} on 127.0.0.1 is in use" in said and "--port" in said
    assert "scopay on http" not in said


def test_the_port_check_binds_as_the_server_does():
    """The check before serving binds every address the host names, IPv6 ones IPv6-only, as
    the server's own listening does: a port taken on IPv4 does not stop `--host ::`, and a
    port taken on any address a name resolves to stops that name."""
    import socket

    from scopay.cli.main import why_not_listen

    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert "is in use" in why_not_listen("127.0.0.1", port)
        assert "is in use" in why_not_listen("localhost", port)
        assert why_not_listen("127.0.0.1", 0) is None
        assert "cannot listen" in why_not_listen("256.0.0.1", port)
        try:  # where the machine has IPv6: the IPv4 listener leaves [::]:port free
            with socket.socket(socket.AF_INET6) as v6:
                v6.bind(("::1", 0))
        except OSError:
            return
        assert why_not_listen("::", port) is None
