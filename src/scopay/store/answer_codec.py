"""Answers kept under idempotency keys, as the store keeps their bodies: small ones as given,
large ones (bulk answers) deflated. Either way a retry is given the answer's own bytes."""

from __future__ import annotations

import zlib

IDENTITY, DEFLATE = "identity", "deflate"
COMPRESS_FROM_BYTES = 8 * 1024  # a single payment's answer (under 1 KiB) is kept as given
# The most a stored body may inflate to when read back: ten times the largest answer scopay
# gives (8,190 payments of a bulk request, about 4.5 MB), so a damaged or forged row cannot
# make a reader allocate without bound.
ANSWER_BYTES_MAX = 64 * 1024 * 1024


class AnswerUnreadable(ValueError):
    """A stored body that does not decode: an unknown encoding, or damaged deflate data."""


def encode_answer(body: bytes) -> tuple[bytes, str]:
    """(stored bytes, encoding) of an answer's body: deflated at zlib's fastest level from
    COMPRESS_FROM_BYTES on (half a megabyte of JSON takes about a millisecond), when that
    makes it smaller."""
    if len(body) >= COMPRESS_FROM_BYTES:
        deflated = zlib.compress(body, 1)
        if len(deflated) < len(body):
            return deflated, DEFLATE
    return body, IDENTITY


def decode_answer(stored: bytes, encoding: str | bytes) -> bytes:
    """The answer's own bytes, or AnswerUnreadable. The encoding as the store names it, or as
    its bytes (read so: a text edited in that is no UTF-8 cannot stop the reader)."""
    if isinstance(encoding, bytes):
        encoding = encoding.decode("utf-8", "replace")
    if encoding == IDENTITY:
        return stored
    if encoding != DEFLATE:
        raise AnswerUnreadable(f"unknown body encoding {encoding!r}")
    inflater = zlib.decompressobj()
    try:
        body = inflater.decompress(stored, ANSWER_BYTES_MAX)
    except (zlib.error, TypeError) as error:
        raise AnswerUnreadable(f"damaged deflate data: {error}") from None
    if inflater.unconsumed_tail or not inflater.eof or inflater.unused_data:
        raise AnswerUnreadable("deflate data is truncated, too large, or followed by more")
    return body
