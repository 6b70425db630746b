"""Idempotency keys belong to one caller and one input: a retry returns the first result, another
caller's key is another key, and a key reused for another input is refused."""

from __future__ import annotations

from typing import Any

import pytest

from patone.core.common.permissions import SYSTEM, Actor
from patone.core.domain import customers, service_requests
from patone.core.identity import api_clients
from patone.core.runtime.db import engine
from patone.core.runtime.errors import UserError
from patone.core.tables.customers import CustomerRow
from patone.tenants.isolation import tenant_transaction
from patone.tenants.registry import TenantInfo
from tests.conftest import actor_for

ANN = actor_for("dispatcher", user_id=1)
BOB = actor_for("dispatcher", user_id=2)


async def _partner(tenant: TenantInfo, name: str) -> Actor:
    """A partner acting through a real API client of the company (requests name their client)."""
    client, _ = await api_clients.create_client(
        tenant, SYSTEM, name=name, scopes=["requests:write"]
    )
    return Actor(kind="partner", id=client.client_id, permissions=frozenset({"requests.create"}))


async def _count(tenant: TenantInfo, table: str) -> int:
    async with tenant_transaction(tenant):
        rows = await engine.fetch(f"SELECT count(*) AS n FROM {table}")
    return int(rows[0]["n"])


async def test_another_caller_reusing_a_key_gets_their_own_customer(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    ann = await customers.create_customer(acme, ANN, {"name": "Ann's"}, idempotency_key="k-1")
    bob = await customers.create_customer(acme, BOB, {"name": "Bob's"}, idempotency_key="k-1")
    assert bob.id != ann.id and bob.name == "Bob's"
    again = await customers.create_customer(acme, ANN, {"name": "Ann's"}, idempotency_key="k-1")
    assert again == ann
    # The same caller and key in another company: that company's own customer.
    elsewhere = await customers.create_customer(bolt, ANN, {"name": "Ann's"}, idempotency_key="k-1")
    assert await _count(acme, "customers") == 2 and await _count(bolt, "customers") == 1
    assert elsewhere.name == "Ann's"


async def test_a_partner_cannot_fetch_another_partners_request_with_its_key(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    first = await customers.create_customer(acme, ANN, {"name": "Dana", "phone": "+14155552671"})
    second = await customers.create_customer(acme, ANN, {"name": "Eve", "phone": "+14155552672"})
    club, rival = await _partner(acme, "Club"), await _partner(acme, "Rival")

    def data(customer: CustomerRow) -> dict[str, Any]:
        return {  # partners send the motorist, matched here to the customer by phone
            "motorist": {"name": customer.name, "phone": customer.phone},
            "service_type": "lockout",
            "pickup": {"lat": 1, "lng": 2},
        }

    made = await service_requests.create_request(acme, club, data(first), idempotency_key="77")
    other = await service_requests.create_request(acme, rival, data(second), idempotency_key="77")
    assert other.id != made.id and other.customer == second.id
    retried = await service_requests.create_request(acme, club, data(first), idempotency_key="77")
    assert retried.id == made.id
    assert (
        await _count(acme, "service_requests") == 2 and await _count(bolt, "service_requests") == 0
    )


@pytest.mark.parametrize("key", ["k-2", "x" * 200])
async def test_a_key_reused_for_another_input_is_refused_and_creates_nothing(
    two_tenants: tuple[TenantInfo, TenantInfo], key: str
) -> None:
    acme, bolt = two_tenants
    first = await customers.create_customer(acme, ANN, {"name": "Cy"}, idempotency_key=key)
    # The same input written differently (spacing the service tidies) is the same input.
    same = await customers.create_customer(acme, ANN, {"name": " Cy "}, idempotency_key=key)
    assert same == first
    with pytest.raises(UserError) as refused:
        await customers.create_customer(acme, ANN, {"name": "Dee"}, idempotency_key=key)
    assert (refused.value.code, refused.value.field) == ("idempotency_key_reused", "idempotencyKey")
    assert await _count(acme, "customers") == 1
    # Bolt's Ann may use the key for anything: it is not Acme's.
    await customers.create_customer(bolt, ANN, {"name": "Dee"}, idempotency_key=key)
    assert await _count(bolt, "customers") == 1
