"""A night-time surcharge on quotes, and a GraphQL field to ask about it (an example plugin)."""

from __future__ import annotations

import dataclasses
import logging
from datetime import time
from typing import Any
from zoneinfo import ZoneInfo

import strawberry
from pydantic import BaseModel, Field
from strawberry.types import Info

from patone.plugins.hookspecs import hookimpl
from patone.plugins.types import PluginInfo, Quote

NAME = "night-surcharge"


class Settings(BaseModel):
    percent: int = Field(25, ge=1, le=200)
    starts: time = time(20, 0)
    ends: time = time(6, 0)


def is_night(local: time, settings: Settings) -> bool:
    if settings.starts > settings.ends:  # spans midnight
        return local >= settings.starts or local < settings.ends
    return settings.starts <= local < settings.ends


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(
        name=NAME,
        title="Night surcharge",
        description="Adds a percentage to quotes at night.",
        settings=Settings,
    )


@hookimpl
def adjust_quote(config: dict[str, Any], quote: Quote) -> Quote | None:
    settings = Settings.model_validate(config)
    local = quote.at.astimezone(ZoneInfo(quote.time_zone)).time()
    if not is_night(local, settings):
        return None
    extra = quote.amount * settings.percent // 100
    return dataclasses.replace(
        quote, amount=quote.amount + extra, notes=(*quote.notes, f"night +{settings.percent}%")
    )


@strawberry.type
class NightSurcharge:
    active: bool
    percent: int
    starts: str
    ends: str


@strawberry.type
class NightSurchargeQuery:
    @strawberry.field(description="The night surcharge of this company (night-surcharge plugin).")
    async def night_surcharge(self, info: Info) -> NightSurcharge:
        from datetime import UTC, datetime

        from patone.core.domain.company import get_settings
        from patone.core.runtime.errors import UserError
        from patone.plugins import config as plugins

        tenant = info.context.tenant
        enabled = await plugins.enabled_plugins(tenant)
        if NAME not in enabled:
            raise UserError("plugin_disabled", "this company has not enabled night-surcharge")
        settings = Settings.model_validate(enabled[NAME])
        zone = ZoneInfo(str((await get_settings(tenant)).get("time_zone", "UTC")))
        now = datetime.now(UTC).astimezone(zone).time()
        return NightSurcharge(
            active=is_night(now, settings),
            percent=settings.percent,
            starts=settings.starts.isoformat(timespec="minutes"),
            ends=settings.ends.isoformat(timespec="minutes"),
        )


@hookimpl
def graphql_types() -> dict[str, list[type]]:
    return {"query": [NightSurchargeQuery]}


@hookimpl
def startup(app: Any) -> None:
    """Runs once as Patone starts: a real plugin would warm a client or check its settings."""
    logging.getLogger(__name__).warning("night-surcharge plugin started")
