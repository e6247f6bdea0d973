"""Account report parts camt.053 and camt.054 share: the reported account, entries, paging.

An entry (ReportEntry10) is one booking: amount and credit/debit indicator (scopay: a signed
amount), status, booking and value dates, the ISO bank transaction code, and at most one
transaction's details (references, debtor and creditor agents, unstructured remittance).
Batched entries (several TxDtls), reversals and multi-page reports are refused (AG03).
"""

from __future__ import annotations

from lxml import etree

from scopay.iso20022.codes import EntryStatus, ReasonCode
from scopay.iso20022.component import (
    ACCOUNT_ID,
    AGENT,
    STATEMENT_ACCOUNT_CHILDREN,
    add_agent,
    only_value,
)
from scopay.iso20022.component import add_account as add_cash_account
from scopay.iso20022.credit_transfer import remittance_shape
from scopay.iso20022.datatype import (
    NAME_LENGTH_MAX,
    add_amount,
    add_external_code,
    add_id,
    add_text,
    add_uetr,
    code_reader,
    read_amount,
    read_boolean,
    read_currency_code,
    read_date,
    read_date_or_datetime,
    read_external_code,
    read_id,
    read_uetr,
)
from scopay.iso20022.model import Entry
from scopay.iso20022.shape import Fields, Shape, add, refuse_at

_CREDIT_DEBIT = {"CRDT": 1, "DBIT": -1}
SEQUENCE_NUMBER_DIGITS_MAX = 18  # Number: totalDigits 18, fractionDigits 0


def read_credit_debit(element: etree._Element) -> int:
    """+1 for CRDT, -1 for DBIT: the sign scopay gives the amount."""
    sign = _CREDIT_DEBIT.get(element.text or "")
    if sign is None or len(element):
        refuse_at(element, ReasonCode.INVALID_FILE_FORMAT, f"{element.text!r} is not CRDT or DBIT")
    return sign


def read_not_reversal(element: etree._Element) -> bool:
    if read_boolean(element):
        refuse_at(element, ReasonCode.TRANSACTION_NOT_SUPPORTED,
                  "reversal entries are not supported: scopay books a new entry instead")
    return False


def read_sequence_number(element: etree._Element) -> int:
    text = element.text or ""
    if (not text.isascii() or not text.isdigit() or len(text) > SEQUENCE_NUMBER_DIGITS_MAX
            or len(element)):
        refuse_at(element, ReasonCode.INVALID_FILE_FORMAT,
                  f"{text!r} is not a whole number of at most 18 digits")
    return int(text)


def single_page(fields: Fields, element: etree._Element) -> None:
    if fields["PgNb"] != "1" or not fields["LastPgInd"]:
        refuse_at(element, ReasonCode.TRANSACTION_NOT_SUPPORTED,
                  "multi-page reports are not supported: scopay reads one-page reports")


PAGINATION = Shape("Pagination1", "PgNb LastPgInd", finish=single_page,
                   PgNb=read_id, LastPgInd=read_boolean)
DATE_CHOICE = Shape("DateAndDateTime2Choice", "Dt DtTm", choice=True, finish=only_value,
                    Dt=read_date, DtTm=read_date_or_datetime)
def report_account(fields: Fields, element: etree._Element) -> tuple[str, str, str | None]:
    """(account id, currency, servicer BIC); scopay's reports are of one-currency accounts."""
    if "Ccy" not in fields:
        refuse_at(element, ReasonCode.INVALID_FILE_FORMAT, "the reported account needs its Ccy")
    return fields["Id"], fields["Ccy"], fields.get("Svcr")


REPORT_ACCOUNT = Shape(
    "CashAccount39", STATEMENT_ACCOUNT_CHILDREN, finish=report_account, Id=ACCOUNT_ID,
    Ccy=read_currency_code, Svcr=AGENT,
)


def bank_transaction_code(fields: Fields, element: etree._Element) -> tuple[str, str, str]:
    if "Domn" not in fields:
        refuse_at(element, ReasonCode.TRANSACTION_NOT_SUPPORTED,
                  "BkTxCd without Domn: scopay reads ISO bank transaction codes only")
    return fields["Domn"]


BANK_TRANSACTION_CODE = Shape(
    "BankTransactionCodeStructure4", "Domn? Prtry?", finish=bank_transaction_code,
    Domn=Shape("BankTransactionCodeStructure5", "Cd Fmly",
               finish=lambda fields, _: (fields["Cd"], *fields["Fmly"]),
               Cd=read_external_code,
               Fmly=Shape("BankTransactionCodeStructure6", "Cd SubFmlyCd",
                          finish=lambda fields, _: (fields["Cd"], fields["SubFmlyCd"]),
                          Cd=read_external_code, SubFmlyCd=read_external_code)),
)
TRANSACTION_DETAILS = Shape(
    "EntryTransaction10",
    "Refs? Amt? CdtDbtInd? AmtDtls? Avlbty* BkTxCd? Chrgs? Intrst? RltdPties? RltdAgts? "
    "LclInstrm? Purp? RltdRmtInf*10 RmtInf? RltdDts? RltdPric? RltdQties* FinInstrmId? Tax? "
    "RtrInf? CorpActn? SfkpgAcct? CshDpst* CardTx? AddtlTxInf? SplmtryData*",
    Refs=Shape("TransactionReferences6",
               "MsgId? AcctSvcrRef? PmtInfId? InstrId? EndToEndId? UETR? TxId? MndtId? ChqNb? "
               "ClrSysRef? AcctOwnrTxId? AcctSvcrTxId? MktInfrstrctrTxId? PrcgId? Prtry*",
               MsgId=read_id, InstrId=read_id, EndToEndId=read_id, UETR=read_uetr),
    RltdAgts=Shape("TransactionAgents5",
                   "InstgAgt? InstdAgt? DbtrAgt? CdtrAgt? IntrmyAgt1? IntrmyAgt2? IntrmyAgt3? "
                   "RcvgAgt? DlvrgAgt? IssgAgt? SttlmPlc? Prtry*", DbtrAgt=AGENT, CdtrAgt=AGENT),
    RmtInf=remittance_shape("RemittanceInformation16", "Ustrd*1 Strd*"),
)


