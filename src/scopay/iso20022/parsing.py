"""Hardened XML parsing: the door every incoming ISO 20022 message passes through (into a
tree, parse_document, or, checked by its XSD as it is read, into nothing, valid_without_tree).

A message is untrusted bytes from the network. Before lxml sees it, its size, encoding and
DOCTYPE are checked; lxml then parses without DTDs, entities, network access or huge-tree mode
(libxml2 itself then refuses nesting beyond 256 levels and texts beyond 10 MB); afterwards the
element count is checked. Anything refused raises MessageRefused with an ISO 20022 external
status reason code, so the refusal can go back to the sender in a pacs.002 as it is.

Depth: scopay's readers descend only along the shapes of the components they read (a dozen
levels at most) and every leaf they read must have no children; the subtrees they skip are
checked with check_subtree_depth. So nothing in an accepted message nests deeper than
DEPTH_MAX, and no message pays for a walk of its whole tree to prove it.
"""

from __future__ import annotations

import re
import threading
from itertools import islice

from lxml import etree

from scopay.iso20022.codes import ReasonCode

MESSAGE_BYTES_MAX = 10 * 1024 * 1024  # 10 MiB: a 1,000-transaction pacs.008 is about 2.5 MiB
DEPTH_MAX = 64  # element nesting; the deepest ISO path scopay reads is about 12
ELEMENTS_MAX = 500_000  # elements per document, far above what MESSAGE_BYTES_MAX holds in ISO
ELEMENT_BYTES_MIN = 4  # `<a/>`: no element takes fewer bytes

REFUSED_FORMAT = ReasonCode.INVALID_FILE_FORMAT

