"""Keyset pages forwards and backwards, their neighbours, the capped count and bad cursors."""

from __future__ import annotations

import pytest

from patone.core.common.paging import COUNT_CAP, Key, Page, Window, cursor_of, fetch_page
from patone.core.runtime.db import engine
from patone.core.runtime.errors import UserError
from patone.tenants.isolation import tenant_transaction
from patone.tenants.registry import TenantInfo

KEYS = (Key("created_at", "datetime"), Key("id"))


async def _users(tenant: TenantInfo, count: int) -> None:
    async with tenant_transaction(tenant):
        for i in range(count):
            await engine.execute(
                "INSERT INTO users (email, name, role, active, created_at, updated_at) "
                "VALUES ($1, $2, 'dispatcher', $3, now(), now())",
                f"u{i}@example.com",
                f"User {i}",
                i % 2 == 0,
            )


async def _page(tenant: TenantInfo, window: Window, count_cap: int = COUNT_CAP) -> Page:
    return await fetch_page(
        tenant,
        columns="id, name",
        source="users",
        where=["active = $1"],
        args=[True],
        keys=KEYS,
        descending=True,
        window=window,
        count_cap=count_cap,
    )


async def test_pages_read_backwards_hold_the_rows_read_forwards(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    await _users(acme, 12)  # 6 active: three pages of two
    await _users(bolt, 4)
    first = await _page(acme, Window(first=2))
    assert (first.has_previous, first.has_next) == (False, True)
    second = await _page(acme, Window(first=2, after=first.end_cursor))
    assert (second.has_previous, second.has_next) == (True, True)
    last = await _page(acme, Window(first=None, last=2))
    assert (last.has_previous, last.has_next) == (True, False)
    before_last = await _page(acme, Window(first=None, last=2, before=last.start_cursor))
    assert before_last.rows == second.rows
    assert (before_last.has_previous, before_last.has_next) == (True, True)
    everything = await _page(acme, Window(first=50))
    ids = [r["id"] for r in everything.rows]
    assert ids == sorted(ids, reverse=True) and len(ids) == 6
    assert [r["id"] for r in last.rows] == ids[-2:]
    assert (await everything.count()).total == 6


async def test_the_count_stops_at_its_cap_and_says_so(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    await _users(acme, 10)
    await _users(bolt, 2)
    capped = await (await _page(acme, Window(first=1), count_cap=3)).count()
    assert (capped.total, capped.capped) == (3, True)
    exact = await (await _page(bolt, Window(first=1), count_cap=3)).count()
    assert (exact.total, exact.capped) == (1, False)


@pytest.mark.parametrize(
    "window, field",
    [
        (Window(first=0), "first"),
        (Window(first=None, last=201), "last"),
        (Window(after="garbage"), "after"),
        (Window(first=None, last=2, before=cursor_of(["2026-01-01T00:00:00", 2**40])), "before"),
        (Window(after=cursor_of([1, 2])), "after"),
    ],
)
async def test_a_bad_size_or_cursor_is_a_user_error_on_its_argument(
    two_tenants: tuple[TenantInfo, TenantInfo], window: Window, field: str
) -> None:
    acme, _ = two_tenants
    with pytest.raises(UserError) as refused:
        await _page(acme, window)
    assert refused.value.field == field
