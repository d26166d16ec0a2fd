"""The Freshdesk adapter: the shared secret, delivery keys, and the rule body into
TicketEvents."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import Headers

from adapters import ADAPTERS
from adapters.errors import (
    AnomalousPayloadError,
    MissingSecretError,
    SignatureError,
    UnsupportedEventError,
    WebhookError,
)
from adapters.freshdesk import FreshdeskAdapter
from adapters.freshdesk.schemas import EVENT_TYPES, html_to_text, parse_time, triggered_change
from rules.events import Comment, EventType, TicketEvent, TicketStatus
from tests.adapters.freshdesk.support import (
    EVENT_FIXTURES,
    SECRET,
    fixture,
    fixture_json,
    freshdesk_desk,
)
from tests.adapters.support import DELETE as _DELETE
from tests.adapters.support import FIXTURES
from tests.adapters.support import set_path as _set

NOW = datetime(2025, 2, 3, 17, 21, 0, tzinfo=UTC)


@pytest.fixture
def adapter() -> FreshdeskAdapter:
    return FreshdeskAdapter(freshdesk_desk())


def _basic(user: str, password: str) -> str:
    """``Authorization: Basic`` as Freshdesk's "Requires Authentication" sends it."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _parse(adapter: FreshdeskAdapter, body: bytes, key: str = "key-1") -> TicketEvent:
    events = adapter.parse({}, body, delivery_key=key)
    assert len(events) == 1
    return events[0]


def _variant(name: str, **ticket: Any) -> bytes:
    data = fixture_json(name)
    data["ticket"].update(ticket)
    return json.dumps(data).encode()


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_the_adapter_is_registered() -> None:
    assert ADAPTERS["freshdesk"] is FreshdeskAdapter
    assert (FreshdeskAdapter.key, FreshdeskAdapter.display_name) == ("freshdesk", "Freshdesk")


# --------------------------------------------------------------------------------------------
# verify


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Care-Secret": SECRET},
        {"x-care-secret": f"  {SECRET} "},
        {"Authorization": _basic("care-connector", SECRET)},
        {"Authorization": _basic("", SECRET)},
        {"Authorization": "basic  " + base64.b64encode(f"u:{SECRET}".encode()).decode()},
        {"X-Care-Secret": "", "Authorization": _basic("care", SECRET)},
    ],
)
def test_the_shared_secret_passes(adapter: FreshdeskAdapter, headers: dict[str, str]) -> None:
    adapter.verify(headers, b"{}", now=NOW)


def test_a_password_may_hold_colons() -> None:
    secret = "s3cret:with:colons"
    adapter = FreshdeskAdapter(freshdesk_desk(secrets=(secret,)))
    adapter.verify({"Authorization": _basic("care", secret)}, b"{}", now=NOW)
    with pytest.raises(SignatureError):
        # the user ends at the first colon: "s3cret" is the user here, not part of the password
        adapter.verify({"Authorization": _basic("s3cret", "with:colons")}, b"{}", now=NOW)


def test_header_names_are_case_insensitive(adapter: FreshdeskAdapter) -> None:
    adapter.verify(Headers([("X-CARE-SECRET", SECRET)]), b"{}", now=NOW)
    adapter.verify(Headers([("authorization", _basic("u", SECRET))]), b"{}", now=NOW)


def test_a_rotated_secret_is_accepted_while_both_are_configured() -> None:
    adapter = FreshdeskAdapter(freshdesk_desk(secrets=("new-secret", "old-secret")))
    for secret in ("new-secret", "old-secret"):
        adapter.verify({"X-Care-Secret": secret}, b"{}", now=NOW)
        adapter.verify({"Authorization": _basic("care", secret)}, b"{}", now=NOW)
    with pytest.raises(SignatureError, match="does not match"):
        adapter.verify({"X-Care-Secret": "older-secret"}, b"{}", now=NOW)


