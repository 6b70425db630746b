"""What a company manages about its notifications: rules, templates, preferences, the log."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import dramatiq

from patone.core.common.activity import record
from patone.core.common.paging import Key, Page, Window, fetch_page
from patone.core.common.permissions import Actor, require
from patone.core.common.rows import fetch_records
from patone.core.notifications import templates
from patone.core.notifications.planning import request_context, stored_templates
from patone.core.notifications.sending import enqueue_sends, parse_message_id
from patone.core.runtime.db import engine
from patone.core.runtime.errors import NotFound, UserError
from patone.core.tables.notifications import (
    NotificationPreferenceRow,
    NotificationRow,
    NotificationRuleRow,
)
from patone.tenants.isolation import TenantRef, tenant_transaction

# What a provider's delivery report can turn a notification into (normalised by its plugin).
REPORTED = {"sent", "delivered", "undelivered"}


def _check_choice(value: str, allowed: Any, field: str) -> None:
    if value not in allowed:
        raise UserError("invalid", f"must be one of {', '.join(sorted(allowed))}", field)


# --- rules ---------------------------------------------------------------------------------------


async def list_rules(tenant: TenantRef, actor: Actor) -> list[NotificationRuleRow]:
    require(actor, "settings.manage")
    async with tenant_transaction(tenant):
        return await fetch_records(
            NotificationRuleRow,
            f"SELECT {NotificationRuleRow.columns()} FROM notification_rules "
            "ORDER BY event, recipient, channel",
        )


async def set_rule(
    tenant: TenantRef, actor: Actor, event: str, recipient: str, channel: str, enabled: bool
) -> NotificationRuleRow:
    """Turn "notify <recipient> of <event> by <channel>" on or off for the company."""
    require(actor, "settings.manage")
    _check_choice(event, templates.EVENTS, "event")
    _check_choice(recipient, templates.RECIPIENTS, "recipient")
    _check_choice(channel, templates.CHANNELS, "channel")
    async with tenant_transaction(tenant):
        rows = await engine.fetch(
            "INSERT INTO notification_rules (event, recipient, channel, enabled) "
            "VALUES ($1, $2, $3, $4) ON CONFLICT (event, recipient, channel) DO UPDATE "
            "SET enabled = EXCLUDED.enabled, updated_at = now() "
            f"RETURNING {NotificationRuleRow.columns()}",
            event,
            recipient,
            channel,
            enabled,
        )
        rule = NotificationRuleRow.of(rows[0])
        await record(
            actor, "notification_rule", rule.id, "notification_rule.changed", None, rule.as_dict()
        )
    return rule


# --- templates -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EffectiveTemplate:
    event: str
    channel: str
    subject: str
    body: str
    html: str
    is_default: bool


async def list_templates(tenant: TenantRef, actor: Actor) -> list[EffectiveTemplate]:
    """Every event and channel text the company sends: its own where it wrote one."""
    require(actor, "settings.manage")
    async with tenant_transaction(tenant):
        rows = await engine.fetch(
            "SELECT event, channel, subject, body, html FROM notification_templates"
        )
    own = {(r["event"], r["channel"]): r for r in rows}
    listed = []
    for event in templates.EVENTS:
        for channel in templates.CHANNELS:
            mine = own.get((event, channel))
            text = (
                templates.Template(mine["subject"], mine["body"], mine["html"])
                if mine
                else templates.default(event, channel)
            )
            listed.append(
                EffectiveTemplate(
                    event, channel, text.subject, text.body, text.html, is_default=mine is None
                )
            )
    return listed


async def preview_template(
    tenant: TenantRef,
    actor: Actor,
    event: str,
    channel: str,
    template: templates.Template | None = None,
    *,
    request_id: int | None = None,
) -> templates.Rendered:
    """The text as it would be sent: of `template` (or the company's current one), with a real
    request's data or the sample. Errors name the field and line."""
    require(actor, "settings.manage")
    _check_choice(event, templates.EVENTS, "event")
    _check_choice(channel, templates.CHANNELS, "channel")
    context: dict[str, Any] = templates.SAMPLE
    async with tenant_transaction(tenant):
        if template is None:
            template = (await stored_templates(event)).get(channel) or templates.default(
                event, channel
            )
        if request_id is not None:
            found = await request_context(tenant, request_id, event)
            if found is None:
                raise NotFound("not_found", "no such request", "requestId")
            context = found[0]
            if context["driver"] is None:  # a preview shows what the driver part would say
                context = {**context, "driver": templates.SAMPLE["driver"]}
    return templates.check(template, channel, context)


async def save_template(
    tenant: TenantRef, actor: Actor, event: str, channel: str, template: templates.Template
) -> EffectiveTemplate:
    """Replace the company's text for an event and channel (checked first)."""
    require(actor, "settings.manage")
    _check_choice(event, templates.EVENTS, "event")
    _check_choice(channel, templates.CHANNELS, "channel")
    templates.check(template, channel)
    async with tenant_transaction(tenant):
        rows = await engine.fetch(
            "INSERT INTO notification_templates (event, channel, subject, body, html) "
            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (event, channel) DO UPDATE SET "
            "subject = EXCLUDED.subject, body = EXCLUDED.body, html = EXCLUDED.html, "
            "updated_at = now() RETURNING id",
            event,
            channel,
            template.subject,
            template.body,
            template.html,
        )
        await record(
            actor,
            "notification_template",
            rows[0]["id"],
            "notification_template.saved",
            None,
            {"event": event, "channel": channel, "subject": template.subject},
        )
    return EffectiveTemplate(event, channel, template.subject, template.body, template.html, False)


async def reset_template(
    tenant: TenantRef, actor: Actor, event: str, channel: str
) -> EffectiveTemplate:
    """Go back to the built-in text."""
    require(actor, "settings.manage")
    _check_choice(event, templates.EVENTS, "event")
    _check_choice(channel, templates.CHANNELS, "channel")
    async with tenant_transaction(tenant):
        await engine.execute(
            "DELETE FROM notification_templates WHERE event = $1 AND channel = $2", event, channel
        )
    text = templates.default(event, channel)
    return EffectiveTemplate(event, channel, text.subject, text.body, text.html, True)


# --- preferences ---------------------------------------------------------------------------------


def _may_edit_preferences(actor: Actor, subject_kind: str, subject_id: int) -> None:
    if subject_kind == "user" and actor.kind == "user" and actor.id == str(subject_id):
        return  # everyone chooses for themselves
    require(actor, "customers.manage" if subject_kind == "customer" else "users.manage")


async def preferences(
    tenant: TenantRef, actor: Actor, subject_kind: str, subject_id: int
) -> list[NotificationPreferenceRow]:
    """The choices a staff member or customer made (anything not listed is on)."""
    _check_choice(subject_kind, ("user", "customer"), "subjectKind")
    _may_edit_preferences(actor, subject_kind, subject_id)
    async with tenant_transaction(tenant):
        return await fetch_records(
            NotificationPreferenceRow,
            f"SELECT {NotificationPreferenceRow.columns()} FROM notification_preferences "
            "WHERE subject_kind = $1 AND subject_id = $2 ORDER BY event, channel",
            subject_kind,
            subject_id,
        )


async def set_preference(
    tenant: TenantRef,
    actor: Actor,
    subject_kind: str,
    subject_id: int,
    event: str,
    channel: str,
    enabled: bool,
) -> NotificationPreferenceRow:
    """Turn one event (or "*": every event) on or off on one channel for one person."""
    _check_choice(subject_kind, ("user", "customer"), "subjectKind")
    _may_edit_preferences(actor, subject_kind, subject_id)
    if event != "*":
        _check_choice(event, templates.EVENTS, "event")
    _check_choice(channel, templates.CHANNELS, "channel")
    table = "users" if subject_kind == "user" else "customers"
    async with tenant_transaction(tenant):
        exists = await engine.fetch(f"SELECT 1 FROM {table} WHERE id = $1", subject_id)
        if not exists:
            raise NotFound("not_found", f"no such {subject_kind}", "subjectId")
        rows = await engine.fetch(
            "INSERT INTO notification_preferences "
            "(subject_kind, subject_id, event, channel, enabled) VALUES ($1, $2, $3, $4, $5) "
            "ON CONFLICT (subject_kind, subject_id, event, channel) DO UPDATE SET "
            "enabled = EXCLUDED.enabled, updated_at = now() "
            f"RETURNING {NotificationPreferenceRow.columns()}",
            subject_kind,
            subject_id,
            event,
            channel,
            enabled,
        )
    return NotificationPreferenceRow.of(rows[0])


# --- the delivery log ----------------------------------------------------------------------------


async def list_notifications(
    tenant: TenantRef,
    actor: Actor,
    *,
    request_id: int | None = None,
    status: str | None = None,
    channel: str | None = None,
    first: int | None = 50,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> Page[NotificationRow]:
    """The delivery log, newest first, a page at a time (forwards or backwards)."""
    require(actor, "requests.view")
    page = await fetch_page(
        tenant,
        columns=NotificationRow.columns(),
        source="notifications",
        where=[
            "($1::varchar IS NULL OR (entity = 'service_request' AND entity_id = $1))",
            "($2::varchar IS NULL OR status = $2)",
            "($3::varchar IS NULL OR channel = $3)",
        ],
        args=[str(request_id) if request_id is not None else None, status, channel],
        keys=(Key("id", "bigint"),),
        descending=True,
        window=Window(first=first, after=after, last=last, before=before),
    )
    return page.map(NotificationRow.of)


async def retry_notification(
    tenant: TenantRef, actor: Actor, notification_id: int, *, broker: dramatiq.Broker | None = None
) -> NotificationRow:
    """Send a notification that ended without reaching anyone once more."""
    require(actor, "settings.manage")
    async with tenant_transaction(tenant):
        rows = await engine.fetch(
            "UPDATE notifications SET status = 'queued', error = '', updated_at = now() "
            "WHERE id = $1 AND status IN ('dead', 'failed', 'unknown', 'no_provider', "
            "'no_device', 'undelivered') RETURNING " + NotificationRow.columns(),
            notification_id,
        )
        if not rows:
            exists = await engine.fetch(
                "SELECT status FROM notifications WHERE id = $1", notification_id
            )
            if not exists:
                raise NotFound("not_found", "no such notification", "id")
            raise UserError("not_retryable", f"the notification is {exists[0]['status']}", "id")
        await record(actor, "notification", notification_id, "notification.retried", None, None)
    await asyncio.to_thread(
        enqueue_sends, broker or dramatiq.get_broker(), tenant, [notification_id]
    )
    return NotificationRow.of(rows[0])


async def record_provider_status(
    tenant: TenantRef,
    *,
    provider: str,
    provider_id: str,
    status: str,
    provider_status: str,
    message_id: str = "",
    error: str = "",
) -> bool:
    """A provider's delivery report (Twilio's status callback, ...); False if no notification
    matches. `status` is normalised: "sent", "delivered" or "undelivered".

    A report for a message whose sending attempt ended ambiguously (answer lost) proves the
    provider took it: the notification becomes sent and its pending retry finds it done.
    """
    if status not in REPORTED:
        raise UserError("invalid", f"must be one of {', '.join(sorted(REPORTED))}", "status")
    notification_id = parse_message_id(tenant.slug, message_id) if message_id else None
    async with tenant_transaction(tenant):
        rows = await engine.fetch(
            "UPDATE notifications SET provider_status = $4, provider = $5, "
            "provider_id = CASE WHEN provider_id = '' THEN $6 ELSE provider_id END, "
            "status = CASE "
            "  WHEN $3 = 'sent' AND status IN ('delivered', 'undelivered') THEN status "
            "  ELSE $3 END, "
            "error = CASE WHEN $7 = '' THEN error ELSE $7 END, "
            "sent_at = COALESCE(sent_at, now()), updated_at = now() "
            "WHERE id = $1 OR ($1 IS NULL AND provider = $5 AND provider_id = $2) RETURNING id",
            notification_id,
            provider_id,
            status,
            provider_status[:40],
            provider,
            provider_id[:200],
            error[:2000],
        )
    return bool(rows)
