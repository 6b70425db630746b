"""A company's dispatch settings: how far to look, how to weigh candidates, how long offers last.

Stored as one JSON object under the `dispatch` key of the settings table; what a company never
set comes from the defaults below, so a new setting reaches every company at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import Field

from patone.core.common.activity import record
from patone.core.common.inputs import Input, parse
from patone.core.common.permissions import Actor, require
from patone.core.runtime.db import engine
from patone.core.runtime.errors import UserError
from patone.tenants.isolation import TenantRef, tenant_transaction

KEY = "dispatch"


class Weights(Input):
    """How a candidate's cost is made, in minutes-equivalent (lower cost wins).

    A minute of travel to the scene costs `eta` (1 by definition), a minute until a busy driver
    is free `wait`; each star below five costs `rating` minutes. Load is counted in jobs above
    the least loaded candidate, each against their fair share for their hours on shift: each
    such job costs `load` minutes, and each beyond the first `overload` more, both up to three
    times as much near the end of the driver's shift (`candidates.Fleet.urgency`). With these
    defaults, early in a shift a driver 8 minutes further away but one job lighter ties, and one
    two jobs lighter wins unless 46 minutes further. The defaults are what the simulator
    favoured (docs/dispatch.md, "Settings")."""

    eta: float = Field(default=1.0, ge=0, le=10)
    wait: float = Field(default=1.0, ge=0, le=10)  # a minute until a busy driver is free
    load: float = Field(default=8.0, ge=0, le=60)
    overload: float = Field(default=30.0, ge=0, le=240)  # per job beyond the first
    rating: float = Field(default=2.0, ge=0, le=60)
    # each offer of this request the driver let lapse unanswered (see `lapsed_reoffers`)
    lapse: float = Field(default=2.0, ge=0, le=60)


class DispatchSettings(Input):
    """Every dispatch setting with its default."""

    auto_dispatch: bool = True
    strategy: Literal["scored", "nearest"] = "scored"
    radius_km: float = Field(default=50.0, gt=0, le=500)
    offer_seconds: int = Field(default=30, ge=5, le=900)
    emergency_offer_seconds: int = Field(default=10, ge=5, le=300)
    max_offers: int = Field(default=5, ge=1, le=50)  # then the request is flagged to dispatchers
    # A driver who let an offer lapse (no answer is not a refusal: they may have been driving)
    # may be offered the same request again this many times, at `weights.lapse` minutes per
    # lapse: the nearest truck asked again rather than one twenty minutes away. A decline is
    # final.
    lapsed_reoffers: int = Field(default=2, ge=0, le=5)
    preempt: bool = True  # emergencies may take a driver from an unstarted non-urgent job
    # An emergency goes to the fastest truck; trucks within this many minutes of it are as fast
    # at a travel estimate's precision (its error is minutes either way), and the least loaded
    # of them goes (0: always the fastest), so the last emergencies of a day do not pile a job
    # on a driver already ahead of the rest.
    emergency_tie_minutes: float = Field(default=2.0, ge=0, le=15)
    # A driver expected to finish their job within this many minutes may get the next one,
    # queued behind it (0, the default: only free drivers get offers; queueing saved little
    # travel and made the customer's ETA worse, docs/dispatch.md).
    queue_within_minutes: int = Field(default=0, ge=0, le=120)
    staging: bool = True  # suggest waiting places to idle drivers (`staging.py`)
    weights: Weights = Weights()
    # The fleet re-plan (`replan.py`): every this many minutes (0: never), and an accepted job
    # another driver could reach this many minutes sooner is suggested to dispatchers.
    replan_minutes: int = Field(default=5, ge=0, le=240)
    replan_sooner_minutes: int = Field(default=10, ge=1, le=240)


class DispatchSettingsInput(Input):
    """The dispatch settings a manager changes; omitted ones stay as they are."""

    auto_dispatch: bool | None = None
    strategy: Literal["scored", "nearest"] | None = None
    radius_km: float | None = Field(default=None, gt=0, le=500)
    offer_seconds: int | None = Field(default=None, ge=5, le=900)
    emergency_offer_seconds: int | None = Field(default=None, ge=5, le=300)
    max_offers: int | None = Field(default=None, ge=1, le=50)
    lapsed_reoffers: int | None = Field(default=None, ge=0, le=5)
    preempt: bool | None = None
    emergency_tie_minutes: float | None = Field(default=None, ge=0, le=15)
    queue_within_minutes: int | None = Field(default=None, ge=0, le=120)
    staging: bool | None = None
    weights: Weights | None = None
    replan_minutes: int | None = Field(default=None, ge=0, le=240)
    replan_sooner_minutes: int | None = Field(default=None, ge=1, le=240)


async def _stored() -> dict[str, Any]:
    rows = await engine.fetch("SELECT value FROM settings WHERE key = $1", KEY)
    return dict(json.loads(rows[0]["value"])) if rows else {}


# What the engine needs of the settings table: its own key and the company's time zone.
STORED = "SELECT key, value FROM settings WHERE key IN ('dispatch', 'time_zone')"


def parse_stored(rows: Iterable[Any]) -> tuple[DispatchSettings, str]:
    """The dispatch settings (defaults filled in) and the time zone, from `STORED`'s rows."""
    values = {row["key"]: json.loads(row["value"]) for row in rows}
    return (
        DispatchSettings.model_validate(values.get(KEY) or {}),
        str(values.get("time_zone", "UTC")),
    )


async def read_settings(tenant: TenantRef) -> tuple[DispatchSettings, str]:
    """The company's dispatch settings and time zone, in one query."""
    async with tenant_transaction(tenant):
        return parse_stored(await engine.fetch(STORED))


async def dispatch_settings(tenant: TenantRef) -> DispatchSettings:
    """The company's dispatch settings, defaults filled in."""
    return (await read_settings(tenant))[0]


async def update_dispatch_settings(tenant: TenantRef, actor: Actor, data: Any) -> DispatchSettings:
    """Change some dispatch settings (field by field validation; nothing changes on an error)."""
    require(actor, "settings.manage")
    changes = parse(DispatchSettingsInput, data).model_dump(exclude_none=True)
    async with tenant_transaction(tenant):
        before = await _stored()
        merged = DispatchSettings.model_validate({**before, **changes})
        if merged.emergency_offer_seconds > merged.offer_seconds:
            raise UserError(
                "out_of_range",
                "an emergency offer cannot last longer than a normal one "
                f"({merged.offer_seconds} s)",
                "emergency_offer_seconds",
            )
        after = merged.model_dump()
        await engine.execute(
            "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2::jsonb, now()) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()",
            KEY,
            json.dumps(after),
        )
        await record(actor, "settings", KEY, "settings.updated", before, after)
    return merged
