"""Per-tenant plugin settings: validated, secrets sealed and masked, invisible to other tenants."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, Field

from patone.core.runtime.db import engine
from patone.core.runtime.errors import NotFound, UserError, ValidationFailed
from patone.plugins import config as plugins
from patone.plugins.hookspecs import hookimpl
from patone.plugins.secrets import MASK, SecretBox
from patone.plugins.types import NetworkTarget, SecretFor
from patone.tenants.isolation import tenant_transaction
from patone.tenants.registry import TenantInfo
from tests.conftest import actor_for
from tests.fakes import FakeDns
from tests.support import plugin_runtime

ADMIN = actor_for("admin")


class SmsSettings(BaseModel):
    account_sid: str = Field(min_length=2)
    auth_token: str = Field(min_length=8)
    status_callback_url: str = ""
    sender: str = "+15005550006"


class FakeSms:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    @hookimpl
    def plugin_info(self) -> Any:
        from patone.plugins.types import PluginInfo

        return PluginInfo(
            name="sms-fake",
            title="SMS",
            settings=SmsSettings,
            secret_fields=frozenset({"auth_token"}),
        )

    @hookimpl
    def send_sms(self, tenant: Any, config: dict[str, Any], message: str) -> str:
        self.sent.append((tenant.slug, config))
        return f"sent:{message}"


@pytest.fixture
def fake_sms() -> Iterator[FakeSms]:
    plugin = FakeSms()
    with plugin_runtime(plugin, timeout=2, secret="test-key", allow_private_urls=False):
        yield plugin


SETTINGS = {"account_sid": "AC123", "auth_token": "s3cret-token-1"}


async def test_settings_are_validated_sealed_masked_and_per_tenant(
    two_tenants: tuple[TenantInfo, TenantInfo], fake_sms: FakeSms
) -> None:
    acme, bolt = two_tenants
    state = await plugins.configure_plugin(acme, ADMIN, "sms-fake", enabled=True, config=SETTINGS)
    assert state.enabled and state.config["auth_token"] == MASK
    assert state.config["account_sid"] == "AC123"
    async with tenant_transaction(acme):
        raw = await engine.fetch("SELECT config FROM plugin_configs WHERE plugin = 'sms-fake'")
    assert "s3cret-token-1" not in raw[0]["config"] and "$encrypted" in raw[0]["config"]
    # Sending the mask back keeps the secret; other fields change.
    await plugins.configure_plugin(
        acme, ADMIN, "sms-fake", config={"auth_token": MASK, "sender": "+15005550001"}
    )
    assert (await plugins.enabled_plugins(acme))["sms-fake"]["auth_token"] == "s3cret-token-1"
    # Bolt sees the plugin off, with no settings; its hook calls never reach it.
    bolt_state = {s.name: s for s in await plugins.plugin_states(bolt, ADMIN)}["sms-fake"]
    assert not bolt_state.enabled and bolt_state.config == {}
    assert await plugins.call_first(bolt, "send_sms", message="hi") is None
    answer = await plugins.call_first(acme, "send_sms", message="hi")
    assert answer is not None and answer.value == "sent:hi"
    assert fake_sms.sent == [
        (acme.slug, {**SETTINGS, "status_callback_url": "", "sender": "+15005550001"})
    ]
    # Built-in, on by default: offline maps answers for both.
    for tenant in (acme, bolt):
        route = await plugins.call_first(
            tenant,
            "route",
            origin={"lat": 1, "lng": 1},
            destination={"lat": 1.1, "lng": 1},
            depart_at=None,
        )
        assert route is not None and route.plugin == "maps-offline"


async def test_fresh_settings_are_reread_only_after_a_change_in_any_process(
    two_tenants: tuple[TenantInfo, TenantInfo], fake_sms: FakeSms
) -> None:
    acme, bolt = two_tenants
    await plugins.configure_plugin(acme, ADMIN, "sms-fake", enabled=True, config=SETTINGS)
    first = await plugins.enabled_plugins(acme, fresh=True)
    assert await plugins.enabled_plugins(acme, fresh=True) is first  # unchanged: no re-read
    bolt_before = await plugins.enabled_plugins(bolt, fresh=True)
    # Another process changes acme's settings: this process still holds the old ones, but a
    # fresh read sees the bumped version and reads the new ones; bolt's stay cached.
    stale = plugins.get_runtime().enabled_cache[plugins.enabled_cache_key(acme)]
    await plugins.configure_plugin(acme, ADMIN, "sms-fake", config={"sender": "+15005550002"})
    plugins.get_runtime().enabled_cache[plugins.enabled_cache_key(acme)] = stale
    assert (await plugins.enabled_plugins(acme))["sms-fake"]["sender"] == "+15005550006"
    assert (await plugins.enabled_plugins(acme, fresh=True))["sms-fake"]["sender"] == (
        "+15005550002"
    )
    assert await plugins.enabled_plugins(bolt, fresh=True) is bolt_before
    assert "sms-fake" not in bolt_before


async def test_bad_settings_name_the_field_and_change_nothing(
    two_tenants: tuple[TenantInfo, TenantInfo], fake_sms: FakeSms
) -> None:
    acme, _ = two_tenants
    with pytest.raises(ValidationFailed) as missing:
        await plugins.configure_plugin(acme, ADMIN, "sms-fake", enabled=True, config={})
    assert {e.field for e in missing.value.errors} == {"config.account_sid", "config.auth_token"}
    with pytest.raises(UserError) as private:
        await plugins.configure_plugin(
            acme,
            ADMIN,
            "sms-fake",
            config={**SETTINGS, "status_callback_url": "http://127.0.0.1:9/cb"},
        )
    assert (private.value.code, private.value.field) == (
        "forbidden_address",
        "config.status_callback_url",
    )
    with pytest.raises(NotFound):
        await plugins.configure_plugin(acme, ADMIN, "no-such-plugin", enabled=True)
    with pytest.raises(UserError) as forbidden:
        await plugins.configure_plugin(
            acme, actor_for("dispatcher"), "sms-fake", enabled=True, config=SETTINGS
        )
    assert forbidden.value.code == "forbidden"
    assert (await plugins.enabled_plugins(acme)).get("sms-fake") is None


def test_secrets_survive_a_key_rotation() -> None:
    old = SecretBox("old-key")
    sealed = old.seal("token")
    new = SecretBox("new-key", fallbacks=["old-key"])
    assert new.open(sealed) == "token"
    rotated = new.rotate(sealed)
    assert SecretBox("new-key").open(rotated) == "token"
    with pytest.raises(ValueError):
        SecretBox("new-key").open(sealed)


async def test_rotating_the_key_re_seals_every_secret(
    two_tenants: tuple[TenantInfo, TenantInfo], fake_sms: FakeSms
) -> None:
    acme, bolt = two_tenants
    for tenant in (acme, bolt):
        await plugins.configure_plugin(tenant, ADMIN, "sms-fake", enabled=True, config=SETTINGS)
    runtime = plugins.get_runtime()
    plugins.set_runtime(
        plugins.PluginRuntime(manager=runtime.manager, box=SecretBox("new-key", ["test-key"]))
    )
    assert [await plugins.rotate_secrets(t) for t in (acme, bolt)] == [1, 1]
    plugins.set_runtime(plugins.PluginRuntime(manager=runtime.manager, box=SecretBox("new-key")))
    for tenant in (acme, bolt):
        assert (await plugins.enabled_plugins(tenant))["sms-fake"]["auth_token"] == "s3cret-token-1"


async def test_secrets_sealed_with_a_lost_key_are_asked_for_again_not_a_crash(
    two_tenants: tuple[TenantInfo, TenantInfo], caplog: pytest.LogCaptureFixture
) -> None:
    acme, bolt = two_tenants
    plugin = FakeSms()
    settings = {"account_sid": "AC1", "auth_token": "secret-token"}
    with plugin_runtime(plugin, secret="the-old-key"):
        for tenant in (acme, bolt):
            await plugins.configure_plugin(tenant, ADMIN, "sms-fake", enabled=True, config=settings)
    with plugin_runtime(plugin, secret="a-new-key-and-no-fallback"):
        # Hook calls leave the plugin out (and say why) instead of failing every call.
        assert "sms-fake" not in await plugins.enabled_plugins(acme)
        assert "cannot be decrypted" in caplog.text
        with pytest.raises(ValidationFailed) as caught:
            await plugins.configure_plugin(acme, ADMIN, "sms-fake", config={"account_sid": "AC2"})
        assert [(e.field, e.code) for e in caught.value.errors] == [
            ("config.auth_token", "undecryptable")
        ]
        # Trying it out says what is missing instead of failing.
        from patone.plugins.checks import check_plugin

        tried = await check_plugin(acme, ADMIN, "sms-fake", to="+14155552671")
        assert not tried.ok and "auth_token" in tried.message
        # Switching it off still works; entering the secret again mends it.
        off = await plugins.configure_plugin(acme, ADMIN, "sms-fake", enabled=False)
        assert off.enabled is False
        mended = await plugins.configure_plugin(
            acme, ADMIN, "sms-fake", enabled=True, config={"auth_token": "new-secret-token"}
        )
        assert mended.config["auth_token"] == MASK
        assert (await plugins.enabled_plugins(acme))["sms-fake"]["auth_token"] == (
            "new-secret-token"
        )
        assert "sms-fake" not in await plugins.enabled_plugins(bolt)


async def test_offline_maps_are_always_on_whatever_a_company_stored(
    two_tenants: tuple[TenantInfo, TenantInfo], fake_sms: FakeSms
) -> None:
    acme, bolt = two_tenants
    with pytest.raises(UserError) as refused:
        await plugins.configure_plugin(acme, ADMIN, "maps-offline", enabled=False)
    assert (refused.value.code, refused.value.field) == ("invalid", "enabled")
    # A company that turned it off before it was always on: it is on all the same.
    async with tenant_transaction(acme):
        await engine.execute(
            "INSERT INTO plugin_configs (plugin, enabled, config, updated_at) "
            "VALUES ('maps-offline', false, '{}'::jsonb, now())"
        )
    await plugins.forget_enabled(acme)
    for tenant in (acme, bolt):
        assert "maps-offline" in await plugins.enabled_plugins(tenant)
        state = {s.name: s for s in await plugins.plugin_states(tenant, ADMIN)}["maps-offline"]
        assert state.enabled and state.default_enabled
    turned_on = await plugins.configure_plugin(acme, ADMIN, "maps-offline", enabled=True)
    assert turned_on.enabled


async def test_a_fresh_read_trusts_an_unchanged_version_only_for_a_while(
    two_tenants: tuple[TenantInfo, TenantInfo], fake_sms: FakeSms
) -> None:
    """A change whose version bump was lost (Redis failed just then) reaches fresh reads once
    the cached copy is `VERSIONED_TTL` old, and a re-read at once."""
    acme, bolt = two_tenants
    before = await plugins.enabled_plugins(acme, fresh=True)
    bolt_before = await plugins.enabled_plugins(bolt, fresh=True)
    await plugins.configure_plugin(acme, ADMIN, "sms-fake", enabled=True, config=SETTINGS)
    version = await plugins._version(acme)
    read_at = time.monotonic()  # the copy from before, as if read just now
    plugins.get_runtime().enabled_cache[plugins.enabled_cache_key(acme)] = (
        read_at,
        version,
        before,
    )
    assert await plugins.enabled_plugins(acme, fresh=True) is before
    assert "sms-fake" in await plugins.enabled_plugins(acme, fresh=True, reread=True)
    plugins.get_runtime().enabled_cache[plugins.enabled_cache_key(acme)] = (
        read_at - plugins.VERSIONED_TTL,
        version,
        before,
    )
    assert "sms-fake" in await plugins.enabled_plugins(acme, fresh=True)
    assert "sms-fake" not in await plugins.enabled_plugins(bolt, fresh=True)
    assert "sms-fake" not in bolt_before


class RelaySettings(BaseModel):
    api_url: Annotated[str, NetworkTarget("url")] = "https://relay.example.com"
    relay_host: Annotated[str, NetworkTarget("host", port="relay_port")] = "mx.example.com"
    relay_port: int = 25
    api_token: Annotated[str, SecretFor("api_url")] = ""
    relay_password: Annotated[str, SecretFor("relay_host")] = ""


class Relay:
    @hookimpl
    def plugin_info(self) -> Any:
        from patone.plugins.types import PluginInfo

        return PluginInfo(
            name="relay",
            title="Relay",
            settings=RelaySettings,
            secret_fields=frozenset({"api_token", "relay_password"}),
        )


async def test_a_secret_is_entered_again_only_when_its_own_target_changes(
    two_tenants: tuple[TenantInfo, TenantInfo], dns: FakeDns
) -> None:
    acme, bolt = two_tenants
    for name in ("relay.example.com", "eu.relay.example.com", "mx.example.com"):
        dns.answer(name, "93.184.216.34")
    secrets = {"api_token": "token-1", "relay_password": "password-1"}
    with plugin_runtime(Relay(), entry_points=False, allow_private_urls=False):
        await plugins.configure_plugin(acme, ADMIN, "relay", enabled=True, config=secrets)
        with pytest.raises(ValidationFailed) as refused:
            await plugins.configure_plugin(
                acme, ADMIN, "relay", config={"relay_port": 2525, "relay_password": MASK}
            )
        assert [(e.field, e.message) for e in refused.value.errors] == [
            ("config.relay_password", "enter the relay password again: the relay port changed")
        ]
        # The API's URL changes with its token entered again; the relay's password stays.
        await plugins.configure_plugin(
            acme,
            ADMIN,
            "relay",
            config={"api_url": "https://eu.relay.example.com", "api_token": "token-2"},
        )
        saved = await plugins.saved_config(acme, "relay")
        assert (saved["api_token"], saved["relay_password"]) == ("token-2", "password-1")
        with pytest.raises(UserError) as private:
            await plugins.configure_plugin(
                acme, ADMIN, "relay", config={"relay_host": "10.0.0.25", "relay_password": "p"}
            )
        assert (private.value.code, private.value.field) == (
            "forbidden_address",
            "config.relay_host",
        )
        assert await plugins.saved_config(bolt, "relay") == {}


async def test_a_plugin_declaring_no_targets_has_its_url_settings_guarded(
    two_tenants: tuple[TenantInfo, TenantInfo], fake_sms: FakeSms, dns: FakeDns
) -> None:
    acme, _ = two_tenants
    dns.answer("example.com", "93.184.216.34")
    callback = {"status_callback_url": "https://example.com/cb"}
    await plugins.configure_plugin(acme, ADMIN, "sms-fake", enabled=True, config=SETTINGS)
    with pytest.raises(ValidationFailed) as refused:
        await plugins.configure_plugin(acme, ADMIN, "sms-fake", config=callback)
    assert [(e.field, e.message) for e in refused.value.errors] == [
        ("config.auth_token", "enter the auth token again: the status callback url changed")
    ]
    await plugins.configure_plugin(
        acme, ADMIN, "sms-fake", config={**callback, "auth_token": "s3cret-token-2"}
    )
