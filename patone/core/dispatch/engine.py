"""The dispatch engine: choose a driver for a waiting request and offer it to them.

A request waits while it is `pending` with no live offer. `dispatch_request` reads the
candidates (`candidates.py`), asks the maps plugin for their travel times, ranks them, and, under
the company's dispatch lock, offers the request to the best one still free, storing the decision
with its explanation. `sweep` is the engine's heartbeat: it closes offers whose deadline passed
(by the business clock, never a Redis TTL) and dispatches every waiting request, emergencies
first, then requests sent back to the queue (pre-empted, withdrawn), then by priority and age.
After `max_offers` offers that came to nothing, a request is flagged to dispatchers and the
engine leaves it to them.

Everything here is idempotent and safe when two workers race: decisions that write take the
company's dispatch lock (a transaction-level advisory lock), re-read the request and the chosen
driver under it, and the offers table allows one live offer per request and per driver.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ortools.graph.python import linear_sum_assignment

from patone.core.common.activity import emit, record
from patone.core.common.permissions import Actor, require
from patone.core.dispatch import candidates as cands
from patone.core.dispatch import workload
from patone.core.dispatch.candidates import Candidate, Excluded, Scored
from patone.core.dispatch.positions import positions_of
from patone.core.dispatch.settings import STORED, DispatchSettings, parse_stored, read_settings
from patone.core.dispatch.travel import travel_estimates
from patone.core.domain.service_requests import PRIORITY_RANK
from patone.core.domain.service_types import distance_km
from patone.core.runtime.clock import now
from patone.core.runtime.db import engine
from patone.core.runtime.errors import Conflict, NotFound
from patone.plugins.types import GeoPoint
from patone.tenants.isolation import TenantRef, tenant_transaction

log = logging.getLogger(__name__)

MATRIX_LIMIT = 25  # nearest candidates (straight line) whose travel time is asked of the maps
SWEEP_LIMIT = 100  # waiting requests dispatched per sweep; the next sweep takes the rest


@dataclass(frozen=True)
class Decision:
    """What the engine did for one request."""

    request_id: int
    outcome: str  # offered | no_candidate | flagged | skipped
    offer_id: int | None = None
    driver_id: int | None = None
    explanation: dict[str, Any] | None = None


@dataclass(frozen=True)
class SweepReport:
    expired: int
    decisions: list[Decision]

    @property
    def offered(self) -> int:
        return sum(1 for d in self.decisions if d.outcome == "offered")


def _lock_key(tenant: TenantRef) -> str:
    return f"dispatch:{tenant.slug}"


async def lock_dispatch(tenant: TenantRef) -> None:
    """Take the company's dispatch lock for the rest of the transaction."""
    await engine.execute("SELECT pg_advisory_xact_lock(hashtext($1))", _lock_key(tenant))


def _day_start(at: datetime, zone: str) -> datetime:
    local = at.astimezone(ZoneInfo(zone))
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


# SQL the engine's readers share. The jobs that occupy a driver: accepted and not finished.
ON_JOB = "('assigned', 'en_route', 'on_scene', 'in_progress')"
# A driver (`d`) on shift: not archived, available or busy (not off duty nor on a break).
ON_SHIFT = "d.archived_at IS NULL AND d.status IN ('available', 'busy')"
# A driver (`d`) who may be sent an offer: on shift, no offer awaiting their answer.
OFFERABLE = (
    f"{ON_SHIFT} "
    "AND NOT EXISTS (SELECT 1 FROM offers o WHERE o.driver_id = d.id AND o.status = 'open')"
)
# A driver (`d`) with nothing to do: offerable, available and on no job.
IDLE = (
    f"{OFFERABLE} AND d.status = 'available' AND NOT EXISTS "
    f"(SELECT 1 FROM service_requests r WHERE r.driver = d.id AND r.status IN {ON_JOB})"
)

