"""An unexpected failure inside a resolver reaches the client as a code and a request id;
its text and traceback only when DEBUG is on."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from patone.app import create_app
from patone.core import api_clients
from patone.core.db import engine
from patone.core.permissions import SYSTEM
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

    from patone.core.ratelimits import RateLimited
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