_DOCTYPE = b"<!DOCTYPE"
_FOREIGN_BYTE_ORDER_MARKS = (
    b"\x00\x00\xfe\xff", b"\xff\xfe\x00\x00", b"\xfe\xff", b"\xff\xfe", b"\x00<", b"<\x00",
)
# The encoding an XML declaration names: the declaration stands first (after a byte order
# mark), however long its white space makes it, and holds no '>' before its end.
_DECLARED_ENCODING = re.compile(rb"\A(?:\xef\xbb\xbf)?[ \t\r\n]*<\?xml[ \t\r\n][^>]*?"
                                rb"encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"']")
# The declarations most messages start with (lxml's and the usual senders'), all UTF-8.
_UTF8_DECLARATIONS = tuple(
    f"<?xml version={quote}1.0{quote} encoding={quote}{name}{quote}".encode("ascii")
    for quote in "\"'" for name in ("UTF-8", "utf-8"))


class MessageRefused(Exception):
    """Input that is not a message scopay accepts, with the ISO reason code to answer with."""

    def __init__(self, reason_code: str, text: str) -> None:
        super().__init__(f"{reason_code}: {text}")
        self.reason_code = reason_code
        self.text = text


_local = threading.local()


# The hardening every parser of untrusted bytes takes: UTF-8, no entities, network, DTD,
# huge trees, ids or attribute defaults (parse_document's, and valid_without_tree's).
_HARDENED = dict(encoding="utf-8", resolve_entities=False, no_network=True, load_dtd=False,
                 dtd_validation=False, huge_tree=False, collect_ids=False,
                 attribute_defaults=False)


def _parser() -> etree.XMLParser:
    # lxml parsers keep per-parse state: one per thread, built once, reused.
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = etree.XMLParser(**_HARDENED, remove_comments=True, remove_pis=True)
        _local.parser = parser
    return parser


def _xpath(expression: str) -> etree.XPath:
    # Compiled XPath evaluators are not shared between threads either.
    cache: dict[str, etree.XPath] = _local.__dict__.setdefault("xpath", {})
    evaluator = cache.get(expression)
    if evaluator is None:
        evaluator = cache[expression] = etree.XPath(expression)
    return evaluator


def check_message_bytes(data: bytes) -> None:
    """Refuse, before any parsing, what no ISO 20022 message scopay reads can look like."""
    if not isinstance(data, bytes):
        raise MessageRefused(REFUSED_FORMAT, f"a message is bytes, not {type(data).__name__}")
    if len(data) > MESSAGE_BYTES_MAX:
        raise MessageRefused(
            REFUSED_FORMAT,
            f"message is {len(data)} bytes; scopay accepts at most {MESSAGE_BYTES_MAX} bytes",
        )
    if not data or data.isspace():
        raise MessageRefused(REFUSED_FORMAT, "message is empty")
    if data.startswith(_FOREIGN_BYTE_ORDER_MARKS):
        raise MessageRefused(REFUSED_FORMAT, "message is not UTF-8 (UTF-16/32 byte order)")
    declared = None
    if not data.startswith(_UTF8_DECLARATIONS):  # where the search would find UTF-8 first
        declared = _DECLARED_ENCODING.match(data)
    if declared is not None and declared.group(1).lower() not in (b"utf-8", b"utf8"):
        raise MessageRefused(
            REFUSED_FORMAT,
            f"message declares encoding {declared.group(1).decode('ascii')}; only UTF-8 is read",
        )
    # A DOCTYPE is how entity bombs and external entities get in; no ISO message needs one.
    # (Looking for a '!' first is a third of the cost, and most messages have none.)
    if b"!" in data and _DOCTYPE in data:
        raise MessageRefused(REFUSED_FORMAT, "message contains a DOCTYPE; DTDs are refused")


def parse_document(data: bytes) -> etree._Element:
    """Parse untrusted bytes into an element tree, or raise MessageRefused (FF01)."""
    check_message_bytes(data)
    parser = _parser()
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as error:
        # libxml2's message names line and column already.
        raise MessageRefused(REFUSED_FORMAT, f"not well-formed XML: {error.msg}") from None
    # lxml raises for the parse's last error only: an error that did not stop libxml2 (a
    # namespace error) followed by a warning (a relative namespace URI) passes it.
    errors = parser.error_log.filter_from_errors()
    if errors:
        raise MessageRefused(REFUSED_FORMAT, f"not well-formed XML: {errors[0].message}, "
                                             f"line {errors[0].line}, column {errors[0].column}")
    docinfo = root.getroottree().docinfo
    if docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise MessageRefused(REFUSED_FORMAT, "message contains a DOCTYPE; DTDs are refused")
    check_tree_limits(root, data)
    return root


def may_hold_too_many_elements(data: bytes) -> bool:
    """False when the bytes cannot hold more than ELEMENTS_MAX elements: an element takes at
    least 4 bytes (`<a/>`) and has a '<', so the bytes bound the count first and the '<'s
    (counted in C) next; only beyond both must the tree be counted."""
    return len(data) > ELEMENT_BYTES_MIN * ELEMENTS_MAX and data.count(b"<") > ELEMENTS_MAX


def check_tree_limits(root: etree._Element, data: bytes) -> None:
    if may_hold_too_many_elements(data):
        elements = int(_xpath("count(//*)")(root))
        if elements > ELEMENTS_MAX:
            raise MessageRefused(
                REFUSED_FORMAT, f"message has {elements} elements; at most {ELEMENTS_MAX}"
            )


class _NoTree:
    """A parser target that keeps nothing: libxml2 reads the bytes and builds no tree."""

    def close(self) -> None:
        return None


def valid_without_tree(data: bytes, schema: etree.XMLSchema) -> bool:
    """Whether bytes that passed check_message_bytes are well-formed and valid against
    `schema`, checked while libxml2 reads them, with parse_document's hardening (no DTD,
    entities, network or huge trees) and no tree built: for a reader that takes its values
    from the text, the cheapest check.

    Not a full one: with the schema plugged into the parser, libxml2 reports the parser's
    errors that do not stop it, namespace errors among them (an undeclared prefix, an empty
    prefixed namespace, an attribute twice under two prefixes ...), to no one. The caller must
    know by other means that there are none (document.validated_type). False says nothing
    about why (the validator's stream errors carry no line): the tree and the schema's own
    validation then find it again and give the reason."""
    parsers: dict[etree.XMLSchema, etree.XMLParser] | None = getattr(_local, "validating", None)
    if parsers is None:
        parsers = _local.validating = {}
    parser = parsers.get(schema)
    if parser is None:
        parser = parsers[schema] = etree.XMLParser(**_HARDENED, schema=schema,
                                                   target=_NoTree())
    try:
        etree.fromstring(data, parser)
    except etree.XMLSyntaxError:  # not well-formed, or a validation error that stopped it
        return False
    return not parser.error_log  # the validation errors are logged here


def check_subtree_depth(element: etree._Element) -> None:
    """Refuse when anything below `element` sits deeper than DEPTH_MAX in the document."""
    if not len(element):
        return
    levels_left = DEPTH_MAX - sum(1 for _ in element.iterancestors()) - 1
    # A subtree of n elements below `element` is at most n levels deep: most skipped ones
    # are a few elements, proved shallow by counting them, without the deep XPath.
    if sum(1 for _ in islice(element.iterdescendants(), levels_left + 1)) <= levels_left:
        return
    steps = "/".join(["*"] * max(levels_left + 1, 1))
    if levels_left < 0 or _xpath(f"boolean({steps})")(element):
        raise MessageRefused(
            REFUSED_FORMAT,
            f"elements nest deeper than {DEPTH_MAX} levels (under line {element.sourceline})",
        )
