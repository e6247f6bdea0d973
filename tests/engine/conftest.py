import pytest

from held_commit import HeldStore


@pytest.fixture
def held(open_engine, network, tmp_path):
    """An engine with the network built, over a HeldStore that now holds every COMMIT."""
    store = HeldStore(tmp_path / "held.db")
    store.release.set()  # the network is built with commits that go through at once
    engine = open_engine(store, with_network=network)
    store.hold_from_now()
    return engine, store
