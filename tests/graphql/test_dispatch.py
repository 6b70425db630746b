"""Dispatch over the API: an emergency offered with its explanation, the driver's answer,
a dispatcher's override, settings; nothing of one company visible to another."""

from __future__ import annotations

import json
from typing import Any

from patone.core.common.permissions import SYSTEM
from patone.core.dispatch import autodispatch, fleet
from patone.core.dispatch.settings import update_dispatch_settings
from patone.core.domain import drivers, service_requests
from patone.core.identity import users
from patone.core.identity.tokens import issue_access_token
from patone.core.runtime.db import engine
from patone.graphql.ids import pk_of
from patone.graphql.types import gid
from patone.tenants.isolation import tenant_transaction
from patone.tenants.registry import TenantInfo
from tests.core.dispatch.world import DISPATCHER, SCENE, east_of_scene, request_at_scene
from tests.graphql.conftest import SECRET, Gql, token_for

CREATE = """
mutation($input: CreateCustomerInput!) {
  createCustomer(input: $input) { customer { id } userErrors { code } }
}"""
REQUEST = """
mutation($input: CreateServiceRequestInput!) {
  createServiceRequest(input: $input) { serviceRequest { id } userErrors { field code } }
}"""
OFFERS = """
query($id: ID!) {
  requestOffers(requestId: $id) { id driverId status deadline travelSeconds explanation }
  dispatchDecisions(requestId: $id) { outcome strategy explanation }
}"""
MY_OFFERS = "{ myOffers { id requestId status deadline } }"
ACCEPT = """
mutation($id: ID!) {
  acceptOffer(id: $id) {
    offer { status } serviceRequest { status offersMade }
    userErrors { field code message }
  }
}"""
DECLINE = """
mutation($id: ID!) {
  declineOffer(id: $id, reason: "too far") { offer { status reason } userErrors { code } }
}"""


async def _driver_with_login(tenant: TenantInfo, name: str, km: float) -> tuple[str, str]:
    """A driver `km` east of the scene, available, and their access token."""
    user = await users.create_user(
        tenant,
        SYSTEM,
        {"email": f"{name.lower()}@{tenant.slug}.example.com", "name": name, "role": "driver"},
    )
    driver = await drivers.create_driver(
        tenant, SYSTEM, {"name": name, "skills": ["tow", "lockout"], "user_id": user.id}
    )
    lat, lng = east_of_scene(km)
    await fleet.set_position(tenant, SYSTEM, driver.id, {"lat": lat, "lng": lng})
    await drivers.update_driver(tenant, SYSTEM, driver.id, {"status": "available"})
    return str(gid("Driver", driver.id)), issue_access_token(SECRET, tenant, user.id)


async def _emergency(gql: Gql, tenant: TenantInfo, dispatcher: str) -> str:
    customer = await gql(
        tenant, dispatcher, CREATE, {"input": {"name": "Kim", "phone": "+1 415 555 2671"}}
    )
    created = await gql(
        tenant,
        dispatcher,
        REQUEST,
        {
            "input": {
                "customerId": customer["data"]["createCustomer"]["customer"]["id"],
                "serviceType": "lockout",
                "priority": "EMERGENCY",
                "pickup": {"lat": SCENE[0], "lng": SCENE[1], "address": "Child locked in"},
            }
        },
    )
    return str(created["data"]["createServiceRequest"]["serviceRequest"]["id"])


