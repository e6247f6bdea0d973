"""The engine's payment book: finished payments folded out of the garbage collector's sight,
unfolded equal when read or changed, and what a command changes in an unfolded one kept."""

import gc
import uuid
from collections import Counter
from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scopay.domain.ledger import Transfer
from scopay.domain.payment import (
    ChargeBearer,
    Party,
    Payment,
    PaymentRecord,
    PaymentStatus,
    PostalAddress,
    Priority,
    SettlementMethod,
    StatusChange,
)
from scopay.domain.rejection import Rejection
from scopay.engine.book import PaymentBook, fold, unfold
from scopay.engine.payments import RETURN_TRANSFER_PREFIX, ReturnRequest
from scopay.store.sqlite import SQLiteStore

ICBK, ABOC = "ICBKCNBJ", "ABOCCNBJ"  # ICBK holds 1000.00 CNY; ABOC 0 with a 500.00 line
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=8)
OPTIONAL_TEXT = st.none() | TEXT
MOMENT = st.none() | st.integers(0, 2**62)


@st.composite
def records(draw) -> PaymentRecord:
    address = draw(st.none() | st.builds(
        PostalAddress, OPTIONAL_TEXT, OPTIONAL_TEXT, OPTIONAL_TEXT, OPTIONAL_TEXT,
        OPTIONAL_TEXT, st.lists(TEXT, max_size=2).map(tuple)))
    instructed = draw(st.none() | st.tuples(st.integers(1, 10**15), st.just("RUB")))
    payment = Payment(
        str(uuid.UUID(int=draw(st.integers(0, 2**128 - 1)))), draw(TEXT), draw(TEXT),
        draw(TEXT), draw(TEXT), Party(draw(TEXT), draw(OPTIONAL_TEXT), address),
        Party(draw(TEXT), draw(OPTIONAL_TEXT), draw(st.none() | st.just(address))),
        draw(st.integers(1, 10**15)), draw(st.sampled_from(["CNY", "RUB"])),
        instructed_amount_minor=None if instructed is None else instructed[0],
        instructed_currency=None if instructed is None else instructed[1],
        exchange_rate=draw(st.none() | st.decimals(0, 10**6, places=5).map(Decimal)),
        charge_bearer=draw(st.sampled_from(ChargeBearer)),
        remittance=draw(OPTIONAL_TEXT), purpose=draw(OPTIONAL_TEXT),
        priority=draw(st.sampled_from(Priority)),
        settlement_method=draw(st.sampled_from(SettlementMethod)),
        earliest_us=draw(MOMENT), latest_us=draw(MOMENT), reject_by_us=draw(MOMENT),
        message_id=draw(OPTIONAL_TEXT), sender_bic=draw(OPTIONAL_TEXT),
        intermediary_agents=tuple(draw(st.lists(TEXT, max_size=2))),
        charges=tuple(draw(st.lists(st.tuples(st.integers(0, 10**6), st.just("CNY"), TEXT),
                                    max_size=2))),
        message_type=draw(st.none() | st.sampled_from(["pacs.008.001.08", "pacs.009.001.08"])))
    statuses = draw(st.sampled_from([
        [PaymentStatus.RECEIVED, PaymentStatus.REJECTED],
        [PaymentStatus.RECEIVED, PaymentStatus.ACCEPTED, PaymentStatus.SETTLED],
        [PaymentStatus.RECEIVED, PaymentStatus.ACCEPTED, PaymentStatus.QUEUED,
         PaymentStatus.CANCELLED],
        [PaymentStatus.RECEIVED, PaymentStatus.ACCEPTED, PaymentStatus.SETTLED,
         PaymentStatus.RETURNED]]))
    history = [StatusChange(status, draw(st.integers(0, 2**62)),
                            draw(st.none() | st.sampled_from(Rejection)), draw(OPTIONAL_TEXT))
               for status in statuses]
    return PaymentRecord(payment, draw(TEXT), history, draw(st.none() | st.integers(1, 99)),
                         draw(st.none() | st.integers(1, 99)), draw(st.integers(0, 10**9)),
                         draw(st.sampled_from(Priority)), draw(MOMENT), draw(MOMENT))