@pytest.mark.parametrize(
    ("headers", "words"),
    [
        ({"X-Care-Secret": "guess"}, "does not match"),
        ({"X-Care-Secret": SECRET[:-1]}, "does not match"),
        ({"X-Care-Secret": SECRET.upper()}, "does not match"),
        ({"X-Care-Secret": SECRET + "x"}, "does not match"),
        ({"X-Care-Secret": "é" + SECRET}, "does not match"),
        ({}, "missing X-Care-Secret"),
        ({"X-Care-Secret": "  "}, "missing X-Care-Secret"),
        ({"X-Other-Secret": SECRET}, "missing X-Care-Secret"),
        ({"Authorization": f"Bearer {SECRET}"}, "missing X-Care-Secret"),
        ({"Authorization": "Basic"}, "missing X-Care-Secret"),
        ({"Authorization": _basic("care", "wrong")}, "does not match"),
        ({"Authorization": _basic(SECRET, "X")}, "does not match"),  # the secret as the user
        ({"Authorization": "Basic not*base64"}, "not base64"),
        ({"Authorization": "Basic " + base64.b64encode(b"\xff\xfe:x").decode()}, "not base64"),
        (
            {"Authorization": "Basic " + base64.b64encode(SECRET.encode()).decode()},
            "no password",
        ),
    ],
)
def test_bad_credentials_are_refused(
    adapter: FreshdeskAdapter, headers: dict[str, str], words: str
) -> None:
    with pytest.raises(SignatureError, match=words) as caught:
        adapter.verify(headers, fixture("rule_created.json"), now=NOW)
    assert caught.value.http_status == 401
    assert caught.value.adapter == "freshdesk"
    assert not isinstance(caught.value, MissingSecretError)


@pytest.mark.parametrize("secrets", [(), ("",)])
def test_no_secret_fails_closed(secrets: tuple[str, ...]) -> None:
    adapter = FreshdeskAdapter(freshdesk_desk(secrets=secrets))
    with pytest.raises(MissingSecretError, match="CARE_FRESHDESK_SECRET") as caught:
        adapter.verify({"X-Care-Secret": ""}, b"{}", now=NOW)
    assert caught.value.http_status == 401
    with pytest.raises(MissingSecretError):
        adapter.verify({"Authorization": _basic("care", "")}, b"{}", now=NOW)


def test_there_is_no_replay_window_the_delivery_key_deduplicates(
    adapter: FreshdeskAdapter,
) -> None:
    # Freshdesk sends no timestamp: an old delivery verifies; the key makes it a duplicate.
    body = fixture("rule_created.json")
    adapter.verify({"X-Care-Secret": SECRET}, body, now=NOW + timedelta(days=30))
    assert adapter.delivery_key({}, body) == adapter.delivery_key({"X-Care-Secret": "x"}, body)


# --------------------------------------------------------------------------------------------
# delivery keys


@pytest.mark.parametrize("body", [b"", b"not json", fixture("rule_created.json"), b"\xff"])
def test_the_key_is_the_body_hash(adapter: FreshdeskAdapter, body: bytes) -> None:
    assert adapter.delivery_key({}, body) == hashlib.sha256(body).hexdigest()


def test_two_updates_of_one_ticket_have_different_keys(adapter: FreshdeskAdapter) -> None:
    first = _variant("rule_updated_status.json", updated_at="2025-02-03 17:20:45 UTC")
    second = _variant("rule_updated_status.json", updated_at="2025-02-03 17:20:46 UTC")
    assert adapter.delivery_key({}, first) != adapter.delivery_key({}, second)


# --------------------------------------------------------------------------------------------
# parse: every fixture into the right event

REQUESTER = "43026449322"
DESCRIPTION = (
    'Hello,\n\nPlease upgrade my store from 4.3.1 to 4.3.9. The "checkout" page is slow too.'
    "\n\nShop Owner"
)


