"""Per-tenant plugins: which are on, their typed settings, secrets sealed, and calling them.

A hook call for a tenant reaches only the plugins that tenant enabled (or that are on by default
and it did not turn off, or always on), each receiving that tenant's settings with secrets
decrypted. Settings are validated against the plugin's own model, field by field; the network
targets they name pass the SSRF guard, and a secret must be entered again when a target it
authenticates to changes (`patone.plugins.targets`); secrets are encrypted at rest and masked
when read back.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from redis.exceptions import RedisError

from patone.core.common.activity import record
from patone.core.common.permissions import SYSTEM, Actor, require
from patone.core.runtime.clock import now
from patone.core.runtime.db import engine
from patone.core.runtime.errors import NotFound, UserError, ValidationFailed
from patone.core.runtime.redis import get_redis, tenant_key
from patone.plugins.manager import PluginManager
from patone.plugins.secrets import MASK, SecretBox
from patone.plugins.targets import check_targets, kept_secrets
from patone.plugins.types import PluginInfo, PluginResult, TenantView
from patone.settings import Settings
from patone.tenants.isolation import TenantRef, tenant_transaction

log = logging.getLogger(__name__)


@dataclass
class PluginRuntime:
    """The installation's plugins and how their settings are sealed."""

    manager: PluginManager
    box: SecretBox
    allow_private_urls: bool = False
    tenant_url: str = "http://{slug}.localhost:8000"  # PUBLIC_URL
    # Each tenant's enabled plugins with their settings opened, with when they were read and
    # the tenant's plugins version then: hook calls (every notification sent) need them, and
    # reading and decrypting them each time costs a transaction. A change in this process
    # clears its tenant at once; other processes see it within `ENABLED_TTL`, or at once where
    # they ask for fresh settings (which compares versions: one Redis read).
    enabled_cache: dict[str, tuple[float, str | None, dict[str, dict[str, Any]]]] = (
        dataclasses.field(default_factory=dict)
    )


ENABLED_TTL = 5.0
# A fresh read trusts an unchanged version for this long at most: a change whose version bump
# was lost (Redis failed just then) reaches fresh reads within it too.
VERSIONED_TTL = 60.0


_runtime: PluginRuntime | None = None


def runtime_from_settings(settings: Settings) -> PluginRuntime:
    """The installed plugins (entry points) and the key their secrets are sealed with."""
    return PluginRuntime(
        manager=PluginManager(),
        box=SecretBox(settings.resolved_secret_key(), settings.secret_key_fallbacks),
        allow_private_urls=settings.allow_private_urls,
        tenant_url=settings.tenant_url_template(),
    )


def set_runtime(runtime: PluginRuntime | None) -> None:
    global _runtime
    _runtime = runtime


def get_runtime() -> PluginRuntime:
    if _runtime is None:
        raise RuntimeError("plugins are not set up")
    return _runtime


@dataclass(frozen=True)
class PluginState:
    name: str
    title: str
    description: str
    enabled: bool
    default_enabled: bool
    config: dict[str, Any]  # secrets masked
    settings_schema: dict[str, Any]


def _info(name: str) -> PluginInfo:
    info = get_runtime().manager.infos().get(name)
    if info is None:
        raise NotFound("not_found", f"no plugin called {name!r} is installed", "name")
    return info


async def _stored() -> dict[str, tuple[bool, dict[str, Any]]]:
    rows = await engine.fetch("SELECT plugin, enabled, config FROM plugin_configs")
    return {r["plugin"]: (r["enabled"], json.loads(r["config"])) for r in rows}


def _masked(info: PluginInfo, config: dict[str, Any]) -> dict[str, Any]:
    return {k: (MASK if k in info.secret_fields and v else v) for k, v in config.items()}


def _state(info: PluginInfo, stored: tuple[bool, dict[str, Any]] | None) -> PluginState:
    enabled, config = stored if stored else (info.default_enabled, {})
    enabled = enabled or info.always_on
    schema = info.settings.model_json_schema() if info.settings else {}
    return PluginState(
        name=info.name,
        title=info.title,
        description=info.description,
        enabled=enabled,
        default_enabled=info.default_enabled,
        config=_masked(info, config),
        settings_schema=schema,
    )


async def plugin_states(tenant: TenantRef, actor: Actor) -> list[PluginState]:
    """Every installed plugin, on or off for this tenant, its settings masked."""
    require(actor, "settings.manage")
    async with tenant_transaction(tenant):
        stored = await _stored()
    infos = get_runtime().manager.infos()
    return [_state(info, stored.get(name)) for name, info in sorted(infos.items())]


