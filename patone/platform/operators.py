"""Platform operators: the people who run the installation and its tenants.

Operators live in the `platform` schema, outside every company. Their two-factor is always on:
`create_operator` gives each a TOTP secret (sealed like staff users' secrets, see
`patone.core.identity.two_factor`) and ten recovery codes, which `patone operators create`
prints once.
Signing in takes the password and a code; the answer is the same, and takes about as long,
whether or not the email has an account. Each TOTP step is accepted once, and a recovery code
once. Sign-ins, failures and what operators do to tenants go to `platform.operator_activity`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from patone.core.common.inputs import Email, Input, Name, parse
from patone.core.identity import passwords, two_factor
from patone.core.runtime.db import engine
from patone.core.runtime.errors import Conflict, UserError

ISSUER = "Patone Cloud platform"


class SignInFailed(UserError):
    def __init__(self) -> None:
        super().__init__(
            "invalid_credentials", "The email, password or two-factor code is not right."
        )


@dataclass(frozen=True)
class Operator:
    id: int
    email: str
    name: str
    active: bool
    created_at: datetime


@dataclass(frozen=True)
class NewOperator:
    """A created operator and what they need to sign in; shown this once only."""

    operator: Operator
    totp_secret: str
    otpauth_uri: str
    recovery_codes: list[str]


class OperatorInput(Input):
    email: Email
    name: Name


_COLUMNS = "id, email, name, active, created_at"


def _operator(row: asyncpg.Record | dict[str, Any]) -> Operator:
    return Operator(**{k: row[k] for k in ("id", "email", "name", "active", "created_at")})


async def record_activity(
    action: str,
    *,
    operator_id: int | None = None,
    email: str = "",
    entity: str = "",
    entity_id: str = "",
    detail: dict[str, Any] | None = None,
    ip: str = "",
) -> None:
    """Write one line of the operators' activity log."""
    await engine.execute(
        "INSERT INTO platform.operator_activity "
        "(operator_id, email, action, entity, entity_id, detail, ip) "
        "VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7)",
        operator_id,
        email,
        action,
        entity,
        entity_id,
        None if detail is None else json.dumps(detail, default=str, sort_keys=True),
        ip[:64],
    )


async def list_activity(
    *, operator_id: int | None = None, entity_id: str | None = None, first: int = 50
) -> list[dict[str, Any]]:
    """The operators' activity log, newest first."""
    rows = await engine.fetch(
        "SELECT id, operator_id, email, action, entity, entity_id, detail, ip, created_at "
        "FROM platform.operator_activity WHERE ($1::int IS NULL OR operator_id = $1) "
        "AND ($2::varchar IS NULL OR entity_id = $2) ORDER BY id DESC LIMIT $3",
        operator_id,
        entity_id,
        first,
    )
    return [dict(r) for r in rows]


async def create_operator(email: str, name: str, password: str) -> NewOperator:
    """Add an operator; the password must pass the policy. Returns the TOTP secret, its URI and
    the recovery codes, which are not stored in the clear anywhere."""
    data = parse(OperatorInput, {"email": email, "name": name})
    email = data.email.lower()
    passwords.check_policy(password, name=data.name, email=email)
    secret = two_factor.new_secret()
    codes = two_factor.new_recovery_codes()
    password_hash = await passwords.hash_password_async(password)
    try:
        row = await engine.fetch(
            "INSERT INTO platform.operators (email, name, password_hash, totp_secret, "
            f"recovery_codes) VALUES ($1, $2, $3, $4::jsonb, $5) RETURNING {_COLUMNS}",
            email,
            data.name,
            password_hash,
            json.dumps(two_factor.secret_box().seal(secret)),
            [two_factor.hash_recovery_code(c) for c in codes],
        )
    except asyncpg.UniqueViolationError:
        raise Conflict("taken", f"{email} is already an operator", "email") from None
    operator = _operator(row[0])
    await record_activity("operator.created", operator_id=operator.id, email=email)
    return NewOperator(
        operator=operator,
        totp_secret=secret,
        otpauth_uri=two_factor.provisioning_uri(secret, email, ISSUER),
        recovery_codes=codes,
    )


async def get_operator(operator_id: int) -> Operator | None:
    """The operator with this id, if they exist and are active."""
    rows = await engine.fetch(
        f"SELECT {_COLUMNS} FROM platform.operators WHERE id = $1 AND active", operator_id
    )
    return _operator(rows[0]) if rows else None


async def _second_factor(row: asyncpg.Record, code: str) -> str | None:
    """How the code was accepted ("totp" or "recovery"), spending it; or None."""
    secret = str(two_factor.secret_box().open(json.loads(row["totp_secret"])))
    step = two_factor.matching_step(secret, code)
    if step is not None and await engine.fetch(
        "UPDATE platform.operators SET last_step = $2, updated_at = now() "
        "WHERE id = $1 AND (last_step IS NULL OR last_step < $2) RETURNING id",
        row["id"],
        step,
    ):
        return "totp"
    hashed = two_factor.hash_recovery_code(code)
    if await engine.fetch(
        "UPDATE platform.operators SET recovery_codes = array_remove(recovery_codes, $2), "
        "updated_at = now() WHERE id = $1 AND $2 = ANY(recovery_codes) RETURNING id",
        row["id"],
        hashed,
    ):
        return "recovery"
    return None


async def sign_in(email: str, password: str, code: str, *, ip: str = "") -> Operator:
    """The operator whose password and two-factor code these are; else `SignInFailed`, the same
    whatever was wrong (the log says what)."""
    email = email.strip().lower()
    rows = await engine.fetch(
        f"SELECT {_COLUMNS}, password_hash, totp_secret FROM platform.operators WHERE email = $1",
        email,
    )
    row = rows[0] if rows else None
    # Always one argon2 check, so an unknown email takes as long as a wrong password.
    checked = await passwords.verify_async(row["password_hash"] if row else None, password)
    reason = None
    if row is None:
        reason = "unknown email"
    elif not checked.ok:
        reason = "wrong password"
    elif not row["active"]:
        reason = "inactive"
    else:
        how = await _second_factor(row, code)
        if how is None:
            reason = "wrong or reused code"
    operator_id = row["id"] if row else None
    if reason is not None:
        await record_activity(
            "sign_in.failed", operator_id=operator_id, email=email, detail={"reason": reason}, ip=ip
        )
        raise SignInFailed()
    assert row is not None
    if checked.new_hash:
        await engine.execute(
            "UPDATE platform.operators SET password_hash = $2 WHERE id = $1",
            row["id"],
            checked.new_hash,
        )
    await record_activity(
        "sign_in", operator_id=row["id"], email=email, detail={"second_factor": how}, ip=ip
    )
    return _operator(row)
