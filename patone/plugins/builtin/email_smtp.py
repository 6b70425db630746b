"""Email over SMTP (aiosmtplib): the company's own mail server or any SMTP relay.

Connections are kept open and reused (up to `POOL_SIZE` idle ones per server and account, per
event loop, each for at most `IDLE_SECONDS`; closed with the loop, `patone.plugins.loops`):
opening one (TCP, EHLO, STARTTLS, login) costs more than sending a message on it. A pooled
connection the server has closed meanwhile fails before the message is sent, so the message
goes out on a fresh connection instead.

The server's host is a company's setting, so each new connection goes through the SSRF guard and
is made to the address the guard checked (`_pinned_socket`); the password is only ever offered
there, and a company that changes the host must enter the password again (`SecretFor`).
"""

from __future__ import annotations

import asyncio
import email.utils
import socket
import time
import weakref
from email.charset import BASE64, Charset
from email.header import Header
from email.message import EmailMessage as MimeMessage
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.policy import compat32
from typing import Annotated, Any

import aiosmtplib
from pydantic import BaseModel, Field

from patone.plugins import ssrf
from patone.plugins.hookspecs import hookimpl
from patone.plugins.loops import closes_with_loop
from patone.plugins.types import (
    Delivery,
    DeliveryFailed,
    EmailMessage,
    NetworkTarget,
    PluginInfo,
    SecretFor,
    UserError,
)

NAME = "email-smtp"
POOL_SIZE = 8
IDLE_SECONDS = 30.0
CLOSING = 421  # "service not available, closing transmission channel"


class SmtpSettings(BaseModel):
    host: Annotated[str, NetworkTarget("host", port="port")] = Field(min_length=1, max_length=255)
    port: int = Field(587, ge=1, le=65535)
    username: str = ""
    # A change of security too: dropping to "none" would send the kept password in clear text.
    password: Annotated[str, SecretFor("host", "security")] = ""
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


# Built with the stdlib's older MIME classes and generator (compat32): six times cheaper than
# `EmailMessage` and its header registry, which parsed and re-folded every header (2.8 ms of
# CPU per message, the largest cost of a notification). Bodies are base64 (C-speed) UTF-8;
# headers with non-ASCII text are RFC 2047 encoded first. Non-ASCII addresses (SMTPUTF8) take
# the modern, slower path, which knows how to write them.
_UTF8 = Charset("utf-8")
_UTF8.body_encoding = BASE64
_WIRE = compat32.clone(linesep="\r\n")


def _header(value: str) -> str | Header:
    return value if value.isascii() else Header(value, "utf-8")


def _text_part(body: str, subtype: str) -> Message:
    part = MIMENonMultipart("text", subtype, charset="utf-8")
    part.set_payload(body, _UTF8)
    return part


def build(message: EmailMessage, settings: SmtpSettings, domain: str) -> tuple[bytes, str]:
    """The message as SMTP `DATA` bytes, and its Message-ID."""
    message_id = (
        f"<{message.message_id}@{domain}>" if message.message_id else email.utils.make_msgid()
    )
    addresses = (message.to, settings.from_address, message.reply_to or "")
    if not all(address.isascii() for address in addresses):
        return _build_international(message, settings, message_id), message_id
    mime: Message = _text_part(message.text, "plain")
    if message.html:
        mime = MIMEMultipart("alternative", _subparts=[mime, _text_part(message.html, "html")])
    mime["From"] = email.utils.formataddr(
        (settings.from_name, settings.from_address), charset="utf-8"
    )
    mime["To"] = message.to
    mime["Subject"] = _header(message.subject)  # type: ignore[assignment]  # compat32 takes a Header
    mime["Date"] = email.utils.formatdate(localtime=False)
    mime["Message-ID"] = message_id
    if message.reply_to:
        mime["Reply-To"] = message.reply_to
    return mime.as_bytes(policy=_WIRE), message_id


def _build_international(message: EmailMessage, settings: SmtpSettings, message_id: str) -> bytes:
    mime = MimeMessage()
    mime["From"] = email.utils.formataddr((settings.from_name, settings.from_address))
    mime["To"] = message.to
    mime["Subject"] = message.subject
    mime["Date"] = email.utils.formatdate(localtime=False)
    mime["Message-ID"] = message_id
    if message.reply_to:
        mime["Reply-To"] = message.reply_to
    mime.set_content(message.text)
    if message.html:
        mime.add_alternative(message.html, subtype="html")
    return mime.as_bytes()


_Key = tuple[str, int, str, str, str, float]
_Idle = list[tuple[aiosmtplib.SMTP, float]]
_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[_Key, _Idle]] = (
    weakref.WeakKeyDictionary()
)


