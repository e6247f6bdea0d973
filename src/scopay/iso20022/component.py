"""ISO 20022 message components shared by several messages: agents, parties, postal addresses,
accounts, references to an original message, and reasons.

Two generations of these components exist among the versions scopay speaks: the 2019 one
(PostalAddress24, CashAccount38 ...) of the CBPR+/T2 versions, and the 2024 one
(PostalAddress27, CashAccount40 ...) of pacs.008.001.13. A Components value holds the shapes of
one generation; writers take it where the generations differ.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lxml import etree

from scopay.domain.payment import Party, PostalAddress
from scopay.iso20022.codes import ReasonCode
from scopay.iso20022.datatype import (
    NAME_LENGTH_MAX,
    add_bic,
    add_external_code,
    add_id,
    add_reason_text,
    add_text,
    add_uetr,
    format_datetime_us,
    read_bic,
    read_datetime_us,
    read_external_code,
    read_id,
    read_name,
    read_reason_line,
    read_uetr,
    text_reader,
)
from scopay.iso20022.model import Case
from scopay.iso20022.pattern import Unreadable, text_rule
from scopay.iso20022.shape import Fields, Shape, add, refuse_at

ACCOUNT_ID_LENGTH_MAX = 34  # Max34Text of GenericAccountIdentification1
ADDRESS_LINES_MAX = 7
ADDRESS_LINE_LENGTH_MAX = 70

_IBAN = re.compile(r"[A-Z]{2}[0-9]{2}[a-zA-Z0-9]{1,30}")
_COUNTRY = re.compile(r"[A-Z]{2}")


def only_value(fields: Fields, element: etree._Element) -> object:
    """The value of a choice: its one child."""
    return next(iter(fields.values()))


# Agents ------------------------------------------------------------------------------------

def agent_bic(fields: Fields, element: etree._Element) -> str:
    bic = fields["FinInstnId"].get("BICFI")
    if bic is None:
        refuse_at(element, ReasonCode.BANK_IDENTIFIER_INCORRECT,
                  "agent is not identified by BICFI; scopay routes by BIC")
    return bic


_INSTITUTION_IDS = "BICFI? ClrSysMmbId? LEI? Nm? PstlAdr? Othr?"
AGENT = Shape(
    "BranchAndFinancialInstitutionIdentification", "FinInstnId BrnchId?", finish=agent_bic,
    chains={("FinInstnId", "BICFI"): read_bic},
    FinInstnId=Shape("FinancialInstitutionIdentification", _INSTITUTION_IDS, BICFI=read_bic),
)
PARTY_OR_AGENT = Shape("Party40Choice", "Pty Agt", choice=True, refused=("Pty",),
                       finish=only_value, Agt=AGENT)


def add_agent(parent: etree._Element, name: str, bic: str) -> etree._Element:
    agent = add(parent, name)
    add_bic(add(agent, "FinInstnId"), "BICFI", bic)
    return agent


def add_party_agent(parent: etree._Element, name: str, bic: str) -> None:
    """A Party40Choice holding an agent (case assigner, assignee, creator)."""
    add_agent(add(parent, name), "Agt", bic)


# Addresses, parties, accounts --------------------------------------------------------------

# PostalAddress fields scopay carries, in ISO order: (ISO name, PostalAddress attribute).
_ADDRESS_FIELDS = (
    ("StrtNm", "street"), ("BldgNb", "building_number"), ("PstCd", "post_code"),
    ("TwnNm", "town"),
)


def postal_address(fields: Fields, element: etree._Element) -> PostalAddress:
    return PostalAddress(
        country=fields.get("Ctry"), town=fields.get("TwnNm"), post_code=fields.get("PstCd"),
        street=fields.get("StrtNm"), building_number=fields.get("BldgNb"),
        address_lines=tuple(fields.get("AdrLine", ())),
    )


def read_country(element: etree._Element) -> str:
    country = element.text
    if country is None or not _COUNTRY.fullmatch(country) or len(element):
        refuse_at(element, ReasonCode.INVALID_FILE_FORMAT,
                  f"{country!r} is not an ISO 3166 country code")
    return country


text_rule(read_country, _COUNTRY.pattern)


def address_shape(name: str, children: str, lengths: dict[str, int]) -> Shape:
    readers = {iso: text_reader(lengths[iso]) for iso, _ in _ADDRESS_FIELDS}
    return Shape(name, children, finish=postal_address, Ctry=read_country,
                 AdrLine=text_reader(ADDRESS_LINE_LENGTH_MAX), **readers)


def party_name_and_address(fields: Fields,
                           element: etree._Element) -> tuple[str, PostalAddress | None]:
    name = fields.get("Nm")
    if name is None:
        refuse_at(element, ReasonCode.INVALID_FILE_FORMAT,
                  "party has no Nm; scopay needs every party's name to screen it")
    return name, fields.get("PstlAdr")


def institution_party(fields: Fields,
                      element: etree._Element) -> tuple[str, str | None, PostalAddress | None]:
    """(BIC, name, address) of an institution that is itself debtor or creditor (pacs.009)."""
    institution = fields["FinInstnId"]
    return agent_bic(fields, element), institution.get("Nm"), institution.get("PstlAdr")


def read_iban(element: etree._Element) -> str:
    iban = element.text
    if iban is None or not _IBAN.fullmatch(iban) or len(element):
        refuse_at(element, ReasonCode.INCORRECT_ACCOUNT_NUMBER, f"{iban!r} is not an IBAN")
    if not is_iban(iban):
        refuse_at(element, ReasonCode.INCORRECT_ACCOUNT_NUMBER,
                  f"{iban!r} is not an IBAN: its check digits are wrong (ISO 7064 mod 97-10)")
    return iban


def _checked_iban(text: str) -> str:
    if not is_iban(text):
        raise Unreadable  # the tree reader says why
    return text


text_rule(read_iban, _IBAN.pattern, _checked_iban)


def account_id(fields: Fields, element: etree._Element) -> str:
    identification = fields.get("Id")
    if identification is None:
        refuse_at(element, ReasonCode.TRANSACTION_NOT_SUPPORTED,
                  "account has no Id; scopay does not resolve proxies")
    return identification


read_other_account_id = text_reader(ACCOUNT_ID_LENGTH_MAX)
ACCOUNT_ID = Shape(
    "AccountIdentification4Choice", "IBAN Othr", choice=True, finish=only_value,
    IBAN=read_iban,
    Othr=Shape("GenericAccountIdentification1", "Id SchmeNm? Issr?",
               finish=lambda fields, _: fields["Id"], Id=read_other_account_id),
)
ACCOUNT_CHAINS = {("Id", "IBAN"): read_iban, ("Id", "Othr", "Id"): read_other_account_id}


@dataclass(frozen=True, slots=True)
class Components:
    """The shapes of one generation of shared components."""

    address: Shape
    address_lengths: dict[str, int]  # Max lengths of the address parts scopay carries
    party: Shape  # -> (name, address)
    account: Shape  # -> account id text
    institution_party: Shape  # -> (BIC, name, address)


def components(address_name: str, address_children: str, lengths: dict[str, int],
               account_name: str, account_children: str) -> Components:
    address = address_shape(address_name, address_children, lengths)
    return Components(
        address=address,
        address_lengths=lengths,
        party=Shape("PartyIdentification", "Nm? PstlAdr? Id? CtryOfRes? CtctDtls?",
                    finish=party_name_and_address, Nm=read_name, PstlAdr=address),
        account=Shape(account_name, account_children, finish=account_id, chains=ACCOUNT_CHAINS,
                      Id=ACCOUNT_ID),
        institution_party=Shape(
            "BranchAndFinancialInstitutionIdentification", "FinInstnId BrnchId?",
            finish=institution_party,
            FinInstnId=Shape("FinancialInstitutionIdentification", _INSTITUTION_IDS,
                             BICFI=read_bic, Nm=read_name, PstlAdr=address)),
    )


COMPONENTS_2019 = components(
    "PostalAddress24",
    "AdrTp? Dept? SubDept? StrtNm? BldgNb? BldgNm? Flr? PstBx? Room? PstCd? TwnNm? TwnLctnNm? "
    "DstrctNm? CtrySubDvsn? Ctry? AdrLine*7",
    {"StrtNm": 70, "BldgNb": 16, "PstCd": 16, "TwnNm": 35},
    "CashAccount38", "Id Tp? Ccy? Nm? Prxy?",
)
COMPONENTS_2024 = components(
    "PostalAddress27",
    "AdrTp? CareOf? Dept? SubDept? StrtNm? BldgNb? BldgNm? Flr? UnitNb? PstBx? Room? PstCd? "
    "TwnNm? TwnLctnNm? DstrctNm? CtrySubDvsn? Ctry? AdrLine*7",
    {"StrtNm": 140, "BldgNb": 16, "PstCd": 16, "TwnNm": 140},
    "CashAccount40", "Id? Tp? Ccy? Nm? Prxy?",
)
# The statement's own account (CashAccount39) adds owner and servicer to CashAccount38.
STATEMENT_ACCOUNT_CHILDREN = "Id Tp? Ccy? Nm? Prxy? Ownr? Svcr?"


def add_party(parent: etree._Element, name: str, party: Party, components: Components) -> None:
    element = add(parent, name)
    add_text(element, "Nm", party.name, NAME_LENGTH_MAX)
    if party.address is not None:
        add_address(element, party.address, components)


def add_institution(parent: etree._Element, name: str, bic: str, party: Party,
                    components: Components) -> None:
    institution = add(add(parent, name), "FinInstnId")
    add_bic(institution, "BICFI", bic)
    add_text(institution, "Nm", party.name, NAME_LENGTH_MAX)
    if party.address is not None:
        add_address(institution, party.address, components)


def add_address(parent: etree._Element, address: PostalAddress,
                components: Components) -> None:
    element = add(parent, "PstlAdr")
    lengths = components.address_lengths
    for iso, attribute in _ADDRESS_FIELDS:
        value = getattr(address, attribute)
        if value is not None:
            add_text(element, iso, value, lengths[iso])
    if address.country is not None:
        if not _COUNTRY.fullmatch(address.country):
            raise ValueError(f"country {address.country!r} is not an ISO 3166 alpha-2 code")
        add(element, "Ctry", address.country)
    if len(address.address_lines) > ADDRESS_LINES_MAX:
        raise ValueError(f"an address holds at most {ADDRESS_LINES_MAX} lines")
    for line in address.address_lines:
        add_text(element, "AdrLine", line, ADDRESS_LINE_LENGTH_MAX)


def add_account(parent: etree._Element, name: str, account: str) -> None:
    identification = add(add(parent, name), "Id")
    if is_iban(account):
        add(identification, "IBAN", account)
    else:
        add_text(add(identification, "Othr"), "Id", account, ACCOUNT_ID_LENGTH_MAX)


def is_iban(text: str) -> bool:
    """IBAN structure and its ISO 7064 mod-97 check digits."""
    if not _IBAN.fullmatch(text) or len(text) > ACCOUNT_ID_LENGTH_MAX:
        return False
    rearranged = (text[4:] + text[:4]).upper()
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


# References to an original message, and reasons ------------------------------------------

ORIGINAL_GROUP = Shape(
    "OriginalGroupInformation29", "OrgnlMsgId OrgnlMsgNmId OrgnlCreDtTm?",
    finish=lambda fields, _: (fields["OrgnlMsgId"], fields["OrgnlMsgNmId"]),
    OrgnlMsgId=read_id, OrgnlMsgNmId=read_id,
)


def add_original_group(parent: etree._Element, name: str, message_id: str,
                       message_type: str) -> None:
    element = add(parent, name)
    add_id(element, "OrgnlMsgId", message_id)
    add_id(element, "OrgnlMsgNmId", message_type)


def reason_code_and_text(fields: Fields, element: etree._Element) -> tuple[str | None, str | None]:
    lines = fields.get("AddtlInf")
    return fields.get("Rsn"), "".join(lines) if lines else None


REASON = Shape(
    "ReasonInformation", "Orgtr? Rsn? AddtlInf*", finish=reason_code_and_text,
    Rsn=Shape("Reason", "Cd Prtry", choice=True, refused=("Prtry",), finish=only_value,
              Cd=read_external_code),
    AddtlInf=read_reason_line,
)


def add_reason(parent: etree._Element, name: str, code: str | None, text: str | None) -> None:
    element = add(parent, name)
    if code is not None:
        add_external_code(add(element, "Rsn"), "Cd", code)
    add_reason_text(element, text)


# The references to one original transaction that pacs.002, pacs.004, camt.056 and camt.029
# all carry, under the same names.
ORIGINAL_REFERENCE_READERS = {
    "OrgnlGrpInf": ORIGINAL_GROUP, "OrgnlInstrId": read_id, "OrgnlEndToEndId": read_id,
    "OrgnlUETR": read_uetr,
}


def original_group_of(fields: Fields, default: tuple[str, str] | None,
                      element: etree._Element) -> tuple[str, str]:
    """(message id, message type) a transaction refers to: its own OrgnlGrpInf or the group's."""
    original = fields.get("OrgnlGrpInf") or default
    if original is None:
        refuse_at(element, ReasonCode.INVALID_FILE_FORMAT,
                  "no OrgnlGrpInf names the original message of this transaction")
    return original


