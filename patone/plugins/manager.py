"""Calling plugins safely: one implementation at a time, each isolated and time-limited.

pluggy's own call loop is not used for calls: an async implementation of a first-result hook
returns a coroutine (not None), so pluggy would stop there, and one raising implementation would
abort the whole call. Instead each implementation is called in pluggy's order, its result
awaited if needed, plain functions run in a bounded thread pool, every call bounded by a
time-out (counted from when the call starts: waiting for a free thread is not the plugin's
time, and a call that never got one within `QUEUE_WAIT` time-outs ends with a `DeliveryFailed`
that says the provider was not called), and every failure logged with the plugin's name and
counted by a circuit breaker that stops calling a plugin (for one tenant and hook) that keeps
failing.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pluggy

from patone.plugins import hookspecs
from patone.plugins.types import DeliveryFailed, PluginInfo, PluginResult

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "patone.plugins"
DEFAULT_TIMEOUT = 5.0
DEFAULT_THREADS = 32  # blocking SDK calls in flight per process (they wait on the network)
QUEUE_WAIT = 2.0  # time-outs a blocking call may wait for a free thread before giving up


class NotCalled(DeliveryFailed):
    """The plugin was not called (every thread stayed busy): nothing reached the provider, and
    the circuit breaker does not count it against the provider."""


@dataclass
class _Breaker:
    failures: int = 0  # in a row
    outcomes: deque[bool] = field(default_factory=deque)  # the latest calls, True = ok
    opened_at: float | None = None


class CircuitBreaker:
    """Stops calling a provider that is failing, not one that merely fails now and then.

    It opens when at least `rate` of the last `window` calls failed (once there are `min_calls`
    of them), and, if a `threshold` is given, after that many failures in a row: a provider that
    loses a few percent of calls keeps being called. After `reset_after` seconds calls go
    through again (half-open); a success closes it, a failure opens it again at once.

    "In a row" is off by default: calls made at once end in the order of their durations, so
    the failures of a busy sender's batch (time-outs end last) arrive in a row from a provider
    that answers two calls in three at once. The rate over the window does not care.
    """

    def __init__(
        self,
        threshold: int | None = None,
        reset_after: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        *,
        window: int = 50,
        min_calls: int = 20,
        rate: float = 0.8,
    ) -> None:
        self.threshold = threshold
        self.reset_after = reset_after
        self.clock = clock
        self.window = window
        self.min_calls = min_calls
        self.rate = rate
        self._state: dict[tuple[str, ...], _Breaker] = {}

    def _of(self, key: tuple[str, ...]) -> _Breaker:
        state = self._state.get(key)
        if state is None:
            state = self._state[key] = _Breaker(outcomes=deque(maxlen=self.window))
        return state

    def allows(self, key: tuple[str, ...]) -> bool:
        state = self._state.get(key)
        if state is None or state.opened_at is None:
            return True
        return self.clock() - state.opened_at >= self.reset_after  # half-open

    def succeeded(self, key: tuple[str, ...]) -> None:
        state = self._of(key)
        state.failures = 0
        state.opened_at = None
        state.outcomes.append(True)

    def failed(self, key: tuple[str, ...]) -> None:
        state = self._of(key)
        state.failures += 1
        state.outcomes.append(False)
        calls = len(state.outcomes)
        failing = calls >= self.min_calls and state.outcomes.count(False) >= self.rate * calls
        in_a_row = self.threshold is not None and state.failures >= self.threshold
        if state.opened_at is None and (in_a_row or failing):
            log.warning(
                "circuit opened for %s: %d failures in a row, %d of the last %d calls",
                "/".join(key),
                state.failures,
                state.outcomes.count(False),
                calls,
                extra={"tenant": key[0] or None},
            )
        if state.opened_at is not None or in_a_row or failing:
            state.opened_at = self.clock()

    def is_open(self, key: tuple[str, ...]) -> bool:
        return not self.allows(key)


class PluginManager:
    """The plugins of this installation and the one way to call them."""

    def __init__(
        self,
        *,
        load_entry_points: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
        breaker: CircuitBreaker | None = None,
        threads: int = DEFAULT_THREADS,
    ) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.timeout = timeout
        self.breaker = breaker or CircuitBreaker()
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="plugin")
        self._described: list[tuple[object, PluginInfo]] | None = None
        self._implementations: dict[str, list[tuple[str, pluggy.HookImpl]]] = {}
        if load_entry_points:
            self.pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)

    def register(self, plugin: object, name: str | None = None) -> str:
        """Register a plugin module or object (tests and embedders; packages use entry points)."""
        registered = self.pm.register(plugin, name=name)
        assert registered is not None
        self._described = None
        self._implementations.clear()
        return registered

    def _descriptions(self) -> list[tuple[object, PluginInfo]]:
        """(plugin object, its PluginInfo), asked once: every hook call needs them."""
        if self._described is None:
            self._described = [
                (impl.plugin, info)
                for impl in self.pm.hook.plugin_info.get_hookimpls()
                if isinstance(info := impl.function(), PluginInfo)
            ]
        return self._described

    def infos(self) -> dict[str, PluginInfo]:
        """Every plugin that describes itself, by name."""
        return {info.name: info for _, info in self._descriptions()}

    def _plugin_names(self) -> dict[object, str]:
        """Each registered plugin object's declared name (from plugin_info), else pluggy's."""
        return {plugin: info.name for plugin, info in self._descriptions()}

    def implementations(self, hook: str) -> list[tuple[str, pluggy.HookImpl]]:
        """(plugin name, implementation) in the order pluggy would call them (worked out once
        per hook: every call needs them, and plugins register only through `register`)."""
        found = self._implementations.get(hook)
        if found is None:
            names = self._plugin_names()
            impls = getattr(self.pm.hook, hook).get_hookimpls()
            found = [(names.get(impl.plugin, impl.plugin_name), impl) for impl in reversed(impls)]
            self._implementations[hook] = found
        return found

    def implementers(self, hook: str) -> set[str]:
        """The names of the plugins that implement `hook`."""
        return {name for name, _ in self.implementations(hook)}

    async def _call_one(self, plugin: str, impl: pluggy.HookImpl, kwargs: dict[str, Any]) -> Any:
        arguments = {name: kwargs[name] for name in impl.argnames if name in kwargs}
        function = impl.function
        if inspect.iscoroutinefunction(function):
            async with asyncio.timeout(self.timeout):  # no task of its own, unlike wait_for
                result = await function(**arguments)
        else:
            result = await self._in_thread(lambda: function(**arguments))
        if inspect.isawaitable(result):
            result = await asyncio.wait_for(result, self.timeout)
        return result

    async def _in_thread(self, call: Callable[[], Any]) -> Any:
        """Run a blocking call in the pool: its time-out starts when a thread takes it, and a
        call still waiting for a thread after `QUEUE_WAIT` time-outs is dropped, never run."""
        lock = threading.Lock()
        started: list[float] = []
        dropped: list[bool] = []

        def run() -> Any:
            with lock:
                if dropped:
                    return None
                started.append(time.monotonic())
            return call()

        future = asyncio.get_running_loop().run_in_executor(self._executor, run)
        queued_until = time.monotonic() + self.timeout * QUEUE_WAIT
        while True:
            now = time.monotonic()
            if not started and now >= queued_until:
                with lock:
                    if not started:
                        dropped.append(True)
                if dropped:
                    future.cancel()
                    raise NotCalled(
                        f"not called: no free plugin thread in {self.timeout * QUEUE_WAIT:g} s"
                    )
            left = started[0] + self.timeout - now if started else queued_until - now
            if left <= 0:
                future.cancel()
                raise TimeoutError
            done, _ = await asyncio.wait({future}, timeout=left)
            if done:
                return future.result()

    async def _each(
        self,
        hook: str,
        enabled: Mapping[str, dict[str, Any]] | None,
        tenant_key: str,
        kwargs: dict[str, Any],
    ) -> Any:
        for plugin, impl in self.implementations(hook):
            if enabled is not None and plugin not in enabled:
                continue
            key = (tenant_key, plugin, hook)
            if not self.breaker.allows(key):
                yield PluginResult(plugin=plugin, skipped=True, error="circuit open")
                continue
            call_kwargs = dict(kwargs)
            call_kwargs["config"] = dict(enabled[plugin]) if enabled is not None else {}
            try:
                value = await self._call_one(plugin, impl, call_kwargs)
            except Exception as error:
                message = (
                    f"timed out after {self.timeout:g} s"
                    if isinstance(error, TimeoutError)
                    else f"{type(error).__name__}: {error}"
                )
                # A provider's refusal the plugin reported (`DeliveryFailed`) is the caller's
                # to record (a send job writes it to the delivery log and logs its retry once
                # per batch): a line per call here would be a third of a faulty provider's
                # calls. What the plugin did not explain, or a hang, is a warning.
                log.log(
                    logging.DEBUG if isinstance(error, DeliveryFailed) else logging.WARNING,
                    "plugin %s failed in %s: %s",
                    plugin,
                    hook,
                    message,
                    extra={"plugin": plugin, "hook": hook, "tenant": tenant_key or None},
                    exc_info=not isinstance(error, TimeoutError | DeliveryFailed),
                )
                if not isinstance(error, NotCalled):
                    self.breaker.failed(key)
                yield PluginResult(plugin=plugin, error=message, exception=error)
                continue
            self.breaker.succeeded(key)
            yield PluginResult(plugin=plugin, value=value)

    async def call_all(
        self,
        hook: str,
        *,
        enabled: Mapping[str, dict[str, Any]] | None = None,
        tenant_key: str = "",
        **kwargs: Any,
    ) -> list[PluginResult]:
        """Call every implementation (of the `enabled` plugins, each with its config)."""
        return [result async for result in self._each(hook, enabled, tenant_key, kwargs)]

    async def call_first(
        self,
        hook: str,
        *,
        enabled: Mapping[str, dict[str, Any]] | None = None,
        tenant_key: str = "",
        fall_through: bool = True,
        **kwargs: Any,
    ) -> PluginResult | None:
        """The first implementation's answer that is not None; failures fall through to the
        next plugin (a provider that is down does not stop a fallback from answering).

        `fall_through=False`: the first plugin that fails (or whose circuit is open) answers
        with its failure instead: senders that retry a message must not have it "delivered"
        by a fallback (email to the log) because their provider is down for a minute."""
        async for result in self._each(hook, enabled, tenant_key, kwargs):
            if result.error is None and not result.skipped and result.value is not None:
                return result
            if not fall_through and (result.error is not None or result.skipped):
                return result
        return None

    def hook_names(self) -> Iterable[str]:
        return [name for name in dir(hookspecs) if hasattr(getattr(hookspecs, name), "patone_spec")]

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
