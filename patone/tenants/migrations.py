"""Per-schema Piccolo migrations, captured once and replayed per tenant.

Piccolo's migration files stay the source of truth. Running them schema by schema through
Piccolo costs several round trips and catalog look-ups per tenant (django-tenants spends ~170 ms
a tenant that way). Instead `capture_template` runs every migration once, inside a throw-away
schema in a transaction that is rolled back, and records the SQL each one sent. A tenant is then
brought up to date by replaying the recorded SQL of the migrations it lacks, as one script on one
connection. Which migrations each tenant lacks is read in one query from the registry
(`platform.tenants.applied_migrations`), never by introspecting each schema.

A migration whose effect depends on a tenant's own data cannot be replayed from a recording;
such a module sets `REPLAYABLE = False` and is run live by Piccolo in each tenant's transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import io
import pkgutil
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from types import ModuleType
from typing import Any
from uuid import UUID

import asyncpg
from piccolo.apps.migrations.tables import Migration

from patone.core.runtime.db import current_shard, engine
from patone.tenants.isolation import TenantRef, tenant_transaction
from patone.tenants.naming import quote_ident

TENANT_APP = "tenant"
PLATFORM_APP = "platform"
# Serialises platform bootstrap between processes (serve, worker, migrate) starting together.
_PLATFORM_LOCK_KEY = 0x7061746F6E65


class MigrationError(Exception):
    """A migration could not be captured or applied."""


@dataclass(frozen=True)
class MigrationModule:
    """One Piccolo migration file."""

    id: str
    module: str
    forwards: Callable[[], Awaitable[Any]]
    replayable: bool = True


@dataclass(frozen=True)
class MigrationSet:
    """The ordered migrations of one Piccolo app."""

    app_name: str
    migrations: tuple[MigrationModule, ...]

    @classmethod
    def from_packages(cls, app_name: str, *packages: str) -> MigrationSet:
        found: list[MigrationModule] = []
        for package_name in packages:
            package = importlib.import_module(package_name)
            for info in pkgutil.iter_modules(package.__path__):
                if info.name.startswith("_"):
                    continue
                module = importlib.import_module(f"{package_name}.{info.name}")
                found.append(_migration_module(module))
        found.sort(key=lambda m: m.id)
        ids = [m.id for m in found]
        if len(set(ids)) != len(ids):
            raise MigrationError(f"duplicate migration ids in {packages}")
        return cls(app_name=app_name, migrations=tuple(found))

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(m.id for m in self.migrations)

    def missing(self, applied: Iterable[str]) -> list[MigrationModule]:
        done = set(applied)
        return [m for m in self.migrations if m.id not in done]


def _migration_module(module: ModuleType) -> MigrationModule:
    try:
        return MigrationModule(
            id=module.ID,
            module=module.__name__,
            forwards=module.forwards,
            replayable=getattr(module, "REPLAYABLE", True),
        )
    except AttributeError as error:
        raise MigrationError(f"{module.__name__} is not a Piccolo migration: {error}") from None


def tenant_migrations() -> MigrationSet:
    """The migrations of every tenant schema, as shipped."""
    return MigrationSet.from_packages(TENANT_APP, "patone.core.domain.piccolo_migrations")


def platform_migrations() -> MigrationSet:
    return MigrationSet.from_packages(PLATFORM_APP, "patone.tenants.piccolo_migrations")


async def run_manager(migration: MigrationModule) -> None:
    """Run a Piccolo migration's forwards, without Piccolo's progress prints on stdout."""
    manager = await migration.forwards()
    with contextlib.redirect_stdout(io.StringIO()):
        await manager.run()


# --- capture ----------------------------------------------------------------------------------


def sql_literal(value: Any) -> str:
    """Render a recorded query argument as an SQL literal, for replay as a plain script."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float | Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        value = value.isoformat()
    if isinstance(value, str | UUID):
        return "'" + str(value).replace("'", "''") + "'"
    if isinstance(value, list | tuple):
        return "ARRAY[" + ", ".join(sql_literal(v) for v in value) + "]"
    raise MigrationError(f"cannot record a migration argument of type {type(value).__name__}")


def render(query: str, args: Sequence[Any]) -> str:
    """Inline `$1..$n` placeholders (highest first, so $1 does not eat $10)."""
    for index in range(len(args), 0, -1):
        query = query.replace(f"${index}", sql_literal(args[index - 1]))
    return query


_READ_ONLY = ("SELECT", "WITH", "SHOW")


class RecordingConnection:
    """Forwards statements to a connection and records those that change something."""

    def __init__(self, raw: asyncpg.Connection) -> None:
        self.raw = raw
        self.statements: list[str] = []

    def _record(self, query: str, args: Sequence[Any]) -> None:
        text = query.strip().rstrip(";")
        if text and not text.lstrip("(").upper().startswith(_READ_ONLY):
            self.statements.append(render(text, args))

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        self._record(query, args)
        return await self.raw.fetch(query, *args)

    async def execute(self, query: str, *args: Any) -> str:
        self._record(query, args)
        return await self.raw.execute(query, *args)

    def take(self) -> str:
        script = ";\n".join(self.statements)
        self.statements = []
        return script + ";" if script else ""

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


