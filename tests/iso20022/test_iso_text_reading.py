"""pacs.008 is read from its text by expressions compiled from the Shapes (pattern.py), and from
its tree for whatever they do not take. Both readers give the same value, or the same refusal
with the same reason code and text: over generated messages, over layouts real senders use,
and over random breakage of the samples; and each leaf reader's text rule takes only what the
reader takes, with the same value."""

from __future__ import annotations

import copy
import dataclasses
import re
import string
from decimal import Decimal
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from iso_support import (
    CURRENT_VERSION,
    CUSTOMER_TRANSFER,
    SAMPLES_DIR,
    altered,
    credit_transfers,
    from_tree,
    outcome,
)
from lxml import etree

from scopay.iso20022 import credit_transfer, datatype, document, pattern
from scopay.iso20022.credit_transfer import (
    PREFIXES_MAX,
    read_credit_transfer_text,
)
from scopay.iso20022.document import open_document, validated_type
from scopay.iso20022.message import parse_message
from scopay.iso20022.model import control_sum
from scopay.iso20022.pacs008 import (
    MESSAGE_TYPES,
    VERSIONS,
    TransactionText,
    build_pacs008,
    parse_pacs008,
    read_transaction_text,
    read_validated_text,
)
from scopay.iso20022.parsing import (
    DEPTH_MAX,
    MESSAGE_BYTES_MAX,
    MessageRefused,
    valid_without_tree,
)
from scopay.iso20022.schemas import schema_for
from scopay.iso20022.shape import Shape, keep_element

# The T2 batch's Document alone (its sample is in an envelope): group-level settlement date,
# clearing channel and instructing agent, control sum and total, a settlement time window.
BATCH = etree.tostring(
    etree.fromstring((SAMPLES_DIR / "pacs008_t2_batch_envelope.xml").read_bytes())[1],
    xml_declaration=True, encoding="UTF-8")
NS08 = "urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08"

EXAMPLES = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def from_text(data: bytes):
    """The text reader alone: the message, or None where it leaves the message to the tree."""
    document, message_type = open_document(data, MESSAGE_TYPES)
    return read_credit_transfer_text(data, document, VERSIONS[message_type], TransactionText,
                                     read_transaction_text)




def compact(data: bytes) -> bytes:
    return re.sub(rb">\s+<", b"><", data)


# Messages scopay writes ----------------------------------------------------------------------

@EXAMPLES
@given(message=credit_transfers(), version=st.sampled_from(MESSAGE_TYPES))
def test_generated_messages_are_read_from_their_text(message, version):
    data = build_pacs008(message, version)
    assert from_tree(data) == message
    # The text reader reads it, or leaves it to the tree: that it may do only where a text is
    # written with a reference (`&amp;` for `&`) and so may be longer, as written, than the
    # most its element holds (its patterns see the text as written: pattern.py)
    text = from_text(data)
    assert text == message or (text is None and b"&" in data)


def many_transactions(count: int) -> bytes:
    """The customer transfer sample's payment `count` times, each with its own ids and amount;
    pairs of transactions share their debtor agent."""
    message = parse_pacs008(CUSTOMER_TRANSFER)
    payment = message.payments[0]
    payments = tuple(
        dataclasses.replace(
            payment, uetr=f"8a562c67-ca16-48ba-b074-{number:012x}",
            instruction_id=f"INS-{number}", end_to_end_id=f"E2E-{number}",
            settlement_amount_minor=payment.settlement_amount_minor + number,
            debtor_agent=f"ICBKCNBJ{number // 2:03d}")
        for number in range(count))
    return build_pacs008(dataclasses.replace(message, payments=payments))


MANY = 131  # converted group by group (pattern.Compiled.rows_of), agents' BICs in pairs


def test_many_transactions_are_read_from_their_text():
    data = many_transactions(MANY)
    message = from_text(data)
    assert message is not None and len(message.payments) == MANY
    assert message == from_tree(data) == parse_pacs008(data)


@pytest.mark.parametrize(("old", "new"), [
    (f"<NbOfTxs>{MANY}</NbOfTxs>", f"<NbOfTxs>{MANY - 1}</NbOfTxs>"),
    (f"<NbOfTxs>{MANY}</NbOfTxs>", f"<NbOfTxs>{MANY + 1}</NbOfTxs>"),
    (f"<NbOfTxs>{MANY}</NbOfTxs>", "<NbOfTxs>64</NbOfTxs>"),
    ("<InstrId>INS-100</InstrId>", "<InstrId>INS-100</InstrId><Bogus/>"),
    ("ICBKCNBJ065", "ICBKCNBJ06!"),
    ("1250001.30</IntrBkSttlmAmt>", "1250001.301</IntrBkSttlmAmt>"),
    ("<UETR>8a562c67-ca16-48ba-b074-000000000082</UETR>", ""),
])
def test_a_fault_in_one_of_many_transactions_is_refused_as_the_tree_reader_refuses_it(
        schemas_unconfigured, old, new):
    data = altered(many_transactions(MANY), old, new)
    assert from_text(data) is None
    assert outcome(parse_pacs008, data) == outcome(from_tree, data)
    assert outcome(parse_pacs008, data)[0] in ("AM18", "AM12", "FF01", "RC01")


