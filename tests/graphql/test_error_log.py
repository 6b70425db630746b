"""The log tells our faults from the client's: a client's mistake is one INFO line without a
traceback; only an unexpected failure is an ERROR with its traceback."""

from __future__ import annotations

import logging

import httpx
import pytest

from patone.core.runtime.db import engine
from patone.tenants.registry import TenantInfo
from tests.graphql.conftest import token_for

CLIENT_MISTAKES = [
    # (case, who asks, document)
    ("a syntax error", "admin", "{ customers { edges "),
    ("a field that does not exist", "admin", "{ noSuchField }"),
    ("a refused action", "driver", "{ customers { edges { node { id } } } }"),
    (
        "a query too deep",
        "admin",
        "{ " + "node(id: 1) { ... on Customer { " * 12 + "id" + " } }" * 12 + " }",
    ),
    ("an id that names nothing", "admin", '{ node(id: "bm9wZQ") { id } }'),
]


async def _post(
    client: httpx.AsyncClient, tenant: TenantInfo, token: str, query: str
) -> httpx.Response:
    return await client.post(
        "/graphql",
        json={"query": query},
        headers={"X-Tenant": tenant.slug, "Authorization": f"Bearer {token}"},
    )


def _graphql_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.name.startswith(("strawberry", "patone.graphql", "graphql"))
    ]


@pytest.mark.parametrize(
    ("who", "document"), [case[1:] for case in CLIENT_MISTAKES], ids=[c[0] for c in CLIENT_MISTAKES]
)
async def test_a_client_mistake_is_logged_at_info_without_a_traceback(
    client: httpx.AsyncClient,
    two_tenants: tuple[TenantInfo, TenantInfo],
    caplog: pytest.LogCaptureFixture,
    who: str,
    document: str,
) -> None:
    acme, bolt = two_tenants
    token = await token_for(acme, who)
    caplog.set_level(logging.DEBUG)

    response = await _post(client, acme, token, document)

    assert response.json()["errors"], response.text
    records = _graphql_records(caplog)
    assert records, "the mistake is still logged, quietly"
    assert all(r.levelno <= logging.INFO for r in records), [r.getMessage() for r in records]
    assert all(r.exc_info is None for r in records)
    # The other company's work is not touched by the mistake.
    fine = await _post(
        client, bolt, await token_for(bolt, "admin"), "{ customers { edges { node { id } } } }"
    )
    assert "errors" not in fine.json()


async def test_an_unexpected_failure_is_logged_once_at_error_with_its_traceback(
    client: httpx.AsyncClient,
    two_tenants: tuple[TenantInfo, TenantInfo],
    caplog: pytest.LogCaptureFixture,
) -> None:
    acme, bolt = two_tenants
    token = await token_for(acme, "admin")
    # A fault we did not plan for: the table is gone (as after a botched manual change).
    await engine.execute(f'ALTER TABLE "{acme.schema_name}".customers RENAME TO gone_customers')
    caplog.set_level(logging.DEBUG)

    response = await _post(client, acme, token, "{ customers { edges { node { id } } } }")

    assert response.json()["errors"][0]["extensions"]["code"] == "internal_error"
    errors = [r for r in _graphql_records(caplog) if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert errors[0].exc_info is not None
    fine = await _post(
        client, bolt, await token_for(bolt, "admin"), "{ customers { edges { node { id } } } }"
    )
    assert "errors" not in fine.json()
