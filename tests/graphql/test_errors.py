"""An unexpected failure inside a resolver reaches the client as a code and a request id;
its text and traceback only when DEBUG is on."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from patone.app import create_app
from patone.core.common.permissions import SYSTEM
from patone.core.identity import api_clients
from patone.core.runtime.db import engine
from patone.settings import load_settings
from patone.tenants.isolation import tenant_transaction
from patone.tenants.registry import TenantInfo
from tests.graphql.conftest import SECRET, Gql, token_for

QUERY = {"query": "{ customers { edges { node { id } } } }"}


async def _broken_customers(tenant: TenantInfo) -> None:
    # A fault we did not plan for: the table is gone (as after a botched manual change).
    await engine.execute(f'ALTER TABLE "{tenant.schema_name}".customers RENAME TO gone_customers')


async def _ask(tenant: TenantInfo, *, debug: bool) -> httpx.Response:
    app = create_app(load_settings(secret_key=SECRET, base_domain="patone.test", debug=debug))
    token = await token_for(tenant, "dispatcher", email=f"d{int(debug)}@{tenant.slug}.example")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://patone.test") as client:
        return await client.post(
            "/graphql",
            json=QUERY,
            headers={"X-Tenant": tenant.slug, "Authorization": f"Bearer {token}"},
        )


async def test_unexpected_errors_are_masked_unless_debug(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    await _broken_customers(acme)

    quiet = await _ask(acme, debug=False)
    [error] = quiet.json()["errors"]
    assert error["message"] == "Unexpected error."
    assert error["extensions"] == {
        "code": "internal_error",
        "request_id": quiet.headers["x-request-id"],
    }
    assert "customers" not in error["message"] and "Traceback" not in quiet.text
    assert "does not exist" not in quiet.text

    loud = await _ask(acme, debug=True)
    [error] = loud.json()["errors"]
    assert error["message"] == "Unexpected error."
    assert "does not exist" in error["extensions"]["detail"]

    # The other company is unaffected.
    fine = await _ask(bolt, debug=False)
    assert "errors" not in fine.json()


async def test_a_rate_limit_inside_a_resolver_is_rate_limited_with_retry_after() -> None:
    import strawberry

    from patone.core.identity.ratelimits import RateLimited
    from patone.graphql.errors import PatoneErrors

    @strawberry.type
    class Query:
        @strawberry.field
        def busy(self) -> str:
            raise RateLimited(42)

    result = await strawberry.Schema(query=Query, extensions=[PatoneErrors]).execute("{ busy }")
    [error] = result.errors or []
    assert error.extensions == {"code": "rate_limited", "retry_after": 42, "request_id": None}
    assert error.message == "Too many requests. Try again in 42 seconds."


# Odd input gets a code and names its field; it never reaches the database or Redis as an
# unexpected error (`internal_error`).

NUL = "Ann\x00Lee"
BIG_ID = base64.urlsafe_b64encode(b"Customer:100000000000000000000").decode().rstrip("=")
BIG_CURSOR = base64.urlsafe_b64encode(b'["2026-12-07T09:00:00+00:00", 100000000000000000000]')
ODD_INPUT = [
    # (case, who asks, document, variables, expected (code, field))
    (
        "a NUL in a customer's name",
        "admin",
        "mutation($i: CreateCustomerInput!) { createCustomer(input: $i) "
        "{ customer { id } userErrors { field code } } }",
        {"i": {"name": NUL}},
        ("invalid", "i.name"),
    ),
    (
        "a NUL in a literal driver's name",
        "admin",
        'mutation { createDriver(input: {name: "Ann\\u0000Lee"}) '
        "{ driver { id } userErrors { field code } } }",
        {},
        ("invalid", "input.name"),
    ),
    (
        "a NUL in a push endpoint",
        "admin",
        "mutation($e: String!) { unregisterPushSubscription(endpoint: $e) "
        "{ removed userErrors { field code } } }",
        {"e": f"https://push.example/{NUL}"},
        ("invalid", "e"),
    ),
    (
        "an id whose number is out of range",
        "admin",
        "query($id: ID!) { node(id: $id) { id } }",
        {"id": BIG_ID},
        ("invalid_id", "id"),
    ),
    (
        "a page cursor whose id is out of range",
        "admin",
        "query($after: String) { serviceRequests(after: $after) { edges { node { id } } } }",
        {"after": BIG_CURSOR.decode()},
        ("invalid", "after"),
    ),
    (
        "a latitude beyond the pole",
        "admin",
        "{ nearbyDrivers(lat: 95, lng: 0, radiusM: 1000) { driverId } }",
        {},
        ("out_of_range", "lat"),
    ),
    (
        "a partner's own notification preferences",
        "partner",
        "{ notificationPreferences { event } }",
        {},
        ("required", "subjectId"),
    ),
    (
        "a partner setting its own notification preference",
        "partner",
        'mutation { setNotificationPreference(event: "request.created", channel: "sms", '
        "enabled: false) { preference { event } userErrors { field code } } }",
        {},
        ("required", "subjectId"),
    ),
    (
        "a date that is not a date",
        "admin",
        '{ serviceRequests(filter: {createdFrom: "yesterday"}) { edges { node { id } } } }',
        {},
        ("invalid", "filter.createdFrom"),
    ),
    (
        "a date that is not a date, in a variable",
        "admin",
        "query($f: RequestFilter) { serviceRequests(filter: $f) { edges { node { id } } } }",
        {"f": {"createdFrom": "yesterday"}},
        ("invalid", "f.createdFrom"),
    ),
]


def _refusal(result: dict[str, Any]) -> tuple[str | None, str | None]:
    """(code, field) of the first error, whether top-level or a payload's user error."""
    for error in result.get("errors") or []:
        extensions = error.get("extensions") or {}
        return extensions.get("code"), extensions.get("field")
    for payload in (result.get("data") or {}).values():
        for error in (payload or {}).get("userErrors") or []:
            return error["code"], error["field"]
    return None, None