def add_original_references(parent: etree._Element, message_id: str, message_type: str,
                            instruction_id: str | None, end_to_end_id: str | None,
                            uetr: str | None) -> None:
    """OrgnlGrpInf, OrgnlInstrId, OrgnlEndToEndId (and, where ISO puts it next, OrgnlUETR)."""
    add_original_group(parent, "OrgnlGrpInf", message_id, message_type)
    if instruction_id is not None:
        add_id(parent, "OrgnlInstrId", instruction_id)
    if end_to_end_id is not None:
        add_id(parent, "OrgnlEndToEndId", end_to_end_id)
    if uetr is not None:
        add_uetr(parent, "OrgnlUETR", uetr)


# Cases and their assignment (camt.056, camt.029) -------------------------------------------

CASE = Shape("Case5", "Id Cretr ReopCaseIndctn?",
             finish=lambda fields, _: Case(fields["Id"], fields["Cretr"]),
             Id=read_id, Cretr=PARTY_OR_AGENT)
ASSIGNMENT = Shape("CaseAssignment5", "Id Assgnr Assgne CreDtTm",
                   Id=read_id, Assgnr=PARTY_OR_AGENT, Assgne=PARTY_OR_AGENT,
                   CreDtTm=read_datetime_us)


def add_case(parent: etree._Element, name: str, case: Case) -> None:
    element = add(parent, name)
    add_id(element, "Id", case.case_id)
    add_party_agent(element, "Cretr", case.creator)


def add_assignment(root: etree._Element, assignment_id: str, assigner: str, assignee: str,
                   created_at_us: int) -> None:
    element = add(root, "Assgnmt")
    add_id(element, "Id", assignment_id)
    add_party_agent(element, "Assgnr", assigner)
    add_party_agent(element, "Assgne", assignee)
    add(element, "CreDtTm", format_datetime_us(created_at_us))
