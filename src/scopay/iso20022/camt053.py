"""camt.053.001.08 bank to customer statement: an account's booked balances and entries.

scopay reads and writes one statement of one account per message: its opening booked balance
(OPBD, or PRCD the previous closing), closing booked balance (CLBD) and the entries between.
The booked entries must add up: opening + booked entries = closing, or the statement is refused
(AM10, its balances being its control sums). Other balance types (available, forward ...) are
accepted and not carried.

A statement too long for one message comes in pages (MsgPgntn and StmtPgntn: the page's
number, and whether it is the last). The first page opens on OPBD, the later ones on the
interim balance the page before closed on (ITBD with sub-type OIBD, opening interim booked);
each page but the last closes on ITBD with sub-type CIBD (closing interim booked), the last on
CLBD (ITBD for a day not yet over). Each page adds up on its own.
"""

from __future__ import annotations

import re
from datetime import date

from lxml import etree

from scopay.iso20022.codes import EntryStatus, ReasonCode
from scopay.iso20022.component import only_value
from scopay.iso20022.datatype import (
    add_amount,
    add_id,
    format_datetime_us,
    read_amount,
    read_boolean,
    read_datetime_us,
    read_external_code,
    read_id,
)
from scopay.iso20022.document import (
    message_element,
    new_document,
    open_document,
    qualified_namespace,
    serialize,
)
from scopay.iso20022.entry import (
    DATE_CHOICE,
    ENTRY,
    REPORT_ACCOUNT,
    add_entry,
    add_report_account,
    check_entry_currencies,
    read_credit_debit,
    read_sequence_number,
)
from scopay.iso20022.model import Statement
from scopay.iso20022.shape import Fields, Shape, add, read_shape, refuse_at

CAMT053_V08 = "camt.053.001.08"
MESSAGE_TYPES = (CAMT053_V08,)
NS = qualified_namespace(CAMT053_V08)
CLOSING_BALANCE = "CLBD"
INTERIM_BALANCE = "ITBD"  # interim booked: the closing balance of a day not yet over
OPENING_INTERIM, CLOSING_INTERIM = "OIBD", "CIBD"  # ITBD's sub-types where a page turns
# (type, sub-type) of the balances a statement (or page) may open and close on
OPENING_BALANCES = (("OPBD", None), ("PRCD", None), (INTERIM_BALANCE, OPENING_INTERIM))
CLOSING_BALANCES = ((CLOSING_BALANCE, None), (INTERIM_BALANCE, None),
                    (INTERIM_BALANCE, CLOSING_INTERIM))
PAGE_NUMBER = re.compile(r"[0-9]{1,5}")
PAGE_NUMBER_MAX = 99_999


def balance(fields: Fields, element: etree._Element) -> tuple[tuple[str, str | None], int, str,
                                                               date]:
    """((ISO balance type, sub-type), signed amount in minor units, currency, date)."""
    amount, currency = fields["Amt"]
    return fields["Tp"], amount * fields["CdtDbtInd"], currency, fields["Dt"]


def read_page_number(element: etree._Element) -> int:
    text = element.text or ""
    if not PAGE_NUMBER.fullmatch(text) or len(element) or int(text) < 1:
        refuse_at(element, ReasonCode.INVALID_FILE_FORMAT,
                  f"{text!r} is not a page number (1 to 5 digits, from 1)")
    return int(text)


PAGE = Shape("Pagination1", "PgNb LastPgInd",
             finish=lambda fields, _: (fields["PgNb"], fields["LastPgInd"]),
             PgNb=read_page_number, LastPgInd=read_boolean)
GROUP_HEADER = Shape("GroupHeader81", "MsgId CreDtTm MsgRcpt? MsgPgntn? OrgnlBizQry? AddtlInf?",
                     MsgId=read_id, CreDtTm=read_datetime_us, MsgPgntn=PAGE)
BALANCE = Shape(
    "CashBalance8", "Tp CdtLine* Amt CdtDbtInd Dt Avlbty*", finish=balance,
    Tp=Shape("BalanceType13", "CdOrPrtry SubTp?",
             finish=lambda fields, _: (fields["CdOrPrtry"], fields.get("SubTp")),
             CdOrPrtry=Shape("BalanceType10Choice", "Cd Prtry", choice=True, refused=("Prtry",),
                             finish=only_value, Cd=read_external_code),
             SubTp=Shape("BalanceSubType1Choice", "Cd Prtry", choice=True, finish=only_value,
                         Cd=read_external_code, Prtry=read_id)),
    Amt=read_amount, CdtDbtInd=read_credit_debit, Dt=DATE_CHOICE,
)
STATEMENT = Shape(
    "BankToCustomerStatementV08", "GrpHdr Stmt+1 SplmtryData*", GrpHdr=GROUP_HEADER,
    Stmt=Shape(
        "AccountStatement9", "Id StmtPgntn? ElctrncSeqNb? RptgSeq? LglSeqNb? CreDtTm? FrToDt? "
        "CpyDplctInd? RptgSrc? Acct RltdAcct? Intrst* Bal+ TxsSummry? Ntry* AddtlStmtInf?",
        Id=read_id, StmtPgntn=PAGE, ElctrncSeqNb=read_sequence_number,
        Acct=REPORT_ACCOUNT, Bal=BALANCE, Ntry=ENTRY),
)