def _validate(info: PluginInfo, merged: dict[str, Any]) -> dict[str, Any]:
    if info.settings is None:
        if merged:
            raise UserError("unknown_field", f"{info.name} takes no settings", "config")
        return {}
    model: type[BaseModel] = info.settings
    try:
        valid = model.model_validate(merged).model_dump(mode="json")
    except ValidationError as error:
        raise ValidationFailed(
            [
                UserError(
                    "required" if item["type"] == "missing" else "invalid",
                    item["msg"].removeprefix("Value error, "),
                    "config." + ".".join(str(p) for p in item["loc"]),
                )
                for item in error.errors()
            ]
        ) from None
    return valid


async def _check_targets(info: PluginInfo, valid: dict[str, Any]) -> None:
    """The network targets the settings name pass the SSRF guard (DNS: not on the loop)."""
    if info.settings is not None:
        allow = get_runtime().allow_private_urls
        await asyncio.to_thread(check_targets, info.settings, valid, allow_private=allow)


def _sealed(info: PluginInfo, box: SecretBox, valid: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (box.seal(v) if k in info.secret_fields and v not in (None, "") else v)
        for k, v in valid.items()
    }


async def configure_plugin(
    tenant: TenantRef,
    actor: Actor,
    name: str,
    *,
    enabled: bool | None = None,
    config: dict[str, Any] | None = None,
) -> PluginState:
    """Turn a plugin on or off for this tenant and/or change its settings.

    Settings are merged into what is stored; a secret sent back as the mask keeps its value,
    unless a target it authenticates to changes (then it must be entered again).
    """
    require(actor, "settings.manage")
    info = _info(name)
    if info.always_on and enabled is False:
        raise UserError(
            "invalid", f"{info.title} is built in and always on: it cannot be turned off", "enabled"
        )
    box = get_runtime().box
    async with tenant_transaction(tenant):
        stored = (await _stored()).get(name)
        was_enabled, sealed = stored if stored else (info.default_enabled, {})
        current, unreadable = _opened(box, sealed)
        changes = {
            k: v for k, v in (config or {}).items() if not (k in info.secret_fields and v == MASK)
        }
        if unreadable - set(changes) and config is not None:
            raise ValidationFailed(
                [
                    UserError(
                        "undecryptable",
                        "was sealed with a server key this server no longer has (SECRET_KEY "
                        "changed without SECRET_KEY_FALLBACKS): enter it again",
                        f"config.{field}",
                    )
                    for field in sorted(unreadable - set(changes))
                ]
            )
        if config is None:  # only switching on or off: the settings stay as they are
            valid, to_store = current, dict(sealed)
        else:
            valid = _validate(info, {**current, **changes})
            kept = kept_secrets(info, current, valid, set(changes) & info.secret_fields)
            if kept:
                raise ValidationFailed(kept)
            await _check_targets(info, valid)
            to_store = _sealed(info, box, valid)
        now_enabled = was_enabled if enabled is None else enabled
        await engine.execute(
            "INSERT INTO plugin_configs (plugin, enabled, config, updated_at) "
            "VALUES ($1, $2, $3::jsonb, $4) ON CONFLICT (plugin) DO UPDATE SET "
            "enabled = EXCLUDED.enabled, config = EXCLUDED.config, "
            "updated_at = EXCLUDED.updated_at",
            name,
            now_enabled,
            json.dumps(to_store),
            now(),
        )
        await record(
            actor,
            "plugin",
            name,
            "plugin.configured",
            {"enabled": was_enabled, "config": _masked(info, current)},
            {"enabled": now_enabled, "config": _masked(info, valid)},
        )
    await forget_enabled(tenant)
    return _state(info, (now_enabled, valid))


