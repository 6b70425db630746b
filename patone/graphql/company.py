"""The company in the API: who am I, settings, prices, staff and roles."""

from __future__ import annotations

from datetime import date, datetime

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from patone.core.common import activity
from patone.core.domain import company, documents, reports, service_types
from patone.core.identity import credentials, users
from patone.core.tables.company import ActivityRow, DocumentRow
from patone.core.tables.identity import UserRow
from patone.graphql.context import Context
from patone.graphql.ids import pk_of, to_global_id
from patone.graphql.parts import part
from patone.graphql.reports import Report, report_of
from patone.graphql.types import (
    Connection,
    Node,
    Role,
    ServiceType,
    User,
    UserError,
    attempt,
    connection,
    gid,
    given,
    window,
)


@strawberry.type(description="Who is calling, for which company, allowed to do what.")
class Viewer:
    tenant: str
    company_name: str
    user_id: strawberry.ID | None
    role: str | None
    permissions: list[str]


@strawberry.input
class SettingsInput:
    company_name: str | None = strawberry.UNSET
    company_phone: str | None = strawberry.UNSET
    company_email: str | None = strawberry.UNSET
    company_address: str | None = strawberry.UNSET
    units: str | None = strawberry.UNSET
    currency: str | None = strawberry.UNSET
    time_zone: str | None = strawberry.UNSET
    business_hours: JSON | None = strawberry.UNSET
    positions_retention_days: int | None = strawberry.UNSET


@strawberry.input
class ServiceTypeInput:
    name: str | None = strawberry.UNSET
    base_price: int | None = strawberry.UNSET
    per_distance_price: int | None = strawberry.UNSET
    after_hours_surcharge: int | None = strawberry.UNSET
    required_skills: list[str] | None = strawberry.UNSET
    active: bool | None = strawberry.UNSET


@strawberry.input
class CreateUserInput:
    email: str
    name: str
    role: str


@strawberry.input
class UpdateUserInput:
    name: str | None = strawberry.UNSET
    role: str | None = strawberry.UNSET
    active: bool | None = strawberry.UNSET
    must_change_password: bool | None = strawberry.UNSET


@strawberry.type
class SettingsPayload:
    settings: JSON | None
    user_errors: list[UserError]


@strawberry.type
class ServiceTypePayload:
    service_type: ServiceType | None
    user_errors: list[UserError]


@strawberry.type
class UserPayload:
    user: User | None
    user_errors: list[UserError]
    setup_link: str | None = strawberry.field(
        default=None,
        description="createUser only: the new member's one-time link to choose a password "
        "(shown once; `patone users setup-link` issues a fresh one).",
    )


@strawberry.type
class RolePayload:
    role: Role | None
    user_errors: list[UserError]


@part("Query", 60)
@strawberry.type
class CompanyQueries:
    @strawberry.field
    async def viewer(self, info: Info[Context, None]) -> Viewer:
        ctx = info.context

        name = (await company.get_settings(ctx.tenant)).get("company.name", ctx.tenant.slug)
        return Viewer(
            tenant=ctx.tenant.slug,
            company_name=str(name),
            user_id=strawberry.ID(to_global_id("User", int(ctx.actor.id)))
            if ctx.actor.kind == "user"
            else None,
            role=ctx.actor.role,
            permissions=sorted(ctx.actor.permissions),
        )

    @strawberry.field(description="Company settings: profile, units, currency, time zone, hours.")
    async def settings(self, info: Info[Context, None]) -> JSON:
        return JSON(await company.get_settings(info.context.tenant))

    @strawberry.field(description="The price list.")
    async def service_types(
        self, info: Info[Context, None], include_inactive: bool = False
    ) -> list[ServiceType]:
        rows = await service_types.list_service_types(
            info.context.tenant, include_inactive=include_inactive
        )
        info.context.loaders.prime("service_type", rows)
        return [ServiceType.from_row(r) for r in rows]

    @strawberry.field
    async def users(self, info: Info[Context, None]) -> list[User]:
        return [
            User.from_row(r)
            for r in await users.list_users(info.context.tenant, info.context.actor)
        ]

    @strawberry.field
    async def roles(self, info: Info[Context, None]) -> list[Role]:
        rows = await users.list_roles(info.context.tenant)
        return [Role.from_row(r) for r in rows]


