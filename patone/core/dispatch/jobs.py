"""The engine in the workers: a sweep job per company, started by events and by the scheduler.

Events that can change who should get an offer (a new request, one sent back to the queue, a
declined or lapsed offer, a driver coming on shift) queue a sweep of their company straight from
the relay (before the fan-out job with the other handlers), so an
emergency is offered within a second of being created. The scheduler sweeps every second the
companies with dispatch work in hand (live offers, waiting requests, jobs being driven to: a
Redis set the sweeps keep), because offer deadlines pass with no event and ETAs follow the
drivers' pings; and every minute every active company, in
case that set missed one (Redis lost it). A sweep that is already queued is not queued again.

Every minute the scheduler also queues a fleet re-plan per active company (`replan.py`), which
plans only when the company re-plans, has jobs to plan, and its latest plan is `replan_minutes`
old.

Every minute it also queues a staging round per active company (`staging.py`), which tells
idle drivers where to wait only every `staging.STAGE_MINUTES`, while the company stages.

Each new offer, and each new waiting-place suggestion, also rings the driver's phones (a Web
Push through the company's push provider), from the fan-out job: the driver app's
`offerUpdates` and `stagingUpdates` sockets only hear them while the app is open.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import dramatiq
from redis.exceptions import RedisError

from patone.core.common import topics
from patone.core.dispatch import autodispatch, eta, replan, staging
from patone.core.dispatch.matching import IDLE
from patone.core.domain import push
from patone.core.runtime.clock import now
from patone.core.runtime.db import engine
from patone.core.runtime.redis import DISPATCH_BUSY, tenant_key
from patone.core.runtime.scheduler import periodic
from patone.core.work.events import at_relay, event_handler
from patone.core.work.jobs import broker_redis, current_job, send_to_active_tenants, tenant_actor
from patone.plugins.types import DeliveryFailed
from patone.tenants.isolation import TenantRef, tenant_transaction
from patone.tenants.registry import TenantInfo, forget_orphan, tenant_cache

log = logging.getLogger(__name__)

BUSY_KEY = DISPATCH_BUSY  # companies with live offers or waiting requests
QUEUED_SECONDS = 10  # a queued sweep not started by then may be queued again

_WAKING = topics.names(
    topics.REQUEST_CREATED, topics.OFFER_DECLINED, topics.OFFER_EXPIRED, topics.OFFER_WITHDRAWN
)


def _queued_key(slug: str) -> str:
    return tenant_key(slug, "dispatch", "queued")


def _wakes(event: dict[str, Any]) -> bool:
    payload = event.get("payload") or {}
    if event.get("topic") in _WAKING:
        return True
    if topics.REQUEST_STATUS_CHANGED.matches(event):
        return payload.get("status") == "pending"
    if topics.DRIVER_STATUS_CHANGED.matches(event):
        return payload.get("to") == "available"
    return False


def queue_sweep(broker: dramatiq.Broker, tenant: TenantRef) -> bool:
    """Queue a sweep of the company unless one is already waiting (synchronous: a thread)."""
    client = broker_redis(broker)
    if not client.set(_queued_key(tenant.slug), "1", nx=True, ex=QUEUED_SECONDS):
        return False
    broker.enqueue(sweep_tenant.message_on(broker, tenant))
    return True


@at_relay("dispatch")
def _wake_at_once(broker: dramatiq.Broker, tenant: TenantRef, events: list[dict[str, Any]]) -> None:
    """Straight from the relay, not behind the fan-out's other handlers: an emergency's offer
    should not wait for the notifications of the events before it."""
    if any(_wakes(event) for event in events):
        queue_sweep(broker, tenant)


@event_handler("dispatch_offers")
async def _ring_drivers(
    tenant: TenantInfo, events: list[dict[str, Any]], broker: dramatiq.Broker
) -> None:
    offers = [int(e["entity_id"]) for e in events if topics.OFFER_CREATED.matches(e)]
    if offers:
        await asyncio.to_thread(enqueue_offer_pushes, broker, tenant, offers)
    staged = [e for e in events if topics.DRIVER_STAGING_SUGGESTED.matches(e)]
    if staged:
        await asyncio.to_thread(enqueue_staging_pushes, broker, tenant, staged)


def _enqueue_once(broker: dramatiq.Broker, message: dramatiq.Message[Any], key: str) -> None:
    """Queue a push job with `key` as its message id: relayed twice, queued once more at most,
    and the job's claim keeps it to one push."""
    broker.enqueue(message.copy(message_id=key))


def enqueue_offer_pushes(broker: dramatiq.Broker, tenant: TenantRef, offer_ids: list[int]) -> None:
    """Queue a push per new offer."""
    for offer_id in offer_ids:
        message = push_offer.message_on(broker, tenant, offer_id)
        _enqueue_once(broker, message, f"offer-push-{tenant.slug}-{offer_id}")


def enqueue_staging_pushes(
    broker: dramatiq.Broker, tenant: TenantRef, events: list[dict[str, Any]]
) -> None:
    """Queue a push per new waiting-place suggestion (`driver.staging_suggested` events)."""
    for event in events:
        payload = event["payload"]
        driver_id, at = int(payload["driver_id"]), str(payload["suggested_at"])
        key = f"staging-push-{tenant.slug}-{_stamp(driver_id, at)}"
        _enqueue_once(broker, push_staging.message_on(broker, tenant, driver_id, at), key)


