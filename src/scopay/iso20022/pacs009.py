"""pacs.009.001.08 financial institution credit transfer (core): bank-to-bank transfers, FX legs
and liquidity transfers.

Debtor and creditor are institutions. Payment keeps them as parties, with the BIC in the agent:
  Dbtr/FinInstnId BICFI, Nm, PstlAdr + DbtrAcct -> debtor_agent, debtor Party (name, address,
                                                   account); a Dbtr without Nm is named by BIC
  Cdtr likewise                                 -> creditor_agent, creditor Party
  DbtrAgt / CdtrAgt, when present               -> must be the Dbtr / Cdtr itself: Payment has no
                                                   place for an institution served by another
Cover payments (UndrlygCstmrCdtTrf) and ultimate parties are refused (AG03). A pacs.009 has no
instructed amount, exchange rate or charges; building one from a Payment carrying them fails.
"""

from __future__ import annotations

from lxml import etree

from scopay.domain.payment import ChargeBearer, Party, Payment
from scopay.iso20022.codes import ReasonCode
from scopay.iso20022.component import COMPONENTS_2019, add_account, add_institution
from scopay.iso20022.credit_transfer import (
    GROUP_HEADER_2019,
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
from scopay.iso20022.document import open_document
from scopay.iso20022.model import CreditTransferMessage
from scopay.iso20022.shape import Fields, Shape, read_shape, refuse_below

PACS009_V08 = "pacs.009.001.08"

_TRANSACTION = (
    "PmtId PmtTpInf? IntrBkSttlmAmt IntrBkSttlmDt? SttlmPrty? SttlmTmIndctn? SttlmTmReq? "
    "PrvsInstgAgt1? PrvsInstgAgt1Acct? PrvsInstgAgt2? PrvsInstgAgt2Acct? PrvsInstgAgt3? "
    "PrvsInstgAgt3Acct? InstgAgt? InstdAgt? IntrmyAgt1? IntrmyAgt1Acct? IntrmyAgt2? "
    "IntrmyAgt2Acct? IntrmyAgt3? IntrmyAgt3Acct? UltmtDbtr? Dbtr DbtrAcct? DbtrAgt? DbtrAgtAcct? "
    "CdtrAgt? CdtrAgtAcct? Cdtr CdtrAcct? UltmtCdtr? InstrForCdtrAgt* InstrForNxtAgt* Purp? "
    "RmtInf? UndrlygCstmrCdtTrf? SplmtryData*"
)
VERSION = credit_transfer_version(
    PACS009_V08, "FICdtTrf", COMPONENTS_2019, GROUP_HEADER_2019,
    Shape("CreditTransferTransaction36", _TRANSACTION,
          refused=("UltmtDbtr", "UltmtCdtr", "UndrlygCstmrCdtTrf"), **TRANSACTION_READERS,
          Dbtr=COMPONENTS_2019.institution_party, DbtrAcct=COMPONENTS_2019.account,
          Cdtr=COMPONENTS_2019.institution_party, CdtrAcct=COMPONENTS_2019.account,
          RmtInf=remittance_shape("RemittanceInformation2", "Ustrd*1")),
)
MESSAGE_TYPES = (PACS009_V08,)


def parse_pacs009(data: bytes) -> CreditTransferMessage:
    document, message_type = open_document(data, MESSAGE_TYPES)
    return read_pacs009(document, message_type)


def read_pacs009(document: etree._Element, message_type: str) -> CreditTransferMessage:
    return read_credit_transfer(document, VERSION, read_transaction)


def build_pacs009(message: CreditTransferMessage) -> bytes:
    return build_credit_transfer(message, VERSION, add_transaction)


def read_transaction(tx: etree._Element, version: CreditTransferVersion,
                     header: Fields) -> Payment:
    fields = read_shape(tx, version.transaction, version.ns)
    basics = read_transaction_basics(tx, fields, header)
    debtor_agent, debtor = institution(tx, fields, "Dbtr", "DbtrAgt", "DbtrAcct")
    creditor_agent, creditor = institution(tx, fields, "Cdtr", "CdtrAgt", "CdtrAcct")
    return Payment(
        debtor_agent=debtor_agent, creditor_agent=creditor_agent, debtor=debtor,
        creditor=creditor, remittance=fields.get("RmtInf"),
        sender_bic=sender(fields, header, debtor_agent), **basics,
    )


def institution(tx: etree._Element, fields: Fields, party: str, agent: str,
                account: str) -> tuple[str, Party]:
    """(BIC, Party) of the debtor or creditor institution."""
    bic, name, address = fields[party]
    served_by = fields.get(agent)
    if served_by is not None and served_by != bic:
        refuse_below(tx, (agent,), ReasonCode.TRANSACTION_NOT_SUPPORTED,
                     f"{agent} {served_by} differs from {party} {bic}: scopay settles "
                     "institutions on their own accounts")
    return bic, Party(name or bic, fields.get(account), address)


def add_transaction(tx: etree._Element, payment: Payment, message: CreditTransferMessage,
                    version: CreditTransferVersion) -> None:
    check_institution_transfer(payment)
    add_transaction_head(tx, payment, message.created_at_us)
    add_route(tx, payment, message.instructed_agent)
    add_institution(tx, "Dbtr", payment.debtor_agent, payment.debtor, version.components)
    if payment.debtor.account is not None:
        add_account(tx, "DbtrAcct", payment.debtor.account)
    add_institution(tx, "Cdtr", payment.creditor_agent, payment.creditor, version.components)
    if payment.creditor.account is not None:
        add_account(tx, "CdtrAcct", payment.creditor.account)
    add_purpose_and_remittance(tx, payment)


def check_institution_transfer(payment: Payment) -> None:
    """A pacs.009 cannot carry customer-transfer fields; refuse rather than drop them."""
    if (payment.instructed_amount_minor is not None or payment.exchange_rate is not None
            or payment.charges or payment.charge_bearer != ChargeBearer.SHARED):
        raise ValueError(f"payment {payment.uetr}: a pacs.009 carries no instructed amount, "
                         "exchange rate, charges or charge bearer")
