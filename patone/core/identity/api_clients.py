"""Partners' API clients: OAuth2 client credentials (RFC 6749 §4.4) per tenant, with scopes.

A client is a `client_id` and a long random secret shown once; only the secret's SHA-256 is
stored (the secret has 256 bits of entropy, so a slow password hash would add cost per token
request and no safety). `platform.oauth_clients` maps each client_id to its tenant, so the token
endpoint finds the company from the client_id alone. A partner acts through an `Actor` of kind
"partner" whose permissions come from its token's scopes (`SCOPES`), never from a role.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Iterable

from patone.core.common import activity
from patone.core.common.permissions import Actor, require
from patone.core.common.rows import fetch_records, record_by_id
from patone.core.identity import revocation
from patone.core.identity.tokens import DEFAULT_TTL, Claims, Kind, issue_token
from patone.core.runtime.db import engine
from patone.core.runtime.errors import UserError
from patone.core.runtime.redis import get_redis, tenant_key
from patone.core.tables.identity import ApiClientRow
from patone.tenants.isolation import TenantRef, tenant_transaction
from patone.tenants.registry import TenantInfo

log = logging.getLogger(__name__)

# scope -> (what it allows, the permissions a partner holding it gets)
SCOPES: dict[str, tuple[str, tuple[str, ...]]] = {
    "requests:read": ("Read the service requests this client created", ("requests.view_own",)),
    "requests:write": (
        "Create service requests; change and cancel those this client created",
        ("requests.create", "requests.update", "requests.cancel"),
    ),
    "reports:read": (
        "Read daily and monthly reports, revenue included",
        ("reports.view", "reports.revenue"),
    ),
}

_LAST_USED_EVERY = 60  # seconds between last_used_at writes for API calls of one client
_touches: set[asyncio.Task[None]] = set()
_noted: dict[tuple[str, str], float] = {}


def permissions_for(scopes: Iterable[str]) -> frozenset[str]:
    return frozenset(p for s in scopes if s in SCOPES for p in SCOPES[s][1])


def partner_actor(claims: Claims) -> Actor:
    """The actor a partner's token acts as: what its scopes allow, nothing else."""
    return Actor(
        kind="partner",
        id=claims.subject,
        permissions=permissions_for(claims.scopes),
        allow_list_only=claims.allow_list_only,
    )


_EXISTS_FOR = 60.0  # seconds a process trusts that a client it found still exists
_existing: dict[tuple[str, str], float] = {}


async def client_exists(tenant: TenantRef, client_id: str) -> bool:
    """Whether the company (this very company, by id) still has the client, revoked or not
    (revocation refuses the tokens of a revoked one). Found clients are remembered for a
    minute per process; clients are never deleted but with their company, whose tokens its id
    already refuses."""
    index = (str(tenant.id), client_id)
    if time.monotonic() < _existing.get(index, 0.0):
        return True
    found = await engine.fetch(
        "SELECT 1 FROM platform.oauth_clients WHERE client_id = $1 AND tenant = $2",
        client_id,
        tenant.id,
    )
    if found:
        if len(_existing) > 10_000:
            _existing.clear()
        _existing[index] = time.monotonic() + _EXISTS_FOR
    return bool(found)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_scopes(value: Iterable[str] | str, field: str = "scopes") -> list[str]:
    """Known scopes, sorted and without repeats; else a UserError naming the unknown ones."""
    wanted = value.split() if isinstance(value, str) else list(value)
    unknown = sorted(set(wanted) - set(SCOPES))
    if unknown:
        raise UserError(
            "invalid_scope",
            f"unknown scopes: {', '.join(unknown)} (known: {', '.join(SCOPES)})",
            field,
        )
    return sorted(set(wanted))


async def create_client(
    tenant: TenantInfo,
    actor: Actor,
    *,
    name: str,
    scopes: Iterable[str],
    allow_list_only: bool = False,
) -> tuple[ApiClientRow, str]:
    """A new client; returns its row and its secret, which is never shown again."""
    require(actor, "api_clients.manage")
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise UserError("invalid", "name must be 1 to 200 characters", "name")
    chosen = parse_scopes(scopes)
    if not chosen:
        raise UserError("required", f"choose at least one scope ({', '.join(SCOPES)})", "scopes")
    client_id = "pc_" + secrets.token_urlsafe(16)
    secret = "pcs_" + secrets.token_urlsafe(32)
    await engine.execute(
        "INSERT INTO platform.oauth_clients (client_id, tenant) VALUES ($1, $2)",
        client_id,
        tenant.id,
    )
    try:
        async with tenant_transaction(tenant):
            rows = await fetch_records(
                ApiClientRow,
                "INSERT INTO api_clients (client_id, name, secret_hash, scopes, allow_list_only) "
                f"VALUES ($1, $2, $3, $4, $5) RETURNING {ApiClientRow.columns()}",
                client_id,
                name,
                _hash(secret),
                chosen,
                allow_list_only,
            )
            row = rows[0]
            await activity.record(actor, "api_client", row.id, "api_client.created", None, row)
    except BaseException:
        await engine.execute("DELETE FROM platform.oauth_clients WHERE client_id = $1", client_id)
        raise
    return row, secret


