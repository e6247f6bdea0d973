"""Who is calling: every /v1 request is signed (api/signing.py), checked here in one place.

Also here, because they guard the same door: the replay guard (each nonce once within the
time window), the per-participant rate limit, and idempotency keys (a retried state-changing
request gets the first answer again, and a reused key with another request is refused).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import Response

from scopay.api import auth, signing
from scopay.api.errors import ApiError, problem
from scopay.engine.runner import EngineRunner

NONCES_REMEMBERED_MAX = 1_000_000  # seen nonces kept (each only for the time window)
RATE_PER_S = 10_000  # sustained requests per second per participant
RATE_BURST = 20_000
IDEMPOTENT_BODY_BYTES_MAX = 1024 * 1024
REQUEST_BYTES_MAX = 4 * 1024 * 1024  # answers larger than this are not kept for replay


class ReplayGuard:
    """Nonces seen within the signing window. Memory only: after a restart a captured
    request could be replayed within the window; idempotency keys and payment ids make such a
    replay change nothing."""

    def __init__(self) -> None:
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()

    def first_use(self, key_id: str, nonce: str, now_s: float) -> bool:
        while self._seen:
            (oldest, seen_at) = next(iter(self._seen.items()))
            if now_s - seen_at <= 2 * signing.SKEW_S_MAX and len(self._seen) < (
                NONCES_REMEMBERED_MAX
            ):
                break
            self._seen.pop(oldest)
        if (key_id, nonce) in self._seen:
            return False
        self._seen[(key_id, nonce)] = now_s
        return True


class RateLimiter:
    """A token bucket per participant: RATE_PER_S sustained, RATE_BURST at once."""

    def __init__(self, rate_per_s: float = RATE_PER_S, burst: float = RATE_BURST) -> None:
        self.rate_per_s, self.burst = rate_per_s, burst
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, bic: str, now_s: float) -> float:
        """0 when allowed; else seconds to wait before trying again."""
        tokens, at = self._buckets.get(bic, (self.burst, now_s))
        tokens = min(self.burst, tokens + (now_s - at) * self.rate_per_s)
        if tokens < 1:
            self._buckets[bic] = (tokens, now_s)
            return (1 - tokens) / self.rate_per_s
        self._buckets[bic] = (tokens - 1, now_s)
        return 0.0


async def current_caller(request: Request) -> auth.Caller:
    caller = getattr(request.state, "caller", None)
    if caller is None:
        raise ApiError(401, "Unauthenticated", "this route needs a signed request")
    return caller


Caller = Annotated[auth.Caller, Depends(current_caller)]


async def authenticate(request: Request, body: bytes) -> auth.Caller:
    """Check the request's signature; refuse stale, replayed, unknown or forged requests."""
    headers = request.headers
    key_id = headers.get(signing.KEY_ID_HEADER, "")
    timestamp = headers.get(signing.TIMESTAMP_HEADER, "")
    nonce = headers.get(signing.NONCE_HEADER, "")
    signature = headers.get(signing.SIGNATURE_HEADER, "")
    idempotency_key = headers.get(signing.IDEMPOTENCY_HEADER, "")
    if not (key_id and timestamp and nonce and signature):
        raise ApiError(401, "Unauthenticated",
                       "sign the request: X-Scopay-Key-Id, -Timestamp, -Nonce and -Signature")
    now_s = time.time()
    if not _is_unix_seconds(timestamp) or abs(now_s - int(timestamp)) > signing.SKEW_S_MAX:
        raise ApiError(401, "Unauthenticated",
                       f"timestamp more than {signing.SKEW_S_MAX} s away from scopay's clock")
    if not signing.NONCE_PATTERN.fullmatch(nonce):
        raise ApiError(401, "Unauthenticated", "nonce must be 16-64 of A-Z a-z 0-9 _ -")
    runner: EngineRunner = request.app.state.runner
    engine = runner.engine
    found = engine.keys.get(key_id)
    path = _raw_target(request)
    message = signing.canonical_request(request.method, path, timestamp, nonce,
                                        idempotency_key, body)
    if found is None or found[2] is not None or not signing.verify(found[1], signature,
                                                                     message):
        raise ApiError(401, "Unauthenticated", "unknown or revoked key, or a wrong signature")
    if not request.app.state.replay_guard.first_use(key_id, nonce, now_s):
        raise ApiError(401, "Unauthenticated", "this nonce was used already (replay)")
    participant = engine.participants.get(found[0])
    if participant is None:
        raise ApiError(401, "Unauthenticated", "key of an unknown participant")
    return auth.Caller(participant, key_id)


