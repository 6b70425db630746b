"""Rate limits in Redis, sized by each company's plan.

What is limited, and by whom:

| limit | key | window | plan column |
| --- | --- | --- | --- |
| `api_caller` | one user or partner client | minute | `api_requests_per_minute` |
| `api_tenant` | the whole company | minute | `tenant_api_requests_per_minute` |
| `sign_in_ip` | one client address | hour | `sign_ins_per_ip_per_hour` |
| `sign_in_account_ip` | one account from one address | hour | `sign_ins_per_account_per_hour` |
| `sign_in_account` | one account from anywhere | hour | that times `ACCOUNT_CEILING` |
| `code_address` | a phone or email (codes, links) | hour | `code_requests_per_address_per_hour` |
| `code_ip` | one client address asking for them | hour | `code_requests_per_ip_per_hour` |

The algorithm is the `limits` library's moving window (an exact count of the hits in the last
window, kept in a Redis list). A request that checks two limits (a caller and its company; an
address and an account) sends both of the library's acquire scripts in one pipeline: one Redis
round trip per request. A refused request is all or nothing: the slots it took from its other
limits are given back (so a user hammering past their own limit does not spend the company's
budget), and the library tells when the window frees a slot (`Retry-After`).

Keys live under the company's namespace (`t:<slug>:rl/...`), so purging a company removes them.
Platform operators' sign-ins (no company, no plan) have fixed limits of their own
(`check_operator_sign_in`, keys `t:_platform:rl:...`).
A plan's limits are read from `platform.plans` and kept `PLAN_CACHE_TTL` seconds per process.
"""

from __future__ import annotations

import math
import time
import weakref
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources

import redis.asyncio as aioredis
from limits import RateLimitItem, RateLimitItemPerHour, RateLimitItemPerMinute
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.exceptions import NoScriptError

from patone.core.runtime.db import engine
from patone.core.runtime.errors import UserError
from patone.core.runtime.redis import get_redis
from patone.tenants.registry import TenantInfo

PLAN_CACHE_TTL = 30.0
_KEY_PREFIX = "t"  # with the item namespace "<slug>:rl": t:<slug>:rl/<limit>/<key>/...
_ACQUIRE = (
    resources.files("limits") / "resources/redis/lua_scripts/acquire_moving_window.lua"
).read_text()


class RateLimited(UserError):
    """Too many requests: try again in `retry_after` seconds (HTTP 429 with Retry-After)."""

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        super().__init__(
            "rate_limited",
            message or f"Too many requests. Try again in {retry_after} seconds.",
        )
        self.retry_after = retry_after


class Limit(StrEnum):
    api_caller = "api_caller"
    api_tenant = "api_tenant"
    sign_in_ip = "sign_in_ip"
    sign_in_account_ip = "sign_in_account_ip"
    sign_in_account = "sign_in_account"
    code_address = "code_address"
    code_ip = "code_ip"


_PLAN_COLUMNS: dict[Limit, tuple[str, type[RateLimitItem]]] = {
    Limit.api_caller: ("api_requests_per_minute", RateLimitItemPerMinute),
    Limit.api_tenant: ("tenant_api_requests_per_minute", RateLimitItemPerMinute),
    Limit.sign_in_ip: ("sign_ins_per_ip_per_hour", RateLimitItemPerHour),
    Limit.sign_in_account_ip: ("sign_ins_per_account_per_hour", RateLimitItemPerHour),
    Limit.sign_in_account: ("sign_ins_per_account_per_hour", RateLimitItemPerHour),
    Limit.code_address: ("code_requests_per_address_per_hour", RateLimitItemPerHour),
    Limit.code_ip: ("code_requests_per_ip_per_hour", RateLimitItemPerHour),
}
# An account's attempts from all addresses together may be this many times those from one
# address: guessing from one place cannot lock the owner out, and a spread-out guesser still
# meets a ceiling.
ACCOUNT_CEILING = 10
_FACTORS = {Limit.sign_in_account: ACCOUNT_CEILING}
_SELECT_PLAN = (
    f"SELECT {', '.join(sorted({column for column, _ in _PLAN_COLUMNS.values()}))} "
    "FROM platform.plans WHERE name = $1"
)


