"""Payments to and from JSON text for storage: exact (Decimal rates as strings, minor units
as integers), stable (sorted keys, defaults left out), and complete (decoding gives an equal
Payment)."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic_core import from_json, to_json

from scopay.domain.payment import (
    ChargeBearer,
    Party,
    Payment,
    PaymentRecord,
    Priority,
    SettlementMethod,
    new_party,
    new_payment,
    new_postal_address,
)


def payment_row(record: PaymentRecord) -> tuple:
    """A payment's row as the store writes it: UETR, sender, instruction id, the payment's
    text (encode_payment), status, settlement accounts, then its queue state (sequence,
    priority, latest and reject-by times). Enums by `_value_`: `.value` is a Python-level
    property, and a bulk commit writes these rows by the thousand."""
    payment = record.payment
    return (payment.uetr, record.sender_bic, payment.instruction_id, encode_payment(payment),
            record.history[-1].status._value_, record.debtor_account, record.creditor_account,
            record.sequence, record.priority._value_, record.latest_us, record.reject_by_us)


def encode_payment(payment: Payment) -> str:
    """JSON of every field that is not its default (None, empty, shared charges, normal
    priority, gross settlement), keys sorted, written by pydantic-core (a third of the time
    json.dumps takes). Leaving the defaults out halves a typical payment's text, and the
    payment table is most of the database. decode_payment fills them back in, as it does for
    text earlier versions wrote with every field. A field added to Payment is added here too;
    the store's tests fail until it is.

    The dict is built key by key in sorted order, each optional field only when it holds
    something: a bulk commit encodes thousands, and filtering a full list of pairs took twice
    as long."""
    data: dict[str, Any] = {}
    if payment.charge_bearer is not ChargeBearer.SHARED:
        data["charge_bearer"] = payment.charge_bearer._value_
    if payment.charges:
        data["charges"] = [list(charge) for charge in payment.charges]
    data["creditor"] = _party_data(payment.creditor)
    data["creditor_agent"] = payment.creditor_agent
    data["debtor"] = _party_data(payment.debtor)
    data["debtor_agent"] = payment.debtor_agent
    if payment.earliest_us is not None:
        data["earliest_us"] = payment.earliest_us
    data["end_to_end_id"] = payment.end_to_end_id
    if payment.exchange_rate is not None:
        data["exchange_rate"] = str(payment.exchange_rate)
    if payment.instructed_amount_minor is not None:
        data["instructed_amount_minor"] = payment.instructed_amount_minor
    if payment.instructed_currency is not None:
        data["instructed_currency"] = payment.instructed_currency
    data["instruction_id"] = payment.instruction_id
    if payment.intermediary_agents:
        data["intermediary_agents"] = list(payment.intermediary_agents)
    if payment.latest_us is not None:
        data["latest_us"] = payment.latest_us
    if payment.message_id is not None:
        data["message_id"] = payment.message_id
    if payment.message_type is not None:
        data["message_type"] = payment.message_type
    if payment.priority is not Priority.NORMAL:
        data["priority"] = payment.priority._value_
    if payment.purpose is not None:
        data["purpose"] = payment.purpose
    if payment.reject_by_us is not None:
        data["reject_by_us"] = payment.reject_by_us
    if payment.remittance is not None:
        data["remittance"] = payment.remittance
    if payment.sender_bic is not None:
        data["sender_bic"] = payment.sender_bic
    data["settlement_amount_minor"] = payment.settlement_amount_minor
    data["settlement_currency"] = payment.settlement_currency
    if payment.settlement_method is not SettlementMethod.GROSS:
        data["settlement_method"] = payment.settlement_method._value_
    data["uetr"] = payment.uetr
    return to_json(data).decode()


_DEFAULTS = {"charge_bearer": ChargeBearer.SHARED.value, "priority": Priority.NORMAL.value,
             "settlement_method": SettlementMethod.GROSS.value}


def _without_defaults(fields: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """The (key, value) pairs, in order, but those holding a default: None, an empty list,
    or the value _DEFAULTS names for the key."""
    return {key: value for key, value in fields
            if value is not None and value != [] and _DEFAULTS.get(key) != value}


def _party_data(party: Party) -> dict:
    address = party.address
    data = {}  # keys in sorted order, as encode_payment's
    if party.account is not None:
        data["account"] = party.account
    if address is not None:
        data["address"] = _without_defaults((
            ("address_lines", list(address.address_lines)),
            ("building_number", address.building_number), ("country", address.country),
            ("post_code", address.post_code), ("street", address.street),
            ("town", address.town)))
    data["name"] = party.name
    return data


def decode_payment(text: str) -> Payment:
    """The Payment `encode_payment` wrote (or an earlier version: fields it lacked take their
    defaults). Read by pydantic-core and built positionally: recovery decodes every stored
    payment, and this was most of its time."""
    data = from_json(text)
    get = data.get
    rate = get("exchange_rate")
    return new_payment(
        data["uetr"], data["instruction_id"], data["end_to_end_id"], data["debtor_agent"],
        data["creditor_agent"], _party(data["debtor"]), _party(data["creditor"]),
        data["settlement_amount_minor"], data["settlement_currency"],
        get("instructed_amount_minor"), get("instructed_currency"),
        None if rate is None else Decimal(rate),
        _CHARGE_BEARERS[get("charge_bearer", _DEFAULTS["charge_bearer"])], get("remittance"),
        get("purpose"), _PRIORITIES[get("priority", _DEFAULTS["priority"])],
        _SETTLEMENT_METHODS[get("settlement_method", _DEFAULTS["settlement_method"])],
        get("earliest_us"), get("latest_us"), get("reject_by_us"), get("message_id"),
        get("sender_bic"), tuple(get("intermediary_agents", ())),
        tuple(map(tuple, get("charges", ()))), get("message_type"))


def enum_members(enum: type[StrEnum]) -> dict[str, Any]:
    """An enum's members by value: a dict lookup, where calling the enum costs about a
    microsecond."""
    return {member.value: member for member in enum}


_CHARGE_BEARERS = enum_members(ChargeBearer)
_PRIORITIES = enum_members(Priority)
_SETTLEMENT_METHODS = enum_members(SettlementMethod)


def _party(data: dict) -> Party:
    address = data.get("address")
    if address is not None:
        get = address.get
        address = new_postal_address(get("country"), get("town"), get("post_code"),
                                     get("street"), get("building_number"),
                                     tuple(get("address_lines", ())))
    return new_party(data["name"], data.get("account"), address)
