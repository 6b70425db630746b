"""The company's settings and plumbing: activity log, outbox, idempotency keys, persisted
documents, plugin settings."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Self

from piccolo.columns import (
    JSONB,
    Boolean,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.constraints import Unique
from piccolo.table import Table

from patone.core.runtime.db import engine
from patone.core.tables.records import Record


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

    idempotency_keys_operation_caller_key = Unique(["operation", "caller", "key"])


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


@dataclass(frozen=True, slots=True)
class ActivityRow(Record):
    """A line of the activity log."""

    table: ClassVar[type[Table]] = ActivityLog
    id: int
    actor_type: str
    actor_id: str
    entity: str
    entity_id: str
    action: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    created_at: datetime

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> Self:
        """The line, its `before` and `after` decoded (the driver hands jsonb over as text)."""
        plain = {name: row[name] for name in cls.names()}
        for name in ("before", "after"):
            if isinstance(plain[name], str):
                plain[name] = json.loads(plain[name])
        return cls(**plain)


@dataclass(frozen=True, slots=True)
class DocumentRow(Record):
    """A persisted GraphQL document of the company's allow-list."""

    table: ClassVar[type[Table]] = PersistedDocument
    id: int
    sha256: str
    name: str
    document: str
    created_at: datetime
