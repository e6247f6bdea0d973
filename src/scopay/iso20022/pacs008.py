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

from dataclasses import fields

from lxml import etree

from scopay.domain.payment import (
    ChargeBearer,
    Party,
    Payment,
    PostalAddress,
    Priority,
    SettlementMethod,
    new_party,
    new_payment,
    new_postal_address,
)
from scopay.iso20022.codes import ReasonCode
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
    TextReading,
    accepted_prefix,
    add_purpose_and_remittance,
    add_route,
    add_transaction_head,
    agent_paths,
    agent_text,
    build_credit_transfer,
    credit_transfer_version,
    intermediaries_text,
    read_credit_transfer,
    read_credit_transfer_text,
    read_message_text,
    read_transaction_basics,
    remittance_shape,
    sender,
    settlement_times_text,
)
from scopay.iso20022.datatype import (
    RATE_DIGITS_MAX,
    RATE_FRACTION_DIGITS_MAX,
    add_amount,
    code_reader,
    decimal_rule,
    format_decimal,
    read_amount,
    read_decimal,
)
from scopay.iso20022.document import open_document, validated_type
from scopay.iso20022.model import CreditTransferMessage
from scopay.iso20022.pattern import Unreadable
from scopay.iso20022.shape import Fields, Shape, add, read_shape, refuse_below

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


decimal_rule(read_rate, RATE_DIGITS_MAX, RATE_FRACTION_DIGITS_MAX)


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
    read = read_validated_text(data, MESSAGE_TYPES)
    if read is not None:
        return read[1]
    document, message_type = open_document(data, MESSAGE_TYPES)
    return read_pacs008(document, message_type, data)


def read_validated_text(data: bytes, expected: tuple[str, ...]
                        ) -> tuple[str, CreditTransferMessage] | None:
    """(type, message) of a bare pacs.008 Document (of one of `expected`) its XSD accepts
    while it is parsed with no tree (validated_type), read from its text; None when it is to
    be read from its tree, which gives any refusal its reason."""
    message_type = validated_type(data, expected)
    if message_type is None:
        return None
    # validated_type read its root as the type's unprefixed Document, and the XSD proved it
    # holds one message element: unprefixed there too when the expressions take it.
    message = read_message_text(data, None, VERSIONS[message_type], TransactionText,
                                read_transaction_text, namespaces_unchecked=True)
    return None if message is None else (message_type, message)


def read_pacs008(document: etree._Element, message_type: str,
                 data: bytes | None = None) -> CreditTransferMessage:
    """Read from the text when `data` (the bytes `document` was parsed from, a bare Document)
    is given and the expressions take it all, else from the tree."""
    version = VERSIONS[message_type]
    if data is not None:
        message = read_credit_transfer_text(data, document, version, TransactionText,
                                            read_transaction_text)
        if message is not None:
            return message
    message = read_credit_transfer(document, version, read_transaction)
    accepted_prefix(version, document[0].prefix)  # its next messages are read from their text
    return message


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
    rule = instructed_amount_rule(instructed_currency, basics["settlement_currency"],
                                  fields.get("XchgRate"))
    if rule is not None:
        refuse_below(tx, ("InstdAmt",), ReasonCode.INVALID_FILE_FORMAT, rule)
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


def instructed_amount_rule(instructed_currency: str | None, settlement_currency: str,
                           rate: object) -> str | None:
    """What pacs.008's InstructedAmountAndExchangeRate1Rule and 2Rule say against these: an
    instructed amount in another currency than the settlement amount needs an exchange
    rate, one in the same currency has none."""
    if instructed_currency is None:
        return None
    if instructed_currency != settlement_currency and rate is None:
        return (f"InstdAmt in {instructed_currency} and IntrBkSttlmAmt in "
                f"{settlement_currency} need an XchgRate (InstructedAmountAndExchangeRate1Rule)")
    if instructed_currency == settlement_currency and rate is not None:
        return (f"InstdAmt and IntrBkSttlmAmt both in {instructed_currency} take no XchgRate "
                "(InstructedAmountAndExchangeRate2Rule)")
    return None


