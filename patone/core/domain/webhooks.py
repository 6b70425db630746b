"""Outbound webhooks: a company's partners get its domain events as signed HTTP POSTs.

- **Endpoints** (`webhook_endpoints`): a URL (checked against server-side request forgery when
  saved *and* before every request, since DNS can change), the event types it wants (names
  of the catalogue, `topics.py`; empty: all; `request.*` takes every `request.` event) and a
  secret in the Standard Webhooks format (`whsec_<base64 of 24 random bytes>`), sealed at
  rest with the plugin runtime's key and shown once, when the endpoint is created or its
  secret rotated. After a rotation the old secret
  keeps signing, next to the new one, for `PREVIOUS_SECRET_HOURS`.
- **Deliveries** (`webhook_deliveries`): the `fan_out` job of every committed event runs this
  module's handler, which writes one row per matching enabled endpoint (unique per endpoint and
  event, so a second fan-out changes nothing) and queues a `deliver_webhook` job per new row.
  Each row has a `message_id` (`msg_...`), the `webhook-id` header of every request made for
  it, across retries and replays, so receivers can de-duplicate.
- **Attempts** (`webhook_attempts`): one row per request, with the response code, the first
  `BODY_EXCERPT` bytes of the response, the error and the time it took.

`deliver_webhook` never holds a transaction during the HTTP call: a short one claims the
delivery (a lease, so two copies of a job never send at once), the request follows, and
another short one records the outcome. A 2xx answer is a success; anything else (another
status, a redirect, a time-out, a refused connection) is retried on `RETRY_SCHEDULE` (about 20
minutes in all), then the delivery is `dead` and its job dead-lettered. An endpoint that has
failed without a single success for `DISABLE_AFTER_DAYS` is switched off when one of its
deliveries dies. Admins replay a delivery (same `webhook-id`, new attempts) and send test
events (`webhook.test`).

Jobs of a delivery carry its replay number: a replay starts a new round and the jobs of the
earlier round, if any are still queued, find themselves superseded and stop.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import random
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import dramatiq
import httpx
from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

from patone.core.common import topics
from patone.core.common.activity import record
from patone.core.common.inputs import Input, parse
from patone.core.common.paging import Key, Page, Window, fetch_page
from patone.core.common.permissions import SYSTEM, Actor, require
from patone.core.common.rows import fetch_one
from patone.core.runtime.db import engine
from patone.core.runtime.errors import Conflict, UserError
from patone.core.runtime.scheduler import periodic
from patone.core.tables.webhooks import (
    LoggedDelivery,
    WebhookAttemptRow,
    WebhookDeliveryRow,
    WebhookEndpointRow,
)
from patone.core.work.events import event_handler
from patone.core.work.jobs import current_job, send_to_active_tenants, tenant_actor
from patone.plugins import config as plugins
from patone.plugins import ssrf
from patone.tenants.isolation import TenantRef, tenant_transaction
from patone.tenants.registry import TenantInfo

log = logging.getLogger(__name__)


TEST_EVENT = "webhook.test"
STATUSES = ("pending", "succeeded", "failed", "dead")
# Seconds to wait before each retry: 8 retries over about 20 minutes (plus up to 10 % jitter,
# so endpoints coming back from an outage are not hit by every delivery at once). Read when a
# job runs, so tests can shorten it.
RETRY_SCHEDULE: tuple[float, ...] = (5, 15, 30, 60, 120, 240, 300, 420)
TIMEOUT_SECONDS = 10.0
LEASE_SECONDS = 30  # longer than one attempt can take
BODY_EXCERPT = 2048  # bytes of a response body kept
SECRET_BYTES = 24
SECRET_PREFIX = "whsec_"  # noqa: S105 (the format's prefix, not a secret)
PREVIOUS_SECRET_HOURS = 24
DISABLE_AFTER_DAYS = 5
MAX_ENDPOINTS = 20
MAX_PAGE = 100
UNEXPECTED_RETRIES = 5  # for errors of our own (database down...), with Dramatiq's back-off
USER_AGENT = "Patone-Webhooks/1"


def _event_type(value: str) -> str:
    """A type of the event catalogue (`topics.py`) or a family of them (`request.*`)."""
    if not topics.accepts(value):
        raise PydanticCustomError(
            "invalid_choice",
            "{value} is not an event type we send (like request.created) or a family of them "
            "(like request.*)",
            {"value": repr(value[:60])},
        )
    return value


EventType = Annotated[str, AfterValidator(_event_type)]
Url = Annotated[str, Field(min_length=1, max_length=2000)]
Description = Annotated[str, Field(max_length=500)]


class EndpointInput(Input):
    url: Url
    description: Description = ""
    event_types: list[EventType] = Field(default_factory=list, max_length=50)
    enabled: bool = True


class EndpointChanges(Input):
    url: Url | None = None
    description: Description | None = None
    event_types: list[EventType] | None = Field(default=None, max_length=50)
    enabled: bool | None = None


@dataclass(frozen=True)
class EndpointWithSecret:
    """An endpoint and its signing secret, in the clear: only when created or rotated."""

    endpoint: WebhookEndpointRow
    secret: str


class DeliveryDead(Exception):
    """A delivery failed for good: its job is dead-lettered, not retried."""


# ---------------------------------------------------------------------------------------------
# Secrets and signatures (https://www.standardwebhooks.com)


def new_secret() -> str:
    """A fresh signing secret, `whsec_` and the base64 of random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def sign(secret: str, message_id: str, timestamp: int, body: str) -> str:
    """The `v1,<base64 HMAC-SHA256>` signature of one request under one secret."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    digest = hmac.new(key, f"{message_id}.{timestamp}.{body}".encode(), hashlib.sha256)
    return "v1," + base64.b64encode(digest.digest()).decode()


def signature_header(secrets_: list[str], message_id: str, timestamp: int, body: str) -> str:
    """Every valid secret's signature, space-separated (receivers accept any one)."""
    return " ".join(sign(secret, message_id, timestamp, body) for secret in secrets_)


