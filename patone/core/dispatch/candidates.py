"""Who could take a request, and in which order: candidates, travel times, scores, explanations.

A candidate is a driver on shift who is free, with the skills the service type needs, within the
company's radius, who has no live offer and has not turned this request down. A driver who let
an offer of it lapse unanswered may be asked again (`DispatchSettings.lapsed_reoffers`), at a
cost of `lapse` minutes per unanswered offer. For an emergency, a driver whose only job is an
unstarted non-urgent one is a candidate too: accepting pre-empts that job.

Each candidate gets a cost in minutes-equivalent (lower wins; the weights are the company's,
`settings.Weights`): the travel time to the scene from the maps plugin, plus the load, plus
`rating` per star below five, plus a fixed penalty for taking a driver off another job.

The load is measured against time on shift: a driver's fair share is the fleet's jobs today per
hour on shift times their own hours (`Fleet`), so a driver who started at noon is not taken for
one who fell behind. It costs `load` minutes per job above the least loaded candidate, and
`overload` more for each job beyond the first: one job of difference is worth a few minutes'
drive, two are worth a long one, which keeps drivers' counts within about a job of each other.
Both weigh more as the candidate's shift runs out (`Fleet.urgency`, up to three times in the
last hour or so): early in a shift a lighter driver has time to catch up, at its end they do not.
Emergencies are scored on travel time alone: the fastest truck goes, except that trucks
within `emergency_tie_minutes` (2) of it count as tied and the least loaded of them goes.
The `nearest` strategy (the simulator's greedy baseline, and a company's choice) also ranks by
travel time alone. A driver about to finish a job (`workload.py`) is a candidate for a job queued
behind it: their cost counts the minutes until they are free as travel minutes, and their travel
starts where that job ends.

`rank` is pure, so hand-built cases test it; `gather` reads the drivers and asks the maps
plugin; `explain` turns a ranking into what a dispatcher reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from patone.core.dispatch.settings import DispatchSettings, Weights
from patone.core.domain.service_types import distance_km

# Taking a driver off an accepted job costs that customer a new wait: only worth it when the
# driver is clearly the fastest way to reach the emergency.
PREEMPT_PENALTY_MIN = 5.0
TOP_EXPLAINED = 10  # candidates listed in full in an explanation; the rest are counted
# Load weighs more as a shift runs out: with fewer jobs than this left at the fleet's rate, a
# driver behind has little time to catch up (up to MAX_URGENCY times the load weights).
CATCH_UP_JOBS = 2.0
MAX_URGENCY = 3.0


@dataclass(frozen=True)
class Candidate:
    """A driver who could take the request, with what scoring needs to know."""

    driver_id: int
    name: str
    lat: float
    lng: float
    jobs_today: int = 0
    on_shift_s: float = 0.0  # on duty so far today (since they came on duty, up to now)
    shift_left_s: float | None = None  # until their shift ends (None: no shift on record)
    rating: float | None = None  # stars, 1 to 5
    travel_s: int | None = None  # to the scene, from the maps plugin; None: no road
    distance_m: int | None = None
    preempts: int | None = None  # the request this driver would be taken from
    wait_s: float = 0.0  # until the driver is free (a job queued behind their current one)
    after: int | None = None  # the request the job would queue behind
    lapsed: int = 0  # offers of this request the driver let lapse unanswered


@dataclass(frozen=True)
class Fleet:
    """What a fair load is measured against: the jobs the drivers on shift were given today, per
    hour they have been on shift. A driver's fair share is that rate times their own hours, so a
    driver who started at noon is not "behind" the ones who started at six."""

    jobs: int = 0
    hours: float = 0.0

    @property
    def rate(self) -> float:
        """Jobs per hour on shift."""
        return self.jobs / self.hours if self.hours > 0 else 0.0

    def share(self, candidate: Candidate) -> float:
        """The jobs this driver would have had by now at the fleet's rate."""
        return self.rate * candidate.on_shift_s / 3600

    def ahead(self, candidate: Candidate) -> float:
        """Jobs above their fair share (negative: below it)."""
        return candidate.jobs_today - self.share(candidate)

    def urgency(self, candidate: Candidate) -> float:
        """How much a job more for this driver weighs, from the jobs left in their shift at
        the fleet's rate: 1 while `CATCH_UP_JOBS` or more are left (a lighter driver still has
        time to catch up), rising to `MAX_URGENCY` as the shift runs out. 1 without a shift
        on record, or before the fleet has a rate (no jobs yet: nobody is ahead)."""
        if candidate.shift_left_s is None or self.rate <= 0:
            return 1.0
        left = self.rate * candidate.shift_left_s / 3600
        if left <= CATCH_UP_JOBS / MAX_URGENCY:
            return MAX_URGENCY
        return max(1.0, CATCH_UP_JOBS / left)


