"""Route optimisation: who serves which job in which order, on hand-built travel-time matrices.

Pure functions, no database. Time limits are short here: guided local search always runs to its
limit, and these instances converge within milliseconds.
"""

from __future__ import annotations

import math
import random
import re

import pytest

from patone.core.dispatch.routing import (
    PRIORITY_WEIGHT,
    Plan,
    Stop,
    Vehicle,
    greedy_plan,
    plan_routes,
    sequence_for_driver,
)

FAST = 0.1  # seconds of search: plenty for a handful of stops


def visits(plan: Plan) -> dict[object, list[object]]:
    return {vehicle: [p.stop_id for p in route] for vehicle, route in plan.routes.items()}


def city(seed: int, vehicles: int, stops: int) -> tuple[list[Vehicle], list[Stop], list[list[int]]]:
    """Drivers and jobs scattered over a 30 km square, 40 km/h as the crow flies."""
    rnd = random.Random(seed)
    places = [(rnd.uniform(0, 30_000), rnd.uniform(0, 30_000)) for _ in range(vehicles + stops)]
    durations = [[round(math.dist(a, b) / 11) for b in places] for a in places]
    fleet = [Vehicle(f"v{i}", i, rnd.choice((0, 600))) for i in range(vehicles)]
    jobs = [Stop(f"s{j}", vehicles + j, 1800, priority=rnd.randint(0, 3)) for j in range(stops)]
    return fleet, jobs, durations


# Nearest-first is a trap: A is a little nearer s1 than B, so greedy sends A there, and s2 (near
# A only) then waits for A. Sending B to s1 and A to s2 saves 870 s of driving.
#            A     B     s1    s2
TRAP = [
    [0, 3000, 100, 120],  # A
    [3000, 0, 110, 2000],  # B
    [100, 110, 0, 1000],  # s1
    [120, 2000, 1000, 0],  # s2
]
TRAP_FLEET = [Vehicle("A", 0, 0), Vehicle("B", 1, 0)]
TRAP_STOPS = [Stop("s1", 2, 600), Stop("s2", 3, 600)]


def test_solver_beats_greedy_where_nearest_first_is_a_trap() -> None:
    greedy = greedy_plan(TRAP_FLEET, TRAP_STOPS, TRAP)
    plan = plan_routes(TRAP_FLEET, TRAP_STOPS, TRAP, time_limit_s=FAST)

    assert visits(greedy) == {"A": ["s1", "s2"], "B": []}
    assert greedy.travel_s == 1100 and greedy.objective == 1100 + 100 + 1700
    assert plan.solver == "or-tools"
    assert visits(plan) == {"A": ["s2"], "B": ["s1"]}
    assert plan.travel_s == 230 and plan.objective == 230 + 120 + 110
    assert plan.unassigned == []


def test_emergency_is_served_first_even_when_further() -> None:
    # The routine job is on the way (60 s), the emergency 600 s out; each takes 20 min on scene.
    durations = [[0, 60, 600], [60, 0, 560], [600, 560, 0]]
    stops = [Stop("routine", 1, 1200), Stop("emergency", 2, 1200, priority=3)]

    plan = plan_routes([Vehicle("A", 0, 0)], stops, durations, time_limit_s=FAST)
    queued = sequence_for_driver(0, 0, stops, durations)

    assert visits(plan) == {"A": ["emergency", "routine"]}
    assert plan.routes["A"][0].arrive_s == 600
    assert plan.objective == 600 + 560 + PRIORITY_WEIGHT[3] * 600 + (600 + 1200 + 560)
    assert [p.stop_id for p in queued] == ["emergency", "routine"]


def test_emergency_takes_the_truck_that_reaches_it_first() -> None:
    # A is free and near both jobs; B is far. The emergency gets A, the routine job waits for B.
    #            A     B     job   emergency
    durations = [
        [0, 2000, 100, 150],
        [2000, 0, 900, 1900],
        [100, 900, 0, 100],
        [150, 1900, 100, 0],
    ]
    stops = [Stop("job", 2, 1800), Stop("emergency", 3, 1800, priority=3)]
    fleet = [Vehicle("A", 0, 0), Vehicle("B", 1, 0)]

    plan = plan_routes(fleet, stops, durations, time_limit_s=FAST)

    assert visits(plan) == {"A": ["emergency"], "B": ["job"]}