def _seal(secret: str) -> str:
    return json.dumps(plugins.get_runtime().box.seal(secret))


def _open(sealed: str) -> str:
    return str(plugins.get_runtime().box.open(json.loads(sealed)))


# ---------------------------------------------------------------------------------------------
# Endpoints


def _endpoint(row: Mapping[str, Any]) -> WebhookEndpointRow:
    return WebhookEndpointRow.of({**row, "event_types": list(row["event_types"])})


async def _load_endpoint(endpoint_id: int) -> WebhookEndpointRow:
    return await fetch_one(
        _endpoint,
        f"SELECT {WebhookEndpointRow.columns()} FROM webhook_endpoints WHERE id = $1",
        endpoint_id,
        field="id",
        what="webhook endpoint",
    )


async def _checked_url(url: str) -> str:
    allow = plugins.get_runtime().allow_private_urls
    # Resolving the host blocks: not on the event loop.
    return await asyncio.to_thread(ssrf.check_url, url, field="url", allow_private=allow)


async def list_endpoints(tenant: TenantRef, actor: Actor) -> list[WebhookEndpointRow]:
    """The company's webhook endpoints, oldest first (secrets are never read back)."""
    require(actor, "settings.manage")
    async with tenant_transaction(tenant):
        rows = await engine.fetch(
            f"SELECT {WebhookEndpointRow.columns()} FROM webhook_endpoints ORDER BY id"
        )
    return [_endpoint(r) for r in rows]


async def get_endpoint(tenant: TenantRef, actor: Actor, endpoint_id: int) -> WebhookEndpointRow:
    require(actor, "settings.manage")
    async with tenant_transaction(tenant):
        return await _load_endpoint(endpoint_id)


async def create_endpoint(tenant: TenantRef, actor: Actor, data: Any) -> EndpointWithSecret:
    """Add an endpoint; the result carries its secret, which is never shown again."""
    require(actor, "settings.manage")
    endpoint = parse(EndpointInput, data)
    url = await _checked_url(endpoint.url)
    secret = new_secret()
    async with tenant_transaction(tenant):
        count = await engine.fetch("SELECT count(*) AS n FROM webhook_endpoints")
        if count[0]["n"] >= MAX_ENDPOINTS:
            raise Conflict(
                "too_many", f"a company can have at most {MAX_ENDPOINTS} webhook endpoints"
            )
        rows = await engine.fetch(
            "INSERT INTO webhook_endpoints (url, description, event_types, secret, enabled) "
            "VALUES ($1, $2, $3::varchar[], $4::jsonb, $5) RETURNING id",
            url,
            endpoint.description,
            sorted(set(endpoint.event_types)),
            _seal(secret),
            endpoint.enabled,
        )
        created = await _load_endpoint(rows[0]["id"])
        await record(
            actor,
            "webhook_endpoint",
            created.id,
            "webhook_endpoint.created",
            None,
            created.as_dict(),
        )
    return EndpointWithSecret(created, secret)


