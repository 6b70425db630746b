"""The activity log and the outbox: written in the same transaction as the change they describe.

Both must be called inside the tenant transaction that makes the change; a rollback removes the
change, its log line and its event together.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from patone.core.common.paging import Key, Page, Window, cursor_of, fetch_page
from patone.core.common.permissions import Actor, require
from patone.core.common.rows import record_by_id, update_row
from patone.core.common.topics import P, Topic
from patone.core.runtime.clock import now
from patone.core.runtime.db import engine
from patone.core.tables.company import ActivityRow
from patone.core.tables.records import Record
from patone.tenants.isolation import TenantRef, get_current_tenant, tenant_transaction

Logged = Record | Mapping[str, Any]  # what a log line holds before and after: a row, or data
R = TypeVar("R", bound=Logged)


def _json(value: Logged | None) -> str | None:
    if value is None:
        return None
    plain = value.as_dict() if isinstance(value, Record) else dict(value)
    return json.dumps(plain, default=str, sort_keys=True)


async def record(
    actor: Actor,
    entity: str,
    entity_id: object,
    action: str,
    before: Logged | None = None,
    after: Logged | None = None,
) -> None:
    """Log who did what to which record, with the record before and after."""
    get_current_tenant()  # refuse to write outside a tenant transaction
    await engine.execute(
        "INSERT INTO activity_log (actor_type, actor_id, entity, entity_id, action, before, "
        "after, created_at) VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8)",
        actor.kind,
        actor.id,
        entity,
        str(entity_id),
        action,
        _json(before),
        _json(after),
        now(),
    )


async def emit(topic: Topic[P], entity_id: object, payload: P) -> None:
    """Queue a domain event of the catalogue (`topics.py`) for the relay to publish after
    commit."""
    if type(payload) is not topic.payload:  # a subclass has other fields: not this topic's
        raise TypeError(f"{topic.name} carries {topic.payload.__name__}, not {payload!r}")
    tenant = get_current_tenant()
    await engine.execute(
        "INSERT INTO outbox (topic, entity, entity_id, payload, created_at) "
        "VALUES ($1, $2, $3, $4::jsonb, $5)",
        topic.name,
        topic.entity,
        str(entity_id),
        json.dumps({"tenant": tenant.slug, **payload.as_json()}, default=str, sort_keys=True),
        now(),
    )
    # Delivered to the relay only if this transaction commits.
    await engine.execute("SELECT pg_notify('patone_outbox', $1)", tenant.slug)


async def get_activity(tenant: TenantRef, actor: Actor, entry_id: int) -> ActivityRow:
    """One line of the activity log, for those who may read the log."""
    require(actor, "activity.view")
    async with tenant_transaction(tenant):
        return await record_by_id(ActivityRow, entry_id, what="activity entry", field="id")


async def page_activity(
    tenant: TenantRef,
    actor: Actor,
    *,
    entity: str | None = None,
    entity_id: str | None = None,
    first: int | None = 50,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> Page:
    """The activity log, newest first, a page at a time (forwards or backwards)."""
    require(actor, "activity.view")
    return await fetch_page(
        tenant,
        columns=ActivityRow.columns(),
        source="activity_log",
        where=["($1::varchar IS NULL OR entity = $1)", "($2::varchar IS NULL OR entity_id = $2)"],
        args=[entity, entity_id],
        keys=(Key("id"),),
        descending=True,
        window=Window(first=first, after=after, last=last, before=before),
    )


async def list_activity(
    tenant: TenantRef,
    actor: Actor,
    *,
    entity: str | None = None,
    entity_id: str | None = None,
    first: int = 50,
    before_id: int | None = None,
) -> tuple[list[ActivityRow], bool]:
    """The activity log, newest first, a page at a time (`before_id`: the last id seen):
    its rows and whether more follow."""
    page = await page_activity(
        tenant,
        actor,
        entity=entity,
        entity_id=entity_id,
        first=first,
        after=cursor_of([before_id]) if before_id is not None else None,
    )
    return [ActivityRow.of(row) for row in page.rows], page.has_next


async def audited_update(
    actor: Actor,
    entity: str,
    table: str,
    row_id: int,
    changes: dict[str, Any],
    action: str,
    load: Callable[[int], Awaitable[R]],
) -> R:
    """Change one row and log it with the row before and after; returns the row after.

    `load` reads the row (raising NotFound for a missing one) inside the current tenant
    transaction.
    """
    before = await load(row_id)
    await update_row(table, row_id, changes)
    after = await load(row_id)
    await record(actor, entity, row_id, action, before, after)
    return after
