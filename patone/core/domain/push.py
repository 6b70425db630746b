"""Push notifications to people's devices: the company's VAPID key, device subscriptions, sending.

A browser or installed PWA subscribes with the company's public key (`vapid_public_key`, made
on first use and kept, the private half sealed, in the settings of the `push-webpush` plugin)
and registers the subscription it gets (endpoint, p256dh key, auth secret) for the signed-in
person: a staff user or a customer. One person may have several devices; one device belongs to
one person (signing in as someone else on the same browser moves it).

`send_to_owner` sends one message to each device of a person through the company's push
provider (the `send_push` hook) and keeps the list clean: a subscription the push service says
is gone (404/410) is deleted, a used one gets its `last_used_at`.

Endpoints are URLs that people supply and the server then calls, so they must be https and pass
the SSRF guard, when registered and again before each send (a name may resolve elsewhere later).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from patone.core.common.permissions import Actor
from patone.core.common.rows import fetch_records
from patone.core.runtime.db import engine
from patone.core.runtime.errors import NotFound, UserError, ValidationFailed
from patone.core.tables.notifications import PushSubscriptionRow
from patone.plugins import config as plugins
from patone.plugins.ssrf import check_url
from patone.plugins.types import Delivery, DeliveryFailed, PluginResult, PushMessage
from patone.tenants.isolation import TenantRef, tenant_transaction

log = logging.getLogger(__name__)

PLUGIN = "push-webpush"  # keeps the company's key pair in its settings
OWNER_KINDS = ("user", "customer")
MAX_DEVICES = 20  # per person; registering another forgets the one unused the longest
MAX_ENDPOINT = 2048


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _new_key_pair(current: dict[str, Any]) -> dict[str, Any]:
    if current.get("vapid_private_key") and current.get("vapid_public_key"):
        return {}
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    return {
        "vapid_private_key": _b64url(key.private_numbers().private_value.to_bytes(32, "big")),
        "vapid_public_key": _b64url(public),
    }


async def vapid_public_key(tenant: TenantRef) -> str:
    """The company's application server key (base64url), made with its private half on first
    use; pages pass it to `pushManager.subscribe`."""
    settings = await plugins.fill_plugin_settings(tenant, PLUGIN, _new_key_pair)
    return str(settings["vapid_public_key"])


def _owner(actor: Actor) -> tuple[str, int]:
    if actor.kind not in OWNER_KINDS or not actor.id.isdigit():
        raise UserError(
            "forbidden", "Only a signed-in user or customer has devices for push messages."
        )
    return actor.kind, int(actor.id)


def _key(value: Any, size: int, field: str, what: str) -> tuple[str, UserError | None]:
    """A base64url key of `size` bytes, re-encoded without padding, or the error to report."""
    if not isinstance(value, str) or not value.strip():
        return "", UserError("required", f"the subscription's {what} is missing", field)
    text = value.strip()
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != size:
        return "", UserError("invalid", f"must be the {what}: {size} bytes, base64url", field)
    return _b64url(raw), None


async def _endpoint_refused(endpoint: str) -> UserError | None:
    """Why the server may not call this endpoint (SSRF guard), or None."""
    try:
        await asyncio.to_thread(
            check_url,
            endpoint,
            field="endpoint",
            allow_private=plugins.get_runtime().allow_private_urls,
        )
    except UserError as error:
        return error
    return None


async def _valid(data: dict[str, Any]) -> dict[str, str]:
    """The subscription a browser's `PushSubscription.toJSON()` gives, checked field by field."""
    errors: list[UserError | None] = []
    endpoint = data.get("endpoint")
    if not isinstance(endpoint, str) or not endpoint.strip():
        errors.append(UserError("required", "the subscription's endpoint is missing", "endpoint"))
        endpoint = ""
    elif len(endpoint) > MAX_ENDPOINT or not endpoint.strip().startswith("https://"):
        errors.append(UserError("invalid", "must be the push service's https URL", "endpoint"))
    else:
        endpoint = endpoint.strip()
        errors.append(await _endpoint_refused(endpoint))
    keys = data.get("keys")
    if not isinstance(keys, dict):
        keys = {}
    p256dh, error = _key(keys.get("p256dh"), 65, "keys.p256dh", "device's P-256 public key")
    if error is None:
        try:
            ec.EllipticCurvePublicKey.from_encoded_point(
                ec.SECP256R1(), base64.urlsafe_b64decode(p256dh + "=" * (-len(p256dh) % 4))
            )
        except ValueError:
            error = UserError("invalid", "is not a point on the P-256 curve", "keys.p256dh")
    auth, auth_error = _key(keys.get("auth"), 16, "keys.auth", "device's auth secret")
    found = [e for e in (*errors, error, auth_error) if e is not None]
    if found:
        raise ValidationFailed(found)
    user_agent = data.get("user_agent")
    return {
        "endpoint": endpoint,
        "p256dh": p256dh,
        "auth": auth,
        "user_agent": user_agent[:400] if isinstance(user_agent, str) else "",
    }


