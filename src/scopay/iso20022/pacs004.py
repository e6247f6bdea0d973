"""pacs.004.001.09 payment return: money of a settled payment going back, with the reason.

Each TxInf needs its RtrId, a reference to the original (OrgnlGrpInf, here or at group level,
and the original ids), the returned settlement amount and one return reason (ISO
ExternalReturnReason1Code, e.g. AC04 closed account, FOCR following a cancellation request).
NbOfTxs, CtrlSum and TtlRtrdIntrBkSttlmAmt are checked as in a credit transfer. Returned
instructed amounts, exchange rates, compensation and charges are refused (AG03): a
PaymentReturn has no place for them.
"""

from __future__ import annotations

from lxml import etree

from scopay.domain.payment import ChargeBearer
from scopay.iso20022.codes import ReasonCode
from scopay.iso20022.component import (
    AGENT,
    ORIGINAL_GROUP,
    ORIGINAL_REFERENCE_READERS,
    REASON,
    add_agent,
    add_original_references,
    add_reason,
    original_group_of,
)
from scopay.iso20022.credit_transfer import (
    SETTLEMENT_INSTRUCTION,
    add_group_totals,
    check_count,
    check_sums,
    read_control_sum,
)
from scopay.iso20022.datatype import (
    add_amount,
    add_id,
    code_reader,
    format_datetime_us,
    read_amount,
    read_count,
    read_date,
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
from scopay.iso20022.model import PaymentReturn, ReturnInstruction
from scopay.iso20022.shape import Shape, add, keep_element, read_shape, refuse_below

PACS004_V09 = "pacs.004.001.09"
MESSAGE_TYPES = (PACS004_V09,)
NS = qualified_namespace(PACS004_V09)

RETURN = Shape(
    "PaymentReturnV09", "GrpHdr OrgnlGrpInf? TxInf+ SplmtryData*",
    GrpHdr=Shape(
        "GroupHeader90", "MsgId CreDtTm Authstn*2 BtchBookg? NbOfTxs CtrlSum? GrpRtr? "
        "TtlRtrdIntrBkSttlmAmt? IntrBkSttlmDt? SttlmInf InstgAgt? InstdAgt?",
        MsgId=read_id, CreDtTm=read_datetime_us, NbOfTxs=read_count, CtrlSum=read_control_sum,
        TtlRtrdIntrBkSttlmAmt=read_amount, SttlmInf=SETTLEMENT_INSTRUCTION),
    OrgnlGrpInf=Shape("OriginalGroupHeader18", "OrgnlMsgId OrgnlMsgNmId OrgnlCreDtTm? RtrRsnInf*",
                      finish=ORIGINAL_GROUP.finish, OrgnlMsgId=read_id, OrgnlMsgNmId=read_id),
    TxInf=keep_element,
)
TRANSACTION = Shape(
    "PaymentTransaction112", "RtrId? OrgnlGrpInf? OrgnlInstrId? OrgnlEndToEndId? OrgnlTxId? "
    "OrgnlUETR? OrgnlClrSysRef? OrgnlIntrBkSttlmAmt? OrgnlIntrBkSttlmDt? RtrdIntrBkSttlmAmt "
    "IntrBkSttlmDt? SttlmPrty? SttlmTmIndctn? RtrdInstdAmt? XchgRate? CompstnAmt? ChrgBr? "
    "ChrgsInf* ClrSysRef? InstgAgt? InstdAgt? RtrChain? RtrRsnInf*1 OrgnlTxRef? SplmtryData*",
    refused=("RtrdInstdAmt", "XchgRate", "CompstnAmt", "ChrgsInf"),
    **ORIGINAL_REFERENCE_READERS, RtrId=read_id, OrgnlIntrBkSttlmAmt=read_amount,
    RtrdIntrBkSttlmAmt=read_amount, IntrBkSttlmDt=read_date, ChrgBr=code_reader(ChargeBearer),
    InstgAgt=AGENT, InstdAgt=AGENT, RtrRsnInf=REASON,
)


def parse_pacs004(data: bytes) -> ReturnInstruction:
    document, message_type = open_document(data, MESSAGE_TYPES)
    return read_pacs004(document, message_type)


def read_pacs004(document: etree._Element, message_type: str) -> ReturnInstruction:
    root = message_element(document, "PmtRtr", NS)
    fields = read_shape(root, RETURN, NS)
    header = fields["GrpHdr"]
    transactions = fields["TxInf"]
    check_count(root, header["NbOfTxs"], len(transactions))
    returns = tuple(read_return(tx, fields.get("OrgnlGrpInf")) for tx in transactions)
    check_sums(root, header, [(r.returned_amount_minor, r.currency) for r in returns],
               "TtlRtrdIntrBkSttlmAmt")
    # one answer per payment and per return: a repeat would have none of its own
    for name, values in (("payment (OrgnlUETR)", [r.original_uetr for r in returns
                                                  if r.original_uetr is not None]),
                         ("return id (RtrId)", [r.return_id for r in returns])):
        if len(set(values)) != len(values):
            refuse_below(root, ("TxInf",), ReasonCode.DUPLICATION,
                         f"the message names one {name} in two transactions")
    return ReturnInstruction(
        message_id=header["MsgId"], created_at_us=header["CreDtTm"], returns=returns,
        settlement_method=header["SttlmInf"],
    )


def read_return(tx: etree._Element, default: tuple[str, str] | None) -> PaymentReturn:
    fields = read_shape(tx, TRANSACTION, NS)
    message_id, message_type = original_group_of(fields, default, tx)
    if "RtrId" not in fields:
        refuse_below(tx, (), ReasonCode.INVALID_FILE_FORMAT, "TxInf lacks its RtrId")
    code, text = fields.get("RtrRsnInf", [(None, None)])[0]
    if code is None:
        refuse_below(tx, ("RtrRsnInf",), ReasonCode.INVALID_FILE_FORMAT,
                     "a return needs its reason code (RtrRsnInf/Rsn/Cd)")
    amount, currency = fields["RtrdIntrBkSttlmAmt"]
    if amount == 0:
        refuse_below(tx, ("RtrdIntrBkSttlmAmt",), ReasonCode.ZERO_AMOUNT,
                     "returned amount is zero")
    original_amount, original_currency = fields.get("OrgnlIntrBkSttlmAmt") or (None, None)
    return PaymentReturn(
        return_id=fields["RtrId"], original_message_id=message_id,
        original_message_type=message_type, returned_amount_minor=amount, currency=currency,
        reason_code=code, original_uetr=fields.get("OrgnlUETR"),
        original_end_to_end_id=fields.get("OrgnlEndToEndId"),
        original_instruction_id=fields.get("OrgnlInstrId"),
        original_amount_minor=original_amount, original_currency=original_currency,
        settlement_date=fields.get("IntrBkSttlmDt"), charge_bearer=fields.get("ChrgBr"),
        instructing_agent=fields.get("InstgAgt"), instructed_agent=fields.get("InstdAgt"),
        reason_text=text,
    )


def build_pacs004(instruction: ReturnInstruction) -> bytes:
    if not instruction.returns:
        raise ValueError("a return instruction needs at least one return")
    document, root = new_document(PACS004_V09, "PmtRtr")
    header = add(root, "GrpHdr")
    add_id(header, "MsgId", instruction.message_id)
    add(header, "CreDtTm", format_datetime_us(instruction.created_at_us))
    add_group_totals(header, [(r.returned_amount_minor, r.currency)
                              for r in instruction.returns], "TtlRtrdIntrBkSttlmAmt")
    add(add(header, "SttlmInf"), "SttlmMtd", instruction.settlement_method.value)
    for payment_return in instruction.returns:
        add_return(add(root, "TxInf"), payment_return)
    return serialize(document)


def add_return(tx: etree._Element, payment_return: PaymentReturn) -> None:
    r = payment_return
    if r.returned_amount_minor <= 0:
        raise ValueError(f"return {r.return_id}: returned amount must be positive")
    add_id(tx, "RtrId", r.return_id)
    add_original_references(tx, r.original_message_id, r.original_message_type,
                            r.original_instruction_id, r.original_end_to_end_id,
                            r.original_uetr)
    if (r.original_amount_minor is None) != (r.original_currency is None):
        raise ValueError(f"return {r.return_id}: original amount needs its currency")
    if r.original_amount_minor is not None:
        add_amount(tx, "OrgnlIntrBkSttlmAmt", r.original_amount_minor, r.original_currency)
    add_amount(tx, "RtrdIntrBkSttlmAmt", r.returned_amount_minor, r.currency)
    if r.settlement_date is not None:
        add(tx, "IntrBkSttlmDt", r.settlement_date.isoformat())
    if r.charge_bearer is not None:
        add(tx, "ChrgBr", r.charge_bearer.value)
    if r.instructing_agent is not None:
        add_agent(tx, "InstgAgt", r.instructing_agent)
    if r.instructed_agent is not None:
        add_agent(tx, "InstdAgt", r.instructed_agent)
    add_reason(tx, "RtrRsnInf", r.reason_code, r.reason_text)