async def update_endpoint(
    tenant: TenantRef, actor: Actor, endpoint_id: int, data: Any
) -> WebhookEndpointRow:
    """Change an endpoint's URL, description, event types or whether it is on.

    Turning an endpoint back on clears its failure streak."""
    require(actor, "settings.manage")
    changes = parse(EndpointChanges, data).model_dump(exclude_unset=True)
    for field, value in changes.items():
        if value is None:
            raise UserError("required", "may be left out but not null", field)
    if "url" in changes:
        changes["url"] = await _checked_url(changes["url"])
    if "event_types" in changes:
        changes["event_types"] = sorted(set(changes["event_types"]))
    async with tenant_transaction(tenant):
        before = await _load_endpoint(endpoint_id)
        sets = dict(changes)
        if changes.get("enabled") is True and not before.enabled:
            sets.update(failure_streak=0, failing_since=None, disabled_at=None, disabled_reason="")
        elif changes.get("enabled") is False and before.enabled:
            await engine.execute(
                "UPDATE webhook_endpoints SET disabled_at = now(), disabled_reason = $2 "
                "WHERE id = $1",
                endpoint_id,
                "turned off by a user",
            )
        if sets:
            columns = ", ".join(f"{name} = ${i}" for i, name in enumerate(sets, start=2))
            await engine.execute(
                f"UPDATE webhook_endpoints SET {columns}, updated_at = now() WHERE id = $1",
                endpoint_id,
                *sets.values(),
            )
        after = await _load_endpoint(endpoint_id)
        await record(
            actor,
            "webhook_endpoint",
            endpoint_id,
            "webhook_endpoint.updated",
            before.as_dict(),
            after.as_dict(),
        )
    return after


async def delete_endpoint(tenant: TenantRef, actor: Actor, endpoint_id: int) -> WebhookEndpointRow:
    """Remove an endpoint and its delivery log; returns the endpoint as it was."""
    require(actor, "settings.manage")
    async with tenant_transaction(tenant):
        before = await _load_endpoint(endpoint_id)
        await engine.execute("DELETE FROM webhook_endpoints WHERE id = $1", endpoint_id)
        await record(
            actor, "webhook_endpoint", endpoint_id, "webhook_endpoint.deleted", before.as_dict()
        )
    return before


async def rotate_secret(tenant: TenantRef, actor: Actor, endpoint_id: int) -> EndpointWithSecret:
    """Give an endpoint a new secret (returned once); the old one keeps signing requests,
    beside the new, for `PREVIOUS_SECRET_HOURS`, so the receiver can switch without losses."""
    require(actor, "settings.manage")
    secret = new_secret()
    async with tenant_transaction(tenant):
        await _load_endpoint(endpoint_id)
        await engine.execute(
            "UPDATE webhook_endpoints SET previous_secret = secret, secret = $2::jsonb, "
            "previous_secret_expires_at = now() + make_interval(hours => $3), "
            "updated_at = now() WHERE id = $1",
            endpoint_id,
            _seal(secret),
            PREVIOUS_SECRET_HOURS,
        )
        after = await _load_endpoint(endpoint_id)
        await record(
            actor,
            "webhook_endpoint",
            endpoint_id,
            "webhook_endpoint.secret_rotated",
            None,
            {"previous_secret_expires_at": after.previous_secret_expires_at},
        )
    return EndpointWithSecret(after, secret)


async def reseal_secrets(tenant: TenantRef) -> int:
    """Re-seal every webhook secret of this tenant with the current SECRET_KEY (after a key
    rotation, `patone plugins rotate-secrets`); returns how many endpoints it re-sealed."""
    box = plugins.get_runtime().box
    changed = 0
    async with tenant_transaction(tenant):
        rows = await engine.fetch("SELECT id, secret, previous_secret FROM webhook_endpoints")
        for row in rows:
            current = box.rotate(json.loads(row["secret"]))
            previous = box.rotate(json.loads(row["previous_secret"] or "null"))
            await engine.execute(
                "UPDATE webhook_endpoints SET secret = $2::jsonb, previous_secret = $3::jsonb "
                "WHERE id = $1",
                row["id"],
                json.dumps(current),
                None if previous is None else json.dumps(previous),
            )
            changed += 1
    return changed


