"""Building refuses (ValueError) a value the ISO message cannot hold, rather than send an
invalid message or drop part of it."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from scopay.domain.payment import ChargeBearer, Party, Payment
from scopay.iso20022.model import CreditTransferMessage
from scopay.iso20022.pacs008 import build_pacs008
from scopay.iso20022.pacs009 import build_pacs009

DAY_US = 86_400_000_000
PAYMENT = Payment(
    uetr="8a562c67-ca16-48ba-b074-65581be6f011", instruction_id="I1", end_to_end_id="E1",
    debtor_agent="ICBKCNBJ", creditor_agent="SABRRUMM", debtor=Party("上海丝路贸易有限公司"),
    creditor=Party("ООО «Северный Шёлк»"), settlement_amount_minor=100, settlement_currency="RUB",
    message_id="M1",
)


def message(**changes) -> CreditTransferMessage:
    return CreditTransferMessage("M1", 1_795_939_200_000_000, (replace(PAYMENT, **changes),))


@pytest.mark.parametrize(("changes", "error"), [
    ({"intermediary_agents": ("CITIUS33",) * 4}, "at most 3 intermediary agents"),
    ({"debtor": Party("x" * 141)}, "Nm must be 1 to 140 characters"),
    ({"settlement_amount_minor": 0}, "settlement amount must be positive"),
    ({"settlement_amount_minor": 10**19}, "outside what an ISO amount holds"),
    ({"exchange_rate": Decimal("1.12345678901")}, "exchange rate"),
    ({"purpose": "GOODS"}, "not an ISO external code"),
    ({"message_id": "OTHER"}, "belongs to message OTHER"),
    ({"earliest_us": 1_795_939_200_000_000, "latest_us": 1_795_939_200_000_000 + DAY_US},
     "must fall on one UTC date"),
    ({"instructed_amount_minor": 5}, "instructed amount needs its currency"),
])
def test_pacs008_refuses_what_it_cannot_hold(changes, error):
    with pytest.raises(ValueError, match=error):
        build_pacs008(message(**changes))


@pytest.mark.parametrize("changes", [
    {"charge_bearer": ChargeBearer.DEBTOR},
    {"charges": ((100, "RUB", "SABRRUMM"),)},
    {"instructed_amount_minor": 5, "instructed_currency": "CNY"},
])
def test_pacs009_refuses_customer_transfer_fields(changes):
    with pytest.raises(ValueError, match="a pacs.009 carries no"):
        build_pacs009(message(**changes))


def test_an_empty_group_is_not_a_message():
    with pytest.raises(ValueError, match="1 to 10000 payments"):
        build_pacs008(CreditTransferMessage("M1", 0, ()))
