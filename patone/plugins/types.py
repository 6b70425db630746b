"""The values hooks take and return, shared by the core and plugin authors.

A provider imports only from `patone.plugins` (built-in ones too): `UserError` is here for a
refusal of a setting or a call that the person who caused it can act on (a code, a message, the
field at fault); the codes are listed in docs/api.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

from patone.core.runtime.errors import UserError

__all__ = ["UserError"]  # and the types below


@dataclass(frozen=True)
class PluginInfo:
    """What a plugin tells the manager about itself (returned by its `plugin_info` hook)."""

    name: str
    title: str
    description: str = ""
    settings: type[BaseModel] | None = None  # the typed settings a tenant fills in
    secret_fields: frozenset[str] = frozenset()  # encrypted at rest, masked when read back
    default_enabled: bool = False  # on for every tenant unless it turns it off
    # Built in and relied on by the product (the engine's travel times): on for every tenant
    # whatever its settings, and turning it off is refused.
    always_on: bool = False


@dataclass(frozen=True)
class NetworkTarget:
    """Marks a setting as a place the plugin connects to, in its typed settings model
    (`host: Annotated[str, NetworkTarget("host", port="port")]`): `"url"`, an http(s) URL, or
    `"host"`, a host name or IP address whose port is in the setting named `port`.

    Each target a company enters passes the server-side request forgery guard when saved; the
    plugin checks it again, pinned, when it connects (`patone.plugins.ssrf`)."""

    kind: Literal["url", "host"] = "url"
    port: str = ""  # for a host: the setting holding its port


@dataclass(frozen=True, init=False)
class SecretFor:
    """Marks a secret setting as a credential for the named target settings
    (`password: Annotated[str, SecretFor("host")] = ""`): when one of them changes (a host's
    port included), the secret must be entered again, or the change is refused. A secret not
    marked counts as a credential for every target of its plugin."""

    targets: tuple[str, ...]

    def __init__(self, *targets: str) -> None:
        object.__setattr__(self, "targets", targets)


@dataclass(frozen=True)
class TenantView:
    """What a plugin learns about the tenant it is called for."""

    slug: str
    name: str
    url: str = ""  # where the company is reached from outside (no trailing slash)
    id: str = ""  # the company's immutable id: a later company with the same slug has another


@dataclass(frozen=True)
class GeoPoint:
    lat: float
    lng: float
    address: str = ""


@dataclass(frozen=True)
class RouteEstimate:
    distance_m: int
    duration_s: int
    provider: str = ""


@dataclass(frozen=True)
class PluginResult:
    """One plugin's answer to a broadcast hook."""

    plugin: str
    value: Any = None
    error: str | None = None
    skipped: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    exception: BaseException | None = field(default=None, compare=False, repr=False)


class DeliveryFailed(Exception):
    """Raised by a messaging plugin that could not deliver a message, saying what is known.

    - `permanent`: the provider refused it for good (invalid number, mailbox does not exist):
      it is not retried;
    - `ambiguous`: the provider may have taken it (the answer was lost, the call timed out after
      the request was sent): a retry may deliver it twice, so retries follow the channel's policy
      and are counted;
    - neither: the provider did not take it (refused for now, unreachable): retried.

    Any other exception from a messaging plugin counts as ambiguous.
    """

    def __init__(self, message: str, *, permanent: bool = False, ambiguous: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.ambiguous = ambiguous


@dataclass(frozen=True)
class EmailMessage:
    """An email to send: plain text always, HTML optionally; `message_id` is ours."""

    to: str
    subject: str
    text: str
    html: str | None = None
    message_id: str = ""
    reply_to: str | None = None


@dataclass(frozen=True)
class Delivery:
    """What a provider said when it took a message."""

    provider: str
    status: str  # "sent", "queued", "logged", ...
    provider_id: str = ""


@dataclass(frozen=True)
class SmsMessage:
    """A text message to one phone (E.164); `message_id` is ours."""

    to: str
    body: str
    message_id: str = ""


@dataclass(frozen=True)
class PushMessage:
    """A Web Push notification to one device subscription (`endpoint` with its `p256dh` key and
    `auth` secret, as the browser's PushSubscription gave them); `url` is opened when the
    notification is clicked, a newer message with the same `tag` replaces an older one, and
    `message_id` is ours."""

    endpoint: str
    p256dh: str
    auth: str
    title: str
    body: str
    url: str = ""
    tag: str = ""
    message_id: str = ""
    ttl: int = 3600  # seconds the push service keeps it for a device that is offline
    urgency: str = "normal"  # "very-low", "low", "normal" or "high"


@dataclass(frozen=True)
class Quote:
    """A price about to be offered, which `adjust_quote` plugins may change."""

    service_type: str
    amount: int  # minor units
    currency: str
    at: datetime
    time_zone: str
    distance_km: float | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class StoredFile:
    """Where a storage plugin put a file (returned by `store_file`)."""

    key: str  # the tenant's own key, as given
    size: int  # bytes
    content_type: str
    sha256: str  # hex digest of the content, the same whichever storage holds it
    location: str  # e.g. s3://bucket/prefix/acme/key or file:///.../files/acme/key
    provider: str = ""  # the plugin that stored it
    etag: str = ""  # the storage's own version tag, where it has one
