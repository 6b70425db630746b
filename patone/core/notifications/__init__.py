"""Notifications: who hears of what, by which channel, in whose words, and what happened.

- **Rules** (`notification_rules`, editable per company, sensible defaults seeded): notify the
  request's *customer*, its *driver* or the *dispatchers* (staff whose role may assign) of an
  event (`request.created`, `request.assigned`, `request.en_route`, ..., see
  `templates.EVENTS`) by *email*, *SMS* or *push*.
- **Preferences** (`notification_preferences`): each staff member and customer may turn an event
  (or every event, "*") off per channel.
- **Templates** (`notification_templates`): the company's own texts, Jinja2 in a sandbox,
  checked and previewable; built-in defaults otherwise (`templates.DEFAULTS`).
- **Delivery log** (`notifications`): one row per recipient, channel and address of an event,
  with its status, attempts (and how many were ambiguous), the provider's id and its delivery
  report.

`planning` turns committed events into rows (in the `fan_out` job of each batch of events);
`sending` sends them in batches, a job each; `admin` is what the company manages. A periodic
sweep re-queues rows whose job was lost (Redis flushed, a message dead-lettered by hand), so a
notification is never silently stuck.
"""

from __future__ import annotations

import asyncio

import dramatiq

from patone.core.notifications import planning, sending
from patone.core.notifications.sending import enqueue_sends, send_notifications
from patone.core.runtime.db import engine
from patone.core.runtime.scheduler import periodic
from patone.core.work.jobs import current_job, send_to_active_tenants, tenant_actor

STALE_SECONDS = 600  # a queued or retrying row untouched this long has lost its job

__all__ = ["planning", "send_notifications", "sending", "sweep_tenant"]


@tenant_actor(actor_name="patone.notifications.sweep", queue_name="notifications")
async def sweep_tenant(tenant_slug: str) -> int:
    """Re-queue this tenant's notifications whose job was lost; returns how many."""
    rows = await engine.fetch(
        "SELECT id FROM notifications WHERE status IN ('queued', 'retrying', 'sending') "
        "AND updated_at < now() - make_interval(secs => $1) "
        "AND (lease_until IS NULL OR lease_until < now()) ORDER BY id LIMIT 1000",
        STALE_SECONDS,
    )
    ids = [r["id"] for r in rows]
    if ids:
        await engine.execute(
            "UPDATE notifications SET updated_at = now() WHERE id = ANY($1::bigint[])", ids
        )
        await asyncio.to_thread(enqueue_sends, dramatiq.get_broker(), current_job().tenant, ids)
    return len(ids)


@periodic("notifications.sweep", every=300)
async def sweep_all() -> int:
    """Queue a sweep for every active tenant (the scheduler runs this every 5 minutes)."""
    return await send_to_active_tenants(sweep_tenant)
