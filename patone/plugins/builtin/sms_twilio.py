"""SMS through Twilio, with the official SDK, and Twilio's delivery reports.

Messages go out through the SDK's asynchronous API (`create_async`, its aiohttp client): no
thread per call, and one client per account and event loop keeps its connections to Twilio
open (closed with the loop, `patone.plugins.loops`). The SDK has no base-URL setting; its
supported hook is the HTTP client, so `_Client` sends the SDK's requests to `api_base_url`
(Twilio's own by default, a local fake in tests). A recipient who texted STOP cannot be messaged
(Twilio error 21610): that is reported as `opted_out`, not retried.

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

import asyncio
import logging
import weakref
from typing import Annotated, Any, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiohttp
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response as HttpResponse
from starlette.routing import Route
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from patone.plugins import ssrf
from patone.plugins.hookspecs import hookimpl
from patone.plugins.loops import closes_with_loop
from patone.plugins.types import (
    Delivery,
    DeliveryFailed,
    NetworkTarget,
    PluginInfo,
    SecretFor,
    SmsMessage,
    TenantView,
    UserError,
)

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
    auth_token: Annotated[str, SecretFor("api_base_url")] = Field(min_length=16)
    from_number: str = Field(pattern=r"^\+[1-9][0-9]{6,14}$")
    # Twilio calls it, not us; the guard keeps it off addresses that are ours anyway.
    status_callback_url: Annotated[str, NetworkTarget("url")] = ""
    api_base_url: Annotated[str, NetworkTarget("url")] = "https://api.twilio.com"
    timeout: float = Field(10, gt=0, le=60)


class _Client(AsyncTwilioHttpClient):
    """Twilio's asynchronous HTTP client (the SDK's hook), pointed at another base URL, with a
    time-out that tells a connection never made (nothing sent) from an answer that never came.

    The SDK's own `request` hands aiohttp a bare number or None as the time-out (None: no
    time-out at all), so the request is made here, on the client's session. Each request goes
    to the address the SSRF guard checked for the base URL (a company's setting), resolved once
    per request, with the real name kept for the Host header and TLS."""

    def __init__(self, base_url: str, timeout: float) -> None:
        super().__init__(pool_connections=False, timeout=timeout)
        self.base = urlsplit(base_url)
        self.session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=timeout, sock_connect=timeout)
        )

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (the SDK's signature; the session's is used)
        allow_redirects: bool = False,
    ) -> Response:
        parts = urlsplit(url)
        moved = urlunsplit(parts._replace(scheme=self.base.scheme, netloc=self.base.netloc))
        target = await asyncio.to_thread(
            ssrf.pin_url,
            moved,
            field="config.api_base_url",
            allow_private=ssrf.allow_private_targets(),
        )
        sent_headers = {**(headers or {}), **target.headers}
        if auth:
            sent_headers["Authorization"] = aiohttp.encode_basic_auth(*auth)
        async with self.session.request(
            method.upper(),
            target.url,
            params=cast(dict[str, str], params),
            data=data,
            headers=sent_headers,
            allow_redirects=allow_redirects,
            server_hostname=target.extensions.get("sni_hostname"),
        ) as answer:
            return Response(answer.status, await answer.text(), answer.headers)


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


_clients: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[str, str, str, float], Client]
] = weakref.WeakKeyDictionary()
CLIENTS_PER_LOOP = 256


def _client(settings: TwilioSettings) -> Client:
    """This event loop's SDK client for the settings' account, reused (Twilio recommends it:
    its HTTP session keeps the connection to Twilio open)."""
    clients = _clients.setdefault(asyncio.get_running_loop(), {})
    key = (settings.account_sid, settings.auth_token, settings.api_base_url, settings.timeout)
    client = clients.get(key)
    if client is None:
        if len(clients) >= CLIENTS_PER_LOOP:  # many companies: retire the oldest
            oldest = next(iter(clients))
            _retire(clients.pop(oldest), grace=oldest[3] + 1)
        client = clients[key] = Client(
            settings.account_sid,
            settings.auth_token,
            http_client=_Client(settings.api_base_url, settings.timeout),
        )
    return client


async def _close(client: Client, after: float = 0) -> None:
    await asyncio.sleep(after)
    http = client.http_client
    if isinstance(http, AsyncTwilioHttpClient):
        await http.close()


_retiring: set[asyncio.Task[None]] = set()


def _retire(client: Client, grace: float) -> None:
    """Close a client once the calls it may still be making have ended (its time-out bounds
    them); the task is kept referenced until then."""
    task = asyncio.get_running_loop().create_task(_close(client, after=grace))
    _retiring.add(task)
    task.add_done_callback(_retiring.discard)


@closes_with_loop
async def close_clients() -> None:
    """Close this event loop's Twilio sessions."""
    clients = _clients.pop(asyncio.get_running_loop(), {})
    for client in clients.values():
        await _close(client)


@hookimpl
async def send_sms(tenant: TenantView, config: dict[str, Any], message: SmsMessage) -> Delivery:
    settings = TwilioSettings.model_validate(config)
    options: dict[str, Any] = {
        "to": message.to,
        "from_": settings.from_number,
        "body": message.body,
    }
    callback = status_callback(tenant, settings, message.message_id)
    if callback:
        options["status_callback"] = callback
    try:
        sent = await _client(settings).messages.create_async(**options)
    except UserError as refused:  # the SSRF guard: nothing was sent
        permanent = refused.code == "forbidden_address"  # a name that does not resolve may return
        raise DeliveryFailed(f"not sent: {refused.message}", permanent=permanent) from None
    except TwilioRestException as error:
        if error.code == OPTED_OUT:
            return Delivery(provider=NAME, status="opted_out")
        detail = f"Twilio {error.status} error {error.code}: {error.msg}"
        raise DeliveryFailed(
            detail, permanent=400 <= error.status < 500 and error.status != 429
        ) from error
    except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as error:
        raise DeliveryFailed(f"Twilio unreachable: {error}") from error  # nothing was sent
    except TimeoutError as error:
        raise DeliveryFailed(f"no answer in {settings.timeout:g} s", ambiguous=True) from error
    except aiohttp.ClientError as error:
        raise DeliveryFailed(f"connection lost: {error!r}", ambiguous=True) from error
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