def test_samples_are_read_from_their_text():
    for data in (CUSTOMER_TRANSFER, CURRENT_VERSION, BATCH):
        message = from_text(data)
        assert message is not None
        assert message == from_tree(data) == parse_pacs008(data) == parse_message(data)[1]


# Layouts ---------------------------------------------------------------------------------------

PREFIXED = altered(
    re.sub(rb"<(/?)(?=[A-Z])", rb"<\1doc:", CUSTOMER_TRANSFER),
    f'<doc:Document xmlns="{NS08}">', f'<doc:Document xmlns:doc="{NS08}">')
READ_FROM_TEXT = {
    "compact": compact(CUSTOMER_TRANSFER),
    "CRLF and tabs between elements": CUSTOMER_TRANSFER.replace(b"\n", b"\r\n")
    .replace(b"  ", b"\t"),
    "no declaration": CUSTOMER_TRANSFER.split(b"\n", 1)[1],
    "byte order mark": b"\xef\xbb\xbf" + CUSTOMER_TRANSFER,
    "single-quoted declaration": altered(CUSTOMER_TRANSFER, '<?xml version="1.0" '
                                         'encoding="UTF-8"?>',
                                         "<?xml version='1.0' encoding='utf-8'?>"),
    "prefixed tags": PREFIXED,
    "Document attributes": altered(
        CUSTOMER_TRANSFER, f'<Document xmlns="{NS08}">',
        f'<Document xmlns="{NS08}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        f"xsi:schemaLocation='{NS08} pacs.008.001.08.xsd'>"),
    "entities in a name": altered(CUSTOMER_TRANSFER, "<Nm>ООО «Северный Шёлк»</Nm>",
                                  "<Nm>Ivanov &amp; Sons &lt;Shёlk&gt; &quot;A&apos;</Nm>"),
    "character references": altered(CUSTOMER_TRANSFER, "<TwnNm>上海</TwnNm>",
                                    "<TwnNm>&#x4E0A;&#28023;</TwnNm>"),
    "reference in an id": altered(CUSTOMER_TRANSFER, "<InstrId>ICBK-INS-0001</InstrId>",
                                  "<InstrId>ICBK&#45;INS-0001</InstrId>"),
    "unstructured address lines": altered(
        CUSTOMER_TRANSFER, "<Ctry>RU</Ctry>",
        "<Ctry>RU</Ctry><AdrLine>Tverskaya 7</AdrLine><AdrLine>Moscow &amp; region</AdrLine>"),
    "skipped content nested deep": altered(
        CUSTOMER_TRANSFER, "</FIToFICstmrCdtTrf>",
        "<SplmtryData><Envlp><a x='1' y=\"2\"><b><c/><c>t</c></b></a></Envlp></SplmtryData>"
        "</FIToFICstmrCdtTrf>"),
    "empty skipped elements": altered(CUSTOMER_TRANSFER, "<TxId>ICBK-TX-0001</TxId>",
                                      "<TxId/>"),
    "line ends in texts": altered(
        altered(CUSTOMER_TRANSFER, "<Ustrd>Invoice 2026-11-0042,", "<Ustrd>Invoice\r\n2026\r11\n"),
        "<Nm>ООО «Северный Шёлк»</Nm>", "<Nm>ООО\r\r\n«Северный&#13;Шёлк»</Nm>"),
    "white space in end tags": altered(
        altered(CUSTOMER_TRANSFER, "</ChrgBr>", "</ChrgBr >"), "</Dbtr>", "</Dbtr\n   >"),
    "compact but one element": altered(compact(CUSTOMER_TRANSFER), "<ChrgBr>", "\n<ChrgBr>"),
    "current version": CURRENT_VERSION,
    "batch": BATCH,
    "batch, compact": compact(BATCH),
    "current version, compact": compact(CURRENT_VERSION),
}


@pytest.mark.parametrize("data", READ_FROM_TEXT.values(), ids=READ_FROM_TEXT.keys())
def test_layouts_senders_use_are_read_from_the_text(schemas_unconfigured, data):
    parse_pacs008(data)  # a prefix is read from the text once a message with it was accepted
    message = from_text(data)
    assert message is not None
    assert message == from_tree(data)


READ_FROM_TREE = {
    "comment inside": altered(CUSTOMER_TRANSFER, "<ChrgBr>", "<!-- shared --><ChrgBr>"),
    "comment in a text": altered(CUSTOMER_TRANSFER, "<TwnNm>上海</TwnNm>",
                                 "<TwnNm>上<!-- x -->海</TwnNm>"),
    "CDATA": altered(CUSTOMER_TRANSFER, "<TwnNm>上海</TwnNm>", "<TwnNm><![CDATA[上海]]></TwnNm>"),
    "processing instruction": altered(CUSTOMER_TRANSFER, "<ChrgBr>", "<?note x?><ChrgBr>"),
    "attribute on a read element": altered(CUSTOMER_TRANSFER, "<TwnNm>",
                                           '<TwnNm xml:lang="zh">'),
    "namespace declared again": altered(CUSTOMER_TRANSFER, "<Dbtr>", f'<Dbtr xmlns="{NS08}">'),
    "text between elements": altered(CUSTOMER_TRANSFER, "<ChrgBr>", "x<ChrgBr>"),
    "skipped content beyond the expressions' depth": altered(
        CUSTOMER_TRANSFER, "</FIToFICstmrCdtTrf>",
        "<SplmtryData><Envlp>" + "<x>" * (pattern.SKIPPED_LEVELS + 1)
        + "</x>" * (pattern.SKIPPED_LEVELS + 1) + "</Envlp></SplmtryData></FIToFICstmrCdtTrf>"),
    "comment before the message element": altered(
        CUSTOMER_TRANSFER, f'<Document xmlns="{NS08}">',
        f'<Document xmlns="{NS08}"><!-- -->'),
}


@pytest.mark.parametrize("data", READ_FROM_TREE.values(), ids=READ_FROM_TREE.keys())
def test_other_layouts_are_read_from_the_tree(schemas_unconfigured, data):
    assert from_text(data) is None
    assert parse_pacs008(data) == from_tree(data)


@pytest.mark.parametrize("data", [compact(CUSTOMER_TRANSFER), compact(BATCH),
                                  compact(CURRENT_VERSION)])
def test_compact_texts_match_alike_with_and_without_white_space(data):
    document, message_type = open_document(data, MESSAGE_TYPES)
    version, prefix = VERSIONS[message_type], document[0].prefix
    text = pattern.read_line_ends(data.decode())
    matches = [credit_transfer.match_message(
        text, credit_transfer.text_reading(version, prefix, TransactionText, white))
        for white in (pattern.COMPACT, pattern.WHITE)]
    assert matches[0] is not None and matches[1] is not None
    assert matches[0][0].groups() == matches[1][0].groups()
    assert matches[0][1] == matches[1][1]


def test_a_prefix_the_document_does_not_share_is_read_from_the_tree(schemas_unconfigured):
    # The message element is unprefixed, but its default namespace is not the ISO one.
    data = altered(PREFIXED, f'<doc:Document xmlns:doc="{NS08}">',
                   f'<doc:Document xmlns:doc="{NS08}" xmlns="urn:example">')
    data = data.replace(b"doc:FIToFICstmrCdtTrf", b"FIToFICstmrCdtTrf")
    assert outcome(parse_pacs008, data) == outcome(from_tree, data)
    assert outcome(parse_pacs008, data)[0] == "FF01"


def test_a_limited_number_of_prefixes_is_compiled(schemas_unconfigured, monkeypatch):
    monkeypatch.setattr(credit_transfer, "_readings", {})
    for number in range(PREFIXES_MAX + 2):
        data = PREFIXED.replace(b"doc:", f"p{number}:".encode()).replace(
            b"xmlns:doc=", f"xmlns:p{number}=".encode())
        assert from_text(data) is None  # a prefix no accepted message had: the tree reads it
        assert parse_pacs008(data) == from_tree(data)
        message = from_text(data)
        assert (message is not None) == (number < PREFIXES_MAX - 1)  # "" is compiled too
        assert parse_pacs008(data) == from_tree(data)
        if number == 0:
            from_text(CUSTOMER_TRANSFER)


@pytest.mark.parametrize("created", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:00:00-01:00"])
def test_a_creation_time_beyond_the_utc_calendar_is_read_from_the_tree(schemas_unconfigured,
                                                                        created):
    # Its UTC date (for value dating) is before year 1 or after 9999: no date value holds it.
    data = re.sub(rb"<CreDtTm>[^<]*</CreDtTm>", f"<CreDtTm>{created}</CreDtTm>".encode(),
                  CUSTOMER_TRANSFER)
    assert from_text(data) is None
    assert outcome(parse_pacs008, data) == outcome(from_tree, data)


def test_a_refused_message_with_a_new_prefix_compiles_nothing_and_takes_no_slot(
        schemas_unconfigured, monkeypatch):
    """Compiling a prefix's expressions takes a fraction of a second: a tiny message with a
    made-up prefix, refused, must neither cost that nor take a slot from real senders."""
    monkeypatch.setattr(credit_transfer, "_readings", {})
    monkeypatch.setattr(credit_transfer, "_accepted_prefixes", set())
    for number in range(PREFIXES_MAX + 2):
        junk = (f'<z{number}:Document xmlns:z{number}="{NS08}"><z{number}:FIToFICstmrCdtTrf> '
                f'</z{number}:FIToFICstmrCdtTrf></z{number}:Document>').encode()
        assert outcome(parse_pacs008, junk)[0] == "FF01"
    assert not [key for key in credit_transfer._readings if key[1] is not None]
    parse_pacs008(PREFIXED)
    assert from_text(PREFIXED) == from_tree(PREFIXED)  # a real sender's prefix still has room


def test_deep_nesting_is_refused_alike():
    deep = "<Envlp>" + "<x>" * DEPTH_MAX + "</x>" * DEPTH_MAX + "</Envlp>"
    data = altered(CUSTOMER_TRANSFER, "</FIToFICstmrCdtTrf>",
                   f"<SplmtryData>{deep}</SplmtryData></FIToFICstmrCdtTrf>")
    assert outcome(parse_pacs008, data) == outcome(from_tree, data)
    assert "nest deeper" in outcome(parse_pacs008, data)[1]


# Breakage --------------------------------------------------------------------------------------

TEXTS = st.one_of(
    st.text(string.ascii_letters + string.digits + " .-:+&;<>\"'#x", max_size=40),
    st.sampled_from(["0", "0.00", "1.001", "12345678901234567.89", "999999999999999999",
                     "92233720368547758.08", "2026-02-30", "25:00:00Z",
                     "RTGS", "MPNS", "HIGH", "URGT", "NORM", "SHAR", "XXXX", "RUB", "EUR",
                     "BOGUS", "ICBKCNBJ", "icbkcnbj", "SABRRUMMXXX", "CN", "cn",
                     "8a562c67-ca16-48ba-b074-65581be6f011", "GB82WEST12345698765432",
                     "2026-11-29T09:30:00Z", "2026-11-29T09:30:00", "1", "2", "&#x4E0A;",
                     "&amp;", " ", "x" * 141]),
)


def mutate(data: bytes, draw) -> bytes:
    """One random change to one random element: its text, its Ccy, its place, its presence,
    a repetition, a stranger beside it, or an element inside it."""
    root = etree.fromstring(data)
    elements = [element for element in root.iter() if element is not root
                and element.getparent() is not root]
    element = draw(st.sampled_from(elements))
    parent = element.getparent()
    change = draw(st.sampled_from(["text", "ccy", "drop", "repeat", "swap", "stranger",
                                   "child", "empty"]))
    if change == "text" and not len(element):
        element.text = draw(TEXTS)
    elif change == "ccy" and element.get("Ccy") is not None:
        element.set("Ccy", draw(st.sampled_from(["EUR", "JPY", "KWD", "XXX", "rub", ""])))
    elif change == "drop":
        parent.remove(element)
    elif change == "repeat":
        element.addnext(copy.deepcopy(element))
    elif change == "swap" and element.getnext() is not None:
        element.getnext().addnext(element)
    elif change == "stranger":
        name = draw(st.sampled_from(["Tip", "UltmtCdtr", "Strd", "Prtry", "CLSTm", "TxId",
                                     "IntrmyAgt2", "InstrPrty", "SttlmTmReq", "BICFI"]))
        stranger = etree.Element(f"{{{NS08}}}{name}")
        stranger.text = draw(TEXTS)
        element.addnext(stranger)
    elif change == "child":
        etree.SubElement(element, f"{{{NS08}}}{draw(st.sampled_from(['Cd', 'Id', 'x']))}")
    elif change == "empty":
        for child in list(element):
            element.remove(child)
        element.text = None
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


BREAKAGE = [HealthCheck.too_slow, HealthCheck.data_too_large,
            HealthCheck.function_scoped_fixture]  # the schema fixtures hold for every example


@settings(max_examples=300, deadline=None, suppress_health_check=BREAKAGE)
@given(data=st.data(), sample=st.sampled_from([CUSTOMER_TRANSFER, CURRENT_VERSION, BATCH]),
       layout=st.sampled_from([bytes, compact]))
def test_broken_messages_are_refused_as_the_tree_reader_refuses_them(schemas_unconfigured,
                                                                      data, sample, layout):
    message = layout(mutate(sample, data.draw))
    assert outcome(parse_pacs008, message) == outcome(from_tree, message)
    assert outcome(parse_message, message) == outcome(
        lambda raw: (open_document(raw, MESSAGE_TYPES)[1], from_tree(raw)), message)


@settings(max_examples=60, deadline=None, suppress_health_check=BREAKAGE)
@given(data=st.data())
def test_broken_messages_are_refused_alike_with_the_schema(schemas_configured, data):
    message = mutate(CUSTOMER_TRANSFER, data.draw)
    assert outcome(parse_pacs008, message) == outcome(from_tree, message)


# Pieces ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("written", "read"), [
    ("a &amp; b", "a & b"), ("&lt;&gt;&quot;&apos;", "<>\"'"), ("&#65;&#x42;&#x4e0a;", "AB上"),
    ("&amp;amp;", "&amp;"), ("plain", "plain"),
])
def test_references_expand_as_the_parser_expands_them(written, read):
    assert pattern.unescape(written) == read
    document = etree.fromstring(f"<a>{written}</a>".encode())
    assert document.text == read


