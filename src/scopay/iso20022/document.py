"""The ISO 20022 Document wrapper: its namespace names the message type and version.

Opening an incoming document runs the layers in order: hardened parsing, the namespace check
(a wrong message or an unsupported version is refused with a text naming what scopay reads),
then the official XSD when one is configured. Writing one out gives UTF-8 bytes with an XML
declaration.
"""

from __future__ import annotations

import re
from functools import cache

from lxml import etree

from scopay.iso20022.codes import ReasonCode
from scopay.iso20022.parsing import (
    ELEMENT_BYTES_MIN,
    ELEMENTS_MAX,
    MESSAGE_BYTES_MAX,
    MessageRefused,
    check_message_bytes,
    may_hold_too_many_elements,
    parse_document,
    valid_without_tree,
)
from scopay.iso20022.pattern import BEFORE_ROOT
from scopay.iso20022.schemas import (
    MESSAGE_TYPE_PATTERN,
    SchemaUnavailable,
    schema_for,
    validate_against_schema,
)
from scopay.iso20022.shape import refuse_at

ISO_NAMESPACE_PREFIX = "urn:iso:std:iso:20022:tech:xsd:"


def iso_namespace(message_type: str) -> str:
    return ISO_NAMESPACE_PREFIX + message_type


def message_type_of(namespace: str) -> str | None:
    """'pacs.008.001.08' for the pacs.008.001.08 namespace; None for a non-ISO namespace."""
    if not namespace.startswith(ISO_NAMESPACE_PREFIX):
        return None
    message_type = namespace[len(ISO_NAMESPACE_PREFIX):]
    return message_type if MESSAGE_TYPE_PATTERN.fullmatch(message_type) else None


def namespace_of(element: etree._Element) -> str:
    tag = element.tag
    return tag[1:tag.index("}")] if tag.startswith("{") else ""


def check_message_type(element: etree._Element, expected: tuple[str, ...]) -> str:
    """The message type an element's namespace names, refused unless one of `expected`."""
    namespace = namespace_of(element)
    message_type = message_type_of(namespace)
    if message_type in expected:
        return message_type
    readable = ", ".join(expected)
    if message_type is None:
        raise MessageRefused(
            ReasonCode.INVALID_FILE_FORMAT,
            f"namespace {namespace or '(none)'!r} is not an ISO 20022 message namespace; "
            f"expected one of {readable}",
        )
    if message_type not in expected:
        family = [known for known in expected if known[:8] == message_type[:8]]
        text = (f"{message_type} is a version scopay does not read; it reads "
                f"{', '.join(family)}" if family
                else f"document is {message_type}; expected one of {readable}")
        raise MessageRefused(ReasonCode.INVALID_FILE_FORMAT, text)
    return message_type


def open_document(data: bytes, expected: tuple[str, ...]) -> tuple[etree._Element, str]:
    """Parse, then check namespace and (when configured) XSD: (Document element, type)."""
    root = parse_document(data)
    return root, check_document(root, expected)


# The root start tag of a bare Document whose message type validated_type can vouch for, after
# at most a byte order mark, an XML declaration, comments and white space: an unprefixed
# Document declaring an ISO namespace (groups 1 and 2, by its quotes, name its message type)
# and nothing but the XML Schema and XML Schema instance namespaces and, after the latter, a
# schema location (the other order, as any other attribute, leaves the message to the tree).
# The parse reports no namespace errors when the XSD checks the bytes as they are read (see
# parsing.valid_without_tree): a start tag holding nothing else, and expressions that take no
# namespace of their own below it (pattern.py), leave none to report.
_WHITE = rb"[ \t\r\n]"
_EQUALS = _WHITE + rb"*+=" + _WHITE + rb"*+"
_XSD = rb"http://www\.w3\.org/2001/XMLSchema"
_XSI = _XSD + rb"-instance"
_ISO = (re.escape(ISO_NAMESPACE_PREFIX.encode("ascii"))
        + b"(" + MESSAGE_TYPE_PATTERN.pattern.encode("ascii") + b")")
_DECLARED_TYPE = re.compile(
    rb"(?:\xef\xbb\xbf)?" + BEFORE_ROOT.encode("ascii") + rb"<Document(?:" + _WHITE + rb"++(?:"
    rb"xmlns" + _EQUALS + rb"(?:\"" + _ISO + rb"\"|'" + _ISO + rb"')"
    rb"|(xmlns:xsi)" + _EQUALS + rb"(?:\"" + _XSI + rb"\"|'" + _XSI + rb"')"
    rb"|xmlns:xsd" + _EQUALS + rb"(?:\"" + _XSD + rb"\"|'" + _XSD + rb"')"
    rb"|(?(3)xsi:(?:noNamespaceS|s)chemaLocation" + _EQUALS + rb"(?:\"[^\"<&]*+\"|'[^'<&]*+')"
    rb"|(?!))"  # after xmlns:xsi only
    rb"))*" + _WHITE + rb"*+>")
DECLARATION_BYTES = 1024  # where a bare Document's root start tag is looked for


def declared_type(data: bytes) -> str | None:
    """The message type a bare Document's root start tag declares, when the tag is one
    _DECLARED_TYPE takes (None otherwise)."""
    declared = _declared(data)
    return None if declared is None else declared[0]


