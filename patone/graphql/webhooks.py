"""Outbound webhooks in the API: endpoints, their secrets (shown once), the delivery log,
replays and test events. The rules live in `patone.core.domain.webhooks`."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from patone.core.domain import webhooks as service
from patone.core.tables.webhooks import (
    LoggedDelivery,
    WebhookAttemptRow,
    WebhookEndpointRow,
)
from patone.graphql.context import Context
from patone.graphql.ids import pk_of
from patone.graphql.parts import part
from patone.graphql.types import (
    Connection,
    Node,
    UserError,
    attempt,
    connection,
    gid,
    given,
    window,
)
from patone.plugins.secrets import MASK


@strawberry.enum
class WebhookDeliveryStatus(Enum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DEAD = "dead"


@strawberry.type(description="Where a company's events are POSTed, signed (Standard Webhooks).")
class WebhookEndpoint(Node):
    url: str
    description: str
    event_types: list[str] = strawberry.field(
        description="The event types sent here (`request.*` for a whole family); empty: all."
    )
    enabled: bool
    secret: str = strawberry.field(
        description="Always masked: the secret is shown once, when created or rotated."
    )
    failure_streak: int = strawberry.field(description="Failed requests since the last success.")
    failing_since: datetime | None
    last_success_at: datetime | None
    last_failure_at: datetime | None
    disabled_at: datetime | None
    disabled_reason: str
    previous_secret_expires_at: datetime | None = strawberry.field(
        description="Until when the secret before the last rotation still signs requests."
    )
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: WebhookEndpointRow) -> WebhookEndpoint:
        return cls(
            id=gid("WebhookEndpoint", row.id),
            url=row.url,
            description=row.description,
            event_types=list(row.event_types),
            enabled=row.enabled,
            secret=MASK,
            failure_streak=row.failure_streak,
            failing_since=row.failing_since,
            last_success_at=row.last_success_at,
            last_failure_at=row.last_failure_at,
            disabled_at=row.disabled_at,
            disabled_reason=row.disabled_reason,
            previous_secret_expires_at=row.previous_secret_expires_at,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


@strawberry.type(description="One HTTP request made for a webhook delivery.")
class WebhookAttempt:
    attempt: int
    trigger: str = strawberry.field(description="event, retry, replay or test.")
    response_status: int | None
    response_body: str = strawberry.field(description="The first 2 KB of the response.")
    error: str
    duration_ms: int
    created_at: datetime

    @classmethod
    def from_row(cls, row: WebhookAttemptRow) -> WebhookAttempt:
        return cls(
            attempt=row.attempt,
            trigger=row.trigger,
            response_status=row.response_status,
            response_body=row.response_body,
            error=row.error,
            duration_ms=row.duration_ms,
            created_at=row.created_at,
        )


@strawberry.type(description="One event for one endpoint: what was sent and how it went.")
class WebhookDelivery(Node):
    endpoint_id: strawberry.ID
    webhook_id: str = strawberry.field(
        description="The `webhook-id` header, the same on every retry and replay."
    )
    event_id: int | None
    event_type: str
    payload: JSON
    status: WebhookDeliveryStatus
    attempts: int
    response_status: int | None
    response_body: str
    error: str
    duration_ms: int | None
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    succeeded_at: datetime | None
    created_at: datetime
    attempt_log: list[WebhookAttempt]

    @classmethod
    def from_row(cls, logged: LoggedDelivery) -> WebhookDelivery:
        row = logged.delivery
        return cls(
            id=gid("WebhookDelivery", row.id),
            endpoint_id=gid("WebhookEndpoint", row.endpoint_id),
            webhook_id=row.message_id,
            event_id=row.event_id,
            event_type=row.event_type,
            payload=JSON(row.payload),
            status=WebhookDeliveryStatus(row.status),
            attempts=row.attempts,
            response_status=row.response_status,
            response_body=row.response_body,
            error=row.error,
            duration_ms=row.duration_ms,
            next_attempt_at=row.next_attempt_at,
            last_attempt_at=row.last_attempt_at,
            succeeded_at=row.succeeded_at,
            created_at=row.created_at,
            attempt_log=[WebhookAttempt.from_row(a) for a in logged.attempt_log],
        )


@strawberry.input
class CreateWebhookEndpointInput:
    url: str
    description: str = ""
    event_types: list[str] = strawberry.field(default_factory=list)
    enabled: bool = True


@strawberry.input
class UpdateWebhookEndpointInput:
    url: str | None = strawberry.UNSET
    description: str | None = strawberry.UNSET
    event_types: list[str] | None = strawberry.UNSET
    enabled: bool | None = strawberry.UNSET


@strawberry.type
class WebhookEndpointPayload:
    endpoint: WebhookEndpoint | None
    user_errors: list[UserError]


@strawberry.type
class WebhookSecretPayload:
    endpoint: WebhookEndpoint | None
    secret: str | None = strawberry.field(
        description="The signing secret (`whsec_...`): shown this once, store it now."
    )
    user_errors: list[UserError]


@strawberry.type
class DeleteWebhookEndpointPayload:
    deleted_id: strawberry.ID | None
    user_errors: list[UserError]


@strawberry.type
class WebhookDeliveryPayload:
    delivery: WebhookDelivery | None
    user_errors: list[UserError]


def _secret_payload(
    result: service.EndpointWithSecret | None, errors: list[UserError]
) -> WebhookSecretPayload:
    return WebhookSecretPayload(
        endpoint=WebhookEndpoint.from_row(result.endpoint) if result else None,
        secret=result.secret if result else None,
        user_errors=errors,
    )


def _delivery_payload(
    row: LoggedDelivery | None, errors: list[UserError]
) -> WebhookDeliveryPayload:
    return WebhookDeliveryPayload(
        delivery=WebhookDelivery.from_row(row) if row else None, user_errors=errors
    )


@part("Query", 130)
@strawberry.type
class WebhookQueries:
    @strawberry.field(description="The company's webhook endpoints (secrets masked).")
    async def webhook_endpoints(self, info: Info[Context, None]) -> list[WebhookEndpoint]:
        ctx = info.context
        rows = await service.list_endpoints(ctx.tenant, ctx.actor)
        return [WebhookEndpoint.from_row(r) for r in rows]

    @strawberry.field(description="Webhook deliveries with their attempts, newest first.")
    async def webhook_deliveries(
        self,
        info: Info[Context, None],
        endpoint_id: strawberry.ID | None = None,
        status: WebhookDeliveryStatus | None = None,
        first: int = 50,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[WebhookDelivery]:
        ctx = info.context
        page = await service.list_deliveries(
            ctx.tenant,
            ctx.actor,
            endpoint_id=pk_of(endpoint_id, "WebhookEndpoint", "endpointId")
            if endpoint_id
            else None,
            status=status.value if status else None,
            **vars(window(first, after, last, before)),
        )
        return connection(page, WebhookDelivery.from_row)


@part("Mutation", 110)
@strawberry.type
class WebhookMutations:
    @strawberry.mutation(description="Add a webhook endpoint; its secret is in the payload, once.")
    async def create_webhook_endpoint(
        self, info: Info[Context, None], input: CreateWebhookEndpointInput
    ) -> WebhookSecretPayload:
        ctx = info.context
        return _secret_payload(
            *await attempt(service.create_endpoint(ctx.tenant, ctx.actor, given(input)))
        )

    @strawberry.mutation(description="Change an endpoint; turning it back on clears its failures.")
    async def update_webhook_endpoint(
        self, info: Info[Context, None], id: strawberry.ID, input: UpdateWebhookEndpointInput
    ) -> WebhookEndpointPayload:
        ctx = info.context

        async def run() -> WebhookEndpointRow:
            return await service.update_endpoint(
                ctx.tenant, ctx.actor, pk_of(id, "WebhookEndpoint"), given(input)
            )

        row, errors = await attempt(run())
        return WebhookEndpointPayload(
            endpoint=WebhookEndpoint.from_row(row) if row else None, user_errors=errors
        )

    @strawberry.mutation(description="Remove an endpoint and its delivery log.")
    async def delete_webhook_endpoint(
        self, info: Info[Context, None], id: strawberry.ID
    ) -> DeleteWebhookEndpointPayload:
        ctx = info.context

        async def run() -> WebhookEndpointRow:
            return await service.delete_endpoint(
                ctx.tenant, ctx.actor, pk_of(id, "WebhookEndpoint")
            )

        row, errors = await attempt(run())
        return DeleteWebhookEndpointPayload(
            deleted_id=gid("WebhookEndpoint", row.id) if row else None, user_errors=errors
        )

    @strawberry.mutation(
        description="Give an endpoint a new secret (in the payload, once); the old one keeps "
        "signing beside it for 24 hours."
    )
    async def rotate_webhook_secret(
        self, info: Info[Context, None], id: strawberry.ID
    ) -> WebhookSecretPayload:
        ctx = info.context

        async def run() -> service.EndpointWithSecret:
            return await service.rotate_secret(ctx.tenant, ctx.actor, pk_of(id, "WebhookEndpoint"))

        return _secret_payload(*await attempt(run()))

    @strawberry.mutation(
        description="Send a delivery again with the same webhook-id, whatever became of it."
    )
    async def replay_webhook_delivery(
        self, info: Info[Context, None], id: strawberry.ID
    ) -> WebhookDeliveryPayload:
        ctx = info.context

        async def run() -> LoggedDelivery:
            return await service.replay_delivery(
                ctx.tenant, ctx.actor, pk_of(id, "WebhookDelivery")
            )

        return _delivery_payload(*await attempt(run()))

    @strawberry.mutation(description="Queue a `webhook.test` event to one endpoint.")
    async def send_test_webhook(
        self, info: Info[Context, None], endpoint_id: strawberry.ID
    ) -> WebhookDeliveryPayload:
        ctx = info.context

        async def run() -> LoggedDelivery:
            return await service.send_test_event(
                ctx.tenant, ctx.actor, pk_of(endpoint_id, "WebhookEndpoint", "endpointId")
            )

        return _delivery_payload(*await attempt(run()))
