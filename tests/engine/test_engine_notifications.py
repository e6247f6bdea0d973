"""Debit and credit notifications (camt.054) through the engine over real SQLite: every ledger
movement that is no payment tells the owners of both accounts, in the commit that booked it;
payments and returns are told otherwise, and what moved no posted money tells no one."""

import uuid

from scopay.domain.ledger import Transfer, TransferKind
from scopay.domain.mailbox import NoticeKind
from scopay.domain.payment import Party, Payment
from scopay.engine.payments import ReturnRequest

PBOC, ICBK, ABOC = "PBOCCNBJ", "ICBKCNBJ", "ABOCCNBJ"
DEBIT, CREDIT = NoticeKind.DEBIT_NOTIFICATION, NoticeKind.CREDIT_NOTIFICATION


def notifications(engine, *bics):
    """(bic, kind, transfer id, created) of the camt.054 notices in these mailboxes."""
    return sorted((n.participant_bic, n.kind, n.uetr, n.created_us) for bic in bics
                  for _, n, _ in engine.mailbox(bic, 0, 500)
                  if n.kind in (DEBIT, CREDIT))


def payment(debtor, creditor, amount_minor):
    return Payment(str(uuid.uuid4()), uuid.uuid4().hex[:12], "e2e", debtor, creditor,
                   Party("Ли Вэй"), Party("Анна"), amount_minor, "CNY")


def test_funding_leaves_a_debit_to_the_agent_and_a_credit_to_the_bank(engine, network):
    t = network.funded_at_us
    assert notifications(engine, PBOC, ICBK) == [
        (ICBK, CREDIT, "fund-icbk-cny", t), (PBOC, DEBIT, "fund-icbk-cny", t)]


def test_a_transfer_notifies_both_owners_durably_and_a_refused_one_no_one(
        engine, network, open_engine):
    t = network.funded_at_us
    outcomes = engine.submit([Transfer("move-1", 11, 12, 2_500, "CNY"),
                              Transfer("too-much", 11, 12, 10**9, "CNY")], t + 5)
    assert [o.rejection is None for o in outcomes] == [True, False]
    engine.close()
    reopened = open_engine()
    told = [n for n in notifications(reopened, ICBK, ABOC) if n[2] != "fund-icbk-cny"]
    assert told == [(ABOC, CREDIT, "move-1", t + 5), (ICBK, DEBIT, "move-1", t + 5)]


def test_a_reservation_notifies_when_posted_not_when_made_voided_or_expired(engine, network):
    t = network.funded_at_us
    engine.submit([Transfer("hold-1", 11, 12, 1_000, "CNY", TransferKind.PENDING),
                   Transfer("hold-2", 11, 12, 1_000, "CNY", TransferKind.PENDING),
                   Transfer("hold-3", 11, 12, 1_000, "CNY", TransferKind.PENDING,
                            timeout_s=1)], t + 1)
    engine.submit([Transfer("post-1", 0, 0, 400, "", TransferKind.POST_PENDING,
                            pending_id="hold-1"),
                   Transfer("void-2", 0, 0, 0, "", TransferKind.VOID_PENDING,
                            pending_id="hold-2")], t + 2)
    engine.tick(t + 3_000_000)  # hold-3 expires
    assert "hold-3" not in engine.ledger.pending_ids()
    told = [n for n in notifications(engine, ICBK, ABOC) if n[2] != "fund-icbk-cny"]
    assert told == [(ABOC, CREDIT, "post-1", t + 2), (ICBK, DEBIT, "post-1", t + 2)]


def test_payments_and_returns_leave_no_notification(engine, network):
    t = network.funded_at_us
    paid = payment(ICBK, ABOC, 3_000)
    engine.submit_payments(ICBK, [paid], t + 1)
    (returned,) = engine.return_payments(
        [ReturnRequest(paid.uetr, 3_000, "CNY", ABOC, "AC04: returned")], t + 2)
    assert returned.rejection is None
    assert [n[2] for n in notifications(engine, ICBK, ABOC)] == ["fund-icbk-cny"]


def test_a_transfer_that_releases_a_queued_payment_notifies_only_itself(engine, network):
    """Money arriving by transfer settles a waiting payment in the same commit: the transfer
    gets its camt.054, the payment its pacs.002 and pacs.008 only."""
    t = network.funded_at_us
    waits = payment(ABOC, ICBK, 60_000)  # ABOC has 0 and a 500.00 line
    (queued,) = engine.submit_payments(ABOC, [waits], t + 1)
    assert queued.status == "queued"
    engine.submit([Transfer("cover", 11, 12, 20_000, "CNY")], t + 2)
    assert engine.payment(waits.uetr).status == "settled"
    told = [n[2] for n in notifications(engine, ICBK, ABOC)]
    assert sorted(told) == ["cover", "cover", "fund-icbk-cny"]


DAY_US = 86_400_000_000
STATEMENT = NoticeKind.STATEMENT


def statements(engine, *bics):
    """(bic, statement id, day, created) of the statement notices in these mailboxes."""
    return sorted((n.participant_bic, n.uetr, n.status, n.created_us) for bic in bics
                  for _, n, _ in engine.mailbox(bic, 0, 500) if n.kind == STATEMENT)


