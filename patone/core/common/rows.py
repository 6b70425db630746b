"""Small SQL helpers for services: insert and update a row by column names from validated input,
and read rows as their typed records (`patone.core.tables.records.Record`).

Column names here always come from our own input models, never from users; they are quoted
anyway. Values always travel as parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from patone.core.runtime.db import engine
from patone.core.runtime.errors import NotFound
from patone.core.tables.records import Record
from patone.tenants.naming import quote_ident


async def insert_row(table: str, values: dict[str, Any]) -> int:
    """Insert one row into a tenant table; returns its id."""
    columns = ", ".join(quote_ident(c) for c in values)
    placeholders = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    rows = await engine.fetch(
        f"INSERT INTO {quote_ident(table)} ({columns}) VALUES ({placeholders}) RETURNING id",
        *values.values(),
    )
    return int(rows[0]["id"])


async def update_row(table: str, row_id: int, changes: dict[str, Any]) -> None:
    """Set some columns of one row of a tenant table."""
    if not changes:
        return
    sets = ", ".join(f"{quote_ident(c)} = ${i}" for i, c in enumerate(changes, start=2))
    await engine.execute(
        f"UPDATE {quote_ident(table)} SET {sets} WHERE id = $1", row_id, *changes.values()
    )


R = TypeVar("R", bound=Record)
T = TypeVar("T")


async def fetch_records(kind: type[R], sql: str, *args: Any) -> list[R]:
    """The rows `sql` finds (it selects `kind.columns()`), as `kind`."""
    return [kind.of(row) for row in await engine.fetch(sql, *args)]


async def fetch_one(
    read: Callable[[Mapping[str, Any]], T], sql: str, *args: Any, field: str, what: str
) -> T:
    """The one row `sql` finds, through `read`, or NotFound("no such <what>") on `field` (the
    message never names the row's id: ours is internal, and the caller knows which one it
    sent)."""
    rows = await engine.fetch(sql, *args)
    if not rows:
        raise NotFound("not_found", f"no such {what}", field)
    return read(rows[0])


async def fetch_record(kind: type[R], sql: str, *args: Any, field: str, what: str) -> R:
    """The one row `sql` finds, as `kind`, or NotFound("no such <what>") on `field`."""
    return await fetch_one(kind.of, sql, *args, field=field, what=what)


async def record_by_id(kind: type[R], row_id: int, *, what: str, field: str) -> R:
    """One row of `kind`'s table by id, or NotFound naming `field`."""
    table = quote_ident(kind.table._meta.tablename)
    sql = f"SELECT {kind.columns()} FROM {table} WHERE id = $1"
    return await fetch_record(kind, sql, row_id, field=field, what=what)
