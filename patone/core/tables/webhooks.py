"""Webhook endpoints, deliveries and their attempts."""

from __future__ import annotations

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
from piccolo.table import Table

from patone.core.runtime.db import engine


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