def test_the_first_step_of_a_new_day_issues_one_statement_per_account_with_entries(
        engine, network):
    """Day 0 (1970-01-01) had the funding (accounts 1, 11, 2, 21) and a transfer 11 -> 12;
    a reservation alone (22 has none: RUB) gives no statement."""
    t = network.funded_at_us
    engine.submit([Transfer("move-1", 11, 12, 100, "CNY")], t + 1)
    engine.submit([Transfer("hold", 21, 2, 100, "RUB", TransferKind.PENDING)], t + 2)
    everyone = ("PBOCCNBJ", "CBRFRUMM", ICBK, ABOC, "SABRRUMM")
    assert statements(engine, *everyone) == []
    engine.heartbeat(DAY_US + 5)  # the heartbeat of a new day, with nothing else to do
    assert statements(engine, *everyone) == [
        (ABOC, "12-19700101", "1970-01-01", DAY_US + 5),
        ("CBRFRUMM", "2-19700101", "1970-01-01", DAY_US + 5),
        (ICBK, "11-19700101", "1970-01-01", DAY_US + 5),
        ("PBOCCNBJ", "1-19700101", "1970-01-01", DAY_US + 5),
        ("SABRRUMM", "21-19700101", "1970-01-01", DAY_US + 5)]
    engine.heartbeat(DAY_US + 6)
    engine.submit([Transfer("move-2", 11, 12, 100, "CNY")], DAY_US + 7)
    assert len(statements(engine, *everyone)) == 5  # a day is told once


def test_statements_are_issued_once_across_restarts(engine, network, open_engine):
    t = network.funded_at_us
    engine.submit([Transfer("move-1", 11, 12, 100, "CNY")], t + 1)
    engine.close()
    reopened = open_engine()  # restarted within the day: nothing issued yet
    assert statements(reopened, ICBK, ABOC) == []
    reopened.acknowledge(ABOC, [], DAY_US + 1)  # any command of the next day turns it
    issued = statements(reopened, ICBK, ABOC)
    assert [s[1] for s in issued] == ["12-19700101", "11-19700101"]
    reopened.close()
    again = open_engine()  # restarted after the turn: the day is not told twice
    again.tick(DAY_US + 2)
    again.submit([Transfer("move-2", 11, 12, 100, "CNY")], 3 * DAY_US)
    again.close()
    last = open_engine()
    last.heartbeat(4 * DAY_US)  # day 1 had no entries; day 3 had move-2
    assert statements(last, ICBK, ABOC) == sorted(issued + [
        (ABOC, "12-19700104", "1970-01-04", 4 * DAY_US),
        (ICBK, "11-19700104", "1970-01-04", 4 * DAY_US)])


def test_an_idle_day_turn_commits_nothing(engine, network, open_engine):
    engine.heartbeat(DAY_US + 1)  # day 0's statements
    head = engine.store.audit_head()
    engine.heartbeat(3 * DAY_US)  # days 1 and 2 had no entries
    assert engine.store.audit_head() == head


def test_a_commit_tells_each_account_once_a_side_with_its_first_and_last_entry(engine,
                                                                                 network):
    """Three transfers from ICBK to ABOC and one back, in one commit: one debit and one
    credit notice for each account and side, naming its first entry and (if more) its last;
    the next commit is told apart."""
    t = network.funded_at_us
    engine.submit([Transfer("a-1", 11, 12, 100, "CNY"), Transfer("b-1", 12, 11, 50, "CNY"),
                   Transfer("a-2", 11, 12, 200, "CNY"), Transfer("a-3", 11, 12, 300, "CNY")],
                  t + 1)
    engine.submit([Transfer("a-4", 11, 12, 400, "CNY")], t + 2)
    told = sorted((n.participant_bic, n.kind, n.uetr, n.reason, n.created_us)
                  for bic in (ICBK, ABOC) for _, n, _ in engine.mailbox(bic, 0, 500)
                  if n.kind in (DEBIT, CREDIT) and n.uetr != "fund-icbk-cny")
    assert told == [
        (ABOC, CREDIT, "a-1", "a-3", t + 1), (ABOC, CREDIT, "a-4", None, t + 2),
        (ABOC, DEBIT, "b-1", None, t + 1),
        (ICBK, CREDIT, "b-1", None, t + 1),
        (ICBK, DEBIT, "a-1", "a-3", t + 1), (ICBK, DEBIT, "a-4", None, t + 2)]


def test_a_notification_tells_at_most_its_limit_of_entries(engine, network, monkeypatch):
    monkeypatch.setattr("scopay.engine.engine.NOTIFICATION_ENTRIES_MAX", 2)
    t = network.funded_at_us
    engine.submit([Transfer(f"m-{n}", 11, 12, 10, "CNY") for n in range(5)], t + 1)
    debits = [(n.uetr, n.reason) for _, n, _ in engine.mailbox(ICBK, 0, 500)
              if n.kind == DEBIT and n.created_us == t + 1]
    assert debits == [("m-0", "m-1"), ("m-2", "m-3"), ("m-4", None)]
