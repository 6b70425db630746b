"""Subscriptions: a change committed by one process reaches a socket served by another."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import websockets

from patone.core.common.permissions import SYSTEM
from patone.core.dispatch import positions, staging
from patone.core.domain import customers, documents, drivers, service_requests
from patone.core.identity import api_clients, revocation
from patone.core.identity.tokens import TENANT_AUDIENCE, Kind, issue_token, verify_token
from patone.core.runtime.clock import now
from patone.graphql.app import REVOCATION_CHECK_EVERY
from patone.graphql.ids import pk_of, to_global_id
from patone.tenants.registry import TenantInfo
from tests.conftest import MakePlan, MakeTenant, actor_for
from tests.core.dispatch.world import MORNING, calls_at_scene_before, driver_at
from tests.graphql.conftest import SECRET, token_for
from tests.graphql.test_dispatch import _driver_with_login
from tests.support import serve_process

SUBSCRIBE = """
subscription { serviceRequestUpdates { eventId change serviceRequest { number status } } }
"""


@pytest.fixture(scope="module")
def server() -> Iterator[int]:
    """`patone serve` in its own process, on the test database, with its relay running."""
    with serve_process(SECRET) as port:
        yield port


async def _socket(port: int, tenant: TenantInfo, token: str) -> Any:
    socket = await websockets.connect(
        f"ws://127.0.0.1:{port}/graphql",
        subprotocols=[websockets.Subprotocol("graphql-transport-ws")],
        additional_headers={"X-Tenant": tenant.slug},
    )
    await socket.send(
        json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
    )
    return socket


@pytest.fixture
async def sockets() -> AsyncIterator[list[Any]]:
    opened: list[Any] = []
    yield opened
    for socket in opened:
        await socket.close()


async def _next(socket: Any, timeout: float = 5.0) -> dict[str, Any]:
    while True:
        message = json.loads(await asyncio.wait_for(socket.recv(), timeout))
        if message["type"] != "ping":
            return message  # type: ignore[no-any-return]


async def _dispatchers_subscribed(
    server: int, tenants: tuple[TenantInfo, ...], sockets: list[Any], query: str
) -> list[Any]:
    """A dispatcher's socket per company, subscribed to `query`."""
    opened = [await _socket(server, t, await token_for(t, "dispatcher")) for t in tenants]
    sockets.extend(opened)
    for socket in opened:
        assert (await _next(socket))["type"] == "connection_ack"
        await socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
    await asyncio.sleep(0.3)  # let the server subscribe to Redis
    return opened


async def test_an_update_from_another_process_reaches_the_subscriber(
    server: int, two_tenants: tuple[TenantInfo, TenantInfo], sockets: list[Any]
) -> None:
    acme, _bolt = two_tenants
    acme_socket, bolt_socket = await _dispatchers_subscribed(
        server, two_tenants, sockets, SUBSCRIBE
    )

    customer = await customers.create_customer(acme, SYSTEM, {"name": "Live"})
    request = await service_requests.create_request(
        acme,
        SYSTEM,
        {"customer_id": customer.id, "service_type": "lockout", "pickup": {"lat": 1, "lng": 1}},
    )
    await service_requests.transition(
        acme, SYSTEM, request.id, "cancelled", reason_code="duplicate"
    )
    changes = []
    for _ in range(2):
        message = await _next(acme_socket)
        assert message["type"] == "next", message
        update = message["payload"]["data"]["serviceRequestUpdates"]
        assert update["serviceRequest"]["number"] == request.number
        changes.append((update["change"], update["serviceRequest"]["status"]))
    assert changes[0][0] == "CREATED"
    assert changes[1] == ("STATUS_CHANGED", "CANCELLED")
    with pytest.raises(TimeoutError):
        await _next(bolt_socket, timeout=0.5)


