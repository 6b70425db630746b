"""Web Push (RFC 8030) to browsers and installed PWAs, with pywebpush and the company's VAPID key.

Each company has its own VAPID key pair (RFC 8292): the public key is the `applicationServerKey`
its pages subscribe with, and a push service accepts messages for a subscription only when they
are signed with the private key of that pair. Patone makes the pair on first use
(`patone.core.domain.push.vapid_public_key`) and keeps it in this plugin's settings, the private key
sealed; a company may also paste its own (`vapid_private_key` alone is enough: the public key is
derived from it).

The payload is JSON `{title, body, url, tag, id}`, encrypted for the device with `aes128gcm`
(RFC 8188); the company's service worker shows it. What the push service answers decides what
happens: 201 is "sent"; 404 and 410 mean the subscription is gone ("expired": the caller removes
it); 429 and 5xx mean "not now" (retried by the caller's job); any other 4xx is a refusal that a
retry would not change. Redirects are not followed: the endpoint passed the SSRF guard, where a
redirect would lead did not.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any
from urllib.parse import urlsplit

import requests
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from py_vapid import Vapid, VapidException
from pydantic import BaseModel, Field, ValidationInfo, field_validator
from pywebpush import WebPushException, webpush
from urllib3.exceptions import NewConnectionError

from patone.plugins.hookspecs import hookimpl
from patone.plugins.types import Delivery, DeliveryFailed, PluginInfo, PushMessage, TenantView

NAME = "push-webpush"
# A push service takes at most 4096 bytes of encrypted payload; aes128gcm adds 86 bytes of
# header, a 16-byte tag and a padding delimiter. The JSON is kept under this, shortening the body.
MAX_PAYLOAD = 3900
URGENCIES = ("very-low", "low", "normal", "high")
# What a refusal means, for the error message (the push service's own text follows it).
REFUSALS = {
    400: "the push service refused the message as malformed",
    401: "the push service refused the VAPID signature",
    403: "the push service refused the VAPID signature (the device subscribed with another "
    "application server key, or the subject is not accepted)",
    413: "the message is too large for the push service",
}


def b64url_decode(text: str) -> bytes:
    """Base64url, with or without padding (browsers send it without)."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def public_key_of(private_key: ec.EllipticCurvePrivateKey) -> str:
    """The application server key browsers subscribe with: the uncompressed point, base64url."""
    return b64url(
        private_key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    )


def _private_key(text: str) -> ec.EllipticCurvePrivateKey:
    raw = b64url_decode(text)
    if len(raw) != 32:
        raise ValueError("is not 32 bytes")
    return ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())


