"""Shared fixtures: the machine's real Postgres and Redis, and tenants that clean up after."""

from __future__ import annotations

import atexit
import contextlib
import os
import socket
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from patone.core.common.permissions import DEFAULT_GRANTS, Actor
from patone.core.runtime import error_codes
from patone.core.runtime.db import engine
from patone.core.runtime.redis import close_redis, connect_redis, get_redis
from patone.platform import provisioning
from patone.tenants.migrations import ensure_platform
from patone.tenants.registry import TenantInfo, get_tenant, tenant_cache
from tests.fakes import TWILIO_SID, TWILIO_TOKEN, FakeDns, SmtpFake, TwilioFake

MACHINE_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
MACHINE_REDIS = "redis://127.0.0.1:6379/9"


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _use_machine_or_embedded_services() -> None:
    """Tests use the machine's Postgres and Redis; where there are none, embedded ones."""
    wanted: dict[str, str | None] = {}
    if not os.environ.get("DATABASE_URL"):
        wanted["database_url"] = MACHINE_POSTGRES if _listening(5432) else None
    if not os.environ.get("REDIS_URL"):
        wanted["redis_url"] = MACHINE_REDIS if _listening(6379) else None
    if None in wanted.values():
        from patone.embedded import EmbeddedServices
        from patone.settings import load_settings

        data_dir = Path(tempfile.gettempdir()) / "patone-test-services"
        settings = load_settings(data_dir=data_dir, **{k: v or "" for k, v in wanted.items()})
        services = EmbeddedServices.start(settings)
        atexit.register(services.stop)
        wanted = {"database_url": services.database_url, "redis_url": services.redis_url}
    for key, value in wanted.items():
        os.environ[key.upper()] = str(value)


_use_machine_or_embedded_services()
os.environ.setdefault("DEMO_TENANT", "false")
# Tests make many companies and check each one's schema; an app under test builds no spares
# (tests/tenants/test_spares.py builds its own).
os.environ.setdefault("TENANT_SPARES", "0")


DATABASE_URL = os.environ["DATABASE_URL"]
REDIS_URL = os.environ["REDIS_URL"]
# Test tenants' slugs start with this, so a crashed run's leftovers can be found and dropped
# without touching anything else in the cluster (roles are cluster-wide).
TEST_PREFIX = "tt"


async def _drop_leftovers(older_than: timedelta) -> None:
    """Drop test tenants a crashed run left behind. Only stale ones: another test run may be
    using this database at the same time, and its fresh tenants are not ours to drop."""
    stale = await engine.fetch(
        "SELECT schema_name, role_name FROM platform.tenants "
        "WHERE slug LIKE $1 AND created_at < now() - $2::interval",
        f"{TEST_PREFIX}%",
        older_than,
    )
    for row in stale:
        await engine.execute(f'DROP SCHEMA IF EXISTS "{row["schema_name"]}" CASCADE')
        with contextlib.suppress(asyncpg.PostgresError):  # may own objects in another database
            await engine.execute(f'DROP ROLE IF EXISTS "{row["role_name"]}"')
    await engine.execute(
        "DELETE FROM platform.tenants WHERE slug LIKE $1 AND created_at < now() - $2::interval",
        f"{TEST_PREFIX}%",
        older_than,
    )


@pytest.fixture(scope="session", autouse=True)
async def database() -> AsyncIterator[None]:
    """Connect once per session to the real Postgres and Redis; start from a clean slate."""
    await engine.connect({"default": DATABASE_URL}, min_size=1, max_size=12, count_statements=True)
    await connect_redis(REDIS_URL)
    await ensure_platform()
    await _drop_leftovers(timedelta(hours=1))
    tenant_cache.ttl = 0
    yield
    await close_redis()
    await engine.disconnect()


def unique_slug(stem: str = "co") -> str:
    return f"{TEST_PREFIX}{stem}-{uuid.uuid4().hex[:8]}"


MakeTenant = Callable[..., Awaitable[TenantInfo]]


@pytest.fixture
async def make_tenant() -> AsyncIterator[MakeTenant]:
    """Create tenants with unique slugs; purge them (schema, role, row, keys) afterwards."""
    made: list[str] = []

    async def make(stem: str = "co", **kwargs: object) -> TenantInfo:
        slug = unique_slug(stem)
        tenant = await provisioning.create_tenant(slug, **kwargs)  # type: ignore[arg-type]
        made.append(slug)
        return tenant

    yield make
    for slug in made:
        tenant = await get_tenant(slug)
        if tenant is None:
            continue
        if tenant.status != "deleted":
            await provisioning.delete_tenant(slug)
        await provisioning.purge_tenant(slug, force=True)


