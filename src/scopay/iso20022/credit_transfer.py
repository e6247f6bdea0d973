"""What pacs.008 and pacs.009 share: the group header, and the parts of a credit transfer
transaction that identify, value, time, prioritise and route it.

Mapping to the domain's Payment:
  PmtId/InstrId, EndToEndId, UETR        -> instruction_id, end_to_end_id, uetr (all required)
  IntrBkSttlmAmt                         -> settlement_amount_minor, settlement_currency
  SttlmPrty (URGT/HIGH/NORM)             -> priority (PmtTpInf/InstrPrty when SttlmPrty is absent)
  PmtTpInf/ClrChanl RTGS | MPNS, RTNS    -> settlement_method gross | net
  IntrBkSttlmDt + SttlmTmReq FrTm, TillTm, RjctTm -> earliest_us, latest_us, reject_by_us
  IntrBkSttlmDt after CreDtTm's UTC date -> earliest_us at least the start of that UTC day
  GrpHdr/XpryDtTm (pacs.008.001.13)      -> reject_by_us, when earlier than RjctTm
  InstgAgt (when not the debtor agent)   -> sender_bic (GrpHdr/InstgAgt when the transaction
                                            has none)
  IntrmyAgt1..3                          -> intermediary_agents
  Purp/Cd, RmtInf/Ustrd                  -> purpose, remittance
  GrpHdr/MsgId                           -> message_id
T2 and CBPR+ give settlement times as times of day on the settlement date, so scopay writes all
of a payment's times on one UTC date (IntrBkSttlmDt); without times it is the creation date.
A message whose times (value date and expiry folded in) fall on two UTC dates is therefore
refused (FF01) rather than accepted and then impossible to forward.
PmtTpInf and IntrBkSttlmDt in the group header apply to every transaction that lacks its own.
UETRs and instruction ids are unique within a message: a repeat refuses it whole (AM05).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from lxml import etree

from scopay.domain.money import CURRENCIES
from scopay.domain.payment import (
    TIME_RANGE_TEXT,
    Payment,
    Priority,
    in_time_range,
    on_one_date,
)
from scopay.domain.payment import SettlementMethod as ClearingChannel
from scopay.iso20022.codes import ReasonCode, SettlementMethod
from scopay.iso20022.component import AGENT, Components, add_agent, only_value
from scopay.iso20022.datatype import (
    AMOUNT_DIGITS_MAX,
    CONTROL_SUM_DIGITS_MAX,
    DAY_US,
    EPOCH_ORDINAL,
    NAME_LENGTH_MAX,
    add_amount,
    add_external_code,
    add_id,
    add_text,
    add_uetr,
    code_reader,
    date_of_us,
    decimal_rule,
    format_datetime_us,
    format_time_us,
    instant_us,
    read_amount,
    read_count,
    read_date,
    read_datetime_us,
    read_decimal,
    read_external_code,
    read_id,
    read_name,
    read_time,
    read_uetr,
)
from scopay.iso20022.document import (
    message_element,
    new_document,
    qualified_namespace,
    serialize,
)
from scopay.iso20022.model import (
    CreditTransferMessage,
    control_sum,
    new_credit_transfer_message,
)
from scopay.iso20022.pattern import (
    COMPACT,
    PROLOGUE,
    WHITE,
    Unreadable,
    code_rule,
    compile_element,
    compile_skipped,
    read_line_ends,
    text_rule,
)
from scopay.iso20022.shape import (
    Fields,
    Shape,
    add,
    keep_element,
    read_shape,
    refuse_at,
    refuse_below,
)

TRANSACTIONS_MAX = 10_000  # transactions in one pacs.008/pacs.009 message
NO_TIMES = (None, None, None)
INTERMEDIARY_AGENTS_MAX = 3  # IntrmyAgt1..3

_PRIORITY = {"URGT": Priority.URGENT, "HIGH": Priority.HIGH, "NORM": Priority.NORMAL}
_INSTRUCTION_PRIORITY = {"HIGH": Priority.HIGH, "NORM": Priority.NORMAL}
_SETTLEMENT_PRIORITY = {priority: code for code, priority in _PRIORITY.items()}
_CHANNEL = {"RTGS": ClearingChannel.GROSS, "MPNS": ClearingChannel.NET,
            "RTNS": ClearingChannel.NET}
_CHANNEL_CODE = {ClearingChannel.GROSS: "RTGS", ClearingChannel.NET: "MPNS"}
_INTERMEDIARIES = ("IntrmyAgt1", "IntrmyAgt2", "IntrmyAgt3")
_REIMBURSEMENT = ("InstgRmbrsmntAgt", "InstgRmbrsmntAgtAcct", "InstdRmbrsmntAgt",
                  "InstdRmbrsmntAgtAcct", "ThrdRmbrsmntAgt", "ThrdRmbrsmntAgtAcct")


def read_channel(element: etree._Element) -> ClearingChannel:
    channel = _CHANNEL.get(element.text or "")
    if channel is None or len(element):
        refuse_at(element, ReasonCode.TRANSACTION_NOT_SUPPORTED,
                  f"clearing channel {element.text!r}: scopay settles RTGS (gross) or "
                  "MPNS/RTNS (net)")
    return channel


def read_instruction_priority(element: etree._Element) -> Priority:
    if element.text not in ("HIGH", "NORM") or len(element):
        refuse_at(element, ReasonCode.INVALID_FILE_FORMAT, f"{element.text!r} is not HIGH or NORM")
    return _PRIORITY[element.text]


def read_settlement_priority(element: etree._Element) -> Priority:
    priority = _PRIORITY.get(element.text or "")
    if priority is None or len(element):
        refuse_at(element, ReasonCode.INVALID_FILE_FORMAT,
                  f"{element.text!r} is not URGT, HIGH or NORM")
    return priority


def read_control_sum(element: etree._Element) -> Decimal:
    return read_decimal(element, CONTROL_SUM_DIGITS_MAX)


text_rule(read_channel, *code_rule(_CHANNEL))
text_rule(read_instruction_priority, *code_rule(_INSTRUCTION_PRIORITY))
text_rule(read_settlement_priority, *code_rule(_PRIORITY))
decimal_rule(read_control_sum, CONTROL_SUM_DIGITS_MAX)


def remittance_shape(name: str, children: str) -> Shape:
    """RmtInf: scopay carries one unstructured line; structured remittance is refused."""
    refused = ("Strd",) if "Strd" in children else ()
    return Shape(name, children, refused=refused,
                 finish=lambda fields, _: fields["Ustrd"][0] if "Ustrd" in fields else None,
                 Ustrd=read_name)


PAYMENT_TYPE = Shape(
    "PaymentTypeInformation28", "InstrPrty? ClrChanl? SvcLvl* LclInstrm? CtgyPurp?",
    finish=lambda fields, _: (fields.get("InstrPrty"), fields.get("ClrChanl")),
    InstrPrty=read_instruction_priority, ClrChanl=read_channel,
)
SETTLEMENT_INSTRUCTION = Shape(
    "SettlementInstruction", "SttlmMtd SttlmAcct? ClrSys? " + "? ".join(_REIMBURSEMENT) + "?",
    refused=_REIMBURSEMENT, finish=lambda fields, _: fields["SttlmMtd"],
    SttlmMtd=code_reader(SettlementMethod))
GROUP_HEADER_READERS = {
    "MsgId": read_id, "CreDtTm": read_datetime_us, "NbOfTxs": read_count,
    "CtrlSum": read_control_sum, "TtlIntrBkSttlmAmt": read_amount, "IntrBkSttlmDt": read_date,
    "SttlmInf": SETTLEMENT_INSTRUCTION, "PmtTpInf": PAYMENT_TYPE, "InstgAgt": AGENT,
    "InstdAgt": AGENT,
}
GROUP_HEADER_2019 = Shape(
    "GroupHeader93", "MsgId CreDtTm BtchBookg? NbOfTxs CtrlSum? TtlIntrBkSttlmAmt? "
    "IntrBkSttlmDt? SttlmInf PmtTpInf? InstgAgt? InstdAgt?", **GROUP_HEADER_READERS)
GROUP_HEADER_2024 = Shape(
    "GroupHeader131", "MsgId CreDtTm XpryDtTm? BtchBookg? NbOfTxs CtrlSum? TtlIntrBkSttlmAmt? "
    "IntrBkSttlmDt? SttlmInf PmtTpInf? InstgAgt? InstdAgt?", XpryDtTm=read_datetime_us,
    **GROUP_HEADER_READERS)

# The transaction readers pacs.008 and pacs.009 share; each adds its own.
TRANSACTION_READERS = {
    "PmtId": Shape("PaymentIdentification", "InstrId? EndToEndId TxId? UETR? ClrSysRef?",
                   InstrId=read_id, EndToEndId=read_id, UETR=read_uetr),
    "PmtTpInf": PAYMENT_TYPE,
    "IntrBkSttlmAmt": read_amount,
    "IntrBkSttlmDt": read_date,
    "SttlmPrty": read_settlement_priority,
    "SttlmTmReq": Shape("SettlementTimeRequest2", "CLSTm? TillTm? FrTm? RjctTm?",
                        refused=("CLSTm",), TillTm=read_time, FrTm=read_time, RjctTm=read_time),
    "InstgAgt": AGENT, "InstdAgt": AGENT,
    "IntrmyAgt1": AGENT, "IntrmyAgt2": AGENT, "IntrmyAgt3": AGENT,
    "DbtrAgt": AGENT, "CdtrAgt": AGENT,
    "Purp": Shape("Purpose2Choice", "Cd Prtry", choice=True, refused=("Prtry",),
                  finish=only_value, Cd=read_external_code),
}


@dataclass(frozen=True, slots=True)
class CreditTransferVersion:
    """One version of pacs.008 or pacs.009: its namespace and the shapes it reads with."""

    message_type: str
    message_name: str  # the element under Document
    components: Components
    message: Shape  # group header and transactions, the latter handed on unread
    transaction: Shape
    ns: str  # qualified_namespace(message_type)
    message_tag: str  # the message element's qualified tag


def credit_transfer_version(message_type: str, message_name: str, components: Components,
                            group_header: Shape, transaction: Shape) -> CreditTransferVersion:
    message = Shape("CreditTransfer", "GrpHdr CdtTrfTxInf+ SplmtryData*",
                    GrpHdr=group_header, CdtTrfTxInf=keep_element)
    ns = qualified_namespace(message_type)
    return CreditTransferVersion(message_type, message_name, components, message, transaction,
                                 ns, ns + message_name)


TransactionReader = Callable[[etree._Element, CreditTransferVersion, Fields], Payment]


# Reading ---------------------------------------------------------------------------------

def read_credit_transfer(document: etree._Element, version: CreditTransferVersion,
                         read_transaction: TransactionReader) -> CreditTransferMessage:
    ns = version.ns
    root = message_element(document, version.message_name, ns)
    fields = read_shape(root, version.message, ns)
    header = fields["GrpHdr"]
    transactions = fields["CdtTrfTxInf"]
    check_count(root, header["NbOfTxs"], len(transactions))
    payments = tuple(read_transaction(tx, version, header) for tx in transactions)
    check_unique_ids(root, payments)
    check_sums(root, header, [(p.settlement_amount_minor, p.settlement_currency)
                              for p in payments], "TtlIntrBkSttlmAmt")
    return CreditTransferMessage(
        message_id=header["MsgId"], created_at_us=header["CreDtTm"], payments=payments,
        settlement_method=header["SttlmInf"],
    )


def check_count(root: etree._Element, declared: int, found: int) -> None:
    """NbOfTxs must count the transactions, and they must be within TRANSACTIONS_MAX."""
    if declared != found:
        refuse_below(root, ("GrpHdr", "NbOfTxs"), ReasonCode.INVALID_NUMBER_OF_TRANSACTIONS,
                     f"NbOfTxs says {declared} transactions; the message holds {found}")
    if found > TRANSACTIONS_MAX:
        refuse_below(root, ("GrpHdr", "NbOfTxs"), ReasonCode.INVALID_NUMBER_OF_TRANSACTIONS,
                     f"{found} transactions; scopay accepts at most {TRANSACTIONS_MAX} a message")


def check_unique_ids(root: etree._Element, payments: Sequence[Payment]) -> None:
    """No two transactions of one message share a UETR or an instruction id: the engine would
    settle the first and reject the second, carrying out half a malformed message."""
    if ids_unique(payments):
        return
    for name, key in (("UETR", "uetr"), ("InstrId", "instruction_id")):
        seen: set[str] = set()
        for payment in payments:
            value = getattr(payment, key)
            if value in seen:
                refuse_at(root, ReasonCode.DUPLICATION,
                          f"{name} {value!r} is given to two transactions of this message; "
                          "each transaction needs its own")
            seen.add(value)


def ids_unique(payments: Sequence[Payment]) -> bool:
    count = len(payments)
    return count < 2 or (len({p.uetr for p in payments}) == count
                         and len({p.instruction_id for p in payments}) == count)


def check_sums(root: etree._Element, header: Fields, amounts: list[tuple[int, str]],
               total_name: str) -> None:
    """CtrlSum and the total amount (`total_name`), when given, must be what the amounts add
    up to."""
    declared = header.get("CtrlSum")
    if declared is not None and declared != control_sum(amounts):
        refuse_below(root, ("GrpHdr", "CtrlSum"), ReasonCode.INVALID_CONTROL_SUM,
                     f"CtrlSum says {declared}; the transactions add up to "
                     f"{control_sum(amounts)}")
    total = header.get(total_name)
    if total is not None and (any(currency != total[1] for _, currency in amounts)
                              or total[0] != sum(minor for minor, _ in amounts)):
        refuse_below(root, ("GrpHdr", total_name), ReasonCode.INVALID_CONTROL_SUM,
                     f"{total_name} is not the sum of the transactions' amounts")


def add_group_totals(header: etree._Element, amounts: list[tuple[int, str]],
                     total_name: str) -> None:
    """NbOfTxs, then CtrlSum and (all amounts in one currency) the total amount when they fit
    their ISO types: both are optional checks a receiver can do without."""
    add(header, "NbOfTxs", str(len(amounts)))
    total = control_sum(amounts)
    if fits_decimal(total, CONTROL_SUM_DIGITS_MAX):
        add(header, "CtrlSum", format(total, "f"))
    currencies = {currency for _, currency in amounts}
    if len(currencies) == 1 and fits_decimal(total, AMOUNT_DIGITS_MAX):
        add_amount(header, total_name, sum(minor for minor, _ in amounts), currencies.pop())


def fits_decimal(value: Decimal, digits_max: int) -> bool:
    return len(format(value, "f").replace(".", "")) <= digits_max


def read_transaction_basics(tx: etree._Element, fields: Fields, header: Fields) -> dict:
    """Payment fields common to pacs.008 and pacs.009, as keyword arguments."""
    ids = fields["PmtId"]
    if "InstrId" not in ids or "UETR" not in ids:
        refuse_below(tx, ("PmtId",), ReasonCode.INVALID_FILE_FORMAT,
                     "PmtId lacks InstrId or UETR; scopay identifies payments by both")
    amount, currency = fields["IntrBkSttlmAmt"]
    if amount == 0:
        refuse_below(tx, ("IntrBkSttlmAmt",), ReasonCode.ZERO_AMOUNT, "settlement amount is zero")
    priority, channel = fields.get("PmtTpInf") or (None, None)
    group_priority, group_channel = header.get("PmtTpInf") or (None, None)
    earliest_us, latest_us, reject_by_us = settlement_times(tx, fields, header)
    return {
        "uetr": ids["UETR"],
        "instruction_id": ids["InstrId"],
        "end_to_end_id": ids["EndToEndId"],
        "settlement_amount_minor": amount,
        "settlement_currency": currency,
        "priority": fields.get("SttlmPrty") or priority or group_priority or Priority.NORMAL,
        "settlement_method": channel or group_channel or ClearingChannel.GROSS,
        "earliest_us": earliest_us,
        "latest_us": latest_us,
        "reject_by_us": reject_by_us,
        "message_id": header["MsgId"],
        "intermediary_agents": intermediaries(tx, fields),
        "purpose": fields.get("Purp"),
    }


def settlement_times(tx: etree._Element, fields: Fields,
                     header: Fields) -> tuple[int | None, int | None, int | None]:
    """(earliest, latest, reject-by) in microseconds, from times on the settlement date, the
    settlement date itself and the message's expiry (payment_times)."""
    times = fields.get("SttlmTmReq")
    day = fields.get("IntrBkSttlmDt") or header.get("IntrBkSttlmDt")
    if day is not None and day < created_date(header["CreDtTm"]):
        refuse_below(tx, ("IntrBkSttlmDt",), ReasonCode.INVALID_DATE,
                     f"IntrBkSttlmDt {day.isoformat()} is before the message was created "
                     f"({format_datetime_us(header['CreDtTm'])}): a payment settles on the "
                     "day it is sent or later")
    moments = NO_TIMES
    if times is not None:
        if day is None:
            refuse_below(tx, ("SttlmTmReq",), ReasonCode.INVALID_FILE_FORMAT,
                         "SttlmTmReq needs IntrBkSttlmDt: a time of day names no instant alone")
        moments = tuple(None if times.get(name) is None else instant_us(day, times[name])
                        for name in ("FrTm", "TillTm", "RjctTm"))
    moments = payment_times(moments, day, header["CreDtTm"], header.get("XpryDtTm"))
    if not in_time_range(moments):
        refuse_below(tx, ("SttlmTmReq",), ReasonCode.INVALID_FILE_FORMAT,
                     f"{TIME_RANGE_TEXT}: check the settlement times, settlement date "
                     "and expiry")
    if not on_one_date(moments):
        refuse_below(tx, ("SttlmTmReq",), ReasonCode.INVALID_FILE_FORMAT,
                     "settlement times, settlement date and expiry fall on two UTC dates "
                     f"({', '.join(format_datetime_us(m) for m in moments if m is not None)}): "
                     "scopay carries a payment's times on one UTC settlement date; give them "
                     "on one")
    return moments


