"""Payments to and from JSON text for storage: exact (Decimal rates as strings, minor units
as integers), stable (sorted keys), and complete (decoding gives an equal Payment)."""

from __future__ import annotations

import json
from dataclasses import fields
from decimal import Decimal

from scopay.domain.payment import (
    ChargeBearer,
    Party,
    Payment,
    PostalAddress,
    Priority,
    SettlementMethod,
)

_FIELDS = tuple(f.name for f in fields(Payment))
_ADDRESS_FIELDS = tuple(f.name for f in fields(PostalAddress))


def encode_payment(payment: Payment) -> str:
    """JSON of every field. Built by hand: dataclasses.asdict deep-copies recursively and
    cost a fifth of the engine's time on bulk payments."""
    data = {name: getattr(payment, name) for name in _FIELDS}
    data["debtor"] = _party_data(payment.debtor)
    data["creditor"] = _party_data(payment.creditor)
    data["intermediary_agents"] = list(payment.intermediary_agents)
    data["charges"] = [list(charge) for charge in payment.charges]
    # the enums' plain values: json's encoder takes a slow path for str subclasses
    data["charge_bearer"] = payment.charge_bearer.value
    data["priority"] = payment.priority.value
    data["settlement_method"] = payment.settlement_method.value
    if payment.exchange_rate is not None:
        data["exchange_rate"] = str(payment.exchange_rate)
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _party_data(party: Party) -> dict:
    address = party.address
    return {"name": party.name, "account": party.account,
            "address": None if address is None else {
                **{name: getattr(address, name) for name in _ADDRESS_FIELDS},
                "address_lines": list(address.address_lines)}}


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
