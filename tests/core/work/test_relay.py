"""The outbox relay: committed events reach Redis, per tenant, and none is lost."""

from __future__ import annotations

import asyncio
import json

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from patone.core.common.permissions import SYSTEM
from patone.core.domain import customers
from patone.core.runtime.db import engine
from patone.core.runtime.redis import get_redis
from patone.core.work.relay import Relay, events_channel, relay_tenant
from patone.tenants.isolation import tenant_transaction
from patone.tenants.registry import TenantCache, TenantInfo
from tests.conftest import MakeTenant


async def _unpublished(tenant: TenantInfo) -> int:
    async with tenant_transaction(tenant):
        rows = await engine.fetch("SELECT count(*) AS n FROM outbox WHERE published_at IS NULL")
    return int(rows[0]["n"])


async def test_events_are_published_in_order_to_their_tenants_channel(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    pubsub = get_redis().pubsub()
    await pubsub.subscribe(events_channel(acme.slug), events_channel(bolt.slug))
    for name in ("One", "Two"):
        await customers.create_customer(acme, SYSTEM, {"name": name})
    assert await relay_tenant(acme, get_redis()) == 2
    assert await relay_tenant(acme, get_redis()) == 0
    received = []
    quiet = 0
    for _ in range(200):  # until both arrived and nothing more comes for 0.2 s
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.02)
        if message is not None:
            received.append((message["channel"], json.loads(message["data"])))
        quiet = 0 if message is not None or len(received) < 2 else quiet + 1
        if quiet >= 10:
            break
    await pubsub.aclose()
    assert len(received) == 2, "both events arrive, and nothing else"
    assert [channel for channel, _ in received] == [events_channel(acme.slug)] * 2
    assert [m["topic"] for _, m in received] == ["customer.created"] * 2
    assert received[0][1]["id"] < received[1][1]["id"]
    assert {m["payload"]["tenant"] for _, m in received} == {acme.slug}
    assert await _unpublished(acme) == 0


async def test_redis_down_loses_nothing(two_tenants: tuple[TenantInfo, TenantInfo]) -> None:
    acme, _ = two_tenants
    await customers.create_customer(acme, SYSTEM, {"name": "Pat"})
    dead = aioredis.Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)
    )
    with pytest.raises(Exception):  # noqa: B017 (any connection error will do)
        await relay_tenant(acme, dead)
    await dead.aclose()
    assert await _unpublished(acme) == 1
    assert await relay_tenant(acme, get_redis()) == 1
    assert await _unpublished(acme) == 0


async def test_a_rolled_back_change_emits_nothing(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, _ = two_tenants
    with pytest.raises(RuntimeError):
        async with tenant_transaction(acme):
            await customers.create_customer(acme, SYSTEM, {"name": "Ghost"})
            raise RuntimeError("abort")
    assert await _unpublished(acme) == 0


async def test_the_running_relay_publishes_on_commit(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    pubsub = get_redis().pubsub()
    await pubsub.subscribe(events_channel(acme.slug))
    relay = Relay(get_redis(), TenantCache(ttl=60))
    await relay.start()
    try:
        await customers.create_customer(acme, SYSTEM, {"name": "Live"})
        message = None
        for _ in range(50):
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
            if message:
                break
        assert message is not None
        assert json.loads(message["data"])["topic"] == "customer.created"
        for _ in range(50):  # published first, then marked published on commit
            if await _unpublished(acme) == 0:
                break
            await asyncio.sleep(0.02)
        assert await _unpublished(acme) == 0 and await _unpublished(bolt) == 0
    finally:
        await relay.stop()
        await pubsub.aclose()


async def test_the_running_relay_leaves_a_simulations_events_to_the_simulator(
    make_tenant: MakeTenant,
) -> None:
    """A company `patone simulate` made is run by the simulator alone: a server beside it
    relaying its events would queue jobs that run its engine on the real clock."""
    acme = await make_tenant("acme", name="Acme Towing")
    sim = await make_tenant("sim", name="Simulation", simulation=True)
    assert sim.is_simulation and not sim.is_active and not acme.is_simulation
    pubsub = get_redis().pubsub()
    await pubsub.subscribe(events_channel(acme.slug), events_channel(sim.slug))
    relay = Relay(get_redis(), TenantCache(ttl=60))
    await relay.start()
    try:
        await customers.create_customer(sim, SYSTEM, {"name": "Simulated"})
        await customers.create_customer(acme, SYSTEM, {"name": "Live"})
        channels = []
        for _ in range(20):  # acme's event arrives; sim's never does
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
            if message:
                channels.append(message["channel"])
        assert channels == [events_channel(acme.slug)]
        assert await _unpublished(acme) == 0 and await _unpublished(sim) == 1
    finally:
        await relay.stop()
        await pubsub.aclose()
