"""Automatic dispatch, the engine: the sweep that offers each waiting request to a driver.

(Not called `engine.py`: `engine` is the database engine, `patone.core.runtime.db.engine`, which
this module uses too.)

A request waits while it is `pending` with no live offer. `dispatch_request` asks matching
(`matching.py`) for its ranked candidates and, under the company's dispatch lock, offers the
request (`offers.make_offer`) to the best one still free, storing the decision with its
explanation. `sweep` is the engine's heartbeat: it closes offers whose deadline passed
(`offers.expire_offers`: by the business clock, never a Redis TTL) and dispatches every waiting
request, emergencies first, then requests sent back to the queue (pre-empted, withdrawn), then
by priority and age. After `max_offers` offers that came to nothing, a request is flagged to
dispatchers and the engine leaves it to them.

Everything here is idempotent and safe when two workers race: decisions that write take the
company's dispatch lock (a transaction-level advisory lock), re-read the request and the chosen
driver under it, and the offers table allows one live offer per request and per driver.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from patone.core.common.activity import record
from patone.core.common.permissions import Actor, require
from patone.core.dispatch import candidates as cands
from patone.core.dispatch.candidates import Excluded, Scored
from patone.core.dispatch.matching import (
    OFFERABLE,
    ON_SHIFT,
    Considered,
    Situation,
    consider,
    is_waiting,
    match,
    read_request,
    still_free,
)
from patone.core.dispatch.offers import (
    Decision,
    expire_offers,
    lock_dispatch,
    make_offer,
    record_decision,
)
from patone.core.dispatch.settings import STORED, DispatchSettings, parse_stored, read_settings
from patone.core.domain.service_requests import PRIORITY_RANK
from patone.core.runtime.clock import now
from patone.core.runtime.db import engine
from patone.core.runtime.errors import Conflict, NotFound
from patone.tenants.isolation import TenantRef, tenant_transaction

SWEEP_LIMIT = 100  # waiting requests dispatched per sweep; the next sweep takes the rest


@dataclass(frozen=True)
class SweepReport:
    expired: int
    decisions: list[Decision]

    @property
    def offered(self) -> int:
        return sum(1 for d in self.decisions if d.outcome == "offered")


async def dispatch_request(
    tenant: TenantRef,
    request_id: int,
    *,
    settings: DispatchSettings | None = None,
    zone: str | None = None,
) -> Decision:
    """Offer a waiting request to the best candidate, or record why nobody can take it."""
    if settings is None or zone is None:
        settings, zone = await read_settings(tenant)
    considered = await consider(tenant, request_id, settings, zone)
    if considered is None:
        return Decision(request_id, "skipped")
    return await _offer(tenant, considered, settings)


async def _offer(
    tenant: TenantRef, c: Considered, settings: DispatchSettings, first: int | None = None
) -> Decision:
    """Offer `c` to its best candidate still free (`first`, the batch's choice, before the
    others)."""
    ranked = sorted(c.ranked, key=lambda s: s.candidate.driver_id != first) if first else c.ranked
    note = ""
    if first is not None and c.ranked and c.ranked[0].candidate.driver_id != first:
        note = (
            f"; {c.ranked[0].candidate.name}, cheaper for this one, went to another waiting "
            "request (matched together so the total is least)"
        )
    return await _offer_best(
        tenant, c.request_id, ranked, c.excluded, c.situation, settings, note=note
    )


async def dispatch_batch(
    tenant: TenantRef, waiting: list[int], settings: DispatchSettings, zone: str
) -> list[Decision]:
    """Offer several waiting requests at once: emergencies one by one first (the fastest truck
    each), then the others matched to drivers together so the sum of their costs is least (a
    driver who is the best for two requests goes to the one the others can do worst without),
    with OR-Tools' linear sum assignment; the first in line get drivers first when there are
    not enough. Offers are made in queue order."""
    decisions: list[Decision] = []
    considered: list[Considered] = []
    for request_id in waiting:
        c = await consider(tenant, request_id, settings, zone)
        if c is None:
            decisions.append(Decision(request_id, "skipped"))
        elif c.priority == "emergency":
            decisions.append(await _offer(tenant, c, settings))
        else:
            considered.append(c)
    chosen = match(considered) if settings.strategy == "scored" else {}
    for c in considered:
        decisions.append(await _offer(tenant, c, settings, first=chosen.get(c.request_id)))
    return decisions


async def dispatch_again(tenant: TenantRef, actor: Actor, request_id: int) -> Decision:
    """A dispatcher asks the engine to try a waiting request again now: a flagged request is
    back in the engine's hands with a fresh count of offers."""
    require(actor, "requests.assign")
    async with tenant_transaction(tenant):
        request = await read_request(request_id, lock=True)
        if request is None:
            raise NotFound("not_found", "no such request", "request_id")
        if request.status != "pending":
            raise Conflict("not_pending", f"request {request.number} is {request.status}", "status")
        await engine.execute(
            "UPDATE service_requests SET needs_dispatcher = false, offers_made = 0 WHERE id = $1",
            request_id,
        )
        await record(actor, "service_request", request_id, "dispatch.again", None, None)
    return await dispatch_request(tenant, request_id)