async def fill_plugin_settings(
    tenant: TenantRef, name: str, fill: Callable[[dict[str, Any]], dict[str, Any]]
) -> dict[str, Any]:
    """Settings the product fills in itself (a key pair made on first use), not an admin's form.

    `fill` gets this tenant's settings for plugin `name` (secrets opened) and returns the fields
    to set, or {} when there is nothing to do. Changes are made under a lock on the plugin's row
    (two first uses do not each make a key), validated and sealed like `configure_plugin`'s and
    logged as the system's; the plugin stays on or off as it was. Returns the settings now
    stored, secrets opened.
    """
    info = _info(name)
    box = get_runtime().box
    async with tenant_transaction(tenant):
        stored = (await _stored()).get(name)
        current = _opened(box, stored[1] if stored else {})[0]
        if not fill(dict(current)):
            return current
        await engine.execute(
            "INSERT INTO plugin_configs (plugin, enabled, config, updated_at) "
            "VALUES ($1, $2, '{}'::jsonb, $3) ON CONFLICT (plugin) DO NOTHING",
            name,
            info.default_enabled,
            now(),
        )
        rows = await engine.fetch(
            "SELECT config FROM plugin_configs WHERE plugin = $1 FOR UPDATE", name
        )
        current = _opened(box, json.loads(rows[0]["config"]))[0]
        changes = fill(dict(current))  # again: another first use may have filled it meanwhile
        if not changes:
            return current
        valid = _validate(info, {**current, **changes})
        await _check_targets(info, valid)
        await engine.execute(
            "UPDATE plugin_configs SET config = $2::jsonb, updated_at = $3 WHERE plugin = $1",
            name,
            json.dumps(_sealed(info, box, valid)),
            now(),
        )
        await record(
            SYSTEM,
            "plugin",
            name,
            "plugin.configured",
            {"config": _masked(info, current)},
            {"config": _masked(info, valid)},
        )
    await forget_enabled(tenant)
    return valid


async def saved_config(tenant: TenantRef, name: str) -> dict[str, Any]:
    """This tenant's saved settings for one plugin, secrets decrypted, enabled or not (a secret
    this server cannot decrypt is left out, as if never entered)."""
    box = get_runtime().box
    async with tenant_transaction(tenant):
        stored = (await _stored()).get(name)
    return _opened(box, stored[1] if stored else {})[0]


def _opened(box: SecretBox, sealed: dict[str, Any]) -> tuple[dict[str, Any], set[str]]:
    """Settings with their secrets opened, and the fields whose secret cannot be opened."""
    opened: dict[str, Any] = {}
    unreadable: set[str] = set()
    for field, value in sealed.items():
        try:
            opened[field] = box.open(value)
        except ValueError:
            unreadable.add(field)
    return opened, unreadable


def enabled_cache_key(tenant: TenantRef) -> str:
    """Where `enabled_plugins` keeps a tenant's settings in `PluginRuntime.enabled_cache`."""
    # By id as well: a company that takes a purged company's slug never gets its settings.
    return f"{tenant.slug}:{tenant.id}"


async def enabled_plugins(
    tenant: TenantRef,
    *,
    fresh: bool = False,
    reread: bool = False,
    runtime: PluginRuntime | None = None,
) -> dict[str, dict[str, Any]]:
    """The plugins on for this tenant and their settings, secrets decrypted (for hook calls).

    Read from this process's cache when it is younger than `ENABLED_TTL` (a change made in
    another process reaches it within that time). With `fresh=True`, as of the tenant's plugins
    version: the cache if no change was made since it was read (for up to `VERSIONED_TTL`),
    else the database; work that must see a change made just before it was queued (a send job
    right after a company turned on its SMS provider) asks for that once per job.
    `reread=True` reads the database whatever the version says, for a decision that cannot be
    taken back (a message ended as `no_provider`); a cached copy it finds stale is logged.

    A plugin whose secrets this server cannot open (SECRET_KEY changed without fallbacks) is
    left out and logged: its company must enter them again. `runtime`: another than the
    process's (a command line that has none)."""
    runtime = runtime or get_runtime()
    cached = runtime.enabled_cache.get(enabled_cache_key(tenant))
    if not fresh and cached is not None and time.monotonic() - cached[0] < ENABLED_TTL:
        return cached[2]
    version = await _version(tenant)
    same_version = cached is not None and version is not None and cached[1] == version
    trusted = cached is not None and time.monotonic() - cached[0] < VERSIONED_TTL
    if fresh and not reread and same_version and trusted and cached is not None:
        return cached[2]  # nothing changed since it was read (a change bumps the version)
    async with tenant_transaction(tenant):
        stored = await _stored()
    enabled: dict[str, dict[str, Any]] = {}
    for name, info in runtime.manager.infos().items():
        on, sealed = stored.get(name, (info.default_enabled, {}))
        if not on and not info.always_on:
            continue
        opened, unreadable = _opened(runtime.box, sealed)
        if unreadable:
            log.error(
                "plugin %s is left out: its secrets %s cannot be decrypted with SECRET_KEY",
                name,
                ", ".join(sorted(unreadable)),
                extra={"tenant": tenant.slug, "plugin": name},
            )
            continue
        enabled[name] = opened
    if reread and same_version and cached is not None and set(cached[2]) != set(enabled):
        log.warning(
            "cached plugin settings were stale under version %s: %s cached, %s stored",
            version,
            sorted(cached[2]),
            sorted(enabled),
            extra={"tenant": tenant.slug},
        )
    runtime.enabled_cache[enabled_cache_key(tenant)] = (time.monotonic(), version, enabled)
    return enabled


