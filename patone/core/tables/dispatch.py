"""The dispatch engine's records: decisions, offers, fleet plans, staging moves."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from piccolo.columns import (
    JSONB,
    BigInt,
    BigSerial,
    Boolean,
    DoublePrecision,
    ForeignKey,
    Integer,
    OnDelete,
    OnUpdate,
    SmallInt,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.constraints import Check
from piccolo.table import Table

from patone.core.runtime.db import engine
from patone.core.tables.fleet import Driver
from patone.core.tables.records import Record, computed
from patone.core.tables.requests import ServiceRequest


class Outcome(StrEnum):
    offered = "offered"
    no_candidate = "no_candidate"
    flagged = "flagged"


class OfferStatus(StrEnum):
    open = "open"
    accepted = "accepted"
    declined = "declined"
    expired = "expired"
    withdrawn = "withdrawn"


class Solver(StrEnum):
    or_tools = "or-tools"
    greedy = "greedy"


class SuggestionKind(StrEnum):
    reassign = "reassign"
    offer = "offer"
    unserved = "unserved"


def _request(**kwargs: Any) -> ForeignKey[ServiceRequest]:
    """A reference to a request as the migrations' DDL writes it (no ON UPDATE action)."""
    return ForeignKey(references=ServiceRequest, on_update=OnUpdate.no_action, **kwargs)


def _driver(**kwargs: Any) -> ForeignKey[Driver]:
    return ForeignKey(references=Driver, on_update=OnUpdate.no_action, **kwargs)


class DispatchDecision(Table, tablename="dispatch_decisions", db=engine):
    """One choice the engine made for a request, with its explanation (the candidates it
    weighed and why the winner won)."""

    id = BigSerial(primary_key=True)
    request_id = _request(on_delete=OnDelete.cascade, null=False)
    made_at = Timestamptz()
    outcome = Varchar(length=20, choices=Outcome)
    driver_id = _driver(on_delete=OnDelete.set_null, null=True, default=None)
    strategy = Varchar(length=20)
    explanation = JSONB()
    dispatch_decisions_outcome_check = Check("outcome IN ('offered', 'no_candidate', 'flagged')")


@dataclass(frozen=True, slots=True)
class DecisionRow(Record):
    table: ClassVar[type[Table]] = DispatchDecision
    id: int
    request_id: int
    made_at: datetime
    outcome: str
    driver_id: int | None
    strategy: str
    explanation: dict[str, Any]  # free-form: each strategy explains itself its own way


class Offer(Table, tablename="offers", db=engine):
    """A request offered to one driver until a deadline: one open offer per request and per
    driver (partial unique indexes, in the migration)."""

    id = BigSerial(primary_key=True)
    request_id = _request(on_delete=OnDelete.cascade, null=False)
    driver_id = _driver(on_delete=OnDelete.cascade, null=False)
    decision_id = ForeignKey(
        references=DispatchDecision,
        on_delete=OnDelete.set_null,
        on_update=OnUpdate.no_action,
        null=True,
        default=None,
    )
    status = Varchar(length=10, choices=OfferStatus, default=OfferStatus.open)
    offered_by = Varchar(length=80)
    sent_at = Timestamptz()
    deadline = Timestamptz()
    responded_at = Timestamptz(null=True, default=None)
    reason = Varchar(length=60, default="")
    travel_s = Integer(null=True, default=None)
    distance_m = Integer(null=True, default=None)
    # The driver's current job this offer would take them from (pre-emption), if any.
    preempts = _request(on_delete=OnDelete.set_null, null=True, default=None)
    offers_status_check = Check(
        "status IN ('open', 'accepted', 'declined', 'expired', 'withdrawn')"
    )


@dataclass(frozen=True, slots=True)
class OfferRow(Record):
    table: ClassVar[type[Table]] = Offer
    id: int
    request_id: int
    driver_id: int
    decision_id: int | None
    status: str
    offered_by: str
    sent_at: datetime
    deadline: datetime
    responded_at: datetime | None
    reason: str
    travel_s: int | None
    distance_m: int | None
    preempts: int | None


@dataclass(frozen=True, slots=True)
class ExplainedOfferRow(OfferRow):
    """An offer with the explanation of the decision that made it (none for an offer whose
    decision is gone)."""

    explanation: dict[str, Any] | None = computed(  # noqa: RUF009
        "SELECT d.explanation FROM dispatch_decisions d WHERE d.id = offers.decision_id"
    )


