"""Reading any ISO 20022 message scopay speaks: the Document's namespace picks the reader.

parse_message(data) -> (message type, value):
  a bare Document        -> ("pacs.008.001.08", CreditTransferMessage), ...
  scopay's envelope      -> (the document's type, BusinessMessage(header, type, value))
  a lone AppHdr          -> ("head.001.001.02", BusinessAppHeader)
Every layer runs: hardened parsing, namespace and version, the official XSD when configured,
then scopay's own strict reader. A bare pacs.008 is first tried without a tree: the XSD checks
it while it is parsed, and the reader takes it from its text (pacs008.read_validated_text).
Anything refused raises MessageRefused(reason code, text).
"""

from __future__ import annotations

from collections.abc import Callable

from lxml import etree

from scopay.iso20022.camt029 import CAMT029_V10, read_camt029
from scopay.iso20022.camt053 import CAMT053_V08, read_camt053
from scopay.iso20022.camt054 import CAMT054_V08, read_camt054
from scopay.iso20022.camt056 import CAMT056_V09, read_camt056
from scopay.iso20022.document import check_document
from scopay.iso20022.head001 import (
    ENVELOPE,
    HEAD001_V02,
    check_header_names,
    open_envelope,
    read_app_header,
)
from scopay.iso20022.head001 import (
    NS as HEAD_NS,
)
from scopay.iso20022.model import BusinessMessage
from scopay.iso20022.pacs002 import PACS002_V10, read_pacs002
from scopay.iso20022.pacs004 import PACS004_V09, read_pacs004
from scopay.iso20022.pacs008 import PACS008_V08, PACS008_V13, read_pacs008, read_validated_text
from scopay.iso20022.pacs009 import PACS009_V08, read_pacs009
from scopay.iso20022.parsing import parse_document

READERS: dict[str, Callable[[etree._Element, str], object]] = {
    PACS008_V08: read_pacs008,
    PACS008_V13: read_pacs008,
    PACS009_V08: read_pacs009,
    PACS002_V10: read_pacs002,
    PACS004_V09: read_pacs004,
    CAMT056_V09: read_camt056,
    CAMT029_V10: read_camt029,
    CAMT053_V08: read_camt053,
    CAMT054_V08: read_camt054,
}
MESSAGE_TYPES = tuple(READERS)
VALIDATED_TYPES = (*MESSAGE_TYPES, HEAD001_V02)  # each read is checked against its XSD
# Readers that can read a bare Document from its bytes (falling back to the tree).
TEXT_READERS: dict[str, Callable[[etree._Element, str, bytes], object]] = {
    PACS008_V08: read_pacs008,
    PACS008_V13: read_pacs008,
}
TEXT_TYPES = tuple(TEXT_READERS)


def parse_message(data: bytes) -> tuple[str, object]:
    read = read_validated_text(data, TEXT_TYPES)  # a bare pacs.008, with no tree when it can
    if read is not None:
        return read
    root = parse_document(data)
    if root.tag == ENVELOPE:
        header, document = open_envelope(root)
        message_type, value = read_document(document)
        check_header_names(header, message_type)
        return message_type, BusinessMessage(header, message_type, value)
    if root.tag == HEAD_NS + "AppHdr":
        return HEAD001_V02, read_app_header(root)
    return read_document(root, data)


def read_document(document: etree._Element, data: bytes | None = None) -> tuple[str, object]:
    """The type and value of a Document; `data`, the bytes of a bare Document, lets the
    pacs.008 reader read from the text (pattern.py)."""
    message_type = check_document(document, MESSAGE_TYPES)
    if data is not None and message_type in TEXT_READERS:
        return message_type, TEXT_READERS[message_type](document, message_type, data)
    return message_type, READERS[message_type](document, message_type)