# ---------------------------------------------------------------------------------------------
# From events to deliveries


def envelope(event: dict[str, Any]) -> dict[str, Any]:
    """The body partners receive for one domain event (as the relay publishes it)."""
    data = {
        **(event.get("payload") or {}),
        "event_id": event["id"],
        "entity": event["entity"],
        "entity_id": event["entity_id"],
    }
    return {"type": event["topic"], "timestamp": event["created_at"], "data": data}


def new_message_id() -> str:
    return "msg_" + secrets.token_hex(16)


def job_message_id(slug: str, delivery_id: int, replay: int = 0) -> str:
    """The Dramatiq message id of a delivery's job (one per replay: a round of attempts)."""
    base = f"webhook-{slug}-{delivery_id}"
    return base if replay == 0 else f"{base}-replay-{replay}"


def enqueue_deliveries(
    broker: dramatiq.Broker, tenant: TenantRef, deliveries: list[tuple[int, int]]
) -> None:
    """Queue `deliver_webhook` for each (delivery id, replay) (synchronous: call it from a
    thread)."""
    for delivery_id, replay in deliveries:
        message = deliver_webhook.message_on(broker, tenant, delivery_id, replay).copy(
            message_id=job_message_id(tenant.slug, delivery_id, replay)
        )
        broker.enqueue(message)


def _wants(event_types: list[str], topic: str) -> bool:
    """Whether an endpoint subscribed to `event_types` (none: every event) wants `topic`."""
    wildcard = topic.split(".", 1)[0] + ".*"
    return not event_types or topic in event_types or wildcard in event_types


@event_handler("webhooks")
async def queue_event_deliveries(
    tenant: TenantInfo, events: list[dict[str, Any]], broker: dramatiq.Broker
) -> None:
    """One delivery per event and enabled endpoint that wants it, and a job for each not yet
    attempted (idempotent: the fan-out may run twice)."""
    async with tenant_transaction(tenant):
        endpoints = await engine.fetch(
            "SELECT id, event_types FROM webhook_endpoints WHERE enabled ORDER BY id"
        )
        if not endpoints:
            return
        pairs = [
            (endpoint["id"], event)
            for event in events
            for endpoint in endpoints
            if _wants(list(endpoint["event_types"]), str(event["topic"]))
        ]
        if not pairs:
            return
        await engine.execute(
            "INSERT INTO webhook_deliveries (endpoint_id, message_id, event_id, event_type, "
            "payload) SELECT e, m, i, t, p::jsonb FROM unnest($1::int[], $2::text[], "
            "$3::bigint[], $4::text[], $5::text[]) AS u(e, m, i, t, p) "
            "ON CONFLICT (endpoint_id, event_id) DO NOTHING",
            [endpoint_id for endpoint_id, _ in pairs],
            [new_message_id() for _ in pairs],
            [int(event["id"]) for _, event in pairs],
            [str(event["topic"]) for _, event in pairs],
            [json.dumps(envelope(event), default=str) for _, event in pairs],
        )
        fresh = await engine.fetch(
            "SELECT id FROM webhook_deliveries WHERE event_id = ANY($1::bigint[]) "
            "AND endpoint_id = ANY($2::int[]) "
            "AND status = 'pending' AND attempts = 0 AND replays = 0 ORDER BY id",
            sorted({int(event["id"]) for _, event in pairs}),
            sorted({endpoint_id for endpoint_id, _ in pairs}),
        )
    if fresh:
        await asyncio.to_thread(enqueue_deliveries, broker, tenant, [(r["id"], 0) for r in fresh])


# ---------------------------------------------------------------------------------------------
# Sending


@dataclass(frozen=True)
class Claim:
    delivery_id: int
    endpoint_id: int
    message_id: str
    event_type: str
    payload: dict[str, Any]
    url: str
    enabled: bool
    secrets: list[str]
    attempt: int  # of the delivery, all rounds
    round_attempt: int  # in this round (event, replay or test, then its retries)
    replay: int


@dataclass(frozen=True)
class Outcome:
    ok: bool = False
    response_status: int | None = None
    response_body: str = ""
    error: str = ""
    duration_ms: int = 0
    final: bool = False  # not worth retrying: refused target, endpoint turned off
    attempted: bool = True  # counts for the endpoint's health


