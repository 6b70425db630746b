"""Two-factor authentication for staff: TOTP codes (RFC 6238, pyotp) and one-time recovery codes.

Enrolment takes two steps. `begin_enrolment` makes a new secret, sealed at rest under a key of
its own derived from SECRET_KEY, and returns the otpauth:// URI (issuer: the company's name)
with its QR code as SVG. Nothing is switched on until `confirm_enrolment` receives a first
valid code: a scan that failed can't lock anyone out. Confirming returns ten recovery codes,
shown once and stored as SHA-256 hashes (80 random bits each, so a fast hash is enough;
argon2 would make checking ten of them slow for nothing).

`verify` accepts a code of the current 30-second step or a neighbour (clock drift), and each
step once only: the last accepted step is kept and moved forward by a conditional UPDATE, so
two requests racing with the same code can't both pass. A recovery code is spent the same way.

Which roles must use two-factor is the company setting `two_factor.required_roles` (default
`["admin"]`); sign-in reads it in the user's `status`. Every change and every refused code
is written to the company's activity log.

The pure helpers (`new_secret`, `matching_step`, `new_recovery_codes` ...) also serve platform
operators (`patone.platform.operators`), whose two-factor is always on.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyotp
import segno

from patone.core.common.activity import record
from patone.core.common.permissions import Actor, require
from patone.core.runtime.db import engine
from patone.core.runtime.errors import Conflict, UserError
from patone.plugins.secrets import SecretBox
from patone.tenants.isolation import TenantRef, tenant_transaction

PURPOSE = "patone two-factor secrets v1"
SETTING = "two_factor.required_roles"
DEFAULT_REQUIRED_ROLES = ("admin",)
RECOVERY_CODES = 10
STEP_SECONDS = 30
VALID_WINDOW = 1  # steps either side of now: tolerates ~30 s of clock drift
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i to misread
_RECOVERY_GROUPS = 4  # four groups of four: 16 characters, about 79 bits
_TOTP_CODE = re.compile(r"\d{6}")


class InvalidCode(UserError):
    """A TOTP or recovery code that is wrong, expired or already used."""

    def __init__(self, message: str = "That code is not valid; use a fresh one.") -> None:
        super().__init__("invalid_code", message, "code")


# --- the key ----------------------------------------------------------------------------------

_box: SecretBox | None = None


def configure(secret: str, fallbacks: Sequence[str] = ()) -> None:
    """Set the key two-factor secrets are sealed with (from SECRET_KEY; old keys after it)."""
    global _box
    _box = SecretBox(secret, fallbacks, purpose=PURPOSE)


def secret_box() -> SecretBox:
    if _box is None:
        raise RuntimeError("two-factor is not configured: call two_factor.configure(SECRET_KEY)")
    return _box


# --- TOTP and recovery codes, whoever they belong to --------------------------------------------


def new_secret() -> str:
    """A fresh TOTP secret (160 bits, base32, as authenticator apps expect)."""
    return pyotp.random_base32(length=32)


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    """The otpauth:// URI an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret, interval=STEP_SECONDS).provisioning_uri(
        name=account, issuer_name=issuer
    )


def qr_svg(uri: str) -> str:
    """The URI as a QR code, an inline SVG element."""
    return segno.make(uri, error="m").svg_inline(scale=4, border=2)


