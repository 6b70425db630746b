"""Company settings: profile, units, currency, time zone, business hours."""

from __future__ import annotations

import json
from datetime import datetime, time
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from patone.core.common.activity import record
from patone.core.common.inputs import Email, Input, Name, Phone, parse
from patone.core.common.permissions import Actor, require
from patone.core.runtime.db import engine
from patone.tenants.isolation import TenantRef, tenant_transaction

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class SettingsInput(Input):
    """The settings a manager may change; omitted ones stay as they are."""

    company_name: Name | None = None
    company_phone: Phone | None = None
    company_email: Email | None = None
    company_address: str | None = None
    units: Literal["km", "mi"] | None = None
    currency: str | None = None
    time_zone: str | None = None
    business_hours: dict[str, tuple[str, str] | None] | None = None
    # Days of drivers' GPS history kept (patone.core.dispatch.positions drops older days).
    positions_retention_days: int | None = Field(None, ge=1, le=3650)

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str | None) -> str | None:
        if value is not None and (len(value) != 3 or not value.isalpha()):
            raise ValueError("must be a three-letter ISO 4217 code such as USD")
        return value.upper() if value else value

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(
                    f"{value!r} is not an IANA time zone such as Europe/Berlin"
                ) from None
        return value

    @field_validator("business_hours")
    @classmethod
    def _hours(
        cls, value: dict[str, tuple[str, str] | None] | None
    ) -> dict[str, tuple[str, str] | None] | None:
        if value is None:
            return None
        unknown = set(value) - set(DAYS)
        if unknown:
            raise ValueError(f"unknown days {sorted(unknown)}; use {', '.join(DAYS)}")
        for day, span in value.items():
            if span is None:
                continue
            opens, closes = (time.fromisoformat(t) for t in span)
            if opens >= closes:
                raise ValueError(f"{day}: opening time must be before closing time")
        return value


_KEYS = {
    "company_name": "company.name",
    "company_phone": "company.phone",
    "company_email": "company.email",
    "company_address": "company.address",
}


async def get_settings(tenant: TenantRef) -> dict[str, Any]:
    """Every setting of the company, as plain values."""
    async with tenant_transaction(tenant):
        rows = await engine.fetch("SELECT key, value FROM settings")
    return {row["key"]: json.loads(row["value"]) for row in rows}


async def update_settings(tenant: TenantRef, actor: Actor, data: Any) -> dict[str, Any]:
    """Change some settings; returns all of them."""
    require(actor, "settings.manage")
    changes = parse(SettingsInput, data).model_dump(exclude_none=True)
    async with tenant_transaction(tenant):
        before = await get_settings(tenant)
        for field, value in changes.items():
            key = _KEYS.get(field, field)
            await engine.execute(
                "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2::jsonb, now()) "
                "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()",
                key,
                json.dumps(value),
            )
        after = await get_settings(tenant)
        await record(actor, "settings", "company", "settings.updated", before, after)
    return after


def is_after_hours(at: datetime, settings: dict[str, Any]) -> bool:
    """Whether `at` falls outside the business hours, in the company's time zone."""
    local = at.astimezone(ZoneInfo(settings.get("time_zone", "UTC")))
    span = (settings.get("business_hours") or {}).get(DAYS[local.weekday()])
    if not span:
        return True
    opens, closes = (time.fromisoformat(t) for t in span)
    return not opens <= local.time().replace(tzinfo=None) < closes