async def _offer_best(
    tenant: TenantRef,
    request_id: int,
    ranked: list[Scored],
    excluded: list[Excluded],
    situation: Situation,
    settings: DispatchSettings,
    *,
    note: str = "",
) -> Decision:
    async with tenant_transaction(tenant):
        await lock_dispatch(tenant)
        request = await read_request(request_id, lock=True)
        if request is None or not is_waiting(request):
            return Decision(request_id, "skipped")
        at = now()
        free = await still_free([s.candidate for s in ranked])
        chosen = next((s for s in ranked if s.candidate.driver_id in free), None)
        taken = [
            Excluded(s.candidate.driver_id, s.candidate.name, "taken meanwhile")
            for s in ranked
            if s.candidate.driver_id not in free
        ]
        ranked = [s for s in ranked if s.candidate.driver_id in free]
        explanation = cands.explain(
            ranked,
            excluded + taken,
            chosen=chosen,
            settings=settings,
            priority=request.priority,
            fleet=situation.fleet,
            at=at,
        )
        if chosen is not None and chosen is ranked[0] and note:
            explanation = replace(explanation, why=explanation.why + note)
        if chosen is None:
            await _note_no_candidate(request_id, explanation.as_dict(), settings, at)
            return Decision(request_id, "no_candidate", explanation=explanation.as_dict())
        return await make_offer(request, chosen, explanation.as_dict(), settings, at, "engine")


async def _note_no_candidate(
    request_id: int, explanation: dict[str, Any], settings: DispatchSettings, at: datetime
) -> None:
    """Store a no-candidate decision only when the reason changed (sweeps retry every second)."""
    last = await engine.fetch(
        "SELECT outcome, explanation->>'why' AS why FROM dispatch_decisions "
        "WHERE request_id = $1 ORDER BY id DESC LIMIT 1",
        request_id,
    )
    if last and last[0]["outcome"] == "no_candidate" and last[0]["why"] == explanation["why"]:
        return
    await record_decision(request_id, "no_candidate", None, settings, explanation, at)


_WAITING = (
    "SELECT id FROM service_requests r WHERE status = 'pending' AND NOT needs_dispatcher "
    "AND NOT EXISTS (SELECT 1 FROM offers o WHERE o.request_id = r.id AND o.status = 'open') "
    f"ORDER BY priority = 'emergency' DESC, requeued_at IS NULL, {PRIORITY_RANK}, created_at, id "
    "LIMIT $1"
)