@pytest.mark.parametrize(
    ("who", "document", "variables", "expected"),
    [case[1:] for case in ODD_INPUT],
    ids=[case[0] for case in ODD_INPUT],
)
async def test_odd_input_gets_a_code_and_a_field_and_changes_nothing(
    gql: Gql,
    client: httpx.AsyncClient,
    two_tenants: tuple[TenantInfo, TenantInfo],
    who: str,
    document: str,
    variables: dict[str, Any],
    expected: tuple[str, str],
) -> None:
    acme, bolt = two_tenants
    if who == "partner":
        made, _secret = await api_clients.create_client(
            acme, SYSTEM, name="Motor club", scopes=["requests:read"]
        )
        token, _ = await api_clients.issue_client_token(SECRET, acme, made, None)
    else:
        token = await token_for(acme, who)
    result = await gql(acme, token, document, variables)
    assert _refusal(result) == expected, result
    assert "internal_error" not in json.dumps(result)
    for tenant in (acme, bolt):
        async with tenant_transaction(tenant):
            rows = await engine.fetch(
                "SELECT (SELECT count(*) FROM customers) + (SELECT count(*) FROM drivers) AS n"
            )
        assert rows[0]["n"] == 0


# One vocabulary: a refusal of each kind, at each door, carries a listed code, the HTTP status
# the catalogue gives it (200 when the operation ran), and the request's id.

CREATE = """mutation($input: CreateServiceRequestInput!, $key: String) {
  createServiceRequest(input: $input, idempotencyKey: $key) {
    serviceRequest { id } userErrors { field code message } } }"""


def _graphql_error(response: httpx.Response, ran: bool = False) -> dict[str, Any]:
    """The first GraphQL error of an answer, checked against the catalogue."""
    from patone.core.runtime.error_codes import CODES

    [error, *_] = response.json()["errors"]
    code = error["extensions"]["code"]
    assert code in CODES, error
    assert response.status_code == (200 if ran else CODES[code].status), (code, response.text)
    assert error["extensions"]["request_id"] == response.headers["x-request-id"]
    return error  # type: ignore[no-any-return]


def _door_error(response: httpx.Response) -> dict[str, Any]:
    from patone.core.runtime.error_codes import CODES

    error = response.json()["error"]
    assert error["code"] in CODES, error
    assert response.status_code == CODES[error["code"]].status, response.text
    assert error["request_id"] == response.headers["x-request-id"]
    return error  # type: ignore[no-any-return]


