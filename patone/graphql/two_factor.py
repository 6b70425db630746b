"""Two-factor in the API: a signed-in staff user enrols, confirms, turns it off and renews their
recovery codes; admins choose the roles that must use it."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from patone.core.identity import two_factor
from patone.graphql.context import Context
from patone.graphql.ids import pk_of
from patone.graphql.parts import part
from patone.graphql.types import UserError, attempt


@strawberry.type(description="The caller's two-factor state.")
class TwoFactorStatus:
    enabled: bool
    pending: bool = strawberry.field(description="Enrolment begun but not yet confirmed.")
    required: bool = strawberry.field(description="The caller's role must use two-factor.")
    recovery_codes_left: int


@strawberry.type(description="Add the account to an authenticator app, then confirm a code.")
class TwoFactorEnrolment:
    otpauth_uri: str
    qr_svg: str = strawberry.field(description="The otpauth URI as a QR code (inline SVG).")
    secret: str = strawberry.field(description="For typing in when the QR code can't be read.")


@strawberry.type
class TwoFactorEnrolmentPayload:
    enrolment: TwoFactorEnrolment | None
    user_errors: list[UserError]


@strawberry.type
class RecoveryCodesPayload:
    recovery_codes: list[str] | None = strawberry.field(
        description="One-time codes for when the phone is lost; shown this once only."
    )
    user_errors: list[UserError]


@strawberry.type
class TwoFactorPayload:
    two_factor: TwoFactorStatus | None
    user_errors: list[UserError]


@strawberry.type
class ResetTwoFactorPayload:
    reset: bool
    user_errors: list[UserError]


@strawberry.type
class TwoFactorPolicyPayload:
    required_roles: list[str] | None
    user_errors: list[UserError]


async def _status(ctx: Context) -> TwoFactorStatus:
    found = await two_factor.status(ctx.tenant, int(ctx.actor.id))
    return TwoFactorStatus(
        enabled=found.enabled,
        pending=found.pending,
        required=found.required,
        recovery_codes_left=found.recovery_codes_left,
    )


@part("Query", 150)
@strawberry.type
class TwoFactorQueries:
    @strawberry.field(description="The caller's two-factor state (staff users only).")
    async def two_factor(self, info: Info[Context, None]) -> TwoFactorStatus | None:
        ctx = info.context
        return await _status(ctx) if ctx.actor.kind == "user" else None

    @strawberry.field(description="The roles that must use two-factor in this company.")
    async def two_factor_required_roles(self, info: Info[Context, None]) -> list[str]:
        return await two_factor.required_roles(info.context.tenant)


@part("Mutation", 130)
@strawberry.type
class TwoFactorMutations:
    @strawberry.mutation(description="Start two-factor enrolment (restarts an unconfirmed one).")
    async def begin_two_factor_enrolment(
        self, info: Info[Context, None]
    ) -> TwoFactorEnrolmentPayload:
        ctx = info.context
        found, errors = await attempt(two_factor.begin_enrolment(ctx.tenant, ctx.actor))
        enrolment = (
            TwoFactorEnrolment(otpauth_uri=found.uri, qr_svg=found.qr_svg, secret=found.secret)
            if found
            else None
        )
        return TwoFactorEnrolmentPayload(enrolment=enrolment, user_errors=errors)

    @strawberry.mutation(description="Turn two-factor on with a first code from the app.")
    async def confirm_two_factor(
        self, info: Info[Context, None], code: str
    ) -> RecoveryCodesPayload:
        ctx = info.context
        codes, errors = await attempt(two_factor.confirm_enrolment(ctx.tenant, ctx.actor, code))
        return RecoveryCodesPayload(recovery_codes=codes, user_errors=errors)

    @strawberry.mutation(description="Turn two-factor off, with a current or recovery code.")
    async def disable_two_factor(self, info: Info[Context, None], code: str) -> TwoFactorPayload:
        ctx = info.context
        _, errors = await attempt(two_factor.disable(ctx.tenant, ctx.actor, code))
        return TwoFactorPayload(
            two_factor=None if errors else await _status(ctx), user_errors=errors
        )

    @strawberry.mutation(description="New recovery codes (the old ones stop working).")
    async def regenerate_recovery_codes(
        self, info: Info[Context, None], code: str
    ) -> RecoveryCodesPayload:
        ctx = info.context
        codes, errors = await attempt(
            two_factor.regenerate_recovery_codes(ctx.tenant, ctx.actor, code)
        )
        return RecoveryCodesPayload(recovery_codes=codes, user_errors=errors)

    @strawberry.mutation(description="Turn off another user's two-factor (a lost phone).")
    async def reset_two_factor(
        self, info: Info[Context, None], user_id: strawberry.ID
    ) -> ResetTwoFactorPayload:
        ctx = info.context

        async def run() -> None:
            await two_factor.reset(ctx.tenant, ctx.actor, pk_of(user_id, "User", "user_id"))

        _, errors = await attempt(run())
        return ResetTwoFactorPayload(reset=not errors, user_errors=errors)

    @strawberry.mutation(description="Choose the roles that must use two-factor (admins).")
    async def set_two_factor_required_roles(
        self, info: Info[Context, None], roles: list[str]
    ) -> TwoFactorPolicyPayload:
        ctx = info.context
        found, errors = await attempt(two_factor.set_required_roles(ctx.tenant, ctx.actor, roles))
        return TwoFactorPolicyPayload(required_roles=found, user_errors=errors)