def _declared(data: bytes) -> tuple[str, int] | None:
    """(declared_type, where the root start tag ends)."""
    declared = _DECLARED_TYPE.match(data, 0, DECLARATION_BYTES)
    if declared is None:
        return None
    iso_type, iso_type_quoted, _ = declared.groups()
    iso_type = iso_type or iso_type_quoted
    return None if iso_type is None else (iso_type.decode("ascii"), declared.end())


# The prologues (the bytes up to the end of the root's start tag) of messages validated_type
# read in full and found valid, with the type each declares. A message that starts with one
# of them has what check_message_bytes and _DECLARED_TYPE read there alike, so only its length
# is left to check before the parse. Past the root's start tag check_message_bytes refuses
# nothing but a DOCTYPE, which is not well-formed there unless it is in a comment, a CDATA
# section or a processing instruction: the parse fails on the one, and the reader takes none
# of the others, inside the message element (pattern.py) or after it (credit_transfer's
# _ROOT_END), so the tree's way (open_document, parse_document) then gives the reason. A
# sender writes the same prologue in every message: a few are kept, and forgotten all at once
# when there are more.
_PROLOGUES_MAX = 16
_prologues: dict[bytes, str] = {}
# Longer messages may hold more than ELEMENTS_MAX elements (may_hold_too_many_elements).
_PROLOGUE_BYTES_MAX = min(MESSAGE_BYTES_MAX, ELEMENT_BYTES_MIN * ELEMENTS_MAX)


def validated_type(data: bytes, expected: tuple[str, ...]) -> str | None:
    """The message type of a bare Document (one of `expected`) that its official XSD accepts,
    checked while libxml2 parses the bytes with no tree built; for readers that take their
    values from the text (pattern.py), which then need no tree at all.

    The type is the root start tag's default namespace (_DECLARED_TYPE). None when no schema
    is configured, the bytes start otherwise, they might exceed ELEMENTS_MAX, or the parse or
    the XSD refuses them: open_document then reads them into a tree and gives the reason.
    What check_message_bytes refuses before any parse raises MessageRefused here, as there,
    or (a DOCTYPE after a known prologue, _prologues) is left to the tree's way, which
    refuses it alike.
    A reader that takes the message after this must take all of it, to the root's end tag,
    with its strict expressions: the parse here reports no namespace errors, so only what
    those take is known free of them (pattern.py)."""
    prologue = b""
    if type(data) is bytes and len(data) <= _PROLOGUE_BYTES_MAX:
        root = data.find(b"<Document", 0, DECLARATION_BYTES)  # where _declared looks
        if root >= 0:
            prologue = data[:data.find(b">", root, DECLARATION_BYTES) + 1]
    message_type = _prologues.get(prologue)
    keep = False
    if message_type is None:
        check_message_bytes(data)  # its refusals are open_document's first
        declared = _declared(data)
        if declared is None or may_hold_too_many_elements(data):
            return None
        message_type, end = declared
        # Kept when it is the prologue looked up, not when an attribute's value holds a '>'
        # or a comment before the root a '<Document'.
        keep = len(prologue) == end
    if message_type not in expected:
        return None
    try:
        schema = schema_for(message_type)
    except SchemaUnavailable:  # raised by the tree's way, after a malformed message's FF01
        return None
    if schema is None or not valid_without_tree(data, schema):
        return None
    if keep:
        if len(_prologues) >= _PROLOGUES_MAX:
            _prologues.clear()
        _prologues[prologue] = message_type
    return message_type


def check_document(document: etree._Element, expected: tuple[str, ...]) -> str:
    """The message type of a Document element, refused unless expected and schema-valid."""
    message_type = document_types(expected).get(document.tag)
    if message_type is None:  # refused below, with the reason
        message_type = check_message_type(document, expected)
        if not document.tag.endswith("}Document"):  # the namespace is an ISO one
            refuse_at(document, ReasonCode.INVALID_FILE_FORMAT,
                      f"element is {etree.QName(document).localname}; expected Document")
    validate_against_schema(document, message_type)
    return message_type


@cache
def document_types(expected: tuple[str, ...]) -> dict[str, str]:
    """The message type of each Document tag check_message_type accepts, by the tag."""
    return {f"{{{iso_namespace(message_type)}}}Document": message_type
            for message_type in expected}


def message_element(document: etree._Element, name: str, ns: str) -> etree._Element:
    """The one message element inside Document (e.g. FIToFICstmrCdtTrf)."""
    children = list(document)
    if len(children) != 1 or children[0].tag != ns + name:
        refuse_at(document, ReasonCode.INVALID_FILE_FORMAT,
                  f"Document must hold exactly one {name}")
    return children[0]


def new_document(message_type: str, name: str) -> tuple[etree._Element, etree._Element]:
    """(Document, its message element) for a message scopay builds."""
    namespace = iso_namespace(message_type)
    document = etree.Element(f"{{{namespace}}}Document", nsmap={None: namespace})
    return document, etree.SubElement(document, f"{{{namespace}}}{name}")


def serialize(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def qualified_namespace(message_type: str) -> str:
    """The `{namespace}` prefix tags of a message type carry."""
    return "{" + iso_namespace(message_type) + "}"
