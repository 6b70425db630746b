"""Service requests through their whole life, with conflicts, idempotency and two tenants."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from patone.core.common.permissions import SYSTEM, PermissionDenied
from patone.core.domain import customers, drivers, service_requests
from patone.core.domain.lifecycle import TRANSITIONS, IllegalTransition
from patone.core.domain.service_requests import PastEvent, PastRequest, RequestFilter
from patone.core.domain.service_types import list_service_types
from patone.core.runtime.clock import use_clock
from patone.core.runtime.db import engine
from patone.core.runtime.errors import Conflict, NotFound, UserError, ValidationFailed
from patone.core.tables.customers import CustomerRow
from patone.core.tables.fleet import DriverRow
from patone.core.tables.requests import RequestRow, RequestStatus
from patone.plugins import config as plugins
from patone.plugins.hookspecs import hookimpl
from patone.plugins.manager import PluginManager
from patone.plugins.secrets import SecretBox
from patone.plugins.types import PluginInfo, Quote
from patone.tenants.isolation import tenant_transaction
from patone.tenants.registry import TenantInfo
from tests.conftest import actor_for

DISPATCHER = actor_for("dispatcher")
# Tuesday 10:00 in UTC: inside the default business hours (tenants default to UTC).
WEEKDAY_MORNING = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


async def _customer(tenant: TenantInfo) -> CustomerRow:
    return await customers.create_customer(
        tenant,
        DISPATCHER,
        {
            "name": "Dana Driver",
            "phone": "+1 415 555 2671",
            "vehicles": [{"make": "Volvo", "model": "V70", "plate": "ab 123 cd"}],
        },
    )


async def _driver(tenant: TenantInfo, status: str = "available") -> DriverRow:
    driver = await drivers.create_driver(tenant, SYSTEM, {"name": "Tom Tow", "skills": ["tow"]})
    return await drivers.update_driver(tenant, SYSTEM, driver.id, {"status": status})


async def _request(tenant: TenantInfo, **overrides: Any) -> RequestRow:
    customer = await _customer(tenant)
    vehicles = await customers.list_vehicles(tenant, DISPATCHER, customer.id)
    data = {
        "customer_id": customer.id,
        "vehicle_id": vehicles[0].id,
        "service_type": "jump_start",
        "pickup": {"lat": 52.52, "lng": 13.405, "address": "Alexanderplatz 1"},
        **overrides,
    }
    with use_clock(lambda: WEEKDAY_MORNING):
        return await service_requests.create_request(tenant, DISPATCHER, data)


async def _counts(tenant: TenantInfo) -> dict[str, int]:
    async with tenant_transaction(tenant):
        rows = await engine.fetch(
            "SELECT (SELECT count(*) FROM service_requests) AS requests, "
            "(SELECT count(*) FROM request_events) AS events, "
            "(SELECT count(*) FROM activity_log) AS activity, "
            "(SELECT count(*) FROM outbox) AS outbox"
        )
    return dict(rows[0])


async def test_create_quotes_the_price_and_records_event_log_and_outbox(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    created = await _request(acme)
    assert created.status == "pending" and created.version == 1
    assert created.quoted_price == 5500  # jump start, business hours
    assert created.number >= 1001 and created.currency == "USD"
    events = await service_requests.request_events(acme, DISPATCHER, created.id)
    assert [(e.from_status, e.to_status) for e in events] == [(None, "pending")]
    async with tenant_transaction(acme):
        topics = [r["topic"] for r in await engine.fetch("SELECT topic FROM outbox ORDER BY id")]
        actions = [r["action"] for r in await engine.fetch("SELECT action FROM activity_log")]
    assert topics[-1] == "request.created" and "request.created" in actions
    assert (await _counts(bolt))["requests"] == 0


async def test_towing_needs_a_destination_and_charges_distance_and_after_hours(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, _ = two_tenants
    with pytest.raises(UserError) as missing:
        await _request(acme, service_type="towing")
    assert missing.value.field == "destination"
    tow = await _request(
        acme,
        service_type="towing",
        destination={"lat": 52.52, "lng": 13.405 + 0.1472, "address": "Garage"},  # ~10 km east
    )
    assert 9500 + 39 * 100 <= tow.quoted_price <= 9500 + 41 * 100
    customer = await _customer(acme)
    with use_clock(lambda: WEEKDAY_MORNING.replace(hour=22)):
        night = await service_requests.create_request(
            acme,
            DISPATCHER,
            {
                "customer_id": customer.id,
                "service_type": "lockout",
                "pickup": {"lat": 1, "lng": 1},
            },
        )
    assert night.quoted_price == 6000 + 2000


async def test_the_whole_life_of_a_request(two_tenants: tuple[TenantInfo, TenantInfo]) -> None:
    acme, _ = two_tenants
    request = await _request(acme)
    driver = await _driver(acme)
    assigned = await service_requests.assign_driver(acme, DISPATCHER, request.id, driver.id)
    assert assigned.status == "assigned" and assigned.driver == driver.id
    assert (await drivers.get_driver(acme, DISPATCHER, driver.id)).status == "busy"
    me = actor_for("driver", user_id=9, driver_id=driver.id)
    for status in ("en_route", "on_scene", "in_progress", "completed"):
        request = await service_requests.transition(
            acme, me, request.id, status, lat=52.5, lng=13.4
        )
    assert request.status == "completed" and request.completed_at is not None
    assert request.version == 6
    assert (await drivers.get_driver(acme, DISPATCHER, driver.id)).status == "available"
    events = await service_requests.request_events(acme, DISPATCHER, request.id)
    assert [e.to_status for e in events] == [
        "pending", "assigned", "en_route", "on_scene", "in_progress", "completed",
    ]  # fmt: skip
    assert events[-1].actor_id == "9" and events[-1].lat == 52.5


@pytest.mark.parametrize("current", list(RequestStatus))
@pytest.mark.parametrize("wanted", list(RequestStatus))
async def test_every_transition_is_allowed_or_refused_as_the_state_machine_says(
    two_tenants: tuple[TenantInfo, TenantInfo], current: RequestStatus, wanted: RequestStatus
) -> None:
    acme, _ = two_tenants
    request = await _request(acme)
    async with tenant_transaction(acme):
        await engine.execute(
            "UPDATE service_requests SET status = $2 WHERE id = $1", request.id, current.value
        )
    reason = {"cancelled": "customer_cancelled", "pending": "driver_withdrew"}.get(wanted, "")
    if wanted == RequestStatus.assigned:
        driver = await _driver(acme)

        async def attempt() -> RequestRow:
            return await service_requests.assign_driver(acme, DISPATCHER, request.id, driver.id)
    else:

        async def attempt() -> RequestRow:
            return await service_requests.transition(
                acme, DISPATCHER, request.id, wanted.value, reason_code=reason
            )

    before = await _counts(acme)
    if wanted in TRANSITIONS[current]:
        moved = await attempt()
        assert moved.status == wanted
    else:
        with pytest.raises(IllegalTransition) as refused:
            await attempt()
        assert current.value in refused.value.message and wanted.value in refused.value.message
        assert await _counts(acme) == before


async def test_cancel_needs_a_reason_code(two_tenants: tuple[TenantInfo, TenantInfo]) -> None:
    acme, _ = two_tenants
    request = await _request(acme)
    with pytest.raises(UserError) as caught:
        await service_requests.transition(acme, DISPATCHER, request.id, "cancelled")
    assert (caught.value.code, caught.value.field) == ("required", "reason_code")
    cancelled = await service_requests.transition(
        acme, DISPATCHER, request.id, "cancelled", reason_code="duplicate", note="called twice"
    )
    assert cancelled.cancel_reason == "duplicate" and cancelled.cancelled_at is not None


async def test_two_dispatchers_at_once_one_wins_one_gets_a_conflict(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, _ = two_tenants
    request = await _request(acme)
    first, second = await _driver(acme), await _driver(acme)
    results = await asyncio.gather(
        service_requests.assign_driver(acme, DISPATCHER, request.id, first.id),
        service_requests.assign_driver(acme, DISPATCHER, request.id, second.id),
        return_exceptions=True,
    )
    winners = [r for r in results if isinstance(r, RequestRow)]
    losers = [r for r in results if isinstance(r, Exception)]
    assert len(winners) == 1 and len(losers) == 1
    assert isinstance(losers[0], Conflict | IllegalTransition)
    stale = await service_requests.update_request(
        acme, DISPATCHER, request.id, {"notes": "x"}, expected_version=winners[0].version
    )
    with pytest.raises(Conflict) as caught:
        await service_requests.update_request(
            acme, DISPATCHER, request.id, {"notes": "y"}, expected_version=1
        )
    assert caught.value.field == "expected_version"
    assert stale.notes == "x"


async def test_idempotent_create_returns_the_first_request(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    customer = await _customer(acme)
    data = {
        "customer_id": customer.id,
        "service_type": "lockout",
        "pickup": {"lat": 1, "lng": 2},
    }
    first, again = await asyncio.gather(
        service_requests.create_request(acme, DISPATCHER, data, idempotency_key="club-77"),
        service_requests.create_request(acme, DISPATCHER, data, idempotency_key="club-77"),
    )
    third = await service_requests.create_request(acme, DISPATCHER, data, idempotency_key="club-77")
    assert first.id == again.id == third.id
    assert (await _counts(acme))["requests"] == 1
    # The same key in another company is another request.
    bolt_customer = await _customer(bolt)
    other = await service_requests.create_request(
        bolt, DISPATCHER, {**data, "customer_id": bolt_customer.id}, idempotency_key="club-77"
    )
    assert (await _counts(bolt))["requests"] == 1 and other.customer == bolt_customer.id


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"customer_id": None}, "customer_id"),
        ({"customer_id": "abc"}, "customer_id"),
        ({"customer_id": 999999}, "customer_id"),
        ({"vehicle_id": 999999}, "vehicle_id"),
        ({"service_type": "teleport"}, "service_type"),
        ({"pickup": {"lat": 91, "lng": 0}}, "pickup.lat"),
        ({"pickup": {"lat": 0, "lng": -181}}, "pickup.lng"),
        ({"quoted_price": -5}, "quoted_price"),
        ({"priority": "urgent"}, "priority"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_bad_input_is_a_field_error_and_changes_nothing(
    two_tenants: tuple[TenantInfo, TenantInfo], change: dict[str, Any], field: str
) -> None:
    acme, bolt = two_tenants
    customer = await _customer(acme)
    data = {
        "customer_id": customer.id,
        "service_type": "lockout",
        "pickup": {"lat": 1, "lng": 2},
    }
    before = await _counts(acme)
    with pytest.raises(UserError) as caught:
        await service_requests.create_request(acme, DISPATCHER, {**data, **change})
    fields = (
        [e.field for e in caught.value.errors]
        if isinstance(caught.value, ValidationFailed)
        else [caught.value.field]
    )
    assert field in fields
    assert await _counts(acme) == before
    assert (await _counts(bolt))["requests"] == 0


async def test_an_id_from_another_tenant_is_not_found(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    request = await _request(acme)
    with pytest.raises(NotFound):
        await service_requests.get_request(bolt, DISPATCHER, request.id)
    with pytest.raises(NotFound):
        await service_requests.transition(
            bolt, DISPATCHER, request.id, "cancelled", reason_code="other"
        )


async def test_a_driver_user_with_no_driver_profile_sees_no_unassigned_job(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    waiting = await _request(acme)
    await _request(bolt)
    newcomer = actor_for("driver", user_id=7, driver_id=None)
    with pytest.raises(NotFound):
        await service_requests.get_request(acme, newcomer, waiting.id)
    assert (await service_requests.list_requests(acme, newcomer)).rows == []


async def test_drivers_see_and_move_only_their_own_jobs(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, _ = two_tenants
    mine, theirs = await _request(acme), await _request(acme)
    me, other = await _driver(acme), await _driver(acme)
    await service_requests.assign_driver(acme, DISPATCHER, mine.id, me.id)
    await service_requests.assign_driver(acme, DISPATCHER, theirs.id, other.id)
    driver = actor_for("driver", user_id=5, driver_id=me.id)
    page = await service_requests.list_requests(acme, driver)
    assert [r.id for r in page.rows] == [mine.id]
    with pytest.raises(NotFound):
        await service_requests.get_request(acme, driver, theirs.id)
    with pytest.raises(NotFound):
        await service_requests.transition(acme, driver, theirs.id, "en_route")
    with pytest.raises(PermissionDenied):
        await service_requests.transition(
            acme, driver, mine.id, "cancelled", reason_code="customer_cancelled"
        )
    with pytest.raises(PermissionDenied):
        await service_requests.assign_driver(acme, driver, mine.id, me.id)
    withdrawn = await service_requests.transition(
        acme, driver, mine.id, "pending", reason_code="driver_withdrew"
    )
    assert withdrawn.driver is None and withdrawn.status == "pending"


async def test_pages_filters_and_orders(two_tenants: tuple[TenantInfo, TenantInfo]) -> None:
    acme, bolt = two_tenants
    made = []
    for i, priority in enumerate(["low", "emergency", "normal", "high", "normal"]):
        customer = await _customer(acme)
        with use_clock(lambda i=i: WEEKDAY_MORNING + timedelta(minutes=i)):
            made.append(
                await service_requests.create_request(
                    acme,
                    DISPATCHER,
                    {
                        "customer_id": customer.id,
                        "service_type": "flat_tyre",
                        "priority": priority,
                        "pickup": {"lat": 1, "lng": 1, "address": f"Street {i}"},
                    },
                )
            )
    await _request(bolt)
    seen: list[int] = []
    after = None
    while True:
        page = await service_requests.list_requests(acme, DISPATCHER, first=2, after=after)
        seen.extend(r.id for r in page.rows)
        if not page.has_next:
            break
        after = page.end_cursor
    assert seen == [r.id for r in reversed(made)]
    board = await service_requests.list_requests(
        acme, DISPATCHER, order="priority", filter=RequestFilter(open_only=True)
    )
    assert [r.priority for r in board.rows] == ["emergency", "high", "normal", "normal", "low"]
    only = await service_requests.list_requests(
        acme, DISPATCHER, filter=RequestFilter(priorities=("normal",), text="Street 4")
    )
    assert [r.id for r in only.rows] == [made[4].id]
    by_number = await service_requests.list_requests(
        acme, DISPATCHER, filter=RequestFilter(text=str(made[0].number))
    )
    assert [r.id for r in by_number.rows] == [made[0].id]
    with pytest.raises(UserError):
        await service_requests.list_requests(acme, DISPATCHER, after="garbage")
    with pytest.raises(UserError):
        await service_requests.list_requests(acme, DISPATCHER, first=500)


class _SlowSurcharge:
    """An adjust_quote plugin that notes whether a transaction was open while it ran."""

    def __init__(self) -> None:
        self.in_transaction: list[bool] = []

    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return PluginInfo(name="slow-surcharge", title="Slow surcharge", default_enabled=True)

    @hookimpl
    async def adjust_quote(self, quote: Quote) -> Quote:
        self.in_transaction.append(engine.current_transaction.get() is not None)
        await asyncio.sleep(0.05)
        return dataclasses.replace(quote, amount=quote.amount + 700)


async def test_quote_plugins_run_before_the_transaction_opens(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, _ = two_tenants
    plugin = _SlowSurcharge()
    manager = PluginManager(load_entry_points=False, timeout=2)
    manager.register(plugin)
    plugins.set_runtime(plugins.PluginRuntime(manager=manager, box=SecretBox("k")))
    try:
        created = await _request(acme)
    finally:
        plugins.set_runtime(None)
        manager.close()
    assert created.quoted_price == 5500 + 700
    assert plugin.in_transaction == [False]


def _life(at: datetime, *steps: tuple[str, str]) -> tuple[PastEvent, ...]:
    """Creation at `at`, then each (status, reason) a minute after the last."""
    events = [PastEvent(None, "pending", "user", "1", at)]
    for n, (status, reason) in enumerate(steps, start=1):
        events.append(
            PastEvent(events[-1].to_status, status, "user", "1", at + timedelta(minutes=n), reason)
        )
    return tuple(events)


async def test_history_is_written_as_the_life_cycle_would_have_left_it(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    customer = await _customer(acme)
    driver = await _driver(acme)
    at = datetime(2026, 11, 2, 9, tzinfo=UTC)
    async with tenant_transaction(acme):
        [jump_start] = [t.id for t in await list_service_types(acme) if t.code == "jump_start"]

    def past(events: tuple[PastEvent, ...], driver_id: int | None) -> PastRequest:
        return PastRequest(
            customer.id, None, jump_start, "normal", "admin", 52.5, 13.4, "Alexanderplatz 1",
            None, None, "", "", 5500, "USD", "user:1", driver_id, events,
        )  # fmt: skip

    done = past(
        _life(at, ("assigned", ""), ("pending", "driver_withdrew"), ("assigned", ""),
              ("en_route", ""), ("on_scene", ""), ("in_progress", ""), ("completed", "")),
        driver.id,
    )  # fmt: skip
    waiting = past(_life(at, ("assigned", ""), ("pending", "pre_empted")), driver.id)
    async with tenant_transaction(acme):
        ids = await service_requests.insert_history([done, waiting])
    first, second = [await service_requests.get_request(acme, DISPATCHER, i) for i in ids]
    assert (first.status, first.version, first.driver) == ("completed", 8, driver.id)
    assert first.assigned_at == at + timedelta(minutes=3)  # the second assignment
    assert first.requeued_at == at + timedelta(minutes=2)
    assert first.completed_at == first.updated_at == at + timedelta(minutes=7)
    assert (second.status, second.driver, second.assigned_at) == ("pending", None, None)
    assert second.number == first.number + 1
    events = await service_requests.request_events(acme, DISPATCHER, first.id)
    assert [(e.to_status, e.reason_code) for e in events][1:3] == [
        ("assigned", ""),
        ("pending", "driver_withdrew"),
    ]
    assert (await _counts(bolt))["requests"] == 0
    # A life the state machine forbids is refused, and nothing is written.
    with pytest.raises(IllegalTransition):
        async with tenant_transaction(acme):
            await service_requests.insert_history([past(_life(at, ("completed", "")), None)])
    assert (await _counts(acme))["requests"] == 2
