"""Email over SMTP (aiosmtplib): the company's own mail server or any SMTP relay."""

from __future__ import annotations

import email.utils
from email.message import EmailMessage as MimeMessage
from typing import Any

import aiosmtplib
from pydantic import BaseModel, Field

from patone.plugins.hookspecs import hookimpl
from patone.plugins.types import Delivery, DeliveryFailed, EmailMessage, PluginInfo

NAME = "email-smtp"


class SmtpSettings(BaseModel):
    host: str = Field(min_length=1, max_length=255)
    port: int = Field(587, ge=1, le=65535)
    username: str = ""
    password: str = ""
    from_address: str = Field(min_length=3, max_length=254)
    from_name: str = ""
    security: str = Field("starttls", pattern="^(starttls|tls|none)$")
    timeout: float = Field(10, gt=0, le=60)


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(
        name=NAME,
        title="Email (SMTP)",
        description="Send email through an SMTP server.",
        settings=SmtpSettings,
        secret_fields=frozenset({"password"}),
    )


def build(message: EmailMessage, settings: SmtpSettings, domain: str) -> MimeMessage:
    mime = MimeMessage()
    mime["From"] = email.utils.formataddr((settings.from_name, settings.from_address))
    mime["To"] = message.to
    mime["Subject"] = message.subject
    mime["Date"] = email.utils.formatdate(localtime=False)
    mime["Message-ID"] = (
        f"<{message.message_id}@{domain}>" if message.message_id else email.utils.make_msgid()
    )
    if message.reply_to:
        mime["Reply-To"] = message.reply_to
    mime.set_content(message.text)
    if message.html:
        mime.add_alternative(message.html, subtype="html")
    return mime


@hookimpl
async def send_email(config: dict[str, Any], message: EmailMessage) -> Delivery:
    """Send one message, saying what is known when it fails (`DeliveryFailed`).

    Everything before the message data is sent (connecting, TLS, login, sender, recipient) fails
    without the server having the message: 4xx answers are retried, 5xx ones are permanent. Once
    the data is on its way, a lost connection or a time-out before the server's answer is
    ambiguous: it may have queued the message.
    """
    settings = SmtpSettings.model_validate(config)
    domain = settings.from_address.rpartition("@")[2] or "patone.local"
    mime = build(message, settings, domain)
    client = aiosmtplib.SMTP(
        hostname=settings.host,
        port=settings.port,
        username=settings.username or None,
        password=settings.password or None,
        use_tls=settings.security == "tls",
        start_tls=settings.security == "starttls",
        timeout=settings.timeout,
    )
    sending_data = accepted = False
    try:
        async with client:
            await client.mail(settings.from_address)
            await client.rcpt(message.to)
            sending_data = True
            await client.data(mime.as_bytes())
            accepted = True
    except Exception as error:
        if not accepted:
            raise _failure(error, sending_data) from error
        # Only saying goodbye failed: the server has the message.
    return Delivery(provider=NAME, status="sent", provider_id=str(mime["Message-ID"]))


def _failure(error: Exception, sending_data: bool) -> Exception:
    if isinstance(error, aiosmtplib.SMTPResponseException):
        # An answer from the server: it did not take the message.
        return DeliveryFailed(f"SMTP {error.code}: {error.message}", permanent=error.code >= 500)
    if not isinstance(error, aiosmtplib.SMTPException | OSError):
        return error  # not a delivery problem: a bug, reported as it is
    if sending_data:
        return DeliveryFailed(f"no answer after the message was sent: {error}", ambiguous=True)
    return DeliveryFailed(f"SMTP server unreachable: {error}")
