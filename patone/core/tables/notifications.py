"""Notification rules, templates, preferences, the delivery log, push subscriptions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from piccolo.columns import BigInt, BigSerial, Boolean, Integer, Text, Timestamptz, Varchar
from piccolo.constraints import Check, Unique
from piccolo.table import Table

from patone.core.runtime.db import engine
from patone.core.tables.records import Record


class NotificationRule(Table, tablename="notification_rules", db=engine):
    """Whether an event tells a kind of recipient on a channel (one per event, recipient and
    channel)."""

    event = Varchar(length=60)
    recipient = Varchar(length=20)  # customer | driver | dispatchers
    channel = Varchar(length=10)  # email | sms | push
    enabled = Boolean(default=True)
    updated_at = Timestamptz()

    notification_rules_recipient_check = Check("recipient IN ('customer', 'driver', 'dispatchers')")
    notification_rules_channel_check = Check("channel IN ('email', 'sms', 'push')")
    notification_rules_event_recipient_channel_key = Unique(["event", "recipient", "channel"])


@dataclass(frozen=True, slots=True)
class NotificationRuleRow(Record):
    table: ClassVar[type[Table]] = NotificationRule
    id: int
    event: str
    recipient: str
    channel: str
    enabled: bool
    updated_at: datetime


class NotificationTemplate(Table, tablename="notification_templates", db=engine):
    """The company's own wording of an event's message on a channel."""

    event = Varchar(length=60)
    channel = Varchar(length=10)
    subject = Text(default="")
    body = Text()
    html = Text(default="")
    updated_at = Timestamptz()

    notification_templates_channel_check = Check("channel IN ('email', 'sms', 'push')")
    notification_templates_event_channel_key = Unique(["event", "channel"])


class NotificationPreference(Table, tablename="notification_preferences", db=engine):
    """A user's or customer's own choice for an event on a channel."""

    subject_kind = Varchar(length=10)  # user | customer
    subject_id = Integer()
    event = Varchar(length=60)
    channel = Varchar(length=10)
    enabled = Boolean()
    updated_at = Timestamptz()

    notification_preferences_subject_kind_check = Check("subject_kind IN ('user', 'customer')")
    notification_preferences_channel_check = Check("channel IN ('email', 'sms', 'push')")
    notification_preferences_subject_kind_subject_id_event_channel_key = Unique(
        ["subject_kind", "subject_id", "event", "channel"]
    )


@dataclass(frozen=True, slots=True)
class NotificationPreferenceRow(Record):
    """One choice of a person's (whose it is, the caller knows)."""

    table: ClassVar[type[Table]] = NotificationPreference
    event: str
    channel: str
    enabled: bool
    updated_at: datetime


class Notification(Table, tablename="notifications", db=engine):
    """One message to one recipient on one channel: the delivery log."""

    id = BigSerial(primary_key=True)
    event_id = BigInt()
    event = Varchar(length=60)
    entity = Varchar(length=40, default="")
    entity_id = Varchar(length=64, default="")
    recipient_kind = Varchar(length=10)  # user | customer | driver
    recipient_id = Integer()
    channel = Varchar(length=10)
    address = Text()
    subject = Text(default="")
    body = Text()
    html = Text(default="")
    status = Varchar(length=20, default="queued")
    provider = Varchar(length=100, default="")
    provider_id = Varchar(length=200, default="")
    provider_status = Varchar(length=40, default="")
    attempts = Integer(default=0)
    ambiguous_attempts = Integer(default=0)
    error = Text(default="")
    lease_until = Timestamptz(null=True, default=None)
    created_at = Timestamptz()
    sent_at = Timestamptz(null=True, default=None)
    updated_at = Timestamptz()

    notifications_recipient_kind_check = Check("recipient_kind IN ('user', 'customer', 'driver')")
    notifications_channel_check = Check("channel IN ('email', 'sms', 'push')")
    notifications_event_id_recipient_kind_recipient_id_channel_address_key = Unique(
        ["event_id", "recipient_kind", "recipient_id", "channel", "address"]
    )


@dataclass(frozen=True, slots=True)
class NotificationRow(Record):
    """A delivery log entry (its HTML body and lease left out)."""

    table: ClassVar[type[Table]] = Notification
    id: int
    event_id: int
    event: str
    entity: str
    entity_id: str
    recipient_kind: str
    recipient_id: int
    channel: str
    address: str
    subject: str
    body: str
    status: str
    provider: str
    provider_id: str
    provider_status: str
    attempts: int
    ambiguous_attempts: int
    error: str
    created_at: datetime
    sent_at: datetime | None
    updated_at: datetime


class PushSubscription(Table, tablename="push_subscriptions", db=engine):
    """A browser's Web Push subscription for a user or customer."""

    owner_kind = Varchar(length=10)  # user | customer
    owner_id = Integer()
    endpoint = Text(unique=True)
    p256dh = Text()
    auth = Text()
    user_agent = Text(default="")
    created_at = Timestamptz()
    last_used_at = Timestamptz(null=True, default=None)

    push_subscriptions_owner_kind_check = Check("owner_kind IN ('user', 'customer')")


@dataclass(frozen=True, slots=True)
class PushSubscriptionRow(Record):
    """A device as its owner sees it (its keys stay in the table)."""

    table: ClassVar[type[Table]] = PushSubscription
    id: int
    endpoint: str
    user_agent: str
    created_at: datetime
    last_used_at: datetime | None
