"""camt.053 statements in pages: a busy account's day comes in pages of at most 1,000 entries,
each schema-valid and adding up on its own, chained by interim balances, built from the
account's own entries of that page (not from the network's whole journal)."""

import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from lxml import etree

from scopay.api import signing
from scopay.api.app import create_app
from scopay.api.iso import STATEMENT_PAGE_ENTRIES
from scopay.client import KeyFile, SignedAuth, new_private_key
from scopay.domain.account import AccountKind
from scopay.domain.ledger import Transfer
from scopay.engine.runner import EngineRunner
from scopay.iso20022.camt053 import build_camt053, parse_camt053
from scopay.iso20022.message import parse_message
from scopay.iso20022.model import Statement
from scopay.iso20022.parsing import MessageRefused

NS = {"s": "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"}
DAY_US = 86_400_000_000


def balances(data: bytes) -> list[tuple[str, str | None]]:
    """(type, sub-type) of each balance of a camt.053, in document order."""
    root = etree.fromstring(data)
    return [(b.findtext("s:Tp/s:CdOrPrtry/s:Cd", namespaces=NS),
             b.findtext("s:Tp/s:SubTp/s:Cd", namespaces=NS))
            for b in root.iterfind(".//s:Stmt/s:Bal", NS)]


def pagination(data: bytes) -> list[tuple[str, str]]:
    root = etree.fromstring(data)
    return [(p.findtext("s:PgNb", namespaces=NS), p.findtext("s:LastPgInd", namespaces=NS))
            for p in root.findall(".//s:MsgPgntn", NS) + root.findall(".//s:StmtPgntn", NS)]


def test_a_busy_day_comes_in_pages_that_chain_and_hold_every_entry(engine, network, serve_app,
                                                                    xsd):
    icbk, aboc = "ICBKCNBJ", "ABOCCNBJ"
    account = next(a.id for a in network.accounts if a.owner_bic == icbk and a.currency == "CNY")
    other = next(a.id for a in network.accounts if a.owner_bic == aboc and a.currency == "CNY")
    issuance = next(a.id for a in network.accounts
                    if a.currency == "CNY" and a.kind == AccountKind.ISSUANCE)
    day = network.funded_at_us // DAY_US + 1
    count = 2 * STATEMENT_PAGE_ENTRIES + 345
    moves = []  # the account's own postings that day, in journal order, amid others' traffic
    for n in range(count):  # ids as the API makes them: the sender's BIC, then its own id
        debit, credit, sender = (account, other, icbk) if n % 3 else (other, account, aboc)
        moves.append(Transfer(f"{sender}:pg-{n}", debit, credit, 1 + n % 7, "CNY"))
        moves.append(Transfer(f"noise-{n}", issuance, other, 2, "CNY"))
    for start in range(0, len(moves), 1_000):
        outcomes = engine.submit(moves[start:start + 1_000], day * DAY_US + 1 + start)
        assert all(o.rejection is None for o in outcomes)
    # the next day moves the account again: the day's balances are worked back past it
    later = [Transfer("next-day", account, other, 999, "CNY")]
    assert engine.submit(later, (day + 1) * DAY_US + 5)[0].rejection is None
    own = [t for t in moves if account in (t.debit_account_id, t.credit_account_id)]
    key = KeyFile(signing.new_key_id(), icbk, new_private_key())
    engine.register_key(key.key_id, icbk, key.public_key, (day + 1) * DAY_US + 6)
    runner = EngineRunner(engine, lambda: time.time_ns() // 1000).start()
    url = serve_app(create_app(runner))
    date_text = (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=day)).date().isoformat()
    path = f"/v1/accounts/{account}/statement"
    closing_of_day = engine.balance(account).posted_minor + 999
    opening_of_day = closing_of_day - sum(
        t.amount_minor if t.credit_account_id == account else -t.amount_minor for t in own)
    pages = []
    with httpx.Client(base_url=url, auth=SignedAuth(key)) as client:
        for page in (1, 2, 3):
            answer = client.get(path, params={"day": date_text, "page": page})
            assert answer.status_code == 200, answer.text
            assert xsd("camt.053.001.08").validate(etree.fromstring(answer.content))
            pages.append(answer.content)
        beyond = client.get(path, params={"day": date_text, "page": 4})
        assert beyond.status_code == 404 and "has 3 pages" in beyond.json()["detail"]
        assert client.get(path, params={"day": date_text, "page": 0}).status_code == 422
        assert client.get(path, params={"day": date_text}).content == pages[0]
    runner.stop()

    read = [parse_message(data)[1] for data in pages]
    assert [(s.page, s.last_page) for s in read] == [(1, False), (2, False), (3, True)]
    assert [pagination(data) for data in pages] == [[("1", "false")] * 2, [("2", "false")] * 2,
                                                    [("3", "true")] * 2]
    assert [balances(data) for data in pages] == [
        [("OPBD", None), ("ITBD", "CIBD")], [("ITBD", "OIBD"), ("ITBD", "CIBD")],
        [("ITBD", "OIBD"), ("CLBD", None)]]
    assert len({s.message_id for s in read}) == 3 and len({s.statement_id for s in read}) == 1
    assert [len(s.entries) for s in read] == [STATEMENT_PAGE_ENTRIES, STATEMENT_PAGE_ENTRIES, 345]
    assert read[0].opening_balance_minor == opening_of_day
    assert read[-1].closing_balance_minor == closing_of_day
    for before, after in zip(read, read[1:], strict=False):
        assert after.opening_balance_minor == before.closing_balance_minor
    entries = [e for s in read for e in s.entries]
    # the id as the owner knows it (its own without its BIC, another's whole), and as scopay
    # keeps it, which tells every entry apart (not the journal's sequence number, which
    # counts everyone's entries)
    assert [e.entry_reference for e in entries] == [
        t.id.removeprefix(f"{icbk}:") for t in own]
    assert [e.account_servicer_reference for e in entries] == [f"T{t.id}" for t in own]
    assert [e.amount_minor for e in entries] == [
        t.amount_minor if t.credit_account_id == account else -t.amount_minor for t in own]