async def test_a_socket_without_a_valid_token_is_closed(
    server: int, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, bolt = two_tenants
    for token in ("garbage", await token_for(bolt, "dispatcher")):
        socket = await _socket(server, acme, token)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await _next(socket)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403


async def test_a_socket_whose_token_is_revoked_is_closed_within_seconds(
    server: int, two_tenants: tuple[TenantInfo, TenantInfo], sockets: list[Any]
) -> None:
    acme, bolt = two_tenants
    acme_token, bolt_token = (
        await token_for(acme, "dispatcher"),
        await token_for(bolt, "dispatcher"),
    )
    acme_socket = await _socket(server, acme, acme_token)
    bolt_socket = await _socket(server, bolt, bolt_token)
    sockets.append(bolt_socket)
    for socket in (acme_socket, bolt_socket):
        assert (await _next(socket))["type"] == "connection_ack"
        await socket.send(
            json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIBE}})
        )
    claims = verify_token(SECRET, acme_token, audience=TENANT_AUDIENCE, tenant=acme)
    started = time.monotonic()
    await revocation.revoke_token(acme.slug, claims.token_id, claims.expires_at)
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await _next(acme_socket, timeout=10)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4403, "token revoked")
    assert time.monotonic() - started < REVOCATION_CHECK_EVERY + 2
    with pytest.raises(TimeoutError):  # the other company's socket stays open
        await _next(bolt_socket, timeout=0.5)


POSITIONS = "subscription { driverPositions { driverId lat recordedAt } }"


async def test_a_ping_reaches_the_dispatch_map_within_a_second_and_only_its_company(
    server: int, two_tenants: tuple[TenantInfo, TenantInfo], sockets: list[Any]
) -> None:
    acme, bolt = two_tenants
    acme_socket, bolt_socket = await _dispatchers_subscribed(
        server, two_tenants, sockets, POSITIONS
    )
    driver = await drivers.create_driver(acme, SYSTEM, {"name": "Ray"})
    await drivers.create_driver(bolt, SYSTEM, {"name": "Bo"})  # the same id, in Bolt
    sent = time.monotonic()
    report = await positions.record_pings(
        acme,
        actor_for("driver", driver_id=driver.id),
        [{"lat": 52.52, "lng": 13.405, "accuracy_m": 5, "recorded_at": now()}],
    )
    assert report.accepted == 1
    message = await _next(acme_socket, timeout=1.0)
    assert time.monotonic() - sent < 1.0
    (live,) = message["payload"]["data"]["driverPositions"]
    assert live["lat"] == 52.52
    with pytest.raises(TimeoutError):
        await _next(bolt_socket, timeout=0.5)


TRACKING = """
subscription($id: ID!) {
  requestTracking(requestId: $id) { number status driverName position { lat } }
}
"""


async def test_the_customer_watches_the_truck_come_on_a_socket_of_their_own(
    server: int, two_tenants: tuple[TenantInfo, TenantInfo], sockets: list[Any]
) -> None:
    acme, bolt = two_tenants
    driver = await drivers.create_driver(acme, SYSTEM, {"name": "Ray"})
    await drivers.update_driver(acme, SYSTEM, driver.id, {"status": "available"})
    await drivers.create_driver(bolt, SYSTEM, {"name": "Bo"})  # the same id, in Bolt
    customer = await customers.create_customer(acme, SYSTEM, {"name": "Dana"})
    request = await service_requests.create_request(
        acme,
        SYSTEM,
        {"customer_id": customer.id, "service_type": "lockout", "pickup": {"lat": 1, "lng": 1}},
    )
    await service_requests.assign_driver(acme, SYSTEM, request.id, driver.id)
    token = issue_token(SECRET, kind=Kind.customer, subject=str(customer.id), tenant=acme)
    socket = await _socket(server, acme, token)
    sockets.append(socket)
    assert (await _next(socket))["type"] == "connection_ack"
    variables = {"id": to_global_id("ServiceRequest", request.id)}
    await socket.send(
        json.dumps(
            {"id": "1", "type": "subscribe", "payload": {"query": TRACKING, "variables": variables}}
        )
    )
    first = (await _next(socket))["payload"]["data"]["requestTracking"]
    assert first == {
        "number": request.number,
        "status": "ASSIGNED",
        "driverName": "Ray",
        "position": None,
    }
    ray = actor_for("driver", driver_id=driver.id)
    await service_requests.transition(acme, ray, request.id, "en_route")
    coming = (await _next(socket))["payload"]["data"]["requestTracking"]
    assert coming["status"] == "EN_ROUTE"
    ping = {"lat": 52.52, "lng": 13.405, "accuracy_m": 5, "recorded_at": now()}
    await positions.record_pings(bolt, actor_for("driver", driver_id=driver.id), [ping])
    await positions.record_pings(acme, ray, [{**ping, "lat": 52.53}])
    moved = (await _next(socket, timeout=1.0))["payload"]["data"]["requestTracking"]
    assert moved["position"] == {"lat": 52.53}  # Ray's ping, not Bolt's driver's
    # Anything else on the same socket is refused: a customer only watches.
    await socket.send(json.dumps({"id": "2", "type": "subscribe", "payload": {"query": POSITIONS}}))
    refused = await _next(socket)
    while refused.get("id") == "1":  # a later update of the truck may come first
        refused = await _next(socket)
    assert (refused["id"], refused["type"]) == ("2", "error")
    assert refused["payload"][0]["extensions"]["code"] == "forbidden"