async def get_client(tenant: TenantInfo, actor: Actor, client_pk: int) -> ApiClientRow:
    """One API client (revoked or not), for those who manage them."""
    require(actor, "api_clients.manage")
    async with tenant_transaction(tenant):
        return await record_by_id(ApiClientRow, client_pk, what="API client", field="id")


async def list_clients(tenant: TenantInfo, actor: Actor) -> list[ApiClientRow]:
    require(actor, "api_clients.manage")
    async with tenant_transaction(tenant):
        return await fetch_records(
            ApiClientRow, f"SELECT {ApiClientRow.columns()} FROM api_clients ORDER BY id"
        )


async def revoke_client(tenant: TenantInfo, actor: Actor, client_pk: int) -> ApiClientRow:
    """Stop a client: no new tokens, and the ones it holds are refused from now on."""
    require(actor, "api_clients.manage")
    async with tenant_transaction(tenant):
        before = await record_by_id(ApiClientRow, client_pk, what="API client", field="id")
        if before.revoked_at is not None:
            return before
        rows = await fetch_records(
            ApiClientRow,
            "UPDATE api_clients SET revoked_at = now() WHERE id = $1 "
            f"RETURNING {ApiClientRow.columns()}",
            client_pk,
        )
        after = rows[0]
        await activity.record(actor, "api_client", client_pk, "api_client.revoked", before, after)
    await revocation.revoke_subject(tenant.slug, Kind.partner, after.client_id)
    return after


async def tenant_slug_of(client_id: str) -> str | None:
    """The slug of the tenant a client_id belongs to (the platform index), if any."""
    rows = await engine.fetch(
        "SELECT t.slug FROM platform.oauth_clients c JOIN platform.tenants t ON t.id = c.tenant "
        "WHERE c.client_id = $1",
        client_id,
    )
    return rows[0]["slug"] if rows else None


async def authenticate(tenant: TenantInfo, client_id: str, secret: str) -> ApiClientRow | None:
    """The client's row if `secret` is its secret and it is not revoked; else None (a known
    client's refusal is logged). The secret check costs the same whether or not the client
    exists."""
    async with tenant_transaction(tenant):
        rows = await engine.fetch(
            f"SELECT {ApiClientRow.columns()}, secret_hash FROM api_clients WHERE client_id = $1",
            client_id,
        )
    stored = rows[0]["secret_hash"] if rows else _hash("")
    matches = hmac.compare_digest(stored, _hash(secret))
    if not rows:
        return None
    client = ApiClientRow.of(rows[0])
    if not matches or client.revoked_at is not None:
        async with tenant_transaction(tenant):
            await activity.record(
                Actor(kind="partner", id=client_id),
                "api_client",
                client.id,
                "token.refused",
                None,
                {"reason": "revoked client" if matches else "wrong secret"},
            )
        return None
    return client


async def issue_client_token(
    signing_secret: str,
    tenant: TenantInfo,
    client: ApiClientRow,
    requested: str | None,
) -> tuple[str, list[str]]:
    """An access token for an authenticated client with the scopes it asked for (all of its
    scopes when it named none); `UserError("invalid_scope")` for any it does not hold."""
    scopes = list(client.scopes)
    if requested is not None:
        wanted = parse_scopes(requested, "scope")
        extra = sorted(set(wanted) - set(scopes))
        if extra:
            raise UserError(
                "invalid_scope", f"this client may not have: {', '.join(extra)}", "scope"
            )
        scopes = wanted or scopes
    token = issue_token(
        signing_secret,
        kind=Kind.partner,
        subject=client.client_id,
        tenant=tenant,
        ttl=DEFAULT_TTL,
        scopes=scopes,
        allow_list_only=client.allow_list_only,
    )
    actor = Actor(kind="partner", id=client.client_id)
    async with tenant_transaction(tenant):
        await engine.execute("UPDATE api_clients SET last_used_at = now() WHERE id = $1", client.id)
        await activity.record(
            actor, "api_client", client.id, "token.issued", None, {"scopes": scopes}
        )
    return token, scopes


def note_use(tenant: TenantRef, client_id: str) -> None:
    """Record that a client called the API (at most once a minute per client, in the
    background, so an API call waits for no write; a note in this process first, so most calls
    cost nothing)."""
    index = (tenant.slug, client_id)
    if time.monotonic() - _noted.get(index, -_LAST_USED_EVERY) < _LAST_USED_EVERY:
        return
    if len(_noted) > 10_000:
        _noted.clear()
    _noted[index] = time.monotonic()

    async def touch() -> None:
        try:
            fresh = await get_redis().set(
                tenant_key(tenant.slug, "api_client_used", client_id),
                "1",
                nx=True,
                ex=_LAST_USED_EVERY,
            )
            if fresh:
                async with tenant_transaction(tenant):
                    await engine.execute(
                        "UPDATE api_clients SET last_used_at = now() WHERE client_id = $1",
                        client_id,
                    )
        except Exception:
            log.warning("last use of API client %s not recorded", client_id, exc_info=True)

    task = asyncio.get_running_loop().create_task(touch())
    _touches.add(task)
    task.add_done_callback(_touches.discard)
