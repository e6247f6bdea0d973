"""Fixtures for the ISO 20022 tests: the official XSDs, read from the shared data folder.

The schemas are not in the repository; they sit next to it in ../shared/data/iso20022. Without
that folder the schema checks are skipped with the reason, except in CI (CI=true), where a
missing folder fails the run: CI must prove every message scopay builds is schema-valid.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from lxml import etree

from scopay.iso20022.schemas import SCHEMAS_DIR_ENV

SCHEMAS_DIR = Path(__file__).parents[2].parent / "shared" / "data" / "iso20022"


def require_schemas_dir() -> Path:
    if SCHEMAS_DIR.is_dir():
        return SCHEMAS_DIR
    reason = f"official ISO 20022 XSDs not found at {SCHEMAS_DIR}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI must validate every message against them")
    pytest.skip(reason)


_loaded: dict[str, etree.XMLSchema] = {}


@pytest.fixture(scope="session")
def xsd():
    """xsd(message_type) -> the official XMLSchema, loaded straight from the shared folder."""
    directory = require_schemas_dir()

    def load(message_type: str) -> etree.XMLSchema:
        if message_type not in _loaded:
            _loaded[message_type] = etree.XMLSchema(
                etree.parse(str(directory / f"{message_type}.xsd")))
        return _loaded[message_type]

    return load


@pytest.fixture
def schemas_configured(monkeypatch):
    """Run with run-time XSD validation on, as an operator would configure it."""
    monkeypatch.setenv(SCHEMAS_DIR_ENV, str(require_schemas_dir()))


@pytest.fixture
def schemas_unconfigured(monkeypatch):
    """Run with scopay's own strict parser only."""
    monkeypatch.delenv(SCHEMAS_DIR_ENV, raising=False)
