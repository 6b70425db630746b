"""SMS through Twilio, with the official SDK, and Twilio's delivery reports.

The SDK has no base-URL setting; its supported hook is the HTTP client, so `_Client` sends the
SDK's requests to `api_base_url` (Twilio's own by default, a local fake in tests). A recipient who
texted STOP cannot be messaged (Twilio error 21610): that is reported as `opted_out`, not retried.

Failures say what is known (`DeliveryFailed`): Twilio's 4xx errors are permanent (a bad number
stays bad) except 429; 5xx and 429 mean Twilio did not take the message; a connection that could
not be opened did not send it either; a time-out or a connection lost after the request went out
is *ambiguous* (Twilio may have queued the message).

Every message asks Twilio for delivery reports at `/plugins/sms-twilio/status?n=<our message
id>` on the company's address (or the configured `status_callback_url`). The route checks
Twilio's signature with the SDK's `RequestValidator` and the company's auth token, then records
the report; the id in the URL matches the report to our notification even when the answer to
the send was lost.
"""

from __future__ import annotations

import logging
import threading
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response as HttpResponse
from starlette.routing import Route
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from urllib3.exceptions import NewConnectionError

from patone.plugins.hookspecs import hookimpl
from patone.plugins.types import Delivery, DeliveryFailed, PluginInfo, SmsMessage, TenantView

NAME = "sms-twilio"
OPTED_OUT = 21610
STATUS_PATH = f"/plugins/{NAME}/status"
# Twilio's message statuses, as the notification log counts them.
REPORTED = {
    "accepted": "sent",
    "scheduled": "sent",
    "queued": "sent",
    "sending": "sent",
    "sent": "sent",
    "delivered": "delivered",
    "read": "delivered",
    "undelivered": "undelivered",
    "failed": "undelivered",
    "canceled": "undelivered",
}
log = logging.getLogger(__name__)


class TwilioSettings(BaseModel):
    account_sid: str = Field(pattern=r"^AC[0-9a-fA-F]{32}$")
    auth_token: str = Field(min_length=16)
    from_number: str = Field(pattern=r"^\+[1-9][0-9]{6,14}$")
    status_callback_url: str = ""
    api_base_url: str = "https://api.twilio.com"
    timeout: float = Field(10, gt=0, le=60)


class _Client(TwilioHttpClient):
    """Twilio's HTTP client, pointed at another base URL."""

    def __init__(self, base_url: str, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self.base = urlsplit(base_url)

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        parts = urlsplit(url)
        moved = urlunsplit(parts._replace(scheme=self.base.scheme, netloc=self.base.netloc))
        return super().request(method, moved, *args, **kwargs)


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(
        name=NAME,
        title="SMS (Twilio)",
        description="Send text messages with Twilio.",
        settings=TwilioSettings,
        secret_fields=frozenset({"auth_token"}),
    )


def status_callback(tenant: TenantView, settings: TwilioSettings, message_id: str) -> str:
    """Where Twilio reports on one message: our id rides along in the query."""
    base = settings.status_callback_url or (tenant.url + STATUS_PATH if tenant.url else "")
    if not base or not message_id:
        return base
    return f"{base}{'&' if '?' in base else '?'}{urlencode({'n': message_id})}"


def _not_connected(error: requests.ConnectionError) -> bool:
    """True when the connection was never opened, so nothing was sent."""
    if isinstance(error, requests.ConnectTimeout):
        return True
    reason = getattr(error.args[0] if error.args else None, "reason", None)
    return isinstance(reason, NewConnectionError)


_local = threading.local()
CLIENTS_PER_THREAD = 64


def _client(settings: TwilioSettings) -> Client:
    """This thread's SDK client for the settings' account, reused (Twilio recommends it: its
    HTTP session keeps the connection to Twilio open). One per thread, because a requests
    session is not meant to be shared between threads."""
    clients: dict[tuple[str, str, str, float], Client] | None = getattr(_local, "clients", None)
    if clients is None:
        clients = _local.clients = {}
    key = (settings.account_sid, settings.auth_token, settings.api_base_url, settings.timeout)
    client = clients.get(key)
    if client is None:
        if len(clients) >= CLIENTS_PER_THREAD:
            clients.clear()
        client = clients[key] = Client(
            settings.account_sid,
            settings.auth_token,
            http_client=_Client(settings.api_base_url, settings.timeout),
        )
    return client


@hookimpl
def send_sms(tenant: TenantView, config: dict[str, Any], message: SmsMessage) -> Delivery:
    """Blocking SDK call: the plugin manager runs it in its thread pool."""
    settings = TwilioSettings.model_validate(config)
    client = _client(settings)
    options: dict[str, Any] = {
        "to": message.to,
        "from_": settings.from_number,
        "body": message.body,
    }
    callback = status_callback(tenant, settings, message.message_id)
    if callback:
        options["status_callback"] = callback
    try:
        sent = client.messages.create(**options)
    except TwilioRestException as error:
        if error.code == OPTED_OUT:
            return Delivery(provider=NAME, status="opted_out")
        detail = f"Twilio {error.status} error {error.code}: {error.msg}"
        raise DeliveryFailed(
            detail, permanent=400 <= error.status < 500 and error.status != 429
        ) from error
    except requests.ConnectionError as error:
        if _not_connected(error):
            raise DeliveryFailed(f"Twilio unreachable: {error}") from error
        raise DeliveryFailed(f"connection lost: {error}", ambiguous=True) from error
    except requests.Timeout as error:
        raise DeliveryFailed(f"no answer in {settings.timeout:g} s", ambiguous=True) from error
    return Delivery(provider=NAME, status=str(sent.status), provider_id=str(sent.sid))


async def _status(host: Any, request: Request) -> HttpResponse:
    """Twilio's delivery report for one message (form-encoded, signed)."""
    found = await host.tenant_config(request, NAME)
    if found is None:
        return HttpResponse(status_code=404)
    tenant, config = found
    # Twilio posts application/x-www-form-urlencoded: parsed here, no multipart library needed.
    form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
    signature = request.headers.get("X-Twilio-Signature", "")
    validator = RequestValidator(config.get("auth_token", ""))
    # Twilio signs the URL it was given; behind a proxy that is the public one.
    public = status_callback(tenant, TwilioSettings.model_validate(config), "")
    urls = {str(request.url), f"{public}?{request.url.query}" if request.url.query else public}
    if not any(validator.validate(url, form, signature) for url in urls):
        log.warning("bad Twilio signature", extra={"tenant": tenant.slug})
        return HttpResponse(status_code=403)
    raw = form.get("MessageStatus", "")
    status = REPORTED.get(raw)
    if status is None or not form.get("MessageSid"):
        return HttpResponse(status_code=400)
    await host.report_delivery(
        tenant,
        provider=NAME,
        provider_id=form["MessageSid"],
        status=status,
        provider_status=raw,
        message_id=request.query_params.get("n", ""),
        error=f"Twilio error {form['ErrorCode']}" if form.get("ErrorCode") else "",
    )
    return HttpResponse(status_code=204)


@hookimpl
def routes(host: Any) -> list[Route]:
    async def status(request: Request) -> HttpResponse:
        return await _status(host, request)

    return [Route("/status", status, methods=["POST"])]