def test_ticket_created(adapter: FreshdeskAdapter) -> None:
    event = _parse(adapter, fixture("rule_created.json"), key="abc")
    assert event == TicketEvent(
        desk="freshdesk",
        delivery_key="abc",
        type=EventType.TICKET_CREATED,
        ticket_id="1042",
        occurred_at=_at("2025-02-03T15:59:12+00:00"),
        ticket_created_at=_at("2025-02-03T15:59:12+00:00"),
        subject="Upgrade from 4.3.1 to 4.3.9",
        description=DESCRIPTION,
        requester_id=REQUESTER,
        requester_email="owner@shop.example",
        requester_name="Shop Owner",
        actor_id=None,
        status=TicketStatus.OPEN,
        priority="2",
        tags=("upgrade", "care_preapproved"),
        fields={"care_preapproval": "60"},
        locale="ru",
        via_channel="Portal",
    )
    assert event.raw["event"] == "created"


def test_customer_reply(adapter: FreshdeskAdapter) -> None:
    event = _parse(adapter, fixture("rule_reply.json"))
    assert event.type is EventType.COMMENT_ADDED
    assert event.comment == Comment(
        body=(
            "Согласен, подтверждаю.\n\nOn Mon, 3 Feb at 19:10, Support wrote:\n"
            "> Please approve 50 credits"
        ),
        public=True,
        author_id=REQUESTER,
        by_requester=True,
    )
    assert event.actor_id == REQUESTER
    assert event.tags == ("upgrade", "care_awaiting_approval")
    assert event.occurred_at == _at("2025-02-03T17:20:45+00:00")
    assert event.ticket_created_at == _at("2025-02-03T15:59:12+00:00")


def test_agent_reply(adapter: FreshdeskAdapter) -> None:
    event = _parse(adapter, fixture("rule_updated_reply_sent.json"))
    assert event.type is EventType.COMMENT_ADDED
    assert event.comment == Comment(
        body="Hello,\nthe upgrade needs an estimate first.",
        public=True,
        author_id=None,
        by_requester=False,
    )
    assert (event.actor_id, event.status) == (None, TicketStatus.WAITING)


@pytest.mark.parametrize(
    ("name", "event_type", "check"),
    [
        (
            "rule_updated.json",
            EventType.TICKET_UPDATED,
            ("tags", ("upgrade", "care_category_investigation")),
        ),
        ("rule_updated_status.json", EventType.STATUS_CHANGED, ("status", TicketStatus.WAITING)),
        ("rule_updated_priority.json", EventType.PRIORITY_CHANGED, ("priority", "4")),
        (
            "rule_updated_custom_field.json",
            EventType.FIELDS_CHANGED,
            ("fields", {"care_category": "modification", "care_price": "35"}),
        ),
        ("rule_updated_deleted.json", EventType.TICKET_DELETED, ("comment", None)),
        ("rule_updated_spam.json", EventType.TICKET_DELETED, ("comment", None)),
    ],
)
def test_agent_updates(
    adapter: FreshdeskAdapter, name: str, event_type: EventType, check: tuple[str, Any]
) -> None:
    event = _parse(adapter, fixture(name))
    assert event.type is event_type
    assert getattr(event, check[0]) == check[1]
    assert (event.ticket_id, event.requester_email) == ("1042", "owner@shop.example")
    assert event.actor_id is None