def _stamp(driver_id: int, suggested_at: str) -> str:
    """One suggestion to one driver, in keys and message ids."""
    return f"{driver_id}-{datetime.fromisoformat(suggested_at).timestamp():.6f}"


@dataclass(frozen=True)
class _Ring:
    """What to push to a staff user's phones (`push.send_to_owner`'s message)."""

    user_id: int
    title: str
    body: str
    url: str
    tag: str  # a newer push with the same tag replaces the older on the phone
    message_id: str
    ttl: int
    urgency: str = "normal"


async def _ring_once(
    key: str, what: str, read: Callable[[TenantInfo], Awaitable[_Ring | None]]
) -> int:
    """Ring a person's phones at most once for `key` (a claim in Redis: a retried or twice
    queued job rings once): `read` says what to push (None: nothing); `what` names it in the
    log. A failure that a retry may fix releases the claim and raises; a permanent one (no push
    provider, every device refused) is logged: the app's socket still tells. Returns the
    devices that took it."""
    client = broker_redis()
    if not await asyncio.to_thread(client.set, key, "claimed", nx=True, ex=3600):
        return 0
    tenant = current_job().tenant
    ring = await read(tenant)
    if ring is None:
        return 0
    try:
        deliveries = await push.send_to_owner(
            tenant,
            "user",
            ring.user_id,
            title=ring.title,
            body=ring.body,
            url=ring.url,
            tag=ring.tag,
            message_id=ring.message_id,
            ttl=ring.ttl,
            urgency=ring.urgency,
        )
    except DeliveryFailed as error:
        if error.permanent:
            log.info("%s not pushed: %s", what, error, extra={"tenant": tenant.slug})
            return 0
        await asyncio.to_thread(client.delete, key)  # let the retry ring
        raise
    if not deliveries:  # the common case of a driver who never allowed push: not news
        log.debug("%s not pushed: no device", what, extra={"tenant": tenant.slug})
    return len(deliveries)


_OFFER = (
    "SELECT o.id, o.status, o.deadline, d.user AS user_id, r.number, r.priority, "
    "r.pickup_address, t.name AS service FROM offers o JOIN drivers d ON d.id = o.driver_id "
    "JOIN service_requests r ON r.id = o.request_id "
    "JOIN service_types t ON t.id = r.service_type WHERE o.id = $1"
)


@tenant_actor(
    actor_name="patone.dispatch.push_offer",
    queue_name="dispatch",
    transaction=False,
    max_retries=2,
    min_backoff=500,
    max_backoff=2_000,
)
async def push_offer(tenant_slug: str, offer_id: int) -> int:
    """Ring the offered driver's phones (their app may be closed): the job, where, and how long
    they have. Nothing once the offer is answered or lapsed, or when the driver has no login;
    each offer rings once. Returns the devices that took it."""

    async def read(tenant: TenantInfo) -> _Ring | None:
        async with tenant_transaction(tenant):
            rows = await engine.fetch(_OFFER, offer_id)
        offer = rows[0] if rows else None
        left = (offer["deadline"] - now()).total_seconds() if offer else 0
        if offer is None or offer["status"] != "open" or offer["user_id"] is None or left <= 0:
            return None
        urgent = offer["priority"] == "emergency"
        return _Ring(
            user_id=offer["user_id"],
            title=f"{'EMERGENCY: ' if urgent else ''}{offer['service']} #{offer['number']}",
            body=f"{offer['pickup_address'] or 'New job'}: answer within {left:.0f} s",
            url=f"/driver/offers/{offer_id}",
            tag=f"offer:{offer_id}",
            message_id=f"offer-{offer_id}",
            ttl=max(1, int(left)),
            urgency="high",
        )

    key = tenant_key(tenant_slug, "dispatch", "offer_push", str(offer_id))
    return await _ring_once(key, f"offer {offer_id}", read)


_STAGED = (
    "SELECT m.lat, m.lng, m.km, m.place, m.suggested_at, d.user AS user_id FROM staging_moves m "
    f"JOIN drivers d ON d.id = m.driver_id WHERE m.driver_id = $1 AND {IDLE}"
)


