"""Notification rules, templates, preferences, the delivery log, push subscriptions."""

from __future__ import annotations

from piccolo.columns import BigInt, BigSerial, Boolean, Integer, Text, Timestamptz, Varchar
from piccolo.table import Table

from patone.core.runtime.db import engine


class NotificationRule(Table, tablename="notification_rules", db=engine):
    """Whether an event tells a kind of recipient on a channel (one per event, recipient and
    channel)."""

    event = Varchar(length=60)
    recipient = Varchar(length=20)  # customer | driver | dispatchers
    channel = Varchar(length=10)  # email | sms | push
    enabled = Boolean(default=True)
    updated_at = Timestamptz()


class NotificationTemplate(Table, tablename="notification_templates", db=engine):
    """The company's own wording of an event's message on a channel."""

    event = Varchar(length=60)
    channel = Varchar(length=10)
    subject = Text(default="")
    body = Text()
    html = Text(default="")
    updated_at = Timestamptz()


class NotificationPreference(Table, tablename="notification_preferences", db=engine):
    """A user's or customer's own choice for an event on a channel."""

    subject_kind = Varchar(length=10)  # user | customer
    subject_id = Integer()
    event = Varchar(length=60)
    channel = Varchar(length=10)
    enabled = Boolean()
    updated_at = Timestamptz()


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