@pytest.mark.parametrize(
    ("triggered", "event_type"),
    [
        ("{ticket_action:created}", EventType.TICKET_UPDATED),
        ("{ticket_action:delete}", EventType.TICKET_DELETED),
        ("{ticket_action:marked_spam}", EventType.TICKET_DELETED),
        ("{ticket_action:marked_unspam}", EventType.TICKET_UPDATED),
        ("{ticket_action:linked}", EventType.TICKET_UPDATED),
        ("{status:{from:4,to:6}}", EventType.STATUS_CHANGED),
        ("{ priority : { from:3, to:1 } }", EventType.PRIORITY_CHANGED),
        ("{note_type:public}", EventType.TICKET_UPDATED),
        ("{cf_anything:{from:a,to:b}}", EventType.FIELDS_CHANGED),
        ("{reply_sent:sent}", EventType.COMMENT_ADDED),
        ("", EventType.TICKET_UPDATED),
        ("{{triggered_event}}", EventType.TICKET_UPDATED),
        ("not pseudo-json", EventType.TICKET_UPDATED),
    ],
)
def test_triggered_event_names_the_change(
    adapter: FreshdeskAdapter, triggered: str, event_type: EventType
) -> None:
    data = fixture_json("rule_updated.json")
    data["triggered_event"] = triggered
    assert _parse(adapter, json.dumps(data).encode()).type is event_type


@pytest.mark.parametrize(
    "name", ["zulip_ticket_created.json", "zulip_priority_changed.json", "zulip_public_note.json"]
)
def test_real_triggered_event_renderings_read(name: str) -> None:
    rendered = json.loads(fixture(name))["freshdesk_webhook"]["triggered_event"]
    change = triggered_change(rendered)
    assert change is not None
    assert change in (("ticket_action", "created"), ("priority", "from:3"), ("note_type", "public"))


def test_the_created_rule_is_a_creation_whatever_the_trigger_says(
    adapter: FreshdeskAdapter,
) -> None:
    data = fixture_json("rule_created.json")
    data["triggered_event"] = "{status:{from:2,to:3}}"
    assert _parse(adapter, json.dumps(data).encode()).type is EventType.TICKET_CREATED


@pytest.mark.parametrize(
    ("number", "label", "expected"),
    [
        ("4", "Urgent", "4"),
        ("", "Urgent", "4"),
        ("", "high", "3"),
        ("", " Medium ", "2"),
        ("", "LOW", "1"),
        ("1", "", "1"),
        ("", "3", "3"),
        ("", "", None),
        ("9", "Critical", None),
        ("{{ticket.priority_id}}", "High", "3"),
    ],
)
def test_priority_is_the_desk_number(
    adapter: FreshdeskAdapter, number: str, label: str, expected: str | None
) -> None:
    body = _variant("rule_created.json", priority_id=number, priority=label)
    assert _parse(adapter, body).priority == expected


@pytest.mark.parametrize(
    ("number", "name", "status"),
    [
        ("2", "Open", TicketStatus.OPEN),
        ("3", "Pending", TicketStatus.WAITING),
        ("4", "Resolved", TicketStatus.SOLVED),
        ("5", "Closed", TicketStatus.CLOSED),
        ("", "Resolved", TicketStatus.SOLVED),
        ("6", "Waiting on Customer", TicketStatus.WAITING),
        ("7", "waiting on third party", TicketStatus.WAITING),
        ("8", "Job Application", TicketStatus.UNKNOWN),
        ("", "", TicketStatus.UNKNOWN),
    ],
)
def test_status_mapping(
    adapter: FreshdeskAdapter, number: str, name: str, status: TicketStatus
) -> None:
    body = _variant("rule_created.json", status_id=number, status=name)
    assert _parse(adapter, body).status is status


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-02-03 15:59:12 UTC", "2025-02-03T15:59:12+00:00"),
        ("2025-02-03 19:59:12 +0400", "2025-02-03T15:59:12+00:00"),
        ("2025-02-03 10:29:12 -05:30", "2025-02-03T15:59:12+00:00"),
        ("2025-02-03T15:59:12Z", "2025-02-03T15:59:12+00:00"),
        ("2025-02-03T15:59:12.123456789Z", "2025-02-03T15:59:12.123456+00:00"),
        ("2025-02-03 15:59 GMT", "2025-02-03T15:59:00+00:00"),
        ("2025-02-03 15:59:12", None),  # no zone: not guessed
        ("Mon, 3 Feb 2025", None),
        ("2025-02-30 15:59:12 UTC", None),
        ("", None),
    ],
)
def test_rendered_times(value: str, expected: str | None) -> None:
    parsed = parse_time(value)
    assert parsed == (None if expected is None else _at(expected))
    if parsed is not None:
        assert parsed.tzinfo is not None and parsed.utcoffset() == timedelta(0)


