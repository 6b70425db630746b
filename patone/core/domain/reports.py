"""Daily, monthly and any-period reports of service requests, in the company's local days.

A local day is [local midnight, next local midnight) in the tenant's time zone (setting
`time_zone`), so a day is 23 or 25 hours long on a daylight-saving change. All day arithmetic
happens in Postgres (`AT TIME ZONE`), one aggregate statement per report, inside the tenant
transaction.

What each figure counts (every timestamp is compared with the period, half-open). Each name
has one meaning wherever it appears:

- `created`, `by_status`, `by_priority`, `by_service_type[].created`, `days[].created`: requests
  *created* in the period, by the status they have now, so `by_status` always sums to `created`
  and `by_status["completed"]` is how many of *those* are completed by now. It is not
  `completed`: a request created on the 30th and completed on the 1st counts in one month's
  `by_status["completed"]` and the next month's `completed`.
- `completed` (also per service type and per day) and the revenue: requests *completed* in
  the period, plus billable cancellations
  (`gone_on_arrival`) *cancelled* in the period, at their quoted price. Only requests quoted in
  the company's currency are summed; amounts quoted in another currency (made before the company
  changed its currency) are listed apart in `revenue.other_currencies`, never added in.
- `cancelled`, `cancellations`: requests *cancelled* in the period, by reason code.
- the timings: minutes from creation to `assigned_at` / `on_scene_at` / `completed_at`, averaged
  over the requests that reached that state *in the period* (so a report is final once its period
  is over). `assigned_at` is the latest assignment: a driver who withdrew resets it.

The money figures (`revenue`, and the revenue per service type and per day) need
`reports.revenue` beside `reports.view`; without it they are `None`.
"""

from __future__ import annotations

import calendar
import json
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

from patone.core.common.permissions import Actor, require
from patone.core.domain.company import get_settings
from patone.core.runtime.db import engine
from patone.core.runtime.errors import UserError
from patone.core.tables.requests import Priority, RequestStatus
from patone.tenants.isolation import TenantRef, tenant_transaction

# Reports cover at most this many local days (a year and a bit: enough for any yearly report).
MAX_DAYS = 400
# Local days reports may cover; outside, the UTC bounds could overflow Python's datetime.
MIN_DAY = date(1900, 1, 1)
MAX_DAY = date(9998, 12, 31)

BILLABLE_CANCEL_REASONS = ("gone_on_arrival",)


@dataclass(frozen=True)
class ServiceTypeFigures:
    """One service type's requests created, completed and revenue (minor units) in a period."""

    code: str
    name: str
    created: int
    completed: int
    revenue: int | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "name": self.name,
            "created": self.created,
            "completed": self.completed,
            "revenue": self.revenue,
        }


@dataclass(frozen=True)
class Revenue:
    """Money earned in a period, in integer minor units of `currency`.

    `total` = `completed` (quoted prices of requests completed) + `billable_cancellations`
    (quoted prices of gone-on-arrival cancellations). `other_currencies` holds amounts quoted
    in another currency, which are not in `total`.
    """

    currency: str
    total: int
    completed: int
    billable_cancellations: int
    other_currencies: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return {
            "currency": self.currency,
            "total": self.total,
            "completed": self.completed,
            "billable_cancellations": self.billable_cancellations,
            "other_currencies": dict(self.other_currencies),
        }


@dataclass(frozen=True)
class Timings:
    """Average minutes from creation to assignment, arrival and completion (None: no data).

    `assigned`, `arrived` and `completed` are how many requests each average is over.
    """

    minutes_to_assign: float | None
    minutes_to_arrive: float | None
    minutes_to_complete: float | None
    assigned: int
    arrived: int
    completed: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "minutes_to_assign": self.minutes_to_assign,
            "minutes_to_arrive": self.minutes_to_arrive,
            "minutes_to_complete": self.minutes_to_complete,
            "assigned": self.assigned,
            "arrived": self.arrived,
            "completed": self.completed,
        }


@dataclass(frozen=True)
class DayFigures:
    """One local day of a period: requests created, completed, and revenue (minor units)."""

    day: date
    created: int
    completed: int
    revenue: int | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "day": self.day.isoformat(),
            "created": self.created,
            "completed": self.completed,
            "revenue": self.revenue,
        }