@dataclass(frozen=True)
class Scored:
    candidate: Candidate
    cost: float  # minutes-equivalent; lower wins
    parts: dict[str, float] = field(default_factory=dict)
    ahead: float = 0.0  # jobs above the least loaded candidate (both against their fair share)


@dataclass(frozen=True)
class Excluded:
    driver_id: int
    name: str
    reason: str


def rank(
    candidates: Sequence[Candidate],
    *,
    weights: Weights,
    fleet: Fleet,
    priority: str,
    strategy: str = "scored",
    emergency_tie_s: float = 0.0,
) -> list[Scored]:
    """Candidates with a road to the scene, cheapest first (ties: nearer, then lower id). For
    an emergency, those within `emergency_tie_s` of the fastest (`emergency_tied`) come first,
    the least loaded of them first."""
    by_travel_only = strategy == "nearest" or priority == "emergency"
    timed = [c for c in candidates if c.travel_s is not None]
    tied = (
        emergency_tied(timed, emergency_tie_s)
        if priority == "emergency" and strategy == "scored"
        else set()
    )
    ahead = {c.driver_id: fleet.ahead(c) for c in timed}
    least = min(ahead.values(), default=0.0)
    least_tied = min((ahead[d] for d in tied), default=0.0)
    scored = []
    for candidate in timed:
        gap = ahead[candidate.driver_id] - least
        parts = _speed_parts(candidate, weights)
        if not by_travel_only:
            parts.update(load_parts(gap, weights, fleet.urgency(candidate)))
            if candidate.rating is not None:
                parts["rating"] = weights.rating * max(0.0, 5.0 - candidate.rating)
        elif candidate.driver_id in tied:
            gap = ahead[candidate.driver_id] - least_tied
            parts.update(load_parts(gap, weights, fleet.urgency(candidate)))
        if candidate.lapsed:
            parts["lapsed"] = weights.lapse * candidate.lapsed
        scored.append(Scored(candidate, round(sum(parts.values()), 3), parts, round(gap, 3)))
    scored.sort(
        key=lambda s: (
            bool(tied) and s.candidate.driver_id not in tied,
            s.cost,
            _arrival_s(s.candidate),
            s.candidate.driver_id,
        )
    )
    return scored


def _speed_parts(candidate: Candidate, weights: Weights) -> dict[str, float]:
    """What it costs in time to have this driver go: the drive, the wait until they are free,
    taking them off another job."""
    parts = {"travel": weights.eta * (candidate.travel_s or 0) / 60}
    if candidate.wait_s:
        parts["wait"] = weights.wait * candidate.wait_s / 60
    if candidate.preempts is not None:
        parts["preempt"] = PREEMPT_PENALTY_MIN
    return parts


def emergency_tied(candidates: Sequence[Candidate], tie_s: float) -> set[int]:
    """The drivers an emergency may go to when `tie_s` > 0: those whose time cost (the drive,
    the wait, a pre-emption) is within `tie_s` of the fastest's. At the precision of a travel
    estimate (minutes of error either way) they are as fast, and the least loaded of them goes
    rather than the one a few seconds nearer with a job more than everyone."""
    if tie_s <= 0 or not candidates:
        return set()
    speed = {c.driver_id: _time_to_go_s(c) for c in candidates}
    fastest = min(speed.values())
    return {d for d, seconds in speed.items() if seconds <= fastest + tie_s}