STAGING = """
subscription { stagingUpdates { change driverId suggestion { driverId km place suggestedAt } } }
"""


async def test_a_driver_hears_only_their_own_waiting_place_and_no_other_companys(
    server: int, two_tenants: tuple[TenantInfo, TenantInfo], sockets: list[Any]
) -> None:
    acme, bolt = two_tenants
    for tenant in two_tenants:
        await calls_at_scene_before(tenant, staging.MIN_CALLS)
    dan, dan_token = await _driver_with_login(acme, "Dan", 8)
    eve = to_global_id("Driver", (await driver_at(acme, 6)).id)  # another of Dan's company
    await driver_at(bolt, 8)  # Bolt's driver with Dan's id
    dan_socket = await _socket(server, acme, dan_token)
    sockets.append(dan_socket)
    assert (await _next(dan_socket))["type"] == "connection_ack"
    await dan_socket.send(
        json.dumps({"id": "1", "type": "subscribe", "payload": {"query": STAGING}})
    )
    acme_socket, bolt_socket = await _dispatchers_subscribed(server, two_tenants, sockets, STAGING)

    at = MORNING + timedelta(minutes=1)
    assert len(await staging.publish_moves(bolt, at, "UTC")) == 1
    assert len(await staging.publish_moves(acme, at, "UTC")) == 2
    update = (await _next(dan_socket))["payload"]["data"]["stagingUpdates"]
    assert update == {
        "change": "SUGGESTED",
        "driverId": dan,
        "suggestion": {
            "driverId": dan,
            "km": 7.99,  # straight-line km, rounded
            "place": "Alexanderplatz 1",
            "suggestedAt": at.isoformat(),
        },
    }
    seen = [(await _next(acme_socket))["payload"]["data"]["stagingUpdates"] for _ in range(2)]
    assert sorted(u["driverId"] for u in seen) == sorted([dan, eve])
    [bolts] = [(await _next(bolt_socket))["payload"]["data"]["stagingUpdates"]]
    assert bolts["driverId"] == dan  # the same id: Bolt's own driver

    await drivers.update_driver(acme, SYSTEM, pk_of(dan, "Driver"), {"status": "on_break"})
    await staging.publish_moves(acme, at + timedelta(minutes=staging.STAGE_MINUTES), "UTC")
    cleared = (await _next(dan_socket))["payload"]["data"]["stagingUpdates"]
    assert cleared == {"change": "CLEARED", "driverId": dan, "suggestion": None}
    with pytest.raises(TimeoutError):  # Eve's, Bolt's: never on Dan's socket
        await _next(dan_socket, timeout=0.5)
    with pytest.raises(TimeoutError):
        await _next(bolt_socket, timeout=0.5)


# Every operation on a socket passes the rules an HTTP request passes: the allow-list, the rate
# limit, the audience and the cost limit, with the same codes.

REQUESTS = "query Open { serviceRequests(first: 5) { edges { node { number } } } }"
CUSTOMERS = "{ customers { edges { node { name phone } } } }"
CREATE_CUSTOMER = 'mutation { createCustomer(input: {name: "Mallory"}) { customer { id } } }'


