"""Committed events reach each enabled plugin through a job: once, retried alone, per tenant."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import dramatiq
import pytest

from patone.core.common.permissions import SYSTEM
from patone.core.domain import customers
from patone.core.runtime.db import engine
from patone.core.runtime.redis import get_redis
from patone.core.work.relay import relay_tenant
from patone.plugins import config as plugins
from patone.plugins.hookspecs import hookimpl
from patone.plugins.types import PluginInfo
from patone.tenants.isolation import tenant_transaction
from patone.tenants.registry import TenantInfo
from tests.conftest import actor_for
from tests.support import plugin_runtime, running_worker

ADMIN = actor_for("admin")


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return PluginInfo(name="recorder", title="Recorder")

    @hookimpl
    def on_event(self, tenant: Any, event: dict[str, Any]) -> None:
        with self.lock:
            self.seen.append((tenant.slug, event["topic"]))


class Flaky:
    def __init__(self) -> None:
        self.calls = 0

    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return PluginInfo(name="flaky", title="Flaky")

    @hookimpl
    async def on_event(self, event: dict[str, Any]) -> None:
        self.calls += 1
        if self.calls == 1:
            raise ConnectionError("provider hiccup")


@pytest.fixture
def recorder() -> Iterator[tuple[Recorder, Flaky]]:
    record, flaky = Recorder(), Flaky()
    with plugin_runtime(record, flaky, entry_points=False, timeout=2):
        yield record, flaky


@pytest.fixture
async def broker() -> AsyncIterator[dramatiq.Broker]:
    async with running_worker() as broker:
        yield broker


async def _until(condition: Any, seconds: float = 15) -> None:
    for _ in range(int(seconds * 20)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out waiting")


async def test_each_enabled_plugin_gets_each_event_once(
    two_tenants: tuple[TenantInfo, TenantInfo],
    recorder: tuple[Recorder, Flaky],
    broker: dramatiq.Broker,
) -> None:
    acme, bolt = two_tenants
    record, flaky = recorder
    for name in ("recorder", "flaky"):
        await plugins.configure_plugin(acme, ADMIN, name, enabled=True)
    await customers.create_customer(acme, SYSTEM, {"name": "Ann"})
    await customers.create_customer(bolt, SYSTEM, {"name": "Ben"})
    for tenant in (acme, bolt):
        await relay_tenant(tenant, get_redis(), broker=broker)

    await _until(lambda: flaky.calls >= 2)  # failed once, retried alone after back-off
    await _until(lambda: len(record.seen) >= 1)
    assert record.seen == [(acme.slug, "customer.created")]

    # The relay publishing the same event again (it crashed before committing) changes nothing.
    async with tenant_transaction(acme):
        await engine.execute("UPDATE outbox SET published_at = NULL")
    assert await relay_tenant(acme, get_redis(), broker=broker) >= 1
    await asyncio.sleep(1.5)
    assert record.seen == [(acme.slug, "customer.created")]
    assert flaky.calls == 2