@tenant_actor(
    actor_name="patone.dispatch.push_staging",
    queue_name="dispatch",
    priority=5,  # after the sweeps and offer pushes: a waiting place can wait a second
    transaction=False,
    max_retries=2,
    min_backoff=500,
    max_backoff=5_000,
)
async def push_staging(tenant_slug: str, driver_id: int, suggested_at: str) -> int:
    """Ring an idle driver's phones with where to wait (`staging.py`): the place, how far, and
    why. Nothing once a newer suggestion replaced it or it was cleared (the newer one rings),
    when the driver is no longer idle (an offer came first), or has no login (logged); each
    suggestion rings once. Returns the devices that took it."""
    what = f"waiting place of driver {driver_id}"

    async def read(tenant: TenantInfo) -> _Ring | None:
        async with tenant_transaction(tenant):
            rows = await engine.fetch(_STAGED, driver_id)
        if not rows or rows[0]["suggested_at"] != datetime.fromisoformat(suggested_at):
            return None
        move = rows[0]
        if move["user_id"] is None:
            log.info("%s not pushed: no login", what, extra={"tenant": tenant_slug})
            return None
        place = move["place"] or f"{move['lat']:.4f}, {move['lng']:.4f}"
        return _Ring(
            user_id=move["user_id"],
            title=f"Wait near {place}",
            body=f"{move['km']:.1f} km from you: where this hour's calls come from. "
            "Drive there while you are free.",
            url="/driver",
            tag=f"staging:{driver_id}",
            message_id=f"staging-{_stamp(driver_id, suggested_at)}",
            ttl=staging.STAGE_MINUTES * 60,  # the next round tells anew
        )

    key = tenant_key(tenant_slug, "dispatch", "staging_push", _stamp(driver_id, suggested_at))
    return await _ring_once(key, what, read)


@tenant_actor(
    actor_name="patone.dispatch.sweep",
    queue_name="dispatch",
    transaction=False,
    max_retries=3,
    min_backoff=500,
    max_backoff=5_000,
)
async def sweep_tenant(tenant_slug: str) -> dict[str, int]:
    """Close lapsed offers and offer waiting requests, for one company."""
    client = broker_redis()
    await asyncio.to_thread(client.delete, _queued_key(tenant_slug))
    tenant = current_job().tenant
    report = await autodispatch.sweep(tenant)
    etas = await eta.refresh_stale(tenant)
    await _mark_busy(tenant, client)
    return {"expired": report.expired, "offered": report.offered, "etas_changed": etas}


async def _mark_busy(tenant: TenantInfo, client: Any) -> None:
    async with tenant_transaction(tenant):
        rows = await engine.fetch(
            "SELECT EXISTS (SELECT 1 FROM offers WHERE status = 'open') "
            "OR EXISTS (SELECT 1 FROM service_requests WHERE (status = 'pending' "
            "AND NOT needs_dispatcher) OR status = 'en_route') AS busy"
        )
    try:
        if rows[0]["busy"]:
            await asyncio.to_thread(client.sadd, BUSY_KEY, tenant.slug)
        else:
            await asyncio.to_thread(client.srem, BUSY_KEY, tenant.slug)
    except RedisError:  # the minute's full sweep covers it
        log.warning("dispatch busy set not updated", extra={"tenant": tenant.slug})


@periodic("dispatch.sweep_busy", every=1)
async def sweep_busy() -> int:
    """Sweep the companies with dispatch work in hand (offer deadlines pass with no event).
    A slug that no longer names an active company leaves the set: a purged company's would
    otherwise be swept, and refused, every `QUEUED_SECONDS` for ever."""
    broker = dramatiq.get_broker()
    client = broker_redis(broker)
    slugs = await asyncio.to_thread(client.smembers, BUSY_KEY)
    queued = 0
    for raw in slugs:
        slug = raw.decode() if isinstance(raw, bytes) else str(raw)
        tenant = await tenant_cache.by_slug(slug)
        if tenant is None or not tenant.is_active:
            await asyncio.to_thread(client.srem, BUSY_KEY, slug)
            if tenant is None:  # purged: what its last sweep wrote after the purge goes too
                await forget_orphan(slug)
            continue
        queued += await asyncio.to_thread(queue_sweep, broker, tenant)
    return queued


@periodic("dispatch.sweep_all", every=60)
async def sweep_all() -> int:
    """Sweep every active company once a minute, in case the busy set missed one."""
    return await send_to_active_tenants(sweep_tenant)


@tenant_actor(
    actor_name="patone.dispatch.replan",
    queue_name="dispatch",
    priority=10,  # after the sweeps: an offer waits for no plan
    transaction=False,
    max_retries=1,
    max_age=60_000,  # the next minute's queues a fresh one
    time_limit=60_000,
)
async def replan_tenant(tenant_slug: str) -> int | None:
    """Re-plan one company's fleet when it is due; the stored plan's id, else None."""
    return await replan.replan(current_job().tenant, when_due=True)


@periodic("dispatch.replan", every=60)
async def replan_all() -> int:
    """Queue a re-plan of every active company (each decides whether it is due)."""
    return await send_to_active_tenants(replan_tenant)


@tenant_actor(
    actor_name="patone.dispatch.stage",
    queue_name="dispatch",
    priority=10,  # after the sweeps: an offer waits for no waiting place
    transaction=False,
    max_retries=1,
    max_age=60_000,  # the next minute's queues a fresh one
)
async def stage_tenant(tenant_slug: str) -> int | None:
    """Tell one company's idle drivers where to wait when it is due (`staging.publish_when_due`);
    the drivers told something new, else None."""
    moves = await staging.publish_when_due(current_job().tenant)
    return None if moves is None else len(moves)


@periodic("dispatch.stage", every=60)
async def stage_all() -> int:
    """Queue a staging round of every active company (each decides whether it is due)."""
    return await send_to_active_tenants(stage_tenant)
