"""pacs.002.001.10 FI to FI payment status report: scopay's answer to every instruction.

scopay writes the CBPR+ shape: one TxInfAndSts per transaction, each naming its original
message in OrgnlGrpInf, and OrgnlGrpInfAndSts only for a verdict on a whole message (RJCT FF01
for a file scopay could not read). It reads T2's shape too, where transactions take the
original message from OrgnlGrpInfAndSts. One reason per status is carried (StsRsnInf: code and
text); a report about several original messages at group level is refused.
"""

from __future__ import annotations

from lxml import etree

from scopay.iso20022.codes import ReasonCode, TransactionStatus
from scopay.iso20022.component import (
    AGENT,
    ORIGINAL_REFERENCE_READERS,
    REASON,
    add_agent,
    add_original_references,
    add_reason,
    only_value,
    original_group_of,
)
from scopay.iso20022.datatype import (
    add_id,
    code_reader,
    format_datetime_us,
    read_date,
    read_date_or_datetime,
    read_datetime_us,
    read_id,
)
from scopay.iso20022.document import (
    message_element,
    new_document,
    open_document,
    qualified_namespace,
    serialize,
)
from scopay.iso20022.model import OriginalGroupStatus, StatusReport, TransactionStatusReport
from scopay.iso20022.shape import Fields, Shape, add, keep_element, read_shape, refuse_at

PACS002_V10 = "pacs.002.001.10"
MESSAGE_TYPES = (PACS002_V10,)
NS = qualified_namespace(PACS002_V10)

read_status = code_reader(TransactionStatus)


def original_group_status(fields: Fields, element: etree._Element) -> OriginalGroupStatus:
    code, text = fields.get("StsRsnInf", [(None, None)])[0]
    return OriginalGroupStatus(
        original_message_id=fields["OrgnlMsgId"], original_message_type=fields["OrgnlMsgNmId"],
        status=fields.get("GrpSts"), reason_code=code, reason_text=text,
    )


DATE_CHOICE = Shape("DateAndDateTime2Choice", "Dt DtTm", choice=True, finish=only_value,
                    Dt=read_date, DtTm=read_date_or_datetime)
REPORT = Shape(
    "FIToFIPaymentStatusReportV10", "GrpHdr OrgnlGrpInfAndSts*1 TxInfAndSts* SplmtryData*",
    GrpHdr=Shape("GroupHeader91", "MsgId CreDtTm InstgAgt? InstdAgt?",
                 MsgId=read_id, CreDtTm=read_datetime_us, InstgAgt=AGENT, InstdAgt=AGENT),
    OrgnlGrpInfAndSts=Shape(
        "OriginalGroupHeader17", "OrgnlMsgId OrgnlMsgNmId OrgnlCreDtTm? OrgnlNbOfTxs? "
        "OrgnlCtrlSum? GrpSts? StsRsnInf*1 NbOfTxsPerSts*", finish=original_group_status,
        OrgnlMsgId=read_id, OrgnlMsgNmId=read_id, GrpSts=read_status, StsRsnInf=REASON),
    TxInfAndSts=keep_element,
)
TRANSACTION = Shape(
    "PaymentTransaction110", "StsId? OrgnlGrpInf? OrgnlInstrId? OrgnlEndToEndId? OrgnlTxId? "
    "OrgnlUETR? TxSts? StsRsnInf*1 ChrgsInf* AccptncDtTm? FctvIntrBkSttlmDt? AcctSvcrRef? "
    "ClrSysRef? InstgAgt? InstdAgt? OrgnlTxRef? SplmtryData*",
    **ORIGINAL_REFERENCE_READERS, StsId=read_id, TxSts=read_status, StsRsnInf=REASON,
    AccptncDtTm=read_datetime_us, FctvIntrBkSttlmDt=DATE_CHOICE, InstgAgt=AGENT,
    InstdAgt=AGENT,
)


def parse_pacs002(data: bytes) -> StatusReport:
    document, message_type = open_document(data, MESSAGE_TYPES)
    return read_pacs002(document, message_type)


