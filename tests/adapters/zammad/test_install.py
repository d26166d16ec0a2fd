"""``webhooks install`` for Zammad: the plan, the custom payload, and the idempotent executor
(every request body asserted exactly)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import responses
from responses import matchers

from adapters.base import HelpdeskClient
from adapters.zammad import ZammadAdapter, ZammadClient
from adapters.zammad.install import (
    ZammadInstallPlan,
    custom_payload,
    execute,
    loop_guard,
    plan,
)
from connector.config import DeskSettings
from rules.events import Comment, EventType, TicketStatus
from tests.adapters.zammad.support import API, API_USER, SECRET, zammad_desk

PUBLIC = "https://care.example.com"
ME = {"id": int(API_USER), "login": "care-bot@shop.example", "email": "care-bot@shop.example"}


@pytest.fixture
def desk() -> DeskSettings:
    return zammad_desk()


@pytest.fixture
def client(desk: DeskSettings) -> ZammadClient:
    return ZammadClient(desk)


# --------------------------------------------------------------------------------------------
# Rendering a custom payload the way Zammad does (trigger_webhook_job/custom_payload/parser.rb)

_VARIABLE = re.compile(r'"#\{([a-z0-9_.?!]+)\}"|#\{([a-z0-9_.?!]+)\}')


def _escape(text: str) -> str:
    # Zammad escapes quotes and these whitespace characters only (not backslashes).
    for raw, escaped in (('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")):
        text = text.replace(raw, escaped)
    return text


def _render(template: str, values: dict[str, Any]) -> bytes:
    """Replace each ``#{...}``: a string is escaped in place, a number or boolean in quotes
    becomes the bare JSON value, ``None`` is ``""``, and an unknown variable stays as
    ``#{x / no such method}``; then re-serialise, as Zammad posts ``JSON.parse(...)``."""

    def value(match: re.Match[str]) -> str:
        quoted, bare = match.group(1), match.group(2)
        name = quoted or bare
        found = values.get(name, f"#{{{name} / no such method}}")
        if found is None:
            found = ""
        if isinstance(found, str):
            return f'"{_escape(found)}"' if quoted else _escape(found)
        return json.dumps(found)

    rendered = _VARIABLE.sub(value, template)
    return json.dumps(json.loads(rendered)).encode()


TICKET = {
    "ticket.id": 1042,
    "ticket.number": "31042",
    "ticket.title": 'Upgrade "from" 4.3.1 to 4.3.9',
    "ticket.state.name": "pending reminder",
    "ticket.priority.name": "3 high",
    "ticket.customer_id": 27,
    "ticket.created_by_id": 27,
    "ticket.updated_by_id": 5,
    "ticket.created_at": "2026-03-10 09:58:00 UTC",
    "ticket.updated_at": "2026-03-10 10:20:30 UTC",
    "ticket.care_category": "modification",
    "ticket.care_price": 35,
    "ticket.care_preapproval": None,
    "ticket.customer.id": 27,
    "ticket.customer.email": "owner@shop.example",
    "ticket.customer.firstname": "O'Brien",
    "ticket.customer.lastname": None,
}
ARTICLE = {
    "article.id": 5007,
    "article.body": "<div>Yes, I agree.</div>\n<blockquote>Please approve 50</blockquote>",
    "article.content_type": "text/html",
    "article.internal": False,
    "article.sender.name": "Customer",
    "article.type.name": "email",
    "article.created_by_id": 27,
    "article.origin_by_id": None,
    "article.created_at": "2026-03-10 11:05:12 UTC",
}


# --------------------------------------------------------------------------------------------
# The plan


