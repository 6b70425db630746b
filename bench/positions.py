#!/usr/bin/env python
"""Driver positions benchmark: drivers pinging through the HTTP endpoint, the dispatch map live.

Prints figures next to the goal of issue 8 (FEATURES.md, live map: a ping on the dispatch map in
under a second at p99, 1,000 drivers per tenant); it does not pass or fail on speed. It exits
non-zero only when something is broken: a ping refused or failed, a position shown in another
company, history rows missing after the flush.

    python bench/positions.py                        # 1,000 drivers every 5 s for 60 s
    python bench/positions.py --drivers 2000 --duration 120
    python bench/positions.py --smoke --json /tmp/positions.json   # CI: a few seconds

It works in its own database (default `patone_bench_positions`, dropped and re-created at start
and dropped at the end unless `--keep`), its own Redis database (14), and its own companies
(`benchpos-00001` measured, `benchpos-00002` ... idle).

Steps:

1. set-up: the measured company with `--drivers` drivers, each a user with the driver role and
   an access token; `--idle` more companies with a few drivers each and no traffic.
2. server: `patone serve` in its own process (uvicorn, one worker, its scheduler flushing
   history), on a free port of 127.0.0.1.
3. baseline: the same ping schedule, but each ping PUBLISHed straight to a Redis channel by the
   load process and read by a plain Redis subscriber here: the floor that Redis pub/sub and these
   two processes set, with no HTTP, validation, GEO set, stream or GraphQL.
4. patone: a load process (this file with `--load-process`) sends each driver's ping every
   `--interval` seconds, spread evenly, as `POST /api/driver/pings` with the driver's token
   (one ping per request, as the app sends while online). Here, a dispatcher's GraphQL
   subscription `driverPositions` over graphql-transport-ws (websocket to the server) takes the
   time each position arrives; ping-to-subscriber latency is that time less the ping's
   `recorded_at`, stamped by the load process just before sending (one machine, one clock). An
   idle company's dispatcher is subscribed too and must receive nothing.
5. figures: accepted pings per second, HTTP answer times, ping-to-subscriber p50/p99 beside the
   baseline's, history rows in Postgres once the flusher caught up, and CPU (% of one core over
   the load window) of the server process, the Redis server and Postgres (the bench database's
   backends, and the server's own background processes), read from /proc through psutil. Redis
   and Postgres are the machine's, shared with whatever else runs on it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import redis.asyncio as aioredis
import websockets
from figures import Stats, check_names, make_console, phase, reset_database, verdict, with_database
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from patone.core.common.permissions import SYSTEM
from patone.core.dispatch.positions import PENDING_KEY, positions_channel
from patone.core.identity import users
from patone.core.identity.tokens import issue_access_token
from patone.core.runtime.db import engine
from patone.core.runtime.redis import close_redis, connect_redis, get_redis, purge_tenant_keys
from patone.http.pings import PINGS_PATH
from patone.platform import provisioning
from patone.tenants.isolation import tenant_transaction
from patone.tenants.migrations import ensure_platform
from patone.tenants.registry import TenantInfo

DEFAULT_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/14"
SECRET = "bench-positions-secret"
HOST = "127.0.0.1"
GOAL_P99_S = 1.0
BASELINE_CHANNEL = "bench:positions:baseline"
BACKGROUND = {
    "checkpointer",
    "background writer",
    "walwriter",
    "autovacuum launcher",
    "logical replication launcher",
    "stats collector",
    "archiver",
}
SUBSCRIBE = "subscription { driverPositions { driverId recordedAt } }"


# --- the load process ---------------------------------------------------------------------------


def _ping(rng: random.Random) -> dict[str, Any]:
    return {
        "lat": 52.52 + rng.uniform(-0.1, 0.1),
        "lng": 13.405 + rng.uniform(-0.15, 0.15),
        "accuracy_m": round(rng.uniform(3, 20), 1),
        "speed_mps": round(rng.uniform(0, 25), 1),
        "recorded_at": datetime.now(UTC).isoformat(),
    }


class Connection:
    """One keep-alive HTTP/1.1 connection that POSTs JSON: the load process's client. httpx
    spent about 2.7 ms of CPU per request here, which made the load process, not the server,
    the bottleneck on two cores; this costs a few tens of microseconds."""

    def __init__(self, url: str, tenant: str) -> None:
        self.host, port = url.removeprefix("http://").split(":")
        self.port = int(port)
        self.tenant = tenant
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post(self, path: str, token: str, body: bytes) -> tuple[int, bytes]:
        if self.streams is None:
            self.streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.streams
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"X-Tenant: {self.tenant}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        status = int((await reader.readline()).split()[1])
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await reader.readexactly(length)

    async def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            with contextlib.suppress(OSError):
                await self.streams[1].wait_closed()


async def _load(args: argparse.Namespace) -> dict[str, Any]:
    """Send every driver's ping on schedule for `duration` seconds; report what came back."""
    tokens: list[str] = json.loads(Path(args.tokens).read_text())
    rng = random.Random(7)
    statuses: Counter[str] = Counter()
    answers = {"accepted": 0, "ignored": 0}
    timings: list[float] = []
    late: list[float] = []
    publisher = aioredis.Redis.from_url(args.redis)

    async def send(http: Connection, index: int) -> None:
        ping = _ping(rng)
        started = time.perf_counter()
        if args.mode == "redis":
            ping["driver_id"] = index + 1
            await publisher.publish(BASELINE_CHANNEL, json.dumps({"positions": [ping]}))
            statuses["200"] += 1
            answers["accepted"] += 1
        else:
            try:
                status, body = await http.post(
                    PINGS_PATH, tokens[index], json.dumps([ping]).encode()
                )
            except (OSError, ValueError, asyncio.IncompleteReadError) as error:
                statuses[type(error).__name__] += 1
                await http.close()
                http.streams = None
                return
            statuses[str(status)] += 1
            if status == 200:
                for key, value in json.loads(body).items():
                    answers[key] += value
        timings.append(time.perf_counter() - started)

    # At most `connections` requests in flight, each worker on its own connection.
    queue: asyncio.Queue[int | None] = asyncio.Queue()

    async def worker() -> None:
        http = Connection(args.url, args.tenant)
        try:
            while (index := await queue.get()) is not None:
                await send(http, index)
        finally:
            await http.close()

    workers = [asyncio.create_task(worker()) for _ in range(args.connections)]
    queued_max = 0
    count = len(tokens)
    start = time.monotonic() + 0.2
    rounds = max(1, round(args.duration / args.interval))
    for n in range(rounds * count):
        due = start + (n // count) * args.interval + (n % count) * args.interval / count
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            late.append(-delay)
        queue.put_nowait(n % count)
        queued_max = max(queued_max, queue.qsize())
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    elapsed = time.monotonic() - start
    await publisher.aclose()
    return {
        "sent": rounds * count,
        "seconds": elapsed,
        "statuses": dict(statuses),
        **answers,
        "answer_s": vars(Stats.of(timings)),
        "behind_schedule_s": max(late) if late else 0.0,
        "queued_max": queued_max,
    }


def _load_process(args: argparse.Namespace) -> int:
    print(json.dumps(asyncio.run(_load(args))))
    return 0


# --- measuring CPU ------------------------------------------------------------------------------


def _listener(port: int) -> psutil.Process | None:
    """The process listening on a TCP port of this machine."""
    for connection in psutil.net_connections(kind="tcp"):
        listening = connection.status == psutil.CONN_LISTEN and connection.laddr.port == port
        if listening and connection.pid:
            return psutil.Process(connection.pid)
    return None


class CpuSampler:
    """CPU seconds used, over a window, by the server, Redis and Postgres (the bench
    database's backends; apart, the cluster's background processes, WAL writer, checkpointer
    ..., which work for every database of the cluster). Sampled every 0.25 s so backends that
    come and go are counted up to their last sample."""

    def __init__(self, server_pid: int, database: str, redis_port: int, pg_port: int) -> None:
        self.database = database
        self.server = psutil.Process(server_pid)
        self.redis = _listener(redis_port)
        self.postmaster = _listener(pg_port)
        self.first: dict[tuple[str, int], float] = {}
        self.last: dict[tuple[str, int], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu", daemon=True)
        self.started = 0.0
        self.stopped = 0.0

    def _processes(self) -> list[tuple[str, psutil.Process]]:
        found = [("server", self.server)]
        if self.redis is not None:
            found.append(("redis", self.redis))
        if self.postmaster is not None:
            found.append(("postgres_background", self.postmaster))
            for child in self.postmaster.children():
                with contextlib.suppress(psutil.Error):
                    title = " ".join(child.cmdline()) + " "
                    if f" {self.database} " in title:
                        found.append(("postgres", child))
                    elif title.rsplit(":", 1)[-1].strip() in BACKGROUND:  # "15/main: walwriter"
                        found.append(("postgres_background", child))
        return found

    def _sample(self) -> None:
        for part, process in self._processes():
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                key = (part, process.pid)
                self.last[key] = times.user + times.system
                # A process first seen mid-window used all its CPU in the window.
                self.first.setdefault(key, self.last[key] if not self.started else 0.0)

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            self._sample()

    def __enter__(self) -> CpuSampler:
        self._sample()
        self.started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sample()
        self.stopped = time.monotonic()

    def percent(self) -> dict[str, float]:
        seconds = max(self.stopped - self.started, 1e-9)
        used: Counter[str] = Counter()
        for key, value in self.last.items():
            used[key[0]] += value - self.first.get(key, 0.0)
        parts = ("server", "redis", "postgres", "postgres_background")
        return {part: 100 * used[part] / seconds for part in parts}


# --- set-up -------------------------------------------------------------------------------------


async def _drivers(tenant: TenantInfo, count: int) -> list[int]:
    """`count` drivers who sign in as users of the driver role; their user ids."""
    async with tenant_transaction(tenant):
        rows = await engine.fetch(
            "INSERT INTO users (email, name, role, active, created_at, updated_at) "
            "SELECT 'driver' || g || '@bench.example', 'Driver ' || g, 'driver', true, now(), "
            "now() FROM generate_series(1, $1) g RETURNING id",
            count,
        )
        user_ids = [row["id"] for row in rows]
        await engine.execute(
            'INSERT INTO drivers ("user", name, status, skills, truck, created_at, updated_at) '
            "SELECT u, 'Driver ' || u, 'available', ARRAY[]::varchar[], '', now(), now() "
            "FROM unnest($1::int[]) u",
            user_ids,
        )
    return user_ids


async def _dispatcher_token(tenant: TenantInfo) -> str:
    user = await users.create_user(
        tenant, SYSTEM, {"email": "dispatch@bench.example", "name": "D", "role": "dispatcher"}
    )
    return issue_access_token(SECRET, tenant, user.id, ttl=3600)


class Server:
    """`patone serve` in its own process, on a free port."""

    def __init__(self, dsn: str, redis_url: str, workdir: Path) -> None:
        with contextlib.closing(socket.socket()) as probe:
            probe.bind((HOST, 0))
            self.port = probe.getsockname()[1]
        env = {
            **os.environ,
            "DATABASE_URL": dsn,
            "REDIS_URL": redis_url,
            "SECRET_KEY": SECRET,
            "HOST": HOST,
            "PORT": str(self.port),
            "DEMO_TENANT": "false",
            "LOG_LEVEL": "WARNING",
            "DATA_DIR": str(workdir / "data"),
        }
        self.log = open(workdir / "server.log", "w")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "patone", "serve"], env=env, stdout=self.log, stderr=self.log
        )

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    async def ready(self) -> None:
        async with httpx.AsyncClient() as client:
            for _ in range(300):
                if self.process.poll() is not None:
                    raise RuntimeError("patone serve exited; see its log")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(self.url + "/healthz")).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        raise RuntimeError("patone serve did not become healthy in 30 s")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