@dataclass(frozen=True)
class Report:
    """The figures of the local days `first_day` to `last_day` (both included).

    `currency` is the company's. `starts_at` and `ends_at` are the period's bounds in UTC
    (`ends_at` excluded). `by_status`
    and `by_priority` name every status and priority, zeros included; `by_service_type` lists
    the services with any figure, in price-list order; `days` has every local day of the period
    (only in reports asked for by day, such as the monthly report).
    """

    first_day: date
    last_day: date
    time_zone: str
    currency: str
    starts_at: datetime
    ends_at: datetime
    created: int
    by_status: dict[str, int]
    by_priority: dict[str, int]
    by_service_type: tuple[ServiceTypeFigures, ...]
    completed: int
    cancelled: int
    cancellations: dict[str, int]
    billable_cancellations: int
    revenue: Revenue | None
    timings: Timings
    days: tuple[DayFigures, ...]

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready values (dates and times as ISO 8601 strings)."""
        return {
            "first_day": self.first_day.isoformat(),
            "last_day": self.last_day.isoformat(),
            "time_zone": self.time_zone,
            "currency": self.currency,
            "starts_at": self.starts_at.isoformat(),
            "ends_at": self.ends_at.isoformat(),
            "created": self.created,
            "by_status": dict(self.by_status),
            "by_priority": dict(self.by_priority),
            "by_service_type": [figures.as_dict() for figures in self.by_service_type],
            "completed": self.completed,
            "cancelled": self.cancelled,
            "cancellations": dict(self.cancellations),
            "billable_cancellations": self.billable_cancellations,
            "revenue": self.revenue.as_dict() if self.revenue else None,
            "timings": self.timings.as_dict(),
            "days": [day.as_dict() for day in self.days],
        }


# $1 first local day, $2 the local day after the last, $3 time zone, $4 currency,
# $5 billable cancel reasons, $6 whether to break the period down by day.
_REPORT_SQL = """
WITH bounds AS (
    SELECT $1::date::timestamp AT TIME ZONE $3::text AS lo,
           $2::date::timestamp AT TIME ZONE $3::text AS hi
),
period AS (
    SELECT lo, hi, tstzrange(lo, hi, '[)') AS span FROM bounds
),
r AS (
    SELECT s.service_type, s.status, s.priority, s.quoted_price, s.currency, s.cancel_reason,
           s.created_at, s.assigned_at, s.on_scene_at, s.completed_at,
           p.span @> s.created_at AS created_in,
           coalesce(p.span @> s.assigned_at, false) AS assigned_in,
           coalesce(p.span @> s.on_scene_at, false) AS arrived_in,
           coalesce(p.span @> s.completed_at, false) AS completed_in,
           coalesce(p.span @> s.cancelled_at, false) AS cancelled_in,
           coalesce(p.span @> s.cancelled_at AND s.cancel_reason = ANY($5::text[]), false)
               AS billable_in,
           (s.created_at AT TIME ZONE $3::text)::date AS created_day,
           (coalesce(s.completed_at, s.cancelled_at) AT TIME ZONE $3::text)::date AS closed_day
    FROM service_requests s, period p
    -- Nothing happens to a request before it is created.
    WHERE s.created_at < p.hi
      AND (s.created_at >= p.lo OR s.assigned_at >= p.lo OR s.on_scene_at >= p.lo
           OR s.completed_at >= p.lo OR s.cancelled_at >= p.lo)
),
earned AS (
    SELECT * FROM r WHERE completed_in OR billable_in
)
SELECT
    (SELECT lo FROM period) AS starts_at,
    (SELECT hi FROM period) AS ends_at,
    count(*) FILTER (WHERE created_in) AS created,
    count(*) FILTER (WHERE completed_in) AS completed,
    count(*) FILTER (WHERE cancelled_in) AS cancelled,
    count(*) FILTER (WHERE billable_in) AS billable,
    coalesce(sum(quoted_price) FILTER (WHERE completed_in AND currency = $4), 0)
        AS completed_revenue,
    coalesce(sum(quoted_price) FILTER (WHERE billable_in AND currency = $4), 0)
        AS billable_revenue,
    count(*) FILTER (WHERE assigned_in) AS assigned,
    count(*) FILTER (WHERE arrived_in) AS arrived,
    round(avg(extract(epoch FROM assigned_at - created_at)) FILTER (WHERE assigned_in) / 60, 1)
        ::float8 AS minutes_to_assign,
    round(avg(extract(epoch FROM on_scene_at - created_at)) FILTER (WHERE arrived_in) / 60, 1)
        ::float8 AS minutes_to_arrive,
    round(avg(extract(epoch FROM completed_at - created_at)) FILTER (WHERE completed_in) / 60, 1)
        ::float8 AS minutes_to_complete,
    (SELECT coalesce(jsonb_object_agg(status, n), '{}')
        FROM (SELECT status, count(*) AS n FROM r WHERE created_in GROUP BY status) x
    ) AS by_status,
    (SELECT coalesce(jsonb_object_agg(priority, n), '{}')
        FROM (SELECT priority, count(*) AS n FROM r WHERE created_in GROUP BY priority) x
    ) AS by_priority,
    (SELECT coalesce(jsonb_object_agg(cancel_reason, n), '{}')
        FROM (SELECT cancel_reason, count(*) AS n FROM r WHERE cancelled_in
              GROUP BY cancel_reason) x
    ) AS cancellations,
    (SELECT coalesce(jsonb_object_agg(currency, amount), '{}')
        FROM (SELECT currency, sum(quoted_price) AS amount FROM earned WHERE currency <> $4
              GROUP BY currency) x
    ) AS other_currencies,
    (SELECT coalesce(jsonb_agg(jsonb_build_array(t.code, t.name, x.created, x.completed,
                                                 x.revenue) ORDER BY t.id), '[]')
        FROM (SELECT service_type,
                     count(*) FILTER (WHERE created_in) AS created,
                     count(*) FILTER (WHERE completed_in) AS completed,
                     coalesce(sum(quoted_price) FILTER (WHERE (completed_in OR billable_in)
                                                        AND currency = $4), 0) AS revenue
              FROM r GROUP BY service_type) x
        JOIN service_types t ON t.id = x.service_type
        WHERE x.created > 0 OR x.completed > 0 OR x.revenue <> 0
    ) AS by_service_type,
    (SELECT coalesce(jsonb_agg(jsonb_build_array(g.day, coalesce(c.n, 0), coalesce(e.n, 0),
                                                 coalesce(e.revenue, 0)) ORDER BY g.day), '[]')
        FROM (SELECT d::date AS day
              FROM generate_series($1::date::timestamp, ($2::date - 1)::timestamp,
                                   interval '1 day') AS d
              WHERE $6::boolean) g
        LEFT JOIN (SELECT created_day AS day, count(*) AS n FROM r WHERE created_in
                   GROUP BY created_day) c ON c.day = g.day
        LEFT JOIN (SELECT closed_day AS day, count(*) FILTER (WHERE completed_in) AS n,
                          coalesce(sum(quoted_price) FILTER (WHERE currency = $4), 0) AS revenue
                   FROM earned GROUP BY closed_day) e ON e.day = g.day
    ) AS days
