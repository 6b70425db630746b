"""A real broker and worker, the installed plugins, and providers' fakes for notification tests."""

from __future__ import annotations

import asyncio
from typing import Any

import dramatiq

from patone.core.common.permissions import SYSTEM
from patone.core.domain import customers, drivers, service_requests
from patone.core.runtime.clock import use_clock
from patone.core.runtime.db import engine
from patone.core.runtime.redis import get_redis
from patone.core.tables.fleet import DriverRow
from patone.core.tables.requests import RequestRow
from patone.core.work.relay import relay_tenant
from patone.plugins import config as plugins
from patone.tenants.isolation import tenant_transaction
from patone.tenants.registry import TenantInfo
from tests.conftest import actor_for
from tests.fakes import TWILIO_SID, TWILIO_TOKEN, FaultPlan, SmtpFake, TwilioFake
from tests.support import enable_email

ADMIN = actor_for("admin")
UNFINISHED = ("queued", "sending", "retrying")


async def enable_providers(
    tenant: TenantInfo, twilio: TwilioFake, smtp: SmtpFake, timeout: float = 1.0
) -> None:
    await plugins.configure_plugin(
        tenant,
        ADMIN,
        "sms-twilio",
        enabled=True,
        config={
            "account_sid": TWILIO_SID,
            "auth_token": TWILIO_TOKEN,
            "from_number": "+15005550006",
            "api_base_url": twilio.url,
            "timeout": timeout,
        },
    )
    await enable_email(tenant, smtp, ADMIN, timeout=timeout)


async def new_request(tenant: TenantInfo, *, phone: str = "+14155552671") -> RequestRow:
    from datetime import UTC, datetime

    customer = await customers.create_customer(
        tenant, SYSTEM, {"name": "Ann Lee", "phone": phone, "email": "ann@example.com"}
    )
    with use_clock(lambda: datetime(2026, 11, 24, 10, tzinfo=UTC)):
        return await service_requests.create_request(
            tenant,
            SYSTEM,
            {
                "customer_id": customer.id,
                "service_type": "jump_start",
                "pickup": {"lat": 37.79, "lng": -122.4, "address": "1 Market St"},
            },
        )


def created_event(request: RequestRow, event_id: int) -> dict[str, Any]:
    """The outbox event of a request's creation, as the relay hands it to planning."""
    return {"id": event_id, "topic": "request.created", "entity": "service_request",
            "entity_id": str(request.id), "payload": {}}  # fmt: skip


async def new_driver(tenant: TenantInfo, name: str = "Dave Ortiz") -> DriverRow:
    driver = await drivers.create_driver(
        tenant, SYSTEM, {"name": name, "phone": "+14155550199", "truck": "Flatbed 7"}
    )
    return await drivers.update_driver(tenant, SYSTEM, driver.id, {"status": "available"})


async def relay(broker: dramatiq.Broker, *tenants: TenantInfo) -> None:
    for tenant in tenants:
        await relay_tenant(tenant, get_redis(), broker=broker)


async def log_of(tenant: TenantInfo) -> list[dict[str, Any]]:
    async with tenant_transaction(tenant):
        rows = await engine.fetch("SELECT * FROM notifications ORDER BY id")
    return [dict(r) for r in rows]


async def settled(tenant: TenantInfo, count: int | None = None, seconds: float = 60) -> list[Any]:
    """The delivery log once every row is finished (and there are `count` rows)."""
    rows: list[dict[str, Any]] = []
    for _ in range(int(seconds * 10)):
        rows = await log_of(tenant)
        enough = count is None or len(rows) >= count
        if rows and enough and not any(r["status"] in UNFINISHED for r in rows):
            return rows
        await asyncio.sleep(0.1)
    raise AssertionError(f"notifications did not settle: {[(r['id'], r['status']) for r in rows]}")


__all__ = ["FaultPlan"]
