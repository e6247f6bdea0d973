"""A camt.056 or pacs.004 names its payment by UETR and, optionally, by its other original
references: when any reference it gives names another payment (a mistyped UETR), no payment is
cancelled or returned, and the answer is the one for a payment that does not exist."""

import uuid
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from test_iso_api import BANK_A, BANK_B, XML, message, payment  # this folder's helpers
from test_returns_api import balances, pacs004, pay, post_return, statuses

from scopay.iso20022.camt056 import build_camt056
from scopay.iso20022.message import parse_message
from scopay.iso20022.model import CancellationRequest, TransactionCancellation
from scopay.iso20022.pacs004 import build_pacs004
from scopay.iso20022.pacs008 import PACS008_V08, build_pacs008
from scopay.iso20022.pacs009 import PACS009_V08

MISMATCHES = {
    "end to end id": {"original_end_to_end_id": "E2E-SOMEONE-ELSE"},
    "instruction id": {"original_instruction_id": "INSTR-OTHER"},
    "amount": {"original_amount_minor": 1},
    "currency": {"original_currency": "RUB"},
    "message name": {"original_message_type": PACS009_V08},
}


def cancel(live_server, item: TransactionCancellation):
    request = CancellationRequest("CXL" + uuid.uuid4().hex[:12], BANK_A, BANK_B,
                                  int(datetime.now(UTC).timestamp()) * 1_000_000, (item,))
    with live_server.client(BANK_A) as a:
        answer = a.post("/v1/iso20022", content=build_camt056(request), headers=XML)
    assert answer.status_code == 200, answer.text
    return parse_message(answer.content)[1].transactions[0]


def queued(live_server):
    waits = payment(96_000_000_000)
    with live_server.client(BANK_A) as a:
        body = build_pacs008(message(waits), PACS008_V08)
        assert a.post("/v1/iso20022", content=body, headers=XML).status_code == 200
    return waits


@pytest.mark.parametrize("wrong", MISMATCHES.values(), ids=MISMATCHES.keys())
def test_a_cancellation_whose_references_name_another_payment_cancels_nothing(live_server,
                                                                               wrong):
    waits = queued(live_server)
    right = TransactionCancellation(
        "M1", PACS008_V08, "DUPL", original_uetr=waits.uetr,
        original_end_to_end_id=waits.end_to_end_id, original_instruction_id=waits.instruction_id,
        original_amount_minor=waits.settlement_amount_minor, original_currency="CNY")
    status = cancel(live_server, replace(right, **wrong))
    assert (status.status.value, status.reason_code) == ("RJCR", "NOOR")
    assert live_server.engine.payment(waits.uetr).status.value == "queued"
    status = cancel(live_server, right)  # every reference right: cancelled
    assert (status.status.value, status.reason_code) == ("ACCR", None)
    assert live_server.engine.payment(waits.uetr).status.value == "cancelled"


@pytest.mark.parametrize("wrong", MISMATCHES.values(), ids=MISMATCHES.keys())
def test_a_return_whose_references_name_another_payment_returns_nothing(live_server, wrong):
    paid = pay(live_server, 2_300)
    _, body = pacs004((paid.uetr, 2_300))
    before = balances(live_server)
    _, refused = post_return(live_server, BANK_B, _with(body, paid, wrong))
    (not_found,) = statuses(refused)
    _, unknown = post_return(live_server, BANK_B, pacs004((str(uuid.uuid4()), 2_300))[1])
    assert not_found == statuses(unknown)[0] and not_found[0] == "RJCT"
    assert balances(live_server) == before
    assert live_server.engine.payment(paid.uetr).status.value == "settled"
    _, returned = post_return(live_server, BANK_B, _with(body, paid, {}))
    assert statuses(returned)[0][0] == "ACSC"
    assert live_server.engine.payment(paid.uetr).status.value == "returned"


def _with(body: bytes, paid, wrong: dict) -> bytes:
    """The pacs.004 with the payment's original references, some of them changed."""
    _, instruction = parse_message(body)
    (item,) = instruction.returns
    item = replace(item, **{"original_end_to_end_id": paid.end_to_end_id,
                            "original_instruction_id": paid.instruction_id,
                            "original_amount_minor": paid.settlement_amount_minor,
                            "original_currency": "CNY", **wrong})
    return build_pacs004(replace(instruction, message_id="R" + uuid.uuid4().hex[:12],
                                 returns=(item,)))