async def test_every_kind_of_error_carries_its_listed_code_status_and_request_id(
    client: httpx.AsyncClient, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, bolt = two_tenants
    dispatcher = await token_for(acme, "dispatcher", email="dispatch@acme.example")
    driver = await token_for(acme, "driver", email="driver@acme.example")
    admin = await token_for(acme, "admin", email="admin@acme.example")
    theirs = await token_for(bolt, "dispatcher", email="dispatch@bolt.example")
    signed = {"X-Tenant": acme.slug, "Authorization": f"Bearer {dispatcher}"}

    async def ask(body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
        return await client.post(
            "/graphql", json=body, headers=signed if headers is None else headers
        )

    def code(error: dict[str, Any]) -> str:
        return str(error["extensions"]["code"])

    # Refused before anything ran: the code's own HTTP status.
    refusals: list[tuple[str, httpx.Response]] = [
        ("tenant_required", await ask({"query": "{ viewer { role } }"}, {})),
        ("unauthenticated", await ask({"query": "{ viewer { role } }"}, {"X-Tenant": acme.slug})),
        (
            "unauthenticated",  # another company's token
            await ask(
                {"query": "{ viewer { role } }"},
                {"X-Tenant": acme.slug, "Authorization": f"Bearer {theirs}"},
            ),
        ),
        ("syntax_error", await ask({"query": "{ viewer { role "})),
        ("invalid_document", await ask({"query": "{ viewer { salary } }"})),
        ("invalid_variables", await ask({"query": CREATE, "variables": {"input": {}}})),
        ("depth_limit_exceeded", await ask({"query": "{ a" + " { a" * 12 + " }" * 13})),
        ("bad_request", await ask({})),
        (
            "persisted_query_not_found",
            await ask({"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "a" * 64}}}),
        ),
        (
            "persisted_query_not_supported",
            await ask({"extensions": {"persistedQuery": {"version": 2, "sha256Hash": "a" * 64}}}),
        ),
        (
            "persisted_query_hash_mismatch",
            await ask(
                {
                    "query": "{ viewer { role } }",
                    "extensions": {"persistedQuery": {"version": 1, "sha256Hash": "a" * 64}},
                }
            ),
        ),
        (
            "invalid_json",
            await client.post(
                "/graphql",
                content=b"{not json",
                headers={**signed, "content-type": "application/json"},
            ),
        ),
        ("too_large", await client.post("/graphql", content=b" " * 1_100_000, headers=signed)),
        ("method_not_allowed", await client.put("/graphql", json={}, headers=signed)),
    ]
    for expected, response in refusals:
        error = _graphql_error(response)
        assert (code(error), response.json()["data"]) == (expected, None)
    assert refusals[-6][1].json()["errors"][0]["message"] == "PersistedQueryNotFound"

    # The operation ran: HTTP 200, and the code says what went wrong where.
    hidden = await ask(
        {"query": "{ customers { edges { node { id } } } }"},
        {"X-Tenant": acme.slug, "Authorization": f"Bearer {driver}"},
    )
    assert code(_graphql_error(hidden, ran=True)) == "forbidden"
    not_an_id = await ask({"query": '{ node(id: "zz") { id } }'})
    assert code(_graphql_error(not_an_id, ran=True)) == "invalid_id"
    missing = base64.urlsafe_b64encode(b"ServiceRequest:999999").decode().rstrip("=")
    gone = await ask(
        {
            "query": "mutation($id: ID!) { transitionServiceRequest(id: $id, status: CANCELLED, "
            'reasonCode: "other") { userErrors { field code message } } }',
            "variables": {"id": missing},
        }
    )
    assert gone.status_code == 200
    [user_error] = gone.json()["data"]["transitionServiceRequest"]["userErrors"]
    assert user_error["code"] == "not_found" and "999999" not in user_error["message"]
    bad = await ask(
        {
            "query": CREATE,
            "variables": {"input": {"serviceType": "towing", "pickup": {"lat": 95, "lng": 0}}},
        }
    )
    errors = bad.json()["data"]["createServiceRequest"]["userErrors"]
    assert {(e["field"], e["code"]) for e in errors} >= {("pickup.lat", "out_of_range")}

    # The JSON doors: {"error": {code, message, request_id}} with the code's status.
    sign_in = await client.post(
        "/auth/sign-in",
        json={"email": "nobody@acme.example", "password": "not the password"},
        headers={"X-Tenant": acme.slug},
    )
    assert _door_error(sign_in)["code"] == "invalid_credentials"
    pings = await client.post(
        "/api/driver/pings",
        json=[
            {
                "driver_id": 1,
                "lat": 1,
                "lng": 1,
                "accuracy_m": 5,
                "recorded_at": "2999-01-01T00:00:00Z",
            }
        ],
        headers={"X-Tenant": acme.slug, "Authorization": f"Bearer {admin}"},
    )
    refusal = _door_error(pings)
    assert (refusal["code"], refusal["errors"][0]["code"]) == ("invalid_pings", "in_future")
    nowhere = await client.get("/no/such/page", headers={"X-Tenant": acme.slug})
    assert _door_error(nowhere)["code"] == "not_found"
    oauth = await client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, headers={"X-Tenant": acme.slug}
    )
    assert (oauth.status_code, oauth.json()["error"]) == (401, "invalid_client")
    assert oauth.headers["x-request-id"]

    # The other company saw none of it.
    quiet = await ask(
        {"query": "{ serviceRequests { edges { node { id } } } }"},
        {"X-Tenant": bolt.slug, "Authorization": f"Bearer {theirs}"},
    )
    assert quiet.json() == {"data": {"serviceRequests": {"edges": []}}}
