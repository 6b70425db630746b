"""The same jobs on RabbitMQ (BROKER_URL=amqp://...): tenant actors, retries, dead letters.

Needs a RabbitMQ server: RABBITMQ_URL, or the machine's on 127.0.0.1:5672 (CI starts it).
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator

import dramatiq
import pytest

from patone.core.runtime.redis import get_redis
from patone.core.work.jobs import broker_redis, configure_broker, list_dead_letters
from patone.core.work.worker import start_in_process_worker
from patone.tenants.registry import TenantInfo
from tests.conftest import REDIS_URL
from tests.core.work import jobs_actors
from tests.core.work.test_jobs import eventually, runs


def _rabbitmq_url() -> str | None:
    if os.environ.get("RABBITMQ_URL"):
        return os.environ["RABBITMQ_URL"]
    with socket.socket() as probe:
        probe.settimeout(0.5)
        if probe.connect_ex(("127.0.0.1", 5672)) == 0:
            return "amqp://guest:guest@127.0.0.1:5672/%2F"
    return None


RABBITMQ_URL = _rabbitmq_url()
pytestmark = pytest.mark.skipif(
    RABBITMQ_URL is None, reason="no RabbitMQ here (set RABBITMQ_URL; CI runs one)"
)


@pytest.fixture
async def rabbit_worker() -> AsyncIterator[dramatiq.Broker]:
    broker = configure_broker(REDIS_URL, broker_url=RABBITMQ_URL)
    assert type(broker).__name__ == "RabbitmqBroker"
    broker.flush_all()
    stop = start_in_process_worker(broker, threads=2)
    yield broker
    await asyncio.to_thread(stop, 5000)
    broker.flush_all()
    broker.close()


async def test_tenant_jobs_run_retry_and_dead_letter_on_rabbitmq(
    two_tenants: tuple[TenantInfo, TenantInfo], rabbit_worker: dramatiq.Broker
) -> None:
    acme, bolt = two_tenants
    message = jobs_actors.record.send(acme, "over amqp")
    rows = await eventually(lambda: runs(acme))
    assert [(r["message_id"], r["note"]) for r in rows] == [(message.message_id, "over amqp")]
    assert await runs(bolt) == []

    key = f"rabbit-{uuid.uuid4().hex[:8]}"
    failing = jobs_actors.flaky.send(bolt, key)
    letters = await eventually(lambda: list_dead_letters(bolt.slug), timeout=15)
    assert [entry["message_id"] for entry in letters] == [failing.message_id]
    assert int(jobs_actors.counters.get(f"{key}:attempts") or 0) == 3  # 1 + 2 retries
    assert await list_dead_letters(acme.slug) == []
    assert broker_redis(rabbit_worker).ping()
    await get_redis().delete(f"t:{bolt.slug}:dead_letters")