# --- subscribers --------------------------------------------------------------------------------


class Arrivals:
    """Ping-to-subscriber latencies (s) of positions recorded after `since` (wall clock)."""

    def __init__(self) -> None:
        self.since = math.inf
        self.latencies: list[float] = []
        self.messages = 0

    def take(self, positions: Sequence[dict[str, Any]]) -> None:
        arrived = time.time()
        self.messages += 1
        for position in positions:
            recorded = datetime.fromisoformat(position["recordedAt"]).timestamp()
            if recorded >= self.since:
                self.latencies.append(arrived - recorded)


async def _redis_subscriber(url: str, arrivals: Arrivals, ready: asyncio.Event) -> None:
    client = aioredis.Redis.from_url(url, decode_responses=True)
    pubsub = client.pubsub()
    await pubsub.subscribe(BASELINE_CHANNEL)
    ready.set()
    try:
        async for message in pubsub.listen():
            if message.get("type") == "message":
                positions = json.loads(message["data"])["positions"]
                arrivals.take([{"recordedAt": p["recorded_at"]} for p in positions])
    finally:
        await pubsub.aclose()
        await client.aclose()


async def _graphql_subscriber(
    port: int, tenant: TenantInfo, token: str, arrivals: Arrivals, ready: asyncio.Event
) -> None:
    async with websockets.connect(
        f"ws://{HOST}:{port}/graphql",
        subprotocols=[websockets.Subprotocol("graphql-transport-ws")],
        additional_headers={"X-Tenant": tenant.slug},
        max_size=None,
    ) as socket:
        payload = {"Authorization": f"Bearer {token}"}
        await socket.send(json.dumps({"type": "connection_init", "payload": payload}))
        ack = json.loads(await socket.recv())
        if ack["type"] != "connection_ack":
            raise RuntimeError(f"subscription refused: {ack}")
        await socket.send(
            json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIBE}})
        )
        ready.set()
        async for raw in socket:
            message = json.loads(raw)
            if message["type"] == "ping":
                await socket.send(json.dumps({"type": "pong"}))
            elif message["type"] == "next":
                arrivals.take(message["payload"]["data"]["driverPositions"])
            elif message["type"] in ("error", "complete"):
                raise RuntimeError(f"subscription ended: {message}")


