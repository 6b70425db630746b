#!/usr/bin/env python
"""GraphQL board benchmark: the dispatch-board read through `/graphql` beside a one-SQL floor.

Prints figures next to the references and goals of DESIGN.md ("GraphQL API", the speed
paragraph); it does not pass or fail on timings. It exits non-zero only when something is
broken (the two servers disagree about the board, a server does not start, requests fail).

    python bench/graphql_board.py                          # 10 s of load per server
    python bench/graphql_board.py --seconds 15 --profile   # and a cProfile of 200 requests
    python bench/graphql_board.py --smoke --json /tmp/board.json   # CI: tiny data, 2 s each

It works in its own database (default `patone_bench_board`, dropped and re-created at start and
dropped at the end unless `--keep`) with two tenants, `bench-board` (measured) and `bench-other`
(beside it, with data of its own, so isolation stays real); their roles `t_bench_board_role`
and `t_bench_other_role` are dropped at start and at the end too. `--smoke` uses
`patone_bench_board_smoke` and `benchsmoke-*`.

Steps:

1. data: customers with vehicles, drivers, open requests (most assigned) and closed ones, written
   with a few bulk INSERTs inside `tenant_transaction`; a dispatcher user and an access token.
2. statements: the board query through the real app in this process (httpx ASGITransport,
   `engine.connect(count_statements=True)`); every statement the app sends, per request, at
   page sizes 50 and 10.
3. servers: ONE `python -m patone serve` process (one uvicorn worker) and ONE floor process: a
   tiny Starlette + asyncpg app (this file with `--floor-server`) whose endpoint returns the same
   JSON built by a single SQL statement in Postgres.
4. check: both answer the board with the same items (request numbers in order, customer names,
   plates, service codes, driver names); the other tenant's data never shows up.
5. load: `--clients` (32) concurrent keep-alive connections per server for `--seconds`, after a
   warm-up. The client is a wrk-style loop on asyncio streams (pre-encoded request, read
   Content-Length bytes), so it costs little CPU; its CPU share is printed. Server RSS is
   sampled throughout (peak), server and Postgres-backend CPU are measured over the window, and
   `pg_stat_database.xact_commit` gives the transactions each request cost on the real server
   (exact after `--stats-wait` 11 s around each window; an estimate with --smoke's 1.3 s).
6. `--profile`: `--profile-requests` (200) board requests in-process, one at a time, under
   cProfile: the top entries by cumulative and by own time, and the steps of a request (auth,
   validation, execution, DataLoaders, encoding, waiting for Postgres), per request.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import math
import os
import pstats
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import psutil
from figures import Stats, make_console, phase, verdict, with_database

if TYPE_CHECKING:
    import httpx
    from rich.console import Console
    from starlette.applications import Starlette

    from patone.tenants.registry import TenantInfo

# Heavy imports (patone, strawberry, httpx, rich) happen inside functions: the floor server is
# this file too, and its RSS should be that of a tiny Starlette + asyncpg app.

DEFAULT_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/13"
SECRET = "bench-graphql-board-secret-not-for-production"
TOKEN_TTL = 6 * 3600
HOST = "127.0.0.1"
MB = 1_000_000
BOARD_FIRST = 50

# docs/api.md, "Reading: the dispatch board", verbatim.
BOARD_QUERY = """query Board($after: String) {
  serviceRequests(first: 50, after: $after, orderBy: PRIORITY, filter: {openOnly: true}) {
    edges {
      cursor
      node {
        id number status priority
        pickup { lat lng address }
        customer { name phone }
        vehicle { plate make model }
        serviceType { code name }
        driver { name status }
      }
    }
    pageInfo { hasNextPage endCursor }
  }
}"""

# DESIGN.md, "GraphQL API": the same board, 32 clients, one server process, 2 cores.
REF_FLOOR_RPS = 2300.0
REF_POSTGRAPHILE_RPS = 900.0
REF_STRAWBERRY_RPS = 60.0
REF_STRAWBERRY_QUERIES = 5
REF_STRAWBERRY_CPU_MS = 17.0
REF_FIELDS = 650
GOAL_RSS_MB = 250.0


# --- statistics -------------------------------------------------------------------------------


def ms(value: float) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:,.2f} ms" if value < 10 else f"{value:,.1f} ms"


def ratio(a: float, b: float) -> float:
    return a / b if b else math.nan


# --- the floor: Starlette + asyncpg, one SQL statement ---------------------------------------

# The board as GraphQL would answer it, built by Postgres in one statement: same order as
# `list_requests` (priority rank, created_at, id), same cursors (base64url of the JSON sort key)
# and global ids (base64url of "ServiceRequest:<id>", unpadded), enum names in upper case.
FLOOR_SQL = """
WITH page AS (
    SELECT r.id, r.number, r.status, r.priority, r.pickup_lat, r.pickup_lng, r.pickup_address,
           r.customer, r.vehicle, r.service_type, r.driver, r.created_at,
           array_position(ARRAY['emergency','high','normal','low']::varchar[], r.priority) AS rank
    FROM {s}.service_requests r
    WHERE r.status NOT IN ('completed', 'cancelled')
    ORDER BY rank, r.created_at, r.id
    LIMIT $1::int + 1
), edges AS (
    SELECT p.*,
           row_number() OVER (ORDER BY p.rank, p.created_at, p.id) AS n,
           translate(encode(convert_to(format('[%s, "%s", %s]', p.rank,
               replace(to_char(p.created_at AT TIME ZONE 'UTC',
                               'YYYY-MM-DD"T"HH24:MI:SS.US'), '.000000', '') || '+00:00',
               p.id), 'UTF8'), 'base64'), E'+/\\n', '-_') AS cursor
    FROM page p
)
SELECT json_build_object('data', json_build_object('serviceRequests', json_build_object(
    'edges', coalesce(json_agg(json_build_object(
        'cursor', e.cursor,
        'node', json_build_object(
            'id', rtrim(translate(encode(convert_to('ServiceRequest:' || e.id, 'UTF8'),
                'base64'), E'+/\\n', '-_'), '='),
            'number', e.number,
            'status', upper(e.status),
            'priority', upper(e.priority),
            'pickup', json_build_object(
                'lat', e.pickup_lat, 'lng', e.pickup_lng, 'address', e.pickup_address),
            'customer', json_build_object('name', c.name, 'phone', c.phone),
            'vehicle', CASE WHEN v.id IS NULL THEN NULL ELSE
                json_build_object('plate', v.plate, 'make', v.make, 'model', v.model) END,
            'serviceType', json_build_object('code', t.code, 'name', t.name),
            'driver', CASE WHEN d.id IS NULL THEN NULL ELSE
                json_build_object('name', d.name, 'status', upper(d.status)) END
        )) ORDER BY e.n) FILTER (WHERE e.n <= $1::int), '[]'::json),
    'pageInfo', json_build_object(
        'hasNextPage', count(*) > $1::int,
        'endCursor', (SELECT x.cursor FROM edges x WHERE x.n <= $1::int ORDER BY x.n DESC LIMIT 1))
)))::text
FROM edges e
JOIN {s}.customers c ON c.id = e.customer
LEFT JOIN {s}.vehicles v ON v.id = e.vehicle
JOIN {s}.service_types t ON t.id = e.service_type
LEFT JOIN {s}.drivers d ON d.id = e.driver
"""


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def floor_app(dsn: str, schema: str, pool_size: int) -> Starlette:
    """The hand-written endpoint: read the body, one SQL statement, return Postgres' JSON."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    sql = FLOOR_SQL.format(s=quote_ident(schema))
    pools: list[asyncpg.Pool] = []

    async def keep_session(connection: asyncpg.Connection) -> None:
        """No reset round trip on release (patone's pool does the same)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=1,
            max_size=pool_size,
            reset=keep_session,
            server_settings={"application_name": "patone_floor"},
        )
        pools.append(pool)
        try:
            yield
        finally:
            await pool.close()

    async def board(request: Request) -> Response:
        payload = json.loads(await request.body())
        if "query" not in payload:
            return JSONResponse({"errors": [{"message": "no query"}]}, status_code=400)
        text = await pools[0].fetchval(sql, BOARD_FIRST)
        return Response(text, media_type="application/json")

    async def healthz(request: Request) -> Response:
        await pools[0].fetchval("SELECT 1")
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[Route("/graphql", board, methods=["POST"]), Route("/healthz", healthz)],
        lifespan=lifespan,
    )


def serve_floor(dsn: str, schema: str, port: int, pool_size: int) -> None:
    import uvicorn

    # uvicorn's defaults pick uvloop and httptools when installed, as `patone serve` does.
    uvicorn.run(
        floor_app(dsn, schema, pool_size),
        host=HOST,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
    )


# --- set-up: database, tenants, data ---------------------------------------------------------


def role_name(slug: str) -> str:
    return "t_" + slug.replace("-", "_") + "_role"


async def reset_database(
    admin_dsn: str, database: str, roles: Sequence[str], create: bool
) -> list[str]:
    """Drop the bench database and this benchmark's roles; re-create the database if `create`."""
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        present = [
            r["rolname"]
            for r in await admin.fetch(
                "SELECT rolname FROM pg_roles WHERE rolname = ANY($1::text[])", list(roles)
            )
        ]
        for name in present:
            await admin.execute(f"DROP ROLE IF EXISTS {quote_ident(name)}")
        if create:
            await admin.execute(f'CREATE DATABASE "{database}"')
        return present
    finally:
        await admin.close()


