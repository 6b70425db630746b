"""Push to people's devices: a key per company, subscriptions per person, gone devices pruned."""

from __future__ import annotations

import asyncio

import pytest

from patone.core.common.permissions import SYSTEM
from patone.core.domain import push
from patone.core.runtime.errors import NotFound, UserError, ValidationFailed
from patone.plugins import config as plugins
from patone.plugins.types import Delivery, DeliveryFailed
from patone.tenants.registry import TenantInfo
from tests.conftest import MakeTenant, actor_for
from tests.plugins.builtin.webpush_service import (  # noqa: F401 (fixtures)
    PushService,
    push_runtime,
    push_service,
    push_tls,
)

SAM = actor_for("dispatcher", user_id=7)
KIM = actor_for("admin", user_id=8)


async def send(tenant: TenantInfo, owner_id: int = 7, **changes: str) -> list[Delivery]:
    fields = {
        "title": "New job",
        "body": "Jump start at Main St 4",
        "url": "/admin/requests/9",
        "tag": "request.created:9",
        "message_id": "notification-x-1",
        **changes,
    }
    return await push.send_to_owner(tenant, "user", owner_id, **fields)


async def test_each_company_gets_its_own_key_made_once(
    make_tenant: MakeTenant,
    push_runtime: plugins.PluginRuntime,  # noqa: F811
) -> None:
    acme, bolt = await make_tenant("acme"), await make_tenant("bolt")
    # Pages opened at the same moment must not each make (and overwrite) a key.
    keys = await asyncio.gather(*(push.vapid_public_key(acme) for _ in range(5)))
    assert len(set(keys)) == 1 and len(keys[0]) == 87  # 65 bytes, base64url
    assert await push.vapid_public_key(acme) == keys[0]
    assert await push.vapid_public_key(bolt) != keys[0]


async def test_a_persons_devices_get_the_message_and_a_gone_one_is_pruned(
    two_tenants: tuple[TenantInfo, TenantInfo],
    push_runtime: plugins.PluginRuntime,  # noqa: F811
    push_service: PushService,  # noqa: F811
) -> None:
    acme, _ = two_tenants
    key = await push.vapid_public_key(acme)
    phone = push_service.subscribe(key)
    laptop = push_service.subscribe(key, answer=410)  # unsubscribed in the browser since
    await push.register_subscription(acme, SAM, {**phone, "user_agent": "Android Chrome"})
    await push.register_subscription(acme, SAM, laptop)
    assert await send(acme, owner_id=8) == []  # Kim has no device

    deliveries = await send(acme)
    assert sorted(d.status for d in deliveries) == ["expired", "sent"]
    [received] = push_service.received
    assert received.device == push_service.device(phone["endpoint"]).token
    assert received.payload == {
        "title": "New job",
        "body": "Jump start at Main St 4",
        "url": "/admin/requests/9",
        "tag": "request.created:9",
        "id": "notification-x-1",
    }
    [left] = await push.list_subscriptions(acme, SAM)
    assert left.endpoint == phone["endpoint"] and left.user_agent == "Android Chrome"
    assert left.last_used_at is not None


async def test_a_failing_push_service_raises_so_the_job_retries(
    two_tenants: tuple[TenantInfo, TenantInfo],
    push_runtime: plugins.PluginRuntime,  # noqa: F811
    push_service: PushService,  # noqa: F811
) -> None:
    acme, _ = two_tenants
    broken = push_service.subscribe(await push.vapid_public_key(acme), answer=500)
    await push.register_subscription(acme, SAM, broken)
    with pytest.raises(DeliveryFailed) as caught:
        await send(acme)
    assert not caught.value.permanent and not caught.value.ambiguous
    assert "500" in str(caught.value)
    [kept] = await push.list_subscriptions(acme, SAM)  # a failing service is not a gone device
    assert kept.last_used_at is None
    # One device taking it is enough: the failing one is logged, not retried.
    await push.register_subscription(
        acme, SAM, push_service.subscribe(await push.vapid_public_key(acme))
    )
    assert [d.status for d in await send(acme)] == ["sent"]


