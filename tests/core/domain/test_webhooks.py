"""Outbound webhooks: partners receive each company's events, signed, once, retried, replayable.

Every request reaches a local receiver (pytest-httpserver) that checks it with the official
`standardwebhooks` package, the way a partner would.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import dramatiq
import pytest
from pytest_httpserver import HTTPServer
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from werkzeug import Request, Response

from patone.core.common.permissions import SYSTEM, PermissionDenied
from patone.core.domain import customers, webhooks
from patone.core.runtime.db import engine
from patone.core.runtime.errors import UserError
from patone.core.runtime.redis import get_redis
from patone.core.tables.webhooks import LoggedDelivery
from patone.core.work.jobs import list_dead_letters
from patone.core.work.relay import relay_tenant
from patone.plugins import config as plugins
from patone.plugins.secrets import SecretBox
from patone.tenants.isolation import tenant_transaction
from patone.tenants.registry import TenantInfo
from tests.conftest import actor_for
from tests.fakes import FakeDns
from tests.support import plugin_runtime, running_worker

ADMIN = actor_for("admin")


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    raw: bytes
    body: dict[str, Any]
    verified: bool


@dataclass
class Receiver:
    """A partner's endpoints: answers with the statuses queued per path (200 once they run
    out) and verifies every request with the secret it was given."""

    server: HTTPServer
    secrets: dict[str, str] = field(default_factory=dict)
    answers: dict[str, list[int]] = field(default_factory=dict)
    always: dict[str, int] = field(default_factory=dict)
    slow: dict[str, float] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        self.server.expect_request(path, method="POST").respond_with_handler(
            lambda request: self._handle(path, request)
        )
        return self.server.url_for(path)

    def _handle(self, path: str, request: Request) -> Response:
        time.sleep(self.slow.get(path, 0))
        raw = request.get_data()
        headers = dict(request.headers.items())
        try:
            Webhook(self.secrets[path]).verify(raw, headers)
            verified = True
        except (WebhookVerificationError, KeyError):
            verified = False
        with self.lock:
            self.received.append(Received(path, headers, raw, json.loads(raw), verified))
            queued = self.answers.get(path)
            status = queued.pop(0) if queued else self.always.get(path, 200)
        return Response(f"answer {status}", status=status)

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]


@pytest.fixture
def receiver(httpserver: HTTPServer) -> Receiver:
    return Receiver(httpserver)


@pytest.fixture
def runtime() -> Iterator[plugins.PluginRuntime]:
    """Plugins with no providers; the local receiver's private address allowed."""
    with plugin_runtime(entry_points=False, timeout=2, secret="webhook-test-key") as current:
        yield current


@pytest.fixture
async def broker() -> AsyncIterator[dramatiq.Broker]:
    async with running_worker() as broker:
        yield broker


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    """Shorten the retry schedule to `n` retries a fraction of a second apart."""

    def shorten(n: int) -> None:
        monkeypatch.setattr(webhooks, "RETRY_SCHEDULE", (0.2,) * n)

    return shorten


async def until(condition: Callable[[], Any], seconds: float = 20) -> None:
    for _ in range(int(seconds * 20)):
        if await condition() if asyncio.iscoroutinefunction(condition) else condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out waiting")


async def endpoint_for(
    tenant: TenantInfo, receiver: Receiver, path: str, **data: Any
) -> webhooks.EndpointWithSecret:
    created = await webhooks.create_endpoint(tenant, ADMIN, {"url": receiver.url(path), **data})
    receiver.secrets[path] = created.secret
    return created


async def deliveries(tenant: TenantInfo, **filters: Any) -> list[LoggedDelivery]:
    return (await webhooks.list_deliveries(tenant, ADMIN, **filters)).rows


async def settled(tenant: TenantInfo, delivery_id: int, status: str) -> LoggedDelivery:
    async def done() -> bool:
        row = await webhooks.get_delivery(tenant, ADMIN, delivery_id)
        return bool(row.delivery.status == status)

    await until(done)
    return await webhooks.get_delivery(tenant, ADMIN, delivery_id)