def page_of(statement: Statement, page: int, last: bool) -> bytes:
    return build_camt053(Statement(
        statement.message_id, statement.created_at_us, statement.statement_id,
        statement.account, statement.currency, 0, statement.opening_date, 0,
        statement.closing_date, page=page, last_page=last))


def test_a_page_is_read_back_with_its_number_and_a_page_number_of_0_is_refused():
    plain = Statement("M1", 1_700_000_000_000_000, "S1", "11", "CNY", 0,
                      datetime(2026, 11, 1).date(), 0, datetime(2026, 11, 1).date())
    middle = parse_camt053(page_of(plain, 7, False))
    assert (middle.page, middle.last_page, middle.final) == (7, False, True)
    assert parse_camt053(build_camt053(plain)).page == 1
    with pytest.raises(MessageRefused, match="not a page number"):
        parse_camt053(page_of(plain, 7, False).replace(b"<PgNb>7</PgNb>", b"<PgNb>0</PgNb>"))
    with pytest.raises(ValueError, match="not a page number"):
        page_of(plain, 100_000, True)


def test_a_message_whose_two_paginations_differ_is_refused():
    plain = Statement("M1", 1_700_000_000_000_000, "S1", "11", "CNY", 0,
                      datetime(2026, 11, 1).date(), 0, datetime(2026, 11, 1).date())
    data = page_of(plain, 2, False)
    first = data.index(b"<PgNb>2</PgNb>")
    altered = data[:first] + b"<PgNb>3</PgNb>" + data[first + len(b"<PgNb>2</PgNb>"):]
    with pytest.raises(MessageRefused, match="pagination"):
        parse_camt053(altered)


