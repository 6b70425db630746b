"""Sending one notification: claimed in Postgres, sent through the tenant's provider, logged.

`send_notification` is a tenant job per `notifications` row (message id
`notification-<tenant>-<id>`). It never holds a transaction open during the provider call:

1. **claim**: lock the row; if it is finished (sent, failed, suppressed, ...) the message is a
   duplicate and does nothing; if another attempt holds a live lease it retries later; else the
   row becomes `sending` with a lease (longer than any provider call may take) and one more
   attempt. A row found `sending` with an expired lease means an attempt died during its call
   (worker killed): the provider may have taken the message, so this attempt is *ambiguous*;
2. **send** through the tenant's provider for the channel, with no fallback (an email "sent to
   the log" because the SMTP server is down for a minute would be a lost email);
3. **record** the outcome: `sent` / `logged` / `opted_out` with the provider's id and status;
   `failed` for a permanent refusal (no retry); otherwise `retrying` and the job raises so
   Dramatiq retries it with back-off, until the last attempt makes it `dead` (and a dead
   letter) within about five minutes.

SMTP and Twilio take no idempotency key, so an attempt whose answer was lost or timed out may
have delivered the message. `AMBIGUOUS_POLICY` decides per channel: "retry" (a roadside customer
would rather get "your driver is on the way" twice than never; each such retry is counted in
`ambiguous_attempts`) or "give_up" (marked `unknown`). A provider's delivery-status callback
that arrives for such a message marks it sent, so its pending retry finds it done.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

import dramatiq

from patone.core.db import engine
from patone.core.jobs import current_job, tenant_actor
from patone.plugins import config as plugins
from patone.plugins.types import Delivery, DeliveryFailed, EmailMessage, PluginResult, SmsMessage
from patone.tenants.isolation import TenantRef, tenant_transaction

log = logging.getLogger(__name__)

MAX_RETRIES = 8  # 1 + 2 + 4 + ... + 60 s of back-off: dead-lettered within ~5 minutes
TIME_LIMIT_MS = 120_000
AMBIGUOUS_POLICY: dict[str, Literal["retry", "give_up"]] = {
    "email": "retry",
    "sms": "retry",
    "push": "retry",
}
# Statuses a send job leaves alone (a duplicate message finds one of these and stops).
FINISHED = frozenset(
    {
        "sent",
        "logged",
        "delivered",
        "undelivered",
        "opted_out",
        "failed",
        "unknown",
        "no_address",
        "no_provider",
        "no_device",
        "suppressed",
    }
)
HOOKS = {"email": "send_email", "sms": "send_sms", "push": "send_push"}


class NotificationBusy(dramatiq.Retry):
    """Another attempt holds this notification's lease: try again shortly."""


class SendFailed(dramatiq.Retry):
    """The provider did not take the message this time: Dramatiq retries the job with its
    back-off (a `Retry`: expected, so logged in one line, not with a traceback)."""


@dataclass(frozen=True)
class Outcome:
    status: str
    provider: str = ""
    provider_id: str = ""
    provider_status: str = ""
    error: str = ""
    ambiguous: bool = False

    @property
    def retry(self) -> bool:
        return self.status == "retrying"


def lease_seconds() -> float:
    """How long an attempt holds a notification: past the plugin manager's time-out for the
    provider call (an attempt found holding it later than this has died)."""
    return plugins.get_runtime().manager.timeout * 2 + 5


def message_id(slug: str, notification_id: int) -> str:
    return f"notification-{slug}-{notification_id}"


def parse_message_id(slug: str, value: str) -> int | None:
    """The notification id in one of our message ids for this tenant, else None."""
    prefix = f"notification-{slug}-"
    tail = value.removeprefix(prefix)
    return int(tail) if value.startswith(prefix) and tail.isdigit() else None


def enqueue_sends(broker: dramatiq.Broker, slug: str, ids: list[int]) -> None:
    """Queue a send job per notification (synchronous: call it from a thread)."""
    actor = send_notification.bind(broker)
    for notification_id in ids:
        message = actor.message(slug, notification_id).copy(
            message_id=message_id(slug, notification_id)
        )
        broker.enqueue(message)


async def _claim(tenant: TenantRef, notification_id: int) -> dict[str, Any] | None:
    """Take the notification for this attempt; None when there is nothing to do.

    The usual case is one statement: lock the row, and take it unless it is finished or
    another attempt's lease is alive. Only when it is not taken does a second look say why."""
    give_up = [channel for channel, policy in AMBIGUOUS_POLICY.items() if policy == "give_up"]
    async with tenant_transaction(tenant):
        rows = await engine.fetch(
            "UPDATE notifications n SET status = 'sending', attempts = n.attempts + 1, "
            "ambiguous_attempts = n.ambiguous_attempts + (c.status = 'sending')::int, "
            "lease_until = now() + make_interval(secs => $2), updated_at = now() "
            "FROM (SELECT id, status FROM notifications WHERE id = $1 FOR UPDATE) c "
            "WHERE n.id = c.id AND c.status <> ALL($3::text[]) AND NOT (c.status = 'sending' "
            "AND (n.lease_until > now() OR n.channel = ANY($4::text[]))) "
            "RETURNING n.id, c.status AS previous, n.channel, n.address, n.subject, n.body, "
            "n.html, n.recipient_kind, n.recipient_id, n.event, n.entity_id",
            notification_id,
            lease_seconds(),
            list(FINISHED),
            give_up,
        )
        if rows:
            return dict(rows[0])
        found = await engine.fetch(
            "SELECT status, lease_until > now() AS leased FROM notifications WHERE id = $1",
            notification_id,
        )
        if not found or found[0]["status"] != "sending":
            return None  # gone or finished: a duplicate message
        if found[0]["leased"]:
            raise NotificationBusy(f"notification {notification_id} is being sent")
        # An attempt died during its call and this channel's policy is to give up.
        await engine.execute(
            "UPDATE notifications SET status = 'unknown', lease_until = NULL, "
            "ambiguous_attempts = ambiguous_attempts + 1, updated_at = now(), "
            "error = 'an attempt stopped during the provider call' WHERE id = $1",
            notification_id,
        )
    return None


