"""Customers on the company's API: their token runs `requestTracking` and nothing else."""

from __future__ import annotations

from patone.core.common.permissions import SYSTEM
from patone.core.domain import customers
from patone.core.identity.tokens import Kind, issue_token
from patone.tenants.registry import TenantInfo
from tests.graphql.conftest import SECRET, Gql

NEARBY = """
query { nearbyDrivers(lat: 52.52, lng: 13.405, radiusM: 5000) { driverId lat distanceM } }
"""


async def test_a_customer_token_reaches_nothing_but_tracking_and_no_other_company(
    gql: Gql, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, bolt = two_tenants
    customer = await customers.create_customer(acme, SYSTEM, {"name": "Dana"})
    token = issue_token(SECRET, kind=Kind.customer, subject=str(customer.id), tenant=acme)
    for query in (NEARBY, "query { serviceRequests(first: 5) { totalCount } }"):
        refused = await gql(acme, token, query)
        assert refused["data"] is None
        assert refused["errors"][0]["extensions"]["code"] == "forbidden"
        assert "requestTracking" in refused["errors"][0]["message"]
    mixed = await gql(
        acme, token, "query { __typename nearbyDrivers(lat: 1, lng: 1, radiusM: 1) { lat } }"
    )
    assert mixed["errors"][0]["extensions"]["code"] == "forbidden"
    assert (await gql(acme, token, "query { __typename }"))["data"] == {"__typename": "Query"}
    # Acme's customer token is refused by Bolt's API outright.
    elsewhere = await gql(bolt, token, "query { __typename }", status=401)
    assert elsewhere["errors"][0]["extensions"]["code"]
