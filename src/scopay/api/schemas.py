"""Request and response bodies of the HTTP API (JSON). Amounts travel as decimal strings."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from scopay.domain.ledger import BATCH_TRANSFERS_MAX, TransferKind


class Problem(BaseModel):
    """RFC 9457 problem details: every error of the API has this shape."""

    type: str = Field(description="URI naming the kind of problem", examples=["/problems/rejected"])
    title: str
    status: int
    detail: str
    rejection: str | None = Field(None, description="the ledger's rejection reason, if any")


class TransferIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:/-]+$",
                    description="the caller's id for this transfer; resubmitting it is safe")
    debit_account_id: int = Field(0, ge=0, lt=2**63)
    credit_account_id: int = Field(0, ge=0, lt=2**63)
    amount: str = Field("0", max_length=40, description='decimal string, e.g. "1250.00"',
                        examples=["1250.00"])
    currency: str = Field("", pattern=r"^([A-Z]{3})?$", examples=["CNY"])
    kind: TransferKind = TransferKind.POSTED
    pending_id: str | None = Field(None, min_length=1, max_length=64)
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


class HealthOut(BaseModel):
    status: str
    version: str
    participants: int
    accounts: int
    journal_entries: int