class _Rollback(Exception):
    pass


@dataclass(frozen=True)
class TenantTemplate:
    """The recorded SQL of a migration set: a preamble and one script per migration."""

    app_name: str
    preamble: str
    scripts: dict[str, str]
    ids: tuple[str, ...]
    live: frozenset[str] = frozenset()

    def record_sql(self, migration_ids: Sequence[str]) -> str:
        """The insert that records these migrations in the schema's own migration table."""
        rows = ", ".join(
            f"({sql_literal(mid)}, {sql_literal(self.app_name)}, now())" for mid in migration_ids
        )
        return f"INSERT INTO migration (name, app_name, ran_on) VALUES {rows};"

    def script_for(self, migration_ids: Sequence[str]) -> str:
        """The SQL that applies these migrations and records them in the schema's table."""
        if not migration_ids:
            return ""
        parts = [self.scripts[mid] for mid in migration_ids if self.scripts[mid]]
        parts.append(self.record_sql(migration_ids))
        return "\n".join(parts)

    @property
    def full_script(self) -> str:
        return self.preamble + "\n" + self.script_for(self.ids)


async def capture_template(migrations: MigrationSet) -> TenantTemplate:
    """Run every migration in a scratch schema, record its SQL, and roll it all back."""
    scratch = f"_patone_capture_{secrets.token_hex(4)}"
    scripts: dict[str, str] = {}
    preamble = ""
    live = frozenset(m.id for m in migrations.migrations if not m.replayable)
    try:
        async with engine.transaction() as transaction:
            raw = transaction.connection
            await raw.execute(
                f"CREATE SCHEMA {quote_ident(scratch)}; "
                f"SET LOCAL search_path TO {quote_ident(scratch)}, ext"
            )
            recorder = RecordingConnection(raw)
            transaction.connection = recorder
            try:
                await Migration.create_table(if_not_exists=True).run()
                preamble = recorder.take()
                for migration in migrations.migrations:
                    try:
                        await run_manager(migration)
                    except Exception as error:
                        raise MigrationError(
                            f"migration {migration.module} failed while being captured: {error}"
                        ) from error
                    # Live migrations are recorded too: on a brand-new schema (provisioning) the
                    # recording is exact; only existing tenants run them live.
                    scripts[migration.id] = recorder.take()
            finally:
                transaction.connection = raw
            raise _Rollback
    except _Rollback:
        pass
    return TenantTemplate(
        app_name=migrations.app_name,
        preamble=preamble,
        scripts=scripts,
        ids=migrations.ids,
        live=live,
    )


_templates: dict[tuple[str, tuple[str, ...]], TenantTemplate] = {}
_template_lock = asyncio.Lock()


async def get_template(migrations: MigrationSet | None = None) -> TenantTemplate:
    """The captured template of a migration set, captured once per process."""
    migrations = migrations or tenant_migrations()
    key = (migrations.app_name, migrations.ids)
    template = _templates.get(key)
    if template is None:
        async with _template_lock:
            template = _templates.get(key)
            if template is None:
                template = await capture_template(migrations)
                _templates[key] = template
    return template


# --- applying to tenants -----------------------------------------------------------------------


async def apply_missing(
    tenant: TenantRef,
    missing: Sequence[MigrationModule],
    template: TenantTemplate,
) -> None:
    """Bring one tenant up to date, in one transaction with its registry row."""
    ids = [m.id for m in missing]
    registry_update = (
        "RESET ROLE; UPDATE platform.tenants SET applied_migrations = "
        f"array_cat(applied_migrations, {sql_literal(ids)}::varchar[]), updated_at = now() "
        f"WHERE slug = {sql_literal(tenant.slug)};"
    )
    async with tenant_transaction(tenant) as transaction:
        connection = transaction.connection
        if not any(m.id in template.live for m in missing):
            # The common case: one script, one round trip.
            await connection.execute(template.script_for(ids) + "\n" + registry_update)
            return
        pending: list[str] = []
        for migration in missing:
            if migration.id in template.live:
                if pending:
                    await connection.execute(template.script_for(pending))
                    pending.clear()
                await run_manager(migration)
                await connection.execute(template.record_sql([migration.id]))
            else:
                pending.append(migration.id)
        if pending:
            await connection.execute(template.script_for(pending))
        await connection.execute(registry_update)


@dataclass
class TenantMigrationResult:
    slug: str
    status: str  # "migrated", "up to date", "failed"
    applied: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    attempts: int = 0


