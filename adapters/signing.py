"""Pure helpers for webhook signatures: HMAC digests, constant-time compare, timestamps.

Each adapter's ``verify`` only builds the signed message from its headers and calls these.
Nothing here reads the clock: the time is passed in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

from adapters.errors import SignatureError

__all__ = [
    "SIGNATURE_MISMATCH",
    "body_sha256",
    "check_timestamp",
    "compare",
    "hmac_b64",
    "hmac_digest",
    "hmac_hex",
    "parse_iso_timestamp",
]

#: What a ``verify`` says when no configured secret produces the signature given.
SIGNATURE_MISMATCH = "signature does not match (wrong secret, or the body was changed on the way)"


def _bytes(value: str | bytes) -> bytes:
    # surrogatepass: a header or secret holding a lone surrogate compares unequal; it does
    # not raise UnicodeEncodeError.
    return value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value


def hmac_digest(secret: str | bytes, message: bytes, algo: str = "sha256") -> bytes:
    """HMAC of ``message`` keyed with ``secret`` (a ``str`` is used as its UTF-8 bytes,
    never base64-decoded: Zendesk keys with the secret string exactly as shown).

    :param algo: a :mod:`hashlib` name: ``"sha256"``, ``"sha1"``...
    """
    return hmac.new(_bytes(secret), message, algo).digest()


def hmac_b64(secret: str | bytes, message: bytes, algo: str = "sha256") -> str:
    """The HMAC, standard base64 (Zendesk, Help Scout)."""
    return base64.b64encode(hmac_digest(secret, message, algo)).decode("ascii")


def hmac_hex(secret: str | bytes, message: bytes, algo: str = "sha256") -> str:
    """The HMAC, lower-case hex (Zammad, Jira)."""
    return hmac_digest(secret, message, algo).hex()


def compare(expected: str | bytes, given: str | bytes) -> bool:
    """Constant-time equality of two signatures (:func:`hmac.compare_digest`, always)."""
    return hmac.compare_digest(_bytes(expected), _bytes(given))


def parse_iso_timestamp(value: str) -> datetime:
    """An ISO-8601 timestamp with a zone (``2021-03-25T05:09:27Z``; nanoseconds are cut to
    microseconds).

    :raises ValueError: not ISO-8601, no zone (a naive time cannot be compared), or a time
        that has no UTC equivalent (``0001-01-01T00:00:00+05:00``).
    """
    parsed = datetime.fromisoformat(value.strip())
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError(f"timestamp {value!r} has no time zone")
    try:
        parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"timestamp {value!r} is out of range") from None
    return parsed


def check_timestamp(
    ts: datetime, now: datetime, tolerance: timedelta, *, adapter: str = ""
) -> None:
    """Refuse a signature timestamp outside ``now ± tolerance``.

    Both edges are checked: a stale timestamp is a replay, a future one a forged or badly
    skewed clock (Stripe checks only the past).

    :raises SignatureError: outside the window.
    :raises ValueError: ``ts`` or ``now`` is naive.
    """
    if ts.tzinfo is None or now.tzinfo is None:
        raise ValueError("check_timestamp needs aware datetimes")
    skew = (now - ts).total_seconds()
    limit = tolerance.total_seconds()
    if skew > limit:
        raise SignatureError(
            f"signature timestamp {ts.isoformat()} is {int(skew)} s old "
            f"(more than {int(limit)} s): refused as a replay",
            adapter=adapter,
        )
    if -skew > limit:
        raise SignatureError(
            f"signature timestamp {ts.isoformat()} is {int(-skew)} s in the future "
            f"(more than {int(limit)} s)",
            adapter=adapter,
        )


def body_sha256(body: bytes) -> str:
    """SHA-256 of the raw body, hex: the delivery key where a desk gives no event id."""
    return hashlib.sha256(body).hexdigest()