def entry(fields: Fields, element: etree._Element) -> Entry:
    amount, currency = fields["Amt"]
    details = fields.get("NtryDtls", [{}])[0].get("TxDtls", [{}])[0]
    references = details.get("Refs", {})
    agents = details.get("RltdAgts", {})
    return Entry(
        amount_minor=amount * fields["CdtDbtInd"], currency=currency, status=fields["Sts"],
        bank_transaction_code=fields["BkTxCd"], booking_date=fields.get("BookgDt"),
        value_date=fields.get("ValDt"), entry_reference=fields.get("NtryRef"),
        account_servicer_reference=fields.get("AcctSvcrRef"),
        message_id=references.get("MsgId"), instruction_id=references.get("InstrId"),
        end_to_end_id=references.get("EndToEndId"), uetr=references.get("UETR"),
        debtor_agent=agents.get("DbtrAgt"), creditor_agent=agents.get("CdtrAgt"),
        remittance=details.get("RmtInf"),
    )


ENTRY = Shape(
    "ReportEntry10",
    "NtryRef? Amt CdtDbtInd RvslInd? Sts BookgDt? ValDt? AcctSvcrRef? Avlbty* BkTxCd "
    "ComssnWvrInd? AddtlInfInd? AmtDtls? Chrgs? TechInptChanl? Intrst? CardTx? NtryDtls*1 "
    "AddtlNtryInf?",
    finish=entry, NtryRef=read_id, Amt=read_amount, CdtDbtInd=read_credit_debit,
    RvslInd=read_not_reversal,
    Sts=Shape("EntryStatus1Choice", "Cd Prtry", choice=True, refused=("Prtry",),
              finish=only_value, Cd=code_reader(EntryStatus)),
    BookgDt=DATE_CHOICE, ValDt=DATE_CHOICE, AcctSvcrRef=read_id, BkTxCd=BANK_TRANSACTION_CODE,
    NtryDtls=Shape("EntryDetails9", "Btch? TxDtls*1", TxDtls=TRANSACTION_DETAILS),
)


def check_entry_currencies(element: etree._Element, entries: list[Entry] | tuple[Entry, ...],
                           currency: str) -> None:
    for position, booked in enumerate(entries):
        if booked.currency != currency:
            refuse_at(element, ReasonCode.INVALID_FILE_FORMAT,
                      f"entry {position + 1} is in {booked.currency} on a {currency} account")


# Writing ---------------------------------------------------------------------------------

def add_report_account(parent: etree._Element, account: str, currency: str,
                       servicer: str | None) -> None:
    add_cash_account(parent, "Acct", account)
    element = parent[-1]
    add(element, "Ccy", currency)
    if servicer is not None:
        add_agent(element, "Svcr", servicer)


def add_entry(parent: etree._Element, booked: Entry) -> None:
    element = add(parent, "Ntry")
    if booked.entry_reference is not None:
        add_id(element, "NtryRef", booked.entry_reference)
    add_amount(element, "Amt", abs(booked.amount_minor), booked.currency)
    add(element, "CdtDbtInd", "DBIT" if booked.amount_minor < 0 else "CRDT")
    add(add(element, "Sts"), "Cd", booked.status.value)
    if booked.booking_date is not None:
        add(add(element, "BookgDt"), "Dt", booked.booking_date.isoformat())
    if booked.value_date is not None:
        add(add(element, "ValDt"), "Dt", booked.value_date.isoformat())
    if booked.account_servicer_reference is not None:
        add_id(element, "AcctSvcrRef", booked.account_servicer_reference)
    add_bank_transaction_code(element, booked.bank_transaction_code)
    add_transaction_details(element, booked)


def add_bank_transaction_code(parent: etree._Element, code: tuple[str, str, str]) -> None:
    domain, family, sub_family = code
    element = add(add(parent, "BkTxCd"), "Domn")
    add_external_code(element, "Cd", domain)
    family_element = add(element, "Fmly")
    add_external_code(family_element, "Cd", family)
    add_external_code(family_element, "SubFmlyCd", sub_family)


def add_transaction_details(parent: etree._Element, booked: Entry) -> None:
    references = [("MsgId", booked.message_id), ("InstrId", booked.instruction_id),
                  ("EndToEndId", booked.end_to_end_id)]
    agents = [("DbtrAgt", booked.debtor_agent), ("CdtrAgt", booked.creditor_agent)]
    if all(value is None for _, value in (*references, *agents, ("UETR", booked.uetr),
                                          ("RmtInf", booked.remittance))):
        return
    details = add(add(parent, "NtryDtls"), "TxDtls")
    if any(value is not None for _, value in references) or booked.uetr is not None:
        element = add(details, "Refs")
        for name, value in references:
            if value is not None:
                add_id(element, name, value)
        if booked.uetr is not None:
            add_uetr(element, "UETR", booked.uetr)
    if any(value is not None for _, value in agents):
        element = add(details, "RltdAgts")
        for name, value in agents:
            if value is not None:
                add_agent(element, name, value)
    if booked.remittance is not None:
        add_text(add(details, "RmtInf"), "Ustrd", booked.remittance, NAME_LENGTH_MAX)