async def waiting_requests(tenant: TenantRef, limit: int = SWEEP_LIMIT) -> list[int]:
    """Requests waiting for an offer, in the order they are dispatched: emergencies, then those
    sent back to the queue, then by priority and age."""
    async with tenant_transaction(tenant):
        rows = await engine.fetch(_WAITING, limit)
    return [row["id"] for row in rows]


async def sweep(tenant: TenantRef) -> SweepReport:
    """Close lapsed offers, then offer every waiting request (when the company dispatches
    automatically). A quiet sweep (nothing due, nothing waiting) is one short transaction."""
    async with tenant_transaction(tenant):
        stored = await engine.fetch(STORED)
        due = await engine.fetch(
            "SELECT EXISTS (SELECT 1 FROM offers WHERE status = 'open' AND deadline <= $1) AS due",
            now(),
        )
        waiting = [row["id"] for row in await engine.fetch(_WAITING, SWEEP_LIMIT)]
        free = await engine.fetch(_FREE)
    settings, zone = parse_stored(stored)
    expired = await expire_offers(tenant, settings) if due[0]["due"] else []
    if expired:  # their requests wait again, and their drivers are free
        waiting = await waiting_requests(tenant)
        async with tenant_transaction(tenant):
            free = await engine.fetch(_FREE)
    decisions: list[Decision] = []
    if settings.auto_dispatch and waiting and not free[0]["on_shift"]:
        decisions = await _nobody_on_shift(tenant, waiting, settings)
    elif settings.auto_dispatch and waiting:
        decisions = await dispatch_batch(
            tenant, _worth_trying(waiting, free[0], settings), settings, zone
        )
    return SweepReport(expired=len(expired), decisions=decisions)


# Drivers who could take an offer now, and whether an emergency waits (it may pre-empt).
_FREE = (
    "SELECT count(*) FILTER (WHERE d.status = 'available') AS free, "
    "count(*) FILTER (WHERE d.status = 'busy') AS busy, "
    "EXISTS (SELECT 1 FROM service_requests WHERE status = 'pending' "
    "AND priority = 'emergency') AS emergency, "
    f"(SELECT count(*) FROM drivers d WHERE {ON_SHIFT}) AS on_shift "
    f"FROM drivers d WHERE {OFFERABLE}"
)


async def _nobody_on_shift(
    tenant: TenantRef, waiting: list[int], settings: DispatchSettings
) -> list[Decision]:
    """Record for each waiting request that no driver is on shift, once (not every sweep):
    a dispatcher reading its decisions sees why it waits, and no candidates are looked for."""
    at = now()
    decisions = []
    async with tenant_transaction(tenant):
        await lock_dispatch(tenant)
        rows = await engine.fetch(
            "SELECT r.id, r.priority FROM service_requests r WHERE r.id = ANY($1::int[]) "
            "AND NOT EXISTS (SELECT 1 FROM dispatch_decisions x WHERE x.id = "
            "(SELECT max(id) FROM dispatch_decisions y WHERE y.request_id = r.id) "
            "AND x.outcome = 'no_candidate' AND x.explanation->>'no_driver' = $2)",
            waiting,
            cands.NO_DRIVER_ON_SHIFT,
        )
        for row in rows:
            explanation = cands.explain(
                [],
                [],
                chosen=None,
                settings=settings,
                priority=row["priority"],
                fleet=cands.Fleet(),
                at=at,
            ).as_dict()
            await record_decision(row["id"], "no_candidate", None, settings, explanation, at)
            decisions.append(Decision(row["id"], "no_candidate", explanation=explanation))
    return decisions


def _worth_trying(waiting: list[int], free: Any, settings: DispatchSettings) -> list[int]:
    """The waiting requests a sweep looks at: none while no driver could take an offer (a
    backlog of calls with every truck out costs one query a second, not a decision per call),
    else a few per free driver, first in line first."""
    could = free["free"] + (
        free["busy"] if settings.queue_within_minutes or free["emergency"] else 0
    )
    return waiting[: 4 * could + 5] if could else []