def read_pacs002(document: etree._Element, message_type: str) -> StatusReport:
    fields = read_shape(message_element(document, "FIToFIPmtStsRpt", NS), REPORT, NS)
    header = fields["GrpHdr"]
    group = fields.get("OrgnlGrpInfAndSts", [None])[0]
    default = None if group is None else (group.original_message_id,
                                          group.original_message_type)
    return StatusReport(
        message_id=header["MsgId"], created_at_us=header["CreDtTm"],
        transactions=tuple(read_transaction(tx, default)
                           for tx in fields.get("TxInfAndSts", ())),
        original_group=group,
        instructing_agent=header.get("InstgAgt"), instructed_agent=header.get("InstdAgt"),
    )


def read_transaction(tx: etree._Element,
                     default: tuple[str, str] | None) -> TransactionStatusReport:
    fields = read_shape(tx, TRANSACTION, NS)
    message_id, message_type = original_group_of(fields, default, tx)
    if "TxSts" not in fields:
        refuse_at(tx, ReasonCode.INVALID_FILE_FORMAT, "TxInfAndSts lacks its TxSts")
    code, text = fields.get("StsRsnInf", [(None, None)])[0]
    return TransactionStatusReport(
        original_message_id=message_id, original_message_type=message_type,
        status=fields["TxSts"], original_uetr=fields.get("OrgnlUETR"),
        original_end_to_end_id=fields.get("OrgnlEndToEndId"),
        original_instruction_id=fields.get("OrgnlInstrId"), reason_code=code, reason_text=text,
        status_id=fields.get("StsId"), accepted_at_us=fields.get("AccptncDtTm"),
        effective_settlement_date=fields.get("FctvIntrBkSttlmDt"),
        instructing_agent=fields.get("InstgAgt"), instructed_agent=fields.get("InstdAgt"),
    )


def build_pacs002(report: StatusReport) -> bytes:
    if report.original_group is None and not report.transactions:
        raise ValueError("a status report needs an original group status or transactions")
    document, root = new_document(PACS002_V10, "FIToFIPmtStsRpt")
    header = add(root, "GrpHdr")
    add_id(header, "MsgId", report.message_id)
    add(header, "CreDtTm", format_datetime_us(report.created_at_us))
    if report.instructing_agent is not None:
        add_agent(header, "InstgAgt", report.instructing_agent)
    if report.instructed_agent is not None:
        add_agent(header, "InstdAgt", report.instructed_agent)
    if report.original_group is not None:
        add_original_group_status(root, report.original_group)
    for transaction in report.transactions:
        add_transaction(add(root, "TxInfAndSts"), transaction)
    return serialize(document)


def add_original_group_status(root: etree._Element, group: OriginalGroupStatus) -> None:
    element = add(root, "OrgnlGrpInfAndSts")
    add_id(element, "OrgnlMsgId", group.original_message_id)
    add_id(element, "OrgnlMsgNmId", group.original_message_type)
    if group.status is not None:
        add(element, "GrpSts", group.status.value)
    if group.reason_code is not None or group.reason_text is not None:
        add_reason(element, "StsRsnInf", group.reason_code, group.reason_text)


def add_transaction(tx: etree._Element, report: TransactionStatusReport) -> None:
    if report.status_id is not None:
        add_id(tx, "StsId", report.status_id)
    add_original_references(tx, report.original_message_id, report.original_message_type,
                            report.original_instruction_id, report.original_end_to_end_id,
                            report.original_uetr)
    add(tx, "TxSts", report.status.value)
    if report.reason_code is not None or report.reason_text is not None:
        add_reason(tx, "StsRsnInf", report.reason_code, report.reason_text)
    if report.accepted_at_us is not None:
        add(tx, "AccptncDtTm", format_datetime_us(report.accepted_at_us))
    if report.effective_settlement_date is not None:
        add(add(tx, "FctvIntrBkSttlmDt"), "Dt", report.effective_settlement_date.isoformat())
    if report.instructing_agent is not None:
        add_agent(tx, "InstgAgt", report.instructing_agent)
    if report.instructed_agent is not None:
        add_agent(tx, "InstdAgt", report.instructed_agent)