_DRIVERS = f"""
WITH active AS (
    SELECT driver, count(*) AS n, min(id) AS job,
           bool_and(status = 'assigned' AND priority <> 'emergency') AS unstarted
    FROM service_requests
    WHERE driver IS NOT NULL AND status IN {ON_JOB}
    GROUP BY driver
), today AS (
    SELECT driver, count(*) AS n FROM service_requests
    WHERE driver IS NOT NULL AND assigned_at >= $1 GROUP BY driver
), shifted AS (
    SELECT driver,
           sum(extract(epoch FROM least(ends_at, $2::timestamptz)
                                  - greatest(starts_at, $1::timestamptz))) AS s
    FROM shifts WHERE starts_at < $2 AND ends_at > $1 GROUP BY driver
), shift_left AS (
    SELECT driver, max(extract(epoch FROM ends_at - $2::timestamptz)) AS s
    FROM shifts WHERE starts_at <= $2 AND ends_at > $2 GROUP BY driver
)
SELECT d.id, d.name, d.status, d.skills, d.rating, d.last_lat, d.last_lng,
       coalesce(t.n, 0) AS jobs_today, coalesce(a.n, 0) AS active_jobs, a.unstarted, a.job,
       -- on duty since they came on duty (today's part of it); without that on record, their
       -- shifts of the day up to now; without those, since the day began
       coalesce(
           CASE WHEN d.on_duty_since IS NOT NULL THEN greatest(0, extract(epoch FROM
               $2::timestamptz - greatest(d.on_duty_since, $1::timestamptz))) END,
           s.s, extract(epoch FROM $2::timestamptz - $1::timestamptz))::float8 AS on_shift_s,
       l.s::float8 AS shift_left_s,  -- until their shift ends; NULL without one on record
       EXISTS (SELECT 1 FROM offers o WHERE o.driver_id = d.id AND o.status = 'open') AS offered
FROM drivers d LEFT JOIN active a ON a.driver = d.id LEFT JOIN today t ON t.driver = d.id
     LEFT JOIN shifted s ON s.driver = d.id LEFT JOIN shift_left l ON l.driver = d.id
WHERE {ON_SHIFT}
ORDER BY d.id
"""


@dataclass(frozen=True)
class _Situation:
    request: dict[str, Any]
    candidates: list[Candidate]
    excluded: list[Excluded]
    fleet: cands.Fleet


async def _situation(
    tenant: TenantRef, request: dict[str, Any], settings: DispatchSettings, zone: str, at: datetime
) -> _Situation:
    """Who is on shift and could take `request` (read in the caller's transaction)."""
    skills = await engine.fetch(
        "SELECT required_skills FROM service_types WHERE id = $1", request["service_type"]
    )
    required = frozenset(skills[0]["required_skills"] or []) if skills else frozenset()
    tried = _Tried.of(
        await engine.fetch(
            "SELECT driver_id, status FROM offers WHERE request_id = $1 "
            "AND status IN ('declined', 'expired')",
            request["id"],
        )
    )
    drivers = await engine.fetch(_DRIVERS, _day_start(at, zone), at)
    live = await positions_of(tenant, drivers)
    finishing = await _finishing(tenant, drivers, settings, at)
    emergency = request["priority"] == "emergency"
    found: list[Candidate] = []
    excluded: list[Excluded] = []
    for d in drivers:
        reason = _exclusion(d, required, tried, settings, emergency)
        done = finishing.get(d["id"])
        if reason == "busy" and done is not None:
            reason = None
            if done.in_s > settings.queue_within_minutes * 60:
                reason = f"busy for about {done.in_s / 60:.0f} min"
        if reason is None and d["id"] not in live and done is None:
            reason = "position unknown"
        if reason is not None:
            excluded.append(Excluded(d["id"], d["name"], reason))
            continue
        where = (done.lat, done.lng) if done is not None else live[d["id"]]
        candidate = Candidate(
            driver_id=d["id"],
            name=d["name"],
            lat=where[0],
            lng=where[1],
            jobs_today=d["jobs_today"],
            on_shift_s=d["on_shift_s"],
            shift_left_s=d["shift_left_s"],
            rating=cands.rating_stars(d["rating"]),
            preempts=d["job"] if d["status"] == "busy" and done is None else None,
            wait_s=done.in_s if done is not None else 0.0,
            after=done.request_id if done is not None else None,
            lapsed=tried.lapsed[d["id"]],
        )
        if not cands.within_radius(
            request["pickup_lat"], request["pickup_lng"], candidate, settings.radius_km
        ):
            excluded.append(Excluded(d["id"], d["name"], f"beyond {settings.radius_km:g} km"))
            continue
        found.append(candidate)
    fleet = cands.Fleet(
        jobs=sum(d["jobs_today"] for d in drivers),
        hours=sum(d["on_shift_s"] for d in drivers) / 3600,
    )
    return _Situation(request, found, excluded, fleet)


