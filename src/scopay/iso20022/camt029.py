"""camt.029.001.10 resolution of investigation: the answer to a camt.056 cancellation request.

Sts/Conf gives the case's outcome (CNCL cancelled, RJCR rejected, PDCR pending); CxlDtls holds
per transaction its TxCxlSts (ACCR, RJCR, PDCR) and, for a refusal, the reason (ISO
ExternalPaymentCancellationRejection1Code: ARDT already returned, LEGL, NOAS, NOOR, CUST ...).
Other investigation answers (modification, claim non-receipt, statement, corrective transaction)
are refused (AG03): scopay only resolves cancellations.
"""

from __future__ import annotations

from lxml import etree

from scopay.iso20022.codes import CancellationStatus, InvestigationConfirmation, ReasonCode
from scopay.iso20022.component import (
    ASSIGNMENT,
    CASE,
    ORIGINAL_GROUP,
    ORIGINAL_REFERENCE_READERS,
    REASON,
    add_assignment,
    add_case,
    add_original_references,
    add_reason,
    only_value,
    original_group_of,
)
from scopay.iso20022.datatype import add_amount, add_id, code_reader, read_amount, read_id
from scopay.iso20022.document import (
    message_element,
    new_document,
    open_document,
    qualified_namespace,
    serialize,
)
from scopay.iso20022.model import CancellationResolution, TransactionCancellationStatus
from scopay.iso20022.shape import Shape, add, keep_element, read_shape, refuse_below

CAMT029_V10 = "camt.029.001.10"
MESSAGE_TYPES = (CAMT029_V10,)
NS = qualified_namespace(CAMT029_V10)

RESOLUTION = Shape(
    "ResolutionOfInvestigationV10", "Assgnmt RslvdCase? Sts CxlDtls* ModDtls? ClmNonRctDtls? "
    "StmtDtls? CrrctnTx? RsltnRltdInf? SplmtryData*",
    refused=("ModDtls", "ClmNonRctDtls", "StmtDtls", "CrrctnTx"),
    Assgnmt=ASSIGNMENT, RslvdCase=CASE,
    Sts=Shape("InvestigationStatus5Choice", "Conf RjctdMod DplctOf AssgnmtCxlConf", choice=True,
              refused=("RjctdMod", "DplctOf", "AssgnmtCxlConf"), finish=only_value,
              Conf=code_reader(InvestigationConfirmation)),
    CxlDtls=Shape(
        "UnderlyingTransaction25", "OrgnlGrpInfAndSts? OrgnlPmtInfAndSts* TxInfAndSts*",
        refused=("OrgnlPmtInfAndSts",), TxInfAndSts=keep_element,
        OrgnlGrpInfAndSts=Shape(
            "OriginalGroupHeader14", "OrgnlGrpCxlId? RslvdCase? OrgnlMsgId OrgnlMsgNmId "
            "OrgnlCreDtTm? OrgnlNbOfTxs? OrgnlCtrlSum? GrpCxlSts? CxlStsRsnInf* "
            "NbOfTxsPerCxlSts*", finish=ORIGINAL_GROUP.finish, OrgnlMsgId=read_id,
            OrgnlMsgNmId=read_id)),
)
TRANSACTION = Shape(
    "PaymentTransaction127", "CxlStsId? RslvdCase? OrgnlGrpInf? OrgnlInstrId? OrgnlEndToEndId? "
    "OrgnlTxId? OrgnlClrSysRef? OrgnlUETR? TxCxlSts? CxlStsRsnInf*1 RsltnRltdInf? "
    "OrgnlIntrBkSttlmAmt? OrgnlIntrBkSttlmDt? Assgnr? Assgne? OrgnlTxRef?",
    **ORIGINAL_REFERENCE_READERS, CxlStsId=read_id, TxCxlSts=code_reader(CancellationStatus),
    CxlStsRsnInf=REASON, OrgnlIntrBkSttlmAmt=read_amount,
)


def parse_camt029(data: bytes) -> CancellationResolution:
    document, message_type = open_document(data, MESSAGE_TYPES)
    return read_camt029(document, message_type)


def read_camt029(document: etree._Element, message_type: str) -> CancellationResolution:
    fields = read_shape(message_element(document, "RsltnOfInvstgtn", NS), RESOLUTION, NS)
    statuses = tuple(
        read_status(tx, details.get("OrgnlGrpInfAndSts"))
        for details in fields.get("CxlDtls", ()) for tx in details.get("TxInfAndSts", ())
    )
    assignment = fields["Assgnmt"]
    return CancellationResolution(
        assignment_id=assignment["Id"], assigner=assignment["Assgnr"],
        assignee=assignment["Assgne"], created_at_us=assignment["CreDtTm"],
        confirmation=fields["Sts"], transactions=statuses,
        resolved_case=fields.get("RslvdCase"),
    )


def read_status(tx: etree._Element,
                default: tuple[str, str] | None) -> TransactionCancellationStatus:
    fields = read_shape(tx, TRANSACTION, NS)
    message_id, message_type = original_group_of(fields, default, tx)
    if "TxCxlSts" not in fields:
        refuse_below(tx, (), ReasonCode.INVALID_FILE_FORMAT, "TxInfAndSts lacks its TxCxlSts")
    code, text = fields.get("CxlStsRsnInf", [(None, None)])[0]
    amount, currency = fields.get("OrgnlIntrBkSttlmAmt") or (None, None)
    return TransactionCancellationStatus(
        original_message_id=message_id, original_message_type=message_type,
        status=fields["TxCxlSts"], cancellation_status_id=fields.get("CxlStsId"),
        original_uetr=fields.get("OrgnlUETR"),
        original_end_to_end_id=fields.get("OrgnlEndToEndId"),
        original_instruction_id=fields.get("OrgnlInstrId"), original_amount_minor=amount,
        original_currency=currency, reason_code=code, reason_text=text,
    )


def build_camt029(resolution: CancellationResolution) -> bytes:
    document, root = new_document(CAMT029_V10, "RsltnOfInvstgtn")
    add_assignment(root, resolution.assignment_id, resolution.assigner, resolution.assignee,
                   resolution.created_at_us)
    if resolution.resolved_case is not None:
        add_case(root, "RslvdCase", resolution.resolved_case)
    add(add(root, "Sts"), "Conf", resolution.confirmation.value)
    if resolution.transactions:
        details = add(root, "CxlDtls")
        for status in resolution.transactions:
            add_status(add(details, "TxInfAndSts"), status)
    return serialize(document)


def add_status(tx: etree._Element, status: TransactionCancellationStatus) -> None:
    s = status
    if s.cancellation_status_id is not None:
        add_id(tx, "CxlStsId", s.cancellation_status_id)
    add_original_references(tx, s.original_message_id, s.original_message_type,
                            s.original_instruction_id, s.original_end_to_end_id,
                            s.original_uetr)
    add(tx, "TxCxlSts", s.status.value)
    if s.reason_code is not None or s.reason_text is not None:
        add_reason(tx, "CxlStsRsnInf", s.reason_code, s.reason_text)
    if (s.original_amount_minor is None) != (s.original_currency is None):
        raise ValueError("a cancellation status's original amount needs its currency")
    if s.original_amount_minor is not None:
        add_amount(tx, "OrgnlIntrBkSttlmAmt", s.original_amount_minor, s.original_currency)
