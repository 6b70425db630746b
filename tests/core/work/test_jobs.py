"""Dramatiq jobs against the real Redis and Postgres: tenant actors, retries, dead letters,
redelivery after a worker is killed."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import dramatiq
import pytest
import redis

from patone.core.runtime.db import engine
from patone.core.work.jobs import (
    HEARTBEAT_TIMEOUT_MS,
    SWEEP_INTERVAL,
    TenantGone,
    configure_broker,
    dead_letter_key,
    list_dead_letters,
    retry_dead_letter,
)
from patone.core.work.worker import start_in_process_worker, worker_command
from patone.platform import provisioning
from patone.tenants.isolation import tenant_transaction
from patone.tenants.registry import TenantInfo
from tests.conftest import REDIS_URL, MakeTenant
from tests.core.work import jobs_actors
from tests.support import purge_and_take_slug


def _drop_namespace(namespace: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def broker() -> Iterator[dramatiq.Broker]:
    """A broker in a namespace of its own, so parallel test runs never share queues."""
    namespace = f"patone-test-{uuid.uuid4().hex[:10]}"
    yield configure_broker(REDIS_URL, namespace=namespace)
    _drop_namespace(namespace)


@pytest.fixture
async def worker(broker: dramatiq.Broker) -> AsyncIterator[None]:
    stop = start_in_process_worker(broker, threads=2)
    yield
    await asyncio.to_thread(stop, 5000)


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s")
        await asyncio.sleep(0.05)


async def runs(tenant: TenantInfo) -> list[dict[str, Any]]:
    async with tenant_transaction(tenant):
        if (await engine.fetch("SELECT to_regclass('job_runs') AS t"))[0]["t"] is None:
            return []
        return [dict(r) for r in await engine.fetch("SELECT * FROM job_runs ORDER BY note")]


async def test_an_actor_writes_into_its_own_tenant_only_and_sees_its_message_id(
    two_tenants: tuple[TenantInfo, TenantInfo], worker: None
) -> None:
    acme, bolt = two_tenants
    message = jobs_actors.record.send(acme, "hello")
    rows = await eventually(lambda: runs(acme))
    assert rows == [
        {
            "message_id": message.message_id,
            "note": "hello",
            "tenant": acme.slug,
            "pid": os.getpid(),
        }
    ]
    assert await runs(bolt) == []


async def test_the_in_process_worker_has_its_own_pool_and_the_app_keeps_its_own(
    two_tenants: tuple[TenantInfo, TenantInfo], worker: None
) -> None:
    acme, _ = two_tenants
    app_pool = engine.pool
    async with tenant_transaction(acme):  # ten concurrent CREATE TABLE IF NOT EXISTS would race
        await engine.execute(jobs_actors.CREATE)
    messages = [jobs_actors.record.send(acme, f"n{i}") for i in range(10)]
    rows = await eventually(lambda: _all(acme, 10))
    assert {row["message_id"] for row in rows} == {m.message_id for m in messages}
    assert engine.pool is app_pool  # this loop still gets the app's pool


async def _all(tenant: TenantInfo, count: int) -> list[dict[str, Any]] | None:
    rows = await runs(tenant)
    return rows if len(rows) == count else None


async def test_a_failing_job_is_retried_with_backoff_then_dead_lettered_and_can_be_retried(
    two_tenants: tuple[TenantInfo, TenantInfo], worker: None, broker: dramatiq.Broker
) -> None:
    acme, bolt = two_tenants
    key = f"jobs-test-{uuid.uuid4().hex}"
    started = time.monotonic()
    message = jobs_actors.flaky.send(acme, key)
    letters = await eventually(lambda: list_dead_letters(acme.slug))
    elapsed = time.monotonic() - started
    assert jobs_actors.counters.get(f"{key}:attempts") == b"3"  # first try + max_retries=2
    assert elapsed >= 0.15  # back-off: at least 50 ms then 100 ms between the attempts
    [letter] = letters
    assert letter["message_id"] == message.message_id
    assert letter["actor"] == "tests.core.work.jobs_actors.flaky"
    assert letter["args"] == [acme.slug, key]
    assert letter["tenant"] == acme.slug
    assert letter["error"] == "RuntimeError: provider unavailable"
    assert letter["reason"] == "retries exhausted after 3 attempts"
    assert "provider unavailable" in letter["traceback"]
    assert await list_dead_letters(bolt.slug) == []
    assert await runs(acme) == []

    jobs_actors.counters.set(f"{key}:heal", 1)
    assert await retry_dead_letter(acme.slug, message.message_id) is True
    rows = await eventually(lambda: runs(acme))
    assert [(r["message_id"], r["note"]) for r in rows] == [(message.message_id, key)]
    assert await list_dead_letters(acme.slug) == []
    assert await retry_dead_letter(acme.slug, message.message_id) is False
    jobs_actors.counters.delete(f"{key}:attempts", f"{key}:heal")


async def test_jobs_run_on_uvloop_in_the_worker_and_the_app_keeps_its_loop(
    two_tenants: tuple[TenantInfo, TenantInfo], worker: None
) -> None:
    acme, _ = two_tenants
    key = f"jobs-test-{uuid.uuid4().hex}"
    jobs_actors.loop_kind.send(acme, key)
    kind = await eventually(lambda: asyncio.to_thread(jobs_actors.counters.get, key))
    assert kind.decode().startswith("uvloop")
    assert type(asyncio.get_running_loop()).__module__.startswith("asyncio")
    jobs_actors.counters.delete(key)


async def test_an_expected_retry_carries_no_stack_until_its_last_attempt_is_dead_lettered(
    two_tenants: tuple[TenantInfo, TenantInfo], worker: None
) -> None:
    acme, bolt = two_tenants
    key = f"jobs-test-{uuid.uuid4().hex}"
    message = jobs_actors.busy.send(acme, key)
    [letter] = await eventually(lambda: list_dead_letters(acme.slug))
    first, *retried = [
        tb.decode() for tb in jobs_actors.counters.lrange(f"{key}:tracebacks", 0, -1)
    ]
    assert first == "" and len(retried) == 2  # the first try, then max_retries=2
    for traceback in retried:  # one frame (Dramatiq's middleware), then the error
        assert traceback.count('  File "') == 1 and " in busy" not in traceback
        assert traceback.endswith("Retry: held by another attempt\n")
    assert letter["message_id"] == message.message_id
    assert letter["reason"] == "retries exhausted after 3 attempts"
    assert " in busy" in letter["traceback"]  # the dead letter shows where it came from
    assert letter["error"] == "Retry: held by another attempt"
    assert await list_dead_letters(bolt.slug) == []
    jobs_actors.counters.delete(f"{key}:tracebacks")


async def test_a_job_for_a_deleted_tenant_is_dead_lettered_an_unknown_ones_dropped(
    make_tenant: MakeTenant, worker: None, broker: dramatiq.Broker
) -> None:
    gone = await make_tenant("gone")
    await provisioning.delete_tenant(gone.slug)
    message = jobs_actors.flaky.send(gone, "never")
    [letter] = await eventually(lambda: list_dead_letters(gone.slug))
    assert letter["message_id"] == message.message_id
    assert letter["reason"] == f"tenant refused: tenant {gone.slug!r} is deleted"
    assert letter["retries"] == 0  # never retried
    assert jobs_actors.counters.get("never:attempts") is None

    # A tenant that does not exist has no dead letters to keep them in: dropped, with a log.
    nobody = f"ttnobody-{uuid.uuid4().hex[:8]}"
    jobs_actors.record.send(SimpleNamespace(slug=nobody, id=uuid.uuid4()), "x")
    await asyncio.to_thread(broker.join, "default", timeout=10_000)  # type: ignore[attr-defined]
    assert await list_dead_letters(nobody) == []
    assert jobs_actors.counters.get(dead_letter_key(nobody)) is None


async def test_the_actor_runs_directly_with_the_same_tenant_checks(
    two_tenants: tuple[TenantInfo, TenantInfo], make_tenant: MakeTenant
) -> None:
    acme, _ = two_tenants
    await jobs_actors.record(acme.slug, "direct")
    assert [r["note"] for r in await runs(acme)] == ["direct"]
    gone = await make_tenant("gone")
    await provisioning.suspend_tenant(gone.slug, "unpaid")
    from patone.core.work.jobs import TenantUnavailable, job_tenant_cache

    job_tenant_cache.invalidate()
    with pytest.raises(TenantUnavailable, match="suspended"):
        await jobs_actors.record(gone.slug, "no")


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_the_broker_works_over_a_unix_socket_url() -> None:
    with tempfile.TemporaryDirectory() as directory:
        socket = Path(directory) / "r.sock"
        server = subprocess.Popen(
            ["redis-server", "--port", "0", "--unixsocket", str(socket), "--save", ""],
            stdout=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while not socket.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            broker = configure_broker(f"unix://{socket}?db=0", set_global=False)
            jobs_actors.record.send_with_options(
                SimpleNamespace(slug="acme", id=uuid.uuid4()), args=("x",), broker=broker
            )
            assert broker.do_qsize("default") == 1  # type: ignore[attr-defined]
            assert broker.namespace == "patone"  # type: ignore[attr-defined]
            assert redis.Redis(unix_socket_path=str(socket)).keys("patone:*")
        finally:
            server.terminate()
            server.wait()


async def test_a_worker_that_leaves_mid_job_has_it_redelivered_to_another_worker(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, _ = two_tenants
    namespace = f"patone-test-{uuid.uuid4().hex[:10]}"
    broker = configure_broker(REDIS_URL, namespace=namespace, set_global=False)
    command = worker_command(
        threads=1, modules=["tests.core.work.jobs_actors"], namespace=namespace
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[3])}
    key = f"jobs-kill-{uuid.uuid4().hex}"
    first = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    second: subprocess.Popen[bytes] | None = None
    try:
        message = jobs_actors.slow.send_with_options(acme, args=(key, 60.0), broker=broker)

        async def started() -> bool:
            return bool(jobs_actors.counters.lrange(f"{key}:started", 0, -1))

        await eventually(started, timeout=30)
        assert jobs_actors.counters.lrange(f"{key}:started", 0, -1) == [str(first.pid).encode()]
        # Ctrl+C waits for the job under way; a second one leaves at once (as does a crash).
        first.send_signal(signal.SIGINT)
        assert first.stderr is not None
        for line in first.stderr:
            if "worker stopping" in line:
                break
        first.send_signal(signal.SIGINT)
        killed = time.monotonic()
        assert first.wait(timeout=10) == 1
        second = subprocess.Popen(command, env=env)
        rows = await eventually(lambda: runs(acme), timeout=45)
        redelivered = time.monotonic() - killed
        print(f"redelivered and completed {redelivered:.1f} s after the worker left")
        assert rows[0]["message_id"] == message.message_id
        assert rows[0]["pid"] == second.pid
        window = (HEARTBEAT_TIMEOUT_MS / 1000) + SWEEP_INTERVAL
        assert redelivered < min(30.0, window + 5)

        second.send_signal(signal.SIGTERM)  # graceful stop
        assert second.wait(timeout=40) == 0
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
        jobs_actors.counters.delete(f"{key}:started")
        _drop_namespace(namespace)


async def test_jobs_of_a_purged_company_never_run_or_dead_letter_under_a_new_one(
    two_tenants: tuple[TenantInfo, TenantInfo], broker: dramatiq.Broker, caplog: Any
) -> None:
    lima, other = two_tenants
    key = f"purged-{uuid.uuid4().hex[:8]}"
    jobs_actors.record.send(lima, "for ann@old-lima.example")
    jobs_actors.flaky.send(lima, key)  # would fail and dead-letter
    jobs_actors.record.send(other, "other's job")
    new = await purge_and_take_slug(lima)
    mine = jobs_actors.record.send(new, "new lima's job")
    stop = start_in_process_worker(broker, threads=2)
    try:
        await asyncio.to_thread(broker.join, "default", timeout=20_000)  # type: ignore[attr-defined]
    finally:
        await asyncio.to_thread(stop, 5000)
    assert [r["note"] for r in await runs(new)] == ["new lima's job"]
    assert [r["message_id"] for r in await runs(new)] == [mine.message_id]
    assert [r["note"] for r in await runs(other)] == ["other's job"]
    assert jobs_actors.counters.get(f"{key}:attempts") is None  # never ran
    assert await list_dead_letters(new.slug) == []
    assert "does not exist" not in caplog.text  # no `role "t_..._role" does not exist`


async def test_a_job_for_a_purged_company_ends_as_unavailable_and_leaves_no_keys(
    two_tenants: tuple[TenantInfo, TenantInfo], broker: dramatiq.Broker, redis_client: Any
) -> None:
    gone, other = two_tenants
    key = f"gone-{uuid.uuid4().hex[:8]}"
    jobs_actors.flaky.send(gone, key)
    await provisioning.delete_tenant(gone.slug)
    await provisioning.purge_tenant(gone.slug, force=True)
    jobs_actors.record.send(other, "still runs")
    stop = start_in_process_worker(broker, threads=2)
    try:
        await asyncio.to_thread(broker.join, "default", timeout=20_000)  # type: ignore[attr-defined]
    finally:
        await asyncio.to_thread(stop, 5000)
    assert [r["note"] for r in await runs(other)] == ["still runs"]
    assert jobs_actors.counters.get(f"{key}:attempts") is None
    assert await redis_client.keys(f"t:{gone.slug}:*") == []
    assert await list_dead_letters(None) == [] or all(
        letter["tenant"] != gone.slug for letter in await list_dead_letters(None)
    )


async def test_a_job_whose_company_is_purged_while_it_runs_ends_as_gone_not_a_database_error(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    gone, other = two_tenants
    with pytest.raises(TenantGone, match="purged while the job ran"):
        await jobs_actors.purged_midway(gone.slug)
    await jobs_actors.record(other.slug, "unaffected")
    assert [r["note"] for r in await runs(other)] == ["unaffected"]
