"""camt.056.001.09 FI to FI payment cancellation request: an agent asks to cancel payments.

CBPR+ shape: Assgnmt (assigner and assignee agents), then Undrlyg/TxInf per transaction with its
Case, OrgnlGrpInf, original ids and amount, and one cancellation reason (ISO
ExternalCancellationReason1Code: DUPL, FRAD, TECH, CUST, AGNT ...). A Case at message level
applies to transactions without their own. CtrlData/NbOfTxs, when present, must count the
transactions and CtrlSum add up their original amounts. Cancelling a whole original group
(OrgnlGrpInfAndCxl) is refused (AG03): scopay cancels transactions.
"""

from __future__ import annotations

from lxml import etree

from scopay.iso20022.codes import ReasonCode
from scopay.iso20022.component import (
    ASSIGNMENT,
    CASE,
    ORIGINAL_REFERENCE_READERS,
    REASON,
    add_assignment,
    add_case,
    add_original_references,
    add_reason,
    original_group_of,
)
from scopay.iso20022.credit_transfer import read_control_sum
from scopay.iso20022.datatype import add_amount, add_id, read_amount, read_count, read_date, read_id
from scopay.iso20022.document import (
    message_element,
    new_document,
    open_document,
    qualified_namespace,
    serialize,
)
from scopay.iso20022.model import CancellationRequest, Case, TransactionCancellation, control_sum
from scopay.iso20022.shape import Fields, Shape, add, keep_element, read_shape, refuse_below

CAMT056_V09 = "camt.056.001.09"
MESSAGE_TYPES = (CAMT056_V09,)
NS = qualified_namespace(CAMT056_V09)

REQUEST = Shape(
    "FIToFIPaymentCancellationRequestV09", "Assgnmt Case? CtrlData? Undrlyg+ SplmtryData*",
    Assgnmt=ASSIGNMENT, Case=CASE,
    CtrlData=Shape("ControlData1", "NbOfTxs CtrlSum?", NbOfTxs=read_count,
                   CtrlSum=read_control_sum),
    Undrlyg=Shape("UnderlyingTransaction26", "OrgnlGrpInfAndCxl? TxInf*",
                  refused=("OrgnlGrpInfAndCxl",), TxInf=keep_element),
)
TRANSACTION = Shape(
    "PaymentTransaction120", "CxlId? Case? OrgnlGrpInf? OrgnlInstrId? OrgnlEndToEndId? "
    "OrgnlTxId? OrgnlUETR? OrgnlClrSysRef? OrgnlIntrBkSttlmAmt? OrgnlIntrBkSttlmDt? Assgnr? "
    "Assgne? CxlRsnInf*1 OrgnlTxRef? SplmtryData*",
    **ORIGINAL_REFERENCE_READERS, CxlId=read_id, Case=CASE, OrgnlIntrBkSttlmAmt=read_amount,
    OrgnlIntrBkSttlmDt=read_date, CxlRsnInf=REASON,
)


def parse_camt056(data: bytes) -> CancellationRequest:
    document, message_type = open_document(data, MESSAGE_TYPES)
    return read_camt056(document, message_type)


def read_camt056(document: etree._Element, message_type: str) -> CancellationRequest:
    root = message_element(document, "FIToFIPmtCxlReq", NS)
    fields = read_shape(root, REQUEST, NS)
    transactions = [tx for underlying in fields["Undrlyg"] for tx in underlying.get("TxInf", ())]
    if not transactions:
        refuse_below(root, ("Undrlyg",), ReasonCode.INVALID_FILE_FORMAT,
                     "Undrlyg names no transaction (TxInf) to cancel")
    cancellations = tuple(read_cancellation(tx, fields.get("Case")) for tx in transactions)
    check_control_data(root, fields.get("CtrlData"), cancellations)
    uetrs = [c.original_uetr for c in cancellations if c.original_uetr is not None]
    if len(set(uetrs)) != len(uetrs):  # one answer per payment: a repeat has none of its own
        refuse_below(root, ("Undrlyg",), ReasonCode.DUPLICATION,
                     "the request names one payment (OrgnlUETR) in two transactions")
    assignment = fields["Assgnmt"]
    return CancellationRequest(
        assignment_id=assignment["Id"], assigner=assignment["Assgnr"],
        assignee=assignment["Assgne"], created_at_us=assignment["CreDtTm"],
        transactions=cancellations,
    )