def _version_key(slug: str) -> str:
    return tenant_key(slug, "plugins_version")


async def _version(tenant: TenantRef) -> str | None:
    """The tenant's plugins version ("0" before its first change), or None when Redis can't
    say (then settings are read from the database)."""
    try:
        value = await get_redis().get(_version_key(tenant.slug))
    except RedisError:
        return None
    return value.decode() if isinstance(value, bytes) else str(value or "0")


async def forget_enabled(tenant: TenantRef) -> None:
    """After committing a change to a tenant's plugins: drop this process's cached settings and
    bump the version so other processes' fresh reads see it. The version is read before the
    settings, so a read racing a change is stored under the old version and read again."""
    if _runtime is not None:
        _runtime.enabled_cache.pop(enabled_cache_key(tenant), None)
    try:
        await get_redis().incr(_version_key(tenant.slug))
    except RedisError:  # other processes still drop their copy within ENABLED_TTL
        log.warning("plugins version not bumped", extra={"tenant": tenant.slug}, exc_info=True)


def tenant_view(tenant: TenantRef) -> TenantView:
    """What plugins are told about a tenant."""
    template = _runtime.tenant_url if _runtime is not None else ""
    return TenantView(
        slug=tenant.slug,
        name=getattr(tenant, "name", tenant.slug),
        url=template.replace("{slug}", tenant.slug),
        id=str(tenant.id),
    )


async def call_first(
    tenant: TenantRef,
    hook: str,
    *,
    fall_through: bool = True,
    enabled: Mapping[str, dict[str, Any]] | None = None,
    **kwargs: Any,
) -> PluginResult | None:
    """Ask this tenant's plugins, first answer wins (see `PluginManager.call_first`);
    `enabled`: the tenant's plugins as the caller just read them (`enabled_plugins`)."""
    return await get_runtime().manager.call_first(
        hook,
        enabled=enabled if enabled is not None else await enabled_plugins(tenant),
        fall_through=fall_through,
        tenant_key=tenant.slug,
        tenant=tenant_view(tenant),
        **kwargs,
    )


_installed: PluginManager | None = None


def _always_on_manager() -> PluginManager:
    """The process's plugins; with no runtime (a script, a test), the installed ones, loaded
    from their entry points once."""
    global _installed
    if _runtime is not None:
        return _runtime.manager
    if _installed is None:
        _installed = PluginManager()
    return _installed


async def call_always_on(tenant: TenantRef, hook: str, **kwargs: Any) -> PluginResult | None:
    """Ask only the always-on plugins (`PluginInfo.always_on`), first answer wins: what the
    product falls back on when the tenant's own plugins gave no answer it can use. Works in a
    process with no plugin runtime too."""
    manager = _always_on_manager()
    enabled: dict[str, dict[str, Any]] = {
        name: {} for name, info in manager.infos().items() if info.always_on
    }
    return await manager.call_first(
        hook, enabled=enabled, tenant_key=tenant.slug, tenant=tenant_view(tenant), **kwargs
    )


async def call_all(
    tenant: TenantRef, hook: str, *, runtime: PluginRuntime | None = None, **kwargs: Any
) -> list[PluginResult]:
    """Tell every plugin this tenant enabled (`runtime`: see `enabled_plugins`)."""
    runtime = runtime or get_runtime()
    return await runtime.manager.call_all(
        hook,
        enabled=await enabled_plugins(tenant, runtime=runtime),
        tenant_key=tenant.slug,
        tenant=tenant_view(tenant),
        **kwargs,
    )


async def rotate_secrets(tenant: TenantRef) -> int:
    """Re-seal every plugin secret of this tenant with the current key; returns how many."""
    box = get_runtime().box
    rotated = 0
    async with tenant_transaction(tenant):
        for name, (_enabled, sealed) in (await _stored()).items():
            fresh = {k: box.rotate(v) for k, v in sealed.items()}
            changed = sum(1 for k in sealed if fresh[k] != sealed[k])
            if changed:
                await engine.execute(
                    "UPDATE plugin_configs SET config = $2::jsonb WHERE plugin = $1",
                    name,
                    json.dumps(fresh),
                )
                rotated += changed
    return rotated
