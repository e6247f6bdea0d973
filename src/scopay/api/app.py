"""The HTTP API: thin routes over the engine runner, one error shape, one auth check.

Every /v1 request is signed (api/signing.py, checked in api/security.py); what a caller may
see and move is decided in api/auth.py.
Errors are RFC 9457 problem details (application/problem+json).
"""

from __future__ import annotations

import asyncio
import importlib.resources
import logging
import sqlite3
from collections.abc import Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from scopay import __version__
from scopay.api import auth, signing
from scopay.api.admin import router as admin_router
from scopay.api.errors import (
    PROBLEM,
    PROBLEM_MEDIA_TYPE,
    XML_PATHS,
    ApiError,
    busy,
    invalid_input_detail,
    problem,
    rejected,
    store_failed,
    without_frames,
)
from scopay.api.iso import learn_used_return_ids
from scopay.api.iso import router as iso_router
from scopay.api.payments import DIRECT_ROUTES, amount_of
from scopay.api.payments import router as payments_router
from scopay.api.schemas import (
    AccountIdPath,
    AuditHeadOut,
    BalanceOut,
    HealthOut,
    KeyIn,
    ParticipantOut,
    TransferBatchIn,
    TransferIn,
    TransferOut,
)
from scopay.api.security import Caller, Guard, RateLimiter, ReplayGuard
from scopay.api.verifier import Verifier
from scopay.api.views import balance_out, participant_out
from scopay.domain.ledger import Transfer, TransferKind, TransferOutcome
from scopay.domain.participant import Role
from scopay.domain.rejection import REJECTION_TEXT
from scopay.engine.engine import CommandRefused
from scopay.engine.runner import LoopRunner, Runner, RunnerBusyError

log = logging.getLogger(__name__)

_RESOLUTIONS = (TransferKind.POST_PENDING, TransferKind.VOID_PENDING)