def current_step(at: float | None = None) -> int:
    return int((time.time() if at is None else at) // STEP_SECONDS)


def matching_step(secret: str, code: str, at: float | None = None) -> int | None:
    """The time step whose code `code` is (now or a neighbour), or None."""
    code = code.strip().replace(" ", "")
    if not _TOTP_CODE.fullmatch(code):
        return None
    totp = pyotp.TOTP(secret, interval=STEP_SECONDS)
    now = current_step(at)
    found = None
    for step in range(now - VALID_WINDOW, now + VALID_WINDOW + 1):
        # Every candidate is compared, in constant time, so timing tells nothing.
        if hmac.compare_digest(totp.generate_otp(step), code):
            found = step
    return found


def new_recovery_codes(count: int = RECOVERY_CODES) -> list[str]:
    """Fresh recovery codes such as `k7pm-2xqa-9dre-hw4t`."""
    return [
        "-".join(
            "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(4))
            for _ in range(_RECOVERY_GROUPS)
        )
        for _ in range(count)
    ]


def hash_recovery_code(code: str) -> str:
    """The stored form of a recovery code; case, spaces and dashes don't matter."""
    normalized = re.sub(r"[\s-]", "", code).lower()
    return hashlib.sha256(normalized.encode()).hexdigest()


# --- staff users ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Enrolment:
    """What a user needs to add the account to an authenticator app."""

    secret: str  # for typing in by hand when the camera can't read the QR code
    uri: str
    qr_svg: str


@dataclass(frozen=True)
class Status:
    enabled: bool
    pending: bool  # enrolment begun, not yet confirmed
    recovery_codes_left: int
    required: bool  # the user's role must use two-factor


def _staff(actor: Actor) -> int:
    if actor.kind != "user" or not actor.id:
        raise UserError("staff_only", "Two-factor is set up by a signed-in staff user.")
    return int(actor.id)


def _as_user(user_id: int) -> Actor:
    return Actor(kind="user", id=str(user_id))


async def _row(user_id: int) -> dict[str, Any] | None:
    rows = await engine.fetch(
        "SELECT secret, confirmed_at, last_step FROM user_two_factor WHERE user_id = $1", user_id
    )
    return dict(rows[0]) if rows else None


def _open(row: dict[str, Any]) -> str:
    sealed = row["secret"]
    return str(secret_box().open(json.loads(sealed) if isinstance(sealed, str) else sealed))


async def _accept_totp(user_id: int, secret: str, code: str) -> bool:
    """Take a code once: its step must be newer than the last accepted one."""
    step = matching_step(secret, code)
    if step is None:
        return False
    accepted = await engine.fetch(
        "UPDATE user_two_factor SET last_step = $2, updated_at = now() "
        "WHERE user_id = $1 AND (last_step IS NULL OR last_step < $2) RETURNING user_id",
        user_id,
        step,
    )
    return bool(accepted)


async def _spend_recovery_code(user_id: int, code: str) -> bool:
    spent = await engine.fetch(
        "UPDATE user_recovery_codes SET used_at = now() "
        "WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL RETURNING id",
        user_id,
        hash_recovery_code(code),
    )
    return bool(spent)


async def _codes_left(user_id: int) -> int:
    rows = await engine.fetch(
        "SELECT count(*) AS n FROM user_recovery_codes WHERE user_id = $1 AND used_at IS NULL",
        user_id,
    )
    return int(rows[0]["n"])


async def _store_recovery_codes(user_id: int) -> list[str]:
    codes = new_recovery_codes()
    await engine.execute("DELETE FROM user_recovery_codes WHERE user_id = $1", user_id)
    await engine.execute(
        "INSERT INTO user_recovery_codes (user_id, code_hash) SELECT $1, unnest($2::varchar[])",
        user_id,
        [hash_recovery_code(c) for c in codes],
    )
    return codes


async def _check(user_id: int, row: dict[str, Any] | None, code: str) -> str | None:
    """How `code` was accepted ("totp" or "recovery"), or None; spends what it accepts."""
    if row is None or row["confirmed_at"] is None:
        return None
    if await _accept_totp(user_id, _open(row), code):
        return "totp"
    if await _spend_recovery_code(user_id, code):
        return "recovery"
    return None


async def _refused(actor: Actor, user_id: int, purpose: str) -> None:
    await record(actor, "user", user_id, "two_factor.code_refused", None, {"purpose": purpose})


async def begin_enrolment(tenant: TenantRef, actor: Actor) -> Enrolment:
    """Start (or restart) enrolment for the acting user; on only after `confirm_enrolment`."""
    user_id = _staff(actor)
    secret = new_secret()
    async with tenant_transaction(tenant):
        rows = await engine.fetch(
            "SELECT u.email, tf.confirmed_at, "
            "(SELECT value #>> '{}' FROM settings WHERE key = 'company.name') AS company "
            "FROM users u LEFT JOIN user_two_factor tf ON tf.user_id = u.id WHERE u.id = $1",
            user_id,
        )
        if not rows:
            raise UserError("not_found", "no such user", "user_id")
        if rows[0]["confirmed_at"] is not None:
            raise Conflict(
                "already_enrolled", "Two-factor is already on; turn it off first to start over."
            )
        await engine.execute(
            "INSERT INTO user_two_factor (user_id, secret) VALUES ($1, $2::jsonb) "
            "ON CONFLICT (user_id) DO UPDATE SET secret = EXCLUDED.secret, last_step = NULL, "
            "updated_at = now()",
            user_id,
            json.dumps(secret_box().seal(secret)),
        )
        await record(actor, "user", user_id, "two_factor.enrolment_started")
    return _enrolment(secret, rows[0]["email"], rows[0]["company"] or tenant.slug)


def _enrolment(secret: str, email: str, issuer: str) -> Enrolment:
    uri = provisioning_uri(secret, email, issuer)
    return Enrolment(secret=secret, uri=uri, qr_svg=qr_svg(uri))


async def pending_enrolment(tenant: TenantRef, user_id: int) -> Enrolment | None:
    """The enrolment this user began and has not confirmed yet (to show its QR code again when
    a page is reloaded), or None."""
    async with tenant_transaction(tenant):
        rows = await engine.fetch(
            "SELECT u.email, tf.secret, "
            "(SELECT value #>> '{}' FROM settings WHERE key = 'company.name') AS company "
            "FROM users u JOIN user_two_factor tf ON tf.user_id = u.id "
            "WHERE u.id = $1 AND tf.confirmed_at IS NULL",
            user_id,
        )
    if not rows:
        return None
    row = dict(rows[0])
    return _enrolment(_open(row), row["email"], row["company"] or tenant.slug)


async def confirm_enrolment(tenant: TenantRef, actor: Actor, code: str) -> list[str]:
    """Switch two-factor on with a first valid code; returns the recovery codes (shown once)."""
    user_id = _staff(actor)
    async with tenant_transaction(tenant):
        row = await _row(user_id)
        if row is None:
            raise UserError("not_started", "Start two-factor enrolment first.", "code")
        if row["confirmed_at"] is not None:
            raise Conflict("already_enrolled", "Two-factor is already on.")
        accepted = await _accept_totp(user_id, _open(row), code)
        if accepted:
            await engine.execute(
                "UPDATE user_two_factor SET confirmed_at = now() WHERE user_id = $1", user_id
            )
            codes = await _store_recovery_codes(user_id)
            await record(actor, "user", user_id, "two_factor.enrolled")
        else:
            await _refused(actor, user_id, "confirm enrolment")
    if not accepted:
        raise InvalidCode("That code does not match; check the time on your phone and try again.")
    return codes


async def verify(tenant: TenantRef, user_id: int, code: str) -> bool:
    """Whether `code` (TOTP or an unused recovery code) proves the second factor of this user.

    A code is accepted once; a refused code and a spent recovery code are logged. A user without
    confirmed two-factor has nothing to verify against: always False.
    """
    actor = _as_user(user_id)
    async with tenant_transaction(tenant):
        how = await _check(user_id, await _row(user_id), code)
        if how is None:
            await _refused(actor, user_id, "sign in")
        elif how == "recovery":
            left = await _codes_left(user_id)
            await record(
                actor, "user", user_id, "two_factor.recovery_code_used", None, {"left": left}
            )
    return how is not None


JUST_ENROLLED = "This code was just used to set up two-factor; wait for the next code."


async def used_to_enrol(tenant: TenantRef, user_id: int, code: str) -> bool:
    """Whether `code` is the very code that confirmed this user's enrolment, still in its time
    window: a code is accepted once, so signing in with it must wait for the app's next one."""
    async with tenant_transaction(tenant):
        rows = await engine.fetch(
            "SELECT secret, last_step, confirmed_at > now() - make_interval(secs => $2) AS recent "
            "FROM user_two_factor WHERE user_id = $1",
            user_id,
            float((2 * VALID_WINDOW + 1) * STEP_SECONDS),
        )
    if not rows or not rows[0]["recent"] or rows[0]["last_step"] is None:
        return False
    return matching_step(_open(dict(rows[0])), code) == rows[0]["last_step"]


async def disable(tenant: TenantRef, actor: Actor, code: str) -> None:
    """Turn two-factor off for the acting user, proven by a current code or a recovery code."""
    user_id = _staff(actor)
    async with tenant_transaction(tenant):
        row = await _row(user_id)
        if row is None or row["confirmed_at"] is None:
            raise UserError("not_enrolled", "Two-factor is not on.")
        if actor.role and await _required(actor.role):
            raise UserError(
                "required",
                f"Your company requires two-factor for the {actor.role} role; it stays on.",
            )
        accepted = await _check(user_id, row, code) is not None
        if accepted:
            await engine.execute("DELETE FROM user_recovery_codes WHERE user_id = $1", user_id)
            await engine.execute("DELETE FROM user_two_factor WHERE user_id = $1", user_id)
            await record(actor, "user", user_id, "two_factor.disabled")
        else:
            await _refused(actor, user_id, "disable")
    if not accepted:
        raise InvalidCode()


async def regenerate_recovery_codes(tenant: TenantRef, actor: Actor, code: str) -> list[str]:
    """Replace the acting user's recovery codes (the old ones stop working), proven by a code."""
    user_id = _staff(actor)
    async with tenant_transaction(tenant):
        row = await _row(user_id)
        if row is None or row["confirmed_at"] is None:
            raise UserError("not_enrolled", "Two-factor is not on.")
        accepted = await _check(user_id, row, code) is not None
        if accepted:
            codes = await _store_recovery_codes(user_id)
            await record(actor, "user", user_id, "two_factor.recovery_codes_regenerated")
        else:
            await _refused(actor, user_id, "regenerate recovery codes")
    if not accepted:
        raise InvalidCode()
    return codes


async def reset(tenant: TenantRef, actor: Actor, user_id: int) -> None:
    """Turn off another user's two-factor (a lost phone and no recovery codes); they enrol again
    at their next sign-in if their role requires it."""
    require(actor, "users.manage")
    async with tenant_transaction(tenant):
        removed = await engine.fetch(
            "DELETE FROM user_two_factor WHERE user_id = $1 RETURNING user_id", user_id
        )
        if not removed:
            raise UserError("not_enrolled", "this user has no two-factor set up", "user_id")
        await engine.execute("DELETE FROM user_recovery_codes WHERE user_id = $1", user_id)
        await record(actor, "user", user_id, "two_factor.reset")


async def status(tenant: TenantRef, user_id: int) -> Status:
    async with tenant_transaction(tenant):
        rows = await engine.fetch("SELECT role FROM users WHERE id = $1", user_id)
        row = await _row(user_id)
        left = await _codes_left(user_id)
        required = bool(rows) and await _required(rows[0]["role"])
    return Status(
        enabled=row is not None and row["confirmed_at"] is not None,
        pending=row is not None and row["confirmed_at"] is None,
        recovery_codes_left=left,
        required=required,
    )


# --- the company's policy ---------------------------------------------------------------------


async def _required_roles() -> list[str]:
    rows = await engine.fetch("SELECT value FROM settings WHERE key = $1", SETTING)
    if not rows:
        return list(DEFAULT_REQUIRED_ROLES)
    value = rows[0]["value"]
    return list(json.loads(value) if isinstance(value, str) else value)


async def _required(role: str) -> bool:
    return role in await _required_roles()


async def required_roles(tenant: TenantRef) -> list[str]:
    """The roles whose users must use two-factor in this company."""
    async with tenant_transaction(tenant):
        return await _required_roles()


async def set_required_roles(tenant: TenantRef, actor: Actor, roles: Sequence[str]) -> list[str]:
    """Choose the roles that must use two-factor; each must be one of the company's roles."""
    require(actor, "settings.manage")
    wanted = sorted({r.strip() for r in roles if r.strip()})
    async with tenant_transaction(tenant):
        known = {r["name"] for r in await engine.fetch("SELECT name FROM roles")}
        unknown = [r for r in wanted if r not in known]
        if unknown:
            raise UserError(
                "invalid_choice",
                f"no such role: {', '.join(unknown)} (roles: {', '.join(sorted(known))})",
                "roles",
            )
        before = await _required_roles()
        await engine.execute(
            "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2::jsonb, now()) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()",
            SETTING,
            json.dumps(wanted),
        )
        await record(
            actor,
            "settings",
            "company",
            "two_factor.policy_changed",
            {SETTING: before},
            {SETTING: wanted},
        )
    return wanted