def test_tags_are_split_at_commas(adapter: FreshdeskAdapter) -> None:
    body = _variant("rule_created.json", tags=" vip ,, care_plan_vip, vip,two words ")
    assert _parse(adapter, body).tags == ("vip", "care_plan_vip", "two words")
    assert _parse(adapter, _variant("rule_created.json", tags=["a", " b "])).tags == ("a", "b")
    assert _parse(adapter, _variant("rule_created.json", tags="")).tags == ()


def test_fields_are_named_by_the_desk_mapping() -> None:
    adapter = FreshdeskAdapter(freshdesk_desk(fields={"care_price": "cf_care_price"}))
    event = _parse(adapter, fixture("rule_updated_custom_field.json"))
    assert event.fields == {"care_price": "35"}
    body = _variant(
        "rule_created.json", fields={"cf_care_price": 40, "cf_other": "x", "cf_flag": True}
    )
    assert _parse(adapter, body).fields == {"care_price": "40"}


def test_unrendered_placeholders_are_no_values(adapter: FreshdeskAdapter) -> None:
    data = fixture_json("rule_created.json")
    data["requester"] = {"id": "", "email": "", "name": " ", "language": ""}
    data["ticket"].update(
        priority="",
        priority_id="",
        status="",
        status_id="",
        tags="",
        created_at="",
        updated_at="",
        source="",
        fields={"cf_care_preapproval": ""},
    )
    event = _parse(adapter, json.dumps(data).encode())
    assert (event.requester_id, event.requester_email, event.requester_name, event.locale) == (
        None,
        None,
        None,
        None,
    )
    assert (event.priority, event.status, event.tags, event.fields) == (
        None,
        TicketStatus.UNKNOWN,
        (),
        {},
    )
    assert (event.occurred_at, event.ticket_created_at, event.via_channel) == (None, None, None)


def test_a_version_sent_as_text_is_read(adapter: FreshdeskAdapter) -> None:
    data = fixture_json("rule_created.json")
    data.update(care_connector="1")
    data["ticket"]["id"] = 1042
    assert _parse(adapter, json.dumps(data).encode()).ticket_id == "1042"


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>Yes</p><p>thanks</p>", "Yes\nthanks"),
        ("Yes&nbsp;&amp; <b>no</b>", "Yes & no"),
        (
            "<div>a</div><blockquote><div>b</div><blockquote>c</blockquote></blockquote>",
            "a\n> b\n> > c",
        ),
        ("one\n   two", "one two"),
        ("<br><br><br><br>x", "x"),
        ("<", "<"),
        ("", ""),
    ],
)
def test_comment_html_to_text(html: str, text: str) -> None:
    assert html_to_text(html) == text


def test_own_events_are_recognised_by_their_author() -> None:
    adapter = FreshdeskAdapter(freshdesk_desk(api_user_id=REQUESTER))
    assert adapter.is_own_event(_parse(adapter, fixture("rule_reply.json")))
    other = FreshdeskAdapter(freshdesk_desk())
    assert not other.is_own_event(_parse(other, fixture("rule_reply.json")))
    assert not other.is_own_event(_parse(other, fixture("rule_updated_reply_sent.json")))


def test_every_handled_event_type_has_a_fixture(adapter: FreshdeskAdapter) -> None:
    assert set(EVENT_FIXTURES) == set(EVENT_TYPES)
    for code, name in EVENT_FIXTURES.items():
        assert _parse(adapter, fixture(name)).type is EVENT_TYPES[code], name