async def _subscribed(redis_url: str, tenant: TenantInfo, count: int) -> None:
    """Wait until the server has `count` subscriptions on the tenant's positions channel."""
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    channel = positions_channel(tenant.slug)
    try:
        for _ in range(100):
            if dict(await client.pubsub_numsub(channel)).get(channel, 0) >= count:
                return
            await asyncio.sleep(0.05)
    finally:
        await client.aclose()
    raise RuntimeError("the server never subscribed to the positions channel")


# --- running ------------------------------------------------------------------------------------


async def _run_load(
    args: argparse.Namespace,
    console: Console,
    label: str,
    mode: str,
    seconds: float,
    url: str,
    tenant: str,
    tokens_file: Path,
    arrivals: Arrivals,
) -> dict[str, Any]:
    """Run the load process for `seconds`, with a progress bar; its report."""
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--load-process",
        "--mode",
        mode,
        "--url",
        url,
        "--tenant",
        tenant,
        "--tokens",
        str(tokens_file),
        "--redis",
        args.redis,
        "--interval",
        str(args.interval),
        "--duration",
        str(seconds),
        "--connections",
        str(args.connections),
    ]
    arrivals.since = time.time()
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    columns = (
        TextColumn(f"[bold]{label:<9}"),
        BarColumn(),
        TextColumn("{task.completed:>5.0f}/{task.total:.0f} s"),
        TextColumn("{task.fields[seen]:>8} positions on the map"),
        TimeRemainingColumn(),
    )
    started = time.monotonic()
    with Progress(*columns, console=console, transient=not console.is_terminal) as progress:
        bar = progress.add_task(label, total=seconds, seen=0)
        while process.returncode is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), 0.5)
            elapsed = min(time.monotonic() - started, seconds)
            progress.update(bar, completed=elapsed, seen=len(arrivals.latencies))
    out, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"the load process failed: {err.decode()[-2000:]}")
    await asyncio.sleep(1.0)  # the last positions on their way
    report: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return report


