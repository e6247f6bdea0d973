"""The scopay command line, run in-process on a real database file."""

import json
import sqlite3
import stat
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from schema_versions import undo_journal_ids_in_memory
from scopay.cli.main import app
from scopay.client import read_key_file
from scopay.domain.payment import Party, Payment, PaymentStatus, Priority
from scopay.engine.engine import Engine
from scopay.store.sqlite import SQLiteStore

runner = CliRunner()


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
    for command in ("init", "serve", "transfer", "balances", "reconcile", "keys", "audit",
                    "call"):
        assert command in result.output


def test_init_seeds_network_and_writes_a_private_operator_key(db):
    key_path = db.with_name("operator.key")
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    key = read_key_file(key_path)
    store = SQLiteStore(db, lock=False)
    try:
        participant, public_key, revoked = store.keys()[key.key_id]
    finally:
        store.close()
    assert participant == "SCOPCNX0" and revoked is None
    assert public_key == key.public_key  # only the public half is in the database
    assert json.loads(key_path.read_text())["private_key"] not in db.read_bytes().decode(
        "latin-1")


def test_audit_chain_verifies_and_names_a_tampered_entry(db):
    assert runner.invoke(app, ["transfer", "11", "12", "1.00", "CNY", "--db", str(db)]
                         ).exit_code == 0
    intact = runner.invoke(app, ["audit", "verify", "--db", str(db)])
    assert intact.exit_code == 0 and "intact" in intact.output
    with sqlite3.connect(db) as raw:
        raw.execute("UPDATE journal SET amount_minor = amount_minor + 1 WHERE seq = 3")
        entry = raw.execute("SELECT seq FROM audit_log WHERE payload LIKE '%\"journal\"%' "
                            "ORDER BY seq LIMIT 1").fetchone()[0]
    broken = runner.invoke(app, ["audit", "verify", "--db", str(db)])
    assert broken.exit_code == 1
    assert f"entry {entry}" in words(broken.output) and "changed" in broken.output


def test_audit_verify_names_a_payment_whose_queue_state_was_changed_behind_its_back(db):
    """A queued payment made urgent, then put back to normal and its reject-by time removed
    directly in the file: the engine would recover the changed values."""
    engine = Engine(SQLiteStore(db))
    try:
        now_us = engine.store.last_commit_us() + 1_000_000
        queued = Payment(str(uuid.uuid4()), "audit-1", "e2e", "DEMACNX0", "DEMBCNX0",
                         Party("A"), Party("B"), 10**12, "CNY", reject_by_us=now_us + 10**9)
        (result,) = engine.submit_payments("DEMACNX0", [queued], now_us)
        assert result.status == PaymentStatus.QUEUED
        engine.change_payment_priority(queued.uetr, Priority.URGENT, now_us + 1)
    finally:
        engine.close()
    assert runner.invoke(app, ["audit", "verify", "--db", str(db)]).exit_code == 0
    with sqlite3.connect(db) as raw:
        raw.execute("UPDATE payment SET priority = 'normal', reject_by_us = NULL WHERE uetr = ?",
                    (queued.uetr,))
    broken = runner.invoke(app, ["audit", "verify", "--db", str(db)])
    assert broken.exit_code == 1
    assert f"payment {queued.uetr} is not what the audit entries recorded" in words(
        broken.output)


def cut_back(db, entries: int) -> None:
    """Remove the last `entries` audit entries and every row they cover, as someone with the
    file would: what is left is an intact, shorter chain."""
    with sqlite3.connect(db) as raw:
        last = raw.execute("SELECT max(seq) FROM audit_log").fetchone()[0]
        for (payload,) in raw.execute("SELECT payload FROM audit_log WHERE seq > ?",
                                      (last - entries,)).fetchall():
            covered = json.loads(payload).get("journal")
            if covered:
                raw.execute("DELETE FROM journal WHERE seq BETWEEN ? AND ?", covered[:2])
            told = json.loads(payload).get("mailbox")
            if told:  # a transfer's camt.054 notices, gone with it
                raw.execute("DELETE FROM mailbox WHERE seq BETWEEN ? AND ?", told[:2])
        raw.execute("DELETE FROM audit_log WHERE seq > ?", (last - entries,))


