"""Route optimisation: which driver serves which jobs, in which order (OR-Tools, greedy fallback).

Pure and synchronous, no database: the engine builds a travel-time matrix over every place
involved (drivers' positions, or where their current job ends, and the jobs' scenes), calls
`plan_routes` (periodic re-planning) or `sequence_for_driver` (one driver's queued jobs) and
applies the answer. OR-Tools holds the GIL while it searches: `plan_routes` (a second by
default) belongs in another process (a ProcessPoolExecutor or a job; inputs and plans pickle),
never in a thread of a process serving requests; `sequence_for_driver` takes milliseconds.

Times are whole seconds from now. A stop's lateness is how long after its due time the driver
arrives: its window's latest second, or now (0) when it has no window, so a job without a window
counts every second its customer waits. The objective, the same for both solvers and reported in
`Plan.objective`, is travel time + lateness weighted by priority + a large penalty per stop left
unassigned.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from ortools.constraint_solver.pywrapcp import RoutingIndexManager, RoutingModel

# Weight of one second of lateness, by priority 0..3 (3 = emergency), against one second of
# driving. A routine customer's waiting second is worth a second of a truck's driving (neither
# idles a truck for free nor strands a customer for a shorter drive); each level up doubles it,
# and an emergency's is 32: one minute sooner to an emergency is worth half an hour more for a
# routine customer, so an emergency takes the truck that reaches it first and goes first in its
# queue even past a job on the way (a routine job's service time is at least that detour).
PRIORITY_WEIGHT = (1, 2, 4, 32)
EMERGENCY = 3

# Dropping a stop costs more than any lateness it could cause (`_Problem.drop_penalty`), times
# its priority's weight, so only a stop no truck can serve comes back unassigned, and when trucks
# run out (capacity) the lowest priorities go first. A job a driver already accepted is weighted
# as an emergency: taking it back is a broken promise.
FIXED_WEIGHT = PRIORITY_WEIGHT[EMERGENCY]

# One driver with this many queued jobs or fewer: try every order instead of building a model.
EXACT_STOPS = 3

Solver = Literal["or-tools", "greedy"]


@dataclass(frozen=True)
class Vehicle:
    """A driver who can take jobs: where they start from and when they are free."""

    id: Hashable
    start_index: int  # into the matrix: the current position, or where the current job ends
    available_at_s: int  # seconds from now until the driver is free
    capacity: int | None = None  # most stops this plan may give them; None: no limit
    skills: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Stop:
    """A job's scene: where, how long on scene, when it is due and how urgent."""

    id: Hashable
    index: int  # into the matrix
    service_s: int  # time on scene
    window: tuple[int, int] | None = None  # (earliest, latest) start; None: due now
    priority: int = 0  # 0..3, 3 = emergency
    skills_needed: frozenset[str] = frozenset()
    fixed_vehicle: Hashable | None = None  # a job already accepted stays with its driver


@dataclass(frozen=True)
class PlannedStop:
    """A stop in a route: when the driver gets there, leaves, and how long the drive was."""

    stop_id: Hashable
    arrive_s: int
    depart_s: int  # service starts at the window's earliest if the driver is early
    travel_s: int  # from the previous stop, or the driver's start


@dataclass
class Plan:
    """Routes per vehicle (every vehicle has a list, maybe empty) and the stops nobody takes."""

    routes: dict[Hashable, list[PlannedStop]]
    unassigned: list[Hashable]
    solver: Solver
    objective: int
    solve_ms: float
    travel_s: int = 0  # total driving, the part of the objective maps measure


Durations = Sequence[Sequence[int | None]]  # seconds; None (or negative): no road