def test_every_fixture_has_its_source_note() -> None:
    folder = FIXTURES / "freshdesk"
    payloads = sorted(p for p in folder.glob("*.json") if not p.name.endswith(".headers.json"))
    assert len(payloads) >= 18
    for path in payloads:
        note = path.with_name(path.name.removesuffix(".json") + ".source.txt")
        assert note.is_file(), path.name
        assert note.read_text().strip()
    for path in folder.glob("rule_*.json"):
        if not path.name.endswith(".headers.json"):
            sidecar = Path(str(path).removesuffix(".json") + ".headers.json")
            assert json.loads(sidecar.read_text()) == {"Content-Type": "application/json"}


# --------------------------------------------------------------------------------------------
# parse: what is refused


@pytest.mark.parametrize("kind", ["hourly", "merged", " Created "])
def test_events_the_rules_do_not_send_are_ignored(adapter: FreshdeskAdapter, kind: str) -> None:
    data = fixture_json("rule_hourly.json")
    data["event"] = kind
    with pytest.raises(UnsupportedEventError) as caught:
        adapter.parse({}, json.dumps(data).encode(), delivery_key="k")
    assert caught.value.http_status == 200
    assert caught.value.event_type == kind.strip()


def test_the_unknown_event_fixture_is_ignored_before_validation(
    adapter: FreshdeskAdapter,
) -> None:
    with pytest.raises(UnsupportedEventError, match="'hourly'"):
        adapter.parse({}, fixture("rule_hourly.json"), delivery_key="k")
    with pytest.raises(UnsupportedEventError):
        adapter.parse({}, b'{"care_connector": 1, "event": "hourly"}', delivery_key="k")


@pytest.mark.parametrize(
    "name",
    [
        "zulip_ticket_created.json",
        "zulip_priority_changed.json",
        "zulip_status_changed.json",
        "zulip_private_note.json",
        "zulip_public_note.json",
    ],
)
def test_bodies_written_for_other_integrations_are_refused(
    adapter: FreshdeskAdapter, name: str
) -> None:
    with pytest.raises(AnomalousPayloadError, match="another integration.*webhooks install") as c:
        adapter.parse({}, fixture(name), delivery_key="k")
    assert list(c.value.errors) == ["care_connector"]
    assert c.value.http_status == 400


@pytest.mark.parametrize("body", [b"{not json", b"[]", b'"created"', b"\xc3\x28", b"null"])
def test_bodies_that_are_not_json_objects(adapter: FreshdeskAdapter, body: bytes) -> None:
    with pytest.raises(AnomalousPayloadError) as caught:
        adapter.parse({}, body, delivery_key="k")
    assert list(caught.value.errors) == ["$"]


@pytest.mark.parametrize(
    ("path", "value", "error_path"),
    [
        ("care_connector", 2, "care_connector"),
        ("care_connector", "2", "care_connector"),
        ("care_connector", None, "care_connector"),
        ("care_connector", [1], "care_connector"),
        ("event", _DELETE, "event"),
        ("event", None, "event"),
        ("event", ["created"], "event"),
        ("ticket", _DELETE, "ticket"),
        ("ticket", "1042", "ticket"),
        ("ticket.id", _DELETE, "ticket.id"),
        ("ticket.id", "", "ticket.id"),
        ("ticket.id", " ", "ticket.id"),
        ("ticket.id", None, "ticket.id"),
        ("ticket.id", 10.5, "ticket.id"),
        ("ticket.id", "x" * 201, "ticket.id"),
        ("ticket.subject", ["x"], "ticket.subject"),
        ("ticket.subject", 7, None),
        ("ticket.tags", {"a": 1}, "ticket.tags"),
        ("ticket.tags", ["ok", 3], "ticket.tags.1"),
        ("ticket.created_at", 1738598352, "ticket.created_at"),
        ("ticket.created_at", "yesterday", None),
        ("ticket.fields", ["x"], "ticket.fields"),
        ("ticket.fields", {"cf_care_price": {"deep": 1}}, "ticket.fields.cf_care_price"),
        ("ticket.priority", {"id": 4}, "ticket.priority"),
        ("requester", "owner@shop.example", "requester"),
        ("requester.email", ["a"], "requester.email"),
        ("requester.id", {"id": 1}, "requester.id"),
        ("triggered_event", 5, None),
        ("triggered_event", {"status": 1}, "triggered_event"),
        ("comment", "text", "comment"),
        ("comment.body", ["x"], "comment.body"),
    ],
)
def test_wrong_shapes_name_the_failing_path(
    adapter: FreshdeskAdapter, path: str, value: Any, error_path: str | None
) -> None:
    data = fixture_json("rule_reply.json")
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


