"""camt.053.001.08 bank to customer statement: an account's booked balances and entries.

scopay reads and writes one statement of one account per message: its opening booked balance
(OPBD, or PRCD the previous closing), closing booked balance (CLBD) and the entries between.
The booked entries must add up: opening + booked entries = closing, or the statement is refused
(AM10, its balances being its control sums). Other balance types (available, forward ...) are
accepted and not carried.
"""

from __future__ import annotations

from datetime import date

from lxml import etree

from scopay.iso20022.codes import EntryStatus, ReasonCode
from scopay.iso20022.component import only_value
from scopay.iso20022.datatype import (
    add_amount,
    add_id,
    format_datetime_us,
    read_amount,
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
    PAGINATION,
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
OPENING_BALANCES = ("OPBD", "PRCD")  # opening booked, or the previous closing booked
CLOSING_BALANCE = "CLBD"
INTERIM_BALANCE = "ITBD"  # interim booked: the closing balance of a day not yet over


def balance(fields: Fields, element: etree._Element) -> tuple[str, int, str, date]:
    """(ISO balance type, signed amount in minor units, currency, date)."""
    amount, currency = fields["Amt"]
    return fields["Tp"], amount * fields["CdtDbtInd"], currency, fields["Dt"]


GROUP_HEADER = Shape("GroupHeader81", "MsgId CreDtTm MsgRcpt? MsgPgntn? OrgnlBizQry? AddtlInf?",
                     MsgId=read_id, CreDtTm=read_datetime_us, MsgPgntn=PAGINATION)
BALANCE = Shape(
    "CashBalance8", "Tp CdtLine* Amt CdtDbtInd Dt Avlbty*", finish=balance,
    Tp=Shape("BalanceType13", "CdOrPrtry SubTp?", finish=lambda fields, _: fields["CdOrPrtry"],
             CdOrPrtry=Shape("BalanceType10Choice", "Cd Prtry", choice=True, refused=("Prtry",),
                             finish=only_value, Cd=read_external_code)),
    Amt=read_amount, CdtDbtInd=read_credit_debit, Dt=DATE_CHOICE,
)
STATEMENT = Shape(
    "BankToCustomerStatementV08", "GrpHdr Stmt+1 SplmtryData*", GrpHdr=GROUP_HEADER,
    Stmt=Shape(
        "AccountStatement9", "Id StmtPgntn? ElctrncSeqNb? RptgSeq? LglSeqNb? CreDtTm? FrToDt? "
        "CpyDplctInd? RptgSrc? Acct RltdAcct? Intrst* Bal+ TxsSummry? Ntry* AddtlStmtInf?",
        Id=read_id, StmtPgntn=PAGINATION, ElctrncSeqNb=read_sequence_number,
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
    opening = one_balance(root, report["Bal"], OPENING_BALANCES, currency)
    closing = one_balance(root, report["Bal"], (CLOSING_BALANCE, INTERIM_BALANCE), currency)
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
        sequence_number=report.get("ElctrncSeqNb"), final=closing[0] == CLOSING_BALANCE,
    )


def one_balance(root: etree._Element, balances: list[tuple[str, int, str, date]],
                types: tuple[str, ...], currency: str) -> tuple[str, int, str, date]:
    found = [b for b in balances if b[0] in types]
    if len(found) != 1:
        refuse_at(root, ReasonCode.INVALID_FILE_FORMAT,
                  f"a statement needs exactly one {' or '.join(types)} balance, found {len(found)}")
    if found[0][2] != currency:
        refuse_at(root, ReasonCode.INVALID_FILE_FORMAT,
                  f"{found[0][0]} balance is in {found[0][2]}, the account in {currency}")
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
    report = add(root, "Stmt")
    add_id(report, "Id", s.statement_id)
    if s.sequence_number is not None:
        add(report, "ElctrncSeqNb", str(s.sequence_number))
    add_report_account(report, s.account, s.currency, s.account_servicer)
    add_balance(report, "OPBD", s.opening_balance_minor, s.currency, s.opening_date)
    add_balance(report, CLOSING_BALANCE if s.final else INTERIM_BALANCE, s.closing_balance_minor,
                s.currency, s.closing_date)
    for booked_entry in s.entries:
        add_entry(report, booked_entry)
    return serialize(document)


def add_balance(parent: etree._Element, balance_type: str, amount_minor: int, currency: str,
                day: date) -> None:
    element = add(parent, "Bal")
    add(add(add(element, "Tp"), "CdOrPrtry"), "Cd", balance_type)
    add_amount(element, "Amt", abs(amount_minor), currency)
    add(element, "CdtDbtInd", "DBIT" if amount_minor < 0 else "CRDT")
    add(add(element, "Dt"), "Dt", day.isoformat())
