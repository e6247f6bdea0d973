"""Request and response bodies of the HTTP API (JSON). Amounts travel as decimal strings."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field

from scopay.api.auth import OWN_TRANSFER_ID_MAX
from scopay.domain.ledger import BATCH_TRANSFERS_MAX

# Identifiers are 64-bit: the edge refuses anything larger before it reaches the database.
PositiveId = Annotated[int, Field(ge=1, le=2**63 - 1)]
AccountIdPath = Annotated[int, Path(ge=1, le=2**63 - 1, description="account id")]
SeqPath = Annotated[int, Path(ge=1, le=2**63 - 1, description="the message's number in your "
                              "mailbox (its seq)")]


class Problem(BaseModel):
    """RFC 9457 problem details: every error of the API has this shape."""

    type: str = Field(description="URI naming the kind of problem", examples=["/problems/rejected"])
    title: str
    status: int
    detail: str
    rejection: str | None = Field(None, description="the ledger's rejection reason, if any")
    iso_code: str | None = Field(None, description="for a refused payment: the ISO 20022 "
                                 "status reason code its pacs.002 gives (e.g. AM04, RC04)")


class TransferIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    id: str = Field(min_length=1, max_length=OWN_TRANSFER_ID_MAX, pattern=r"^[A-Za-z0-9._:/-]+$",
                    description="the caller's own id for this transfer (other participants' "
                                "ids are apart); resubmitting it is safe")
    debit_account_id: int = Field(0, ge=0, lt=2**63)
    credit_account_id: int = Field(0, ge=0, lt=2**63)
    amount: str = Field("0", max_length=40, description='decimal string, e.g. "1250.00"',
                        examples=["1250.00"])
    currency: str = Field("", pattern=r"^([A-Z]{3})?$", examples=["CNY"])
    # The kinds a caller may ask for (the ledger alone expires reservations), as strings:
    # a strict enum field takes no string, and JSON has only strings.
    kind: Literal["posted", "pending", "post_pending", "void_pending"] = "posted"
    pending_id: str | None = Field(None, min_length=1, max_length=OWN_TRANSFER_ID_MAX,
                                   description="the caller's own id of the pending transfer")
    timeout_s: int = Field(0, ge=0, le=7 * 24 * 3600)
    linked: bool = False


class TransferBatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    transfers: list[TransferIn] = Field(min_length=1, max_length=BATCH_TRANSFERS_MAX)


class TransferOut(BaseModel):
    id: str
    status: str = Field(description='"accepted" or "rejected"')
    rejection: str | None = None
    detail: str | None = None
    timestamp_us: int


class BalanceOut(BaseModel):
    account_id: int
    owner_bic: str
    currency: str
    kind: str
    floor: str | None = Field(description="lowest balance allowed; null: no floor (issuance)")
    balance: str
    reserved: str
    incoming_reserved: str
    available: str
    blocked: bool


class ParticipantOut(BaseModel):
    bic: str
    name: str
    role: str
    country: str
    tier: str
    status: str
    sponsor_bic: str | None
    settlement_currency: str | None


class AuditHeadOut(BaseModel):
    """The audit log's last entry. Kept outside scopay, it lets `scopay audit verify --anchor`
    show that the log was not cut back or rewritten up to it."""

    seq: int = Field(description="the entry's number; 0 while the log is empty")
    sha256: str = Field(description="its hash, which covers every entry before it")
    at_us: int = Field(description="its commit time, microseconds since the Unix epoch")


class HealthOut(BaseModel):
    status: str
    version: str
    participants: int
    accounts: int


# What a payment's texts must be for scopay to forward it as a pacs.008 (ISO MaxNText: 1 to N
# characters XML can hold, so no control characters but tab and line ends).
_XML_TEXT = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\uFFFE\uFFFF]+$"


def iso_text(length_max: int) -> Any:
    """A JSON string field an ISO MaxNText (N = length_max) can carry."""
    return Annotated[str, Field(min_length=1, max_length=length_max, pattern=_XML_TEXT)]


IdText = iso_text(35)
NameText = iso_text(140)


class AddressIn(BaseModel):
    """pacs.008.001.08's PostalAddress24 limits (the version scopay forwards in)."""

    model_config = ConfigDict(extra="forbid")

    country: str | None = Field(None, pattern=r"^[A-Z]{2}$")
    town: iso_text(35) | None = None
    post_code: iso_text(16) | None = None
    street: iso_text(70) | None = None
    building_number: iso_text(16) | None = None
    address_lines: list[iso_text(70)] = Field(default_factory=list, max_length=7)


class PartyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: NameText
    account: iso_text(34) | None = Field(None, description="IBAN or other account id")
    address: AddressIn | None = None


class PaymentIn(BaseModel):
    """A customer or institution credit transfer, as JSON (ISO 20022 pacs.008 in spirit)."""

    model_config = ConfigDict(extra="forbid")

    uetr: str = Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-"
                              r"[0-9a-f]{12}$", description="UUID v4, lower case")
    instruction_id: IdText
    end_to_end_id: IdText
    debtor_agent: str = Field(pattern=r"^[A-Z]{6}[A-Z0-9]{2}([A-Z0-9]{3})?$")
    creditor_agent: str = Field(pattern=r"^[A-Z]{6}[A-Z0-9]{2}([A-Z0-9]{3})?$")
    debtor: PartyIn
    creditor: PartyIn
    amount: str = Field(max_length=40, examples=["1250.00"], description="settlement amount")
    currency: str = Field(pattern=r"^[A-Z]{3}$", examples=["CNY"])
    priority: str = Field("normal", pattern=r"^(urgent|high|normal)$")
    charge_bearer: str = Field("SHAR", pattern=r"^(DEBT|CRED|SHAR|SLEV)$")
    remittance: NameText | None = None
    purpose: str | None = Field(None, pattern=r"^[A-Z]{4}$")
    # On one UTC date (scopay writes them as times of the settlement date): checked with the
    # moments in api/payments.py, which refuses times without a UTC offset too.
    earliest: datetime | None = None
    latest: datetime | None = None
    reject_by: datetime | None = None


class PaymentBulkIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    payments: list[PaymentIn] = Field(min_length=1, max_length=BATCH_TRANSFERS_MAX)


class StatusChangeOut(BaseModel):
    status: str
    at: datetime
    reason: str | None = None
    detail: str | None = None


class PaymentOut(BaseModel):
    uetr: str
    status: str
    reason: str | None = None
    iso_status: str | None = None
    iso_reason: str | None = Field(None, description="for a rejected payment: the ISO 20022 "
                                   "status reason code, as in its pacs.002")
    debtor_agent: str | None = None
    creditor_agent: str | None = None
    amount: str | None = None
    currency: str | None = None
    priority: str | None = None
    earliest: datetime | None = None
    latest: datetime | None = None
    reject_by: datetime | None = None
    history: list[StatusChangeOut] = Field(default_factory=list)


class PriorityIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    priority: str = Field(pattern=r"^(urgent|high|normal)$")


class TimesIn(BaseModel):
    """A queued payment's latest settlement time and reject-by time, both replaced (null:
    none). With a UTC offset, on the UTC date of its earliest time if it has one."""

    model_config = ConfigDict(extra="forbid")

    latest: datetime | None = None
    reject_by: datetime | None = None


class ReturnIn(BaseModel):
    """Why a settled payment goes back: an ISO 20022 return reason code (AC04 closed account,
    AM09 wrong amount, CUST requested by the customer, FOCR after a cancellation request,
    MD06 refund ...) and, if wanted, a text."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(pattern=r"^[A-Z0-9]{4}$", examples=["AC04"])
    text: NameText | None = None


class MoveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: str = Field(pattern=r"^(front|back)$")


class NoticeOut(BaseModel):
    seq: int = Field(description="the notice's number in your mailbox: yours are numbered 1, "
                     "2, 3 ... without gaps, whatever other participants are sent")
    kind: str
    uetr: str | None = Field(description="the payment's, for a payment notice")
    reference: str | None = Field(None, description="for a debit or credit notification the "
                                  "transfer id of its first entry (yours without your BIC); "
                                  "for a statement '<account id>-<YYYYMMDD>'")
    last_reference: str | None = Field(None, description="for a debit or credit notification "
                                       "of several entries (one account's, one side, booked "
                                       "in one commit, at most 1,000), its last entry's "
                                       "transfer id; its camt.054 lists them all")
    status: str | None
    reason: str | None
    created: datetime


class AckIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # seqs are JSON integers only

    seqs: list[PositiveId] = Field(min_length=1, max_length=500,
                                   description="numbers of notices in your mailbox")


class PolicyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reserved_urgent: str = "0"
    reserved_high: str = "0"
    multilateral_limit: str | None = None
    bilateral_limits: dict[PositiveId, str] = Field(default_factory=dict, max_length=1000,
                                             description="creditor account id -> limit")


class PolicyOut(BaseModel):
    """An account's reservations and limits as set, and where its limits stand today."""

    account_id: int
    currency: str
    reserved_urgent: str
    reserved_high: str
    multilateral_limit: str | None
    bilateral_limits: dict[int, str] = Field(description="creditor account id -> limit")
    multilateral_position: str = Field(
        description="net sent today in normal payments to the creditors without a bilateral "
                    "limit, less all received from them")
    bilateral_positions: dict[int, str] = Field(
        description="creditor account id -> the same net, for each bilateral limit")


class CreditLineIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    credit_line: str = Field(max_length=40, examples=["5000000.00"])


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    public_key: str = Field(min_length=40, max_length=60,
                            description="Ed25519 public key: 32 raw bytes, base64url")


class ParticipantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bic: str = Field(pattern=r"^[A-Z]{6}[A-Z0-9]{2}([A-Z0-9]{3})?$")
    name: str = Field(min_length=1, max_length=140)
    role: str = Field(pattern=r"^(settlement_agent|direct_participant|indirect_participant|"
                              r"fx_provider|auditor)$")
    country: str = Field(pattern=r"^[A-Z]{2}$")
    tier: str = Field(pattern=r"^(member|observer|dialogue_partner)$")
    sponsor_bic: str | None = Field(None, pattern=r"^[A-Z]{6}[A-Z0-9]{2}([A-Z0-9]{3})?$")
    settlement_currency: str | None = Field(None, pattern=r"^[A-Z]{3}$")


class AccountIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    owner_bic: str = Field(pattern=r"^[A-Z]{6}[A-Z0-9]{2}([A-Z0-9]{3})?$")
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    kind: str = Field("settlement", pattern=r"^(settlement|issuance)$")
    credit_line: str = Field("0", max_length=40)


class FundsIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    id: str = Field(min_length=1, max_length=OWN_TRANSFER_ID_MAX, pattern=r"^[A-Za-z0-9._:/-]+$")
    account_id: int = Field(ge=1, lt=2**63)
    amount: str = Field(max_length=40, examples=["1000000.00"])