def _latency_line(console: Console, name: str, stats: Stats, note: str = "") -> None:
    console.print(
        f"  {name:<44} p50 {stats.p50 * 1000:7.1f} ms  p99 {stats.p99 * 1000:7.1f} ms  "
        f"max {stats.max * 1000:7.1f} ms  (n={stats.count}) {note}",
        highlight=False,
    )


async def _forget_keys(slugs: list[str]) -> None:
    for slug in slugs:
        await purge_tenant_keys(slug)
    await get_redis().srem(PENDING_KEY, *slugs)


async def _history_rows(tenant: TenantInfo) -> int:
    async with tenant_transaction(tenant):
        rows = await engine.fetch("SELECT count(*) AS n FROM driver_positions")
    return int(rows[0]["n"])


async def measure(args: argparse.Namespace, console: Console, dsn: str) -> dict[str, Any]:
    await engine.connect({"default": dsn}, min_size=1, max_size=4)
    await connect_redis(args.redis)
    workdir = Path(tempfile.mkdtemp(prefix="bench-positions-"))
    server: Server | None = None
    failures: list[str] = []
    try:
        await ensure_platform()
        await engine.execute(
            "INSERT INTO platform.plans (name, title, api_requests_per_minute, "
            "tenant_api_requests_per_minute, created_at) "
            "VALUES ('bench', 'Bench', 1000000, 1000000, now())"
        )
        phase(console, f"set-up: 1 company with {args.drivers} drivers, {args.idle} idle ones")
        slugs = [f"{args.prefix}-{n:05d}" for n in range(1, args.idle + 2)]
        await _forget_keys(slugs)  # a run killed half-way leaves its companies' keys behind
        tenants = [
            await provisioning.create_tenant(slug, f"Bench {slug}", plan="bench") for slug in slugs
        ]
        measured, idle = tenants[0], tenants[1:]
        user_ids = await _drivers(measured, args.drivers)
        for tenant in idle:
            await _drivers(tenant, 20)
        tokens_file = workdir / "tokens.json"
        tokens_file.write_text(
            json.dumps([issue_access_token(SECRET, measured, u, ttl=3600) for u in user_ids])
        )
        dispatcher = await _dispatcher_token(measured)
        idle_dispatcher = await _dispatcher_token(idle[0]) if idle else None

        phase(console, "server: patone serve in its own process")
        server = Server(dsn, args.redis, workdir)
        await server.ready()

        rate = args.drivers / args.interval
        phase(
            console,
            f"baseline: Redis PUBLISH -> SUBSCRIBE, {rate:.0f} pings/s, {args.baseline:.0f} s",
        )
        floor = Arrivals()
        ready = asyncio.Event()
        floor_task = asyncio.create_task(_redis_subscriber(args.redis, floor, ready))
        await ready.wait()
        floor_load = await _run_load(
            args,
            console,
            "baseline",
            "redis",
            args.baseline,
            server.url,
            measured.slug,
            tokens_file,
            floor,
        )
        floor_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await floor_task

        phase(
            console,
            f"patone: POST {PINGS_PATH} -> dispatcher's GraphQL subscription, "
            f"{rate:.0f} pings/s, {args.duration:.0f} s",
        )
        live, leaked = Arrivals(), Arrivals()
        ready, idle_ready = asyncio.Event(), asyncio.Event()
        subscribers = [
            asyncio.create_task(_graphql_subscriber(server.port, measured, dispatcher, live, ready))
        ]
        if idle_dispatcher is not None:
            subscribers.append(
                asyncio.create_task(
                    _graphql_subscriber(server.port, idle[0], idle_dispatcher, leaked, idle_ready)
                )
            )
        await ready.wait()
        await _subscribed(args.redis, measured, 1)
        with CpuSampler(server.process.pid, args.database, args.redis_port, args.pg_port) as cpu:
            load = await _run_load(
                args,
                console,
                "patone",
                "http",
                args.duration,
                server.url,
                measured.slug,
                tokens_file,
                live,
            )
        for task in subscribers:
            if task.done() and task.exception():
                failures.append(f"subscriber failed: {task.exception()}")
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

        phase(console, "history: waiting for the flusher to write every accepted ping")
        waited = time.monotonic()
        rows = 0
        while time.monotonic() - waited < 60:
            rows = await _history_rows(measured)
            if rows >= load["accepted"]:
                break
            await asyncio.sleep(0.5)
        history_lag = time.monotonic() - waited

        floor_stats, live_stats = Stats.of(floor.latencies), Stats.of(live.latencies)
        answers = Stats(**load["answer_s"])
        accepted_rate = load["accepted"] / load["seconds"]
        usage = cpu.percent()
        refused = {k: v for k, v in load["statuses"].items() if k != "200"}
        if refused:
            failures.append(f"pings refused or failed: {refused}")
        if leaked.messages:
            failures.append(f"{leaked.messages} messages reached another company's subscriber")
        if rows != load["accepted"]:
            failures.append(f"history has {rows} rows for {load['accepted']} accepted pings")
        missing = load["accepted"] - live_stats.count
        if missing > 0:
            failures.append(f"{missing} accepted pings never reached the subscriber")

        console.print("\n[bold]ping to subscriber[/bold]", highlight=False)
        _latency_line(console, "baseline: Redis PUBLISH -> SUBSCRIBE", floor_stats)
        _latency_line(
            console,
            "patone: HTTP -> Lua -> pub/sub -> GraphQL ws",
            live_stats,
            f"added p99 {(live_stats.p99 - floor_stats.p99) * 1000:.1f} ms",
        )
        console.print("[bold]throughput[/bold]", highlight=False)
        console.print(
            f"  {'sent / accepted / ignored':<44} {load['sent']} / {load['accepted']} / "
            f"{load['ignored']}  in {load['seconds']:.1f} s  (answers {load['statuses']})",
            highlight=False,
        )
        console.print(
            f"  {'accepted pings per second':<44} {accepted_rate:.1f}  (baseline published "
            f"{floor_load['accepted'] / floor_load['seconds']:.1f}/s; the schedule asks "
            f"{rate:.1f}/s; load process at most {load['behind_schedule_s'] * 1000:.0f} ms "
            f"behind, at most {load['queued_max']} pings waiting for a connection)",
            highlight=False,
        )
        _latency_line(console, f"HTTP answer ({args.connections} connections)", answers)
        console.print(
            f"  {'history rows in Postgres':<44} {rows} after {history_lag:.1f} s more "
            f"(flush every 2 s, batched)",
            highlight=False,
        )
        console.print("[bold]CPU over the load window[/bold] (% of one core)", highlight=False)
        console.print(
            f"  {'server (patone serve)':<44} {usage['server']:6.1f} %\n"
            f"  {'Redis server (shared)':<44} {usage['redis']:6.1f} %\n"
            f"  {'Postgres: the bench database backends':<44} {usage['postgres']:6.1f} %\n"
            f"  {'Postgres: background (whole cluster)':<44} "
            f"{usage['postgres_background']:6.1f} %",
            highlight=False,
        )
        ok = live_stats.p99 < GOAL_P99_S
        console.print(
            f"\nsummary: {args.drivers} drivers every {args.interval:g} s ({args.idle} idle "
            f"companies beside): {accepted_rate:.0f} accepted pings/s, ping-to-subscriber "
            f"p50 {live_stats.p50 * 1000:.0f} ms, p99 {live_stats.p99 * 1000:.0f} ms; "
            f"goal p99 < {GOAL_P99_S:g} s {verdict(ok)}",
            highlight=False,
        )
        for failure in failures:
            console.print(f"[red]broken: {failure}[/red]", highlight=False)
        for tenant in tenants:
            await provisioning.delete_tenant(tenant.slug)
            await provisioning.purge_tenant(tenant.slug, force=True)
        await _forget_keys(slugs)
        return {
            "drivers": args.drivers,
            "interval_s": args.interval,
            "idle_tenants": args.idle,
            "load": load,
            "baseline_load": floor_load,
            "accepted_per_s": accepted_rate,
            "latency_s": vars(live_stats),
            "baseline_latency_s": vars(floor_stats),
            "answer_s": vars(answers),
            "history_rows": rows,
            "history_lag_s": history_lag,
            "leaked_messages": leaked.messages,
            "cpu_percent": usage,
            "failures": failures,
        }
    finally:
        if server is not None:
            server.stop()
        await close_redis()
        await engine.disconnect()


