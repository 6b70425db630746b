"""Staff sessions for the web UIs, kept in Redis.

The browser holds only a random id (the cookie); Redis keys the session by a SHA-256 of it, so
a copy of Redis (a backup, a `MONITOR`) gives nobody a cookie that works. The keys live in the
tenant's namespace (`t:<slug>:session:<hash>`): the same cookie presented on another company's
host names a key that does not exist there.

A session ends when it has been idle too long (sliding), when it reaches its absolute lifetime,
when it is revoked (one, or all of a user's: "sign out everywhere"), or when its user is
deactivated (the UI checks the user on each request). Times come from
`patone.core.runtime.clock`, so tests move the clock instead of sleeping; the Redis TTL only
tidies up after the check.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from patone.core.common.activity import record
from patone.core.common.permissions import Actor
from patone.core.identity import users
from patone.core.runtime.clock import now
from patone.core.runtime.redis import get_redis, tenant_key
from patone.tenants.isolation import TenantRef, tenant_transaction

COOKIE_NAME = "patone_session"
# Kept a little longer than the session may live, so the code's check (not Redis) ends it.
_TTL_SLACK = 60
_KEY = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Lifetimes:
    """How long a session lives: `idle` since its last request, `absolute` since sign-in."""

    idle: timedelta = timedelta(hours=12)
    absolute: timedelta = timedelta(days=7)


DEFAULT_LIFETIMES = Lifetimes()


@dataclass(frozen=True)
class Session:
    """A signed-in browser. `key` names it in lists and revokes; it cannot be used as a cookie."""

    key: str
    user_id: int
    csrf_token: str
    created_at: datetime
    last_seen: datetime
    ip: str
    user_agent: str
    must_change_password: bool = False


def session_key(session_id: str) -> str:
    """The name Redis and the session list know a session by: a hash of the cookie value."""
    return hashlib.sha256(session_id.encode()).hexdigest()


def _session_redis_key(slug: str, key: str) -> str:
    return tenant_key(slug, "session", key)


def _index_key(slug: str, user_id: int) -> str:
    return tenant_key(slug, "user_sessions", str(user_id))


def _stamp(at: datetime) -> str:
    return f"{at.timestamp():.6f}"


def _time(value: str) -> datetime:
    return datetime.fromtimestamp(float(value), UTC)


def _session(key: str, fields: dict[str, str]) -> Session:
    return Session(
        key=key,
        user_id=int(fields["user"]),
        csrf_token=fields["csrf"],
        created_at=_time(fields["created_at"]),
        last_seen=_time(fields["last_seen"]),
        ip=fields.get("ip", ""),
        user_agent=fields.get("user_agent", ""),
        must_change_password=fields.get("must_change") == "1",
    )


def _as_user(user_id: int) -> Actor:
    return Actor(kind="user", id=str(user_id))


async def _log(
    tenant: TenantRef, user_id: int, action: str, details: dict[str, Any], actor: Actor | None
) -> None:
    async with tenant_transaction(tenant):
        await record(actor or _as_user(user_id), "user", user_id, action, None, details)


async def start(
    tenant: TenantRef,
    user_id: int,
    *,
    ip: str,
    user_agent: str,
    lifetimes: Lifetimes = DEFAULT_LIFETIMES,
    must_change_password: bool = False,
) -> tuple[str, str]:
    """Open a session for an active user; returns (the cookie value, the session's CSRF token).

    Call it only after the user has proved who they are (password, and second factor where
    required). `must_change_password`: the UI lets this session do nothing but choose a new
    password until `password_changed` is called. Raises `NotFound` for an unknown or inactive
    user.
    """
    await users.actor_for_user(tenant, user_id)
    session_id = secrets.token_urlsafe(32)
    csrf_token = secrets.token_urlsafe(32)
    key = session_key(session_id)
    at = _stamp(now())
    redis_key = _session_redis_key(tenant.slug, key)
    index = _index_key(tenant.slug, user_id)
    ttl = math.ceil(min(lifetimes.idle, lifetimes.absolute).total_seconds()) + _TTL_SLACK
    async with get_redis().pipeline(transaction=True) as pipe:
        pipe.hset(
            redis_key,
            mapping={
                "user": str(user_id),
                "tenant": str(tenant.id),
                "csrf": csrf_token,
                "created_at": at,
                "last_seen": at,
                "ip": ip[:64],
                "user_agent": user_agent[:300],
                "must_change": "1" if must_change_password else "0",
            },
        )
        pipe.expire(redis_key, ttl)
        pipe.sadd(index, key)
        pipe.expire(index, math.ceil(lifetimes.absolute.total_seconds()) + _TTL_SLACK)
        await pipe.execute()
    await _log(tenant, user_id, "session.started", {"session": key[:12], "ip": ip}, None)
    return session_id, csrf_token


# One round trip per request: read the session, end it if it is too old, else slide it. A
# session of another company with the same slug (one purged since: ARGV[5] is the company's id)
# is nobody's here.
_TOUCH = """
local fields = redis.call('HGETALL', KEYS[1])
if #fields == 0 then return nil end
local f = {}
for i = 1, #fields, 2 do f[fields[i]] = fields[i + 1] end
if f['tenant'] ~= ARGV[5] then return nil end
local at = tonumber(ARGV[1])
local idle = tonumber(ARGV[2])
local absolute = tonumber(ARGV[3])
local age = at - tonumber(f['created_at'])
if at - tonumber(f['last_seen']) > idle or age > absolute then
  redis.call('DEL', KEYS[1])
  return nil
end
redis.call('HSET', KEYS[1], 'last_seen', ARGV[1])
redis.call('EXPIRE', KEYS[1], math.ceil(math.min(idle, absolute - age)) + tonumber(ARGV[4]))
f['last_seen'] = ARGV[1]
local out = {}
for name, value in pairs(f) do
  out[#out + 1] = name
  out[#out + 1] = value
end
return out
"""


async def load(
    tenant: TenantRef, session_id: str | None, *, lifetimes: Lifetimes = DEFAULT_LIFETIMES
) -> Session | None:
    """The live session behind a cookie value, its last-seen time moved to now; None when
    there is none (never was, expired, revoked, or belongs to another tenant)."""
    if not session_id or len(session_id) > 128:
        return None
    key = session_key(session_id)
    redis = get_redis()
    raw = await redis.eval(
        _TOUCH,
        1,
        _session_redis_key(tenant.slug, key),
        _stamp(now()),
        lifetimes.idle.total_seconds(),
        lifetimes.absolute.total_seconds(),
        _TTL_SLACK,
        str(tenant.id),
    )
    if not raw:
        return None
    return _session(key, dict(zip(raw[::2], raw[1::2], strict=True)))


async def list_sessions(tenant: TenantRef, user_id: int) -> list[Session]:
    """A user's live sessions, most recently used first. Ended ones are dropped from the index."""
    redis = get_redis()
    index = _index_key(tenant.slug, user_id)
    keys = sorted(str(key) for key in await redis.smembers(index))
    if not keys:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hgetall(_session_redis_key(tenant.slug, key))
        found = await pipe.execute()
    live = [_session(key, fields) for key, fields in zip(keys, found, strict=True) if fields]
    gone = [key for key, fields in zip(keys, found, strict=True) if not fields]
    if gone:
        await redis.srem(index, *gone)
    return sorted(live, key=lambda s: s.last_seen, reverse=True)


async def revoke(tenant: TenantRef, user_id: int, key: str, *, actor: Actor | None = None) -> bool:
    """End one of the user's sessions by its key; False when the user has no such session.

    The user id must match the session's, so nobody ends another person's session by key.
    """
    if not _KEY.fullmatch(key):
        return False
    redis = get_redis()
    redis_key = _session_redis_key(tenant.slug, key)
    owner = await redis.hget(redis_key, "user")
    if owner != str(user_id):
        return False
    async with redis.pipeline(transaction=True) as pipe:
        pipe.delete(redis_key)
        pipe.srem(_index_key(tenant.slug, user_id), key)
        await pipe.execute()
    await _log(tenant, user_id, "session.revoked", {"session": key[:12]}, actor)
    return True


async def end(tenant: TenantRef, session_id: str) -> None:
    """Sign out the browser holding this cookie value (does nothing for an unknown one)."""
    key = session_key(session_id)
    redis = get_redis()
    owner = await redis.hget(_session_redis_key(tenant.slug, key), "user")
    if owner is None:
        return
    async with redis.pipeline(transaction=True) as pipe:
        pipe.delete(_session_redis_key(tenant.slug, key))
        pipe.srem(_index_key(tenant.slug, int(owner)), key)
        await pipe.execute()
    await _log(tenant, int(owner), "session.signed_out", {"session": key[:12]}, None)


async def password_changed(tenant: TenantRef, session: Session) -> None:
    """The session's user chose a new password: lift the must-change restriction of this
    session (`credentials.change_password` has already ended their other sessions)."""
    # Only if it still exists: a bare HSET would bring back a half session.
    await get_redis().eval(
        "if redis.call('EXISTS', KEYS[1]) == 1 then "
        "redis.call('HSET', KEYS[1], 'must_change', '0') end",
        1,
        _session_redis_key(tenant.slug, session.key),
    )


async def revoke_all(
    tenant: TenantRef, user_id: int, *, actor: Actor | None = None, keep: str | None = None
) -> int:
    """End every session of the user ("sign out everywhere"), except the one keyed `keep`;
    returns how many were ended."""
    redis = get_redis()
    index = _index_key(tenant.slug, user_id)
    keys = [str(key) for key in await redis.smembers(index) if key != keep]
    removed = 0
    if keys:
        async with redis.pipeline(transaction=True) as pipe:
            pipe.delete(*(_session_redis_key(tenant.slug, key) for key in keys))
            # Only the keys read: a session opened meanwhile stays listed (and revocable).
            pipe.srem(index, *keys)
            removed, _ = await pipe.execute()
    details: dict[str, Any] = {"sessions": removed}
    if keep is not None:
        details["kept"] = keep[:12]
    await _log(tenant, user_id, "session.revoked_all", details, actor)
    return int(removed)
