"""Notifications over the API: rules, templates with preview, preferences, the log, dead letters,
and trying a plugin out."""

from __future__ import annotations

import json

import pytest

from patone.core.notifications import planning
from patone.core.runtime.redis import get_redis
from patone.core.work.jobs import dead_letter_key
from patone.graphql.ids import to_global_id
from patone.plugins import config as plugins
from patone.tenants.registry import TenantInfo
from tests.core.conftest import runtime  # noqa: F401 (fixture)
from tests.core.notifications.conftest import (
    enable_providers,
    new_request,
)
from tests.fakes import SmtpFake, TwilioFake
from tests.graphql.conftest import Gql, token_for

SAVE = """
mutation($body: String!, $subject: String!) {
  saveNotificationTemplate(event: "request.created", channel: "email", subject: $subject,
                           body: $body) {
    template { subject body isDefault }
    userErrors { field code message }
  }
}"""


@pytest.mark.usefixtures("runtime")
async def test_rules_and_templates_are_the_companys_own(
    gql: Gql, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, bolt = two_tenants
    admin = await token_for(acme, "admin")
    off = await gql(
        acme,
        admin,
        'mutation { setNotificationRule(event: "request.created", recipient: "customer", '
        'channel: "sms", enabled: false) { rule { enabled } userErrors { field } } }',
    )
    assert off["data"]["setNotificationRule"] == {"rule": {"enabled": False}, "userErrors": []}
    bad = await gql(
        acme,
        admin,
        'mutation { setNotificationRule(event: "request.teleported", recipient: "customer", '
        'channel: "fax", enabled: true) { rule { enabled } userErrors { field code } } }',
    )
    assert bad["data"]["setNotificationRule"]["userErrors"] == [
        {"field": "event", "code": "invalid"}
    ]

    broken = await gql(acme, admin, SAVE, {"subject": "Hi", "body": "{% if %}\n{{ custmer }}"})
    errors = broken["data"]["saveNotificationTemplate"]["userErrors"]
    assert errors[0]["field"] == "body" and errors[0]["code"] == "syntax_error"
    assert "line 1" in errors[0]["message"]
    typo = await gql(acme, admin, SAVE, {"subject": "Hi", "body": "Hello {{ custmer.name }}"})
    [error] = typo["data"]["saveNotificationTemplate"]["userErrors"]
    assert error["field"] == "body" and "custmer" in error["message"]
    sandboxed = await gql(
        acme, admin, SAVE, {"subject": "x", "body": "{{ request.__class__.__mro__ }}"}
    )
    assert sandboxed["data"]["saveNotificationTemplate"]["userErrors"][0]["field"] == "body"
    saved = await gql(
        acme, admin, SAVE, {"subject": "Help is coming, {{ customer.first_name }}", "body": "Hi"}
    )
    assert saved["data"]["saveNotificationTemplate"]["template"]["isDefault"] is False

    query = "{ notificationRules { event recipient channel enabled } " \
        "notificationTemplates { event channel subject isDefault } }"  # fmt: skip
    mine = (await gql(acme, admin, query))["data"]
    theirs = (await gql(bolt, await token_for(bolt, "admin"), query))["data"]
    created_sms = ("request.created", "customer", "sms")
    assert {
        (r["event"], r["recipient"], r["channel"]): r["enabled"] for r in mine["notificationRules"]
    }[created_sms] is False
    assert {
        (r["event"], r["recipient"], r["channel"]): r["enabled"]
        for r in theirs["notificationRules"]
    }[created_sms] is True
    email = ("request.created", "email")
    ours = {(t["event"], t["channel"]): t for t in mine["notificationTemplates"]}[email]
    other = {(t["event"], t["channel"]): t for t in theirs["notificationTemplates"]}[email]
    assert ours["subject"].startswith("Help is coming") and not ours["isDefault"]
    assert other["isDefault"] and other["subject"] != ours["subject"]

    dispatcher = await token_for(acme, "dispatcher")
    refused = await gql(acme, dispatcher, "{ notificationRules { event } }")
    assert refused["errors"][0]["extensions"]["code"] == "forbidden"


@pytest.mark.usefixtures("runtime")
async def test_preview_renders_a_real_request_or_the_sample(
    gql: Gql, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, bolt = two_tenants
    admin = await token_for(acme, "admin")
    request = await new_request(acme)
    query = """query($id: ID, $body: String) {
      notificationPreview(event: "request.created", channel: "sms", requestId: $id, body: $body) {
        rendered { body } userErrors { field code message }
      }
    }"""
    real = await gql(
        acme, admin, query, {"id": to_global_id("ServiceRequest", request.id), "body": None}
    )
    assert f"#{request.number}" in real["data"]["notificationPreview"]["rendered"]["body"]
    sample = await gql(acme, admin, query, {"body": "{{ customer.name }} / {{ driver.name }}"})
    assert sample["data"]["notificationPreview"]["rendered"]["body"] == "Ann Lee / Dave Ortiz"
    # Another company's request is not found from here.
    foreign = await gql(
        bolt,
        await token_for(bolt, "admin"),
        query,
        {"id": to_global_id("ServiceRequest", request.id), "body": None},
    )
    assert foreign["data"]["notificationPreview"]["userErrors"][0]["field"] == "requestId"


@pytest.mark.usefixtures("runtime")
async def test_preferences_silence_a_channel_and_the_log_says_so(
    gql: Gql, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, bolt = two_tenants
    admin = await token_for(acme, "admin")
    request = await new_request(acme)
    customer = to_global_id("Customer", request.customer)
    turned = await gql(
        acme,
        admin,
        """mutation($id: ID) { setNotificationPreference(event: "*", channel: "sms",
             enabled: false, subjectKind: "customer", subjectId: $id) {
             preference { event channel enabled } userErrors { field } } }""",
        {"id": customer},
    )
    assert turned["data"]["setNotificationPreference"]["preference"] == {
        "event": "*",
        "channel": "sms",
        "enabled": False,
    }
    event = {
        "id": 10_000 + request.id,
        "topic": "request.created",
        "entity": "service_request",
        "entity_id": str(request.id),
        "payload": {"id": request.id, "status": "pending"},
    }
    queued = await planning.plan(acme, [event])
    log = await gql(
        acme,
        admin,
        """query($id: ID) { notifications(requestId: $id, first: 10) {
             nodes { channel status error address } pageInfo { hasNextPage } } }""",
        {"id": to_global_id("ServiceRequest", request.id)},
    )
    nodes = {n["channel"]: n for n in log["data"]["notifications"]["nodes"]}
    assert nodes["sms"]["status"] == "suppressed" and "turned off sms" in nodes["sms"]["error"]
    assert nodes["email"]["status"] == "queued" and len(queued) == 1
    assert log["data"]["notifications"]["pageInfo"]["hasNextPage"] is False
    # A staff member sets their own; a driver may not change a customer's.
    mine = await gql(
        acme,
        await token_for(acme, "dispatcher"),
        'mutation { setNotificationPreference(event: "request.created", channel: "push", '
        "enabled: false) { preference { enabled } userErrors { field } } }",
    )
    assert mine["data"]["setNotificationPreference"]["preference"] == {"enabled": False}
    driver = await gql(
        acme,
        await token_for(acme, "driver"),
        """mutation($id: ID) { setNotificationPreference(event: "*", channel: "sms",
             enabled: true, subjectKind: "customer", subjectId: $id) { userErrors { code } } }""",
        {"id": customer},
    )
    assert "errors" in driver or driver["data"]["setNotificationPreference"]["userErrors"]
    empty = await gql(bolt, await token_for(bolt, "admin"), "{ notifications { nodes { id } } }")
    assert empty["data"]["notifications"]["nodes"] == []


async def test_an_admin_tries_a_plugin_and_sees_dead_letters(
    gql: Gql,
    two_tenants: tuple[TenantInfo, TenantInfo],
    runtime: plugins.PluginRuntime,  # noqa: F811
    twilio: TwilioFake,
    smtp: SmtpFake,
) -> None:
    acme, bolt = two_tenants
    admin, bolt_admin = await token_for(acme, "admin"), await token_for(bolt, "admin")
    await enable_providers(acme, twilio, smtp)
    test = """mutation($name: String!, $to: String) { testPlugin(name: $name, to: $to) {
        result { ok message } userErrors { field code } } }"""
    mail = await gql(acme, admin, test, {"name": "email-smtp", "to": "boss@acme.example"})
    assert mail["data"]["testPlugin"]["result"]["ok"] is True
    assert smtp.messages[-1]["To"] == "boss@acme.example"
    sms = await gql(acme, admin, test, {"name": "sms-twilio", "to": "not a phone"})
    assert sms["data"]["testPlugin"]["userErrors"] == [{"field": "to", "code": "invalid"}]
    maps = await gql(acme, admin, test, {"name": "maps-offline"})
    assert maps["data"]["testPlugin"]["result"]["ok"] and "km" in maps["data"]["testPlugin"][
        "result"]["message"]  # fmt: skip
    # Bolt never configured SMTP: the test says what is missing and sends nothing.
    unset = await gql(bolt, bolt_admin, test, {"name": "email-smtp", "to": "x@bolt.example"})
    result = unset["data"]["testPlugin"]["result"]
    assert result["ok"] is False and "host" in result["message"]
    assert len(smtp.messages) == 1

    entry = {
        "message_id": "m-1",
        "actor": "patone.notifications.send",
        "tenant": acme.slug,
        "args": [acme.slug, 7],
        "reason": "retries exhausted after 8 attempts",
        "error": "SendFailed: notification 7: Twilio 503",
        "retries": 8,
        "failed_at": "2026-11-24T10:00:00+00:00",
        "message": {},
    }
    await get_redis().hset(dead_letter_key(acme.slug), "m-1", json.dumps(entry))
    letters = await gql(acme, admin, "{ deadLetters { messageId actor reason args } }")
    assert letters["data"]["deadLetters"] == [
        {
            "messageId": "m-1",
            "actor": "patone.notifications.send",
            "reason": "retries exhausted after 8 attempts",
            "args": [7],
        }
    ]
    none = await gql(bolt, bolt_admin, "{ deadLetters { messageId } }")
    assert none["data"]["deadLetters"] == []
    missing = await gql(
        bolt,
        bolt_admin,
        'mutation { retryDeadLetter(messageId: "m-1") { retried userErrors { code } } }',
    )
    assert missing["data"]["retryDeadLetter"] == {
        "retried": False,
        "userErrors": [{"code": "not_found"}],
    }
