"""Offers, end to end: made, answered, lapsed, withdrawn, counted.

The sweep (`autodispatch.py`) or a dispatcher (`offer_by_hand`) makes an offer (`make_offer`),
storing the decision behind it; it lives until its deadline. A driver's accept assigns the
request to them (and, for an emergency that pre-empts, sends their unstarted job back to
`pending`, first in the queue, with reason `pre_empted`). A decline, like a lapsed offer
(`expire_offers`), leaves the request waiting for the next candidate; after the company's
`max_offers` it is flagged to dispatchers. An answer that comes after the deadline is refused
and the offer is closed as lapsed. A driver who stops working (off duty, on a break,
archived) loses their live offer (`withdraw_driver_offers`, from `fleet.py`, in the same
transaction). Every response is stored on the offer (who, when, why).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

from patone.core.common import topics
from patone.core.common.activity import emit, record
from patone.core.common.permissions import Actor, require
from patone.core.dispatch import candidates as cands
from patone.core.dispatch.candidates import Scored
from patone.core.dispatch.eta import refresh_eta
from patone.core.dispatch.positions import positions_of
from patone.core.dispatch.settings import DispatchSettings, read_settings
from patone.core.dispatch.travel import travel_estimates
from patone.core.domain.service_requests import (
    assign_in_transaction,
    transition_in_transaction,
    withdraw_offers,
)
from patone.core.runtime.clock import now
from patone.core.runtime.db import engine
from patone.core.runtime.errors import Conflict, NotFound, UserError
from patone.core.tables.dispatch import (
    DecisionRow,
    ExplainedOfferRow,
    OfferRow,
    RequestToDispatchRow,
)
from patone.core.tables.records import Record
from patone.core.tables.requests import RequestRow
from patone.plugins.types import GeoPoint, RouteEstimate
from patone.tenants.isolation import TenantRef, tenant_transaction

R = TypeVar("R", bound=Record)


class OfferExpired(Conflict):
    """The answer came after the deadline (the offer is now closed as lapsed)."""


@dataclass(frozen=True)
class Response:
    offer: OfferRow
    request: RequestRow | None  # the request as assigned, when accepted
    preempted: int | None = None  # the request sent back to pending


@dataclass(frozen=True)
class Decision:
    """What the engine did for one request."""

    request_id: int
    outcome: str  # offered | no_candidate | flagged | skipped
    offer_id: int | None = None
    driver_id: int | None = None
    explanation: dict[str, Any] | None = None


def _lock_key(tenant: TenantRef) -> str:
    return f"dispatch:{tenant.slug}"


async def lock_dispatch(tenant: TenantRef) -> None:
    """Take the company's dispatch lock for the rest of the transaction."""
    await engine.execute("SELECT pg_advisory_xact_lock(hashtext($1))", _lock_key(tenant))


async def make_offer(
    request: RequestRow | RequestToDispatchRow,
    chosen: Scored,
    explanation: dict[str, Any],
    settings: DispatchSettings,
    at: datetime,
    offered_by: str,
) -> Decision:
    """Write the decision and the offer (under the dispatch lock, request row locked)."""
    candidate = chosen.candidate
    decision_id = await record_decision(
        request.id, "offered", candidate.driver_id, settings, explanation, at
    )
    seconds = (
        settings.emergency_offer_seconds
        if request.priority == "emergency"
        else settings.offer_seconds
    )
    deadline = at + timedelta(seconds=seconds)
    rows = await engine.fetch(
        "INSERT INTO offers (request_id, driver_id, decision_id, offered_by, sent_at, deadline, "
        "travel_s, distance_m, preempts) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
        "RETURNING id",
        request.id,
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
        "UPDATE service_requests SET offers_made = offers_made + 1 WHERE id = $1", request.id
    )
    await emit(
        topics.OFFER_CREATED,
        offer_id,
        topics.OfferCreated(
            id=offer_id,
            request_id=request.id,
            number=request.number,
            driver_id=candidate.driver_id,
            priority=request.priority,
            deadline=deadline.isoformat(),
            travel_s=candidate.travel_s,
        ),
    )
    return Decision(request.id, "offered", offer_id, candidate.driver_id, explanation)


