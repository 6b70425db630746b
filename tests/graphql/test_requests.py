"""Partners sending jobs: a motorist given inline, and only their own requests in sight."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx

from patone.core.runtime.db import engine
from patone.graphql.ids import from_global_id
from patone.tenants.isolation import tenant_transaction
from patone.tenants.registry import TenantInfo
from tests.graphql.conftest import Gql, token_for
from tests.graphql.test_api import CREATE_REQUEST, TRANSITION, _customer
from tests.graphql.test_api_clients import _make_client, _partner_token

MOTORIST = {
    "name": "Robin Roe",
    "phone": "(415) 555-2671",
    "vehicle": {"make": "VW", "model": "Golf", "year": 2019, "colour": "blue", "plate": "b-xy 42"},
}
SEE = """
query($id: ID!) {
  serviceRequest(id: $id) { id customer { name phone email notes } vehicle { plate } }
  node(id: $id) { id }
}"""
LIST = "{ serviceRequests(first: 20) { edges { node { id } } } }"


def _inline(motorist: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "input": {
            "motorist": motorist or MOTORIST,
            "serviceType": "jump_start",
            "pickup": {"lat": 52.52, "lng": 13.4, "address": "Alexanderplatz"},
            **extra,
        }
    }


async def _partner(
    gql: Gql, client: httpx.AsyncClient, tenant: TenantInfo, admin: str
) -> tuple[str, str]:
    made = await _make_client(gql, tenant, admin, "requests:read", "requests:write")
    return made["clientId"], await _partner_token(client, made["clientId"], made["secret"])


async def _created(gql: Gql, tenant: TenantInfo, token: str, variables: dict[str, Any]) -> Any:
    answer = await gql(tenant, token, CREATE_REQUEST, variables)
    payload = answer["data"]["createServiceRequest"]
    assert payload["userErrors"] == [], payload
    return payload["serviceRequest"]


async def test_a_partner_sends_a_job_with_the_motorist_inline_and_sees_only_its_own(
    gql: Gql, client: httpx.AsyncClient, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, bolt = two_tenants
    admin, dispatcher = await token_for(acme, "admin"), await token_for(acme, "dispatcher")
    club_a, token_a = await _partner(gql, client, acme, admin)
    _, token_b = await _partner(gql, client, acme, admin)
    _, token_bolt = await _partner(gql, client, bolt, await token_for(bolt, "admin"))
    before = await _customer(gql, bolt, await token_for(bolt, "dispatcher"))  # same phone

    first = await _created(gql, acme, token_a, _inline() | {"key": "club-1"})
    again = await _created(gql, acme, token_a, _inline() | {"key": "club-1"})
    assert again["id"] == first["id"]  # the key still works for the inline form
    second = await _created(gql, acme, token_a, _inline({**MOTORIST, "name": "R. Roe"}))
    b_job = await _created(gql, acme, token_b, _inline())
    await _created(gql, bolt, token_bolt, _inline())

    async with tenant_transaction(acme):
        customers = await engine.fetch("SELECT id, name, phone FROM customers")
        vehicles = await engine.fetch("SELECT customer, plate FROM vehicles")
        made = await engine.fetch(
            "SELECT actor_type, actor_id FROM activity_log WHERE action = 'customer.created'"
        )
        clients = await engine.fetch("SELECT api_client FROM service_requests ORDER BY id")
    # One motorist in this company, matched by phone and plate on every later job.
    assert [(c["name"], c["phone"]) for c in customers] == [("Robin Roe", "+14155552671")]
    assert [v["plate"] for v in vehicles] == ["B-XY42"]
    assert [(m["actor_type"], m["actor_id"]) for m in made] == [("partner", club_a)]
    assert clients[0]["api_client"] == club_a
    async with tenant_transaction(bolt):  # the other company's own customer, matched there
        matched = await engine.fetch("SELECT customer FROM service_requests")
        plates = await engine.fetch("SELECT plate FROM vehicles ORDER BY id")
    assert [r["customer"] for r in matched] == [from_global_id(before["id"])[1]]
    assert [p["plate"] for p in plates] == ["AB12", "B-XY42"]

    seen = await gql(acme, token_a, SEE, {"id": second["id"]})
    assert seen["data"]["serviceRequest"]["customer"] == {
        "name": "Robin Roe",
        "phone": "+14155552671",
        "email": None,
        "notes": "",
    }
    assert seen["data"]["serviceRequest"]["vehicle"] == {"plate": "B-XY42"}
    listed = await gql(acme, token_a, LIST)
    assert {e["node"]["id"] for e in listed["data"]["serviceRequests"]["edges"]} == {
        first["id"],
        second["id"],
    }
    hidden = await gql(acme, token_a, SEE, {"id": b_job["id"]})
    assert hidden["data"] == {"serviceRequest": None, "node": None}
    cancel = {"id": b_job["id"], "status": "CANCELLED", "reason": "customer_cancelled"}
    refused = await gql(acme, token_a, TRANSITION, cancel)
    assert refused["data"]["transitionServiceRequest"]["userErrors"][0]["code"] == "not_found"
    change = (
        'mutation($id: ID!) { updateServiceRequest(id: $id, input: {notes: "x"}) '
        "{ userErrors { code } } }"
    )
    assert (await gql(acme, token_a, change, {"id": b_job["id"]}))["data"]["updateServiceRequest"][
        "userErrors"
    ][0]["code"] == "not_found"
    own = await gql(acme, token_a, TRANSITION, {**cancel, "id": first["id"]})
    assert own["data"]["transitionServiceRequest"]["serviceRequest"]["status"] == "CANCELLED"

    everything = await gql(acme, dispatcher, LIST)  # staff see every partner's jobs
    assert len(everything["data"]["serviceRequests"]["edges"]) == 3
    named = "query($id: ID!) { serviceRequest(id: $id) { customer { id } } }"
    staff_view = await gql(acme, dispatcher, named, {"id": first["id"]})
    customer_id = staff_view["data"]["serviceRequest"]["customer"]["id"]
    direct = await gql(
        acme, token_a, "query($id: ID!) { node(id: $id) { id } }", {"id": customer_id}
    )
    assert direct["errors"][0]["extensions"]["code"] == "forbidden"


async def test_a_job_takes_a_customer_or_a_motorist_not_both_nor_neither(
    gql: Gql, client: httpx.AsyncClient, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, _ = two_tenants
    admin, dispatcher = await token_for(acme, "admin"), await token_for(acme, "dispatcher")
    _, token = await _partner(gql, client, acme, admin)
    customer = await _customer(gql, acme, dispatcher)

    both = _inline(customerId=customer["id"])
    neither = _inline()
    del neither["input"]["motorist"]
    bad_phone = _inline({**MOTORIST, "phone": "12"})
    for token_used, variables, field in (
        (dispatcher, both, "customerId"),
        (token, neither, "customerId"),
        (token, bad_phone, "motorist.phone"),
    ):
        answer = await gql(acme, token_used, CREATE_REQUEST, variables)
        errors = answer["data"]["createServiceRequest"]["userErrors"]
        assert [e["field"] for e in errors] == [field], errors
    async with tenant_transaction(acme):
        assert len(await engine.fetch("SELECT id FROM service_requests")) == 0
        assert len(await engine.fetch("SELECT id FROM customers")) == 1
    # A partner names by id only a motorist of its own jobs: no looking customers up by id.
    by_id = {**_inline()["input"], "customerId": customer["id"]}
    del by_id["motorist"]
    unknown = await gql(acme, token, CREATE_REQUEST, {"input": by_id})
    assert unknown["data"]["createServiceRequest"]["userErrors"][0]["code"] == "not_found"
    # A partner's token reads no customer directly, even one its job names.
    job = await _created(gql, acme, token, _inline())
    named = "query($id: ID!) { serviceRequest(id: $id) { customer { id } } }"
    own = await gql(acme, token, named, {"id": job["id"]})
    assert own["data"]["serviceRequest"]["customer"]["id"] == customer["id"]
    await _created(gql, acme, token, {"input": by_id})
    seen = await gql(acme, token, SEE, {"id": job["id"]})
    # Matched by phone to Dana, whom a partner's job does not rename.
    assert seen["data"]["serviceRequest"]["customer"]["name"] == "Dana"
    direct = await gql(acme, token, "{ customers(first: 5) { edges { node { id } } } }")
    assert direct["errors"][0]["extensions"]["code"] == "forbidden"


def _guide_example() -> str:
    """The partner guide's inline-motorist mutation, exactly as docs/api.md prints it."""
    text = (Path(__file__).parents[2] / "docs" / "api.md").read_text()
    blocks = re.findall(r"```graphql\n(.*?)```", text, flags=re.S)
    return next(block for block in blocks if "motorist:" in block)


async def test_the_partner_guides_inline_motorist_example_works_as_written(
    gql: Gql, client: httpx.AsyncClient, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, bolt = two_tenants
    _, token = await _partner(gql, client, acme, await token_for(acme, "admin"))
    answer = await gql(acme, token, _guide_example())
    payload = answer["data"]["createServiceRequest"]
    assert payload["userErrors"] == []
    assert payload["serviceRequest"]["status"] == "PENDING"
    assert payload["serviceRequest"]["customer"] == {"name": "Robin Roe", "phone": "+14155552671"}
    assert payload["serviceRequest"]["vehicle"] == {"plate": "B-XY42"}
    again = await gql(acme, token, _guide_example())  # the key: no second truck
    assert again["data"]["createServiceRequest"]["serviceRequest"] == payload["serviceRequest"]
    async with tenant_transaction(bolt):
        assert await engine.fetch("SELECT id FROM service_requests") == []