async def _finishing(
    tenant: TenantRef, drivers: Sequence[Any], settings: DispatchSettings, at: datetime
) -> dict[int, workload.Finish]:
    """For each busy driver on exactly one started job: when and where it ends (read in the
    caller's transaction). Empty when the company does not queue jobs behind others."""
    jobs = [d["job"] for d in drivers if d["active_jobs"] == 1 and not d["unstarted"]]
    if not settings.queue_within_minutes or not jobs:
        return {}
    typical = await workload.typical_seconds(tenant)
    rows = await engine.fetch(
        f"SELECT {workload.JOB_COLUMNS} FROM service_requests WHERE id = ANY($1::int[])", jobs
    )
    found = {}
    for row in rows:
        done = workload.finish(dict(row), typical, at)
        if done is not None:
            found[row["driver"]] = done
    return found


@dataclass(frozen=True)
class _Tried:
    """Who already had an offer for the request that came to nothing: who declined it (final),
    and how many offers each driver let lapse unanswered (not a refusal: they may be asked
    again, `DispatchSettings.lapsed_reoffers` times)."""

    declined: frozenset[int]
    lapsed: Counter[int]

    @classmethod
    def of(cls, rows: Sequence[Any]) -> _Tried:
        return cls(
            frozenset(r["driver_id"] for r in rows if r["status"] == "declined"),
            Counter(r["driver_id"] for r in rows if r["status"] == "expired"),
        )


def _exclusion(
    driver: Any,
    required: frozenset[str],
    tried: _Tried,
    settings: DispatchSettings,
    emergency: bool,
) -> str | None:
    if driver["id"] in tried.declined:
        return "declined it"
    lapsed = tried.lapsed[driver["id"]]
    if lapsed > settings.lapsed_reoffers:
        return f"let {lapsed} offers lapse" if lapsed > 1 else "let an offer lapse"
    if driver["offered"]:
        return "has another offer"
    missing = required - set(driver["skills"] or [])
    if missing:
        return "lacks " + ", ".join(sorted(missing))
    if driver["status"] == "busy":
        if emergency and settings.preempt and driver["active_jobs"] == 1 and driver["unstarted"]:
            return None
        return "busy"
    return None


async def _with_travel(
    tenant: TenantRef, situation: _Situation, at: datetime
) -> tuple[list[Candidate], list[Excluded]]:
    request = situation.request
    pickup = GeoPoint(lat=request["pickup_lat"], lng=request["pickup_lng"])
    by_line = sorted(
        situation.candidates,
        key=lambda c: distance_km(pickup.lat, pickup.lng, c.lat, c.lng),
    )
    asked, beyond = by_line[:MATRIX_LIMIT], by_line[MATRIX_LIMIT:]
    estimates = await travel_estimates(
        tenant, [GeoPoint(lat=c.lat, lng=c.lng) for c in asked], pickup, at
    )
    timed = [
        replace(c, travel_s=e.duration_s, distance_m=e.distance_m) if e else c
        for c, e in zip(asked, estimates, strict=True)
    ]
    excluded = [Excluded(c.driver_id, c.name, "further than the nearest ones") for c in beyond]
    excluded += [Excluded(c.driver_id, c.name, "no road") for c in timed if c.travel_s is None]
    return timed, excluded


async def _waiting(request_id: int, *, lock: bool) -> dict[str, Any] | None:
    rows = await engine.fetch(
        "SELECT id, number, status, priority, service_type, pickup_lat, pickup_lng, "
        "offers_made, needs_dispatcher, requeued_at, created_at, "
        "EXISTS (SELECT 1 FROM offers o WHERE o.request_id = r.id AND o.status = 'open') "
        "AS offered "
        f"FROM service_requests r WHERE id = $1{' FOR UPDATE' if lock else ''}",
        request_id,
    )
    return dict(rows[0]) if rows else None


def _is_waiting(request: dict[str, Any] | None) -> bool:
    return (
        request is not None
        and request["status"] == "pending"
        and not request["offered"]
        and not request["needs_dispatcher"]
    )


@dataclass(frozen=True)
class _Considered:
    """A waiting request's ranked candidates, read but not acted on yet."""

    request_id: int
    priority: str
    ranked: list[Scored]
    excluded: list[Excluded]
    situation: _Situation


async def _consider(
    tenant: TenantRef, request_id: int, settings: DispatchSettings, zone: str
) -> _Considered | None:
    """Rank the candidates for a waiting request (None when it is not waiting)."""
    at = now()
    async with tenant_transaction(tenant):
        request = await _waiting(request_id, lock=False)
        if request is None:
            raise NotFound("not_found", "no such request", "request_id")
        if not _is_waiting(request):
            return None
        situation = await _situation(tenant, request, settings, zone, at)
    timed, no_road = await _with_travel(tenant, situation, at)
    ranked = cands.rank(
        timed,
        weights=settings.weights,
        fleet=situation.fleet,
        priority=request["priority"],
        strategy=settings.strategy,
        emergency_tie_s=settings.emergency_tie_minutes * 60,
    )
    return _Considered(
        request_id, request["priority"], ranked, situation.excluded + no_road, situation
    )


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
    considered = await _consider(tenant, request_id, settings, zone)
    if considered is None:
        return Decision(request_id, "skipped")
    return await _offer(tenant, considered, settings)


