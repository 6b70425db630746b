"""Drivers in the API: a driver sets their own duty status, and only their own."""

from __future__ import annotations

from patone.core.common.permissions import SYSTEM
from patone.core.domain import customers, drivers, service_requests
from patone.core.identity import users
from patone.core.identity.tokens import issue_access_token
from patone.graphql.ids import to_global_id
from patone.tenants.registry import TenantInfo
from tests.graphql.conftest import SECRET, Gql, token_for

SET_MY_STATUS = """
mutation($status: DriverStatus!) {
  setMyStatus(status: $status) { driver { id status } userErrors { field code message } }
}"""
UPDATE_STATUS = """
mutation($id: ID!) {
  updateDriver(id: $id, input: {status: AVAILABLE}) { driver { status } userErrors { code } }
}"""


async def _driver_with_sign_in(tenant: TenantInfo, name: str) -> tuple[dict, str]:  # type: ignore[type-arg]
    user = await users.create_user(
        tenant,
        SYSTEM,
        {"email": f"{name.lower()}@{tenant.slug}.example.com", "name": name, "role": "driver"},
    )
    driver = await drivers.create_driver(tenant, SYSTEM, {"name": name, "user_id": user.id})
    return driver, issue_access_token(SECRET, tenant, user.id)


async def _status(tenant: TenantInfo, driver_id: int) -> str:
    return str((await drivers.get_driver(tenant, SYSTEM, driver_id)).status)


async def test_a_driver_goes_on_duty_and_on_break_alone_and_only_themselves(
    gql: Gql, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, bolt = two_tenants
    kim, kim_token = await _driver_with_sign_in(acme, "Kim")
    lee, _ = await _driver_with_sign_in(acme, "Lee")
    bolt_driver, bolt_token = await _driver_with_sign_in(bolt, "Kim")

    on_duty = await gql(acme, kim_token, SET_MY_STATUS, {"status": "AVAILABLE"})
    assert on_duty["data"]["setMyStatus"] == {
        "driver": {"id": to_global_id("Driver", kim.id), "status": "AVAILABLE"},
        "userErrors": [],
    }
    on_break = await gql(acme, kim_token, SET_MY_STATUS, {"status": "ON_BREAK"})
    assert on_break["data"]["setMyStatus"]["driver"]["status"] == "ON_BREAK"
    busy = await gql(acme, kim_token, SET_MY_STATUS, {"status": "BUSY"})
    assert busy["data"]["setMyStatus"]["userErrors"][0]["field"] == "status"
    assert busy["data"]["setMyStatus"]["userErrors"][0]["code"] == "invalid_choice"

    # Another driver's status is a manager's to set, not a colleague's.
    other = await gql(acme, kim_token, UPDATE_STATUS, {"id": to_global_id("Driver", lee.id)})
    assert other["data"]["updateDriver"]["userErrors"][0]["code"] == "forbidden"
    assert await _status(acme, lee.id) == "off_duty"
    assert await _status(acme, kim.id) == "on_break"
    assert await _status(bolt, bolt_driver.id) == "off_duty"  # the same id elsewhere
    # A staff member who is no driver has no status of their own.
    dispatcher = await token_for(acme, "dispatcher")
    refused = await gql(acme, dispatcher, SET_MY_STATUS, {"status": "AVAILABLE"})
    assert refused["data"]["setMyStatus"]["userErrors"][0]["code"] == "forbidden"

    bolt_on = await gql(bolt, bolt_token, SET_MY_STATUS, {"status": "AVAILABLE"})
    assert bolt_on["data"]["setMyStatus"]["driver"]["status"] == "AVAILABLE"
    assert await _status(acme, kim.id) == "on_break"


async def test_a_driver_on_a_job_cannot_go_off_duty(
    gql: Gql, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, _ = two_tenants
    kim, kim_token = await _driver_with_sign_in(acme, "Kim")
    await gql(acme, kim_token, SET_MY_STATUS, {"status": "AVAILABLE"})
    customer = await customers.create_customer(acme, SYSTEM, {"name": "Dana"})
    job = await service_requests.create_request(
        acme,
        SYSTEM,
        {"customer_id": customer.id, "service_type": "lockout", "pickup": {"lat": 1, "lng": 1}},
    )
    await service_requests.assign_driver(acme, SYSTEM, job.id, kim.id)

    off = await gql(acme, kim_token, SET_MY_STATUS, {"status": "OFF_DUTY"})
    error = off["data"]["setMyStatus"]["userErrors"][0]
    assert error["code"] == "job_in_progress" and str(job.number) in error["message"]
    assert await _status(acme, kim.id) == "busy"

    await service_requests.transition(
        acme, SYSTEM, job.id, "cancelled", reason_code="customer_cancelled"
    )
    off = await gql(acme, kim_token, SET_MY_STATUS, {"status": "OFF_DUTY"})
    assert off["data"]["setMyStatus"]["driver"]["status"] == "OFF_DUTY"
