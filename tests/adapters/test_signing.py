"""Signing helpers: digests, constant-time compare, timestamp windows."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta, timezone

import pytest

from adapters.errors import SignatureError
from adapters.signing import (
    body_sha256,
    check_timestamp,
    compare,
    hmac_b64,
    hmac_digest,
    hmac_hex,
    parse_iso_timestamp,
)

NOW = datetime(2025, 1, 8, 12, 0, 0, tzinfo=UTC)
FIVE_MINUTES = timedelta(minutes=5)


def test_hmac_hex_matches_rfc_4231_test_case_2() -> None:
    # RFC 4231, 4.3: key "Jefe", data "what do ya want for nothing?".
    assert hmac_hex("Jefe", b"what do ya want for nothing?") == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )


@pytest.mark.parametrize("algo", ["sha256", "sha1", "sha512"])
@pytest.mark.parametrize("secret", ["plain", b"\x00\xffbytes", "dGhpc19zZWNyZXQ="])
def test_digests_agree_with_the_standard_library(algo: str, secret: str | bytes) -> None:
    key = secret.encode() if isinstance(secret, str) else secret
    expected = hmac.new(key, b"2021-03-25T05:09:27Z{}", algo).digest()
    assert hmac_digest(secret, b"2021-03-25T05:09:27Z{}", algo) == expected
    assert hmac_b64(secret, b"2021-03-25T05:09:27Z{}", algo) == base64.b64encode(expected).decode()
    assert hmac_hex(secret, b"2021-03-25T05:09:27Z{}", algo) == expected.hex()


def test_a_base64_looking_secret_is_used_as_text_not_decoded() -> None:
    secret = "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ=="
    decoded = base64.b64decode(secret)
    assert hmac_digest(secret, b"x") == hmac.new(secret.encode(), b"x", hashlib.sha256).digest()
    assert hmac_digest(secret, b"x") != hmac.new(decoded, b"x", hashlib.sha256).digest()


@pytest.mark.parametrize(
    ("expected", "given", "equal"),
    [
        ("abc", "abc", True),
        ("abc", b"abc", True),
        (b"abc", "abc", True),
        ("abc", "abd", False),
        ("abc", "abcd", False),
        ("abc", "", False),
        ("é", "é", True),
    ],
)
def test_compare(expected: str | bytes, given: str | bytes, equal: bool) -> None:
    assert compare(expected, given) is equal


@pytest.mark.parametrize(
    "offset",
    [
        timedelta(0),
        timedelta(minutes=4, seconds=59),
        -timedelta(minutes=4, seconds=59),
        FIVE_MINUTES,
        -FIVE_MINUTES,
    ],
)
def test_timestamps_inside_the_window_pass(offset: timedelta) -> None:
    check_timestamp(NOW - offset, NOW, FIVE_MINUTES)


@pytest.mark.parametrize(
    ("offset", "words"),
    [
        (FIVE_MINUTES + timedelta(seconds=1), "old"),
        (timedelta(days=2), "old"),
        (-(FIVE_MINUTES + timedelta(seconds=1)), "future"),
        (-timedelta(hours=3), "future"),
    ],
)
def test_timestamps_outside_the_window_fail_both_ways(offset: timedelta, words: str) -> None:
    with pytest.raises(SignatureError, match=words) as caught:
        check_timestamp(NOW - offset, NOW, FIVE_MINUTES, adapter="zendesk")
    assert caught.value.http_status == 401
    assert caught.value.adapter == "zendesk"


def test_the_window_compares_instants_across_zones() -> None:
    dubai = timezone(timedelta(hours=4))
    check_timestamp(datetime(2025, 1, 8, 16, 3, tzinfo=dubai), NOW, FIVE_MINUTES)
    with pytest.raises(SignatureError):
        check_timestamp(datetime(2025, 1, 8, 12, 0, tzinfo=dubai), NOW, FIVE_MINUTES)


def test_naive_times_are_a_programming_error() -> None:
    with pytest.raises(ValueError, match="aware"):
        check_timestamp(datetime(2025, 1, 8, 12, 0), NOW, FIVE_MINUTES)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2021-03-25T05:09:27Z", datetime(2021, 3, 25, 5, 9, 27, tzinfo=UTC)),
        ("2025-01-08T10:12:07.672717030Z", datetime(2025, 1, 8, 10, 12, 7, 672717, tzinfo=UTC)),
        ("2025-01-08T14:12:07+04:00", datetime(2025, 1, 8, 10, 12, 7, tzinfo=UTC)),
        (" 2021-03-25T05:09:27Z ", datetime(2021, 3, 25, 5, 9, 27, tzinfo=UTC)),
    ],
)
def test_parse_iso_timestamp(text: str, expected: datetime) -> None:
    parsed = parse_iso_timestamp(text)
    assert parsed == expected
    assert parsed.tzinfo is not None


@pytest.mark.parametrize(
    "text",
    ["", "1616648967", "2021-03-25", "2021-03-25T05:09:27", "yesterday", "2021-13-01T00:00Z"],
)
def test_parse_iso_timestamp_refuses_what_is_not_an_instant(text: str) -> None:
    with pytest.raises(ValueError):
        parse_iso_timestamp(text)


@pytest.mark.parametrize("body", [b"", b"{}", b'{"say": "hello"}', bytes(range(256))])
def test_body_sha256(body: bytes) -> None:
    assert body_sha256(body) == hashlib.sha256(body).hexdigest()
    assert len(body_sha256(body)) == 64
