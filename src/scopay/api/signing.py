"""Signed requests: Ed25519 over the method, path, time, nonce, idempotency key and body.

Each participant registers Ed25519 public keys with the operator; scopay stores public keys
only, so nothing on the server can sign for a participant. A request carries

    X-Scopay-Key-Id:     the registered key's id
    X-Scopay-Timestamp:  Unix time in seconds
    X-Scopay-Nonce:      16-64 characters of A-Z a-z 0-9 _ -, never reused
    X-Scopay-Signature:  base64url (no padding) of the Ed25519 signature of canonical_request
    Idempotency-Key:     on every state-changing call (POST, PUT, PATCH, DELETE)

The server refuses a stale timestamp (more than SKEW_S_MAX away), a nonce seen before within
that window, an unknown or revoked key, and a signature that does not verify. Both sides use
canonical_request from this module, so they cannot disagree on what is signed.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
import secrets

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nacl.bindings import (
    crypto_core_ed25519_is_valid_point,
    crypto_sign_BYTES,
    crypto_sign_open,
)
from nacl.exceptions import BadSignatureError

SCHEME = "scopay-v1"
SKEW_S_MAX = 300
NONCE_PATTERN = re.compile(r"[A-Za-z0-9_-]{16,64}")
IDEMPOTENCY_KEY_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,64}")
KEY_ID_HEADER = "x-scopay-key-id"
TIMESTAMP_HEADER = "x-scopay-timestamp"
NONCE_HEADER = "x-scopay-nonce"
SIGNATURE_HEADER = "x-scopay-signature"
IDEMPOTENCY_HEADER = "idempotency-key"
STATE_CHANGING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def canonical_request(method: str, path: str, timestamp: str, nonce: str,
                      idempotency_key: str, body: bytes) -> bytes:
    """The exact bytes signed: one field a line, the body by its SHA-256. `path` is the
    target as sent (path and query, percent-encoding kept); an empty query is signed as no
    query: a '?' with nothing after it does not reach the server (ASGI drops it). A '?'
    that ends a query (`?limit=1?`) is part of it, and signed."""
    digest = hashlib.sha256(body).hexdigest()
    if path.find("?") == len(path) - 1:  # the only '?', and the last character
        path = path[:-1]
    return "\n".join(
        (SCHEME, method.upper(), path, timestamp, nonce, idempotency_key, digest)
    ).encode()


def sign(private_key: Ed25519PrivateKey, message: bytes) -> str:
    return _b64(private_key.sign(message))


def verify(public_key_b64: str, signature_b64: str, message: bytes) -> bool:
    """True when the signature is the key's over `message`."""
    decoded = decode_signature(public_key_b64, signature_b64)
    return decoded is not None and verify_raw(*decoded, message)


def decode_signature(public_key_b64: str, signature_b64: str) -> tuple[bytes, bytes] | None:
    """The raw public key (32 bytes) and signature (64 bytes); None when either is malformed,
    so no signature can be valid. Cheap: the server does it on the event loop and leaves
    verify_raw, the costly part, to the verifier process (api/verifier.py)."""
    try:
        signature = _unb64(signature_b64)
        key = _public_key(public_key_b64)
    except ValueError:
        return None
    if len(signature) != crypto_sign_BYTES:
        return None
    return key, signature


def verify_raw(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """Ed25519 over raw bytes, as decode_signature gives them. libsodium checks it: strict
    RFC 8032 verification (canonical signatures, no small-order keys), and about twice as
    fast as OpenSSL's through `cryptography` on this path, where every request pays it."""
    try:
        crypto_sign_open(signature + message, public_key)
    except (BadSignatureError, ValueError):
        return False
    return True


@functools.lru_cache(maxsize=4096)
def _public_key(public_key_b64: str) -> bytes:
    """Registered keys are few and used often: decode each once (public, so safe to keep)."""
    key = _unb64(public_key_b64)
    if len(key) != 32:
        raise ValueError("not an Ed25519 public key")
    return key


def new_nonce() -> str:
    return secrets.token_urlsafe(18)


def new_key_id() -> str:
    return "k" + secrets.token_hex(8)


def public_key_b64(private_key: Ed25519PrivateKey) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return _b64(private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))


def is_public_key(text: str) -> bool:
    """An Ed25519 public key a genuine private key can have: 32 bytes, base64url, a canonical
    point of the prime-order subgroup. A small-order point is refused: under it a trivial
    signature would pass a verifier that does not check for one."""
    try:
        key = _unb64(text)
    except ValueError:
        return False
    return len(key) == 32 and crypto_core_ed25519_is_valid_point(key)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    if not isinstance(text, str) or len(text) > 200:
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as error:
        raise ValueError("not base64url") from error
