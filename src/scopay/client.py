"""The scopay Python client: signs every request, the reference for integrators.

    from scopay.client import ScopayClient
    with ScopayClient.from_key_file("http://127.0.0.1:8000", "var/operator.key") as client:
        print(client.get("/v1/accounts").json())
        raise_for_problem(client.post("/v1/transfers", json={...}))  # ScopayProblem if refused

A key file is JSON, kept private (mode 600): {"key_id", "participant_bic", "private_key"}
with the Ed25519 private key as 32 raw bytes in base64url. Only its public half is ever sent
to scopay (when the operator registers the key).
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
import time
import uuid
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from lxml import etree

from scopay.api import signing


class ScopayProblem(Exception):
    """A refusal from scopay, as its problem details tell it (RFC 9457: JSON, or XML on the
    ISO 20022 route): the HTTP status, title and detail; the ledger's or the payment's
    `rejection` and its ISO 20022 reason code when there is one; and the seconds to wait
    before trying again (Retry-After) when scopay says."""

    def __init__(self, status: int, title: str, detail: str, rejection: str | None = None,
                 iso_code: str | None = None, retry_after_s: int | None = None) -> None:
        super().__init__(f"{status} {title}: {detail}")
        self.status, self.title, self.detail = status, title, detail
        self.rejection, self.iso_code, self.retry_after_s = rejection, iso_code, retry_after_s


def raise_for_problem(response: httpx.Response) -> httpx.Response:
    """The response when scopay took the request (below 400), else ScopayProblem. A body
    that is no problem scopay writes (empty, as a HEAD's is, or not what it should be) gives
    the status and its reason phrase alone."""
    if response.status_code < 400:
        return response
    retry = response.headers.get("Retry-After", "")
    retry_after_s = int(retry) if retry.isascii() and retry.isdigit() else None
    fields = _problem_fields(response)
    raise ScopayProblem(response.status_code, fields.get("title") or response.reason_phrase,
                        fields.get("detail") or response.text, fields.get("rejection"),
                        fields.get("iso_code") or fields.get("reason_code"), retry_after_s)


def _problem_fields(response: httpx.Response) -> dict[str, str | None]:
    """The problem's fields from its JSON, or from the ISO route's XML; {} for anything
    else. The XML is read without a DTD, entities or the network: one with a DOCTYPE is
    refused unread, as scopay refuses it in the messages it reads."""
    content_type = response.headers.get("content-type", "")
    try:
        if content_type.startswith("application/problem+json"):
            body = response.json()
            return body if isinstance(body, dict) else {}
        if content_type.startswith("application/problem+xml"):
            if b"<!DOCTYPE" in response.content:
                return {}
            parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                                     huge_tree=False)
            root = etree.fromstring(response.content, parser)
            return {etree.QName(child).localname: child.text or ""
                    for child in root.iterchildren(etree.Element)}
    except (ValueError, etree.XMLSyntaxError):  # JSONDecodeError is a ValueError
        return {}
    return {}


@dataclass(frozen=True)
class KeyFile:
    key_id: str
    participant_bic: str
    private_key: Ed25519PrivateKey

    @property
    def public_key(self) -> str:
        return signing.public_key_b64(self.private_key)


def new_private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def write_key_file(path: Path, key: KeyFile) -> None:
    """Write the key file readable by its owner only (the private key is in it)."""
    raw = key.private_key.private_bytes_raw()
    text = json.dumps({"key_id": key.key_id, "participant_bic": key.participant_bic,
                       "private_key": base64.urlsafe_b64encode(raw).rstrip(b"=").decode()})
    path.parent.mkdir(parents=True, exist_ok=True)
    # A new file, 0600 from its first byte, put in place whole: whatever stood at `path`
    # (a readable file, a link) is replaced, never written through.
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text + "\n")
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def read_key_file(path: Path) -> KeyFile:
    data = json.loads(Path(path).read_text())
    raw = base64.urlsafe_b64decode(data["private_key"] + "=" * (-len(data["private_key"]) % 4))
    return KeyFile(data["key_id"], data["participant_bic"],
                   Ed25519PrivateKey.from_private_bytes(raw))


class SignedAuth(httpx.Auth):
    """httpx authentication that signs each request as scopay requires."""

    requires_request_body = True

    def __init__(self, key: KeyFile) -> None:
        self.key = key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        sign_request(request, self.key)
        yield request


def sign_request(request: httpx.Request, key: KeyFile, now_s: int | None = None,
                 nonce: str | None = None) -> None:
    timestamp = str(int(time.time()) if now_s is None else now_s)
    nonce = nonce or signing.new_nonce()
    idempotency_key = request.headers.get(signing.IDEMPOTENCY_HEADER, "")
    if request.method in signing.STATE_CHANGING_METHODS and not idempotency_key:
        idempotency_key = uuid.uuid4().hex
        request.headers[signing.IDEMPOTENCY_HEADER] = idempotency_key
    path = request.url.raw_path.decode()
    message = signing.canonical_request(request.method, path, timestamp, nonce,
                                        idempotency_key, request.content)
    request.headers[signing.KEY_ID_HEADER] = key.key_id
    request.headers[signing.TIMESTAMP_HEADER] = timestamp
    request.headers[signing.NONCE_HEADER] = nonce
    request.headers[signing.SIGNATURE_HEADER] = signing.sign(key.private_key, message)


class ScopayClient(httpx.Client):
    """An httpx.Client whose every request is signed with one participant's key."""

    def __init__(self, base_url: str, key: KeyFile, **kwargs) -> None:
        kwargs.setdefault("timeout", 30)
        super().__init__(base_url=base_url, auth=SignedAuth(key), **kwargs)
        self.key = key

    @classmethod
    def from_key_file(cls, base_url: str, path: Path | str, **kwargs) -> ScopayClient:
        """A client signing with the key file at `path` (as `scopay keys issue` writes it)."""
        return cls(base_url, read_key_file(Path(path)), **kwargs)

    def send_payment(self, payment: dict, idempotency_key: str | None = None) -> httpx.Response:
        """POST /v1/payments. Pass the same `idempotency_key` to retry one whose answer was
        lost: the retry gets the first answer and changes nothing (without one, a fresh key
        is made for each call, and a retry is a new request)."""
        return self.post("/v1/payments", json=payment, headers=_keyed(idempotency_key))

    def track(self, uetr: str) -> httpx.Response:
        """GET /v1/payments/{uetr}: the payment's status and full history."""
        return self.get(f"/v1/payments/{uetr}")


class AsyncScopayClient(httpx.AsyncClient):
    """The same, for asyncio (load generators, services)."""

    def __init__(self, base_url: str, key: KeyFile, **kwargs) -> None:
        kwargs.setdefault("timeout", 30)
        super().__init__(base_url=base_url, auth=SignedAuth(key), **kwargs)
        self.key = key

    @classmethod
    def from_key_file(cls, base_url: str, path: Path | str, **kwargs) -> AsyncScopayClient:
        """A client signing with the key file at `path`."""
        return cls(base_url, read_key_file(Path(path)), **kwargs)

    async def send_payment(self, payment: dict,
                           idempotency_key: str | None = None) -> httpx.Response:
        """POST /v1/payments (see ScopayClient.send_payment)."""
        return await self.post("/v1/payments", json=payment, headers=_keyed(idempotency_key))

    async def track(self, uetr: str) -> httpx.Response:
        """GET /v1/payments/{uetr}."""
        return await self.get(f"/v1/payments/{uetr}")


def _keyed(idempotency_key: str | None) -> dict[str, str]:
    return {signing.IDEMPOTENCY_HEADER: idempotency_key} if idempotency_key else {}