async def _claim(tenant: TenantRef, delivery_id: int, replay: int) -> Claim | str:
    """Take the delivery for one attempt, or say why there is nothing to do."""
    async with tenant_transaction(tenant):
        rows = await engine.fetch(
            "SELECT d.id, d.endpoint_id, d.message_id, d.event_type, d.payload::text AS payload, "
            "d.status, d.attempts, d.round_attempts, d.replays, "
            "d.next_attempt_at > now() + interval '1 second' AS early, "
            "extract(epoch FROM d.lease_until - now())::float AS lease_left, "
            "e.url, e.enabled, e.secret::text AS secret, "
            "CASE WHEN e.previous_secret_expires_at > now() THEN e.previous_secret::text "
            "END AS previous_secret "
            "FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id "
            "WHERE d.id = $1 FOR UPDATE OF d",
            delivery_id,
        )
        if not rows:
            return "gone"  # its endpoint was deleted
        row = rows[0]
        if row["replays"] != replay:
            return "superseded"  # replayed since: the replay's job sends it
        if row["status"] == "succeeded":
            return "done"
        if row["lease_left"] is not None and row["lease_left"] > 0:
            # Another copy of this job is sending: look again when its lease ends.
            raise dramatiq.Retry(
                f"webhook delivery {delivery_id} is being sent",
                delay=int(row["lease_left"] * 1000) + 1000,
            )
        if row["status"] == "failed" and row["early"]:
            return "not due"  # a duplicate job: the one that scheduled the retry will come
        # A dead delivery whose job is retried from the dead letters starts a new round.
        round_attempt = 1 if row["status"] == "dead" else row["round_attempts"] + 1
        await engine.execute(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, round_attempts = $2, "
            "lease_until = now() + make_interval(secs => $3), last_attempt_at = now(), "
            "updated_at = now() WHERE id = $1",
            delivery_id,
            round_attempt,
            LEASE_SECONDS,
        )
    keys = [_open(row["secret"])]
    if row["previous_secret"]:
        keys.append(_open(row["previous_secret"]))
    return Claim(
        delivery_id=delivery_id,
        endpoint_id=row["endpoint_id"],
        message_id=row["message_id"],
        event_type=row["event_type"],
        payload=json.loads(row["payload"]),
        url=row["url"],
        enabled=row["enabled"],
        secrets=keys,
        attempt=row["attempts"] + 1,
        round_attempt=round_attempt,
        replay=replay,
    )


async def _excerpt(response: httpx.Response) -> str:
    kept = bytearray()
    async for chunk in response.aiter_bytes():
        kept += chunk
        if len(kept) >= BODY_EXCERPT:
            break
    text = bytes(kept[:BODY_EXCERPT]).decode("utf-8", errors="replace")
    return text.replace("\x00", "\ufffd")  # Postgres text takes no NUL


async def post(claim: Claim) -> Outcome:
    """Make one signed request for a claimed delivery (no transaction is open)."""
    if not claim.enabled:
        return Outcome(error="the endpoint is turned off", final=True, attempted=False)
    allow = plugins.get_runtime().allow_private_urls
    try:
        target = await asyncio.to_thread(ssrf.pin_url, claim.url, allow_private=allow)
    except UserError as refused:
        # A host that does not resolve may come back; one pointing inside our network won't.
        return Outcome(error=f"refused: {refused.message}", final=refused.code != "unresolvable")
    body = json.dumps(claim.payload, separators=(",", ":"), ensure_ascii=False)
    timestamp = int(time.time())  # wall time: receivers check it against theirs
    headers = {
        **target.headers,
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": claim.message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(claim.secrets, claim.message_id, timestamp, body),
    }
    started = time.monotonic()
    try:
        async with (
            httpx.AsyncClient(timeout=TIMEOUT_SECONDS, follow_redirects=False) as client,
            client.stream(
                "POST",
                target.url,
                content=body.encode(),
                headers=headers,
                extensions=target.extensions,
            ) as response,
        ):
            excerpt = await _excerpt(response)
    except httpx.TimeoutException:
        return Outcome(error=f"timed out after {TIMEOUT_SECONDS:g} s", duration_ms=_since(started))
    except httpx.HTTPError as error:
        reason = str(error) or type(error).__name__
        return Outcome(error=f"request failed: {reason}"[:2000], duration_ms=_since(started))
    ok = 200 <= response.status_code < 300
    return Outcome(
        ok=ok,
        response_status=response.status_code,
        response_body=excerpt,
        error="" if ok else f"the endpoint answered {response.status_code}",
        duration_ms=_since(started),
    )


