"""Reports in the API: typed figures, money as an amount with its currency.

What each figure counts is defined once, in `patone.core.domain.reports`; the descriptions here say
the same in the API's words.
"""

from __future__ import annotations

from datetime import date, datetime

import strawberry

from patone.core.domain import reports
from patone.graphql.types import Money, Priority, RequestStatus

_MONEY = " Null without the permission `reports.revenue`."


@strawberry.type(description="How many requests created in the period have one status now.")
class StatusCount:
    status: RequestStatus
    count: int


@strawberry.type(description="How many requests created in the period have one priority.")
class PriorityCount:
    priority: Priority
    count: int


@strawberry.type(description="How many requests were cancelled in the period for one reason.")
class ReasonCount:
    reason: str
    count: int


@strawberry.type(description="One service's figures in the period.")
class ServiceTypeReport:
    code: str
    name: str
    created: int = strawberry.field(description="Requests of this service created.")
    completed: int = strawberry.field(description="Requests of this service completed.")
    revenue: Money | None = strawberry.field(
        description="Quoted prices of this service's requests completed, plus its billable "
        "cancellations, in the company's currency." + _MONEY
    )


@strawberry.type(description="One local day of a period.")
class DayReport:
    day: date
    created: int = strawberry.field(description="Requests created that day.")
    completed: int = strawberry.field(description="Requests completed that day.")
    revenue: Money | None = strawberry.field(
        description="Quoted prices of the requests completed that day, plus the billable "
        "cancellations of that day, in the company's currency." + _MONEY
    )


@strawberry.type(description="Money earned in the period.")
class RevenueReport:
    total: Money = strawberry.field(description="`completed` plus `billableCancellations`.")
    completed: Money = strawberry.field(
        description="Quoted prices of the requests completed in the period."
    )
    billable_cancellations: Money = strawberry.field(
        description="Quoted prices of the gone-on-arrival cancellations of the period."
    )
    other_currencies: list[Money] = strawberry.field(
        description="Amounts quoted in another currency than the company's (before it changed "
        "currency); never added to the totals."
    )


@strawberry.type(description="Average minutes from a request's creation to each step.")
class TimingsReport:
    minutes_to_assign: float | None = strawberry.field(
        description="Over the requests assigned in the period (null: none)."
    )
    minutes_to_arrive: float | None = strawberry.field(
        description="Over the requests whose driver arrived in the period (null: none)."
    )
    minutes_to_complete: float | None = strawberry.field(
        description="Over the requests completed in the period (null: none)."
    )
    assigned: int
    arrived: int
    completed: int


@strawberry.type(
    description="The figures of the company's local days `firstDay` to `lastDay`. Requests "
    "*created* in the period are counted in `created`, `createdByStatus` (by the status they "
    "have now, so it sums to `created`) and `createdByPriority`; requests *completed* in the "
    "period in `completed`; requests *cancelled* in the period in `cancelled`."
)
class Report:
    first_day: date
    last_day: date
    time_zone: str
    starts_at: datetime = strawberry.field(description="The period's start (UTC, included).")
    ends_at: datetime = strawberry.field(description="The period's end (UTC, excluded).")
    currency: str = strawberry.field(description="The company's currency (ISO 4217).")
    created: int = strawberry.field(description="Requests created in the period.")
    created_by_status: list[StatusCount] = strawberry.field(
        description="The requests created in the period, by the status they have now: every "
        "status, zeros included. Its `COMPLETED` line is not `completed`."
    )
    created_by_priority: list[PriorityCount] = strawberry.field(
        description="The requests created in the period, by priority, zeros included."
    )
    completed: int = strawberry.field(
        description="Requests completed in the period, whenever they were created."
    )
    cancelled: int = strawberry.field(description="Requests cancelled in the period.")
    cancellations: list[ReasonCount] = strawberry.field(
        description="The requests cancelled in the period, by reason."
    )
    billable_cancellations: int = strawberry.field(
        description="Gone-on-arrival cancellations of the period, which are charged."
    )
    revenue: RevenueReport | None = strawberry.field(description="Money earned." + _MONEY)
    by_service_type: list[ServiceTypeReport] = strawberry.field(
        description="The services with any figure in the period, in price-list order."
    )
    timings: TimingsReport
    days: list[DayReport] = strawberry.field(
        description="Every local day of the period (monthly reports; empty for a day's report)."
    )


def _money(amount: int | None, currency: str) -> Money | None:
    return None if amount is None else Money(amount=amount, currency=currency)


def _revenue(revenue: reports.Revenue) -> RevenueReport:
    currency = revenue.currency
    return RevenueReport(
        total=Money(amount=revenue.total, currency=currency),
        completed=Money(amount=revenue.completed, currency=currency),
        billable_cancellations=Money(amount=revenue.billable_cancellations, currency=currency),
        other_currencies=[Money(amount=n, currency=c) for c, n in revenue.other_currencies.items()],
    )


def report_of(report: reports.Report) -> Report:
    """The API's typed report of a core report."""
    currency = report.currency
    statuses = {s.value for s in RequestStatus}
    priorities = {p.value for p in Priority}
    timings = report.timings
    return Report(
        first_day=report.first_day,
        last_day=report.last_day,
        time_zone=report.time_zone,
        starts_at=report.starts_at,
        ends_at=report.ends_at,
        currency=report.currency,
        created=report.created,
        created_by_status=[
            StatusCount(status=RequestStatus(s), count=n)
            for s, n in report.by_status.items()
            if s in statuses
        ],
        created_by_priority=[
            PriorityCount(priority=Priority(p), count=n)
            for p, n in report.by_priority.items()
            if p in priorities
        ],
        completed=report.completed,
        cancelled=report.cancelled,
        cancellations=[ReasonCount(reason=r, count=n) for r, n in report.cancellations.items()],
        billable_cancellations=report.billable_cancellations,
        revenue=_revenue(report.revenue) if report.revenue else None,
        by_service_type=[
            ServiceTypeReport(
                code=f.code,
                name=f.name,
                created=f.created,
                completed=f.completed,
                revenue=_money(f.revenue, currency),
            )
            for f in report.by_service_type
        ],
        timings=TimingsReport(
            minutes_to_assign=timings.minutes_to_assign,
            minutes_to_arrive=timings.minutes_to_arrive,
            minutes_to_complete=timings.minutes_to_complete,
            assigned=timings.assigned,
            arrived=timings.arrived,
            completed=timings.completed,
        ),
        days=[
            DayReport(
                day=d.day,
                created=d.created,
                completed=d.completed,
                revenue=_money(d.revenue, currency),
            )
            for d in report.days
        ],
    )
