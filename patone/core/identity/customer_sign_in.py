"""Customers sign in to the portal with an emailed link or a texted code; no password.

1. **Request** (`request_sign_in`): the customer gives an email or a phone. The answer is the
   same, and as quick, whether or not a customer has it: the request is rate limited (per
   address and per client IP), queued as a job and answered at once. Nothing is looked up
   before answering, so neither the words nor the timing tell who is a customer.
2. **Send** (the `send_sign_in` job): finds the customer with that address (unknown addresses
   are logged and go no further), voids the customer's earlier unused links or codes on that
   channel, stores a new one *hashed*, and sends it through the company's email or SMS plugin:
   a link `{company url}/portal/sign-in/{token}` valid `LINK_TTL` (15 minutes), or a 6-digit
   code valid `CODE_TTL` (10 minutes).
3. **Verify** (`verify_sign_in`): a link works once; a code works once and allows
   `MAX_CODE_TRIES` wrong guesses, after which it is void. Both are rate limited (sign-in per IP
   and per account). Success returns a customer access token for this company only. Every
   success and failure goes to the company's activity log.

Hashes include the company's slug, and each company's rows live in its own schema: a link or
code from one company is worthless on another.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

import dramatiq
from pydantic import Field, model_validator

from patone.core.common.activity import record
from patone.core.common.inputs import Email, Input, Phone, parse
from patone.core.common.permissions import Actor
from patone.core.identity import ratelimits
from patone.core.identity.tokens import DEFAULT_TTL, Kind, issue_token
from patone.core.runtime.clock import now
from patone.core.runtime.db import engine
from patone.core.runtime.errors import UserError
from patone.core.work.jobs import current_job, tenant_actor
from patone.plugins import config as plugins
from patone.plugins.types import EmailMessage, SmsMessage
from patone.tenants.isolation import tenant_transaction
from patone.tenants.registry import TenantInfo

log = logging.getLogger(__name__)

LINK_TTL = timedelta(minutes=15)
CODE_TTL = timedelta(minutes=10)
MAX_CODE_TRIES = 5
CODE_DIGITS = 6
Channel = Literal["email", "sms"]
ANONYMOUS = Actor(kind="anonymous")


class NotSent(dramatiq.Retry):
    """The provider did not take the message: Dramatiq retries (an expected failure, logged in
    one line); each retry sends a fresh link or code and voids the one before."""


@dataclass(frozen=True, slots=True)
class CustomerToken:
    """What a verified sign-in hands the customer: a bearer token for this company."""

    access_token: str
    customer_id: int
    expires_in: int = DEFAULT_TTL

    def as_json(self) -> dict[str, Any]:
        """The token endpoint's answer (RFC 6749 section 5.1), and the customer's id."""
        return {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "customer_id": self.customer_id,
        }


class SignInFailed(UserError):
    """A link or code that is wrong, used, void or expired (one answer for all of them)."""


class SignInRequest(Input):
    email: Email | None = None
    phone: Phone | None = None

    @model_validator(mode="after")
    def _one_address(self) -> SignInRequest:
        if (self.email is None) == (self.phone is None):
            raise ValueError("give either an email or a phone")
        return self


class SignInProof(Input):
    token: str | None = Field(default=None, max_length=128)
    phone: Phone | None = None
    code: str | None = Field(default=None, max_length=16)

    @model_validator(mode="after")
    def _one_proof(self) -> SignInProof:
        by_code = self.phone is not None and self.code is not None
        if (self.token is not None) == by_code:
            raise ValueError("give either the link's token, or a phone and its code")
        return self


def _hash(tenant: TenantInfo, *parts: str) -> str:
    return hashlib.sha256("\x00".join((tenant.slug, *parts)).encode()).hexdigest()


def _actor(customer_id: int) -> Actor:
    return Actor(kind="customer", id=str(customer_id))


async def request_sign_in(tenant: TenantInfo, data: dict[str, Any], *, ip: str) -> None:
    """Queue a sign-in link (email) or code (phone) for whoever has this address; the same
    answer whether or not anyone does. `RateLimited` past the plan's limits."""
    wanted = parse(SignInRequest, data)
    channel: Channel = "email" if wanted.email is not None else "sms"
    address = wanted.email or wanted.phone or ""
    await ratelimits.check_code_request(tenant, ip=ip, address=address)
    await asyncio.to_thread(send_sign_in.send, tenant, channel, address)


