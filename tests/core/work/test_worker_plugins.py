"""Plugins bring their own jobs (the `actors` hook): workers declare and run them, with the
async Redis client of the worker's own event loop."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
import redis

from patone.core.runtime.redis import get_redis
from patone.core.work.jobs import configure_broker, current_job, tenant_actor
from patone.core.work.worker import plugin_actors, start_in_process_worker
from patone.plugins.hookspecs import hookimpl
from patone.plugins.types import PluginInfo
from patone.tenants.registry import TenantInfo
from tests.conftest import REDIS_URL
from tests.support import plugin_runtime

counters = redis.Redis.from_url(REDIS_URL)
clients_seen: list[object] = []


@tenant_actor(actor_name="tests.plugin_jobs.tally")
async def tally(tenant_slug: str, key: str) -> None:
    # The worker's own loop gets its own async Redis client (the app's belongs to its loop:
    # redis-py would otherwise drop and reopen connections whenever the other loop used them).
    client = get_redis()
    clients_seen.append(client)
    await client.rpush(key, current_job().tenant.slug)


class JobsPlugin:
    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return PluginInfo(name="jobs-plugin", title="Jobs plugin")

    @hookimpl
    def actors(self) -> list[object]:
        return [tally, "not an actor"]


@pytest.fixture
def runtime() -> Iterator[None]:
    with plugin_runtime(JobsPlugin(), entry_points=False):
        yield


async def test_a_plugins_actor_runs_on_the_worker_for_its_tenant(
    two_tenants: tuple[TenantInfo, TenantInfo],
    runtime: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    acme, _ = two_tenants
    assert plugin_actors() == ["tests.plugin_jobs.tally"]
    assert "is not a tenant actor" in caplog.text
    namespace = f"patone-test-{uuid.uuid4().hex[:10]}"
    broker = configure_broker(REDIS_URL, namespace=namespace)
    stop = start_in_process_worker(broker, threads=1)
    key = f"plugin-jobs-{uuid.uuid4().hex}"
    try:
        tally.send(acme, key)
        for _ in range(100):
            if counters.llen(key):
                break
            await asyncio.sleep(0.05)
        assert counters.lrange(key, 0, -1) == [acme.slug.encode()]
        assert clients_seen and clients_seen[-1] is not get_redis()
    finally:
        await asyncio.to_thread(stop, 5000)
        counters.delete(key)
        keys = list(counters.scan_iter(match=f"{namespace}:*"))
        if keys:
            counters.delete(*keys)
