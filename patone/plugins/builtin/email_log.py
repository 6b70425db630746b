"""Email printed to the log: the default when a company has no email provider (development,
the embedded default). Never used when a real provider answers first."""

from __future__ import annotations

import logging

from patone.plugins.hookspecs import hookimpl
from patone.plugins.types import Delivery, EmailMessage, PluginInfo, TenantView

NAME = "email-log"
log = logging.getLogger("patone.email")


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(
        name=NAME,
        title="Email to the log",
        description="Writes emails to the server log instead of sending them.",
        default_enabled=True,
    )


@hookimpl(trylast=True)
def send_email(tenant: TenantView, message: EmailMessage) -> Delivery:
    log.info(
        "email to %s: %s",
        message.to,
        message.subject,
        extra={"tenant": tenant.slug, "to": message.to, "body": message.text[:2000]},
    )
    return Delivery(provider=NAME, status="logged", provider_id=message.message_id)