def party_paths(name: str) -> tuple[tuple[str, ...], ...]:
    """Nm, PstlAdr (presence), StrtNm, BldgNb, PstCd, TwnNm, Ctry and AdrLine of a party."""
    return ((name, "Nm"), (name, "PstlAdr"),
            *((name, "PstlAdr", part)
              for part in ("StrtNm", "BldgNb", "PstCd", "TwnNm", "Ctry", "AdrLine")))


def account_paths(name: str) -> tuple[tuple[str, ...], ...]:
    """Presence, Id presence, IBAN and Othr/Id of an account."""
    return (name,), (name, "Id"), (name, "Id", "IBAN"), (name, "Id", "Othr", "Id")


class TransactionText(TextReading):
    """Where the values pacs.008 maps beyond the shared ones sit in a transaction's groups."""

    MAPPED = (*party_paths("Dbtr"), *account_paths("DbtrAcct"), *party_paths("Cdtr"),
              *account_paths("CdtrAcct"), ("InstdAmt",), ("XchgRate",), ("ChrgBr",),
              ("ChrgsInf",), ("RmtInf", "Ustrd"))
    MARKED = (("ChrgsInf", "Agt"),)

    def __init__(self, version: CreditTransferVersion, prefix: str, white: str,
                 strict: bool) -> None:
        super().__init__(version, prefix, white, strict)
        charge = self.transaction.converts[self.transaction.index("ChrgsInf")].item
        self.charge = charge.getter(("ChrgsInf", "Amt"), *agent_paths("ChrgsInf", "Agt"))


# read_transaction_text builds Payments, Parties and PostalAddresses with the domain's
# positional constructors (payment.positional_constructor); it gives the fields in this order,
# checked against the classes at import.
_POSITIONAL = {
    Payment: ("uetr", "instruction_id", "end_to_end_id", "debtor_agent", "creditor_agent",
              "debtor", "creditor", "settlement_amount_minor", "settlement_currency",
              "instructed_amount_minor", "instructed_currency", "exchange_rate", "charge_bearer",
              "remittance", "purpose", "priority", "settlement_method", "earliest_us",
              "latest_us", "reject_by_us", "message_id", "sender_bic", "intermediary_agents",
              "charges", "message_type"),
    PostalAddress: ("country", "town", "post_code", "street", "building_number",
                    "address_lines"),
    Party: ("name", "account", "address"),
}
for _type, _names in _POSITIONAL.items():
    if tuple(field.name for field in fields(_type)) != _names:
        raise TypeError(f"{_type.__name__}'s fields are not {_names}: update "
                        "read_transaction_text")


def address_text(street: str | None, building: str | None, post_code: str | None,
                 town: str | None, country: str | None, lines: tuple | str) -> PostalAddress:
    """postal_address's rule on checked texts."""
    return new_postal_address(country, town, post_code, street, building,
                              tuple([line for line, in lines]) if lines else ())


def account_text(identified: str | None, iban: str | None, other: str | None) -> str:
    """account_id's rule, for a present account: it must have an Id (IBAN or Othr/Id)."""
    if identified is None:
        raise Unreadable
    return iban or other