async def test_an_event_reaches_its_company_endpoint_once_signed_even_when_relayed_twice(
    two_tenants: tuple[TenantInfo, TenantInfo],
    runtime: plugins.PluginRuntime,
    broker: dramatiq.Broker,
    receiver: Receiver,
) -> None:
    acme, bolt = two_tenants
    await endpoint_for(acme, receiver, "/acme")
    await endpoint_for(bolt, receiver, "/bolt")
    customer = await customers.create_customer(acme, SYSTEM, {"name": "Ann"})

    await relay_tenant(acme, get_redis(), broker=broker)
    async with tenant_transaction(acme):  # the relay died before committing: published again
        await engine.execute("UPDATE outbox SET published_at = NULL")
    await relay_tenant(acme, get_redis(), broker=broker)
    await until(lambda: receiver.at("/acme"))
    [delivery] = await deliveries(acme)
    await settled(acme, delivery.delivery.id, "succeeded")
    async with tenant_transaction(acme):  # and once more after it was delivered
        await engine.execute("UPDATE outbox SET published_at = NULL")
    await relay_tenant(acme, get_redis(), broker=broker)
    await relay_tenant(bolt, get_redis(), broker=broker)
    await asyncio.sleep(1.5)

    [got] = receiver.at("/acme")
    assert got.verified
    assert got.headers["Webhook-Id"] == delivery.delivery.message_id
    assert got.headers["Content-Type"] == "application/json"
    assert got.body["type"] == "customer.created"
    assert got.body["data"]["tenant"] == acme.slug
    assert got.body["data"]["entity_id"] == str(customer.id)
    assert receiver.at("/bolt") == []  # the other company's endpoint never hears of it
    assert await deliveries(bolt) == []
    [row] = await deliveries(acme)
    sent = row.delivery
    assert (sent.status, sent.attempts, sent.response_status) == ("succeeded", 1, 200)
    assert [a.trigger for a in row.attempt_log] == ["event"]


async def test_a_failing_receiver_gets_retries_until_it_answers_and_every_attempt_is_logged(
    two_tenants: tuple[TenantInfo, TenantInfo],
    runtime: plugins.PluginRuntime,
    broker: dramatiq.Broker,
    receiver: Receiver,
    fast_retries: Callable[[int], None],
) -> None:
    acme, _ = two_tenants
    fast_retries(4)
    created = await endpoint_for(acme, receiver, "/flaky")
    receiver.answers["/flaky"] = [500, 500]
    await customers.create_customer(acme, SYSTEM, {"name": "Ann"})
    await relay_tenant(acme, get_redis(), broker=broker)

    await until(lambda: len(receiver.at("/flaky")) >= 1)
    [delivery] = await deliveries(acme)
    done = await settled(acme, delivery.delivery.id, "succeeded")
    assert done.delivery.attempts == 3
    assert [(a.attempt, a.trigger, a.response_status) for a in done.attempt_log] == [
        (1, "event", 500),
        (2, "retry", 500),
        (3, "retry", 200),
    ]
    assert done.attempt_log[0].response_body == "answer 500"
    assert done.attempt_log[0].error == "the endpoint answered 500"
    got = receiver.at("/flaky")
    assert len(got) == 3 and all(r.verified for r in got)
    assert {r.headers["Webhook-Id"] for r in got} == {delivery.delivery.message_id}
    endpoint = await webhooks.get_endpoint(acme, ADMIN, created.endpoint.id)
    assert endpoint.failure_streak == 0 and endpoint.last_success_at is not None


async def test_a_receiver_that_keeps_failing_ends_dead_and_a_replay_delivers_it(
    two_tenants: tuple[TenantInfo, TenantInfo],
    runtime: plugins.PluginRuntime,
    broker: dramatiq.Broker,
    receiver: Receiver,
    fast_retries: Callable[[int], None],
) -> None:
    acme, _ = two_tenants
    fast_retries(2)
    created = await endpoint_for(acme, receiver, "/down")
    receiver.always["/down"] = 503
    await customers.create_customer(acme, SYSTEM, {"name": "Ann"})
    await relay_tenant(acme, get_redis(), broker=broker)

    await until(lambda: receiver.at("/down"))
    [delivery] = await deliveries(acme)
    dead = await settled(acme, delivery.delivery.id, "dead")
    assert dead.delivery.attempts == 3 and dead.delivery.next_attempt_at is None
    assert [a.response_status for a in dead.attempt_log] == [503, 503, 503]
    endpoint = await webhooks.get_endpoint(acme, ADMIN, created.endpoint.id)
    assert endpoint.failure_streak == 3 and endpoint.failing_since is not None
    assert endpoint.enabled  # one dead delivery does not turn an endpoint off
    letters = await list_dead_letters(acme.slug, client=get_redis())
    assert [letter["actor"] for letter in letters] == ["patone.webhooks.deliver"]
    assert [d.delivery.id for d in await deliveries(acme, status="dead")] == [delivery.delivery.id]

    receiver.always["/down"] = 204  # the partner fixed their side
    replayed = await webhooks.replay_delivery(acme, ADMIN, delivery.delivery.id, broker=broker)
    assert replayed.delivery.status == "pending"
    done = await settled(acme, delivery.delivery.id, "succeeded")
    assert done.delivery.attempts == 4
    assert [a.trigger for a in done.attempt_log] == ["event", "retry", "retry", "replay"]
    got = receiver.at("/down")
    assert len(got) == 4 and all(r.verified for r in got)
    assert {r.headers["Webhook-Id"] for r in got} == {delivery.delivery.message_id}
    assert await deliveries(acme, status="dead") == []


