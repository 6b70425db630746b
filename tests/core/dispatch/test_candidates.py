"""Scoring in hand-built cases: the expected driver wins, and the reason says why."""

from __future__ import annotations

from datetime import UTC, datetime

from patone.core.dispatch.candidates import Candidate, Excluded, Fleet, explain, rank
from patone.core.dispatch.settings import DispatchSettings, Weights

# travel 1/min; 4 min per job above the least loaded candidate, 30 more for each beyond the first
WEIGHTS = Weights(load=4, overload=30)
# 40 jobs in 80 hours on shift: half a job an hour, so 3 jobs is the fair share of 6 hours
FLEET = Fleet(jobs=40, hours=80)
HOURS = 6


def _driver(
    driver_id: int, minutes: float, jobs: int = 3, hours: float = HOURS, **more: object
) -> Candidate:
    return Candidate(
        driver_id=driver_id,
        name=f"D{driver_id}",
        lat=0,
        lng=0,
        jobs_today=jobs,
        on_shift_s=hours * 3600,
        travel_s=round(minutes * 60),
        **more,  # type: ignore[arg-type]
    )


def _order(
    candidates: list[Candidate], priority: str = "normal", strategy: str = "scored"
) -> list[int]:
    ranked = rank(candidates, weights=WEIGHTS, fleet=FLEET, priority=priority, strategy=strategy)
    return [s.candidate.driver_id for s in ranked]


def test_a_driver_one_job_ahead_loses_to_a_lighter_one_a_little_further_away() -> None:
    ahead_near = _driver(1, minutes=6, jobs=4)
    light_far = _driver(2, minutes=9, jobs=3)
    ranked = rank([ahead_near, light_far], weights=WEIGHTS, fleet=FLEET, priority="normal")
    assert [s.candidate.driver_id for s in ranked] == [2, 1]
    assert ranked[0].parts == {"travel": 9.0, "load": 0.0}
    assert ranked[1].parts == {"travel": 6.0, "load": 4.0}
    assert (ranked[0].ahead, ranked[1].ahead) == (0.0, 1.0)


def test_one_job_ahead_is_not_worth_a_much_longer_drive() -> None:
    ahead_near = _driver(1, minutes=5, jobs=4)
    light_far = _driver(2, minutes=25, jobs=3)
    assert _order([light_far, ahead_near]) == [1, 2]


def test_two_jobs_ahead_costs_much_more_than_twice_one() -> None:
    """The overload: a driver already a job ahead of a lighter candidate gets another only when
    that one is far away, which keeps a fleet's counts within a job of each other."""
    two_ahead = _driver(1, minutes=5, jobs=5)
    light_far = _driver(2, minutes=25, jobs=3)
    ranked = rank([two_ahead, light_far], weights=WEIGHTS, fleet=FLEET, priority="normal")
    assert [s.candidate.driver_id for s in ranked] == [2, 1]
    assert ranked[1].parts == {"travel": 5.0, "load": 8.0, "overload": 30.0}
    very_far = _driver(2, minutes=50, jobs=3)
    assert _order([two_ahead, very_far]) == [1, 2]  # 43 < 50: nobody waits an hour for fairness


def test_the_gap_is_to_the_least_loaded_candidate_not_to_the_fleet() -> None:
    """Two drivers both well above their share compete on travel and one job of difference,
    without the overload of being far above the fleet's rate."""
    near = _driver(1, minutes=6, jobs=8)
    far = _driver(2, minutes=9, jobs=7)
    ranked = rank([near, far], weights=WEIGHTS, fleet=FLEET, priority="normal")
    assert [s.candidate.driver_id for s in ranked] == [2, 1]
    assert ranked[1].parts == {"travel": 6.0, "load": 4.0}


def test_a_late_starter_is_measured_against_their_own_hours_on_shift() -> None:
    """At half a job an hour, a driver with 1 job in 2 hours is as loaded as one with 3 in 6:
    the nearer goes, and the late starter does not soak up the jobs the others need."""
    late_far = _driver(1, minutes=9, jobs=1, hours=2)
    early_near = _driver(2, minutes=6, jobs=3, hours=6)
    assert _order([late_far, early_near]) == [2, 1]
    behind_far = _driver(1, minutes=9, jobs=0, hours=2)  # one below their share of 1
    assert _order([behind_far, early_near]) == [1, 2]


