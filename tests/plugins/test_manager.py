"""Calling plugins: order, async and sync, isolation of failures and hangs, circuit breaking."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

from patone.plugins.hookspecs import hookimpl
from patone.plugins.manager import CircuitBreaker, PluginManager
from patone.plugins.types import DeliveryFailed, GeoPoint, PluginInfo, RouteEstimate

DOCS = Path(__file__).parents[2] / "docs" / "plugins.md"


class Broken:
    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return PluginInfo(name="broken", title="Broken")

    @hookimpl(tryfirst=True)
    def geocode(self, address: str) -> Any:
        raise RuntimeError("provider exploded")

    @hookimpl
    def on_event(self, event: Any) -> Any:
        raise RuntimeError("boom")


class Hanging:
    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return PluginInfo(name="hanging", title="Hanging")

    @hookimpl
    async def geocode(self, address: str) -> Any:
        await asyncio.sleep(30)

    @hookimpl
    def on_event(self, event: Any) -> Any:
        time.sleep(30)  # a blocking SDK call that never returns


class Good:
    def __init__(self) -> None:
        self.configs: list[dict[str, Any]] = []

    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return PluginInfo(name="good", title="Good")

    @hookimpl
    async def geocode(self, config: dict[str, Any], address: str) -> GeoPoint:
        self.configs.append(config)
        return GeoPoint(lat=52.52, lng=13.40, address=address.title())

    @hookimpl
    def on_event(self, tenant: Any, event: Any) -> str:
        return f"{tenant}:{event}"


def _manager(*plugins: object, timeout: float = 0.3, **kwargs: Any) -> PluginManager:
    manager = PluginManager(load_entry_points=False, timeout=timeout, **kwargs)
    for plugin in plugins:
        manager.register(plugin)
    return manager


async def test_a_raising_or_hanging_plugin_never_breaks_the_call() -> None:
    good = Good()
    manager = _manager(good, Hanging(), Broken())
    started = time.monotonic()
    answer = await manager.call_first("geocode", address="alexanderplatz")
    assert answer is not None and answer.plugin == "good"
    assert answer.value == GeoPoint(lat=52.52, lng=13.40, address="Alexanderplatz")
    results = await manager.call_all("on_event", tenant="acme", event="request.created")
    by_plugin = {r.plugin: r for r in results}
    assert by_plugin["good"].value == "acme:request.created"
    assert "RuntimeError: boom" in (by_plugin["broken"].error or "")
    assert "timed out" in (by_plugin["hanging"].error or "")
    assert time.monotonic() - started < 2.0  # two time-outs of 0.3 s, not 30 s
    manager.close()


async def test_only_enabled_plugins_are_called_each_with_its_tenants_config() -> None:
    good = Good()
    manager = _manager(good, Broken())
    answer = await manager.call_first(
        "geocode", enabled={"good": {"key": "acme-key"}}, tenant_key="acme", address="x"
    )
    assert answer is not None and good.configs == [{"key": "acme-key"}]
    assert await manager.call_first("geocode", enabled={}, tenant_key="bolt", address="x") is None
    manager.close()


async def test_the_breaker_stops_calling_a_failing_plugin_then_tries_again() -> None:
    now = [0.0]
    breaker = CircuitBreaker(threshold=3, reset_after=10, clock=lambda: now[0])
    manager = _manager(Broken(), breaker=breaker)
    for _ in range(3):
        [result] = await manager.call_all("on_event", tenant_key="acme", event="e")
        assert result.error
    [skipped] = await manager.call_all("on_event", tenant_key="acme", event="e")
    assert skipped.skipped and skipped.error == "circuit open"
    [other_tenant] = await manager.call_all("on_event", tenant_key="bolt", event="e")
    assert not other_tenant.skipped  # one tenant's broken config does not silence another's
    now[0] = 11
    [retried] = await manager.call_all("on_event", tenant_key="acme", event="e")
    assert not retried.skipped and retried.error
    manager.close()


def test_the_breaker_tolerates_sporadic_failures_but_opens_for_a_failing_provider() -> None:
    import random

    now = [0.0]
    breaker = CircuitBreaker(clock=lambda: now[0])
    draw = random.Random(3)
    for _ in range(5000):  # a provider losing 30 % of calls at random is still called
        assert breaker.allows(("acme", "sms", "send_sms"))
        if draw.random() < 0.3:
            breaker.failed(("acme", "sms", "send_sms"))
        else:
            breaker.succeeded(("acme", "sms", "send_sms"))
    waves = ("acme", "email", "send_email")
    for _ in range(100):  # 64 calls at once, a third failing, the failures ending last
        outcomes = sorted(draw.random() >= 0.3 for _ in range(64))
        for ok in reversed(outcomes):
            assert breaker.allows(waves)
            (breaker.succeeded if ok else breaker.failed)(waves)
    flapping = ("bolt", "sms", "send_sms")
    for i in range(30):  # 9 in 10 calls failing, never 10 in a row: it opens on the rate
        (breaker.succeeded if i % 10 == 0 else breaker.failed)(flapping)
    assert breaker.is_open(flapping)
    now[0] = 31.0
    assert breaker.allows(flapping)  # half-open
    breaker.failed(flapping)
    assert breaker.is_open(flapping)  # one failure closes the door again
    now[0] = 62.0
    breaker.succeeded(flapping)
    assert not breaker.is_open(flapping)


async def test_the_offline_maps_plugin_is_installed_through_its_entry_point() -> None:
    manager = PluginManager(load_entry_points=True)
    assert manager.infos()["maps-offline"].default_enabled
    answer = await manager.call_first(
        "route",
        origin={"lat": 52.52, "lng": 13.405},
        destination={"lat": 52.52, "lng": 13.552},
        depart_at=None,
    )
    assert answer is not None and answer.plugin == "maps-offline"
    estimate = answer.value
    assert isinstance(estimate, RouteEstimate)
    assert 12_000 < estimate.distance_m < 14_000  # ~10 km straight, x1.3 by road
    assert 15 * 60 < estimate.duration_s < 20 * 60
    manager.close()


def test_every_hook_is_documented() -> None:
    documented = set(re.findall(r"^### `(\w+)`", DOCS.read_text(), flags=re.MULTILINE))
    hooks = set(PluginManager(load_entry_points=False).hook_names())
    assert hooks - documented == set(), "hooks missing from docs/plugins.md"
    assert documented - hooks == set(), "docs/plugins.md describes hooks that do not exist"


class Slow:
    """A blocking SDK call that takes a while and counts its calls."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.calls = 0

    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return PluginInfo(name="slow", title="Slow")

    @hookimpl
    def on_event(self, event: Any) -> str:
        self.calls += 1
        time.sleep(self.seconds)
        return str(event)


async def test_waiting_for_a_thread_is_not_the_plugins_time_out() -> None:
    slow = Slow(0.2)  # each call within the 0.3 s time-out, but one thread for three calls
    manager = _manager(slow, timeout=0.3, threads=1)
    results = await asyncio.gather(*(manager.call_all("on_event", event=n) for n in range(3)))
    assert [r.value for [r] in results] == ["0", "1", "2"]  # the third waited 0.4 s: fine
    manager.close()


async def test_a_call_that_never_gets_a_thread_is_dropped_not_ambiguous() -> None:
    slow = Slow(1.0)  # holds the only thread past the queue limit (2 time-outs of 0.2 s)
    manager = _manager(slow, timeout=0.2, threads=1)
    first, second = await asyncio.gather(
        manager.call_all("on_event", event=1), manager.call_all("on_event", event=2)
    )
    assert "timed out" in (first[0].error or "")
    failure = second[0].exception
    assert isinstance(failure, DeliveryFailed) and not failure.ambiguous
    assert "not called" in str(failure)
    await asyncio.sleep(1.2)  # the thread is free again: the dropped call never ran
    assert slow.calls == 1
    manager.close()