def test_embedded_patterns_lose_their_groups_only():
    embedded = pattern.non_capturing(r"(0|[1-9][0-9]*)(\.[0-9]+)?(?P<x>a)\(")
    assert re.compile(embedded).groups == 0
    assert re.fullmatch(embedded, "10.5a(")
    assert not re.fullmatch(embedded, "01a(")


def test_parse_message_reads_bare_documents_from_their_text(monkeypatch):
    def no_tree(*_):
        raise AssertionError("read from the tree")

    monkeypatch.setattr("scopay.iso20022.pacs008.read_credit_transfer", no_tree)
    assert parse_message(CUSTOMER_TRANSFER)[1] == parse_pacs008(CUSTOMER_TRANSFER)


# Text rules against their readers ---------------------------------------------------------

def leaf_readers(shape, seen=None) -> dict:
    """Every leaf reader reachable from a shape, by identity, with a name it reads."""
    seen = {} if seen is None else seen
    for name, reader in shape.readers.items():
        if isinstance(reader, Shape):
            leaf_readers(reader, seen)
        elif name not in shape.refused and reader is not keep_element:
            seen.setdefault(id(reader), (name, reader))
    return seen


READERS = {}
for _version in VERSIONS.values():
    leaf_readers(_version.message, READERS)
    leaf_readers(_version.transaction, READERS)
