"""`node(id:)` resolves every Node type the schema has, within the viewer's permissions and
company."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from patone.core.runtime.db import engine
from patone.graphql.ids import to_global_id
from patone.tenants.isolation import tenant_transaction
from patone.tenants.registry import TenantInfo
from tests.graphql.conftest import Gql, token_for
from tests.graphql.test_connections import docs_query
from tests.support import plugin_runtime


@pytest.fixture(autouse=True)
def runtime() -> Iterator[None]:
    """Plugins with no providers (webhook endpoints seal their secrets with its key)."""
    with plugin_runtime(entry_points=False, timeout=2, secret="node-test-key"):
        yield


NODE_TYPES = "{ __schema { types { name interfaces { name } } } }"
NODE = "query($id: ID!) { node(id: $id) { __typename id } }"


async def _node_types(gql: Gql, tenant: TenantInfo, token: str) -> set[str]:
    result = await gql(tenant, token, NODE_TYPES)
    return {
        t["name"]
        for t in result["data"]["__schema"]["types"]
        if any(i["name"] == "Node" for i in t["interfaces"] or ())
    }


async def _one_of_each(gql: Gql, tenant: TenantInfo, token: str) -> dict[str, str]:
    """One object of every Node type in the company, made as its users would: type -> id."""
    made = await gql(
        tenant,
        token,
        """mutation {
          createCustomer(input: {name: "Dana", phone: "+14155552671",
                                 vehicles: [{plate: "AB 12"}]}) {
            customer { id vehicles { id } } userErrors { code } }
          createDriver(input: {name: "Otto"}) { driver { id } userErrors { code } }
          createUser(input: {email: "staff@example.com", name: "Sam", role: "dispatcher"}) {
            user { id } userErrors { code } }
          createApiClient(input: {name: "Club", scopes: ["requests:read"]}) {
            apiClient { id } userErrors { code } }
          createWebhookEndpoint(input: {url: "http://127.0.0.1:9/hook"}) {
            endpoint { id } userErrors { code } }
        }""",
    )
    data = made["data"]
    customer = data["createCustomer"]["customer"]
    request = await gql(
        tenant,
        token,
        """mutation($c: ID!, $v: ID!) { createServiceRequest(input: {customerId: $c,
             vehicleId: $v, serviceType: "jump_start", pickup: {lat: 52.5, lng: 13.4}}) {
             serviceRequest { id serviceType { id } } userErrors { code } } }""",
        {"c": customer["id"], "v": customer["vehicles"][0]["id"]},
    )
    service_request = request["data"]["createServiceRequest"]["serviceRequest"]
    async with tenant_transaction(tenant):
        [delivery] = await engine.fetch(
            "INSERT INTO webhook_deliveries (endpoint_id, message_id, event_type, payload) "
            "SELECT id, 'msg_node', 'webhook.test', '{}'::jsonb FROM webhook_endpoints "
            "RETURNING id"
        )
        [entry] = await engine.fetch("SELECT max(id) AS id FROM activity_log")
    return {
        "ActivityEntry": to_global_id("ActivityEntry", entry["id"]),
        "ApiClient": data["createApiClient"]["apiClient"]["id"],
        "Customer": customer["id"],
        "Driver": data["createDriver"]["driver"]["id"],
        "ServiceRequest": service_request["id"],
        "ServiceType": service_request["serviceType"]["id"],
        "User": data["createUser"]["user"]["id"],
        "Vehicle": customer["vehicles"][0]["id"],
        "WebhookDelivery": to_global_id("WebhookDelivery", delivery["id"]),
        "WebhookEndpoint": data["createWebhookEndpoint"]["endpoint"]["id"],
    }


async def _node(gql: Gql, tenant: TenantInfo, token: str, node_id: str) -> dict[str, Any]:
    return await gql(tenant, token, NODE, {"id": node_id})


async def test_every_node_type_resolves_for_an_admin_of_its_company(
    gql: Gql, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    for tenant in two_tenants:
        admin = await token_for(tenant, "admin")
        ids = await _one_of_each(gql, tenant, admin)
        assert await _node_types(gql, tenant, admin) == set(ids), "a Node type has no object"
        for type_name, node_id in ids.items():
            result = await _node(gql, tenant, admin, node_id)
            assert result["data"]["node"] == {"__typename": type_name, "id": node_id}, result


async def test_another_companys_ids_resolve_to_null(
    gql: Gql, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, bolt = two_tenants
    ids = await _one_of_each(gql, acme, await token_for(acme, "admin"))
    # Ids are numbered per company: these name rows bolt never had (its price list aside,
    # which every company starts with, so it takes one number past it).
    async with tenant_transaction(acme):
        [row] = await engine.fetch(
            "INSERT INTO service_types (code, name, base_price, per_distance_price, "
            "after_hours_surcharge, needs_destination, required_skills, active) "
            "VALUES ('winch', 'Winch', 9000, 0, 0, false, '{}', true) RETURNING id"
        )
    ids["ServiceType"] = to_global_id("ServiceType", row["id"])
    bolt_admin = await token_for(bolt, "admin")
    for type_name, node_id in ids.items():
        result = await _node(gql, bolt, bolt_admin, node_id)
        assert result["data"]["node"] is None, (type_name, result)


async def test_a_role_without_the_permission_gets_no_object(
    gql: Gql, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, _ = two_tenants
    ids = await _one_of_each(gql, acme, await token_for(acme, "admin"))
    driver = await token_for(acme, "driver")
    for type_name, node_id in ids.items():
        result = await _node(gql, acme, driver, node_id)
        if type_name == "ServiceType":  # the price list is open to the whole company
            assert result["data"]["node"]["id"] == node_id
            continue
        # The same answer the type's own field gives: refused, or (a job that is not theirs)
        # no such object.
        assert result["data"] is None or result["data"]["node"] is None, (type_name, result)
        codes = [e["extensions"]["code"] for e in result.get("errors", [])]
        assert codes in ([], ["forbidden"]), (type_name, result)


async def test_the_docs_node_query_runs_as_written(
    gql: Gql, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, bolt = two_tenants
    admin = await token_for(acme, "admin")
    await _one_of_each(gql, acme, admin)  # the company's first vehicle: the docs' id
    result = await gql(acme, admin, docs_query("query { node("))
    assert result["data"]["node"]["__typename"] == "Vehicle", result
    assert result["data"]["node"]["plate"] == "AB12"
    assert (await gql(bolt, await token_for(bolt, "admin"), docs_query("query { node(")))[
        "data"
    ] == {"node": None}