MakePlan = Callable[..., Awaitable[str]]


@pytest.fixture
async def make_plan() -> AsyncIterator[MakePlan]:
    """Add plans to the catalogue with the given limits; afterwards purge the tenants on them
    (before `make_tenant` would, since a plan in use cannot go) and remove the plans."""
    from patone.core.identity.ratelimits import forget_plan_limits

    made: list[str] = []

    async def make(**limits: int) -> str:
        name = unique_slug("plan")
        columns = ", ".join(["name", "title", "created_at", *limits])
        values = ", ".join(["$1", "$1", "now()", *(f"${i + 2}" for i in range(len(limits)))])
        await engine.execute(
            f"INSERT INTO platform.plans ({columns}) VALUES ({values})",
            name,
            *limits.values(),
        )
        made.append(name)
        return name

    yield make
    for name in made:
        for row in await engine.fetch("SELECT slug FROM platform.tenants WHERE plan = $1", name):
            tenant = await get_tenant(row["slug"])
            if tenant is not None and tenant.status != "deleted":
                await provisioning.delete_tenant(row["slug"])
            await provisioning.purge_tenant(row["slug"], force=True)
        await engine.execute("DELETE FROM platform.plans WHERE name = $1", name)
        forget_plan_limits(name)


@pytest.fixture
async def redis_client():  # type: ignore[no-untyped-def]
    return get_redis()


def actor_for(role: str, user_id: int = 1, driver_id: int | None = None) -> Actor:
    """A signed-in staff member with the default grants of `role`."""
    return Actor(
        kind="user",
        id=str(user_id),
        role=role,
        permissions=frozenset(DEFAULT_GRANTS[role]),
        driver_id=driver_id,
    )


@pytest.fixture
async def two_tenants(make_tenant: MakeTenant) -> tuple[TenantInfo, TenantInfo]:
    """Every data test runs beside a second company, so a leak would show."""
    return await make_tenant("acme", name="Acme Towing"), await make_tenant("bolt", name="Bolt")


@pytest.fixture
def smtp() -> Iterator[SmtpFake]:
    """An SMTP server that keeps what it is sent in `messages`."""
    fake = SmtpFake().start()
    yield fake
    fake.stop()


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> FakeDns:
    """Made-up names with the answers a test gives them (`dns.answer(name, ...)`)."""
    fake = FakeDns()
    monkeypatch.setattr(socket, "getaddrinfo", fake.getaddrinfo)
    return fake


@pytest.fixture
def twilio() -> Iterator[TwilioFake]:
    """Twilio's Messages API for the account `TWILIO_SID` / `TWILIO_TOKEN`."""
    fake = TwilioFake(TWILIO_SID, TWILIO_TOKEN).start()
    yield fake
    fake.stop()


@pytest.fixture(autouse=True)
def _documented_error_codes() -> Iterator[None]:
    """Every error code a test meets is listed in `patone.core.runtime.error_codes` (and so in
    docs/api.md): an unlisted one fails the test that raised it."""
    before = set(error_codes.undocumented)
    yield
    new = error_codes.undocumented - before
    assert not new, f"error codes missing from patone.core.runtime.error_codes: {sorted(new)}"


HANG_NOTICE_BEFORE_S = 10  # before pytest-timeout stops a hung test


@pytest.fixture(autouse=True)
def _tasks_of_a_hung_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """Shortly before pytest-timeout stops a hung test (its dump shows threads only), print
    what every asyncio task is waiting on: a hang on the shared event loop is a task waiting
    for a future nobody completes, and the loop thread itself just sits in `select`."""
    limit = float(
        request.config.getoption("timeout", None) or request.config.getini("timeout") or 0
    )
    if limit <= HANG_NOTICE_BEFORE_S:
        yield
        return

    def report() -> None:
        import asyncio.tasks
        import sys

        print(f"\n--- asyncio tasks of {request.node.nodeid}, still running:", file=sys.stderr)
        with contextlib.suppress(Exception):  # read from another thread: best effort
            for task in list(asyncio.tasks._all_tasks):  # type: ignore[attr-defined]
                if not task.done():
                    task.print_stack(limit=12, file=sys.stderr)

    timer = threading.Timer(limit - HANG_NOTICE_BEFORE_S, report)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
