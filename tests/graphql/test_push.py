"""Push over the API: a page gets the company's key, registers its device, lists and removes it."""

from __future__ import annotations

from patone.core.domain import push
from patone.graphql.ids import from_global_id
from patone.plugins import config as plugins
from patone.tenants.registry import TenantInfo
from tests.graphql.conftest import Gql, token_for
from tests.plugins.builtin.webpush_service import (  # noqa: F401 (fixtures)
    PushService,
    push_runtime,
    push_service,
    push_tls,
)

REGISTER = """
mutation($input: PushSubscriptionInput!) {
  registerPushSubscription(input: $input) {
    subscription { endpoint userAgent createdAt lastUsedAt }
    userErrors { field code message }
  }
}"""
UNREGISTER = """
mutation($endpoint: String!) {
  unregisterPushSubscription(endpoint: $endpoint) {
    removed
    userErrors { field code message }
  }
}"""
MINE = "{ myPushSubscriptions { endpoint userAgent } }"


async def test_a_signed_in_user_registers_lists_and_removes_a_device(
    gql: Gql,
    two_tenants: tuple[TenantInfo, TenantInfo],
    push_runtime: plugins.PluginRuntime,  # noqa: F811
    push_service: PushService,  # noqa: F811
) -> None:
    acme, bolt = two_tenants
    token = await token_for(acme, "driver")
    key = (await gql(acme, token, "{ pushPublicKey }"))["data"]["pushPublicKey"]
    assert key == await push.vapid_public_key(acme)
    device = push_service.subscribe(key)

    done = await gql(acme, token, REGISTER, {"input": device})
    payload = done["data"]["registerPushSubscription"]
    assert payload["userErrors"] == []
    assert payload["subscription"]["endpoint"] == device["endpoint"]
    assert payload["subscription"]["userAgent"].startswith("python-httpx")  # from the request
    assert payload["subscription"]["lastUsedAt"] is None
    mine = await gql(acme, token, MINE)
    assert mine["data"]["myPushSubscriptions"] == [
        {"endpoint": device["endpoint"], "userAgent": payload["subscription"]["userAgent"]}
    ]

    # The device gets what the notifications send to this user.
    viewer = await gql(acme, token, "{ viewer { userId } }")
    _, user_id = from_global_id(viewer["data"]["viewer"]["userId"])
    [sent] = await push.send_to_owner(acme, "user", user_id, title="Offer", body="Tow, 3 km")
    assert sent.status == "sent" and push_service.received[0].payload["title"] == "Offer"

    bad = await gql(
        acme,
        token,
        REGISTER,
        {"input": {**device, "keys": {"p256dh": "short", "auth": "x"}, "userAgent": "Firefox"}},
    )
    assert {e["field"] for e in bad["data"]["registerPushSubscription"]["userErrors"]} == {
        "keys.p256dh",
        "keys.auth",
    }

    other = await token_for(bolt, "driver")
    assert (await gql(bolt, other, MINE))["data"]["myPushSubscriptions"] == []
    refused = await gql(bolt, other, UNREGISTER, {"endpoint": device["endpoint"]})
    assert refused["data"]["unregisterPushSubscription"] == {
        "removed": False,
        "userErrors": [
            {
                "field": "endpoint",
                "code": "not_found",
                "message": "none of your devices has this subscription",
            }
        ],
    }
    removed = await gql(acme, token, UNREGISTER, {"endpoint": device["endpoint"]})
    assert removed["data"]["unregisterPushSubscription"] == {"removed": True, "userErrors": []}
    assert (await gql(acme, token, MINE))["data"]["myPushSubscriptions"] == []