async def test_private_addresses_are_refused_on_save_and_again_at_send_time(
    two_tenants: tuple[TenantInfo, TenantInfo],
    runtime: plugins.PluginRuntime,
    broker: dramatiq.Broker,
    receiver: Receiver,
) -> None:
    acme, _ = two_tenants
    created = await endpoint_for(acme, receiver, "/inside")  # allowed while it was saved
    runtime.allow_private_urls = False
    with pytest.raises(UserError) as refused:
        await webhooks.create_endpoint(acme, ADMIN, {"url": receiver.url("/other")})
    assert (refused.value.code, refused.value.field) == ("forbidden_address", "url")
    with pytest.raises(UserError) as refused:
        await webhooks.update_endpoint(
            acme, ADMIN, created.endpoint.id, {"url": "http://169.254.169.254/latest"}
        )
    assert refused.value.code == "forbidden_address"

    # The host now points inside the network (as a DNS change could do): nothing is sent.
    test = await webhooks.send_test_event(acme, ADMIN, created.endpoint.id, broker=broker)
    dead = await settled(acme, test.delivery.id, "dead")
    assert dead.delivery.attempts == 1 and dead.attempt_log[0].response_status is None
    assert dead.delivery.error.startswith("refused:") and "private or local" in dead.delivery.error
    await asyncio.sleep(0.3)
    assert receiver.at("/inside") == []


@pytest.mark.parametrize(
    "url",
    [
        "http://100.100.100.200/latest/meta-data",  # carrier-grade NAT (cloud metadata)
        "http://[64:ff9b::7f00:1]/hook",  # NAT64 wrapping loopback
        "http://[2002:7f00:1::1]/hook",  # 6to4 wrapping loopback
        "http://[::ffff:169.254.169.254]/hook",  # IPv4-mapped link-local
        "http://0.0.0.0/hook",  # unspecified
        "http://mixed.partner.example/hook",  # one public and one private answer
    ],
)
async def test_endpoints_outside_the_public_internet_are_refused(
    two_tenants: tuple[TenantInfo, TenantInfo],
    runtime: plugins.PluginRuntime,
    dns: FakeDns,
    url: str,
) -> None:
    acme, bolt = two_tenants
    dns.answer("mixed.partner.example", "93.184.216.34,10.1.2.3")
    created = await webhooks.create_endpoint(acme, ADMIN, {"url": "https://example.com/hook"})
    runtime.allow_private_urls = False
    with pytest.raises(UserError) as refused:
        await webhooks.create_endpoint(acme, ADMIN, {"url": url})
    assert (refused.value.code, refused.value.field) == ("forbidden_address", "url")
    with pytest.raises(UserError):
        await webhooks.update_endpoint(acme, ADMIN, created.endpoint.id, {"url": url})
    assert [e.url for e in await webhooks.list_endpoints(acme, ADMIN)] == [
        "https://example.com/hook"
    ]
    assert await webhooks.list_endpoints(bolt, ADMIN) == []


async def test_a_name_that_turns_to_carrier_grade_nat_after_saving_gets_nothing(
    two_tenants: tuple[TenantInfo, TenantInfo],
    runtime: plugins.PluginRuntime,
    broker: dramatiq.Broker,
    dns: FakeDns,
) -> None:
    acme, _ = two_tenants
    runtime.allow_private_urls = False
    dns.answer("hooks.partner.example", "93.184.216.34", "100.100.100.200")  # rebinding
    created = await webhooks.create_endpoint(
        acme, ADMIN, {"url": "http://hooks.partner.example/in"}
    )
    test = await webhooks.send_test_event(acme, ADMIN, created.endpoint.id, broker=broker)
    dead = await settled(acme, test.delivery.id, "dead")
    assert dead.delivery.attempts == 1 and dead.attempt_log[0].response_status is None
    assert "carrier-grade NAT" in dead.delivery.error
    assert dns.lookups["hooks.partner.example"] == 2  # once when saved, once to send