@dataclass(frozen=True, slots=True)
class RequestToDispatchRow(Record):
    """What the engine reads of a request it may dispatch, and whether it has a live offer."""

    table: ClassVar[type[Table]] = ServiceRequest
    id: int
    number: int
    status: str
    priority: str
    service_type: int
    pickup_lat: float
    pickup_lng: float
    offers_made: int
    needs_dispatcher: bool
    requeued_at: datetime | None
    created_at: datetime
    offered: bool = computed(
        "EXISTS (SELECT 1 FROM offers o WHERE o.request_id = service_requests.id "
        "AND o.status = 'open')"
    )


@dataclass(frozen=True, slots=True)
class JobRow(Record):
    """What the engine reads of a driver's started job to tell when and where it ends."""

    table: ClassVar[type[Table]] = ServiceRequest
    id: int
    driver: int | None
    status: str
    service_type: int
    on_scene_at: datetime | None
    eta_at: datetime | None
    pickup_lat: float
    pickup_lng: float
    destination_lat: float | None
    destination_lng: float | None


class FleetPlan(Table, tablename="fleet_plans", db=engine):
    """One fleet re-plan: which solver, its objective and cost, how big the problem was."""

    id = BigSerial(primary_key=True)
    created_at = Timestamptz(index=True)
    solver = Varchar(length=10, choices=Solver)
    objective = BigInt()
    travel_s = Integer()
    solve_ms = Integer()
    drivers = Integer()
    jobs = Integer()
    fleet_plans_solver_check = Check("solver IN ('or-tools', 'greedy')")


class FleetPlanStop(Table, tablename="fleet_plan_stops", db=engine):
    """A driver's planned stop in a plan, in order, with its planned arrival and departure.

    The table's primary key is (plan_id, driver_id, seq) (`DDL_ONLY`); the class names
    `plan_id` as its key only because Piccolo 1.x wants one."""

    plan_id = ForeignKey(
        references=FleetPlan,
        on_delete=OnDelete.cascade,
        on_update=OnUpdate.no_action,
        null=False,
        primary_key=True,
    )
    driver_id = _driver(on_delete=OnDelete.cascade, null=False)
    seq = SmallInt()
    request_id = _request(on_delete=OnDelete.cascade, null=False)
    accepted = Boolean()
    arrive_at = Timestamptz()
    depart_at = Timestamptz()
    travel_s = Integer()


class FleetPlanSuggestion(Table, tablename="fleet_plan_suggestions", db=engine):
    """What a plan suggests to dispatchers: reassign a job, offer one, or that one goes
    unserved."""

    id = BigSerial(primary_key=True)
    plan_id = ForeignKey(
        references=FleetPlan,
        on_delete=OnDelete.cascade,
        on_update=OnUpdate.no_action,
        null=False,
    )
    kind = Varchar(length=10, choices=SuggestionKind)
    request_id = _request(on_delete=OnDelete.cascade, null=False)
    driver_id = _driver(on_delete=OnDelete.cascade, null=True, default=None)
    from_driver_id = _driver(on_delete=OnDelete.cascade, null=True, default=None)
    arrive_at = Timestamptz(null=True, default=None)
    sooner_s = Integer(null=True, default=None)
    why = Text()
    fleet_plan_suggestions_kind_check = Check("kind IN ('reassign', 'offer', 'unserved')")


@dataclass(frozen=True, slots=True)
class SuggestionRow(Record):
    """A plan's suggestion, with the number of the request it is about."""

    table: ClassVar[type[Table]] = FleetPlanSuggestion
    kind: str
    request_id: int
    driver_id: int | None
    from_driver_id: int | None
    arrive_at: datetime | None
    sooner_s: int | None
    why: str
    number: int = computed(
        "SELECT n.number FROM service_requests n WHERE n.id = fleet_plan_suggestions.request_id"
    )


class StagingMove(Table, tablename="staging_moves", db=engine):
    """A driver's current waiting-place suggestion, as their phone was told."""

    driver_id = _driver(on_delete=OnDelete.cascade, null=False, primary_key=True)
    lat = DoublePrecision()
    lng = DoublePrecision()
    km = DoublePrecision()
    place = Text(default="")
    suggested_at = Timestamptz()


class StagingRound(Table, tablename="staging_rounds", db=engine):
    """When the company's drivers were last told where to wait."""

    at = Timestamptz(primary_key=True)
