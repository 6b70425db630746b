"""Tenant actors for tests/core/work/test_jobs.py (importable by worker processes too)."""

from __future__ import annotations

import asyncio
import os

import dramatiq
import redis
from dramatiq.middleware import CurrentMessage

from patone.core.runtime.db import engine
from patone.core.work.jobs import current_job, current_message_id, tenant_actor

# Actors run on the worker's loop: they count with a synchronous client of their own.
counters = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/9"))

CREATE = (
    "CREATE TABLE IF NOT EXISTS job_runs ("
    "message_id text PRIMARY KEY, note text NOT NULL, tenant text NOT NULL, pid int NOT NULL)"
)


async def _record(note: str) -> None:
    await engine.execute(CREATE)
    await engine.execute(
        "INSERT INTO job_runs (message_id, note, tenant, pid) VALUES ($1, $2, $3, $4)",
        current_message_id.get(),
        note,
        current_job().tenant.slug,
        os.getpid(),
    )


@tenant_actor(max_retries=0)
async def record(tenant_slug: str, note: str) -> None:
    await _record(note)


@tenant_actor(max_retries=2, min_backoff=50, max_backoff=200)
async def flaky(tenant_slug: str, key: str) -> None:
    """Fails (after counting the attempt) until `<key>:heal` is set."""
    counters.incr(f"{key}:attempts")
    if not counters.get(f"{key}:heal"):
        raise RuntimeError("provider unavailable")
    await _record(key)


@tenant_actor(max_retries=2, min_backoff=50, max_backoff=200)
async def busy(tenant_slug: str, key: str) -> None:
    """Always asks to be tried later (`dramatiq.Retry`), listing the traceback each attempt's
    message carries ("" for none)."""
    message = CurrentMessage.get_current_message()
    assert message is not None
    counters.rpush(f"{key}:tracebacks", message.options.get("traceback") or "")
    raise dramatiq.Retry("held by another attempt")


@tenant_actor(max_retries=0, transaction=False)
async def loop_kind(tenant_slug: str, key: str) -> None:
    """Says which event loop the job runs on (its class's module)."""
    counters.set(key, type(asyncio.get_running_loop()).__module__)


@tenant_actor(max_retries=0, transaction=False)
async def slow(tenant_slug: str, key: str, seconds: float) -> None:
    """Says where it started, sleeps (on its first start only), then records (in a short
    transaction of its own)."""
    if counters.rpush(f"{key}:started", os.getpid()) == 1:
        await asyncio.sleep(seconds)
    from patone.tenants.isolation import tenant_transaction

    async with tenant_transaction(current_job().tenant):
        await _record(key)


@tenant_actor(max_retries=0, transaction=False)
async def purged_midway(tenant_slug: str) -> None:
    """Its company is purged while it runs (as by an operator at that moment); then it reads."""
    from patone.platform import provisioning
    from patone.tenants.isolation import tenant_transaction

    await provisioning.delete_tenant(tenant_slug)
    await provisioning.purge_tenant(tenant_slug, force=True)
    async with tenant_transaction(current_job().tenant):
        await engine.fetch("SELECT 1 FROM settings")
