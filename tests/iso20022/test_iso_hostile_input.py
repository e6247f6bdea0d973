"""Hostile and broken input is refused with MessageRefused, an ISO reason code and a text that
says what is wrong and where: entity bombs, external entities, oversize and deep documents,
wrong namespaces and versions, schema violations, amounts with too many decimals, counts and
control sums that do not add up."""

from __future__ import annotations

import re

import pytest
from iso_support import CURRENT_VERSION, CUSTOMER_TRANSFER, SAMPLES_DIR

from scopay.iso20022.message import parse_message
from scopay.iso20022.model import PaymentReturn, ReturnInstruction
from scopay.iso20022.pacs004 import build_pacs004
from scopay.iso20022.pacs008 import parse_pacs008
from scopay.iso20022.parsing import (
    DEPTH_MAX,
    ELEMENTS_MAX,
    MESSAGE_BYTES_MAX,
    MessageRefused,
    parse_document,
)

BATCH = (SAMPLES_DIR / "pacs008_t2_batch_envelope.xml").read_bytes()


def refused(data: bytes, parse=parse_message) -> MessageRefused:
    with pytest.raises(MessageRefused) as caught:
        parse(data)
    return caught.value


def altered(data: bytes, old: str, new: str, count: int = 1) -> bytes:
    assert old.encode() in data, f"sample lacks {old!r}"
    return data.replace(old.encode(), new.encode(), count)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08">&lol9;</Document>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE Document [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08"><FIToFICstmrCdtTrf>