async def record_decision(
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


async def expire_offers(
    tenant: TenantRef, settings: DispatchSettings | None = None
) -> list[OfferRow]:
    """Close every live offer whose deadline has passed; flag requests that ran out of offers.
    Returns the expired offers."""
    if settings is None:
        settings, _ = await read_settings(tenant)
    at = now()
    async with tenant_transaction(tenant):
        await lock_dispatch(tenant)
        rows = await engine.fetch(
            "UPDATE offers SET status = 'expired', responded_at = deadline, reason = 'no answer' "
            "WHERE status = 'open' AND deadline <= $1 "
            f"RETURNING {OfferRow.columns()}",
            at,
        )
        expired = [OfferRow.of(row) for row in rows]
        await emit_expired(expired)
        await flag_exhausted(
            tenant, [offer.request_id for offer in expired], settings, at, "no answer"
        )
    return expired


async def emit_expired(offers: list[OfferRow]) -> None:
    """Tell of offers closed as expired (in the caller's transaction), whether the sweep found
    them past their deadline or their driver answered too late: one topic, one payload."""
    for offer in offers:
        await emit(topics.OFFER_EXPIRED, offer.id, topics.OfferClosed.of(offer.as_dict()))


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
        await record_decision(
            row["id"], "flagged", None, settings, {"at": at.isoformat(), "why": why}, at
        )
        await emit(
            topics.REQUEST_NEEDS_DISPATCHER,
            row["id"],
            topics.RequestNeedsDispatcher(row["id"], row["number"], row["priority"], why),
        )
    return [row["id"] for row in rows]


async def withdraw_driver_offers(driver_id: int, reason: str) -> None:
    """A driver who stops working cannot answer their live offer: it is withdrawn (in the
    caller's transaction) and its request waits for the next driver."""
    rows = await engine.fetch(
        "UPDATE offers SET status = 'withdrawn', responded_at = $2, reason = $3 "
        "WHERE driver_id = $1 AND status = 'open' RETURNING id, request_id",
        driver_id,
        now(),
        reason,
    )
    for row in rows:
        await emit(
            topics.OFFER_WITHDRAWN,
            row["id"],
            topics.OfferWithdrawn(row["id"], row["request_id"], driver_id),
        )


async def _offer(offer_id: int, *, lock: bool = False) -> OfferRow:
    rows = await engine.fetch(
        f"SELECT {OfferRow.columns()} FROM offers WHERE id = $1{' FOR UPDATE' if lock else ''}",
        offer_id,
    )
    if not rows:
        raise NotFound("not_found", "no such offer", "offer_id")
    return OfferRow.of(rows[0])


async def _close(offer_id: int, status: str, at: datetime, reason: str) -> OfferRow:
    rows = await engine.fetch(
        f"UPDATE offers SET status = $2, responded_at = $3, reason = $4 WHERE id = $1 "
        f"RETURNING {OfferRow.columns()}",
        offer_id,
        status,
        at,
        reason,
    )
    return OfferRow.of(rows[0])


async def respond_to_offer(
    tenant: TenantRef, actor: Actor, offer_id: int, *, accept: bool, reason: str = ""
) -> Response:
    """The driver's answer to an offer made to them."""
    require(actor, "offers.respond")
    if len(reason) > 60:
        raise UserError("too_long", "reason must be at most 60 characters", "reason")
    settings, _ = await read_settings(tenant)
    async with tenant_transaction(tenant):
        await lock_dispatch(tenant)
        offer = await _offer(offer_id, lock=True)
        if offer.driver_id != actor.driver_id:
            raise NotFound("not_found", "no such offer", "offer_id")
        if offer.status != "open":
            raise Conflict("offer_closed", f"this offer is already {offer.status}", "offer_id")
        at = now()
        accepted = None
        if at <= offer.deadline:
            if not accept:
                offer = await _close(offer_id, "declined", at, reason or "declined")
                await emit(topics.OFFER_DECLINED, offer_id, topics.OfferClosed.of(offer.as_dict()))
                await flag_exhausted(tenant, [offer.request_id], settings, at, "declined")
                return Response(offer, None)
            accepted = await _accept(actor, offer, at)
        else:
            offer = await _close(offer_id, "expired", offer.deadline, "answered too late")
            await emit_expired([offer])
            await flag_exhausted(tenant, [offer.request_id], settings, at, "answered too late")
    if accepted is None:
        raise OfferExpired("offer_expired", "the offer lapsed before this answer", "offer_id")
    # After the commit: the maps plugin may be a network call, not to be made under the lock.
    shown = await refresh_eta(tenant, offer.request_id, force=True)
    assigned = accepted.request
    return replace(accepted, request=assigned.replace(eta_at=shown) if assigned else None)


async def _accept(actor: Actor, offer: OfferRow, at: datetime) -> Response:
    request_rows = await engine.fetch(
        f"SELECT {RequestRow.columns()} FROM service_requests WHERE id = $1 FOR UPDATE",
        offer.request_id,
    )
    current = RequestRow.of(request_rows[0])
    preempted = None
    if offer.preempts is not None:
        preempted = await _preempt(offer.preempts, offer.driver_id, actor)
    offer = await _close(offer.id, "accepted", at, "")
    assigned = await assign_in_transaction(current, offer.driver_id, actor)
    await emit(topics.OFFER_ACCEPTED, offer.id, topics.OfferClosed.of(offer.as_dict()))
    return Response(offer, assigned, preempted)


async def _preempt(request_id: int, driver_id: int, actor: Actor) -> int | None:
    """Send the driver's unstarted job back to the queue (first in line), if it still is one."""
    rows = await engine.fetch(
        f"SELECT {RequestRow.columns()} FROM service_requests "
        "WHERE id = $1 AND driver = $2 AND status = 'assigned' FOR UPDATE",
        request_id,
        driver_id,
    )
    if not rows:
        return None  # started, finished or reassigned meanwhile: the emergency queues behind it
    await transition_in_transaction(
        RequestRow.of(rows[0]),
        "pending",
        actor,
        reason_code="pre_empted",
        note="taken for an emergency",
    )
    return request_id


async def offer_by_hand(
    tenant: TenantRef, actor: Actor, request_id: int, driver_id: int
) -> Decision:
    """A dispatcher offers a waiting request to a driver of their choice (a live offer to
    someone else is withdrawn first; a flagged request is back in play)."""
    require(actor, "requests.assign")
    settings, _ = await read_settings(tenant)
    at = now()
    # The maps plugin is asked before the dispatch lock is taken (a slow provider must not hold
    # up every sweep of the company); what it answered is only the explanation's travel time.
    where, travel = await travel_to(tenant, request_id, driver_id, at)
    async with tenant_transaction(tenant):
        await lock_dispatch(tenant)
        return await offer_in_transaction(
            actor, request_id, driver_id, (where, travel), settings, at
        )


async def offer_in_transaction(
    actor: Actor,
    request_id: int,
    driver_id: int,
    travel: tuple[tuple[float, float] | None, RouteEstimate | None],
    settings: DispatchSettings,
    at: datetime,
    *,
    because: str = "",
) -> Decision:
    """`offer_by_hand`'s checks and offer, in the caller's tenant transaction under the dispatch
    lock; `travel` is `travel_to`'s answer, `because` ends the explanation's sentence."""
    rows = await engine.fetch(
        f"SELECT {RequestRow.columns()} FROM service_requests WHERE id = $1 FOR UPDATE",
        request_id,
    )
    if not rows:
        raise NotFound("not_found", "no such request", "request_id")
    request = RequestRow.of(rows[0])
    if request.status != "pending":
        raise Conflict("not_pending", f"request {request.number} is {request.status}", "status")
    driver = await engine.fetch(
        "SELECT id, name, status, archived_at, last_lat, last_lng FROM drivers WHERE id = $1",
        driver_id,
    )
    if not driver or driver[0]["archived_at"] is not None:
        raise NotFound("not_found", "no such driver", "driver_id")
    if driver[0]["status"] in ("off_duty", "on_break"):
        raise Conflict("driver_unavailable", f"the driver is {driver[0]['status']}", "driver_id")
    busy = await engine.fetch(
        "SELECT request_id FROM offers WHERE driver_id = $1 AND status = 'open'", driver_id
    )
    if busy and busy[0]["request_id"] != request_id:
        raise Conflict(
            "driver_has_offer",
            "the driver is answering another offer",
            "driver_id",
        )
    await withdraw_offers(request_id, f"offered by hand by {actor.kind}:{actor.id}")
    await engine.execute(
        "UPDATE service_requests SET needs_dispatcher = false WHERE id = $1", request_id
    )
    where, estimate = travel
    chosen = cands.Scored(
        cands.Candidate(
            driver_id=driver_id,
            name=driver[0]["name"],
            lat=where[0] if where else 0.0,
            lng=where[1] if where else 0.0,
            travel_s=estimate.duration_s if estimate else None,
            distance_m=estimate.distance_m if estimate else None,
        ),
        cost=0.0,
    )
    by = f"{actor.kind}:{actor.id}"
    explanation = {
        "at": at.isoformat(),
        "strategy": "by hand",
        "chosen": driver_id,
        "why": f"offered by hand by {by}{because}",
    }
    decision = await make_offer(request, chosen, explanation, settings, at, by)
    await record(actor, "service_request", request_id, "offer.by_hand", None, explanation)
    return decision


async def travel_to(
    tenant: TenantRef, request_id: int, driver_id: int, at: datetime
) -> tuple[tuple[float, float] | None, RouteEstimate | None]:
    """Where the driver is and their travel to the request's scene, when both are known
    (nothing is checked here: the caller checks the request and the driver under the lock)."""
    async with tenant_transaction(tenant):
        scene = await engine.fetch(
            "SELECT pickup_lat, pickup_lng FROM service_requests WHERE id = $1", request_id
        )
        driver = await engine.fetch(
            "SELECT id, last_lat, last_lng FROM drivers WHERE id = $1", driver_id
        )
    if not scene or not driver:
        return None, None
    where = (await positions_of(tenant, driver)).get(driver_id)
    if where is None:
        return None, None
    [travel] = await travel_estimates(
        tenant,
        [GeoPoint(lat=where[0], lng=where[1])],
        GeoPoint(lat=scene[0]["pickup_lat"], lng=scene[0]["pickup_lng"]),
        at,
    )
    return where, travel


async def list_offers(tenant: TenantRef, actor: Actor, request_id: int) -> list[ExplainedOfferRow]:
    """Every offer made for a request, oldest first, with the decision's explanation."""
    require(actor, "requests.view")
    async with tenant_transaction(tenant):
        rows = await engine.fetch(
            f"SELECT {ExplainedOfferRow.columns()} FROM offers WHERE request_id = $1 ORDER BY id",
            request_id,
        )
    return [_explained(ExplainedOfferRow, row) for row in rows]


async def list_decisions(tenant: TenantRef, actor: Actor, request_id: int) -> list[DecisionRow]:
    """Every decision the engine (or a dispatcher) made for a request, oldest first."""
    require(actor, "requests.view")
    async with tenant_transaction(tenant):
        rows = await engine.fetch(
            f"SELECT {DecisionRow.columns()} FROM dispatch_decisions WHERE request_id = $1 "
            "ORDER BY id",
            request_id,
        )
    return [_explained(DecisionRow, row) for row in rows]


def _explained(kind: type[R], row: Any) -> R:
    """`kind` from a row whose jsonb explanation came back as text."""
    found = dict(row)
    if isinstance(found.get("explanation"), str):
        found["explanation"] = json.loads(found["explanation"])
    return kind.of(found)


async def offer_row(tenant: TenantRef, offer_id: int) -> OfferRow | None:
    """One offer as stored (for live updates; the caller decided the subscriber may see it)."""
    async with tenant_transaction(tenant):
        rows = await engine.fetch(
            f"SELECT {OfferRow.columns()} FROM offers WHERE id = $1", offer_id
        )
    return OfferRow.of(rows[0]) if rows else None


async def my_offers(tenant: TenantRef, actor: Actor) -> list[OfferRow]:
    """The signed-in driver's live offers (at most one) with what the request is about."""
    require(actor, "offers.respond")
    if actor.driver_id is None:
        return []
    async with tenant_transaction(tenant):
        rows = await engine.fetch(
            f"SELECT {OfferRow.columns()} FROM offers WHERE driver_id = $1 AND status = 'open' "
            "ORDER BY id",
            actor.driver_id,
        )
    return [OfferRow.of(row) for row in rows]


@dataclass(frozen=True)
class OfferTally:
    """Closed offers of one kind: how they ended, and how fast drivers answered."""

    offers: int = 0
    accepted: int = 0
    declined: int = 0
    lapsed: int = 0  # no answer by the deadline
    withdrawn: int = 0  # closed by a dispatcher or a change of the driver's status
    median_answer_s: float | None = None  # of the answers (accepts and declines)

    @property
    def acceptance(self) -> float | None:
        """Accepted among the offers the driver could answer (withdrawn ones left out)."""
        answerable = self.offers - self.withdrawn
        return self.accepted / answerable if answerable else None


@dataclass(frozen=True)
class DriverTally:
    """One driver's closed offers (first and made again together)."""

    driver_id: int
    name: str
    tally: OfferTally


@dataclass(frozen=True)
class OfferStats:
    """A company's closed offers since `since`: first offers of a request to a driver, and
    offers made again to a driver who had let an offer of the same request lapse; and each
    driver's, by name (who lets offers lapse or declines most)."""

    since: datetime
    first: OfferTally
    again: OfferTally
    by_driver: list[DriverTally] = field(default_factory=list)


MAX_STATS_DAYS = 366

# How a group of closed offers ended (the columns of `OfferTally`).
_ENDED = """count(*) AS offers,
       count(*) FILTER (WHERE status = 'accepted') AS accepted,
       count(*) FILTER (WHERE status = 'declined') AS declined,
       count(*) FILTER (WHERE status = 'expired') AS lapsed,
       count(*) FILTER (WHERE status = 'withdrawn') AS withdrawn,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM responded_at - sent_at))
           FILTER (WHERE status IN ('accepted', 'declined')) AS median_answer_s"""

_TALLY = f"""
SELECT again, {_ENDED}
FROM (
    SELECT o.status, o.sent_at, o.responded_at, EXISTS (
        SELECT 1 FROM offers p WHERE p.request_id = o.request_id AND p.driver_id = o.driver_id
        AND p.id < o.id AND p.status = 'expired') AS again
    FROM offers o WHERE o.sent_at >= $1 AND o.status <> 'open'
) closed
GROUP BY again
"""

_BY_DRIVER = f"""
SELECT closed.*, d.name
FROM (
    SELECT driver_id, {_ENDED}
    FROM offers WHERE sent_at >= $1 AND status <> 'open'
    GROUP BY driver_id
) closed JOIN drivers d ON d.id = closed.driver_id
ORDER BY d.name, d.id
"""


def _tally(row: Any) -> OfferTally:
    """An `OfferTally` from a row with `_ENDED`'s columns."""
    return OfferTally(**{f.name: row[f.name] for f in fields(OfferTally)})


async def offer_stats(tenant: TenantRef, actor: Actor, days: int = 30) -> OfferStats:
    """How the company's drivers answered offers in the last `days`: whether asking a driver
    again after a lapsed offer (`lapsed_reoffers`) pays depends on how often those are
    accepted beside first offers."""
    require(actor, "requests.view")
    if not 1 <= days <= MAX_STATS_DAYS:
        raise UserError("out_of_range", f"days must be from 1 to {MAX_STATS_DAYS}", "days")
    since = now() - timedelta(days=days)
    async with tenant_transaction(tenant):
        rows = await engine.fetch(_TALLY, since)
        drivers = await engine.fetch(_BY_DRIVER, since)
    tallies = {row["again"]: _tally(row) for row in rows}
    return OfferStats(
        since,
        tallies.get(False, OfferTally()),
        tallies.get(True, OfferTally()),
        [DriverTally(row["driver_id"], row["name"], _tally(row)) for row in drivers],
    )
