"""``webhooks install`` for Zendesk: the plan, the trigger body, and the idempotent executor
(every request checked against Zendesk's OpenAPI documents)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
import responses
from responses import matchers

from adapters.errors import HelpdeskAPIError
from adapters.zendesk import ZendeskAdapter, ZendeskClient
from adapters.zendesk.install import (
    LOOP_GUARD,
    ZendeskInstallPlan,
    execute,
    plan,
    trigger_body,
)
from adapters.zendesk.schemas import EVENT_TYPES
from connector.config import DeskSettings
from rules.events import Comment, EventType, TicketStatus

API = "https://acme.zendesk.com/api/v2"
PUBLIC = "https://care.example.com"
HOOK_ID = "01JH2ZQ9X4K7T5V3B8N6M2C1D0"
SECRET = "zendesk-says-this-one"


@pytest.fixture
def desk(make_desk: Callable[..., DeskSettings]) -> DeskSettings:
    return make_desk()


@pytest.fixture
def client(desk: DeskSettings) -> ZendeskClient:
    return ZendeskClient(desk)


def _render(template: str, values: dict[str, str]) -> bytes:
    """Render placeholders the way a JSON webhook does: each value JSON-escaped in place."""

    def value(match: re.Match[str]) -> str:
        return json.dumps(values.get(match.group(1), ""), ensure_ascii=False)[1:-1]

    return re.sub(r"\{\{([a-z_.0-9]+)\}\}", value, template).encode()


RENDERED = {
    "ticket.id": "7",
    "ticket.title": 'He said "hi"\\ and left',
    "ticket.description": 'Line one\nLine two\twith a tab \u2028 and "quotes"',
    "ticket.status": "Pending",
    "ticket.priority": "Urgent",
    "ticket.tags": "upgrade care_preapproved",
    "ticket.created_at_with_timestamp": "2025-02-03T15:59:12Z",
    "ticket.updated_at_with_timestamp": "2025-02-03T16:10:00Z",
    "ticket.via": "Web Form",
    "ticket.ticket_field_360001234569": "60",
    "ticket.ticket_field_360001234567": "care_category_question",
    "ticket.requester.id": "8447388090494",
    "ticket.requester.email": "owner@shop.example",
    "ticket.requester.name": 'O\'Brien "Shop" Owner',
    "ticket.requester.locale": "en-US",
    "current_user.id": "8447388090494",
    "ticket.latest_comment.value": "Yes, I agree.\n> quoted",
    "ticket.latest_comment.is_public": "true",
    "ticket.latest_comment.author.id": "8447388090494",
}


# --------------------------------------------------------------------------------------------
# The plan


def test_trigger_plan(desk: DeskSettings) -> None:
    install = plan(PUBLIC + "/", desk)
    assert install.connection == "triggers"
    assert install.webhook.name == "Care Connector (zendesk, triggers)"
    assert install.webhook.endpoint == "https://care.example.com/hooks/zendesk"
    assert install.webhook.subscriptions == ("conditional_ticket_events",)
    assert install.secret_env == "CARE_ZENDESK_SECRET"
    assert install.warnings == ()
    created, comment, updated = install.triggers
    assert created.title == "Care Connector (zendesk): ticket created"
    assert created.conditions_all == (
        {"field": "update_type", "operator": "is", "value": "Create"},
    )
    assert created.conditions_any == ()
    assert comment.conditions_all == (
        {"field": "update_type", "operator": "is", "value": "Change"},
        {"field": "comment_is_public", "operator": "is", "value": "true"},
    )
    assert updated.conditions_all == (
        {"field": "update_type", "operator": "is", "value": "Change"},
    )
    for guarded in (comment, updated):
        assert guarded.conditions_any == LOOP_GUARD
    assert [json.loads(t.body_template)["event"] for t in install.triggers] == [
        "created",
        "comment",
        "updated",
    ]
    assert install.describe() == [
        "webhook 'Care Connector (zendesk, triggers)': POST "
        "https://care.example.com/hooks/zendesk (conditional_ticket_events)",
        "trigger category: Care Connector",
        "trigger 'Care Connector (zendesk): ticket created'",
        "trigger 'Care Connector (zendesk): public comment' (loop guard)",
        "trigger 'Care Connector (zendesk): ticket updated' (loop guard)",
    ]


def test_the_loop_guard_is_never_the_channel_alone() -> None:
    fields = {condition["field"] for condition in LOOP_GUARD}
    assert "current_via_id" in fields
    assert fields - {"current_via_id"}, "the guard needs a condition on who updated"


def test_event_subscription_plan(make_desk: Callable[..., DeskSettings]) -> None:
    install = plan(PUBLIC, make_desk(options={"connection": "events"}, key="zd-eu"))
    assert install.connection == "events"
    assert install.webhook.name == "Care Connector (zd-eu, events)"
    assert install.webhook.endpoint == "https://care.example.com/hooks/zd-eu"
    assert set(install.webhook.subscriptions) == set(EVENT_TYPES)
    assert "zen:event-type:ticket.marked_as_spam" in install.webhook.subscriptions
    assert install.triggers == ()


@pytest.mark.parametrize(
    ("overrides", "url", "words"),
    [
        ({}, "care.example.com", "not an http"),
        ({}, "ftp://care.example.com", "not an http"),
        ({}, "https://care example.com", "not an http"),
        ({"options": {"connection": "polling"}}, PUBLIC, "options.connection must be"),
        ({"options": {"connection": "events"}, "api_user_id": ""}, PUBLIC, "needs api_user_id"),
        ({"fields": {"care_category": "category"}}, PUBLIC, "fields.care_category must be"),
    ],
)
def test_plan_refuses_bad_settings(
    make_desk: Callable[..., DeskSettings], overrides: dict[str, Any], url: str, words: str
) -> None:
    with pytest.raises(ValueError, match=words):
        plan(url, make_desk(**overrides))


def test_plan_warns_without_api_user(make_desk: Callable[..., DeskSettings]) -> None:
    install = plan(PUBLIC, make_desk(api_user_id="", secret_env=(), key="support"))
    assert install.warnings and "api_user_id" in install.warnings[0]
    assert install.secret_env == "CARE_SUPPORT_SECRET"
    assert install.describe()[-1].startswith("warning: no api_user_id")


def test_the_template_is_json_with_a_placeholder_per_value(desk: DeskSettings) -> None:
    template = json.loads(trigger_body(desk, "comment"))
    assert template["care_connector"] == 1
    assert template["ticket"]["fields"] == {
        "360001234567": "{{ticket.ticket_field_360001234567}}",
        "360001234568": "{{ticket.ticket_field_360001234568}}",
        "360001234569": "{{ticket.ticket_field_360001234569}}",
    }
    assert template["current_user"] == {"id": "{{current_user.id}}"}
    assert template["comment"]["public"] == "{{ticket.latest_comment.is_public}}"
    assert "comment" not in json.loads(trigger_body(desk, "updated"))


@pytest.mark.parametrize("event", ["created", "comment", "updated"])
def test_a_rendered_template_parses_into_the_event(desk: DeskSettings, event: Any) -> None:
    body = _render(trigger_body(desk, event), RENDERED)
    (parsed,) = ZendeskAdapter(desk).parse({}, body, delivery_key="inv-1")
    assert (
        parsed.type
        is {
            "created": EventType.TICKET_CREATED,
            "comment": EventType.COMMENT_ADDED,
            "updated": EventType.TICKET_UPDATED,
        }[event]
    )
    assert parsed.subject == 'He said "hi"\\ and left'
    assert parsed.description == RENDERED["ticket.description"]
    assert parsed.requester_name == 'O\'Brien "Shop" Owner'
    assert (parsed.ticket_id, parsed.priority, parsed.status) == (
        "7",
        "urgent",
        TicketStatus.WAITING,
    )
    assert parsed.fields == {"care_category": "care_category_question", "care_preapproval": "60"}
    assert parsed.locale == "en-US"
    if event == "comment":
        assert parsed.comment == Comment(
            body="Yes, I agree.\n> quoted",
            public=True,
            author_id="8447388090494",
            by_requester=True,
        )
    else:
        assert parsed.comment is None


# --------------------------------------------------------------------------------------------
# The executor


def _trigger_api(body: dict[str, Any], trigger_id: int) -> dict[str, Any]:
    """A trigger as the API returns it."""
    return {**body, "id": trigger_id, "url": f"{API}/triggers/{trigger_id}.json", "default": False}


def _bodies(install: ZendeskInstallPlan, category: str | None) -> list[dict[str, Any]]:
    return [t.body(HOOK_ID, category) for t in install.triggers]


def test_first_install_creates_everything(
    mocked: responses.RequestsMock,
    client: ZendeskClient,
    desk: DeskSettings,
    assert_zendesk_calls: Callable[..., int],
) -> None:
    install = plan(PUBLIC, desk)
    triggers = _bodies(install, "10026")
    webhook = {
        **install.webhook.body(),
        "signing_secret": {"algorithm": "sha256", "secret": "generated"},
    }
    mocked.get(
        f"{API}/webhooks",
        json={
            "webhooks": [{"id": "01OTHER", "name": "Care Connector (zendesk, triggers) old"}],
            "meta": {"has_more": False},
        },
        match=[
            matchers.query_param_matcher(
                {"filter[name_contains]": "Care Connector (zendesk, triggers)", "page[size]": "100"}
            )
        ],
    )
    mocked.post(
        f"{API}/webhooks",
        status=201,
        json={"webhook": {**install.webhook.body(), "id": HOOK_ID}},
        match=[matchers.json_params_matcher({"webhook": webhook})],
    )
    mocked.get(
        f"{API}/webhooks/{HOOK_ID}/signing_secret",
        json={"signing_secret": {"algorithm": "SHA256", "secret": SECRET}},
    )
    mocked.get(
        f"{API}/trigger_categories",
        json={
            "trigger_categories": [{"id": "10001", "name": "Email Triggers"}],
            "meta": {"has_more": False},
        },
    )
    mocked.post(
        f"{API}/trigger_categories",
        json={"trigger_category": {"id": "10026", "name": "Care Connector"}},
        match=[matchers.json_params_matcher({"trigger_category": {"name": "Care Connector"}})],
    )
    mocked.get(f"{API}/triggers", json={"triggers": [], "count": 0, "next_page": None})
    for index, body in enumerate(triggers):
        mocked.post(
            f"{API}/triggers",
            status=201,
            json={"trigger": _trigger_api(body, 900 + index)},
            match=[matchers.json_params_matcher({"trigger": body})],
        )

    result = execute(client, install, make_secret=lambda: "generated")

    assert result.webhook_id == HOOK_ID
    assert result.secret == SECRET  # what Zendesk reports, read back
    assert result.secret_env == "CARE_ZENDESK_SECRET"
    assert [(o.kind, o.id, o.action) for o in result.objects] == [
        ("webhook", HOOK_ID, "created"),
        ("trigger_category", "10026", "created"),
        ("trigger", "900", "created"),
        ("trigger", "901", "created"),
        ("trigger", "902", "created"),
    ]
    for body in triggers:
        assert body["category_id"] == "10026"
        assert body["actions"][0]["field"] == "notification_webhook"
        assert body["actions"][0]["value"][0] == HOOK_ID
        json.loads(body["actions"][0]["value"][1])
    assert assert_zendesk_calls(mocked.calls) == 9
    assert result.describe()[0] == (
        f"created webhook 'Care Connector (zendesk, triggers)' ({HOOK_ID})"
    )
    assert result.describe()[-1] == "set CARE_ZENDESK_SECRET to the webhook signing secret"


def test_a_second_run_changes_nothing(
    mocked: responses.RequestsMock,
    client: ZendeskClient,
    desk: DeskSettings,
    assert_zendesk_calls: Callable[..., int],
) -> None:
    install = plan(PUBLIC, desk)
    existing_hook = {**install.webhook.body(), "id": HOOK_ID, "created_at": "2025-01-01T00:00:00Z"}
    mocked.get(f"{API}/webhooks", json={"webhooks": [existing_hook], "meta": {"has_more": False}})
    mocked.get(
        f"{API}/webhooks/{HOOK_ID}/signing_secret",
        json={"signing_secret": {"algorithm": "SHA256", "secret": SECRET}},
    )
    mocked.get(
        f"{API}/trigger_categories",
        json={
            "trigger_categories": [{"id": "10026", "name": "Care Connector"}],
            "meta": {"has_more": False},
        },
    )
    mocked.get(
        f"{API}/triggers",
        json={
            "triggers": [
                _trigger_api(body, 900 + i) for i, body in enumerate(_bodies(install, "10026"))
            ],
            "meta": {"has_more": False},
        },
    )
    result = execute(client, install, make_secret=lambda: pytest.fail("no new secret"))
    assert [o.action for o in result.objects] == [
        "unchanged",
        "found",
        "unchanged",
        "unchanged",
        "unchanged",
    ]
    assert all(call.request.method == "GET" for call in mocked.calls)
    assert result.secret == SECRET
    assert assert_zendesk_calls(mocked.calls) == 4


def test_a_changed_install_is_updated_in_place(
    mocked: responses.RequestsMock,
    client: ZendeskClient,
    make_desk: Callable[..., DeskSettings],
    assert_zendesk_calls: Callable[..., int],
) -> None:
    desk = make_desk(options={"trigger_category_id": "555"})
    install = plan("https://new-host.example.com", desk)
    old_hook = {
        **install.webhook.body(),
        "endpoint": "https://old.example.com/hooks/zendesk",
        "id": HOOK_ID,
    }
    created, comment, updated = _bodies(install, "555")
    stale = {**updated, "conditions": {"all": updated["conditions"]["all"], "any": []}}
    mocked.get(f"{API}/webhooks", json={"webhooks": [old_hook], "meta": {"has_more": False}})
    mocked.put(
        f"{API}/webhooks/{HOOK_ID}",
        status=204,
        match=[matchers.json_params_matcher({"webhook": install.webhook.body()})],
    )
    mocked.get(
        f"{API}/webhooks/{HOOK_ID}/signing_secret",
        json={"signing_secret": {"algorithm": "SHA256", "secret": SECRET}},
    )
    mocked.get(
        f"{API}/triggers",
        json={
            "triggers": [_trigger_api(created, 900), _trigger_api(stale, 902)],
            "meta": {"has_more": True, "after_cursor": "p2"},
        },
    )
    mocked.get(
        f"{API}/triggers",
        json={"triggers": [{"id": 1, "title": "Notify requester"}], "meta": {"has_more": False}},
        match=[matchers.query_param_matcher({"page[size]": "100", "page[after]": "p2"})],
    )
    mocked.post(
        f"{API}/triggers",
        status=201,
        json={"trigger": _trigger_api(comment, 901)},
        match=[matchers.json_params_matcher({"trigger": comment})],
    )
    mocked.put(
        f"{API}/triggers/902",
        json={"trigger": _trigger_api(updated, 902)},
        match=[matchers.json_params_matcher({"trigger": updated})],
    )

    result = execute(client, install)

    assert [(o.kind, o.id, o.action) for o in result.objects] == [
        ("webhook", HOOK_ID, "updated"),
        ("trigger", "900", "unchanged"),
        ("trigger", "901", "created"),
        ("trigger", "902", "updated"),
    ]
    assert updated["category_id"] == "555"
    assert assert_zendesk_calls(mocked.calls) == 7


def test_accounts_without_trigger_categories(
    mocked: responses.RequestsMock, client: ZendeskClient, desk: DeskSettings
) -> None:
    install = plan(PUBLIC, desk)
    mocked.get(f"{API}/webhooks", json={"webhooks": [], "meta": {"has_more": False}})
    mocked.post(f"{API}/webhooks", status=201, json={"webhook": {"id": HOOK_ID}})
    mocked.get(
        f"{API}/webhooks/{HOOK_ID}/signing_secret",
        json={"signing_secret": {"secret": SECRET}},
    )
    mocked.get(
        f"{API}/trigger_categories",
        status=403,
        json={"errors": [{"code": "TriggerCategoriesNotEnabled"}]},
    )
    mocked.get(f"{API}/triggers", json={"triggers": [], "next_page": None})
    for index, body in enumerate(_bodies(install, None)):
        assert "category_id" not in body
        mocked.post(
            f"{API}/triggers",
            status=201,
            json={"trigger": _trigger_api(body, 900 + index)},
            match=[matchers.json_params_matcher({"trigger": body})],
        )
    result = execute(client, install)
    assert [o.kind for o in result.objects] == ["webhook", "trigger", "trigger", "trigger"]


def test_an_unreadable_secret_falls_back_to_the_one_just_set(
    mocked: responses.RequestsMock, client: ZendeskClient, make_desk: Callable[..., DeskSettings]
) -> None:
    install = plan(PUBLIC, make_desk(options={"connection": "events"}))
    mocked.get(f"{API}/webhooks", json={"webhooks": [], "meta": {"has_more": False}})
    mocked.post(
        f"{API}/webhooks",
        status=201,
        json={"webhook": {"id": HOOK_ID}},
        match=[
            matchers.json_params_matcher(
                {
                    "webhook": {
                        **install.webhook.body(),
                        "signing_secret": {"algorithm": "sha256", "secret": "mine"},
                    }
                }
            )
        ],
    )
    mocked.get(f"{API}/webhooks/{HOOK_ID}/signing_secret", status=403, json={"error": "Forbidden"})
    result = execute(client, install, make_secret=lambda: "mine")
    assert result.secret == "mine"
    assert [o.action for o in result.objects] == ["created"]


def test_an_unreadable_secret_of_an_existing_webhook_is_an_error(
    mocked: responses.RequestsMock, client: ZendeskClient, desk: DeskSettings
) -> None:
    install = plan(PUBLIC, desk)
    mocked.get(
        f"{API}/webhooks",
        json={"webhooks": [{**install.webhook.body(), "id": HOOK_ID}], "meta": {"has_more": False}},
    )
    mocked.get(f"{API}/webhooks/{HOOK_ID}/signing_secret", status=403, json={"error": "Forbidden"})
    with pytest.raises(HelpdeskAPIError) as caught:
        execute(client, install)
    assert caught.value.status == 403


def test_adapter_install_runs_plan_and_executor(
    mocked: responses.RequestsMock, make_desk: Callable[..., DeskSettings]
) -> None:
    adapter = ZendeskAdapter(make_desk(options={"connection": "events"}))
    mocked.get(
        f"{API}/webhooks",
        json={
            "webhooks": [{**adapter.install_plan(PUBLIC).webhook.body(), "id": HOOK_ID}],
            "meta": {"has_more": False},
        },
    )
    mocked.get(
        f"{API}/webhooks/{HOOK_ID}/signing_secret", json={"signing_secret": {"secret": SECRET}}
    )
    result = adapter.install(PUBLIC)
    assert (result.webhook_id, result.secret) == (HOOK_ID, SECRET)
    assert (
        result.describe()[0] == f"unchanged webhook 'Care Connector (zendesk, events)' ({HOOK_ID})"
    )


def test_adapter_install_needs_a_zendesk_client(make_desk: Callable[..., DeskSettings]) -> None:
    from adapters.base import HelpdeskClient

    class Other(HelpdeskClient):
        set_priority = add_tags = remove_tags = add_note = add_reply = None  # type: ignore[assignment]
        has_marker = get_requester = get_priority = None  # type: ignore[assignment]

    adapter = ZendeskAdapter(make_desk())
    with pytest.raises(TypeError, match="needs a ZendeskClient"):
        adapter.install(PUBLIC, Other(make_desk()))