async def test_a_company_that_turned_push_off_fails_for_good(
    two_tenants: tuple[TenantInfo, TenantInfo],
    push_runtime: plugins.PluginRuntime,  # noqa: F811
    push_service: PushService,  # noqa: F811
) -> None:
    acme, _ = two_tenants
    device = push_service.subscribe(await push.vapid_public_key(acme))
    await push.register_subscription(acme, SAM, device)
    await plugins.configure_plugin(acme, KIM, "push-webpush", enabled=False)
    with pytest.raises(DeliveryFailed) as caught:
        await send(acme)
    assert caught.value.permanent and push_service.received == []


async def test_a_device_belongs_to_one_person_in_one_company(
    two_tenants: tuple[TenantInfo, TenantInfo],
    push_runtime: plugins.PluginRuntime,  # noqa: F811
    push_service: PushService,  # noqa: F811
) -> None:
    acme, bolt = two_tenants
    device = push_service.subscribe(await push.vapid_public_key(acme))
    await push.register_subscription(acme, SAM, device)
    # Bolt's user 7 is someone else: Acme's device is neither listed nor removable there.
    assert await push.list_subscriptions(bolt, SAM) == []
    with pytest.raises(NotFound):
        await push.unregister_subscription(bolt, SAM, device["endpoint"])
    assert await send(bolt) == []
    # Nor can Kim remove Sam's device; signing in as Kim on that browser moves it to Kim.
    with pytest.raises(NotFound):
        await push.unregister_subscription(acme, KIM, device["endpoint"])
    assert len(await push.list_subscriptions(acme, SAM)) == 1
    await push.register_subscription(acme, KIM, device)
    assert await push.list_subscriptions(acme, SAM) == []
    assert [d.endpoint for d in await push.list_subscriptions(acme, KIM)] == [device["endpoint"]]
    await push.unregister_subscription(acme, KIM, device["endpoint"])
    assert await push.list_subscriptions(acme, KIM) == []
    with pytest.raises(UserError) as caught:
        await push.list_subscriptions(acme, SYSTEM)
    assert caught.value.code == "forbidden"


async def test_a_subscription_is_checked_field_by_field(
    two_tenants: tuple[TenantInfo, TenantInfo],
    push_runtime: plugins.PluginRuntime,  # noqa: F811
) -> None:
    acme, _ = two_tenants
    with pytest.raises(ValidationFailed) as caught:
        await push.register_subscription(
            acme,
            SAM,
            {"endpoint": "http://push.example.com/x", "keys": {"p256dh": "AAAA", "auth": "!"}},
        )
    assert {(e.field, e.code) for e in caught.value.errors} == {
        ("endpoint", "invalid"),
        ("keys.p256dh", "invalid"),
        ("keys.auth", "invalid"),
    }
    with pytest.raises(ValidationFailed) as caught:
        await push.register_subscription(acme, SAM, {"endpoint": "https://push.example.com/x"})
    assert {(e.field, e.code) for e in caught.value.errors} == {
        ("keys.p256dh", "required"),
        ("keys.auth", "required"),
    }
    # 65 bytes that are not a point on the curve.
    not_a_point = "BA" + "A" * 85
    with pytest.raises(ValidationFailed) as caught:
        await push.register_subscription(
            acme,
            SAM,
            {
                "endpoint": "https://push.example.com/x",
                "keys": {"p256dh": not_a_point, "auth": "AAAAAAAAAAAAAAAAAAAAAA"},
            },
        )
    assert [(e.field, e.message) for e in caught.value.errors] == [
        ("keys.p256dh", "is not a point on the P-256 curve")
    ]


async def test_an_endpoint_at_a_private_address_is_refused(
    two_tenants: tuple[TenantInfo, TenantInfo],
    push_runtime: plugins.PluginRuntime,  # noqa: F811
    push_service: PushService,  # noqa: F811
) -> None:
    acme, _ = two_tenants
    device = push_service.subscribe(await push.vapid_public_key(acme))  # https://localhost:...
    await push.register_subscription(acme, SAM, device)  # allowed while the operator allows it
    push_runtime.allow_private_urls = False
    with pytest.raises(ValidationFailed) as caught:
        await push.register_subscription(acme, KIM, push_service.subscribe("x"))
    assert [(e.field, e.code) for e in caught.value.errors] == [("endpoint", "forbidden_address")]
    # An endpoint stored earlier is checked again before each send: nothing leaves.
    with pytest.raises(DeliveryFailed) as failed:
        await send(acme)
    assert failed.value.permanent and "private or local address" in str(failed.value)
    assert push_service.received == []