def _since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def retry_delay(round_attempt: int) -> float | None:
    """Seconds before the next attempt after `round_attempt` failed; None when none is left."""
    if round_attempt > len(RETRY_SCHEDULE):
        return None
    return RETRY_SCHEDULE[round_attempt - 1] * random.uniform(1.0, 1.1)


async def _record(tenant: TenantRef, claim: Claim, outcome: Outcome) -> tuple[str, float | None]:
    """Log the attempt and move the delivery on; returns its status and the retry delay."""
    delay = None
    if outcome.ok:
        status = "succeeded"
    elif not outcome.final and (delay := retry_delay(claim.round_attempt)) is not None:
        status = "failed"
    else:
        status = "dead"
    if claim.round_attempt > 1:
        trigger = "retry"
    elif claim.replay > 0:
        trigger = "replay"
    else:
        trigger = "test" if claim.event_type == TEST_EVENT else "event"
    async with tenant_transaction(tenant):
        await engine.execute(
            "INSERT INTO webhook_attempts (delivery_id, attempt, trigger, response_status, "
            "response_body, error, duration_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            claim.delivery_id,
            claim.attempt,
            trigger,
            outcome.response_status,
            outcome.response_body,
            outcome.error,
            outcome.duration_ms,
        )
        current = await engine.execute(
            "UPDATE webhook_deliveries SET status = $3::varchar, response_status = $4, "
            "response_body = $5, error = $6, duration_ms = $7, lease_until = NULL, "
            "next_attempt_at = CASE WHEN $8::float IS NULL THEN NULL "
            "ELSE now() + make_interval(secs => $8::float) END, "
            "succeeded_at = CASE WHEN $3::varchar = 'succeeded' THEN now() ELSE succeeded_at END, "
            "updated_at = now() WHERE id = $1 AND replays = $2",
            claim.delivery_id,
            claim.replay,
            status,
            outcome.response_status,
            outcome.response_body,
            outcome.error,
            outcome.duration_ms,
            delay,
        )
        if current == "UPDATE 0":  # replayed while we were sending: the replay decides
            await engine.execute(
                "UPDATE webhook_deliveries SET lease_until = NULL WHERE id = $1",
                claim.delivery_id,
            )
            return "superseded", None
        if outcome.attempted:
            await _endpoint_health(claim.endpoint_id, outcome.ok)
        if status == "dead":
            await _maybe_disable(claim.endpoint_id)
    return status, delay


async def _endpoint_health(endpoint_id: int, ok: bool) -> None:
    if ok:
        await engine.execute(
            "UPDATE webhook_endpoints SET failure_streak = 0, failing_since = NULL, "
            "last_success_at = now() WHERE id = $1",
            endpoint_id,
        )
    else:
        await engine.execute(
            "UPDATE webhook_endpoints SET failure_streak = failure_streak + 1, "
            "failing_since = coalesce(failing_since, now()), last_failure_at = now() "
            "WHERE id = $1",
            endpoint_id,
        )


async def _maybe_disable(endpoint_id: int) -> None:
    rows = await engine.fetch(
        "UPDATE webhook_endpoints SET enabled = false, disabled_at = now(), "
        "disabled_reason = $2, updated_at = now() WHERE id = $1 AND enabled "
        "AND failing_since < now() - make_interval(days => $3) RETURNING id",
        endpoint_id,
        f"every request failed for {DISABLE_AFTER_DAYS} days",
        DISABLE_AFTER_DAYS,
    )
    if rows:
        await record(
            SYSTEM,
            "webhook_endpoint",
            endpoint_id,
            "webhook_endpoint.disabled",
            None,
            {"reason": f"every request failed for {DISABLE_AFTER_DAYS} days"},
        )


def _retry_when(retries: int, exception: BaseException) -> bool:
    # Our own schedule decides (a `Retry` with its delay); other errors are ours, not the
    # endpoint's, and get a few retries with Dramatiq's back-off.
    return isinstance(exception, dramatiq.Retry) or retries < UNEXPECTED_RETRIES