<GrpHdr><MsgId>&xxe;</MsgId></GrpHdr></FIToFICstmrCdtTrf></Document>"""


def test_billion_laughs_is_refused_before_any_entity_expands():
    error = refused(BILLION_LAUGHS)
    assert error.reason_code == "FF01"
    assert error.text == "message contains a DOCTYPE; DTDs are refused"


def test_external_entity_is_refused_and_no_file_is_read():
    error = refused(EXTERNAL_ENTITY)
    assert error.reason_code == "FF01"
    assert "DOCTYPE" in error.text
    assert "root:" not in str(error)


def test_undeclared_entity_is_not_well_formed():
    data = altered(CUSTOMER_TRANSFER, "<MsgId>ICBKCNBJ20261129001", "<MsgId>&passwd;")
    error = refused(data)
    assert error.reason_code == "FF01"
    assert error.text == "not well-formed XML: Entity 'passwd' not defined, line 7, column 22"


def test_oversize_message_is_refused_before_parsing():
    data = CUSTOMER_TRANSFER + b" " * MESSAGE_BYTES_MAX
    error = refused(data)
    assert error.reason_code == "FF01"
    assert f"at most {MESSAGE_BYTES_MAX} bytes" in error.text


def test_deep_nesting_in_content_scopay_skips_is_refused():
    deep = "<Envlp>" + "<x>" * DEPTH_MAX + "</x>" * DEPTH_MAX + "</Envlp>"
    data = altered(CUSTOMER_TRANSFER, "  </FIToFICstmrCdtTrf>",
                   f"<SplmtryData>{deep}</SplmtryData></FIToFICstmrCdtTrf>")
    error = refused(data)
    assert error.reason_code == "FF01"
    assert f"elements nest deeper than {DEPTH_MAX} levels" in error.text


def test_nesting_up_to_the_depth_limit_is_accepted(schemas_unconfigured):
    # Document/FIToFICstmrCdtTrf/SplmtryData/Envlp are levels 1 to 4.
    levels = DEPTH_MAX - 4
    deep = "<Envlp>" + "<x>" * levels + "</x>" * levels + "</Envlp>"
    data = altered(CUSTOMER_TRANSFER, "  </FIToFICstmrCdtTrf>",
                   f"<SplmtryData>{deep}</SplmtryData></FIToFICstmrCdtTrf>")
    assert parse_message(data)[0] == "pacs.008.001.08"


def test_elements_inside_a_text_field_are_refused(schemas_unconfigured):
    data = altered(CUSTOMER_TRANSFER, "<Nm>上海丝路贸易有限公司</Nm>",
                   "<Nm>上海<b><b><b>deep</b></b></b></Nm>")
    error = refused(data)
    assert error.reason_code == "FF01"
    assert error.text.startswith("a text field holds elements (at /Document/FIToFICstmrCdtTrf/"
                                 "CdtTrfTxInf/Dbtr/Nm")


def test_deep_nesting_beyond_the_parser_limit_is_not_well_formed():
    data = b"<a>" * 5000 + b"</a>" * 5000
    error = refused(data)
    assert error.reason_code == "FF01"
    assert "not well-formed XML" in error.text


def test_too_many_elements_are_refused():
    flood = "<x/>" * (ELEMENTS_MAX + 1)
    data = altered(CUSTOMER_TRANSFER, "  </FIToFICstmrCdtTrf>",
                   f"<SplmtryData><Envlp>{flood}</Envlp></SplmtryData></FIToFICstmrCdtTrf>")
    error = refused(data)
    assert error.reason_code == "FF01"
    assert f"at most {ELEMENTS_MAX}" in error.text


@pytest.mark.parametrize("prefix", [b"\xff\xfe", b"\xfe\xff"])
def test_utf16_documents_are_refused(prefix):
    assert refused(prefix + "<a/>".encode("utf-16-le")).reason_code == "FF01"


def test_declared_foreign_encoding_is_refused():
    data = altered(CUSTOMER_TRANSFER, 'encoding="UTF-8"', 'encoding="UTF-7"')
    assert "only UTF-8 is read" in refused(data).text


@pytest.mark.parametrize("padding", [1, 300, 100_000])
def test_a_foreign_encoding_is_refused_however_long_the_declaration(padding):
    data = altered(CUSTOMER_TRANSFER, 'encoding="UTF-8"', " " * padding + 'encoding="ISO-8859-1"')
    assert "declares encoding ISO-8859-1" in refused(data).text
    assert refused(b"\xef\xbb\xbf" + data).reason_code == "FF01"  # after a byte order mark


def test_wrong_namespace_is_refused_naming_what_scopay_reads():
    data = altered(CUSTOMER_TRANSFER, "urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08",
                   "urn:example:payments")
    error = refused(data)
    assert error.reason_code == "FF01"
    assert error.text.startswith(
        "namespace 'urn:example:payments' is not an ISO 20022 message namespace; expected one of "
        "pacs.008.001.08")


def test_unsupported_version_is_refused_naming_the_versions_scopay_reads():
    data = altered(CUSTOMER_TRANSFER, "pacs.008.001.08", "pacs.008.001.09")
    error = refused(data)
    assert error.text == ("pacs.008.001.09 is a version scopay does not read; it reads "
                          "pacs.008.001.08, pacs.008.001.13")


def test_another_message_where_pacs008_is_expected_is_refused():
    camt = (SAMPLES_DIR / "camt053_statement.xml").read_bytes()
    error = refused(camt, parse_pacs008)
    assert error.text == "document is camt.053.001.08; expected one of pacs.008.001.08, " \
                         "pacs.008.001.13"


def test_schema_violation_is_refused_with_the_xsd_error_and_line(schemas_configured):
    data = altered(CUSTOMER_TRANSFER, "<ChrgBr>SHAR</ChrgBr>", "<ChrgBr>HALF</ChrgBr>")
    error = refused(data)
    assert error.reason_code == "FF01"
    assert re.fullmatch(r"pacs\.008\.001\.08 schema: .*ChrgBr.*HALF.* \(line 33\)", error.text)


def test_schema_violation_is_refused_by_scopay_parser_without_xsd(schemas_unconfigured):
    data = altered(CUSTOMER_TRANSFER, "<ChrgBr>SHAR</ChrgBr>", "<ChrgBr>HALF</ChrgBr>")
    error = refused(data)
    assert error.text == ("'HALF' is not one of DEBT, CRED, SHAR, SLEV (at /Document/"
                          "FIToFICstmrCdtTrf/CdtTrfTxInf/ChrgBr, line 33)")


def test_unknown_element_is_refused_by_scopay_parser_without_xsd(schemas_unconfigured):
    data = altered(CUSTOMER_TRANSFER, "<ChrgBr>SHAR</ChrgBr>", "<ChrgBr>SHAR</ChrgBr><Tip>5</Tip>")
    assert "CreditTransferTransaction39 has no child Tip in ISO 20022" in refused(data).text


def test_elements_out_of_order_are_refused_without_xsd(schemas_unconfigured):
    data = altered(CUSTOMER_TRANSFER, "<IntrBkSttlmDt>2026-11-29</IntrBkSttlmDt>\n"
                   "      <SttlmPrty>HIGH</SttlmPrty>",
                   "<SttlmPrty>HIGH</SttlmPrty><IntrBkSttlmDt>2026-11-29</IntrBkSttlmDt>")
    assert "IntrBkSttlmDt is out of order or repeated" in refused(data).text


def test_missing_required_element_is_refused_without_xsd(schemas_unconfigured):
    data = re.sub(rb"<ChrgBr>SHAR</ChrgBr>", b"", CUSTOMER_TRANSFER)
    assert "CreditTransferTransaction39 lacks its required ChrgBr" in refused(data).text


@pytest.mark.parametrize(("amount", "currency", "message"), [
    ("1250000.001", "RUB", "has 3 decimals; RUB allows 2"),
    ("1250000.5", "JPY", "has 1 decimals; JPY allows 0"),
    ("1250.0001", "KWD", "has 4 decimals; KWD allows 3"),
])
def test_amount_with_more_decimals_than_its_currency_is_refused(amount, currency, message):
    data = altered(CUSTOMER_TRANSFER, '<IntrBkSttlmAmt Ccy="RUB">1250000.00',
                   f'<IntrBkSttlmAmt Ccy="{currency}">{amount}')
    error = refused(data)
    assert error.reason_code == "AM12"
    assert message in error.text
    assert "CdtTrfTxInf/IntrBkSttlmAmt, line 28" in error.text


def test_unknown_currency_is_refused():
    data = altered(CUSTOMER_TRANSFER, 'Ccy="RUB">1250000.00', 'Ccy="XXX">1250000.00')
    assert refused(data).reason_code == "AM03"


def test_zero_settlement_amount_is_refused():
    data = altered(CUSTOMER_TRANSFER, 'Ccy="RUB">1250000.00', 'Ccy="RUB">0.00')
    assert refused(data).reason_code == "AM01"


def test_number_of_transactions_must_count_the_transactions():
    data = altered(BATCH, "<NbOfTxs>3</NbOfTxs>", "<NbOfTxs>4</NbOfTxs>")
    error = refused(data)
    assert error.reason_code == "AM18"
    assert error.text.startswith("NbOfTxs says 4 transactions; the message holds 3")


def test_control_sum_must_add_up_the_transactions():
    data = altered(BATCH, "<CtrlSum>1825000.50</CtrlSum>", "<CtrlSum>1825000.51</CtrlSum>")
    error = refused(data)
    assert error.reason_code == "AM10"
    assert error.text.startswith("CtrlSum says 1825000.51; the transactions add up to 1825000.50")


def test_total_settlement_amount_must_add_up_the_transactions():
    data = altered(BATCH, '<TtlIntrBkSttlmAmt Ccy="KZT">1825000.50',
                   '<TtlIntrBkSttlmAmt Ccy="KZT">1825000.00')
    assert refused(data).reason_code == "AM10"


def test_total_settlement_amount_in_another_currency_is_refused():
    data = altered(BATCH, '<TtlIntrBkSttlmAmt Ccy="KZT">1825000.50',
                   '<TtlIntrBkSttlmAmt Ccy="UZS">1825000.50')
    assert refused(data).reason_code == "AM10"


CANCELLATION = (SAMPLES_DIR / "camt056_cancellation_request.xml").read_bytes()


def test_a_camt056_whose_nboftxs_does_not_count_its_transactions_is_refused():
    data = altered(CANCELLATION, "<NbOfTxs>1</NbOfTxs>", "<NbOfTxs>2</NbOfTxs>")
    assert refused(data).reason_code == "AM18"


def test_a_camt056_whose_ctrlsum_does_not_add_up_is_refused():
    data = altered(CANCELLATION, "<CtrlSum>1250000.00</CtrlSum>",
                   "<CtrlSum>1250000.01</CtrlSum>")
    assert refused(data).reason_code == "AM10"


def test_malformed_bic_is_refused_as_an_incorrect_bank_identifier(schemas_unconfigured):
    # scopay's reader answers RC01; the XSD, when configured, refuses the pattern first (FF01).
    data = altered(CUSTOMER_TRANSFER, "<BICFI>SABRRUMM</BICFI>", "<BICFI>SABR RUMM</BICFI>")
    error = refused(data)
    assert error.reason_code == "RC01"
    assert "'SABR RUMM' is not a BIC" in error.text


def test_malformed_uetr_is_refused(schemas_unconfigured):  # the XSD's own text otherwise
    data = altered(CUSTOMER_TRANSFER, "8a562c67-ca16-48ba-b074-65581be6f011",
                   "8A562C67-CA16-48BA-B074-65581BE6F011")
    assert "is not a UETR" in refused(data).text


def test_party_scopay_cannot_carry_is_refused_rather_than_dropped():
    data = altered(CUSTOMER_TRANSFER, "      <Purp>",
                   "      <UltmtCdtr><Nm>Hidden Beneficiary</Nm></UltmtCdtr>\n      <Purp>")
    error = refused(data)
    assert error.reason_code == "AG03"
    assert "UltmtCdtr is not supported" in error.text


def test_time_without_utc_offset_is_refused():
    data = altered(CUSTOMER_TRANSFER, "2026-11-29T09:30:00+08:00", "2026-11-29T09:30:00")
    assert "is not a date-time with UTC offset" in refused(data).text


@pytest.mark.parametrize(("message", "day", "old", "new"), [
    (CUSTOMER_TRANSFER, "9999-12-31", "<SttlmPrty>HIGH</SttlmPrty>",  # 10000-01-01T00:59:59Z
     "<SttlmPrty>HIGH</SttlmPrty><SttlmTmReq><FrTm>23:59:59-01:00</FrTm></SttlmTmReq>"),
    (CUSTOMER_TRANSFER, "1970-01-01", "<SttlmPrty>HIGH</SttlmPrty>",  # before 1970
     "<SttlmPrty>HIGH</SttlmPrty><SttlmTmReq><TillTm>00:00:00+01:00</TillTm></SttlmTmReq>"),
    (CURRENT_VERSION, "9999-12-31", "<NbOfTxs>1</NbOfTxs>",  # the expiry is the reject-by time
     "<XpryDtTm>9999-12-31T23:59:59-01:00</XpryDtTm><NbOfTxs>1</NbOfTxs>"),
])
def test_settlement_times_no_answer_could_write_back_are_refused(message, day, old, new):
    data = altered(altered(message, "<IntrBkSttlmDt>2026-11-29<", f"<IntrBkSttlmDt>{day}<"),
                   old, new)
    if day < "2026":  # a message of that day (a settlement date before it is refused, DT01)
        data = re.sub(rb"<CreDtTm>[^<]*</CreDtTm>", f"<CreDtTm>{day}T00:00:00Z</CreDtTm>".encode(),
                      data, count=1)
    error = refused(data, parse_pacs008)
    assert error.reason_code == "FF01"
    assert "payment times must fall from 1970-01-01 to 9999-12-30 UTC" in error.text


@pytest.mark.parametrize("message", [CUSTOMER_TRANSFER, CURRENT_VERSION])
def test_a_settlement_date_before_the_message_was_created_is_refused_as_an_invalid_date(
        message):
    data = altered(message, "<IntrBkSttlmDt>2026-11-29<", "<IntrBkSttlmDt>2026-11-01<")
    error = refused(data, parse_pacs008)
    assert error.reason_code == "DT01"
    assert "IntrBkSttlmDt 2026-11-01 is before the message was created" in error.text


@pytest.mark.parametrize(("old", "new", "rule"), [
    ("<XchgRate>12.5</XchgRate>", "", "need an XchgRate (InstructedAmountAndExchangeRate1Rule)"),
    ('<InstdAmt Ccy="CNY">100000.00</InstdAmt>', '<InstdAmt Ccy="RUB">1250000.00</InstdAmt>',
     "take no XchgRate (InstructedAmountAndExchangeRate2Rule)"),
])
def test_an_instructed_amount_must_agree_with_its_exchange_rate(old, new, rule):
    data = altered(CUSTOMER_TRANSFER, old, new)
    error = refused(data, parse_pacs008)
    assert error.reason_code == "FF01"
    assert rule in error.text


def test_header_must_name_the_enclosed_message():
    data = altered(BATCH, "<MsgDefIdr>pacs.008.001.08", "<MsgDefIdr>pacs.009.001.08")
    assert "does not name the enclosed pacs.008.001.08" in refused(data).text


@pytest.mark.parametrize("data", [b"", b"   ", b"text", b"<unclosed>"])
def test_garbage_is_refused_as_invalid_format(data):
    assert refused(data, parse_document).reason_code == "FF01"


UETR = "8a562c67-ca16-48ba-b074-65581be6f011"


@pytest.mark.parametrize("same", ["uetr", "return id"])
def test_a_return_message_naming_one_payment_or_return_twice_is_refused(same):
    def item(n: int) -> PaymentReturn:
        return PaymentReturn("RTR-1" if same == "return id" else f"RTR-{n}", "MSG1",
                             "pacs.008.001.08", 100, "CNY", "AC04",
                             original_uetr=(UETR if same == "uetr"
                                            else f"8a562c67-ca16-48ba-b074-65581be6f00{n}"))
    data = build_pacs004(ReturnInstruction("RTRMSG-1", 1_795_939_200_000_000,
                                           (item(1), item(2))))
    error = refused(data, parse_message)
    assert error.reason_code == "AM05"
    assert "in two transactions" in error.text


CBPR = (SAMPLES_DIR / "pacs008_cbpr_customer_transfer.xml").read_bytes()
OTHER_ACCOUNT = "<Othr>\n            <Id>6222020200112233445</Id>\n          </Othr>"


@pytest.mark.parametrize("reader", ["text", "tree"])
def test_an_iban_with_wrong_check_digits_is_refused_ac01_and_a_right_one_read(reader):
    def with_iban(iban: str) -> bytes:
        data = altered(CBPR, OTHER_ACCOUNT, f"<IBAN>{iban}</IBAN>")
        if reader == "tree":  # a comment inside makes the text reader leave it to the tree
            data = altered(data, "<IBAN>", "<!-- x --><IBAN>")
        return data

    (payment,) = parse_message(with_iban("DE89370400440532013000"))[1].payments
    assert payment.debtor.account == "DE89370400440532013000"
    error = refused(with_iban("DE89370400440532013001"))  # one digit off
    assert error.reason_code == "AC01" and "check digits" in error.text


@pytest.mark.parametrize("reader", ["text", "tree"])
def test_a_date_time_finer_than_a_microsecond_is_read_to_the_microsecond(reader):
    """xs:dateTime allows any number of fractional digits (.NET writes seven): scopay keeps
    microseconds and drops the rest, as it would a message written to the microsecond."""
    def sent_at(moment: str) -> int:
        data = altered(CBPR, "<CreDtTm>2026-11-29T09:30:00+08:00</CreDtTm>",
                       f"<CreDtTm>{moment}</CreDtTm>")
        if reader == "tree":
            data = altered(data, "<CreDtTm>", "<!-- x --><CreDtTm>")
        return parse_message(data)[1].created_at_us

    assert sent_at("2026-11-29T09:30:00.1234567+08:00") == sent_at(
        "2026-11-29T09:30:00.123456+08:00") == sent_at("2026-11-29T09:30:00.123456999999+08:00")
    assert sent_at("2026-11-29T09:30:00.123456+08:00") - sent_at(
        "2026-11-29T09:30:00+08:00") == 123_456


@pytest.mark.parametrize("change", [
    ('<Envelope xmlns="urn:scopay:xsd:envelope">',
     '<Envelope xmlns="urn:scopay:xsd:envelope" priority="high">'),
    ("</AppHdr>", "</AppHdr>pay twice"),
    ('<Envelope xmlns="urn:scopay:xsd:envelope">',
     '<Envelope xmlns="urn:scopay:xsd:envelope">note'),
    ("</Document>", "</Document>trailer"),
    ("</AppHdr>", "</AppHdr>\u00a0"),
], ids=["attribute", "text between", "text before", "text after", "no-break space"])
def test_an_envelope_with_anything_besides_its_two_parts_is_refused(change):
    """The envelope is scopay's own element, which no XSD checks: what it holds besides the
    header and the document would be read by nobody, so it is refused."""
    parse_message(BATCH)  # as it is: read
    error = refused(altered(BATCH, *change))
    assert error.reason_code == "FF01" and "nothing else" in error.text