@dataclass(frozen=True)
class PlanLimits:
    """How many hits each limit allows per window, for one plan."""

    plan: str
    amounts: dict[Limit, int]

    def item(self, limit: Limit, slug: str) -> RateLimitItem:
        _, per = _PLAN_COLUMNS[limit]
        return per(self.amounts[limit], namespace=f"{slug}:rl")


_plans: dict[str, tuple[float, PlanLimits]] = {}


async def plan_limits(plan: str) -> PlanLimits:
    """The plan's limits, read from the catalogue at most once per `PLAN_CACHE_TTL` seconds."""
    now = time.monotonic()
    cached = _plans.get(plan)
    if cached is not None and cached[0] > now:
        return cached[1]
    rows = await engine.fetch(_SELECT_PLAN, plan)
    if not rows:
        raise UserError("invalid_choice", f"plan {plan!r} is not in the catalogue", field="plan")
    row = rows[0]
    limits = PlanLimits(
        plan,
        {
            limit: int(row[column]) * _FACTORS.get(limit, 1)
            for limit, (column, _) in _PLAN_COLUMNS.items()
        },
    )
    _plans[plan] = (now + PLAN_CACHE_TTL, limits)
    return limits


def forget_plan_limits(plan: str | None = None) -> None:
    """Drop cached plan limits (all, or one plan's) after the catalogue changed."""
    if plan is None:
        _plans.clear()
    else:
        _plans.pop(plan, None)


class _Limiter:
    """The library's moving-window limiter on this event loop's Redis connections."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        storage = RedisStorage(
            "async+redis://",
            implementation="redispy",
            key_prefix=_KEY_PREFIX,
            connection_pool=client.connection_pool,  # type: ignore[arg-type]
        )
        self.strategy = MovingWindowRateLimiter(storage)
        self.acquire = client.register_script(_ACQUIRE)

    @staticmethod
    def key(item: RateLimitItem, key: str) -> str:
        return f"{_KEY_PREFIX}:{item.key_for(key)}"

    async def hit_all(self, hits: list[tuple[RateLimitItem, str]]) -> list[bool]:
        """Take one slot of each limit, all in one round trip; which ones had a slot free."""
        for attempt in range(2):
            pipe = self.client.pipeline(transaction=False)
            timestamp = time.time()
            for item, key in hits:
                pipe.evalsha(
                    self.acquire.sha,
                    1,
                    self.key(item, key),
                    timestamp,
                    item.amount,
                    item.get_expiry(),
                    1,
                )
            results = await pipe.execute(raise_on_error=False)
            if attempt == 0 and any(isinstance(r, NoScriptError) for r in results):
                await self.client.script_load(_ACQUIRE)  # a restarted or flushed Redis
                continue
            for result in results:
                if isinstance(result, Exception):
                    raise result
            return [bool(result) for result in results]
        raise AssertionError("unreachable")

    async def give_back(self, hits: list[tuple[RateLimitItem, str]]) -> None:
        """Return one slot to each limit (the newest entry of its window)."""
        pipe = self.client.pipeline(transaction=False)
        for item, key in hits:
            pipe.lpop(self.key(item, key))
        await pipe.execute()

    async def retry_after(self, item: RateLimitItem, key: str) -> int:
        stats = await self.strategy.get_window_stats(item, key)
        return max(1, math.ceil(stats.reset_time - time.time()))


# One per Redis client, that is per event loop (see patone/core/runtime/redis.py).
_limiters: weakref.WeakKeyDictionary[aioredis.Redis, _Limiter] = weakref.WeakKeyDictionary()


def _limiter() -> _Limiter:
    client = get_redis()
    limiter = _limiters.get(client)
    if limiter is None:
        limiter = _limiters[client] = _Limiter(client)
    return limiter


async def hit(tenant: TenantInfo, *checks: tuple[Limit, str]) -> None:
    """Count one request against each `(limit, key)` of this company; `RateLimited` (with the
    longest wait among the exhausted ones) when any has no slot left."""
    limits = await plan_limits(tenant.plan)
    await _take([(limits.item(limit, tenant.slug), key) for limit, key in checks])


async def _take(hits: list[tuple[RateLimitItem, str]]) -> None:
    """One slot of each `(item, key)`, all or nothing; `RateLimited` when any is spent."""
    limiter = _limiter()
    allowed = await limiter.hit_all(hits)
    if all(allowed):
        return
    # All or nothing: a user over their own limit must not spend the company's budget.
    taken = [hits[i] for i, ok in enumerate(allowed) if ok]
    if taken:
        await limiter.give_back(taken)
    waits = [await limiter.retry_after(*hits[i]) for i, ok in enumerate(allowed) if not ok]
    raise RateLimited(max(waits))


async def refuse_if_spent(tenant: TenantInfo, limit: Limit, key: str) -> None:
    """`RateLimited` when `(limit, key)` has no slot left, taking none: for limits that count
    only failures (`count_failure`), checked before the attempt."""
    limits = await plan_limits(tenant.plan)
    item = limits.item(limit, tenant.slug)
    limiter = _limiter()
    if not await limiter.strategy.test(item, key):
        raise RateLimited(await limiter.retry_after(item, key))


async def count_failure(tenant: TenantInfo, limit: Limit, key: str) -> None:
    """Take one slot of `(limit, key)` for a failed attempt (a wrong secret), never raising:
    the next attempt's `refuse_if_spent` refuses."""
    limits = await plan_limits(tenant.plan)
    await _limiter().strategy.hit(limits.item(limit, tenant.slug), key)


