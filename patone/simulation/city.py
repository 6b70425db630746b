"""The simulated city: a road graph, speeds that change with the hour, and traffic noise.

The graph is a jittered grid of local roads (some blocks missing, so it is not a perfect grid)
with arterials over it: two through-roads each way, a ring and two diagonals. It sits on the demo
company's patch of Berlin, so positions look like the demo's. Shortest free-flow paths between
all nodes are worked out once per seed and kept; every question after that is a table lookup.

What the engine may know (through the maps plugin) is `estimate`: graph distance and free-flow
time divided by the hour-of-day speed factor. What really happens is `true_duration`: the
estimate times a log-normal factor. Fixed assumptions, so the figures can't be tuned away:

- the noise factor has mean 1 and a coefficient of variation of 25 % (`NOISE_CV`), drawn from
  (seed, trip id) so the engine run and the greedy baseline see the same noise for a trip;
- at the morning and evening peaks speeds are 0.6 x free-flow (`PEAK_FACTOR`).

Speeds by road class (arterial 60 km/h, local 30 km/h), the ramps between peak and off-peak and
the night speed-up (x1.15) are this model's own assumptions.

The all-pairs paths are one Dijkstra (heapq) per node in plain Python: for the default ~700
nodes that is 0.3-0.6 s, so numpy/scipy would buy little and add two heavy dependencies.
"""

from __future__ import annotations

import bisect
import functools
import heapq
import itertools
import math
import random
from array import array
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from patone.demo import company as demo
from patone.simulation.draws import lognormal_factor, uniforms

Point = tuple[float, float]  # (lat, lng)

NOISE_CV = 0.25  # a fixed assumption
PEAK_FACTOR = 0.6  # a fixed assumption: peak speeds are 0.6 x free-flow
NIGHT_FACTOR = 1.15
# Speed factor by local hour of day, linear between the points: morning peak 07:00-09:00,
# evening peak 16:00-18:30, faster at night.
SPEED_PROFILE: tuple[tuple[float, float], ...] = (
    (0.0, NIGHT_FACTOR), (5.0, NIGHT_FACTOR), (6.0, 1.0), (7.0, PEAK_FACTOR), (9.0, PEAK_FACTOR),
    (10.0, 1.0), (15.0, 1.0), (16.0, PEAK_FACTOR), (18.5, PEAK_FACTOR), (19.5, 1.0), (21.0, 1.0),
    (22.0, NIGHT_FACTOR), (24.0, NIGHT_FACTOR),
)  # fmt: skip
_PROFILE_HOURS = [h for h, _ in SPEED_PROFILE]

ARTERIAL_KMH = 60.0
LOCAL_KMH = 30.0
# Off the graph (a driveway, a car park) the straight line is this much shorter than the road,
# driven at local speed.
ACCESS_ROAD_FACTOR = 1.3
JITTER = 0.2  # node positions move up to this share of the spacing (keeps nearest_node 3 x 3)
REMOVED_SHARE = 0.12  # local road segments left out, so the grid has dead ends and detours

CENTRE: Point = ((demo.LAT_MIN + demo.LAT_MAX) / 2, (demo.LNG_MIN + demo.LNG_MAX) / 2)
M_PER_DEG_LAT = 6_371_008.8 * math.pi / 180


def speed_factor(hour: float) -> float:
    """Speed as a share of free-flow at local `hour` (0-24, fractions allowed)."""
    hour %= 24.0
    i = max(1, bisect.bisect_right(_PROFILE_HOURS, hour))
    (h0, f0), (h1, f1) = SPEED_PROFILE[i - 1], SPEED_PROFILE[min(i, len(SPEED_PROFILE) - 1)]
    return f0 if h1 == h0 else f0 + (f1 - f0) * (hour - h0) / (h1 - h0)


@dataclass(frozen=True)
class Road:
    """One road segment between two nodes (both directions)."""

    a: int
    b: int
    length_m: float
    speed_kmh: float

    @property
    def arterial(self) -> bool:
        return self.speed_kmh >= ARTERIAL_KMH


