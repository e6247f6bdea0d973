"""pacs.008 FI to FI customer credit transfer: version 08 (CBPR+ and T2) and 13 (current).

Beyond what credit_transfer.py maps, a customer transfer carries:
  Dbtr, DbtrAcct / Cdtr, CdtrAcct   -> debtor / creditor Party (name, address, account)
  DbtrAgt, CdtrAgt                  -> debtor_agent, creditor_agent (BICFI)
  InstdAmt, XchgRate                -> instructed_amount_minor, instructed_currency, exchange_rate
  ChrgBr, ChrgsInf                  -> charge_bearer, charges (amount, currency, agent BIC)
Ultimate parties and the initiating party are refused (AG03): Payment has no place for them,
and dropping a party would hide it from screening.
"""

from __future__ import annotations

from lxml import etree

from scopay.domain.payment import ChargeBearer, Party, Payment
from scopay.iso20022.component import (
    AGENT,
    COMPONENTS_2019,
    COMPONENTS_2024,
    Components,
    add_account,
    add_agent,
    add_party,
)
from scopay.iso20022.credit_transfer import (
    GROUP_HEADER_2019,
    GROUP_HEADER_2024,
    TRANSACTION_READERS,
    CreditTransferVersion,
    add_purpose_and_remittance,
    add_route,
    add_transaction_head,
    build_credit_transfer,
    credit_transfer_version,
    read_credit_transfer,
    read_transaction_basics,
    remittance_shape,
    sender,
)
from scopay.iso20022.datatype import (
    RATE_DIGITS_MAX,
    RATE_FRACTION_DIGITS_MAX,
    add_amount,
    code_reader,
    format_decimal,
    read_amount,
    read_decimal,
)
from scopay.iso20022.document import open_document
from scopay.iso20022.model import CreditTransferMessage
from scopay.iso20022.shape import Fields, Shape, add, read_shape

PACS008_V08 = "pacs.008.001.08"
PACS008_V13 = "pacs.008.001.13"

_HEAD = "PmtId PmtTpInf? IntrBkSttlmAmt IntrBkSttlmDt? SttlmPrty? SttlmTmIndctn? SttlmTmReq?"
_ROUTE = ("PrvsInstgAgt1? PrvsInstgAgt1Acct? PrvsInstgAgt2? PrvsInstgAgt2Acct? PrvsInstgAgt3? "
          "PrvsInstgAgt3Acct? InstgAgt? InstdAgt? IntrmyAgt1? IntrmyAgt1Acct? IntrmyAgt2? "
          "IntrmyAgt2Acct? IntrmyAgt3? IntrmyAgt3Acct?")
_PARTIES = ("UltmtDbtr? InitgPty? Dbtr DbtrAcct? DbtrAgt DbtrAgtAcct? CdtrAgt CdtrAgtAcct? Cdtr "
            "CdtrAcct? UltmtCdtr? InstrForCdtrAgt* InstrForNxtAgt* Purp? RgltryRptg*10 Tax? "
            "RltdRmtInf*10 RmtInf? SplmtryData*")
_UNCARRIED_PARTIES = ("UltmtDbtr", "InitgPty", "UltmtCdtr")


def read_rate(element: etree._Element) -> object:
    return read_decimal(element, RATE_DIGITS_MAX, RATE_FRACTION_DIGITS_MAX)


def charge(fields: Fields, element: etree._Element) -> tuple[int, str, str]:
    amount, currency = fields["Amt"]
    return amount, currency, fields["Agt"]


def transaction_shape(name: str, children: str, components: Components,
                      refused: tuple[str, ...], remittance: Shape, charges: Shape) -> Shape:
    return Shape(
        name, children, refused=refused, **TRANSACTION_READERS,
        InstdAmt=read_amount, XchgRate=read_rate, ChrgBr=code_reader(ChargeBearer),
        ChrgsInf=charges, Dbtr=components.party, DbtrAcct=components.account,
        Cdtr=components.party, CdtrAcct=components.account, RmtInf=remittance,
    )


