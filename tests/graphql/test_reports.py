"""Reports over the API: typed figures, money with its currency, each company its own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from patone.core.common.permissions import SYSTEM
from patone.core.domain import company
from patone.core.runtime.db import engine
from patone.tenants.isolation import tenant_transaction
from patone.tenants.registry import TenantInfo
from tests.graphql.conftest import Gql, token_for
from tests.graphql.test_connections import docs_query

MONTH = """
query($year: Int!, $month: Int!) {
  monthReport(year: $year, month: $month) {
    firstDay lastDay timeZone currency created completed cancelled billableCancellations
    createdByStatus { status count }
    createdByPriority { priority count }
    cancellations { reason count }
    revenue {
      total { amount currency } completed { amount currency }
      billableCancellations { amount currency } otherCurrencies { amount currency }
    }
    byServiceType { code created completed revenue { amount currency } }
    timings { minutesToComplete completed }
    days { day created completed revenue { amount currency } }
  }
}
"""

DAY = "query($d: Date!) { dayReport(day: $d) { created completed revenue { total { amount } } } }"


def at(day: int, hour: int) -> datetime:
    return datetime(2026, 3, day, hour, tzinfo=UTC)


# (created, status, price, currency, minutes to completion or None)
ACME_ROWS = (
    (at(2, 9), "completed", 9500, "USD", 60),
    (at(2, 10), "completed", 6500, "USD", 45),
    (at(3, 8), "pending", 5500, "USD", None),
    (at(28, 23), "completed", 12000, "USD", 120),  # completed Mar 29 01:00
    (at(31, 23), "completed", 5000, "USD", 120),  # completed in April: not March's revenue
)
BOLT_ROWS = ((at(2, 9), "completed", 70000, "GBP", 30),)


async def _insert(tenant: TenantInfo, rows: tuple) -> None:
    async with tenant_transaction(tenant):
        customer = (
            await engine.fetch(
                "INSERT INTO customers (name, notes, created_at, updated_at) "
                "VALUES ('Dana', '', now(), now()) RETURNING id"
            )
        )[0]["id"]
        towing = (await engine.fetch("SELECT id FROM service_types WHERE code = 'towing'"))[0]
        for created, status, price, currency, minutes in rows:
            done = None if minutes is None else created + timedelta(minutes=minutes)
            await engine.execute(
                "INSERT INTO service_requests (number, customer, service_type, priority, status, "
                "source, pickup_lat, pickup_lng, quoted_price, currency, cancel_reason, notes, "
                "created_by, created_at, updated_at, completed_at) VALUES "
                "(nextval('service_request_number_seq'), $1, $2, 'normal', $3, 'admin', 52.5, "
                "13.4, $4, $5, '', '', 'system', $6, $6, $7)",
                customer,
                towing["id"],
                status,
                price,
                currency,
                created,
                done,
            )


async def test_a_month_report_is_typed_and_adds_up(
    gql: Gql, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, bolt = two_tenants
    await company.update_settings(bolt, SYSTEM, {"currency": "GBP"})
    await _insert(acme, ACME_ROWS)
    await _insert(bolt, BOLT_ROWS)
    report = (await gql(acme, await token_for(acme, "manager"), MONTH, {"year": 2026, "month": 3}))[
        "data"
    ]["monthReport"]
    assert report["currency"] == "USD"
    assert report["created"] == 5 == sum(s["count"] for s in report["createdByStatus"])
    assert {"status": "COMPLETED", "count": 4} in report["createdByStatus"]
    # Completed in March: the one completed on April 1 is created in March but not completed.
    assert report["completed"] == 3
    revenue = report["revenue"]
    assert revenue["total"] == {"amount": 9500 + 6500 + 12000, "currency": "USD"}
    assert revenue["completed"] == revenue["total"]
    assert revenue["billableCancellations"] == {"amount": 0, "currency": "USD"}
    assert revenue["otherCurrencies"] == []
    assert len(report["days"]) == 31
    assert sum(d["revenue"]["amount"] for d in report["days"]) == revenue["total"]["amount"]
    assert {d["revenue"]["currency"] for d in report["days"]} == {"USD"}
    assert report["byServiceType"] == [
        {"code": "towing", "created": 5, "completed": 3, "revenue": revenue["total"]}
    ]
    # Bolt's month holds only its own request, in its own currency.
    bolt_report = (
        await gql(bolt, await token_for(bolt, "admin"), MONTH, {"year": 2026, "month": 3})
    )["data"]["monthReport"]
    assert (bolt_report["created"], bolt_report["completed"]) == (1, 1)
    assert bolt_report["revenue"]["total"] == {"amount": 70000, "currency": "GBP"}


async def test_dispatchers_see_figures_without_money(
    gql: Gql, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, bolt = two_tenants
    await _insert(acme, ACME_ROWS)
    await _insert(bolt, BOLT_ROWS)
    dispatcher = await token_for(acme, "dispatcher")
    day = (await gql(acme, dispatcher, DAY, {"d": "2026-03-02"}))["data"]["dayReport"]
    assert day == {"created": 2, "completed": 2, "revenue": None}
    month = await gql(acme, dispatcher, MONTH, {"year": 2026, "month": 3})
    assert "errors" not in month
    report = month["data"]["monthReport"]
    assert report["revenue"] is None
    assert {d["revenue"] for d in report["days"]} == {None}
    assert report["byServiceType"][0]["revenue"] is None
    # A driver sees no report; bad input names its field.
    driver = await token_for(acme, "driver")
    refused = await gql(acme, driver, DAY, {"d": "2026-03-02"})
    assert refused["errors"][0]["extensions"]["code"] == "forbidden"
    bad = await gql(acme, dispatcher, MONTH, {"year": 2026, "month": 13})
    assert bad["errors"][0]["extensions"]["field"] == "month"


async def test_the_docs_report_query_runs_as_written(
    gql: Gql, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, bolt = two_tenants
    await _insert(acme, ACME_ROWS)
    await _insert(bolt, BOLT_ROWS)
    answer = await gql(acme, await token_for(acme, "manager"), docs_query("query March"))
    assert "errors" not in answer
    report = answer["data"]["monthReport"]
    assert (report["created"], report["completed"]) == (5, 3)
    assert report["revenue"]["total"] == {"amount": 28000, "currency": "USD"}