_FIND_CUSTOMER = {
    "email": "SELECT id, email AS address FROM customers "
    "WHERE lower(email) = lower($1) AND archived_at IS NULL "
    "ORDER BY id LIMIT 1",
    "sms": "SELECT id, phone AS address FROM customers "
    "WHERE phone = $1 AND archived_at IS NULL ORDER BY id LIMIT 1",
}


async def _issue(tenant: TenantInfo, channel: Channel, address: str) -> tuple[int, str, str] | None:
    """Store a new hashed link or code for the customer with this address; (row id, the
    customer's address as stored, secret)."""
    async with tenant_transaction(tenant):
        rows = await engine.fetch(_FIND_CUSTOMER[channel], address)
        if not rows:
            await record(
                ANONYMOUS,
                "customer_sign_in",
                "-",
                "sign_in.unknown_address",
                after={"channel": channel, "address": address},
            )
            return None
        customer_id, address = int(rows[0]["id"]), str(rows[0]["address"])
        if channel == "email":
            secret = secrets.token_urlsafe(32)
            secret_hash, ttl = _hash(tenant, secret), LINK_TTL
        else:
            secret = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
            secret_hash, ttl = _hash(tenant, address, secret), CODE_TTL
        issued = now()
        await engine.execute(
            "UPDATE customer_sign_ins SET voided_at = $3 WHERE customer_id = $1 AND channel = $2 "
            "AND used_at IS NULL AND voided_at IS NULL",
            customer_id,
            channel,
            issued,
        )
        inserted = await engine.fetch(
            "INSERT INTO customer_sign_ins (customer_id, channel, address, secret_hash, "
            "expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            customer_id,
            channel,
            address,
            secret_hash,
            issued + ttl,
            issued,
        )
        await record(
            _actor(customer_id),
            "customer",
            customer_id,
            "sign_in.requested",
            after={"channel": channel},
        )
    return int(inserted[0]["id"]), address, secret


# Named as before the modules moved, so jobs queued by an older release still find it.
@tenant_actor(
    actor_name="patone.core.customer_sign_in.send_sign_in",
    transaction=False,
    max_retries=3,
    max_backoff=10_000,
    max_age=600_000,
)
async def send_sign_in(tenant_slug: str, channel: Channel, address: str) -> None:
    """Make and send a sign-in link or code to `address`, if a customer has it."""
    tenant = current_job().tenant
    issued = await _issue(tenant, channel, address)
    if issued is None:
        return
    row_id, address, secret = issued
    message_id = f"customer-sign-in-{tenant.slug}-{row_id}"
    name = tenant.name
    message: EmailMessage | SmsMessage
    if channel == "email":
        link = f"{plugins.tenant_view(tenant).url}/portal/sign-in/{secret}"
        message = EmailMessage(
            to=address,
            subject=f"Sign in to {name}",
            text=(
                f"Open this link to sign in to {name}:\n\n{link}\n\n"
                "It works once, within 15 minutes. If you did not ask for it, ignore this email."
            ),
            message_id=message_id,
        )
        hook = "send_email"
    else:
        message = SmsMessage(
            to=address,
            body=f"{secret} is your {name} sign-in code. It expires in 10 minutes.",
            message_id=message_id,
        )
        hook = "send_sms"
    result = await plugins.call_first(tenant, hook, fall_through=False, message=message)
    if result is None:
        log.warning("no %s provider: a customer sign-in was not sent", channel)
    elif result.error is not None or result.skipped:
        raise NotSent(f"the {channel} provider did not take the sign-in: {result.error}")