def parse_camt053(data: bytes) -> Statement:
    document, message_type = open_document(data, MESSAGE_TYPES)
    return read_camt053(document, message_type)


def read_camt053(document: etree._Element, message_type: str) -> Statement:
    root = message_element(document, "BkToCstmrStmt", NS)
    fields = read_shape(root, STATEMENT, NS)
    header = fields["GrpHdr"]
    report = fields["Stmt"][0]
    account, currency, servicer = report["Acct"]
    entries = tuple(report.get("Ntry", ()))
    check_entry_currencies(root, entries, currency)
    pages = {header.get("MsgPgntn"), report.get("StmtPgntn")} - {None}
    if len(pages) > 1:
        refuse_at(root, ReasonCode.INVALID_FILE_FORMAT,
                  "the message's pagination and its statement's differ (scopay reads one "
                  "statement a message)")
    page, last_page = pages.pop() if pages else (1, True)
    opening = one_balance(root, report["Bal"], OPENING_BALANCES, currency)
    closing = one_balance(root, report["Bal"], CLOSING_BALANCES, currency)
    booked = sum(e.amount_minor for e in entries if e.status == EntryStatus.BOOKED)
    if opening[1] + booked != closing[1]:
        refuse_at(root, ReasonCode.INVALID_CONTROL_SUM,
                  f"opening balance {opening[1]} plus booked entries {booked} is not the "
                  f"closing balance {closing[1]} (minor units of {currency})")
    return Statement(
        message_id=header["MsgId"], created_at_us=header["CreDtTm"], statement_id=report["Id"],
        account=account, currency=currency, opening_balance_minor=opening[1],
        opening_date=opening[3], closing_balance_minor=closing[1], closing_date=closing[3],
        entries=entries, account_servicer=servicer,
        sequence_number=report.get("ElctrncSeqNb"),
        final=closing[0] in ((CLOSING_BALANCE, None), (INTERIM_BALANCE, CLOSING_INTERIM)),
        page=page, last_page=last_page,
    )


def one_balance(root: etree._Element, balances: list, types: tuple[tuple[str, str | None], ...],
                currency: str) -> tuple:
    found = [b for b in balances if b[0] in types]
    if len(found) != 1:
        names = " or ".join(f"{t} {sub}" if sub else t for t, sub in types)
        refuse_at(root, ReasonCode.INVALID_FILE_FORMAT,
                  f"a statement needs exactly one {names} balance, found {len(found)}")
    if found[0][2] != currency:
        refuse_at(root, ReasonCode.INVALID_FILE_FORMAT,
                  f"{found[0][0][0]} balance is in {found[0][2]}, the account in {currency}")
    return found[0]


def build_camt053(statement: Statement) -> bytes:
    s = statement
    booked = sum(e.amount_minor for e in s.entries if e.status == EntryStatus.BOOKED)
    if s.opening_balance_minor + booked != s.closing_balance_minor:
        raise ValueError(f"statement {s.statement_id}: opening + booked entries != closing")
    document, root = new_document(CAMT053_V08, "BkToCstmrStmt")
    header = add(root, "GrpHdr")
    add_id(header, "MsgId", s.message_id)
    add(header, "CreDtTm", format_datetime_us(s.created_at_us))
    add_page(header, "MsgPgntn", s.page, s.last_page)
    report = add(root, "Stmt")
    add_id(report, "Id", s.statement_id)
    add_page(report, "StmtPgntn", s.page, s.last_page)
    if s.sequence_number is not None:
        add(report, "ElctrncSeqNb", str(s.sequence_number))
    add_report_account(report, s.account, s.currency, s.account_servicer)
    add_balance(report, ("OPBD", None) if s.page == 1 else (INTERIM_BALANCE, OPENING_INTERIM),
                s.opening_balance_minor, s.currency, s.opening_date)
    closing = ((CLOSING_BALANCE if s.final else INTERIM_BALANCE, None) if s.last_page
               else (INTERIM_BALANCE, CLOSING_INTERIM))
    add_balance(report, closing, s.closing_balance_minor, s.currency, s.closing_date)
    for booked_entry in s.entries:
        add_entry(report, booked_entry)
    return serialize(document)


def add_page(parent: etree._Element, tag: str, page: int, last_page: bool) -> None:
    if not 1 <= page <= PAGE_NUMBER_MAX:
        raise ValueError(f"page {page} is not a page number (1 to {PAGE_NUMBER_MAX})")
    pagination = add(parent, tag)
    add(pagination, "PgNb", str(page))
    add(pagination, "LastPgInd", "true" if last_page else "false")


def add_balance(parent: etree._Element, balance_type: tuple[str, str | None], amount_minor: int,
                currency: str, day: date) -> None:
    element = add(parent, "Bal")
    kind = add(element, "Tp")
    add(add(kind, "CdOrPrtry"), "Cd", balance_type[0])
    if balance_type[1]:
        add(add(kind, "SubTp"), "Cd", balance_type[1])
    add_amount(element, "Amt", abs(amount_minor), currency)
    add(element, "CdtDbtInd", "DBIT" if amount_minor < 0 else "CRDT")
    add(add(element, "Dt"), "Dt", day.isoformat())
