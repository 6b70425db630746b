"""`POST /api/driver/pings` through the real app: a driver's token, counts back, reasons for
refused pings, and nothing of one company in another's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from patone.core.common.permissions import SYSTEM
from patone.core.dispatch import positions
from patone.core.domain import drivers
from patone.core.identity import users
from patone.core.identity.tokens import Kind, issue_access_token, issue_token
from patone.core.runtime.clock import now
from patone.http.pings import PINGS_PATH
from patone.tenants.registry import TenantInfo
from tests.support import app_client

SECRET = "driver-routes-test-secret"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(SECRET) as client:
        yield client


async def driver_token(tenant: TenantInfo, name: str = "Ray") -> tuple[int, str]:
    """A driver of `tenant` who signs in as a user: their driver id and access token."""
    user = await users.create_user(
        tenant,
        SYSTEM,
        {"email": f"{name.lower()}@{tenant.slug}.example", "name": name, "role": "driver"},
    )
    driver = await drivers.create_driver(tenant, SYSTEM, {"name": name, "user_id": user.id})
    return driver.id, issue_access_token(SECRET, tenant, user.id)


async def send(
    client: httpx.AsyncClient, tenant: TenantInfo, token: str, body: Any
) -> httpx.Response:
    return await client.post(
        PINGS_PATH, json=body, headers={"X-Tenant": tenant.slug, "Authorization": f"Bearer {token}"}
    )


def ping(seconds_ago: float = 0, **extra: Any) -> dict[str, Any]:
    at = now() - timedelta(seconds=seconds_ago)
    return {"lat": 52.52, "lng": 13.405, "accuracy_m": 6, "recorded_at": at.isoformat(), **extra}


async def test_a_driver_sends_a_batch_and_gets_counts_back(
    client: httpx.AsyncClient, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, bolt = two_tenants
    driver_id, token = await driver_token(acme)
    answer = await send(client, acme, token, [ping(10), ping(5, lat=52.53), ping(0, lat=52.54)])
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"accepted": 3, "ignored": 0}
    again = await send(client, acme, token, {"pings": [ping(7)]})
    assert again.json() == {"accepted": 0, "ignored": 1}
    (latest,) = await positions.driver_positions(acme)
    assert (latest.driver_id, latest.lat) == (driver_id, 52.54)
    assert await positions.driver_positions(bolt) == []


async def test_refused_pings_come_back_with_reasons_and_nothing_is_stored(
    client: httpx.AsyncClient, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, _bolt = two_tenants
    _driver_id, token = await driver_token(acme)
    answer = await send(
        client, acme, token, [ping(1), ping(lat=-91), ping(-60), ping(accuracy_m=None)]
    )
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "invalid_pings" and error["field"] == "pings"
    assert [(e["index"], e["field"], e["code"]) for e in error["errors"]] == [
        (1, "lat", "out_of_range"),
        (2, "recorded_at", "in_future"),
        (3, "accuracy_m", "required"),
    ]
    assert await positions.driver_positions(acme) == []
    not_a_list = await send(client, acme, token, {"lat": 1})
    assert (not_a_list.status_code, not_a_list.json()["error"]["code"]) == (400, "invalid_json")


async def test_only_a_valid_token_of_the_company_is_let_in(
    client: httpx.AsyncClient, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, bolt = two_tenants
    _acme_driver, acme_token = await driver_token(acme)
    _bolt_driver, bolt_token = await driver_token(bolt, "Bo")
    assert (await send(client, acme, "garbage", [ping()])).status_code == 401
    assert (await send(client, acme, bolt_token, [ping()])).status_code == 401
    anonymous = await client.post(PINGS_PATH, json=[ping()], headers={"X-Tenant": acme.slug})
    assert anonymous.status_code == 401
    dispatcher = await users.create_user(
        acme, SYSTEM, {"email": "d@acme.example", "name": "D", "role": "dispatcher"}
    )
    staff_token = issue_access_token(SECRET, acme, dispatcher.id)
    customer_token = issue_token(SECRET, kind=Kind.customer, subject="1", tenant=acme)
    for token in (staff_token, customer_token):
        forbidden = await send(client, acme, token, [ping()])
        assert (forbidden.status_code, forbidden.json()["error"]["code"]) == (403, "forbidden")
    assert (await send(client, acme, acme_token, [ping()])).status_code == 200
    assert await positions.driver_positions(bolt) == []
