"""Dispatch in the API: offers and their answers, the engine's decisions, the settings."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime
from enum import Enum
from typing import Any, cast

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from patone.core.common import topics
from patone.core.common.permissions import require
from patone.core.dispatch import autodispatch, plans, replan, staging
from patone.core.dispatch import offers as service
from patone.core.dispatch import settings as dispatch_settings
from patone.core.tables.dispatch import DecisionRow, ExplainedOfferRow, OfferRow
from patone.graphql.context import Context
from patone.graphql.ids import pk_of
from patone.graphql.parts import part
from patone.graphql.subscriptions import tenant_events
from patone.graphql.types import ServiceRequest, UserError, attempt, gid, given


@strawberry.enum
class OfferStatus(Enum):
    OPEN = "open"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"


@strawberry.enum(description="Why no driver was offered a request.")
class NoDriverReason(Enum):
    NO_DRIVER_ON_SHIFT = "no_driver_on_shift"
    NO_DRIVER_CAN_TAKE_IT = "no_driver_can_take_it"


@strawberry.type(description="One part of a candidate's cost, in minutes-equivalent.")
class CostPart:
    name: str = strawberry.field(
        description="travel, wait, load, overload, rating, preempt or lapsed."
    )
    minutes: float


@strawberry.type(description="A driver the engine considered for a request, and their score.")
class CandidateScore:
    driver_id: strawberry.ID
    name: str
    travel_seconds: int | None = strawberry.field(description="Estimated drive to the scene.")
    distance_meters: int | None
    jobs_today: int
    hours_on_shift: float = strawberry.field(description="Hours on duty today, up to the decision.")
    fair_share: float = strawberry.field(
        description="The jobs they would have had by then at the fleet's rate."
    )
    load_urgency: float = strawberry.field(
        description="How much more a job weighs as their shift runs out (1 to 3)."
    )
    jobs_ahead: float = strawberry.field(
        description="Jobs above the least loaded candidate, each against their fair share."
    )
    rating: float | None
    wait_seconds: int = strawberry.field(description="Until they are free (a queued job).")
    after_request_id: strawberry.ID | None = strawberry.field(
        description="The job this one would queue behind."
    )
    preempts_request_id: strawberry.ID | None
    lapsed_offers: int
    cost: float = strawberry.field(description="Minutes-equivalent; lower wins.")
    cost_parts: list[CostPart]

    @classmethod
    def from_stored(cls, c: dict[str, Any]) -> CandidateScore:
        return cls(
            driver_id=gid("Driver", c["driver_id"]),
            name=c.get("name", ""),
            travel_seconds=c.get("travel_s"),
            distance_meters=c.get("distance_m"),
            jobs_today=c.get("jobs_today", 0),
            hours_on_shift=c.get("on_shift_h", 0.0),
            fair_share=c.get("fair_share", 0.0),
            load_urgency=c.get("load_urgency", 1.0),
            jobs_ahead=c.get("ahead", 0.0),
            rating=c.get("rating"),
            wait_seconds=c.get("wait_s") or 0,
            after_request_id=_request_gid(c.get("after")),
            preempts_request_id=_request_gid(c.get("preempts")),
            lapsed_offers=c.get("lapsed", 0),
            cost=c.get("cost", 0.0),
            cost_parts=[CostPart(name=k, minutes=v) for k, v in (c.get("parts") or {}).items()],
        )


@strawberry.type(description="A driver on shift the engine left out, and why.")
class ExcludedDriver:
    driver_id: strawberry.ID
    name: str
    reason: str = strawberry.field(description='e.g. "busy", "lacks tow", "declined it".')


@strawberry.type(
    description="Why a driver was offered a request (or why nobody was): the candidates, "
    "their scores, who was left out."
)
class OfferExplanation:
    summary: str = strawberry.field(description="One sentence a dispatcher reads.")
    strategy: str = strawberry.field(description='"scored", "nearest" or "by hand".')
    chosen_driver_id: strawberry.ID | None
    no_driver_reason: NoDriverReason | None = strawberry.field(
        description="Set when nobody was offered it."
    )
    fleet_jobs_per_hour: float | None = strawberry.field(
        description="The fleet's jobs today per hour on shift (fair shares are measured by it)."
    )
    candidates: list[CandidateScore] = strawberry.field(
        description="The best candidates, cheapest first."
    )
    more_candidates: int = strawberry.field(description="Candidates not listed.")
    excluded: list[ExcludedDriver]
    more_excluded: int

    @classmethod
    def from_stored(cls, stored: dict[str, Any]) -> OfferExplanation:
        """The explanation as stored with a decision (older ones lack some keys)."""
        chosen = stored.get("chosen")
        return cls(
            summary=stored.get("why", ""),
            strategy=stored.get("strategy", ""),
            chosen_driver_id=gid("Driver", chosen) if chosen is not None else None,
            no_driver_reason=_no_driver(stored),
            fleet_jobs_per_hour=stored.get("fleet_jobs_per_hour"),
            candidates=[CandidateScore.from_stored(c) for c in stored.get("candidates", [])],
            more_candidates=stored.get("more_candidates", 0),
            excluded=[
                ExcludedDriver(
                    driver_id=gid("Driver", e["driver_id"]), name=e["name"], reason=e["reason"]
                )
                for e in stored.get("excluded", [])
            ],
            more_excluded=stored.get("more_excluded", 0),
        )


def _no_driver(stored: dict[str, Any]) -> NoDriverReason | None:
    if stored.get("no_driver"):
        return NoDriverReason(stored["no_driver"])
    if stored.get("chosen") is not None or "candidates" not in stored:
        return None  # offered, or offered by hand
    # Stored before the reason had its own key: read it from the sentence.
    on_shift = bool(stored["candidates"] or stored.get("excluded"))
    return NoDriverReason.NO_DRIVER_CAN_TAKE_IT if on_shift else NoDriverReason.NO_DRIVER_ON_SHIFT


def _explained(stored: dict[str, Any] | None) -> OfferExplanation | None:
    return OfferExplanation.from_stored(stored) if stored is not None else None


def _request_gid(pk: int | None) -> strawberry.ID | None:
    return gid("ServiceRequest", pk) if pk is not None else None


@strawberry.type(description="A request offered to one driver, with a deadline to answer.")
class Offer:
    id: strawberry.ID
    request_id: strawberry.ID
    driver_id: strawberry.ID
    status: OfferStatus
    offered_by: str = strawberry.field(description='"engine", or the person who offered it.')
    sent_at: datetime
    deadline: datetime
    responded_at: datetime | None
    reason: str
    travel_seconds: int | None = strawberry.field(description="Estimated drive to the scene.")
    distance_meters: int | None
    preempts_request_id: strawberry.ID | None = strawberry.field(
        description="The driver's unstarted job that accepting sends back to the queue."
    )
    explanation: JSON | None = strawberry.field(
        description="Why this driver: the candidates, their scores, who was left out.",
        deprecation_reason="Untyped, with the database's driver ids: use explained.",
    )
    explained: OfferExplanation | None = strawberry.field(
        description="Why this driver: the candidates, their scores, who was left out."
    )

    @classmethod
    def from_row(cls, row: OfferRow) -> Offer:
        explanation = row.explanation if isinstance(row, ExplainedOfferRow) else None
        return cls(
            id=gid("Offer", row.id),
            request_id=gid("ServiceRequest", row.request_id),
            driver_id=gid("Driver", row.driver_id),
            status=OfferStatus(row.status),
            offered_by=row.offered_by,
            sent_at=row.sent_at,
            deadline=row.deadline,
            responded_at=row.responded_at,
            reason=row.reason,
            travel_seconds=row.travel_s,
            distance_meters=row.distance_m,
            preempts_request_id=(
                gid("ServiceRequest", row.preempts) if row.preempts is not None else None
            ),
            explanation=cast(JSON, explanation),
            explained=_explained(explanation),
        )


@strawberry.type(description="One thing the engine (or a dispatcher) decided for a request.")
class DispatchDecision:
    id: strawberry.ID
    made_at: datetime
    outcome: str = strawberry.field(description="offered, no_candidate or flagged.")
    driver_id: strawberry.ID | None
    strategy: str
    explanation: JSON = strawberry.field(
        deprecation_reason="Untyped, with the database's driver ids: use explained."
    )
    explained: OfferExplanation

    @classmethod
    def from_row(cls, row: DecisionRow) -> DispatchDecision:
        return cls(
            id=gid("DispatchDecision", row.id),
            made_at=row.made_at,
            outcome=row.outcome,
            driver_id=gid("Driver", row.driver_id) if row.driver_id is not None else None,
            strategy=row.strategy,
            explanation=cast(JSON, row.explanation),
            explained=OfferExplanation.from_stored(row.explanation),
        )


@strawberry.type
class DispatchWeights:
    eta: float = strawberry.field(description="Cost of a minute of travel to the scene.")
    wait: float = strawberry.field(
        description="Cost of a minute until a busy driver is free (a queued job)."
    )
    load: float = strawberry.field(
        description="Minutes per job above the least loaded candidate, each measured against "
        "their fair share for their hours on shift."
    )
    overload: float = strawberry.field(
        description="Minutes more for each job beyond the first above the least loaded candidate."
    )
    rating: float = strawberry.field(description="Minutes per star below five.")
    lapse: float = strawberry.field(
        description="Minutes per offer of this request the driver let lapse unanswered."
    )


@strawberry.type(description="How the engine chooses drivers and how long offers last.")
class DispatchSettings:
    auto_dispatch: bool
    strategy: str = strawberry.field(description='"scored" (default) or "nearest".')
    radius_km: float
    offer_seconds: int
    emergency_offer_seconds: int
    max_offers: int
    lapsed_reoffers: int = strawberry.field(
        description="Times a driver who let an offer lapse unanswered may be offered the same "
        "request again (a decline is final)."
    )
    preempt: bool
    emergency_tie_minutes: float = strawberry.field(
        description="An emergency goes to the fastest truck; trucks within this many minutes of "
        "it count as tied and the least loaded of them goes (0: always the fastest)."
    )
    queue_within_minutes: int = strawberry.field(
        description="A driver finishing within this many minutes may get the next job (0: no)."
    )
    staging: bool = strawberry.field(description="Suggest waiting places to idle drivers.")
    weights: DispatchWeights
    replan_minutes: int = strawberry.field(
        description="Re-plan the whole fleet every this many minutes (0: never)."
    )
    replan_sooner_minutes: int = strawberry.field(
        description="Suggest moving an accepted job to a driver who reaches it this much sooner."
    )

    @classmethod
    def from_model(cls, model: dispatch_settings.DispatchSettings) -> DispatchSettings:
        data = model.model_dump()
        return cls(**{**data, "weights": DispatchWeights(**data["weights"])})


@strawberry.input
class DispatchWeightsInput:
    eta: float = 1.0
    wait: float = 1.0
    load: float = 8.0
    overload: float = 30.0
    rating: float = 2.0
    lapse: float = 2.0


@strawberry.input
class DispatchSettingsInput:
    auto_dispatch: bool | None = strawberry.UNSET
    strategy: str | None = strawberry.UNSET
    radius_km: float | None = strawberry.UNSET
    offer_seconds: int | None = strawberry.UNSET
    emergency_offer_seconds: int | None = strawberry.UNSET
    max_offers: int | None = strawberry.UNSET
    lapsed_reoffers: int | None = strawberry.UNSET
    preempt: bool | None = strawberry.UNSET
    emergency_tie_minutes: float | None = strawberry.UNSET
    queue_within_minutes: int | None = strawberry.UNSET
    staging: bool | None = strawberry.UNSET
    weights: DispatchWeightsInput | None = strawberry.UNSET
    replan_minutes: int | None = strawberry.UNSET
    replan_sooner_minutes: int | None = strawberry.UNSET


@strawberry.type
class OfferPayload:
    offer: Offer | None
    service_request: ServiceRequest | None
    preempted_request_id: strawberry.ID | None
    user_errors: list[UserError]


@strawberry.type
class DispatchPayload:
    outcome: str | None = strawberry.field(
        description="offered, no_candidate, flagged, or skipped (not waiting for an offer)."
    )
    offer: Offer | None
    explanation: JSON | None = strawberry.field(
        deprecation_reason="Untyped, with the database's driver ids: use explained."
    )
    explained: OfferExplanation | None
    user_errors: list[UserError]


@strawberry.type
class DispatchSettingsPayload:
    settings: DispatchSettings | None
    user_errors: list[UserError]


@strawberry.type(description="One stop of a driver's plan.")
class RouteStop:
    request_id: strawberry.ID
    number: int
    priority: str
    lat: float
    lng: float
    arrive_at: datetime = strawberry.field(description="Planned arrival at the scene.")
    travel_seconds: int = strawberry.field(description="From the previous stop (or the driver).")


@strawberry.type(description="Where an idle driver should wait (the engine's suggestion).")
class StagingSuggestion:
    driver_id: strawberry.ID
    lat: float
    lng: float
    km: float = strawberry.field(
        description="How far the driver was from it when told (straight line)."
    )
    place: str = strawberry.field(
        description="The address of the past call the place was picked at (may be empty)."
    )
    suggested_at: datetime = strawberry.field(description="When the driver was told.")

    @classmethod
    def from_move(cls, move: staging.Move) -> StagingSuggestion:
        assert move.suggested_at is not None  # only what drivers were told is shown
        return cls(
            driver_id=gid("Driver", move.driver_id),
            lat=move.lat,
            lng=move.lng,
            km=move.km,
            place=move.place,
            suggested_at=move.suggested_at,
        )


@strawberry.type(description="One stop of a driver's part of the fleet plan.")
class FleetPlanStop:
    request_id: strawberry.ID
    number: int
    priority: str
    accepted: bool = strawberry.field(
        description="The driver accepted it (else a waiting request the plan gives them)."
    )
    arrive_at: datetime = strawberry.field(description="Planned arrival at the scene.")
    depart_at: datetime = strawberry.field(description="Planned end of the work there.")
    travel_seconds: int = strawberry.field(description="From the previous stop (or the driver).")


@strawberry.type(description="A driver's planned stops, in order.")
class FleetPlanRoute:
    driver_id: strawberry.ID
    driver_name: str
    stops: list[FleetPlanStop]


@strawberry.enum
class PlanSuggestionKind(Enum):
    REASSIGN = "reassign"
    OFFER = "offer"
    UNSERVED = "unserved"


@strawberry.type(
    description="What the plan suggests a dispatcher does (never applied by itself; "
    "applyPlanSuggestion takes it in one step)."
)
class PlanSuggestion:
    kind: PlanSuggestionKind = strawberry.field(
        description="REASSIGN an accepted job to a driver who gets there much sooner; OFFER a "
        "waiting request to the driver the plan gives it; UNSERVED: nobody on shift can take it."
    )
    request_id: strawberry.ID
    number: int
    driver_id: strawberry.ID | None = strawberry.field(description="Who should take it.")
    from_driver_id: strawberry.ID | None = strawberry.field(
        description="REASSIGN: the driver who holds it now."
    )
    arrive_at: datetime | None = strawberry.field(description="When that driver would be there.")
    sooner_seconds: int | None = strawberry.field(
        description="REASSIGN: how much sooner than its own driver's plan."
    )
    why: str = strawberry.field(description="One sentence saying why.")


@strawberry.type(description="The latest plan of the whole fleet's work (the periodic re-plan).")
class FleetPlan:
    created_at: datetime
    solver: str = strawberry.field(
        description='"or-tools", or "greedy" when the solver found nothing better in time.'
    )
    objective: float = strawberry.field(
        description="Travel seconds plus priority-weighted lateness, plus a large penalty per "
        "job left out (lower is better; a Float: it can pass GraphQL's 32-bit Int)."
    )
    travel_seconds: int
    solve_ms: int
    drivers: int = strawberry.field(description="Drivers on shift the plan could place.")
    jobs: int = strawberry.field(description="Accepted jobs and waiting requests planned.")
    routes: list[FleetPlanRoute]
    suggestions: list[PlanSuggestion] = strawberry.field(
        description="Those still standing: a request since offered, assigned or moved drops "
        "its own."
    )

    @classmethod
    def from_plan(cls, plan: replan.FleetPlan) -> FleetPlan:
        return cls(
            created_at=plan.created_at,
            solver=plan.solver,
            objective=float(plan.objective),
            travel_seconds=plan.travel_s,
            solve_ms=plan.solve_ms,
            drivers=plan.drivers,
            jobs=plan.jobs,
            routes=[
                FleetPlanRoute(
                    driver_id=gid("Driver", route.driver_id),
                    driver_name=route.name,
                    stops=[
                        FleetPlanStop(
                            request_id=gid("ServiceRequest", s.request_id),
                            number=s.number,
                            priority=s.priority,
                            accepted=s.accepted,
                            arrive_at=s.arrive_at,
                            depart_at=s.depart_at,
                            travel_seconds=s.travel_s,
                        )
                        for s in route.stops
                    ],
                )
                for route in plan.routes
            ],
            suggestions=[
                PlanSuggestion(
                    kind=PlanSuggestionKind(s.kind),
                    request_id=gid("ServiceRequest", s.request_id),
                    number=s.number,
                    driver_id=gid("Driver", s.driver_id) if s.driver_id is not None else None,
                    from_driver_id=(
                        gid("Driver", s.from_driver_id) if s.from_driver_id is not None else None
                    ),
                    arrive_at=s.arrive_at,
                    sooner_seconds=s.sooner_s,
                    why=s.why,
                )
                for s in plan.suggestions
            ],
        )


@strawberry.type
class FleetPlanPayload:
    plan: FleetPlan | None
    user_errors: list[UserError]


@strawberry.type(
    description="Closed offers of one kind: how they ended, how fast drivers answered."
)
class OfferTally:
    offers: int
    accepted: int
    declined: int
    lapsed: int = strawberry.field(description="No answer by the deadline.")
    withdrawn: int = strawberry.field(
        description="Closed by a dispatcher, or the driver going on break or off duty."
    )
    acceptance: float | None = strawberry.field(
        description="Accepted among the offers the driver could answer (withdrawn left out)."
    )
    median_answer_seconds: float | None

    @classmethod
    def from_tally(cls, tally: service.OfferTally) -> OfferTally:
        return cls(
            offers=tally.offers,
            accepted=tally.accepted,
            declined=tally.declined,
            lapsed=tally.lapsed,
            withdrawn=tally.withdrawn,
            acceptance=tally.acceptance,
            median_answer_seconds=tally.median_answer_s,
        )


@strawberry.type(description="One driver's closed offers, first and made again together.")
class DriverOfferTally:
    driver_id: strawberry.ID
    name: str
    tally: OfferTally

    @classmethod
    def from_tally(cls, tally: service.DriverTally) -> DriverOfferTally:
        return cls(
            driver_id=gid("Driver", tally.driver_id),
            name=tally.name,
            tally=OfferTally.from_tally(tally.tally),
        )


@strawberry.type(description="How the company's drivers answered offers.")
class OfferStats:
    since: datetime
    first: OfferTally = strawberry.field(
        description="Offers of a request a driver had not let lapse."
    )
    again: OfferTally = strawberry.field(
        description="Offers made again to a driver who had let an offer of the same request lapse "
        "(lapsedReoffers): asking again pays while their acceptance is near the first offers'."
    )
    by_driver: list[DriverOfferTally] = strawberry.field(
        description="Each driver who was offered work, by name: who lets offers lapse or "
        "declines most (a driver behind on jobs often answered few)."
    )


@part("Query", 40)
@strawberry.type
class DispatchQueries:
    @strawberry.field(description="The signed-in driver's live offer (at most one).")
    async def my_offers(self, info: Info[Context, None]) -> list[Offer]:
        rows = await service.my_offers(info.context.tenant, info.context.actor)
        return [Offer.from_row(row) for row in rows]

    @strawberry.field(description="How drivers answered the offers of the last `days` (1 to 366).")
    async def offer_stats(self, info: Info[Context, None], days: int = 30) -> OfferStats:
        stats = await service.offer_stats(info.context.tenant, info.context.actor, days)
        return OfferStats(
            since=stats.since,
            first=OfferTally.from_tally(stats.first),
            again=OfferTally.from_tally(stats.again),
            by_driver=[DriverOfferTally.from_tally(t) for t in stats.by_driver],
        )

    @strawberry.field(description="Every offer made for a request, with its explanation.")
    async def request_offers(
        self, info: Info[Context, None], request_id: strawberry.ID
    ) -> list[Offer]:
        rows = await service.list_offers(
            info.context.tenant, info.context.actor, pk_of(request_id, "ServiceRequest")
        )
        return [Offer.from_row(row) for row in rows]

    @strawberry.field(description="Every dispatch decision for a request, oldest first.")
    async def dispatch_decisions(
        self, info: Info[Context, None], request_id: strawberry.ID
    ) -> list[DispatchDecision]:
        rows = await service.list_decisions(
            info.context.tenant, info.context.actor, pk_of(request_id, "ServiceRequest")
        )
        return [DispatchDecision.from_row(row) for row in rows]

    @strawberry.field(
        description="A driver's jobs not started yet, in the order to drive them (drivers: "
        "their own)."
    )
    async def driver_route(
        self, info: Info[Context, None], driver_id: strawberry.ID
    ) -> list[RouteStop]:
        ctx = info.context
        stops = await plans.driver_route(
            ctx.tenant, ctx.actor, pk_of(driver_id, "Driver", "driverId")
        )
        return [
            RouteStop(
                request_id=gid("ServiceRequest", s.request_id),
                number=s.number,
                priority=s.priority,
                lat=s.lat,
                lng=s.lng,
                arrive_at=s.arrive_at,
                travel_seconds=s.travel_s,
            )
            for s in stops
        ]

    @strawberry.field(
        description="Where idle drivers were told to wait, near this hour's calls, while they "
        f"are still idle (drivers: their own). Looked at again every {staging.STAGE_MINUTES} "
        "minutes; a driver is told only a new place."
    )
    async def staging_suggestions(self, info: Info[Context, None]) -> list[StagingSuggestion]:
        moves = await staging.staging_suggestions(info.context.tenant, info.context.actor)
        return [StagingSuggestion.from_move(m) for m in moves]

    @strawberry.field(
        description="The latest plan of the fleet's work, with suggestions for dispatchers "
        "(null before the first)."
    )
    async def fleet_plan(self, info: Info[Context, None]) -> FleetPlan | None:
        plan = await replan.fleet_plan(info.context.tenant, info.context.actor)
        return FleetPlan.from_plan(plan) if plan is not None else None

    @strawberry.field
    async def dispatch_settings(self, info: Info[Context, None]) -> DispatchSettings:
        require(info.context.actor, "requests.view")
        return DispatchSettings.from_model(
            await dispatch_settings.dispatch_settings(info.context.tenant)
        )


async def _offer_payload(call: Any) -> OfferPayload:
    response, errors = await attempt(call)
    if response is None:
        return OfferPayload(
            offer=None, service_request=None, preempted_request_id=None, user_errors=errors
        )
    return OfferPayload(
        offer=Offer.from_row(response.offer),
        service_request=ServiceRequest.from_row(response.request) if response.request else None,
        preempted_request_id=(
            gid("ServiceRequest", response.preempted) if response.preempted else None
        ),
        user_errors=[],
    )


async def _dispatch_payload(info: Info[Context, None], call: Any) -> DispatchPayload:
    decision, errors = await attempt(call)
    if decision is None:
        return DispatchPayload(
            outcome=None, offer=None, explanation=None, explained=None, user_errors=errors
        )
    offer = None
    if decision.offer_id is not None:
        ctx = info.context
        rows = await service.list_offers(ctx.tenant, ctx.actor, decision.request_id)
        offer = next((Offer.from_row(r) for r in rows if r.id == decision.offer_id), None)
    return DispatchPayload(
        outcome=decision.outcome,
        offer=offer,
        explanation=decision.explanation,
        explained=_explained(decision.explanation),
        user_errors=[],
    )


@strawberry.enum
class OfferChange(Enum):
    CREATED = topics.OFFER_CREATED.name
    ACCEPTED = topics.OFFER_ACCEPTED.name
    DECLINED = topics.OFFER_DECLINED.name
    EXPIRED = topics.OFFER_EXPIRED.name
    WITHDRAWN = topics.OFFER_WITHDRAWN.name


@strawberry.type
class OfferUpdate:
    event_id: int
    change: OfferChange
    offer: Offer


@strawberry.enum
class StagingChange(Enum):
    SUGGESTED = topics.DRIVER_STAGING_SUGGESTED.name
    CLEARED = topics.DRIVER_STAGING_CLEARED.name


@strawberry.type
class StagingUpdate:
    event_id: int
    change: StagingChange
    driver_id: strawberry.ID
    suggestion: StagingSuggestion | None = strawberry.field(
        description="SUGGESTED: where to wait now (null when CLEARED: busy, or no longer needed)."
    )


@part("Subscription", 30)
@strawberry.type
class DispatchSubscription:
    @strawberry.subscription(
        description="Offers made and answered, live: a driver sees their own (the driver app "
        "rings on CREATED), a dispatcher every offer of the company."
    )
    async def offer_updates(self, info: Info[Context, None]) -> AsyncGenerator[OfferUpdate, None]:
        ctx = info.context
        require(ctx.actor, "offers.respond", "requests.view")
        everyone = ctx.actor.can("requests.view")
        topics = {change.value: change for change in OfferChange}
        async for event in tenant_events(ctx.tenant.slug, topics):
            payload = event.get("payload") or {}
            if not everyone and payload.get("driver_id") != ctx.actor.driver_id:
                continue  # another driver's offer
            row = await service.offer_row(ctx.tenant, int(event["entity_id"]))
            if row is not None:
                change = topics[event["topic"]]
                yield OfferUpdate(event_id=event["id"], change=change, offer=Offer.from_row(row))

    @strawberry.subscription(
        description="Waiting places told to idle drivers, live: a driver hears their own (the "
        "driver app shows it on SUGGESTED, drops it on CLEARED), a dispatcher every driver's."
    )
    async def staging_updates(
        self, info: Info[Context, None]
    ) -> AsyncGenerator[StagingUpdate, None]:
        ctx = info.context
        require(ctx.actor, "offers.respond", "drivers.view")
        everyone = ctx.actor.can("drivers.view")
        topics = {change.value: change for change in StagingChange}
        async for event in tenant_events(ctx.tenant.slug, topics):
            payload = event.get("payload") or {}
            if not everyone and payload.get("driver_id") != ctx.actor.driver_id:
                continue  # another driver's
            change = topics[event["topic"]]
            suggested = change is StagingChange.SUGGESTED
            yield StagingUpdate(
                event_id=event["id"],
                change=change,
                driver_id=gid("Driver", payload["driver_id"]),
                suggestion=StagingSuggestion.from_move(staging.move_of(payload))
                if suggested
                else None,
            )


@part("Mutation", 40)
@strawberry.type
class DispatchMutations:
    @strawberry.mutation(description="Accept an offer made to you: the request is yours.")
    async def accept_offer(self, info: Info[Context, None], id: strawberry.ID) -> OfferPayload:
        ctx = info.context

        async def run() -> service.Response:
            return await service.respond_to_offer(
                ctx.tenant, ctx.actor, pk_of(id, "Offer"), accept=True
            )

        return await _offer_payload(run())

    @strawberry.mutation(description="Decline an offer made to you; the next driver gets it.")
    async def decline_offer(
        self, info: Info[Context, None], id: strawberry.ID, reason: str = ""
    ) -> OfferPayload:
        ctx = info.context

        async def run() -> service.Response:
            return await service.respond_to_offer(
                ctx.tenant, ctx.actor, pk_of(id, "Offer"), accept=False, reason=reason
            )

        return await _offer_payload(run())

    @strawberry.mutation(description="Offer a waiting request to a driver of your choice.")
    async def offer_request(
        self, info: Info[Context, None], request_id: strawberry.ID, driver_id: strawberry.ID
    ) -> DispatchPayload:
        ctx = info.context

        async def run() -> service.Decision:
            return await service.offer_by_hand(
                ctx.tenant,
                ctx.actor,
                pk_of(request_id, "ServiceRequest", "requestId"),
                pk_of(driver_id, "Driver", "driverId"),
            )

        return await _dispatch_payload(info, run())

    @strawberry.mutation(
        description="Run the engine for a waiting request now (a flagged one too, afresh)."
    )
    async def dispatch_request(
        self, info: Info[Context, None], request_id: strawberry.ID
    ) -> DispatchPayload:
        ctx = info.context

        async def run() -> service.Decision:
            return await autodispatch.dispatch_again(
                ctx.tenant, ctx.actor, pk_of(request_id, "ServiceRequest", "requestId")
            )

        return await _dispatch_payload(info, run())

    @strawberry.mutation(
        description="Re-plan the whole fleet now (takes about a second); suggests, applies nothing."
    )
    async def replan_fleet(self, info: Info[Context, None]) -> FleetPlanPayload:
        plan, errors = await attempt(replan.replan_fleet(info.context.tenant, info.context.actor))
        return FleetPlanPayload(
            plan=FleetPlan.from_plan(plan) if plan is not None else None, user_errors=errors
        )

    @strawberry.mutation(
        description="Take the latest fleet plan's suggestion for a request: OFFER offers it to "
        "the plan's driver; REASSIGN takes the accepted job back from its driver (reason "
        "reassigned) and offers it to the driver who gets there sooner. Refused, changing "
        "nothing, when the suggestion no longer stands."
    )
    async def apply_plan_suggestion(
        self, info: Info[Context, None], request_id: strawberry.ID
    ) -> DispatchPayload:
        ctx = info.context

        async def run() -> service.Decision:
            return await replan.apply_suggestion(
                ctx.tenant, ctx.actor, pk_of(request_id, "ServiceRequest", "requestId")
            )

        return await _dispatch_payload(info, run())

    @strawberry.mutation(description="Change how the engine chooses drivers.")
    async def update_dispatch_settings(
        self, info: Info[Context, None], input: DispatchSettingsInput
    ) -> DispatchSettingsPayload:
        model, errors = await attempt(
            dispatch_settings.update_dispatch_settings(
                info.context.tenant, info.context.actor, given(input)
            )
        )
        return DispatchSettingsPayload(
            settings=DispatchSettings.from_model(model) if model else None, user_errors=errors
        )