async def register_subscription(
    tenant: TenantRef, actor: Actor, data: dict[str, Any]
) -> PushSubscriptionRow:
    """Remember a device of the signed-in person: `{endpoint, keys: {p256dh, auth},
    user_agent}`. The same endpoint again (a renewed subscription, or someone else signing in
    on that browser) updates it and moves it to this person."""
    kind, owner_id = _owner(actor)
    valid = await _valid(data)
    async with tenant_transaction(tenant):
        rows = await engine.fetch(
            "INSERT INTO push_subscriptions (owner_kind, owner_id, endpoint, p256dh, auth, "
            "user_agent) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (endpoint) DO UPDATE SET "
            "owner_kind = EXCLUDED.owner_kind, owner_id = EXCLUDED.owner_id, "
            "p256dh = EXCLUDED.p256dh, auth = EXCLUDED.auth, user_agent = EXCLUDED.user_agent, "
            f"created_at = now(), last_used_at = NULL RETURNING {PushSubscriptionRow.columns()}",
            kind,
            owner_id,
            valid["endpoint"],
            valid["p256dh"],
            valid["auth"],
            valid["user_agent"],
        )
        # Browsers make a new subscription now and then without telling us the old one went.
        await engine.execute(
            "DELETE FROM push_subscriptions WHERE id IN (SELECT id FROM push_subscriptions "
            "WHERE owner_kind = $1 AND owner_id = $2 "
            "ORDER BY coalesce(last_used_at, created_at) DESC, id DESC OFFSET $3)",
            kind,
            owner_id,
            MAX_DEVICES,
        )
    return PushSubscriptionRow.of(rows[0])


async def unregister_subscription(tenant: TenantRef, actor: Actor, endpoint: str) -> None:
    """Forget one of the signed-in person's devices (they turned notifications off there)."""
    kind, owner_id = _owner(actor)
    async with tenant_transaction(tenant):
        rows = await engine.fetch(
            "DELETE FROM push_subscriptions WHERE endpoint = $1 AND owner_kind = $2 "
            "AND owner_id = $3 RETURNING id",
            endpoint,
            kind,
            owner_id,
        )
    if not rows:
        raise NotFound("not_found", "none of your devices has this subscription", "endpoint")


async def list_subscriptions(tenant: TenantRef, actor: Actor) -> list[PushSubscriptionRow]:
    """The signed-in person's devices, most recently registered first."""
    kind, owner_id = _owner(actor)
    async with tenant_transaction(tenant):
        return await fetch_records(
            PushSubscriptionRow,
            f"SELECT {PushSubscriptionRow.columns()} FROM push_subscriptions "
            "WHERE owner_kind = $1 AND owner_id = $2 ORDER BY created_at DESC, id DESC",
            kind,
            owner_id,
        )


