"""Partners in the API: clients managed by admins, tokens limited by scope, revocation."""

from __future__ import annotations

import base64
from typing import Any

import httpx

from patone.tenants.registry import TenantInfo
from tests.graphql.conftest import Gql, token_for
from tests.graphql.test_api import CREATE_REQUEST, _customer

CREATE_CLIENT = """
mutation($input: CreateApiClientInput!) {
  createApiClient(input: $input) {
    apiClient { id clientId name scopes lastUsedAt revokedAt }
    clientSecret
    userErrors { field code message }
  }
}"""
LIST_CLIENTS = "{ apiClients { id clientId lastUsedAt revokedAt } }"
REVOKE_CLIENT = (
    "mutation($id: ID!) { revokeApiClient(id: $id) "
    "{ apiClient { revokedAt } userErrors { field code message } } }"
)


async def _partner_token(client: httpx.AsyncClient, client_id: str, secret: str) -> str:
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    response = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


async def _make_client(gql: Gql, tenant: TenantInfo, admin: str, *scopes: str) -> dict[str, Any]:
    made = await gql(
        tenant, admin, CREATE_CLIENT, {"input": {"name": "Motor club", "scopes": list(scopes)}}
    )
    payload = made["data"]["createApiClient"]
    assert payload["userErrors"] == [], payload
    return {**payload["apiClient"], "secret": payload["clientSecret"]}


def _request_input(customer: dict[str, Any]) -> dict[str, Any]:
    # A partner sends the motorist, not a customer id: it reads no customers.
    motorist = {"name": customer["name"], "phone": customer["phone"]}
    return {
        "input": {
            "motorist": motorist,
            "serviceType": "jump_start",
            "pickup": {"lat": 52.52, "lng": 13.4, "address": "Alexanderplatz"},
        }
    }


async def test_admins_create_list_and_revoke_clients_and_revoked_tokens_stop_working(
    gql: Gql, client: httpx.AsyncClient, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, bolt = two_tenants
    admin, bolt_admin = await token_for(acme, "admin"), await token_for(bolt, "admin")
    dispatcher = await token_for(acme, "dispatcher")

    made = await _make_client(gql, acme, admin, "requests:read")
    assert made["secret"].startswith("pcs_") and made["lastUsedAt"] is None
    bad = await gql(acme, admin, CREATE_CLIENT, {"input": {"name": "x", "scopes": ["all"]}})
    assert bad["data"]["createApiClient"]["userErrors"][0]["field"] == "scopes"
    refused = await gql(acme, dispatcher, CREATE_CLIENT, {"input": {"name": "x", "scopes": []}})
    assert refused["data"]["createApiClient"]["userErrors"][0]["code"] == "forbidden"
    assert (await gql(acme, dispatcher, LIST_CLIENTS))["errors"][0]["extensions"]["code"] == (
        "forbidden"
    )

    token = await _partner_token(client, made["clientId"], made["secret"])
    listed = (await gql(acme, admin, LIST_CLIENTS))["data"]["apiClients"]
    assert [(c["clientId"], c["lastUsedAt"] is not None) for c in listed] == [
        (made["clientId"], True)
    ]
    assert (await gql(bolt, bolt_admin, LIST_CLIENTS))["data"]["apiClients"] == []

    seen = await gql(acme, token, "{ serviceRequests(first: 5) { edges { node { id } } } }")
    assert "errors" not in seen
    elsewhere = await gql(bolt, bolt_admin, REVOKE_CLIENT, {"id": made["id"]})
    assert elsewhere["data"]["revokeApiClient"]["userErrors"][0]["code"] == "not_found"
    revoked = await gql(acme, admin, REVOKE_CLIENT, {"id": made["id"]})
    assert revoked["data"]["revokeApiClient"]["apiClient"]["revokedAt"] is not None

    after = await gql(acme, token, "{ viewer { tenant } }", status=401)
    assert "revoked" in after["errors"][0]["message"]


async def test_a_partner_token_without_requests_write_cannot_create_requests(
    gql: Gql, client: httpx.AsyncClient, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, bolt = two_tenants
    admin, dispatcher = await token_for(acme, "admin"), await token_for(acme, "dispatcher")
    customer = await _customer(gql, acme, dispatcher)
    reader = await _make_client(gql, acme, admin, "requests:read")
    writer = await _make_client(gql, acme, admin, "requests:read", "requests:write")
    read_only = await _partner_token(client, reader["clientId"], reader["secret"])
    read_write = await _partner_token(client, writer["clientId"], writer["secret"])

    refused = await gql(acme, read_only, CREATE_REQUEST, _request_input(customer))
    assert refused["data"]["createServiceRequest"]["userErrors"][0]["code"] == "forbidden"
    created = await gql(acme, read_write, CREATE_REQUEST, _request_input(customer))
    assert created["data"]["createServiceRequest"]["userErrors"] == []
    board = "{ serviceRequests(first: 5) { edges { node { id } } } }"
    listed = await gql(acme, read_write, board)
    assert [e["node"]["id"] for e in listed["data"]["serviceRequests"]["edges"]] == [
        created["data"]["createServiceRequest"]["serviceRequest"]["id"]
    ]
    # Another client of the same company sees none of this client's jobs.
    assert (await gql(acme, read_only, board))["data"]["serviceRequests"]["edges"] == []
    reports = await gql(acme, read_write, "{ monthlyReport(year: 2026, month: 1) }")
    assert reports["errors"][0]["extensions"]["code"] == "forbidden"
    other_company = await gql(bolt, read_write, "{ viewer { tenant } }", status=401)
    assert "another company" in other_company["errors"][0]["message"]


async def test_signed_out_tokens_are_refused_and_only_managers_sign_others_out(
    gql: Gql, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, bolt = two_tenants
    dispatcher, manager = await token_for(acme, "dispatcher"), await token_for(acme, "manager")
    driver = await token_for(acme, "driver")
    neighbour = await token_for(bolt, "dispatcher")

    signed_out = await gql(acme, dispatcher, "mutation { signOutEverywhere { revoked } }")
    assert signed_out["data"]["signOutEverywhere"]["revoked"] is True
    refused = await gql(acme, dispatcher, "{ viewer { tenant } }", status=401)
    assert "revoked" in refused["errors"][0]["message"]
    assert (await gql(bolt, neighbour, "{ viewer { tenant } }"))["data"]["viewer"]

    driver_id = (await gql(acme, driver, "{ viewer { userId } }"))["data"]["viewer"]["userId"]
    revoke = "mutation($id: ID!) { revokeUserTokens(userId: $id) { revoked userErrors { code } } }"
    by_driver = await gql(acme, driver, revoke, {"id": driver_id})
    assert by_driver["data"]["revokeUserTokens"]["userErrors"][0]["code"] == "forbidden"
    by_manager = await gql(acme, manager, revoke, {"id": driver_id})
    assert by_manager["data"]["revokeUserTokens"]["revoked"] is True
    assert (await gql(acme, driver, "{ viewer { tenant } }", status=401))["errors"]
    assert (await gql(acme, manager, "{ viewer { tenant } }"))["data"]["viewer"]