READER_CASES = sorted(READERS.values(), key=lambda entry: (entry[0], repr(entry[1])))
EDGES = [
    "2026-11-29", "2026-02-30", "2026-11-29T09:30:00+08:00", "2026-11-29T09:30:00.123456Z",
    "2026-11-29T24:00:00Z", "2026-11-29T09:30:00", "09:30:00Z", "23:59:59.999999+05:30",
    "25:00:00Z", "09:30:00", "0", "00", "0.00", "01", "1250000.00", "999999999999999999",
    "99999999999999999.9", "92233720368547758.07", "92233720368547758.08", "1.5", "12.5",
    ".5", "5.", "0.0000000001", "0.00000000001", "123456789012", "123456789012345",
    "1234567890123456", "RTGS", "MPNS", "RTNS", "HIGH", "NORM", "URGT", "SHAR", "DEBT", "CRED",
    "SLEV", "CLRG", "INGA", "COVE", "INDA", "GDDS", "G001", "gdds", "ICBKCNBJ", "ICBKCNBJXXX",
    "1CBKCNBJ", "ICBKCNB", "CN", "cn", "CNN", "GB82WEST12345698765432", "GB82",
    "8a562c67-ca16-48ba-b074-65581be6f011", "8a562c67-ca16-48ba-7074-65581be6f011",
    "8A562C67-CA16-48BA-B074-65581BE6F011", "x" * 16, "x" * 17, "x" * 34, "x" * 35, "x" * 36,
    "x" * 70, "x" * 71, "x" * 140, "x" * 141, "上" * 35, "上" * 36, "&amp;" * 35, "&#65;" * 36,
    " ", " x ", "a&amp;b", "&lt;x&gt;", "x\ty", "x\ny", "x\ry", "&#13;", "R&#85;B",
]
WRITTEN = st.lists(st.one_of(
    st.sampled_from(list("0123456789.-:+ZT ")), st.sampled_from(list("ABCXYZabcxyz")),
    st.sampled_from(["&amp;", "&lt;", "&#65;", "&#x4E0A;", "上", "Ё", "\t", "\n", "\r", ">"]),
), max_size=40).map("".join)
CURRENCIES = ["RUB", "JPY", "KWD", "XXX", "rub"]