async def run(args: argparse.Namespace, console: Console) -> int:
    dsn = with_database(args.dsn_admin, args.database)
    await reset_database(args.dsn_admin, args.database, args.prefix, create=True)
    try:
        figures = await measure(args, console, dsn)
    finally:
        if not args.keep:
            await reset_database(args.dsn_admin, args.database, args.prefix, create=False)
            console.print(f"dropped database '{args.database}'", highlight=False)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(figures, out, indent=2)
    return 1 if figures["failures"] else 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--smoke", action="store_true", help="40 drivers every 1 s for 4 s (CI)")
    parser.add_argument("--drivers", type=int, default=None, help="measured drivers (1000)")
    parser.add_argument("--interval", type=float, default=None, help="seconds between pings (5)")
    parser.add_argument("--duration", type=float, default=None, help="load seconds (60)")
    parser.add_argument("--baseline", type=float, default=None, help="baseline seconds (20)")
    parser.add_argument("--idle", type=int, default=None, help="idle companies beside (10)")
    parser.add_argument("--connections", type=int, default=32, help="HTTP connections")
    parser.add_argument("--dsn-admin", default=DEFAULT_ADMIN_DSN, help="admin connection")
    parser.add_argument("--pg-port", type=int, default=5432, help="Postgres port, for its CPU")
    parser.add_argument("--database", default=None, help="bench database")
    parser.add_argument("--prefix", default="benchpos", help="tenant slug prefix")
    parser.add_argument("--redis", default=DEFAULT_REDIS, help="a Redis database of its own")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    parser.add_argument("--keep", action="store_true", help="keep the database and roles")
    # The load process (started by the benchmark itself).
    parser.add_argument("--load-process", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=("http", "redis"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--tenant", help=argparse.SUPPRESS)
    parser.add_argument("--tokens", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    smoke = args.smoke
    args.drivers = args.drivers or (40 if smoke else 1000)
    args.interval = args.interval or (1.0 if smoke else 5.0)
    args.duration = args.duration or (4.0 if smoke else 60.0)
    args.baseline = args.baseline or (2.0 if smoke else 20.0)
    args.idle = args.idle if args.idle is not None else (2 if smoke else 10)
    args.redis_port = int(args.redis.rsplit(":", 1)[-1].split("/")[0])
    args.database = args.database or (
        "patone_bench_positions_smoke" if smoke else "patone_bench_positions"
    )
    if not args.load_process:
        check_names(parser, args.prefix, args.database)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.load_process:
        return _load_process(args)
    console = make_console(200)
    try:
        return asyncio.run(run(args, console))
    except RuntimeError as error:
        console.print(f"[red]{error}[/red]")
        return 1


if __name__ == "__main__":
    sys.exit(main())