def test_audit_head_anchors_the_chain_against_cutting_it_back(db):
    for n in range(2):
        assert runner.invoke(app, ["transfer", "11", "12", "1.00", "CNY", "--id", f"t{n}",
                                   "--db", str(db)]).exit_code == 0
    head = runner.invoke(app, ["audit", "head", "--db", str(db)])
    assert head.exit_code == 0
    anchor = head.output.strip()
    seq = int(anchor.split(":")[0])
    assert runner.invoke(app, ["audit", "verify", "--db", str(db), "--anchor", anchor]
                         ).exit_code == 0
    cut_back(db, 1)  # the last transfer and its entry, gone together
    alone = runner.invoke(app, ["audit", "verify", "--db", str(db)])
    assert alone.exit_code == 0, "without an anchor the shorter chain looks intact"
    anchored = runner.invoke(app, ["audit", "verify", "--db", str(db), "--anchor", anchor])
    assert anchored.exit_code == 1
    assert f"entry {seq}" in words(anchored.output) and "cut back" in words(anchored.output)


def test_audit_verify_refuses_an_anchor_that_is_not_seq_and_hash(db):
    for anchor in ("12", "x:" + "a" * 64, "3:" + "a" * 63, "3:" + "g" * 64):
        result = runner.invoke(app, ["audit", "verify", "--db", str(db), "--anchor", anchor])
        assert result.exit_code == 2 and "SEQ:SHA256" in words(result.output), anchor


def test_init_twice_changes_nothing(db):
    before = balances_json(db)
    result = runner.invoke(app, ["init", "--db", str(db)])
    assert result.exit_code == 1
    assert balances_json(db) == before


def test_init_of_another_database_never_overwrites_a_key_file(db):
    """A second network set up beside a live one must not replace the live operator's key,
    whose private half exists nowhere else; nor may `keys issue` replace a key file."""
    key_path = db.with_name("operator.key")
    live_key = key_path.read_bytes()
    staging = db.with_name("staging.db")
    result = runner.invoke(app, ["init", "--db", str(staging)])
    assert result.exit_code == 2 and "exists" in words(result.output)
    assert key_path.read_bytes() == live_key and not staging.exists()
    result = runner.invoke(app, ["keys", "issue", "DEMACNX0", "--out", str(key_path),
                                 "--db", str(db)])
    assert result.exit_code == 2 and "exists" in words(result.output)
    assert key_path.read_bytes() == live_key
    store = SQLiteStore(db, lock=False)
    try:
        assert [bic for bic, _, _ in store.keys().values()] == ["SCOPCNX0"]  # none added
    finally:
        store.close()
    elsewhere = db.with_name("staging.key")
    result = runner.invoke(app, ["init", "--db", str(staging), "--key-file", str(elsewhere)])
    assert result.exit_code == 0, result.output
    assert read_key_file(elsewhere).participant_bic == "SCOPCNX0"
    assert key_path.read_bytes() == live_key


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


def test_reconcile_names_a_transfer_the_journal_books_twice(db):
    booked = runner.invoke(app, ["transfer", "11", "12", "1.00", "CNY", "--id", "twice",
                                 "--db", str(db)])
    assert booked.exit_code == 0, booked.output
    with sqlite3.connect(db) as raw:  # a row written behind scopay's back
        copied = raw.execute(
            "INSERT INTO journal (id, kind, debit_account_id, credit_account_id, amount_minor, "
            "currency, pending_id, timeout_s, linked, timestamp_us) SELECT id, kind, "
            "debit_account_id, credit_account_id, amount_minor, currency, pending_id, "
            "timeout_s, linked, timestamp_us FROM journal WHERE id LIKE '%twice'").rowcount
    assert copied == 1
    check = runner.invoke(app, ["reconcile", "--db", str(db)])
    assert check.exit_code == 1
    assert "twice is booked 2 times" in words(check.output)


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


