"""Webhooks over the API: an admin adds an endpoint (secret shown once), tests it, reads the
delivery log, replays a delivery, rotates the secret and removes the endpoint."""

from __future__ import annotations

import asyncio
from typing import Any

import dramatiq

from patone.plugins import config as plugins
from patone.tenants.registry import TenantInfo
from tests.core.domain.test_webhooks import Receiver, broker, receiver, runtime  # noqa: F401 (fixtures)
from tests.graphql.conftest import Gql, token_for

ENDPOINT_FIELDS = "id url description eventTypes enabled secret failureStreak"

CREATE = f"""
mutation($input: CreateWebhookEndpointInput!) {{
  createWebhookEndpoint(input: $input) {{
    endpoint {{ {ENDPOINT_FIELDS} }}
    secret
    userErrors {{ field code message }}
  }}
}}"""

DELIVERIES = """
query($endpointId: ID, $status: WebhookDeliveryStatus, $first: Int, $after: String) {
  webhookDeliveries(endpointId: $endpointId, status: $status, first: $first, after: $after) {
    nodes {
      id endpointId webhookId eventType status attempts responseStatus payload
      attemptLog { attempt trigger responseStatus durationMs }
    }
    pageInfo { hasNextPage endCursor }
  }
}"""


async def _succeeded(
    gql: Gql, tenant: TenantInfo, token: str, attempts: list[int]
) -> list[dict[str, Any]]:
    """The succeeded deliveries, once there are as many as `attempts` with those attempts."""
    for _ in range(300):
        found = await gql(tenant, token, DELIVERIES, {"status": "SUCCEEDED"})
        nodes: list[dict[str, Any]] = found["data"]["webhookDeliveries"]["nodes"]
        if [n["attempts"] for n in nodes] == attempts:
            return nodes
        await asyncio.sleep(0.05)
    raise AssertionError("deliveries did not succeed")


