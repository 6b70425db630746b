"""Every connection pages forwards and backwards over the same rows and counts them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from patone.core.runtime.db import engine
from patone.tenants.isolation import tenant_transaction
from patone.tenants.registry import TenantInfo
from tests.graphql.conftest import Gql, token_for
from tests.support import plugin_runtime

PAGE = """{ totalCount totalCountCapped edges { cursor node { id } }
  pageInfo { hasNextPage hasPreviousPage startCursor endCursor } }"""

# Every connection of the schema, unfiltered and filtered (the walk checks the list is all here).
CASES = [
    ("serviceRequests", ""),
    ("serviceRequests", "orderBy: OLDEST"),
    ("serviceRequests", "orderBy: PRIORITY, filter: {priority: [NORMAL, HIGH]}"),
    ("customers", ""),
    ("customers", 'search: "Dana"'),
    ("activityLog", ""),
    ("activityLog", 'entity: "customer"'),
    ("notifications", ""),
    ("notifications", 'channel: "sms"'),
    ("webhookDeliveries", ""),
    ("webhookDeliveries", "status: FAILED"),
]


@pytest.fixture(autouse=True)
def runtime() -> Iterator[None]:
    """Plugins with no providers (webhook endpoints seal their secrets with its key)."""
    with plugin_runtime(entry_points=False, timeout=2, secret="paging-test-key"):
        yield


async def _fill(gql: Gql, tenant: TenantInfo, token: str, count: int) -> None:
    """`count` customers, each with a request, and as many notifications and deliveries."""
    priorities = ["LOW", "NORMAL", "HIGH", "NORMAL", "EMERGENCY", "HIGH", "NORMAL"]
    for i in range(count):
        made = await gql(
            tenant,
            token,
            """mutation($name: String!) { createCustomer(input: {name: $name,
                 phone: "+14155552671"}) { customer { id } userErrors { code } } }""",
            {"name": f"Dana {i}" if i % 3 else f"Sam {i}"},
        )
        customer = made["data"]["createCustomer"]["customer"]
        await gql(
            tenant,
            token,
            """mutation($c: ID!, $p: Priority!) { createServiceRequest(input: {customerId: $c,
                 serviceType: "jump_start", priority: $p, pickup: {lat: 52.5, lng: 13.4}}) {
                 userErrors { code } } }""",
            {"c": customer["id"], "p": priorities[i % len(priorities)]},
        )
    await gql(
        tenant,
        token,
        'mutation { createWebhookEndpoint(input: {url: "http://127.0.0.1:9/hook"}) '
        "{ userErrors { code } } }",
    )
    async with tenant_transaction(tenant):
        for i in range(count):
            await engine.execute(
                "INSERT INTO webhook_deliveries (endpoint_id, message_id, event_type, payload, "
                "status) SELECT id, $1, 'webhook.test', '{}'::jsonb, $2 FROM webhook_endpoints",
                f"msg_{i}",
                "failed" if i % 2 else "pending",
            )
            await engine.execute(
                "INSERT INTO notifications (event_id, event, recipient_kind, recipient_id, "
                "channel, address, body) VALUES ($1, 'request.created', 'customer', 1, $2, "
                "'dana@example.com', 'On its way')",
                i + 1,
                "sms" if i % 2 else "email",
            )


async def _walk(
    gql: Gql, tenant: TenantInfo, token: str, field: str, args: str, forwards: bool
) -> tuple[list[str], int]:
    """Every id of the list, two a page, in list order; and the total the pages reported."""
    ids: list[str] = []
    cursor = None
    while True:
        paging = "first: 2, after: $c" if forwards else "last: 2, before: $c"
        query = f"query($c: String) {{ {field}({', '.join(filter(None, [args, paging]))}) {PAGE} }}"
        result = await gql(tenant, token, query, {"c": cursor})
        assert "errors" not in result, result
        page = result["data"][field]
        found = [e["node"]["id"] for e in page["edges"]]
        info = page["pageInfo"]
        assert [e["cursor"] for e in page["edges"][:1]] == [info["startCursor"]][: len(found)]
        assert page["totalCountCapped"] is False
        if forwards:
            ids += found
            assert info["hasPreviousPage"] is (cursor is not None), (field, args, info)
            if not info["hasNextPage"]:
                return ids, page["totalCount"]
            assert len(found) == 2
            cursor = info["endCursor"]
        else:
            ids = found + ids
            assert info["hasNextPage"] is (cursor is not None), (field, args, info)
            if not info["hasPreviousPage"]:
                return ids, page["totalCount"]
            assert len(found) == 2
            cursor = info["startCursor"]


async def test_every_connection_pages_backwards_over_the_rows_it_pages_forwards(
    gql: Gql, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, bolt = two_tenants
    token = await token_for(acme, "admin")
    await _fill(gql, acme, token, 7)
    await _fill(gql, bolt, await token_for(bolt, "admin"), 3)  # never on acme's pages
    query_fields = await gql(
        acme, token, '{ __type(name: "Query") { fields { name type { ofType { name } } } } }'
    )
    connections = {
        f["name"]
        for f in query_fields["data"]["__type"]["fields"]
        if ((f["type"]["ofType"] or {}).get("name") or "").endswith("Connection")
    }
    assert connections == {field for field, _ in CASES}, "a connection is not walked here"
    for field, args in CASES:
        forwards, total = await _walk(gql, acme, token, field, args, forwards=True)
        backwards, total_back = await _walk(gql, acme, token, field, args, forwards=False)
        assert len(forwards) >= 3 and len(set(forwards)) == len(forwards), (field, args)
        assert backwards == forwards, (field, args)
        assert total == total_back == len(forwards), (field, args)
    everything, _ = await _walk(gql, acme, token, "serviceRequests", "", forwards=True)
    assert len(everything) == 7  # bolt's requests are not acme's


async def test_a_page_between_two_cursors_and_bad_page_arguments(
    gql: Gql, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, _ = two_tenants
    token = await token_for(acme, "admin")
    await _fill(gql, acme, token, 5)
    every, _ = await _walk(gql, acme, token, "customers", "", forwards=True)
    whole = await gql(acme, token, "{ customers(first: 5) { edges { cursor } } }")
    cursors = [e["cursor"] for e in whole["data"]["customers"]["edges"]]
    between = await gql(
        acme,
        token,
        f"query($a: String, $b: String) {{ customers(last: 10, after: $a, before: $b) {PAGE} }}",
        {"a": cursors[0], "b": cursors[4]},
    )
    page = between["data"]["customers"]
    assert [e["node"]["id"] for e in page["edges"]] == every[1:4]
    assert page["pageInfo"]["hasPreviousPage"] is False  # nothing between `after` and the page
    assert page["pageInfo"]["hasNextPage"] is True
    assert page["totalCount"] == 5
    refused: dict[str, Any] = await gql(acme, token, "{ customers(last: 0) { totalCount } }")
    assert refused["errors"][0]["extensions"]["code"] in {"out_of_range", "OUT_OF_RANGE"}
    bad = await gql(acme, token, '{ serviceRequests(last: 2, before: "garbage") { totalCount } }')
    assert bad["errors"]


def docs_query(starts: str) -> str:
    """The fenced GraphQL block of docs/api.md that starts with `starts`."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
    blocks = re.findall(r"```graphql\n(.*?)```", text, flags=re.DOTALL)
    [block] = [b for b in blocks if b.startswith(starts)]
    return block


async def test_the_docs_backward_paging_query_runs_as_written(
    gql: Gql, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, bolt = two_tenants
    token = await token_for(acme, "dispatcher")
    await _fill(gql, acme, await token_for(acme, "admin"), 7)
    await _fill(gql, bolt, await token_for(bolt, "admin"), 2)
    query = docs_query("query Recent(")
    newest = (await gql(acme, token, query))["data"]["serviceRequests"]
    assert newest["totalCount"] == 7 and len(newest["edges"]) == 5
    assert newest["pageInfo"]["hasPreviousPage"] is True
    assert newest["pageInfo"]["hasNextPage"] is False
    before = (await gql(acme, token, query, {"before": newest["pageInfo"]["startCursor"]}))["data"][
        "serviceRequests"
    ]
    assert len(before["edges"]) == 2 and before["pageInfo"]["hasPreviousPage"] is False
    numbers = [e["node"]["number"] for e in before["edges"] + newest["edges"]]
    assert numbers == sorted(numbers)
