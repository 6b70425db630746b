"""SMS through Twilio, with the official SDK.

The SDK has no base-URL setting; its supported hook is the HTTP client, so `_Client` sends the
SDK's requests to `api_base_url` (Twilio's own by default, a local fake in tests). A recipient who
texted STOP cannot be messaged (Twilio error 21610): that is reported as `opted_out`, not retried.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, Field
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from patone.plugins.hookspecs import hookimpl
from patone.plugins.types import Delivery, PluginInfo, SmsMessage

NAME = "sms-twilio"
OPTED_OUT = 21610


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


@hookimpl
def send_sms(config: dict[str, Any], message: SmsMessage) -> Delivery:
    """Blocking SDK call: the plugin manager runs it in its thread pool."""
    settings = TwilioSettings.model_validate(config)
    client = Client(
        settings.account_sid,
        settings.auth_token,
        http_client=_Client(settings.api_base_url, settings.timeout),
    )
    options: dict[str, Any] = {
        "to": message.to,
        "from_": settings.from_number,
        "body": message.body,
    }
    if settings.status_callback_url:
        options["status_callback"] = settings.status_callback_url
    try:
        sent = client.messages.create(**options)
    except TwilioRestException as error:
        if error.code == OPTED_OUT:
            return Delivery(provider=NAME, status="opted_out")
        raise
    return Delivery(provider=NAME, status=str(sent.status), provider_id=str(sent.sid))