@dataclass(frozen=True)
class _Failure:
    error: str
    permanent: bool = False
    ambiguous: bool = False


def _failure(result: PluginResult) -> _Failure:
    error = f"{result.plugin}: {result.error or 'failed'}"
    if result.skipped:  # circuit open: the push service was not called
        return _Failure(error)
    exception = result.exception
    if isinstance(exception, DeliveryFailed):
        return _Failure(error, exception.permanent, exception.ambiguous)
    return _Failure(error, ambiguous=True)  # a time-out, or an error the plugin did not explain


async def _send_one(
    tenant: TenantRef, device: dict[str, Any], message: PushMessage
) -> Delivery | _Failure | None:
    refused = await _endpoint_refused(device["endpoint"])
    if refused is not None:
        return _Failure(f"endpoint refused: {refused.message}", permanent=True)
    result = await plugins.call_first(tenant, "send_push", fall_through=False, message=message)
    if result is None:
        return None
    if result.error is not None or result.skipped:
        return _failure(result)
    delivery = result.value
    assert isinstance(delivery, Delivery), f"{result.plugin} answered send_push with {delivery!r}"
    return delivery


async def send_to_owner(
    tenant: TenantRef,
    owner_kind: str,
    owner_id: int,
    *,
    title: str,
    body: str,
    url: str = "",
    tag: str = "",
    message_id: str = "",
    ttl: int = 3600,
    urgency: str = "normal",
) -> list[Delivery]:
    """Push one message to every device of a person; returns a `Delivery` per device that took
    it ("sent") or is gone ("expired", now deleted). [] when the person has no device.

    Raises `DeliveryFailed` when no device took it and at least one failed (so the caller's job
    retries): permanent only if every failure was, ambiguous if any was; or permanent when the
    company has no push provider on. A device that fails while another takes the message is
    logged, not retried (the person has been told).
    """
    async with tenant_transaction(tenant):
        devices = await engine.fetch(
            "SELECT id, endpoint, p256dh, auth FROM push_subscriptions "
            "WHERE owner_kind = $1 AND owner_id = $2 ORDER BY id",
            owner_kind,
            owner_id,
        )
    if not devices:
        return []
    answers = await asyncio.gather(
        *(
            _send_one(
                tenant,
                dict(device),
                PushMessage(
                    endpoint=device["endpoint"],
                    p256dh=device["p256dh"],
                    auth=device["auth"],
                    title=title,
                    body=body,
                    url=url,
                    tag=tag,
                    message_id=message_id,
                    ttl=ttl,
                    urgency=urgency,
                ),
            )
            for device in devices
        )
    )
    if any(answer is None for answer in answers):
        raise DeliveryFailed("no push provider is enabled", permanent=True)
    deliveries: list[Delivery] = []
    gone: list[int] = []
    used: list[int] = []
    failures: list[_Failure] = []
    for device, answer in zip(devices, answers, strict=True):
        if isinstance(answer, _Failure):
            failures.append(answer)
            log.warning(
                "push to a device failed: %s",
                answer.error,
                extra={"tenant": tenant.slug, "subscription": device["id"]},
            )
            continue
        assert answer is not None
        deliveries.append(answer)
        (gone if answer.status == "expired" else used).append(device["id"])
    if gone or used:
        async with tenant_transaction(tenant):
            if gone:
                await engine.execute(
                    "DELETE FROM push_subscriptions WHERE id = ANY($1::int[])", gone
                )
            if used:
                await engine.execute(
                    "UPDATE push_subscriptions SET last_used_at = now() WHERE id = ANY($1::int[])",
                    used,
                )
    if failures and not used:
        raise DeliveryFailed(
            "; ".join(f.error for f in failures)[:2000],
            permanent=all(f.permanent for f in failures),
            ambiguous=any(f.ambiguous for f in failures),
        )
    return deliveries
