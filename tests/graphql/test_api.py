"""The GraphQL API end to end: tokens, the board, the life of a request, errors, isolation."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from patone.core.runtime.db import engine
from patone.tenants.isolation import tenant_transaction
from patone.tenants.registry import TenantInfo, tenant_cache
from tests.graphql.conftest import Gql, token_for
from tests.support import resigned

CREATE_CUSTOMER = """
mutation($input: CreateCustomerInput!, $key: String) {
  createCustomer(input: $input, idempotencyKey: $key) {
    customer { id name phone vehicles { id plate } }
    userErrors { field code message }
  }
}"""
CREATE_REQUEST = """
mutation($input: CreateServiceRequestInput!, $key: String) {
  createServiceRequest(input: $input, idempotencyKey: $key) {
    serviceRequest { id number status version quotedPrice { amount currency } }
    userErrors { field code message }
  }
}"""
TRANSITION = """
mutation($id: ID!, $status: RequestStatus!, $reason: String! = "") {
  transitionServiceRequest(id: $id, status: $status, reasonCode: $reason, lat: 52.5, lng: 13.4) {
    serviceRequest { status version events { fromStatus toStatus } }
    userErrors { field code message }
  }
}"""
MAKE_AVAILABLE = (
    "mutation($id: ID!) { updateDriver(id: $id, input: {status: AVAILABLE}) "
    "{ userErrors { code } } }"
)
ASSIGN = (
    "mutation($id: ID!, $d: ID!) { assignDriver(id: $id, driverId: $d) "
    "{ serviceRequest { status driver { id } } userErrors { code message } } }"
)
BOARD = """
query($first: Int!) {
  serviceRequests(first: $first, orderBy: PRIORITY, filter: {openOnly: true}) {
    edges { cursor node {
      id number status priority pickup { lat lng address }
      customer { id name phone }
      vehicle { plate make }
      serviceType { code name }
      driver { id name status }
    } }
    pageInfo { hasNextPage endCursor }
  }
}"""


async def _customer(gql: Gql, tenant: TenantInfo, token: str, name: str = "Dana") -> dict:  # type: ignore[type-arg]
    result = await gql(
        tenant,
        token,
        CREATE_CUSTOMER,
        {"input": {"name": name, "phone": "+14155552671", "vehicles": [{"plate": "AB 12"}]}},
    )
    return result["data"]["createCustomer"]["customer"]  # type: ignore[no-any-return]


async def _request(gql: Gql, tenant: TenantInfo, token: str, customer: dict) -> dict:  # type: ignore[type-arg]
    result = await gql(
        tenant,
        token,
        CREATE_REQUEST,
        {
            "input": {
                "customerId": customer["id"],
                "vehicleId": customer["vehicles"][0]["id"],
                "serviceType": "jump_start",
                "pickup": {"lat": 52.52, "lng": 13.4, "address": "Alexanderplatz"},
            }
        },
    )
    assert result["data"]["createServiceRequest"]["userErrors"] == []
    return result["data"]["createServiceRequest"]["serviceRequest"]  # type: ignore[no-any-return]


async def test_no_token_a_bad_token_or_another_tenants_token_is_refused(
    client: httpx.AsyncClient, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, bolt = two_tenants
    token = await token_for(acme, "dispatcher")
    cases = [
        {"X-Tenant": acme.slug},
        {"X-Tenant": acme.slug, "Authorization": "Bearer nonsense"},
        {"X-Tenant": bolt.slug, "Authorization": f"Bearer {token}"},
        {"X-Tenant": acme.slug, "Authorization": f"Bearer {resigned(token)}"},
    ]
    for headers in cases:
        response = await client.post(
            "/graphql", json={"query": "{ viewer { tenant } }"}, headers=headers
        )
        assert response.status_code == 401
        assert response.json()["errors"][0]["extensions"]["code"] == "unauthenticated"
    response = await client.post(
        "/graphql",
        json={"query": "{ viewer { tenant role } }"},
        headers={"X-Tenant": acme.slug, "Authorization": f"Bearer {token}"},
    )
    assert response.json()["data"]["viewer"] == {"tenant": acme.slug, "role": "dispatcher"}


async def test_a_request_through_its_whole_life(
    gql: Gql, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, _ = two_tenants
    dispatcher = await token_for(acme, "dispatcher")
    customer = await _customer(gql, acme, dispatcher)
    request = await _request(gql, acme, dispatcher, customer)
    assert request["status"] == "PENDING" and request["quotedPrice"]["amount"] > 0
    driver = (
        await gql(
            acme,
            await token_for(acme, "manager"),
            'mutation { createDriver(input: {name: "Tom"}) { driver { id } userErrors { code } } }',
        )
    )["data"]["createDriver"]["driver"]
    await gql(
        acme,
        dispatcher,
        "mutation($id: ID!) { updateDriver(id: $id, input: {status: AVAILABLE}) "
        "{ userErrors { code } } }",
        {"id": driver["id"]},
        status=200,
    )
    assigned = await gql(
        acme,
        dispatcher,
        "mutation($id: ID!, $d: ID!) { assignDriver(id: $id, driverId: $d) "
        "{ serviceRequest { status driver { id } } userErrors { code message } } }",
        {"id": request["id"], "d": driver["id"]},
    )
    assert assigned["data"]["assignDriver"]["userErrors"] == [] or assigned
    # updateDriver needs drivers.manage, which dispatchers lack: the driver was still off duty.
    assert assigned["data"]["assignDriver"]["userErrors"][0]["code"] == "off_duty"
    manager = await token_for(acme, "manager", "m2@example.com")
    await gql(
        acme,
        manager,
        "mutation($id: ID!) { updateDriver(id: $id, input: {status: AVAILABLE}) "
        "{ userErrors { code } } }",
        {"id": driver["id"]},
    )
    assigned = await gql(
        acme,
        dispatcher,
        "mutation($id: ID!, $d: ID!) { assignDriver(id: $id, driverId: $d) "
        "{ serviceRequest { status driver { id } } userErrors { code message } } }",
        {"id": request["id"], "d": driver["id"]},
    )
    assert assigned["data"]["assignDriver"]["serviceRequest"]["driver"]["id"] == driver["id"]
    for status in ("EN_ROUTE", "ON_SCENE", "IN_PROGRESS", "COMPLETED"):
        moved = await gql(acme, dispatcher, TRANSITION, {"id": request["id"], "status": status})
        assert moved["data"]["transitionServiceRequest"]["userErrors"] == []
    final = moved["data"]["transitionServiceRequest"]["serviceRequest"]
    assert final["status"] == "COMPLETED" and final["version"] == 6
    assert [e["toStatus"] for e in final["events"]][-1] == "COMPLETED"
    illegal = await gql(acme, dispatcher, TRANSITION, {"id": request["id"], "status": "EN_ROUTE"})
    error = illegal["data"]["transitionServiceRequest"]["userErrors"][0]
    assert error["code"] == "illegal_transition" and error["field"] == "status"


async def test_idempotent_create_over_the_api(
    gql: Gql, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, _ = two_tenants
    token = await token_for(acme, "dispatcher")
    variables = {"input": {"name": "Once"}, "key": "partner-42"}
    results = await asyncio.gather(
        *(gql(acme, token, CREATE_CUSTOMER, variables) for _ in range(3))
    )
    ids = {r["data"]["createCustomer"]["customer"]["id"] for r in results}
    assert len(ids) == 1
    async with tenant_transaction(acme):
        rows = await engine.fetch("SELECT count(*) AS n FROM customers")
    assert rows[0]["n"] == 1


async def test_an_idempotency_key_is_the_callers_own_and_bound_to_its_input(
    gql: Gql, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, bolt = two_tenants
    dee = await token_for(acme, "dispatcher", "dee@acme.example.com")
    eve = await token_for(acme, "dispatcher", "eve@acme.example.com")
    bolt_dee = await token_for(bolt, "dispatcher", "dee@acme.example.com")

    async def create(tenant: TenantInfo, token: str, name: str) -> dict[str, Any]:
        variables = {"input": {"name": name}, "key": "import-7"}
        return (await gql(tenant, token, CREATE_CUSTOMER, variables))["data"]["createCustomer"]

    first = await create(acme, dee, "Dee's customer")
    assert (await create(acme, dee, "Dee's customer"))["customer"] == first["customer"]
    others = await create(acme, eve, "Eve's customer")  # Eve's key, not Dee's
    assert others["customer"]["name"] == "Eve's customer"
    reused = await create(acme, dee, "Someone else")
    assert reused["customer"] is None
    assert [(e["field"], e["code"]) for e in reused["userErrors"]] == [
        ("idempotencyKey", "idempotency_key_reused")
    ]
    elsewhere = await create(bolt, bolt_dee, "Someone else")  # Bolt's Dee: Bolt's key
    assert elsewhere["customer"]["name"] == "Someone else"


async def test_bad_input_gets_user_errors_and_changes_nothing(
    gql: Gql, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, _bolt = two_tenants
    token = await token_for(acme, "dispatcher")
    customer = await _customer(gql, acme, token)
    bad_inputs = {
        "pickup.lat": {"pickup": {"lat": 95, "lng": 0}},
        "quotedPrice": {"quotedPrice": -100},
        "serviceType": {"serviceType": "teleport"},
        "customerId": {"customerId": "bm9wZQ"},
    }
    for field, change in bad_inputs.items():
        data = {
            "customerId": customer["id"],
            "serviceType": "lockout",
            "pickup": {"lat": 1, "lng": 1},
            **change,
        }
        result = await gql(acme, token, CREATE_REQUEST, {"input": data})
        payload = result["data"]["createServiceRequest"]
        assert payload["serviceRequest"] is None
        assert field in [e["field"] for e in payload["userErrors"]], payload
    # Variables that do not fit their types: refused before anything runs, with HTTP 400.
    missing = await gql(
        acme, token, CREATE_REQUEST, {"input": {"serviceType": "lockout"}}, status=400
    )
    assert "pickup" in missing["errors"][0]["message"]
    assert missing["errors"][0]["extensions"]["code"] == "invalid_variables"
    wrong_type = await gql(
        acme,
        token,
        CREATE_REQUEST,
        {"input": {"customerId": customer["id"], "serviceType": 5}},
        status=400,
    )
    assert wrong_type["errors"] and wrong_type.get("data") is None
    async with tenant_transaction(acme):
        rows = await engine.fetch("SELECT count(*) AS n FROM service_requests")
    assert rows[0]["n"] == 0


async def test_a_global_id_from_another_tenant_is_not_found(
    gql: Gql, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, bolt = two_tenants
    acme_token = await token_for(acme, "dispatcher")
    bolt_token = await token_for(bolt, "dispatcher")
    request = await _request(gql, acme, acme_token, await _customer(gql, acme, acme_token))
    seen = await gql(
        bolt,
        bolt_token,
        "query($id: ID!) { serviceRequest(id: $id) { id } node(id: $id) { id } }",
        {"id": request["id"]},
    )
    assert seen["data"] == {"serviceRequest": None, "node": None}
    moved = await gql(
        bolt,
        bolt_token,
        TRANSITION,
        {"id": request["id"], "status": "CANCELLED", "reason": "other"},
    )
    assert moved["data"]["transitionServiceRequest"]["userErrors"][0]["code"] == "not_found"


async def test_a_driver_cannot_create_requests(
    gql: Gql, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, _ = two_tenants
    dispatcher = await token_for(acme, "dispatcher")
    customer = await _customer(gql, acme, dispatcher)
    driver = await token_for(acme, "driver")
    result = await gql(
        acme,
        driver,
        CREATE_REQUEST,
        {
            "input": {
                "customerId": customer["id"],
                "serviceType": "lockout",
                "pickup": {"lat": 1, "lng": 1},
            }
        },
    )
    assert result["data"]["createServiceRequest"]["userErrors"][0]["code"] == "forbidden"
    listed = await gql(acme, driver, "{ customers { edges { node { id } } } }")
    assert listed["errors"][0]["extensions"]["code"] == "forbidden"


async def test_the_board_runs_the_same_queries_for_any_page_size(
    gql: Gql, two_tenants: tuple[TenantInfo, TenantInfo], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Per request: the viewer, the page, and one batch per relation (tenant look-ups are
    cached in production; the tests run with the cache off, so turn it on here)."""
    monkeypatch.setattr(tenant_cache, "ttl", 60.0)
    acme, _ = two_tenants
    token = await token_for(acme, "dispatcher")
    manager = await token_for(acme, "manager")
    drivers = []
    for i in range(3):
        created = await gql(
            acme,
            manager,
            "mutation($n: String!) { createDriver(input: {name: $n}) { driver { id } } }",
            {"n": f"D{i}"},
        )
        drivers.append(created["data"]["createDriver"]["driver"]["id"])
        await gql(
            acme,
            manager,
            MAKE_AVAILABLE,
            {"id": drivers[-1]},
        )
    requests = []
    for i in range(12):
        customer = await _customer(gql, acme, token, f"C{i}")
        requests.append(await _request(gql, acme, token, customer))
    for request, driver in zip(requests, drivers, strict=False):
        await gql(
            acme,
            token,
            ASSIGN,
            {"id": request["id"], "d": driver},
        )
    for _ in range(3):  # warm every pooled connection's type cache (asyncpg, not our queries)
        await gql(acme, token, BOARD, {"first": 10})
    counts = {}
    for first in (2, 5, 10):
        await asyncio.sleep(0)
        before = engine.statements["SELECT"]
        result = await gql(acme, token, BOARD, {"first": first})
        await asyncio.sleep(0)
        counts[first] = engine.statements["SELECT"] - before
        assert len(result["data"]["serviceRequests"]["edges"]) == first
        assert "errors" not in result
    assert len(set(counts.values())) == 1, counts
    assert counts[10] <= 6, counts


