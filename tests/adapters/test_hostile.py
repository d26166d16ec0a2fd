"""Hostile input against every registered adapter's ``verify``, ``delivery_key`` and ``parse``.

For any body and any headers, the three calls the intake makes must end in one of the
adapter's documented outcomes (base.py): ``verify`` passes or raises :class:`SignatureError`;
``delivery_key`` returns a key; ``parse`` returns events or raises
:class:`UnsupportedEventError` or :class:`AnomalousPayloadError`. Whatever comes out (keys,
events, error messages) must be storable as it is: JSON-serializable, no NUL, no lone
surrogate. A correctly signed body passes ``verify`` whatever it contains.

The bodies are built from each desk's real payloads (tests/fixtures/<key>/): random bytes,
every value replaced by one of another type, nesting up to 10,000 levels, numbers too long
for ``int()``, strings of megabytes, bytes that are not UTF-8; and the headers are dropped,
duplicated and garbled. Hypothesis settings: tests/adapters/hostile.py.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import Headers

from adapters.errors import AnomalousPayloadError, SignatureError
from tests.adapters.hostile import (
    HOSTILE,
    NOW,
    Desk,
    deep,
    handle,
    huge_number,
    huge_string,
    invalid_utf8,
    json_values,
    mutated,
    paths,
    put,
    random_bytes,
    registered_desks,
    texts,
)

DESKS = registered_desks()


@pytest.fixture(params=DESKS, ids=lambda d: d.key)
def desk(request: pytest.FixtureRequest) -> Desk:
    return request.param  # type: ignore[no-any-return]


def signed_handle(desk: Desk, delivery: tuple[bytes, dict[str, str]]) -> None:
    body, headers = delivery
    handle(desk, desk.adapter(), desk.sign(body, headers), body, signed=True)


# --------------------------------------------------------------------------------------------
# Bodies


@settings(HOSTILE, max_examples=60)
@given(data=st.data())
def test_random_bytes_and_json_of_any_shape(desk: Desk, data: st.DataObject) -> None:
    signed_handle(desk, data.draw(random_bytes(desk)))


@settings(HOSTILE, max_examples=60)
@given(data=st.data())
def test_real_payloads_with_values_of_the_wrong_type(desk: Desk, data: st.DataObject) -> None:
    signed_handle(desk, data.draw(mutated(desk)))


#: Null, a number too big for 64 bits, a string of NUL, a list, an object: put in every field
#: of every real payload in turn, each is of the wrong type for most of them. (The other
#: types, and combinations, come from the Hypothesis test above.)
EVERY_TYPE: tuple[Any, ...] = (None, 10**30, "\x00", [None], {"id": {}})


def test_every_field_of_every_real_payload_with_every_type(desk: Desk) -> None:
    adapter = desk.adapter()
    for seed in desk.seeds:
        for path in paths(seed.data()):
            for value in EVERY_TYPE:
                body = json.dumps(put(seed.data(), path, value)).encode()
                handle(desk, adapter, desk.sign(body, seed.headers), body, signed=True)


@settings(HOSTILE, max_examples=40)
@given(data=st.data())
def test_deeply_nested_json(desk: Desk, data: st.DataObject) -> None:
    signed_handle(desk, data.draw(deep(desk)))


@settings(HOSTILE, max_examples=30)
@given(data=st.data())
def test_numbers_too_long_to_read(desk: Desk, data: st.DataObject) -> None:
    signed_handle(desk, data.draw(huge_number(desk)))


@settings(HOSTILE, max_examples=40)
@given(data=st.data())
def test_bodies_that_are_not_utf8_or_escape_nul_and_surrogates(
    desk: Desk, data: st.DataObject
) -> None:
    signed_handle(desk, data.draw(invalid_utf8(desk)))


@settings(HOSTILE, max_examples=6)
@given(data=st.data())
def test_strings_of_megabytes(desk: Desk, data: st.DataObject) -> None:
    signed_handle(desk, data.draw(huge_string(desk, (256 * 1024, 2 * 1024 * 1024))))


# --------------------------------------------------------------------------------------------
# Headers


def header_text() -> st.SearchStrategy[str]:
    """Text a header can carry: anything but line breaks (servers and werkzeug refuse them)."""
    return texts().map(lambda text: text.replace("\r", " ").replace("\n", " "))


@st.composite
def garbled_headers(draw: st.DrawFn, desk: Desk) -> tuple[bytes, Headers]:
    """A signed real payload whose headers are dropped, duplicated (a bogus value before or
    after the real one), re-cased, garbled, or joined by others."""
    body, unsigned = draw(mutated(desk)) if draw(st.booleans()) else draw(random_bytes(desk))
    signed = desk.sign(body, unsigned)
    headers = Headers()
    for name, value in signed.items():
        action = draw(st.sampled_from(["keep", "drop", "before", "after", "garble", "case"]))
        bogus = draw(header_text())
        if action == "keep":
            headers.add(name, value)
        elif action == "before":
            headers.add(name, bogus)
            headers.add(name, value)
        elif action == "after":
            headers.add(name, value)
            headers.add(name, bogus)
        elif action == "garble":
            headers.add(name, bogus)
        elif action == "case":
            headers.add(draw(st.sampled_from([name.upper(), name.lower(), name.swapcase()])), value)
    for _ in range(draw(st.integers(0, 3))):
        headers.add(draw(header_text().filter(bool)), draw(header_text()))
    return body, headers


@settings(HOSTILE, max_examples=60)
@given(data=st.data())
def test_missing_duplicated_and_garbled_headers(desk: Desk, data: st.DataObject) -> None:
    body, headers = data.draw(garbled_headers(desk))
    handle(desk, desk.adapter(), headers, body, signed=False)


@settings(HOSTILE, max_examples=40)
@given(data=st.data(), value=json_values())
def test_header_values_of_any_text(desk: Desk, data: st.DataObject, value: Any) -> None:
    seed = data.draw(st.sampled_from(desk.seeds))
    signed = desk.sign(seed.body, seed.headers)
    name = data.draw(st.sampled_from(sorted(signed)))
    text = value if isinstance(value, str) else json.dumps(value)
    handle(desk, desk.adapter(), {**signed, name: text}, seed.body, signed=False)


# --------------------------------------------------------------------------------------------
# Replay window


def test_replayed_signature_outside_the_window_is_refused(desk: Desk) -> None:
    """A desk that signs a timestamp refuses a signature older (or newer) than its tolerance
    and takes one at the edge; a desk that signs no time cannot tell a replay from the
    signature, and the intake takes the replayed delivery once (its key is the same:
    tests/connector/blueprints/test_hooks_hostile.py::test_replay_is_refused_or_taken_once)."""
    if desk.support is None:
        pytest.skip(f"{desk.key}: no tests/adapters/{desk.key}/support.py to sign with")
    adapter = desk.adapter()
    seed = desk.seeds[0]
    tolerance = adapter.tolerance
    fresh = desk.sign(seed.body, seed.headers, at=NOW)
    stale = desk.sign(seed.body, seed.headers, at=NOW - tolerance - timedelta(seconds=1))
    adapter.verify(fresh, seed.body, now=NOW)
    if stale == fresh:
        adapter.verify(stale, seed.body, now=NOW + timedelta(days=365))
        return
    with pytest.raises(SignatureError, match="replay"):
        adapter.verify(stale, seed.body, now=NOW)
    ahead = desk.sign(seed.body, seed.headers, at=NOW + tolerance + timedelta(seconds=1))
    with pytest.raises(SignatureError, match="future"):
        adapter.verify(ahead, seed.body, now=NOW)
    edge = desk.sign(seed.body, seed.headers, at=NOW - tolerance)
    adapter.verify(edge, seed.body, now=NOW)
    # The signature covers the time: moving it forward breaks the signature.
    moved = {k: v for k, v in stale.items()}
    for name in [n for n in stale if stale[n] != fresh[n] and "timestamp" in n.lower()]:
        moved[name] = fresh[name]
    if moved != stale:
        with pytest.raises(SignatureError, match="does not match"):
            adapter.verify(moved, seed.body, now=NOW)


def test_zendesk_signs_a_timestamp() -> None:
    """So that the replay test above is not vacuous: at least Zendesk has a window."""
    zendesk = next(d for d in DESKS if d.key == "zendesk")
    seed = zendesk.seeds[0]
    assert zendesk.sign(seed.body, seed.headers, at=NOW) != zendesk.sign(
        seed.body, seed.headers, at=NOW - timedelta(hours=1)
    )


def test_every_registered_adapter_is_covered() -> None:
    from adapters import ADAPTERS

    assert [d.key for d in DESKS] == sorted(ADAPTERS)
    assert all(d.seeds for d in DESKS), [d.key for d in DESKS if not d.seeds]


# --------------------------------------------------------------------------------------------
# Crashes found by the fuzzer and by these tests, kept as regressions


REGRESSIONS: list[tuple[str, str, Any, str | None]] = [
    # int() refused a status id of 5,000 digits (ValueError).
    ("freshdesk", "ticket.status_id", "9" * 5000, None),
    # astimezone(UTC) overflowed on a time near year 1 (OverflowError).
    ("freshdesk", "ticket.created_at", "0001-01-01 00:00:00 +2359", None),
    # "²".isdigit() is true but int("²") fails: article ids were sorted with int() (ValueError).
    ("zammad", "ticket.article_ids", ["²", "3"], None),
    ("zammad", "ticket.article_ids", ["9" * 5000, "3"], None),
    # A lone surrogate in a ticket id reached the database driver (UnicodeEncodeError: 500).
    ("zendesk", "ticket.id", "1\ud800", "1\ufffd"),
    # NUL in a ticket id: PostgreSQL refuses it in text (the intake answered 503).
    ("zendesk", "ticket.id", "1\x00", "1\ufffd"),
    # Times with no UTC equivalent.
    ("zendesk", "ticket.created_at", "0001-01-01T00:00:00+23:59", None),
    ("zammad", "ticket.created_at", "9999-12-31T23:59:59-23:59", None),
]

REGRESSION_SEEDS = {
    "freshdesk": "rule_created.json",
    "zammad": "ticket_trigger_default.json",
    "zendesk": "trigger_created.json",
}


@pytest.mark.parametrize(("key", "path", "value", "ticket_id"), REGRESSIONS)
def test_regressions(key: str, path: str, value: Any, ticket_id: str | None) -> None:
    desk = next(d for d in DESKS if d.key == key)
    seed = next(s for s in desk.seeds if s.name == REGRESSION_SEEDS[key])
    data = seed.data()
    node = data
    *parents, last = path.split(".")
    for part in parents:
        node = node[part]
    node[last] = value
    body = json.dumps(data).encode()
    events = handle(desk, desk.adapter(), desk.sign(body, seed.headers), body, signed=True)
    if ticket_id is not None:
        assert events and events[0].ticket_id == ticket_id


def test_nesting_deeper_than_the_limit_names_the_problem() -> None:
    from adapters.base import MAX_JSON_DEPTH

    desk = next(d for d in DESKS if d.key == "zammad")
    seed = next(s for s in desk.seeds if s.name == "custom_created.json")
    data = seed.data()
    data["care_connector"] = "@"
    text = json.dumps(data).replace('"@"', "[" * 500 + "]" * 500)
    body = text.encode()
    with pytest.raises(AnomalousPayloadError, match=f"more than {MAX_JSON_DEPTH} levels"):
        desk.adapter().parse(seed.headers, body, delivery_key="k")


def test_headers_holding_lone_surrogates_are_refused_not_raised(desk: Desk) -> None:
    """A signature (or timestamp) header of ``"\\ud800"`` made ``compare`` raise
    UnicodeEncodeError instead of refusing the signature. (A WSGI server hands over latin-1
    text, so only a direct caller can pass one; the adapter must refuse it all the same.)"""
    seed = desk.seeds[0]
    signed = desk.sign(seed.body, seed.headers)
    for name in signed:
        for value in ("\ud800", "sha1=\udfff", "t=1,v1=\ud800"):
            handle(desk, desk.adapter(), {**signed, name: value}, seed.body, signed=False)