@given(records())
def test_a_folded_record_unfolds_equal_and_the_collector_never_tracks_it(record):
    folded = fold(record)
    assert unfold(folded) == record
    assert not gc.is_tracked(folded)  # from the start, not once a collection has seen it


@given(records())
def test_the_book_folds_finished_records_only_and_peek_changes_nothing(record):
    book = PaymentBook()
    uetr = record.payment.uetr
    book[uetr] = record
    book.fold([record])
    assert book.peek(uetr) == record
    copy = book.peek(uetr)
    assert copy is not record  # folded: a copy is read
    copy.history.append(StatusChange(PaymentStatus.RETURNED, 0, None, None))
    assert book.peek(uetr) == record  # and changing it changes nothing in the book


def test_a_record_a_command_unfolds_is_the_one_kept_until_the_next_fold():
    record = PaymentRecord(Payment(str(uuid.uuid4()), "I1", "E1", ICBK, ABOC, Party("A"),
                                   Party("B"), 100, "CNY"), ICBK)
    for status in (PaymentStatus.RECEIVED, PaymentStatus.ACCEPTED, PaymentStatus.SETTLED):
        record.move_to(status, 1)
    book = PaymentBook()
    book[record.payment.uetr] = record
    book.fold([record])
    live = book.get(record.payment.uetr)
    assert live == record and live is not record
    assert book.get(record.payment.uetr) is live  # held unfolded: a command may change it
    live.move_to(PaymentStatus.RETURNED, 2, detail="returned")
    book.fold()
    assert book.peek(record.payment.uetr).status == PaymentStatus.RETURNED
    assert [r.status for r in book.with_status(PaymentStatus.RETURNED)] == [
        PaymentStatus.RETURNED]
    assert list(book.with_status(PaymentStatus.SETTLED)) == []


def payment(debtor, creditor, amount_minor):
    return Payment(str(uuid.uuid4()), uuid.uuid4().hex[:12], "e2e", debtor, creditor,
                   Party("Ли Вэй"), Party("محمد رضایی"), amount_minor, "CNY")


def records_tracked() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if type(o) is PaymentRecord)


def test_the_engine_keeps_no_record_object_for_a_finished_payment(engine, network):
    t = network.funded_at_us
    before = records_tracked()
    settled = [payment(ICBK, ABOC, 100) for _ in range(50)]
    engine.submit_payments(ICBK, settled, t + 1)
    queued = [payment(ABOC, ICBK, 50_000) for _ in range(3)]  # one within ABOC's room
    results = engine.submit_payments(ABOC, queued, t + 2)
    assert [r.status for r in results] == [PaymentStatus.SETTLED] + [PaymentStatus.QUEUED] * 2
    assert records_tracked() - before == 2  # the queued ones: 51 finished are folded
    # A finished payment is still read, returned and recovered as before.
    assert engine.payment(settled[0].uetr).status == PaymentStatus.SETTLED
    (outcome,) = engine.return_payments(
        [ReturnRequest(settled[0].uetr, 100, "CNY", ABOC, "returned by ABOC")], t + 3)
    assert outcome.rejection is None
    assert records_tracked() - before == 2  # folded again at the return's commit
    assert engine.payment(settled[0].uetr).status == PaymentStatus.RETURNED
    assert engine.payment_identity(settled[1].uetr) == settled[1]


def test_a_restarted_engine_holds_its_finished_payments_folded(engine, network, open_engine):
    t = network.funded_at_us
    paid = [payment(ICBK, ABOC, 100) for _ in range(20)]
    engine.submit_payments(ICBK, paid, t + 1)
    engine.close()
    before = records_tracked()
    reopened = open_engine()
    assert records_tracked() == before
    assert [reopened.payment(p.uetr).payment for p in paid] == paid
    assert reopened.reconcile().ok


