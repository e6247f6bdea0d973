"""A real scopay server on loopback for API tests: seeded network, real HTTP, real SQLite."""

import threading
import time
from dataclasses import dataclass

import httpx
import pytest
import uvicorn
from serving import start_serving

from scopay.api import signing
from scopay.api.app import create_app
from scopay.cli.main import seed_reference_network
from scopay.client import KeyFile, ScopayClient, SignedAuth, new_private_key
from scopay.domain.participant import Participant, Role, Tier
from scopay.engine.engine import Engine
from scopay.engine.runner import EngineRunner, LoopRunner
from scopay.reference.network import state_facts
from scopay.store.sqlite import SQLiteStore

AUDITOR_BIC = "OVSTCNX0"  # a fictional oversight body, admitted as the auditor
DIRECT_DOORS_BANK = "ICBKCNBJ"  # both_doors signs as it (tests/conftest.py: 1000.00 CNY)


@dataclass
class LiveServer:
    url: str
    engine: Engine
    keys: dict[str, KeyFile]  # BIC -> signing key

    def client(self, bic: str | None) -> httpx.Client:
        """A signed client for the participant, or an unsigned one for None."""
        if bic is None:
            return httpx.Client(base_url=self.url, timeout=30)
        return ScopayClient(self.url, self.keys[bic])

    def account_of(self, bic: str, currency: str) -> int:
        return next(a.id for a in self.engine.accounts.values()
                    if a.owner_bic == bic and a.currency == currency)


def stop_serving(server: uvicorn.Server, thread: threading.Thread) -> None:
    server.should_exit = True
    thread.join()


@pytest.fixture
def serve_app():
    """serve_app(app) -> URL of the app served on loopback until the test ends."""
    served = []

    def serve(app) -> str:
        server, thread, url = start_serving(app)
        served.append((server, thread))
        return url

    yield serve
    for server, thread in served:
        stop_serving(server, thread)


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory):
    """One server per test module: tests use their own transfer ids and compare balances
    before and after themselves, so they do not depend on each other."""
    engine = Engine(SQLiteStore(tmp_path_factory.mktemp("api") / "api.db"),
                    states=state_facts())  # admissions checked as `scopay serve` checks them
    seed_reference_network(engine, 1)
    engine.admit_participant(Participant(AUDITOR_BIC, "Payments oversight (fictional)",
                                         Role.AUDITOR, "CN", Tier.MEMBER), 2)
    keys = {}
    for bic in ("SCOPCNX0", "DEMACNX0", "DEMBCNX0", "DEMARUX0", "DEMBRUX0", "PBOCCNBJ",
                AUDITOR_BIC):
        keys[bic] = KeyFile(signing.new_key_id(), bic, new_private_key())
        engine.register_key(keys[bic].key_id, bic, keys[bic].public_key, 2)
    runner = LoopRunner(engine, lambda: time.time_ns() // 1000)
    runner.start()
    server, thread, url = start_serving(create_app(runner))
    yield LiveServer(url, engine, keys)
    stop_serving(server, thread)
    runner.stop()
    engine.close()


@pytest.fixture
def both_doors(engine, serve_app):
    """Two servers over one engine: one with direct routes, one through FastAPI only."""
    key = KeyFile(signing.new_key_id(), DIRECT_DOORS_BANK, new_private_key())
    engine.register_key(key.key_id, DIRECT_DOORS_BANK, key.public_key, 2_000_000)
    runner = EngineRunner(engine, lambda: time.time_ns() // 1000).start()
    clients = [httpx.Client(base_url=serve_app(create_app(runner, direct_routes=flag)),
                            auth=SignedAuth(key), timeout=30) for flag in (True, False)]
    yield clients
    for client in clients:
        client.close()
    runner.stop()