async def test_reports_over_the_api(gql: Gql, two_tenants: tuple[TenantInfo, TenantInfo]) -> None:
    acme, _ = two_tenants
    manager = await token_for(acme, "manager")
    dispatcher = await token_for(acme, "dispatcher")
    await _request(gql, acme, dispatcher, await _customer(gql, acme, dispatcher))
    today = (await gql(acme, manager, "{ settings }"))["data"]["settings"]["time_zone"]
    assert today == "UTC"
    from datetime import UTC, datetime

    day = datetime.now(UTC).date().isoformat()
    daily = await gql(acme, manager, "query($d: Date!) { dailyReport(day: $d) }", {"d": day})
    assert daily["data"]["dailyReport"]["created"] == 1
    # Dispatchers read the day's figures, but not its money.
    seen = await gql(acme, dispatcher, "query($d: Date!) { dailyReport(day: $d) }", {"d": day})
    assert seen["data"]["dailyReport"]["created"] == 1
    assert seen["data"]["dailyReport"]["revenue"] is None
    monthly = await gql(acme, manager, "{ monthlyReport(year: 2026, month: 13) }")
    assert monthly["errors"][0]["extensions"]["field"] == "month"


async def test_malformed_requests_get_json_errors(
    client: httpx.AsyncClient, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, _ = two_tenants
    headers = {"X-Tenant": acme.slug, "Authorization": f"Bearer {await token_for(acme, 'admin')}"}
    for body in (
        {"content": b"{not json", "headers": {**headers, "content-type": "application/json"}},
        {
            "json": {"query": "query A { viewer { role } }", "operationName": "B"},
            "headers": headers,
        },
    ):
        response = await client.post("/graphql", **body)  # type: ignore[arg-type]
        assert response.status_code == 400
        assert response.headers["content-type"] == "application/json"
        error = response.json()["errors"][0]
        assert error["message"]
        assert error["extensions"]["code"] == (
            "invalid_json" if "content" in body else "bad_request"
        )


async def test_vehicles_memberships_drivers_and_the_activity_log(
    gql: Gql, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, bolt = two_tenants
    manager = await token_for(acme, "manager")
    customer = await _customer(gql, acme, manager)
    vehicle_id = customer["vehicles"][0]["id"]
    changed = await gql(
        acme,
        manager,
        "mutation($id: ID!, $in: UpdateVehicleInput!) { updateVehicle(id: $id, input: $in) "
        "{ vehicle { colour plate } userErrors { field } } }",
        {"id": vehicle_id, "in": {"colour": "red", "plate": "xy 9"}},
    )
    assert changed["data"]["updateVehicle"]["vehicle"] == {"colour": "red", "plate": "XY9"}
    joined = await gql(
        acme,
        manager,
        "mutation($c: ID!, $in: MembershipInput!) { addMembership(customerId: $c, input: $in) "
        "{ membership { provider validUntil } } }",
        {
            "c": customer["id"],
            "in": {"provider": "AAA", "number": "42", "validUntil": "2027-01-31"},
        },
    )
    assert joined["data"]["addMembership"]["membership"] == {
        "provider": "AAA",
        "validUntil": "2027-01-31",
    }
    await gql(
        acme,
        manager,
        "mutation($id: ID!) { archiveVehicle(id: $id) { userErrors { code } } }",
        {"id": vehicle_id},
    )
    seen = await gql(
        acme,
        manager,
        "query($id: ID!) { customer(id: $id) { vehicles { id } memberships { number } } }",
        {"id": customer["id"]},
    )
    assert seen["data"]["customer"] == {"vehicles": [], "memberships": [{"number": "42"}]}

    created = await gql(
        acme, manager, 'mutation { createDriver(input: {name: "Ray"}) { driver { id } } }'
    )
    driver = created["data"]["createDriver"]["driver"]
    moved = await gql(
        acme,
        manager,
        "mutation($id: ID!) { updateDriverPosition(id: $id, lat: 52.5, lng: 13.4) "
        "{ driver { lastPosition { lat lng } } } }",
        {"id": driver["id"]},
    )
    position = moved["data"]["updateDriverPosition"]["driver"]["lastPosition"]
    assert position == {"lat": 52.5, "lng": 13.4}
    bad_shift = await gql(
        acme,
        manager,
        "mutation($id: ID!, $in: ShiftInput!) { addShift(driverId: $id, input: $in) "
        "{ shift { startsAt } userErrors { message } } }",
        {
            "id": driver["id"],
            "in": {"startsAt": "2026-12-01T18:00:00Z", "endsAt": "2026-12-01T08:00:00Z"},
        },
    )
    assert "end after it starts" in bad_shift["data"]["addShift"]["userErrors"][0]["message"]
    archived = await gql(
        acme,
        manager,
        "mutation($id: ID!) { archiveDriver(id: $id) { driver { status } } }",
        {"id": driver["id"]},
    )
    assert archived["data"]["archiveDriver"]["driver"]["status"] == "OFF_DUTY"

    log = await gql(
        acme,
        manager,
        "query($e: String) { activityLog(first: 3, entity: $e) "
        "{ edges { node { action before after } } pageInfo { hasNextPage } } }",
        {"e": "vehicle"},
    )
    actions = [e["node"]["action"] for e in log["data"]["activityLog"]["edges"]]
    assert actions == ["vehicle.archived", "vehicle.updated", "vehicle.created"]
    assert log["data"]["activityLog"]["edges"][1]["node"]["after"]["colour"] == "red"
    bolt_log = await gql(
        bolt, await token_for(bolt, "manager"), "{ activityLog { edges { node { action } } } }"
    )
    assert [e["node"]["action"] for e in bolt_log["data"]["activityLog"]["edges"]] == [
        "user.created"  # its own manager, made by token_for: nothing of acme's
    ]
    dispatcher = await token_for(acme, "dispatcher")
    refused = await gql(acme, dispatcher, "{ activityLog { edges { node { action } } } }")
    assert refused["errors"][0]["extensions"]["code"] == "forbidden"
