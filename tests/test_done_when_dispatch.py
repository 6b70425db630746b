"""The dispatch issue's "Done when" (the demo half), as a new user would try it.

`patone serve` (relay, scheduler) and `patone worker` run in their own processes on the test
database with the `demo` company. An admin adds two drivers through GraphQL, their phones send
pings, one driver signs in and listens for offers on a socket; a dispatcher creates an emergency
and it is offered to the nearer driver within a second, with the engine's explanation. The
drivers stand far from the demo city (Leipzig), so the demo's own requests and drivers stay out
of it; they are archived and the request cancelled afterwards.
"""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import websockets

from tests.demo_product import demo_env, graphql, issue_token, serving, stop
from tests.test_embedded import _free_port

SCENE = (51.3397, 12.3731)  # Leipzig, Augustusplatz: ~150 km from the demo's Berlin
PREFIX = "Done-when"  # the test's drivers' names


@pytest.fixture(scope="module")
def product(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    port = _free_port()
    env = demo_env(port)
    logs = tmp_path_factory.mktemp("done-when-dispatch")
    with serving(env, logs / "serve.log"), (logs / "worker.log").open("w+") as worker_log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "patone", "worker", "--threads", "2"],
            env=env,
            stdout=worker_log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield {"port": port, "env": env}
        finally:
            stop(worker)


def _gql(product: dict[str, Any], token: str, query: str, **variables: Any) -> dict[str, Any]:
    return graphql(product["port"], token, query, **variables)


def _east(km: float) -> tuple[float, float]:
    return SCENE[0], SCENE[1] + km / (111.32 * math.cos(math.radians(SCENE[0])))


def _driver(product: dict[str, Any], admin: str, name: str, km: float, user: str | None) -> str:
    created = _gql(
        product,
        admin,
        """mutation($input: CreateDriverInput!) { createDriver(input: $input) {
             driver { id } userErrors { field message } } }""",
        input={"name": name, "skills": ["lockout", "tow"], "userId": user},
    )["createDriver"]
    assert created["userErrors"] == []
    driver_id = str(created["driver"]["id"])
    lat, lng = _east(km)
    pinged = _gql(
        product,
        admin,
        """mutation($pings: [DriverPingInput!]!) { recordDriverPings(pings: $pings) {
             accepted userErrors { message } } }""",
        pings=[
            {
                "driverId": driver_id,
                "lat": lat,
                "lng": lng,
                "accuracyM": 8,
                "recordedAt": datetime.now(UTC).isoformat(),
            }
        ],
    )["recordDriverPings"]
    assert pinged["accepted"] == 1, pinged
    _gql(
        product,
        admin,
        "mutation($id: ID!) { updateDriver(id: $id, input: {status: AVAILABLE}) "
        "{ userErrors { message } } }",
        id=driver_id,
    )
    return driver_id


def _archive(product: dict[str, Any], admin: str, driver: str) -> None:
    _gql(
        product,
        admin,
        "mutation($id: ID!) { archiveDriver(id: $id) { userErrors { message } } }",
        id=driver,
    )


def _archive_leftovers(product: dict[str, Any], admin: str) -> None:
    for driver in _gql(product, admin, "{ drivers { id name } }")["drivers"]:
        if driver["name"].startswith(PREFIX):
            _archive(product, admin, driver["id"])


async def _listen_for_offers(product: dict[str, Any], token: str) -> Any:
    socket = await websockets.connect(
        f"ws://127.0.0.1:{product['port']}/graphql",
        subprotocols=[websockets.Subprotocol("graphql-transport-ws")],
        additional_headers={"X-Tenant": "demo"},
    )
    await socket.send(
        json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
    )
    assert json.loads(await asyncio.wait_for(socket.recv(), 10))["type"] == "connection_ack"
    query = "subscription { offerUpdates { change offer { id requestId deadline } } }"
    await socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
    await asyncio.sleep(0.5)  # the server subscribes to Redis
    return socket


