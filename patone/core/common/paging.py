"""Keyset paging for every list the API pages: forwards (`first`, `after`) and backwards
(`last`, `before`), both neighbours known, and a bounded count of the whole list.

A list names its sort keys (SQL expressions, all in one direction, the last one unique) and its
filters; a cursor is the sort key of a row, so pages stay stable while rows are being added.
Backwards, the rows just before `before` are read in reverse order and turned round, so a page
read backwards holds the same rows, in the same order, as the page read forwards.

Counting a large list exactly costs a scan of it, so `count` stops at `COUNT_CAP` and says
so: callers show "10,000 or more" rather than a number that took seconds.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from patone.core.runtime.db import engine
from patone.core.runtime.errors import UserError
from patone.tenants.isolation import TenantRef, tenant_transaction

Row = dict[str, Any]
T = TypeVar("T")
U = TypeVar("U")

COUNT_CAP = 10_000
DEFAULT_PAGE = 50


@dataclass(frozen=True)
class Window:
    """What the client asked for: the first rows after a cursor, or the last before one."""

    first: int | None = DEFAULT_PAGE
    after: str | None = None
    last: int | None = None
    before: str | None = None

    @property
    def backwards(self) -> bool:
        return self.last is not None


@dataclass(frozen=True)
class Key:
    """One sort key: its SQL expression and how a cursor's value is read back (`int`,
    `bigint`, `datetime` or `text`)."""

    sql: str
    kind: str = "int"


@dataclass(frozen=True)
class Count:
    """How many rows the whole list has, counted up to `COUNT_CAP`."""

    total: int
    capped: bool


@dataclass
class Page(Generic[T]):
    rows: list[T]
    cursors: list[str]
    has_next: bool
    has_previous: bool
    count: Callable[[], Awaitable[Count]] = field(repr=False)  # only when asked: it costs

    @property
    def start_cursor(self) -> str | None:
        return self.cursors[0] if self.cursors else None

    @property
    def end_cursor(self) -> str | None:
        return self.cursors[-1] if self.cursors else None

    def map(self, read: Callable[[T], U]) -> Page[U]:
        """The same page with each row read as something else (a typed row)."""
        return Page(
            [read(row) for row in self.rows],
            self.cursors,
            self.has_next,
            self.has_previous,
            self.count,
        )


def cursor_of(values: Sequence[Any]) -> str:
    """A cursor for a row whose sort key has these values."""
    encoded = [v.isoformat() if isinstance(v, datetime) else v for v in values]
    return base64.urlsafe_b64encode(json.dumps(encoded).encode()).decode()


_INT_RANGE = {"int": 2**31, "bigint": 2**63}


def _value(kind: str, value: Any) -> Any:
    if kind == "datetime":
        if not isinstance(value, str):
            raise ValueError("not a time")
        return datetime.fromisoformat(value)
    if kind == "text":
        if not isinstance(value, str):
            raise ValueError("not text")
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("not a number")
    if not -_INT_RANGE[kind] <= value < _INT_RANGE[kind]:
        raise ValueError("out of range")  # the column could never hold it
    return value


def decode_cursor(cursor: str, keys: Sequence[Key], name: str) -> list[Any]:
    """The sort key a cursor holds, or a UserError on the argument `name` (`after`, `before`)."""
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        if not isinstance(values, list) or len(values) != len(keys):
            raise ValueError("wrong length")
        return [_value(key.kind, v) for key, v in zip(keys, values, strict=True)]
    except (ValueError, TypeError, json.JSONDecodeError):
        raise UserError("invalid", f"{name} is not a cursor of this list", name) from None


def check_window(window: Window, max_page: int = 200) -> None:
    """Refuse a page size out of range (the one in use: `last` when given, else `first`)."""
    name, size = ("last", window.last) if window.backwards else ("first", window.first)
    if size is None or not 1 <= size <= max_page:
        raise UserError("out_of_range", f"{name} must be between 1 and {max_page}", name)


async def fetch_page(
    tenant: TenantRef,
    *,
    columns: str,
    source: str,
    where: Sequence[str],
    args: Sequence[Any],
    keys: Sequence[Key],
    descending: bool,
    window: Window,
    max_page: int = 200,
    count_cap: int = COUNT_CAP,
) -> Page[Row]:
    """One page of `SELECT columns FROM source WHERE where` in key order (`$n` placeholders
    in `where` number `args`). Runs in the caller's tenant transaction when there is one."""
    check_window(window, max_page)
    filters = " AND ".join(where) or "true"
    key_list = ", ".join(k.sql for k in keys)

    def beyond(cursor: str, name: str, later: bool, params: list[Any], equal: bool = False) -> str:
        """Rows later (or earlier) in the list's order than the cursor's row."""
        values = decode_cursor(cursor, keys, name)
        op = (">" if later != descending else "<") + ("=" if equal else "")
        start = len(params) + 1
        params.extend(values)
        return f"({key_list}) {op} ({', '.join(f'${start + i}' for i in range(len(values)))})"

    page_args = list(args)
    bounds = [filters]
    if window.after:
        bounds.append(beyond(window.after, "after", True, page_args))
    if window.before:
        bounds.append(beyond(window.before, "before", False, page_args))
    size = window.last if window.backwards else window.first
    assert size is not None  # check_window saw to it
    reverse = descending != window.backwards  # backwards: read the other way, then turn round
    order = ", ".join(f"{k.sql} {'DESC' if reverse else 'ASC'}" for k in keys)
    selected = ", ".join(f"{k.sql} AS _k{i}" for i, k in enumerate(keys))
    page_sql = (
        f"SELECT {columns}, {selected} FROM {source} WHERE {' AND '.join(bounds)} "
        f"ORDER BY {order} LIMIT {size + 1}"
    )
    # Whether any row lies on the far side of the cursor the page starts from (the cursor's
    # own row included: it was on the page the client came from).
    start_cursor, start_name = (
        (window.before, "before") if window.backwards else (window.after, "after")
    )
    across_args = list(args)
    across_sql = None
    if start_cursor:
        side = beyond(start_cursor, start_name, window.backwards, across_args, equal=True)
        across_sql = f"SELECT EXISTS (SELECT 1 FROM {source} WHERE {filters} AND {side})"
    async with tenant_transaction(tenant):
        rows = [dict(r) for r in await engine.fetch(page_sql, *page_args)]
        across = bool((await engine.fetch(across_sql, *across_args))[0][0]) if across_sql else False
    more = len(rows) > size
    rows = rows[:size]
    if window.backwards:
        rows.reverse()
    cursors = [cursor_of([row.pop(f"_k{i}") for i in range(len(keys))]) for row in rows]
    count_args = list(args)
    counted: list[asyncio.Future[Count]] = []

    async def run_count() -> Count:
        async with tenant_transaction(tenant):
            found = await engine.fetch(
                f"SELECT count(*) FROM (SELECT 1 FROM {source} WHERE {filters} "
                f"LIMIT {count_cap + 1}) AS capped",
                *count_args,
            )
        total = int(found[0][0])
        return Count(total=min(total, count_cap), capped=total > count_cap)

    async def count() -> Count:
        # Counted only when asked, and once however many fields ask (they may ask at once).
        if not counted:
            counted.append(asyncio.ensure_future(run_count()))
        return await counted[0]

    return Page(
        rows=rows,
        cursors=cursors,
        has_next=across if window.backwards else more,
        has_previous=more if window.backwards else across,
        count=count,
    )
