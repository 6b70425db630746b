"""Trying a plugin out: one real call with the company's saved settings, before or after enabling.

What is tried depends on what the plugin does: a provider of email or SMS sends a test message to
the address given; maps work out one route; storage writes, reads back and deletes a small file.
Only that plugin is called (no fallback answers for it), and the answer says what the provider
said, or why it failed, in words an admin can act on.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from patone.core.common.inputs import normalize_email, normalize_phone
from patone.core.common.permissions import Actor, require
from patone.core.runtime.errors import UserError
from patone.plugins import config as plugins
from patone.plugins.types import EmailMessage, GeoPoint, PluginResult, SmsMessage
from patone.tenants.isolation import TenantRef

# Two points 5 km apart in San Francisco (a route every maps provider can answer).
_FROM = GeoPoint(lat=37.7793, lng=-122.4193, address="San Francisco City Hall")
_TO = GeoPoint(lat=37.8080, lng=-122.4177, address="Fisherman's Wharf")


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    message: str
    detail: dict[str, Any] = field(default_factory=dict)


def _failed(result: PluginResult | None, what: str) -> CheckResult | None:
    if result is None:
        return CheckResult(False, f"the plugin gave no answer to {what}")
    if result.error is not None or result.skipped:
        return CheckResult(False, f"{what} failed: {result.error}")
    return None


async def check_plugin(
    tenant: TenantRef, actor: Actor, name: str, *, to: str | None = None
) -> CheckResult:
    """Try the plugin once with this company's saved settings (see the module docs)."""
    require(actor, "settings.manage")
    runtime = plugins.get_runtime()
    info = runtime.manager.infos().get(name)
    if info is None:
        raise UserError("not_found", f"no plugin called {name!r} is installed", "name")
    config = await plugins.saved_config(tenant, name)
    if info.settings is not None:
        try:
            info.settings.model_validate(config)
        except ValidationError as error:
            missing = ", ".join(".".join(map(str, e["loc"])) for e in error.errors())
            return CheckResult(False, f"the settings are incomplete: {missing}")
    hooks = {
        hook
        for hook in ("send_email", "send_sms", "route", "store_file")
        if name in runtime.manager.implementers(hook)
    }
    manager, only = runtime.manager, {name: config}
    view = plugins.tenant_view(tenant)

    async def call(hook: str, **kwargs: Any) -> PluginResult | None:
        return await manager.call_first(
            hook, enabled=only, tenant_key=tenant.slug, fall_through=False, tenant=view, **kwargs
        )

    stamp = datetime.now(UTC).strftime("%H:%M:%S UTC")
    if "send_email" in hooks or "send_sms" in hooks:
        email = "send_email" in hooks
        if not to:
            raise UserError("required", "give an address to send the test to", "to")
        try:
            address = normalize_email(to) if email else normalize_phone(to)
        except ValueError as error:
            raise UserError("invalid", str(error), "to") from None
        message: EmailMessage | SmsMessage = (
            EmailMessage(
                to=address,
                subject=f"Test from {view.name}",
                text=f"This is a test of the {info.title} plugin, sent at {stamp}.",
            )
            if email
            else SmsMessage(to=address, body=f"{view.name}: test of {info.title} at {stamp}.")
        )
        result = await call("send_email" if email else "send_sms", message=message)
        failure = _failed(result, "sending")
        if failure is not None:
            return failure
        assert result is not None
        return CheckResult(
            True,
            f"sent to {address}: the provider says {result.value.status!r}",
            {"provider_id": result.value.provider_id, "status": result.value.status},
        )
    if "route" in hooks:
        result = await call("route", origin=_FROM, destination=_TO, depart_at=None)
        failure = _failed(result, "a route")
        if failure is not None:
            return failure
        assert result is not None
        estimate = result.value
        return CheckResult(
            True,
            f"{_FROM.address} → {_TO.address}: {estimate.distance_m / 1000:.1f} km, "
            f"{round(estimate.duration_s / 60)} min",
            {"distance_m": estimate.distance_m, "duration_s": estimate.duration_s},
        )
    if "store_file" in hooks:
        key = f"patone-check/{uuid.uuid4().hex}.txt"
        body = f"Patone storage check {stamp}".encode()
        stored = await call("store_file", key=key, content=body, content_type="text/plain")
        failure = _failed(stored, "storing a file")
        if failure is not None:
            return failure
        read = await call("read_file", key=key)
        await manager.call_all(
            "delete_file", enabled=only, tenant_key=tenant.slug, tenant=view, key=key
        )
        if read is None or read.value != body:
            return CheckResult(False, "the file was stored but could not be read back")
        return CheckResult(True, "stored, read back and deleted a small file")
    return CheckResult(True, f"{info.title} has nothing to try out: it is installed")