async def _run(socket: Any, operation_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Send one operation on an open socket; its first answer (`next` or `error`)."""
    await socket.send(json.dumps({"id": operation_id, "type": "subscribe", "payload": payload}))
    while True:
        message = await _next(socket)
        if message["type"] != "complete":  # an earlier operation's end
            assert message.get("id") == operation_id, message
            return message


def _code(message: dict[str, Any]) -> str | None:
    if message["type"] == "error":
        return message["payload"][0]["extensions"]["code"]  # type: ignore[no-any-return]
    errors = message["payload"].get("errors") or [{}]
    return errors[0].get("extensions", {}).get("code")  # type: ignore[no-any-return]


async def _allow_listed_partner(tenant: TenantInfo) -> str:
    """A token of a partner client of `tenant` that may run only registered documents."""
    client, _secret = await api_clients.create_client(
        tenant, SYSTEM, name="Motor club", scopes=["requests:read"], allow_list_only=True
    )
    token, _scopes = await api_clients.issue_client_token(SECRET, tenant, client, None)
    return token


async def _customer_count(tenant: TenantInfo) -> int:
    return len((await customers.list_customers(tenant, SYSTEM, first=200)).rows)


async def test_an_allow_listed_partner_runs_only_registered_documents_on_a_socket(
    server: int, two_tenants: tuple[TenantInfo, TenantInfo], sockets: list[Any]
) -> None:
    acme, bolt = two_tenants
    await documents.register_document(acme, SYSTEM, {"name": "open", "document": REQUESTS})
    digest = hashlib.sha256(REQUESTS.encode()).hexdigest()
    by_hash = {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": digest}}}
    acme_socket = await _socket(server, acme, await _allow_listed_partner(acme))
    bolt_socket = await _socket(server, bolt, await _allow_listed_partner(bolt))
    sockets.extend([acme_socket, bolt_socket])
    for socket in (acme_socket, bolt_socket):
        assert (await _next(socket))["type"] == "connection_ack"
    before = await _customer_count(acme)

    for number, refused in enumerate(({"query": CUSTOMERS}, {"query": CREATE_CUSTOMER}), 1):
        answer = await _run(acme_socket, str(number), refused)
        assert answer["type"] == "error", answer
        assert _code(answer) == "persisted_query_not_allowed"
    assert await _customer_count(acme) == before  # the mutation did not run
    served = await _run(acme_socket, "3", {"query": REQUESTS})
    assert served["type"] == "next" and "errors" not in served["payload"], served
    assert (await _run(acme_socket, "4", by_hash))["type"] == "next"  # by its hash alone
    # Another company's allow-list is its own: the same hash is unknown there.
    elsewhere = await _run(bolt_socket, "1", by_hash)
    assert (elsewhere["type"], _code(elsewhere)) == ("error", "persisted_query_not_allowed")


async def test_a_socket_spends_the_same_budget_as_http_and_is_refused_with_rate_limited(
    server: int, make_plan: MakePlan, make_tenant: MakeTenant, sockets: list[Any]
) -> None:
    plan = await make_plan(api_requests_per_minute=3, tenant_api_requests_per_minute=100)
    acme, bolt = await make_tenant("acme", plan=plan), await make_tenant("bolt", plan=plan)
    token = await token_for(acme, "dispatcher")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server}") as http:

        async def over_http() -> int:
            response = await http.post(
                "/graphql",
                json={"query": REQUESTS},
                headers={"X-Tenant": acme.slug, "Authorization": f"Bearer {token}"},
            )
            return response.status_code

        assert [await over_http() for _ in range(2)] == [200, 200]
        socket = await _socket(server, acme, token)
        sockets.append(socket)
        assert (await _next(socket))["type"] == "connection_ack"
        assert (await _run(socket, "1", {"query": REQUESTS}))["type"] == "next"  # the third
        refused = await _run(socket, "2", {"query": REQUESTS})
        assert (refused["type"], _code(refused)) == ("error", "rate_limited"), refused
        assert 1 <= refused["payload"][0]["extensions"]["retry_after"] <= 60
        assert await over_http() == 429
    # Bolt, on the same plan, has a budget of its own.
    bolt_socket = await _socket(server, bolt, await token_for(bolt, "dispatcher"))
    sockets.append(bolt_socket)
    assert (await _next(bolt_socket))["type"] == "connection_ack"
    assert (await _run(bolt_socket, "1", {"query": REQUESTS}))["type"] == "next"


async def test_a_costly_operation_and_a_customers_read_are_refused_on_a_socket_as_over_http(
    server: int, two_tenants: tuple[TenantInfo, TenantInfo], sockets: list[Any]
) -> None:
    acme, bolt = two_tenants
    costly = " ".join(
        f"p{i}: serviceRequests(first: 200) {{ edges {{ node {{ number }} }} }}" for i in range(30)
    )
    socket = await _socket(server, acme, await token_for(acme, "dispatcher"))
    sockets.append(socket)
    assert (await _next(socket))["type"] == "connection_ack"
    refused = await _run(socket, "1", {"query": f"{{ {costly} }}"})
    assert (refused["type"], _code(refused)) == ("error", "cost_limit_exceeded"), refused

    customer = await customers.create_customer(bolt, SYSTEM, {"name": "Dana"})
    await customers.create_customer(acme, SYSTEM, {"name": "Other Dana"})
    token = issue_token(SECRET, kind=Kind.customer, subject=str(customer.id), tenant=bolt)
    watcher = await _socket(server, bolt, token)
    sockets.append(watcher)
    assert (await _next(watcher))["type"] == "connection_ack"
    for number, query in enumerate((CUSTOMERS, CREATE_CUSTOMER), 1):
        answer = await _run(watcher, str(number), {"query": query})
        assert (answer["type"], _code(answer)) == ("error", "forbidden"), answer


async def test_the_legacy_graphql_ws_protocol_is_not_a_second_door(
    server: int, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, _bolt = two_tenants
    socket = await websockets.connect(
        f"ws://127.0.0.1:{server}/graphql",
        subprotocols=[websockets.Subprotocol("graphql-ws")],
        additional_headers={"X-Tenant": acme.slug},
    )
    token = await token_for(acme, "dispatcher")
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await socket.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
        )
        await _next(socket)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4406


async def test_a_partner_hears_only_the_requests_its_own_client_created(
    server: int, two_tenants: tuple[TenantInfo, TenantInfo], sockets: list[Any]
) -> None:
    acme, bolt = two_tenants
    partners = []
    for tenant, name in ((acme, "Club A"), (acme, "Club B"), (bolt, "Club A")):
        client, _secret = await api_clients.create_client(
            tenant, SYSTEM, name=name, scopes=["requests:read", "requests:write"]
        )
        token, _scopes = await api_clients.issue_client_token(SECRET, tenant, client, None)
        claims = verify_token(SECRET, token, audience=TENANT_AUDIENCE, tenant=tenant)
        actor = api_clients.partner_actor(claims)
        partners.append((tenant, token, actor))
    opened = [await _socket(server, tenant, token) for tenant, token, _ in partners]
    sockets.extend(opened)
    for socket in opened:
        assert (await _next(socket))["type"] == "connection_ack"
        await socket.send(
            json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIBE}})
        )
    await asyncio.sleep(0.3)  # let the server subscribe to Redis

    job = {
        "motorist": {"name": "Robin Roe", "phone": "+14155552671"},
        "service_type": "lockout",
        "pickup": {"lat": 1, "lng": 1},
    }
    b_job = await service_requests.create_request(acme, partners[1][2], job)
    a_job = await service_requests.create_request(acme, partners[0][2], job)
    heard = await _next(opened[0])
    assert heard["payload"]["data"]["serviceRequestUpdates"]["serviceRequest"]["number"] == (
        a_job.number
    )
    heard_b = await _next(opened[1])
    assert heard_b["payload"]["data"]["serviceRequestUpdates"]["serviceRequest"]["number"] == (
        b_job.number
    )
    for socket in opened:  # nothing more: not the other client's, not another company's
        with pytest.raises(TimeoutError):
            await _next(socket, timeout=0.5)