def plan_routes(
    vehicles: Sequence[Vehicle],
    stops: Sequence[Stop],
    durations: Durations,
    *,
    time_limit_s: float = 1.0,
    first_solution_only: bool = False,
    solution_limit: int | None = None,
) -> Plan:
    """Assign and order `stops` over `vehicles` minimising travel + priority-weighted lateness.

    OR-Tools' routing solver with a time dimension (waiting allowed, the earliest start hard, the
    latest soft), skills, capacities and fixed vehicles as hard constraints, and every stop
    optional at a large penalty. Its local search starts from the greedy plan and runs guided
    local search for `time_limit_s`; with `first_solution_only` it stops at the first local
    optimum instead (still bounded by the limit). When the solver finds nothing in time or
    fails, or scores no better than greedy, the greedy plan is returned (solver="greedy").
    Raises ValueError naming the bad field when the input is inconsistent.

    The same input gives the same plan whenever the search ends before the time limit: a small
    instance converges, and `solution_limit` (stop after that many solutions the search accepts,
    about 100 a second at 60 x 80 here) with a generous time limit makes any size reproducible
    whatever the machine's load (seeded simulations). A search cut by the clock returns the
    best plan found by then, which can differ slightly between runs.
    """
    started = time.perf_counter()
    problem = _Problem.of(vehicles, stops, durations)
    routes, solver = _optimised(
        problem, time_limit_s, guided=not first_solution_only, solution_limit=solution_limit
    )
    return problem.plan(routes, solver, started)


def greedy_plan(vehicles: Sequence[Vehicle], stops: Sequence[Stop], durations: Durations) -> Plan:
    """Nearest-available: take stops by priority (highest first), then due time, then earliest
    start, then input order; give each to the vehicle that can be there soonest (ties: input
    order), after what it already has. Deterministic; the simulator's baseline has this shape."""
    started = time.perf_counter()
    problem = _Problem.of(vehicles, stops, durations)
    return problem.plan(_greedy_routes(problem), "greedy", started)


def sequence_for_driver(
    start_index: int,
    available_at_s: int,
    stops: Sequence[Stop],
    durations: Durations,
    time_limit_s: float = 0.2,
) -> list[PlannedStop]:
    """Order one driver's queued jobs (skills and fixed vehicles are not checked: the jobs are
    theirs). Up to `EXACT_STOPS` jobs every order is tried; more go to OR-Tools (local search
    to a local optimum, within `time_limit_s`), greedy as the fallback. A job the driver cannot
    reach is left out of the answer."""
    driver = Vehicle(id=None, start_index=start_index, available_at_s=available_at_s)
    own = [replace(stop, skills_needed=frozenset(), fixed_vehicle=None) for stop in stops]
    problem = _Problem.of([driver], own, durations)
    if len(own) <= EXACT_STOPS:
        routes = _best_order(problem)
    else:
        routes, _solver = _optimised(problem, time_limit_s, guided=False, solution_limit=None)
    return problem.schedule(0, routes[0])


# --- the problem, its schedules and its score ---------------------------------------------------

Routes = list[list[int]]  # per vehicle position, stop positions in visiting order