def create_app(runner: Runner, direct_routes: bool = True,
               on_shutdown: Callable[[], None] | None = None,
               rate_limiter: RateLimiter | None = None) -> FastAPI:
    """The API over the runner. With `direct_routes` the guard answers the hottest routes
    itself (api/payments.py DIRECT_ROUTES); without, they go through FastAPI like the rest.
    `on_shutdown` runs once the server has stopped taking requests, before it exits.
    `rate_limiter`: each participant's rate (by default RateLimiter's)."""
    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        if isinstance(runner, LoopRunner):
            runner.attach(asyncio.get_running_loop())  # the engine runs on the server's loop
        await asyncio.wrap_future(runner.call(lambda engine, _now: learn_used_return_ids(engine)))
        _app.state.verifier = await Verifier.start()  # signatures checked off the loop
        yield
        _app.state.verifier.stop()
        if on_shutdown is not None:
            # Here, not after the server returns: on SIGTERM uvicorn re-raises the signal
            # once it has shut down, and the process ends there.
            on_shutdown()

    app = FastAPI(
        title="scopay", version=__version__, lifespan=lifespan,
        description="Payment and settlement between the SCO states in their own currencies.",
        # scopay exports no OpenTelemetry data; without this FastAPI looks for a provider on
        # every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        # `/v1/accounts/` is no route: a redirect would lose the request's signature
        redirect_slashes=False,
        docs_url=None, redoc_url=None,  # served below, from scopay's own server
    )
    _serve_docs(app)
    engine = runner.engine
    app.state.runner = runner
    _install_error_handlers(app, DIRECT_ROUTES if direct_routes else {})
    app.state.replay_guard = ReplayGuard()
    app.state.rate_limiter = rate_limiter or RateLimiter()
    app.state.idempotency_in_flight = {}
    app.include_router(payments_router)
    app.include_router(admin_router)
    app.include_router(iso_router)
    app.openapi = lambda: _openapi(app)

    @app.get("/health", response_model=HealthOut, tags=["system"])
    async def health() -> HealthOut:
        # Unsigned, so nothing of the traffic (how many entries the journal holds grows with
        # each payment anyone makes): the network's reference data only.
        return HealthOut(status="ok", version=__version__, participants=len(engine.participants),
                         accounts=len(engine.accounts))

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def home() -> str:
        return _home_page(engine.participants.values())

    @app.get("/v1/participants", response_model=list[ParticipantOut], tags=["participants"],
             responses={401: PROBLEM})
    async def list_participants(caller: Caller) -> list[ParticipantOut]:
        return [participant_out(p) for p in engine.participants.values()]

    @app.get("/v1/participants/{bic}", response_model=ParticipantOut, tags=["participants"],
             responses={401: PROBLEM, 404: PROBLEM})
    async def get_participant(bic: str, caller: Caller) -> ParticipantOut:
        participant = engine.participants.get(bic)
        if participant is None:
            raise ApiError(404, "Not found", f"no participant {bic}")
        return participant_out(participant)

    @app.get("/v1/accounts", response_model=list[BalanceOut], tags=["accounts"],
             responses={401: PROBLEM})
    def list_accounts(caller: Caller) -> list[BalanceOut]:
        return [balance_out(view) for view in engine.balances()
                if auth.may_see_account(caller, engine.accounts[view.account_id])]

    @app.get("/v1/accounts/{account_id}", response_model=BalanceOut, tags=["accounts"],
             responses={401: PROBLEM, 404: PROBLEM})
    def get_account(account_id: AccountIdPath, caller: Caller) -> BalanceOut:
        account = engine.accounts.get(account_id)
        view = engine.balance(account_id)
        if account is None or view is None or not auth.may_see_account(caller, account):
            raise ApiError(404, "Not found", f"no account {account_id} visible to you")
        return balance_out(view)

    @app.post("/v1/transfers", response_model=TransferOut, status_code=201, tags=["transfers"],
              responses={401: PROBLEM, 404: PROBLEM, 409: PROBLEM, 422: PROBLEM})
    async def post_transfer(body: TransferIn, caller: Caller) -> TransferOut:
        transfer = _authorised_transfer(engine, caller, body)
        (outcome,) = await _submit(runner, [transfer])
        if outcome.rejection is not None:
            raise rejected(outcome.rejection)
        return _transfer_out(outcome, caller)

    @app.post("/v1/transfers/batch", response_model=list[TransferOut], tags=["transfers"],
              responses={401: PROBLEM, 404: PROBLEM, 422: PROBLEM})
    async def post_transfer_batch(body: TransferBatchIn, caller: Caller) -> list[TransferOut]:
        transfers: list[Transfer] = []
        earlier: dict[str, Transfer] = {}  # a pending made earlier in the batch may resolve
        for item in body.transfers:
            transfer = _authorised_transfer(engine, caller, item, earlier)
            transfers.append(transfer)
            if transfer.kind == TransferKind.PENDING:
                earlier.setdefault(transfer.id, transfer)
        return [_transfer_out(o, caller) for o in await _submit(runner, transfers)]

    # `:path`: ids may hold a '/' (a payment's transfer is pay/<uetr>), sent as is or as %2F
    @app.get("/v1/transfers/{transfer_id:path}", response_model=TransferOut, tags=["transfers"],
             responses={401: PROBLEM, 404: PROBLEM})
    def get_transfer(transfer_id: str, caller: Caller) -> TransferOut:
        """One of the caller's own transfers by its id, or any settled transfer on an
        account it may see by the ledger's id (as statements show it)."""
        found = engine.store.journal_entry(
            auth.ledger_transfer_id(caller.participant.bic, transfer_id)
        ) or engine.store.journal_entry(transfer_id)
        if found is None:
            raise ApiError(404, "Not found", f"no settled transfer {transfer_id} visible to you")
        transfer = found[1].transfer
        accounts = (engine.accounts[transfer.debit_account_id],
                    engine.accounts[transfer.credit_account_id])
        if not any(auth.may_see_account(caller, account) for account in accounts):
            raise ApiError(404, "Not found", f"no settled transfer {transfer_id} visible to you")
        return _transfer_out(TransferOutcome(transfer.id, None, found[1].timestamp_us), caller)

    @app.post("/v1/reconcile", tags=["operator"], responses={401: PROBLEM, 403: PROBLEM})
    async def reconcile(caller: Caller) -> dict:
        if caller.role != Role.OPERATOR:
            raise ApiError(403, "Forbidden", "only the operator reconciles the ledger")
        report = await asyncio.wrap_future(runner.call(lambda e, _now: e.reconcile()))
        return {"ok": report.ok, "journal_entries": report.journal_entries,
                "accounts": report.accounts, "mismatches": report.mismatches,
                "invariant_violations": report.invariant_violations}

    @app.get("/v1/audit/head", response_model=AuditHeadOut, tags=["audit"],
             responses={401: PROBLEM, 403: PROBLEM})
    def audit_head(caller: Caller) -> AuditHeadOut:
        """The audit log's last entry, for the operator, auditors and settlement agents to
        keep outside scopay (see `scopay audit verify --anchor`)."""
        if not auth.may_read_audit_head(caller):
            raise ApiError(403, "Forbidden", "the audit head is for the operator, auditors "
                           "and settlement agents")
        head = engine.store.audit_head()
        if head is None:
            return AuditHeadOut(seq=0, sha256="0" * 64, at_us=0)
        seq, sha256, at_us = head
        return AuditHeadOut(seq=seq, sha256=sha256, at_us=at_us)

    @app.post("/v1/participants/{bic}/keys", status_code=201, tags=["operator"],
              responses={401: PROBLEM, 403: PROBLEM, 404: PROBLEM, 409: PROBLEM,
                         422: PROBLEM})
    async def register_key(bic: str, body: KeyIn, caller: Caller) -> dict:
        """Register a participant's Ed25519 public key; its requests are signed with it."""
        if caller.role != Role.OPERATOR:
            raise ApiError(403, "Forbidden", "only the operator registers keys")
        if bic not in engine.participants:
            raise ApiError(404, "Not found", f"no participant {bic}")
        if not signing.is_public_key(body.public_key):
            raise ApiError(422, "Invalid key", "public_key: 32 bytes of Ed25519, base64url")
        new_id = signing.new_key_id()
        try:  # the same public key again keeps its id: a retry never makes a second one
            key_id = await asyncio.wrap_future(
                runner.call(lambda e, now: e.register_key(new_id, bic, body.public_key, now)))
        except CommandRefused as error:
            raise ApiError(409, "Refused", str(error)) from None
        return {"key_id": key_id, "participant_bic": bic}

    @app.delete("/v1/keys/{key_id}", status_code=204, response_class=Response, tags=["operator"],
                responses={401: PROBLEM, 404: PROBLEM})
    async def revoke_key(key_id: str, caller: Caller) -> None:
        """Revoke a key at once: the operator any key, a participant its own."""
        found = engine.keys.get(key_id)
        if found is None or (caller.role != Role.OPERATOR
                             and found[0] != caller.participant.bic):
            raise ApiError(404, "Not found", f"no key {key_id} that you may revoke")
        try:
            await asyncio.wrap_future(runner.call(lambda e, now: e.revoke_key(key_id, now)))
        except CommandRefused as error:  # the operator's last key
            raise ApiError(409, "Refused", str(error)) from None

    return app