async def _read_body(request: Request) -> bytes | None:
    """The body, read at most REQUEST_BYTES_MAX bytes far; None when it is longer."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > REQUEST_BYTES_MAX):
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > REQUEST_BYTES_MAX:
            return None
        chunks.append(chunk)
    body = b"".join(chunks)
    request._body = body  # noqa: SLF001 — so that the route reads the same bytes again
    return body


def _is_unix_seconds(text: str) -> bool:
    return 0 < len(text) <= 12 and text.isascii() and text.isdigit()


def _raw_target(request: Request) -> str:
    """The path and query exactly as sent (percent-encoding kept): what the client signed."""
    raw_path = request.scope.get("raw_path") or request.url.path.encode()
    query = request.scope.get("query_string", b"")
    return (raw_path + (b"?" + query if query else b"")).decode("latin-1")


def request_digest(request: Request, body: bytes) -> str:
    return hashlib.sha256(
        b"\n".join((request.method.encode(), request.url.path.encode(), body))).hexdigest()


async def guard(request: Request, call_next) -> Response:
    """Middleware for /v1: authenticate, rate-limit, and honour idempotency keys."""
    if not request.url.path.startswith("/v1/"):
        return await call_next(request)
    body = await _read_body(request)
    if body is None:
        return problem(413, "Too large", f"request body over {REQUEST_BYTES_MAX} bytes")
    try:
        caller = await authenticate(request, body)
    except ApiError as error:
        return problem(error.status, error.title, error.detail)
    bic = caller.participant.bic
    limiter = request.app.state.rate_limiter
    wait_s = limiter.allow(bic, time.monotonic())
    if wait_s:
        answer = problem(429, "Too many requests",
                         f"over {limiter.rate_per_s:g} requests a second")
        answer.headers["Retry-After"] = str(max(1, round(wait_s)))
        return answer
    request.state.caller = caller
    if request.method not in signing.STATE_CHANGING_METHODS:
        return await call_next(request)
    return await _idempotent(request, call_next, bic, body)


async def _idempotent(request: Request, call_next, bic: str, body: bytes) -> Response:
    key = request.headers.get(signing.IDEMPOTENCY_HEADER, "")
    if not signing.IDEMPOTENCY_KEY_PATTERN.fullmatch(key):
        return problem(400, "Idempotency key needed",
                       "state-changing calls carry Idempotency-Key: 1-64 of A-Z a-z 0-9 . _ : -")
    runner: EngineRunner = request.app.state.runner
    digest = request_digest(request, body)
    in_flight: dict = request.app.state.idempotency_in_flight
    while (earlier := in_flight.get((bic, key))) is not None:
        await asyncio.shield(earlier)  # the same key is being answered: wait, then look
    kept = runner.engine.idempotency.get((bic, key))
    if kept is not None:
        if kept[0] != digest:
            return problem(422, "Idempotency key reused",
                           "this Idempotency-Key was used for a different request")
        return Response(kept[2], status_code=kept[1], media_type=_media_type(kept[1]),
                        headers={"Idempotent-Replay": "true"})
    done = asyncio.get_running_loop().create_future()
    in_flight[(bic, key)] = done
    try:
        response = await call_next(request)
        answer = b"".join([chunk async for chunk in response.body_iterator])
        if response.status_code < 500 and len(answer) <= IDEMPOTENT_BODY_BYTES_MAX:
            await asyncio.wrap_future(
                runner.remember(bic, key, digest, response.status_code, answer))
    finally:
        del in_flight[(bic, key)]
        done.set_result(None)
    return Response(answer, status_code=response.status_code,
                    headers=dict(response.headers))


def _media_type(status_code: int) -> str:
    return "application/json" if status_code < 400 else "application/problem+json"
