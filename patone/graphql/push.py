"""Push notifications in the API: the company's public key, and the signed-in person's devices."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.types import Info

from patone.core.domain import push
from patone.core.tables.notifications import PushSubscriptionRow
from patone.graphql.context import Context
from patone.graphql.parts import part
from patone.graphql.types import UserError, attempt


@strawberry.type(description="A browser or app that receives the signed-in person's notifications.")
class PushSubscription:
    endpoint: str
    user_agent: str
    created_at: datetime
    last_used_at: datetime | None

    @classmethod
    def from_row(cls, row: PushSubscriptionRow) -> PushSubscription:
        return cls(
            endpoint=row.endpoint,
            user_agent=row.user_agent,
            created_at=row.created_at,
            last_used_at=row.last_used_at,
        )


@strawberry.input
class PushSubscriptionKeysInput:
    p256dh: str
    auth: str


@strawberry.input(
    description="A browser's PushSubscription (`subscription.toJSON()`), and which browser it is "
    "(the request's User-Agent when left out)."
)
class PushSubscriptionInput:
    endpoint: str
    keys: PushSubscriptionKeysInput
    user_agent: str | None = None


@strawberry.type
class PushSubscriptionPayload:
    subscription: PushSubscription | None
    user_errors: list[UserError]


@strawberry.type
class UnregisterPushSubscriptionPayload:
    removed: bool
    user_errors: list[UserError]


@part("Query", 110)
@strawberry.type
class PushQueries:
    @strawberry.field(
        description="The company's VAPID public key, the `applicationServerKey` to subscribe with."
    )
    async def push_public_key(self, info: Info[Context, None]) -> str:
        return await push.vapid_public_key(info.context.tenant)

    @strawberry.field(description="The signed-in person's devices that receive notifications.")
    async def my_push_subscriptions(self, info: Info[Context, None]) -> list[PushSubscription]:
        ctx = info.context
        rows = await push.list_subscriptions(ctx.tenant, ctx.actor)
        return [PushSubscription.from_row(row) for row in rows]


@part("Mutation", 90)
@strawberry.type
class PushMutations:
    @strawberry.mutation(
        description="Receive notifications on this device (the same endpoint again updates it)."
    )
    async def register_push_subscription(
        self, info: Info[Context, None], input: PushSubscriptionInput
    ) -> PushSubscriptionPayload:
        ctx = info.context
        user_agent = input.user_agent
        if user_agent is None and ctx.request is not None:
            user_agent = ctx.request.headers.get("user-agent", "")
        row, errors = await attempt(
            push.register_subscription(
                ctx.tenant,
                ctx.actor,
                {
                    "endpoint": input.endpoint,
                    "keys": {"p256dh": input.keys.p256dh, "auth": input.keys.auth},
                    "user_agent": user_agent or "",
                },
            )
        )
        return PushSubscriptionPayload(
            subscription=PushSubscription.from_row(row) if row else None, user_errors=errors
        )

    @strawberry.mutation(description="Stop notifications on one of the signed-in person's devices.")
    async def unregister_push_subscription(
        self, info: Info[Context, None], endpoint: str
    ) -> UnregisterPushSubscriptionPayload:
        ctx = info.context
        _, errors = await attempt(push.unregister_subscription(ctx.tenant, ctx.actor, endpoint))
        return UnregisterPushSubscriptionPayload(removed=not errors, user_errors=errors)