async def _next_offer(socket: Any, timeout: float) -> dict[str, Any]:
    while True:
        message = json.loads(await asyncio.wait_for(socket.recv(), timeout))
        if message["type"] == "next":
            return message["payload"]["data"]["offerUpdates"]  # type: ignore[no-any-return]


async def test_an_emergency_in_the_demo_company_is_offered_to_the_right_driver_in_a_second(
    product: dict[str, Any],
) -> None:
    admin = issue_token(product["env"], "admin@demo-towing.example")
    dispatcher = issue_token(product["env"], "dispatcher@demo-towing.example")
    _archive_leftovers(product, admin)  # of a run that died before cleaning up
    run = uuid.uuid4().hex[:6]
    email = f"nina-{run}@demo-towing.example"
    user = _gql(
        product,
        admin,
        """mutation($input: CreateUserInput!) { createUser(input: $input) {
             user { id } userErrors { message } } }""",
        input={"email": email, "name": "Nina Near", "role": "driver"},
    )["createUser"]["user"]["id"]
    drivers: list[str] = []
    request_id = None
    socket = None
    try:
        near = _driver(product, admin, f"{PREFIX} Nina {run}", 0.4, user)
        drivers.append(near)
        drivers.append(_driver(product, admin, f"{PREFIX} Fred {run}", 5, None))
        socket = await _listen_for_offers(product, issue_token(product["env"], email))
        customer = _gql(
            product,
            dispatcher,
            'mutation { createCustomer(input: {name: "Kim Locked-Out"}) { customer { id } } }',
        )["createCustomer"]["customer"]["id"]
        created = _gql(
            product,
            dispatcher,
            """mutation($input: CreateServiceRequestInput!) { createServiceRequest(input: $input)
                 { serviceRequest { id createdAt } userErrors { field message } } }""",
            input={
                "customerId": customer,
                "serviceType": "lockout",
                "priority": "EMERGENCY",
                "pickup": {"lat": SCENE[0], "lng": SCENE[1], "address": "Child locked in car"},
            },
        )["createServiceRequest"]["serviceRequest"]
        request_id = created["id"]

        update = await _next_offer(socket, timeout=10)
        assert update["change"] == "CREATED" and update["offer"]["requestId"] == request_id
        offers = _gql(
            product,
            dispatcher,
            """query($id: ID!) { requestOffers(requestId: $id) {
                 id driverId status sentAt deadline explanation } }""",
            id=request_id,
        )["requestOffers"]
        [offer] = offers
        offered_in = datetime.fromisoformat(offer["sentAt"]) - datetime.fromisoformat(
            created["createdAt"]
        )
        assert offered_in.total_seconds() < 1.0, offered_in  # request to offer, on the server
        assert offer["driverId"] == near and offer["status"] == "OPEN"
        why = offer["explanation"]
        assert why["chosen"] == why["candidates"][0]["driver_id"]
        names = [c["name"] for c in why["candidates"]]
        assert names == [f"{PREFIX} Nina {run}", f"{PREFIX} Fred {run}"]
        assert why["why"].startswith("emergency: fastest to the scene")
        deadline = datetime.fromisoformat(offer["deadline"])
        assert 9 <= (deadline - datetime.fromisoformat(offer["sentAt"])).total_seconds() <= 10

        accepted = _gql(
            product,
            issue_token(product["env"], email),
            """mutation($id: ID!) { acceptOffer(id: $id) {
                 serviceRequest { status etaAt } userErrors { code message } } }""",
            id=offer["id"],
        )["acceptOffer"]
        assert accepted["userErrors"] == [], accepted
        assert accepted["serviceRequest"]["status"] == "ASSIGNED"
        assert accepted["serviceRequest"]["etaAt"] is not None
    finally:
        if socket is not None:
            await socket.close()
        if request_id is not None:
            _gql(
                product,
                dispatcher,
                """mutation($id: ID!) { transitionServiceRequest(id: $id, status: CANCELLED,
                     reasonCode: "duplicate") { userErrors { message } } }""",
                id=request_id,
            )
        for driver in drivers:
            _archive(product, admin, driver)
