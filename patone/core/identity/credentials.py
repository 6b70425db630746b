"""Staff credentials: set-up links, sign-in with lockout, password change and reset by email.

No password ships anywhere. A new staff member (the first admin of a new company included) gets a
single-use **set-up link** (`{base_url}/setup/{token}`, valid `SETUP_TTL`) and chooses a password
that passes `passwords.check_policy`. Tokens are `secrets.token_urlsafe(32)`; only their sha256
is stored (`user_tokens`), so a copy of the database opens no account. Issuing a new link of one
purpose for a user retires that user's earlier unused links of the same purpose.

**Sign-in** (`authenticate`) answers "the email or password is wrong" whether the address has no
account, the account is inactive or has no password yet, or the password is wrong, and spends an
argon2 verification in every case (a dummy one when there is no hash), so neither the answer nor
its time tells whether an account exists. A stored hash made with older argon2 parameters is
replaced on a successful sign-in.

**Lockout**, per account *and client address*: after `LOCK_AFTER` consecutive failures from
one address the account is locked *for that address* for `LOCK_FIRST`, doubling with each
further failure up to `LOCK_MAX`. A locked pair is refused with `AccountLocked` (HTTP 429 and
Retry-After) *without* checking the password, so guesses during a lock teach nothing from that
address, while the owner signing in from elsewhere is not held up (the rate limits' ceiling
per account bounds guessing spread over many addresses). A success from an address resets that
address's count; a reset or set-up link clears them all. The counts live in Redis
(`t:<slug>:sign_in_locks:<hash of the email>`, a day after the last failure) for any address,
an account's or not, so a lockout does not reveal that an account exists. A sign-in after
failed attempts from other addresses tells the user (`user.sign_in_after_failures` and an
email, `send_sign_in_notice`). Every sign-in, failure, lockout and refusal goes to the
tenant's activity log (failures as actor "anonymous" with the caller's IP).

`check_password` returns a `SignIn` rather than a token, and neither clears the failure count
nor logs a sign-in: a second factor may follow (`patone.core.identity.staff_sign_in`, the path every
sign-in door takes), whose wrong codes `record_failure` counts with the wrong passwords, and
`record_sign_in` finishes. `authenticate` is both at once, for a password-only check.

**Reset by email**: `request_reset` only queues `send_password_reset`, so the caller's answer and
its time are the same whether or not the address has an account. The job creates a 1-hour
single-use token and emails `{base_url}/reset-password/{token}` through the company's email
provider (the plugins' `send_email` hook). `reset_password` sets the new password, clears the
lockout and revokes the user's refresh and access tokens (`refresh_tokens.revoke_all`). A new
password ends the user's sessions (`sessions.revoke_all`): a reset, a set-up link for someone
who already had a password, and `change_password` (which keeps only the browser that made the
change), so the pages and the API behave the same.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import dramatiq

from patone.core.common.activity import record
from patone.core.common.inputs import EMAIL_MAX_LENGTH, normalize_email
from patone.core.common.permissions import SYSTEM, Actor, require
from patone.core.identity import ratelimits, sessions, users
from patone.core.identity.passwords import (
    MAX_LENGTH,
    check_policy,
    hash_password_async,
    verify_async,
)
from patone.core.identity.refresh_tokens import revoke_all
from patone.core.identity.tokens import Kind
from patone.core.runtime.clock import now
from patone.core.runtime.db import engine
from patone.core.runtime.errors import NotFound, UserError
from patone.core.runtime.redis import get_redis, tenant_key
from patone.core.work.jobs import current_job, tenant_actor
from patone.plugins import config as plugins
from patone.plugins.types import EmailMessage
from patone.tenants.isolation import TenantRef, tenant_transaction
from patone.tenants.registry import TenantInfo

log = logging.getLogger(__name__)

SETUP_TTL = timedelta(hours=72)
RESET_TTL = timedelta(hours=1)
LOCK_AFTER = 5  # consecutive failures before the first lock
LOCK_FIRST = 60  # seconds of the first lock; each further failure doubles it
LOCK_MAX = 3600
# How long Redis remembers an account's failures and locks after the last failure.
FAILURE_MEMORY = 24 * 3600
WRONG = "the email or password is wrong"


class Purpose(StrEnum):
    setup = "setup"
    reset = "reset"


_PATHS = {Purpose.setup: "setup", Purpose.reset: "reset-password"}


class SignInFailed(UserError):
    """The one answer for every failed sign-in, whatever the reason."""

    def __init__(self) -> None:
        super().__init__("invalid_credentials", WRONG)


class AccountLocked(UserError):
    """Too many failures: refused without checking the password for `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        minutes = max(1, -(-retry_after // 60))
        super().__init__(
            "locked",
            f"too many failed sign-ins: try again in {minutes} minute{'s' * (minutes > 1)}",
        )
        self.retry_after = retry_after


class InvalidLink(UserError):
    def __init__(self, message: str) -> None:
        super().__init__("invalid_token", message, "token")


@dataclass(frozen=True)
class Link:
    """A freshly issued set-up or reset link; the token in it is shown once, never stored."""

    user_id: int
    email: str
    url: str
    expires_at: datetime


@dataclass(frozen=True)
class Invitation:
    user: dict[str, Any]
    link: Link


@dataclass(frozen=True)
class SignIn:
    """Who proved their password. Not yet a session or token: a second factor may follow."""

    user_id: int
    email: str
    name: str
    role: str
    must_change_password: bool
    rehashed: bool = False  # the stored hash was just renewed with today's argon2 parameters


def lock_seconds(failures: int) -> int:
    """How long an account stays locked after its `failures`-th consecutive failure (0: not)."""
    if failures < LOCK_AFTER:
        return 0
    return int(min(LOCK_FIRST * 2 ** (failures - LOCK_AFTER), LOCK_MAX))


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def link_url(base_url: str, purpose: Purpose, token: str) -> str:
    return f"{base_url.rstrip('/')}/{_PATHS[purpose]}/{token}"


def company_url(tenant: TenantRef) -> str:
    """Where people reach this company (PUBLIC_URL with its slug, or the local address)."""
    return plugins.tenant_view(tenant).url


def _anonymous(ip: str) -> Actor:
    return Actor(kind="anonymous", id=ip[:64])


def _as_user(user_id: int, role: str | None = None) -> Actor:
    return Actor(kind="user", id=str(user_id), role=role)


# --- tokens ----------------------------------------------------------------------------------


async def _new_token(user_id: int, purpose: Purpose, ttl: timedelta) -> tuple[str, int, datetime]:
    """Create a token (inside the caller's tenant transaction), retiring the user's earlier
    unused ones of this purpose; returns the token, its row id and its expiry."""
    at = now()
    await engine.execute(
        'UPDATE user_tokens SET expires_at = least(expires_at, $3) WHERE "user" = $1 '
        "AND purpose = $2 AND used_at IS NULL",
        user_id,
        purpose.value,
        at,
    )
    token = secrets.token_urlsafe(32)
    expires_at = at + ttl
    rows = await engine.fetch(
        'INSERT INTO user_tokens ("user", purpose, token_hash, expires_at, created_at) '
        "VALUES ($1, $2, $3, $4, $5) RETURNING id",
        user_id,
        purpose.value,
        token_hash(token),
        expires_at,
        at,
    )
    return token, int(rows[0]["id"]), expires_at


async def _issue_link(
    actor: Actor, user_id: int, email: str, purpose: Purpose, base_url: str
) -> Link:
    token, token_id, expires_at = await _new_token(
        user_id, purpose, SETUP_TTL if purpose is Purpose.setup else RESET_TTL
    )
    await record(
        actor,
        "user",
        user_id,
        f"user.{purpose.value}_link_issued",
        None,
        {"token_id": token_id, "expires_at": expires_at},
    )
    return Link(user_id, email, link_url(base_url, purpose, token), expires_at)


async def _use_token(token: str, purpose: Purpose) -> dict[str, Any]:
    """The user a valid token of `purpose` belongs to, the token locked for this transaction;
    else `InvalidLink` saying why. Tokens live in their tenant's schema: another company's
    token is simply not found."""
    if not isinstance(token, str) or not 20 <= len(token) <= 100:
        raise InvalidLink("this link is not valid")
    rows = await engine.fetch(
        "SELECT t.id, t.expires_at, t.used_at, u.id AS user_id, u.email, u.name, u.active, "
        "u.password_hash IS NOT NULL AS had_password "
        'FROM user_tokens t JOIN users u ON u.id = t."user" '
        "WHERE t.token_hash = $1 AND t.purpose = $2 FOR UPDATE OF t",
        token_hash(token),
        purpose.value,
    )
    if not rows or not rows[0]["active"]:
        raise InvalidLink("this link is not valid")
    row = dict(rows[0])
    if row["used_at"] is not None:
        raise InvalidLink("this link was already used; ask for a new one")
    if row["expires_at"] <= now():
        raise InvalidLink("this link has expired or was replaced by a newer one; ask for a new one")
    return row


async def _set_password(user_id: int, password: str) -> None:
    """Store a new hash; clears the must-change flag and any lockout."""
    password_hash = await hash_password_async(password)
    await engine.execute(
        "UPDATE users SET password_hash = $2, must_change_password = false, "
        "password_changed_at = $3, failed_sign_ins = 0, locked_until = NULL, updated_at = $3 "
        "WHERE id = $1",
        user_id,
        password_hash,
        now(),
    )


# --- set-up links and invitations -------------------------------------------------------------


async def issue_setup_link(tenant: TenantRef, actor: Actor, email: str, *, base_url: str) -> Link:
    """A fresh set-up link for an active staff member (earlier unused ones stop working)."""
    require(actor, "users.manage")
    async with tenant_transaction(tenant):
        rows = await engine.fetch(
            "SELECT id, email FROM users WHERE lower(email) = lower($1) AND active",
            email.strip(),
        )
        if not rows:
            raise NotFound("not_found", f"{email} is not an active user", "email")
        return await _issue_link(actor, rows[0]["id"], rows[0]["email"], Purpose.setup, base_url)


async def has_password(tenant: TenantRef, email: str) -> bool:
    """Whether this staff member has chosen a password (for start-up messages, not sign-in)."""
    async with tenant_transaction(tenant):
        rows = await engine.fetch(
            "SELECT password_hash IS NOT NULL AS has FROM users WHERE lower(email) = lower($1)",
            email,
        )
    return bool(rows and rows[0]["has"])


async def invite_user(tenant: TenantRef, actor: Actor, data: Any, *, base_url: str) -> Invitation:
    """Add a staff member (`users.create_user`) and give them a set-up link, in one transaction."""
    async with tenant_transaction(tenant):
        user = await users.create_user(tenant, actor, data)
        link = await _issue_link(actor, user.id, user.email, Purpose.setup, base_url)
    # As plain data while the new company's first admin (`provisioning.NewTenant`) is one.
    return Invitation(user.as_dict(), link)


async def invite_first_admin(
    tenant: TenantRef, *, email: str, name: str, base_url: str
) -> Invitation:
    """The first admin of a new company, with the set-up link that lets them in."""
    return await invite_user(
        tenant, SYSTEM, {"email": email, "name": name, "role": "admin"}, base_url=base_url
    )


async def complete_setup(tenant: TenantRef, token: str, password: str) -> int:
    """Set a password through a set-up link (single use); returns the user's id."""
    return await _redeem(tenant, token, Purpose.setup, password)


async def reset_password(tenant: TenantRef, token: str, new_password: str) -> int:
    """Set a new password through a reset link (single use); clears any lockout and signs
    the user out everywhere (sessions, refresh and access tokens). Returns the user's id."""
    user_id = await _redeem(tenant, token, Purpose.reset, new_password)
    await revoke_all(tenant, Actor(kind="user", id=str(user_id)), Kind.staff, str(user_id))
    return user_id


async def _redeem(tenant: TenantRef, token: str, purpose: Purpose, password: str) -> int:
    async with tenant_transaction(tenant):
        row = await _use_token(token, purpose)
        check_policy(password, name=row["name"], email=row["email"])
        await _set_password(row["user_id"], password)
        await engine.execute("UPDATE user_tokens SET used_at = $2 WHERE id = $1", row["id"], now())
        action = "user.password_set" if purpose is Purpose.setup else "user.password_reset"
        await record(
            _as_user(row["user_id"]), "user", row["user_id"], action, None, {"token_id": row["id"]}
        )
    await clear_locks(tenant, row["email"])  # its owner proved their email
    if row["had_password"]:
        # Whoever knew the old password is signed out of every browser.
        await sessions.revoke_all(tenant, row["user_id"], actor=SYSTEM)
    return int(row["user_id"])


# --- sign-in ---------------------------------------------------------------------------------


async def authenticate(tenant: TenantRef, email: str, password: str, *, ip: str) -> SignIn:
    """A password-only sign-in: `check_password`, then `record_sign_in`. The sign-in doors use
    `patone.core.identity.staff_sign_in` instead, which puts the second factor in between."""
    who = await check_password(tenant, email, password, ip=ip)
    await record_sign_in(tenant, who, ip=ip)
    return who


async def check_password(tenant: TenantRef, email: str, password: str, *, ip: str) -> SignIn:
    """Check a staff member's email and password (see the module docs for what is refused and
    how); `SignInFailed` or `AccountLocked` otherwise.

    A right password does not yet count as a sign-in: a second factor may follow, and its
    failures add up with the password's (`record_failure`). `record_sign_in` finishes it.
    """
    check_lengths(email, password)
    email = (email or "").strip().lower()
    if not email:
        raise UserError("required", "email is required", "email")
    if not password:
        raise UserError("required", "password is required", "password")
    async with tenant_transaction(tenant):
        rows = await engine.fetch(
            "SELECT id, email, name, role, active, password_hash, must_change_password "
            "FROM users WHERE lower(email) = $1",
            email,
        )
    # An address with no account goes through every step an account does (the lock, an argon2
    # verification, the count): neither the answers nor their time tell whether one exists.
    user = dict(rows[0]) if rows else None
    await ensure_not_locked(tenant, email, ip=ip, user_id=user["id"] if user else None)
    verified = await verify_async(user["password_hash"] if user else None, password)
    if user is not None and verified.ok and user["active"]:
        if verified.new_hash is not None:
            async with tenant_transaction(tenant):
                await engine.execute(
                    "UPDATE users SET password_hash = $2 WHERE id = $1",
                    user["id"],
                    verified.new_hash,
                )
        return SignIn(
            user_id=user["id"],
            email=user["email"],
            name=user["name"],
            role=user["role"],
            must_change_password=user["must_change_password"],
            rehashed=verified.new_hash is not None,
        )
    reason = (
        "unknown_email"
        if user is None
        else "inactive"
        if not user["active"]
        else "no_password"
        if user["password_hash"] is None
        else "wrong_password"
    )
    seconds = await record_failure(
        tenant, email, ip=ip, reason=reason, user_id=user["id"] if user else None
    )
    if seconds:
        raise AccountLocked(seconds)
    raise SignInFailed()


def check_lengths(email: str | None, password: str | None = None) -> None:
    """Refuse an email or password longer than any account can have (`too_long`, naming the
    field) before anything costly sees it: a rate limiter's key, a lookup, argon2, the email
    validator."""
    if email and len(email) > EMAIL_MAX_LENGTH:
        raise UserError("too_long", f"email has more than {EMAIL_MAX_LENGTH} characters", "email")
    if password and len(password) > MAX_LENGTH:
        raise UserError("too_long", f"password has more than {MAX_LENGTH} characters", "password")


def _locks_key(tenant: TenantRef, email: str) -> str:
    """The account's failures and locks, one pair of fields per client address (`n:<ip>`,
    `until:<ip>`); kept for any address, an account's or not."""
    return tenant_key(tenant.slug, "sign_in_locks", token_hash(email.strip().lower())[:32])


def _failed_since_key(tenant: TenantRef, user_id: int) -> str:
    """An account's failures by client address since its last sign-in, for the notice."""
    return tenant_key(tenant.slug, "sign_in_failed_since", str(user_id))


def _seen(email: str, ip: str, user_id: int | None) -> tuple[Any, dict[str, Any]]:
    """The log's entity id and details of a sign-in event (the address when there is no
    account)."""
    if user_id is None:
        return "", {"ip": ip, "email": email[:EMAIL_MAX_LENGTH]}
    return user_id, {"ip": ip}


async def ensure_not_locked(
    tenant: TenantRef, email: str, *, ip: str, user_id: int | None = None
) -> None:
    """`AccountLocked` (logged) while this account is locked for this client address, without
    checking anything else: guesses during a lock teach nothing, and the owner elsewhere is not
    affected. A second step of a sign-in (the code after the password) waits it out too."""
    until = await get_redis().hget(_locks_key(tenant, email), f"until:{ip}")
    at = now().timestamp()
    if until is None or float(until) <= at:
        return
    entity, seen = _seen(email, ip, user_id)
    async with tenant_transaction(tenant):
        await record(
            _anonymous(ip), "user", entity, "user.sign_in_refused_locked", None,
            {**seen, "locked_until": datetime.fromtimestamp(float(until), UTC)},
        )  # fmt: skip
    raise AccountLocked(int(float(until) - at) + 1)


async def record_failure(
    tenant: TenantRef, email: str, *, ip: str, reason: str, user_id: int | None = None
) -> int:
    """Count a failed sign-in of this account from this client address (a wrong password or
    second-factor code), log it and lock the pair when the count calls for it; returns the
    lock's length in seconds (0: not locked). The caller raises `AccountLocked` or its own
    refusal."""
    redis = get_redis()
    key = _locks_key(tenant, email)
    failures = int(await redis.hincrby(key, f"n:{ip}", 1))
    seconds = lock_seconds(failures)
    until = now() + timedelta(seconds=seconds)
    if seconds:
        await redis.hset(key, f"until:{ip}", str(until.timestamp()))
    await redis.expire(key, FAILURE_MEMORY)
    if user_id is not None:
        since = _failed_since_key(tenant, user_id)
        await redis.hincrby(since, ip, 1)
        await redis.expire(since, FAILURE_MEMORY)
    entity, seen = _seen(email, ip, user_id)
    async with tenant_transaction(tenant):
        await record(
            _anonymous(ip), "user", entity, "user.sign_in_failed", None,
            {**seen, "reason": reason, "failures": failures},
        )  # fmt: skip
        if seconds:
            await record(
                _anonymous(ip), "user", entity, "user.locked", None,
                {**seen, "failures": failures, "seconds": seconds, "locked_until": until},
            )  # fmt: skip
    return seconds


async def record_sign_in(tenant: TenantRef, who: SignIn, *, ip: str, **details: Any) -> None:
    """Finish a sign-in whose every factor was proven: clear this address's failures and lock
    (other addresses keep theirs), log `user.signed_in` (with `details`, e.g. how the second
    factor was proven), and when there were failed attempts from elsewhere since the last
    sign-in, tell the user (`user.sign_in_after_failures` and an email)."""
    redis = get_redis()
    await redis.hdel(_locks_key(tenant, who.email), f"n:{ip}", f"until:{ip}")
    since = _failed_since_key(tenant, who.user_id)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hgetall(since)
        pipe.delete(since)
        failed, _ = await pipe.execute()
    elsewhere = {str(at): int(n) for at, n in failed.items() if str(at) != ip}
    actor = _as_user(who.user_id, who.role)
    async with tenant_transaction(tenant):
        await record(
            actor, "user", who.user_id, "user.signed_in", None,
            {"ip": ip, "rehashed": who.rehashed, **details},
        )  # fmt: skip
        if elsewhere:
            await record(
                actor, "user", who.user_id, "user.sign_in_after_failures", None,
                {"ip": ip, "failed_from": elsewhere},
            )  # fmt: skip
    if elsewhere:
        await asyncio.to_thread(send_sign_in_notice.send, tenant, who.user_id, ip, elsewhere)


async def clear_locks(tenant: TenantRef, email: str) -> None:
    """Forget an account's failures and locks from every address (its owner proved their
    email: a reset or set-up link)."""
    await get_redis().delete(_locks_key(tenant, email))


# --- changing one's password -----------------------------------------------------------------


async def change_password(
    tenant: TenantRef, actor: Actor, current: str, new: str, *, keep_session: str | None = None
) -> None:
    """A signed-in staff member replaces their password (clears the must-change flag). Their
    sessions end, except `keep_session` (the key of the browser that made the change), and so
    do their API tokens (refresh and access: a client signs in again with the new password)."""
    if actor.kind != "user":
        raise UserError("forbidden", "only a staff user can change their password")
    user_id = int(actor.id)
    async with tenant_transaction(tenant):
        rows = await engine.fetch(
            "SELECT id, email, name, password_hash FROM users WHERE id = $1 AND active", user_id
        )
    if not rows:
        raise NotFound("not_found", "your account no longer exists", "user_id")
    user = rows[0]
    verified = await verify_async(user["password_hash"], (current or "")[: MAX_LENGTH + 1])
    if not verified.ok:
        async with tenant_transaction(tenant):
            await record(actor, "user", user_id, "user.password_change_failed", None, None)
        raise UserError("wrong_password", "the current password is wrong", "current_password")
    if new == current:
        raise UserError("unchanged", "choose a password other than the current one", "password")
    check_policy(new, name=user["name"], email=user["email"])
    async with tenant_transaction(tenant):
        await _set_password(user_id, new)
        await record(actor, "user", user_id, "user.password_changed", None, None)
    await sessions.revoke_all(tenant, user_id, actor=actor, keep=keep_session)
    await revoke_all(tenant, actor, Kind.staff, str(user_id))


# --- reset by email --------------------------------------------------------------------------


async def request_reset(tenant: TenantInfo, email: str, *, ip: str = "") -> None:
    """Queue a reset email for `email`; the same (and equally quick) whether or not it has an
    account. A malformed address is refused, which says nothing about anyone's account.
    Limited like sign-in codes, per address and per client address (`RateLimited`): each
    email voids the link before it, so a flood would keep the owner from ever using one."""
    check_lengths(email)
    try:
        address = normalize_email((email or "").strip()).lower()
    except ValueError as error:
        raise UserError("invalid", str(error), "email") from None
    await ratelimits.check_code_request(tenant, ip=ip, address=f"reset:{address}")
    await asyncio.to_thread(send_password_reset.send, tenant, address, ip)


class ResetNotSent(dramatiq.Retry):
    """The email provider did not take the reset email (or a sign-in notice): the job is
    retried with back-off."""


@tenant_actor(actor_name="patone.credentials.send_password_reset", transaction=False)
async def send_password_reset(tenant_slug: str, email: str, ip: str = "") -> str:
    """Create a reset link for the active user with this address and email it to them;
    returns "sent", "logged" (the log stands in for email) or "unknown" (no such user)."""
    tenant = current_job().tenant
    base_url = company_url(tenant)
    async with tenant_transaction(tenant):
        rows = await engine.fetch(
            "SELECT id, email, name FROM users WHERE lower(email) = $1 AND active", email
        )
        if not rows:
            await record(
                _anonymous(ip), "user", "", "user.reset_requested", None,
                {"ip": ip, "email": email, "found": False},
            )  # fmt: skip
            return "unknown"
        user = rows[0]
        link = await _issue_link(_anonymous(ip), user["id"], user["email"], Purpose.reset, base_url)
    message = EmailMessage(
        to=user["email"],
        subject=f"Reset your {tenant.name} password",
        text=(
            f"Hello {user['name']},\n\n"
            f"Someone (we hope you) asked to reset your password for {tenant.name}.\n"
            f"Choose a new one here within the next hour:\n\n{link.url}\n\n"
            "The link works once. If you did not ask for it, ignore this email: your password "
            "stays as it is.\n"
        ),
        message_id=f"password-reset-{tenant_slug}-{current_job().message_id}",
    )
    return await _send_account_email(tenant, message, "reset email")


@tenant_actor(actor_name="patone.credentials.send_sign_in_notice", transaction=False)
async def send_sign_in_notice(
    tenant_slug: str, user_id: int, ip: str, failed_from: dict[str, int]
) -> str:
    """Tell a user that someone tried their password from other addresses before they signed
    in from `ip` (through the company's email provider); "sent", "logged", "no_provider" or
    "unknown" (the account is gone)."""
    tenant = current_job().tenant
    async with tenant_transaction(tenant):
        rows = await engine.fetch("SELECT email, name FROM users WHERE id = $1 AND active", user_id)
    if not rows:
        return "unknown"
    user = rows[0]
    total = sum(failed_from.values())
    addresses = "\n".join(
        f"  {address}: {count} failed attempt{'s' * (count > 1)}"
        for address, count in sorted(failed_from.items())
    )
    message = EmailMessage(
        to=user["email"],
        subject=f"Failed sign-ins to your {tenant.name} account",
        text=(
            f"Hello {user['name']},\n\n"
            f"You just signed in to {tenant.name} from {ip}. Since your previous sign-in, "
            f"someone entered a wrong password or code for your account {total} "
            f"time{'s' * (total > 1)}, from:\n\n{addresses}\n\n"
            "Those addresses are made to wait between tries; your own sign-ins are not. If "
            "those attempts were not yours, choose a new, unique password and keep two-factor "
            "on.\n"
        ),
        message_id=f"sign-in-notice-{tenant_slug}-{current_job().message_id}",
    )
    return await _send_account_email(tenant, message, "sign-in notice")


async def _send_account_email(tenant: TenantRef, message: EmailMessage, what: str) -> str:
    """Send an account email through the company's provider: "sent", "logged" or
    "no_provider"; `ResetNotSent` (a retry) when the provider failed or is paused."""
    result = await plugins.call_first(tenant, "send_email", fall_through=False, message=message)
    if result is None:
        log.error("no email provider: %s not sent", what, extra={"tenant": tenant.slug})
        return "no_provider"
    if result.error is not None or result.skipped:
        raise ResetNotSent(f"the {what} was not sent: {result.error or 'provider paused'}")
    return "logged" if result.value.status == "logged" else "sent"
