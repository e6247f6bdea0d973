"""camt.054.001.08 bank to customer debit/credit notification: entries on one account, as they
are booked. One notification of one account per message; entries read as in camt.053.
"""

from __future__ import annotations

from lxml import etree

from scopay.iso20022.datatype import add_id, format_datetime_us, read_datetime_us, read_id
from scopay.iso20022.document import (
    message_element,
    new_document,
    open_document,
    qualified_namespace,
    serialize,
)
from scopay.iso20022.entry import (
    ENTRY,
    PAGINATION,
    REPORT_ACCOUNT,
    add_entry,
    add_report_account,
    check_entry_currencies,
    read_sequence_number,
)
from scopay.iso20022.model import Notification
from scopay.iso20022.shape import Shape, add, read_shape

CAMT054_V08 = "camt.054.001.08"
MESSAGE_TYPES = (CAMT054_V08,)
NS = qualified_namespace(CAMT054_V08)

NOTIFICATION = Shape(
    "BankToCustomerDebitCreditNotificationV08", "GrpHdr Ntfctn+1 SplmtryData*",
    GrpHdr=Shape("GroupHeader81", "MsgId CreDtTm MsgRcpt? MsgPgntn? OrgnlBizQry? AddtlInf?",
                 MsgId=read_id, CreDtTm=read_datetime_us, MsgPgntn=PAGINATION),
    Ntfctn=Shape(
        "AccountNotification17", "Id NtfctnPgntn? ElctrncSeqNb? RptgSeq? LglSeqNb? CreDtTm? "
        "FrToDt? CpyDplctInd? RptgSrc? Acct RltdAcct? Intrst* TxsSummry? Ntry* "
        "AddtlNtfctnInf?",
        Id=read_id, NtfctnPgntn=PAGINATION, ElctrncSeqNb=read_sequence_number,
        Acct=REPORT_ACCOUNT, Ntry=ENTRY),
)


def parse_camt054(data: bytes) -> Notification:
    document, message_type = open_document(data, MESSAGE_TYPES)
    return read_camt054(document, message_type)


def read_camt054(document: etree._Element, message_type: str) -> Notification:
    root = message_element(document, "BkToCstmrDbtCdtNtfctn", NS)
    fields = read_shape(root, NOTIFICATION, NS)
    header = fields["GrpHdr"]
    report = fields["Ntfctn"][0]
    account, currency, servicer = report["Acct"]
    entries = tuple(report.get("Ntry", ()))
    check_entry_currencies(root, entries, currency)
    return Notification(
        message_id=header["MsgId"], created_at_us=header["CreDtTm"],
        notification_id=report["Id"], account=account, currency=currency, entries=entries,
        account_servicer=servicer,
    )


def build_camt054(notification: Notification) -> bytes:
    n = notification
    document, root = new_document(CAMT054_V08, "BkToCstmrDbtCdtNtfctn")
    header = add(root, "GrpHdr")
    add_id(header, "MsgId", n.message_id)
    add(header, "CreDtTm", format_datetime_us(n.created_at_us))
    report = add(root, "Ntfctn")
    add_id(report, "Id", n.notification_id)
    add_report_account(report, n.account, n.currency, n.account_servicer)
    for booked_entry in n.entries:
        add_entry(report, booked_entry)
    return serialize(document)