@dataclass
class MigrationReport:
    results: list[TenantMigrationResult]
    seconds: float

    @property
    def failed(self) -> list[TenantMigrationResult]:
        return [r for r in self.results if r.status == "failed"]

    @property
    def migrated(self) -> list[TenantMigrationResult]:
        return [r for r in self.results if r.status == "migrated"]

    @property
    def ok(self) -> bool:
        return not self.failed


@dataclass(frozen=True)
class _Row:
    id: UUID
    slug: str
    schema_name: str
    role_name: str
    shard: str
    applied_migrations: list[str]


async def migrate_tenants(
    migrations: MigrationSet | None = None,
    *,
    concurrency: int = 4,
    slugs: Sequence[str] | None = None,
    retries: int = 1,
    on_result: Callable[[TenantMigrationResult], None] | None = None,
    on_plan: Callable[[int], None] | None = None,
) -> MigrationReport:
    """Apply missing migrations to every tenant (or `slugs`), `concurrency` at a time.

    One failing tenant is reported (and retried `retries` times) without stopping the others.
    Re-running resumes: each tenant's applied migrations are committed with its schema change.
    """
    migrations = migrations or tenant_migrations()
    started = time.perf_counter()
    query = (
        "SELECT id, slug, schema_name, role_name, shard, applied_migrations "
        "FROM platform.tenants WHERE status <> 'purging'"
    )
    args: list[Any] = []
    if slugs is not None:
        query += " AND slug = ANY($1::varchar[])"
        args.append(list(slugs))
    rows = [_Row(**dict(r)) for r in await engine.fetch(query + " ORDER BY slug", *args)]
    if on_plan:
        on_plan(len(rows))
    # Captured only when some tenant is behind: a check that finds all up to date is one query.
    behind = any(migrations.missing(row.applied_migrations) for row in rows)
    template = await get_template(migrations) if behind else None
    semaphore = asyncio.Semaphore(concurrency)

    async def one(row: _Row) -> TenantMigrationResult:
        result = TenantMigrationResult(slug=row.slug, status="up to date")
        missing = migrations.missing(row.applied_migrations)
        if missing:
            async with semaphore:
                t0 = time.perf_counter()
                for attempt in range(1, retries + 2):
                    result.attempts = attempt
                    try:
                        assert template is not None
                        await apply_missing(row, missing, template)
                    except Exception as error:  # one tenant's failure is reported, not raised
                        result.status = "failed"
                        result.error = f"{type(error).__name__}: {error}"
                        continue
                    result.status, result.error = "migrated", None
                    result.applied = [m.id for m in missing]
                    break
                result.seconds = time.perf_counter() - t0
        if on_result:
            on_result(result)
        return result

    results = await asyncio.gather(*(one(row) for row in rows))
    return MigrationReport(results=list(results), seconds=time.perf_counter() - started)


# --- the platform schema -----------------------------------------------------------------------


async def ensure_platform() -> list[str]:
    """Create the `platform` and `ext` schemas and apply platform migrations; idempotent.

    Returns the ids of the migrations applied now. Platform migrations run live through Piccolo
    (they run once per installation, not per tenant).
    """
    migrations = platform_migrations()
    applied_now: list[str] = []
    shard_token = current_shard.set("default")
    try:
        async with engine.transaction() as transaction:
            connection = transaction.connection
            await connection.execute("SELECT pg_advisory_xact_lock($1)", _PLATFORM_LOCK_KEY)
            await connection.execute(
                "CREATE SCHEMA IF NOT EXISTS platform; CREATE SCHEMA IF NOT EXISTS ext; "
                "GRANT USAGE ON SCHEMA ext TO PUBLIC; "
                "REVOKE ALL ON SCHEMA platform FROM PUBLIC; "
                "REVOKE ALL ON SCHEMA public FROM PUBLIC; "
                "SET LOCAL search_path TO platform, ext"
            )
            await Migration.create_table(if_not_exists=True).run()
            done = {
                r["name"]
                for r in await connection.fetch(
                    "SELECT name FROM migration WHERE app_name = $1", PLATFORM_APP
                )
            }
            for migration in migrations.missing(done):
                await run_manager(migration)
                await connection.execute(
                    "INSERT INTO migration (name, app_name, ran_on) VALUES ($1, $2, now())",
                    migration.id,
                    PLATFORM_APP,
                )
                applied_now.append(migration.id)
    finally:
        current_shard.reset(shard_token)
    for shard in engine.shards:
        if shard != "default":
            await _prepare_shard(shard)
    return applied_now


async def _prepare_shard(shard: str) -> None:
    """A shard holds only tenant schemas: give it `ext` and an empty, closed `public`."""
    token = current_shard.set(shard)
    try:
        await engine.execute(
            "CREATE SCHEMA IF NOT EXISTS ext; GRANT USAGE ON SCHEMA ext TO PUBLIC; "
            "REVOKE ALL ON SCHEMA public FROM PUBLIC"
        )
    finally:
        current_shard.reset(token)
