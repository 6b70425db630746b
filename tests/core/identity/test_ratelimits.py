"""Rate limits come from each company's plan, count per key, and never cross companies."""

from __future__ import annotations

import time

import pytest

from patone.core.identity import ratelimits
from patone.core.identity.ratelimits import Limit, RateLimited
from tests.conftest import MakePlan, MakeTenant


async def _allowed(call, times: int) -> int:  # type: ignore[no-untyped-def]
    """How many of `times` calls pass before the first refusal."""
    for done in range(times):
        try:
            await call()
        except RateLimited:
            return done
    return times


async def test_sign_in_per_ip_and_per_account_trip_independently(
    make_plan: MakePlan, make_tenant: MakeTenant
) -> None:
    plan = await make_plan(sign_ins_per_ip_per_hour=5, sign_ins_per_account_per_hour=3)
    tenant = await make_tenant("acme", plan=plan)

    # One address spraying many accounts: stopped by the per-IP limit.
    sprayed = [f"user{i}@acme.example" for i in range(10)]
    calls = iter(sprayed)
    allowed = await _allowed(
        lambda: ratelimits.check_sign_in(tenant, ip="203.0.113.7", account=next(calls)), 10
    )
    assert allowed == 5
    with pytest.raises(RateLimited) as refused:
        await ratelimits.check_sign_in(tenant, ip="203.0.113.7", account="new@acme.example")
    assert refused.value.status == 429 and refused.value.code == "rate_limited"
    assert 3500 <= refused.value.retry_after <= 3600

    # One account tried from one address: stopped by the limit per account and address...
    allowed = await _allowed(
        lambda: ratelimits.check_sign_in(tenant, ip="198.51.100.1", account="Ann@Acme.example"),
        10,
    )
    assert allowed == 3
    # ... while its owner elsewhere goes on, up to the account's ceiling from all addresses.
    ips = iter([f"198.51.100.{i}" for i in range(2, 40) for _ in range(3)])
    allowed = await _allowed(
        lambda: ratelimits.check_sign_in(tenant, ip=next(ips), account="ann@acme.example"), 100
    )
    assert allowed == 3 * ratelimits.ACCOUNT_CEILING - 3
    # The exhausted address does not lock out other addresses; the account does not lock
    # out other accounts.
    await ratelimits.check_sign_in(tenant, ip="192.0.2.1", account="bob@acme.example")


async def test_a_refused_hit_takes_no_slot_and_retry_after_counts_down(
    make_plan: MakePlan, make_tenant: MakeTenant
) -> None:
    plan = await make_plan(code_requests_per_address_per_hour=2, code_requests_per_ip_per_hour=50)
    tenant = await make_tenant("acme", plan=plan)
    for _ in range(2):
        await ratelimits.check_code_request(tenant, ip="203.0.113.9", address="+14155552671")
    for _ in range(3):
        with pytest.raises(RateLimited):
            await ratelimits.check_code_request(tenant, ip="203.0.113.9", address="+14155552671")
    await ratelimits.reset(tenant, Limit.code_address, "+14155552671")
    await ratelimits.check_code_request(tenant, ip="203.0.113.9", address="+14155552671")


async def test_api_budget_follows_the_plan_and_is_each_companys_own(
    make_plan: MakePlan, make_tenant: MakeTenant
) -> None:
    small = await make_plan(api_requests_per_minute=3, tenant_api_requests_per_minute=5)
    big = await make_plan(api_requests_per_minute=8, tenant_api_requests_per_minute=20)
    acme = await make_tenant("acme", plan=small)
    bolt = await make_tenant("bolt", plan=big)

    assert await _allowed(lambda: ratelimits.check_api(acme, caller="user:1"), 10) == 3
    for _ in range(10):  # hammering past its own limit does not spend the company's budget
        with pytest.raises(RateLimited):
            await ratelimits.check_api(acme, caller="user:1")
    # Another caller of the same company has a budget of its own, up to the company's.
    assert await _allowed(lambda: ratelimits.check_api(acme, caller="partner:x"), 10) == 2
    with pytest.raises(RateLimited) as refused:
        await ratelimits.check_api(acme, caller="user:2")
    assert 1 <= refused.value.retry_after <= 60
    # Bolt's user 1 (same id, other company) is untouched by Acme's traffic.
    assert await _allowed(lambda: ratelimits.check_api(bolt, caller="user:1"), 10) == 8


async def test_plan_limits_are_cached_briefly(make_plan: MakePlan) -> None:
    plan = await make_plan(api_requests_per_minute=7)
    assert (await ratelimits.plan_limits(plan)).amounts[Limit.api_caller] == 7
    from patone.core.runtime.db import engine

    await engine.execute(
        "UPDATE platform.plans SET api_requests_per_minute = 9 WHERE name = $1", plan
    )
    assert (await ratelimits.plan_limits(plan)).amounts[Limit.api_caller] == 7
    ratelimits.forget_plan_limits(plan)
    assert (await ratelimits.plan_limits(plan)).amounts[Limit.api_caller] == 9


async def test_keys_live_in_the_companys_namespace(
    make_plan: MakePlan, make_tenant: MakeTenant, redis_client
) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant("acme", plan=await make_plan())
    await ratelimits.check_api(tenant, caller="user:1")
    keys = [key async for key in redis_client.scan_iter(match=f"t:{tenant.slug}:rl/*")]
    assert len(keys) == 2


async def test_a_check_costs_well_under_a_millisecond(
    make_plan: MakePlan, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant("acme", plan=await make_plan(tenant_api_requests_per_minute=10**6))
    await ratelimits.check_api(tenant, caller="user:0")
    started = time.perf_counter()
    for i in range(200):
        await ratelimits.check_api(tenant, caller=f"user:{i % 20}")
    per_call = (time.perf_counter() - started) / 200
    assert per_call < 0.005  # generous for a shared CI machine; bench/auth.py measures p50