def test_a_payment_sent_again_after_it_was_folded_is_known(engine, network):
    t = network.funded_at_us
    paid = payment(ICBK, ABOC, 100)
    (first,) = engine.submit_payments(ICBK, [paid], t + 1)
    before = records_tracked()
    (again,) = engine.submit_payments(ICBK, [paid], t + 2)  # the same: its outcome so far
    assert again == first and again.status == PaymentStatus.SETTLED
    for changed in (replace(paid, settlement_amount_minor=101),  # same UETR
                    replace(paid, uetr=str(uuid.uuid4()))):  # same instruction id
        (refused,) = engine.submit_payments(ICBK, [changed], t + 3)
        assert (refused.status, refused.reason) == (
            PaymentStatus.REJECTED, Rejection.PAYMENT_EXISTS_WITH_DIFFERENT_CONTENT)
    assert records_tracked() == before  # each read folded again at its command's commit
    assert engine.payment(paid.uetr).history == list(first.history)


class FailingStore(SQLiteStore):
    """The real store, but its next batch fails to be written when told to."""

    fail_next = False

    def stage(self, *args, **kwargs):
        if self.fail_next:
            self.fail_next = False
            raise OSError("disk I/O error (test double)")
        return super().stage(*args, **kwargs)


def test_a_change_to_a_folded_payment_whose_commit_fails_is_not_kept(open_engine, network,
                                                                       tmp_path):
    store = FailingStore(tmp_path / "failing.db")
    engine = open_engine(store, with_network=network)
    t = network.funded_at_us
    paid = payment(ICBK, ABOC, 100)
    engine.submit_payments(ICBK, [paid], t + 1)
    request = ReturnRequest(paid.uetr, 100, "CNY", ABOC, "returned by ABOC")
    store.fail_next = True  # the return is decided, its row folded, then its write fails
    with pytest.raises(OSError):
        engine.return_payments([request], t + 2)
    assert engine.payment(paid.uetr).status == PaymentStatus.SETTLED  # rebuilt from the store
    assert engine.ledger.outcome_of(RETURN_TRANSFER_PREFIX + paid.uetr) is None
    (outcome,) = engine.return_payments([request], t + 3)
    assert outcome.rejection is None
    assert engine.payment(paid.uetr).status == PaymentStatus.RETURNED
    assert engine.reconcile().ok


def test_queued_payments_a_plain_transfer_settles_are_folded_at_its_commit(engine, network):
    t = network.funded_at_us
    queued = [payment(ABOC, ICBK, 40_000) for _ in range(2)]  # ABOC's line covers one
    results = engine.submit_payments(ABOC, queued, t + 1)
    assert [r.status for r in results] == [PaymentStatus.SETTLED, PaymentStatus.QUEUED]
    before = records_tracked()
    outcomes = engine.submit([Transfer("in1", network.icbk_cny, network.aboc_cny, 50_000,
                                       "CNY")], t + 2)  # money for ABOC: its queue moves
    assert outcomes[0].accepted
    assert engine.payment(queued[1].uetr).status == PaymentStatus.SETTLED
    assert records_tracked() == before - 1  # the payment it settled is folded


def test_settling_leaves_nothing_in_the_collectors_young_generation(engine, network):
    """What the engine keeps of a settled payment (the folded record, the ledger's first
    outcome, its indexes) is untracked from the start: the young generation does not grow
    with the payments settled, so young collections come only with requests in flight."""
    t = network.funded_at_us
    # the same command once before, so that caches (statements, datetimes) are filled
    engine.submit_payments(ICBK, [payment(ICBK, ABOC, 1) for _ in range(500)], t + 1)
    batch = [payment(ICBK, ABOC, 1) for _ in range(500)]
    gc.collect()
    gc.disable()
    try:
        before = Counter(map(type, gc.get_objects()))
        engine.submit_payments(ICBK, batch, t + 2)
        grown = Counter(map(type, gc.get_objects())) - before
    finally:
        gc.enable()
    # about a hundred for the command itself (weak references, statements), none for each
    # payment: kept as tuples, the same 500 had added about 1,600
    assert grown.total() < 250, grown