VERSIONS: dict[str, CreditTransferVersion] = {
    PACS008_V08: credit_transfer_version(
        PACS008_V08, "FIToFICstmrCdtTrf", COMPONENTS_2019, GROUP_HEADER_2019,
        transaction_shape(
            "CreditTransferTransaction39",
            f"{_HEAD} AccptncDtTm? PoolgAdjstmntDt? InstdAmt? XchgRate? ChrgBr ChrgsInf* "
            f"{_ROUTE} {_PARTIES}", COMPONENTS_2019, _UNCARRIED_PARTIES,
            remittance_shape("RemittanceInformation16", "Ustrd*1 Strd*"),
            Shape("Charges7", "Amt Agt", finish=charge, Amt=read_amount, Agt=AGENT)),
    ),
    PACS008_V13: credit_transfer_version(
        PACS008_V13, "FIToFICstmrCdtTrf", COMPONENTS_2024, GROUP_HEADER_2024,
        transaction_shape(
            "CreditTransferTransaction70",
            f"{_HEAD} AddtlDtTm? InstdAmt? XchgRate? AgrdRate? ChrgBr ChrgsInf* MndtRltdInf? "
            f"PmtSgntr? {_ROUTE} {_PARTIES}", COMPONENTS_2024, (*_UNCARRIED_PARTIES, "AgrdRate"),
            remittance_shape("RemittanceInformation22", "Ustrd*1 Strd*"),
            Shape("Charges16", "Amt Agt Tp?", finish=charge, Amt=read_amount, Agt=AGENT)),
    ),
}
MESSAGE_TYPES = tuple(VERSIONS)


def parse_pacs008(data: bytes) -> CreditTransferMessage:
    document, message_type = open_document(data, MESSAGE_TYPES)
    return read_pacs008(document, message_type)


def read_pacs008(document: etree._Element, message_type: str) -> CreditTransferMessage:
    return read_credit_transfer(document, VERSIONS[message_type], read_transaction)


def build_pacs008(message: CreditTransferMessage, message_type: str = PACS008_V08) -> bytes:
    return build_credit_transfer(message, VERSIONS[message_type], add_transaction)


def read_transaction(tx: etree._Element, version: CreditTransferVersion,
                     header: Fields) -> Payment:
    fields = read_shape(tx, version.transaction, version.ns)
    basics = read_transaction_basics(tx, fields, header)
    debtor_agent = fields["DbtrAgt"]
    debtor_name, debtor_address = fields["Dbtr"]
    creditor_name, creditor_address = fields["Cdtr"]
    instructed_minor, instructed_currency = fields.get("InstdAmt") or (None, None)
    return Payment(
        debtor_agent=debtor_agent,
        creditor_agent=fields["CdtrAgt"],
        debtor=Party(debtor_name, fields.get("DbtrAcct"), debtor_address),
        creditor=Party(creditor_name, fields.get("CdtrAcct"), creditor_address),
        instructed_amount_minor=instructed_minor,
        instructed_currency=instructed_currency,
        exchange_rate=fields.get("XchgRate"),
        charge_bearer=fields["ChrgBr"],
        charges=tuple(fields.get("ChrgsInf", ())),
        remittance=fields.get("RmtInf"),
        sender_bic=sender(fields, header, debtor_agent),
        **basics,
    )


def add_transaction(tx: etree._Element, payment: Payment, message: CreditTransferMessage,
                    version: CreditTransferVersion) -> None:
    add_transaction_head(tx, payment, message.created_at_us)
    add_instructed_amount(tx, payment)
    add(tx, "ChrgBr", payment.charge_bearer.value)
    for amount, currency, agent in payment.charges:
        element = add(tx, "ChrgsInf")
        add_amount(element, "Amt", amount, currency)
        add_agent(element, "Agt", agent)
    add_route(tx, payment)
    add_party(tx, "Dbtr", payment.debtor, version.components)
    if payment.debtor.account is not None:
        add_account(tx, "DbtrAcct", payment.debtor.account)
    add_agent(tx, "DbtrAgt", payment.debtor_agent)
    add_agent(tx, "CdtrAgt", payment.creditor_agent)
    add_party(tx, "Cdtr", payment.creditor, version.components)
    if payment.creditor.account is not None:
        add_account(tx, "CdtrAcct", payment.creditor.account)
    add_purpose_and_remittance(tx, payment)


def add_instructed_amount(tx: etree._Element, payment: Payment) -> None:
    if (payment.instructed_amount_minor is None) != (payment.instructed_currency is None):
        raise ValueError(f"payment {payment.uetr}: instructed amount needs its currency")
    if payment.instructed_amount_minor is not None:
        add_amount(tx, "InstdAmt", payment.instructed_amount_minor, payment.instructed_currency)
    if payment.exchange_rate is not None:
        add(tx, "XchgRate", format_decimal(payment.exchange_rate, RATE_DIGITS_MAX,
                                           RATE_FRACTION_DIGITS_MAX, "exchange rate"))
