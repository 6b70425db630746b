"""Periodic work: one leader among all processes runs each registered job on time.

Modules register jobs with `@periodic("name", every=seconds)`; other issues add theirs
(backups, retention, reports, offer time-outs). A job is an `async def` taking no arguments that
should be quick: it usually queues Dramatiq jobs (one per tenant) rather than doing the work.

Every `patone serve` process runs a `Scheduler`; they elect a leader through a Redis lock
(`SET NX PX`, renewed every tick by a compare-and-extend script, released on shutdown by a
compare-and-delete one). Only the leader runs jobs. When it dies, its lock expires after `lease`
seconds and another process takes over. Each job's next due time lives in Redis, so a new leader
continues the schedule instead of running everything at once; the due time moves forward before
the job runs, so a leader that dies mid-job skips that run rather than repeating it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

log = logging.getLogger(__name__)

PREFIX = "platform:scheduler"

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


@dataclass(frozen=True)
class Periodic:
    name: str
    every: float  # seconds
    run: Callable[[], Awaitable[Any]]


_REGISTRY: dict[str, Periodic] = {}


def periodic(
    name: str, *, every: float
) -> Callable[[Callable[[], Awaitable[Any]]], Callable[[], Awaitable[Any]]]:
    """Register `async def job()` to run every `every` seconds on the leader."""
    if every <= 0:
        raise ValueError("every must be positive")

    def register(job: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
        _REGISTRY[name] = Periodic(name, every, job)
        return job

    return register


def registered() -> dict[str, Periodic]:
    return dict(_REGISTRY)


class Scheduler:
    """Competes for leadership and, while leading, runs the jobs that are due."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        jobs: dict[str, Periodic] | None = None,
        prefix: str = PREFIX,
        lease: float = 15.0,
        tick: float = 1.0,
        node: str | None = None,
        job_timeout: float = 60.0,
    ) -> None:
        self.client = client
        self.jobs = jobs
        self.lock_key = f"{prefix}:leader"
        self.due_key = f"{prefix}:due"
        self.lease = lease
        self.tick = tick
        self.node = node or uuid.uuid4().hex
        self.job_timeout = job_timeout
        self.leading = False
        self.runs: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None

    async def _lead(self) -> bool:
        """Take or keep the lock; True while this process leads."""
        lease_ms = int(self.lease * 1000)
        if self.leading:
            kept = await self.client.eval(_RENEW, 1, self.lock_key, self.node, lease_ms)
            self.leading = bool(kept)
            if not self.leading:
                log.warning("scheduler lost leadership", extra={"node": self.node})
        if not self.leading:
            taken = await self.client.set(self.lock_key, self.node, nx=True, px=lease_ms)
            self.leading = bool(taken)
            if self.leading:
                log.info("scheduler leads", extra={"node": self.node})
        return self.leading

    async def run_due(self) -> list[str]:
        """Run every job whose time has come (leader only); returns their names."""
        jobs = self.jobs if self.jobs is not None else registered()
        if not jobs:
            return []
        now = time.time()
        names = sorted(jobs)
        due = await self.client.hmget(self.due_key, names)
        ran = []
        for name, when in zip(names, due, strict=True):
            job = jobs[name]
            if when is not None and float(when) > now:
                continue
            await self.client.hset(self.due_key, name, now + job.every)
            try:
                await asyncio.wait_for(job.run(), self.job_timeout)
            except Exception:
                log.exception("periodic job failed", extra={"job": name})
            self.runs[name] = self.runs.get(name, 0) + 1
            ran.append(name)
        return ran

    async def step(self) -> list[str]:
        """One tick: lead if possible, then run what is due."""
        # A Redis call that never answers must not stall the scheduler: give up after a lease.
        if await asyncio.wait_for(self._lead(), self.lease):
            return await self.run_due()
        return []

    async def _loop(self) -> None:
        while True:
            try:
                await self.step()
            except Exception:  # Redis away: not leading until it is back
                if self.leading:
                    log.warning("scheduler cannot reach Redis", exc_info=True)
                self.leading = False
            await asyncio.sleep(self.tick)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.leading:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    self.client.eval(_RELEASE, 1, self.lock_key, self.node), self.lease
                )
            self.leading = False