@part("Mutation", 60)
@strawberry.type
class CompanyMutations:
    @strawberry.mutation
    async def update_settings(
        self, info: Info[Context, None], input: SettingsInput
    ) -> SettingsPayload:
        ctx = info.context
        settings, errors = await attempt(
            company.update_settings(ctx.tenant, ctx.actor, given(input))
        )
        return SettingsPayload(settings=settings, user_errors=errors)

    @strawberry.mutation
    async def update_service_type(
        self, info: Info[Context, None], code: str, input: ServiceTypeInput
    ) -> ServiceTypePayload:
        ctx = info.context
        row, errors = await attempt(
            service_types.update_service_type(ctx.tenant, ctx.actor, code, given(input))
        )
        return ServiceTypePayload(
            service_type=ServiceType.from_row(row) if row else None, user_errors=errors
        )

    @strawberry.mutation
    async def create_user(self, info: Info[Context, None], input: CreateUserInput) -> UserPayload:
        ctx = info.context
        invited, errors = await attempt(
            credentials.invite_user(
                ctx.tenant, ctx.actor, given(input), base_url=credentials.company_url(ctx.tenant)
            )
        )
        if invited is None:
            return UserPayload(user=None, user_errors=errors)
        return UserPayload(
            user=User.from_row(UserRow.of(invited.user)),
            user_errors=[],
            setup_link=invited.link.url,
        )

    @strawberry.mutation
    async def update_user(
        self, info: Info[Context, None], id: strawberry.ID, input: UpdateUserInput
    ) -> UserPayload:
        ctx = info.context

        async def run() -> UserRow:
            return await users.update_user(ctx.tenant, ctx.actor, pk_of(id, "User"), given(input))

        row, errors = await attempt(run())
        return UserPayload(user=User.from_row(row) if row else None, user_errors=errors)

    @strawberry.mutation
    async def set_role_permissions(
        self, info: Info[Context, None], role: str, permissions: list[str]
    ) -> RolePayload:
        ctx = info.context
        row, errors = await attempt(
            users.set_role_permissions(ctx.tenant, ctx.actor, role, permissions)
        )
        return RolePayload(role=Role.from_row(row) if row else None, user_errors=errors)


_UNTYPED = "Untyped, with money in minor units beside no currency: use {}."


@part("Query", 70)
@strawberry.type
class ReportQueries:
    @strawberry.field(
        description="Figures of one local day (requests, revenue, timings).",
        deprecation_reason=_UNTYPED.format("dayReport"),
    )
    async def daily_report(self, info: Info[Context, None], day: date) -> JSON:
        report = await reports.daily_report(info.context.tenant, info.context.actor, day)
        return JSON(report.as_dict())

    @strawberry.field(
        description="Figures of one month, with a line per local day.",
        deprecation_reason=_UNTYPED.format("monthReport"),
    )
    async def monthly_report(self, info: Info[Context, None], year: int, month: int) -> JSON:
        report = await reports.monthly_report(info.context.tenant, info.context.actor, year, month)
        return JSON(report.as_dict())

    @strawberry.field(
        description="The figures of one of the company's local days (23, 24 or 25 hours). "
        "Needs `reports.view`; money figures also need `reports.revenue`."
    )
    async def day_report(self, info: Info[Context, None], day: date) -> Report:
        ctx = info.context
        return report_of(await reports.daily_report(ctx.tenant, ctx.actor, day))

    @strawberry.field(
        description="The figures of one month in the company's local time, with every day. "
        "Needs `reports.view`; money figures also need `reports.revenue`."
    )
    async def month_report(self, info: Info[Context, None], year: int, month: int) -> Report:
        ctx = info.context
        return report_of(await reports.monthly_report(ctx.tenant, ctx.actor, year, month))


@strawberry.type
class PersistedDocument:
    sha256: str
    name: str
    document: str


@strawberry.type
class PersistedDocumentPayload:
    persisted_document: PersistedDocument | None
    user_errors: list[UserError]


def _document(row: DocumentRow) -> PersistedDocument:
    return PersistedDocument(sha256=row.sha256, name=row.name, document=row.document)


@part("Query", 80)
@strawberry.type
class DocumentQueries:
    @strawberry.field(description="Documents allow-listed clients may run.")
    async def persisted_documents(self, info: Info[Context, None]) -> list[PersistedDocument]:
        rows = await documents.list_documents(info.context.tenant, info.context.actor)
        return [_document(r) for r in rows]


@part("Mutation", 70)
@strawberry.type
class DocumentMutations:
    @strawberry.mutation(description="Add a document to the allow-list of this company.")
    async def register_persisted_document(
        self, info: Info[Context, None], name: str, document: str
    ) -> PersistedDocumentPayload:
        ctx = info.context
        row, errors = await attempt(
            documents.register_document(ctx.tenant, ctx.actor, {"name": name, "document": document})
        )
        return PersistedDocumentPayload(
            persisted_document=_document(row) if row else None, user_errors=errors
        )


@strawberry.type(description="One change: who did what to which record, before and after.")
class ActivityEntry(Node):
    actor: str
    entity: str
    entity_id: str
    action: str
    before: JSON | None
    after: JSON | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: ActivityRow) -> ActivityEntry:
        return cls(
            id=gid("ActivityEntry", row.id),
            actor=f"{row.actor_type}:{row.actor_id}",
            entity=row.entity,
            entity_id=row.entity_id,
            action=row.action,
            before=JSON(row.before) if row.before is not None else None,
            after=JSON(row.after) if row.after is not None else None,
            created_at=row.created_at,
        )


@part("Query", 90)
@strawberry.type
class ActivityQueries:
    @strawberry.field(description="The activity log, newest first.")
    async def activity_log(
        self,
        info: Info[Context, None],
        first: int = 50,
        after: str | None = None,
        entity: str | None = None,
        entity_id: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[ActivityEntry]:
        ctx = info.context
        page = await activity.page_activity(
            ctx.tenant,
            ctx.actor,
            entity=entity,
            entity_id=entity_id,
            **vars(window(first, after, last, before)),
        )
        return connection(page, lambda row: ActivityEntry.from_row(ActivityRow.of(row)))
