"""Daily and monthly reports in the company's local days, across a daylight-saving change.

Acme is in Europe/Berlin. On 2026-10-25 Berlin leaves summer time at 01:00 UTC (03:00 CEST
becomes 02:00 CET), so the local day of Oct 25 is [Oct 24 22:00 UTC, Oct 25 23:00 UTC): 25 hours.
October 2026 in Berlin is [Sep 30 22:00 UTC, Oct 31 23:00 UTC).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from patone.core.common.permissions import SYSTEM, PermissionDenied
from patone.core.domain import company
from patone.core.domain.reports import (
    DayFigures,
    Report,
    ServiceTypeFigures,
    daily_report,
    monthly_report,
    report_between,
)
from patone.core.runtime.db import engine
from patone.core.runtime.errors import UserError
from patone.tenants.isolation import tenant_transaction
from patone.tenants.registry import TenantInfo
from tests.conftest import actor_for

MANAGER = actor_for("manager")
DISPATCHER = actor_for("dispatcher")


def utc(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


@dataclass(frozen=True)
class Fixture:
    """A request: when it was created (UTC), its journey in minutes after that, its price."""

    name: str
    created: datetime
    service: str
    priority: str
    status: str
    price: int
    assigned: int | None = None  # minutes after creation
    on_scene: int | None = None
    completed: int | None = None
    cancelled: int | None = None
    reason: str = ""
    currency: str = "EUR"


# Local (Berlin) day of each timestamp in the comments.
REQUESTS = (
    # Created Oct 25 00:30 CEST; assigned 00:40, on scene 01:10, completed 02:00 CEST (Oct 25).
    Fixture("R1", utc(10, 24, 22, 30), "towing", "emergency", "completed", 15000, 10, 40, 90),
    # Created 02:50 CEST, ten minutes before the clocks go back; completed 03:00 CET, which
    # is 70 minutes later (a wall-clock difference would say 10).
    Fixture("R2", utc(10, 25, 0, 50), "jump_start", "normal", "completed", 5500, 15, 40, 70),
    # Oct 25 10:00 CET, gone on arrival at 11:00: billable.
    Fixture(
        "R3", utc(10, 25, 9), "flat_tyre", "high", "cancelled", 6500, 20, 50,
        cancelled=60, reason="gone_on_arrival",
    ),
    # Oct 25 13:00 CET, cancelled by the customer five minutes later: not billable.
    Fixture(
        "R4", utc(10, 25, 12), "lockout", "low", "cancelled", 6000,
        cancelled=5, reason="customer_cancelled",
    ),
    # Created Oct 25 23:30 CET (still the 25th); assigned 23:45 CET (the 25th); on scene
    # Oct 26 00:15 and completed Oct 26 01:30 CET: its arrival and revenue belong to Oct 26.
    Fixture("R5", utc(10, 25, 22, 30), "towing", "normal", "completed", 12000, 15, 45, 120),
    # Oct 26 00:30 CET: the next local day, though it is still Oct 25 in UTC.
    Fixture("R6", utc(10, 25, 23, 30), "jump_start", "normal", "pending", 5500),
    # Created Oct 24 23:30 CEST, assigned 23:50 CEST (both Oct 24); on scene Oct 25 00:20 and
    # completed 00:45 CEST (Oct 25).
    Fixture("R7", utc(10, 24, 21, 30), "jump_start", "normal", "completed", 5500, 20, 50, 75),
    # Oct 25 16:00 CET, assigned ten minutes later, still under way.
    Fixture("R8", utc(10, 25, 15), "towing", "high", "assigned", 9500, 10),
    # Created Oct 1 00:30 CEST (UTC still says Sep 30); everything on Oct 1.
    Fixture("R9", utc(9, 30, 22, 30), "fuel_delivery", "normal", "completed", 5000, 10, 30, 60),
    # Created Sep 30 23:30 CEST, assigned 23:45 CEST (September); on scene Oct 1 00:10,
    # completed Oct 1 00:30 CEST (October).
    Fixture("R10", utc(9, 30, 21, 30), "winching", "normal", "completed", 12000, 15, 40, 60),
    # Oct 31 23:30 CET, a duplicate cancelled at 23:40 (Oct 31).
    Fixture(
        "R11", utc(10, 31, 22, 30), "lockout", "normal", "cancelled", 6000,
        cancelled=10, reason="duplicate",
    ),
    # Nov 1 00:30 CET: not October.
    Fixture("R12", utc(10, 31, 23, 30), "towing", "normal", "pending", 9500),
    # Oct 25 11:00 CET, quoted in USD before the company switched to EUR: counted, but its
    # money is kept apart from the EUR revenue.
    Fixture(
        "R13", utc(10, 25, 10), "jump_start", "normal", "completed", 5000, 10, 30, 60,
        currency="USD",
    ),
    # Oct 10 10:00 CEST, gone on arrival at 10:40 CEST: billable.
    Fixture(
        "R14", utc(10, 10, 8), "flat_tyre", "normal", "cancelled", 6500, 5, 35,
        cancelled=40, reason="gone_on_arrival",
    ),
)  # fmt: skip


def _at(created: datetime, minutes: int | None) -> datetime | None:
    return None if minutes is None else created + timedelta(minutes=minutes)


async def _insert(tenant: TenantInfo, requests: tuple[Fixture, ...]) -> None:
    async with tenant_transaction(tenant):
        rows = await engine.fetch(
            "INSERT INTO customers (name, notes, created_at, updated_at) "
            "VALUES ('Dana Driver', '', now(), now()) RETURNING id"
        )
        customer = rows[0]["id"]
        types = {
            r["code"]: r["id"] for r in await engine.fetch("SELECT id, code FROM service_types")
        }
        for r in requests:
            closed = _at(r.created, r.completed if r.completed is not None else r.cancelled)
            await engine.execute(
                "INSERT INTO service_requests (number, customer, service_type, priority, status, "
                "source, pickup_lat, pickup_lng, quoted_price, currency, cancel_reason, notes, "
                "created_by, created_at, updated_at, assigned_at, on_scene_at, started_at, "
                "completed_at, cancelled_at) VALUES (nextval('service_request_number_seq'), $1, "
                "$2, $3, $4, 'admin', 52.52, 13.405, $5, $6, $7, $8, 'system', $9, $10, $11, $12, "
                "$12, $13, $14)",
                customer,
                types[r.service],
                r.priority,
                r.status,
                r.price,
                r.currency,
                r.reason,
                r.name,
                r.created,
                closed or r.created,
                _at(r.created, r.assigned),
                _at(r.created, r.on_scene),
                _at(r.created, r.completed),
                _at(r.created, r.cancelled),
            )


@pytest.fixture
async def berlin(two_tenants: tuple[TenantInfo, TenantInfo]) -> tuple[TenantInfo, TenantInfo]:
    acme, bolt = two_tenants
    await company.update_settings(acme, SYSTEM, {"time_zone": "Europe/Berlin", "currency": "EUR"})
    await _insert(acme, REQUESTS)
    return acme, bolt


NO_STATUS = dict.fromkeys(
    ("pending", "assigned", "en_route", "on_scene", "in_progress", "completed", "cancelled"), 0
)
NO_PRIORITY = dict.fromkeys(("low", "normal", "high", "emergency"), 0)


async def test_daily_report_of_the_25_hour_day(berlin: tuple[TenantInfo, TenantInfo]) -> None:
    acme, _ = berlin
    report = await daily_report(acme, MANAGER, date(2026, 10, 25))

    assert report.time_zone == "Europe/Berlin"
    assert report.starts_at == utc(10, 24, 22) and report.ends_at == utc(10, 25, 23)
    assert report.ends_at - report.starts_at == timedelta(hours=25)
    assert report.first_day == report.last_day == date(2026, 10, 25)

    # Created in [Oct 24 22:00, Oct 25 23:00) UTC: R1 R2 R3 R4 R5 R8 R13 (not R6, R7).
    assert report.created == 7
    assert report.by_status == {**NO_STATUS, "completed": 4, "cancelled": 2, "assigned": 1}
    assert report.by_priority == {"low": 1, "normal": 3, "high": 2, "emergency": 1}

    # Completed on the day: R1 R2 R7 (EUR 15000 + 5500 + 5500) and R13 (USD 5000, apart);
    # R5 completed on Oct 26. Gone on arrival: R3 (6500). 26000 + 6500 = 32500.
    assert report.completed == 4
    assert report.revenue.currency == "EUR"
    assert report.revenue.completed == 26000
    assert report.revenue.billable_cancellations == 6500
    assert report.revenue.total == 32500
    assert report.revenue.other_currencies == {"USD": 5000}
    assert report.billable_cancellations == 1

    # (code, name, created, completed, revenue) in price-list order:
    # towing: created R1 R5 R8, completed R1 (15000); flat tyre: R3 created, its 6500 billed;
    # jump start: created R2 R13, completed R2 R7 R13, EUR revenue R2 + R7 = 11000;
    # lockout: R4 created, nothing earned.
    assert report.by_service_type == (
        ServiceTypeFigures("towing", "Towing", 3, 1, 15000),
        ServiceTypeFigures("flat_tyre", "Flat tyre", 1, 0, 6500),
        ServiceTypeFigures("jump_start", "Jump start", 2, 3, 11000),
        ServiceTypeFigures("lockout", "Lockout", 1, 0, 0),
    )

    # Cancelled on the day: R3 (gone on arrival), R4 (customer).
    assert report.cancelled == 2
    assert report.cancellations == {"customer_cancelled": 1, "gone_on_arrival": 1}

    # Assigned on the day: R1 10, R2 15, R3 20, R5 15, R8 10, R13 10 -> 80 / 6 = 13.33.
    # (R7 was assigned on Oct 24.) On scene: R1 40, R2 40, R3 50, R7 50, R13 30 -> 210 / 5.
    # (R5 arrived on Oct 26.) Completed: R1 90, R2 70, R7 75, R13 60 -> 295 / 4 = 73.75.
    assert report.timings.minutes_to_assign == 13.3
    assert report.timings.minutes_to_arrive == 42.0
    assert report.timings.minutes_to_complete == 73.8
    assert (report.timings.assigned, report.timings.arrived, report.timings.completed) == (6, 5, 4)
    assert report.days == ()


async def test_monthly_report_of_october(berlin: tuple[TenantInfo, TenantInfo]) -> None:
    acme, _ = berlin
    report = await monthly_report(acme, MANAGER, 2026, 10)

    assert report.first_day == date(2026, 10, 1) and report.last_day == date(2026, 10, 31)
    assert report.starts_at == utc(9, 30, 22) and report.ends_at == utc(10, 31, 23)

    # Created in October: all but R10 (Sep 30 local) and R12 (Nov 1 local).
    assert report.created == 12
    assert report.by_status == {
        **NO_STATUS,
        "pending": 1,  # R6
        "assigned": 1,  # R8
        "completed": 6,  # R1 R2 R5 R7 R9 R13
        "cancelled": 4,  # R3 R4 R11 R14
    }
    # emergency R1; high R3 R8; low R4; normal the other eight.
    assert report.by_priority == {"low": 1, "normal": 8, "high": 2, "emergency": 1}

    # Completed in October: R1 15000, R2 5500, R5 12000, R7 5500, R9 5000, R10 12000 (EUR,
    # 55000) and R13 (USD 5000). Gone on arrival: R3 6500 + R14 6500 = 13000. Total 68000.
    assert report.completed == 7
    assert report.revenue.completed == 55000
    assert report.revenue.billable_cancellations == 13000
    assert report.revenue.total == 68000
    assert report.revenue.other_currencies == {"USD": 5000}
    assert report.billable_cancellations == 2
    assert report.by_service_type == (
        ServiceTypeFigures("towing", "Towing", 3, 2, 27000),  # R1 R5 R8; R1 + R5
        ServiceTypeFigures("flat_tyre", "Flat tyre", 2, 0, 13000),  # R3 R14, both billed
        ServiceTypeFigures("jump_start", "Jump start", 4, 3, 11000),  # R2 R6 R7 R13; R2 + R7
        ServiceTypeFigures("lockout", "Lockout", 2, 0, 0),  # R4 R11
        ServiceTypeFigures("fuel_delivery", "Fuel delivery", 1, 1, 5000),  # R9
        ServiceTypeFigures("winching", "Winching", 0, 1, 12000),  # R10, created in September
    )
    assert report.cancelled == 4
    assert report.cancellations == {"customer_cancelled": 1, "duplicate": 1, "gone_on_arrival": 2}

    # Assigned in October: R1 10, R2 15, R3 20, R5 15, R7 20, R8 10, R9 10, R13 10, R14 5
    # -> 115 / 9 = 12.78 (R10 was assigned in September). On scene: R1 40, R2 40, R3 50, R5 45,
    # R7 50, R9 30, R10 40, R13 30, R14 35 -> 360 / 9 = 40. Completed: R1 90, R2 70, R5 120,
    # R7 75, R9 60, R10 60, R13 60 -> 535 / 7 = 76.43.
    assert report.timings.minutes_to_assign == 12.8
    assert report.timings.minutes_to_arrive == 40.0
    assert report.timings.minutes_to_complete == 76.4
    assert (report.timings.assigned, report.timings.arrived, report.timings.completed) == (9, 9, 7)

    # Every local day of October; the busy ones:
    # Oct 1: created R9; completed R9, R10 (5000 + 12000). Oct 10: created R14, billed 6500.
    # Oct 24: created R7. Oct 25: created R1 R2 R3 R4 R5 R8 R13; completed R1 R2 R7 R13;
    # revenue 15000 + 5500 + 5500 + 6500 (R3). Oct 26: created R6; completed R5 (12000).
    # Oct 31: created R11.
    busy = {
        1: DayFigures(date(2026, 10, 1), 1, 2, 17000),
        10: DayFigures(date(2026, 10, 10), 1, 0, 6500),
        24: DayFigures(date(2026, 10, 24), 1, 0, 0),
        25: DayFigures(date(2026, 10, 25), 7, 4, 32500),
        26: DayFigures(date(2026, 10, 26), 1, 1, 12000),
        31: DayFigures(date(2026, 10, 31), 1, 0, 0),
    }
    assert report.days == tuple(
        busy.get(d, DayFigures(date(2026, 10, d), 0, 0, 0)) for d in range(1, 32)
    )
    assert sum(d.created for d in report.days) == report.created
    assert sum(d.completed for d in report.days) == report.completed
    assert sum(d.revenue for d in report.days) == report.revenue.total

    # The day of the monthly report and the daily report agree.
    daily = await daily_report(acme, MANAGER, date(2026, 10, 25))
    assert (daily.created, daily.completed, daily.revenue.total) == (7, 4, 32500)


async def test_report_as_dict_is_json(berlin: tuple[TenantInfo, TenantInfo]) -> None:
    acme, _ = berlin
    report = await monthly_report(acme, MANAGER, 2026, 10)
    data = json.loads(json.dumps(report.as_dict()))
    assert data["starts_at"] == "2026-09-30T22:00:00+00:00"
    assert data["revenue"] == {
        "currency": "EUR",
        "total": 68000,
        "completed": 55000,
        "billable_cancellations": 13000,
        "other_currencies": {"USD": 5000},
    }
    assert data["days"][24] == {"day": "2026-10-25", "created": 7, "completed": 4, "revenue": 32500}
    assert data["by_service_type"][0] == {
        "code": "towing",
        "name": "Towing",
        "created": 3,
        "completed": 2,
        "revenue": 27000,
    }
    assert data["timings"]["minutes_to_complete"] == 76.4


async def test_one_aggregate_statement(berlin: tuple[TenantInfo, TenantInfo]) -> None:
    acme, _ = berlin
    before = engine.statements.copy()
    await monthly_report(acme, MANAGER, 2026, 10)
    sent = engine.statements - before
    # The tenant scope, the settings, and the report itself.
    assert sent["SELECT"] == 1 and sent["WITH"] == 1


async def test_the_other_tenant_sees_nothing(berlin: tuple[TenantInfo, TenantInfo]) -> None:
    _, bolt = berlin
    # Bolt keeps the defaults (UTC, USD), so its October is the UTC month.
    report = await monthly_report(bolt, MANAGER, 2026, 10)
    assert report.starts_at == utc(10, 1, 0) and report.ends_at == utc(11, 1, 0)
    assert report.created == report.completed == report.cancelled == 0
    assert report.by_status == NO_STATUS and report.by_priority == NO_PRIORITY
    assert report.by_service_type == () and report.cancellations == {}
    assert report.revenue.as_dict() == {
        "currency": "USD",
        "total": 0,
        "completed": 0,
        "billable_cancellations": 0,
        "other_currencies": {},
    }
    assert report.timings.as_dict() == {
        "minutes_to_assign": None,
        "minutes_to_arrive": None,
        "minutes_to_complete": None,
        "assigned": 0,
        "arrived": 0,
        "completed": 0,
    }
    assert report.days == tuple(DayFigures(date(2026, 10, d), 0, 0, 0) for d in range(1, 32))
    daily = await daily_report(bolt, MANAGER, date(2026, 10, 25))
    assert daily.created == daily.revenue.total == 0


async def test_a_day_whose_midnight_does_not_exist(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    _, bolt = two_tenants
    # Chile springs forward at midnight: 2026-09-06 begins at 01:00 -03 (04:00 UTC).
    await company.update_settings(bolt, SYSTEM, {"time_zone": "America/Santiago"})
    report = await daily_report(bolt, MANAGER, date(2026, 9, 6))
    assert report.starts_at == utc(9, 6, 4) and report.ends_at == utc(9, 7, 3)


async def test_report_between_spans_days(berlin: tuple[TenantInfo, TenantInfo]) -> None:
    acme, _ = berlin
    # Oct 24 to Oct 26: created R7; R1 R2 R3 R4 R5 R8 R13; R6.
    report = await report_between(acme, MANAGER, date(2026, 10, 24), date(2026, 10, 26))
    assert report.created == 9
    assert [d.day.day for d in report.days] == [24, 25, 26]
    assert report.ends_at - report.starts_at == timedelta(hours=73)
    # A future day is simply empty.
    future = await daily_report(acme, MANAGER, date(2999, 1, 1))
    assert isinstance(future, Report) and future.created == 0


async def test_a_dispatcher_sees_counts_and_times_but_no_money(
    berlin: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, _ = berlin
    seen = await monthly_report(acme, DISPATCHER, 2026, 10)
    full = await monthly_report(acme, MANAGER, 2026, 10)
    assert seen.revenue is None and full.revenue is not None
    assert all(f.revenue is None for f in seen.by_service_type)
    assert all(d.revenue is None for d in seen.days)
    assert "revenue" not in json.dumps(seen.as_dict()).replace('"revenue": null', "")
    # Everything else is the same report.
    assert (seen.created, seen.by_status, seen.completed, seen.timings) == (
        full.created,
        full.by_status,
        full.completed,
        full.timings,
    )
    assert [(d.day, d.created, d.completed) for d in seen.days] == [
        (d.day, d.created, d.completed) for d in full.days
    ]
    # A driver sees no report at all.
    with pytest.raises(PermissionDenied):
        await daily_report(acme, actor_for("driver"), date(2026, 10, 25))
    with pytest.raises(PermissionDenied):
        await report_between(acme, actor_for("driver"), date(2026, 10, 1), date(2026, 10, 2))


# Bolt's own requests, in its own currency and time zone (UTC), so a mix-up would show.
BOLT_REQUESTS = (
    Fixture("B1", utc(10, 3, 9), "towing", "normal", "completed", 20000, 5, 30, 90, currency="GBP"),
    Fixture("B2", utc(10, 31, 23), "winching", "high", "completed", 30000, 10, 20, 120,
            currency="GBP"),
    Fixture("B3", utc(10, 12, 9), "lockout", "low", "cancelled", 7000, 5, 25, cancelled=30,
            reason="gone_on_arrival", currency="GBP"),
    Fixture("B4", utc(9, 30, 23), "jump_start", "normal", "completed", 4000, 5, 20, 70,
            currency="GBP"),
)  # fmt: skip


def _in(moment: datetime | None, start: datetime, end: datetime) -> bool:
    return moment is not None and start <= moment < end


def _expected(rows: tuple[Fixture, ...], start: datetime, end: datetime, currency: str) -> dict:
    """The figures of a period, counted by hand from the rows, one definition each."""
    created = [r for r in rows if _in(r.created, start, end)]
    completed = [r for r in rows if _in(_at(r.created, r.completed), start, end)]
    billable = [
        r
        for r in rows
        if r.reason == "gone_on_arrival" and _in(_at(r.created, r.cancelled), start, end)
    ]
    return {
        "created": len(created),
        "completed_by_status": sum(r.status == "completed" for r in created),
        "completed": len(completed),
        "completed_revenue": sum(r.price for r in completed if r.currency == currency),
        "billable_revenue": sum(r.price for r in billable if r.currency == currency),
        "other": sum(r.price for r in completed + billable if r.currency != currency),
    }


async def test_every_total_matches_the_rows(berlin: tuple[TenantInfo, TenantInfo]) -> None:
    acme, bolt = berlin
    await company.update_settings(bolt, SYSTEM, {"currency": "GBP"})
    await _insert(bolt, BOLT_REQUESTS)
    berlin_tz = ZoneInfo("Europe/Berlin")
    berlin_october = (
        datetime(2026, 10, 1, tzinfo=berlin_tz),
        datetime(2026, 11, 1, tzinfo=berlin_tz),
    )
    utc_october = (utc(10, 1, 0), utc(11, 1, 0))
    for tenant, rows, currency, (start, end) in (
        (acme, REQUESTS, "EUR", berlin_october),
        (bolt, BOLT_REQUESTS, "GBP", utc_october),
    ):
        report = await monthly_report(tenant, MANAGER, 2026, 10)
        expected = _expected(rows, start, end, currency)
        assert report.revenue is not None and report.revenue.currency == currency
        assert (report.starts_at, report.ends_at) == (start, end)
        # One definition per figure: created (and its statuses) by creation, completed by
        # completion; the two `completed` figures differ only by what each counts.
        assert report.created == expected["created"] == sum(report.by_status.values())
        assert sum(report.by_priority.values()) == report.created
        assert report.by_status["completed"] == expected["completed_by_status"]
        assert report.completed == expected["completed"] == report.timings.completed
        assert report.revenue.completed == expected["completed_revenue"]
        assert report.revenue.billable_cancellations == expected["billable_revenue"]
        assert report.revenue.total == expected["completed_revenue"] + expected["billable_revenue"]
        assert sum(report.revenue.other_currencies.values()) == expected["other"]
        # The breakdowns add up to the totals.
        assert sum(d.created for d in report.days) == report.created
        assert sum(d.completed for d in report.days) == report.completed
        assert sum(d.revenue or 0 for d in report.days) == report.revenue.total
        assert sum(f.created for f in report.by_service_type) == report.created
        assert sum(f.completed for f in report.by_service_type) == report.completed
        assert sum(f.revenue or 0 for f in report.by_service_type) == report.revenue.total
    # Acme's October has a request created in September and completed in October (R10) and
    # none the other way, which is why its two `completed` figures differ.
    acme_report = await monthly_report(acme, MANAGER, 2026, 10)
    assert acme_report.completed == acme_report.by_status["completed"] + 1


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ((2026, 13), "month"),
        ((2026, 0), "month"),
        ((2026, "10"), "month"),
        ((2026, True), "month"),
        ((10000, 1), "year"),
        ((0, 1), "year"),
    ],
)
async def test_bad_month(
    two_tenants: tuple[TenantInfo, TenantInfo], args: tuple[object, object], field: str
) -> None:
    acme, _ = two_tenants
    with pytest.raises(UserError) as raised:
        await monthly_report(acme, MANAGER, *args)  # type: ignore[arg-type]
    assert raised.value.field == field and raised.value.code in ("out_of_range", "invalid")


async def test_bad_days(two_tenants: tuple[TenantInfo, TenantInfo]) -> None:
    acme, _ = two_tenants
    with pytest.raises(UserError) as raised:
        await daily_report(acme, MANAGER, datetime(2026, 10, 25, tzinfo=UTC))
    assert raised.value.field == "day"
    with pytest.raises(UserError) as raised:
        await daily_report(acme, MANAGER, "2026-10-25")  # type: ignore[arg-type]
    assert raised.value.field == "day"
    with pytest.raises(UserError) as raised:
        await report_between(acme, MANAGER, date(2026, 10, 2), date(2026, 10, 1))
    assert raised.value.field == "end"
    with pytest.raises(UserError) as raised:
        await report_between(acme, MANAGER, date(2026, 1, 1), date(2027, 12, 31))
    assert raised.value.field == "end" and raised.value.code == "out_of_range"
