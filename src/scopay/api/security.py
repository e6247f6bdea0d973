"""Who is calling: every /v1 request is signed (api/signing.py), checked here in one place.

Also here, because they guard the same door: the replay guard (each nonce once within the
time window), the per-participant rate limit, and idempotency keys (a retried state-changing
request gets the first answer again, and a reused key with another request is refused).
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import logging
import sqlite3
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Annotated, NamedTuple

from fastapi import Depends, Request
from fastapi.responses import Response

from scopay.api import auth, signing
from scopay.api.errors import (
    XML_PATHS,
    ApiError,
    busy,
    media_type_for,
    media_type_of_answer,
    problem,
    problem_xml,
    refusal,
    store_failed,
    without_frames,
)
from scopay.api.verifier import Verifier
from scopay.engine.runner import HELD_ANSWER, HeldAnswer, Runner, RunnerBusyError
from scopay.store.answer_codec import AnswerUnreadable

log = logging.getLogger(__name__)

# Nonces kept at once, each while its timestamp is acceptable (up to twice SKEW_S_MAX
# seconds): 2,000,000 is over 3,000 requests a second sustained, more than one server
# answers. Past it participants get fair shares, up to twice as many nonces in all (about
# 250 MB at most).
NONCES_REMEMBERED_MAX = 2_000_000
RATE_PER_S = 10_000  # sustained requests per second per participant, unless the operator sets it
BURST_PER_RATE = 2  # requests at once, per request a second, unless the operator sets it
REQUEST_BYTES_MAX = 4 * 1024 * 1024  # the largest request body read
IDEMPOTENCY_STATE = "idempotency"  # scope state: (key, request digest) of this request
ANSWER_KEPT_STATE = "answer_kept"  # scope state: the route committed its answer itself


class ReplayGuard:
    """Each (key, nonce) once while its signed timestamp is acceptable.

    A replay carries the timestamp it was signed with, so nonces are kept per timestamp
    second and forgotten once that second is more than SKEW_S_MAX in the past: the request
    would be refused as stale by then. No nonce is forgotten early. Once `limit` nonces are
    inside the window, a participant holding at least its fair share of them (the limit over
    the participants holding any) is refused (503, try again); one holding less is still
    served, so one participant's flood does not lock out the others. At twice the limit
    (many participants flooding at once) every new request is refused, whatever its share:
    memory stays bounded. Each nonce is kept as a 64-bit hash of (key, nonce), keyed per
    process (SipHash), so a collision, which would refuse one honest request, cannot be aimed at.
    Memory only: after a restart a captured request could be replayed within the window;
    idempotency keys and payment ids make such a replay change nothing."""

    def __init__(self, limit: int | None = None) -> None:
        self.limit = limit  # None: NONCES_REMEMBERED_MAX
        # per signed second: the hashes seen, and how many of them each participant sent
        self._by_second: dict[int, tuple[set[int], Counter[str]]] = {}
        self._seconds: list[int] = []  # heap of the keys of _by_second
        self._count = 0
        self._held: Counter[str] = Counter()  # nonces in the window, by participant

    def seen(self, key_id: str, nonce: str, signed_s: int) -> bool:
        """Was this nonce kept already (a replay)? Keeps nothing."""
        kept = self._by_second.get(signed_s)
        return kept is not None and hash((key_id, nonce)) in kept[0]

    def first_use(self, key_id: str, nonce: str, signed_s: int, now_s: float,
                  owner: str = "") -> bool:
        """True the first time; False for a replay. Raises ApiError 503 when the store is
        full and `owner` (the key's participant) holds its share of it already."""
        self._forget_before(now_s - signing.SKEW_S_MAX)
        seen = self._by_second.get(signed_s)
        token = hash((key_id, nonce))
        if seen is not None and token in seen[0]:
            return False
        held, limit = self._held, self.limit or NONCES_REMEMBERED_MAX
        if self._count >= limit and (held[owner] * len(held) >= limit
                                     or self._count >= 2 * limit):
            raise ApiError(503, "Busy", "too many of your requests inside the signing "
                           "window; try again in a second", retry_after_s=1)
        if seen is None:
            seen = self._by_second[signed_s] = (set(), Counter())
            heapq.heappush(self._seconds, signed_s)
        seen[0].add(token)
        seen[1][owner] += 1
        held[owner] += 1
        self._count += 1
        return True

    def __len__(self) -> int:
        return self._count

    def _forget_before(self, oldest_s: float) -> None:
        seconds = self._seconds
        while seconds and seconds[0] < oldest_s:
            tokens, senders = self._by_second.pop(heapq.heappop(seconds))
            self._count -= len(tokens)
            self._held.subtract(senders)
            for owner in senders:
                if self._held[owner] <= 0:
                    del self._held[owner]


class RateLimiter:
    """A token bucket per participant: `rate_per_s` sustained (RATE_PER_S unless given),
    `burst` at once (BURST_PER_RATE times the rate unless given)."""

    def __init__(self, rate_per_s: float | None = None, burst: float | None = None) -> None:
        self.rate_per_s = RATE_PER_S if rate_per_s is None else rate_per_s
        self.burst = BURST_PER_RATE * self.rate_per_s if burst is None else burst
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


class KeyStateRefused(ApiError):
    """A refusal decided on what the engine holds of the key (revoked, or changed while the
    signature was checked): state that a commit in flight may yet undo."""


KEY_RECHECKS_MAX = 3  # commits a request refused on its key's state waits for, at most
# One text for every refusal of the key or its signature: which one failed is not told.
KEY_REFUSED = "unknown or revoked key, or a wrong signature"


async def authenticate(scope, headers: dict[str, str],
                       body: bytes) -> tuple[auth.Caller, tuple[str, str, int | None]]:
    """Check the request's signature; refuse stale, replayed, unknown or forged requests.
    The caller, and the key entry (BIC, public key, revoked at) it was verified under.

    The signature is checked by the app's verifier process (api/verifier.py) when it runs,
    else here; meanwhile other requests go on, so the key is looked up again after it."""
    key_id, timestamp, nonce, signature, now_s = signed_headers(scope, headers)
    idempotency_key = headers.get(signing.IDEMPOTENCY_HEADER, "")
    state = scope["app"].state
    engine = state.runner.engine
    found = engine.keys.get(key_id)
    if found is None:  # known when the headers were read, undone since by a failed commit
        raise ApiError(401, "Unauthenticated", KEY_REFUSED)
    if found[2] is not None:
        raise KeyStateRefused(401, "Unauthenticated", KEY_REFUSED)
    message = signing.canonical_request(scope["method"], _raw_target(scope), timestamp, nonce,
                                        idempotency_key, body)
    verifier: Verifier | None = getattr(state, "verifier", None)
    if verifier is None:
        valid = signing.verify(found[1], signature, message)
    else:
        valid = await verifier.verify(found[1], signature, message)
    if not valid:
        raise ApiError(401, "Unauthenticated", KEY_REFUSED)
    if engine.keys.get(key_id) != found:
        raise KeyStateRefused(401, "Unauthenticated", KEY_REFUSED)
    participant = engine.participants.get(found[0])
    if participant is None:
        raise ApiError(401, "Unauthenticated", "key of an unknown participant")
    # A replay is refused before it counts against its participant's rate (whoever captured
    # a request must not spend the bank's rate by resending it); the rate then comes before
    # the nonce is kept: a request over it may be sent again as it is, and a participant's
    # nonces never outgrow its rate.
    guard, limiter = state.replay_guard, state.rate_limiter
    if guard.seen(key_id, nonce, int(timestamp)):
        raise ApiError(401, "Unauthenticated", "this nonce was used already (replay)")
    wait_s = limiter.allow(participant.bic, time.monotonic())
    if wait_s:
        raise ApiError(429, "Too many requests",
                       f"over {limiter.rate_per_s:,.0f} requests a second",
                       retry_after_s=max(1, round(wait_s)))
    if not guard.first_use(key_id, nonce, int(timestamp), now_s, participant.bic):
        raise ApiError(401, "Unauthenticated", "this nonce was used already (replay)")
    return auth.Caller(participant, key_id), found


def signed_headers(scope, headers: dict[str, str]) -> tuple[str, str, str, str, float]:
    """(key id, timestamp, nonce, signature, now) of a request whose signing headers are all
    there, timely and well formed, under a key scopay knows; else the refusal. The headers
    alone decide this: the guard asks before it reads a body, so an unsigned client cannot
    have scopay hold megabytes for it."""
    key_id = headers.get(signing.KEY_ID_HEADER, "")
    timestamp = headers.get(signing.TIMESTAMP_HEADER, "")
    nonce = headers.get(signing.NONCE_HEADER, "")
    signature = headers.get(signing.SIGNATURE_HEADER, "")
    if not (key_id and timestamp and nonce and signature):
        raise ApiError(401, "Unauthenticated",
                       "sign the request: X-Scopay-Key-Id, -Timestamp, -Nonce and -Signature")
    now_s = time.time()
    if not _is_unix_seconds(timestamp) or abs(now_s - int(timestamp)) > signing.SKEW_S_MAX:
        raise ApiError(401, "Unauthenticated",
                       f"timestamp more than {signing.SKEW_S_MAX} s away from scopay's clock")
    if not signing.NONCE_PATTERN.fullmatch(nonce):
        raise ApiError(401, "Unauthenticated", "nonce must be 16-64 of A-Z a-z 0-9 _ -")
    if key_id not in scope["app"].state.runner.engine.keys:
        # no commit in flight can make it known: it is not in memory either
        raise ApiError(401, "Unauthenticated", KEY_REFUSED)
    return key_id, timestamp, nonce, signature, now_s


def _headers(scope) -> dict[str, str]:
    """The request's headers by lower-case name; of a repeated header, the first counts."""
    return {name.decode("latin-1"): value.decode("latin-1")
            for name, value in reversed(scope["headers"])}


def _declared_length(scope) -> int:
    """The Content-Length the client declared (0 if none; too large if unreadable)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() and len(value) < 20 else REQUEST_BYTES_MAX + 1
    return 0


async def _read_body(receive) -> bytes | None:
    """The body, read at most REQUEST_BYTES_MAX bytes far; None when it is longer (one that
    declares itself longer the guard refuses before reading)."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)  # the client went away; the route will see that too
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > REQUEST_BYTES_MAX:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _is_unix_seconds(text: str) -> bool:
    return 0 < len(text) <= 12 and text.isascii() and text.isdigit()


def _raw_target(scope) -> str:
    """The path and query exactly as sent (percent-encoding kept): what the client signed."""
    raw_path = scope.get("raw_path") or scope["path"].encode()
    query = scope.get("query_string", b"")
    return (raw_path + (b"?" + query if query else b"")).decode("latin-1")


def request_digest(scope, body: bytes) -> str:
    """What makes two requests under one idempotency key the same: method, path, query (its
    bytes as sent; a request without one digests as it always has) and body."""
    target = scope["path"].encode()
    query = scope.get("query_string", b"")
    if query:
        target += b"?" + query
    return hashlib.sha256(b"\n".join((scope["method"].encode(), target, body))).hexdigest()


class DirectRoute(NamedTuple):
    """A route the guard answers itself. `prepare` does the route's pure work (reading and
    checking the body; no engine state) and never raises: a refusal is returned, to be
    raised by `run` at the point the route would have raised it. It runs before the request
    waits for a commit in flight, so that work overlaps the commit. `run` gets what
    `prepare` returned and does the rest once what the engine did is durable."""

    prepare: Callable[[dict, bytes, auth.Caller], object]
    run: Callable[[dict, object, auth.Caller], Awaitable[tuple[int, bytes]]]


class Guard:
    """ASGI middleware for /v1: read the body (at most REQUEST_BYTES_MAX), authenticate,
    rate-limit, wait until what the engine did is durable, and honour idempotency keys.
    Other paths only wait until what the engine did is durable. Plain ASGI, not
    BaseHTTPMiddleware: it runs on every request and the extra task and stream layers of the
    latter cost real throughput.

    `direct` routes, keyed by (method, path), are answered here once the request is admitted,
    past FastAPI's routing, dependency and serialisation layers; they are declared to FastAPI
    too (same models), which documents them in OpenAPI and runs the same code."""

    def __init__(self, app, direct: dict[tuple[str, str], DirectRoute] | None = None) -> None:
        self.app = app
        self.direct = dict(direct or {})

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not scope["path"].startswith("/v1/"):
            if _declared_length(scope) > REQUEST_BYTES_MAX:
                await _too_large(scope)(scope, receive, send)
                return
            await _until_durable(scope["app"].state.runner)
            await self.app(scope, receive, send)
            return
        if _declared_length(scope) > REQUEST_BYTES_MAX:
            await _too_large(scope)(scope, receive, send)
            return
        headers = _headers(scope)
        try:
            signed_headers(scope, headers)  # before the body is read: see there
        except ApiError as error:
            await refusal(scope["path"], error)(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:
            await _too_large(scope)(scope, receive, send)
            return
        route = self.direct.get((scope["method"], scope["path"]))
        refused, caller, prepared = await _admit(scope, headers, body, route)
        if refused is not None:
            await refused(scope, receive, send)
            return
        scope.setdefault("state", {})["caller"] = caller
        replay = _replaying(body, receive)
        app = self.app if route is None else _answering(route, prepared, caller)
        if scope["method"] not in signing.STATE_CHANGING_METHODS:
            await app(scope, replay, send)
            return
        await _idempotent(app, scope, headers, replay, send, caller.participant.bic, body)


def _too_large(scope) -> Response:
    """413: in XML with FF01 where ISO 20022 messages come in, else problem+json."""
    detail = f"request body over {REQUEST_BYTES_MAX} bytes"
    if scope["path"] in XML_PATHS:
        return problem_xml(413, "FF01", f"message too large: {detail}")
    return problem(413, "Too large", detail)


async def _admit(scope, headers: dict[str, str], body: bytes, route: DirectRoute | None
                 ) -> tuple[Response | None, auth.Caller | None, object]:
    """(None, the caller, what a direct route prepared) once the caller is authenticated,
    within its rate, and what the engine did is durable; else (the refusal, None, None).
    Signature checks, HTTP parsing and a direct route's preparation overlap a commit in
    flight; the route runs after it. If the request waited, the key it was admitted under is
    looked up again: a failed commit undoes what it changed, a key's registration among
    them."""
    state = scope["app"].state
    runner: Runner = state.runner
    try:
        caller, key = await _authenticated(scope, headers, body, runner)
    except ApiError as error:
        return refusal(scope["path"], error), None, None
    prepared = None if route is None else route.prepare(scope, body, caller)
    if await _until_durable(runner) and runner.engine.keys.get(caller.key_id) != key:
        return refusal(scope["path"], ApiError(401, "Unauthenticated", KEY_REFUSED)), None, None
    return None, caller, prepared


async def _authenticated(scope, headers: dict[str, str], body: bytes, runner: Runner
                         ) -> tuple[auth.Caller, tuple[str, str, int | None]]:
    """authenticate, but a refusal on the key's state made while a commit is in flight
    waits for that commit and is decided again: a revocation that fails to commit refuses
    nothing. (A nonce is used only once the key and signature passed.) After
    KEY_RECHECKS_MAX waits the last refusal stands, even if another commit is in flight by
    then: a request is not held for ever under constant load."""
    for _ in range(KEY_RECHECKS_MAX):
        try:
            return await authenticate(scope, headers, body)
        except KeyStateRefused:
            if not await _until_durable(runner):
                raise
    return await authenticate(scope, headers, body)


async def _until_durable(runner: Runner) -> bool:
    """Wait until what the engine has done is durable; True when that meant waiting."""
    waiting = runner.until_durable()
    if waiting is None:
        return False
    await waiting
    return True


def _answering(route: DirectRoute, prepared: object, caller: auth.Caller):
    """An ASGI app that answers with a direct route's run, given what its prepare returned;
    an ApiError becomes a problem answer."""

    async def answer(scope, _receive, send) -> None:
        try:
            status, content = await route.run(scope, prepared, caller)
        except ApiError as error:
            status, content = error.status, error.problem_body()
            without_frames(error)
        except sqlite3.Error as error:  # as the app's handler answers it (store_failed)
            log.error("a commit failed; the request was answered 503: %s", error)
            await store_failed(scope["path"])(scope, _receive, send)
            return
        except RunnerBusyError as error:  # as the app's handler answers it
            await busy(scope["path"], str(error))(scope, _receive, send)
            return
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", media_type_for(status).encode()),
                                (b"content-length", str(len(content)).encode())]})
        await send({"type": "http.response.body", "body": content})

    return answer


