"""Payments to and from JSON text for storage: exact (Decimal rates as strings, minor units
as integers), stable (sorted keys), and complete (decoding gives an equal Payment)."""

from __future__ import annotations

import json
from dataclasses import asdict
from decimal import Decimal

from scopay.domain.payment import (
    ChargeBearer,
    Party,
    Payment,
    PostalAddress,
    Priority,
    SettlementMethod,
)


def encode_payment(payment: Payment) -> str:
    data = asdict(payment)
    if payment.exchange_rate is not None:
        data["exchange_rate"] = str(payment.exchange_rate)
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def decode_payment(text: str) -> Payment:
    data = json.loads(text)
    data["debtor"] = _party(data["debtor"])
    data["creditor"] = _party(data["creditor"])
    if data.get("exchange_rate") is not None:
        data["exchange_rate"] = Decimal(data["exchange_rate"])
    data["charge_bearer"] = ChargeBearer(data["charge_bearer"])
    data["priority"] = Priority(data["priority"])
    data["settlement_method"] = SettlementMethod(data["settlement_method"])
    data["intermediary_agents"] = tuple(data.get("intermediary_agents", ()))
    data["charges"] = tuple(tuple(charge) for charge in data.get("charges", ()))
    return Payment(**data)


def _party(data: dict) -> Party:
    address = data.get("address")
    if address is not None:
        address = PostalAddress(**{**address,
                                   "address_lines": tuple(address.get("address_lines", ()))})
    return Party(name=data["name"], account=data.get("account"), address=address)