def agree(reader, written: str, currency: str) -> None:
    """What a text rule takes, its reader takes with the same value."""
    name, read = reader
    rule = pattern.rule_of(read)
    group = f'{currency}">{written}' if rule.attribute else written
    attribute = f' {rule.attribute}="{currency}"' if rule.attribute else ""
    element = etree.fromstring(f"<{name}{attribute}>{written}</{name}>".encode())
    try:
        expected = read(element)
    except MessageRefused:
        expected = MessageRefused
    try:
        group = pattern.read_line_ends(group)
        if not re.fullmatch(rule.pattern, group):
            raise pattern.Unreadable
        value = pattern.unescape(group)
        if rule.convert is not None:
            value = rule.convert(value)
    except pattern.Unreadable:
        return
    assert value == expected, (name, written, currency)


@pytest.mark.parametrize("reader", READER_CASES, ids=lambda entry: entry[0])
def test_text_rules_take_only_what_their_readers_take(reader):
    for written in EDGES:
        for currency in CURRENCIES if pattern.rule_of(reader[1]).attribute else CURRENCIES[:1]:
            agree(reader, written, currency)


@settings(max_examples=500, deadline=None)
@given(reader=st.sampled_from(READER_CASES), written=WRITTEN | st.sampled_from(EDGES),
       currency=st.sampled_from(CURRENCIES))
def test_text_rules_take_only_what_their_readers_take_on_any_text(reader, written, currency):
    agree(reader, written, currency)


@pytest.mark.parametrize("bic", ["ICBKCNBJXXX", "ICBKCNBJ", "ICBKCNBJ001", "ICBKCNBJXXA"])
def test_a_bic_remembered_reads_as_the_first_time(bic, monkeypatch):
    expected = datatype.institution_bic(bic)
    assert datatype.bic_text(bic) == datatype.bic_text(bic) == expected  # then remembered
    monkeypatch.setattr(datatype, "_VALID_BICS", {})
    monkeypatch.setattr(datatype, "_VALID_BICS_MAX", 0)  # full: nothing more remembered
    assert datatype.bic_text(bic) == expected and not datatype._VALID_BICS