def _replaying(body: bytes, receive):
    """A receive that hands the already-read body to the route, then waits as usual."""
    delivered = False

    async def replay():
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _idempotent(app, scope, headers: dict[str, str], receive, send, bic: str,
                      body: bytes) -> None:
    key = headers.get(signing.IDEMPOTENCY_HEADER, "")
    if not signing.IDEMPOTENCY_KEY_PATTERN.fullmatch(key):
        answer = refusal(scope["path"], ApiError(
            400, "Idempotency key needed",
            "state-changing calls carry Idempotency-Key: 1-64 of A-Z a-z 0-9 . _ : -"))
        await answer(scope, receive, send)
        return
    state = scope["app"].state
    runner: Runner = state.runner
    digest = request_digest(scope, body)
    in_flight: dict = state.idempotency_in_flight
    while (earlier := in_flight.get((bic, key))) is not None:
        await asyncio.shield(earlier)  # the same key is being answered: wait, then look
    try:
        kept = runner.engine.idempotency.get((bic, key))
    except AnswerUnreadable:  # damaged in the database: the request ran once, never again
        log.error("the answer kept for %s's Idempotency-Key %r cannot be read back "
                  "(scopay audit verify names it)", bic, key)
        answer = refusal(scope["path"], ApiError(
            500, "Kept answer unreadable",
            "the answer kept for this Idempotency-Key cannot be read back; the request, "
            "already done, is not run again: ask the operator"))
        await answer(scope, receive, send)
        return
    if kept is not None:
        if kept[0] != digest:
            answer = refusal(scope["path"], ApiError(
                422, "Idempotency key reused",
                "this Idempotency-Key was used for a different request"))
        else:
            answer = Response(kept[2], status_code=kept[1],
                              media_type=media_type_of_answer(kept[1], kept[2]),
                              headers={"Idempotent-Replay": "true"})
        await answer(scope, receive, send)
        return
    done = asyncio.get_running_loop().create_future()
    in_flight[(bic, key)] = done
    messages: list[dict] = []

    async def keep(message: dict) -> None:
        messages.append(message)

    request_state = scope["state"]
    request_state[IDEMPOTENCY_STATE] = (key, digest)
    # The route's (first) command commits with the answer given here (runner.HeldAnswer).
    held = HeldAnswer(bic, key, digest)
    context = HELD_ANSWER.set(held)
    undone = None  # the refusal to give instead, if the change and its answer were undone
    try:
        try:
            await app(scope, receive, keep)
        finally:
            HELD_ANSWER.reset(context)
        status = messages[0]["status"]
        answer = b"".join(m.get("body", b"") for m in messages[1:])
        kept = bool(request_state.get(ANSWER_KEPT_STATE))  # committed with its payments
        if held.engaged:
            held.give((status, answer) if status < 500 else None)
            try:
                kept = await held.durable
            except sqlite3.Error as error:
                log.error("a commit failed; the request was answered 503: %s", error)
                undone, kept = store_failed(scope["path"]), True  # nothing happened to keep
        if not kept and status < 500:  # any size: the largest request (8,190 items) bounds it
            try:
                await asyncio.wrap_future(runner.remember(bic, key, digest, status, answer))
            except (sqlite3.Error, RunnerBusyError) as error:
                # What the request did is durable already: it is answered as it is, only not
                # kept for a retry (which runs again; ids make most requests repeat safely).
                log.error("the answer under an idempotency key could not be kept: %s", error)
    finally:
        held.give(None)  # a commit held for the answer never waits on a request that failed
        del in_flight[(bic, key)]
        done.set_result(None)
    if undone is not None:
        await undone(scope, receive, send)
        return
    for message in messages:
        await send(message)

