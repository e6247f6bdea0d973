"""One error shape for the whole API: RFC 9457 problem details, and the one table from a
rejection reason to an HTTP status."""

from __future__ import annotations

from fastapi.responses import JSONResponse

from scopay.api.schemas import Problem
from scopay.domain.rejection import Rejection

PROBLEM = {"model": Problem, "content": {"application/problem+json": {}}}

# The one table from a rejection to an HTTP status; anything else refused is 422.
REJECTION_STATUS = {
    Rejection.DEBIT_ACCOUNT_NOT_FOUND: 404,
    Rejection.CREDIT_ACCOUNT_NOT_FOUND: 404,
    Rejection.PENDING_TRANSFER_NOT_FOUND: 404,
    Rejection.PAYMENT_EXISTS_WITH_DIFFERENT_CONTENT: 409,
    Rejection.QUEUE_FULL: 503,
}
for _rejection in Rejection:
    if _rejection.value.startswith("exists_with_different"):
        REJECTION_STATUS[_rejection] = 409


class ApiError(Exception):
    def __init__(self, status: int, title: str, detail: str,
                 rejection: Rejection | None = None) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.rejection = status, title, detail, rejection


def problem(status: int, title: str, detail: str, rejection: str | None = None) -> JSONResponse:
    slug = title.lower().replace(" ", "-")
    body = Problem(type=f"/problems/{slug}", title=title, status=status, detail=detail,
                   rejection=rejection)
    return JSONResponse(body.model_dump(), status_code=status,
                        media_type="application/problem+json")
