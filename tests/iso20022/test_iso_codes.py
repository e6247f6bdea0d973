"""The one table from ledger rejections to ISO reason codes is complete and well formed."""

from __future__ import annotations

import re
from pathlib import Path

from scopay.domain.payment import PaymentStatus
from scopay.domain.rejection import Rejection
from scopay.iso20022.codes import (
    PAYMENT_STATUS_CODE,
    REJECTION_REASON_CODE,
    ReasonCode,
    TransactionStatus,
    reason_for,
)


def test_every_rejection_has_an_iso_reason_code():
    missing = set(Rejection) - set(REJECTION_REASON_CODE)
    assert not missing, f"rejections without an ISO reason code: {sorted(missing)}"


def test_reason_codes_are_four_character_external_codes():
    assert all(re.fullmatch(r"[A-Z0-9]{4}", code) for code in ReasonCode)


def test_insufficient_liquidity_is_reported_as_insufficient_funds():
    assert reason_for(Rejection.INSUFFICIENT_LIQUIDITY) == (
        "AM04", "debit account lacks the funds above its floor")


def test_rules_without_an_iso_code_are_narrated():
    code, text = reason_for(Rejection.PENDING_TRANSFER_EXPIRED)
    assert code == ReasonCode.NARRATIVE
    assert text


def test_reused_ids_with_other_content_are_duplicates():
    duplicates = [r for r in Rejection if r.value.startswith("exists_with_different")]
    assert duplicates
    assert {REJECTION_REASON_CODE[r] for r in duplicates} == {ReasonCode.DUPLICATE_PAYMENT}


def test_every_payment_status_has_its_report_code():
    assert set(PAYMENT_STATUS_CODE) == set(PaymentStatus)
    settled = PAYMENT_STATUS_CODE[PaymentStatus.SETTLED]
    assert settled == TransactionStatus.ACCEPTED_SETTLEMENT_COMPLETED
    assert PAYMENT_STATUS_CODE[PaymentStatus.REJECTED] == TransactionStatus.REJECTED


DOCS = Path(__file__).resolve().parents[2] / "docs"


def documented_rows(text: str, header: str) -> list[tuple[list[str], list[str], list[str]]]:
    """The rows of the markdown table under `header`: (rejection names, other cells...)."""
    lines = text[text.index(header):].splitlines()[2:]
    rows = []
    for line in lines:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows.append((re.findall(r"`([a-z_*]+)`", cells[0]), cells[1], cells[2]))
    return rows


def rejections_named(name: str) -> list[Rejection]:
    if name.endswith("*"):
        return [r for r in Rejection if r.value.startswith(name[:-1])]
    return [Rejection(name)]


def test_the_api_guides_table_of_rejections_is_what_scopay_answers():
    """docs/api.md tells integrators each rejection's HTTP status and ISO reason code: each
    row must be what the one table (and the API's status table) gives."""
    from scopay.api.errors import REJECTION_STATUS

    rows = documented_rows((DOCS / "api.md").read_text(),
                           "| `rejection` | HTTP | ISO reason")
    assert len(rows) >= 9
    for names, http, iso in rows:
        codes = [code.strip() for code in iso.split("/")]
        for n, name in enumerate(names):
            code = codes[n] if len(codes) == len(names) else codes[0]
            for rejection in rejections_named(name):
                assert REJECTION_REASON_CODE[rejection].value == code, rejection
                assert str(REJECTION_STATUS.get(rejection, 422)) == http, rejection
