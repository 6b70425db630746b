"""Driver positions in the API: pings by mutation, the live map by query, per company."""

from __future__ import annotations

from datetime import datetime, timedelta

from patone.core.common.permissions import SYSTEM
from patone.core.domain import drivers
from patone.core.identity import users
from patone.core.identity.tokens import issue_access_token
from patone.core.runtime.clock import now
from patone.graphql.ids import to_global_id
from patone.tenants.registry import TenantInfo
from tests.graphql.conftest import SECRET, Gql, token_for

RECORD = """
mutation($pings: [DriverPingInput!]!) {
  recordDriverPings(pings: $pings) {
    accepted ignored refused { index field code message } userErrors { code message }
  }
}
"""
NEARBY = """
query { nearbyDrivers(lat: 52.52, lng: 13.405, radiusM: 5000) { driverId lat distanceM } }
"""


async def _driver_token(tenant: TenantInfo) -> tuple[str, str]:
    user = await users.create_user(
        tenant, SYSTEM, {"email": f"ray@{tenant.slug}.example", "name": "Ray", "role": "driver"}
    )
    driver = await drivers.create_driver(tenant, SYSTEM, {"name": "Ray", "user_id": user.id})
    return to_global_id("Driver", driver.id), issue_access_token(SECRET, tenant, user.id)


def _ping(seconds_ago: float = 0, **extra: object) -> dict[str, object]:
    at = (now() - timedelta(seconds=seconds_ago)).isoformat()
    return {"lat": 52.53, "lng": 13.405, "accuracyM": 5, "recordedAt": at, **extra}


async def test_a_driver_records_pings_and_dispatchers_see_them_on_the_map(
    gql: Gql, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, bolt = two_tenants
    driver_id, token = await _driver_token(acme)
    recorded = await gql(acme, token, RECORD, {"pings": [_ping(5), _ping(0, speedMps=9.5)]})
    assert recorded["data"]["recordDriverPings"] == {
        "accepted": 2,
        "ignored": 0,
        "refused": [],
        "userErrors": [],
    }
    dispatcher = await token_for(acme, "dispatcher")
    nearby = await gql(acme, dispatcher, NEARBY)
    (found,) = nearby["data"]["nearbyDrivers"]
    assert found["driverId"] == driver_id and 1100 < found["distanceM"] < 1125
    listed = await gql(
        acme,
        dispatcher,
        "query($ids: [ID!]) { driverPositions(driverIds: $ids) { speedMps } }",
        {"ids": [driver_id]},
    )
    assert listed["data"]["driverPositions"] == [{"speedMps": 9.5}]
    elsewhere = await gql(bolt, await token_for(bolt, "dispatcher"), NEARBY)
    assert elsewhere["data"]["nearbyDrivers"] == []


async def test_refused_pings_name_the_ping_and_field(
    gql: Gql, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, _bolt = two_tenants
    _driver_id, token = await _driver_token(acme)
    refused = await gql(
        acme,
        token,
        RECORD,
        {
            "pings": [
                _ping(),
                _ping(accuracyM=-1),
                _ping(driverId="nonsense"),
                _ping(headingDeg=361),
            ]
        },
    )
    payload = refused["data"]["recordDriverPings"]
    assert payload["accepted"] == 0
    assert [(r["index"], r["field"], r["code"]) for r in payload["refused"]] == [
        (2, "driverId", "invalid_id"),
    ]
    refused = await gql(
        acme, token, RECORD, {"pings": [_ping(accuracyM=-1), _ping(headingDeg=361)]}
    )
    assert [(r["index"], r["field"]) for r in refused["data"]["recordDriverPings"]["refused"]] == [
        (0, "accuracyM"),
        (1, "headingDeg"),
    ]


async def test_the_map_needs_a_dispatcher_and_pings_a_driver_or_manager(
    gql: Gql, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, _bolt = two_tenants
    _driver_id, driver = await _driver_token(acme)
    denied = await gql(acme, driver, NEARBY)
    assert denied["errors"][0]["extensions"]["code"] == "forbidden"
    dispatcher = await token_for(acme, "dispatcher")
    payload = (await gql(acme, dispatcher, RECORD, {"pings": [_ping()]}))["data"]
    assert payload["recordDriverPings"]["userErrors"][0]["code"] == "forbidden"


async def test_the_old_position_mutation_still_moves_the_driver(
    gql: Gql, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, _bolt = two_tenants
    driver_id, token = await _driver_token(acme)
    moved = await gql(
        acme,
        token,
        "mutation($id: ID!) { updateDriverPosition(id: $id, lat: 52.5, lng: 13.4) "
        "{ driver { lastPosition { lat lng } } userErrors { field } } }",
        {"id": driver_id},
    )
    assert moved["data"]["updateDriverPosition"]["driver"]["lastPosition"] == {
        "lat": 52.5,
        "lng": 13.4,
    }
    listed = await gql(acme, await token_for(acme, "dispatcher"), "{ driverPositions { lat } }")
    assert listed["data"]["driverPositions"] == [{"lat": 52.5}]


async def test_a_drivers_last_position_is_their_latest_ping_before_the_table_catches_up(
    gql: Gql, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    """The drivers table takes positions at the history flush, seconds later; `lastPosition`
    reads the live store, in the driver's own company only."""
    acme, bolt = two_tenants
    driver_id, token = await _driver_token(acme)
    _bolt_driver, _ = await _driver_token(bolt)  # the same row id in the other company
    ping = _ping(0, lat=52.5311, lng=13.4102)
    assert (await gql(acme, token, RECORD, {"pings": [ping]}))["data"]["recordDriverPings"][
        "accepted"
    ] == 1
    query = "{ drivers { id lastPosition { lat lng } lastSeenAt } }"
    (listed,) = (await gql(acme, await token_for(acme, "dispatcher"), query))["data"]["drivers"]
    assert listed["id"] == driver_id
    assert listed["lastPosition"] == {"lat": 52.5311, "lng": 13.4102}
    assert listed["lastSeenAt"] is not None
    assert abs((datetime.fromisoformat(listed["lastSeenAt"]) - now()).total_seconds()) < 5
    (other,) = (await gql(bolt, await token_for(bolt, "dispatcher"), query))["data"]["drivers"]
    assert other["lastPosition"] is None and other["lastSeenAt"] is None