async def _failed(
    tenant: TenantInfo, customer_id: int | None, reason: str, ip: str, channel: Channel
) -> None:
    async with tenant_transaction(tenant):
        await record(
            _actor(customer_id) if customer_id else ANONYMOUS,
            "customer" if customer_id else "customer_sign_in",
            customer_id or "-",
            "sign_in.failed",
            after={"channel": channel, "reason": reason, "ip": ip},
        )


async def _by_link(tenant: TenantInfo, token: str, ip: str) -> int:
    await ratelimits.hit(tenant, (ratelimits.Limit.sign_in_ip, ip))
    async with tenant_transaction(tenant):
        rows = await engine.fetch(
            "UPDATE customer_sign_ins s SET used_at = $2 FROM customers c "
            "WHERE s.secret_hash = $1 AND s.channel = 'email' AND s.used_at IS NULL "
            "AND s.voided_at IS NULL AND s.expires_at > $2 "
            "AND c.id = s.customer_id AND c.archived_at IS NULL RETURNING s.customer_id",
            _hash(tenant, token),
            now(),
        )
    if not rows:
        await _failed(tenant, None, "invalid_link", ip, "email")
        raise SignInFailed(
            "invalid_link", "This sign-in link is not valid any more. Ask for a new one.", "token"
        )
    return int(rows[0]["customer_id"])


async def _by_code(tenant: TenantInfo, phone: str, code: str, ip: str) -> int:
    await ratelimits.check_sign_in(tenant, ip=ip, account=phone)
    moment = now()
    async with tenant_transaction(tenant):
        rows = await engine.fetch(
            "SELECT id, customer_id, secret_hash, attempts FROM customer_sign_ins "
            "WHERE channel = 'sms' AND address = $1 AND used_at IS NULL AND voided_at IS NULL "
            "AND expires_at > $2 ORDER BY id DESC LIMIT 1 FOR UPDATE",
            phone,
            moment,
        )
        row = rows[0] if rows else None
        right = row is not None and hmac.compare_digest(
            row["secret_hash"], _hash(tenant, phone, code.strip())
        )
        if row is not None and right:
            await engine.execute(
                "UPDATE customer_sign_ins SET used_at = $2 WHERE id = $1", row["id"], moment
            )
            return int(row["customer_id"])
        if row is not None:
            tries = row["attempts"] + 1
            await engine.execute(
                "UPDATE customer_sign_ins SET attempts = $2, voided_at = $3 WHERE id = $1",
                row["id"],
                tries,
                moment if tries >= MAX_CODE_TRIES else None,
            )
    reason = "wrong_code" if row is not None else "no_valid_code"
    await _failed(tenant, row["customer_id"] if row else None, reason, ip, "sms")
    raise SignInFailed(
        "invalid_code", "That code is wrong or has expired. Ask for a new one.", "code"
    )


async def verify_sign_in(
    tenant: TenantInfo, secret_key: str, data: dict[str, Any], *, ip: str
) -> CustomerToken:
    """Exchange a sign-in link's token, or a phone and its code, for a customer access token
    of this company; `SignInFailed` (one answer for wrong, used, void and expired)."""
    proof = parse(SignInProof, data)
    if proof.token is not None:
        customer_id = await _by_link(tenant, proof.token, ip)
        channel = "email"
    else:
        assert proof.phone is not None and proof.code is not None
        customer_id = await _by_code(tenant, proof.phone, proof.code, ip)
        channel = "sms"
    async with tenant_transaction(tenant):
        await record(
            _actor(customer_id), "customer", customer_id, "sign_in", after={"channel": channel}
        )
    token = issue_token(secret_key, kind=Kind.customer, subject=str(customer_id), tenant=tenant)
    return CustomerToken(access_token=token, customer_id=customer_id)