@pytest.mark.parametrize("text", ["", "icbkcnbj", "ICBK", "ICBKCNBJXX", "1CBKCNBJ"])
def test_a_text_that_is_no_bic_is_refused_every_time(text):
    for _ in range(2):
        with pytest.raises(pattern.Unreadable):
            datatype.bic_text(text)
    assert text not in datatype._VALID_BICS


# With the schemas configured: validated while parsed, no tree ---------------------------------

def message_type_of(data: bytes) -> str:
    return etree.QName(etree.fromstring(data)).namespace.rsplit(":", 1)[1]


def no_tree(*_):
    raise AssertionError("a tree was built")


# All but the prefixed root, and the empty TxId the XSD refuses (minLength); and a root as
# .NET's XmlSerializer writes it.
NO_TREE = {name: data for name, data in READ_FROM_TEXT.items()
           if name not in ("prefixed tags", "empty skipped elements")}
NO_TREE["XML Schema namespaces declared"] = altered(
    CUSTOMER_TRANSFER, f'<Document xmlns="{NS08}">',
    f'<Document xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
    f'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns="{NS08}">')


@pytest.mark.parametrize("data", NO_TREE.values(), ids=NO_TREE.keys())
def test_a_bare_pacs008_is_read_with_no_tree_when_the_schemas_are_configured(
        schemas_configured, monkeypatch, data):
    expected = from_tree(data)
    monkeypatch.setattr("scopay.iso20022.pacs008.open_document", no_tree)
    monkeypatch.setattr("scopay.iso20022.message.parse_document", no_tree)
    assert parse_pacs008(data) == expected
    assert parse_message(data) == (message_type_of(data), expected)


def test_with_no_schema_the_tree_is_built(schemas_unconfigured, monkeypatch):
    # With no schema there is no validation to run while parsing.
    assert validated_type(CUSTOMER_TRANSFER, MESSAGE_TYPES) is None
    expected = from_tree(CUSTOMER_TRANSFER)
    built = []
    monkeypatch.setattr("scopay.iso20022.pacs008.open_document",
                        lambda *args: built.append(args) or open_document(*args))
    assert parse_pacs008(CUSTOMER_TRANSFER) == expected and built


def test_a_prefixed_root_is_read_after_a_tree_is_built(schemas_configured, monkeypatch):
    # Not what the declared-type expression takes: parsed into a tree, whose checks it needs.
    parse_pacs008(PREFIXED)  # a prefix is read from the text once a message with it was read
    assert document.declared_type(PREFIXED) is None
    expected = from_tree(PREFIXED)
    built = []
    monkeypatch.setattr("scopay.iso20022.pacs008.open_document",
                        lambda *args: built.append(args) or open_document(*args))
    assert parse_pacs008(PREFIXED) == expected and built


NS13 = "urn:iso:std:iso:20022:tech:xsd:pacs.008.001.13"


XSI = 'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'


@pytest.mark.parametrize(("start", "declared"), [
    (f'<Document xmlns="{NS08}">', "pacs.008.001.08"),
    (f"<Document\n xmlns = '{NS13}' >", "pacs.008.001.13"),
    (f'<Document {XSI} xmlns="{NS08}" xsi:schemaLocation="{NS08} a.xsd">', "pacs.008.001.08"),
    (f'<!-- <Document xmlns="{NS13}"> --><Document xmlns="{NS08}">', "pacs.008.001.08"),
    (f'<Document xmlns:xsd="http://www.w3.org/2001/XMLSchema" {XSI} xmlns="{NS08}">',
     "pacs.008.001.08"),  # as .NET's XmlSerializer writes it
    # the root's start tag holds nothing else
    (f'<Document xsi:schemaLocation="{NS08} a.xsd" xmlns="{NS08}">', None),  # xsi undeclared
    (f'<Document xsi:schemaLocation="{NS08} a.xsd" {XSI} xmlns="{NS08}">', None),  # before it
    (f"<Document xmlns:q=' xmlns=\"{NS13}\"' xmlns=\"{NS08}\">", None),
    (f'<Document xmlns="{NS08}" id="x">', None),
    (f'<Document {XSI}>', None),
    (f'<doc:Document xmlns:doc="{NS08}">', None),
    (f'<Document xmlns="{NS08}\'>', None),  # quotes that do not pair
    (f'<Documents xmlns="{NS08}">', None),
    (f'<?other?><Document xmlns="{NS08}">', None),  # a processing instruction first
])
def test_the_declared_type_is_read_from_a_plain_root_start_tag(start, declared):
    assert document.declared_type(b'<?xml version="1.0"?>\n' + start.encode()) == declared


def in_envelope(content: str) -> bytes:
    return altered(CUSTOMER_TRANSFER, "</FIToFICstmrCdtTrf>",
                   f"<SplmtryData><Envlp>{content}</Envlp></SplmtryData></FIToFICstmrCdtTrf>")


