"""Staff sessions in Redis: hashed keys, per-tenant namespaces, lifetimes, revoking."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from patone.core.common import activity
from patone.core.common.permissions import SYSTEM
from patone.core.identity import sessions, users
from patone.core.identity.sessions import Lifetimes
from patone.core.runtime.clock import use_clock
from patone.core.runtime.errors import NotFound
from patone.core.runtime.redis import get_redis, tenant_key
from patone.tenants.registry import TenantInfo
from tests.conftest import actor_for
from tests.support import purge_and_take_slug

ADMIN = actor_for("admin")


async def _user(tenant: TenantInfo, email: str = "sam@example.com") -> int:
    user = await users.create_user(tenant, SYSTEM, {"email": email, "name": "Sam", "role": "admin"})
    return int(user.id)


async def _start(tenant: TenantInfo, user_id: int, agent: str = "Firefox") -> tuple[str, str]:
    return await sessions.start(tenant, user_id, ip="203.0.113.5", user_agent=agent)


async def test_redis_keeps_a_hash_of_the_cookie_never_the_cookie_itself(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, _ = two_tenants
    session_id, csrf_token = await _start(acme, await _user(acme))
    assert len(session_id) >= 43 and len(csrf_token) >= 43 and session_id != csrf_token
    redis = get_redis()
    keys = [key async for key in redis.scan_iter(match=tenant_key(acme.slug, "*"))]
    assert tenant_key(acme.slug, "session", sessions.session_key(session_id)) in keys
    for key in keys:
        assert session_id not in key
        if key.startswith(tenant_key(acme.slug, "session")):
            assert session_id not in (await redis.hgetall(key)).values()


async def test_a_session_is_valid_only_in_its_own_tenant(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    acme_user = await _user(acme)
    await _user(bolt)  # the same id exists in bolt: the session still must not work there
    session_id, csrf_token = await _start(acme, acme_user)
    found = await sessions.load(acme, session_id)
    assert found is not None
    assert (found.user_id, found.csrf_token, found.ip, found.user_agent) == (
        acme_user,
        csrf_token,
        "203.0.113.5",
        "Firefox",
    )
    assert await sessions.load(bolt, session_id) is None
    assert await sessions.list_sessions(bolt, acme_user) == []
    assert not await sessions.revoke(bolt, acme_user, found.key)
    assert await sessions.load(acme, session_id) is not None
    for nothing in (None, "", "x" * 200, "not-a-session"):
        assert await sessions.load(acme, nothing) is None


async def test_idle_sessions_end_and_busy_ones_slide_until_the_absolute_limit(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, _ = two_tenants
    user_id = await _user(acme)
    short = Lifetimes(idle=timedelta(seconds=60), absolute=timedelta(seconds=150))
    t0 = datetime.now(UTC)
    with use_clock(lambda: t0):
        busy, _ = await sessions.start(acme, user_id, ip="", user_agent="", lifetimes=short)
        idle, _ = await sessions.start(acme, user_id, ip="", user_agent="", lifetimes=short)
    with use_clock(lambda: t0 + timedelta(seconds=50)):
        assert await sessions.load(acme, busy, lifetimes=short) is not None
    with use_clock(lambda: t0 + timedelta(seconds=100)):
        # 50 s since its last request: still alive; the idle one has been idle 100 s.
        touched = await sessions.load(acme, busy, lifetimes=short)
        assert touched is not None and touched.last_seen == t0 + timedelta(seconds=100)
        assert await sessions.load(acme, idle, lifetimes=short) is None
    with use_clock(lambda: t0 + timedelta(seconds=151)):
        assert await sessions.load(acme, busy, lifetimes=short) is None
    # Ended sessions are gone from Redis, not just refused.
    assert await sessions.list_sessions(acme, user_id) == []


async def test_list_revoke_one_and_revoke_all(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    sam = await _user(acme)
    kim = await _user(acme, "kim@example.com")
    bolt_sam = await _user(bolt)
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    with use_clock(lambda: t0):
        laptop, _ = await _start(acme, sam, "Laptop")
    with use_clock(lambda: t0 + timedelta(minutes=1)):
        phone, _ = await _start(acme, sam, "Phone")
    kims, _ = await _start(acme, kim)
    bolts, _ = await _start(bolt, bolt_sam)

    listed = await sessions.list_sessions(acme, sam)
    assert [s.user_agent for s in listed] == ["Phone", "Laptop"]  # most recent first
    # Nobody ends another person's session by naming its key.
    assert not await sessions.revoke(acme, kim, listed[0].key)
    assert await sessions.load(acme, phone) is not None

    assert await sessions.revoke(acme, sam, listed[0].key, actor=ADMIN)
    assert await sessions.load(acme, phone) is None
    assert [s.user_agent for s in await sessions.list_sessions(acme, sam)] == ["Laptop"]
    assert not await sessions.revoke(acme, sam, listed[0].key)
    assert not await sessions.revoke(acme, sam, "*")

    await _start(acme, sam, "Tablet")
    assert await sessions.revoke_all(acme, sam) == 2
    assert await sessions.load(acme, laptop) is None
    assert await sessions.list_sessions(acme, sam) == []
    assert await sessions.load(acme, kims) is not None
    assert await sessions.load(bolt, bolts) is not None

    log, _ = await activity.list_activity(acme, ADMIN, entity="user", entity_id=str(sam))
    actions = [row.action for row in log]
    assert actions.count("session.started") == 3
    assert "session.revoked" in actions and "session.revoked_all" in actions
    bolt_log, _ = await activity.list_activity(bolt, ADMIN, entity="user")
    assert [row.action for row in bolt_log] == ["session.started", "user.created"]


async def test_signing_out_ends_only_that_browser(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, _ = two_tenants
    sam = await _user(acme)
    laptop, _ = await _start(acme, sam)
    phone, _ = await _start(acme, sam)
    await sessions.end(acme, laptop)
    await sessions.end(acme, "never-issued")
    assert await sessions.load(acme, laptop) is None
    assert await sessions.load(acme, phone) is not None
    assert len(await sessions.list_sessions(acme, sam)) == 1


async def test_no_session_for_an_inactive_or_unknown_user(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    sam = await _user(acme)
    await users.update_user(acme, ADMIN, sam, {"active": False})
    with pytest.raises(NotFound):
        await _start(acme, sam)
    with pytest.raises(NotFound):
        await _start(bolt, sam)
    assert await sessions.list_sessions(acme, sam) == []


async def test_a_purged_companys_session_never_opens_the_company_that_takes_its_slug(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    lima, other = two_tenants
    session_id, _ = await _start(lima, await _user(lima))
    redis = get_redis()
    key = tenant_key(lima.slug, "session", sessions.session_key(session_id))
    fields = await redis.hgetall(key)
    other_session, _ = await _start(other, await _user(other))
    new = await purge_and_take_slug(lima)
    assert await redis.exists(key) == 0  # the purge took it
    await _user(new)  # the same user id as the old admin's
    await redis.hset(key, mapping=fields)  # as a writer that was late for the purge would
    await redis.expire(key, 600)
    assert await sessions.load(new, session_id) is None
    assert await sessions.load(other, other_session) is not None
