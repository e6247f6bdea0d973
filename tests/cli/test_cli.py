"""The scopay command line, run in-process on a real database file."""

import json
import stat

import pytest
from typer.testing import CliRunner

from scopay.cli.main import app
from scopay.engine.engine import Engine
from scopay.store.sqlite import SQLiteStore

runner = CliRunner()


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "cli.db"
    result = runner.invoke(app, ["init", "--db", str(path)])
    assert result.exit_code == 0, result.output
    return path


def words(text):
    """Output with rich's line wrapping undone."""
    return " ".join(text.split())


def balances_json(db):
    result = runner.invoke(app, ["balances", "--db", str(db), "--json"])
    assert result.exit_code == 0, result.output
    return {row["account_id"]: row for row in json.loads(result.output)}


def test_help_explains_every_command():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("init", "serve", "transfer", "balances", "reconcile", "credentials"):
        assert command in result.output


def test_init_seeds_network_and_writes_a_private_operator_token(db):
    token = db.with_name("operator.token")
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    key_id, _, secret = token.read_text().strip().partition(".")
    store = SQLiteStore(db, lock=False)
    try:
        participant, digest, revoked = store.credential(key_id)
    finally:
        store.close()
    assert participant == "SCOPCNX0" and revoked is None
    assert secret not in digest  # only the hash is stored


def test_init_twice_changes_nothing(db):
    before = balances_json(db)
    result = runner.invoke(app, ["init", "--db", str(db)])
    assert result.exit_code == 1
    assert balances_json(db) == before


def test_transfer_moves_money_and_reconcile_proves_it(db):
    before = balances_json(db)
    result = runner.invoke(app, ["transfer", "11", "12", "250.75", "CNY", "--id", "cli-1",
                                 "--db", str(db)])
    assert result.exit_code == 0, result.output
    after = balances_json(db)
    assert after[11]["currency"] == "CNY"
    assert (float(before[11]["balance"]) - float(after[11]["balance"])) == pytest.approx(250.75)
    check = runner.invoke(app, ["reconcile", "--db", str(db)])
    assert check.exit_code == 0 and "reconciled" in check.output


@pytest.mark.parametrize("amount, currency, code, message", [
    ("1.001", "CNY", 2, "3 decimals"),
    ("-1", "CNY", 2, "plain decimal"),
    ("1.00", "XXX", 2, "unknown currency"),
    ("99999999999.00", "CNY", 1, "insufficient_liquidity"),
])
def test_transfer_refusals_are_clear_and_change_nothing(db, amount, currency, code, message):
    before = balances_json(db)
    result = runner.invoke(app, ["transfer", "--db", str(db), "--", "11", "12", amount,
                                 currency])
    assert result.exit_code == code
    assert message in words(result.output)
    assert balances_json(db) == before


def test_writer_commands_refuse_while_another_process_holds_the_database(db):
    holder = Engine(SQLiteStore(db))
    try:
        result = runner.invoke(app, ["transfer", "11", "12", "1.00", "CNY", "--db", str(db)])
    finally:
        holder.close()
    assert result.exit_code == 2
    assert "open for writing" in words(result.output)
