"""Where a plugin's settings point: the network targets they name, and which secrets
authenticate to them.

A plugin declares both in its typed settings model (`NetworkTarget`, `SecretFor` from
`patone.plugins.types`). A model that declares no target keeps the older rule: every text setting
whose name ends in `url` is a URL target, and every secret authenticates to all of them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from patone.core.runtime.errors import UserError
from patone.plugins import ssrf
from patone.plugins.types import NetworkTarget, PluginInfo, SecretFor


def targets(model: type[BaseModel]) -> dict[str, NetworkTarget]:
    """The settings of `model` that name a network target, by setting."""
    declared = {
        name: marker
        for name, field in model.model_fields.items()
        for marker in field.metadata
        if isinstance(marker, NetworkTarget)
    }
    if declared:
        return declared
    return {name: NetworkTarget("url") for name in model.model_fields if name.endswith("url")}


def _port(target: NetworkTarget, settings: dict[str, Any]) -> int:
    value = settings.get(target.port) if target.port else None
    return int(value) if isinstance(value, int | str) and str(value).isdigit() else 0


def check_targets(model: type[BaseModel], settings: dict[str, Any], *, allow_private: bool) -> None:
    """Every target the (validated) settings name passes the SSRF guard (blocking: DNS); a
    refusal is a UserError on `config.<setting>`."""
    for name, target in targets(model).items():
        value = settings.get(name)
        if not isinstance(value, str) or not value:
            continue  # not set: the plugin's own default (its provider) applies
        field = f"config.{name}"
        if target.kind == "host":
            ssrf.check_host(
                value, _port(target, settings), field=field, allow_private=allow_private
            )
        else:
            ssrf.check_url(value, field=field, allow_private=allow_private)


def _authenticates_to(model: type[BaseModel], secret: str) -> list[str]:
    """The settings whose change means `secret` must be entered again (a host's port too)."""
    every = targets(model)
    field = model.model_fields.get(secret)
    named = [m for m in field.metadata if isinstance(m, SecretFor)] if field else []
    chosen = [t for marker in named for t in marker.targets] if named else list(every)
    settings: list[str] = []
    for name in chosen:
        settings.append(name)
        port = every[name].port if name in every else ""
        if port:
            settings.append(port)
    return settings


def _label(name: str) -> str:
    return name.replace("_", " ")


def kept_secrets(
    info: PluginInfo, before: dict[str, Any], after: dict[str, Any], entered: set[str]
) -> list[UserError]:
    """A field error for each stored secret that would be kept (sent back masked or left out)
    while a target it authenticates to changes: the secret could otherwise be sent to wherever
    the new target points. `entered`: the secrets given a value in this change."""
    model = info.settings
    if model is None:
        return []
    errors = []
    for secret in sorted(info.secret_fields - entered):
        if not before.get(secret):
            continue  # nothing stored: nothing to leak
        for name in _authenticates_to(model, secret):
            field = model.model_fields.get(name)
            default = field.get_default(call_default_factory=True) if field else None
            if before.get(name, default) != after.get(name, default):
                errors.append(
                    UserError(
                        "secret_required",
                        f"enter the {_label(secret)} again: the {_label(name)} changed",
                        f"config.{secret}",
                    )
                )
                break
    return errors
