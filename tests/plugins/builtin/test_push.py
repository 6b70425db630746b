"""Web Push through pywebpush to a local push service that verifies VAPID and decrypts."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from patone.core.domain import push
from patone.core.runtime.db import engine
from patone.core.runtime.errors import ValidationFailed
from patone.plugins import config as plugins
from patone.plugins.builtin.push_webpush import MAX_PAYLOAD, payload, topic
from patone.plugins.secrets import MASK
from patone.plugins.types import Delivery, DeliveryFailed, PushMessage
from patone.tenants.isolation import tenant_transaction
from patone.tenants.registry import TenantInfo
from tests.conftest import actor_for
from tests.plugins.builtin.webpush_service import (  # noqa: F401 (fixtures)
    PushService,
    push_runtime,
    push_service,
    push_tls,
)

ADMIN = actor_for("admin")
# A P-256 key pair as `web-push generate-vapid-keys` prints one (raw scalar, uncompressed point).
PRIVATE = "rgNYpW0ToRCZYRM9uKV5U3rFeiTjIVdeQLi4-SxeAMc"
PUBLIC = "BA7W-GsR-jN4iCsOuBtNGJ3hlcp2GU7yc_ewhRXmZpeypyHjmnjIk5xeLW6wDeHXUFhpR-M3iraD21YZanbF7ps"


def message(subscription: dict[str, object], **changes: object) -> PushMessage:
    keys = subscription["keys"]
    assert isinstance(keys, dict)
    fields: dict[str, object] = {
        "endpoint": subscription["endpoint"],
        "p256dh": keys["p256dh"],
        "auth": keys["auth"],
        "title": "Your driver is on the way",
        "body": "Sam, white tow truck, about 12 minutes",
        "url": "https://acme.example.com/requests/42",
        "tag": "request.en_route:42",
        "message_id": "notification-acme-7",
    }
    return PushMessage(**{**fields, **changes})  # type: ignore[arg-type]


async def test_a_push_is_signed_with_the_company_key_and_only_the_device_can_read_it(
    two_tenants: tuple[TenantInfo, TenantInfo],
    push_runtime: plugins.PluginRuntime,  # noqa: F811
    push_service: PushService,  # noqa: F811
) -> None:
    acme, _ = two_tenants
    subscription = push_service.subscribe(await push.vapid_public_key(acme))
    answer = await plugins.call_first(acme, "send_push", message=message(subscription))
    assert answer is not None and answer.plugin == "push-webpush", push_service.refusals
    assert isinstance(answer.value, Delivery) and answer.value.status == "sent"
    assert answer.value.provider_id.startswith(push_service.server.url_for("/m/"))
    [received] = push_service.received
    assert received.payload == {
        "title": "Your driver is on the way",
        "body": "Sam, white tow truck, about 12 minutes",
        "url": "https://acme.example.com/requests/42",
        "tag": "request.en_route:42",
        "id": "notification-acme-7",
    }
    assert received.headers["Ttl"] == "3600" and received.headers["Urgency"] == "normal"
    assert received.headers["Topic"] == topic("request.en_route:42")
    assert len(received.headers["Topic"]) <= 32
    # No subject configured: the company's own host stands in.
    assert received.claims["sub"] == f"mailto:push@{acme.slug}.localhost"
    # The private key is sealed at rest and masked when an admin reads the settings.
    async with tenant_transaction(acme):
        [row] = await engine.fetch(
            "SELECT config FROM plugin_configs WHERE plugin = 'push-webpush'"
        )
    stored = json.loads(row["config"])
    assert "$encrypted" in stored["vapid_private_key"]
    states = {s.name: s for s in await plugins.plugin_states(acme, ADMIN)}
    assert states["push-webpush"].enabled and states["push-webpush"].default_enabled
    assert states["push-webpush"].config["vapid_private_key"] == MASK


async def test_a_push_signed_with_another_key_is_refused_by_the_push_service(
    two_tenants: tuple[TenantInfo, TenantInfo],
    push_runtime: plugins.PluginRuntime,  # noqa: F811
    push_service: PushService,  # noqa: F811
) -> None:
    acme, bolt = two_tenants
    # Subscribed with Bolt's key, pushed with Acme's: the push service says 403, for good.
    assert await push.vapid_public_key(acme) != await push.vapid_public_key(bolt)
    subscription = push_service.subscribe(await push.vapid_public_key(bolt))
    answer = await plugins.call_first(
        acme, "send_push", fall_through=False, message=message(subscription)
    )
    assert answer is not None and isinstance(answer.exception, DeliveryFailed)
    assert answer.exception.permanent
    assert "refused the VAPID signature" in str(answer.exception)
    assert push_service.received == []


@pytest.mark.parametrize(
    ("status", "expired", "permanent"),
    [(410, True, False), (404, True, False), (429, False, False), (500, False, False),
     (503, False, False), (400, False, True), (413, False, True)],
)  # fmt: skip
async def test_what_the_push_service_answers_decides_expired_retry_or_refused(
    two_tenants: tuple[TenantInfo, TenantInfo],
    push_runtime: plugins.PluginRuntime,  # noqa: F811
    push_service: PushService,  # noqa: F811
    status: int,
    expired: bool,
    permanent: bool,
) -> None:
    acme, _ = two_tenants
    subscription = push_service.subscribe(await push.vapid_public_key(acme), answer=status)
    answer = await plugins.call_first(
        acme, "send_push", fall_through=False, message=message(subscription)
    )
    assert answer is not None
    if expired:
        assert answer.value == Delivery(
            provider="push-webpush", status="expired", provider_id=str(status)
        )
        return
    assert isinstance(answer.exception, DeliveryFailed)
    assert answer.exception.permanent is permanent and not answer.exception.ambiguous
    assert str(status) in str(answer.exception)


async def test_a_redirect_is_not_followed(
    two_tenants: tuple[TenantInfo, TenantInfo],
    push_runtime: plugins.PluginRuntime,  # noqa: F811
    push_service: PushService,  # noqa: F811
) -> None:
    acme, _ = two_tenants
    subscription = push_service.subscribe(await push.vapid_public_key(acme), answer=307)
    answer = await plugins.call_first(
        acme, "send_push", fall_through=False, message=message(subscription)
    )
    assert answer is not None and isinstance(answer.exception, DeliveryFailed)
    assert answer.exception.permanent and "redirected the push; not followed" in answer.error


async def test_an_unreachable_push_service_is_not_ambiguous(
    two_tenants: tuple[TenantInfo, TenantInfo],
    push_runtime: plugins.PluginRuntime,  # noqa: F811
    push_service: PushService,  # noqa: F811
) -> None:
    acme, _ = two_tenants
    subscription = push_service.subscribe(await push.vapid_public_key(acme))
    push_service.server.stop()
    answer = await plugins.call_first(
        acme, "send_push", fall_through=False, message=message(subscription)
    )
    assert answer is not None and isinstance(answer.exception, DeliveryFailed)
    assert not answer.exception.permanent and not answer.exception.ambiguous
    push_service.server.start()


async def test_a_company_can_bring_its_own_key_pair_and_contact(
    two_tenants: tuple[TenantInfo, TenantInfo],
    push_runtime: plugins.PluginRuntime,  # noqa: F811
    push_service: PushService,  # noqa: F811
) -> None:
    acme, _ = two_tenants
    state = await plugins.configure_plugin(
        acme,
        ADMIN,
        "push-webpush",
        config={"vapid_private_key": PRIVATE, "subject": "https://acme-towing.example.com/"},
    )
    # The public half is derived, the subject normalised, the private key masked.
    assert state.config == {
        "vapid_private_key": MASK,
        "vapid_public_key": PUBLIC,
        "subject": "https://acme-towing.example.com",
        "timeout": 4.0,
    }
    assert await push.vapid_public_key(acme) == PUBLIC
    subscription = push_service.subscribe(PUBLIC)
    answer = await plugins.call_first(acme, "send_push", message=message(subscription))
    assert answer is not None and answer.value.status == "sent", push_service.refusals
    assert push_service.received[0].claims["sub"] == "https://acme-towing.example.com"


async def test_bad_push_settings_are_refused_field_by_field(
    two_tenants: tuple[TenantInfo, TenantInfo],
    push_runtime: plugins.PluginRuntime,  # noqa: F811
) -> None:
    acme, _ = two_tenants
    with pytest.raises(ValidationFailed) as caught:
        await plugins.configure_plugin(
            acme,
            ADMIN,
            "push-webpush",
            config={"vapid_private_key": "not-a-key", "subject": "ops@example.com"},
        )
    assert {e.field for e in caught.value.errors} == {
        "config.vapid_private_key",
        "config.subject",
    }
    other_public = await push.vapid_public_key(acme)  # a pair of Acme's own, made on first use
    with pytest.raises(ValidationFailed) as caught:
        await plugins.configure_plugin(
            acme,
            ADMIN,
            "push-webpush",
            config={"vapid_private_key": PRIVATE, "vapid_public_key": other_public},
        )
    assert [(e.field, e.message) for e in caught.value.errors] == [
        ("config.vapid_public_key", "does not belong to vapid_private_key")
    ]
    assert await push.vapid_public_key(acme) == other_public  # unchanged


def test_a_long_body_is_shortened_to_fit_one_push_message() -> None:
    long = message(
        {"endpoint": "https://push.example.com/x", "keys": {"p256dh": "", "auth": ""}},
        body="Ä" * 5000,
    )
    text = payload(long)
    assert len(text.encode()) <= MAX_PAYLOAD
    sent = json.loads(text)
    assert sent["body"].endswith("…") and sent["title"] == long.title
    assert json.loads(payload(replace(long, body="short")))["body"] == "short"
