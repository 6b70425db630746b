"""Staff sign-in with every factor, in order: the one path behind `/auth/sign-in` (JSON) and
`/admin/sign-in` (pages).

1. The rate limits of the company's plan, per client address and per account
   (`ratelimits.check_sign_in`), before any password is checked.
2. The password (`credentials.check_password`: one answer for every failure, lockout).
3. The second factor. A user with two-factor on proves it with a TOTP or recovery code
   (`two_factor.verify`: each code once); a wrong code is a failed sign-in like a wrong password
   (logged, counted toward the lockout). A user whose role must use two-factor
   (`two_factor.status`, its `required`) and who has none is not signed in: they may only enrol.
4. `credentials.record_sign_in` clears the failure count and logs `user.signed_in`.

A sign-in that stops half way, its password proven, leaves a **pending sign-in** in Redis
(`t:<slug>:sign_in_pending:<sha256 of the token>`, `PENDING_TTL` seconds): the pages keep its
token in a cookie while they ask for the code or show the enrolment QR code; the JSON API hands
it out as a restricted token that only the enrolment endpoints (`Step.enrolment`) or
`/auth/change-password` (`Step.password_change`, for an account flagged must-change) accept.
It is not an access token: no other endpoint knows it, so it cannot reach /graphql or the
pages, and it works once (taken with a Redis DEL, so two racing requests can't both use it).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from patone.core.common.activity import record
from patone.core.common.permissions import Actor
from patone.core.identity import credentials, ratelimits, two_factor, users
from patone.core.identity.credentials import AccountLocked, SignIn
from patone.core.runtime.errors import UserError
from patone.core.runtime.redis import get_redis, tenant_key
from patone.tenants.isolation import TenantRef, tenant_transaction
from patone.tenants.registry import TenantInfo

PENDING_TTL = 300  # seconds: entering a code, or scanning a QR code, takes less


class Step(StrEnum):
    """What a pending sign-in waits for."""

    two_factor = "two_factor"  # the code from the authenticator app (pages)
    enrolment = "two_factor_enrolment"  # setting two-factor up, which the role requires
    password_change = "password_change"  # noqa: S105 - a new password (API only)


@dataclass(frozen=True)
class Pending:
    """A sign-in whose password was right, waiting for `step`. `token` is shown once."""

    token: str
    step: Step
    who: SignIn
    target: str = ""  # the page to go to once signed in (pages only)
    expires_in: int = PENDING_TTL


class TwoFactorRequired(UserError):
    """The password was right; the account uses two-factor and no code came with it."""

    def __init__(self) -> None:
        super().__init__(
            "two_factor_required",
            "Enter the 6-digit code from your authenticator app, or a recovery code.",
            "code",
        )


class StepRequired(UserError):
    """The password (and code) were right, but the account must first do `pending.step`;
    `pending.token` is the restricted token for it."""

    _MESSAGES = {
        Step.enrolment: "Your company requires two-factor for your role: set it up with the "
        "enrolment token, then sign in with a code.",
        Step.password_change: "Your account must choose a new password: change it with the "
        "password-change token, then sign in with the new one.",
    }
    _FIELDS = {Step.enrolment: "enrolment_token", Step.password_change: "password_change_token"}

    def __init__(self, pending: Pending) -> None:
        super().__init__(f"{pending.step.value}_required", self._MESSAGES[pending.step])
        self.pending = pending

    @property
    def extra(self) -> dict[str, Any]:
        """What the JSON answer carries besides the error: the token and its lifetime."""
        return {
            self._FIELDS[self.pending.step]: self.pending.token,
            "expires_in": self.pending.expires_in,
        }


class PendingExpired(UserError):
    def __init__(self) -> None:
        super().__init__(
            "sign_in_expired",
            "This sign-in has expired or was already used; sign in again.",
            "token",
        )


# --- the doors --------------------------------------------------------------------------------


async def sign_in_api(
    tenant: TenantInfo, email: str, password: str, code: str | None, *, ip: str
) -> SignIn:
    """A complete sign-in for the JSON API, the code (if the account uses two-factor) in the
    same request. Raises `RateLimited`, `SignInFailed`, `AccountLocked`, `TwoFactorRequired`,
    `two_factor.InvalidCode`, or `StepRequired` carrying a restricted token."""
    who = await _first_factor(tenant, email, password, ip=ip)
    status = await two_factor.status(tenant, who.user_id)
    if status.enabled:
        if not code:
            await _log_pending(tenant, who, Step.two_factor, ip)
            raise TwoFactorRequired()
        await _second_factor(tenant, who, code, ip=ip)
    elif status.required:
        raise StepRequired(await _hold(tenant, who, Step.enrolment, ip=ip))
    await credentials.record_sign_in(tenant, who, ip=ip, two_factor=status.enabled)
    if who.must_change_password:
        raise StepRequired(await _hold(tenant, who, Step.password_change, ip=ip))
    return who


async def sign_in_page(
    tenant: TenantInfo, email: str, password: str, *, ip: str, target: str = ""
) -> SignIn | Pending:
    """The first page of a sign-in: a finished `SignIn` when the password is all the account
    needs, else a `Pending` sign-in for the code page or the enrolment page."""
    who = await _first_factor(tenant, email, password, ip=ip)
    status = await two_factor.status(tenant, who.user_id)
    if status.enabled:
        return await _hold(tenant, who, Step.two_factor, ip=ip, target=target)
    if status.required:
        return await _hold(tenant, who, Step.enrolment, ip=ip, target=target)
    await credentials.record_sign_in(tenant, who, ip=ip, two_factor=False)
    return who


async def prove_code(tenant: TenantInfo, token: str, code: str, *, ip: str) -> Pending:
    """The second page: the code for a pending sign-in. Returns the (now spent) pending sign-in
    when the code is right; a wrong code raises `InvalidCode` and the page may ask again, until
    the lockout ends the pending sign-in (`AccountLocked`)."""
    pending = await load(tenant, token, Step.two_factor)
    await ratelimits.check_sign_in(tenant, ip=ip, account=pending.who.email)
    try:
        await _second_factor(tenant, pending.who, code, ip=ip)
    except AccountLocked:
        await _take(tenant, token)
        raise
    if not await _take(tenant, token):
        raise PendingExpired()  # another request used it first
    await credentials.record_sign_in(tenant, pending.who, ip=ip, two_factor=True)
    return pending


async def enrolment(tenant: TenantRef, token: str) -> two_factor.Enrolment:
    """The QR code for a pending sign-in that must enrol: begun on the first call, the same
    one on later calls (a reloaded page), so a secret left over from an earlier, abandoned
    enrolment is never reused."""
    pending = await load(tenant, token, Step.enrolment)
    key = _key(tenant, token)
    if await get_redis().hget(key, "begun") == "1":
        shown = await two_factor.pending_enrolment(tenant, pending.who.user_id)
        if shown is not None:
            return shown
    begun = await two_factor.begin_enrolment(tenant, await _actor(tenant, pending))
    await get_redis().hset(key, "begun", "1")
    return begun


async def confirm_enrolment(tenant: TenantRef, token: str, code: str) -> tuple[Pending, list[str]]:
    """Switch two-factor on for a pending sign-in with a first code; returns the (now spent)
    pending sign-in and the recovery codes, to be shown once. The pages then finish the sign-in
    (`finish_enrolled`); the API asks the user to sign in again, with a code."""
    pending = await load(tenant, token, Step.enrolment)
    codes = await two_factor.confirm_enrolment(tenant, await _actor(tenant, pending), code)
    await _take(tenant, token)
    return pending, codes


async def finish_enrolled(tenant: TenantRef, pending: Pending, *, ip: str) -> None:
    """Count a sign-in finished by confirming enrolment (its first code proved the factor)."""
    await credentials.record_sign_in(tenant, pending.who, ip=ip, two_factor="enrolled")


async def change_password(tenant: TenantRef, token: str, current: str, new: str) -> None:
    """Choose a new password with the restricted token of an account flagged must-change (the
    token is spent when it works; the user then signs in with the new password)."""
    pending = await load(tenant, token, Step.password_change)
    await credentials.change_password(tenant, await _actor(tenant, pending), current, new)
    await _take(tenant, token)


async def check_link(tenant: TenantInfo, token: str, *, ip: str) -> None:
    """Rate-limit the use of a set-up or reset link (per client address and per link): each
    attempt may cost an argon2 hash, and nobody should get to guess links quickly."""
    digest = credentials.token_hash(token)[:32]
    await ratelimits.check_sign_in(tenant, ip=ip, account=f"link:{digest}")


# --- pending sign-ins -------------------------------------------------------------------------


def _key(tenant: TenantRef, token: str) -> str:
    return tenant_key(tenant.slug, "sign_in_pending", credentials.token_hash(token))


async def _hold(
    tenant: TenantRef, who: SignIn, step: Step, *, ip: str, target: str = ""
) -> Pending:
    token = secrets.token_urlsafe(32)
    key = _key(tenant, token)
    async with get_redis().pipeline(transaction=True) as pipe:
        pipe.hset(
            key,
            mapping={
                "step": step.value,
                "tenant": str(tenant.id),
                "user": str(who.user_id),
                "email": who.email,
                "name": who.name,
                "role": who.role,
                "must_change": "1" if who.must_change_password else "0",
                "target": target,
            },
        )
        pipe.expire(key, PENDING_TTL)
        await pipe.execute()
    await _log_pending(tenant, who, step, ip)
    return Pending(token=token, step=step, who=who, target=target)


async def load(tenant: TenantRef, token: str | None, step: Step) -> Pending:
    """The live pending sign-in behind `token` waiting for `step`; else `PendingExpired`."""
    if not token or len(token) > 128:
        raise PendingExpired()
    raw = await get_redis().hgetall(_key(tenant, token))
    fields = {str(name): str(value) for name, value in raw.items()}
    if not fields or fields.get("step") != step.value or fields.get("tenant") != str(tenant.id):
        raise PendingExpired()  # a purged company's, under its slug, is nobody's here
    who = SignIn(
        user_id=int(fields["user"]),
        email=fields["email"],
        name=fields["name"],
        role=fields["role"],
        must_change_password=fields["must_change"] == "1",
    )
    return Pending(token=token, step=step, who=who, target=fields.get("target", ""))


async def _take(tenant: TenantRef, token: str) -> bool:
    """Spend a pending sign-in; False when it was already gone."""
    return bool(await get_redis().delete(_key(tenant, token)))


async def _actor(tenant: TenantRef, pending: Pending) -> Actor:
    try:
        return await users.actor_for_user(tenant, pending.who.user_id)
    except UserError:
        raise PendingExpired() from None  # deactivated meanwhile


async def _log_pending(tenant: TenantRef, who: SignIn, step: Step, ip: str) -> None:
    async with tenant_transaction(tenant):
        await record(
            Actor(kind="user", id=str(who.user_id), role=who.role), "user", who.user_id,
            "user.sign_in_pending", None, {"ip": ip, "waiting_for": step.value},
        )  # fmt: skip


# --- the factors ------------------------------------------------------------------------------


async def _first_factor(tenant: TenantInfo, email: str, password: str, *, ip: str) -> SignIn:
    credentials.check_lengths(email, password)
    await ratelimits.check_sign_in(tenant, ip=ip, account=(email or "").strip().lower())
    return await credentials.check_password(tenant, email, password, ip=ip)


async def _second_factor(tenant: TenantRef, who: SignIn, code: str, *, ip: str) -> None:
    """Accept a TOTP or recovery code once; a wrong one counts toward the account's lockout."""
    await credentials.ensure_not_locked(tenant, who.email, ip=ip, user_id=who.user_id)
    if await two_factor.verify(tenant, who.user_id, code[:64]):
        return
    if await two_factor.used_to_enrol(tenant, who.user_id, code[:64]):
        # The right code, spent a moment ago on enrolment: not a guess, so no failure counts.
        raise two_factor.InvalidCode(two_factor.JUST_ENROLLED)
    seconds = await credentials.record_failure(
        tenant, who.email, ip=ip, reason="wrong_code", user_id=who.user_id
    )
    if seconds:
        raise AccountLocked(seconds)
    raise two_factor.InvalidCode()