async def test_an_endpoint_gets_only_the_event_types_it_asked_for(
    two_tenants: tuple[TenantInfo, TenantInfo],
    runtime: plugins.PluginRuntime,
    broker: dramatiq.Broker,
    receiver: Receiver,
) -> None:
    acme, _ = two_tenants
    await endpoint_for(acme, receiver, "/updates", event_types=["customer.updated"])
    await endpoint_for(acme, receiver, "/customers", event_types=["customer.*"])
    await endpoint_for(acme, receiver, "/requests", event_types=["request.*"])
    off = await endpoint_for(acme, receiver, "/off", enabled=False)
    customer = await customers.create_customer(acme, SYSTEM, {"name": "Ann"})
    await customers.update_customer(acme, SYSTEM, customer.id, {"notes": "VIP"})
    await relay_tenant(acme, get_redis(), broker=broker)

    await until(lambda: len(receiver.at("/customers")) == 2 and receiver.at("/updates"))
    await asyncio.sleep(0.5)
    assert [r.body["type"] for r in receiver.at("/updates")] == ["customer.updated"]
    assert sorted(r.body["type"] for r in receiver.at("/customers")) == [
        "customer.created",
        "customer.updated",
    ]
    assert receiver.at("/requests") == [] and receiver.at("/off") == []
    assert await deliveries(acme, endpoint_id=off.endpoint.id) == []
    assert all(r.verified for r in receiver.received)

    with pytest.raises(UserError) as refused:
        await webhooks.create_endpoint(
            acme, ADMIN, {"url": receiver.url("/x"), "event_types": ["Customer Created"]}
        )
    assert refused.value.field == "event_types.0"
    assert refused.value.code == "invalid_choice"


async def test_an_endpoint_subscribes_only_to_event_types_we_send(
    two_tenants: tuple[TenantInfo, TenantInfo],
    runtime: plugins.PluginRuntime,
    receiver: Receiver,
) -> None:
    acme, bolt = two_tenants
    refused_types = [
        ["request.assigned", "request.teleported"],  # well-formed, but no such event
        ["parcel.*"],  # no such family
        ["webhook.test"],  # sent on demand, whatever the endpoint takes
    ]
    for event_types in refused_types:
        with pytest.raises(UserError) as refused:
            await webhooks.create_endpoint(
                acme, ADMIN, {"url": receiver.url("/x"), "event_types": event_types}
            )
        assert refused.value.code == "invalid_choice"
        assert refused.value.field == f"event_types.{len(event_types) - 1}"
        assert event_types[-1] in refused.value.message
    assert await webhooks.list_endpoints(acme, ADMIN) == []

    kept = await endpoint_for(acme, receiver, "/y", event_types=["offer.expired", "driver.*"])
    with pytest.raises(UserError) as refused:
        await webhooks.update_endpoint(
            acme, ADMIN, kept.endpoint.id, {"event_types": ["customer.deleted"]}
        )
    assert (refused.value.code, refused.value.field) == ("invalid_choice", "event_types.0")
    endpoint = await webhooks.get_endpoint(acme, ADMIN, kept.endpoint.id)
    assert endpoint.event_types == ["driver.*", "offer.expired"]
    assert await webhooks.list_endpoints(bolt, ADMIN) == []


