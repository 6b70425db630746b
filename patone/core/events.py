"""Domain events reach plugins through jobs: once per plugin, retried alone, never twice.

The outbox relay, after publishing an event to Redis pub/sub, enqueues one `deliver_event` job
per plugin the tenant has enabled, with a message id made from the tenant, the event id and the
plugin. A plugin that fails is retried on its own (the others are not called again). The relay
may enqueue the same job twice (it publishes, then commits): the job claims its id in Redis
before calling the plugin and marks it done afterwards, so a duplicate finds it claimed or done
and does nothing; a failed attempt releases its claim so its retry can run.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from patone.core.jobs import current_job, current_message_id, tenant_actor
from patone.core.redis import tenant_key
from patone.plugins import config as plugins

CLAIM_SECONDS = 600  # longer than a delivery may take
DONE_SECONDS = 7 * 24 * 3600  # longer than any redelivery or dead-letter retry comes


def message_id(slug: str, event_id: int, plugin: str) -> str:
    return f"outbox-{slug}-{event_id}-{plugin}"


def _key(slug: str, message: str) -> str:
    return tenant_key(slug, "delivered", message)


@tenant_actor(actor_name="patone.events.deliver", transaction=False, queue_name="events")
async def deliver_event(tenant_slug: str, plugin: str, event: dict[str, Any]) -> bool:
    """Call one plugin's `on_event` for one event; returns False for a duplicate."""
    # Dramatiq's own synchronous client: usable from any event loop (the app's async one is not).
    client = cast(RedisBroker, dramatiq.get_broker()).client
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
            tenant=plugins.TenantView(slug=tenant.slug, name=tenant.name),
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
    broker: dramatiq.Broker, slug: str, plugin_names: list[str], event: dict[str, Any]
) -> None:
    """Queue `deliver_event` for each plugin (synchronous: call it from a thread)."""
    actor = deliver_event.bind(broker)
    for plugin in plugin_names:
        message = actor.message(slug, plugin, event).copy(
            message_id=message_id(slug, int(event["id"]), plugin)
        )
        broker.enqueue(message)
