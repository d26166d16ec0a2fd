"""The Request Tracker adapter: signatures, delivery keys, and the scrip's payloads (captured
from a real RT 5) into TicketEvents."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from werkzeug.datastructures import Headers

from adapters.errors import (
    AnomalousPayloadError,
    MissingSecretError,
    SignatureError,
    UnsupportedEventError,
)
from adapters.rt import RTAdapter
from adapters.rt.schemas import EVENT_TYPES
from adapters.signing import body_sha256
from rules.events import Comment, EventType, TicketEvent, TicketStatus
from tests.adapters.rt.support import (
    API_USER,
    SECRET,
    dumps,
    fixture,
    fixture_headers,
    fixture_json,
    rt_desk,
    signature,
)
from tests.adapters.support import DELETE, set_path

NOW = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)


@pytest.fixture
def adapter() -> RTAdapter:
    return RTAdapter(rt_desk())


def _parse(adapter: RTAdapter, body: bytes, key: str = "53") -> TicketEvent:
    events = adapter.parse({}, body, delivery_key=key)
    assert len(events) == 1
    return events[0]


def _variant(name: str, path: str, value: Any) -> bytes:
    data = fixture_json(name)
    set_path(data, path, value)
    return dumps(data)


# --------------------------------------------------------------------------------------------
# verify


def test_a_signature_made_like_the_scrip_passes(adapter: RTAdapter) -> None:
    body = fixture("create.json")
    headers = {**fixture_headers("create.json"), "X-Care-Signature": signature(SECRET, body)}
    adapter.verify(headers, body, now=NOW)


def test_header_names_are_case_insensitive(adapter: RTAdapter) -> None:
    body = fixture("create.json")
    adapter.verify(Headers([("x-care-signature", signature(SECRET, body))]), body, now=NOW)
    adapter.verify({"X-CARE-SIGNATURE": signature(SECRET, body).upper()}, body, now=NOW)


def test_any_secret_of_a_rotation_passes() -> None:
    adapter = RTAdapter(rt_desk(secrets=("new-secret", SECRET)))
    body = fixture("correspond_requestor.json")
    adapter.verify({"X-Care-Signature": signature(SECRET, body)}, body, now=NOW)
    adapter.verify({"X-Care-Signature": signature("new-secret", body)}, body, now=NOW)


@pytest.mark.parametrize(
    ("header", "words"),
    [
        (None, "missing X-Care-Signature"),
        ("", "missing X-Care-Signature"),
        ("sha1=abc", "is not sha256=<hex>"),
        ("sha256=", "is not sha256=<hex>"),
        ("abcdef", "is not sha256=<hex>"),
        ("sha256=" + "0" * 64, "does not match"),
    ],
)
def test_bad_signatures_are_refused(adapter: RTAdapter, header: str | None, words: str) -> None:
    body = fixture("create.json")
    headers = {} if header is None else {"X-Care-Signature": header}
    with pytest.raises(SignatureError, match=words):
        adapter.verify(headers, body, now=NOW)


def test_a_changed_body_is_refused(adapter: RTAdapter) -> None:
    body = fixture("create.json")
    changed = body.replace(b'"priority":0', b'"priority":1')
    assert changed != body
    with pytest.raises(SignatureError):
        adapter.verify({"X-Care-Signature": signature(SECRET, body)}, changed, now=NOW)


def test_no_secret_fails_closed() -> None:
    adapter = RTAdapter(rt_desk(secrets=("",)))
    body = fixture("create.json")
    with pytest.raises(MissingSecretError, match="CARE_RT_SECRET"):
        adapter.verify({"X-Care-Signature": signature("", body)}, body, now=NOW)


# --------------------------------------------------------------------------------------------
# delivery_key


def test_the_delivery_key_is_the_transaction_id(adapter: RTAdapter) -> None:
    body = fixture("create.json")
    assert adapter.delivery_key(fixture_headers("create.json"), body) == "53"
    assert adapter.delivery_key({"x-care-delivery": " 70 "}, body) == "70"


@pytest.mark.parametrize("value", [None, "", "abc", "12a", "1" * 19, "-5"])
def test_without_a_transaction_id_the_key_is_the_body_hash(
    adapter: RTAdapter, value: str | None
) -> None:
    body = fixture("create.json")
    headers = {} if value is None else {"X-Care-Delivery": value}
    assert adapter.delivery_key(headers, body) == body_sha256(body)


# --------------------------------------------------------------------------------------------
# parse: the captured transactions


def test_a_ticket_written_in_by_the_customer(adapter: RTAdapter) -> None:
    event = _parse(adapter, fixture("create.json"))
    assert event.type is EventType.TICKET_CREATED
    assert (event.desk, event.delivery_key, event.ticket_id) == ("rt", "53", "3")
    assert event.subject == "Как настроить доставку?"
    assert event.description == "Where are the shipping settings? Ёлки"
    assert (event.requester_id, event.requester_email, event.requester_name) == (
        "35",
        "vip@shop.example",
        None,
    )
    assert event.actor_id == "35"
    assert event.status is TicketStatus.NEW
    assert event.priority == "0"
    assert event.tags == ()
    assert event.comment is None
    assert event.occurred_at == datetime(2026, 11, 28, 2, 22, 31, tzinfo=UTC)
    assert event.ticket_created_at == event.occurred_at


def test_a_ticket_an_agent_opened_for_two_requestors(adapter: RTAdapter) -> None:
    event = _parse(adapter, fixture("create_by_agent_html.json"), "70")
    assert event.type is EventType.TICKET_CREATED
    assert event.description == "Please upgrade from 4.3.1 to 4.3.9"
    # The first requestor is the customer; the agent is the actor.
    assert (event.requester_id, event.requester_email) == ("45", "credits@shop.example")
    assert event.actor_id == "14"
    assert event.priority == "30"
    assert event.tags == ("care_category_upgrade",)


def test_the_requestors_reply_is_a_public_comment_by_the_requester(adapter: RTAdapter) -> None:
    event = _parse(adapter, fixture("correspond_requestor.json"))
    assert event.type is EventType.COMMENT_ADDED
    assert event.comment == Comment(
        body="I agree, go ahead.",
        public=True,
        author_id="35",
        author_email="vip@shop.example",
        by_requester=True,
    )
    assert event.description == ""
    assert event.status is TicketStatus.OPEN


def test_an_agents_comment_is_internal(adapter: RTAdapter) -> None:
    event = _parse(adapter, fixture("comment_agent_html.json"))
    assert event.type is EventType.COMMENT_ADDED
    assert event.comment is not None
    assert event.comment.body == "Checked the shipping settings."
    assert (event.comment.public, event.comment.by_requester) == (False, False)
    assert event.comment.author_id == "14"


def test_an_agents_correspondence_is_public_but_not_the_requesters(adapter: RTAdapter) -> None:
    body = _variant("comment_agent_html.json", "transaction.type", "Correspond")
    event = _parse(adapter, body)
    assert event.comment is not None
    assert (event.comment.public, event.comment.by_requester) == (True, False)


def test_a_custom_field_change_carries_the_tags_and_the_fields(adapter: RTAdapter) -> None:
    data = fixture_json("customfield_added.json")
    data["ticket"]["custom_fields"]["Care category"] = ["upgrade"]
    data["ticket"]["custom_fields"]["Care price"] = [35]
    event = _parse(adapter, dumps(data))
    assert event.type is EventType.FIELDS_CHANGED
    assert event.tags == ("care_category_configuration",)
    assert event.fields == {"care_category": "upgrade", "care_price": "35"}


def test_status_changes(adapter: RTAdapter) -> None:
    resolved = _parse(adapter, fixture("status_resolved.json"))
    assert (resolved.type, resolved.status) == (EventType.STATUS_CHANGED, TicketStatus.SOLVED)
    opened = _parse(adapter, _variant("status_resolved.json", "ticket.status", "open"))
    assert (opened.type, opened.status) == (EventType.STATUS_CHANGED, TicketStatus.OPEN)
    deleted = _parse(adapter, fixture("status_deleted.json"))
    assert (deleted.type, deleted.status) == (EventType.TICKET_DELETED, TicketStatus.CLOSED)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("stalled", TicketStatus.WAITING),
        ("rejected", TicketStatus.CLOSED),
        ("Resolved", TicketStatus.SOLVED),
        ("in review", TicketStatus.UNKNOWN),
        (None, TicketStatus.UNKNOWN),
    ],
)
def test_statuses(adapter: RTAdapter, status: str | None, expected: TicketStatus) -> None:
    event = _parse(adapter, _variant("create.json", "ticket.status", status))
    assert event.status is expected


def test_the_tags_field_can_be_renamed() -> None:
    adapter = RTAdapter(rt_desk(options={"tags_field": "Support state"}))
    data = fixture_json("customfield_added.json")
    data["ticket"]["custom_fields"] = {"Care": ["ignored"], "Support state": ["care_plan_vip"]}
    assert _parse(adapter, dumps(data)).tags == ("care_plan_vip",)
    assert adapter.tags_field == "Support state"


def test_the_requesters_language_is_the_locale(adapter: RTAdapter) -> None:
    body = _variant("create.json", "ticket.requestors.0.lang", "ru")
    assert _parse(adapter, body).locale == "ru"


def test_a_requestor_without_email_is_still_the_requester(adapter: RTAdapter) -> None:
    data = fixture_json("create.json")
    data["ticket"]["requestors"] = [{"id": 8, "name": "walkin", "email": "", "real_name": "Bo"}]
    event = _parse(adapter, dumps(data))
    assert (event.requester_id, event.requester_email, event.requester_name) == ("8", None, "Bo")


def test_no_requestors(adapter: RTAdapter) -> None:
    event = _parse(adapter, _variant("create.json", "ticket.requestors", []))
    assert (event.requester_id, event.requester_email) == (None, None)


def test_every_event_code_has_a_captured_fixture() -> None:
    assert set(EVENT_TYPES) == {
        "Create",
        "Correspond",
        "Comment",
        "CustomField",
        "Status",
        "Delete",
    }


def test_the_loop_guard_keys_on_the_author(adapter: RTAdapter) -> None:
    own = _variant("comment_agent_html.json", "transaction.creator.id", int(API_USER))
    assert adapter.is_own_event(_parse(adapter, own))
    assert not adapter.is_own_event(_parse(adapter, fixture("comment_agent_html.json")))


# --------------------------------------------------------------------------------------------
# parse: what is refused or ignored


def test_an_unhandled_transaction_is_ignored(adapter: RTAdapter) -> None:
    with pytest.raises(UnsupportedEventError, match="AddWatcher") as caught:
        adapter.parse({}, fixture("unknown_transaction.json"), delivery_key="99")
    assert caught.value.http_status == 200


def test_an_unhandled_transaction_is_ignored_even_with_an_odd_body(adapter: RTAdapter) -> None:
    body = _variant("unknown_transaction.json", "ticket", "not an object")
    with pytest.raises(UnsupportedEventError):
        adapter.parse({}, body, delivery_key="99")


@pytest.mark.parametrize(
    ("path", "value", "where"),
    [
        ("care_connector", 2, "care_connector"),
        ("care_connector", "1", "care_connector"),
        ("ticket.id", None, "ticket.id"),
        ("ticket.id", "", "ticket.id"),
        ("ticket", DELETE, "ticket"),
        ("transaction", DELETE, "transaction"),
        ("transaction.type", 7, "transaction.type"),
        ("transaction.type", "", "transaction.type"),
        ("transaction.type", " ", "transaction.type"),
        ("transaction.created", "yesterday", "transaction.created"),
        ("transaction.created", "2026-11-28 02:22:31", "transaction.created"),
        ("ticket.requestors", {"id": 1}, "ticket.requestors"),
        ("ticket.custom_fields", ["Care"], "ticket.custom_fields"),
        ("ticket.custom_fields.Care", [["nested"]], "ticket.custom_fields.Care"),
        ("ticket.custom_fields.Care", [True], "ticket.custom_fields.Care"),
        ("ticket.subject", {"a": 1}, "ticket.subject"),
    ],
)
def test_broken_bodies_name_the_failing_path(
    adapter: RTAdapter, path: str, value: Any, where: str
) -> None:
    with pytest.raises(AnomalousPayloadError) as caught:
        adapter.parse({}, _variant("create.json", path, value), delivery_key="k")
    assert where in caught.value.errors, caught.value.errors
    assert caught.value.http_status == 400


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "an array"),
        (b"\xff\xfe", "not UTF-8"),
        (json.dumps({"ticket": {"id": 1}}).encode(), "not the connector's RT payload"),
    ],
)
def test_bodies_that_are_not_the_payload(adapter: RTAdapter, body: bytes, words: str) -> None:
    with pytest.raises(AnomalousPayloadError, match=words):
        adapter.parse({}, body, delivery_key="k")
