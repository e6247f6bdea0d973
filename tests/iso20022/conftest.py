"""Fixtures for the ISO 20022 tests: scopay's run-time XSD validation on or off.

The official schemas are not in the repository; they sit next to it in
../shared/data/iso20022, found by the `shared_data` and `xsd` fixtures of tests/conftest.py
(skipped with the reason without them, failing in CI).
"""

from __future__ import annotations

import pytest

from scopay.iso20022.schemas import SCHEMAS_DIR_ENV


@pytest.fixture
def schemas_configured(monkeypatch, shared_data):
    """Run with run-time XSD validation on, as an operator would configure it."""
    monkeypatch.setenv(SCHEMAS_DIR_ENV, str(shared_data("iso20022")))


@pytest.fixture
def schemas_unconfigured(monkeypatch):
    """Run with scopay's own strict parser only."""
    monkeypatch.delenv(SCHEMAS_DIR_ENV, raising=False)