async def check_api(tenant: TenantInfo, *, caller: str) -> None:
    """One API request by `caller` (e.g. "user:12", "partner:abc"): its budget and the
    company's."""
    await hit(tenant, (Limit.api_caller, caller), (Limit.api_tenant, "all"))


async def check_sign_in(tenant: TenantInfo, *, ip: str, account: str) -> None:
    """One sign-in attempt from `ip` for `account` (an email or phone): counted per address,
    per account from that address, and per account from anywhere with a much higher ceiling,
    so guessing from one place never shuts the owner out elsewhere, and neither spraying
    accounts nor spreading over addresses gets unlimited tries."""
    ip, account = ip or "unknown", account.strip().lower()
    await hit(
        tenant,
        (Limit.sign_in_ip, ip),
        (Limit.sign_in_account_ip, f"{account}|{ip}"),
        (Limit.sign_in_account, account),
    )


# Operators sign in outside every company, so no plan sizes their limits: fixed numbers. The
# namespace starts with "_", which no company slug can, so it never meets a company's keys.
OPERATOR_SIGN_INS_PER_IP_PER_HOUR = 30
OPERATOR_SIGN_INS_PER_ACCOUNT_PER_HOUR = 10
_PLATFORM_NAMESPACE = "_platform:rl"


async def check_operator_sign_in(*, ip: str, email: str) -> None:
    """One platform operator sign-in attempt from `ip` for `email` (`/platform/auth/sign-in`),
    limited like a company's staff sign-in: per address, per account from that address, and
    per account from anywhere with a ceiling `ACCOUNT_CEILING` times higher."""
    ip, email = ip or "unknown", email.strip().lower()
    per_account = OPERATOR_SIGN_INS_PER_ACCOUNT_PER_HOUR
    await _take(
        [
            (
                RateLimitItemPerHour(
                    OPERATOR_SIGN_INS_PER_IP_PER_HOUR, namespace=f"{_PLATFORM_NAMESPACE}:ip"
                ),
                ip,
            ),
            (
                RateLimitItemPerHour(per_account, namespace=f"{_PLATFORM_NAMESPACE}:account_ip"),
                f"{email}|{ip}",
            ),
            (
                RateLimitItemPerHour(
                    per_account * ACCOUNT_CEILING, namespace=f"{_PLATFORM_NAMESPACE}:account"
                ),
                email,
            ),
        ]
    )


async def check_code_request(tenant: TenantInfo, *, ip: str, address: str) -> None:
    """One request for a sign-in code or link to `address` (a phone or email) from `ip`."""
    await hit(
        tenant,
        (Limit.code_ip, ip or "unknown"),
        (Limit.code_address, address.strip().lower()),
    )


async def reset(tenant: TenantInfo, limit: Limit, key: str) -> None:
    """Forget the hits counted for one key (e.g. an account's after a successful sign-in)."""
    limits = await plan_limits(tenant.plan)
    limiter = _limiter()
    await limiter.strategy.clear(limits.item(limit, tenant.slug), key)
