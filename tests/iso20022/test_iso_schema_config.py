"""Run-time XSD validation is optional: off without SCOPAY_ISO20022_SCHEMAS, on with it."""

from __future__ import annotations

import pytest
from iso_support import CUSTOMER_TRANSFER, SAMPLES_DIR, altered

from scopay.iso20022.pacs008 import parse_pacs008
from scopay.iso20022.parsing import MessageRefused
from scopay.iso20022.schemas import SCHEMAS_DIR_ENV, SchemaUnavailable, schema_for


def test_no_schema_when_unconfigured(schemas_unconfigured):
    assert schema_for("pacs.008.001.08") is None


def test_schema_loaded_once_per_thread_when_configured(schemas_configured):
    first = schema_for("pacs.008.001.08")
    assert first is not None
    assert schema_for("pacs.008.001.08") is first


def test_configured_directory_without_the_schema_is_an_operator_error(monkeypatch, tmp_path):
    monkeypatch.setenv(SCHEMAS_DIR_ENV, str(tmp_path))
    with pytest.raises(SchemaUnavailable, match="has no pacs.008.001.08.xsd"):
        schema_for("pacs.008.001.08")


def test_a_malformed_message_is_the_sender_s_error_before_a_missing_schema(monkeypatch,
                                                                          tmp_path):
    monkeypatch.setenv(SCHEMAS_DIR_ENV, str(tmp_path))
    malformed = altered(CUSTOMER_TRANSFER, "</MsgId>", "</MsgIx>")
    with pytest.raises(MessageRefused, match="not well-formed"):
        parse_pacs008(malformed)
    with pytest.raises(SchemaUnavailable, match="has no pacs.008.001.08.xsd"):
        parse_pacs008(CUSTOMER_TRANSFER)


def test_a_file_that_is_not_a_schema_is_an_operator_error(monkeypatch, tmp_path):
    (tmp_path / "pacs.008.001.08.xsd").write_bytes(
        (SAMPLES_DIR / "head001_app_header.xml").read_bytes())
    monkeypatch.setenv(SCHEMAS_DIR_ENV, str(tmp_path))
    with pytest.raises(SchemaUnavailable, match="not a usable XML schema"):
        schema_for("pacs.008.001.08")