def test_the_plan(desk: DeskSettings) -> None:
    install = plan(PUBLIC + "/", desk)
    assert install.payload == "custom"
    assert install.secret_env == "CARE_ZAMMAD_SECRET"
    assert [(h.name, h.event, h.endpoint) for h in install.webhooks] == [
        ("Care Connector (zammad): ticket created", "created", f"{PUBLIC}/hooks/zammad"),
        ("Care Connector (zammad): ticket updated", "updated", f"{PUBLIC}/hooks/zammad"),
    ]
    created, updated = install.triggers
    assert (created.name, created.event) == ("Care Connector (zammad): ticket created", "created")
    assert created.condition == {"ticket.action": {"operator": "is", "value": "create"}}
    assert updated.condition == {
        "ticket.action": {"operator": "is", "value": "update"},
        "ticket.updated_by_id": {
            "operator": "is not",
            "pre_condition": "specific",
            "value": [API_USER],
        },
    }
    assert install.describe() == [
        "webhook 'Care Connector (zammad): ticket created': POST "
        "https://care.example.com/hooks/zammad (custom payload, signed)",
        "webhook 'Care Connector (zammad): ticket updated': POST "
        "https://care.example.com/hooks/zammad (custom payload, signed)",
        "trigger 'Care Connector (zammad): ticket created': ticket created",
        "trigger 'Care Connector (zammad): ticket updated': ticket updated "
        f"(loop guard: not updated by user {API_USER})",
    ]


def test_the_loop_guard_is_on_the_author() -> None:
    guard = loop_guard("12")
    assert list(guard) == ["ticket.updated_by_id"]
    assert guard["ticket.updated_by_id"]["value"] == ["12"]


def test_a_default_payload_plan() -> None:
    install = plan(PUBLIC, zammad_desk(options={"payload": "default"}, secrets=(), key="zd"))
    assert install.payload == "default"
    assert all(h.payload is None for h in install.webhooks)
    body = install.webhooks[0].body("s")
    assert (body["customized_payload"], body["custom_payload"]) == (False, None)
    assert install.describe()[-1] == (
        "a new signing secret will be generated (none in CARE_ZAMMAD_SECRET)"
    )


