"""Scoring in hand-built cases: the expected driver wins, and the reason says why."""

from __future__ import annotations

from datetime import UTC, datetime

from patone.core.dispatch.candidates import Candidate, Excluded, explain, rank
from patone.core.dispatch.settings import DispatchSettings, Weights

WEIGHTS = Weights(load=4)  # travel 1/min, load 4 min per job above the mean, rating 2 per star


def _driver(driver_id: int, minutes: float, jobs: int = 3, **more: object) -> Candidate:
    return Candidate(
        driver_id=driver_id,
        name=f"D{driver_id}",
        lat=0,
        lng=0,
        jobs_today=jobs,
        travel_s=round(minutes * 60),
        **more,  # type: ignore[arg-type]
    )


def test_a_lighter_loaded_driver_a_little_further_away_wins() -> None:
    busy_near = _driver(1, minutes=6, jobs=5)
    light_far = _driver(2, minutes=9, jobs=3)
    ranked = rank([busy_near, light_far], weights=WEIGHTS, mean_jobs=4, priority="normal")
    assert [s.candidate.driver_id for s in ranked] == [2, 1]
    assert ranked[0].parts == {"travel": 9.0, "load": -4.0}
    assert ranked[1].cost == 10.0


def test_much_further_is_not_worth_a_lighter_load() -> None:
    busy_near = _driver(1, minutes=5, jobs=5)
    light_far = _driver(2, minutes=25, jobs=3)
    ranked = rank([light_far, busy_near], weights=WEIGHTS, mean_jobs=4, priority="normal")
    assert ranked[0].candidate.driver_id == 1


def test_an_emergency_goes_to_the_fastest_driver_whatever_the_load_or_rating() -> None:
    fastest = _driver(1, minutes=4, jobs=9, rating=3.1)
    rested = _driver(2, minutes=5, jobs=0, rating=5.0)
    ranked = rank([rested, fastest], weights=WEIGHTS, mean_jobs=4, priority="emergency")
    assert [s.candidate.driver_id for s in ranked] == [1, 2]
    assert ranked[0].parts == {"travel": 4.0}


def test_a_poor_rating_costs_minutes() -> None:
    poor = _driver(1, minutes=6, rating=3.0)
    good = _driver(2, minutes=8, rating=5.0)
    ranked = rank([poor, good], weights=WEIGHTS, mean_jobs=3, priority="high")
    assert [s.candidate.driver_id for s in ranked] == [2, 1]  # 6 + 4 > 8


def test_the_nearest_strategy_ranks_by_travel_alone() -> None:
    near_busy = _driver(1, minutes=5, jobs=9)
    far_idle = _driver(2, minutes=6, jobs=0)
    ranked = rank(
        [far_idle, near_busy], weights=WEIGHTS, mean_jobs=4, priority="low", strategy="nearest"
    )
    assert [s.candidate.driver_id for s in ranked] == [1, 2]


def test_taking_a_driver_off_a_job_needs_a_clear_gain() -> None:
    would_preempt = _driver(1, minutes=4, preempts=77)
    free = _driver(2, minutes=7)
    ranked = rank([would_preempt, free], weights=WEIGHTS, mean_jobs=3, priority="emergency")
    assert ranked[0].candidate.driver_id == 2  # 4 + 5 penalty > 7
    nearer = _driver(1, minutes=1, preempts=77)
    ranked = rank([nearer, free], weights=WEIGHTS, mean_jobs=3, priority="emergency")
    assert ranked[0].candidate.driver_id == 1


def test_a_driver_with_no_road_to_the_scene_is_not_ranked_and_ties_go_to_the_nearer() -> None:
    island = Candidate(driver_id=1, name="D1", lat=0, lng=0, travel_s=None)
    a, b = _driver(3, minutes=5, jobs=4), _driver(2, minutes=4, jobs=4, rating=4.5)
    ranked = rank([island, a, b], weights=WEIGHTS, mean_jobs=4, priority="normal")
    assert [s.candidate.driver_id for s in ranked] == [2, 3]  # equal cost 5: nearer first


def test_the_explanation_names_the_choice_the_others_and_who_was_left_out() -> None:
    ranked = rank(
        [_driver(1, minutes=6, jobs=5), _driver(2, minutes=9, jobs=3)],
        weights=WEIGHTS,
        mean_jobs=4,
        priority="normal",
    )
    explanation = explain(
        ranked,
        [Excluded(3, "D3", "lacks tow")],
        chosen=ranked[0],
        settings=DispatchSettings(),
        priority="normal",
        mean_jobs=4,
        at=datetime(2026, 12, 2, 9, 0, tzinfo=UTC),
    )
    assert explanation["chosen"] == 2
    assert explanation["why"] == "lowest cost 5.0: 9.0 min to the scene, 3 jobs today (mean 4.0)"
    assert [c["driver_id"] for c in explanation["candidates"]] == [2, 1]
    assert explanation["excluded"] == [{"driver_id": 3, "name": "D3", "reason": "lacks tow"}]
    nobody = explain(
        [],
        [Excluded(3, "D3", "busy"), Excluded(4, "D4", "busy"), Excluded(5, "D5", "lacks tow")],
        chosen=None,
        settings=DispatchSettings(),
        priority="normal",
        mean_jobs=0,
        at=datetime(2026, 12, 2, 9, 0, tzinfo=UTC),
    )
    assert nobody["chosen"] is None
    assert nobody["why"] == "no driver can take it now: 2 busy, 1 lacks tow"
