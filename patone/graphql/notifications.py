"""Notifications in the API: rules, templates with preview, preferences, the delivery log, and
the jobs that failed for good (dead letters)."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from patone.core.common.permissions import require
from patone.core.notifications import admin, templates
from patone.core.runtime.errors import UserError as DomainUserError
from patone.core.tables.notifications import (
    NotificationPreferenceRow,
    NotificationRow,
    NotificationRuleRow,
)
from patone.core.work import jobs
from patone.graphql.context import Context
from patone.graphql.ids import pk_of
from patone.graphql.parts import part
from patone.graphql.types import (
    Connection,
    UserError,
    attempt,
    connection,
    gid,
    user_errors,
    window,
)


@strawberry.type(description="An event the company can notify people of.")
class NotificationEvent:
    key: str
    title: str


@strawberry.type(description="Notify <recipient> of <event> by <channel> (on or off).")
class NotificationRule:
    event: str
    recipient: str = strawberry.field(description="customer, driver or dispatchers")
    channel: str = strawberry.field(description="email, sms or push")
    enabled: bool

    @classmethod
    def from_row(cls, row: NotificationRuleRow) -> NotificationRule:
        return cls(
            event=row.event, recipient=row.recipient, channel=row.channel, enabled=row.enabled
        )


@strawberry.type(description="The text sent for an event on a channel (Jinja2).")
class NotificationTemplate:
    event: str
    channel: str
    subject: str
    body: str
    html: str
    is_default: bool = strawberry.field(description="The built-in text (the company wrote none).")


@strawberry.type
class RenderedNotification:
    subject: str
    body: str
    html: str


@strawberry.type(description="One person's choice for an event ('*': every event) on a channel.")
class NotificationPreference:
    event: str
    channel: str
    enabled: bool

    @classmethod
    def from_row(cls, row: NotificationPreferenceRow) -> NotificationPreference:
        return cls(event=row.event, channel=row.channel, enabled=row.enabled)


@strawberry.type(description="One message to one person: the delivery log.")
class Notification:
    id: strawberry.ID
    event: str
    request_id: strawberry.ID | None
    recipient_kind: str
    recipient_id: int
    channel: str
    address: str
    subject: str
    body: str
    status: str = strawberry.field(
        description="queued, sending, retrying, sent, logged, delivered, undelivered, "
        "opted_out, failed, dead, unknown, no_address, no_provider, no_device or suppressed"
    )
    provider: str
    provider_id: str
    provider_status: str
    attempts: int
    ambiguous_attempts: int = strawberry.field(
        description="Attempts whose outcome was unknown (answer lost, time-out): the provider "
        "may have sent the message more than once."
    )
    error: str
    created_at: datetime
    sent_at: datetime | None

    @classmethod
    def from_row(cls, row: NotificationRow) -> Notification:
        request = (
            gid("ServiceRequest", int(row.entity_id)) if row.entity == "service_request" else None
        )
        return cls(
            id=gid("Notification", row.id),
            event=row.event,
            request_id=request,
            recipient_kind=row.recipient_kind,
            recipient_id=row.recipient_id,
            channel=row.channel,
            address=row.address,
            subject=row.subject,
            body=row.body,
            status=row.status,
            provider=row.provider,
            provider_id=row.provider_id,
            provider_status=row.provider_status,
            attempts=row.attempts,
            ambiguous_attempts=row.ambiguous_attempts,
            error=row.error,
            created_at=row.created_at,
            sent_at=row.sent_at,
        )


@strawberry.type(description="A background job that failed for good.")
class DeadLetter:
    message_id: str
    actor: str
    reason: str
    error: str
    retries: int
    failed_at: str
    args: JSON


@strawberry.type
class NotificationRulePayload:
    rule: NotificationRule | None
    user_errors: list[UserError]


@strawberry.type
class NotificationTemplatePayload:
    template: NotificationTemplate | None
    user_errors: list[UserError]


@strawberry.type
class NotificationPreviewPayload:
    rendered: RenderedNotification | None
    user_errors: list[UserError]


@strawberry.type
class NotificationPreferencePayload:
    preference: NotificationPreference | None
    user_errors: list[UserError]


@strawberry.type
class NotificationPayload:
    notification: Notification | None
    user_errors: list[UserError]


@strawberry.type
class RetryPayload:
    retried: bool
    user_errors: list[UserError]


def _template(found: admin.EffectiveTemplate) -> NotificationTemplate:
    return NotificationTemplate(
        event=found.event,
        channel=found.channel,
        subject=found.subject,
        body=found.body,
        html=found.html,
        is_default=found.is_default,
    )


def _subject(ctx: Context, kind: str | None, subject_id: strawberry.ID | None) -> tuple[str, int]:
    """Whose preferences: a customer or user by id, else the signed-in staff member."""
    if subject_id is None:
        if ctx.actor.kind != "user":  # a partner or customer has no preferences of its own
            raise DomainUserError(
                "required", "Name whose preferences these are (subjectId).", "subjectId"
            )
        return "user", int(ctx.actor.id)
    if kind == "customer":
        return "customer", pk_of(subject_id, "Customer", "subjectId")
    return "user", pk_of(subject_id, "User", "subjectId")


@part("Query", 120)
@strawberry.type
class NotificationQueries:
    @strawberry.field(description="The events a company can notify people of.")
    def notification_events(self) -> list[NotificationEvent]:
        return [NotificationEvent(key=k, title=t) for k, t in templates.EVENTS.items()]

    @strawberry.field
    async def notification_rules(self, info: Info[Context, None]) -> list[NotificationRule]:
        rows = await admin.list_rules(info.context.tenant, info.context.actor)
        return [NotificationRule.from_row(r) for r in rows]

    @strawberry.field(description="Every event and channel text, the company's own or built in.")
    async def notification_templates(self, info: Info[Context, None]) -> list[NotificationTemplate]:
        found = await admin.list_templates(info.context.tenant, info.context.actor)
        return [_template(t) for t in found]

    @strawberry.field(
        description="A text as it would be sent: the given template (or the company's "
        "current one) with a real request's data or sample data."
    )
    async def notification_preview(
        self,
        info: Info[Context, None],
        event: str,
        channel: str,
        subject: str | None = None,
        body: str | None = None,
        html: str | None = None,
        request_id: strawberry.ID | None = None,
    ) -> NotificationPreviewPayload:
        ctx = info.context
        try:
            pk = pk_of(request_id, "ServiceRequest", "requestId") if request_id else None
        except DomainUserError as error:
            return NotificationPreviewPayload(rendered=None, user_errors=user_errors(error))
        template = (
            templates.Template(subject or "", body or "", html or "") if body is not None else None
        )
        rendered, errors = await attempt(
            admin.preview_template(ctx.tenant, ctx.actor, event, channel, template, request_id=pk)
        )
        return NotificationPreviewPayload(
            rendered=RenderedNotification(
                subject=rendered.subject, body=rendered.body, html=rendered.html
            )
            if rendered
            else None,
            user_errors=errors,
        )

    @strawberry.field(
        description="Someone's notification choices (anything not listed is on); yours when "
        "no subject is given."
    )
    async def notification_preferences(
        self,
        info: Info[Context, None],
        subject_kind: str | None = None,
        subject_id: strawberry.ID | None = None,
    ) -> list[NotificationPreference]:
        ctx = info.context
        kind, pk = _subject(ctx, subject_kind, subject_id)
        rows = await admin.preferences(ctx.tenant, ctx.actor, kind, pk)
        return [NotificationPreference.from_row(r) for r in rows]

    @strawberry.field(description="The delivery log, newest first.")
    async def notifications(
        self,
        info: Info[Context, None],
        first: int = 50,
        after: str | None = None,
        request_id: strawberry.ID | None = None,
        status: str | None = None,
        channel: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[Notification]:
        ctx = info.context
        page = await admin.list_notifications(
            ctx.tenant,
            ctx.actor,
            request_id=pk_of(request_id, "ServiceRequest", "requestId") if request_id else None,
            status=status,
            channel=channel,
            **vars(window(first, after, last, before)),
        )
        return connection(page, Notification.from_row)

    @strawberry.field(description="Background jobs of this company that failed for good.")
    async def dead_letters(self, info: Info[Context, None]) -> list[DeadLetter]:
        require(info.context.actor, "settings.manage")
        entries = await jobs.list_dead_letters(info.context.tenant.slug)
        return [
            DeadLetter(
                message_id=e["message_id"],
                actor=e["actor"],
                reason=e["reason"],
                error=e["error"],
                retries=e["retries"],
                failed_at=e["failed_at"],
                args=JSON(e["args"][1:]),  # the tenant slug is implied
            )
            for e in entries
        ]


@part("Mutation", 100)
@strawberry.type
class NotificationMutations:
    @strawberry.mutation(description="Turn one notification rule on or off.")
    async def set_notification_rule(
        self, info: Info[Context, None], event: str, recipient: str, channel: str, enabled: bool
    ) -> NotificationRulePayload:
        ctx = info.context
        row, errors = await attempt(
            admin.set_rule(ctx.tenant, ctx.actor, event, recipient, channel, enabled)
        )
        rule = NotificationRule.from_row(row) if row else None
        return NotificationRulePayload(rule=rule, user_errors=errors)

    @strawberry.mutation(description="Save the company's text for an event and channel.")
    async def save_notification_template(
        self,
        info: Info[Context, None],
        event: str,
        channel: str,
        body: str,
        subject: str = "",
        html: str = "",
    ) -> NotificationTemplatePayload:
        ctx = info.context
        saved, errors = await attempt(
            admin.save_template(
                ctx.tenant, ctx.actor, event, channel, templates.Template(subject, body, html)
            )
        )
        return NotificationTemplatePayload(
            template=_template(saved) if saved else None, user_errors=errors
        )

    @strawberry.mutation(description="Go back to the built-in text.")
    async def reset_notification_template(
        self, info: Info[Context, None], event: str, channel: str
    ) -> NotificationTemplatePayload:
        ctx = info.context
        found, errors = await attempt(admin.reset_template(ctx.tenant, ctx.actor, event, channel))
        return NotificationTemplatePayload(
            template=_template(found) if found else None, user_errors=errors
        )

    @strawberry.mutation(
        description="Turn an event ('*': all) on or off on a channel, for yourself or (staff "
        "who manage them) a customer or another user."
    )
    async def set_notification_preference(
        self,
        info: Info[Context, None],
        event: str,
        channel: str,
        enabled: bool,
        subject_kind: str | None = None,
        subject_id: strawberry.ID | None = None,
    ) -> NotificationPreferencePayload:
        ctx = info.context
        try:
            kind, pk = _subject(ctx, subject_kind, subject_id)
        except DomainUserError as error:
            return NotificationPreferencePayload(preference=None, user_errors=user_errors(error))
        row, errors = await attempt(
            admin.set_preference(ctx.tenant, ctx.actor, kind, pk, event, channel, enabled)
        )
        preference = NotificationPreference.from_row(row) if row else None
        return NotificationPreferencePayload(preference=preference, user_errors=errors)

    @strawberry.mutation(description="Send a notification that reached nobody once more.")
    async def retry_notification(
        self, info: Info[Context, None], id: strawberry.ID
    ) -> NotificationPayload:
        ctx = info.context
        try:
            pk = pk_of(id, "Notification")
        except DomainUserError as error:
            return NotificationPayload(notification=None, user_errors=user_errors(error))
        row, errors = await attempt(admin.retry_notification(ctx.tenant, ctx.actor, pk))
        return NotificationPayload(
            notification=Notification.from_row(row) if row else None, user_errors=errors
        )

    @strawberry.mutation(description="Run a dead-lettered job again (same message id).")
    async def retry_dead_letter(self, info: Info[Context, None], message_id: str) -> RetryPayload:
        ctx = info.context
        require(ctx.actor, "settings.manage")
        retried = await jobs.retry_dead_letter(ctx.tenant.slug, message_id)
        if not retried:
            return RetryPayload(
                retried=False,
                user_errors=[
                    UserError(field="messageId", code="not_found", message="no such dead letter")
                ],
            )
        return RetryPayload(retried=True, user_errors=[])
