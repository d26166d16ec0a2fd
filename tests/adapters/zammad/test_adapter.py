"""The Zammad adapter: signatures, delivery keys, and both payloads into TicketEvents."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta, timezone
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
from adapters.zammad import ZammadAdapter
from adapters.zammad.schemas import EVENT_TYPES, html_to_text, parse_zammad_time
from rules.events import Comment, EventType, TicketEvent, TicketStatus
from tests.adapters.support import DELETE as _DELETE
from tests.adapters.support import FIXTURES
from tests.adapters.support import set_path as _set
from tests.adapters.zammad.support import (
    API_USER,
    SECRET,
    SUPPORT,
    fixture,
    fixture_headers,
    fixture_json,
    signature,
    zammad_desk,
)

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def adapter() -> ZammadAdapter:
    return ZammadAdapter(zammad_desk())


def _parse(adapter: ZammadAdapter, body: bytes, key: str = "key-1") -> TicketEvent:
    events = adapter.parse({}, body, delivery_key=key)
    assert len(events) == 1
    return events[0]


def _dumps(data: Any) -> bytes:
    return json.dumps(data).encode()


def _utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


# --------------------------------------------------------------------------------------------
# verify


def test_a_signature_made_like_zammad_passes(adapter: ZammadAdapter) -> None:
    body = fixture("ticket_trigger_default.json")
    headers = {**fixture_headers("ticket_trigger_default.json")}
    headers["X-Hub-Signature"] = signature(SECRET, body)
    adapter.verify(headers, body, now=NOW)


def test_header_names_are_case_insensitive(adapter: ZammadAdapter) -> None:
    body = b'{"ticket": {"id": 1}}'
    adapter.verify(Headers([("x-hub-signature", signature(SECRET, body))]), body, now=NOW)
    adapter.verify({"X-HUB-SIGNATURE": signature(SECRET, body)}, body, now=NOW)


def test_upper_case_hex_is_the_same_signature(adapter: ZammadAdapter) -> None:
    body = b"{}"
    digest = hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest().upper()
    adapter.verify({"X-Hub-Signature": f"SHA1={digest}"}, body, now=NOW)


def test_a_rotated_secret_is_accepted_while_both_are_configured() -> None:
    body = b'{"ticket": {"id": 1}}'
    adapter = ZammadAdapter(zammad_desk(secrets=("new-secret", "old-secret")))
    for secret in ("new-secret", "old-secret"):
        adapter.verify({"X-Hub-Signature": signature(secret, body)}, body, now=NOW)
    with pytest.raises(SignatureError, match="does not match"):
        adapter.verify({"X-Hub-Signature": signature("older-secret", body)}, body, now=NOW)


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("wrong secret", "does not match"),
        ("body changed", "does not match"),
        ("body re-serialised", "does not match"),
        ("sha256 instead of sha1", "does not match"),
        ("sha256 prefix", "not sha1=<hex>"),
        ("base64 instead of hex", "does not match"),
        ("no prefix", "not sha1=<hex>"),
        ("empty digest", "not sha1=<hex>"),
        ("no header", "missing X-Hub-Signature"),
        ("blank header", "missing X-Hub-Signature"),
    ],
)
def test_bad_signatures_are_refused(adapter: ZammadAdapter, case: str, words: str) -> None:
    import base64

    body = b'{"a": 1,  "b": "\\u00e9"}'
    headers = {"X-Hub-Signature": signature(SECRET, body)}
    if case == "wrong secret":
        headers = {"X-Hub-Signature": signature("guess", body)}
    elif case == "body changed":
        body = body.replace(b"1", b"2")
    elif case == "body re-serialised":
        body = json.dumps(json.loads(body)).encode()
    elif case == "sha256 instead of sha1":
        headers = {
            "X-Hub-Signature": "sha1=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        }
    elif case == "sha256 prefix":
        headers = {
            "X-Hub-Signature": "sha256="
            + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        }
    elif case == "base64 instead of hex":
        digest = hmac.new(SECRET.encode(), body, hashlib.sha1).digest()
        headers = {"X-Hub-Signature": "sha1=" + base64.b64encode(digest).decode()}
    elif case == "no prefix":
        headers = {"X-Hub-Signature": signature(SECRET, body).removeprefix("sha1=")}
    elif case == "empty digest":
        headers = {"X-Hub-Signature": "sha1="}
    elif case == "no header":
        headers = {}
    elif case == "blank header":
        headers = {"X-Hub-Signature": "  "}
    with pytest.raises(SignatureError, match=words) as caught:
        adapter.verify(headers, body, now=NOW)
    assert caught.value.http_status == 401
    assert not isinstance(caught.value, MissingSecretError)


def test_there_is_no_timestamp_window(adapter: ZammadAdapter) -> None:
    # Zammad signs the body only: an old delivery verifies; only its key catches a replay.
    body = fixture("custom_created.json")
    headers = {"X-Hub-Signature": signature(SECRET, body)}
    adapter.verify(headers, body, now=NOW + timedelta(days=365))


@pytest.mark.parametrize("secrets", [(), ("",)])
def test_no_secret_fails_closed(secrets: tuple[str, ...]) -> None:
    adapter = ZammadAdapter(zammad_desk(secrets=secrets))
    body = b"{}"
    with pytest.raises(MissingSecretError, match="CARE_ZAMMAD_SECRET") as caught:
        adapter.verify({"X-Hub-Signature": signature("", body)}, body, now=NOW)
    assert caught.value.http_status == 401


def test_no_secret_and_no_env_name_still_says_what_to_set() -> None:
    adapter = ZammadAdapter(zammad_desk(secrets=(), secret_env=()))
    with pytest.raises(MissingSecretError, match=r"\[desks.zammad\] secret_env"):
        adapter.verify({}, b"{}", now=NOW)


# --------------------------------------------------------------------------------------------
# delivery keys


def test_the_key_is_the_delivery_header(adapter: ZammadAdapter) -> None:
    body = fixture("custom_created.json")
    headers = fixture_headers("custom_created.json")
    assert adapter.delivery_key(headers, body) == "3b1f0e8a-9c2d-4e7f-8a15-6d4c2b9e0f31"
    assert adapter.delivery_key({"x-zammad-delivery": "  job-7 "}, body) == "job-7"


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-Zammad-Delivery": ""}, {"X-Zammad-Delivery": "  "}, {"X-Zammad-Delivery": "x" * 201}],
)
def test_without_a_usable_header_the_key_is_the_body_hash(
    adapter: ZammadAdapter, headers: dict[str, str]
) -> None:
    body = b"not even json"
    assert adapter.delivery_key(headers, body) == hashlib.sha256(body).hexdigest()


# --------------------------------------------------------------------------------------------
# parse: the default payload


def test_the_documented_default_payload_is_a_created_ticket(adapter: ZammadAdapter) -> None:
    event = _parse(adapter, fixture("ticket_trigger_default.json"), key="d-1")
    assert event == TicketEvent(
        desk="zammad",
        delivery_key="d-1",
        type=EventType.TICKET_CREATED,
        ticket_id="81",
        occurred_at=_utc(2020, 11, 13, 14, 34, 35, 282000),
        ticket_created_at=_utc(2020, 11, 13, 14, 34, 35, 282000),
        subject="Webhook-Test",
        description="This is a simple Webhook Test.",
        requester_id="8",
        requester_email="emily@example.com",
        requester_name="Emily Adams",
        actor_id="3",  # the agent who took the call and created the ticket
        status=TicketStatus.OPEN,
        priority="2 normal",
        tags=None,
        fields={},
        via_channel="phone",
    )
    assert event.raw["ticket"]["number"] == "10081"  # type: ignore[index]


def test_default_payload_customer_reply_is_a_public_comment(adapter: ZammadAdapter) -> None:
    event = _parse(adapter, fixture("default_article_customer_reply.json"))
    assert event.type is EventType.COMMENT_ADDED
    assert event.comment == Comment(
        body=(
            "Yes, I agree & please go ahead.\n\n"
            "> On 13.11.20 15:40, Service Desk wrote:\n> Please approve 50 credits."
        ),
        public=True,
        author_id="8",
        by_requester=True,
    )
    assert (event.actor_id, event.requester_id, event.description) == ("8", "8", "")
    assert event.occurred_at == _utc(2020, 11, 13, 15, 2, 11, 500000)
    assert event.via_channel == "email"


def test_default_payload_update_without_article(adapter: ZammadAdapter) -> None:
    event = _parse(adapter, fixture("default_update_no_article.json"))
    assert event.type is EventType.TICKET_UPDATED
    assert event.comment is None
    assert (event.status, event.priority, event.actor_id) == (TicketStatus.WAITING, "3 high", "5")
    assert event.fields == {"care_category": "modification", "care_price": "35"}
    assert event.occurred_at == _utc(2020, 11, 13, 16, 20, 0, 125000)
    assert event.via_channel is None


@pytest.mark.parametrize(
    ("ids", "count", "expected"),
    [
        ([104], 1, EventType.TICKET_CREATED),
        ([99, 104], 2, EventType.COMMENT_ADDED),
        ([104, 120], 2, EventType.TICKET_CREATED),  # the first, whatever the order
        (None, 1, EventType.TICKET_CREATED),  # no ids: one article is the first
        (None, 3, EventType.COMMENT_ADDED),
        (None, None, EventType.COMMENT_ADDED),
    ],
)
def test_default_payload_created_means_the_first_article(
    adapter: ZammadAdapter, ids: list[int] | None, count: int | None, expected: EventType
) -> None:
    data = fixture_json("ticket_trigger_default.json")
    data["ticket"].pop("article_ids")
    data["ticket"].pop("article_count")
    if ids is not None:
        data["ticket"]["article_ids"] = ids
    if count is not None:
        data["ticket"]["article_count"] = count
    assert _parse(adapter, _dumps(data)).type is expected


def test_default_payload_custom_attribute_shapes(adapter: ZammadAdapter) -> None:
    data = fixture_json("ticket_trigger_default.json")
    data["ticket"].update(
        care_category=["modification", "urgent"],  # multi-select
        care_price={"value": 40, "label": "40 credits"},  # external data source
        care_preapproval=True,
    )
    assert _parse(adapter, _dumps(data)).fields == {
        "care_category": "modification urgent",
        "care_price": "40",
        "care_preapproval": "true",
    }


def test_default_payload_bad_custom_attribute_names_its_path(adapter: ZammadAdapter) -> None:
    data = fixture_json("ticket_trigger_default.json")
    data["ticket"]["care_price"] = {"deep": {"x": 1}}
    with pytest.raises(AnomalousPayloadError, match="ticket.care_price") as caught:
        adapter.parse({}, _dumps(data), delivery_key="k")
    assert list(caught.value.errors) == ["ticket.care_price"]


def test_default_payload_priority_and_state_as_names_or_objects(adapter: ZammadAdapter) -> None:
    data = fixture_json("ticket_trigger_default.json")
    data["ticket"]["priority"] = "3 high"
    data["ticket"]["state"] = {"id": 4, "name": "closed"}
    event = _parse(adapter, _dumps(data))
    assert (event.priority, event.status) == ("3 high", TicketStatus.CLOSED)


def test_default_payload_customer_without_object_uses_customer_id(
    adapter: ZammadAdapter,
) -> None:
    data = fixture_json("ticket_trigger_default.json")
    data["ticket"]["customer"] = {}
    event = _parse(adapter, _dumps(data))
    assert (event.requester_id, event.requester_email, event.requester_name) == ("8", None, None)


# --------------------------------------------------------------------------------------------
# parse: the connector's custom payload


def test_custom_created(adapter: ZammadAdapter) -> None:
    event = _parse(adapter, fixture("custom_created.json"), key="c-1")
    assert event == TicketEvent(
        desk="zammad",
        delivery_key="c-1",
        type=EventType.TICKET_CREATED,
        ticket_id="1042",
        occurred_at=_utc(2026, 3, 10, 9, 58),
        ticket_created_at=_utc(2026, 3, 10, 9, 58),
        subject="Upgrade from 4.3.1 to 4.3.9",
        description=(
            'Please upgrade my store from 4.3.1 to 4.3.9.\nThe "checkout" page is slow too.'
        ),
        requester_id="27",
        requester_email="owner@shop.example",
        requester_name="Shop Owner",
        actor_id="27",
        status=TicketStatus.NEW,
        priority="2 normal",
        tags=None,
        fields={"care_preapproval": "60"},
        via_channel="email",
    )


def test_custom_update_without_article(adapter: ZammadAdapter) -> None:
    event = _parse(adapter, fixture("custom_updated.json"))
    assert event.type is EventType.TICKET_UPDATED
    assert event.comment is None
    assert (event.actor_id, event.status, event.priority) == ("5", TicketStatus.OPEN, "3 high")
    assert event.fields == {"care_category": "modification", "care_price": "35"}
    assert event.occurred_at == _utc(2026, 3, 10, 10, 20, 30)
    assert event.ticket_created_at == _utc(2026, 3, 10, 9, 58)
    assert event.via_channel is None


def test_custom_customer_reply(adapter: ZammadAdapter) -> None:
    event = _parse(adapter, fixture("custom_article_reply.json"))
    assert event.type is EventType.COMMENT_ADDED
    assert event.comment == Comment(
        body=(
            "Согласен, подтверждаю.\n\n"
            "> On 10.03.26 10:15, Support wrote:\n> Please approve 50 credits"
        ),
        public=True,
        author_id="27",
        by_requester=True,
    )
    assert event.actor_id == "27"


def test_custom_agent_note_is_internal(adapter: ZammadAdapter) -> None:
    event = _parse(adapter, fixture("custom_article_agent_note.json"))
    assert event.comment == Comment(
        body="Checked the shipping settings, looks like a configuration issue.",
        public=False,
        author_id="5",
        by_requester=False,
    )
    assert (event.actor_id, event.via_channel) == ("5", "note")


def test_a_phone_note_on_the_customers_behalf(adapter: ZammadAdapter) -> None:
    event = _parse(adapter, fixture("custom_article_phone_on_behalf.json"))
    assert event.comment == Comment(
        body="Customer called: yes, go ahead with the upgrade.",
        public=True,
        author_id="27",  # origin_by: the customer said it
        by_requester=True,
    )
    assert event.actor_id == "5"  # the agent wrote it: the loop guard's author


def test_older_zammad_rendering_parses_the_same(adapter: ZammadAdapter) -> None:
    event = _parse(adapter, fixture("custom_created_legacy_rendering.json"))
    assert (event.type, event.ticket_id, event.requester_id, event.actor_id) == (
        EventType.TICKET_CREATED,
        "1042",
        "27",
        "27",
    )
    assert event.fields == {"care_preapproval": "60"}
    assert (event.description, event.via_channel) == (
        "Please upgrade my store from 4.3.1 to 4.3.9.",
        "web",
    )


@pytest.mark.parametrize(
    ("internal", "sender", "public", "by_requester"),
    [
        (False, "Agent", True, False),
        (True, "Agent", False, False),
        ("", "Customer", True, True),  # unknown flag: a customer's article is public
        ("#{article.internal / no such method}", "Agent", False, False),
        ("true", "Customer", False, True),
    ],
)
def test_comment_visibility(
    adapter: ZammadAdapter, internal: Any, sender: str, public: bool, by_requester: bool
) -> None:
    data = fixture_json("custom_article_agent_note.json")
    data["article"].update(internal=internal, sender=sender)
    comment = _parse(adapter, _dumps(data)).comment
    assert comment is not None
    assert (comment.public, comment.by_requester) == (public, by_requester)


@pytest.mark.parametrize(
    ("value", "status"),
    [
        ("new", TicketStatus.NEW),
        ("open", TicketStatus.OPEN),
        ("Open", TicketStatus.OPEN),
        ("pending reminder", TicketStatus.WAITING),
        ("pending  close", TicketStatus.WAITING),
        ("closed", TicketStatus.CLOSED),
        ("merged", TicketStatus.CLOSED),
        ("in progress", TicketStatus.UNKNOWN),  # an admin's own state
        ("", TicketStatus.UNKNOWN),
    ],
)
def test_status_mapping(adapter: ZammadAdapter, value: str, status: TicketStatus) -> None:
    data = fixture_json("custom_updated.json")
    data["ticket"]["state"] = value
    assert _parse(adapter, _dumps(data)).status is status


@pytest.mark.parametrize("value", ["3 high", "4 disaster", " 3 high "])
def test_priority_names_are_kept_as_zammad_writes_them(adapter: ZammadAdapter, value: str) -> None:
    data = fixture_json("custom_updated.json")
    data["ticket"]["priority"] = value
    assert _parse(adapter, _dumps(data)).priority == value.strip()


def test_custom_fields_outside_the_mapping_are_left_out() -> None:
    adapter = ZammadAdapter(zammad_desk(fields={"care_price": "care_price"}))
    assert _parse(adapter, fixture("custom_updated.json")).fields == {"care_price": "35"}


def test_a_field_mapped_to_another_attribute_name() -> None:
    adapter = ZammadAdapter(zammad_desk(fields={"care_category": "support_kind"}))
    data = fixture_json("custom_updated.json")
    data["ticket"]["fields"] = {"support_kind": "question"}
    assert _parse(adapter, _dumps(data)).fields == {"care_category": "question"}


def test_own_events_are_recognised(adapter: ZammadAdapter) -> None:
    note = fixture_json("custom_article_agent_note.json")
    note["ticket"]["updated_by_id"] = int(API_USER)
    note["article"].update(created_by_id=int(API_USER), body="Estimate\n[care:e1.0]")
    assert adapter.is_own_event(_parse(adapter, _dumps(note)))
    update = fixture_json("custom_updated.json")
    update["ticket"]["updated_by_id"] = int(API_USER)
    assert adapter.is_own_event(_parse(adapter, _dumps(update)))
    for name in ("custom_updated.json", "custom_article_reply.json", "custom_created.json"):
        assert not adapter.is_own_event(_parse(adapter, fixture(name))), name


def test_every_handled_event_type_has_fixtures_in_both_shapes(adapter: ZammadAdapter) -> None:
    for code, event_type in EVENT_TYPES.items():
        for key in (code, f"default:{code}"):
            name = SUPPORT.event_fixtures[key]
            assert _parse(adapter, fixture(name)).type is event_type, name


def test_every_fixture_has_its_source_note_and_headers() -> None:
    payloads = sorted(
        p for p in (FIXTURES / "zammad").glob("*.json") if not p.name.endswith(".headers.json")
    )
    assert len(payloads) >= 11
    for path in payloads:
        stem = path.name.removesuffix(".json")
        note = path.with_name(stem + ".source.txt")
        assert note.is_file() and note.read_text().strip(), path.name
        headers = json.loads(path.with_name(stem + ".headers.json").read_text())
        assert headers["User-Agent"] == "Zammad User Agent", path.name
        assert headers["X-Zammad-Delivery"] and headers["X-Zammad-Trigger"], path.name


# --------------------------------------------------------------------------------------------
# parse: what is refused or ignored


def test_unknown_custom_events_are_ignored(adapter: ZammadAdapter) -> None:
    with pytest.raises(UnsupportedEventError) as caught:
        adapter.parse({}, fixture("custom_unknown_event.json"), delivery_key="k")
    assert caught.value.http_status == 200
    assert caught.value.event_type == "escalation"


def test_unknown_events_are_ignored_before_any_validation(adapter: ZammadAdapter) -> None:
    with pytest.raises(UnsupportedEventError):
        adapter.parse({}, b'{"care_connector": 7, "event": "reminder_reached"}', delivery_key="k")


def test_zammads_rendering_error_is_a_clear_400(adapter: ZammadAdapter) -> None:
    with pytest.raises(AnomalousPayloadError, match="could not render") as caught:
        adapter.parse({}, fixture("custom_render_error.json"), delivery_key="k")
    assert caught.value.http_status == 400
    assert "C:" in caught.value.message


@pytest.mark.parametrize(
    "body",
    [
        {"text": "New ticket #10081", "attachments": []},  # a pre-defined (Slack) webhook
        {"error": "x", "more": 1},
        {},
    ],
)
def test_foreign_bodies_are_refused_with_a_hint(adapter: ZammadAdapter, body: Any) -> None:
    with pytest.raises(AnomalousPayloadError, match="webhooks install") as caught:
        adapter.parse({}, _dumps(body), delivery_key="k")
    assert set(caught.value.errors) == {"ticket", "care_connector"}


@pytest.mark.parametrize("body", [b"{not json", b"[]", b'"ticket"', b"\xc3\x28", b"", b"null"])
def test_bodies_that_are_not_json_objects(adapter: ZammadAdapter, body: bytes) -> None:
    with pytest.raises(AnomalousPayloadError) as caught:
        adapter.parse({}, body, delivery_key="k")
    assert list(caught.value.errors) == ["$"]


@pytest.mark.parametrize(
    ("name", "path", "value", "error_path"),
    [
        ("ticket_trigger_default.json", "ticket", _DELETE, None),  # then a foreign body
        ("ticket_trigger_default.json", "ticket", "81", "ticket"),
        ("ticket_trigger_default.json", "ticket.id", _DELETE, "ticket.id"),
        ("ticket_trigger_default.json", "ticket.id", None, "ticket.id"),
        ("ticket_trigger_default.json", "ticket.id", 81.5, "ticket.id"),
        ("ticket_trigger_default.json", "ticket.id", True, "ticket.id"),
        ("ticket_trigger_default.json", "ticket.id", "", "ticket.id"),
        ("ticket_trigger_default.json", "ticket.title", ["x"], "ticket.title"),
        ("ticket_trigger_default.json", "ticket.created_at", "yesterday", "ticket.created_at"),
        ("ticket_trigger_default.json", "ticket.created_at", "2020-11-13T14:34:35", None),
        ("ticket_trigger_default.json", "ticket.priority", 2, "ticket.priority"),
        ("ticket_trigger_default.json", "ticket.customer", "emily@example.com", "ticket.customer"),
        ("ticket_trigger_default.json", "ticket.article_ids", [104, None], "ticket.article_ids.1"),
        ("ticket_trigger_default.json", "ticket.article_ids", "104", "ticket.article_ids"),
        ("ticket_trigger_default.json", "ticket.article_count", "1", "ticket.article_count"),
        ("ticket_trigger_default.json", "article", [], "article"),
        ("ticket_trigger_default.json", "article.internal", "maybe", "article.internal"),
        ("ticket_trigger_default.json", "article.body", {"html": "x"}, "article.body"),
        ("ticket_trigger_default.json", "article.id", [104], "article.id"),
        ("custom_created.json", "care_connector", 2, "care_connector"),
        ("custom_created.json", "care_connector", "1", "care_connector"),
        ("custom_created.json", "event", _DELETE, "event"),
        ("custom_created.json", "event", 5, "event"),
        ("custom_created.json", "event", "", "event"),
        ("custom_created.json", "ticket", _DELETE, "ticket"),
        ("custom_created.json", "ticket.id", "", "ticket.id"),
        ("custom_created.json", "ticket.id", "#{ticket.id / no such method}", "ticket.id"),
        ("custom_created.json", "ticket.fields", ["x"], "ticket.fields"),
        ("custom_created.json", "ticket.fields.care_price", {"a": [1]}, "ticket.fields.care_price"),
        ("custom_created.json", "ticket.updated_at", 1741600680, "ticket.updated_at"),
        ("custom_created.json", "customer", "owner@shop.example", "customer"),
        ("custom_created.json", "customer.email", ["a"], "customer.email"),
        ("custom_created.json", "article", "text", "article"),
        ("custom_created.json", "article.created_at", "10.03.2026 09:58", "article.created_at"),
    ],
)
def test_wrong_shapes_name_the_failing_path(
    adapter: ZammadAdapter, name: str, path: str, value: Any, error_path: str | None
) -> None:
    data = fixture_json(name)
    _set(data, path, value)
    body = _dumps(data)
    if error_path is None:
        with pytest.raises(AnomalousPayloadError):
            adapter.parse({}, body, delivery_key="k")
        return
    with pytest.raises(AnomalousPayloadError) as caught:
        adapter.parse({}, body, delivery_key="k")
    assert error_path in caught.value.errors, caught.value.errors
    assert caught.value.http_status == 400
    assert error_path in str(caught.value)


def test_unknown_keys_are_ignored(adapter: ZammadAdapter) -> None:
    data = fixture_json("custom_created.json")
    data["new_key"] = {"x": 1}
    data["ticket"]["brand_new_attribute"] = [1, 2]
    assert _parse(adapter, _dumps(data)).ticket_id == "1042"


# --------------------------------------------------------------------------------------------
# HTML bodies and Zammad times


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ("<div>a</div><div>b</div>", "a\nb"),
        ("<div>a</div><div><br></div><div>b</div>", "a\n\nb"),
        ("x<br>y<br/><br>z", "x\ny\n\nz"),
        ("<p>Hi&nbsp;there &amp; &quot;you&quot;</p>", 'Hi there & "you"'),
        (
            "<div>Yes</div><blockquote><div>On x wrote:</div><blockquote>deep</blockquote>"
            "</blockquote>after",
            "Yes\n> On x wrote:\n> > deep\nafter",
        ),
        ("<style>p {}</style><script>alert(1)</script>ok", "ok"),
        ("<div>unclosed <b>bold", "unclosed bold"),
        ("", ""),
    ],
)
def test_html_to_text(body: str, text: str) -> None:
    assert html_to_text(body) == text


def test_html_bodies_are_read_as_text_and_plain_ones_as_they_are(adapter: ZammadAdapter) -> None:
    data = fixture_json("custom_article_agent_note.json")
    data["article"].update(content_type="text/plain", body="<b>not html</b>\n")
    comment = _parse(adapter, _dumps(data)).comment
    assert comment is not None and comment.body == "<b>not html</b>"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-10 09:58:00 UTC", datetime(2026, 3, 10, 9, 58, tzinfo=UTC)),
        (
            "2026-03-10 13:58:00 +0400",
            datetime(2026, 3, 10, 13, 58, tzinfo=timezone(timedelta(hours=4))),
        ),
        ("2026-03-10T09:58:00.125Z", datetime(2026, 3, 10, 9, 58, 0, 125000, tzinfo=UTC)),
        ("2026-03-10T09:58:00+00:00", datetime(2026, 3, 10, 9, 58, tzinfo=UTC)),
    ],
)
def test_zammad_times(text: str, expected: datetime) -> None:
    assert parse_zammad_time(text) == expected


@pytest.mark.parametrize("text", ["2026-03-10 09:58:00", "yesterday", "2026-03-10 09:58 UTC"])
def test_times_without_a_zone_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_zammad_time(text)


# --------------------------------------------------------------------------------------------
# Any input: only the documented errors

_json_leaf = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
_json = st.recursive(
    _json_leaf,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
_placeholder = st.sampled_from(["", "#{article.id / no such method}", "2026-03-10 09:58:00 UTC"])
_ticket = st.fixed_dictionaries(
    {},
    optional={
        key: _json | _placeholder
        for key in (
            "id",
            "title",
            "state",
            "priority",
            "customer_id",
            "customer",
            "updated_by_id",
            "created_at",
            "article_ids",
            "article_count",
            "fields",
            "care_price",
        )
    },
)
_article = st.fixed_dictionaries(
    {},
    optional={
        key: _json | _placeholder
        for key in ("id", "body", "content_type", "internal", "sender", "created_by_id")
    },
)
_custom = st.fixed_dictionaries(
    {"care_connector": st.sampled_from([1, 2, "1", None])},
    optional={
        "event": st.sampled_from(["created", "updated", "escalation", ""]) | _json,
        "ticket": _ticket | _json,
        "customer": _json,
        "article": _article | _json,
    },
)
_default = st.fixed_dictionaries(
    {"ticket": _ticket | _json}, optional={"article": _article | _json, "error": _json}
)
_bodies = (
    st.binary(max_size=200)
    | _json.map(lambda v: json.dumps(v).encode())
    | _custom.map(lambda v: json.dumps(v).encode())
    | _default.map(lambda v: json.dumps(v).encode())
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=_bodies, headers=st.dictionaries(st.text(max_size=40), st.text(max_size=40), max_size=3)
)
def test_any_input_raises_only_webhook_errors(body: bytes, headers: dict[str, str]) -> None:
    adapter = ZammadAdapter(zammad_desk())
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


def test_a_signed_delivery_round_trip(adapter: ZammadAdapter) -> None:
    body = fixture("custom_article_reply.json")
    headers = {
        **fixture_headers("custom_article_reply.json"),
        "X-Hub-Signature": signature(SECRET, body),
    }
    adapter.verify(headers, body, now=NOW)
    key = adapter.delivery_key(headers, body)
    (event,) = adapter.parse(headers, body, delivery_key=key)
    assert (event.delivery_key, event.type, event.desk) == (
        "c2e4a6b8-1d3f-4a5b-9c7d-2e4f6a8b0c13",
        EventType.COMMENT_ADDED,
        "zammad",
    )