class WebPushSettings(BaseModel):
    vapid_private_key: str = Field(
        "",
        description="The raw 32-byte P-256 private key, base64url (made on first use if empty).",
    )
    vapid_public_key: str = Field(
        "",
        validate_default=True,
        description="The matching public key (65 bytes, base64url); derived from the private key.",
    )
    subject: str = Field(
        "",
        description="A mailto: or https: address push services can contact; the company's "
        "address by default.",
    )
    timeout: float = Field(4, gt=0, le=30)

    @field_validator("vapid_private_key")
    @classmethod
    def _valid_private_key(cls, value: str) -> str:
        value = value.strip()
        if value:
            try:
                _private_key(value)
            except ValueError:
                raise ValueError(
                    "must be a raw 32-byte P-256 private key, base64url-encoded"
                ) from None
        return value

    @field_validator("vapid_public_key")
    @classmethod
    def _matches_private_key(cls, value: str, info: ValidationInfo) -> str:
        value = value.strip()
        private = info.data.get("vapid_private_key", "")
        if not private:
            if value:
                raise ValueError("needs the private key it belongs to (vapid_private_key)")
            return value
        derived = public_key_of(_private_key(private))
        if value and b64url_decode(value) != b64url_decode(derived):
            raise ValueError("does not belong to vapid_private_key")
        return derived

    @field_validator("subject")
    @classmethod
    def _contact(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and not valid_subject(value):
            raise ValueError(
                "must be a mailto: address (mailto:ops@example.com) or an https: address "
                "without a path (https://example.com)"
            )
        return value


def valid_subject(value: str) -> bool:
    """What push services (and py_vapid) take as a VAPID `sub`."""
    if value.startswith("mailto:"):
        return re.fullmatch(r"[^@\s]+@(localhost|[\w-]+(\.[\w-]+)+)", value[7:]) is not None
    parts = urlsplit(value)
    return (
        parts.scheme == "https"
        and bool(parts.hostname)
        and parts.port is None
        and not (parts.path or parts.query or parts.fragment)
    )


def default_subject(tenant: TenantView) -> str:
    """The company's own address, or a mailto: at its host when that is not a plain https URL."""
    if valid_subject(tenant.url):
        return tenant.url
    return f"mailto:push@{urlsplit(tenant.url).hostname or 'localhost'}"


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(
        name=NAME,
        title="Web Push (VAPID)",
        description="Notifications on staff and customers' phones and browsers, through the "
        "push service of each browser. Works without settings: the company's key pair is made "
        "on first use.",
        settings=WebPushSettings,
        secret_fields=frozenset({"vapid_private_key"}),
        default_enabled=True,
    )


def payload(message: PushMessage) -> str:
    """The JSON the service worker receives, its body shortened to fit a push message."""
    fields = {
        "title": message.title,
        "body": message.body,
        "url": message.url,
        "tag": message.tag,
        "id": message.message_id,
    }
    text = json.dumps(fields, ensure_ascii=False)
    while len(text.encode()) > MAX_PAYLOAD and fields["body"]:
        body = fields["body"].encode()
        keep = len(body) - (len(text.encode()) - MAX_PAYLOAD) - len("…".encode())
        fields["body"] = body[:keep].decode(errors="ignore").rstrip() + "…" if keep > 0 else ""
        text = json.dumps(fields, ensure_ascii=False)
    return text


def topic(tag: str) -> str:
    """The `Topic` header for a tag: a newer message with the same topic replaces one the push
    service still holds (at most 32 characters of the base64url alphabet)."""
    return b64url(hashlib.sha256(tag.encode()).digest())[:32]


def _not_connected(error: requests.ConnectionError) -> bool:
    """True when the connection was never opened, so nothing was sent."""
    if isinstance(error, requests.ConnectTimeout):
        return True
    reason = getattr(error.args[0] if error.args else None, "reason", None)
    return isinstance(reason, NewConnectionError)


def _refused(error: WebPushException, origin: str) -> Delivery:
    status = error.status_code
    response = error.response
    text = (getattr(response, "text", "") or "").strip()[:300]
    said = f"{origin} answered {status}" + (f": {text}" if text else "")
    if status in (404, 410):
        return Delivery(provider=NAME, status="expired", provider_id=str(status))
    if status is None:
        raise DeliveryFailed(f"push failed: {error.message}", permanent=True)
    if status == 429 or status >= 500:
        retry_after = error.retry_after
        hint = f" (retry after {retry_after})" if retry_after else ""
        raise DeliveryFailed(f"push service busy or failing: {said}{hint}")
    reason = REFUSALS.get(status, "the push service refused the message")
    raise DeliveryFailed(f"{reason}: {said}", permanent=True)


@hookimpl
def send_push(tenant: TenantView, config: dict[str, Any], message: PushMessage) -> Delivery:
    """Blocking pywebpush call: the plugin manager runs it in its thread pool."""
    settings = WebPushSettings.model_validate(config)
    if not settings.vapid_private_key:
        raise DeliveryFailed(f"{NAME} has no VAPID key for {tenant.slug} yet", permanent=True)
    parts = urlsplit(message.endpoint)
    origin = f"{parts.scheme}://{parts.netloc}"
    headers: dict[str, str | int | float] = {
        "Urgency": message.urgency if message.urgency in URGENCIES else "normal"
    }
    if message.tag:
        headers["Topic"] = topic(message.tag)
    session = requests.Session()
    session.max_redirects = 0
    try:
        response = webpush(
            subscription_info={
                "endpoint": message.endpoint,
                "keys": {"p256dh": message.p256dh, "auth": message.auth},
            },
            data=payload(message),
            vapid_private_key=Vapid.from_raw(settings.vapid_private_key.encode()),
            vapid_claims={"sub": settings.subject or default_subject(tenant), "aud": origin},
            content_encoding="aes128gcm",
            ttl=message.ttl,
            headers=headers,
            timeout=settings.timeout,
            requests_session=session,
        )
    except WebPushException as error:
        return _refused(error, origin)
    except VapidException as error:
        raise DeliveryFailed(
            f"cannot sign for the push service: {error}", permanent=True
        ) from error
    except requests.TooManyRedirects as error:
        raise DeliveryFailed(
            f"{origin} redirected the push; not followed", permanent=True
        ) from error
    except requests.ConnectionError as error:
        if _not_connected(error):
            raise DeliveryFailed(f"{origin} unreachable: {error}") from error
        raise DeliveryFailed(f"connection to {origin} lost: {error}", ambiguous=True) from error
    except requests.Timeout as error:
        raise DeliveryFailed(
            f"{origin} gave no answer in {settings.timeout:g} s", ambiguous=True
        ) from error
    finally:
        session.close()
    assert isinstance(response, requests.Response)  # not a curl command: curl=False
    return Delivery(provider=NAME, status="sent", provider_id=response.headers.get("Location", ""))