FROM r
"""


def _check_day(value: Any, field: str) -> date:
    if isinstance(value, datetime) or not isinstance(value, date):
        raise UserError("invalid", f"{field} must be a date such as 2026-10-25", field)
    if not MIN_DAY <= value <= MAX_DAY:
        raise UserError(
            "out_of_range",
            f"{field} must be between {MIN_DAY.isoformat()} and {MAX_DAY.isoformat()}",
            field,
        )
    return value


def _check_int(value: Any, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError("invalid", f"{field} must be a whole number", field)
    if not low <= value <= high:
        raise UserError("out_of_range", f"{field} must be between {low} and {high}", field)
    return value


def _counts(data: dict[str, int], names: list[str]) -> dict[str, int]:
    """Every known name (zeros included) in order, then any other value the data holds."""
    counts = {name: int(data.get(name, 0)) for name in names}
    counts.update({name: int(n) for name, n in sorted(data.items()) if name not in counts})
    return counts


async def report_between(
    tenant: TenantRef, actor: Actor, start: date, end: date, *, by_day: bool = True
) -> Report:
    """The report of the company's local days `start` to `end`, both included.

    With `by_day`, `days` breaks the period down into every local day, zeros included.
    Needs `reports.view`; the money figures are `None` without `reports.revenue`. Raises
    `UserError` for dates out of range, an end before the start, or a period longer than
    `MAX_DAYS` days.
    """
    require(actor, "reports.view")
    first = _check_day(start, "start")
    last = _check_day(end, "end")
    if last < first:
        raise UserError("out_of_range", "end must not be before start", "end")
    if (last - first).days + 1 > MAX_DAYS:
        raise UserError("out_of_range", f"a report covers at most {MAX_DAYS} days", "end")
    async with tenant_transaction(tenant):
        settings = await get_settings(tenant)
        time_zone = str(settings.get("time_zone") or "UTC")
        currency = str(settings.get("currency") or "USD")
        rows = await engine.fetch(
            _REPORT_SQL,
            first,
            last + timedelta(days=1),
            time_zone,
            currency,
            list(BILLABLE_CANCEL_REASONS),
            by_day,
        )
    row = rows[0]
    by_service_type = tuple(
        ServiceTypeFigures(code, name, int(created), int(completed), int(revenue))
        for code, name, created, completed, revenue in json.loads(row["by_service_type"])
    )
    days = tuple(
        DayFigures(date.fromisoformat(day), int(created), int(completed), int(revenue))
        for day, created, completed, revenue in json.loads(row["days"])
    )
    completed_revenue = int(row["completed_revenue"])
    billable_revenue = int(row["billable_revenue"])
    report = Report(
        first_day=first,
        last_day=last,
        time_zone=time_zone,
        currency=currency,
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        created=int(row["created"]),
        by_status=_counts(json.loads(row["by_status"]), [s.value for s in RequestStatus]),
        by_priority=_counts(json.loads(row["by_priority"]), [p.value for p in Priority]),
        by_service_type=by_service_type,
        completed=int(row["completed"]),
        cancelled=int(row["cancelled"]),
        cancellations=_counts(json.loads(row["cancellations"]), []),
        billable_cancellations=int(row["billable"]),
        revenue=Revenue(
            currency=currency,
            total=completed_revenue + billable_revenue,
            completed=completed_revenue,
            billable_cancellations=billable_revenue,
            other_currencies=_counts(json.loads(row["other_currencies"]), []),
        ),
        timings=Timings(
            minutes_to_assign=row["minutes_to_assign"],
            minutes_to_arrive=row["minutes_to_arrive"],
            minutes_to_complete=row["minutes_to_complete"],
            assigned=int(row["assigned"]),
            arrived=int(row["arrived"]),
            completed=int(row["completed"]),
        ),
        days=days,
    )
    return report if actor.can("reports.revenue") else _without_money(report)


def _without_money(report: Report) -> Report:
    """The report with every money figure withheld (for those who may not see revenue)."""
    return replace(
        report,
        revenue=None,
        by_service_type=tuple(replace(f, revenue=None) for f in report.by_service_type),
        days=tuple(replace(d, revenue=None) for d in report.days),
    )


async def daily_report(tenant: TenantRef, actor: Actor, day: date) -> Report:
    """The report of one local day of the company (23, 24 or 25 hours long).

    Needs `reports.view`; raises `UserError` (field "day") for a value that is not a date.
    """
    require(actor, "reports.view")
    day = _check_day(day, "day")
    return await report_between(tenant, actor, day, day, by_day=False)


async def monthly_report(tenant: TenantRef, actor: Actor, year: int, month: int) -> Report:
    """The report of one calendar month in the company's local time, with every day in `days`.

    Needs `reports.view`; raises `UserError` (field "year" or "month") for values out of range.
    """
    require(actor, "reports.view")
    year = _check_int(year, "year", MIN_DAY.year, MAX_DAY.year)
    month = _check_int(month, "month", 1, 12)
    last = calendar.monthrange(year, month)[1]
    return await report_between(tenant, actor, date(year, month, 1), date(year, month, last))