def test_todays_statement_is_named_by_what_it_is_as_of(engine, network, serve_app):
    """Today's statement grows as the account's entries come: each different one has its
    own message id (its last entry's), the same one read again the same id, however busy
    the rest of the network is."""
    icbk = "ICBKCNBJ"
    account = next(a.id for a in network.accounts if a.owner_bic == icbk and a.currency == "CNY")
    other = next(a.id for a in network.accounts if a.owner_bic == "ABOCCNBJ")
    key = KeyFile(signing.new_key_id(), icbk, new_private_key())
    now_us = time.time_ns() // 1000
    engine.register_key(key.key_id, icbk, key.public_key, now_us)
    runner = EngineRunner(engine, lambda: time.time_ns() // 1000).start()
    url = serve_app(create_app(runner))
    today = datetime.now(UTC).date().isoformat()
    path = f"/v1/accounts/{account}/statement"

    def message_id(page: int = 1) -> str:
        with httpx.Client(base_url=url, auth=SignedAuth(key)) as client:
            answer = client.get(path, params={"day": today, "page": page})
        assert answer.status_code == 200, answer.text
        return parse_message(answer.content)[1].message_id

    def transfer(debit: int, credit: int, name: str) -> None:
        (outcome,) = runner.call(lambda e, at: e.submit(
            [Transfer(name, debit, credit, 5, "CNY")], at)).result()
        assert outcome.rejection is None

    issuance = next(a.id for a in network.accounts if a.kind == AccountKind.ISSUANCE
                    and a.currency == "CNY")
    first = message_id()
    transfer(issuance, other, "elsewhere")  # another account's: this statement is the same
    again = message_id()
    transfer(account, other, "mine")
    after = message_id()
    assert first == again != after
    assert first.startswith(f"STMT{account}") and len(after) <= 35
    # a full page before the last is the message the day's end will give: its id stays
    (outcome,) = {o.rejection for o in runner.call(lambda e, at: e.submit(
        [Transfer(f"fill-{n}", account, other, 1, "CNY") for n in range(1_000)],
        at)).result()}
    assert outcome is None
    full, second = message_id(1), message_id(2)
    transfer(account, other, "one-more")
    assert message_id(1) == full == f"STMT{account}{today.replace('-', '')}"
    assert message_id(2) != second
    runner.stop()


def test_a_statement_read_before_midnight_is_todays_even_if_midnight_passes_meanwhile(
        engine, network, monkeypatch):
    """The page is read, an entry booked before midnight settles, and midnight passes while
    the page is written: it is today's (interim, named as of what it counts), never the
    finished day's final statement, which must hold every entry of the day."""
    from types import SimpleNamespace

    from scopay.api import iso

    account = next(a for a in network.accounts if a.owner_bic == "ICBKCNBJ")
    other = next(a.id for a in network.accounts if a.owner_bic == "ABOCCNBJ")
    day_number = network.funded_at_us // DAY_US + 1
    end_us = (day_number + 1) * DAY_US
    day = (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=day_number)).date()
    assert engine.submit([Transfer("t1", account.id, other, 100, "CNY")],
                         end_us - 10_000)[0].rejection is None
    clock = {"now_us": end_us - 2_000}
    monkeypatch.setattr(iso, "time", SimpleNamespace(time_ns=lambda: clock["now_us"] * 1000))
    read = engine.account_activity

    def read_then_more(*args, **kwargs):
        activity = read(*args, **kwargs)  # the rows read, the engine free again
        assert engine.submit([Transfer("t2", account.id, other, 700, "CNY")],
                             end_us - 1_000)[0].rejection is None
        clock["now_us"] = end_us + 500  # midnight passes while the page is written
        return activity

    monkeypatch.setattr(engine, "account_activity", read_then_more)
    before = parse_camt053(iso._statement(engine, account, day))
    monkeypatch.setattr(engine, "account_activity", read)
    after = parse_camt053(iso._statement(engine, account, day))
    assert (before.final, len(before.entries)) == (False, 1)
    assert (after.final, len(after.entries)) == (True, 2)
    assert before.message_id != after.message_id
    assert after.closing_balance_minor == engine.balance(account.id).posted_minor


def test_an_entrys_servicer_reference_names_its_transfer_in_35_characters():
    from scopay.api.iso import _servicer_reference

    uetr = "8a562c67-ca16-48ba-b074-000000000001"
    long_id = "DEMACNX0:" + "x" * 40
    references = {
        "pay/" + uetr: "P8a562c67ca1648bab074000000000001",
        "ret/" + uetr: "R8a562c67ca1648bab074000000000001",
        "DEMACNX0:inv-42": "TDEMACNX0:inv-42",
        long_id: None,  # a digest
        "DEMACNX0:" + "x" * 25: "TDEMACNX0:" + "x" * 25,  # 35 characters with its letter
    }
    for transfer_id, expected in references.items():
        found = _servicer_reference(transfer_id)
        assert len(found) <= 35
        assert found == expected or (expected is None and found.startswith("H"))
    assert _servicer_reference(long_id) != _servicer_reference(long_id + "y")