@dataclass(frozen=True)
class DataSpec:
    customers: int
    drivers: int
    open_requests: int
    closed_requests: int
    name_prefix: str = ""
    assigned_share: float = 0.8


FIRST_NAMES = (
    "Anna", "Ben", "Clara", "David", "Emma", "Felix", "Greta", "Hannah", "Ilias", "Jonas",
    "Katrin", "Leon", "Mia", "Noah", "Olga", "Paul", "Quinn", "Rosa", "Samir", "Tara", "Uwe",
    "Vera", "Wim", "Xenia", "Yusuf", "Zoe",
)  # fmt: skip
LAST_NAMES = (
    "Abel", "Becker", "Celik", "Dietrich", "Engel", "Fischer", "Graf", "Hoffmann", "Ivanova",
    "Jung", "Keller", "Lorenz", "Meyer", "Novak", "Ozturk", "Peters", "Roth", "Schulz",
    "Teufel", "Ulrich", "Vogel", "Wagner", "Yilmaz", "Zimmer",
)  # fmt: skip
VEHICLES = (
    ("Volkswagen", ("Golf", "Passat", "Polo", "Tiguan")),
    ("BMW", ("320d", "X3", "118i")),
    ("Mercedes-Benz", ("C 220", "A 180", "Sprinter")),
    ("Opel", ("Astra", "Corsa")),
    ("Skoda", ("Octavia", "Fabia")),
    ("Toyota", ("Yaris", "Corolla")),
    ("Ford", ("Focus", "Transit")),
)
COLOURS = ("black", "white", "silver", "blue", "red", "grey")
STREETS = (
    "Alexanderplatz", "Frankfurter Allee", "Karl-Marx-Strasse", "Kurfuerstendamm",
    "Landsberger Allee", "Muellerstrasse", "Oranienstrasse", "Prenzlauer Allee",
    "Schoenhauser Allee", "Sonnenallee", "Tempelhofer Damm", "Torstrasse",
)  # fmt: skip
OPEN_ASSIGNED = ("assigned", "en_route", "on_scene", "in_progress")
PRIORITIES = (("emergency", 0.05), ("high", 0.2), ("normal", 0.6), ("low", 0.15))


def _stamp(rng: random.Random, at: datetime) -> datetime:
    """`at` with random microseconds (cursors must match the floor's to the microsecond)."""
    return at.replace(microsecond=rng.randrange(1, 1_000_000))


def _priority(rng: random.Random) -> str:
    return rng.choices([p for p, _ in PRIORITIES], [w for _, w in PRIORITIES])[0]