def _time_to_go_s(candidate: Candidate) -> float:
    """Seconds until the driver could be there, a pre-emption counted as its penalty."""
    preempt = PREEMPT_PENALTY_MIN * 60 if candidate.preempts is not None else 0.0
    return _arrival_s(candidate) + preempt


def load_parts(gap: float, weights: Weights, urgency: float = 1.0) -> dict[str, float]:
    """The cost of giving one more job to a driver `gap` jobs above the least loaded candidate:
    `load` minutes per job, and `overload` more for each job beyond the first, so a driver
    already a job ahead gets another only when the lighter ones are much further away; both
    times `urgency` (`Fleet.urgency`) near the end of their shift."""
    parts = {"load": weights.load * gap * urgency}
    if gap > 1 and weights.overload:
        parts["overload"] = weights.overload * (gap - 1) * urgency
    return parts


def _arrival_s(candidate: Candidate) -> float:
    return candidate.wait_s + (candidate.travel_s or 0)


def within_radius(lat: float, lng: float, candidate: Candidate, radius_km: float) -> bool:
    return distance_km(lat, lng, candidate.lat, candidate.lng) <= radius_km


def _why(
    chosen: Scored, ranked: Sequence[Scored], fleet: Fleet, priority: str, strategy: str
) -> str:
    c = chosen.candidate
    minutes = (c.travel_s or 0) / 60
    fastest = min(ranked, key=lambda s: (_time_to_go_s(s.candidate), s.candidate.driver_id))
    if strategy == "nearest":
        reason = f"nearest: {minutes:.1f} min to the scene"
    elif priority == "emergency" and fastest is not chosen:
        slower = (_time_to_go_s(c) - _time_to_go_s(fastest.candidate)) / 60
        reason = (
            f"emergency: {minutes:.1f} min to the scene, {slower:.1f} min behind the fastest "
            f"({fastest.candidate.name}, {fastest.candidate.jobs_today} jobs today), as fast "
            f"at the estimate's precision and less loaded: {_load_words(chosen, fleet)}"
        )
    elif priority == "emergency":
        reason = f"emergency: fastest to the scene, {minutes:.1f} min"
    else:
        reason = (
            f"lowest cost {chosen.cost:.1f}: {minutes:.1f} min to the scene, "
            f"{_load_words(chosen, fleet)}"
        )
        if c.rating is not None:
            reason += f", rated {c.rating:.1f}"
    if c.after is not None:
        reason += f"; free in about {c.wait_s / 60:.0f} min, after request {c.after}"
    if c.preempts is not None:
        reason += f"; takes them from request {c.preempts}, which goes back to pending"
    if c.lapsed:
        unanswered = "an offer" if c.lapsed == 1 else f"{c.lapsed} offers"
        reason += f"; asked again after {unanswered} of it went unanswered"
    return reason


def _load_words(chosen: Scored, fleet: Fleet) -> str:
    """'3 jobs in 6.0 h on shift (fair share 3.5), 1.0 more than the least loaded who could
    take it'."""
    c = chosen.candidate
    words = (
        f"{c.jobs_today} job{'' if c.jobs_today == 1 else 's'} in {c.on_shift_s / 3600:.1f} h "
        f"on shift (fair share {fleet.share(c):.1f})"
    )
    if chosen.ahead < 0.05:
        return words + ", the least loaded who could take it"
    return words + f", {chosen.ahead:.1f} more than the least loaded who could take it"