async def _offer(
    tenant: TenantRef, c: _Considered, settings: DispatchSettings, first: int | None = None
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
    considered: list[_Considered] = []
    for request_id in waiting:
        c = await _consider(tenant, request_id, settings, zone)
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


# Cost (hundredths of a minute) of leaving a request without a driver: more for each place
# nearer the front of the queue, so when drivers are short the first in line get them and the
# matching only arranges who goes where among those.
UNMATCHED = 10_000_000
QUEUE_PLACE = 1_000_000


def match(considered: list[_Considered]) -> dict[int, int]:
    """Request id -> driver id, least total cost, each driver at most once, the first in line
    first when drivers are short (`considered` is in queue order). The problem is made
    square (a spare place per request, a spare request per driver): OR-Tools' solver aborts the
    process on an unbalanced one."""
    drivers = sorted({s.candidate.driver_id for c in considered for s in c.ranked})
    if len(considered) < 2 or not drivers:
        return {c.request_id: c.ranked[0].candidate.driver_id for c in considered if c.ranked}
    column = {driver: j for j, driver in enumerate(drivers)}
    lowest = min(s.cost for c in considered for s in c.ranked)
    solver = linear_sum_assignment.SimpleLinearSumAssignment()
    for i, c in enumerate(considered):
        for s in c.ranked:
            solver.add_arc_with_cost(
                i, column[s.candidate.driver_id], round((s.cost - lowest) * 100)
            )
        solver.add_arc_with_cost(
            i, len(drivers) + i, UNMATCHED + (len(considered) - i) * QUEUE_PLACE
        )
    for k in range(len(drivers)):
        for j in range(len(drivers) + len(considered)):
            solver.add_arc_with_cost(len(considered) + k, j, 0)
    if solver.solve() != solver.OPTIMAL:
        return {}
    found = {}
    for i, c in enumerate(considered):
        j = solver.right_mate(i)
        if j < len(drivers):
            found[c.request_id] = drivers[j]
    return found


async def dispatch_again(tenant: TenantRef, actor: Actor, request_id: int) -> Decision:
    """A dispatcher asks the engine to try a waiting request again now: a flagged request is
    back in the engine's hands with a fresh count of offers."""
    require(actor, "requests.assign")
    async with tenant_transaction(tenant):
        request = await _waiting(request_id, lock=True)
        if request is None:
            raise NotFound("not_found", "no such request", "request_id")
        if request["status"] != "pending":
            raise Conflict(
                "not_pending", f"request {request['number']} is {request['status']}", "status"
            )
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
    situation: _Situation,
    settings: DispatchSettings,
    *,
    note: str = "",
) -> Decision:
    async with tenant_transaction(tenant):
        await lock_dispatch(tenant)
        request = await _waiting(request_id, lock=True)
        if request is None or not _is_waiting(request):
            return Decision(request_id, "skipped")
        at = now()
        free = await _still_free([s.candidate for s in ranked])
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
            priority=request["priority"],
            fleet=situation.fleet,
            at=at,
        )
        if chosen is not None and chosen is ranked[0] and note:
            explanation["why"] += note
        if chosen is None:
            await _note_no_candidate(request_id, explanation, settings, at)
            return Decision(request_id, "no_candidate", explanation=explanation)
        return await make_offer(request, chosen, explanation, settings, at, "engine")


async def _still_free(candidates: list[Candidate]) -> set[int]:
    """Of these drivers, those who still may get an offer (read under the dispatch lock)."""
    if not candidates:
        return set()
    rows = await engine.fetch(
        "SELECT d.id, d.status, (SELECT count(*) FROM service_requests r WHERE r.driver = d.id "
        f"AND r.status IN {ON_JOB}) AS active "
        f"FROM drivers d WHERE d.id = ANY($1::int[]) AND {OFFERABLE}",
        [c.driver_id for c in candidates],
    )
    state = {row["id"]: (row["status"], row["active"]) for row in rows}
    free = set()
    for c in candidates:
        status, active = state.get(c.driver_id, ("gone", 0))
        idle = status == "available" and active == 0
        if idle or (status == "busy" and active == 1 and (c.preempts or c.after)):
            free.add(c.driver_id)
    return free


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
    await _decision(request_id, "no_candidate", None, settings, explanation, at)