def test_time_window_is_met_when_it_can_be() -> None:
    # "near" first would make "due soon" late; a booked job waits for its window to open.
    #          start near  due   booked
    durations = [
        [0, 100, 500, 50],
        [100, 0, 450, 100],
        [500, 450, 0, 500],
        [50, 100, 500, 0],
    ]
    stops = [
        Stop("near", 1, 600, window=(0, 5000)),
        Stop("due soon", 2, 600, window=(0, 700)),
        Stop("booked", 3, 600, window=(9000, 9600)),
    ]

    plan = plan_routes([Vehicle("A", 0, 0)], stops, durations, time_limit_s=FAST)

    assert visits(plan) == {"A": ["due soon", "near", "booked"]}
    due = {stop.id: stop.window[1] for stop in stops if stop.window}
    assert all(planned.arrive_s <= due[planned.stop_id] for planned in plan.routes["A"])
    booked = plan.routes["A"][2]
    assert booked.arrive_s == 1550 + 600 + 100 and booked.depart_s == 9000 + 600


def test_lateness_is_minimised_when_a_window_cannot_be_met() -> None:
    # Both jobs are due within 200 s and 700 s apart in time: one must be late. The higher
    # priority is on time; a job late whatever happens is still served, as soon as possible.
    durations = [[0, 100, 100, 50], [100, 0, 200, 100], [100, 200, 0, 100], [50, 100, 100, 0]]
    stops = [
        Stop("routine", 1, 600, window=(0, 200)),
        Stop("urgent", 2, 600, window=(0, 200), priority=2),
    ]
    late_driver = [Vehicle("late", 3, 2000)]
    hopeless = [Stop("hopeless", 1, 600, window=(0, 1000))]

    plan = plan_routes([Vehicle("A", 0, 0)], stops, durations, time_limit_s=FAST)
    late = plan_routes(late_driver, hopeless, durations, time_limit_s=FAST)

    assert visits(plan) == {"A": ["urgent", "routine"]}
    assert [p.arrive_s for p in plan.routes["A"]] == [100, 900]
    assert plan.objective == 300 + PRIORITY_WEIGHT[0] * (900 - 200)
    assert late.unassigned == [] and late.routes["late"][0].arrive_s == 2100
    assert late.objective == 100 + (2100 - 1000)


def test_skills_are_respected() -> None:
    # The plain truck is next to the winch job; only the far truck carries a winch.
    durations = [[0, 2000, 50, 60], [2000, 0, 900, 1900], [50, 900, 0, 30], [60, 1900, 30, 0]]
    fleet = [Vehicle("plain", 0, 0), Vehicle("winch", 1, 0, skills=frozenset({"winch"}))]
    stops = [Stop("stuck", 2, 1800, skills_needed=frozenset({"winch"})), Stop("flat", 3, 900)]

    plan = plan_routes(fleet, stops, durations, time_limit_s=FAST)
    greedy = greedy_plan(fleet, stops, durations)

    assert visits(plan) == {"plain": ["flat"], "winch": ["stuck"]}
    assert visits(greedy)["winch"] == ["stuck"]


def test_capacity_caps_the_stops_a_vehicle_takes() -> None:
    durations = [[0, 2000, 50, 60], [2000, 0, 900, 950], [50, 900, 0, 30], [60, 950, 30, 0]]
    fleet = [Vehicle("near", 0, 0, capacity=1), Vehicle("far", 1, 0)]
    stops = [Stop("one", 2, 60), Stop("two", 3, 60)]

    plan = plan_routes(fleet, stops, durations, time_limit_s=FAST)

    assert len(plan.routes["near"]) == 1 and len(plan.routes["far"]) == 1


def test_fixed_stop_stays_with_its_vehicle() -> None:
    # A is at the scene, but B accepted the job.
    durations = [[0, 1000, 10], [1000, 0, 800], [10, 800, 0]]
    fleet = [Vehicle("A", 0, 0), Vehicle("B", 1, 0)]
    stops = [Stop("accepted", 2, 600, fixed_vehicle="B")]

    assert visits(plan_routes(fleet, stops, durations, time_limit_s=FAST))["B"] == ["accepted"]
    assert visits(greedy_plan(fleet, stops, durations))["B"] == ["accepted"]


def test_stop_nobody_can_serve_comes_back_unassigned() -> None:
    # "island" has no road from anywhere; nobody carries a crane; "ok" is served as usual.
    durations: list[list[int | None]] = [
        [0, None, 100, 200],
        [None, 0, None, None],
        [100, None, 0, 100],
        [200, None, 100, 0],
    ]
    fleet = [Vehicle("A", 0, 0, skills=frozenset({"tow"}))]
    stops = [
        Stop("island", 1, 600, priority=3),
        Stop("crane job", 2, 600, skills_needed=frozenset({"crane"})),
        Stop("ok", 3, 600),
    ]

    plan = plan_routes(fleet, stops, durations, time_limit_s=FAST)
    greedy = greedy_plan(fleet, stops, durations)
    queued = sequence_for_driver(0, 0, [*stops, Stop("also ok", 2, 60)], durations)
    few = sequence_for_driver(0, 0, [stops[0], stops[2]], durations)  # every order tried

    for answer in (plan, greedy):
        assert visits(answer) == {"A": ["ok"]}
        assert sorted(answer.unassigned) == ["crane job", "island"]  # type: ignore[type-var]
    assert sorted(p.stop_id for p in queued) == ["also ok", "crane job", "ok"]  # type: ignore[type-var]
    assert [p.stop_id for p in few] == ["ok"]