@dataclass(eq=False)
class City:
    """A built city; make one with `City.build(seed)` (cached per arguments)."""

    seed: int
    size_km: float
    spacing_m: float
    side: int  # nodes per side of the grid
    xs: list[float]  # node positions in metres east / north of CENTRE
    ys: list[float]
    roads: list[Road]
    duration: list[array]  # duration[a][b]: free-flow seconds on the fastest path a -> b
    distance: list[array]  # its length in metres
    previous: list[array]  # previous[a][b]: the node before b on that path (-1 at a itself)
    time_zone: ZoneInfo = field(default_factory=lambda: ZoneInfo(demo.TIME_ZONE))
    _paths: dict[tuple[int, int], tuple[list[int], list[float]]] = field(
        default_factory=dict, repr=False
    )

    @classmethod
    def build(cls, seed: int, size_km: float = 20.0, spacing_m: float = 800.0) -> City:
        """The city for `seed`: a `size_km` square around the demo's centre with local roads
        every `spacing_m`. Built once per arguments and process, then shared (read-only)."""
        return _build(seed, float(size_km), float(spacing_m))

    # --- geometry ---------------------------------------------------------------------------

    @property
    def nodes(self) -> int:
        return len(self.xs)

    @property
    def _m_per_deg_lng(self) -> float:
        return M_PER_DEG_LAT * math.cos(math.radians(CENTRE[0]))

    def to_xy(self, lat: float, lng: float) -> tuple[float, float]:
        """Metres east and north of the centre (flat earth: fine over 20 km)."""
        return (lng - CENTRE[1]) * self._m_per_deg_lng, (lat - CENTRE[0]) * M_PER_DEG_LAT

    def to_latlng(self, x: float, y: float) -> Point:
        return CENTRE[0] + y / M_PER_DEG_LAT, CENTRE[1] + x / self._m_per_deg_lng

    def node_point(self, node: int) -> Point:
        return self.to_latlng(self.xs[node], self.ys[node])

    @property
    def bounds(self) -> tuple[Point, Point]:
        """(south-west, north-east) corners of the area points are drawn from."""
        half = self.size_km * 500.0
        return self.to_latlng(-half, -half), self.to_latlng(half, half)

    def nearest_node(self, lat: float, lng: float) -> int:
        """The graph node closest to a point (points outside the city snap to its edge)."""
        return self._nearest(*self.to_xy(lat, lng))

    def _nearest(self, x: float, y: float) -> int:
        half = self.size_km * 500.0
        last = self.side - 1
        i0 = min(max(round((y + half) / self.spacing_m), 0), last)
        j0 = min(max(round((x + half) / self.spacing_m), 0), last)
        best, best_d2 = -1, math.inf
        # Jitter is at most JITTER x spacing, so the nearest node is in the 3 x 3 around the cell.
        for i in range(max(i0 - 1, 0), min(i0 + 2, self.side)):
            for j in range(max(j0 - 1, 0), min(j0 + 2, self.side)):
                node = i * self.side + j
                d2 = (self.xs[node] - x) ** 2 + (self.ys[node] - y) ** 2
                if d2 < best_d2:
                    best, best_d2 = node, d2
        return best

    def random_point(
        self, rng: random.Random, near: Point | None = None, spread_m: float = 1000.0
    ) -> Point:
        """A point uniform over the city, or normally spread (`spread_m` per axis) around
        `near`; always inside the city."""
        half = self.size_km * 500.0 - 50.0
        if near is None:
            x, y = rng.uniform(-half, half), rng.uniform(-half, half)
        else:
            cx, cy = self.to_xy(*near)
            x = min(max(rng.gauss(cx, spread_m), -half), half)
            y = min(max(rng.gauss(cy, spread_m), -half), half)
        return self.to_latlng(x, y)

    # --- travel -----------------------------------------------------------------------------

    def speed_factor_at(self, depart_at: datetime | None) -> float:
        """The hour-of-day speed factor for a departure (local time; naive means local; None
        means midday)."""
        if depart_at is None:
            return 1.0
        if depart_at.tzinfo is not None:
            depart_at = depart_at.astimezone(self.time_zone)
        return speed_factor(depart_at.hour + depart_at.minute / 60 + depart_at.second / 3600)

    def _legs(self, origin: Point, destination: Point) -> tuple[float, float]:
        """(metres, free-flow seconds) of a trip: the access legs to and from the nearest
        nodes plus the graph between them; a trip within one node's reach is driven directly."""
        ox, oy = self.to_xy(*origin)
        dx, dy = self.to_xy(*destination)
        a, b = self._nearest(ox, oy), self._nearest(dx, dy)
        if a == b:
            metres = math.hypot(dx - ox, dy - oy) * ACCESS_ROAD_FACTOR
            return metres, metres / (LOCAL_KMH / 3.6)
        access = ACCESS_ROAD_FACTOR * (
            math.hypot(self.xs[a] - ox, self.ys[a] - oy)
            + math.hypot(self.xs[b] - dx, self.ys[b] - dy)
        )
        return access + self.distance[a][b], access / (LOCAL_KMH / 3.6) + self.duration[a][b]

    def estimate(
        self, origin: Point, destination: Point, depart_at: datetime | None
    ) -> tuple[float, float]:
        """(distance m, duration s) by the graph and the hour's speed, without noise: what the
        maps plugin tells the engine."""
        metres, seconds = self._legs(origin, destination)
        return metres, seconds / self.speed_factor_at(depart_at)

    def noise_factor(self, trip_id: str) -> float:
        """The trip's log-normal traffic factor (mean 1, CV `NOISE_CV`), fixed by (seed, id)."""
        return lognormal_factor(uniforms(self.seed, "trip", trip_id)[0], NOISE_CV)

    def true_duration(
        self, trip_id: str, origin: Point, destination: Point, depart_at: datetime | None
    ) -> float:
        """How long the trip really takes: the estimate times the trip's noise factor. The same
        trip id gets the same factor in every run with this seed."""
        return self.estimate(origin, destination, depart_at)[1] * self.noise_factor(trip_id)

    def position_at(
        self,
        origin: Point,
        destination: Point,
        depart_at: datetime | None,
        elapsed_s: float,
        true_total_s: float,
    ) -> Point:
        """Where a driver on this trip is `elapsed_s` after leaving, if the whole trip takes
        `true_total_s`: along the path, at the same share of its free-flow time (traffic slows
        the whole trip alike). Before the start: the origin; after the end: the destination.
        `depart_at` is accepted for symmetry with `estimate`; the path does not depend on it."""
        if true_total_s <= 0 or elapsed_s >= true_total_s:
            return destination
        share = max(elapsed_s, 0.0) / true_total_s
        ox, oy = self.to_xy(*origin)
        dx, dy = self.to_xy(*destination)
        a, b = self._nearest(ox, oy), self._nearest(dx, dy)
        if a == b:
            return self.to_latlng(ox + (dx - ox) * share, oy + (dy - oy) * share)
        nodes, at = self._path(a, b)
        access_speed = LOCAL_KMH / 3.6
        points = [(ox, oy), *((self.xs[n], self.ys[n]) for n in nodes), (dx, dy)]
        first = math.hypot(self.xs[a] - ox, self.ys[a] - oy) * ACCESS_ROAD_FACTOR / access_speed
        last = math.hypot(self.xs[b] - dx, self.ys[b] - dy) * ACCESS_ROAD_FACTOR / access_speed
        times = [0.0, *(first + t for t in at), first + at[-1] + last]
        target = share * times[-1]
        k = min(max(bisect.bisect_right(times, target), 1), len(times) - 1)
        span = times[k] - times[k - 1]
        part = (target - times[k - 1]) / span if span > 0 else 1.0
        (x0, y0), (x1, y1) = points[k - 1], points[k]
        return self.to_latlng(x0 + (x1 - x0) * part, y0 + (y1 - y0) * part)

    def path(self, origin: Point, destination: Point) -> list[Point]:
        """The points a trip passes: origin, the graph nodes of its fastest path, destination."""
        a, b = self.nearest_node(*origin), self.nearest_node(*destination)
        if a == b:
            return [origin, destination]
        return [origin, *(self.node_point(n) for n in self._path(a, b)[0]), destination]

    def _path(self, a: int, b: int) -> tuple[list[int], list[float]]:
        """Nodes of the fastest path a -> b and the free-flow seconds to reach each."""
        found = self._paths.get((a, b))
        if found is None:
            nodes = [b]
            row = self.previous[a]
            while nodes[-1] != a:
                nodes.append(row[nodes[-1]])
            nodes.reverse()
            found = self._paths[(a, b)] = (nodes, [self.duration[a][n] for n in nodes])
        return found