def test_an_emergency_goes_to_the_fastest_driver_whatever_the_load_or_rating() -> None:
    fastest = _driver(1, minutes=4, jobs=9, rating=3.1)
    rested = _driver(2, minutes=5, jobs=0, rating=5.0)
    ranked = rank([rested, fastest], weights=WEIGHTS, fleet=FLEET, priority="emergency")
    assert [s.candidate.driver_id for s in ranked] == [1, 2]
    assert ranked[0].parts == {"travel": 4.0}


def test_an_emergency_goes_to_the_least_loaded_of_the_trucks_about_as_fast() -> None:
    """Within the company's tie (2 minutes by default) of the fastest, a truck is as fast at a
    travel estimate's precision: the least loaded of those goes; further ones come after,
    fastest first, however light."""
    fastest = _driver(1, minutes=4, jobs=5)
    rested = _driver(2, minutes=5.5, jobs=3)
    idle_far = _driver(3, minutes=7, jobs=0)

    def order(tie_minutes: float) -> list[int]:
        ranked = rank(
            [fastest, idle_far, rested],
            weights=WEIGHTS,
            fleet=FLEET,
            priority="emergency",
            emergency_tie_s=tie_minutes * 60,
        )
        return [s.candidate.driver_id for s in ranked]

    assert order(2) == [2, 1, 3]
    assert order(0) == [1, 2, 3]  # no tie: the fastest, whatever the load
    assert order(1) == [1, 2, 3]  # 1.5 minutes slower is not a tie of one
    ranked = rank(
        [fastest, rested], weights=WEIGHTS, fleet=FLEET, priority="emergency", emergency_tie_s=120
    )
    assert ranked[0].parts == {"travel": 5.5, "load": 0.0}
    assert ranked[1].parts == {"travel": 4.0, "load": 8.0, "overload": 30.0}
    why = explain(
        ranked,
        [],
        chosen=ranked[0],
        settings=DispatchSettings(),
        priority="emergency",
        fleet=FLEET,
        at=datetime(2026, 12, 3, 16, tzinfo=UTC),
    )
    assert why.why == (
        "emergency: 5.5 min to the scene, 1.5 min behind the fastest (D1, 5 jobs today), as "
        "fast at the estimate's precision and less loaded: 3 jobs in 6.0 h on shift (fair share "
        "3.0), the least loaded who could take it"
    )
    # A pre-emption counts as its 5-minute penalty: D4, a minute away on another job, is 6
    # minutes from going, half a minute behind D2 (free, 5.5): the fastest without a tie, and
    # tied with D4 with one, where D4, with no jobs today, is the lighter.
    preempting = _driver(4, minutes=1, jobs=0, preempts=77)
    assert _order([preempting, rested], priority="emergency") == [2, 4]
    with_tie = rank(
        [preempting, rested],
        weights=WEIGHTS,
        fleet=FLEET,
        priority="emergency",
        emergency_tie_s=120,
    )
    assert [s.candidate.driver_id for s in with_tie] == [4, 2]


def test_a_poor_rating_costs_minutes() -> None:
    poor = _driver(1, minutes=6, rating=3.0)
    good = _driver(2, minutes=8, rating=5.0)
    assert _order([poor, good], priority="high") == [2, 1]  # 6 + 4 > 8


def test_the_nearest_strategy_ranks_by_travel_alone() -> None:
    near_busy = _driver(1, minutes=5, jobs=9)
    far_idle = _driver(2, minutes=6, jobs=0)
    assert _order([far_idle, near_busy], priority="low", strategy="nearest") == [1, 2]


def test_taking_a_driver_off_a_job_needs_a_clear_gain() -> None:
    would_preempt = _driver(1, minutes=4, preempts=77)
    free = _driver(2, minutes=7)
    assert _order([would_preempt, free], priority="emergency") == [2, 1]  # 4 + 5 penalty > 7
    nearer = _driver(1, minutes=1, preempts=77)
    assert _order([nearer, free], priority="emergency") == [1, 2]