def created_date(created_at_us: int) -> date:
    """The UTC date of a message's CreDtTm (the first date there is, before it)."""
    try:
        return date_of_us(created_at_us)
    except ValueError:  # before year 1: any settlement date is after it
        return date.min


def payment_times(times: tuple[int | None, int | None, int | None], day: date | None,
                  created_at_us: int, expiry_us: int | None
                  ) -> tuple[int | None, int | None, int | None]:
    """(earliest, latest, reject-by) with the settlement date and the message's expiry folded
    in: a settlement date after the creation's UTC date holds the payment until that UTC day
    starts (value dating); an expiry earlier than the reject-by time becomes it. `times`
    itself when neither changes it."""
    earliest, latest, reject_by = times
    if day is not None:
        start_us = (day.toordinal() - EPOCH_ORDINAL) * DAY_US
        if start_us > created_at_us and (earliest is None or earliest < start_us):
            times = earliest, latest, reject_by = start_us, latest, reject_by
    if expiry_us is not None and (reject_by is None or expiry_us < reject_by):
        times = earliest, latest, expiry_us
    return times


def intermediaries(tx: etree._Element, fields: Fields) -> tuple[str, ...]:
    agents = [fields.get(name) for name in _INTERMEDIARIES]
    present = [agent for agent in agents if agent is not None]
    if agents[:len(present)] != present:
        refuse_at(tx, ReasonCode.INVALID_FILE_FORMAT,
                  "intermediary agents must be numbered from IntrmyAgt1 without gaps")
    return tuple(present)


