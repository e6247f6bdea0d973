"""Optional full validation against the official ISO 20022 XSDs.

The schemas are not part of scopay (their licence and size keep them out of the repository):
an operator points SCOPAY_ISO20022_SCHEMAS at a directory holding `<message type>.xsd` files,
and every message read is then validated against its XSD before scopay's own parser maps it.
Unset, schema_for answers None and scopay's own strict parser is the only check.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

from lxml import etree

from scopay.iso20022.codes import ReasonCode
from scopay.iso20022.parsing import MessageRefused

SCHEMAS_DIR_ENV = "SCOPAY_ISO20022_SCHEMAS"
MESSAGE_TYPE_PATTERN = re.compile(r"[a-z]{4}\.[0-9]{3}\.[0-9]{3}\.[0-9]{2}")  # pacs.008.001.08


class SchemaUnavailable(RuntimeError):
    """The configured schema directory lacks a schema scopay needs: an operator's fix."""


_local = threading.local()


def schema_for(message_type: str) -> etree.XMLSchema | None:
    """The XSD validator of a message type (e.g. 'pacs.008.001.08'), or None if unconfigured."""
    configured = os.environ.get(SCHEMAS_DIR_ENV)
    if not configured:
        return None
    # A validator keeps its error log between calls: one per thread, so threads never mix logs.
    try:
        return _local.schemas[configured, message_type]
    except (AttributeError, KeyError):
        return _load_for_thread(configured, message_type)


def _load_for_thread(configured: str, message_type: str) -> etree.XMLSchema | None:
    directory = configured.strip()
    if not directory:
        return None
    cache: dict[tuple[str, str], etree.XMLSchema] | None = getattr(_local, "schemas", None)
    if cache is None:
        cache = _local.schemas = {}
    assert MESSAGE_TYPE_PATTERN.fullmatch(message_type), f"not a message type: {message_type!r}"
    schema = cache[configured, message_type] = load_schema(
        Path(directory) / f"{message_type}.xsd")
    return schema


def check_schemas(message_types: tuple[str, ...]) -> None:
    """Load the XSD of each message type now, when schemas are configured: a folder that
    lacks one or holds a broken one (SchemaUnavailable) is found when scopay starts, not at
    the first message of that type."""
    for message_type in message_types:
        schema_for(message_type)


def load_schema(path: Path) -> etree.XMLSchema:
    if not path.is_file():
        raise SchemaUnavailable(f"{SCHEMAS_DIR_ENV} names {path.parent}, which has no {path.name}")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        return etree.XMLSchema(etree.parse(str(path), parser))
    except (etree.XMLSyntaxError, etree.XMLSchemaParseError) as error:
        raise SchemaUnavailable(f"{path} is not a usable XML schema: {error}") from error


def validate_against_schema(element: etree._Element, message_type: str) -> None:
    """Refuse (FF01, with the first error and its line) what the official XSD refuses."""
    schema = schema_for(message_type)
    if schema is None or schema.validate(element):
        return
    error = schema.error_log[0]
    raise MessageRefused(
        ReasonCode.INVALID_FILE_FORMAT,
        f"{message_type} schema: {error.message} (line {error.line})",
    )
