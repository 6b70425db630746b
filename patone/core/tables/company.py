"""The company's settings and plumbing: activity log, outbox, idempotency keys, persisted
documents, plugin settings."""

from __future__ import annotations

from piccolo.columns import (
    JSONB,
    Boolean,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.table import Table

from patone.core.runtime.db import engine


class Setting(Table, tablename="settings", db=engine):
    """A company setting (profile, units, currency, time zone, ...) as a JSON value."""

    key = Varchar(length=100, unique=True)
    value = JSONB()
    updated_at = Timestamptz()


class ActivityLog(Table, tablename="activity_log", db=engine):
    """Every change: who did what to which record, with the record before and after."""

    actor_type = Varchar(length=20)
    actor_id = Varchar(length=64, default="")
    entity = Varchar(length=40, index=True)
    entity_id = Varchar(length=64, default="")
    action = Varchar(length=60)
    before = JSONB(null=True, default=None)
    after = JSONB(null=True, default=None)
    created_at = Timestamptz(index=True)


class Outbox(Table, tablename="outbox", db=engine):
    """Domain events committed with the change that caused them; a relay publishes them."""

    topic = Varchar(length=60)
    entity = Varchar(length=40)
    entity_id = Varchar(length=64)
    payload = JSONB()
    created_at = Timestamptz()
    published_at = Timestamptz(null=True, default=None, index=True)


class IdempotencyKey(Table, tablename="idempotency_keys", db=engine):
    """The first result of a create, so a retry with the same key returns it again; a key is
    one caller's (`kind:id`) and remembers its input's sha256 (tenant_0018)."""

    operation = Varchar(length=60)
    caller = Text(default="")
    key = Varchar(length=200)
    input_sha256 = Varchar(length=64, default="")
    entity_id = Varchar(length=64)
    created_at = Timestamptz()


class PersistedDocument(Table, tablename="persisted_documents", db=engine):
    """A GraphQL document a company registered; allow-listed clients may run only these."""

    sha256 = Varchar(length=64, unique=True)
    name = Varchar(length=200)
    document = Text()
    created_at = Timestamptz()


class PluginConfig(Table, tablename="plugin_configs", db=engine):
    """Whether a plugin is on for this company, and its settings (secrets encrypted)."""

    plugin = Varchar(length=100, unique=True)
    enabled = Boolean(default=False)
    config = JSONB(default={})
    updated_at = Timestamptz()
