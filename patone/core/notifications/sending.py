"""Sending notifications: claimed in Postgres, sent through the tenant's provider, logged.

`send_notifications` is a tenant job for a batch of up to `BATCH` `notifications` rows (message
id `notifications-<tenant>-<first id>-<last id>-<count>`; a batch of one is
`notification-<tenant>-<id>`, the id the provider sees for that notification). It never holds a
transaction open during the provider calls, and costs two statements per batch, not per row:

1. **claim** the batch in one statement: lock the rows in id order; a row that is finished
   (sent, failed, suppressed, ...) is left alone (a duplicate message, or a retry of the batch
   after that row went out); a row another attempt holds with a live lease is left for later;
   every other row becomes `sending` with a lease (longer than the batch's provider calls may
   take) and one more attempt. A row found `sending` with an expired lease means an attempt died
   during its call (worker killed): the provider may have taken the message, so this attempt is
   *ambiguous*;
2. **send** each claimed row through the tenant's provider for its channel, `CONCURRENCY` at
   once, with no fallback (an email "sent to the log" because the SMTP server is down for a
   minute would be a lost email);
3. **record** every outcome in one statement: `sent` / `logged` / `opted_out` with the
   provider's id and status; `failed` for a permanent refusal (no retry); otherwise `retrying`,
   and the job raises so Dramatiq retries the batch with back-off (its next attempt claims only
   the rows still unfinished), until the last attempt makes them `dead` (and the batch a dead
   letter) within about five minutes.

SMTP and Twilio take no idempotency key, so an attempt whose answer was lost or timed out may
have delivered the message. `AMBIGUOUS_POLICY` decides per channel: "retry" (a roadside customer
would rather get "your driver is on the way" twice than never; each such retry is counted in
`ambiguous_attempts`) or "give_up" (marked `unknown`). A provider's delivery-status callback
that arrives for such a message marks it sent, so its pending retry finds it done.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass
from typing import Any, Literal

import dramatiq

from patone.core.runtime.db import engine
from patone.core.work.jobs import current_job, tenant_actor
from patone.plugins import config as plugins
from patone.plugins.manager import QUEUE_WAIT
from patone.plugins.types import Delivery, DeliveryFailed, EmailMessage, PluginResult, SmsMessage
from patone.tenants.isolation import TenantRef, tenant_transaction

log = logging.getLogger(__name__)

BATCH = 100  # notifications per send job
# Provider calls in flight per send job. A worker runs a job per thread, so a process may have
# threads x this many calls open at once: 20 overloaded the benchmark's fakes (connections
# refused before the call, so more retries and a few dead letters); 12 keeps the load of the
# earlier batches of 50.
CONCURRENCY = 12
MAX_RETRIES = 8  # 1 + 2 + 4 + ... + 60 s of back-off: dead-lettered within ~5 minutes
# Longer than the lease of a whole batch (`lease_seconds(BATCH)`: 140 s with the default 5 s
# plugin time-out), so a job is not stopped while its rows are still leased to it.
TIME_LIMIT_MS = 180_000
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


def lease_seconds(count: int) -> float:
    """How long an attempt holds `count` notifications: past the longest their provider calls
    may take (`CONCURRENCY` at a time; a blocking call may wait `QUEUE_WAIT` time-outs for a
    thread, then run one); an attempt found holding them later than this has died."""
    timeout = plugins.get_runtime().manager.timeout
    return timeout * (QUEUE_WAIT + 1) * math.ceil(count / CONCURRENCY) + 5


def message_id(slug: str, notification_id: int) -> str:
    """Our id of one notification, which providers see (and a batch of one is queued as)."""
    return f"notification-{slug}-{notification_id}"


def batch_message_id(slug: str, ids: list[int]) -> str:
    if len(ids) == 1:
        return message_id(slug, ids[0])
    return f"notifications-{slug}-{ids[0]}-{ids[-1]}-{len(ids)}"


def parse_message_id(slug: str, value: str) -> int | None:
    """The notification id in one of our message ids for this tenant, else None."""
    prefix = f"notification-{slug}-"
    tail = value.removeprefix(prefix)
    return int(tail) if value.startswith(prefix) and tail.isdigit() else None


def enqueue_sends(broker: dramatiq.Broker, tenant: TenantRef, ids: list[int]) -> None:
    """Queue send jobs for these notifications, `BATCH` a job (synchronous: call it from a
    thread)."""
    ordered = sorted(ids)
    for start in range(0, len(ordered), BATCH):
        chunk = ordered[start : start + BATCH]
        message = send_notifications.message_on(broker, tenant, chunk).copy(
            message_id=batch_message_id(tenant.slug, chunk)
        )
        broker.enqueue(message)


_CLAIM = (
    "UPDATE notifications n SET status = 'sending', attempts = n.attempts + 1, "
    "ambiguous_attempts = n.ambiguous_attempts + (c.status = 'sending')::int, "
    "lease_until = now() + make_interval(secs => $2), updated_at = now() "
    "FROM (SELECT id, status FROM notifications WHERE id = ANY($1::bigint[]) ORDER BY id "
    "FOR UPDATE) c "
    "WHERE n.id = c.id AND c.status <> ALL($3::text[]) AND NOT (c.status = 'sending' "
    "AND (n.lease_until > now() OR n.channel = ANY($4::text[]))) "
    "RETURNING n.id, c.status AS previous, n.channel, n.address, n.subject, n.body, "
    "n.html, n.recipient_kind, n.recipient_id, n.event, n.entity_id"
)


@dataclass(frozen=True)
class Claimed:
    rows: list[dict[str, Any]]  # taken by this attempt, in id order
    busy: list[int]  # held by another live attempt: look again later
    skipped: dict[int, str]  # left alone, with why: "duplicate" (finished or gone), "unknown"


async def _claim(tenant: TenantRef, ids: list[int]) -> Claimed:
    """Take the batch's notifications for this attempt (see the module docs).

    The usual case is one statement: lock the rows, and take those neither finished nor held
    by another attempt's live lease. Only when some are not taken does a second look say why."""
    give_up = [channel for channel, policy in AMBIGUOUS_POLICY.items() if policy == "give_up"]
    async with tenant_transaction(tenant):
        rows = [
            dict(row)
            for row in await engine.fetch(
                _CLAIM, ids, lease_seconds(len(ids)), list(FINISHED), give_up
            )
        ]
        taken = {row["id"] for row in rows}
        rest = [i for i in ids if i not in taken]
        if not rest:
            return Claimed(rows, [], {})
        found = await engine.fetch(
            "SELECT id, channel, status, lease_until > now() AS leased FROM notifications "
            "WHERE id = ANY($1::bigint[])",
            rest,
        )
        skipped = {i: "duplicate" for i in rest}  # gone or finished: a duplicate message
        busy, dead = [], []
        for row in found:
            if row["status"] != "sending":
                continue
            if row["leased"]:
                busy.append(row["id"])
                del skipped[row["id"]]
            else:  # an attempt died during its call and this channel's policy is to give up
                dead.append(row["id"])
                skipped[row["id"]] = "unknown"
        if dead:
            await engine.execute(
                "UPDATE notifications SET status = 'unknown', lease_until = NULL, "
                "ambiguous_attempts = ambiguous_attempts + 1, updated_at = now(), "
                "error = 'an attempt stopped during the provider call' "
                "WHERE id = ANY($1::bigint[])",
                dead,
            )
    return Claimed(rows, sorted(busy), skipped)


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