def test_unknown_keys_are_ignored(adapter: FreshdeskAdapter) -> None:
    data = fixture_json("rule_created.json")
    data["added_by_an_admin"] = {"x": 1}
    data["ticket"]["url"] = "https://acme.freshdesk.com/a/tickets/1042"
    assert _parse(adapter, json.dumps(data).encode()).ticket_id == "1042"


# --------------------------------------------------------------------------------------------
# Any input: only the documented errors


_json_leaf = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
_json = st.recursive(
    _json_leaf,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
_ticket = st.fixed_dictionaries(
    {},
    optional={
        key: _json | st.text(max_size=30)
        for key in (
            "id",
            "subject",
            "status",
            "status_id",
            "priority",
            "priority_id",
            "tags",
            "created_at",
            "updated_at",
            "fields",
            "source",
        )
    },
)
_bodies_of_rules = st.fixed_dictionaries(
    {"care_connector": st.sampled_from([1, "1", 2, None, 1.0])},
    optional={
        "event": st.sampled_from(["created", "reply", "updated", "hourly"]) | _json,
        "triggered_event": st.sampled_from(
            ["{status:{from:2,to:3}}", "{ticket_action:deleted}", "{reply_sent:x}", "{"]
        )
        | _json,
        "ticket": _ticket | _json,
        "requester": _json,
        "comment": st.fixed_dictionaries({}, optional={"body": st.text(max_size=60) | _json})
        | _json,
    },
)
_bodies = (
    st.binary(max_size=200)
    | _json.map(lambda v: json.dumps(v).encode())
    | _bodies_of_rules.map(lambda v: json.dumps(v).encode())
)
_headers = st.dictionaries(
    st.sampled_from(["X-Care-Secret", "Authorization", "x-other"]) | st.text(max_size=20),
    st.text(max_size=40) | st.just(SECRET) | st.just("Basic " + base64.b64encode(b"u:p").decode()),
    max_size=3,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=_bodies, headers=_headers)
def test_any_input_raises_only_webhook_errors(body: bytes, headers: dict[str, str]) -> None:
    adapter = FreshdeskAdapter(freshdesk_desk())
    key = adapter.delivery_key(headers, body)
    assert isinstance(key, str) and len(key) == 64
    try:
        adapter.verify(headers, body, now=NOW)
    except SignatureError as err:
        assert err.message
    try:
        events = adapter.parse(headers, body, delivery_key=key)
    except (AnomalousPayloadError, UnsupportedEventError) as err:
        assert isinstance(err, WebhookError)
        assert err.message
    else:
        assert len(events) == 1
        assert isinstance(events[0], TicketEvent)
        assert events[0].ticket_id


def test_a_delivery_round_trip(adapter: FreshdeskAdapter) -> None:
    body = fixture("rule_reply.json")
    headers = {"Content-Type": "application/json", "X-Care-Secret": SECRET}
    adapter.verify(headers, body, now=NOW)
    key = adapter.delivery_key(headers, body)
    (event,) = adapter.parse(headers, body, delivery_key=key)
    assert (event.delivery_key, event.type, event.desk) == (
        hashlib.sha256(body).hexdigest(),
        EventType.COMMENT_ADDED,
        "freshdesk",
    )