async def _decision(
    request_id: int,
    outcome: str,
    driver_id: int | None,
    settings: DispatchSettings,
    explanation: dict[str, Any],
    at: datetime,
) -> int:
    rows = await engine.fetch(
        "INSERT INTO dispatch_decisions (request_id, made_at, outcome, driver_id, strategy, "
        "explanation) VALUES ($1, $2, $3, $4, $5, $6::jsonb) RETURNING id",
        request_id,
        at,
        outcome,
        driver_id,
        settings.strategy,
        json.dumps(explanation, default=str),
    )
    return int(rows[0]["id"])


async def make_offer(
    request: dict[str, Any],
    chosen: Scored,
    explanation: dict[str, Any],
    settings: DispatchSettings,
    at: datetime,
    offered_by: str,
) -> Decision:
    """Write the decision and the offer (under the dispatch lock, request row locked)."""
    candidate = chosen.candidate
    decision_id = await _decision(
        request["id"], "offered", candidate.driver_id, settings, explanation, at
    )
    seconds = (
        settings.emergency_offer_seconds
        if request["priority"] == "emergency"
        else settings.offer_seconds
    )
    deadline = at + timedelta(seconds=seconds)
    rows = await engine.fetch(
        "INSERT INTO offers (request_id, driver_id, decision_id, offered_by, sent_at, deadline, "
        "travel_s, distance_m, preempts) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
        "RETURNING id",
        request["id"],
        candidate.driver_id,
        decision_id,
        offered_by,
        at,
        deadline,
        candidate.travel_s,
        candidate.distance_m,
        candidate.preempts,
    )
    offer_id = int(rows[0]["id"])
    await engine.execute(
        "UPDATE service_requests SET offers_made = offers_made + 1 WHERE id = $1", request["id"]
    )
    await emit(
        "offer.created",
        "offer",
        offer_id,
        {
            "id": offer_id,
            "request_id": request["id"],
            "number": request["number"],
            "driver_id": candidate.driver_id,
            "priority": request["priority"],
            "deadline": deadline.isoformat(),
            "travel_s": candidate.travel_s,
        },
    )
    return Decision(request["id"], "offered", offer_id, candidate.driver_id, explanation)


async def expire_offers(
    tenant: TenantRef, settings: DispatchSettings | None = None
) -> list[dict[str, Any]]:
    """Close every live offer whose deadline has passed; flag requests that ran out of offers.
    Returns the expired offers."""
    if settings is None:
        settings, _ = await read_settings(tenant)
    at = now()
    async with tenant_transaction(tenant):
        await lock_dispatch(tenant)
        rows = await engine.fetch(
            "UPDATE offers SET status = 'expired', responded_at = deadline, reason = 'no answer' "
            "WHERE status = 'open' AND deadline <= $1 RETURNING id, request_id, driver_id",
            at,
        )
        expired = [dict(row) for row in rows]
        for offer in expired:
            await emit("offer.expired", "offer", offer["id"], offer)
        await flag_exhausted(
            tenant, [offer["request_id"] for offer in expired], settings, at, "no answer"
        )
    return expired


async def flag_exhausted(
    tenant: TenantRef,
    request_ids: list[int],
    settings: DispatchSettings,
    at: datetime,
    last: str,
) -> list[int]:
    """Flag to dispatchers the requests among these that used up their offers (in the caller's
    transaction, under the dispatch lock)."""
    if not request_ids:
        return []
    rows = await engine.fetch(
        "UPDATE service_requests SET needs_dispatcher = true WHERE id = ANY($1::int[]) "
        "AND status = 'pending' AND NOT needs_dispatcher AND offers_made >= $2 "
        "RETURNING id, number, priority, offers_made",
        request_ids,
        settings.max_offers,
    )
    for row in rows:
        why = (
            f"{row['offers_made']} offers came to nothing (the last: {last}); "
            "a dispatcher must assign it"
        )
        await _decision(
            row["id"], "flagged", None, settings, {"at": at.isoformat(), "why": why}, at
        )
        await emit(
            "request.needs_dispatcher",
            "service_request",
            row["id"],
            {"id": row["id"], "number": row["number"], "priority": row["priority"], "why": why},
        )
    return [row["id"] for row in rows]


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
            )
            await _decision(row["id"], "no_candidate", None, settings, explanation, at)
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
