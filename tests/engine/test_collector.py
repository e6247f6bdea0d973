"""The engine and CPython's garbage collector: what survives a collection is frozen at the
engine's next commit (SurvivorFreezing), so the state that grows all day is scanned once, not
again by every middle and full collection; and freezing it leaks nothing, since that state
holds no reference cycle."""

import gc
import subprocess
import sys
import textwrap
import uuid

import pytest

from scopay.domain.payment import Party, Payment, PaymentStatus
from scopay.engine.engine import SURVIVOR_FREEZING

ICBK, ABOC = "ICBKCNBJ", "ABOCCNBJ"  # ICBK holds 1000.00 CNY (tests/conftest.py)


def payment(debtor: str, creditor: str, amount_minor: int) -> Payment:
    return Payment(str(uuid.uuid4()), uuid.uuid4().hex[:12], "gc", debtor, creditor,
                   Party("Ли Вэй"), Party("محمد رضایی"), amount_minor, "CNY")


@pytest.fixture
def collections_by_hand():
    """No automatic collection during the test: only those it makes itself."""
    gc.disable()
    yield
    gc.enable()


def tracked(value: object) -> bool:
    """Whether the collector still scans `value` (frozen objects are not listed)."""
    return any(candidate is value for candidate in gc.get_objects())


def settled(engine, at_us: int):
    """The record of a payment the engine settled at `at_us`."""
    made = payment(ICBK, ABOC, 1_000)
    (result,) = engine.submit_payments(ICBK, [made], at_us)
    assert result.status == PaymentStatus.SETTLED
    return engine.payment(made.uetr)


@pytest.mark.parametrize("generation", [0, 1, 2])
def test_a_settled_payment_is_frozen_at_the_commit_after_a_collection(
        engine, network, collections_by_hand, generation):
    t = network.funded_at_us
    record = settled(engine, t + 1)
    assert tracked(record), "a young record is the collector's to scan"

    gc.collect(generation)  # runs the callbacks, as an automatic collection does
    assert tracked(record), "nothing is frozen inside the collector's callback"
    frozen_before = gc.get_freeze_count()

    settled(engine, t + 2)
    assert not tracked(record)
    assert gc.get_freeze_count() > frozen_before
    assert not SURVIVOR_FREEZING.due


def test_a_commit_with_no_collection_since_the_last_freezes_nothing(
        engine, network, collections_by_hand):
    t = network.funded_at_us
    gc.collect(0)
    settled(engine, t + 1)  # the freeze that collection made due
    record = settled(engine, t + 2)

    settled(engine, t + 3)
    assert tracked(record)


def test_switched_off_the_freezing_leaves_survivors_to_the_collector(
        engine, network, collections_by_hand, monkeypatch):
    monkeypatch.setattr(SURVIVOR_FREEZING, "enabled", False)
    t = network.funded_at_us
    record = settled(engine, t + 1)
    gc.collect(1)

    settled(engine, t + 2)
    assert tracked(record)


def test_an_engine_dropped_after_settling_leaves_no_cyclic_garbage(tmp_path):
    """Frozen objects are freed by their reference counts alone: the engine's state must hold
    no reference cycle, or freezing it would leak it. Run in a process of its own, so that
    nothing else the suite made is collected with it."""
    script = textwrap.dedent(f"""
        import gc, uuid
        from scopay.cli.main import seed_reference_network
        from scopay.domain.payment import Party, Payment
        from scopay.engine.engine import Engine
        from scopay.store.sqlite import SQLiteStore

        START_US = 1_795_939_200_000_000
        engine = Engine(SQLiteStore({str(tmp_path / "gc.db")!r}))
        seed_reference_network(engine, START_US)
        for n in range(3):
            debtor, creditor = ("DEMACNX0", "DEMBCNX0")[::1 if n % 2 else -1]
            payments = [Payment(str(uuid.uuid4()), uuid.uuid4().hex[:20], "GC", debtor,
                                creditor, Party("Debtor"), Party("Creditor"), 1, "CNY")
                        for _ in range(500)]
            results = engine.submit_payments(debtor, payments, START_US + 1_000_000 + n)
            assert all(r.status.value == "settled" for r in results)
        engine.close()
        gc.unfreeze()
        gc.collect()
        del engine, payments, results
        print(gc.collect())
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "0", "the engine's state holds a reference cycle"