@dataclass
class _Problem:
    vehicles: Sequence[Vehicle]
    stops: Sequence[Stop]
    durations: Durations
    allowed: list[list[int]]  # per stop, the vehicle positions that may serve it
    horizon: int  # no feasible plan has a time beyond this
    weights: int  # the lateness weights of all stops together

    @classmethod
    def of(
        cls, vehicles: Sequence[Vehicle], stops: Sequence[Stop], durations: Durations
    ) -> _Problem:
        _check(vehicles, stops, durations)
        allowed = [
            [
                v
                for v, vehicle in enumerate(vehicles)
                if stop.skills_needed <= vehicle.skills
                and (stop.fixed_vehicle is None or stop.fixed_vehicle == vehicle.id)
            ]
            for stop in stops
        ]
        longest = max(
            (cell for row in durations for cell in row if cell is not None and cell >= 0),
            default=0,
        )
        horizon = (
            max((v.available_at_s for v in vehicles), default=0)
            + max((s.window[1] for s in stops if s.window), default=0)
            + sum(s.service_s for s in stops)
            + (len(stops) + 1) * longest
        )
        weights = sum(PRIORITY_WEIGHT[s.priority] for s in stops)
        return cls(vehicles, stops, durations, allowed, horizon, weights)

    def travel(self, origin: int, destination: int) -> int | None:
        cell = self.durations[origin][destination]
        return None if cell is None or cell < 0 else cell

    def lateness_weight(self, s: int) -> int:
        return PRIORITY_WEIGHT[self.stops[s].priority]

    def drop_penalty(self, s: int) -> int:
        """More than any plan's travel and lateness together, times the stop's weight."""
        weight = (
            FIXED_WEIGHT if self.stops[s].fixed_vehicle is not None else self.lateness_weight(s)
        )
        return (self.horizon + 1) * (self.weights + 1) * weight

    def schedule(self, v: int, route: Iterable[int]) -> list[PlannedStop]:
        """As early as possible along `route`; raises LookupError on a missing road."""
        vehicle = self.vehicles[v]
        at, clock, planned = vehicle.start_index, vehicle.available_at_s, []
        for s in route:
            stop = self.stops[s]
            drive = self.travel(at, stop.index)
            if drive is None:
                raise LookupError(f"no road from {at} to {stop.index}")
            arrive = clock + drive
            begin = max(arrive, stop.window[0]) if stop.window else arrive
            clock = begin + stop.service_s
            planned.append(PlannedStop(stop.id, arrive, clock, drive))
            at = stop.index
        return planned

    def lateness(self, s: int, arrive_s: int) -> int:
        window = self.stops[s].window
        return max(0, arrive_s - (window[1] if window else 0))

    def score(self, routes: Routes) -> int:
        served = {s for route in routes for s in route}
        total = sum(self.drop_penalty(s) for s in range(len(self.stops)) if s not in served)
        for v, route in enumerate(routes):
            for s, planned in zip(route, self.schedule(v, route), strict=True):
                total += planned.travel_s
                total += self.lateness_weight(s) * self.lateness(s, planned.arrive_s)
        return total

    def plan(self, routes: Routes, solver: Solver, started: float) -> Plan:
        served = {s for route in routes for s in route}
        scheduled = {
            vehicle.id: self.schedule(v, routes[v]) for v, vehicle in enumerate(self.vehicles)
        }
        return Plan(
            routes=scheduled,
            unassigned=[stop.id for s, stop in enumerate(self.stops) if s not in served],
            solver=solver,
            objective=self.score(routes),
            solve_ms=(time.perf_counter() - started) * 1000,
            travel_s=sum(p.travel_s for route in scheduled.values() for p in route),
        )


def _check(vehicles: Sequence[Vehicle], stops: Sequence[Stop], durations: Durations) -> None:
    """Raise ValueError naming the first inconsistent field."""
    size = len(durations)
    for r, row in enumerate(durations):
        if len(row) != size:
            raise ValueError(f"durations[{r}]: {len(row)} cells in a {size}-row matrix")
    ids = [v.id for v in vehicles]
    if len(set(ids)) != len(ids):
        raise ValueError("vehicles: two vehicles share an id")
    if len({s.id for s in stops}) != len(stops):
        raise ValueError("stops: two stops share an id")
    for v, vehicle in enumerate(vehicles):
        if not 0 <= vehicle.start_index < size:
            raise ValueError(
                f"vehicles[{v}].start_index: {vehicle.start_index} not in 0..{size - 1}"
            )
        if vehicle.available_at_s < 0:
            raise ValueError(f"vehicles[{v}].available_at_s: negative")
        if vehicle.capacity is not None and vehicle.capacity < 0:
            raise ValueError(f"vehicles[{v}].capacity: negative")
    for s, stop in enumerate(stops):
        if not 0 <= stop.index < size:
            raise ValueError(f"stops[{s}].index: {stop.index} not in 0..{size - 1}")
        if stop.service_s < 0:
            raise ValueError(f"stops[{s}].service_s: negative")
        if not 0 <= stop.priority < len(PRIORITY_WEIGHT):
            raise ValueError(f"stops[{s}].priority: {stop.priority} not in 0..3")
        if stop.window and not 0 <= stop.window[0] <= stop.window[1]:
            raise ValueError(f"stops[{s}].window: needs 0 <= earliest <= latest")
        if stop.fixed_vehicle is not None and stop.fixed_vehicle not in ids:
            raise ValueError(f"stops[{s}].fixed_vehicle: no vehicle {stop.fixed_vehicle!r}")