# XML that breaks the namespace rules but no other: libxml2 does not report such errors while
# the XSD checks the bytes as they are read, so the reading with no tree must leave them all to
# the tree, which refuses them (lxml itself would let one pass that a warning follows).
NAMESPACE_ERRORS = {
    "PI named with a colon after the root": CUSTOMER_TRANSFER + b"<?a:b x?>",
    "empty prefixed namespace on the root": altered(
        CUSTOMER_TRANSFER, "<Document xmlns", '<Document xmlns:p="" xmlns'),
    "xml prefix bound elsewhere on the root": altered(
        CUSTOMER_TRANSFER, "<Document xmlns", '<Document xmlns:xml="urn:bad" xmlns'),
    "xsi used undeclared on the root": altered(
        CUSTOMER_TRANSFER, "<Document xmlns", '<Document xsi:schemaLocation="a b" xmlns'),
    "undeclared prefix in a skipped element": in_envelope("<p:a/>"),
    "attribute twice under two prefixes": in_envelope(
        '<a xmlns:p="u" xmlns:q="u" p:b="1" q:b="2"/>'),
    "name with two colons": in_envelope('<a:b:c xmlns:a="u"/>'),
    "namespace that is no URI": in_envelope('<a xmlns="urn:a b"/>'),
    "undeclared prefix, then a warning": in_envelope("<x><p:a/><b xmlns='relative'/></x>"),
    "attribute twice, then a warning": in_envelope(
        '<x xmlns:p="urn:u" xmlns:q="urn:u" p:b="1" q:b="2"><b xmlns="relative"/></x>'),
}


@pytest.mark.parametrize("data", NAMESPACE_ERRORS.values(), ids=NAMESPACE_ERRORS.keys())
def test_namespace_errors_are_refused_as_the_tree_refuses_them(schemas_configured, data):
    refused = outcome(parse_pacs008, data)
    assert refused == outcome(from_tree, data) == outcome(lambda raw: parse_message(raw)[1],
                                                          data)
    assert refused[0] == "FF01" and "not well-formed" in refused[1]
    assert read_validated_text(data, MESSAGE_TYPES) is None


@pytest.mark.parametrize("content", ['<e:note xmlns:e="urn:example" e:lang="zh">x</e:note>',
                                     '<note xmlns="urn:example">x</note>',
                                     '<note xml:lang="en">x</note>'])
def test_other_namespaces_below_a_skipped_element_are_read_from_the_text_of_a_tree(
        schemas_configured, monkeypatch, content):
    data = in_envelope(content)
    assert read_validated_text(data, MESSAGE_TYPES) is None  # left to the parse with a tree
    assert from_text(data) is not None  # whose namespaces were checked: read from the text
    monkeypatch.setattr("scopay.iso20022.pacs008.read_credit_transfer", no_tree)
    assert parse_pacs008(data) == from_tree(data) == parse_pacs008(CUSTOMER_TRANSFER)


@settings(max_examples=200, deadline=None, suppress_health_check=BREAKAGE)
@given(data=st.data(), sample=st.sampled_from([CUSTOMER_TRANSFER, CURRENT_VERSION, BATCH]))
def test_validating_while_parsing_agrees_with_validating_the_tree(schemas_configured, data,
                                                                  sample):
    message = mutate(sample, data.draw)
    schema = schema_for(message_type_of(message))
    assert valid_without_tree(message, schema) == schema.validate(etree.fromstring(message))


@pytest.mark.parametrize(("old", "new", "says"), [
    ("<ChrgBr>SHAR</ChrgBr>", "<ChrgBr>XXXX</ChrgBr>", "(line "),  # the XSD's text and line
    ("</Document>", "</Document><!-- <!DOCTYPE x> -->", "DOCTYPE"),
    ("</Document>", "</Document><Document/>", "not well-formed"),
    ('encoding="UTF-8"', 'encoding="ISO-8859-5"', "only UTF-8"),
])
def test_a_refusal_with_the_schemas_is_the_tree_s_refusal(schemas_configured, old, new, says):
    data = altered(CUSTOMER_TRANSFER, old, new)
    refused = outcome(parse_pacs008, data)
    assert refused == outcome(from_tree, data) == outcome(lambda raw: parse_message(raw)[1],
                                                          data)
    assert refused[0] == "FF01" and says in refused[1]
    # Read with no tree, it is left to the tree, or refused before any parse, alike.
    assert outcome(lambda raw: read_validated_text(raw, MESSAGE_TYPES), data) in (None, refused)


ROOT_START = f'<Document xmlns="{NS08}">'


def prologue_of(data: bytes) -> bytes:
    return data[:data.index(b">", data.index(b"<Document")) + 1]


def test_a_known_prologue_spares_the_checks_before_the_parse(schemas_configured, monkeypatch):
    expected = parse_pacs008(CUSTOMER_TRANSFER)  # its prologue is known once it was read
    checked = []
    monkeypatch.setattr(document, "check_message_bytes", checked.append)
    assert parse_pacs008(CUSTOMER_TRANSFER) == expected
    assert not checked
    # Another prologue is checked in full, and known next time.
    other = altered(CUSTOMER_TRANSFER, "<!-- CBPR+", "<!-- another sender's CBPR+")
    assert parse_pacs008(other) == expected and checked == [other]
    assert parse_pacs008(other) == expected and checked == [other]