def check_control_data(root: etree._Element, control: Fields | None,
                       cancellations: tuple[TransactionCancellation, ...]) -> None:
    if control is None:
        return
    if control["NbOfTxs"] != len(cancellations):
        refuse_below(root, ("CtrlData", "NbOfTxs"), ReasonCode.INVALID_NUMBER_OF_TRANSACTIONS,
                     f"NbOfTxs says {control['NbOfTxs']}; the request names "
                     f"{len(cancellations)} transactions")
    declared = control.get("CtrlSum")
    amounts = [(c.original_amount_minor, c.original_currency) for c in cancellations
               if c.original_amount_minor is not None]
    if declared is not None and declared != control_sum(amounts):
        refuse_below(root, ("CtrlData", "CtrlSum"), ReasonCode.INVALID_CONTROL_SUM,
                     f"CtrlSum says {declared}; the original amounts add up to "
                     f"{control_sum(amounts)}")


def read_cancellation(tx: etree._Element, default_case: Case | None) -> TransactionCancellation:
    fields = read_shape(tx, TRANSACTION, NS)
    message_id, message_type = original_group_of(fields, None, tx)
    code, text = fields.get("CxlRsnInf", [(None, None)])[0]
    if code is None:
        refuse_below(tx, ("CxlRsnInf",), ReasonCode.INVALID_FILE_FORMAT,
                     "a cancellation needs its reason code (CxlRsnInf/Rsn/Cd)")
    amount, currency = fields.get("OrgnlIntrBkSttlmAmt") or (None, None)
    return TransactionCancellation(
        original_message_id=message_id, original_message_type=message_type, reason_code=code,
        cancellation_id=fields.get("CxlId"), original_uetr=fields.get("OrgnlUETR"),
        original_end_to_end_id=fields.get("OrgnlEndToEndId"),
        original_instruction_id=fields.get("OrgnlInstrId"), original_amount_minor=amount,
        original_currency=currency, original_settlement_date=fields.get("OrgnlIntrBkSttlmDt"),
        reason_text=text, case=fields.get("Case") or default_case,
    )


def build_camt056(request: CancellationRequest) -> bytes:
    if not request.transactions:
        raise ValueError("a cancellation request names at least one transaction")
    document, root = new_document(CAMT056_V09, "FIToFIPmtCxlReq")
    add_assignment(root, request.assignment_id, request.assigner, request.assignee,
                   request.created_at_us)
    add(add(root, "CtrlData"), "NbOfTxs", str(len(request.transactions)))
    underlying = add(root, "Undrlyg")
    for cancellation in request.transactions:
        add_cancellation(add(underlying, "TxInf"), cancellation)
    return serialize(document)


def add_cancellation(tx: etree._Element, cancellation: TransactionCancellation) -> None:
    c = cancellation
    if c.cancellation_id is not None:
        add_id(tx, "CxlId", c.cancellation_id)
    if c.case is not None:
        add_case(tx, "Case", c.case)
    add_original_references(tx, c.original_message_id, c.original_message_type,
                            c.original_instruction_id, c.original_end_to_end_id,
                            c.original_uetr)
    if (c.original_amount_minor is None) != (c.original_currency is None):
        raise ValueError("a cancellation's original amount needs its currency")
    if c.original_amount_minor is not None:
        add_amount(tx, "OrgnlIntrBkSttlmAmt", c.original_amount_minor, c.original_currency)
    if c.original_settlement_date is not None:
        add(tx, "OrgnlIntrBkSttlmDt", c.original_settlement_date.isoformat())
    add_reason(tx, "CxlRsnInf", c.reason_code, c.reason_text)