def _idle(settings: SmtpSettings) -> _Idle:
    """This event loop's idle connections to the settings' server, as their account."""
    key = (
        settings.host,
        settings.port,
        settings.username,
        settings.password,
        settings.security,
        settings.timeout,
    )
    return _pools.setdefault(asyncio.get_running_loop(), {}).setdefault(key, [])


async def _connection(settings: SmtpSettings) -> tuple[aiosmtplib.SMTP, bool]:
    """A connected client, and whether it was reused from the pool."""
    idle = _idle(settings)
    now = time.monotonic()
    while idle:
        client, since = idle.pop()
        if now - since < IDLE_SECONDS and client.is_connected:
            return client, True
        client.close()
    sock = await _pinned_socket(settings)
    client = aiosmtplib.SMTP(
        hostname=settings.host,  # the name TLS checks the certificate against
        sock=sock,
        local_hostname=await _local_hostname(),
        username=settings.username or None,
        password=settings.password or None,
        use_tls=settings.security == "tls",
        start_tls=settings.security == "starttls",
        timeout=settings.timeout,
    )
    try:
        await client.connect()
    except BaseException:
        sock.close()
        raise
    return client, False


async def _pinned_socket(settings: SmtpSettings) -> socket.socket:
    """A TCP connection to the address the SSRF guard checked for the settings' host.

    The host is resolved once and checked (a company's settings may name any host), and the
    socket connects to that very address: aiosmtplib given the name would resolve it again, and
    the answer could have changed to an address inside our network (DNS rebinding)."""
    address = await asyncio.to_thread(
        ssrf.pinned,
        settings.host.strip("[]"),
        settings.port,
        field="config.host",
        allow_private=ssrf.allow_private_targets(),
    )
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await asyncio.wait_for(
            asyncio.get_running_loop().sock_connect(sock, (address, settings.port)),
            settings.timeout,
        )
    except BaseException:
        sock.close()
        raise
    return sock


_fqdn: str | None = None


async def _local_hostname() -> str:
    """This host's name for EHLO, looked up once per process (aiosmtplib would ask the resolver
    in a thread on every connection)."""
    global _fqdn
    if _fqdn is None:
        _fqdn = await asyncio.to_thread(socket.getfqdn)
    return _fqdn


def _give_back(settings: SmtpSettings, client: aiosmtplib.SMTP) -> None:
    idle = _idle(settings)
    if len(idle) < POOL_SIZE:
        idle.append((client, time.monotonic()))
    else:
        client.close()


@closes_with_loop
async def close_connections() -> None:
    """Close this event loop's pooled SMTP connections."""
    for idle in _pools.pop(asyncio.get_running_loop(), {}).values():
        for client, _ in idle:
            client.close()


def _stale(error: Exception) -> bool:
    """A pooled connection the server closed while it sat idle (nothing was sent on it)."""
    if isinstance(error, aiosmtplib.SMTPResponseException):
        return error.code == CLOSING
    return isinstance(error, aiosmtplib.SMTPServerDisconnected | ConnectionError)


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
    data, message_id = build(message, settings, domain)
    while True:
        client: aiosmtplib.SMTP | None = None
        reused = sending_data = False
        try:
            client, reused = await _connection(settings)
            await client.mail(settings.from_address)
            await client.rcpt(message.to)
            sending_data = True
            await client.data(data)
        except Exception as error:
            if client is not None:
                client.close()  # its state is unknown: never reused
            if reused and not sending_data and _stale(error):
                continue  # nothing was sent: the message goes out on a fresh connection
            raise _failure(error, sending_data) from error
        _give_back(settings, client)
        return Delivery(provider=NAME, status="sent", provider_id=message_id)


def _failure(error: Exception, sending_data: bool) -> Exception:
    if isinstance(error, UserError):  # the SSRF guard: nothing was sent
        refused = error.code == "forbidden_address"  # a name that does not resolve may come back
        return DeliveryFailed(f"not sent: {error.message}", permanent=refused)
    if isinstance(error, aiosmtplib.SMTPResponseException):
        # An answer from the server: it did not take the message.
        return DeliveryFailed(f"SMTP {error.code}: {error.message}", permanent=error.code >= 500)
    if not isinstance(error, aiosmtplib.SMTPException | OSError):
        return error  # not a delivery problem: a bug, reported as it is
    if sending_data:
        return DeliveryFailed(f"no answer after the message was sent: {error}", ambiguous=True)
    return DeliveryFailed(f"SMTP server unreachable: {error}")
