#!/usr/bin/env python
"""Tenant scale benchmark: provisioning, disk, migration, reads and memory with N tenants.

Prints figures next to the goals of DESIGN.md ("Tenancy") and the django-tenants reference; it
does not pass or fail on timings. It exits non-zero only when something is broken (a tenant
failed to migrate, a read returned nothing, the database could not be set up).

    python bench/tenant_scale.py --tenants 1000
    python bench/tenant_scale.py --tenants 10000 --json /tmp/scale.json
    python bench/tenant_scale.py --smoke            # 20 tenants, seconds; CI runs this

It works in its own database (default `patone_bench`, dropped and re-created at start and
dropped at the end unless `--keep`) and with its own tenant slugs (`bench-00001`, role
`t_bench_00001_role`). Roles are cluster-wide, so leftover `t_<prefix>_<digits>_role` roles are
dropped at start and at the end too.

Phases:

1. provisioning: `create_tenant` N times, one after the other, with the captured template of the
   real tenant migrations plus a generated migration that pads the schema with tables (typical
   columns, an FK and its index each) up to `--synthetic-tables` (16) tables, as many as the
   django-tenants reference app has. Every second tenant is made from a spare schema built just
   before it (not timed: the app builds spares in the background), the others by replaying the
   template, the baseline (`--no-spares`: every tenant replayed). Latency per bucket and path as
   tenants accumulate, and what building each spare took.
2. disk: `pg_database_size` before and after, per tenant.
3. migrate: one generated migration adding a nullable column, through `migrate_tenants`; then a
   second run with nothing to migrate.
4. reads: a primary-key read inside `tenant_transaction`, a random tenant each time, interleaved
   with the same read always on one tenant (the baseline), on one pool: cold (fresh pool), warm
   (after a pass over every tenant) and warm with connection recycling off.
5. memory: in a fresh child process (so the heap left over by the earlier phases does not hide
   growth), RSS after touching 10 tenants and after touching all of them the way a request does
   (`tenant_cache.by_slug` then a read in `tenant_transaction`), and the memory of every pooled
   Postgres backend (`pg_backend_memory_contexts`): once with recycling (`--max-queries`), once
   with recycling off.
6. purge: `delete_tenant` + `purge_tenant(force=True)` for a sample of tenants.

Spares are dropped at the end with the database (their roles are the cluster's).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import random
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import psutil
from figures import (
    Stats,
    check_names,
    make_console,
    phase,
    reset_database,
    role_pattern,
    verdict,
    with_database,
)
from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from patone.core.runtime.db import engine
from patone.core.runtime.redis import close_redis, connect_redis
from patone.platform.provisioning import create_tenant, delete_tenant, purge_tenant
from patone.tenants import spares
from patone.tenants.isolation import TenantRef, tenant_transaction
from patone.tenants.migrations import (
    MigrationModule,
    MigrationSet,
    ensure_platform,
    get_template,
    migrate_tenants,
    tenant_migrations,
)
from patone.tenants.registry import TenantInfo, get_tenant, tenant_cache

DEFAULT_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/14"
MIB = 1024 * 1024
# asyncpg needs max_queries > 0; this many queries never happen in a run, so it means "never".
NO_RECYCLING = 10**12
_CREATE_TABLE = re.compile(r"\bCREATE\s+TABLE\s", re.IGNORECASE)
SYNTHETIC_TABLES_ID = "2099-01-01T00:00:00:000000"
ADD_COLUMN_ID = "2099-01-02T00:00:00:000000"
READ_SQL = "SELECT id, key, value FROM settings WHERE id = $1"
# settings rows every new tenant has: 4 defaults and the company name.
SETTINGS_IDS = (1, 2, 3, 4, 5)
BACKEND_MEMORY_SQL = "SELECT sum(total_bytes)::bigint FROM pg_backend_memory_contexts"

# Goals (DESIGN.md) and the django-tenants 4.0.1 reference measured on this kind of machine.
GOAL_PROVISION_P95_MS = 100.0
GOAL_MIGRATE_SECONDS_PER_TENANT = 0.01  # 1,000 in < 10 s, 10,000 in < 100 s
GOAL_READ_RATIO = 1.5
GOAL_RSS_PERCENT = 10.0
REF_BACKEND = "DESIGN.md: 0.7 -> 22 MiB reading 1,000 schemas"


# --- statistics -------------------------------------------------------------------------------


def ms(value: float) -> str:
    return f"{value:,.1f} ms" if value < 100 else f"{value:,.0f} ms"


# --- set-up ----------------------------------------------------------------------------------


def slug_for(prefix: str, index: int, width: int) -> str:
    return f"{prefix}-{index:0{width}d}"


async def connect_pool(
    dsn: str,
    *,
    max_queries: int,
    lifetime: float = 60.0,
    min_size: int = 1,
    max_size: int = 10,
) -> None:
    await engine.connect(
        {"default": dsn},
        min_size=min_size,
        max_size=max_size,
        max_queries=max_queries,
        max_inactive_connection_lifetime=lifetime,
    )


async def database_size() -> int:
    rows = await engine.fetch("SELECT pg_database_size(current_database())")
    return int(rows[0][0])


# --- generated migrations --------------------------------------------------------------------


def synthetic_table_sql(index: int) -> str:
    """A typical domain table: a dozen columns, an FK (deferred, as Django makes it), its index."""
    name = f"bench_t{index:02d}"
    parent, parent_type = (
        ("settings", "integer") if index == 1 else (f"bench_t{index - 1:02d}", "bigint")
    )
    return f"""
        CREATE TABLE {name} (
            id bigserial PRIMARY KEY,
            parent_id {parent_type} REFERENCES {parent} (id) DEFERRABLE INITIALLY DEFERRED,
            name varchar(200) NOT NULL DEFAULT '',
            code varchar(40) NOT NULL DEFAULT '',
            description text NOT NULL DEFAULT '',
            status varchar(20) NOT NULL DEFAULT 'open',
            amount numeric(12, 2),
            quantity integer NOT NULL DEFAULT 0,
            is_active boolean NOT NULL DEFAULT true,
            data jsonb NOT NULL DEFAULT '{{}}'::jsonb,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz
        );
        CREATE INDEX {name}_parent_id_idx ON {name} (parent_id);
    """


def raw_sql_migration(
    migration_id: str, module: str, description: str, sql: str
) -> MigrationModule:
    """A Piccolo migration whose forwards() runs `sql` through the engine (so it is recorded)."""

    async def run_sql() -> None:
        await engine.execute(sql)

    async def forwards() -> MigrationManager:
        manager = MigrationManager(
            migration_id=migration_id, app_name="tenant", description=description
        )
        manager.add_raw(run_sql)
        return manager

    return MigrationModule(id=migration_id, module=module, forwards=forwards)


async def provisioning_set(tables: int, console: Console) -> MigrationSet:
    """The shipped tenant migrations, padded with generated tables up to `tables` tables.

    The shipped schema grows as the product does; padding up to a fixed total keeps the figures
    comparable with the 16-table django-tenants reference app. 0 means no padding.
    """
    real = tenant_migrations()
    real_template = await get_template(real)
    real_tables = sum(len(_CREATE_TABLE.findall(sql)) for sql in real_template.scripts.values())
    extra = max(0, tables - real_tables)
    console.print(
        f"tenant migrations: {', '.join(m.module.rsplit('.', 1)[-1] for m in real.migrations)} "
        f"({real_tables} tables); adding {extra} generated tables"
    )
    if not extra:
        return real
    sql = "\n".join(synthetic_table_sql(i) for i in range(1, extra + 1))
    module = raw_sql_migration(
        SYNTHETIC_TABLES_ID, "bench.synthetic_tables", f"{extra} synthetic tables", sql
    )
    return MigrationSet(app_name=real.app_name, migrations=(*real.migrations, module))


def add_column_set(base: MigrationSet) -> MigrationSet:
    module = raw_sql_migration(
        ADD_COLUMN_ID,
        "bench.add_column",
        "one nullable column",
        "ALTER TABLE settings ADD COLUMN bench_note text",
    )
    return MigrationSet(app_name=base.app_name, migrations=(*base.migrations, module))


# --- output ----------------------------------------------------------------------------------


@contextmanager
def progress_bar(console: Console) -> Iterator[Progress]:
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        # Not a terminal (CI logs): no bar; phases print their own lines.
        disable=not console.is_terminal,
    )
    with bar:
        yield bar


# --- phase 1: provisioning -------------------------------------------------------------------


def buckets(n: int) -> list[tuple[str, int, int]]:
    """(label, start, end) slices of the creation order: first 50, 901-1,000, each 10 %, all."""
    spans: list[tuple[int, int]] = [(0, min(50, n))]
    if n > 1000:
        spans.append((900, 1000))
    spans += [(round(k * n / 10), round((k + 1) * n / 10)) for k in range(10)]
    spans.append((0, n))
    seen: set[tuple[int, int]] = set()
    out: list[tuple[str, int, int]] = []
    for start, end in spans:
        if end <= start or (start, end) in seen:
            continue
        seen.add((start, end))
        label = "overall" if (start, end) == (0, n) and n > 50 else f"{start + 1:,}-{end:,}"
        out.append((label, start, end))
    return out


def goal_bucket(n: int) -> tuple[int, int]:
    """The slice that stands for "with 1,000 present": 901-1,000, or the last 10 % below that."""
    if n >= 1000:
        return 900, 1000
    return round(9 * n / 10), n


SPARE, REPLAY = "spare", "replay"


@dataclass
class ProvisionResult:
    tenants: list[TenantInfo]
    durations_ms: list[float]
    paths: list[str]  # per tenant: made from a spare, or by replaying the template
    refill_ms: list[float]  # building each spare, before the tenant that takes it
    seconds: float
    capture_seconds: float
    failures: list[str] = field(default_factory=list)

    def stats(self, path: str, start: int = 0, end: int | None = None) -> Stats:
        """Latencies of the tenants start..end made by `path`."""
        pairs = zip(self.durations_ms[start:end], self.paths[start:end], strict=True)
        return Stats.of([d for d, p in pairs if p == path])


async def provision(
    n: int, prefix: str, migrations: MigrationSet, use_spares: bool, console: Console
) -> ProvisionResult:
    """Create `n` tenants one after the other. With `use_spares`, every second one is made from
    a spare built just before it (not timed: the app builds spares off the request path) and
    the others by replaying the template, so both paths are measured with as many present."""
    t0 = time.perf_counter()
    template = await get_template(migrations)
    capture_seconds = time.perf_counter() - t0
    console.print(
        f"template captured in {capture_seconds * 1000:,.0f} ms "
        f"({len(migrations.migrations)} migrations, {len(template.full_script):,} bytes of SQL)"
    )
    width = max(5, len(str(n)))
    result = ProvisionResult([], [], [], [], 0.0, capture_seconds)
    decile_ends = {round((k + 1) * n / 10) for k in range(10)}
    started = time.perf_counter()
    with progress_bar(console) as bar:
        task = bar.add_task("provisioning", total=n)
        last = 0
        for i in range(1, n + 1):
            slug = slug_for(prefix, i, width)
            from_spare = use_spares and i % 2 == 0
            if from_spare:
                t = time.perf_counter()
                if await spares.top_up(1, template) != 1:
                    result.failures.append(f"a spare was left untaken before tenant {i}")
                result.refill_ms.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            result.tenants.append(
                await create_tenant(
                    slug, name=f"Bench {i}", template=template, use_spare=from_spare
                )
            )
            result.durations_ms.append((time.perf_counter() - t) * 1000)
            result.paths.append(SPARE if from_spare else REPLAY)
            bar.advance(task)
            if i in decile_ends or i == min(50, n):
                start = last if i in decile_ends else 0
                label = f"{start + 1:,}-{i:,}" if i in decile_ends else f"first {i}"
                line = "".join(
                    f"  {path}: p50 {ms(s.p50):>9} p95 {ms(s.p95):>9} max {ms(s.max):>9}"
                    for path in (SPARE, REPLAY)
                    if (s := result.stats(path, start, i)).count
                )
                bar.console.print(f"  {label:>15}:{line}   ({i:,} present)")
                if i in decile_ends:
                    last = i
    if use_spares and await spares.list_spares():
        result.failures.append("spares were left untaken")
    result.seconds = time.perf_counter() - started
    return result


def provisioning_table(result: ProvisionResult, n: int) -> Table:
    table = Table(
        title="provisioning latency (ms), by creation order: from a spare / replayed",
        title_justify="left",
    )
    table.add_column("bucket", no_wrap=True)
    for path in (SPARE, REPLAY):
        for name in ("n", "p50", "p95", "p99", "max"):
            table.add_column(f"{path} {name}", justify="right", no_wrap=True)
    for label, start, end in buckets(n):
        cells = []
        for path in (SPARE, REPLAY):
            s = result.stats(path, start, end)
            cells += [f"{s.count:,}"] + [
                f"{v:,.1f}" if s.count else "-" for v in (s.p50, s.p95, s.p99, s.max)
            ]
        table.add_row(label, *cells)
    return table


# --- phase 3: migrate -------------------------------------------------------------------------


@dataclass
class MigrateRun:
    seconds: float
    tenants: int
    migrated: int
    up_to_date: int
    failed: int
    errors: list[str]

    @property
    def rate(self) -> float:
        return self.tenants / self.seconds if self.seconds else math.nan


async def run_migrate(
    migrations: MigrationSet, concurrency: int, label: str, console: Console
) -> MigrateRun:
    with progress_bar(console) as bar:
        task = bar.add_task(label, total=None)
        t0 = time.perf_counter()
        report = await migrate_tenants(
            migrations,
            concurrency=concurrency,
            on_plan=lambda count: bar.update(task, total=count),
            on_result=lambda _result: bar.advance(task),
        )
        seconds = time.perf_counter() - t0
    statuses = [r.status for r in report.results]
    return MigrateRun(
        seconds=seconds,
        tenants=len(report.results),
        migrated=statuses.count("migrated"),
        up_to_date=statuses.count("up to date"),
        failed=len(report.failed),
        errors=[f"{r.slug}: {r.error}" for r in report.failed[:5]],
    )


async def count_migrated_schemas(prefix: str) -> int:
    """Schemas of this run whose settings table has the new column (index look-ups only)."""
    rows = await engine.fetch(
        """
        SELECT count(*) FROM platform.tenants t
        WHERE t.schema_name ~ $1 AND EXISTS (
            SELECT 1 FROM pg_attribute a
            WHERE a.attrelid = to_regclass(quote_ident(t.schema_name) || '.settings')
              AND a.attname = 'bench_note' AND NOT a.attisdropped)
        """,
        f"^t_{prefix}_[0-9]+$",
    )
    return int(rows[0][0])


async def checkpoints() -> int | None:
    """Checkpoints so far (they explain provisioning's spikes); None where not readable."""
    for query in (
        "SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter",  # up to PG 16
        "SELECT num_timed + num_requested FROM pg_stat_checkpointer",  # PG 17+
    ):
        try:
            rows = await engine.fetch(query)
        except asyncpg.PostgresError:
            continue
        return int(rows[0][0])
    return None


# --- phase 4: reads --------------------------------------------------------------------------


@dataclass
class ReadPhase:
    label: str
    single: Stats
    random: Stats
    backends: int
    # Random reads split by whether their tenant had been read on that backend before.
    random_first: Stats
    random_again: Stats

    @property
    def ratio_p99(self) -> float:
        return self.random.p99 / self.single.p99 if self.single.p99 else math.nan


Touched = set[tuple[int, str]]  # (backend pid, tenant slug) pairs read so far


async def timed_read(
    tenant: TenantRef, row_id: int, pids: set[int], touched: Touched | None = None
) -> tuple[float, bool]:
    """The read's latency, and whether it was the tenant's first on its backend."""
    t0 = time.perf_counter()
    async with tenant_transaction(tenant) as transaction:
        connection = transaction.connection
        row = await connection.fetchrow(READ_SQL, row_id)
        pid = connection.raw.get_server_pid()
    elapsed = (time.perf_counter() - t0) * 1000
    pids.add(pid)
    first = touched is not None and (pid, tenant.slug) not in touched
    if touched is not None:
        touched.add((pid, tenant.slug))
    if row is None:
        raise RuntimeError(f"settings row {row_id} of {tenant.slug} is missing")
    return elapsed, first


async def touch_all(
    tenants: Sequence[TenantRef], label: str, console: Console, touched: Touched
) -> None:
    pids: set[int] = set()
    with progress_bar(console) as bar:
        task = bar.add_task(label, total=len(tenants))
        for tenant in tenants:
            await timed_read(tenant, 1, pids, touched)
            bar.advance(task)


async def measure_reads(
    label: str,
    tenants: Sequence[TenantRef],
    baseline: TenantRef,
    reads: int,
    rng: random.Random,
    console: Console,
    touched: Touched,
) -> ReadPhase:
    """`reads` random-tenant reads interleaved with `reads` reads of the baseline tenant."""
    single: list[float] = []
    scattered: list[float] = []
    firsts: list[bool] = []
    pids: set[int] = set()
    with progress_bar(console) as bar:
        task = bar.add_task(f"reads, {label}", total=2 * reads)
        for i in range(reads):
            row_id = rng.choice(SETTINGS_IDS)
            pair = [(baseline, single), (rng.choice(tenants), scattered)]
            if i % 2:
                pair.reverse()
            for tenant, sink in pair:
                elapsed, first = await timed_read(tenant, row_id, pids, touched)
                sink.append(elapsed)
                if sink is scattered:
                    firsts.append(first)
            bar.advance(task, 2)
    return ReadPhase(
        label,
        Stats.of(single),
        Stats.of(scattered),
        backends=len(pids),
        random_first=Stats.of([d for d, f in zip(scattered, firsts, strict=True) if f]),
        random_again=Stats.of([d for d, f in zip(scattered, firsts, strict=True) if not f]),
    )


async def reads_phase(
    dsn: str,
    tenants: Sequence[TenantInfo],
    reads: int,
    max_queries: int,
    seed: int,
    console: Console,
) -> list[ReadPhase]:
    rng = random.Random(seed)
    baseline = tenants[0]
    phases: list[ReadPhase] = []
    # Cold and warm on the same pool: fresh pool, measure; pass over every tenant, measure again.
    touched: Touched = set()
    await connect_pool(dsn, max_queries=max_queries)
    phases.append(await measure_reads("cold", tenants, baseline, reads, rng, console, touched))
    await touch_all(tenants, "warm-up pass", console, touched)
    phases.append(await measure_reads("warm", tenants, baseline, reads, rng, console, touched))
    # The same with recycling off: what the catalog caches alone cost or save.
    await connect_pool(dsn, max_queries=NO_RECYCLING, lifetime=0)
    await touch_all(tenants, "warm-up pass, recycling off", console, touched)
    phases.append(
        await measure_reads("warm, recycling off", tenants, baseline, reads, rng, console, touched)
    )
    return phases


# --- phase 5: memory (child process) ---------------------------------------------------------


def rss_bytes() -> int:
    gc.collect()
    return int(psutil.Process().memory_info().rss)


async def backend_memory(pool_size: int) -> list[int]:
    """Memory of every backend in the pool: hold `pool_size` connections at once, ask each."""
    pool = engine.pool
    assert pool is not None
    connections = [await pool.acquire() for _ in range(pool_size)]
    try:
        return [int(await c.fetchval(BACKEND_MEMORY_SQL) or 0) for c in connections]
    finally:
        for connection in connections:
            await pool.release(connection)


async def touch_slugs(slugs: Sequence[str], use_cache: bool) -> None:
    """What a request does: resolve the tenant (through the cache), read in its transaction."""
    pids: set[int] = set()
    for slug in slugs:
        tenant = await (tenant_cache.by_slug(slug) if use_cache else get_tenant(slug))
        assert tenant is not None, slug
        await timed_read(tenant, 1, pids)


async def memory_probe(
    dsn: str, max_queries: int, lifetime: float, pool_size: int, use_cache: bool = True
) -> dict[str, Any]:
    await connect_pool(
        dsn, max_queries=max_queries, lifetime=lifetime, min_size=1, max_size=pool_size
    )
    try:
        rows = await engine.fetch("SELECT slug FROM platform.tenants ORDER BY slug")
        slugs = [r["slug"] for r in rows]
        rng = random.Random(1)
        rng.shuffle(slugs)
        rss_start = rss_bytes()
        await touch_slugs(slugs[:10], use_cache)
        rss_10 = rss_bytes()
        backends_10 = await backend_memory(pool_size)
        t0 = time.perf_counter()
        await touch_slugs(slugs, use_cache)
        touch_seconds = time.perf_counter() - t0
        rss_all = rss_bytes()
        backends_all = await backend_memory(pool_size)
        cached = len(getattr(tenant_cache, "_slugs", {}))
        tenant_cache.invalidate()
        rss_cache_cleared = rss_bytes()  # rarely lower: CPython keeps freed memory
        return {
            "tenants": len(slugs),
            "max_queries": max_queries,
            "use_cache": use_cache,
            "rss_start": rss_start,
            "rss_10": rss_10,
            "rss_all": rss_all,
            "backends_10": backends_10,
            "backends_all": backends_all,
            "touch_all_seconds": touch_seconds,
            "cached_tenants": cached,
            "rss_cache_cleared": rss_cache_cleared,
        }
    finally:
        await engine.disconnect()


def run_memory_probe(
    dsn: str, max_queries: int, lifetime: float, pool_size: int, use_cache: bool = True
) -> dict[str, Any]:
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--memory-probe",
        "--probe-dsn",
        dsn,
        "--max-queries",
        str(max_queries),
        "--probe-lifetime",
        str(lifetime),
        "--pool-size",
        str(pool_size),
        *(() if use_cache else ("--probe-no-cache",)),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"memory probe failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# --- phase 6: purge --------------------------------------------------------------------------


async def purge_sample(tenants: Sequence[TenantInfo], count: int, console: Console) -> Stats:
    durations: list[float] = []
    with progress_bar(console) as bar:
        task = bar.add_task("delete + purge", total=count)
        for tenant in tenants[-count:]:
            t0 = time.perf_counter()
            await delete_tenant(tenant.slug, reason="benchmark")
            await purge_tenant(tenant.slug, force=True)
            durations.append((time.perf_counter() - t0) * 1000)
            bar.advance(task)
    return Stats.of(durations)


# --- the run ---------------------------------------------------------------------------------


@dataclass
class Results:
    tenants: int
    figures: dict[str, Any] = field(default_factory=dict)


def pct_diff(before: float, after: float) -> float:
    return (after - before) / before * 100 if before else math.nan


async def run(args: argparse.Namespace, console: Console) -> int:
    n: int = args.tenants
    admin_dsn: str = args.dsn_admin
    dsn = with_database(admin_dsn, args.database)
    results = Results(tenants=n)
    fig = results.figures
    failures: list[str] = []

    console.rule(f"tenant scale benchmark: {n:,} tenants")
    console.print(
        f"database {args.database!r}, slugs {slug_for(args.prefix, 1, max(5, len(str(n))))}..., "
        f"schemas padded to {args.synthetic_tables} tables, "
        f"migrate concurrency {args.concurrency}, "
        f"{os.cpu_count()} CPUs"
    )
    dropped = await reset_database(admin_dsn, args.database, args.prefix, create=True)
    if dropped:
        console.print(f"dropped {dropped:,} leftover roles matching {role_pattern(args.prefix)}")
    try:
        await connect_pool(dsn, max_queries=args.read_max_queries)
        await connect_redis(args.redis)
        server = await engine.fetch("SHOW server_version_num")
        server_version = int(server[0][0])
        await ensure_platform()

        # 1 and 2: provisioning and disk
        phase(console, f"provisioning {n:,} tenants, one at a time")
        size_before = await database_size()
        checkpoints_before = await checkpoints()
        provision_set = await provisioning_set(args.synthetic_tables, console)
        provisioned = await provision(n, args.prefix, provision_set, not args.no_spares, console)
        failures += provisioned.failures
        size_after = await database_size()
        checkpoints_after = await checkpoints()
        checkpoints_during = (
            checkpoints_after - checkpoints_before
            if checkpoints_after is not None and checkpoints_before is not None
            else None
        )
        durations = provisioned.durations_ms
        console.print(provisioning_table(provisioned, n))
        g_start, g_end = goal_bucket(n)
        goal_path = REPLAY if args.no_spares else SPARE
        goal_stats = provisioned.stats(goal_path, g_start, g_end)
        first_stats = Stats.of(durations[:50])
        overall = Stats.of(durations)
        by_path = {
            path: {
                "goal_bucket": vars(provisioned.stats(path, g_start, g_end)),
                "last_tenth": vars(provisioned.stats(path, round(9 * n / 10), n)),
                "first_50": vars(provisioned.stats(path, 0, 50)),
                "overall": vars(provisioned.stats(path)),
            }
            for path in (SPARE, REPLAY)
        }
        relations = await engine.fetch(
            """
            SELECT count(*) FILTER (WHERE c.relkind = 'r' AND c.relname <> 'migration'),
                   count(*)
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = $1
            """,
            provisioned.tenants[0].schema_name,
        )
        tables, all_relations = int(relations[0][0]), int(relations[0][1])
        fig["provisioning"] = {
            "capture_seconds": provisioned.capture_seconds,
            "total_seconds": provisioned.seconds,
            "buckets": {
                label: {path: vars(provisioned.stats(path, a, b)) for path in (SPARE, REPLAY)}
                for label, a, b in buckets(n)
            },
            "goal_bucket": [g_start + 1, g_end],
            "goal_bucket_p95_ms": goal_stats.p95,
            "first_50_p95_ms": first_stats.p95,
            "overall": vars(overall),
            "goal_path": goal_path,
            "paths": by_path,
            "spare_refill": vars(Stats.of(provisioned.refill_ms)),
            "checkpoints": checkpoints_during,
        }
        per_tenant = (size_after - size_before) / n
        fig["disk"] = {
            "before_bytes": size_before,
            "after_bytes": size_after,
            "per_tenant_bytes": per_tenant,
            "tables_per_tenant": tables,
            "relations_per_tenant": all_relations,
        }
        console.print(
            f"provisioned {n:,} tenants in {provisioned.seconds:,.1f} s "
            f"({n / provisioned.seconds:,.1f}/s); {tables} tables, {all_relations} relations "
            f"per schema; disk {size_before / MIB:,.1f} -> {size_after / MIB:,.1f} MiB, "
            f"{per_tenant / 1024:,.0f} KiB per tenant; {checkpoints_during} checkpoints meanwhile"
        )

        # 3: migrate
        phase(console, f"migrating {n:,} tenants, concurrency {args.concurrency}")
        extended = add_column_set(provision_set)
        migrate = await run_migrate(extended, args.concurrency, "migrate (add column)", console)
        noop = await run_migrate(extended, args.concurrency, "migrate (no-op)", console)
        t0 = time.perf_counter()
        altered = await count_migrated_schemas(args.prefix)
        console.print(f"(checked the schemas' columns in {time.perf_counter() - t0:,.1f} s)")
        for label, m in (("add column", migrate), ("no-op", noop)):
            console.print(
                f"migrate {label}: {m.tenants:,} tenants in {m.seconds:,.2f} s "
                f"({m.rate:,.0f} tenants/s): {m.migrated:,} migrated, {m.up_to_date:,} up to "
                f"date, {m.failed} failed"
            )
            for error in m.errors:
                console.print(f"  [red]{error}[/red]")
        console.print(f"schemas whose settings table has the new column: {altered:,} of {n:,}")
        if migrate.failed or noop.failed:
            failures.append(f"{migrate.failed + noop.failed} tenant migrations failed")
        if migrate.migrated != n or noop.migrated != 0 or altered != n:
            failures.append(
                f"migrate: expected {n} migrated then 0, got {migrate.migrated} then "
                f"{noop.migrated}; {altered} schemas have the column"
            )
        fig["migrate"] = {"add_column": vars(migrate), "noop": vars(noop), "altered": altered}

        # 4: reads
        phase(console, f"reads: {args.reads:,} random-tenant and {args.reads:,} single-tenant")
        phases = await reads_phase(
            dsn, provisioned.tenants, args.reads, args.read_max_queries, args.seed, console
        )
        read_table = Table(
            title=f"primary-key reads in tenant_transaction ({args.reads:,} each, interleaved; "
            f"pool max_queries {args.read_max_queries:,} unless noted)",
            title_justify="left",
        )
        for column in ("phase", "backends used", "single p50", "single p99", "random p50",
                       "random p99", "random/single p99"):  # fmt: skip
            read_table.add_column(column, justify="right", no_wrap=True)
        for p in phases:
            read_table.add_row(
                p.label,
                str(p.backends),
                ms(p.single.p50),
                ms(p.single.p99),
                ms(p.random.p50),
                ms(p.random.p99),
                f"{p.ratio_p99:.2f}x",
            )
        console.print(read_table)
        fig["reads"] = {
            p.label: {
                "single": vars(p.single),
                "random": vars(p.random),
                "ratio_p99": p.ratio_p99,
                "backends": p.backends,
                "random_first_on_backend": vars(p.random_first),
                "random_again_on_backend": vars(p.random_again),
            }
            for p in phases
        }
        await engine.disconnect()

        # 5: memory, in child processes
        phase(console, "memory: touching every tenant in child processes")
        probes: dict[str, dict[str, Any]] = {}
        with console.status("memory probes (child processes)"):
            probes["recycled"] = run_memory_probe(dsn, args.max_queries, 60.0, args.pool_size)
            probes["unbounded"] = run_memory_probe(dsn, NO_RECYCLING, 0.0, args.pool_size)
            # The same as "recycled" with get_tenant instead of tenant_cache: what the cache costs.
            probes["no cache"] = run_memory_probe(
                dsn, args.max_queries, 60.0, args.pool_size, use_cache=False
            )
        pool_labels = {
            "recycled": f"max_queries {args.max_queries:,}",
            "unbounded": "no recycling",
            "no cache": f"max_queries {args.max_queries:,}, no tenant_cache",
        }
        has_contexts = server_version >= 140000
        mem_table = Table(
            title=f"memory after touching tenants (child process, pool of {args.pool_size})",
            title_justify="left",
        )
        for column in ("pool", "RSS start", "RSS after 10", "RSS after all", "RSS diff",
                       "tenants cached", "backend max after 10", "backend max after all",
                       "backends after all", "touch all"):  # fmt: skip
            mem_table.add_column(column, justify="right", no_wrap=True)
        for label, probe in probes.items():
            probe["rss_diff_percent"] = pct_diff(probe["rss_10"], probe["rss_all"])
            probe["backend_max_10"] = max(probe["backends_10"])
            probe["backend_max_all"] = max(probe["backends_all"])
            mem_table.add_row(
                pool_labels[label],
                f"{probe['rss_start'] / MIB:,.1f} MiB",
                f"{probe['rss_10'] / MIB:,.1f} MiB",
                f"{probe['rss_all'] / MIB:,.1f} MiB",
                f"{probe['rss_diff_percent']:+.1f} %",
                f"{probe['cached_tenants']:,}",
                f"{probe['backend_max_10'] / MIB:,.1f} MiB",
                f"{probe['backend_max_all'] / MIB:,.1f} MiB",
                " ".join(f"{b / MIB:.1f}" for b in probe["backends_all"]),
                f"{probe['touch_all_seconds']:,.1f} s",
            )
        console.print(mem_table)
        if not has_contexts:
            console.print("[yellow]pg_backend_memory_contexts needs Postgres 14+[/yellow]")
        fig["memory"] = probes

        # 6: purge a sample (reconnect: the probes ran in other processes)
        phase(console, "delete + purge a sample")
        await connect_pool(dsn, max_queries=args.read_max_queries)
        purge_count = min(args.purge_sample, n)
        purge = await purge_sample(provisioned.tenants, purge_count, console)
        fig["purge"] = vars(purge)

        summary(console, args, results, provisioned, migrate, noop, phases, probes)
    finally:
        if engine.pool is not None and not args.keep:
            # Spares' roles are the cluster's: dropping the database would leave them behind.
            await spares.drop_all()
        await engine.disconnect()
        await close_redis()
        if args.keep:
            console.print(f"kept database {args.database!r} and its roles (--keep)")
        else:
            dropped = await reset_database(admin_dsn, args.database, args.prefix, create=False)
            console.print(f"dropped database {args.database!r} and {dropped:,} roles")

    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump({"tenants": n, "args": vars(args), **fig}, out, indent=2, default=str)
    for failure in failures:
        console.print(f"[red]FAILED: {failure}[/red]")
    return 1 if failures else 0


def seconds_goal(value: float) -> str:
    return f"{value:,.0f} s" if value >= 10 else f"{value:,.2g} s"


def summary(
    console: Console,
    args: argparse.Namespace,
    results: Results,
    provisioned: ProvisionResult,
    migrate: MigrateRun,
    noop: MigrateRun,
    phases: Sequence[ReadPhase],
    probes: dict[str, dict[str, Any]],
) -> None:
    """The figures beside the goals (DESIGN.md) and the django-tenants 4.0.1 reference."""
    n = results.tenants
    g_start, g_end = goal_bucket(n)
    migrate_goal = n * GOAL_MIGRATE_SECONDS_PER_TENANT
    tables = results.figures["disk"]["tables_per_tenant"]
    table = Table(title=f"summary: {n:,} tenants, {tables} tables each", title_justify="left")
    table.add_column("figure", overflow="fold")
    table.add_column("measured", justify="right", no_wrap=True)
    table.add_column("goal", overflow="fold")
    table.add_column("", no_wrap=True, min_width=6)
    table.add_column("reference / note", overflow="fold")

    goal_path = results.figures["provisioning"]["goal_path"]
    spans = [(g_start, g_end)]
    if n > 1000:
        spans.append((round(9 * n / 10), n))
    for start, end in spans:
        goal = provisioned.stats(goal_path, start, end)
        baseline = provisioned.stats(REPLAY, start, end)
        table.add_row(
            f"provisioning p95 {'from a spare' if goal_path == SPARE else 'replayed'}, "
            f"tenants {start + 1:,}-{end:,} ({end:,} present)",
            ms(goal.p95),
            f"< {GOAL_PROVISION_P95_MS:.0f} ms, 1,000 and 10,000 present",
            verdict(goal.p95 < GOAL_PROVISION_P95_MS),
            f"replaying the template (baseline, same run): p95 {ms(baseline.p95)}; "
            "django-tenants p95 403 ms over 1,000",
        )
    for path in (SPARE, REPLAY):
        first, overall = provisioned.stats(path, 0, 50), provisioned.stats(path)
        if not overall.count:
            continue
        table.add_row(
            f"provisioning {'from a spare' if path == SPARE else 'replayed'}: "
            f"p95 first 50; p50 / p95 / max all",
            f"{ms(first.p95)}; {ms(overall.p50)} / {ms(overall.p95)} / {ms(overall.max)}",
            "",
            verdict(None),
            f"{overall.count:,} tenants; django-tenants p95 341 ms, first 50",
        )
    if provisioned.refill_ms:
        refill = Stats.of(provisioned.refill_ms)
        table.add_row(
            "building a spare (off the request path) p50 / p95",
            f"{ms(refill.p50)} / {ms(refill.p95)}",
            "",
            verdict(None),
            "what each hand-over costs the app server's background refill",
        )
    disk = results.figures["disk"]
    table.add_row(
        "disk per tenant",
        f"{disk['per_tenant_bytes'] / 1024:,.0f} KiB",
        "",
        verdict(None),
        f"{disk['tables_per_tenant']} tables, {disk['relations_per_tenant']} relations a schema",
    )
    table.add_row(
        f"migrate {n:,} tenants, one nullable column",
        f"{migrate.seconds:,.2f} s ({migrate.rate:,.0f}/s, {migrate.failed} failed)",
        f"< {seconds_goal(migrate_goal)} (1,000 < 10 s)",
        verdict(migrate.seconds < migrate_goal and not migrate.failed),
        "django-tenants: 1,000 in 160-183 s",
    )
    table.add_row(
        f"migrate {n:,} tenants, nothing to do",
        f"{noop.seconds:,.2f} s ({noop.rate:,.0f}/s, {noop.failed} failed)",
        f"< {seconds_goal(migrate_goal)}",
        verdict(noop.seconds < migrate_goal and not noop.failed),
        "django-tenants: 1,000 in 168 s",
    )
    for p in phases:
        goal = p.label == "warm"
        table.add_row(
            f"reads {p.label}: random / single p99",
            f"{p.random.p99:,.2f} / {p.single.p99:,.2f} ms = {p.ratio_p99:.2f}x",
            f"<= {GOAL_READ_RATIO}x" if goal else "",
            verdict(p.ratio_p99 <= GOAL_READ_RATIO if goal else None),
            f"p50 random {p.random.p50:,.2f} ms, single {p.single.p50:,.2f} ms; "
            f"{p.backends} backend{'s' if p.backends > 1 else ''}; random reads first on their "
            f"backend {p.random_first.count:,}: p50 / p99 {p.random_first.p50:,.2f} / "
            f"{p.random_first.p99:,.2f} ms, the others {p.random_again.p50:,.2f} / "
            f"{p.random_again.p99:,.2f} ms",
        )
    recycled, unbounded, uncached = probes["recycled"], probes["unbounded"], probes["no cache"]
    table.add_row(
        "RSS after 10 -> all tenants touched",
        f"{recycled['rss_10'] / MIB:,.1f} -> {recycled['rss_all'] / MIB:,.1f} MiB "
        f"({recycled['rss_diff_percent']:+.1f} %)",
        f"within {GOAL_RSS_PERCENT:.0f} %",
        verdict(abs(recycled["rss_diff_percent"]) <= GOAL_RSS_PERCENT),
        f"recycling off: {unbounded['rss_diff_percent']:+.1f} %; get_tenant instead of "
        f"tenant_cache ({recycled['cached_tenants']:,} cached): "
        f"{uncached['rss_diff_percent']:+.1f} %",
    )
    table.add_row(
        f"backend memory max, all touched, max_queries {args.max_queries:,}",
        f"{recycled['backend_max_all'] / MIB:,.1f} MiB",
        "bounded",
        verdict(None),
        f"after 10 tenants {recycled['backend_max_10'] / MIB:,.1f} MiB",
    )
    table.add_row(
        "backend memory max, all touched, recycling off",
        f"{unbounded['backend_max_all'] / MIB:,.1f} MiB",
        "",
        verdict(None),
        f"after 10 tenants {unbounded['backend_max_10'] / MIB:,.1f} MiB; {REF_BACKEND}",
    )
    purge = results.figures["purge"]
    table.add_row(
        f"delete + purge p50 / p95, {purge['count']} tenants",
        f"{ms(purge['p50'])} / {ms(purge['p95'])}",
        "",
        verdict(None),
        "",
    )
    console.print(table)


# --- command line ----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--tenants", type=int, default=None, help="tenants to create (1000)")
    parser.add_argument("--smoke", action="store_true", help="20 tenants, a few seconds (CI)")
    parser.add_argument("--dsn-admin", default=DEFAULT_ADMIN_DSN, help="admin connection")
    parser.add_argument("--database", default=None, help="bench database (patone_bench)")
    parser.add_argument("--prefix", default=None, help="tenant slug prefix (bench)")
    parser.add_argument("--redis", default=DEFAULT_REDIS)
    parser.add_argument(
        "--synthetic-tables",
        type=int,
        default=16,
        help="pad the tenant schema with generated tables up to this many (0: no padding)",
    )
    parser.add_argument(
        "--no-spares",
        action="store_true",
        help="make every tenant by replaying the template (default: every second one from a "
        "spare schema, the others replayed as the baseline)",
    )
    parser.add_argument("--concurrency", type=int, default=4, help="migrate concurrency")
    parser.add_argument("--reads", type=int, default=None, help="reads per kind (2000)")
    parser.add_argument(
        "--read-max-queries", type=int, default=5000, help="pool max_queries for reads"
    )
    parser.add_argument(
        "--max-queries", type=int, default=500, help="pool max_queries for the memory phase"
    )
    parser.add_argument("--pool-size", type=int, default=4, help="pool size, memory phase")
    parser.add_argument("--purge-sample", type=int, default=None, help="tenants purged (50)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    parser.add_argument("--keep", action="store_true", help="keep the database and roles")
    # internal: the memory phase runs in a child process
    parser.add_argument("--memory-probe", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--probe-dsn", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--probe-lifetime", type=float, default=60.0, help=argparse.SUPPRESS)
    parser.add_argument("--probe-no-cache", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    smoke = args.smoke
    defaults: dict[str, Any] = {
        "tenants": 20 if smoke else 1000,
        "database": "patone_bench_smoke" if smoke else "patone_bench",
        "prefix": "benchsmoke" if smoke else "bench",
        "reads": 200 if smoke else 2000,
        "purge_sample": 5 if smoke else 50,
    }
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.tenants < 1:
        parser.error("--tenants must be at least 1")
    check_names(parser, args.prefix, args.database)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.memory_probe:
        probe = asyncio.run(
            memory_probe(
                args.probe_dsn,
                args.max_queries,
                args.probe_lifetime,
                args.pool_size,
                use_cache=not args.probe_no_cache,
            )
        )
        print(json.dumps(probe))
        return 0
    return asyncio.run(run(args, make_console()))


if __name__ == "__main__":
    sys.exit(main())