# Answers any /v1 operation may give before or besides its own: the signed-request guard,
# input validation, size and rate limits, idempotency keys, capacity.
_COMMON_PROBLEMS = {
    "400": "Idempotency-Key missing or malformed on a state-changing call",
    "401": "Unsigned, stale, replayed or wrongly signed request, or an unknown or revoked key",
    "403": "The caller's role may not do this",
    "404": "No such object visible to the caller",
    "409": "The object exists with other content, is not in a state that allows this, or the "
           "command breaks a rule of the system as it stands (the detail says which)",
    "413": "Request body too large",
    "431": "Request line and headers over 64 KiB together",
    "422": "Invalid input, a refused command, or an Idempotency-Key reused for another request",
    "429": "Over the participant's rate limit (see Retry-After)",
    "503": "scopay is at capacity, or could not write to its database; retry later with the "
           "same Idempotency-Key (see Retry-After)",
}
_RETRY_AFTER = {"Retry-After": {"description": "whole seconds to wait before trying again",
                                "schema": {"type": "integer", "minimum": 1}}}
_REPLAYED = {"Idempotent-Replay": {
    "description": "`true` when this is the answer kept under the request's Idempotency-Key, "
                   "given again", "schema": {"type": "string", "enum": ["true"]}}}
# Answers that are ISO 20022 messages, documented as such (FastAPI cannot see it).
_XML_ANSWERS = {("post", "/v1/iso20022"), ("get", "/v1/mailbox/{seq}/message"),
                ("get", "/v1/accounts/{account_id}/statement")}