async def test_an_admin_manages_endpoints_and_the_delivery_log_over_the_api(
    gql: Gql,
    two_tenants: tuple[TenantInfo, TenantInfo],
    runtime: plugins.PluginRuntime,  # noqa: F811
    broker: dramatiq.Broker,  # noqa: F811
    receiver: Receiver,  # noqa: F811
) -> None:
    acme, bolt = two_tenants
    admin = await token_for(acme, "admin")
    url = receiver.url("/partner")
    made = await gql(
        acme,
        admin,
        CREATE,
        {"input": {"url": url, "eventTypes": ["request.*"], "description": "Club"}},
    )
    payload = made["data"]["createWebhookEndpoint"]
    assert payload["userErrors"] == []
    endpoint, secret = payload["endpoint"], payload["secret"]
    assert secret.startswith("whsec_") and endpoint["secret"] == "********"
    receiver.secrets["/partner"] = secret
    listed = await gql(acme, admin, f"{{ webhookEndpoints {{ {ENDPOINT_FIELDS} }} }}")
    assert listed["data"]["webhookEndpoints"] == [endpoint]
    assert secret not in str(listed)
    other = await gql(bolt, await token_for(bolt, "admin"), "{ webhookEndpoints { id } }")
    assert other["data"]["webhookEndpoints"] == []

    bad = await gql(acme, admin, CREATE, {"input": {"url": "ftp://example.com"}})
    assert bad["data"]["createWebhookEndpoint"]["userErrors"] == [
        {"field": "url", "code": "invalid", "message": "must be an http(s) URL with a host"}
    ]
    unknown = await gql(
        acme, admin, CREATE, {"input": {"url": url, "eventTypes": ["request.*", "request.lost"]}}
    )
    [error] = unknown["data"]["createWebhookEndpoint"]["userErrors"]
    assert (error["field"], error["code"]) == ("eventTypes.1", "invalid_choice")
    assert "'request.lost' is not an event type" in error["message"]

    tested = await gql(
        acme,
        admin,
        "mutation($id: ID!) { sendTestWebhook(endpointId: $id) { "
        "delivery { id status eventType } userErrors { code } } }",
        {"id": endpoint["id"]},
    )
    delivery = tested["data"]["sendTestWebhook"]["delivery"]
    assert (delivery["status"], delivery["eventType"]) == ("PENDING", "webhook.test")
    [done] = await _succeeded(gql, acme, admin, [1])
    assert done["endpointId"] == endpoint["id"] and done["attempts"] == 1
    assert done["attemptLog"][0]["trigger"] == "test"
    assert done["payload"]["type"] == "webhook.test"

    replay = await gql(
        acme,
        admin,
        "mutation($id: ID!) { replayWebhookDelivery(id: $id) { "
        "delivery { webhookId status } userErrors { code } } }",
        {"id": done["id"]},
    )
    assert replay["data"]["replayWebhookDelivery"]["delivery"] == {
        "webhookId": done["webhookId"],
        "status": "PENDING",
    }
    [again] = await _succeeded(gql, acme, admin, [2])
    assert [a["trigger"] for a in again["attemptLog"]] == ["test", "replay"]
    got = receiver.at("/partner")
    assert len(got) == 2 and all(r.verified for r in got)
    assert {r.headers["Webhook-Id"] for r in got} == {done["webhookId"]}

    second = await gql(
        acme,
        admin,
        "mutation($id: ID!) { sendTestWebhook(endpointId: $id) { userErrors { code } } }",
        {"id": endpoint["id"]},
    )
    assert second["data"]["sendTestWebhook"]["userErrors"] == []
    await _succeeded(gql, acme, admin, [1, 2])
    page = await gql(acme, admin, DELIVERIES, {"endpointId": endpoint["id"], "first": 1})
    first_page = page["data"]["webhookDeliveries"]
    assert first_page["pageInfo"]["hasNextPage"]
    rest = await gql(
        acme, admin, DELIVERIES, {"first": 1, "after": first_page["pageInfo"]["endCursor"]}
    )
    assert rest["data"]["webhookDeliveries"]["nodes"][0]["id"] == done["id"]  # newest first

    rotated = await gql(
        acme,
        admin,
        "mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret endpoint { secret } } }",
        {"id": endpoint["id"]},
    )
    fresh = rotated["data"]["rotateWebhookSecret"]
    assert fresh["secret"].startswith("whsec_") and fresh["secret"] != secret
    assert fresh["endpoint"]["secret"] == "********"

    updated = await gql(
        acme,
        admin,
        "mutation($id: ID!) { updateWebhookEndpoint(id: $id, input: {enabled: false}) { "
        "endpoint { enabled } userErrors { code } } }",
        {"id": endpoint["id"]},
    )
    assert updated["data"]["updateWebhookEndpoint"]["endpoint"] == {"enabled": False}
    refused = await gql(
        acme,
        admin,
        "mutation($id: ID!) { sendTestWebhook(endpointId: $id) { userErrors { field code } } }",
        {"id": endpoint["id"]},
    )
    assert refused["data"]["sendTestWebhook"]["userErrors"] == [
        {"field": "id", "code": "endpoint_disabled"}
    ]

    dispatcher = await token_for(acme, "dispatcher")
    forbidden = await gql(acme, dispatcher, "{ webhookEndpoints { id } }")
    assert forbidden["errors"][0]["extensions"]["code"] == "forbidden"

    deleted = await gql(
        acme,
        admin,
        "mutation($id: ID!) { deleteWebhookEndpoint(id: $id) { deletedId userErrors { code } } }",
        {"id": endpoint["id"]},
    )
    assert deleted["data"]["deleteWebhookEndpoint"] == {
        "deletedId": endpoint["id"],
        "userErrors": [],
    }
    empty = await gql(acme, admin, DELIVERIES)
    assert empty["data"]["webhookDeliveries"]["nodes"] == []