@functools.lru_cache(maxsize=8)
def _build(seed: int, size_km: float, spacing_m: float) -> City:
    rng = random.Random(seed)
    side = max(2, round(size_km * 1000 / spacing_m) + 1)
    step = size_km * 1000 / (side - 1)
    half = size_km * 500.0
    xs: list[float] = []
    ys: list[float] = []
    for i in range(side):
        for j in range(side):
            xs.append(-half + j * step + rng.uniform(-JITTER, JITTER) * step)
            ys.append(-half + i * step + rng.uniform(-JITTER, JITTER) * step)
    roads = _roads(rng, side, xs, ys)
    duration, distance, previous = _all_pairs(len(xs), roads)
    return City(
        seed=seed,
        size_km=size_km,
        spacing_m=step,
        side=side,
        xs=xs,
        ys=ys,
        roads=roads,
        duration=duration,
        distance=distance,
        previous=previous,
    )


def _arterial_pairs(rng: random.Random, side: int) -> set[tuple[int, int]]:
    """Node pairs on arterials: two through-roads each way, a ring and both diagonals."""

    def node(i: int, j: int) -> int:
        return i * side + j

    pairs: set[tuple[int, int]] = set()

    def line(cells: list[tuple[int, int]]) -> None:
        for (i0, j0), (i1, j1) in itertools.pairwise(cells):
            a, b = node(i0, j0), node(i1, j1)
            pairs.add((min(a, b), max(a, b)))

    if side < 5:
        return pairs
    for third in (1, 2):
        k = min(max(side * third // 3 + rng.randint(-1, 1), 1), side - 2)
        line([(k, j) for j in range(side)])  # east-west
        k = min(max(side * third // 3 + rng.randint(-1, 1), 1), side - 2)
        line([(i, k) for i in range(side)])  # north-south
    c, r = side // 2, max(1, side // 4)
    lo, hi = c - r, c + r
    ring = (
        [(lo, j) for j in range(lo, hi + 1)]
        + [(i, hi) for i in range(lo + 1, hi + 1)]
        + [(hi, j) for j in range(hi - 1, lo - 1, -1)]
        + [(i, lo) for i in range(hi - 1, lo - 1, -1)]
    )
    line(ring)
    line([(k, k) for k in range(side)])
    line([(k, side - 1 - k) for k in range(side)])
    return pairs


def _roads(rng: random.Random, side: int, xs: list[float], ys: list[float]) -> list[Road]:
    """Local roads on the grid (some left out, never so many that the city falls apart) plus
    the arterials, which are never left out."""
    arterial = _arterial_pairs(rng, side)

    def road(a: int, b: int, kmh: float, bend: float) -> Road:
        return Road(a, b, math.hypot(xs[b] - xs[a], ys[b] - ys[a]) * bend, kmh)

    kept: list[Road] = []
    left_out: list[Road] = []
    grid = [
        (i * side + j, i * side + j + dj)
        for i in range(side)
        for j in range(side)
        for dj in (1, side)
        if (dj == 1 and j + 1 < side) or (dj == side and i + 1 < side)
    ]
    for a, b in grid:
        if (a, b) in arterial:
            continue
        local = road(a, b, LOCAL_KMH, rng.uniform(1.0, 1.2))
        (left_out if rng.random() < REMOVED_SHARE else kept).append(local)
    kept += [road(a, b, ARTERIAL_KMH, rng.uniform(1.0, 1.05)) for a, b in sorted(arterial)]
    # Union-find: put back left-out roads that join two separate pieces until one remains.
    parent = list(range(side * side))

    def root(n: int) -> int:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    for r in kept:
        parent[root(r.a)] = root(r.b)
    for r in left_out:
        if root(r.a) != root(r.b):
            parent[root(r.a)] = root(r.b)
            kept.append(r)
    return kept


def _all_pairs(n: int, roads: list[Road]) -> tuple[list[array], list[array], list[array]]:
    """Fastest free-flow paths from every node: seconds, metres and previous node."""
    neighbours: list[list[tuple[int, float, float]]] = [[] for _ in range(n)]
    for r in roads:
        seconds = r.length_m / (r.speed_kmh / 3.6)
        neighbours[r.a].append((r.b, seconds, r.length_m))
        neighbours[r.b].append((r.a, seconds, r.length_m))
    durations, distances, previous = [], [], []
    for source in range(n):
        time = [math.inf] * n
        metres = [0.0] * n
        before = [-1] * n
        time[source] = 0.0
        heap = [(0.0, source)]
        done = [False] * n
        while heap:
            t, u = heapq.heappop(heap)
            if done[u]:
                continue
            done[u] = True
            mu = metres[u]
            for v, dt, dm in neighbours[u]:
                tv = t + dt
                if tv < time[v]:
                    time[v] = tv
                    metres[v] = mu + dm
                    before[v] = u
                    heapq.heappush(heap, (tv, v))
        durations.append(array("d", time))
        distances.append(array("d", metres))
        previous.append(array("i", before))
    return durations, distances, previous