_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key", "in": "header", "required": True,
    "description": "a retry with the same key gets the first answer, and changes nothing "
                   "more (kept 24 hours)",
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,64}$"},
}
# Every /v1 call carries all four signing headers (docs/api.md, "Signed requests"); OpenAPI
# has no scheme for a request signature, so each header is named as an API key in a header,
# required together.
_SECURITY_SCHEMES = {
    "ScopayKeyId": {"type": "apiKey", "in": "header", "name": "X-Scopay-Key-Id",
                    "description": "the id of the participant's registered Ed25519 key"},
    "ScopayTimestamp": {"type": "apiKey", "in": "header", "name": "X-Scopay-Timestamp",
                        "description": "Unix time in seconds, within 300 s of scopay's"},
    "ScopayNonce": {"type": "apiKey", "in": "header", "name": "X-Scopay-Nonce",
                    "description": "16-64 of A-Z a-z 0-9 _ -, never reused"},
    "ScopaySignature": {
        "type": "apiKey", "in": "header", "name": "X-Scopay-Signature",
        "description": "base64url Ed25519 signature of 'scopay-v1', the method, the path and "
                       "query as sent, the timestamp, the nonce, the Idempotency-Key (or empty) "
                       "and the body's SHA-256 hex, one a line"},
}
# Titles (and so problem types) of the answers Starlette gives itself, as routes give them.
_HTTP_ERROR_TITLES = {404: "Not found", 405: "Method not allowed", 422: "Invalid request"}


DOCS_ASSETS = "/docs-assets"  # Swagger UI and ReDoc, from the fastapi-offline package


