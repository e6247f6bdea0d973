"""Who is calling: the credential check every /v1 route depends on."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from scopay.api import auth
from scopay.api.errors import ApiError
from scopay.engine.runner import EngineRunner


async def current_caller(request: Request) -> auth.Caller:
    return _authenticate(request.app.state.runner, request.headers.get("authorization", ""))


Caller = Annotated[auth.Caller, Depends(current_caller)]


def _authenticate(runner: EngineRunner, header: str) -> auth.Caller:
    scheme, _, token = header.partition(" ")
    key_id, _, secret = token.partition(".")
    if scheme.lower() != "bearer" or not key_id or not secret:
        raise ApiError(401, "Unauthenticated", "send Authorization: Bearer <key id>.<secret>")
    engine = runner.engine
    found = engine.store.credential(key_id)
    if found is None or found[2] is not None or not auth.token_matches(secret, found[1]):
        raise ApiError(401, "Unauthenticated", "unknown, revoked or wrong credential")
    participant = engine.participants.get(found[0])
    if participant is None:
        raise ApiError(401, "Unauthenticated", "credential of an unknown participant")
    return auth.Caller(participant, key_id)
