"""The text reader builds Payments, Parties and PostalAddresses with the domain's positional
constructors (payment.positional_constructor), which skip the frozen __init__'s per-field
object.__setattr__. What they build must be the value the classes themselves build: same
class, equal, same hash, frozen, and usable by dataclasses, pickle and copy."""

from __future__ import annotations

import copy
import dataclasses
import pickle

import pytest
from hypothesis import given, settings
from iso_support import credit_transfers

from scopay.domain.payment import (
    Party,
    Payment,
    PostalAddress,
    new_party,
    new_payment,
    new_postal_address,
    positional_constructor,
)

CONSTRUCTORS = {Payment: new_payment, Party: new_party, PostalAddress: new_postal_address}


def rebuilt(value):
    """`value` built again with its class's positional constructor, nested values too."""
    fields = [getattr(value, field.name) for field in dataclasses.fields(value)]
    fields = [rebuilt(field) if type(field) in CONSTRUCTORS else field for field in fields]
    return CONSTRUCTORS[type(value)](*fields)


def assert_same_value(built, expected) -> None:
    assert type(built) is type(expected)
    assert built == expected and hash(built) == hash(expected)
    assert repr(built) == repr(expected)
    assert pickle.loads(pickle.dumps(built)) == expected
    assert copy.deepcopy(built) == expected == copy.copy(built)
    assert dataclasses.astuple(built) == dataclasses.astuple(expected)


@settings(max_examples=60, deadline=None)
@given(message=credit_transfers())
def test_positionally_built_payments_are_the_payments_the_class_builds(message):
    for payment in message.payments:
        built = rebuilt(payment)
        assert_same_value(built, payment)
        assert_same_value(built.debtor, payment.debtor)
        if payment.creditor.address is not None:
            assert_same_value(built.creditor.address, payment.creditor.address)


def test_positionally_built_payments_stay_frozen_and_replaceable():
    address = new_postal_address("CN", "上海", "200040", "南京西路", "1266", ())
    party = new_party("上海丝路贸易有限公司", "6222020200112233445", address)
    payment = rebuilt(Payment("8a562c67-ca16-48ba-b074-65581be6f011", "I1", "E1", "ICBKCNBJ",
                              "SABRRUMM", party, Party("ООО «Северный Шёлк»"), 125, "RUB"))
    for value, name in ((address, "town"), (party, "name"), (payment, "uetr")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(value, name, "x")
        with pytest.raises(dataclasses.FrozenInstanceError):
            delattr(value, name)
    changed = dataclasses.replace(payment, settlement_amount_minor=126)
    assert type(changed) is Payment and changed.settlement_amount_minor == 126
    assert changed == dataclasses.replace(changed)


def test_every_field_must_be_given():
    with pytest.raises(TypeError):
        new_party("name only")


def test_only_slots_dataclasses_without_post_init_get_one():
    @dataclasses.dataclass(frozen=True)
    class NoSlots:
        name: str

    @dataclasses.dataclass(frozen=True, slots=True)
    class Checked:
        name: str

        def __post_init__(self) -> None:
            assert self.name

    for cls in (NoSlots, Checked):
        with pytest.raises(AssertionError):
            positional_constructor(cls)