def test_no_drivers_or_no_jobs_is_a_plan_not_a_crash() -> None:
    # OR-Tools aborts the whole process on a model with no vehicles: it must never see one.
    nobody = plan_routes([], [Stop("s", 0, 60)], [[0]], time_limit_s=FAST)
    idle = plan_routes([Vehicle("A", 0, 0)], [], [[0]], time_limit_s=FAST)

    assert (nobody.routes, nobody.unassigned) == ({}, ["s"])
    assert (idle.routes, idle.unassigned, idle.objective) == ({"A": []}, [], 0)
    assert sequence_for_driver(0, 0, [], [[0]]) == []


def test_queued_jobs_of_one_driver_are_ordered_by_the_solver() -> None:
    # Five jobs on a line, given out of order: the driver sweeps along the line.
    positions = [0, 400, 100, 300, 500, 200]
    durations = [[abs(a - b) for b in positions] for a in positions]
    stops = [Stop(f"at {positions[i]}", i, 60) for i in range(1, 6)]

    queued = sequence_for_driver(0, 0, stops, durations)

    assert [p.stop_id for p in queued] == ["at 100", "at 200", "at 300", "at 400", "at 500"]
    assert [p.travel_s for p in queued] == [100] * 5


def test_tiny_time_limit_falls_back_to_greedy() -> None:
    fleet, stops, durations = city(7, 60, 80)

    plan = plan_routes(fleet, stops, durations, time_limit_s=1e-6)

    assert plan.solver == "greedy"
    assert visits(plan) == visits(greedy_plan(fleet, stops, durations))


def test_solver_failure_falls_back_to_greedy() -> None:
    # A travel time beyond 64 bits cannot enter the solver; greedy never takes that road.
    durations = [row[:] for row in TRAP]
    durations[1][3] = 2**64

    plan = plan_routes(TRAP_FLEET, TRAP_STOPS, durations, time_limit_s=FAST)

    assert plan.solver == "greedy"
    assert visits(plan) == {"A": ["s1", "s2"], "B": []}


def test_same_input_gives_the_same_plan() -> None:
    fleet, stops, durations = city(3, 10, 20)

    first = plan_routes(fleet, stops, durations, time_limit_s=30, solution_limit=30)
    again = plan_routes(fleet, stops, durations, time_limit_s=30, solution_limit=30)
    greedy = [greedy_plan(fleet, stops, durations) for _ in range(2)]

    assert first.solver == "or-tools" and first.objective < greedy[0].objective
    assert (first.routes, first.unassigned, first.objective) == (
        again.routes,
        again.unassigned,
        again.objective,
    )
    assert greedy[0].routes == greedy[1].routes
    assert visits(plan_routes(TRAP_FLEET, TRAP_STOPS, TRAP, time_limit_s=FAST)) == visits(
        plan_routes(TRAP_FLEET, TRAP_STOPS, TRAP, time_limit_s=FAST)
    )


A = Vehicle("A", 0, 0)
LINE = [[0, 1], [1, 0]]


@pytest.mark.parametrize(
    ("vehicles", "stops", "durations", "field"),
    [
        ([A], [Stop("s", 5, 60)], LINE, "stops[0].index"),
        ([A], [Stop("s", 1, -60)], LINE, "stops[0].service_s"),
        ([A], [Stop("s", 1, 60, priority=4)], LINE, "stops[0].priority"),
        ([A], [Stop("s", 1, 60, window=(500, 100))], LINE, "stops[0].window"),
        ([A], [Stop("s", 1, 60, fixed_vehicle="Z")], LINE, "stops[0].fixed_vehicle"),
        ([A], [Stop("s", 1, 60), Stop("s", 1, 60)], LINE, "stops"),
        ([A], [Stop("s", 1, 60)], [[0, 1], [1]], "durations[1]"),
        ([A, Vehicle("B", 2, 0)], [], LINE, "vehicles[1].start_index"),
        ([Vehicle("A", 0, -5)], [], LINE, "vehicles[0].available_at_s"),
        ([Vehicle("A", 0, 0, capacity=-1)], [], LINE, "vehicles[0].capacity"),
        ([A, A], [], LINE, "vehicles"),
    ],
)
def test_inconsistent_input_is_refused_naming_the_field(
    vehicles: list[Vehicle], stops: list[Stop], durations: list[list[int]], field: str
) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(field) + ":"):
        plan_routes(vehicles, stops, durations, time_limit_s=FAST)