@pytest.mark.parametrize(
    ("overrides", "url", "words"),
    [
        ({}, "care.example.com", "not an http"),
        ({}, "ftp://care.example.com", "not an http"),
        ({}, "https://care example.com", "not an http"),
        ({"api_user_id": ""}, PUBLIC, "api_user_id must be the id"),
        ({"api_user_id": "care-bot"}, PUBLIC, "api_user_id must be the id"),
        ({"options": {"payload": "slack"}}, PUBLIC, "options.payload must be"),
        ({"fields": {"care_category": "Care Category"}}, PUBLIC, "fields.care_category must be"),
        ({"fields": {"care_price": "price}#{ticket.x"}}, PUBLIC, "fields.care_price must be"),
    ],
)
def test_plan_refuses_bad_settings(overrides: dict[str, Any], url: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        plan(url, zammad_desk(**overrides))


def test_the_secret_variable_defaults_to_the_desk_key() -> None:
    assert plan(PUBLIC, zammad_desk(key="zammad-eu", secret_env=())).secret_env == (
        "CARE_ZAMMAD_EU_SECRET"
    )


def test_the_template_is_json_with_a_replacement_per_value(desk: DeskSettings) -> None:
    template = json.loads(custom_payload(desk, "updated"))
    assert (template["care_connector"], template["event"]) == (1, "updated")
    assert template["ticket"]["fields"] == {
        "care_category": "#{ticket.care_category}",
        "care_price": "#{ticket.care_price}",
        "care_preapproval": "#{ticket.care_preapproval}",
    }
    assert template["ticket"]["updated_by_id"] == "#{ticket.updated_by_id}"
    assert template["article"]["created_by_id"] == "#{article.created_by_id}"
    names = re.findall(r"#\{([^}]*)\}", custom_payload(desk, "created"))
    assert all(re.fullmatch(r"[a-z0-9_.?!]+", name) for name in names)  # Zammad's scanner


@pytest.mark.parametrize("event", ["created", "updated"])
def test_a_rendered_template_parses_into_the_event(desk: DeskSettings, event: Any) -> None:
    body = _render(custom_payload(desk, event), {**TICKET, **ARTICLE})
    (parsed,) = ZammadAdapter(desk).parse({}, body, delivery_key="job-1")
    expected = EventType.TICKET_CREATED if event == "created" else EventType.COMMENT_ADDED
    assert parsed.type is expected
    assert parsed.subject == 'Upgrade "from" 4.3.1 to 4.3.9'
    assert (parsed.ticket_id, parsed.priority, parsed.status) == (
        "1042",
        "3 high",
        TicketStatus.WAITING,
    )
    assert parsed.fields == {"care_category": "modification", "care_price": "35"}
    assert (parsed.requester_id, parsed.requester_email, parsed.requester_name) == (
        "27",
        "owner@shop.example",
        "O'Brien",
    )
    if event == "created":
        assert parsed.description == "Yes, I agree.\n> Please approve 50"
        assert parsed.comment is None
    else:
        assert parsed.comment == Comment(
            body="Yes, I agree.\n> Please approve 50",
            public=True,
            author_id="27",
            by_requester=True,
        )


def test_a_rendered_update_without_article(desk: DeskSettings) -> None:
    # No article in the update: Zammad leaves every article replacement unresolved.
    body = _render(custom_payload(desk, "updated"), TICKET)
    assert b"#{article.id / no such method}" in body
    (parsed,) = ZammadAdapter(desk).parse({}, body, delivery_key="job-2")
    assert (parsed.type, parsed.comment, parsed.actor_id) == (EventType.TICKET_UPDATED, None, "5")


# --------------------------------------------------------------------------------------------
# The executor


def _hook_api(body: dict[str, Any], hook_id: int) -> dict[str, Any]:
    """A webhook as the API returns it: secrets masked."""
    return {
        **body,
        "id": hook_id,
        "signature_token": "**********",
        "basic_auth_password": "**********",
        "bearer_token": "**********",
        "pre_defined_webhook_type": None,
        "preferences": {},
    }


def _trigger_api(body: dict[str, Any], trigger_id: int) -> dict[str, Any]:
    return {**body, "id": trigger_id, "disable_notification": True, "localization": None}


def _first_page() -> list[Any]:
    return [matchers.query_param_matcher({"page": "1", "per_page": "100"})]


def test_first_install_creates_everything(
    mocked: responses.RequestsMock, client: ZammadClient, desk: DeskSettings
) -> None:
    install = plan(PUBLIC, desk)
    hooks = [h.body(SECRET) for h in install.webhooks]
    mocked.get(f"{API}/users/me", json=ME)
    mocked.get(
        f"{API}/webhooks",
        json=[{"id": 1, "name": "Slack", "endpoint": "https://hooks.slack.com/x"}],
        match=_first_page(),
    )
    for index, body in enumerate(hooks):
        mocked.post(
            f"{API}/webhooks",
            status=201,
            json=_hook_api(body, 40 + index),
            match=[matchers.json_params_matcher(body)],
        )
    mocked.get(f"{API}/triggers", json=[], match=_first_page())
    triggers = [t.body(str(40 + i)) for i, t in enumerate(install.triggers)]
    for index, body in enumerate(triggers):
        mocked.post(
            f"{API}/triggers",
            status=201,
            json=_trigger_api(body, 70 + index),
            match=[matchers.json_params_matcher(body)],
        )

    result = execute(client, install, make_secret=lambda: pytest.fail("the desk has a secret"))

    assert [(o.kind, o.id, o.action) for o in result.objects] == [
        ("webhook", "40", "created"),
        ("webhook", "41", "created"),
        ("trigger", "70", "created"),
        ("trigger", "71", "created"),
    ]
    assert dict(result.webhook_ids) == {"created": "40", "updated": "41"}
    assert (result.secret, result.generated) == (SECRET, False)
    assert hooks[0] == {
        "name": "Care Connector (zammad): ticket created",
        "endpoint": f"{PUBLIC}/hooks/zammad",
        "http_method": "post",
        "signature_token": SECRET,
        "ssl_verify": True,
        "active": True,
        "customized_payload": True,
        "custom_payload": custom_payload(desk, "created"),
        "note": "Care Connector: ticket events for support plans and credits.",
    }
    assert triggers[1] == {
        "name": "Care Connector (zammad): ticket updated",
        "condition": {
            "ticket.action": {"operator": "is", "value": "update"},
            "ticket.updated_by_id": {
                "operator": "is not",
                "pre_condition": "specific",
                "value": [API_USER],
            },
        },
        "perform": {"notification.webhook": {"webhook_id": 41}},
        "activator": "action",
        "execution_condition_mode": "always",
        "active": True,
        "note": "Care Connector: sends ticket events to the connector.",
    }
    assert triggers[0]["perform"] == {"notification.webhook": {"webhook_id": 40}}
    assert "ticket.updated_by_id" not in triggers[0]["condition"]
    assert result.describe() == [
        "created webhook 'Care Connector (zammad): ticket created' (40)",
        "created webhook 'Care Connector (zammad): ticket updated' (41)",
        "created trigger 'Care Connector (zammad): ticket created' (70)",
        "created trigger 'Care Connector (zammad): ticket updated' (71)",
        "webhooks sign with the current secret of CARE_ZAMMAD_SECRET",
    ]


def test_a_second_run_duplicates_nothing(
    mocked: responses.RequestsMock, client: ZammadClient, desk: DeskSettings
) -> None:
    install = plan(PUBLIC, desk)
    hooks = [h.body(SECRET) for h in install.webhooks]
    mocked.get(f"{API}/users/me", json=ME)
    mocked.get(f"{API}/webhooks", json=[_hook_api(b, 40 + i) for i, b in enumerate(hooks)])
    for index, body in enumerate(hooks):
        # The token cannot be read back, so it is written again; nothing is created.
        mocked.put(
            f"{API}/webhooks/{40 + index}",
            json=_hook_api(body, 40 + index),
            match=[matchers.json_params_matcher(body)],
        )
    mocked.get(
        f"{API}/triggers",
        json=[_trigger_api(t.body(str(40 + i)), 70 + i) for i, t in enumerate(install.triggers)],
    )
    result = execute(client, install)
    assert [(o.kind, o.id, o.action) for o in result.objects] == [
        ("webhook", "40", "unchanged"),
        ("webhook", "41", "unchanged"),
        ("trigger", "70", "unchanged"),
        ("trigger", "71", "unchanged"),
    ]
    assert not [c for c in mocked.calls if c.request.method == "POST"]
    assert [c.request.method for c in mocked.calls].count("PUT") == 2


def test_a_changed_install_is_updated_in_place(
    mocked: responses.RequestsMock, desk: DeskSettings
) -> None:
    client = ZammadClient(desk)
    install = plan("https://new-host.example.com", desk)
    created_hook, updated_hook = (h.body(SECRET) for h in install.webhooks)
    old_hook = {**updated_hook, "endpoint": "https://old.example.com/hooks/zammad"}
    created_trigger, updated_trigger = (t.body(str(40 + i)) for i, t in enumerate(install.triggers))
    # An admin dropped the loop guard in the UI; the re-run puts it back.
    stale = {
        **updated_trigger,
        "condition": {"ticket.action": {"operator": "is", "value": "update"}},
    }
    mocked.get(f"{API}/users/me", json=ME)
    mocked.get(f"{API}/webhooks", json=[_hook_api(old_hook, 41)])
    mocked.post(
        f"{API}/webhooks",
        status=201,
        json=_hook_api(created_hook, 40),
        match=[matchers.json_params_matcher(created_hook)],
    )
    mocked.put(
        f"{API}/webhooks/41",
        json=_hook_api(updated_hook, 41),
        match=[matchers.json_params_matcher(updated_hook)],
    )
    mocked.get(
        f"{API}/triggers",
        json=[
            {"id": 2, "name": "auto reply (on new tickets)"},
            _trigger_api(created_trigger, 70),
            _trigger_api(stale, 71),
        ],
    )
    mocked.put(
        f"{API}/triggers/71",
        json=_trigger_api(updated_trigger, 71),
        match=[matchers.json_params_matcher(updated_trigger)],
    )
    result = execute(client, install)
    assert [(o.kind, o.id, o.action) for o in result.objects] == [
        ("webhook", "40", "created"),
        ("webhook", "41", "updated"),
        ("trigger", "70", "unchanged"),
        ("trigger", "71", "updated"),
    ]


def test_without_a_configured_secret_one_is_generated(mocked: responses.RequestsMock) -> None:
    desk = zammad_desk(secrets=())
    install = plan(PUBLIC, desk)
    mocked.get(f"{API}/users/me", json=ME)
    mocked.get(f"{API}/webhooks", json=[])
    for index, hook in enumerate(install.webhooks):
        mocked.post(
            f"{API}/webhooks",
            status=201,
            json={"id": 40 + index},
            match=[matchers.json_params_matcher(hook.body("generated-secret"))],
        )
    mocked.get(f"{API}/triggers", json=[])
    mocked.post(f"{API}/triggers", status=201, json={"id": 70})
    result = execute(ZammadClient(desk), install, make_secret=lambda: "generated-secret")
    assert (result.secret, result.generated) == ("generated-secret", True)
    assert result.describe()[-1] == (
        "set CARE_ZAMMAD_SECRET to generated-secret (a new webhook signing secret; "
        "Zammad never shows it again)"
    )


def test_credentials_of_another_user_stop_before_any_write(
    mocked: responses.RequestsMock, client: ZammadClient, desk: DeskSettings
) -> None:
    mocked.get(f"{API}/users/me", json={"id": 3, "login": "chris@chrispresso.com"})
    with pytest.raises(ValueError, match="belong to Zammad user 3 .*api_user_id is 12"):
        execute(client, plan(PUBLIC, desk))
    assert len(mocked.calls) == 1


def test_a_refused_call_stops_the_run(
    mocked: responses.RequestsMock, client: ZammadClient, desk: DeskSettings
) -> None:
    from adapters.errors import HelpdeskAPIError

    mocked.get(f"{API}/users/me", json=ME)
    mocked.get(f"{API}/webhooks", status=403, json={"error": "Not authorized (admin.webhook)"})
    with pytest.raises(HelpdeskAPIError) as caught:
        execute(client, plan(PUBLIC, desk))
    assert (caught.value.status, caught.value.permanent) == (403, True)


def test_adapter_install_runs_plan_and_executor(mocked: responses.RequestsMock) -> None:
    adapter = ZammadAdapter(zammad_desk())
    install: ZammadInstallPlan = adapter.install_plan(PUBLIC)
    mocked.get(f"{API}/users/me", json=ME)
    mocked.get(
        f"{API}/webhooks",
        json=[_hook_api(h.body(SECRET), 40 + i) for i, h in enumerate(install.webhooks)],
    )
    mocked.put(f"{API}/webhooks/40", json={"id": 40})
    mocked.put(f"{API}/webhooks/41", json={"id": 41})
    mocked.get(
        f"{API}/triggers",
        json=[_trigger_api(t.body(str(40 + i)), 70 + i) for i, t in enumerate(install.triggers)],
    )
    result = adapter.install(PUBLIC)
    assert dict(result.webhook_ids) == {"created": "40", "updated": "41"}
    assert (
        result.describe()[2] == "unchanged trigger 'Care Connector (zammad): ticket created' (70)"
    )


def test_adapter_install_needs_a_zammad_client() -> None:
    class Other(HelpdeskClient):
        set_priority = add_tags = remove_tags = add_note = add_reply = None  # type: ignore[assignment]
        has_marker = get_requester = get_priority = None  # type: ignore[assignment]

    adapter = ZammadAdapter(zammad_desk())
    with pytest.raises(TypeError, match="needs a ZammadClient"):
        adapter.install(PUBLIC, Other(zammad_desk()))
