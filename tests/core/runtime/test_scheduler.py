"""Periodic jobs: one leader among several processes, on time, taken over when it dies."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from patone.core import notifications
from patone.core.runtime.scheduler import Periodic, Scheduler, periodic, registered
from tests.conftest import REDIS_URL


@pytest.fixture
async def client() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(REDIS_URL, socket_timeout=5)  # a hang fails, not blocks
    yield client
    await client.aclose()


def _schedulers(
    client: aioredis.Redis, runs: list[str], count: int, **kwargs: float
) -> list[Scheduler]:
    prefix = f"test:scheduler:{uuid.uuid4().hex[:8]}"

    async def job() -> None:
        runs.append("tick")

    jobs = {"tick": Periodic("tick", 0.2, job)}
    return [
        Scheduler(client, jobs=jobs, prefix=prefix, node=f"node-{i}", **kwargs)
        for i in range(count)
    ]


async def test_three_processes_one_leader_each_run_once(client: aioredis.Redis) -> None:
    runs: list[str] = []
    schedulers = _schedulers(client, runs, 3, tick=0.05, lease=2)
    for scheduler in schedulers:
        scheduler.start()
    await asyncio.sleep(1.1)
    leaders = [s for s in schedulers if s.leading]
    for scheduler in schedulers:
        await scheduler.stop()
    assert len(leaders) == 1
    assert 4 <= len(runs) <= 7  # every 0.2 s for ~1 s, by one process only
    assert sum(s.runs.get("tick", 0) for s in schedulers) == len(runs)
    assert await client.get(schedulers[0].lock_key) is None  # released on shutdown


async def test_another_process_takes_over_when_the_leader_dies(client: aioredis.Redis) -> None:
    runs: list[str] = []
    first, second = _schedulers(client, runs, 2, tick=0.05, lease=0.5)
    first.start()
    await asyncio.sleep(0.3)
    second.start()
    await asyncio.sleep(0.3)
    assert first.leading and not second.leading
    assert first._task is not None
    first._task.cancel()  # killed: no release, the lock must expire
    await asyncio.sleep(0.1)
    before = len(runs)
    await asyncio.sleep(1.2)
    assert second.leading and len(runs) > before
    await second.stop()
    await client.delete(first.lock_key, first.due_key)


async def test_a_failing_job_is_logged_and_the_schedule_goes_on(
    client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []

    async def broken() -> None:
        calls.append(1)
        raise RuntimeError("disk full")

    prefix = f"test:scheduler:{uuid.uuid4().hex[:8]}"
    scheduler = Scheduler(client, jobs={"broken": Periodic("broken", 0.01, broken)}, prefix=prefix)
    assert await scheduler.step() == ["broken"]
    await asyncio.sleep(0.02)
    assert await scheduler.step() == ["broken"]
    assert len(calls) == 2 and "periodic job failed" in caplog.text
    await scheduler.stop()
    await client.delete(scheduler.due_key)


def test_modules_register_their_jobs() -> None:
    assert registered()["notifications.sweep"].run is notifications.sweep_all
    with pytest.raises(ValueError):
        periodic("never", every=0)