def read_transaction_text(values: tuple, reading: TransactionText, header: tuple) -> Payment:
    """read_transaction (with read_transaction_basics) from a transaction's checked texts, in
    the order of reading.pick_fields."""
    (instruction_id, end_to_end_id, uetr, amount, instruction_priority, channel, day,
     settlement_priority, time_request, purpose, instructing, instructing_bic, instructed,
     instructed_bic, agent1, bic1, agent2, bic2, agent3, bic3, debtor_agent, debtor_bic,
     creditor_agent, creditor_bic,
     debtor_name, debtor_address, debtor_street, debtor_building, debtor_post_code,
     debtor_town, debtor_country, debtor_lines, debtor_account, debtor_account_id,
     debtor_iban, debtor_other,
     creditor_name, creditor_address, creditor_street, creditor_building, creditor_post_code,
     creditor_town, creditor_country, creditor_lines, creditor_account, creditor_account_id,
     creditor_iban, creditor_other,
     instructed_amount, rate, charge_bearer, charges, remittance,
     from_time, till_time, reject_time) = values
    if (instruction_id is None or uetr is None or amount[0] == 0 or debtor_bic is None
            or creditor_bic is None or debtor_name is None or creditor_name is None):
        raise Unreadable
    if instructed is not None and instructed_bic is None:
        raise Unreadable
    intermediaries = () if agent1 is None and agent2 is None and agent3 is None else (
        intermediaries_text(agent1, bic1, agent2, bic2, agent3, bic3))
    settles_on = day or header[5] or header[11]
    if settles_on < header[11]:
        raise Unreadable  # before the message was created: the tree reader refuses it
    if time_request is None and header[10] is None and settles_on == header[11]:
        earliest = latest = reject_by = None  # no times, no value date, no expiry: most
    else:
        earliest, latest, reject_by = settlement_times_text(
            None if time_request is None else (from_time, till_time, reject_time), day, header)
    if instructing is None:
        instructing = header[9]
    elif instructing_bic is None:
        raise Unreadable
    else:
        instructing = instructing_bic
    if instructed_amount is None:
        instructed_amount = (None, None)
    elif instructed_amount_rule(instructed_amount[1], amount[1], rate) is not None:
        raise Unreadable  # the tree reader names the rule
    if charges:
        charge = reading.charge
        charges = tuple([(charged[0], charged[1], agent_text(agent, bic))
                         for charged, agent, bic in map(charge, charges)])
    return new_payment(  # in _POSITIONAL's order
        uetr,
        instruction_id,
        end_to_end_id,
        debtor_bic,
        creditor_bic,
        _party_text(debtor_name, debtor_account, debtor_account_id, debtor_iban, debtor_other,
                    debtor_address, debtor_street, debtor_building, debtor_post_code,
                    debtor_town, debtor_country, debtor_lines),
        _party_text(creditor_name, creditor_account, creditor_account_id, creditor_iban,
                    creditor_other, creditor_address, creditor_street, creditor_building,
                    creditor_post_code, creditor_town, creditor_country, creditor_lines),
        amount[0],
        amount[1],
        instructed_amount[0],
        instructed_amount[1],
        rate,
        charge_bearer,
        remittance,
        purpose,
        settlement_priority or instruction_priority or header[7] or Priority.NORMAL,
        channel or header[8] or SettlementMethod.GROSS,
        earliest,
        latest,
        reject_by,
        header[0],
        None if instructing == debtor_bic else instructing,  # sender_bic
        intermediaries,
        charges or (),
        None,  # message_type: the route that takes the message names it
    )


def _party_text(name, account, account_id, iban, other, address, street, building,
                post_code, town, country, lines) -> Party:
    """A debtor or creditor from the groups its expression captured (None: absent)."""
    return new_party(
        name,
        None if account is None else account_text(account_id, iban, other),
        None if address is None else address_text(street, building, post_code, town, country,
                                                  lines))


def add_transaction(tx: etree._Element, payment: Payment, message: CreditTransferMessage,
                    version: CreditTransferVersion) -> None:
    add_transaction_head(tx, payment, message.created_at_us)
    add_instructed_amount(tx, payment)
    add(tx, "ChrgBr", payment.charge_bearer.value)
    for amount, currency, agent in payment.charges:
        element = add(tx, "ChrgsInf")
        add_amount(element, "Amt", amount, currency)
        add_agent(element, "Agt", agent)
    add_route(tx, payment, message.instructed_agent)
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
