"""Webhook endpoints, deliveries and their attempts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from piccolo.columns import (
    JSONB,
    Array,
    BigInt,
    BigSerial,
    Boolean,
    ForeignKey,
    Integer,
    OnDelete,
    OnUpdate,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.constraints import Check, Unique
from piccolo.table import Table

from patone.core.runtime.db import engine
from patone.core.tables.records import Record


class WebhookEndpoint(Table, tablename="webhook_endpoints", db=engine):
    """A partner's URL and the event types it wants; its signing secret (sealed) and health."""

    url = Text()
    description = Text(default="")
    event_types = Array(base_column=Varchar(length=60), default=list)
    secret = JSONB()
    previous_secret = JSONB(null=True, default=None)
    previous_secret_expires_at = Timestamptz(null=True, default=None)
    enabled = Boolean(default=True)
    failure_streak = Integer(default=0)
    failing_since = Timestamptz(null=True, default=None)
    last_success_at = Timestamptz(null=True, default=None)
    last_failure_at = Timestamptz(null=True, default=None)
    disabled_at = Timestamptz(null=True, default=None)
    disabled_reason = Text(default="")
    created_at = Timestamptz()
    updated_at = Timestamptz()


@dataclass(frozen=True, slots=True)
class WebhookEndpointRow(Record):
    """An endpoint as its company sees it: never its secrets."""

    table: ClassVar[type[Table]] = WebhookEndpoint
    id: int
    url: str
    description: str
    event_types: list[str]
    enabled: bool
    failure_streak: int
    failing_since: datetime | None
    last_success_at: datetime | None
    last_failure_at: datetime | None
    disabled_at: datetime | None
    disabled_reason: str
    previous_secret_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime


class WebhookDelivery(Table, tablename="webhook_deliveries", db=engine):
    """One event for one endpoint, retried until it succeeds or dies."""

    id = BigSerial(primary_key=True)
    endpoint_id = ForeignKey(
        references=WebhookEndpoint,
        null=False,
        on_delete=OnDelete.cascade,
        on_update=OnUpdate.no_action,
    )
    message_id = Varchar(length=64, unique=True)
    event_id = BigInt(null=True, default=None)
    event_type = Varchar(length=60)
    payload = JSONB()
    status = Varchar(length=10, default="pending")  # pending | succeeded | failed | dead
    attempts = Integer(default=0)
    round_attempts = Integer(default=0)
    replays = Integer(default=0)
    response_status = Integer(null=True, default=None)
    response_body = Text(default="")
    error = Text(default="")
    duration_ms = Integer(null=True, default=None)
    lease_until = Timestamptz(null=True, default=None)
    next_attempt_at = Timestamptz(null=True, default=None)
    last_attempt_at = Timestamptz(null=True, default=None)
    succeeded_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz()
    updated_at = Timestamptz()

    webhook_deliveries_status_check = Check("status IN ('pending', 'succeeded', 'failed', 'dead')")
    webhook_deliveries_endpoint_id_event_id_key = Unique(["endpoint_id", "event_id"])


@dataclass(frozen=True, slots=True)
class WebhookDeliveryRow(Record):
    """A delivery; `payload` is the JSON body sent, decoded."""

    table: ClassVar[type[Table]] = WebhookDelivery
    id: int
    endpoint_id: int
    message_id: str
    event_id: int | None
    event_type: str
    payload: dict[str, Any]
    status: str
    attempts: int
    replays: int
    response_status: int | None
    response_body: str
    error: str
    duration_ms: int | None
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    succeeded_at: datetime | None
    created_at: datetime
    updated_at: datetime


class WebhookAttempt(Table, tablename="webhook_attempts", db=engine):
    """One try at a delivery: what the receiver answered, or what went wrong."""

    id = BigSerial(primary_key=True)
    delivery_id = ForeignKey(
        references=WebhookDelivery,
        null=False,
        on_delete=OnDelete.cascade,
        on_update=OnUpdate.no_action,
    )
    attempt = Integer()
    trigger = Varchar(length=10)  # event | retry | replay | test
    response_status = Integer(null=True, default=None)
    response_body = Text(default="")
    error = Text(default="")
    duration_ms = Integer(default=0)
    created_at = Timestamptz()

    webhook_attempts_trigger_check = Check("trigger IN ('event', 'retry', 'replay', 'test')")


@dataclass(frozen=True, slots=True)
class WebhookAttemptRow(Record):
    table: ClassVar[type[Table]] = WebhookAttempt
    id: int
    delivery_id: int
    attempt: int
    trigger: str
    response_status: int | None
    response_body: str
    error: str
    duration_ms: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class LoggedDelivery:
    """A delivery and its attempts, oldest first (none when only the delivery was asked for)."""

    delivery: WebhookDeliveryRow
    attempt_log: tuple[WebhookAttemptRow, ...] = ()
