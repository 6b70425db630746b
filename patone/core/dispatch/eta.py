"""ETAs: when the driver is expected at the scene, shown to the customer and the dispatcher.

Set when a driver accepts (leaving now from where they are, or, for a job queued behind the one
they are on, when and where that one should end: `workload.py`), and
recomputed from the maps plugin as the driver moves; a change of more than `CHANGE_SECONDS` is
stored and emitted (`request.eta_changed`), which live views and notifications pick up. Smaller
wobbles are not: a customer watching the countdown should not see it jump by seconds.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from patone.core.common import topics
from patone.core.common.activity import emit
from patone.core.dispatch import workload
from patone.core.dispatch.positions import positions_of
from patone.core.dispatch.travel import travel_estimates
from patone.core.runtime.clock import now
from patone.core.runtime.db import engine
from patone.plugins.types import GeoPoint
from patone.tenants.isolation import TenantRef, tenant_transaction

CHANGE_SECONDS = 60  # FEATURES.md: pushed when it changes by more than a minute
STALE_SECONDS = 30  # an en-route job's ETA is looked at again this often
ACTIVE = ("assigned", "en_route")


async def _job(request_id: int) -> dict[str, Any] | None:
    rows = await engine.fetch(
        "SELECT r.id, r.number, r.status, r.driver, r.pickup_lat, r.pickup_lng, r.eta_at, "
        "d.last_lat, d.last_lng FROM service_requests r JOIN drivers d ON d.id = r.driver "
        "WHERE r.id = $1",
        request_id,
    )
    return dict(rows[0]) if rows else None


async def refresh_eta(
    tenant: TenantRef,
    request_id: int,
    *,
    force: bool = False,
    touch: bool = False,
) -> datetime | None:
    """Recompute a driven-to request's ETA from the driver's position; store and
    emit it when it moved by more than a minute (or `force`, at acceptance). Returns the ETA
    now shown (None when the request is not being driven to)."""
    at = now()
    async with tenant_transaction(tenant):
        job = await _job(request_id)
        ahead = None
        if job is not None and job["status"] == "assigned":
            ahead = await workload.current_finish(tenant, job["driver"], at)
    if job is None or job["status"] not in ACTIVE:
        return None
    live = await positions_of(tenant, [{**job, "id": job["driver"]}])
    start = (ahead.lat, ahead.lng) if ahead is not None else live.get(job["driver"])
    if start is None:
        return job["eta_at"]
    wait = ahead.in_s if ahead is not None else 0.0
    [estimate] = await travel_estimates(
        tenant,
        [GeoPoint(lat=start[0], lng=start[1])],
        GeoPoint(lat=job["pickup_lat"], lng=job["pickup_lng"]),
        at + timedelta(seconds=wait),
    )
    if estimate is None:
        return job["eta_at"]
    eta = at + timedelta(seconds=wait + estimate.duration_s)
    shown: datetime | None = job["eta_at"]
    if not force and shown is not None and abs((eta - shown).total_seconds()) <= CHANGE_SECONDS:
        if touch:  # looked at: not stale for another STALE_SECONDS
            async with tenant_transaction(tenant):
                await engine.execute(
                    "UPDATE service_requests SET eta_updated_at = $2 WHERE id = $1",
                    request_id,
                    at,
                )
        return shown
    async with tenant_transaction(tenant):
        rows = await engine.fetch(
            "UPDATE service_requests SET eta_at = $2, eta_updated_at = $3 "
            "WHERE id = $1 AND status = ANY($4::varchar[]) RETURNING id",
            request_id,
            eta,
            at,
            list(ACTIVE),
        )
        if not rows:
            return None
        await emit(
            topics.REQUEST_ETA_CHANGED,
            request_id,
            topics.RequestEtaChanged(
                id=request_id,
                number=job["number"],
                driver=job["driver"],
                eta_at=eta.isoformat(),
                previous=shown.isoformat() if shown else None,
            ),
        )
    return eta


async def refresh_stale(tenant: TenantRef, limit: int = 50) -> int:
    """Recompute the ETAs of jobs being driven to that were not looked at for
    `STALE_SECONDS` (the sweep job runs this every second for busy companies, so the customer's
    ETA follows the driver's pings); returns how many changed."""
    async with tenant_transaction(tenant):
        rows = await engine.fetch(
            "SELECT id, eta_at FROM service_requests WHERE status = 'en_route' "
            "AND (eta_updated_at IS NULL OR eta_updated_at < $1) "
            "ORDER BY eta_updated_at NULLS FIRST LIMIT $2",
            now() - timedelta(seconds=STALE_SECONDS),
            limit,
        )
    changed = 0
    for row in rows:
        if await refresh_eta(tenant, row["id"], touch=True) != row["eta_at"]:
            changed += 1
    return changed
