"""Plugins over the API: a company lists, enables and configures them; secrets come back masked."""

from __future__ import annotations

from patone.tenants.registry import TenantInfo
from tests.graphql.conftest import Gql, token_for
from tests.plugins.test_config import SETTINGS, FakeSms, fake_sms  # noqa: F401 (fixture)

CONFIGURE = """
mutation($config: JSON) {
  configurePlugin(name: "sms-fake", enabled: true, config: $config) {
    plugin { name enabled config }
    userErrors { field code message }
  }
}"""


async def test_enable_and_configure_a_plugin_for_one_company(
    gql: Gql,
    two_tenants: tuple[TenantInfo, TenantInfo],
    fake_sms: FakeSms,  # noqa: F811 (the fixture imported above)
) -> None:
    acme, bolt = two_tenants
    admin = await token_for(acme, "admin")
    done = await gql(acme, admin, CONFIGURE, {"config": SETTINGS})
    plugin = done["data"]["configurePlugin"]["plugin"]
    assert plugin["enabled"] and plugin["config"]["auth_token"] == "********"
    bad = await gql(acme, admin, CONFIGURE, {"config": {"auth_token": "short"}})
    assert {e["field"] for e in bad["data"]["configurePlugin"]["userErrors"]} == {
        "config.auth_token"
    }
    listed = await gql(bolt, await token_for(bolt, "admin"), "{ plugins { name enabled config } }")
    by_name = {p["name"]: p for p in listed["data"]["plugins"]}
    assert by_name["sms-fake"] == {"name": "sms-fake", "enabled": False, "config": {}}
    assert by_name["maps-offline"]["enabled"]
    refused = await gql(acme, await token_for(acme, "dispatcher"), "{ plugins { name } }")
    assert refused["errors"][0]["extensions"]["code"] == "forbidden"