@pytest.mark.parametrize(("old", "new", "says"), [
    # after the root's start tag a DOCTYPE is not well-formed, or in a comment, a processing
    # instruction or a CDATA section
    (ROOT_START, ROOT_START + "<!DOCTYPE Document>", "message contains a DOCTYPE"),
    ("</Document>", "</Document><!-- <!DOCTYPE x> -->", "message contains a DOCTYPE"),
    ("<GrpHdr>", "<GrpHdr><!-- <!DOCTYPE x> -->", "message contains a DOCTYPE"),
    ("<GrpHdr>", "<GrpHdr><?note <!DOCTYPE x>?>", "message contains a DOCTYPE"),
    ("<Ustrd>", "<Ustrd><![CDATA[<!DOCTYPE x>]]>", "message contains a DOCTYPE"),
    ("</Document>", "</Document>" + " " * MESSAGE_BYTES_MAX, f"at most {MESSAGE_BYTES_MAX}"),
])
def test_what_follows_a_known_prologue_is_refused_as_before(schemas_configured, old, new,
                                                             says):
    parse_pacs008(CUSTOMER_TRANSFER)
    data = altered(CUSTOMER_TRANSFER, old, new)
    assert data.startswith(prologue_of(CUSTOMER_TRANSFER))
    refused = outcome(parse_pacs008, data)
    assert refused[0] == "FF01" and says in refused[1]
    assert refused == outcome(from_tree, data) == outcome(lambda raw: parse_message(raw)[1],
                                                          data)


def test_a_text_with_a_known_prologue_is_refused_as_not_bytes(schemas_configured):
    parse_pacs008(CUSTOMER_TRANSFER)
    for data in (CUSTOMER_TRANSFER.decode(), bytearray(CUSTOMER_TRANSFER)):
        assert outcome(parse_pacs008, data) == (
            "FF01", f"a message is bytes, not {type(data).__name__}")


@pytest.mark.parametrize(("old", "new"), [
    ("<!-- CBPR+", f"<!-- {ROOT_START} CBPR+"),  # a Document named before the root
    (ROOT_START, f'<Document {XSI} xmlns="{NS08}" xsi:schemaLocation="{NS08} a>b.xsd">'),
])
def test_a_prologue_not_found_again_is_not_kept(schemas_configured, monkeypatch, old, new):
    # The first '>' after the first '<Document' is not where this root's start tag ends.
    monkeypatch.setattr(document, "_prologues", {})
    data = altered(CUSTOMER_TRANSFER, old, new)
    assert parse_pacs008(data) == parse_pacs008(data) == from_tree(data)
    assert document._prologues == {}


def test_known_prologues_are_few(schemas_configured):
    expected = parse_pacs008(CUSTOMER_TRANSFER)
    for spaces in range(2 * document._PROLOGUES_MAX + 3):
        data = altered(CUSTOMER_TRANSFER, ROOT_START, ROOT_START[:-1] + " " * spaces + ">")
        assert parse_pacs008(data) == expected
        assert 0 < len(document._prologues) <= document._PROLOGUES_MAX
        assert document._prologues[prologue_of(data)] == "pacs.008.001.08"


@settings(max_examples=300, deadline=None)
@given(amounts=st.lists(st.tuples(st.integers(0, 10**12), st.sampled_from(["RUB", "JPY", "KWD"])),
                        min_size=1, max_size=4),
       written=st.none() | st.decimals(0, 10**10, places=3).map(lambda value: format(value, "f")),
       total=st.none() | st.tuples(st.integers(0, 10**12), st.sampled_from(["RUB", "JPY"])),
       declared_sum=st.booleans(), total_sum=st.booleans())
def test_sums_agree_as_check_sums_rules(amounts, written, total, declared_sum, total_sum):
    added = control_sum(amounts)
    if declared_sum:  # often enough, the sum the amounts make
        written = format(added, "f")
    if total_sum and total is not None:
        total = (sum(minor for minor, _ in amounts), amounts[0][1])
    declared = None if written is None else Decimal(written)
    payments = [SimpleNamespace(settlement_amount_minor=minor, settlement_currency=currency)
                for minor, currency in amounts]
    expected = ((declared is None or declared == added)
                and (total is None or all(currency == total[1] for _, currency in amounts)
                     and total[0] == sum(minor for minor, _ in amounts)))
    assert credit_transfer.sums_agree(declared, written, total, payments) == expected


@pytest.mark.parametrize("data", [CUSTOMER_TRANSFER, CURRENT_VERSION, BATCH])
def test_a_picker_gives_the_values_values_of_gives(data):
    document, message_type = open_document(data, MESSAGE_TYPES)
    reading = credit_transfer.text_reading(VERSIONS[message_type], None, TransactionText,
                                           pattern.WHITE)
    head, found, _ = credit_transfer.match_message(pattern.read_line_ends(data.decode()),
                                                   reading)
    compiled = reading.transaction
    paths = compiled.paths[::-1]  # every group, in another order than the expression's
    picked = compiled.picker(*paths)
    for groups in found:
        for escaped in (False, True):
            values = compiled.values_of(groups, escaped)
            assert picked(groups, escaped) == tuple(values[compiled.index(*path)]
                                                    for path in paths)
    with pytest.raises(ValueError, match="two paths or more"):
        compiled.picker(paths[0])