async def test_the_secret_is_shown_once_sealed_at_rest_and_rotation_signs_with_both(
    two_tenants: tuple[TenantInfo, TenantInfo],
    runtime: plugins.PluginRuntime,
    broker: dramatiq.Broker,
    receiver: Receiver,
) -> None:
    acme, _ = two_tenants
    created = await endpoint_for(acme, receiver, "/keys")
    assert created.secret.startswith("whsec_")
    assert len(base64.b64decode(created.secret.removeprefix("whsec_"))) == 24
    listed = await webhooks.list_endpoints(acme, ADMIN)
    assert listed == [created.endpoint]
    assert not any("secret" in key and key.endswith("secret") for key in listed[0].as_dict())
    async with tenant_transaction(acme):
        stored = await engine.fetch("SELECT secret::text AS s FROM webhook_endpoints")
    assert created.secret not in stored[0]["s"] and "$encrypted" in stored[0]["s"]

    rotated = await webhooks.rotate_secret(acme, ADMIN, created.endpoint.id)
    assert rotated.secret != created.secret
    assert rotated.endpoint.previous_secret_expires_at is not None
    test = await webhooks.send_test_event(acme, ADMIN, created.endpoint.id, broker=broker)
    await settled(acme, test.delivery.id, "succeeded")
    [got] = receiver.at("/keys")
    assert got.body["type"] == "webhook.test"
    assert len(got.headers["Webhook-Signature"].split(" ")) == 2
    for secret in (created.secret, rotated.secret):  # a receiver still on the old one is fine
        Webhook(secret).verify(got.raw, got.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(webhooks.new_secret()).verify(got.raw, got.headers)


async def test_only_people_who_manage_settings_touch_webhooks(
    two_tenants: tuple[TenantInfo, TenantInfo], runtime: plugins.PluginRuntime
) -> None:
    acme, bolt = two_tenants
    dispatcher = actor_for("dispatcher")
    with pytest.raises(PermissionDenied):
        await webhooks.create_endpoint(acme, dispatcher, {"url": "https://example.com/hook"})
    with pytest.raises(PermissionDenied):
        await webhooks.list_deliveries(acme, dispatcher)
    created = await webhooks.create_endpoint(acme, ADMIN, {"url": "https://example.com/hook"})
    with pytest.raises(UserError) as missing:  # ids are per company
        await webhooks.get_endpoint(bolt, ADMIN, created.endpoint.id)
    assert missing.value.code == "not_found"
    await webhooks.delete_endpoint(acme, ADMIN, created.endpoint.id)
    assert await webhooks.list_endpoints(acme, ADMIN) == []


async def test_copies_of_a_delivery_job_running_at_once_send_one_request(
    two_tenants: tuple[TenantInfo, TenantInfo],
    runtime: plugins.PluginRuntime,
    broker: dramatiq.Broker,
    receiver: Receiver,
) -> None:
    acme, _ = two_tenants
    created = await endpoint_for(acme, receiver, "/slow")
    receiver.slow["/slow"] = 0.5
    test = await webhooks.send_test_event(acme, ADMIN, created.endpoint.id, broker=broker)
    for _ in range(2):  # as a redelivered or re-queued message would
        webhooks.deliver_webhook.send_with_options(acme, args=(test.delivery.id, 0), broker=broker)
    await settled(acme, test.delivery.id, "succeeded")
    await asyncio.sleep(1.5)
    assert len(receiver.at("/slow")) == 1
    done = await webhooks.get_delivery(acme, ADMIN, test.delivery.id)
    assert done.delivery.attempts == 1 and done.attempt_log[0].trigger == "test"


async def test_secrets_are_resealed_under_a_new_server_key(
    two_tenants: tuple[TenantInfo, TenantInfo], runtime: plugins.PluginRuntime
) -> None:
    acme, _ = two_tenants
    created = await webhooks.create_endpoint(acme, ADMIN, {"url": "https://example.com/hook"})
    await webhooks.rotate_secret(acme, ADMIN, created.endpoint.id)
    runtime.box = SecretBox("the-next-key", fallbacks=["webhook-test-key"])
    assert await webhooks.reseal_secrets(acme) == 1
    runtime.box = SecretBox("the-next-key")  # the old key is gone: both secrets still open
    async with tenant_transaction(acme):
        [row] = await engine.fetch(
            "SELECT secret::text AS s, previous_secret::text AS p FROM webhook_endpoints"
        )
    assert runtime.box.open(json.loads(row["s"])).startswith("whsec_")
    assert runtime.box.open(json.loads(row["p"])) == created.secret


async def test_a_delivery_whose_job_was_lost_is_sent_by_the_sweep(
    two_tenants: tuple[TenantInfo, TenantInfo],
    runtime: plugins.PluginRuntime,
    broker: dramatiq.Broker,
    receiver: Receiver,
) -> None:
    acme, bolt = two_tenants
    await endpoint_for(acme, receiver, "/lost")
    async with tenant_transaction(acme):  # written by a fan-out whose queueing never happened
        await engine.execute(
            "INSERT INTO webhook_deliveries (endpoint_id, message_id, event_id, event_type, "
            "payload) SELECT id, 'msg_lost', 99, 'customer.created', "
            '\'{"type": "customer.created", "data": {}}\'::jsonb FROM webhook_endpoints'
        )
    assert await webhooks.sweep_tenant(acme.slug) == 0  # too fresh to be called lost
    async with tenant_transaction(acme):
        await engine.execute(
            "UPDATE webhook_deliveries SET updated_at = now() - interval '20 minutes'"
        )
    assert await webhooks.sweep_tenant(acme.slug) == 1
    assert await webhooks.sweep_tenant(bolt.slug) == 0
    await until(lambda: receiver.at("/lost"))
    [row] = await deliveries(acme)
    await settled(acme, row.delivery.id, "succeeded")
    assert await webhooks.sweep_all() >= 2  # one sweep queued per active company