@dataclass(frozen=True)
class ExplainedCandidate:
    """A ranked candidate as an explanation shows it."""

    driver_id: int
    name: str
    travel_s: int | None
    distance_m: int | None
    jobs_today: int
    on_shift_h: float
    fair_share: float
    load_urgency: float
    ahead: float
    rating: float | None
    preempts: int | None
    wait_s: int
    after: int | None
    lapsed: int
    cost: float
    parts: dict[str, float]


@dataclass(frozen=True)
class Explanation:
    """What a dispatcher reads of an engine's decision: the candidates and their scores, who
    was left out and why, and why this driver (or why nobody). Stored as the decision's jsonb
    (`as_dict`)."""

    no_driver: str | None
    at: str
    strategy: str
    priority: str
    weights: dict[str, float]
    fleet_jobs_per_hour: float
    chosen: int | None
    why: str
    candidates: list[ExplainedCandidate]
    more_candidates: int
    excluded: list[Excluded]
    more_excluded: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def explain(
    ranked: Sequence[Scored],
    excluded: Sequence[Excluded],
    *,
    chosen: Scored | None,
    settings: DispatchSettings,
    priority: str,
    fleet: Fleet,
    at: datetime,
) -> Explanation:
    """What a dispatcher reads: the candidates and their scores, who was left out and why, and
    why this driver (or why nobody)."""
    strategy = settings.strategy
    why = (
        _why(chosen, ranked, fleet, priority, strategy)
        if chosen is not None
        else ("no driver can take it now: " + _nobody(excluded))
    )
    return Explanation(
        no_driver=no_driver_reason(chosen is not None, ranked, excluded),
        at=at.isoformat(),
        strategy=strategy,
        priority=priority,
        weights=settings.weights.model_dump(),
        fleet_jobs_per_hour=round(fleet.rate, 3),
        chosen=chosen.candidate.driver_id if chosen is not None else None,
        why=why,
        candidates=[
            ExplainedCandidate(
                driver_id=s.candidate.driver_id,
                name=s.candidate.name,
                travel_s=s.candidate.travel_s,
                distance_m=s.candidate.distance_m,
                jobs_today=s.candidate.jobs_today,
                on_shift_h=round(s.candidate.on_shift_s / 3600, 2),
                fair_share=round(fleet.share(s.candidate), 2),
                load_urgency=round(fleet.urgency(s.candidate), 2),
                ahead=s.ahead,
                rating=s.candidate.rating,
                preempts=s.candidate.preempts,
                wait_s=round(s.candidate.wait_s),
                after=s.candidate.after,
                lapsed=s.candidate.lapsed,
                cost=s.cost,
                parts={k: round(v, 2) for k, v in s.parts.items()},
            )
            for s in ranked[:TOP_EXPLAINED]
        ],
        more_candidates=max(0, len(ranked) - TOP_EXPLAINED),
        excluded=list(excluded[:TOP_EXPLAINED]),
        more_excluded=max(0, len(excluded) - TOP_EXPLAINED),
    )


# Why nobody was offered a request, for an API client to act on (the sentence is `why`).
NO_DRIVER_ON_SHIFT = "no_driver_on_shift"  # the company has no driver on shift at all
NO_DRIVER_CAN_TAKE_IT = "no_driver_can_take_it"  # drivers on shift, none of them can


def no_driver_reason(
    offered: bool, ranked: Sequence[Scored], excluded: Sequence[Excluded]
) -> str | None:
    """None when a driver was chosen; else whether anyone was on shift at all."""
    if offered:
        return None
    return NO_DRIVER_CAN_TAKE_IT if ranked or excluded else NO_DRIVER_ON_SHIFT


def _nobody(excluded: Sequence[Excluded]) -> str:
    if not excluded:
        return "no driver is on shift"
    counts: dict[str, int] = {}
    for e in excluded:
        counts[e.reason] = counts.get(e.reason, 0) + 1
    return ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items(), key=lambda i: -i[1]))


def rating_stars(stored: int | None) -> float | None:
    """drivers.rating is stored times 100 (472 = 4.72 stars)."""
    return None if stored is None else stored / 100