SAMPLES = Path(__file__).parents[1] / "iso20022" / "samples"


def test_iso_validate_accepts_a_valid_message_and_names_the_reason_for_a_bad_one(tmp_path):
    sample = SAMPLES / "pacs008_cbpr_customer_transfer.xml"
    good = runner.invoke(app, ["iso", "validate", str(sample)])
    assert good.exit_code == 0 and "valid pacs.008.001.08" in words(good.output)
    assert "takes only" not in words(good.output) and "AppHdr" not in words(good.output)
    # valid, and what the server would still ask of it is said
    statement = runner.invoke(app, ["iso", "validate", str(SAMPLES / "camt053_statement.xml")])
    assert statement.exit_code == 0 and "takes only pacs.008" in words(statement.output)
    enveloped = runner.invoke(app, ["iso", "validate",
                                    str(SAMPLES / "pacs008_t2_batch_envelope.xml")])
    assert enveloped.exit_code == 0 and "AppHdr To, NBRKKZKX" in words(enveloped.output)
    bad = tmp_path / "bad.xml"
    bad.write_text('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
                   "<x>&e;</x>")
    refused = runner.invoke(app, ["iso", "validate", str(bad)])
    assert refused.exit_code == 1 and "FF01" in refused.output
    assert "root:" not in refused.output


@pytest.mark.parametrize("command", [["iso", "validate",
                                      str(SAMPLES / "pacs008_cbpr_customer_transfer.xml")],
                                     ["serve", "--host", "256.0.0.1"]])
def test_a_schema_folder_without_the_schemas_is_refused_in_one_line(db, tmp_path, monkeypatch,
                                                                  command):
    """An operator's SCOPAY_ISO20022_SCHEMAS naming a folder without the XSDs: `serve`
    refuses to start (else each ISO message would fail) and `iso validate` says so, in one
    line, with no traceback. (The host is one no server can listen on: were the folder not
    checked first, serve would fail, not run.)"""
    monkeypatch.setenv("SCOPAY_ISO20022_SCHEMAS", str(tmp_path / "empty"))
    if command[0] == "serve":
        command = [*command, "--db", str(db)]
    result = runner.invoke(app, command)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # no traceback
    assert "SCOPAY_ISO20022_SCHEMAS" in words(result.output)
    assert "pacs.008.001.08.xsd" in words(result.output)


@pytest.mark.parametrize("command", [["balances"], ["reconcile"], ["audit", "verify"],
                                     ["transfer", "11", "12", "1.00", "CNY"]])
def test_a_database_of_a_newer_scopay_is_refused_in_one_line(db, command):
    with sqlite3.connect(db) as raw:
        raw.execute("INSERT INTO schema_migration VALUES (9999)")
    result = runner.invoke(app, [*command, "--db", str(db)])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # no traceback
    assert "newer scopay" in words(result.output) and "upgrade scopay" in words(result.output)


@pytest.mark.parametrize("command", [["transfer", "11", "12", "1.00", "CNY"],
                                     ["keys", "issue", "DEMACNX0", "--out", "k.key"],
                                     ["balances"], ["audit", "verify"]])
def test_a_mistyped_database_path_is_refused_and_no_database_is_made(tmp_path, command):
    missing = tmp_path / "tpyo.db"
    result = runner.invoke(app, [*command, "--db", str(missing)])
    assert result.exit_code == 2, result.output
    assert "no scopay database" in words(result.output)
    assert not missing.exists()


@pytest.mark.parametrize("command", [["transfer", "11", "12", "1.00", "CNY"],
                                     ["reconcile"], ["audit", "verify"]])
def test_a_file_that_is_no_database_is_refused_in_one_line(tmp_path, command):
    other = tmp_path / "notes.db"
    other.write_text("not a database, but a note that happens to end in .db\n" * 100)
    result = runner.invoke(app, [*command, "--db", str(other)])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # no traceback
    assert "is not a scopay database" in words(result.output)