async def _send(
    tenant: TenantRef, row: dict[str, Any], our_id: str, enabled: dict[str, dict[str, Any]]
) -> Outcome:
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
    result = await plugins.call_first(
        tenant, HOOKS[channel], fall_through=False, enabled=enabled, message=message
    )
    if result is None:
        return Outcome("no_provider", error=f"no {channel} provider is enabled")
    if result.error is not None or result.skipped:
        return _failure(channel, result)
    return _delivered(result.value)


def _unprovided(rows: list[dict[str, Any]], enabled: dict[str, dict[str, Any]]) -> bool:
    """Whether some email or SMS among `rows` has no enabled plugin to send it."""
    manager = plugins.get_runtime().manager
    return any(
        not manager.implementers(HOOKS[channel]) & set(enabled)
        for channel in {row["channel"] for row in rows} - {"push"}
    )


async def _push(tenant: TenantRef, row: dict[str, Any], our_id: str) -> Outcome:
    from patone.core.domain import push  # the push module needs the plugin runtime's key store

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


_RECORD = (
    # A delivery report may have come while we were sending (only a report changes a `sending`
    # row): keep what it learnt, even when our own answer was lost.
    "UPDATE notifications n SET "
    "status = CASE WHEN n.status IN ('sent', 'delivered', 'undelivered') THEN n.status "
    "ELSE o.status END, "
    "provider = o.provider, "
    "provider_id = CASE WHEN o.provider_id = '' THEN n.provider_id ELSE o.provider_id END, "
    "provider_status = CASE WHEN n.provider_status = '' OR o.provider_status <> '' "
    "THEN o.provider_status ELSE n.provider_status END, error = o.error, "
    "ambiguous_attempts = n.ambiguous_attempts + o.ambiguous, lease_until = NULL, "
    "sent_at = CASE WHEN o.status IN ('sent', 'logged') THEN now() ELSE n.sent_at END, "
    "updated_at = now() "
    "FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], "
    "$7::int[]) AS o(id, status, provider, provider_id, provider_status, error, ambiguous) "
    "WHERE n.id = o.id RETURNING n.id, n.status"
)


