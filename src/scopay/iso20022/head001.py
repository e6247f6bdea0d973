"""head.001.001.02 business application header (BAH), and scopay's envelope.

The BAH says who sends (Fr) what (MsgDefIdr, BizMsgIdr) to whom (To); CBPR+ and T2 require one
with every message. Over a transport that carries one XML document, scopay wraps the two in its
own envelope element:

    <Envelope xmlns="urn:scopay:xsd:envelope">
      <AppHdr xmlns="urn:iso:std:iso:20022:tech:xsd:head.001.001.02">...</AppHdr>
      <Document xmlns="urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08">...</Document>
    </Envelope>

A BAH may also travel alongside its document (a separate part or file): build_app_header and
parse_app_header handle it alone. Either way the header's MsgDefIdr must name the document's
message type. Copies (CpyDplct) and party (non-agent) senders are refused (AG03).
"""

from __future__ import annotations

from lxml import etree

from scopay.iso20022.codes import ReasonCode
from scopay.iso20022.component import AGENT, add_agent, only_value
from scopay.iso20022.datatype import (
    add_id,
    format_datetime_us,
    read_boolean,
    read_datetime_us,
    read_id,
)
from scopay.iso20022.document import (
    iso_namespace,
    message_type_of,
    namespace_of,
    qualified_namespace,
    serialize,
)
from scopay.iso20022.model import BusinessAppHeader
from scopay.iso20022.parsing import MessageRefused, parse_document
from scopay.iso20022.schemas import validate_against_schema
from scopay.iso20022.shape import Fields, Shape, add, read_shape, refuse_at

HEAD001_V02 = "head.001.001.02"
NS = qualified_namespace(HEAD001_V02)
ENVELOPE_NAMESPACE = "urn:scopay:xsd:envelope"
ENVELOPE = f"{{{ENVELOPE_NAMESPACE}}}Envelope"
XML_WHITE_SPACE = " \t\r\n"  # XML's (str.isspace would take no-break spaces too)


def app_header(fields: Fields, element: etree._Element) -> BusinessAppHeader:
    return BusinessAppHeader(
        from_bic=fields["Fr"], to_bic=fields["To"], business_message_id=fields["BizMsgIdr"],
        message_definition_id=fields["MsgDefIdr"], created_at_us=fields["CreDt"],
        business_service=fields.get("BizSvc"), possible_duplicate=fields.get("PssblDplct", False),
    )


_PARTY = Shape("Party44Choice", "OrgId FIId", choice=True, refused=("OrgId",),
               finish=only_value, FIId=AGENT)
APP_HEADER = Shape(
    "BusinessApplicationHeaderV02",
    "CharSet? Fr To BizMsgIdr MsgDefIdr BizSvc? MktPrctc? CreDt BizPrcgDt? CpyDplct? "
    "PssblDplct? Prty? Sgntr? Rltd*",
    refused=("CpyDplct",), finish=app_header, Fr=_PARTY, To=_PARTY, BizMsgIdr=read_id,
    MsgDefIdr=read_id, BizSvc=read_id, CreDt=read_datetime_us, PssblDplct=read_boolean,
)


def read_app_header(element: etree._Element) -> BusinessAppHeader:
    """An AppHdr element, XSD-checked when schemas are configured."""
    if element.tag != NS + "AppHdr":
        refuse_at(element, ReasonCode.INVALID_FILE_FORMAT,
                  f"expected AppHdr in {iso_namespace(HEAD001_V02)}")
    validate_against_schema(element, HEAD001_V02)
    return read_shape(element, APP_HEADER, NS)


def parse_app_header(data: bytes) -> BusinessAppHeader:
    return read_app_header(parse_document(data))


def app_header_element(header: BusinessAppHeader) -> etree._Element:
    namespace = iso_namespace(HEAD001_V02)
    root = etree.Element(f"{{{namespace}}}AppHdr", nsmap={None: namespace})
    add_agent(add(root, "Fr"), "FIId", header.from_bic)
    add_agent(add(root, "To"), "FIId", header.to_bic)
    add_id(root, "BizMsgIdr", header.business_message_id)
    add_id(root, "MsgDefIdr", header.message_definition_id)
    if header.business_service is not None:
        add_id(root, "BizSvc", header.business_service)
    # CBPR+ wants the header's creation time in UTC with a Z.
    add(root, "CreDt", format_datetime_us(header.created_at_us, utc="Z"))
    if header.possible_duplicate:
        add(root, "PssblDplct", "true")
    return root


def build_app_header(header: BusinessAppHeader) -> bytes:
    return serialize(app_header_element(header))


def build_envelope(header: BusinessAppHeader, document: bytes) -> bytes:
    """Wrap a document scopay built with its header in scopay's envelope."""
    body = parse_document(document)
    message_type = message_type_of(namespace_of(body))
    if header.message_definition_id != message_type:
        raise ValueError(f"header names {header.message_definition_id}, document is "
                         f"{message_type}")
    envelope = etree.Element(ENVELOPE, nsmap={None: ENVELOPE_NAMESPACE})
    envelope.append(app_header_element(header))
    envelope.append(body)
    return serialize(envelope)


def open_envelope(root: etree._Element) -> tuple[BusinessAppHeader, etree._Element]:
    """(header, Document element) of an envelope; the document is not read yet."""
    children = root.getchildren()
    if len(children) != 2:
        refuse_at(root, ReasonCode.INVALID_FILE_FORMAT,
                  "an envelope holds exactly an AppHdr and a Document")
    # scopay's own element, which no XSD checks: nothing else in it, not even text between
    if root.attrib or any(text and text.strip(XML_WHITE_SPACE)
                          for text in (root.text, children[0].tail, children[1].tail)):
        refuse_at(root, ReasonCode.INVALID_FILE_FORMAT,
                  "an envelope holds an AppHdr and a Document and nothing else (no attribute, "
                  "no text)")
    return read_app_header(children[0]), children[1]


def check_header_names(header: BusinessAppHeader, message_type: str) -> None:
    if header.message_definition_id != message_type:
        raise MessageRefused(
            ReasonCode.INVALID_FILE_FORMAT,
            f"AppHdr MsgDefIdr {header.message_definition_id!r} does not name the enclosed "
            f"{message_type}",
        )