def sender(fields: Fields, header: Fields, debtor_agent: str) -> str | None:
    """The instructing agent (the transaction's, else the group's, as T2 gives it), kept only
    when it is not the debtor agent itself."""
    instructing = fields.get("InstgAgt") or header.get("InstgAgt")
    return None if instructing == debtor_agent else instructing


# Reading from the text (pattern.py) ---------------------------------------------------------

def agent_paths(*path: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The paths of an agent (AGENT): its presence, and its BICFI."""
    return path, (*path, "FinInstnId", "BICFI")


PREFIXES_MAX = 4  # tag prefixes per version with compiled expressions (most messages use none)


class TextReading:
    """A credit transfer version's expressions for messages whose tags carry one prefix and
    that hold `white` between elements (pattern.WHITE, or COMPACT: nothing), and where the
    values the mapping needs sit in what they read."""

    # The transaction values every credit transfer maps, in the order `fields` gives them;
    # an agent gives two values, presence and BICFI.
    BASICS = (
        ("PmtId", "InstrId"), ("PmtId", "EndToEndId"), ("PmtId", "UETR"), ("IntrBkSttlmAmt",),
        ("PmtTpInf", "InstrPrty"), ("PmtTpInf", "ClrChanl"), ("IntrBkSttlmDt",),
        ("SttlmPrty",), ("SttlmTmReq",), ("Purp", "Cd"), *agent_paths("InstgAgt"),
        *agent_paths("InstdAgt"), *agent_paths("IntrmyAgt1"), *agent_paths("IntrmyAgt2"),
        *agent_paths("IntrmyAgt3"), *agent_paths("DbtrAgt"), *agent_paths("CdtrAgt"))
    MAPPED: tuple = ()  # what a message type maps besides, after BASICS
    MARKED: tuple = ()  # components whose presence it reads elsewhere (repetitions)

    HEADER = (("MsgId",), ("CreDtTm",), ("NbOfTxs",), ("CtrlSum",), ("TtlIntrBkSttlmAmt",),
              ("IntrBkSttlmDt",), ("SttlmInf", "SttlmMtd"), ("PmtTpInf", "InstrPrty"),
              ("PmtTpInf", "ClrChanl"), *agent_paths("InstgAgt"), *agent_paths("InstdAgt"))
    TIMES = (("SttlmTmReq", "FrTm"), ("SttlmTmReq", "TillTm"), ("SttlmTmReq", "RjctTm"))  # last

    def __init__(self, version: CreditTransferVersion, prefix: str, white: str,
                 strict: bool) -> None:
        message_tag = re.escape(prefix + version.message_name)
        group_header = version.message.readers["GrpHdr"]
        # XpryDtTm (pacs.008.001.13 on) last, where the version has it.
        self.header_paths = self.HEADER + (
            (("XpryDtTm",),) if "XpryDtTm" in group_header.readers else ())
        self.head = compile_element("GrpHdr", group_header, prefix, 3,
                                    before=f"{PROLOGUE}<{message_tag}>{WHITE}<",
                                    markers=self.header_paths, white=white, strict=strict)
        fields = (*self.BASICS, *self.MAPPED)
        self.transaction = compile_element("CdtTrfTxInf", version.transaction, prefix, 3,
                                           markers=(*fields, *self.MARKED), white=white,
                                           strict=strict)
        skipped = compile_skipped("SplmtryData", prefix, 3, white, strict)
        self.tail = re.compile(f"(?:{skipped})*+/{message_tag}>")
        self._header = self.head.picker(*self.header_paths)
        self._control_sum = self.head.index("CtrlSum")
        # What read_transaction gets, in this order.
        self.pick_fields = self.transaction.picker(*fields, *self.TIMES)

    def read_header(self, groups: tuple, escaped: bool) -> tuple:
        """(MsgId, CreDtTm, NbOfTxs, CtrlSum, TtlIntrBkSttlmAmt, IntrBkSttlmDt, SttlmMtd,
        InstrPrty, ClrChanl, InstgAgt, XpryDtTm) of the group header, checked, then the UTC
        date of CreDtTm (a later settlement date is a value date, payment_times) and last
        CtrlSum as written (a plain decimal, for sums_agree)."""
        values = self._header(groups, escaped)
        (message_id, created_at_us, count, control, total, day, method, priority, channel,
         instructing, instructing_bic, instructed, instructed_bic) = values[:13]
        agent_text(instructed, instructed_bic)
        try:
            created_on = date_of_us(created_at_us)
        except ValueError:  # a UTC date before year 1 or after 9999: left to the tree reader
            raise Unreadable from None
        return (message_id, created_at_us, count, control, total, day, method, priority,
                channel, agent_text(instructing, instructing_bic),
                values[13] if len(values) > 13 else None, created_on, groups[self._control_sum])


def agent_text(present: bool | None, bic: str | None) -> str | None:
    """agent_bic's rule: a present agent must be identified by BICFI."""
    if present is None:
        return None
    if bic is None:
        raise Unreadable
    return bic


_readings: dict[tuple[str, str | None, str, bool], TextReading] = {}
_readings_lock = threading.Lock()
# (message type, tag prefix) of messages the tree reader accepted: a prefix gets expressions
# (compiling them takes a fraction of a second) only once a message written with it was
# accepted, so refused messages with made-up prefixes neither cost that nor take the slots.
_accepted_prefixes: set[tuple[str, str]] = set()


def accepted_prefix(version: CreditTransferVersion, prefix: str | None) -> None:
    """A message of the version with tags of this prefix was read and accepted."""
    if prefix is not None:
        _accepted_prefixes.add((version.message_type, prefix))


def text_reading(version: CreditTransferVersion, prefix: str | None,
                 reading: type[TextReading] = TextReading, white: str = WHITE,
                 strict: bool = False) -> TextReading | None:
    """The expressions of a version for a tag prefix and what lies between elements, compiled
    on first use; None (read from the tree) for a prefix no message accepted before had, and
    beyond PREFIXES_MAX prefixes. `strict`: skipped subtrees with no namespace of their own
    (pattern.any_element), for a parse that did not report namespace errors."""
    key = (version.message_type, prefix, white, strict)
    compiled = _readings.get(key)
    if compiled is None:
        if prefix is not None and (version.message_type, prefix) not in _accepted_prefixes:
            return None
        with _readings_lock:
            compiled = _readings.get(key)
            if compiled is None:
                prefixes = {known for message_type, known, _, _ in _readings
                            if message_type == version.message_type}
                if prefix not in prefixes and len(prefixes) >= PREFIXES_MAX:
                    return None
                compiled = _readings[key] = reading(
                    version, "" if prefix is None else prefix + ":", white, strict)
    return compiled


TextTransactionReader = Callable[[tuple, TextReading, tuple], Payment]


def read_credit_transfer_text(data: bytes, document: etree._Element,
                              version: CreditTransferVersion, reading_type: type[TextReading],
                              read_transaction: TextTransactionReader
                              ) -> CreditTransferMessage | None:
    """The message read from its text by the version's expressions (pattern.py), or None when
    they do not take it all and it is to be read from its tree."""
    if len(document) != 1 or (root := document[0]).tag != version.message_tag:
        return None  # the tree reader refuses it
    return read_message_text(data, root.prefix, version, reading_type, read_transaction)


def read_message_text(data: bytes, prefix: str | None, version: CreditTransferVersion,
                      reading_type: type[TextReading], read_transaction: TextTransactionReader,
                      namespaces_unchecked: bool = False) -> CreditTransferMessage | None:
    """read_credit_transfer_text of bytes whose root is the version's Document and holds
    one message element, with tags of `prefix` (None: unprefixed), as a parse proved.
    `namespaces_unchecked`: the parse did not report namespace errors (an unprefixed
    Document, document.validated_type), so the expressions take no skipped subtree with a
    namespace of its own (strict) and must take the text to its end, where nothing but white
    space may follow the message element and the root's end tag."""
    assert not (namespaces_unchecked and prefix is not None), "only an unprefixed Document"
    try:
        text = read_line_ends(data.decode("utf-8"))
    except UnicodeDecodeError:
        return None
    # Compact texts are taken by the shorter expressions without white space, anything else
    # by those with it (which take what the former take, alike).
    for white in (COMPACT, WHITE):
        reading = text_reading(version, prefix, reading_type, white, namespaces_unchecked)
        if reading is None:
            return None
        matched = match_message(text, reading)
        if matched is not None:
            break
    else:
        return None
    head, found, end = matched
    if namespaces_unchecked and _ROOT_END.fullmatch(text, end) is None:
        return None
    escaped = "&" in text
    try:
        header = reading.read_header(head.groups(), escaped)
        if header[2] != len(found) or not 0 < len(found) <= TRANSACTIONS_MAX:
            return None
        payments = [read_transaction(values, reading, header)
                    for values in reading.transaction.rows_of(found, escaped,
                                                              reading.pick_fields)]
        if (not sums_agree(header[3], header[12], header[4], payments)
                or not ids_unique(payments)):
            return None  # the tree reader refuses it
    except Unreadable:
        return None
    return new_credit_transfer_message(header[0], header[1], tuple(payments), header[6], None)


# What may follow an unprefixed message element to the end of the text.
_ROOT_END = re.compile(r"[ \t\r\n]*+</Document[ \t\r\n]*+>[ \t\r\n]*+")


def match_message(text: str, reading: TextReading
                  ) -> tuple[re.Match, list[tuple], int] | None:
    """The group header's match, each transaction's groups (matched first, converted and
    mapped next) and where the message element ends, when the reading's expressions take the
    whole message element."""
    head = reading.head.pattern.match(text)
    if head is None:
        return None
    match = reading.transaction.pattern.match
    position = head.end()
    found = []
    while (transaction := match(text, position)) is not None:
        found.append(transaction.groups())
        position = transaction.end()
    tail = reading.tail.match(text, position)
    if tail is None:
        return None
    return head, found, tail.end()


def sums_agree(declared: Decimal | None, written: str | None, total: tuple[int, str] | None,
               payments: list[Payment]) -> bool:
    """check_sums's rules, on sums per currency (exact, as control_sum is); `written` is the
    declared CtrlSum as its text rule took it (digits, perhaps a point and more digits)."""
    currency = payments[0].settlement_currency
    minor = 0
    for payment in payments:
        if payment.settlement_currency != currency:
            return total is None and (declared is None or declared == control_sum(
                [(other.settlement_amount_minor, other.settlement_currency)
                 for other in payments]))
        minor += payment.settlement_amount_minor
    # The usual case, one currency: both sums as integers, exactly.
    if declared is not None:
        whole, _, fraction = written.partition(".")
        if (int(whole + fraction) * 10 ** CURRENCIES[currency].minor_units
                != minor * 10 ** len(fraction)):
            return False
    return total is None or total == (minor, currency)


def settlement_times_text(times: Sequence | None, day: date | None, header: tuple
                          ) -> tuple[int | None, int | None, int | None]:
    """settlement_times from the checked FrTm, TillTm and RjctTm of a transaction (None: it
    has no SttlmTmReq) and its own IntrBkSttlmDt."""
    day = day or header[5]
    if day is not None and day < header[11]:  # before the message's creation: refused
        raise Unreadable
    moments = NO_TIMES
    if times is not None:
        if day is None:
            raise Unreadable
        moments = tuple(None if clock is None else instant_us(day, clock) for clock in times)
    moments = payment_times(moments, day, header[1], header[10])
    if moments is not NO_TIMES and not (on_one_date(moments) and in_time_range(moments)):
        raise Unreadable  # the tree reader names the refusal
    return moments


def intermediaries_text(agent1: str | None, bic1: str | None, agent2: str | None,
                        bic2: str | None, agent3: str | None, bic3: str | None
                        ) -> tuple[str, ...]:
    """intermediaries' rule: IntrmyAgt1..3 numbered without gaps, each with its BICFI."""
    agents = [agent_text(agent1, bic1), agent_text(agent2, bic2), agent_text(agent3, bic3)]
    present = [agent for agent in agents if agent is not None]
    if agents[:len(present)] != present:
        raise Unreadable
    return tuple(present)


# Writing ---------------------------------------------------------------------------------

def build_credit_transfer(message: CreditTransferMessage, version: CreditTransferVersion,
                          add_transaction: Callable[..., None]) -> bytes:
    check_group(message)
    document, root = new_document(version.message_type, version.message_name)
    add_group_header(root, message)
    for payment in message.payments:
        add_transaction(add(root, "CdtTrfTxInf"), payment, message, version)
    return serialize(document)


def check_group(message: CreditTransferMessage) -> None:
    if not 1 <= len(message.payments) <= TRANSACTIONS_MAX:
        raise ValueError(f"a credit transfer message holds 1 to {TRANSACTIONS_MAX} payments")
    for payment in message.payments:
        if payment.message_id not in (None, message.message_id):
            raise ValueError(f"payment {payment.uetr} belongs to message {payment.message_id}, "
                             f"not {message.message_id}")
    if not ids_unique(message.payments):
        raise ValueError("the payments of one message need distinct UETRs and instruction ids")


def add_group_header(root: etree._Element, message: CreditTransferMessage) -> None:
    header = add(root, "GrpHdr")
    add_id(header, "MsgId", message.message_id)
    add(header, "CreDtTm", format_datetime_us(message.created_at_us))
    add_group_totals(header, [(p.settlement_amount_minor, p.settlement_currency)
                              for p in message.payments], "TtlIntrBkSttlmAmt")
    add(add(header, "SttlmInf"), "SttlmMtd", message.settlement_method.value)


def add_transaction_head(tx: etree._Element, payment: Payment, created_at_us: int) -> None:
    """PmtId to SttlmTmReq, in ISO order."""
    ids = add(tx, "PmtId")
    add_id(ids, "InstrId", payment.instruction_id)
    add_id(ids, "EndToEndId", payment.end_to_end_id)
    add_uetr(ids, "UETR", payment.uetr)
    add(add(tx, "PmtTpInf"), "ClrChanl", _CHANNEL_CODE[payment.settlement_method])
    if payment.settlement_amount_minor <= 0:
        raise ValueError(f"payment {payment.uetr}: settlement amount must be positive")
    add_amount(tx, "IntrBkSttlmAmt", payment.settlement_amount_minor,
               payment.settlement_currency)
    add(tx, "IntrBkSttlmDt", settlement_date(payment, created_at_us).isoformat())
    add(tx, "SttlmPrty", _SETTLEMENT_PRIORITY[payment.priority])
    times = (("TillTm", payment.latest_us), ("FrTm", payment.earliest_us),
             ("RjctTm", payment.reject_by_us))
    if any(moment is not None for _, moment in times):
        request = add(tx, "SttlmTmReq")
        for name, moment in times:
            if moment is not None:
                add(request, name, format_time_us(moment))


def settlement_date(payment: Payment, created_at_us: int) -> date:
    moments = [m for m in (payment.earliest_us, payment.latest_us, payment.reject_by_us)
               if m is not None]
    day = date_of_us(moments[0] if moments else created_at_us)
    if any(date_of_us(moment) != day for moment in moments):
        raise ValueError(f"payment {payment.uetr}: earliest, latest and reject-by times must "
                         "fall on one UTC date (ISO gives them as times of the settlement date)")
    return day


def add_route(tx: etree._Element, payment: Payment, instructed: str | None = None) -> None:
    """InstgAgt, InstdAgt and IntrmyAgt1..3: who sends, who receives (`instructed`, else the
    next agent on the payment's route), who is in between."""
    if len(payment.intermediary_agents) > INTERMEDIARY_AGENTS_MAX:
        raise ValueError(f"at most {INTERMEDIARY_AGENTS_MAX} intermediary agents")
    add_agent(tx, "InstgAgt", payment.sender_bic or payment.debtor_agent)
    next_agent = instructed or (payment.intermediary_agents or (payment.creditor_agent,))[0]
    add_agent(tx, "InstdAgt", next_agent)
    for name, bic in zip(_INTERMEDIARIES, payment.intermediary_agents, strict=False):
        add_agent(tx, name, bic)


def add_purpose_and_remittance(tx: etree._Element, payment: Payment) -> None:
    if payment.purpose is not None:
        add_external_code(add(tx, "Purp"), "Cd", payment.purpose)
    if payment.remittance is not None:
        add_text(add(tx, "RmtInf"), "Ustrd", payment.remittance, NAME_LENGTH_MAX)