@tenant_actor(
    actor_name="patone.webhooks.deliver",
    queue_name="webhooks",
    transaction=False,
    time_limit=(LEASE_SECONDS + 30) * 1000,
    throws=(DeliveryDead,),
    retry_when=_retry_when,
)
async def deliver_webhook(tenant_slug: str, delivery_id: int, replay: int = 0) -> str:
    """Make one attempt at a delivery; returns its status (or why nothing was sent).

    A failed attempt raises `dramatiq.Retry` with the delay of `RETRY_SCHEDULE`; the last one
    marks the delivery `dead` and raises `DeliveryDead` (dead-lettered)."""
    tenant = current_job().tenant
    claim = await _claim(tenant, delivery_id, replay)
    if isinstance(claim, str):
        return claim
    outcome = await post(claim)
    status, delay = await _record(tenant, claim, outcome)
    log.info(
        "webhook attempt",
        extra={
            "tenant": tenant_slug,
            "delivery": delivery_id,
            "attempt": claim.attempt,
            "status": status,
            "response_status": outcome.response_status,
        },
    )
    if status == "failed" and delay is not None:
        raise dramatiq.Retry(
            f"webhook delivery {delivery_id}: {outcome.error}", delay=int(delay * 1000)
        )
    if status == "dead":
        raise DeliveryDead(f"webhook delivery {delivery_id}: {outcome.error}")
    return status


# ---------------------------------------------------------------------------------------------
# The delivery log, replays and test events


def _delivery(row: Mapping[str, Any]) -> WebhookDeliveryRow:
    return WebhookDeliveryRow.of({**row, "payload": json.loads(row["payload"])})


async def _load_delivery(delivery_id: int) -> WebhookDeliveryRow:
    return await fetch_one(
        _delivery,
        f"SELECT {WebhookDeliveryRow.columns()} FROM webhook_deliveries WHERE id = $1",
        delivery_id,
        field="id",
        what="webhook delivery",
    )


async def _attempts(delivery_ids: list[int]) -> dict[int, tuple[WebhookAttemptRow, ...]]:
    rows = await engine.fetch(
        f"SELECT {WebhookAttemptRow.columns()} FROM webhook_attempts "
        "WHERE delivery_id = ANY($1::bigint[]) ORDER BY id",
        delivery_ids,
    )
    grouped: dict[int, list[WebhookAttemptRow]] = {i: [] for i in delivery_ids}
    for row in rows:
        grouped[row["delivery_id"]].append(WebhookAttemptRow.of(row))
    return {i: tuple(attempts) for i, attempts in grouped.items()}