async def fill_tenant(tenant: TenantInfo, spec: DataSpec, seed: int) -> dict[str, int]:
    """Customers, vehicles, drivers and requests, in a few bulk INSERTs in one transaction."""
    from patone.tenants.isolation import tenant_transaction

    rng = random.Random(seed)
    now = datetime.now(UTC)
    prefix = spec.name_prefix
    async with tenant_transaction(tenant) as transaction:
        conn = transaction.connection
        # customers (a few without a phone: the floor must render null as GraphQL does)
        names = [
            f"{prefix}{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
            for _ in range(spec.customers)
        ]
        phones = [
            None if rng.random() < 0.1 else f"+49 30 {rng.randrange(1_000_000, 9_999_999)}"
            for _ in range(spec.customers)
        ]
        emails = [f"{prefix.strip().lower()}customer{i}@example.com" for i in range(spec.customers)]
        rows = await conn.fetch(
            """
            INSERT INTO customers (name, phone, email, notes, created_at, updated_at)
            SELECT n, p, e, '', now() - interval '60 days', now()
            FROM unnest($1::varchar[], $2::varchar[], $3::varchar[]) AS u(n, p, e)
            RETURNING id
            """,
            names,
            phones,
            emails,
        )
        customer_ids = [int(r["id"]) for r in rows]
        # vehicles: one each, a second for one in five
        owners: list[int] = []
        for cid in customer_ids:
            owners += [cid] * (2 if rng.random() < 0.2 else 1)
        makes, models, years, colours, plates, vins = [], [], [], [], [], []
        for i, _ in enumerate(owners):
            make, choices = rng.choice(VEHICLES)
            makes.append(make)
            models.append(rng.choice(choices))
            years.append(rng.randrange(2005, 2026))
            colours.append(rng.choice(COLOURS))
            letters = "".join(rng.choice("ABCDEFGHKLMNPRSTUVWXZ") for _ in range(2))
            plates.append(f"B-{letters}{1000 + i}")
            vins.append(f"WVW{rng.randrange(10**13, 10**14)}")
        rows = await conn.fetch(
            """
            INSERT INTO vehicles (customer, make, model, year, colour, plate, vin, created_at)
            SELECT c, mk, md, y, cl, pl, vn, now() - interval '60 days'
            FROM unnest($1::int[], $2::varchar[], $3::varchar[], $4::smallint[], $5::varchar[],
                        $6::varchar[], $7::varchar[]) AS u(c, mk, md, y, cl, pl, vn)
            RETURNING id, customer
            """,
            owners,
            makes,
            models,
            years,
            colours,
            plates,
            vins,
        )
        vehicles_of: dict[int, list[int]] = {}
        for r in rows:
            vehicles_of.setdefault(int(r["customer"]), []).append(int(r["id"]))
        # drivers
        driver_names = [
            f"{prefix}{FIRST_NAMES[i % len(FIRST_NAMES)]} {LAST_NAMES[(i * 7) % len(LAST_NAMES)]}"
            for i in range(spec.drivers)
        ]
        rows = await conn.fetch(
            """
            INSERT INTO drivers (name, phone, status, skills, truck, last_lat, last_lng,
                                 last_seen_at, rating, created_at, updated_at)
            SELECT n, '+49 151 ' || (1000000 + o)::text, 'available',
                   ARRAY['tow', 'lockout']::varchar[], 'Truck ' || o::text,
                   52.40 + (o % 20) * 0.01, 13.20 + (o % 30) * 0.01, now(), 450,
                   now() - interval '90 days', now()
            FROM unnest($1::varchar[]) WITH ORDINALITY AS u(n, o)
            RETURNING id
            """,
            driver_names,
        )
        driver_ids = [int(r["id"]) for r in rows]
        types = await conn.fetch(
            "SELECT id, code, base_price FROM service_types WHERE active ORDER BY id"
        )
        # requests: open ones now (most assigned), closed ones over the last weeks
        cols: dict[str, list[Any]] = {
            name: []
            for name in (
                "customer", "vehicle", "service_type", "priority", "status", "lat", "lng",
                "address", "dlat", "dlng", "daddress", "price", "driver", "cancel_reason",
                "created", "assigned", "en_route", "on_scene", "started", "completed",
                "cancelled",
            )
        }  # fmt: skip
        busy: set[int] = set()
        for i in range(spec.open_requests + spec.closed_requests):
            is_open = i < spec.open_requests
            customer = rng.choice(customer_ids)
            kind = rng.choice(types)
            towing = kind["code"] == "towing"
            if is_open:
                created = _stamp(rng, now - timedelta(minutes=rng.uniform(2, 180)))
                status = (
                    rng.choice(OPEN_ASSIGNED)
                    if driver_ids and rng.random() < spec.assigned_share
                    else "pending"
                )
            else:
                created = _stamp(rng, now - timedelta(days=rng.uniform(1, 30)))
                status = "completed" if rng.random() < 0.85 else "cancelled"
            driver = None
            if status != "pending" and driver_ids:
                driver = rng.choice(driver_ids)
                if is_open:
                    busy.add(driver)
            if status == "cancelled" and rng.random() < 0.5:
                driver = None
            steps: dict[str, datetime | None] = dict.fromkeys(
                ("assigned", "en_route", "on_scene", "started")
            )
            order = ("assigned", "en_route", "on_scene", "started")
            reached = {
                "pending": 0, "assigned": 1, "en_route": 2, "on_scene": 3, "in_progress": 4,
                "completed": 4, "cancelled": 1 if driver else 0,
            }[status]  # fmt: skip
            at = created
            for step in order[:reached]:
                at = at + timedelta(minutes=rng.uniform(1, 15))
                steps[step] = at
            cols["customer"].append(customer)
            owned = vehicles_of.get(customer, [])
            cols["vehicle"].append(rng.choice(owned) if owned and rng.random() < 0.9 else None)
            cols["service_type"].append(int(kind["id"]))
            cols["priority"].append(_priority(rng))
            cols["status"].append(status)
            cols["lat"].append(round(rng.uniform(52.40, 52.62), 6))
            cols["lng"].append(round(rng.uniform(13.20, 13.60), 6))
            cols["address"].append(f"{rng.choice(STREETS)} {rng.randrange(1, 200)}, Berlin")
            cols["dlat"].append(round(rng.uniform(52.40, 52.62), 6) if towing else None)
            cols["dlng"].append(round(rng.uniform(13.20, 13.60), 6) if towing else None)
            cols["daddress"].append(f"Werkstatt {rng.choice(STREETS)}" if towing else "")
            cols["price"].append(int(kind["base_price"]))
            cols["driver"].append(driver)
            cols["cancel_reason"].append("customer_cancelled" if status == "cancelled" else "")
            cols["created"].append(created)
            for step in order:
                cols[step].append(steps[step])
            end = at + timedelta(minutes=rng.uniform(5, 40))
            cols["completed"].append(end if status == "completed" else None)
            cols["cancelled"].append(end if status == "cancelled" else None)
        await conn.execute(
            """
            INSERT INTO service_requests (number, customer, vehicle, service_type, priority,
                status, source, pickup_lat, pickup_lng, pickup_address, destination_lat,
                destination_lng, destination_address, notes, quoted_price, currency, driver,
                cancel_reason, version, created_by, created_at, updated_at, assigned_at,
                en_route_at, on_scene_at, started_at, completed_at, cancelled_at)
            SELECT nextval('service_request_number_seq'), c, v, st, pr, s, 'admin', la, ln, ad,
                   dla, dln, dad, '', qp, 'EUR', d, cr, 1, 'system', ca,
                   coalesce(cc, cx, sa, oa, ea, aa, ca), aa, ea, oa, sa, cc, cx
            FROM unnest($1::int[], $2::int[], $3::int[], $4::varchar[], $5::varchar[],
                        $6::float8[], $7::float8[], $8::varchar[], $9::float8[], $10::float8[],
                        $11::varchar[], $12::int[], $13::int[], $14::varchar[],
                        $15::timestamptz[], $16::timestamptz[], $17::timestamptz[],
                        $18::timestamptz[], $19::timestamptz[], $20::timestamptz[],
                        $21::timestamptz[])
                 WITH ORDINALITY AS u(c, v, st, pr, s, la, ln, ad, dla, dln, dad, qp, d, cr,
                                      ca, aa, ea, oa, sa, cc, cx, o)
            ORDER BY o
            """,
            *cols.values(),
        )
        await conn.execute(
            "UPDATE drivers SET status = 'busy' WHERE id = ANY($1::int[])", sorted(busy)
        )
    async with tenant_transaction(tenant) as transaction:
        # fresh tables have no statistics yet; a real tenant's have
        await transaction.connection.execute(
            "ANALYZE customers, vehicles, drivers, service_types, service_requests"
        )
    vehicles = sum(len(v) for v in vehicles_of.values())
    return {
        "customers": len(customer_ids),
        "vehicles": vehicles,
        "drivers": len(driver_ids),
        "open_requests": spec.open_requests,
        "closed_requests": spec.closed_requests,
        "busy_drivers": len(busy),
    }


async def dispatcher_token(tenant: TenantInfo, email: str) -> str:
    from patone.core.common.permissions import SYSTEM
    from patone.core.identity.tokens import issue_access_token
    from patone.core.identity.users import create_user

    user = await create_user(
        tenant, SYSTEM, {"email": email, "name": "Dee Dispatch", "role": "dispatcher"}
    )
    return issue_access_token(SECRET, tenant, int(user.id), ttl=TOKEN_TTL)


# --- requests ---------------------------------------------------------------------------------


def board_query(first: int = BOARD_FIRST) -> str:
    return BOARD_QUERY.replace("first: 50,", f"first: {first},")


def board_body(first: int = BOARD_FIRST) -> bytes:
    return json.dumps(
        {"query": board_query(first), "operationName": "Board", "variables": {}}
    ).encode()


def board_headers(token: str, slug: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {token}",
        "X-Tenant": slug,
        "Content-Type": "application/json",
        "Accept": "application/json",
    }


