"""Email through the real SMTP protocol to a local aiosmtpd server; the log as the fallback."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from patone.core.runtime.errors import UserError, ValidationFailed
from patone.plugins import config as plugins
from patone.plugins.builtin import email_smtp
from patone.plugins.secrets import MASK
from patone.plugins.types import EmailMessage
from patone.tenants.registry import TenantInfo
from tests.conftest import actor_for
from tests.fakes import FakeDns
from tests.support import plugin_runtime
from tests.test_embedded import _free_port

ADMIN = actor_for("admin")


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], Message]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


@pytest.fixture
def runtime() -> Iterator[plugins.PluginRuntime]:
    """The installed plugins; private addresses allowed (the operator's setting) for the local
    SMTP server."""
    with plugin_runtime() as current:
        yield current


async def test_a_company_with_smtp_sends_real_mail_and_others_fall_back_to_the_log(
    two_tenants: tuple[TenantInfo, TenantInfo],
    smtp: tuple[Inbox, int],
    runtime: plugins.PluginRuntime,
    caplog: pytest.LogCaptureFixture,
) -> None:
    acme, bolt = two_tenants
    inbox, port = smtp
    state = await plugins.configure_plugin(
        acme,
        ADMIN,
        "email-smtp",
        enabled=True,
        config={
            "host": "127.0.0.1",
            "port": port,
            "security": "none",
            "from_address": "dispatch@acme.example.com",
            "from_name": "Acme Towing",
            "password": "unused-secret",
        },
    )
    assert state.config["password"] == "********"
    message = EmailMessage(
        to="ann@example.com",
        subject="Your tow truck is on its way",
        text="Tom will be with you in 12 minutes.",
        html="<p>Tom will be with you in <b>12 minutes</b>.</p>",
        message_id="notification-42",
    )
    sent = await plugins.call_first(acme, "send_email", message=message)
    assert sent is not None and sent.plugin == "email-smtp" and sent.value.status == "sent"
    [(sender, recipients, received)] = inbox.messages
    assert sender == "dispatch@acme.example.com" and recipients == ["ann@example.com"]
    assert received["Subject"] == "Your tow truck is on its way"
    assert received["From"] == "Acme Towing <dispatch@acme.example.com>"
    assert received["Message-ID"] == "<notification-42@acme.example.com>"
    parts = {part.get_content_type(): part.get_payload(decode=True) for part in received.walk()}
    assert b"12 minutes" in parts["text/plain"] and b"<b>12 minutes</b>" in parts["text/html"]

    with caplog.at_level("INFO", logger="patone.email"):
        logged = await plugins.call_first(bolt, "send_email", message=message)
    assert logged is not None and logged.plugin == "email-log"
    assert logged.value.status == "logged"
    assert len(inbox.messages) == 1  # bolt's mail never reached acme's server
    assert any("ann@example.com" in r.getMessage() for r in caplog.records)


async def test_an_unreachable_server_falls_back_and_is_reported(
    two_tenants: tuple[TenantInfo, TenantInfo], runtime: plugins.PluginRuntime
) -> None:
    acme, _ = two_tenants
    await plugins.configure_plugin(
        acme,
        ADMIN,
        "email-smtp",
        enabled=True,
        config={"host": "127.0.0.1", "port": _free_port(), "security": "none",
                "from_address": "x@acme.example.com", "timeout": 1},
    )  # fmt: skip
    message = EmailMessage(to="a@example.com", subject="s", text="t")
    results = await plugins.call_all(acme, "send_email", message=message)
    by_plugin = {r.plugin: r for r in results}
    assert by_plugin["email-smtp"].error is not None
    answer = await plugins.call_first(acme, "send_email", message=message)
    assert answer is not None and answer.plugin == "email-log"


def _settings(port: int, host: str = "127.0.0.1", **more: Any) -> dict[str, Any]:
    return {
        "host": host,
        "port": port,
        "security": "none",
        "from_address": "dispatch@acme.example.com",
        "timeout": 2,
        **more,
    }


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "100.100.100.200", "::ffff:169.254.169.254", "64:ff9b::a00:1", "mx.acme.example"],
)
async def test_an_smtp_host_inside_our_network_is_refused(
    two_tenants: tuple[TenantInfo, TenantInfo],
    runtime: plugins.PluginRuntime,
    dns: FakeDns,
    host: str,
) -> None:
    acme, bolt = two_tenants
    dns.answer("mx.acme.example", "93.184.216.34,10.0.0.25")
    runtime.allow_private_urls = False
    with pytest.raises(UserError) as refused:
        await plugins.configure_plugin(
            acme, ADMIN, "email-smtp", enabled=True, config=_settings(25, host)
        )
    assert (refused.value.code, refused.value.field) == ("forbidden_address", "config.host")
    for tenant in (acme, bolt):
        assert await plugins.saved_config(tenant, "email-smtp") == {}


async def test_a_new_host_or_port_needs_the_password_entered_again(
    two_tenants: tuple[TenantInfo, TenantInfo],
    smtp: tuple[Inbox, int],
    runtime: plugins.PluginRuntime,
) -> None:
    acme, bolt = two_tenants
    _inbox, port = smtp
    await plugins.configure_plugin(
        acme, ADMIN, "email-smtp", enabled=True, config=_settings(port, password="real-secret")
    )
    await plugins.configure_plugin(
        bolt, ADMIN, "email-smtp", enabled=True, config=_settings(port, password="bolts-own")
    )
    attempts: list[tuple[dict[str, Any], str]] = [
        (
            _settings(port, "198.51.100.7", password=MASK),
            "enter the password again: the host changed",
        ),
        (_settings(port, "198.51.100.7"), "enter the password again: the host changed"),
        (_settings(2525, password=MASK), "enter the password again: the port changed"),
        ({"host": "198.51.100.7"}, "enter the password again: the host changed"),
        (
            _settings(port, security="tls", password=MASK),
            "enter the password again: the security changed",
        ),
    ]
    for config, message in attempts:
        with pytest.raises(ValidationFailed) as refused:
            await plugins.configure_plugin(acme, ADMIN, "email-smtp", config=config)
        assert [(e.code, e.field, e.message) for e in refused.value.errors] == [
            ("secret_required", "config.password", message)
        ]
    kept = await plugins.saved_config(acme, "email-smtp")
    assert (kept["host"], kept["port"], kept["password"]) == ("127.0.0.1", port, "real-secret")
    # Other settings change with the password masked; a new host takes a new password.
    await plugins.configure_plugin(
        acme, ADMIN, "email-smtp", config={"from_name": "Acme", "password": MASK}
    )
    await plugins.configure_plugin(
        acme, ADMIN, "email-smtp", config=_settings(port, "localhost", password="another")
    )
    moved = await plugins.saved_config(acme, "email-smtp")
    assert (moved["host"], moved["password"]) == ("localhost", "another")
    assert (await plugins.saved_config(bolt, "email-smtp"))["password"] == "bolts-own"


async def test_a_host_that_turns_private_after_saving_gets_nothing(
    two_tenants: tuple[TenantInfo, TenantInfo],
    smtp: tuple[Inbox, int],
    runtime: plugins.PluginRuntime,
    dns: FakeDns,
) -> None:
    acme, _ = two_tenants
    inbox, port = smtp
    runtime.allow_private_urls = False
    dns.answer("mail.acme.example", "93.184.216.34", "127.0.0.1")  # DNS rebinding
    await plugins.configure_plugin(
        acme,
        ADMIN,
        "email-smtp",
        enabled=True,
        config=_settings(port, "mail.acme.example", username="acme", password="real-secret"),
    )
    message = EmailMessage(to="a@example.com", subject="s", text="t")
    results = await plugins.call_all(acme, "send_email", message=message)
    error = {r.plugin: r for r in results}["email-smtp"].error
    assert error is not None and "private or local address (127.0.0.1, loopback)" in error
    assert inbox.messages == []


async def test_smtp_connects_to_the_address_that_was_checked(
    two_tenants: tuple[TenantInfo, TenantInfo],
    smtp: tuple[Inbox, int],
    runtime: plugins.PluginRuntime,
    dns: FakeDns,
) -> None:
    acme, bolt = two_tenants
    inbox, port = smtp
    # A second look-up would answer an address nothing listens on.
    dns.answer("mail.acme.example", "127.0.0.1", "10.255.255.1")
    await plugins.configure_plugin(
        acme, ADMIN, "email-smtp", enabled=True, config=_settings(port, "mail.acme.example")
    )
    message = EmailMessage(to="a@example.com", subject="pinned", text="t")
    sent = await plugins.call_first(acme, "send_email", message=message)
    assert sent is not None and sent.plugin == "email-smtp" and sent.value.status == "sent"
    assert [m[2]["Subject"] for m in inbox.messages] == ["pinned"]
    assert dns.lookups["mail.acme.example"] == 1
    logged = await plugins.call_first(bolt, "send_email", message=message)
    assert logged is not None and logged.plugin == "email-log"


class Sessions(Inbox):
    """An inbox that also counts the SMTP connections made to it."""

    def __init__(self) -> None:
        super().__init__()
        self.connections = 0

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        self.connections += 1
        session.host_name = hostname
        return responses


async def test_connections_are_reused_and_one_the_server_closed_is_replaced(
    two_tenants: tuple[TenantInfo, TenantInfo], runtime: plugins.PluginRuntime
) -> None:
    from patone.plugins.builtin import email_smtp

    acme, bolt = two_tenants
    inbox, port = Sessions(), _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    config = {"host": "127.0.0.1", "port": port, "security": "none",
              "from_address": "dispatch@acme.example.com"}  # fmt: skip
    await plugins.configure_plugin(acme, ADMIN, "email-smtp", enabled=True, config=config)

    def message(n: int) -> EmailMessage:
        return EmailMessage(to="ann@example.com", subject=f"#{n}", text="hi", message_id=f"m{n}")

    try:
        for n in range(3):
            sent = await plugins.call_first(
                acme, "send_email", fall_through=False, message=message(n)
            )
            assert sent is not None and sent.value.status == "sent"
        assert inbox.connections == 1  # one connection, three messages
        # The server goes away and comes back: the pooled connection is dead, and fails
        # before the message is sent, so the message goes out once, on a new connection.
        controller.stop()
        controller = Controller(inbox, hostname="127.0.0.1", port=port)
        controller.start()
        sent = await plugins.call_first(acme, "send_email", fall_through=False, message=message(3))
        assert sent is not None and sent.error is None and sent.value.status == "sent"
        assert [m["Subject"] for _, _, m in inbox.messages] == ["#0", "#1", "#2", "#3"]
        assert inbox.connections == 2
        # Bolt has no SMTP server configured: its mail goes to the log, not on Acme's connection.
        logged = await plugins.call_first(bolt, "send_email", message=message(4))
        assert logged is not None and logged.plugin == "email-log"
        assert len(inbox.messages) == 4
    finally:
        controller.stop()
        email_smtp._pools.clear()


@pytest.mark.parametrize("html", ["<p>Jos\u00e9 is <b>12 minutes</b> away \u2014 \u2713</p>", None])
@pytest.mark.parametrize("to", ["ann@example.com", "j\u00fcrgen@b\u00fccher.example"])
def test_messages_read_back_as_written_whatever_their_characters(html: str | None, to: str) -> None:
    settings = email_smtp.SmtpSettings(
        host="smtp.example.com",
        from_address="dispatch@acme.example.com",
        from_name="Gr\u00fcn, Abschlepp",
    )
    message = EmailMessage(
        to=to,
        subject="Jos\u00e9 is on his way \u2014 a subject long enough to be folded onto two lines",
        text="Jos\u00e9 is 12 minutes away.\nCall us: +1 555 0100",
        html=html,
        reply_to="help@acme.example.com",
        message_id="notification-acme-7",
    )
    data, message_id = email_smtp.build(message, settings, "acme.example.com")
    assert message_id == "<notification-acme-7@acme.example.com>"
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert parsed["Subject"] == message.subject
    assert parsed["From"].addresses[0].display_name == "Gr\u00fcn, Abschlepp"
    assert parsed["From"].addresses[0].addr_spec == "dispatch@acme.example.com"
    assert parsed["Reply-To"] == "help@acme.example.com"
    assert parsed["Message-ID"] == message_id
    assert parsed.get_body(("plain",)).get_content().strip() == message.text
    if html:
        assert parsed.get_content_type() == "multipart/alternative"
        assert parsed.get_body(("html",)).get_content().strip() == html
    else:
        assert parsed.get_content_type() == "text/plain"