def test_a_driver_with_no_road_to_the_scene_is_not_ranked_and_ties_go_to_the_nearer() -> None:
    island = Candidate(driver_id=1, name="D1", lat=0, lng=0, travel_s=None)
    a, b = _driver(3, minutes=5, jobs=4), _driver(2, minutes=4, jobs=4, rating=4.5)
    assert _order([island, a, b]) == [2, 3]  # equal cost 5: nearer first


def test_the_explanation_names_the_choice_the_others_and_who_was_left_out() -> None:
    ranked = rank(
        [_driver(1, minutes=6, jobs=5), _driver(2, minutes=9, jobs=3, rating=4.8)],
        weights=WEIGHTS,
        fleet=FLEET,
        priority="normal",
    )
    explanation = explain(
        ranked,
        [Excluded(3, "D3", "lacks tow")],
        chosen=ranked[0],
        settings=DispatchSettings(),
        priority="normal",
        fleet=FLEET,
        at=datetime(2026, 12, 2, 9, 0, tzinfo=UTC),
    )
    assert explanation.chosen == 2
    assert explanation.why == (
        "lowest cost 9.4: 9.0 min to the scene, 3 jobs in 6.0 h on shift (fair share 3.0), "
        "the least loaded who could take it, rated 4.8"
    )
    assert [c.driver_id for c in explanation.candidates] == [2, 1]
    assert explanation.candidates[1].ahead == 2.0
    assert explanation.candidates[1].parts == {"travel": 6.0, "load": 8.0, "overload": 30.0}
    second = explain(
        ranked[1:],
        [],
        chosen=ranked[1],
        settings=DispatchSettings(),
        priority="normal",
        fleet=FLEET,
        at=datetime(2026, 12, 2, 9, 0, tzinfo=UTC),
    )
    assert second.why == (
        "lowest cost 44.0: 6.0 min to the scene, 5 jobs in 6.0 h on shift (fair share 3.0), "
        "2.0 more than the least loaded who could take it"
    )
    assert explanation.as_dict()["excluded"] == [
        {"driver_id": 3, "name": "D3", "reason": "lacks tow"}
    ]
    nobody = explain(
        [],
        [Excluded(3, "D3", "busy"), Excluded(4, "D4", "busy"), Excluded(5, "D5", "lacks tow")],
        chosen=None,
        settings=DispatchSettings(),
        priority="normal",
        fleet=Fleet(),
        at=datetime(2026, 12, 2, 9, 0, tzinfo=UTC),
    )
    assert nobody.chosen is None
    assert nobody.why == "no driver can take it now: 2 busy, 1 lacks tow"


def test_a_job_ahead_weighs_more_as_the_shift_runs_out() -> None:
    """Early on, the lighter driver has time to catch up; in the last hour they do not."""
    # FLEET: half a job an hour. 6 hours left: 3 jobs to come, load at its weight.
    early = [_driver(1, minutes=6, jobs=4, shift_left_s=6 * 3600), _driver(2, minutes=12)]
    assert _order(early) == [1, 2]
    # 1 hour left: half a job to come, so a job ahead weighs three times as much.
    late = [_driver(1, minutes=6, jobs=4, shift_left_s=3600), _driver(2, minutes=12)]
    ranked = rank(late, weights=WEIGHTS, fleet=FLEET, priority="normal")
    assert [s.candidate.driver_id for s in ranked] == [2, 1]
    assert ranked[1].parts["load"] == 12.0  # 4 minutes x 1 job x 3
    assert FLEET.urgency(_driver(3, minutes=1, shift_left_s=3 * 3600)) == 2 / 1.5
    assert FLEET.urgency(_driver(3, minutes=1)) == 1.0  # no shift on record: no end in sight
    # No jobs given yet: no rate, nobody ahead, nothing to weigh.
    assert Fleet().urgency(_driver(3, minutes=1, shift_left_s=600)) == 1.0
    why = explain(
        ranked,
        [],
        chosen=ranked[0],
        settings=DispatchSettings(),
        priority="normal",
        fleet=FLEET,
        at=datetime(2026, 12, 3, 16, tzinfo=UTC),
    )
    assert [c.load_urgency for c in why.candidates] == [1.0, 3.0]
