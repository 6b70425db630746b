"""Plugins over the API: a company lists, enables and configures them; secrets come back masked."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from patone.plugins.secrets import MASK
from patone.tenants.registry import TenantInfo
from tests.fakes import FakeDns, SmtpFake
from tests.graphql.conftest import Gql, token_for
from tests.plugins.test_config import SETTINGS, FakeSms, fake_sms  # noqa: F401 (fixture)
from tests.support import plugin_runtime

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


TWILIO = """
mutation($config: JSON) {
  configurePlugin(name: "sms-twilio", enabled: true, config: $config) {
    plugin { name enabled config }
    userErrors { field code message }
  }
}"""


async def test_a_provider_url_outside_the_public_internet_is_refused(
    gql: Gql,
    two_tenants: tuple[TenantInfo, TenantInfo],
    fake_sms: FakeSms,  # noqa: F811 (the fixture imported above: private addresses refused)
) -> None:
    acme, bolt = two_tenants
    admin = await token_for(acme, "admin")
    settings = {
        "account_sid": "AC" + "1" * 32,
        "auth_token": "a-very-secret-auth-token",
        "from_number": "+15005550006",
    }
    for url in (
        "http://100.100.100.200",
        "http://[64:ff9b::a9fe:a9fe]",
        "http://[2002:a9fe:a9fe::]",
    ):
        done = await gql(acme, admin, TWILIO, {"config": {**settings, "api_base_url": url}})
        assert done["data"]["configurePlugin"]["plugin"] is None
        [error] = done["data"]["configurePlugin"]["userErrors"]
        assert (error["field"], error["code"]) == ("config.api_base_url", "forbidden_address")
    listed = await gql(acme, admin, "{ plugins { name enabled config } }")
    by_name = {p["name"]: p for p in listed["data"]["plugins"]}
    assert by_name["sms-twilio"] == {"name": "sms-twilio", "enabled": False, "config": {}}
    bolt_admin = await token_for(bolt, "admin")
    other = await gql(bolt, bolt_admin, "{ plugins { name enabled config } }")
    assert {p["name"]: p for p in other["data"]["plugins"]}["sms-twilio"]["config"] == {}


SMTP = """
mutation($config: JSON) {
  configurePlugin(name: "email-smtp", enabled: true, config: $config) {
    plugin { config }
    userErrors { field code message }
  }
}"""
TEST = """mutation($to: String) { testPlugin(name: "email-smtp", to: $to) {
    result { ok message } userErrors { field code } } }"""


@pytest.fixture
def providers_nearby() -> Iterator[None]:
    """The installed plugins, private addresses allowed (the operator's setting) for the fakes."""
    with plugin_runtime():
        yield


async def test_a_password_is_not_sent_to_a_new_smtp_host_until_entered_again(
    gql: Gql,
    two_tenants: tuple[TenantInfo, TenantInfo],
    providers_nearby: None,
    smtp: SmtpFake,
    dns: FakeDns,
) -> None:
    acme, bolt = two_tenants
    admin = await token_for(acme, "admin")
    dns.answer("smtp.acme.example", "127.0.0.1")
    dns.answer("mx.attacker.example", "127.0.0.1")
    attacker = SmtpFake().start()
    try:
        mail = {"port": smtp.port, "security": "none", "from_address": "office@acme.example"}
        real = {"host": "smtp.acme.example", "password": "real-secret", **mail}
        done = await gql(acme, admin, SMTP, {"config": real})
        assert done["data"]["configurePlugin"]["userErrors"] == []
        moved = {**real, "host": "mx.attacker.example", "port": attacker.port, "password": MASK}
        refused = await gql(acme, admin, SMTP, {"config": moved})
        assert refused["data"]["configurePlugin"] == {
            "plugin": None,
            "userErrors": [
                {
                    "field": "config.password",
                    "code": "secret_required",
                    "message": "enter the password again: the host changed",
                }
            ],
        }
        tried = await gql(acme, admin, TEST, {"to": "boss@acme.example"})
        assert tried["data"]["testPlugin"]["result"]["ok"] is True
        assert [m["To"] for m in smtp.messages] == ["boss@acme.example"]
        assert attacker.messages == []
    finally:
        attacker.stop()
    listed = await gql(bolt, await token_for(bolt, "admin"), "{ plugins { name config } }")
    assert {p["name"]: p for p in listed["data"]["plugins"]}["email-smtp"]["config"] == {}
