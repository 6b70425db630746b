"""Domain events fan out through jobs: to plugins, notifications and webhooks, never twice.

The outbox relay, after publishing a batch of a tenant's events to Redis pub/sub, enqueues one
`fan_out` job for the batch (message id `events-<tenant>-<first id>-<last id>`). That job runs
every registered event handler (`@event_handler`) once for the whole batch, so a burst of
events costs a few transactions, not a few per event: this module's own queues one
`deliver_event` job per event and plugin the tenant enabled that implements `on_event`;
notifications and outbound webhooks register theirs. Each handler must be idempotent (it may run
again: the relay can enqueue an event twice, and a failing handler makes the whole fan-out
retry), which they are by writing rows keyed by the event id and queueing jobs with message ids
derived from them.

One bad event must not hold back the others: when a batch of several events fails, its job
queues each event as a `fan_out` of its own (message id `event-<tenant>-<event id>`) and ends;
only the event that fails on its own is retried and, in the end, dead-lettered.

`deliver_event` calls one plugin for one event, with a message id made from the tenant, the
event id and the plugin. A plugin that fails is retried on its own (the others are not called
again). The job claims its id in Redis before calling the plugin and marks it done afterwards,
so a duplicate finds it claimed or done and does nothing; a failed attempt releases its claim
so its retry can run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import dramatiq

from patone.core.runtime.redis import tenant_key
from patone.core.work.jobs import broker_redis, current_job, current_message_id, tenant_actor
from patone.plugins import config as plugins
from patone.tenants.isolation import TenantRef
from patone.tenants.registry import TenantInfo

log = logging.getLogger(__name__)

CLAIM_SECONDS = 600  # longer than a delivery may take
DONE_SECONDS = 7 * 24 * 3600  # longer than any redelivery or dead-letter retry comes


EventHandler = Callable[[TenantInfo, list[dict[str, Any]], dramatiq.Broker], Awaitable[None]]
_HANDLERS: dict[str, EventHandler] = {}
RelayHook = Callable[[dramatiq.Broker, TenantRef, list[dict[str, Any]]], None]
_AT_RELAY: dict[str, RelayHook] = {}


def at_relay(name: str) -> Callable[[RelayHook], RelayHook]:
    """Register `def hook(broker, tenant, events)` to run in the relay itself, just before the
    batch's fan-out job is queued: for work that cannot wait behind the other handlers (an
    emergency's dispatch). It runs in a thread, must be quick (queue a job, no more) and
    idempotent (a batch can be relayed twice)."""

    def register(hook: RelayHook) -> RelayHook:
        _AT_RELAY[name] = hook
        return hook

    return register


def event_handler(name: str) -> Callable[[EventHandler], EventHandler]:
    """Register `async def handler(tenant, events, broker)` to run for every batch of committed
    events (oldest first, one or more).

    It runs in the `fan_out` job, outside any transaction, and must be idempotent."""

    def register(handler: EventHandler) -> EventHandler:
        _HANDLERS[name] = handler
        return handler

    return register


def message_id(slug: str, event_id: int, plugin: str) -> str:
    return f"outbox-{slug}-{event_id}-{plugin}"


def fan_out_message_id(slug: str, events: list[dict[str, Any]]) -> str:
    first, last = int(events[0]["id"]), int(events[-1]["id"])
    return f"event-{slug}-{first}" if len(events) == 1 else f"events-{slug}-{first}-{last}"


@tenant_actor(actor_name="patone.events.fan_out", transaction=False, queue_name="events")
async def fan_out(tenant_slug: str, events: list[dict[str, Any]]) -> list[str]:
    """Run every event handler for a batch of events; returns the handlers' names."""
    tenant = current_job().tenant
    broker = dramatiq.get_broker()
    try:
        for handler in _HANDLERS.values():
            await handler(tenant, events, broker)
    except Exception:
        if len(events) == 1:
            raise
        log.warning(
            "a batch of %d events failed: each is queued on its own",
            len(events),
            exc_info=True,
            extra={"tenant": tenant_slug},
        )
        await asyncio.to_thread(enqueue_fan_out, broker, tenant, events, batch=1)
    return list(_HANDLERS)


def enqueue_fan_out(
    broker: dramatiq.Broker, tenant: TenantRef, events: list[dict[str, Any]], *, batch: int = 200
) -> None:
    """Run the relay hooks, then queue `fan_out` for the events, `batch` at a time (synchronous:
    call it from a thread)."""
    for hook in _AT_RELAY.values():
        try:
            hook(broker, tenant, events)
        except Exception:  # the fan-out job still comes; the hook's work waits for its sweep
            log.exception("relay hook failed", extra={"tenant": tenant.slug})
    for start in range(0, len(events), batch):
        chunk = events[start : start + batch]
        message = fan_out.message_on(broker, tenant, chunk).copy(
            message_id=fan_out_message_id(tenant.slug, chunk)
        )
        broker.enqueue(message)


@event_handler("plugins")
async def _plugin_deliveries(
    tenant: TenantInfo, events: list[dict[str, Any]], broker: dramatiq.Broker
) -> None:
    listeners = await event_listeners(tenant)
    if listeners:
        await asyncio.to_thread(enqueue_deliveries, broker, tenant, listeners, events)


async def event_listeners(tenant: TenantInfo) -> list[str]:
    """The plugins this tenant enabled that implement `on_event`."""
    try:
        runtime = plugins.get_runtime()
    except RuntimeError:
        return []
    implementing = runtime.manager.implementers("on_event")
    return sorted(implementing & set(await plugins.enabled_plugins(tenant)))


def _key(slug: str, message: str) -> str:
    return tenant_key(slug, "delivered", message)


@tenant_actor(actor_name="patone.events.deliver", transaction=False, queue_name="events")
async def deliver_event(tenant_slug: str, plugin: str, event: dict[str, Any]) -> bool:
    """Call one plugin's `on_event` for one event; returns False for a duplicate."""
    client = broker_redis()
    key = _key(tenant_slug, current_message_id.get() or "")
    claimed = await asyncio.to_thread(client.set, key, "claimed", nx=True, ex=CLAIM_SECONDS)
    if not claimed:
        return False
    try:
        tenant = current_job().tenant
        enabled = await plugins.enabled_plugins(tenant)
        if plugin not in enabled:
            return False  # turned off since the event was queued
        results = await plugins.get_runtime().manager.call_all(
            "on_event",
            enabled={plugin: enabled[plugin]},
            tenant_key=tenant_slug,
            tenant=plugins.tenant_view(tenant),
            event=event,
        )
        failed = [r for r in results if r.error is not None]
        if failed:  # retried alone, with back-off, then dead-lettered
            raise RuntimeError(f"{plugin}: {failed[0].error}")
        if not results:
            return False  # the plugin does not implement on_event
    except BaseException:
        await asyncio.to_thread(client.delete, key)
        raise
    await asyncio.to_thread(client.set, key, "done", ex=DONE_SECONDS)
    return True


def enqueue_deliveries(
    broker: dramatiq.Broker,
    tenant: TenantRef,
    plugin_names: list[str],
    events: list[dict[str, Any]],
) -> None:
    """Queue `deliver_event` for each event and plugin (synchronous: call it from a thread)."""
    for event in events:
        for plugin in plugin_names:
            message = deliver_event.message_on(broker, tenant, plugin, event).copy(
                message_id=message_id(tenant.slug, int(event["id"]), plugin)
            )
            broker.enqueue(message)
