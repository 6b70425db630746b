"""Customers, vehicles and memberships: validation, search, archive, idempotency."""

from __future__ import annotations

import pytest

from patone.core.domain import customers
from patone.core.runtime.db import engine
from patone.core.runtime.errors import NotFound, ValidationFailed
from patone.tenants.isolation import tenant_transaction
from patone.tenants.registry import TenantInfo
from tests.conftest import actor_for

DISPATCHER = actor_for("dispatcher")


async def test_contact_data_is_normalised(two_tenants: tuple[TenantInfo, TenantInfo]) -> None:
    acme, _ = two_tenants
    customer = await customers.create_customer(
        acme,
        DISPATCHER,
        {
            "name": "  Ana Ruiz ",
            "phone": "(415) 555-2671",
            "email": "Ana@Example.COM",
            "vehicles": [{"plate": "7 abc 123", "vin": "1HGCM82633A004352", "year": 2019}],
        },
    )
    assert customer.name == "Ana Ruiz"
    assert customer.phone == "+14155552671"
    assert customer.email == "Ana@example.com"
    vehicles = await customers.list_vehicles(acme, DISPATCHER, customer.id)
    assert vehicles[0].plate == "7ABC123"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "A", "phone": "12"}, "phone"),
        ({"name": "A", "email": "nope"}, "email"),
        ({"name": "A", "vehicles": [{"vin": "SHORT"}]}, "vehicles.0.vin"),
        ({"name": "A", "vehicles": [{"year": 1700}]}, "vehicles.0.year"),
        ({"name": "A", "shoe_size": 44}, "shoe_size"),
    ],
)
async def test_bad_customer_input_names_the_field_and_writes_nothing(
    two_tenants: tuple[TenantInfo, TenantInfo], data: dict[str, object], field: str
) -> None:
    acme, _ = two_tenants
    with pytest.raises(ValidationFailed) as caught:
        await customers.create_customer(acme, DISPATCHER, data)
    assert field in [e.field for e in caught.value.errors]
    async with tenant_transaction(acme):
        rows = await engine.fetch("SELECT count(*) AS n FROM customers")
    assert rows[0]["n"] == 0


async def test_search_by_name_phone_and_plate_within_one_tenant(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    ana = await customers.create_customer(
        acme,
        DISPATCHER,
        {"name": "Ana Ruiz", "phone": "+14155552671", "vehicles": [{"plate": "ZX-99 81"}]},
    )
    bob = await customers.create_customer(acme, DISPATCHER, {"name": "Bob Stone"})
    await customers.create_customer(bolt, DISPATCHER, {"name": "Ana Other"})

    async def search(text: str) -> list[int]:
        page = await customers.list_customers(acme, DISPATCHER, search=text)
        return [c.id for c in page.rows]

    for text in ("ana", "Ruiz", "555267", "zx99", "ZX 9981", "zx-9981"):
        assert await search(text) == [ana.id], text
    assert await search("   ") == [ana.id, bob.id]  # blank: no search, the whole list
    await customers.archive_customer(acme, DISPATCHER, ana.id)
    assert await search("ana") == []


async def test_updates_memberships_and_idempotent_create(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    first = await customers.create_customer(
        acme, DISPATCHER, {"name": "Cy"}, idempotency_key="import-1"
    )
    again = await customers.create_customer(
        acme, DISPATCHER, {"name": "Cy"}, idempotency_key="import-1"
    )
    assert first.id == again.id
    updated = await customers.update_customer(acme, DISPATCHER, first.id, {"notes": "VIP"})
    assert updated.notes == "VIP" and updated.name == "Cy"
    membership = await customers.add_membership(
        acme, DISPATCHER, first.id, {"provider": "AAA", "number": "429 123 456"}
    )
    assert membership.provider == "AAA"
    with pytest.raises(NotFound):
        await customers.update_customer(bolt, DISPATCHER, first.id, {"notes": "x"})
    async with tenant_transaction(acme):
        log = await engine.fetch(
            "SELECT action, before, after FROM activity_log WHERE entity = 'customer' ORDER BY id"
        )
    assert [r["action"] for r in log] == ["customer.created", "customer.updated"]
    assert '"VIP"' in log[1]["after"] and '"VIP"' not in log[1]["before"]
