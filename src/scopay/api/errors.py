"""One error shape for the whole API: RFC 9457 problem details, and the one table from a
rejection reason to an HTTP status."""

from __future__ import annotations

from xml.sax.saxutils import escape

from fastapi.responses import Response

from scopay.api.schemas import Problem
from scopay.domain.rejection import REJECTION_TEXT, Rejection

PROBLEM = {"model": Problem, "content": {"application/problem+json": {}}}

# The one table from a rejection to an HTTP status; anything else refused is 422.
REJECTION_STATUS = {
    Rejection.DEBIT_ACCOUNT_NOT_FOUND: 404,
    Rejection.CREDIT_ACCOUNT_NOT_FOUND: 404,
    Rejection.PENDING_TRANSFER_NOT_FOUND: 404,
    Rejection.PAYMENT_EXISTS_WITH_DIFFERENT_CONTENT: 409,
    Rejection.MESSAGE_ID_USED: 409,
}
for _rejection in Rejection:
    if _rejection.value.startswith("exists_with_different"):
        REJECTION_STATUS[_rejection] = 409


class ApiError(Exception):
    def __init__(self, status: int, title: str, detail: str,
                 rejection: Rejection | None = None, iso_code: str | None = None,
                 retry_after_s: int | None = None) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.rejection = status, title, detail, rejection
        self.iso_code = iso_code
        self.retry_after_s = retry_after_s  # sent as Retry-After, when the client may retry

    def problem_body(self) -> bytes:
        return problem_body(self.status, self.title, self.detail,
                            self.rejection.value if self.rejection else None, self.iso_code)


def without_frames(error: ApiError) -> ApiError:
    """A refusal with no traceback and no exception chained to it: each holds frames, and a
    frame that holds the refusal, or the request (a bulk request's thousand payments), makes
    a reference cycle that keeps them in memory until the garbage collector's pass over the
    generation they reached. A refusal is an answer, not a defect: its detail says why, and
    nobody reads its traceback. For refusals kept to be raised later, and once answered."""
    error.__traceback__ = None
    error.__context__ = error.__cause__ = None
    return error


PROBLEM_MEDIA_TYPE = "application/problem+json"
# Routes that take ISO 20022 XML and refuse in XML, with an ISO reason code (problem_xml).
XML_PATHS = frozenset({"/v1/iso20022"})


# The store failed a commit (disk full, an I/O error, a database file gone read-only): the
# engine undid the batch in memory, nothing of it happened, and a retry may succeed later.
STORE_FAILED_TEXT = ("scopay could not write to its database; nothing of this request was "
                     "done: retry later with the same Idempotency-Key")
STORE_RETRY_AFTER_S = 5
BUSY_RETRY_AFTER_S = 1  # the engine's queue drains within a second or so


def refusal(path: str, error: ApiError) -> Response:
    """A refusal outside a route's own answers (signing, rate, capacity, the store): in XML
    where the route speaks XML (NARR: no ISO code names these), else problem JSON; with
    Retry-After when the error says when to try again."""
    answer = (problem_xml(error.status, "NARR", error.detail) if path in XML_PATHS
              else problem(error.status, error.title, error.detail))
    if error.retry_after_s is not None:
        answer.headers["Retry-After"] = str(error.retry_after_s)
    return answer


def busy(path: str, text: str) -> Response:
    """503 Busy (the engine's queue is full), with Retry-After; in XML on XML routes."""
    detail = f"{text}; retry with the same Idempotency-Key" if path in XML_PATHS else text
    return refusal(path, ApiError(503, "Busy", detail, retry_after_s=BUSY_RETRY_AFTER_S))


def store_failed(path: str) -> Response:
    """The answer to a request whose commit the store failed: 503, in XML on XML routes."""
    return refusal(path, ApiError(503, "Storage unavailable", STORE_FAILED_TEXT,
                                  retry_after_s=STORE_RETRY_AFTER_S))


def media_type_for(status: int) -> str:
    """JSON for an answer, problem details for a refusal."""
    return PROBLEM_MEDIA_TYPE if status >= 400 else "application/json"


def media_type_of_answer(status: int, body: bytes) -> str | None:
    """The media type of a kept answer, replayed for a retry: the ISO 20022 endpoint answers
    in XML (a message, or a problem in XML), which starts with '<'; every other one in JSON,
    which never does."""
    if body.startswith(b"<"):
        return "application/problem+xml" if status >= 400 else "application/xml"
    if status == 204:  # no content, so no content type
        return None
    return media_type_for(status)


def rejected(rejection: Rejection, iso_code: str | None = None) -> ApiError:
    """The refusal of a command the ledger or the RTGS rejected, in the one table's status
    (with, for a payment, the ISO reason code its pacs.002 would give)."""
    return ApiError(REJECTION_STATUS.get(rejection, 422), "Rejected", REJECTION_TEXT[rejection],
                    rejection, iso_code)


def problem(status: int, title: str, detail: str, rejection: str | None = None) -> Response:
    return Response(problem_body(status, title, detail, rejection), status_code=status,
                    media_type=PROBLEM_MEDIA_TYPE)


def problem_body(status: int, title: str, detail: str, rejection: str | None = None,
                 iso_code: str | None = None) -> bytes:
    slug = title.lower().replace(" ", "-")
    return Problem(type=f"/problems/{slug}", title=title, status=status, detail=detail,
                   rejection=rejection, iso_code=iso_code).model_dump_json().encode()


def invalid_input_detail(errors: list) -> str:
    """The first of pydantic's complaints about a request, in one line."""
    first = errors[0] if errors else {"loc": (), "msg": "invalid"}
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
    return f"{where or 'body'}: {first.get('msg')}"


def problem_xml(status: int, reason_code: str, detail: str) -> Response:
    """RFC 9457 problem details in XML, with the ISO 20022 reason code."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<problem xmlns="urn:ietf:rfc:7807">'
        f"<type>/problems/iso20022-{reason_code.lower()}</type>"
        f"<title>Message refused</title><status>{status}</status>"
        f"<detail>{escape(detail)}</detail><reason_code>{escape(reason_code)}</reason_code>"
        "</problem>"
    )
    return Response(body.encode(), status_code=status, media_type="application/problem+xml")