def _failure(channel: str, result: PluginResult) -> Outcome:
    error = result.error or "failed"
    exception = result.exception
    if result.skipped:  # circuit open: the provider was not called
        return Outcome("retrying", provider=result.plugin, error=error)
    if isinstance(exception, DeliveryFailed):
        if exception.permanent:
            return Outcome("failed", provider=result.plugin, error=error)
        if not exception.ambiguous:
            return Outcome("retrying", provider=result.plugin, error=error)
    # Ambiguous: a lost answer, a time-out, or an exception the plugin did not explain.
    status = "retrying" if AMBIGUOUS_POLICY[channel] == "retry" else "unknown"
    return Outcome(status, provider=result.plugin, error=error, ambiguous=True)


def _delivered(delivery: Delivery) -> Outcome:
    status = delivery.status if delivery.status in ("logged", "opted_out") else "sent"
    return Outcome(
        status,
        provider=delivery.provider,
        provider_id=delivery.provider_id,
        provider_status=delivery.status,
    )


async def _send(tenant: TenantRef, row: dict[str, Any], our_id: str) -> Outcome:
    channel = row["channel"]
    if channel == "push":
        return await _push(tenant, row, our_id)
    message: EmailMessage | SmsMessage
    if channel == "email":
        message = EmailMessage(
            to=row["address"],
            subject=row["subject"],
            text=row["body"],
            html=row["html"] or None,
            message_id=our_id,
        )
    else:
        message = SmsMessage(to=row["address"], body=row["body"], message_id=our_id)
    result = await plugins.call_first(tenant, HOOKS[channel], fall_through=False, message=message)
    if result is None:
        return Outcome("no_provider", error=f"no {channel} provider is enabled")
    if result.error is not None or result.skipped:
        return _failure(channel, result)
    return _delivered(result.value)


async def _push(tenant: TenantRef, row: dict[str, Any], our_id: str) -> Outcome:
    from patone.core import push  # the push module needs the plugin runtime's key store

    owner_kind, _, owner_id = row["address"].partition(":")
    try:
        deliveries = await push.send_to_owner(
            tenant,
            owner_kind,
            int(owner_id),
            title=row["subject"],
            body=row["body"],
            url="",
            tag=f"{row['event']}:{row['entity_id']}",
            message_id=our_id,
        )
    except DeliveryFailed as error:
        return _failure("push", PluginResult(plugin="push", error=str(error), exception=error))
    live = [d for d in deliveries if d.status != "expired"]
    if not live:
        return Outcome("no_device", error="no device of the recipient takes push messages")
    return Outcome(
        "sent",
        provider=live[0].provider,
        provider_id=",".join(d.provider_id for d in live if d.provider_id)[:200],
        provider_status=f"{len(live)} device(s)",
    )


async def _record(
    tenant: TenantRef, notification_id: int, outcome: Outcome, last_attempt: bool
) -> str:
    status = outcome.status
    if outcome.retry and last_attempt:
        status = "dead"
    async with tenant_transaction(tenant):
        # A delivery report may have come while we were sending (only a report changes a
        # `sending` row): keep what it learnt, even when our own answer was lost.
        rows = await engine.fetch(
            "UPDATE notifications SET "
            "status = CASE WHEN status IN ('sent', 'delivered', 'undelivered') THEN status "
            "ELSE $2 END, "
            "provider = $3, provider_id = CASE WHEN $4 = '' THEN provider_id ELSE $4 END, "
            "provider_status = CASE WHEN provider_status = '' OR $5 <> '' THEN $5 "
            "ELSE provider_status END, error = $6, "
            "ambiguous_attempts = ambiguous_attempts + $7, lease_until = NULL, "
            "sent_at = CASE WHEN $2 IN ('sent', 'logged') THEN now() ELSE sent_at END, "
            "updated_at = now() WHERE id = $1 RETURNING status",
            notification_id,
            status,
            outcome.provider,
            outcome.provider_id,
            outcome.provider_status,
            outcome.error[:2000],
            1 if outcome.ambiguous else 0,
        )
    return str(rows[0]["status"]) if rows else status


@tenant_actor(
    actor_name="patone.notifications.send",
    queue_name="notifications",
    transaction=False,
    max_retries=MAX_RETRIES,
    min_backoff=1_000,
    max_backoff=60_000,
    time_limit=TIME_LIMIT_MS,
)
async def send_notification(tenant_slug: str, notification_id: int) -> str:
    """Send one notification (see the module docs); returns its status after this attempt."""
    job = current_job()
    claimed = await _claim(job.tenant, notification_id)
    if claimed is None:
        return "duplicate"
    try:
        outcome = await _send(job.tenant, claimed, message_id(tenant_slug, notification_id))
    except Exception as error:  # our own failure: the provider may or may not have been called
        log.exception("sending a notification failed", extra={"tenant": tenant_slug})
        outcome = Outcome("retrying", error=f"{type(error).__name__}: {error}", ambiguous=True)
    status = await _record(job.tenant, notification_id, outcome, job.retries >= MAX_RETRIES)
    if status in ("retrying", "dead"):
        raise SendFailed(f"notification {notification_id}: {outcome.error}")
    return status