def test_an_anchor_number_beyond_any_entry_is_refused_as_a_parameter(db):
    for seq in ("\u00b2", "9" * 30):  # a superscript digit; more than a 64-bit number
        result = runner.invoke(app, ["audit", "verify", "--db", str(db), "--anchor",
                                     f"{seq}:" + "a" * 64])
        assert result.exit_code == 2 and "SEQ:SHA256" in words(result.output), seq


@pytest.mark.parametrize("command", [["balances"], ["reconcile"], ["audit", "verify"]])
def test_a_reader_changes_no_schema_and_a_writer_upgrades_it(db, command):
    with sqlite3.connect(db) as raw:  # as version 7 left it: journal entries indexed by id
        newest = raw.execute("SELECT max(version) FROM schema_migration").fetchone()[0]
        assert newest == 8, "written for version 8: give this test the newest one's undoing"
        undo_journal_ids_in_memory(raw)
    refused = runner.invoke(app, [*command, "--db", str(db)])
    assert refused.exit_code == 2, refused.output
    assert "opens it to write" in words(refused.output)
    with sqlite3.connect(db) as raw:
        assert raw.execute("SELECT max(version) FROM schema_migration").fetchone()[0] < newest
    assert runner.invoke(app, ["transfer", "11", "12", "1.00", "CNY", "--db", str(db)]
                         ).exit_code == 0
    assert runner.invoke(app, [*command, "--db", str(db)]).exit_code == 0


def test_the_operators_last_key_is_not_revoked_from_the_shell_either(db):
    key = read_key_file(db.with_name("operator.key"))
    result = runner.invoke(app, ["keys", "revoke", key.key_id, "--db", str(db)])
    assert result.exit_code == 1 and "last key" in words(result.output)
    store = SQLiteStore(db, lock=False)
    try:
        assert store.keys()[key.key_id][2] is None  # not revoked
    finally:
        store.close()


def test_balances_take_a_currency_in_either_case(db):
    upper = runner.invoke(app, ["balances", "--db", str(db), "--currency", "CNY", "--json"])
    lower = runner.invoke(app, ["balances", "--db", str(db), "--currency", "cny", "--json"])
    assert upper.exit_code == lower.exit_code == 0
    rows = json.loads(upper.output)
    assert rows and {row["currency"] for row in rows} == {"CNY"}
    assert json.loads(lower.output) == rows


def test_iso_validate_refuses_what_the_servers_door_does_not_take(tmp_path, monkeypatch):
    """Valid as a message, but more bytes than the server reads (413), or more transactions
    than it takes in one (AM18): `iso validate` says so, as `iso send` would meet it."""
    from scopay.api import security
    from scopay.domain.ledger import BATCH_TRANSFERS_MAX
    from scopay.iso20022.model import CreditTransferMessage
    from scopay.iso20022.pacs008 import PACS008_V08, build_pacs008

    def pacs008(count: int) -> Path:
        payments = tuple(Payment(str(uuid.uuid4()), f"I{n}", f"E{n}", "DEMACNX0", "DEMBCNX0",
                                 Party("A"), Party("B"), 1, "CNY") for n in range(count))
        path = tmp_path / f"{count}.xml"
        path.write_bytes(build_pacs008(CreditTransferMessage("M", 1_700_000_000_000_000,
                                                             payments), PACS008_V08))
        return path

    most, over = pacs008(BATCH_TRANSFERS_MAX), pacs008(BATCH_TRANSFERS_MAX + 1)
    assert most.stat().st_size > security.REQUEST_BYTES_MAX  # as scopay writes them
    large = runner.invoke(app, ["iso", "validate", str(most)])
    assert large.exit_code == 1 and "(413)" in words(large.output)
    # a compact writer could fit them in the size: then the count is what is refused
    monkeypatch.setattr(security, "REQUEST_BYTES_MAX", 64 * 1024 * 1024)
    fits = runner.invoke(app, ["iso", "validate", str(most)])
    assert fits.exit_code == 0, fits.output
    many = runner.invoke(app, ["iso", "validate", str(over)])
    assert many.exit_code == 1 and "AM18" in words(many.output)