def raw_request(port: int, token: str, slug: str, body: bytes) -> bytes:
    """The whole HTTP/1.1 request, encoded once; the load loop writes these bytes."""
    lines = [
        "POST /graphql HTTP/1.1",
        f"Host: {HOST}:{port}",
        *(f"{k}: {v}" for k, v in board_headers(token, slug).items()),
        f"Content-Length: {len(body)}",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def items_of(document: dict[str, Any]) -> list[tuple[Any, ...]]:
    """What the board shows of each request: number, customer, plate, service, driver."""
    edges = document["data"]["serviceRequests"]["edges"]
    out = []
    for edge in edges:
        node = edge["node"]
        out.append(
            (
                node["number"],
                node["customer"]["name"],
                (node["vehicle"] or {}).get("plate"),
                node["serviceType"]["code"],
                (node["driver"] or {}).get("name"),
            )
        )
    return out


def count_fields(value: Any) -> int:
    """Fields in a response: every key of every object (what graphql-core resolves)."""
    if isinstance(value, dict):
        return len(value) + sum(count_fields(v) for v in value.values())
    if isinstance(value, list):
        return sum(count_fields(v) for v in value)
    return 0


# --- server processes -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """One server process: started, waited for (GET /healthz), measured, stopped."""

    def __init__(
        self, label: str, command: list[str], env: dict[str, str], workdir: Path, port: int
    ) -> None:
        self.label = label
        self.command = command
        self.env = env
        self.workdir = workdir
        self.port = port
        self.log_path = workdir / f"{re.sub(r'[^a-z]+', '_', label.lower())}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.rss_ready = 0

    def start(self) -> None:
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.command, env=self.env, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT
            )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def wait_ready(self, timeout: float = 60.0) -> float:
        assert self.process is not None
        started = time.perf_counter()
        url = f"http://{HOST}:{self.port}/healthz"
        while time.perf_counter() - started < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.label} exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as answer:
                    if answer.status == 200:
                        self.rss_ready = psutil.Process(self.pid).memory_info().rss
                        return time.perf_counter() - started
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.label} not ready after {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


# --- measuring: RSS, CPU --------------------------------------------------------------------


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def _machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far."""
    t = psutil.cpu_times()
    total = float(sum(t))
    idle = float(t.idle + getattr(t, "iowait", 0.0))
    return total - idle, total


@dataclass
class Window:
    """CPU over the measured window: server, its Postgres backends, this client, the machine."""

    seconds: float
    server_cpu: float
    postgres_cpu: float
    client_cpu: float
    machine_busy: float
    backends: int


class Sampler:
    """A thread sampling the server's RSS (peak) and the CPU of the bench database's backends.

    Backends are found by their process title (`postgres: ... <database> ...`) every 0.25 s, so a
    pooled connection that is recycled during the window is counted up to its last sample.
    """

    def __init__(self, server_pid: int, database: str, interval: float = 0.05) -> None:
        self.server = psutil.Process(server_pid)
        self.me = psutil.Process()
        self.needle = f" {database} "
        self.interval = interval
        self.peak_rss = 0
        self.samples = 0
        self._backends: dict[int, psutil.Process] = {}
        self._last_cpu: dict[int, float] = {}
        self._baseline: dict[int, float] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)
        self._marks: tuple[float, float, float, float] | None = None

    def __enter__(self) -> Sampler:
        self._scan_backends()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        tick = 0
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                self.peak_rss = max(self.peak_rss, self.server.memory_info().rss)
                self.samples += 1
            if tick % 5 == 0:
                self._scan_backends()
            tick += 1
            self._stop.wait(self.interval)

    def _scan_backends(self) -> None:
        found: dict[int, float] = {}
        for process in psutil.process_iter(["name", "cmdline"]):
            info = process.info
            if info.get("name") != "postgres":
                continue
            title = " ".join(info.get("cmdline") or ()) + " "
            if self.needle not in title:
                continue
            known = self._backends.setdefault(process.pid, process)
            with contextlib.suppress(psutil.Error):
                found[process.pid] = _cpu_seconds(known)
        with self._lock:
            self._last_cpu.update(found)

    def mark(self) -> None:
        """Start of the measured window."""
        self._scan_backends()
        with self._lock:
            self._baseline = dict(self._last_cpu)
        busy, _ = _machine_busy()
        self._marks = (
            time.perf_counter(),
            _cpu_seconds(self.server),
            _cpu_seconds(self.me),
            busy,
        )

    def window(self) -> Window:
        """End of the measured window: what each part used since `mark`."""
        assert self._marks is not None
        self._scan_backends()
        t0, server0, me0, busy0 = self._marks
        busy, _ = _machine_busy()
        with self._lock:
            postgres = sum(
                cpu - self._baseline.get(pid, 0.0) for pid, cpu in self._last_cpu.items()
            )
            backends = sum(
                1 for pid, cpu in self._last_cpu.items() if cpu > self._baseline.get(pid, 0.0)
            )
        return Window(
            seconds=time.perf_counter() - t0,
            server_cpu=_cpu_seconds(self.server) - server0,
            postgres_cpu=postgres,
            client_cpu=_cpu_seconds(self.me) - me0,
            machine_busy=busy - busy0,
            backends=backends,
        )


# --- the load ---------------------------------------------------------------------------------


def _content_length(head: bytes) -> int:
    at = head.lower().find(b"\r\ncontent-length:")
    if at < 0:
        raise RuntimeError(f"no Content-Length in {head[:200]!r}")
    end = head.find(b"\r\n", at + 2)
    return int(head[at + 17 : end])


@dataclass
class Run:
    requests: int = 0
    errors: int = 0
    first_error: str = ""
    latencies_ms: list[float] = field(default_factory=list)


async def _client(
    port: int, request: bytes, expected_length: int, stop_at: float, run: Run
) -> None:
    """One keep-alive connection sending the same request until `stop_at` (wrk-style)."""
    reader, writer = await asyncio.open_connection(HOST, port)
    clock = time.perf_counter
    try:
        while clock() < stop_at:
            t0 = clock()
            try:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                body = await reader.readexactly(_content_length(head))
            except (ConnectionError, asyncio.IncompleteReadError) as error:
                run.errors += 1
                run.first_error = run.first_error or f"{type(error).__name__}: {error}"
                writer.close()
                reader, writer = await asyncio.open_connection(HOST, port)
                continue
            run.latencies_ms.append((clock() - t0) * 1000)
            run.requests += 1
            if head[9:12] != b"200" or len(body) != expected_length:
                run.errors += 1
                run.first_error = run.first_error or (
                    f"{head[:12].decode(errors='replace')} {body[:300].decode(errors='replace')}"
                )
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def load(
    port: int, request: bytes, expected_length: int, clients: int, seconds: float
) -> tuple[Run, float]:
    """`clients` connections for `seconds`; returns the run and its wall time (to last reply)."""
    run = Run()
    started = time.perf_counter()
    stop_at = started + seconds
    await asyncio.gather(
        *(_client(port, request, expected_length, stop_at, run) for _ in range(clients))
    )
    return run, time.perf_counter() - started


async def xacts(admin: asyncpg.Connection, database: str) -> int:
    value = await admin.fetchval(
        "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1", database
    )
    return int(value or 0)


# pg_stat_database: a busy backend flushes its counters at most once a second, and one that goes
# idle less than a second after its last flush keeps the rest pending for 10 s (PGSTAT_IDLE_INTERVAL
# in Postgres 15). Waiting 11 s before each reading makes the count exact; shorter waits (--smoke)
# make it an estimate.
EXACT_STATS_WAIT = 11.0


@dataclass
class LoadResult:
    label: str
    clients: int
    requests: int
    errors: int
    first_error: str
    seconds: float
    rps: float
    latency: Stats
    transactions_per_request: float
    server_cpu_ms_per_request: float
    server_cpu_percent: float
    postgres_cpu_ms_per_request: float
    postgres_cpu_percent: float
    postgres_backends: int
    client_cpu_percent: float
    machine_busy_cores: float
    others_cores: float
    rss_ready: int
    rss_peak: int
    rss_samples: int


async def measure(
    server: ServerProcess,
    sampler: Sampler,
    request: bytes,
    expected_length: int,
    args: argparse.Namespace,
    admin: asyncpg.Connection,
    before: int,
    console: Console,
) -> tuple[LoadResult, int]:
    """One measured window (after the warm-up); returns the result and the new xact count."""
    sampler.mark()
    run, wall = await load(server.port, request, expected_length, args.clients, args.seconds)
    window = sampler.window()
    await asyncio.sleep(args.stats_wait)
    after = await xacts(admin, args.database)
    n = max(run.requests, 1)
    cores = psutil.cpu_count() or 1
    machine = window.machine_busy / window.seconds
    own = (window.server_cpu + window.postgres_cpu + window.client_cpu) / window.seconds
    result = LoadResult(
        label=server.label,
        clients=args.clients,
        requests=run.requests,
        errors=run.errors,
        first_error=run.first_error,
        seconds=wall,
        rps=run.requests / wall,
        latency=Stats.of(run.latencies_ms),
        # the two reads of pg_stat_database are transactions too; they are not the server's
        transactions_per_request=max(after - before - 1, 0) / n,
        server_cpu_ms_per_request=window.server_cpu * 1000 / n,
        server_cpu_percent=window.server_cpu / window.seconds * 100,
        postgres_cpu_ms_per_request=window.postgres_cpu * 1000 / n,
        postgres_cpu_percent=window.postgres_cpu / window.seconds * 100,
        postgres_backends=window.backends,
        client_cpu_percent=window.client_cpu / window.seconds * 100,
        machine_busy_cores=min(machine, cores),
        others_cores=max(machine - own, 0.0),
        rss_ready=server.rss_ready,
        rss_peak=sampler.peak_rss,
        rss_samples=sampler.samples,
    )
    console.print(
        f"  {server.label}: {result.requests:,} requests in {wall:,.1f} s = "
        f"{result.rps:,.0f} req/s, p50 {ms(result.latency.p50)}, p99 {ms(result.latency.p99)}, "
        f"{result.errors} errors; server CPU {result.server_cpu_percent:,.0f} % of a core, "
        f"client {result.client_cpu_percent:,.0f} %, machine busy "
        f"{result.machine_busy_cores:,.2f} of {cores} cores"
    )
    if run.first_error:
        console.print(f"  [red]first error: {run.first_error}[/red]")
    return result, after


# --- in-process: statements per request, profile ----------------------------------------------


def in_process_app(dsn: str, redis: str) -> Starlette:
    from patone.app import create_app
    from patone.settings import Settings

    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=dsn,
        redis_url=redis,
        secret_key=SECRET,
        demo_tenant=False,
        log_level="WARNING",
    )
    # Its lifespan is not run: this process connects the engine itself (counting statements).
    return create_app(settings)


async def _post(client: httpx.AsyncClient, body: bytes, headers: dict[str, str]) -> Any:
    answer = await client.post("/graphql", content=body, headers=headers)
    document = answer.json()
    if answer.status_code != 200 or document.get("errors"):
        raise RuntimeError(f"in-process board request failed: {answer.status_code} {document}")
    return document


@dataclass
class StatementCounts:
    per_request: list[int]
    selects_per_request: list[int]
    by_kind: dict[str, float]
    page10_per_request: list[int]
    page10_selects: list[int]
    internal: int


async def count_statements(
    app: Starlette, dsn: str, headers: dict[str, str], repeats: int
) -> StatementCounts:
    """Every statement the app sends for one board request, counted by asyncpg's query logger."""
    import httpx

    from patone.core.runtime.db import engine
    from patone.tenants.registry import tenant_cache

    await engine.disconnect()
    await engine.connect({"default": dsn}, min_size=1, max_size=10, count_statements=True)
    tenant_cache.ttl = 3600  # steady state: the tenant look-up is cached (the server: 5 s)
    results: dict[int, list[Counter[str]]] = {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=f"http://{HOST}") as client:
        for first in (BOARD_FIRST, 10):
            body = board_body(first)
            await _post(client, body, headers)  # warm: tenant cache, parser/validation caches
            counts: list[Counter[str]] = []
            for _ in range(repeats):
                await asyncio.sleep(0.01)  # query loggers run via call_soon: let them finish
                engine.statements.clear()
                await _post(client, body, headers)
                await asyncio.sleep(0.01)
                counts.append(Counter(engine.statements))
            results[first] = counts
    main = results[BOARD_FIRST]

    def total(c: Counter[str]) -> int:
        return sum(v for k, v in c.items() if k != "INTERNAL")

    kinds = sorted({k for c in main for k in c if k != "INTERNAL"})
    return StatementCounts(
        per_request=[total(c) for c in main],
        selects_per_request=[c["SELECT"] for c in main],
        # asyncpg's transactions send "BEGIN;" and "COMMIT;"
        by_kind={k.rstrip(";"): sum(c[k] for c in main) / len(main) for k in kinds},
        page10_per_request=[total(c) for c in results[10]],
        page10_selects=[c["SELECT"] for c in results[10]],
        internal=sum(c["INTERNAL"] for cs in results.values() for c in cs),
    )


@dataclass
class ProfileEntry:
    function: str
    calls: int
    own_ms: float
    cumulative_ms: float


@dataclass
class ProfileResult:
    requests: int
    wall_ms_per_request: float
    cpu_ms_per_request: float
    profiled_ms_per_request: float
    total_own_ms: float
    phases: list[ProfileEntry]
    by_cumulative: list[ProfileEntry]
    by_own: list[ProfileEntry]


HARNESS = ("asyncio/", "bench/", "httpx/", "<method 'run' of '_contextvars")
# Where a board request goes, by the frames that stand for each step: (label, file, function).
PHASES = (
    (
        "auth: verify the access token (joserfc)",
        "patone/core/identity/tokens.py",
        "verify_token",
    ),
    ("auth: load the actor (a transaction)", "patone/core/identity/users.py", "actor_for_user"),
    ("tenant look-up (TenantCache)", "patone/tenants/registry.py", "by_slug"),
    ("reuse a valid document (DocumentCache)", "patone/graphql/caches.py", "on_parse"),
    ("validate (graphql-core rules)", "strawberry/schema/schema.py", "validate_document"),
    ("query limits (patone)", "patone/graphql/limits.py", "on_validate"),
    ("execute (graphql-core, resolvers)", "strawberry/schema/schema.py", "_execute_operation"),
    ("  serviceRequests: list_requests", "patone/core/domain/service_requests.py", "list_requests"),
    ("  DataLoader batches", "patone/graphql/context.py", "load"),
    ("  *.from_row (rows to objects)", "patone/graphql/types.py", "from_row"),
    ("  tenant_transaction (all)", "patone/tenants/isolation.py", "tenant_transaction"),
    ("encode the response (json)", "strawberry/http/base.py", "encode_json"),
    ("wait for Postgres (epoll)", "~", "<method 'poll' of 'select.epoll' objects>"),
)


def _where(key: tuple[str, int, str]) -> str:
    filename, line, name = key
    if filename == "~":
        return name
    for marker in ("site-packages/", "/work/main/", "/lib/python3.11/"):
        if marker in filename:
            filename = filename.split(marker, 1)[1]
            break
    return f"{filename}:{line}({name})"


async def _profile(
    app: Starlette, dsn: str, headers: dict[str, str], n: int, top: int
) -> ProfileResult:
    import httpx

    from patone.core.runtime.db import engine

    await engine.connect({"default": dsn}, min_size=1, max_size=10)  # no statement counting
    try:
        body = board_body()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{HOST}") as client:
            for _ in range(10):
                await _post(client, body, headers)
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(n):
                await _post(client, body, headers)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            profiler = cProfile.Profile()
            t1 = time.perf_counter()
            profiler.enable()
            for _ in range(n):
                await _post(client, body, headers)
            profiler.disable()
            profiled = time.perf_counter() - t1
    finally:
        await engine.disconnect()
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = getattr(
        pstats.Stats(profiler), "stats", {}
    )

    # The cumulative list leaves out what spans the whole request and says nothing: the
    # harness (this file, httpx, asyncio's loop) and every frame above 90 % of the app's time
    # (Starlette, the middleware, routing; coroutine frames can even exceed it).
    app_total = max(
        (v[3] for k, v in raw.items() if k[2] == "__call__" and "starlette/applications" in k[0]),
        default=math.inf,
    )

    def spans_request(key: tuple[str, int, str], cumulative: float) -> bool:
        where = _where(key)
        return where.startswith(HARNESS) or cumulative >= 0.9 * app_total

    def entries(index: int) -> list[ProfileEntry]:
        ranked = sorted(
            (item for item in raw.items() if index != 3 or not spans_request(item[0], item[1][3])),
            key=lambda item: item[1][index],
            reverse=True,
        )[:top]
        return [
            ProfileEntry(
                function=_where(key),
                calls=int(value[1]),
                own_ms=value[2] * 1000 / n,
                cumulative_ms=value[3] * 1000 / n,
            )
            for key, value in ranked
        ]

    phases = []
    for label, filename, function in PHASES:
        found = [v for k, v in raw.items() if k[2] == function and k[0].endswith(filename)]
        phases.append(
            ProfileEntry(
                function=label,
                calls=sum(int(v[1]) for v in found),
                own_ms=sum(v[2] for v in found) * 1000 / n,
                cumulative_ms=sum(v[3] for v in found) * 1000 / n,
            )
        )
    return ProfileResult(
        requests=n,
        phases=phases,
        wall_ms_per_request=wall * 1000 / n,
        cpu_ms_per_request=cpu * 1000 / n,
        profiled_ms_per_request=profiled * 1000 / n,
        total_own_ms=sum(value[2] for value in raw.values()) * 1000 / n,
        by_cumulative=entries(3),
        by_own=entries(2),
    )


def profile_requests(
    app: Starlette, dsn: str, headers: dict[str, str], n: int, top: int
) -> ProfileResult:
    """`n` board requests in-process, one at a time, timed plain and then under cProfile.

    They run on a plain asyncio loop in a thread of their own (the engine is connected there):
    under uvloop the time spent waiting in its C poll is charged to whichever Python frame
    cProfile thinks is running, while asyncio's loop shows it as `select.epoll.poll`, apart.
    """
    return asyncio.run(_profile(app, dsn, headers, n, top))


# --- output ----------------------------------------------------------------------------------


def profile_tables(console: Console, result: ProfileResult) -> None:
    from rich.table import Table

    for title, rows, note in (
        (
            "cumulative",
            result.by_cumulative,
            "; the harness and frames spanning the whole request left out",
        ),
        ("own", result.by_own, ""),
    ):
        table = Table(
            title=f"profile: top {len(rows)} by {title} time, per board request "
            f"({result.requests} requests in-process, one at a time, under cProfile, wall "
            f"clock; {result.total_own_ms:,.1f} ms profiled per request{note})",
            title_justify="left",
        )
        table.add_column("#", justify="right")
        table.add_column("calls/req", justify="right", no_wrap=True)
        table.add_column("own ms/req", justify="right", no_wrap=True)
        table.add_column("own %", justify="right", no_wrap=True)
        table.add_column("cum ms/req", justify="right", no_wrap=True)
        table.add_column("function", overflow="fold")
        for i, e in enumerate(rows, start=1):
            table.add_row(
                str(i),
                f"{e.calls / result.requests:,.1f}",
                f"{e.own_ms:,.2f}",
                f"{e.own_ms / result.total_own_ms * 100:,.1f}" if result.total_own_ms else "-",
                f"{e.cumulative_ms:,.2f}",
                e.function,
            )
        console.print(table)
    table = Table(
        title="profile: the steps of a board request (cumulative wall time under cProfile; a "
        "coroutine counts only while it runs, each resumption is a call)",
        title_justify="left",
    )
    table.add_column("step", overflow="fold")
    table.add_column("calls/req", justify="right", no_wrap=True)
    table.add_column("cum ms/req", justify="right", no_wrap=True)
    table.add_column("% of profiled", justify="right", no_wrap=True)
    top_level = sum(e.cumulative_ms for e in result.phases if not e.function.startswith(" "))
    rest = ProfileEntry(
        "rest: asyncio's loop and the tasks graphql-core starts for async fields "
        "(resolvers, DataLoader awaits), Starlette, httpx, the profiler",
        0,
        0.0,
        result.total_own_ms - top_level,
    )
    for e in [*result.phases, rest]:
        table.add_row(
            e.function,
            f"{e.calls / result.requests:,.1f}" if e.calls else "",
            f"{e.cumulative_ms:,.2f}",
            f"{e.cumulative_ms / result.total_own_ms * 100:,.1f}" if result.total_own_ms else "-",
        )
    console.print(table)
    console.print(
        f"in-process, one request at a time: {result.wall_ms_per_request:,.2f} ms wall and "
        f"{result.cpu_ms_per_request:,.2f} ms CPU of this process per request without the "
        f"profiler ({result.profiled_ms_per_request:,.2f} ms wall with it); the CPU includes "
        "httpx's ASGI transport and asyncpg, not Postgres; `select.epoll.poll` is the wait for "
        "Postgres"
    )


def load_table(console: Console, results: Sequence[LoadResult], cores: int) -> None:
    from rich.table import Table

    table = Table(
        title=f"load: {results[0].clients} clients, keep-alive, same request every time",
        title_justify="left",
    )
    for column in ("server", "requests", "errors", "seconds", "req/s", "p50", "p90", "p99",
                   "max", "server CPU", "Postgres CPU", "client CPU", "other processes",
                   "machine busy"):  # fmt: skip
        table.add_column(column, justify="right", no_wrap=True)
    for r in results:
        table.add_row(
            r.label,
            f"{r.requests:,}",
            f"{r.errors:,}",
            f"{r.seconds:,.1f}",
            f"{r.rps:,.0f}",
            ms(r.latency.p50),
            ms(r.latency.p90),
            ms(r.latency.p99),
            ms(r.latency.max),
            f"{r.server_cpu_percent:,.0f} %",
            f"{r.postgres_cpu_percent:,.0f} % ({r.postgres_backends} backends)",
            f"{r.client_cpu_percent:,.0f} %",
            f"{r.others_cores * 100:,.0f} %",
            f"{r.machine_busy_cores:,.2f} / {cores}",
        )
    console.print(table)
    console.print(
        "CPU columns: % of one core over the measured window (server: the one server process; "
        "Postgres: the bench database's backends; client: this process; other processes: the "
        "rest of the machine's busy time)"
    )


def summary(
    console: Console,
    args: argparse.Namespace,
    graphql: LoadResult,
    floor: LoadResult,
    statements: StatementCounts,
    sizes: dict[str, int],
    fields: int,
    open_on_board: int,
) -> None:
    from rich.table import Table

    per_request = statements.per_request[0] if statements.per_request else 0
    selects = statements.selects_per_request[0] if statements.selects_per_request else 0
    constant = len(set(statements.per_request)) == 1 and set(statements.per_request) == set(
        statements.page10_per_request
    )
    table = Table(
        title=f"summary: dispatch board, {open_on_board} open requests per page, "
        f"{args.clients} clients, {args.seconds:g} s per server, one server process each",
        title_justify="left",
    )
    table.add_column("figure", overflow="fold")
    table.add_column("patone GraphQL", justify="right", no_wrap=True)
    table.add_column("floor (1 SQL)", justify="right", no_wrap=True)
    table.add_column("GraphQL / floor", justify="right", no_wrap=True)
    table.add_column("goal", overflow="fold")
    table.add_column("", no_wrap=True, min_width=6)
    table.add_column("DESIGN.md reference / note", overflow="fold")
    table.add_row(
        "requests/s",
        f"{graphql.rps:,.0f}",
        f"{floor.rps:,.0f}",
        f"{ratio(graphql.rps, floor.rps):.3f}x",
        "",
        verdict(None),
        f"floor ~{REF_FLOOR_RPS:,.0f}, PostGraphile ~{REF_POSTGRAPHILE_RPS:,.0f}, "
        f"strawberry + DataLoaders ~{REF_STRAWBERRY_RPS:,.0f} "
        f"(GraphQL/floor {REF_STRAWBERRY_RPS / REF_FLOOR_RPS:.3f}x)",
    )
    for label, a, b in (
        ("latency p50", graphql.latency.p50, floor.latency.p50),
        ("latency p99", graphql.latency.p99, floor.latency.p99),
    ):
        table.add_row(label, ms(a), ms(b), f"{ratio(a, b):,.1f}x", "", verdict(None), "")
    table.add_row(
        "SQL statements per request (sent by the app, in-process count)",
        f"{per_request} ({selects} SELECT)",
        "1 (1 SELECT)",
        f"{per_request}x",
        "constant at any page size",
        verdict(constant),
        f"strawberry + DataLoaders: {REF_STRAWBERRY_QUERIES} queries; PostGraphile: 1. "
        f"patone: {' '.join(f'{k} {v:g}' for k, v in statements.by_kind.items())}; "
        f"page of 10: {statements.page10_per_request[0] if statements.page10_per_request else 0}"
        f" ({statements.page10_selects[0] if statements.page10_selects else 0} SELECT)",
    )
    table.add_row(
        "transactions per request (server, pg_stat_database)",
        f"{graphql.transactions_per_request:,.2f}",
        f"{floor.transactions_per_request:,.2f}",
        f"{ratio(graphql.transactions_per_request, floor.transactions_per_request):,.1f}x",
        "",
        verdict(None),
        "xact_commit + xact_rollback delta of the bench database / requests"
        + (
            ""
            if args.stats_wait >= EXACT_STATS_WAIT
            else f" (estimate: stats read after {args.stats_wait:g} s, exact needs "
            f"{EXACT_STATS_WAIT:g})"
        ),
    )
    table.add_row(
        "server CPU per request",
        ms(graphql.server_cpu_ms_per_request),
        ms(floor.server_cpu_ms_per_request),
        f"{ratio(graphql.server_cpu_ms_per_request, floor.server_cpu_ms_per_request):,.1f}x",
        "",
        verdict(None),
        f"strawberry + DataLoaders: ~{REF_STRAWBERRY_CPU_MS:.0f} ms of Python CPU walking "
        f"~{REF_FIELDS} fields; this response has {fields:,} fields",
    )
    table.add_row(
        "Postgres CPU per request",
        ms(graphql.postgres_cpu_ms_per_request),
        ms(floor.postgres_cpu_ms_per_request),
        f"{ratio(graphql.postgres_cpu_ms_per_request, floor.postgres_cpu_ms_per_request):,.1f}x",
        "",
        verdict(None),
        "backends of the bench database, sampled by process title",
    )
    table.add_row(
        "peak RSS of the server process",
        f"{graphql.rss_peak / MB:,.0f} MB",
        f"{floor.rss_peak / MB:,.0f} MB",
        f"{ratio(graphql.rss_peak, floor.rss_peak):,.1f}x",
        f"< {GOAL_RSS_MB:.0f} MB (GraphQL)",
        verdict(graphql.rss_peak / MB < GOAL_RSS_MB),
        f"after start-up: {graphql.rss_ready / MB:,.0f} MB / {floor.rss_ready / MB:,.0f} MB; "
        f"{graphql.rss_samples:,} / {floor.rss_samples:,} samples",
    )
    table.add_row(
        "response size",
        f"{sizes['graphql']:,} B",
        f"{sizes['floor']:,} B",
        f"{ratio(sizes['graphql'], sizes['floor']):,.2f}x",
        "",
        verdict(None),
        "Postgres' json output has spaces; the parsed documents are compared",
    )
    table.add_row(
        "errors during the load",
        f"{graphql.errors:,}",
        f"{floor.errors:,}",
        "",
        "0",
        verdict(graphql.errors == 0 and floor.errors == 0),
        "non-200 answers, broken connections, or a body of another length",
    )
    console.print(table)


# --- the run ---------------------------------------------------------------------------------


@dataclass
class Check:
    passed: bool
    items: int
    identical_json: bool
    isolation: bool
    messages: list[str]


async def check_servers(
    graphql: ServerProcess,
    floor: ServerProcess,
    token: str,
    slug: str,
    other_token: str,
    other_slug: str,
    other_prefix: str,
) -> tuple[Check, dict[str, Any], dict[str, int]]:
    """Both servers answer with the same items; the other tenant's data never shows."""
    import httpx

    body = board_body()
    messages: list[str] = []
    async with httpx.AsyncClient(timeout=30) as client:
        answers = {}
        for name, server in (("graphql", graphql), ("floor", floor)):
            answers[name] = await client.post(
                f"http://{HOST}:{server.port}/graphql",
                content=body,
                headers=board_headers(token, slug),
            )
        refused = await client.post(
            f"http://{HOST}:{graphql.port}/graphql",
            content=body,
            headers=board_headers(token, other_slug),
        )
        other = await client.post(
            f"http://{HOST}:{graphql.port}/graphql",
            content=body,
            headers=board_headers(other_token, other_slug),
        )
    documents: dict[str, Any] = {}
    for name, answer in answers.items():
        if answer.status_code != 200:
            messages.append(f"{name} answered {answer.status_code}: {answer.text[:500]}")
            continue
        documents[name] = answer.json()
        if documents[name].get("errors"):
            messages.append(f"{name} returned errors: {documents[name]['errors']}")
    sizes = {name: len(answer.content) for name, answer in answers.items()}
    items: dict[str, list[tuple[Any, ...]]] = {}
    for name, document in documents.items():
        try:
            items[name] = items_of(document)
        except (KeyError, TypeError) as error:
            messages.append(f"{name}: unexpected document ({error!r}): {str(document)[:500]}")
    same = len(items) == 2 and items["graphql"] == items["floor"] and bool(items["graphql"])
    if len(items) == 2 and not same:
        for i, (a, b) in enumerate(zip(items["graphql"], items["floor"], strict=False)):
            if a != b:
                messages.append(f"first difference at item {i}: GraphQL {a} vs floor {b}")
                break
        else:
            messages.append(
                f"GraphQL has {len(items['graphql'])} items, floor {len(items['floor'])}"
            )
    identical = len(documents) == 2 and documents["graphql"]["data"] == documents["floor"]["data"]
    leaked = [i for i in items.get("graphql", []) if str(i[1]).startswith(other_prefix)]
    other_items: list[tuple[Any, ...]] = []
    with contextlib.suppress(KeyError, TypeError, ValueError):
        other_items = items_of(other.json())
    isolation = (
        refused.status_code == 401
        and not leaked
        and bool(other_items)
        and all(str(i[1]).startswith(other_prefix) for i in other_items)
    )
    if refused.status_code != 401:
        messages.append(f"a token of {slug} on {other_slug} got {refused.status_code}, not 401")
    if leaked or not other_items:
        messages.append(f"isolation: {len(leaked)} foreign items, {len(other_items)} of its own")
    check = Check(
        passed=same and isolation and not messages,
        items=len(items.get("graphql", [])),
        identical_json=identical,
        isolation=isolation,
        messages=messages,
    )
    return check, documents.get("graphql", {}), sizes


def run_uvloop(main: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """Run on uvloop when installed (a cheaper client), else on asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main())
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main())


@contextlib.contextmanager
def servers_stopped(servers: list[ServerProcess]) -> Iterator[None]:
    try:
        yield
    finally:
        for server in servers:
            server.stop()


async def run(args: argparse.Namespace, console: Console) -> int:
    from patone.core.runtime.db import engine
    from patone.core.runtime.redis import close_redis, connect_redis
    from patone.platform.provisioning import create_tenant
    from patone.tenants.migrations import ensure_platform

    admin_dsn: str = args.dsn_admin
    dsn = with_database(admin_dsn, args.database)
    slug, other_slug = f"{args.prefix}-board", f"{args.prefix}-other"
    roles = [role_name(slug), role_name(other_slug)]
    other_prefix = "Other "
    spec = DataSpec(args.customers, args.drivers, args.open, args.closed)
    other_spec = DataSpec(
        max(args.customers // 3, 5),
        max(args.drivers // 3, 2),
        max(args.open * 3 // 4, 5),
        max(args.closed // 3, 2),
        name_prefix=other_prefix,
    )
    cores = psutil.cpu_count() or 1
    figures: dict[str, Any] = {"args": vars(args), "cpus": cores}
    failures: list[str] = []
    servers: list[ServerProcess] = []
    workdir = Path(tempfile.mkdtemp(prefix="graphql_board_"))

    console.rule("GraphQL board benchmark")
    load1, load5, _ = os.getloadavg()
    console.print(
        f"database {args.database!r}, tenants {slug!r} (measured) and {other_slug!r}; "
        f"{cores} CPUs, load average {load1:.2f} / {load5:.2f} (1 / 5 min) before the run"
    )
    figures["load_average_before"] = [load1, load5]
    dropped = await reset_database(admin_dsn, args.database, roles, create=True)
    if dropped:
        console.print(f"dropped leftover roles {', '.join(dropped)}")
    try:
        with servers_stopped(servers):
            # 1: data
            phase(console, "provisioning two tenants and their data")
            await engine.connect({"default": dsn}, min_size=1, max_size=4)
            await connect_redis(args.redis)
            await ensure_platform()
            t0 = time.perf_counter()
            board = await create_tenant(slug, name="Bench Board Towing")
            other = await create_tenant(other_slug, name="Bench Other Recovery")
            counts = await fill_tenant(board, spec, args.seed)
            other_counts = await fill_tenant(other, other_spec, args.seed + 1)
            token = await dispatcher_token(board, "dee@example.com")
            other_token = await dispatcher_token(other, "dee@example.org")
            console.print(
                f"{slug}: {counts['customers']:,} customers, {counts['vehicles']:,} vehicles, "
                f"{counts['drivers']} drivers ({counts['busy_drivers']} busy), "
                f"{counts['open_requests']} open and {counts['closed_requests']:,} closed "
                f"requests; {other_slug}: {other_counts['customers']:,} customers, "
                f"{other_counts['open_requests']} open requests "
                f"({time.perf_counter() - t0:,.1f} s)"
            )
            figures["data"] = {slug: counts, other_slug: other_counts}

            # 2: statements per request, in-process
            phase(console, "SQL statements per board request (in-process, counted)")
            app = in_process_app(dsn, args.redis)
            headers = board_headers(token, slug)
            statements = await count_statements(app, dsn, headers, args.repeats)
            console.print(
                f"per request, page of {BOARD_FIRST}: {statements.per_request} "
                f"(SELECT {statements.selects_per_request}); page of 10: "
                f"{statements.page10_per_request}; by kind: "
                + ", ".join(f"{k} {v:g}" for k, v in statements.by_kind.items())
            )
            figures["statements"] = asdict(statements)
            if not statements.per_request or min(statements.per_request) <= 0:
                failures.append("no statements were counted")

            profile: ProfileResult | None = None
            if args.profile:
                phase(console, f"profile: {args.profile_requests} requests in-process")
                await engine.disconnect()
                profile = await asyncio.to_thread(
                    profile_requests, app, dsn, headers, args.profile_requests, args.profile_top
                )
                figures["profile"] = asdict(profile)
            await engine.disconnect()

            # 3: servers
            phase(console, "starting the servers (one process each)")
            env = {
                **{k: v for k, v in os.environ.items() if k not in ("SHARDS", "DEBUG")},
                "DATABASE_URL": dsn,
                "REDIS_URL": args.redis,
                "SECRET_KEY": SECRET,
                "HOST": HOST,
                "PORT": str(free_port()),
                "DEMO_TENANT": "false",
                "LOG_LEVEL": "WARNING",
                "DATA_DIR": str(workdir / "data"),
            }
            graphql = ServerProcess(
                "patone GraphQL",
                [sys.executable, "-m", "patone", "serve"],
                env,
                workdir,
                int(env["PORT"]),
            )
            floor_port = free_port()
            floor = ServerProcess(
                "floor",
                [
                    sys.executable,
                    os.path.abspath(__file__),
                    "--floor-server",
                    "--floor-dsn",
                    dsn,
                    "--floor-schema",
                    board.schema_name,
                    "--floor-port",
                    str(floor_port),
                ],
                {**os.environ},
                workdir,
                floor_port,
            )
            servers += [graphql, floor]
            for server in servers:
                server.start()
            for server in servers:
                took = await asyncio.to_thread(server.wait_ready)
                console.print(
                    f"  {server.label}: pid {server.pid}, port {server.port}, ready in "
                    f"{took:,.1f} s, RSS {server.rss_ready / MB:,.0f} MB"
                )

            # 4: same items?
            phase(console, "checking that both servers return the same board")
            check, document, sizes = await check_servers(
                graphql, floor, token, slug, other_token, other_slug, other_prefix
            )
            fields = count_fields(document)
            figures["check"] = asdict(check)
            figures["response"] = {"bytes": sizes, "fields": fields}
            for message in check.messages:
                console.print(f"  [red]{message}[/red]")
            console.print(
                f"items check: {'passed' if check.passed else 'FAILED'} ({check.items} items: "
                f"numbers, customers, plates, service codes, drivers, in order); whole JSON "
                f"identical: {'yes' if check.identical_json else 'no'}; isolation: "
                f"{'ok' if check.isolation else 'BROKEN'}; {fields:,} fields per response"
            )
            if not check.passed:
                failures.append("the servers disagree about the board (or isolation broke)")
                return 1

            # 5: load
            phase(
                console,
                f"load: {args.clients} clients, {args.warmup:g} s warm-up + {args.seconds:g} s "
                "per server",
            )
            results: list[LoadResult] = []
            requests = {
                server.label: raw_request(server.port, token, slug, board_body())
                for server in servers
            }
            admin = await asyncpg.connect(dsn)
            try:
                with contextlib.ExitStack() as stack:
                    samplers = [
                        stack.enter_context(Sampler(server.pid, args.database))
                        for server in servers
                    ]
                    for server in servers:
                        await load(
                            server.port,
                            requests[server.label],
                            sizes[server_key(server)],
                            args.clients,
                            args.warmup,
                        )
                    await asyncio.sleep(args.stats_wait)
                    count = await xacts(admin, args.database)
                    for server, sampler in zip(servers, samplers, strict=True):
                        result, count = await measure(
                            server,
                            sampler,
                            requests[server.label],
                            sizes[server_key(server)],
                            args,
                            admin,
                            count,
                            console,
                        )
                        results.append(result)
            finally:
                await admin.close()
            gql_result, floor_result = results
            for result in results:
                figures[server_key_label(result.label)] = asdict(result)
                if result.errors:
                    failures.append(f"{result.errors} failed requests on {result.label}")
                if result.client_cpu_percent > 90:
                    console.print(
                        f"[yellow]the client used {result.client_cpu_percent:.0f} % of a core "
                        f"while loading {result.label}: it may be the bottleneck[/yellow]"
                    )
            figures["ratio_rps"] = ratio(gql_result.rps, floor_result.rps)
            figures["references"] = {
                "floor_rps": REF_FLOOR_RPS,
                "postgraphile_rps": REF_POSTGRAPHILE_RPS,
                "strawberry_dataloaders_rps": REF_STRAWBERRY_RPS,
                "strawberry_queries": REF_STRAWBERRY_QUERIES,
                "strawberry_cpu_ms": REF_STRAWBERRY_CPU_MS,
                "goal_rss_mb": GOAL_RSS_MB,
            }

            # output
            if profile is not None:
                profile_tables(console, profile)
            load_table(console, results, cores)
            summary(console, args, gql_result, floor_result, statements, sizes, fields,
                    check.items)  # fmt: skip
    finally:
        await engine.disconnect()
        await close_redis()
        if args.keep:
            console.print(f"kept database {args.database!r} and roles {', '.join(roles)} (--keep)")
        else:
            dropped = await reset_database(admin_dsn, args.database, roles, create=False)
            console.print(f"dropped database {args.database!r} and roles {', '.join(dropped)}")
        shutil.rmtree(workdir, ignore_errors=True)
        if args.json:
            with open(args.json, "w", encoding="utf-8") as out:
                json.dump({**figures, "failures": failures}, out, indent=2, default=str)
        for failure in failures:
            console.print(f"[red]FAILED: {failure}[/red]")
    return 1 if failures else 0


def server_key(server: ServerProcess) -> str:
    return server_key_label(server.label)


def server_key_label(label: str) -> str:
    return "floor" if label == "floor" else "graphql"


# --- command line ----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--smoke", action="store_true", help="tiny data, 2 s of load (CI)")
    parser.add_argument("--seconds", type=float, default=None, help="load per server (10)")
    parser.add_argument("--warmup", type=float, default=None, help="warm-up per server (2)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent connections")
    parser.add_argument("--customers", type=int, default=None, help="customers (500)")
    parser.add_argument("--drivers", type=int, default=None, help="drivers (30)")
    parser.add_argument("--open", type=int, default=None, help="open requests (50)")
    parser.add_argument("--closed", type=int, default=None, help="closed requests (300)")
    parser.add_argument("--repeats", type=int, default=None, help="counted requests (20)")
    parser.add_argument("--profile", action="store_true", help="cProfile in-process requests")
    parser.add_argument("--profile-requests", type=int, default=None, help="(200)")
    parser.add_argument("--profile-top", type=int, default=15)
    parser.add_argument("--dsn-admin", default=DEFAULT_ADMIN_DSN, help="admin connection")
    parser.add_argument("--database", default=None, help="bench database (patone_bench_board)")
    parser.add_argument("--prefix", default=None, help="tenant slug prefix (bench)")
    parser.add_argument("--redis", default=DEFAULT_REDIS)
    parser.add_argument(
        "--stats-wait",
        type=float,
        default=None,
        help=f"seconds before reading pg_stat_database ({EXACT_STATS_WAIT:g}: exact counts)",
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    parser.add_argument("--keep", action="store_true", help="keep the database and roles")
    # internal: the floor server runs in its own process
    parser.add_argument("--floor-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--floor-dsn", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--floor-schema", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--floor-port", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--floor-pool", type=int, default=10, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    smoke = args.smoke
    defaults: dict[str, Any] = {
        "seconds": 2.0 if smoke else 10.0,
        "warmup": 0.5 if smoke else 2.0,
        "customers": 60 if smoke else 500,
        "drivers": 8 if smoke else 30,
        "open": 50,
        "closed": 10 if smoke else 300,
        "repeats": 5 if smoke else 20,
        "stats_wait": 1.3 if smoke else EXACT_STATS_WAIT,
        "profile_requests": 20 if smoke else 200,
        "database": "patone_bench_board_smoke" if smoke else "patone_bench_board",
        "prefix": "benchsmoke" if smoke else "bench",
    }
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.floor_server:
        if not (args.floor_dsn and args.floor_schema and args.floor_port):
            parser.error("--floor-server needs --floor-dsn, --floor-schema and --floor-port")
        return args
    if args.seconds <= 0 or args.clients < 1 or args.customers < 1 or args.open < 1:
        parser.error("--seconds, --clients, --customers and --open must be positive")
    if not re.fullmatch(r"[a-z][a-z0-9]*", args.prefix):
        parser.error("--prefix must be lower-case letters and digits, starting with a letter")
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", args.database) or "bench" not in args.database:
        # It is dropped at start: refuse names that could be a real database.
        parser.error("--database must be a plain lower-case name containing 'bench'")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.floor_server:
        serve_floor(args.floor_dsn, args.floor_schema, args.floor_port, args.floor_pool)
        return 0
    console = make_console(200)
    return run_uvloop(lambda: run(args, console))


if __name__ == "__main__":
    sys.exit(main())
