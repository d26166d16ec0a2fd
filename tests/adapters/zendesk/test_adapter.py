"""The Zendesk adapter: signatures, delivery keys, and both delivery shapes into TicketEvents."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import Headers

from adapters.errors import (
    AnomalousPayloadError,
    MissingSecretError,
    SignatureError,
    UnsupportedEventError,
    WebhookError,
)
from adapters.zendesk import ZendeskAdapter
from adapters.zendesk.schemas import EVENT_TYPES
from connector.config import DeskSettings
from rules.events import Comment, EventType, TicketEvent, TicketStatus
from tests.adapters.support import DELETE as _DELETE
from tests.adapters.support import set_path as _set

Signer = Callable[[str, str, bytes], str]
NOW = datetime(2025, 1, 8, 12, 0, 0, tzinfo=UTC)
STAMP = "2025-01-08T11:59:30Z"
SECRET = "s3cret-current"


@pytest.fixture
def adapter(make_desk: Callable[..., DeskSettings]) -> ZendeskAdapter:
    return ZendeskAdapter(make_desk())


def _headers(signature: str, stamp: str = STAMP, **extra: str) -> dict[str, str]:
    return {
        "X-Zendesk-Webhook-Signature": signature,
        "X-Zendesk-Webhook-Signature-Timestamp": stamp,
        **extra,
    }


def _parse(adapter: ZendeskAdapter, body: bytes, key: str = "key-1") -> TicketEvent:
    events = adapter.parse({}, body, delivery_key=key)
    assert len(events) == 1
    return events[0]


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


# --------------------------------------------------------------------------------------------
# verify


def test_a_signature_made_like_zendesk_passes(
    adapter: ZendeskAdapter, zendesk_fixture: Callable[[str], bytes], sign_like_zendesk: Signer
) -> None:
    body = zendesk_fixture("event_ticket_created.json")
    adapter.verify(_headers(sign_like_zendesk(SECRET, STAMP, body)), body, now=NOW)


def test_header_names_are_case_insensitive(
    adapter: ZendeskAdapter, sign_like_zendesk: Signer
) -> None:
    body = b'{"say": "hello"}'
    headers = Headers(
        [
            ("x-zendesk-webhook-signature", sign_like_zendesk(SECRET, STAMP, body)),
            ("X-ZENDESK-WEBHOOK-SIGNATURE-TIMESTAMP", STAMP),
        ]
    )
    adapter.verify(headers, body, now=NOW)


def test_a_rotated_secret_is_accepted_while_both_are_configured(
    make_desk: Callable[..., DeskSettings], sign_like_zendesk: Signer
) -> None:
    body = b'{"id": 1}'
    adapter = ZendeskAdapter(make_desk(secrets=("new-secret", "old-secret")))
    for secret in ("new-secret", "old-secret"):
        adapter.verify(_headers(sign_like_zendesk(secret, STAMP, body)), body, now=NOW)
    with pytest.raises(SignatureError, match="does not match"):
        adapter.verify(_headers(sign_like_zendesk("older-secret", STAMP, body)), body, now=NOW)


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("wrong secret", "does not match"),
        ("body changed", "does not match"),
        ("body re-serialised", "does not match"),
        ("stamp changed", "does not match"),
        ("signature over body + timestamp", "does not match"),
        ("hex instead of base64", "does not match"),
        ("no signature", "missing X-Zendesk-Webhook-Signature header"),
        ("no timestamp", "missing X-Zendesk-Webhook-Signature-Timestamp"),
        ("epoch timestamp", "not an ISO-8601"),
    ],
)
def test_bad_signatures_are_refused(
    adapter: ZendeskAdapter, sign_like_zendesk: Signer, case: str, words: str
) -> None:
    body = b'{"a": 1,  "b": "\\u00e9"}'
    headers = _headers(sign_like_zendesk(SECRET, STAMP, body))
    if case == "wrong secret":
        headers = _headers(sign_like_zendesk("guess", STAMP, body))
    elif case == "body changed":
        body = body.replace(b"1", b"2")
    elif case == "body re-serialised":
        body = json.dumps(json.loads(body)).encode()
    elif case == "stamp changed":
        headers["X-Zendesk-Webhook-Signature-Timestamp"] = "2025-01-08T11:59:31Z"
    elif case == "signature over body + timestamp":
        import base64
        import hashlib
        import hmac

        digest = hmac.new(SECRET.encode(), body + STAMP.encode(), hashlib.sha256).digest()
        headers = _headers(base64.b64encode(digest).decode())
    elif case == "hex instead of base64":
        import hashlib
        import hmac

        headers = _headers(
            hmac.new(SECRET.encode(), STAMP.encode() + body, hashlib.sha256).hexdigest()
        )
    elif case == "no signature":
        del headers["X-Zendesk-Webhook-Signature"]
    elif case == "no timestamp":
        del headers["X-Zendesk-Webhook-Signature-Timestamp"]
    elif case == "epoch timestamp":
        headers = _headers(sign_like_zendesk(SECRET, "1736337570", body), "1736337570")
    with pytest.raises(SignatureError, match=words) as caught:
        adapter.verify(headers, body, now=NOW)
    assert caught.value.http_status == 401
    assert not isinstance(caught.value, MissingSecretError)


@pytest.mark.parametrize(
    ("stamp", "accepted"),
    [
        ("2025-01-08T11:55:00Z", True),  # exactly 5 minutes old
        ("2025-01-08T12:05:00Z", True),  # exactly 5 minutes ahead
        ("2025-01-08T11:54:59Z", False),  # stale: a replay
        ("2025-01-08T12:05:01Z", False),  # from the future
        ("2025-01-07T12:00:00Z", False),
        ("2025-01-08T16:00:00+04:00", True),  # same instant, another zone
    ],
)
def test_the_timestamp_window_is_checked_both_ways(
    adapter: ZendeskAdapter, sign_like_zendesk: Signer, stamp: str, accepted: bool
) -> None:
    body = b"{}"
    headers = _headers(sign_like_zendesk(SECRET, stamp, body), stamp)
    if accepted:
        adapter.verify(headers, body, now=NOW)
    else:
        with pytest.raises(SignatureError, match="old|future"):
            adapter.verify(headers, body, now=NOW)


def test_the_desk_may_widen_the_window(
    make_desk: Callable[..., DeskSettings], sign_like_zendesk: Signer
) -> None:
    adapter = ZendeskAdapter(make_desk(options={"signature_tolerance": 3600}))
    stamp = "2025-01-08T11:10:00Z"
    adapter.verify(_headers(sign_like_zendesk(SECRET, stamp, b""), stamp), b"", now=NOW)


@pytest.mark.parametrize("secrets", [(), ("",)])
def test_no_secret_fails_closed(
    make_desk: Callable[..., DeskSettings], sign_like_zendesk: Signer, secrets: tuple[str, ...]
) -> None:
    adapter = ZendeskAdapter(make_desk(secrets=secrets))
    body = b"{}"
    with pytest.raises(MissingSecretError, match="CARE_ZENDESK_SECRET") as caught:
        adapter.verify(_headers(sign_like_zendesk("", STAMP, body)), body, now=NOW)
    assert caught.value.http_status == 401


# --------------------------------------------------------------------------------------------
# delivery keys


def test_event_subscriptions_are_keyed_by_the_envelope_id(
    adapter: ZendeskAdapter, zendesk_fixture: Callable[[str], bytes]
) -> None:
    body = zendesk_fixture("event_ticket_created.json")
    headers = {"X-Zendesk-Webhook-Invocation-Id": "8350205582"}
    assert adapter.delivery_key(headers, body) == "cbe4028c-7239-495d-b020-f22348516046"


def test_trigger_bodies_are_keyed_by_the_invocation_id(
    adapter: ZendeskAdapter, zendesk_fixture: Callable[[str], bytes]
) -> None:
    body = zendesk_fixture("trigger_created.json")
    assert adapter.delivery_key({"x-zendesk-webhook-invocation-id": "8350205582"}, body) == (
        "8350205582"
    )


@pytest.mark.parametrize(
    "body",
    [
        b"not json at all",
        b'{"care_connector": 1}',
        b'{"type": "zen:event-type:ticket.created", "id": ""}',
        b'{"type": "zen:event-type:ticket.created", "id": 17}',
        b'{"type": "zen:event-type:ticket.created", "id": "' + b"x" * 201 + b'"}',
        b'{"type": "other", "id": "abc"}',
    ],
)
def test_without_ids_the_key_is_the_body_hash(adapter: ZendeskAdapter, body: bytes) -> None:
    import hashlib

    assert adapter.delivery_key({}, body) == hashlib.sha256(body).hexdigest()
    assert adapter.delivery_key({"X-Zendesk-Webhook-Invocation-Id": ""}, body) == (
        hashlib.sha256(body).hexdigest()
    )


# --------------------------------------------------------------------------------------------
# parse: every fixture into the right event


def test_ticket_created_event(
    adapter: ZendeskAdapter, zendesk_fixture: Callable[[str], bytes]
) -> None:
    event = _parse(adapter, zendesk_fixture("event_ticket_created.json"), key="cbe4028c")
    assert event == TicketEvent(
        desk="zendesk",
        delivery_key="cbe4028c",
        type=EventType.TICKET_CREATED,
        ticket_id="5158",
        occurred_at=datetime(2025, 1, 8, 10, 12, 7, 672717, tzinfo=UTC),
        ticket_created_at=datetime(2025, 1, 8, 10, 12, 7, tzinfo=UTC),
        subject="ticketinfo_2294a6e9ece2",
        description="ticket_info_desc_2294a6e9ece2",
        requester_id="8447388090494",
        requester_email=None,
        requester_name=None,
        actor_id="8447388090494",
        status=TicketStatus.OPEN,
        priority="low",
        tags=("ticket-info-test-tag",),
        via_channel="web_service",
    )
    assert event.raw["id"] == "cbe4028c-7239-495d-b020-f22348516046"


def test_priority_changed_event(
    adapter: ZendeskAdapter, zendesk_fixture: Callable[[str], bytes]
) -> None:
    event = _parse(adapter, zendesk_fixture("event_ticket_priority_changed.dust.json"))
    assert event.type is EventType.PRIORITY_CHANGED
    assert (event.ticket_id, event.priority, event.status) == ("5158", "urgent", TicketStatus.OPEN)
    assert event.tags == ("mobile", "login", "priority-support")
    assert event.subject == "Cannot login to mobile app"
    assert event.occurred_at == datetime(2025, 1, 8, 11, 30, 15, 456789, tzinfo=UTC)


def test_comment_added_by_the_requester(
    adapter: ZendeskAdapter, zendesk_fixture: Callable[[str], bytes]
) -> None:
    event = _parse(adapter, zendesk_fixture("event_ticket_comment_added.json"))
    assert event.type is EventType.COMMENT_ADDED
    assert event.comment == Comment(
        body="Yes, I agree with the estimate.\n\nOn Jan 8 you wrote:\n> Please approve 10 credits",
        public=True,
        author_id="8447388090494",
        by_requester=True,
    )
    assert event.status is TicketStatus.WAITING
    assert event.tags == ("shipping", "care_awaiting_approval")
    assert event.requester_email is None  # the worker asks client.get_requester


def test_comment_added_as_an_agents_internal_note(
    adapter: ZendeskAdapter, zendesk_fixture: Callable[[str], bytes]
) -> None:
    event = _parse(adapter, zendesk_fixture("event_ticket_comment_added__agent_note.json"))
    assert event.comment == Comment(
        body="Checked the shipping settings, looks like a configuration issue.",
        public=False,
        author_id="8447388090501",
        by_requester=False,
    )
    assert event.actor_id == "8447388090501"


def test_tags_changed(adapter: ZendeskAdapter, zendesk_fixture: Callable[[str], bytes]) -> None:
    event = _parse(adapter, zendesk_fixture("event_ticket_tags_changed.json"))
    assert event.type is EventType.TAGS_CHANGED
    assert event.tags_added == ("care_category_configuration",)
    assert event.tags_removed == ("care_needs_category",)
    assert event.tags == ("shipping", "care_category_configuration")


def test_status_changed_to_on_hold_is_waiting(
    adapter: ZendeskAdapter, zendesk_fixture: Callable[[str], bytes]
) -> None:
    event = _parse(adapter, zendesk_fixture("event_ticket_status_changed.json"))
    assert event.type is EventType.STATUS_CHANGED
    assert (event.status, event.priority) == (TicketStatus.WAITING, "high")


def test_custom_field_changed_is_named_by_the_desk_mapping(
    adapter: ZendeskAdapter, zendesk_fixture: Callable[[str], bytes]
) -> None:
    event = _parse(adapter, zendesk_fixture("event_ticket_custom_field_changed.json"))
    assert event.type is EventType.FIELDS_CHANGED
    assert event.fields == {"care_price": "35"}


def test_custom_field_outside_the_mapping_is_left_out(
    make_desk: Callable[..., DeskSettings], zendesk_fixture: Callable[[str], bytes]
) -> None:
    adapter = ZendeskAdapter(make_desk(fields={"care_category": "360001234567"}))
    event = _parse(adapter, zendesk_fixture("event_ticket_custom_field_changed.json"))
    assert (event.type, event.fields) == (EventType.FIELDS_CHANGED, {})


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        ("35", {"care_price": "35"}),
        (35, {"care_price": "35"}),
        ({"value": "40"}, {"care_price": "40"}),
        (["a", "b"], {"care_price": "a b"}),
        (None, {}),
        ("", {}),
    ],
)
def test_custom_field_values_in_their_shapes(
    adapter: ZendeskAdapter,
    zendesk_json: Callable[[str], dict[str, Any]],
    current: Any,
    expected: dict[str, str],
) -> None:
    data = zendesk_json("event_ticket_custom_field_changed.json")
    data["event"]["current"] = current
    assert _parse(adapter, json.dumps(data).encode()).fields == expected


@pytest.mark.parametrize(
    "name", ["event_ticket_soft_deleted.json", "event_ticket_marked_as_spam.json"]
)
def test_deleted_and_spam_end_the_ticket(
    adapter: ZendeskAdapter, zendesk_fixture: Callable[[str], bytes], name: str
) -> None:
    event = _parse(adapter, zendesk_fixture(name))
    assert event.type is EventType.TICKET_DELETED
    assert event.status is TicketStatus.UNKNOWN  # DELETED is no status of the connector


def test_trigger_created(adapter: ZendeskAdapter, zendesk_fixture: Callable[[str], bytes]) -> None:
    event = _parse(adapter, zendesk_fixture("trigger_created.json"), key="8350205582")
    assert event == TicketEvent(
        desk="zendesk",
        delivery_key="8350205582",
        type=EventType.TICKET_CREATED,
        ticket_id="7",
        occurred_at=_at("2025-02-03T15:59:12+00:00"),
        ticket_created_at=_at("2025-02-03T15:59:12+00:00"),
        subject="Upgrade from 4.3.1 to 4.3.9",
        description=(
            "----------------------------------------------\n\nShop Owner, Feb 3, 2025, 19:59\n\n"
            'Please upgrade my store from 4.3.1 to 4.3.9. The "checkout" page is slow too.'
        ),
        requester_id="8447388090494",
        requester_email="owner@shop.example",
        requester_name="Shop Owner",
        actor_id="8447388090494",
        status=TicketStatus.NEW,
        priority="normal",
        tags=("upgrade", "care_preapproved"),
        fields={"care_preapproval": "60"},
        locale="ru",
        via_channel="Web Form",
    )


def test_trigger_comment_from_the_requester(
    adapter: ZendeskAdapter, zendesk_fixture: Callable[[str], bytes]
) -> None:
    event = _parse(adapter, zendesk_fixture("trigger_comment.json"))
    assert event.type is EventType.COMMENT_ADDED
    assert event.comment == Comment(
        body="Согласен, подтверждаю.\n\n> Please approve 50 credits",
        public=True,
        author_id="8447388090494",
        by_requester=True,
    )
    assert (event.status, event.priority, event.via_channel) == (
        TicketStatus.WAITING,
        "high",
        "Mail",
    )
    assert event.occurred_at == _at("2025-02-03T17:20:45+00:00")


def test_trigger_updated_by_an_agent(
    adapter: ZendeskAdapter, zendesk_fixture: Callable[[str], bytes]
) -> None:
    event = _parse(adapter, zendesk_fixture("trigger_updated.json"))
    assert event.type is EventType.TICKET_UPDATED
    assert event.comment is None
    assert event.actor_id == "8447388090501"
    assert event.fields == {"care_category": "care_category_investigation"}
    assert (event.status, event.priority) == (TicketStatus.WAITING, None)
    assert event.tags == ("upgrade", "care_category_investigation")


@pytest.mark.parametrize(
    ("public", "author", "expected_public", "by_requester"),
    [
        ("true", "8447388090494", True, True),
        ("false", "8447388090501", False, False),
        (True, "8447388090501", True, False),
        ("", "8447388090494", True, True),  # an unrendered flag: an end user's comment is public
        ("", "8447388090501", False, False),
        ("", "", False, False),
    ],
)
def test_trigger_comment_flags(
    adapter: ZendeskAdapter,
    zendesk_json: Callable[[str], dict[str, Any]],
    public: Any,
    author: str,
    expected_public: bool,
    by_requester: bool,
) -> None:
    data = zendesk_json("trigger_comment.json")
    data["comment"].update(public=public, author_id=author)
    comment = _parse(adapter, json.dumps(data).encode()).comment
    assert comment is not None
    assert (comment.public, comment.by_requester) == (expected_public, by_requester)
    assert comment.author_id == (author or None)


def test_unrendered_placeholders_are_no_values(
    adapter: ZendeskAdapter, zendesk_json: Callable[[str], dict[str, Any]]
) -> None:
    data = zendesk_json("trigger_created.json")
    data["requester"] = {"id": "", "email": "", "name": " ", "locale": ""}
    data["current_user"] = {"id": ""}
    data["ticket"].update(priority="", status="", tags="", created_at="", updated_at="", via="")
    event = _parse(adapter, json.dumps(data).encode())
    assert (event.requester_id, event.requester_email, event.requester_name, event.locale) == (
        None,
        None,
        None,
        None,
    )
    assert (event.actor_id, event.priority, event.status, event.tags) == (
        None,
        None,
        TicketStatus.UNKNOWN,
        (),
    )
    assert (event.occurred_at, event.ticket_created_at, event.via_channel) == (None, None, None)


@pytest.mark.parametrize("value", ["LOW", "low", "Low", " lOw "])
def test_priority_in_every_casing_is_the_api_value(
    adapter: ZendeskAdapter, zendesk_json: Callable[[str], dict[str, Any]], value: str
) -> None:
    event_shape = zendesk_json("event_ticket_created.json")
    event_shape["detail"]["priority"] = value
    trigger_shape = zendesk_json("trigger_created.json")
    trigger_shape["ticket"]["priority"] = value
    for data in (event_shape, trigger_shape):
        assert _parse(adapter, json.dumps(data).encode()).priority == "low"


@pytest.mark.parametrize(
    ("value", "status"),
    [
        ("NEW", TicketStatus.NEW),
        ("new", TicketStatus.NEW),
        ("OPEN", TicketStatus.OPEN),
        ("Open", TicketStatus.OPEN),
        ("PENDING", TicketStatus.WAITING),
        ("HOLD", TicketStatus.WAITING),
        ("On-hold", TicketStatus.WAITING),
        ("SOLVED", TicketStatus.SOLVED),
        ("Closed", TicketStatus.CLOSED),
        ("ARCHIVED", TicketStatus.UNKNOWN),
        (None, TicketStatus.UNKNOWN),
    ],
)
def test_status_mapping(
    adapter: ZendeskAdapter,
    zendesk_json: Callable[[str], dict[str, Any]],
    value: str | None,
    status: TicketStatus,
) -> None:
    data = zendesk_json("event_ticket_created.json")
    data["detail"]["status"] = value
    assert _parse(adapter, json.dumps(data).encode()).status is status


def test_numeric_ids_are_read_as_text(
    adapter: ZendeskAdapter, zendesk_json: Callable[[str], dict[str, Any]]
) -> None:
    data = zendesk_json("event_ticket_created.json")
    data["detail"].update(id=5158, requester_id=8447388090494, actor_id=8447388090999)
    event = _parse(adapter, json.dumps(data).encode())
    assert (event.ticket_id, event.requester_id, event.actor_id) == (
        "5158",
        "8447388090494",
        "8447388090999",
    )
    assert adapter.is_own_event(event)


def test_own_events_are_recognised(
    make_desk: Callable[..., DeskSettings], zendesk_fixture: Callable[[str], bytes]
) -> None:
    adapter = ZendeskAdapter(make_desk(api_user_id="8447388090501"))
    assert adapter.is_own_event(_parse(adapter, zendesk_fixture("trigger_updated.json")))
    assert not adapter.is_own_event(_parse(adapter, zendesk_fixture("trigger_created.json")))


def test_every_handled_event_type_has_a_fixture(
    adapter: ZendeskAdapter, fixtures_dir: Path
) -> None:
    for code, event_type in EVENT_TYPES.items():
        name = "event_" + code.removeprefix("zen:event-type:").replace(".", "_") + ".json"
        candidates = sorted((fixtures_dir / "zendesk").glob(name.replace(".json", "*.json")))
        assert candidates, f"no fixture for {code}"
        for path in candidates:
            assert _parse(adapter, path.read_bytes()).type is event_type, path.name


def test_every_fixture_has_its_source_note(fixtures_dir: Path) -> None:
    payloads = sorted((fixtures_dir / "zendesk").glob("*.json"))
    assert len(payloads) >= 15
    for path in payloads:
        note = path.with_name(path.name.removesuffix(".json") + ".source.txt")
        assert note.is_file(), path.name
        assert note.read_text().strip()


# --------------------------------------------------------------------------------------------
# parse: what is refused


def test_unknown_zendesk_events_are_ignored(
    adapter: ZendeskAdapter, zendesk_fixture: Callable[[str], bytes]
) -> None:
    with pytest.raises(UnsupportedEventError) as caught:
        adapter.parse({}, zendesk_fixture("event_user_created.json"), delivery_key="k")
    assert caught.value.http_status == 200
    assert caught.value.event_type == "zen:event-type:user.created"


@pytest.mark.parametrize(
    "kind",
    [
        "zen:event-type:ticket.merged",
        "zen:event-type:ticket.agent_assignment_changed",
        "zen:event-type:",
    ],
)
def test_other_ticket_events_are_ignored_before_any_validation(
    adapter: ZendeskAdapter, kind: str
) -> None:
    with pytest.raises(UnsupportedEventError):
        adapter.parse({}, json.dumps({"type": kind}).encode(), delivery_key="k")


@pytest.mark.parametrize(
    "name",
    [
        "trigger_webhook_custom_body_ticket_create_update.json",
        "trigger_webhook_custom_body_message.json",
    ],
)
def test_foreign_trigger_bodies_are_refused(
    adapter: ZendeskAdapter, zendesk_fixture: Callable[[str], bytes], name: str
) -> None:
    with pytest.raises(AnomalousPayloadError, match="webhooks install") as caught:
        adapter.parse({}, zendesk_fixture(name), delivery_key="k")
    assert set(caught.value.errors) == {"type", "care_connector"}


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (b"{not json", "$"),
        (b"[]", "$"),
        (b'"zen:event-type:ticket.created"', "$"),
        (b"\xc3\x28", "$"),
    ],
)
def test_bodies_that_are_not_json_objects(adapter: ZendeskAdapter, body: bytes, path: str) -> None:
    with pytest.raises(AnomalousPayloadError) as caught:
        adapter.parse({}, body, delivery_key="k")
    assert list(caught.value.errors) == [path]


@pytest.mark.parametrize(
    ("fixture", "path", "value", "error_path"),
    [
        ("event_ticket_created.json", "detail", _DELETE, "detail"),
        ("event_ticket_created.json", "detail", "5158", "detail"),
        ("event_ticket_created.json", "detail.id", _DELETE, "detail.id"),
        ("event_ticket_created.json", "detail.id", None, "detail.id"),
        ("event_ticket_created.json", "detail.id", {"n": 1}, "detail.id"),
        ("event_ticket_created.json", "detail.id", 1.5, "detail.id"),
        ("event_ticket_created.json", "detail.tags", "one two", None),
        ("event_ticket_created.json", "detail.tags", ["ok", 3], "detail.tags.1"),
        ("event_ticket_created.json", "detail.tags", {"a": 1}, "detail.tags"),
        ("event_ticket_created.json", "detail.created_at", "yesterday", "detail.created_at"),
        (
            "event_ticket_created.json",
            "detail.created_at",
            "2025-01-08T10:12:07",
            "detail.created_at",
        ),
        ("event_ticket_created.json", "time", 1736337127, "time"),
        ("event_ticket_created.json", "id", _DELETE, "id"),
        ("event_ticket_created.json", "id", "", "id"),
        ("event_ticket_created.json", "detail.subject", ["x"], "detail.subject"),
        ("event_ticket_created.json", "detail.via", "web", "detail.via"),
        ("event_ticket_created.json", "event", [], "event"),
        ("event_ticket_comment_added.json", "event.comment", _DELETE, "event.comment"),
        ("event_ticket_comment_added.json", "event.comment.body", 12.5, None),
        ("event_ticket_comment_added.json", "event.comment.body", {"t": 1}, "event.comment.body"),
        (
            "event_ticket_comment_added.json",
            "event.comment.is_public",
            "maybe",
            "event.comment.is_public",
        ),
        ("event_ticket_comment_added.json", "event.comment.author", "me", "event.comment.author"),
        ("event_ticket_tags_changed.json", "event.tags_added", [None], "event.tags_added.0"),
        (
            "event_ticket_custom_field_changed.json",
            "event.custom_field",
            _DELETE,
            "event.custom_field",
        ),
        (
            "event_ticket_custom_field_changed.json",
            "event.custom_field.id",
            None,
            "event.custom_field.id",
        ),
        ("event_ticket_status_changed.json", "event.current", ["HOLD"], "event.current"),
        ("trigger_created.json", "care_connector", 2, "care_connector"),
        ("trigger_created.json", "care_connector", "1", "care_connector"),
        ("trigger_created.json", "event", "deleted", "event"),
        ("trigger_created.json", "event", _DELETE, "event"),
        ("trigger_created.json", "ticket", _DELETE, "ticket"),
        ("trigger_created.json", "ticket.id", "", "ticket.id"),
        ("trigger_created.json", "ticket.id", " ", "ticket.id"),
        ("event_ticket_created.json", "detail.id", "", "detail.id"),
        ("trigger_created.json", "ticket.fields", ["x"], "ticket.fields"),
        (
            "trigger_created.json",
            "ticket.fields",
            {"360001234569": {"deep": 1}},
            "ticket.fields.360001234569",
        ),
        ("trigger_created.json", "requester", "owner@shop.example", "requester"),
        ("trigger_created.json", "requester.email", ["a"], "requester.email"),
        ("trigger_comment.json", "comment", _DELETE, "comment"),
        ("trigger_comment.json", "comment.public", "perhaps", "comment.public"),
    ],
)
def test_wrong_shapes_name_the_failing_path(
    adapter: ZendeskAdapter,
    zendesk_json: Callable[[str], dict[str, Any]],
    fixture: str,
    path: str,
    value: Any,
    error_path: str | None,
) -> None:
    data = zendesk_json(fixture)
    _set(data, path, value)
    body = json.dumps(data).encode()
    if error_path is None:  # lenient: still parses
        assert len(adapter.parse({}, body, delivery_key="k")) == 1
        return
    with pytest.raises(AnomalousPayloadError) as caught:
        adapter.parse({}, body, delivery_key="k")
    assert error_path in caught.value.errors, caught.value.errors
    assert caught.value.http_status == 400
    assert error_path in str(caught.value)


def test_unknown_keys_are_ignored(
    adapter: ZendeskAdapter, zendesk_json: Callable[[str], dict[str, Any]]
) -> None:
    data = zendesk_json("event_ticket_created.json")
    data["new_envelope_key"] = {"x": 1}
    data["detail"]["brand_new_field"] = [1, 2]
    assert _parse(adapter, json.dumps(data).encode()).ticket_id == "5158"


# --------------------------------------------------------------------------------------------
# Any input: only the documented errors


_json_leaf = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
_json = st.recursive(
    _json_leaf,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
_types = st.sampled_from(
    [*EVENT_TYPES, "zen:event-type:user.created", "zen:event-type:ticket.merged", "other"]
)
_detail = st.fixed_dictionaries(
    {},
    optional={
        key: _json | st.text(max_size=12)
        for key in (
            "id",
            "actor_id",
            "requester_id",
            "created_at",
            "status",
            "priority",
            "tags",
            "via",
            "subject",
        )
    },
)
_envelopes = st.fixed_dictionaries(
    {"type": _types},
    optional={
        "id": _json | st.text(max_size=12),
        "time": _json | st.just("2025-01-08T10:12:07Z"),
        "detail": _detail | _json,
        "event": st.fixed_dictionaries(
            {},
            optional={
                "comment": _json
                | st.fixed_dictionaries({}, optional={"body": _json, "author": _json}),
                "tags_added": _json,
                "custom_field": _json | st.fixed_dictionaries({"id": _json}),
                "current": _json,
            },
        )
        | _json,
    },
)
_trigger_bodies = st.fixed_dictionaries(
    {"care_connector": st.sampled_from([1, 2, "1", None])},
    optional={
        "event": st.sampled_from(["created", "updated", "comment"]) | _json,
        "ticket": st.fixed_dictionaries(
            {},
            optional={k: _json for k in ("id", "tags", "fields", "created_at", "priority")},
        )
        | _json,
        "requester": _json,
        "current_user": _json,
        "comment": _json,
    },
)
_bodies = (
    st.binary(max_size=200)
    | _json.map(lambda v: json.dumps(v).encode())
    | _envelopes.map(lambda v: json.dumps(v).encode())
    | _trigger_bodies.map(lambda v: json.dumps(v).encode())
)


@settings(
    max_examples=400,
    deadline=None,
    # make_desk is a factory: nothing in it needs resetting between examples.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    body=_bodies, headers=st.dictionaries(st.text(max_size=40), st.text(max_size=40), max_size=3)
)
def test_any_input_raises_only_webhook_errors(
    make_desk: Callable[..., DeskSettings], body: bytes, headers: dict[str, str]
) -> None:
    adapter = ZendeskAdapter(make_desk())
    key = adapter.delivery_key(headers, body)
    assert isinstance(key, str) and 0 < len(key) <= 200
    try:
        adapter.verify(headers, body, now=NOW)
    except SignatureError:
        pass
    try:
        events = adapter.parse(headers, body, delivery_key=key)
    except (AnomalousPayloadError, UnsupportedEventError) as err:
        assert isinstance(err, WebhookError)
        assert err.message
    else:
        assert len(events) == 1
        assert isinstance(events[0], TicketEvent)
        assert events[0].ticket_id


def test_a_signed_delivery_round_trip(
    adapter: ZendeskAdapter, zendesk_fixture: Callable[[str], bytes], sign_like_zendesk: Signer
) -> None:
    body = zendesk_fixture("trigger_comment.json")
    stamp = (NOW - timedelta(seconds=3)).isoformat().replace("+00:00", "Z")
    headers = _headers(
        sign_like_zendesk(SECRET, stamp, body), stamp, **{"X-Zendesk-Webhook-Invocation-Id": "99"}
    )
    adapter.verify(headers, body, now=NOW)
    key = adapter.delivery_key(headers, body)
    (event,) = adapter.parse(headers, body, delivery_key=key)
    assert (event.delivery_key, event.type, event.desk) == (
        "99",
        EventType.COMMENT_ADDED,
        "zendesk",
    )
