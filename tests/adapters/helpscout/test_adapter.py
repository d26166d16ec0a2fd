"""The Help Scout adapter: signatures, delivery keys, and v2 conversations into TicketEvents."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
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
from adapters.helpscout import HelpScoutAdapter
from adapters.helpscout.schemas import EVENT_TYPES, html_text
from rules.events import Comment, EventType, TicketEvent, TicketStatus
from tests.adapters.helpscout.support import (
    FOLDER,
    fixture,
    fixture_headers,
    fixture_json,
    make_desk,
    signature,
)
from tests.adapters.support import DELETE as _DELETE
from tests.adapters.support import set_path as _set

NOW = datetime(2025, 2, 3, 17, 21, 0, tzinfo=UTC)
SECRET = "s3cret-current"
CONVERSATION = "2391938111"
CUSTOMER = "238604"


@pytest.fixture
def adapter() -> HelpScoutAdapter:
    return HelpScoutAdapter(make_desk())


def _parse(adapter: HelpScoutAdapter, name: str, key: str = "key-1") -> TicketEvent:
    events = adapter.parse(fixture_headers(name), fixture(name), delivery_key=key)
    assert len(events) == 1
    return events[0]


def _parse_data(
    adapter: HelpScoutAdapter, data: dict[str, Any], event: str, key: str = "key-1"
) -> TicketEvent:
    (parsed,) = adapter.parse(
        {"X-HelpScout-Event": event}, json.dumps(data).encode(), delivery_key=key
    )
    return parsed


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


# --------------------------------------------------------------------------------------------
# verify


def test_a_signature_made_like_help_scout_passes(adapter: HelpScoutAdapter) -> None:
    body = fixture("convo_created.json")
    headers = {
        **fixture_headers("convo_created.json"),
        "X-HelpScout-Signature": signature(SECRET, body),
    }
    adapter.verify(headers, body, now=NOW)


def test_the_signature_is_base64_of_hmac_sha1_over_the_raw_body(adapter: HelpScoutAdapter) -> None:
    # Computed by hand from the definition, not by the test helper or the adapter.
    body = b'{"id":123}'
    expected = base64.b64encode(hmac.new(b"s3cret-current", body, "sha1").digest()).decode()
    assert expected == signature(SECRET, body)
    adapter.verify({"X-HelpScout-Signature": expected}, body, now=NOW)


def test_header_names_are_case_insensitive(adapter: HelpScoutAdapter) -> None:
    body = b'{"id": 1}'
    headers = Headers([("x-helpscout-signature", signature(SECRET, body))])
    adapter.verify(headers, body, now=NOW)
    adapter.verify({"X-HELPSCOUT-SIGNATURE": signature(SECRET, body)}, body, now=NOW)


def test_a_rotated_secret_is_accepted_while_both_are_configured() -> None:
    body = b'{"id": 1}'
    adapter = HelpScoutAdapter(make_desk(secrets=("new-secret", "old-secret")))
    for secret in ("new-secret", "old-secret"):
        adapter.verify({"X-HelpScout-Signature": signature(secret, body)}, body, now=NOW)
    with pytest.raises(SignatureError, match="does not match"):
        adapter.verify({"X-HelpScout-Signature": signature("older-secret", body)}, body, now=NOW)


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("wrong secret", "does not match"),
        ("body changed", "does not match"),
        ("body re-serialised", "does not match"),
        ("hex instead of base64", "does not match"),
        ("sha256 instead of sha1", "does not match"),
        ("truncated", "does not match"),
        ("no signature", "missing X-HelpScout-Signature header"),
        ("blank signature", "missing X-HelpScout-Signature header"),
    ],
)
def test_bad_signatures_are_refused(adapter: HelpScoutAdapter, case: str, words: str) -> None:
    body = b'{"a": 1,  "b": "\\u00e9"}'
    sent = signature(SECRET, body)
    if case == "wrong secret":
        sent = signature("guess", body)
    elif case == "body changed":
        body = body.replace(b"1", b"2")
    elif case == "body re-serialised":
        body = json.dumps(json.loads(body)).encode()
    elif case == "hex instead of base64":
        sent = hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()
    elif case == "sha256 instead of sha1":
        sent = base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()
    elif case == "truncated":
        sent = sent[:-2]
    elif case == "blank signature":
        sent = "  "
    headers = {} if case == "no signature" else {"X-HelpScout-Signature": sent}
    with pytest.raises(SignatureError, match=words) as caught:
        adapter.verify(headers, body, now=NOW)
    assert caught.value.http_status == 401
    assert not isinstance(caught.value, MissingSecretError)


@pytest.mark.parametrize("secrets", [(), ("",)])
def test_no_secret_fails_closed(secrets: tuple[str, ...]) -> None:
    adapter = HelpScoutAdapter(make_desk(secrets=secrets))
    body = b"{}"
    with pytest.raises(MissingSecretError, match="CARE_HELPSCOUT_SECRET") as caught:
        adapter.verify({"X-HelpScout-Signature": signature("", body)}, body, now=NOW)
    assert caught.value.http_status == 401


# --------------------------------------------------------------------------------------------
# delivery keys


def test_the_key_is_the_event_and_the_body_hash(adapter: HelpScoutAdapter) -> None:
    body = fixture("convo_tags.json")
    digest = hashlib.sha256(body).hexdigest()
    assert adapter.delivery_key({"X-HelpScout-Event": "convo.tags"}, body) == f"convo.tags:{digest}"
    # A retry of the same delivery has the same key; another event on the same body does not.
    assert adapter.delivery_key({"x-helpscout-event": "convo.tags"}, body) == f"convo.tags:{digest}"
    assert adapter.delivery_key({"X-HelpScout-Event": "convo.status"}, body) != (
        adapter.delivery_key({"X-HelpScout-Event": "convo.tags"}, body)
    )


@pytest.mark.parametrize("event", ["", "   ", "Convo Tags!", "x" * 65, "9convo"])
def test_without_an_event_name_the_key_is_the_body_hash(
    adapter: HelpScoutAdapter, event: str
) -> None:
    body = b"not json at all"
    assert adapter.delivery_key({"X-HelpScout-Event": event}, body) == (
        hashlib.sha256(body).hexdigest()
    )
    assert adapter.delivery_key({}, body) == hashlib.sha256(body).hexdigest()


# --------------------------------------------------------------------------------------------
# parse: every fixture into the right event


def test_conversation_created(adapter: HelpScoutAdapter) -> None:
    event = _parse(adapter, "convo_created.json", key="convo.created:abc")
    assert event == TicketEvent(
        desk="helpscout",
        delivery_key="convo.created:abc",
        type=EventType.TICKET_CREATED,
        ticket_id=CONVERSATION,
        occurred_at=_at("2025-02-03T15:59:12+00:00"),
        ticket_created_at=_at("2025-02-03T15:59:12+00:00"),
        subject="Upgrade from 4.3.1 to 4.3.9",
        description=(
            "Hello,\n\nPlease upgrade my store from 4.3.1 to 4.3.9. "
            'The "checkout" page is slow too.\n\nRob'
        ),
        requester_id=CUSTOMER,
        requester_email="rob@acme.com",
        requester_name="Rob Robertovic",
        actor_id=CUSTOMER,
        status=TicketStatus.OPEN,
        priority=None,
        tags=("upgrade",),
        fields={"care_preapproval": "60"},  # matched by the field's name
        via_channel="email",
    )
    assert event.raw["number"] == 4012
    assert not adapter.is_own_event(event)


def test_customer_reply_is_the_requesters_public_comment(adapter: HelpScoutAdapter) -> None:
    event = _parse(adapter, "convo_customer_reply_created.json")
    assert event.type is EventType.COMMENT_ADDED
    assert event.comment == Comment(
        body=(
            "Yes, I agree. Go ahead.\n\n"
            "On Mon, Feb 3, 2025 at 7:02 PM Acme Support <support@acme.com> wrote:\n"
            "> Hello Rob,\n>\n"
            '> The upgrade takes 50 credits. Please reply "yes" to approve.'
        ),
        public=True,
        author_id=CUSTOMER,
        author_email="rob@acme.com",
        by_requester=True,
    )
    assert event.occurred_at == _at("2025-02-03T17:20:45+00:00")
    assert (event.actor_id, event.status) == (CUSTOMER, TicketStatus.OPEN)
    assert event.tags == ("upgrade", "care_plan_credits", "care_awaiting_approval")
    assert event.fields == {"care_category": "care_category_upgrade"}
    assert event.description.startswith("Hello,\n\nPlease upgrade my store")
    assert not adapter.is_own_event(event)


def test_agent_reply_skips_line_items_and_drafts(adapter: HelpScoutAdapter) -> None:
    event = _parse(adapter, "convo_agent_reply_created.json")
    assert event.type is EventType.COMMENT_ADDED
    assert event.comment == Comment(
        body="Hi Rob,\n\nThe upgrade is done, please check the checkout page.\n\nMr Robot",
        public=True,
        author_id="user:99",
        author_email="none@nowhere.com",
        by_requester=False,
    )
    assert event.occurred_at == _at("2025-02-04T09:15:00+00:00")
    assert (event.actor_id, event.status) == ("user:99", TicketStatus.SOLVED)
    assert event.fields == {"care_category": "care_category_upgrade", "care_price": "35"}


def test_an_agents_note_is_internal(adapter: HelpScoutAdapter) -> None:
    event = _parse(adapter, "convo_note_created__agent.json")
    assert event.comment == Comment(
        body="Upgraded on staging first; checkout slowness was a cache setting.",
        public=False,
        author_id="user:99",
        author_email="none@nowhere.com",
        by_requester=False,
    )
    assert event.actor_id == "user:99"
    assert not adapter.is_own_event(event)


def test_the_connectors_own_note_is_recognised(adapter: HelpScoutAdapter) -> None:
    event = _parse(adapter, "convo_note_created.json")
    assert event.comment is not None and event.comment.body.endswith("[care:41.2]")
    assert event.actor_id == "user:410022"
    assert adapter.is_own_event(event)


@pytest.mark.parametrize("own", ["410022", " 410022 ", "user:410022"])
def test_the_api_user_may_be_written_either_way(own: str) -> None:
    adapter = HelpScoutAdapter(make_desk(api_user_id=own))
    assert adapter.is_own_event(_parse(adapter, "convo_note_created.json"))


def test_no_api_user_means_no_own_events() -> None:
    adapter = HelpScoutAdapter(make_desk(api_user_id=""))
    assert not adapter.is_own_event(_parse(adapter, "convo_note_created.json"))


def test_a_customer_numbered_like_the_connector_is_not_the_connector() -> None:
    # Users and customers are numbered separately: customer 410022 is not user 410022.
    adapter = HelpScoutAdapter(make_desk())
    data = fixture_json("convo_customer_reply_created.json")
    data["primaryCustomer"]["id"] = 410022
    data["_embedded"]["threads"][0]["createdBy"]["id"] = 410022
    event = _parse_data(adapter, data, "convo.customer.reply.created")
    assert event.comment is not None and event.comment.by_requester
    assert (event.actor_id, event.comment.author_id) == ("410022", "410022")
    assert not adapter.is_own_event(event)


def test_an_agent_numbered_like_the_requester_is_not_the_requester(
    adapter: HelpScoutAdapter,
) -> None:
    data = fixture_json("convo_agent_reply_created.json")
    data["primaryCustomer"]["id"] = 99  # the same number as agent 99
    event = _parse_data(adapter, data, "convo.agent.reply.created")
    assert event.comment is not None
    assert event.comment.author_id == "user:99" != event.requester_id
    assert not event.comment.by_requester


def test_a_reply_by_a_cc_customer_is_not_the_requesters(adapter: HelpScoutAdapter) -> None:
    data = fixture_json("convo_customer_reply_created.json")
    data["_embedded"]["threads"][0]["createdBy"].update(id=555, email="cc@acme.com")
    comment = _parse_data(adapter, data, "convo.customer.reply.created").comment
    assert comment is not None
    assert (comment.author_id, comment.by_requester, comment.public) == ("555", False, True)


@pytest.mark.parametrize(
    ("event", "public", "author", "by_requester", "actor"),
    [
        ("convo.customer.reply.created", True, CUSTOMER, True, CUSTOMER),
        ("convo.agent.reply.created", True, None, False, None),
        ("convo.note.created", False, None, False, None),
    ],
)
def test_without_embedded_threads_the_text_is_unknown(
    adapter: HelpScoutAdapter,
    event: str,
    public: bool,
    author: str | None,
    by_requester: bool,
    actor: str | None,
) -> None:
    data = fixture_json("convo_customer_reply_created.json")
    del data["_embedded"]
    parsed = _parse_data(adapter, data, event)
    assert parsed.comment == Comment(
        body="", public=public, author_id=author, by_requester=by_requester
    )
    assert parsed.actor_id == actor
    assert parsed.description == ""  # not the preview: that is the latest thread


def test_tags_changed_carries_the_tags_after_the_change(adapter: HelpScoutAdapter) -> None:
    event = _parse(adapter, "convo_tags.json")
    assert event.type is EventType.TAGS_CHANGED
    assert event.tags == ("upgrade", "care_category_configuration", "care_priority_high")
    assert (event.tags_added, event.tags_removed) == ((), ())  # Help Scout does not say
    assert (event.status, event.actor_id, event.comment) == (TicketStatus.WAITING, None, None)


def test_status_changed_on_the_documented_example(adapter: HelpScoutAdapter) -> None:
    event = _parse(adapter, "conversation_v2_object.json")
    assert event.type is EventType.STATUS_CHANGED
    assert (event.ticket_id, event.status) == ("123", TicketStatus.SOLVED)
    assert (event.requester_id, event.requester_email) == ("238604", "rob@acme.com")
    assert event.requester_name == "Rob Robertovic"
    assert event.tags == ("vip",)
    assert event.ticket_created_at == _at("2012-03-15T22:46:22+00:00")
    assert event.fields == {}  # "Account Type" and "Account Status" are not the desk's
    assert (event.description, event.via_channel) == ("", "email")


def test_status_spam_ends_the_ticket(adapter: HelpScoutAdapter) -> None:
    data = fixture_json("conversation_v2_object.json")
    data["status"] = "spam"
    event = _parse_data(adapter, data, "convo.status")
    assert (event.type, event.status) == (EventType.TICKET_DELETED, TicketStatus.UNKNOWN)


def test_custom_fields_by_id_take_a_dropdowns_label(adapter: HelpScoutAdapter) -> None:
    event = _parse(adapter, "convo_custom_fields.json")
    assert event.type is EventType.FIELDS_CHANGED
    assert event.fields == {"care_category": "care_category_upgrade", "care_price": "35"}


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ({"id": 12102, "name": "Care price", "value": "40", "text": "40"}, {"care_price": "40"}),
        ({"id": 12102, "value": 40}, {"care_price": "40"}),
        ({"id": "12102", "value": "41", "text": ""}, {"care_price": "41"}),
        ({"id": 12102, "value": None, "text": None}, {}),
        ({"id": 12102, "value": "", "text": " "}, {}),
        ({"id": 12102, "value": {"x": 1}, "text": ["a"]}, {}),
        ({"id": 99999, "name": "care price", "value": "5"}, {}),  # numeric refs match ids only
    ],
)
def test_custom_field_values_in_their_shapes(
    adapter: HelpScoutAdapter, item: dict[str, Any], expected: dict[str, str]
) -> None:
    data = fixture_json("convo_custom_fields.json")
    data["customFields"] = [item]
    assert _parse_data(adapter, data, "convo.custom-fields").fields == expected


def test_fields_outside_the_mapping_are_left_out() -> None:
    adapter = HelpScoutAdapter(make_desk(fields={"care_category": "12101"}))
    assert _parse(adapter, "convo_custom_fields.json").fields == {
        "care_category": "care_category_upgrade"
    }


def test_conversation_deleted(adapter: HelpScoutAdapter) -> None:
    event = _parse(adapter, "convo_deleted.json", key="d-1")
    assert event == TicketEvent(
        desk="helpscout", delivery_key="d-1", type=EventType.TICKET_DELETED, ticket_id=CONVERSATION
    )


@pytest.mark.parametrize(
    ("value", "status"),
    [
        ("active", TicketStatus.OPEN),
        ("ACTIVE", TicketStatus.OPEN),
        ("open", TicketStatus.OPEN),
        ("pending", TicketStatus.WAITING),
        ("closed", TicketStatus.SOLVED),
        ("spam", TicketStatus.UNKNOWN),
        ("archived", TicketStatus.UNKNOWN),
        (None, TicketStatus.UNKNOWN),
    ],
)
def test_status_mapping(adapter: HelpScoutAdapter, value: str | None, status: TicketStatus) -> None:
    data = fixture_json("convo_tags.json")
    data["status"] = value
    assert _parse_data(adapter, data, "convo.tags").status is status


def test_a_new_conversation_without_threads_is_described_by_its_preview(
    adapter: HelpScoutAdapter,
) -> None:
    data = fixture_json("convo_created.json")
    data["_embedded"] = {"threads": []}
    event = _parse_data(adapter, data, "convo.created")
    assert event.description == (
        'Hello, Please upgrade my store from 4.3.1 to 4.3.9. The "checkout" page is slow too.'
    )


def test_numeric_ids_and_text_ids_read_the_same(adapter: HelpScoutAdapter) -> None:
    data = fixture_json("convo_created.json")
    data["id"] = "2391938111"
    data["primaryCustomer"]["id"] = "238604"
    event = _parse_data(adapter, data, "convo.created")
    assert (event.ticket_id, event.requester_id) == (CONVERSATION, CUSTOMER)


def test_event_names_are_read_in_any_case(adapter: HelpScoutAdapter) -> None:
    body = fixture("convo_tags.json")
    (event,) = adapter.parse({"X-HelpScout-Event": " Convo.Tags "}, body, delivery_key="k")
    assert event.type is EventType.TAGS_CHANGED


def test_every_handled_event_has_a_fixture_with_its_header(adapter: HelpScoutAdapter) -> None:
    seen: dict[str, EventType] = {}
    for path in sorted(FOLDER.glob("*.headers.json")):
        name = path.name.removesuffix(".headers.json") + ".json"
        code = fixture_headers(name)["X-HelpScout-Event"]
        if code in EVENT_TYPES and not name.startswith("legacy_"):
            seen[code] = _parse(adapter, name).type
    assert seen == dict(EVENT_TYPES)


def test_every_fixture_has_its_source_note_and_headers() -> None:
    payloads = [p for p in sorted(FOLDER.glob("*.json")) if not p.name.endswith(".headers.json")]
    assert len(payloads) >= 11
    for path in payloads:
        stem = path.name.removesuffix(".json")
        note = path.with_name(stem + ".source.txt")
        assert note.is_file() and note.read_text().strip(), path.name
        assert path.with_name(stem + ".headers.json").is_file(), path.name


# --------------------------------------------------------------------------------------------
# parse: what is refused or ignored


@pytest.mark.parametrize(
    "event", ["convo.assigned", "convo.moved", "convo.merged", "customer.created", "helpscout.test"]
)
def test_other_events_are_ignored_before_the_body_is_read(
    adapter: HelpScoutAdapter, event: str
) -> None:
    for body in (fixture("convo_assigned.json"), b"\xff not even json"):
        with pytest.raises(UnsupportedEventError) as caught:
            adapter.parse({"X-HelpScout-Event": event}, body, delivery_key="k")
        assert caught.value.http_status == 200
        assert caught.value.event_type == event


def test_the_unknown_event_fixture_is_ignored(adapter: HelpScoutAdapter) -> None:
    with pytest.raises(UnsupportedEventError, match="'convo.assigned' is not handled"):
        _parse(adapter, "convo_assigned.json")


@pytest.mark.parametrize("headers", [{}, {"X-HelpScout-Event": "  "}])
def test_a_delivery_without_its_event_header_is_refused(
    adapter: HelpScoutAdapter, headers: dict[str, str]
) -> None:
    with pytest.raises(AnomalousPayloadError, match="missing X-HelpScout-Event") as caught:
        adapter.parse(headers, fixture("convo_created.json"), delivery_key="k")
    assert caught.value.http_status == 400
    assert list(caught.value.errors) == ["X-HelpScout-Event"]


def test_a_legacy_v1_payload_is_a_clear_400(adapter: HelpScoutAdapter) -> None:
    with pytest.raises(AnomalousPayloadError, match=r"legacy \(v1\).*payload version to V2") as e:
        _parse(adapter, "legacy_v1_convo_created.json")
    assert e.value.http_status == 400
    assert {"primaryCustomer", "customer", "mailbox", "threads"} <= set(e.value.errors)


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (b"{not json", "$"),
        (b"[]", "$"),
        (b'"convo.created"', "$"),
        (b"\xc3\x28", "$"),
        (b"{}", "id"),
    ],
)
def test_bodies_that_are_not_conversations(
    adapter: HelpScoutAdapter, body: bytes, path: str
) -> None:
    with pytest.raises(AnomalousPayloadError) as caught:
        adapter.parse({"X-HelpScout-Event": "convo.created"}, body, delivery_key="k")
    assert path in caught.value.errors


@pytest.mark.parametrize(
    ("fixture_name", "path", "value", "error_path"),
    [
        ("convo_created.json", "id", _DELETE, "id"),
        ("convo_created.json", "id", None, "id"),
        ("convo_created.json", "id", 1.5, "id"),
        ("convo_created.json", "id", "", "id"),
        ("convo_created.json", "id", {"n": 1}, "id"),
        ("convo_created.json", "primaryCustomer", _DELETE, "primaryCustomer"),
        ("convo_created.json", "primaryCustomer", "rob@acme.com", "primaryCustomer"),
        ("convo_created.json", "primaryCustomer.id", [1], "primaryCustomer.id"),
        ("convo_created.json", "primaryCustomer.email", {"a": 1}, "primaryCustomer.email"),
        ("convo_created.json", "tags", "upgrade", "tags"),
        ("convo_created.json", "tags.0", {"id": 1}, "tags.0"),
        ("convo_created.json", "tags.0", "bare-string-tag", None),
        ("convo_created.json", "createdAt", "yesterday", "createdAt"),
        ("convo_created.json", "createdAt", "2025-02-03T15:59:12", "createdAt"),
        ("convo_created.json", "createdAt", 1738598352, "createdAt"),
        ("convo_created.json", "subject", ["x"], "subject"),
        ("convo_created.json", "customFields", {"id": 1}, "customFields"),
        ("convo_created.json", "customFields.0.id", None, "customFields.0.id"),
        ("convo_created.json", "source", "email", "source"),
        ("convo_created.json", "_embedded", [], "_embedded"),
        ("convo_created.json", "_embedded.threads", {"a": 1}, "_embedded.threads"),
        ("convo_created.json", "_embedded.threads.0", "x", "_embedded.threads.0"),
        ("convo_created.json", "_embedded.threads.0.body", {"t": 1}, "_embedded.threads.0.body"),
        (
            "convo_created.json",
            "_embedded.threads.0.createdAt",
            "soon",
            "_embedded.threads.0.createdAt",
        ),
        ("convo_created.json", "_embedded.threads.0.body", None, None),
        ("convo_created.json", "status", None, None),
        ("convo_created.json", "threads", 7, None),  # v2: the thread count
        ("convo_deleted.json", "id", _DELETE, "id"),
        ("convo_deleted.json", "id", True, "id"),
    ],
)
def test_wrong_shapes_name_the_failing_path(
    adapter: HelpScoutAdapter,
    fixture_name: str,
    path: str,
    value: Any,
    error_path: str | None,
) -> None:
    data = fixture_json(fixture_name)
    _set(data, path, value)
    body = json.dumps(data).encode()
    headers = fixture_headers(fixture_name)
    if error_path is None:  # lenient: still parses
        assert len(adapter.parse(headers, body, delivery_key="k")) == 1
        return
    with pytest.raises(AnomalousPayloadError) as caught:
        adapter.parse(headers, body, delivery_key="k")
    assert error_path in caught.value.errors, caught.value.errors
    assert caught.value.http_status == 400
    assert error_path in str(caught.value)


def test_unknown_keys_are_ignored(adapter: HelpScoutAdapter) -> None:
    data = fixture_json("convo_created.json")
    data["brandNewKey"] = {"x": 1}
    data["primaryCustomer"]["phone"] = [1, 2]
    assert _parse_data(adapter, data, "convo.created").ticket_id == CONVERSATION


# --------------------------------------------------------------------------------------------
# Thread bodies


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ("Plain text\nstays as it is", "Plain text\nstays as it is"),
        ("2 < 3 and 5 > 4", "2 < 3 and 5 > 4"),
        ("<p>One</p><p>Two</p>", "One\n\nTwo"),
        ("Line<br>break<br/>again", "Line\nbreak\nagain"),
        ("<div>a &amp; b</div><div>&lt;c&gt;</div>", "a & b\n<c>"),
        ("<p>Yes</p><blockquote><p>quoted</p></blockquote>", "Yes\n\n> quoted"),
        ("<style>p {color: red}</style><p>Hi</p>", "Hi"),
        ("<ul><li>one</li><li>two</li></ul>", "one\ntwo"),
        ("<p>  spaced \n  out  </p>", "spaced out"),
        ("<p>[care:41.2]</p>", "[care:41.2]"),
    ],
)
def test_html_bodies_become_plain_text(body: str, text: str) -> None:
    assert html_text(body) == text


# --------------------------------------------------------------------------------------------
# Any input: only the documented errors


_json_leaf = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
_json = st.recursive(
    _json_leaf,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
_person = st.fixed_dictionaries(
    {}, optional={k: _json for k in ("id", "type", "first", "last", "email")}
)
_thread = st.fixed_dictionaries(
    {},
    optional={
        "id": _json,
        "type": st.sampled_from(["customer", "message", "note", "lineitem"]) | _json,
        "state": st.sampled_from(["published", "draft"]) | _json,
        "body": st.text(max_size=40) | st.just("<p>a<blockquote>b</p>") | _json,
        "createdBy": _person | _json,
        "createdAt": st.just("2025-02-03T15:59:12Z") | _json,
    },
)
_conversations = st.fixed_dictionaries(
    {},
    optional={
        "id": _json | st.integers(min_value=1),
        "primaryCustomer": _person | _json,
        "status": st.sampled_from(["active", "pending", "closed", "spam"]) | _json,
        "tags": st.lists(st.fixed_dictionaries({"tag": _json}), max_size=3) | _json,
        "customFields": st.lists(
            st.fixed_dictionaries({"id": _json}, optional={"value": _json, "text": _json}),
            max_size=3,
        )
        | _json,
        "createdAt": _json | st.just("2025-02-03T15:59:12Z"),
        "createdBy": _person | _json,
        "source": _json,
        "_embedded": st.fixed_dictionaries({"threads": st.lists(_thread, max_size=3) | _json})
        | _json,
        "customer": _json,
        "threads": _json,
    },
)
_bodies = (
    st.binary(max_size=200)
    | _json.map(lambda v: json.dumps(v).encode())
    | _conversations.map(lambda v: json.dumps(v).encode())
)
_events = st.sampled_from([*EVENT_TYPES, "convo.assigned", "helpscout.test", ""]) | st.text(
    max_size=20
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=_bodies, event=_events, signature_header=st.text(max_size=40))
def test_any_input_raises_only_webhook_errors(
    body: bytes, event: str, signature_header: str
) -> None:
    adapter = HelpScoutAdapter(make_desk())
    headers = {"X-HelpScout-Event": event, "X-HelpScout-Signature": signature_header}
    key = adapter.delivery_key(headers, body)
    assert isinstance(key, str) and 0 < len(key) <= 200
    with pytest.raises(SignatureError):
        adapter.verify(headers, body, now=NOW)  # a random signature never matches
    try:
        events = adapter.parse(headers, body, delivery_key=key)
    except (AnomalousPayloadError, UnsupportedEventError) as err:
        assert isinstance(err, WebhookError)
        assert err.message
    else:
        assert len(events) == 1
        assert isinstance(events[0], TicketEvent)
        assert events[0].ticket_id
        adapter.is_own_event(events[0])


def test_a_signed_delivery_round_trip(adapter: HelpScoutAdapter) -> None:
    body = fixture("convo_customer_reply_created.json")
    headers = {
        **fixture_headers("convo_customer_reply_created.json"),
        "X-HelpScout-Signature": signature(SECRET, body),
    }
    adapter.verify(headers, body, now=NOW)
    key = adapter.delivery_key(headers, body)
    (event,) = adapter.parse(headers, body, delivery_key=key)
    assert (event.delivery_key, event.type, event.desk) == (
        f"convo.customer.reply.created:{hashlib.sha256(body).hexdigest()}",
        EventType.COMMENT_ADDED,
        "helpscout",
    )