def _serve_docs(app: FastAPI) -> None:
    """/docs (Swagger UI) and /redoc with their scripts served by scopay itself, not fetched
    from a CDN: a central bank's network often reaches no CDN, and the page was blank."""
    assets = importlib.resources.files("fastapi_offline") / "static"
    app.mount(DOCS_ASSETS, StaticFiles(directory=str(assets)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url, title=f"{app.title} API",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png")

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url=app.openapi_url, title=f"{app.title} API",
                              redoc_js_url=f"{DOCS_ASSETS}/redoc.standalone.js",
                              redoc_favicon_url=f"{DOCS_ASSETS}/favicon.png",
                              with_google_fonts=False)


def _openapi(app: FastAPI) -> dict:
    """The OpenAPI document, with every problem answer of every /v1 operation documented."""
    if app.openapi_schema:
        return app.openapi_schema
    from fastapi.openapi.utils import get_openapi

    schema = get_openapi(title=app.title, version=app.version, description=app.description,
                         routes=app.routes)
    problem_ref = {"$ref": "#/components/schemas/Problem"}
    schema.setdefault("components", {})["securitySchemes"] = _SECURITY_SCHEMES
    xml = {"application/xml": {"schema": {"type": "string"}}}
    for path, operations in schema["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for method, operation in operations.items():
            operation["security"] = [{name: [] for name in _SECURITY_SCHEMES}]
            if method.upper() in signing.STATE_CHANGING_METHODS:
                operation.setdefault("parameters", []).append(_IDEMPOTENCY_KEY)
            if (method, path) in _XML_ANSWERS:
                operation["responses"]["200"]["content"] = xml
            if (method, path) == ("post", "/v1/iso20022"):
                operation["requestBody"] = {"required": True, "content": {
                    "application/xml": {"schema": {
                        "type": "string", "description": "one ISO 20022 message (pacs.008, "
                        "pacs.009, pacs.004, camt.056), bare or in a head.001 envelope"}}}}
            responses = operation.setdefault("responses", {})
            for status, text in _COMMON_PROBLEMS.items():
                content = {"application/problem+json": {"schema": problem_ref}}
                if path in XML_PATHS:
                    content["application/problem+xml"] = {"schema": {"type": "string"}}
                responses[status] = {"description": text, "content": content}
                if status in ("429", "503"):
                    responses[status]["headers"] = dict(_RETRY_AFTER)
            if method.upper() in signing.STATE_CHANGING_METHODS:  # kept answers, replayed
                for status, answer in responses.items():
                    if status[0] in "24" and status not in ("401", "413", "429"):
                        answer.setdefault("headers", {}).update(_REPLAYED)
    app.openapi_schema = schema
    return schema


def _install_error_handlers(app: FastAPI, direct: dict) -> None:
    @app.exception_handler(ApiError)
    async def on_api_error(_request: Request, error: ApiError) -> Response:
        without_frames(error)
        return Response(error.problem_body(), status_code=error.status,
                        media_type=PROBLEM_MEDIA_TYPE)

    @app.exception_handler(RunnerBusyError)
    async def on_busy(request: Request, error: RunnerBusyError) -> Response:
        # Any route's command may find the engine's queue full; 5xx answers are not kept
        # for the idempotency key, so a retry runs again.
        return busy(request.url.path, str(error))

    @app.exception_handler(sqlite3.Error)
    async def on_store_failed(request: Request, error: sqlite3.Error) -> Response:
        log.error("a commit failed; the request was answered 503: %s", error)
        return store_failed(request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(_request: Request, error: StarletteHTTPException) -> Response:
        # A body FastAPI could not even decode is invalid input like any other: 422.
        status = 422 if error.status_code == 400 else error.status_code
        title = _HTTP_ERROR_TITLES.get(status, "Refused")
        return problem(status, title, str(error.detail))

    @app.exception_handler(RequestValidationError)
    async def on_invalid(_request: Request, error: RequestValidationError) -> Response:
        return problem(422, "Invalid request", invalid_input_detail(error.errors()))

    app.add_middleware(Guard, direct=direct)


def _authorised_transfer(engine, caller: auth.Caller, body: TransferIn,
                         earlier: dict[str, Transfer] | None = None) -> Transfer:
    """Refuse malformed input and foreign accounts before a command exists. `earlier`: the
    pending transfers an earlier item of the same batch makes (by ledger id)."""
    transfer = _transfer_from(body, caller.participant.bic)
    if transfer.kind in _RESOLUTIONS:
        # A pending transfer the caller may not resolve is answered as one that does not
        # exist: the answer names neither it nor its accounts. (One made earlier in the
        # batch is the caller's own, checked as it was made.)
        pending = engine.ledger.transfer_of(transfer.pending_id or "") or (
            earlier or {}).get(transfer.pending_id or "")
        if pending is None or not _may_debit(engine, caller, pending.debit_account_id,
                                             pending.credit_account_id):
            raise ApiError(404, "Not found", "no pending transfer of that id that you may resolve")
    elif not _may_debit(engine, caller, transfer.debit_account_id, transfer.credit_account_id):
        raise ApiError(404, "Not found",
                       f"no accounts {transfer.debit_account_id} and "
                       f"{transfer.credit_account_id} between which you may move money")
    return transfer


def _may_debit(engine, caller: auth.Caller, debit_id: int, credit_id: int) -> bool:
    debit, credit = engine.accounts.get(debit_id), engine.accounts.get(credit_id)
    return debit is not None and auth.may_see_account(caller, debit) and (
        credit is None or auth.may_move(caller, debit, credit))


def _transfer_from(body: TransferIn, bic: str) -> Transfer:
    """The ledger's command, with the caller's ids put in its own namespace."""
    amount_minor = 0
    if body.currency:
        amount_minor = amount_of(body.amount, body.currency)
    elif body.kind not in _RESOLUTIONS or body.amount not in ("0", ""):
        raise ApiError(422, "Invalid request", "currency is required with an amount")
    pending_id = None if body.pending_id is None else auth.ledger_transfer_id(bic, body.pending_id)
    return Transfer(auth.ledger_transfer_id(bic, body.id), body.debit_account_id,
                    body.credit_account_id, amount_minor, body.currency, TransferKind(body.kind),
                    pending_id, body.timeout_s, body.linked)


async def _submit(runner: Runner, transfers: list[Transfer]) -> list[TransferOutcome]:
    return await asyncio.wrap_future(runner.submit(transfers))  # busy: on_busy answers 503


def _transfer_out(outcome: TransferOutcome, caller: auth.Caller) -> TransferOut:
    rejection = outcome.rejection
    return TransferOut(id=auth.shown_transfer_id(caller.participant.bic, outcome.id),
                       status="accepted" if rejection is None else "rejected",
                       rejection=rejection.value if rejection else None,
                       detail=REJECTION_TEXT[rejection] if rejection else None,
                       timestamp_us=outcome.timestamp_us)


def _home_page(participants) -> str:
    """The unsigned home page: what scopay is and its settlement agents, nothing of the
    traffic."""
    agents = sorted((p for p in participants if p.role == Role.SETTLEMENT_AGENT),
                    key=lambda p: p.settlement_currency or "")
    rows = "".join(
        f"<tr><td>{p.settlement_currency}</td><td>{_escape(p.name)}</td><td>{p.bic}</td></tr>"
        for p in agents
    )
    return (
        "<!doctype html><html lang=en><meta charset=utf-8><title>scopay</title>"
        "<body style='font-family:sans-serif;max-width:48rem;margin:2rem auto'>"
        f"<h1>scopay {__version__}</h1><p>Settlement between the SCO states in their own "
        "currencies.</p>"
        "<h2>Settlement currencies</h2><table><tr><th>currency</th><th>settlement agent</th>"
        f"<th>BIC</th></tr>{rows}</table>"
        "<p>API: <a href=/docs>/docs</a> (OpenAPI at <a href=/openapi.json>/openapi.json</a>)."
        " Balances: <code>scopay balances</code>, or a signed GET /v1/accounts.</p>"
        "</body></html>"
    )


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
