"""Company settings and business hours."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from patone.core.domain.company import get_settings, is_after_hours, update_settings
from patone.core.runtime.errors import ValidationFailed
from patone.tenants.registry import TenantInfo
from tests.conftest import actor_for

ADMIN = actor_for("admin")


async def test_settings_change_per_tenant(two_tenants: tuple[TenantInfo, TenantInfo]) -> None:
    acme, bolt = two_tenants
    after = await update_settings(
        acme,
        ADMIN,
        {"units": "mi", "currency": "gbp", "time_zone": "Europe/London", "company_name": "Acme UK"},
    )
    assert (after["units"], after["currency"], after["time_zone"]) == ("mi", "GBP", "Europe/London")
    assert after["company.name"] == "Acme UK"
    assert (await get_settings(bolt))["currency"] == "USD"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"units": "furlongs"}, "units"),
        ({"currency": "DOLLARS"}, "currency"),
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"business_hours": {"funday": ["08:00", "10:00"]}}, "business_hours"),
        ({"business_hours": {"mon": ["18:00", "08:00"]}}, "business_hours"),
    ],
)
async def test_bad_settings_are_refused(
    two_tenants: tuple[TenantInfo, TenantInfo], data: dict[str, object], field: str
) -> None:
    acme, _ = two_tenants
    before = await get_settings(acme)
    with pytest.raises(ValidationFailed) as caught:
        await update_settings(acme, ADMIN, data)
    assert caught.value.field == field
    assert await get_settings(acme) == before


def test_after_hours_uses_the_local_time() -> None:
    settings = {"time_zone": "America/New_York", "business_hours": {"tue": ["08:00", "18:00"]}}
    assert not is_after_hours(datetime(2026, 11, 24, 15, 0, tzinfo=UTC), settings)  # 10:00 local
    assert is_after_hours(datetime(2026, 11, 24, 12, 0, tzinfo=UTC), settings)  # 07:00 local
    assert is_after_hours(datetime(2026, 11, 25, 15, 0, tzinfo=UTC), settings)  # Wednesday: closed