async def _record(
    tenant: TenantRef, outcomes: dict[int, Outcome], last_attempt: bool
) -> dict[int, str]:
    """Write every outcome of this attempt in one statement; returns each row's status."""
    ids = sorted(outcomes)
    statuses = ["dead" if outcomes[i].retry and last_attempt else outcomes[i].status for i in ids]
    async with tenant_transaction(tenant):
        rows = await engine.fetch(
            _RECORD,
            ids,
            statuses,
            [outcomes[i].provider for i in ids],
            [outcomes[i].provider_id for i in ids],
            [outcomes[i].provider_status for i in ids],
            [outcomes[i].error[:2000] for i in ids],
            [1 if outcomes[i].ambiguous else 0 for i in ids],
        )
    recorded = dict(zip(ids, statuses, strict=True))
    recorded.update({row["id"]: str(row["status"]) for row in rows})
    return recorded


async def _attempt(
    tenant: TenantRef,
    slug: str,
    row: dict[str, Any],
    slots: asyncio.Semaphore,
    enabled: dict[str, dict[str, Any]],
) -> Outcome:
    try:
        async with slots:
            return await _send(tenant, row, message_id(slug, row["id"]), enabled)
    except Exception as error:  # our own failure: the provider may or may not have been called
        log.exception("sending a notification failed", extra={"tenant": slug})
        return Outcome("retrying", error=f"{type(error).__name__}: {error}", ambiguous=True)


@tenant_actor(
    actor_name="patone.notifications.send",
    queue_name="notifications",
    transaction=False,
    max_retries=MAX_RETRIES,
    min_backoff=1_000,
    max_backoff=60_000,
    time_limit=TIME_LIMIT_MS,
)
async def send_notifications(tenant_slug: str, ids: list[int]) -> dict[int, str]:
    """Send a batch of notifications (see the module docs); returns each one's status after
    this attempt ("duplicate" for one that was already finished, "busy" for one another attempt
    holds)."""
    job = current_job()
    claimed = await _claim(job.tenant, sorted(ids))
    statuses: dict[int, str] = dict(claimed.skipped)
    statuses.update({i: "busy" for i in claimed.busy})
    outcomes: dict[int, Outcome] = {}
    if claimed.rows:
        # The company's providers as they are now, not as this process cached them up to
        # `ENABLED_TTL` ago: an SMS provider turned on just before the event must send it.
        enabled = await plugins.enabled_plugins(job.tenant, fresh=True)
        if _unprovided(claimed.rows, enabled):
            # Those would end as `no_provider` for good: as the database says, not a copy.
            enabled = await plugins.enabled_plugins(job.tenant, fresh=True, reread=True)
        slots = asyncio.Semaphore(CONCURRENCY)
        sent = await asyncio.gather(
            *(_attempt(job.tenant, tenant_slug, row, slots, enabled) for row in claimed.rows)
        )
        outcomes = {row["id"]: outcome for row, outcome in zip(claimed.rows, sent, strict=True)}
        statuses.update(await _record(job.tenant, outcomes, job.retries >= MAX_RETRIES))
    again = sorted(i for i, status in statuses.items() if status in ("retrying", "dead", "busy"))
    if again:  # the batch is tried again (its last attempt becomes a dead letter)
        failed = [i for i in again if statuses[i] != "busy"]
        if not failed:
            raise NotificationBusy(f"notifications {again} are being sent")
        errors = {f"{outcomes[i].provider or 'ours'}: {outcomes[i].error}" for i in failed}
        raise SendFailed(f"{len(failed)} notification(s) not sent yet: {'; '.join(errors)}")
    return statuses