# --- greedy and exact ---------------------------------------------------------------------------


def _greedy_routes(problem: _Problem) -> Routes:
    """Nearest-available, as `greedy_plan` describes."""
    stops = problem.stops

    def urgency(s: int) -> tuple[int, int, int, int]:
        window = stops[s].window or (0, 0)
        return (-stops[s].priority, window[1], window[0], s)

    routes: Routes = [[] for _ in problem.vehicles]
    at = [vehicle.start_index for vehicle in problem.vehicles]
    free = [vehicle.available_at_s for vehicle in problem.vehicles]
    for s in sorted(range(len(stops)), key=urgency):
        best: tuple[int, int] | None = None  # (arrival, vehicle position)
        for v in problem.allowed[s]:
            capacity = problem.vehicles[v].capacity
            drive = problem.travel(at[v], stops[s].index)
            if drive is None or (capacity is not None and len(routes[v]) >= capacity):
                continue
            if best is None or free[v] + drive < best[0]:
                best = (free[v] + drive, v)
        if best is None:
            continue
        arrive, v = best
        window = stops[s].window
        free[v] = (max(arrive, window[0]) if window else arrive) + stops[s].service_s
        at[v] = stops[s].index
        routes[v].append(s)
    return routes


def _best_order(problem: _Problem) -> Routes:
    """Every subset in every order for one vehicle and a handful of stops; the lowest score
    wins, the first found on a tie (larger subsets first, then input order)."""
    count = len(problem.stops)
    best: tuple[int, Routes] | None = None
    for size in range(count, -1, -1):
        for order in itertools.permutations(range(count), size):
            try:
                score = problem.score([list(order)])
            except LookupError:
                continue
            if best is None or score < best[0]:
                best = (score, [list(order)])
    assert best is not None  # the empty route always scores
    return best[1]


# --- OR-Tools -----------------------------------------------------------------------------------


def _optimised(
    problem: _Problem, time_limit_s: float, guided: bool, solution_limit: int | None
) -> tuple[Routes, Solver]:
    """The solver's routes when it finds some scoring below greedy's, else greedy's."""
    greedy = _greedy_routes(problem)
    if not problem.vehicles or not problem.stops:
        # Nothing to optimise, and OR-Tools aborts the process (a failed CHECK) on no vehicles.
        return greedy, "greedy"
    try:
        solved = _solve(problem, greedy, time_limit_s, guided, solution_limit)
    except Exception:  # a solver bug or resource error must not stop dispatching
        solved = None
    if solved is not None and problem.score(solved) < problem.score(greedy):
        return solved, "or-tools"
    return greedy, "greedy"


def _solve(
    problem: _Problem,
    seed: Routes,
    time_limit_s: float,
    guided: bool,
    solution_limit: int | None,
) -> Routes | None:
    """Search the routing model from `seed`: guided local search until the time limit, or (not
    `guided`) to the first local optimum; None when the solver found no solution in time."""
    # Imported here: OR-Tools takes about 0.1 s to import, paid only by processes that plan.
    from ortools.constraint_solver import pywrapcp, routing_enums_pb2

    manager, routing = _model(problem)
    first_stop = 1 + len(problem.vehicles)
    parameters = pywrapcp.DefaultRoutingSearchParameters()
    parameters.first_solution_strategy = (
        routing_enums_pb2.FirstSolutionStrategy.PARALLEL_CHEAPEST_INSERTION
    )
    parameters.local_search_metaheuristic = (
        routing_enums_pb2.LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH
        if guided
        else routing_enums_pb2.LocalSearchMetaheuristic.GREEDY_DESCENT
    )
    parameters.time_limit.FromMicroseconds(max(1, round(time_limit_s * 1_000_000)))
    if solution_limit is not None:
        parameters.solution_limit = solution_limit
    # Local search starts from the greedy plan: insertion heuristics ignore lateness, and their
    # first solutions start too far from greedy's to recover within the limit (docs/dispatch.md).
    routing.CloseModelWithParameters(parameters)
    initial = routing.ReadAssignmentFromRoutes(
        [[manager.NodeToIndex(first_stop + s) for s in route] for route in seed], True
    )
    if initial is None:  # not expected (greedy keeps every hard rule): search from scratch
        solution = routing.SolveWithParameters(parameters)
    else:
        solution = routing.SolveFromAssignmentWithParameters(initial, parameters)
    if solution is None:
        return None
    routes: Routes = []
    for v in range(len(problem.vehicles)):
        route, index = [], solution.Value(routing.NextVar(routing.Start(v)))
        while not routing.IsEnd(index):
            route.append(manager.IndexToNode(index) - first_stop)
            index = solution.Value(routing.NextVar(index))
        routes.append(route)
    return routes