async def test_an_emergency_is_offered_to_the_nearest_driver_who_accepts_over_the_api(
    gql: Gql, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, bolt = two_tenants
    dispatcher = await token_for(acme, "dispatcher")
    bolt_dispatcher = await token_for(bolt, "dispatcher")
    near_id, near = await _driver_with_login(acme, "Nina", 2)
    far_id, far = await _driver_with_login(acme, "Fred", 9)
    await _driver_with_login(bolt, "Bert", 0.1)
    request_id = await _emergency(gql, acme, dispatcher)

    await autodispatch.sweep(acme)  # what the worker runs when the request's event arrives

    seen = (await gql(acme, dispatcher, OFFERS, {"id": request_id}))["data"]
    [offer] = seen["requestOffers"]
    assert offer["driverId"] == near_id and offer["status"] == "OPEN"
    assert offer["explanation"]["why"].startswith("emergency: fastest to the scene")
    assert [c["name"] for c in offer["explanation"]["candidates"]] == ["Nina", "Fred"]
    assert seen["dispatchDecisions"][0]["outcome"] == "offered"
    # Bolt sees none of it, and its dispatcher cannot read acme's request's offers.
    assert (await gql(bolt, bolt_dispatcher, OFFERS, {"id": request_id}))["data"] == {
        "requestOffers": [],
        "dispatchDecisions": [],
    }
    # Only the driver it was offered to sees it and can answer it.
    assert (await gql(acme, far, MY_OFFERS))["data"]["myOffers"] == []
    wrong = await gql(acme, far, ACCEPT, {"id": offer["id"]})
    assert wrong["data"]["acceptOffer"]["userErrors"][0]["code"] == "not_found"
    mine = (await gql(acme, near, MY_OFFERS))["data"]["myOffers"]
    assert [m["id"] for m in mine] == [offer["id"]]
    accepted = (await gql(acme, near, ACCEPT, {"id": offer["id"]}))["data"]["acceptOffer"]
    assert accepted["userErrors"] == []
    assert accepted["offer"]["status"] == "ACCEPTED"
    assert accepted["serviceRequest"] == {"status": "ASSIGNED", "offersMade": 1}
    again = (await gql(acme, near, ACCEPT, {"id": offer["id"]}))["data"]["acceptOffer"]
    assert again["userErrors"][0]["code"] == "offer_closed"
    assert far_id != near_id


async def test_a_decline_cascades_and_a_dispatcher_can_offer_by_hand_and_tune_settings(
    gql: Gql, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, bolt = two_tenants
    dispatcher = await token_for(acme, "dispatcher")
    admin = await token_for(acme, "admin")
    _, near = await _driver_with_login(acme, "Nina", 2)
    far_id, _ = await _driver_with_login(acme, "Fred", 9)
    request_id = await _emergency(gql, acme, dispatcher)
    await autodispatch.sweep(acme)
    offer_id = (await gql(acme, near, MY_OFFERS))["data"]["myOffers"][0]["id"]
    declined = (await gql(acme, near, DECLINE, {"id": offer_id}))["data"]["declineOffer"]
    assert declined == {"offer": {"status": "DECLINED", "reason": "too far"}, "userErrors": []}
    await autodispatch.sweep(acme)
    statuses = [
        (o["driverId"], o["status"])
        for o in (await gql(acme, dispatcher, OFFERS, {"id": request_id}))["data"]["requestOffers"]
    ]
    assert statuses[-1] == (far_id, "OPEN")
    # A dispatcher moves it by hand: the live offer is withdrawn, a new one made.
    by_hand = await gql(
        acme,
        dispatcher,
        "mutation($r: ID!, $d: ID!) { offerRequest(requestId: $r, driverId: $d) "
        "{ outcome offer { driverId offeredBy } userErrors { field code message } } }",
        {"r": request_id, "d": far_id},
    )
    result: dict[str, Any] = by_hand["data"]["offerRequest"]
    assert result["userErrors"] == [] and result["outcome"] == "offered"
    assert result["offer"]["driverId"] == far_id and result["offer"]["offeredBy"].startswith("user")
    # How drivers answered: Nina's decline and Fred's offer withdrawn for the by-hand one.
    tally = (
        "{ offerStats { first { offers declined withdrawn acceptance } again { offers } "
        "byDriver { driverId name tally { offers declined withdrawn } } } }"
    )
    assert (await gql(acme, dispatcher, tally))["data"]["offerStats"] == {
        "first": {"offers": 2, "declined": 1, "withdrawn": 1, "acceptance": 0.0},
        "again": {"offers": 0},
        "byDriver": [
            {
                "driverId": far_id,
                "name": "Fred",
                "tally": {"offers": 1, "declined": 0, "withdrawn": 1},
            },
            {
                "driverId": statuses[0][0],
                "name": "Nina",
                "tally": {"offers": 1, "declined": 1, "withdrawn": 0},
            },
        ],
    }
    bolt_manager = await token_for(bolt, "manager")
    theirs = (await gql(bolt, bolt_manager, tally))["data"]["offerStats"]
    assert theirs["first"]["offers"] == 0 and theirs["byDriver"] == []
    window = await gql(acme, dispatcher, "{ offerStats(days: 0) { since } }")
    assert window["errors"][0]["extensions"]["code"] == "out_of_range"
    # Settings: an admin changes them field by field; a bad value names its field.
    bad = await gql(
        acme,
        admin,
        "mutation { updateDispatchSettings(input: {radiusKm: -5, offerSeconds: 2}) "
        "{ settings { radiusKm } userErrors { field code } } }",
    )
    fields = {e["field"] for e in bad["data"]["updateDispatchSettings"]["userErrors"]}
    assert fields == {"radiusKm", "offerSeconds"}
    good = await gql(
        acme,
        admin,
        "mutation { updateDispatchSettings(input: {radiusKm: 25, weights: {load: 6}}) "
        "{ settings { radiusKm weights { eta load rating } } userErrors { field } } }",
    )
    assert good["data"]["updateDispatchSettings"]["settings"] == {
        "radiusKm": 25.0,
        "weights": {"eta": 1.0, "load": 6.0, "rating": 2.0},
    }
    suggestions = await gql(acme, dispatcher, "{ stagingSuggestions { driverId lat lng km } }")
    assert suggestions["data"]["stagingSuggestions"] == []  # no calls at this hour to go on
    bolt_reader = await token_for(bolt, "dispatcher")
    other = await gql(bolt, bolt_reader, "{ dispatchSettings { radiusKm } }")
    assert other["data"]["dispatchSettings"]["radiusKm"] == 50.0
    refused = await gql(
        acme,
        dispatcher,
        "mutation { updateDispatchSettings(input: {radiusKm: 5}) { userErrors { code } } }",
    )
    assert refused["data"]["updateDispatchSettings"]["userErrors"][0]["code"] == "forbidden"


FLEET_PLAN = """
{ fleetPlan { solver drivers jobs createdAt
    routes { driverId driverName stops { requestId accepted arriveAt travelSeconds } }
    suggestions { kind requestId driverId why } } }"""
REPLAN = """
mutation { replanFleet {
    plan { solver jobs routes { driverId } suggestions { kind driverId } }
    userErrors { code } } }"""


async def test_a_dispatcher_replans_the_fleet_and_reads_the_plan_drivers_may_not(
    gql: Gql, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, bolt = two_tenants
    dispatcher = await token_for(acme, "dispatcher")
    admin = await token_for(acme, "admin")
    bolt_dispatcher = await token_for(bolt, "dispatcher")
    nina_id, nina = await _driver_with_login(acme, "Nina", 2)
    await _driver_with_login(bolt, "Bert", 1)
    await update_dispatch_settings(acme, SYSTEM, {"auto_dispatch": False})
    accepted = await request_at_scene(acme)
    await service_requests.assign_driver(acme, DISPATCHER, accepted.id, pk_of(nina_id, "Driver"))
    waiting = await request_at_scene(acme)
    assert (await gql(acme, dispatcher, FLEET_PLAN))["data"]["fleetPlan"] is None

    replanned = (await gql(acme, dispatcher, REPLAN))["data"]["replanFleet"]
    assert replanned["userErrors"] == []
    assert replanned["plan"]["jobs"] == 2 and replanned["plan"]["routes"] == [{"driverId": nina_id}]
    assert replanned["plan"]["suggestions"] == [{"kind": "OFFER", "driverId": nina_id}]
    plan = (await gql(acme, dispatcher, FLEET_PLAN))["data"]["fleetPlan"]
    [route] = plan["routes"]
    assert route["driverName"] == "Nina"
    assert [(s["requestId"], s["accepted"]) for s in route["stops"]] == [
        (str(gid("ServiceRequest", accepted.id)), True),
        (str(gid("ServiceRequest", waiting.id)), False),
    ]
    assert plan["suggestions"][0]["why"].startswith(f"the plan gives #{waiting.number} to Nina")
    # Drivers neither read nor make plans; another company sees none of it.
    assert (await gql(acme, nina, FLEET_PLAN))["errors"][0]["extensions"]["code"] == "forbidden"
    refused = (await gql(acme, nina, REPLAN))["data"]["replanFleet"]
    assert refused == {"plan": None, "userErrors": [{"code": "forbidden"}]}
    assert (await gql(bolt, bolt_dispatcher, FLEET_PLAN))["data"]["fleetPlan"] is None
    # The dispatcher takes the suggestion in one step; in the other company there is none.
    apply = (
        "mutation ($id: ID!) { applyPlanSuggestion(requestId: $id) "
        "{ outcome offer { driverId } userErrors { code field } } }"
    )
    waiting_id = {"id": str(gid("ServiceRequest", waiting.id))}
    theirs = (await gql(bolt, bolt_dispatcher, apply, waiting_id))["data"]["applyPlanSuggestion"]
    assert theirs["userErrors"] == [{"code": "no_suggestion", "field": "requestId"}]
    taken = (await gql(acme, dispatcher, apply, waiting_id))["data"]["applyPlanSuggestion"]
    assert taken == {"outcome": "offered", "offer": {"driverId": nina_id}, "userErrors": []}
    # The re-plan's settings, checked like the others.
    bad = await gql(
        acme,
        admin,
        "mutation { updateDispatchSettings(input: {replanMinutes: -5}) "
        "{ settings { replanMinutes } userErrors { field code } } }",
    )
    assert bad["data"]["updateDispatchSettings"]["userErrors"][0]["field"] == "replanMinutes"
    off = await gql(
        acme,
        admin,
        "mutation { updateDispatchSettings(input: {replanMinutes: 0}) "
        "{ settings { replanMinutes replanSoonerMinutes } userErrors { field } } }",
    )
    assert off["data"]["updateDispatchSettings"]["settings"] == {
        "replanMinutes": 0,
        "replanSoonerMinutes": 10,
    }


EXPLAINED = """
query($id: ID!) {
  requestOffers(requestId: $id) {
    explained {
      summary strategy chosenDriverId noDriverReason moreCandidates
      candidates { driverId name travelSeconds jobsToday hoursOnShift fairShare cost
                   costParts { name minutes } }
      excluded { driverId name reason }
    }
  }
  dispatchDecisions(requestId: $id) { outcome explained { summary chosenDriverId } }
}"""
DECISIONS = """
query($id: ID!) {
  dispatchDecisions(requestId: $id) {
    outcome explained { summary noDriverReason candidates { driverId } }
  }
}"""


async def test_an_offer_explains_itself_in_typed_fields_with_global_driver_ids(
    gql: Gql, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, bolt = two_tenants
    dispatcher = await token_for(acme, "dispatcher")
    near_id, _ = await _driver_with_login(acme, "Nina", 2)
    far_id, _ = await _driver_with_login(acme, "Fred", 9)
    await _driver_with_login(bolt, "Bert", 0.1)
    request_id = await _emergency(gql, acme, dispatcher)

    await autodispatch.sweep(acme)

    seen = (await gql(acme, dispatcher, EXPLAINED, {"id": request_id}))["data"]
    explained = seen["requestOffers"][0]["explained"]
    assert explained["chosenDriverId"] == near_id and explained["noDriverReason"] is None
    assert explained["summary"].startswith("emergency: fastest to the scene")
    assert [(c["driverId"], c["name"]) for c in explained["candidates"]] == [
        (near_id, "Nina"),
        (far_id, "Fred"),
    ]
    nina = explained["candidates"][0]
    assert nina["jobsToday"] == 0 and nina["hoursOnShift"] < 0.1
    assert "travel" in {p["name"] for p in nina["costParts"]}
    assert seen["dispatchDecisions"][0]["explained"]["chosenDriverId"] == near_id


async def test_a_company_with_no_driver_on_shift_is_told_so_once(
    gql: Gql, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, bolt = two_tenants
    dispatcher = await token_for(acme, "dispatcher")
    bolt_dispatcher = await token_for(bolt, "dispatcher")
    await _driver_with_login(bolt, "Bert", 0.1)  # only the other company has a driver
    request_id = await _emergency(gql, acme, dispatcher)
    bolt_request = await _emergency(gql, bolt, bolt_dispatcher)

    await autodispatch.sweep(acme)
    await autodispatch.sweep(acme)  # nothing changed: no second decision
    await autodispatch.sweep(bolt)

    decisions = (await gql(acme, dispatcher, DECISIONS, {"id": request_id}))["data"]
    assert decisions["dispatchDecisions"] == [
        {
            "outcome": "no_candidate",
            "explained": {
                "summary": "no driver can take it now: no driver is on shift",
                "noDriverReason": "NO_DRIVER_ON_SHIFT",
                "candidates": [],
            },
        }
    ]
    theirs = (await gql(bolt, bolt_dispatcher, DECISIONS, {"id": bolt_request}))["data"]
    assert [d["outcome"] for d in theirs["dispatchDecisions"]] == ["offered"]
    assert theirs["dispatchDecisions"][0]["explained"]["noDriverReason"] is None


async def test_explanations_stored_before_the_typed_fields_still_read(
    gql: Gql, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, bolt = two_tenants
    dispatcher = await token_for(acme, "dispatcher")
    request_id = await _emergency(gql, acme, dispatcher)
    await _emergency(gql, bolt, await token_for(bolt, "dispatcher"))
    old = {  # as the engine stored it before `no_driver` had its own key
        "at": "2026-11-24T10:00:00+00:00",
        "strategy": "scored",
        "chosen": None,
        "why": "no driver can take it now: no driver is on shift",
        "candidates": [],
        "excluded": [],
    }
    async with tenant_transaction(acme):
        await engine.execute(
            "INSERT INTO dispatch_decisions (request_id, made_at, outcome, strategy, "
            "explanation) VALUES ($1, now(), 'no_candidate', 'scored', $2::jsonb)",
            pk_of(request_id, "ServiceRequest"),
            json.dumps(old),
        )

    seen = (await gql(acme, dispatcher, DECISIONS, {"id": request_id}))["data"]

    assert seen["dispatchDecisions"] == [
        {
            "outcome": "no_candidate",
            "explained": {
                "summary": old["why"],
                "noDriverReason": "NO_DRIVER_ON_SHIFT",
                "candidates": [],
            },
        }
    ]
