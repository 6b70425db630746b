"""The example third-party plugin, installed through its entry point, end to end over the API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from patone.plugins import config as plugins
from patone.plugins.manager import PluginManager
from patone.plugins.secrets import SecretBox
from patone.tenants.registry import TenantInfo
from tests.graphql.conftest import Gql, token_for

CONFIGURE = """
mutation { configurePlugin(name: "night-surcharge", enabled: true,
                           config: {percent: 30, starts: "00:00", ends: "23:59"}) {
  plugin { enabled config } userErrors { field message } } }
"""
QUOTE = """
mutation($c: ID!) { createServiceRequest(input: {customerId: $c, serviceType: "lockout",
                    pickup: {lat: 1, lng: 1}}) { serviceRequest { quotedPrice { amount } } } }
"""


@pytest.fixture
def installed() -> Iterator[PluginManager]:
    manager = PluginManager(load_entry_points=True)
    plugins.set_runtime(plugins.PluginRuntime(manager=manager, box=SecretBox("k")))
    yield manager
    plugins.set_runtime(None)
    manager.close()


async def _price(gql: Gql, tenant: TenantInfo, token: str) -> int:
    created = await gql(
        tenant, token, 'mutation { createCustomer(input: {name: "Q"}) { customer { id } } }'
    )
    customer = created["data"]["createCustomer"]["customer"]["id"]
    result = await gql(tenant, token, QUOTE, {"c": customer})
    return int(result["data"]["createServiceRequest"]["serviceRequest"]["quotedPrice"]["amount"])


async def test_enabled_for_one_company_it_changes_quotes_there_only(
    gql: Gql, two_tenants: tuple[TenantInfo, TenantInfo], installed: PluginManager
) -> None:
    assert "night-surcharge" in installed.infos()  # found through its entry point
    acme, bolt = two_tenants
    acme_admin, bolt_admin = await token_for(acme, "admin"), await token_for(bolt, "admin")
    before = await _price(gql, acme, acme_admin)
    enabled = await gql(acme, acme_admin, CONFIGURE)
    assert enabled["data"]["configurePlugin"]["userErrors"] == []
    assert enabled["data"]["configurePlugin"]["plugin"]["config"]["percent"] == 30

    assert await _price(gql, acme, acme_admin) == before + before * 30 // 100
    assert await _price(gql, bolt, bolt_admin) == before

    mine = await gql(acme, acme_admin, "{ nightSurcharge { active percent starts ends } }")
    assert mine["data"]["nightSurcharge"] == {
        "active": True,
        "percent": 30,
        "starts": "00:00",
        "ends": "23:59",
    }
    theirs = await gql(bolt, bolt_admin, "{ nightSurcharge { active } }")
    assert theirs["errors"][0]["extensions"]["code"] == "plugin_disabled"