def _model(problem: _Problem) -> tuple[RoutingIndexManager, RoutingModel]:
    """The routing model over nodes [shared end, vehicle starts..., stops...]: its index manager
    and the model, objective and constraints in place."""
    from ortools.constraint_solver import pywrapcp

    vehicles, stops = problem.vehicles, problem.stops
    first_stop = 1 + len(vehicles)
    nodes = first_stop + len(stops)
    places = [-1] + [v.start_index for v in vehicles] + [s.index for s in stops]
    unreachable = problem.horizon + 1
    # Drive from node a to node b: nothing into or out of the shared end (routes are open, a
    # driver stays at the last scene), never into a start.
    drive = [[0] * nodes for _ in range(nodes)]
    no_road: list[tuple[int, int]] = []
    for a in range(1, nodes):
        for b in range(first_stop, nodes):
            cell = problem.travel(places[a], places[b]) if a != b else 0
            if cell is None:
                cell = unreachable
                no_road.append((a, b))
            drive[a][b] = cell
        for b in range(1, first_stop):
            drive[a][b] = unreachable
    service = [0] * first_stop + [s.service_s for s in stops]
    busy = [[service[a] + drive[a][b] for b in range(nodes)] for a in range(nodes)]

    manager = pywrapcp.RoutingIndexManager(
        nodes, len(vehicles), list(range(1, first_stop)), [0] * len(vehicles)
    )
    routing = pywrapcp.RoutingModel(manager)
    routing.SetArcCostEvaluatorOfAllVehicles(routing.RegisterTransitMatrix(drive))
    for a, b in no_road:
        routing.NextVar(manager.NodeToIndex(a)).RemoveValue(manager.NodeToIndex(b))
    # Slack is waiting for a window to open; time is capped by the horizon.
    routing.AddDimension(
        routing.RegisterTransitMatrix(busy), problem.horizon, problem.horizon, False, "time"
    )
    clock = routing.GetDimensionOrDie("time")
    for v, vehicle in enumerate(vehicles):
        clock.CumulVar(routing.Start(v)).SetRange(vehicle.available_at_s, vehicle.available_at_s)
    if any(vehicle.capacity is not None for vehicle in vehicles):
        visits = routing.RegisterUnaryTransitVector([0] * first_stop + [1] * len(stops))
        limits = [len(stops) if v.capacity is None else v.capacity for v in vehicles]
        routing.AddDimensionWithVehicleCapacity(visits, 0, limits, True, "visits")

    for s, stop in enumerate(stops):
        index = manager.NodeToIndex(first_stop + s)
        allowed = problem.allowed[s]
        if not allowed:  # nobody may serve it: keep it off every route
            routing.ActiveVar(index).SetValue(0)
        elif len(allowed) < len(vehicles):
            # -1 is "not served": the disjunction decides that, not the skills.
            routing.VehicleVar(index).SetValues([-1, *allowed])
        earliest, due = stop.window or (0, 0)
        clock.CumulVar(index).SetRange(earliest, problem.horizon)
        clock.SetCumulVarSoftUpperBound(index, due, problem.lateness_weight(s))
        routing.AddDisjunction([index], problem.drop_penalty(s))
    return manager, routing