async def list_deliveries(
    tenant: TenantRef,
    actor: Actor,
    *,
    endpoint_id: int | None = None,
    status: str | None = None,
    first: int | None = 50,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> Page[LoggedDelivery]:
    """Deliveries, newest first, each with its attempts (`attempt_log`), a page at a time
    (forwards or backwards); filtered by endpoint and/or status."""
    require(actor, "settings.manage")
    if status is not None and status not in STATUSES:
        raise UserError("invalid_choice", f"status must be one of {', '.join(STATUSES)}", "status")
    async with tenant_transaction(tenant):
        page = await fetch_page(
            tenant,
            columns=WebhookDeliveryRow.columns(),
            source="webhook_deliveries",
            where=[
                "($1::int IS NULL OR endpoint_id = $1)",
                "($2::varchar IS NULL OR status = $2)",
            ],
            args=[endpoint_id, status],
            keys=(Key("id", "bigint"),),
            descending=True,
            window=Window(first=first, after=after, last=last, before=before),
            max_page=MAX_PAGE,
        )
        attempts = await _attempts([r["id"] for r in page.rows])
    return page.map(lambda row: LoggedDelivery(_delivery(row), attempts[row["id"]]))


async def get_delivery(tenant: TenantRef, actor: Actor, delivery_id: int) -> LoggedDelivery:
    """One delivery with its attempts."""
    require(actor, "settings.manage")
    async with tenant_transaction(tenant):
        row = await _load_delivery(delivery_id)
        return LoggedDelivery(row, (await _attempts([delivery_id]))[delivery_id])


async def replay_delivery(
    tenant: TenantRef,
    actor: Actor,
    delivery_id: int,
    *,
    broker: dramatiq.Broker | None = None,
) -> LoggedDelivery:
    """Send a delivery again, whatever became of it, with the same `webhook-id` (receivers
    that saw it already can tell); a fresh round of attempts and retries."""
    require(actor, "settings.manage")
    async with tenant_transaction(tenant):
        before = await _load_delivery(delivery_id)
        endpoint = await _load_endpoint(before.endpoint_id)
        if not endpoint.enabled:
            raise Conflict(
                "endpoint_disabled", "the delivery's endpoint is turned off: turn it on first", "id"
            )
        rows = await engine.fetch(
            "UPDATE webhook_deliveries SET status = 'pending', replays = replays + 1, "
            "round_attempts = 0, next_attempt_at = NULL, updated_at = now() WHERE id = $1 "
            "RETURNING replays",
            delivery_id,
        )
        replay = int(rows[0]["replays"])
        await record(
            actor,
            "webhook_delivery",
            delivery_id,
            "webhook_delivery.replayed",
            {"status": before.status},
            {"status": "pending", "replay": replay},
        )
        after = await _load_delivery(delivery_id)
    target = broker or dramatiq.get_broker()
    await asyncio.to_thread(enqueue_deliveries, target, tenant, [(delivery_id, replay)])
    return LoggedDelivery(after)


async def send_test_event(
    tenant: TenantRef,
    actor: Actor,
    endpoint_id: int,
    *,
    broker: dramatiq.Broker | None = None,
) -> LoggedDelivery:
    """Queue a `webhook.test` delivery to one endpoint (whatever event types it takes);
    returns the delivery, whose status and attempts show how the endpoint answered."""
    require(actor, "settings.manage")
    async with tenant_transaction(tenant):
        endpoint = await _load_endpoint(endpoint_id)
        if not endpoint.enabled:
            raise Conflict(
                "endpoint_disabled", "the endpoint is turned off: turn it on first", "id"
            )
        rows = await engine.fetch("SELECT now() AS at")
        payload = {
            "type": TEST_EVENT,
            "timestamp": rows[0]["at"].isoformat(),
            "data": {
                "tenant": tenant.slug,
                "endpoint_id": endpoint_id,
                "message": "A test event from Patone: your endpoint is reachable.",
            },
        }
        created = await engine.fetch(
            "INSERT INTO webhook_deliveries (endpoint_id, message_id, event_type, payload) "
            "VALUES ($1, $2, $3, $4::jsonb) RETURNING id",
            endpoint_id,
            new_message_id(),
            TEST_EVENT,
            json.dumps(payload),
        )
        delivery_id = int(created[0]["id"])
        await record(
            actor,
            "webhook_endpoint",
            endpoint_id,
            "webhook_endpoint.tested",
            None,
            {"delivery": delivery_id},
        )
        delivery = await _load_delivery(delivery_id)
    target = broker or dramatiq.get_broker()
    await asyncio.to_thread(enqueue_deliveries, target, tenant, [(delivery_id, 0)])
    return LoggedDelivery(delivery)


# ---------------------------------------------------------------------------------------------
# Lost jobs

STALE_SECONDS = 600  # a delivery due this long ago with no attempt under way has lost its job


@tenant_actor(actor_name="patone.webhooks.sweep", queue_name="webhooks")
async def sweep_tenant(tenant_slug: str) -> int:
    """Queue again this tenant's deliveries whose job was lost (Redis flushed, a dead letter
    dropped); returns how many. Their jobs' claims keep a delivery from being sent twice."""
    rows = await engine.fetch(
        "SELECT id, replays FROM webhook_deliveries WHERE status IN ('pending', 'failed') "
        "AND COALESCE(next_attempt_at, updated_at) < now() - make_interval(secs => $1) "
        "AND (lease_until IS NULL OR lease_until < now()) ORDER BY id LIMIT 1000",
        STALE_SECONDS,
    )
    if rows:
        await engine.execute(
            "UPDATE webhook_deliveries SET updated_at = now() WHERE id = ANY($1::bigint[])",
            [r["id"] for r in rows],
        )
        await asyncio.to_thread(
            enqueue_deliveries,
            dramatiq.get_broker(),
            current_job().tenant,
            [(r["id"], r["replays"]) for r in rows],
        )
    return len(rows)


@periodic("webhooks.sweep", every=300)
async def sweep_all() -> int:
    """Queue a sweep for every active tenant (the scheduler runs this every 5 minutes)."""
    return await send_to_active_tenants(sweep_tenant)
