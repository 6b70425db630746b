"""The dispatch engine against the real database: offers, cascades, pre-emption, races."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from patone.core.common.permissions import SYSTEM
from patone.core.dispatch import autodispatch, eta, fleet, offers, positions
from patone.core.dispatch.settings import read_settings, update_dispatch_settings
from patone.core.domain import drivers, service_requests
from patone.core.runtime.clock import now
from patone.core.runtime.db import engine
from patone.core.runtime.errors import Conflict, ValidationFailed
from patone.tenants.isolation import tenant_transaction
from patone.tenants.registry import TenantInfo
from tests.conftest import actor_for
from tests.core.dispatch.world import (
    DISPATCHER,
    MORNING,
    Clock,
    driver_actor,
    driver_at,
    east_of_scene,
    request_at_scene,
)

ADMIN = actor_for("admin")


async def _accepted_at(
    tenant: TenantInfo, other: TenantInfo, *, km: float
) -> tuple[dict[str, Any], dict[str, Any], offers.Response]:
    """A driver `km` from a new request (and one in the other company) who accepted it."""
    driver = await driver_at(tenant, km)
    await driver_at(other, km)
    request = await request_at_scene(tenant)
    await autodispatch.sweep(tenant)
    offer = (await offers.my_offers(tenant, driver_actor(driver)))[0]
    response = await offers.respond_to_offer(tenant, driver_actor(driver), offer.id, accept=True)
    return driver, request, response


async def _offer_rows(tenant: TenantInfo, request_id: int) -> list[tuple[int, str]]:
    async with tenant_transaction(tenant):
        rows = await engine.fetch(
            "SELECT driver_id, status FROM offers WHERE request_id = $1 ORDER BY id", request_id
        )
    return [(row["driver_id"], row["status"]) for row in rows]


async def test_a_waiting_request_is_offered_to_the_nearest_skilled_driver_with_reasons(
    two_tenants: tuple[TenantInfo, TenantInfo], clock: Clock
) -> None:
    acme, bolt = two_tenants
    untrained = await driver_at(acme, 1, skills=())
    near = await driver_at(acme, 3)
    await driver_at(acme, 6)
    on_break = await driver_at(acme, 0.5, status="on_break")
    await driver_at(bolt, 0.2, name="Bolt's Bob")  # another company's driver, next door
    request = await request_at_scene(acme, service_type="towing")

    decision = await autodispatch.dispatch_request(acme, request.id)

    assert decision.outcome == "offered" and decision.driver_id == near.id
    why = decision.explanation
    assert why is not None and why["chosen"] == near.id and "min to the scene" in why["why"]
    assert why["candidates"][0]["driver_id"] == near.id
    left_out = {e["driver_id"]: e["reason"] for e in why["excluded"]}
    assert left_out == {untrained.id: "lacks tow"}  # on break is not on shift at all
    seen = {c["name"] for c in why["candidates"]} | {e["name"] for e in why["excluded"]}
    assert "Bolt's Bob" not in seen and on_break.name not in seen
    stored = await offers.list_offers(acme, DISPATCHER, request.id)
    assert [(o.driver_id, o.status) for o in stored] == [(near.id, "open")]
    assert stored[0].deadline == clock.at + timedelta(seconds=30)
    assert stored[0].explanation["chosen"] == near.id
    assert await offers.list_offers(bolt, DISPATCHER, request.id) == []
    # A second run finds the request already offered and changes nothing.
    assert (await autodispatch.dispatch_request(acme, request.id)).outcome == "skipped"


async def test_declined_and_lapsed_offers_cascade_and_a_late_answer_is_refused(
    two_tenants: tuple[TenantInfo, TenantInfo], clock: Clock
) -> None:
    acme, bolt = two_tenants
    first, second, third = [await driver_at(acme, km) for km in (1, 2, 3)]
    other = await driver_at(bolt, 1)
    request = await request_at_scene(acme)
    bolt_request = await request_at_scene(bolt)
    await autodispatch.sweep(acme)
    await autodispatch.sweep(bolt)

    offer = (await offers.my_offers(acme, driver_actor(first)))[0]
    await offers.respond_to_offer(
        acme, driver_actor(first), offer.id, accept=False, reason="flat battery myself"
    )
    report = await autodispatch.sweep(acme)
    assert report.offered == 1
    assert await _offer_rows(acme, request.id) == [
        (first.id, "declined"),
        (second.id, "open"),
    ]
    clock.advance(31)  # the second driver does not answer in time
    late = (await offers.my_offers(acme, driver_actor(second)))[0]
    report = await autodispatch.sweep(acme)
    assert report.expired == 1 and report.offered == 1
    with pytest.raises(Conflict) as refused:
        await offers.respond_to_offer(acme, driver_actor(second), late.id, accept=True)
    assert refused.value.code == "offer_closed"
    assert await _offer_rows(acme, request.id) == [
        (first.id, "declined"),
        (second.id, "expired"),
        (third.id, "open"),
    ]
    # Bolt's own request went to bolt's driver and nothing of acme's reached it.
    assert await _offer_rows(bolt, bolt_request.id) == [(other.id, "open")]


async def test_a_driver_who_let_an_offer_lapse_is_asked_again_twice_when_much_nearer(
    two_tenants: tuple[TenantInfo, TenantInfo], clock: Clock
) -> None:
    acme, bolt = two_tenants
    near, far = await driver_at(acme, 1), await driver_at(acme, 15)
    bolts = await driver_at(bolt, 1)
    request = await request_at_scene(acme)
    bolt_request = await request_at_scene(bolt)
    await autodispatch.sweep(acme)
    await autodispatch.sweep(bolt)
    for lapsed in (1, 2):
        clock.advance(31)  # no answer from the nearest truck: not a refusal
        report = await autodispatch.sweep(acme)
        assert report.expired == 1 and report.offered == 1
        again = report.decisions[0].explanation
        assert again is not None and again["chosen"] == near.id
        unanswered = "an offer" if lapsed == 1 else "2 offers"
        assert f"asked again after {unanswered} of it went unanswered" in again["why"]
        assert again["candidates"][0]["lapsed"] == lapsed
        assert again["candidates"][0]["parts"]["lapsed"] == 2 * lapsed
    clock.advance(31)  # three times unanswered: the next truck, however far
    report = await autodispatch.sweep(acme)
    explanation = report.decisions[0].explanation
    assert explanation is not None and explanation["chosen"] == far.id
    assert {"driver_id": near.id, "name": near.name, "reason": "let 3 offers lapse"} in (
        explanation["excluded"]
    )
    assert await _offer_rows(acme, request.id) == [
        *[(near.id, "expired")] * 3,
        (far.id, "open"),
    ]
    # Bolt's request was offered to Bolt's driver once; Acme's lapses never touched it.
    assert await _offer_rows(bolt, bolt_request.id) == [(bolts.id, "open")]


async def test_a_decline_is_final_and_a_company_may_ask_each_driver_only_once(
    two_tenants: tuple[TenantInfo, TenantInfo], clock: Clock
) -> None:
    acme, bolt = two_tenants
    near, far = await driver_at(acme, 1), await driver_at(acme, 15)
    await update_dispatch_settings(acme, ADMIN, {"lapsed_reoffers": 0})
    assert (await read_settings(bolt))[0].lapsed_reoffers == 2  # Bolt's stay the default
    request = await request_at_scene(acme)
    await autodispatch.sweep(acme)
    clock.advance(31)
    assert (await autodispatch.sweep(acme)).decisions[0].driver_id == far.id
    declined = await request_at_scene(acme)
    await autodispatch.sweep(acme)  # the near driver is free: offered the new request
    offer = next(
        o for o in await offers.my_offers(acme, driver_actor(near)) if o.request_id == declined.id
    )
    await update_dispatch_settings(acme, ADMIN, {"lapsed_reoffers": 3})
    await offers.respond_to_offer(acme, driver_actor(near), offer.id, accept=False)
    report = await autodispatch.sweep(acme)
    assert all(d.driver_id != near.id for d in report.decisions)
    assert await _offer_rows(acme, request.id) == [(near.id, "expired"), (far.id, "open")]


async def test_load_weighs_more_for_a_driver_whose_shift_ends_soon(
    two_tenants: tuple[TenantInfo, TenantInfo], clock: Clock
) -> None:
    """The end of each driver's shift comes from the shifts table (real Postgres)."""
    acme, bolt = two_tenants
    clock.advance(-2 * 3600)  # both came on duty two hours ago, as their shifts began
    ending, staying = await driver_at(acme, 1, name="Ending"), await driver_at(acme, 2)
    clock.advance(2 * 3600)
    for driver, hours_left in ((ending, 0.5), (staying, 8)):
        await drivers.add_shift(
            acme,
            ADMIN,
            driver.id,
            {
                "starts_at": clock.at - timedelta(hours=2),
                "ends_at": clock.at + timedelta(hours=hours_left),
            },
        )
    await driver_at(bolt, 1)  # Bolt's driver has no shift on record
    done = await request_at_scene(acme)  # one job today: the fleet has a rate
    await service_requests.assign_driver(acme, DISPATCHER, done.id, staying.id)
    for status in ("en_route", "on_scene", "in_progress", "completed"):
        await service_requests.transition(acme, driver_actor(staying), done.id, status)
    request = await request_at_scene(acme)
    bolt_request = await request_at_scene(bolt)

    decision = await autodispatch.dispatch_request(acme, request.id)
    assert decision.explanation is not None
    urgency = {c["name"]: c["load_urgency"] for c in decision.explanation["candidates"]}
    # 1 job in 4 hours on shift: a quarter of a job an hour. Half an hour left is an eighth of
    # a job to come (three times the load); eight hours are two jobs (the load as it is).
    assert urgency == {"Ending": 3.0, staying.name: 1.0}
    other = await autodispatch.dispatch_request(bolt, bolt_request.id)
    assert other.explanation is not None
    assert [c["load_urgency"] for c in other.explanation["candidates"]] == [1.0]


async def test_an_answer_after_the_deadline_closes_the_offer_as_lapsed(
    two_tenants: tuple[TenantInfo, TenantInfo], clock: Clock
) -> None:
    acme, bolt = two_tenants
    driver = await driver_at(acme, 1)
    await driver_at(bolt, 1)
    request = await request_at_scene(acme)
    await autodispatch.sweep(acme)
    offer = (await offers.my_offers(acme, driver_actor(driver)))[0]
    clock.advance(30.5)  # before any sweep noticed
    with pytest.raises(offers.OfferExpired):
        await offers.respond_to_offer(acme, driver_actor(driver), offer.id, accept=True)
    assert await _offer_rows(acme, request.id) == [(driver.id, "expired")]
    row = await service_requests.get_request(acme, DISPATCHER, request.id)
    assert row.status == "pending" and row.driver is None


async def test_after_max_offers_the_request_is_flagged_to_dispatchers(
    two_tenants: tuple[TenantInfo, TenantInfo], clock: Clock
) -> None:
    acme, bolt = two_tenants
    await update_dispatch_settings(acme, ADMIN, {"max_offers": 2})
    drivers = [await driver_at(acme, km) for km in (1, 2, 3)]
    await driver_at(bolt, 1)
    request = await request_at_scene(acme)
    for driver in drivers[:2]:
        await autodispatch.sweep(acme)
        offer = (await offers.my_offers(acme, driver_actor(driver)))[0]
        await offers.respond_to_offer(acme, driver_actor(driver), offer.id, accept=False)
    report = await autodispatch.sweep(acme)
    assert report.decisions == []  # flagged: the engine leaves it to people
    row = await service_requests.get_request(acme, DISPATCHER, request.id)
    assert row.needs_dispatcher and row.offers_made == 2
    decisions = await offers.list_decisions(acme, DISPATCHER, request.id)
    assert decisions[-1].outcome == "flagged"
    assert "2 offers" in decisions[-1].explanation["why"]
    # A dispatcher overrides by hand: offered to the third driver, who accepts.
    made = await offers.offer_by_hand(acme, DISPATCHER, request.id, drivers[2].id)
    assert made.driver_id == drivers[2].id
    [by_hand] = [o for o in await offers.list_offers(acme, DISPATCHER, request.id)
                 if o.id == made.offer_id]  # fmt: skip
    assert by_hand.travel_s and by_hand.travel_s > 0  # the maps plugin was asked
    response = await offers.respond_to_offer(
        acme, driver_actor(drivers[2]), made.offer_id or 0, accept=True
    )
    assert response.request is not None and response.request.status == "assigned"
    assert response.request.driver == drivers[2].id


async def test_an_emergency_preempts_an_unstarted_job_which_is_offered_again_first(
    two_tenants: tuple[TenantInfo, TenantInfo], clock: Clock
) -> None:
    acme, bolt = two_tenants
    busy = await driver_at(acme, 1)
    far = await driver_at(acme, 20)
    await driver_at(bolt, 1)
    routine = await request_at_scene(acme, priority="low")
    await service_requests.assign_driver(acme, DISPATCHER, routine.id, busy.id)
    await update_dispatch_settings(acme, ADMIN, {"max_offers": 5})

    emergency = await request_at_scene(acme, priority="emergency")
    decision = await autodispatch.dispatch_request(acme, emergency.id)
    assert decision.driver_id == busy.id  # 1 km + pre-emption beats 20 km
    assert decision.explanation is not None
    assert "goes back to pending" in decision.explanation["why"]
    offer = (await offers.my_offers(acme, driver_actor(busy)))[0]
    assert offer.deadline == clock.at + timedelta(seconds=10)  # emergencies answer faster

    response = await offers.respond_to_offer(acme, driver_actor(busy), offer.id, accept=True)
    assert response.preempted == routine.id
    back = await service_requests.get_request(acme, DISPATCHER, routine.id)
    assert back.status == "pending" and back.driver is None
    events = await service_requests.request_events(acme, DISPATCHER, routine.id)
    assert events[-1].reason_code == "pre_empted"
    # Back in the queue ahead of an older normal request.
    older = await request_at_scene(acme)
    async with tenant_transaction(acme):
        await engine.execute(
            "UPDATE service_requests SET created_at = $2 WHERE id = $1",
            older.id,
            MORNING - timedelta(hours=1),
        )
    assert (await autodispatch.waiting_requests(acme))[:2] == [routine.id, older.id]
    report = await autodispatch.sweep(acme)
    assert report.decisions[0].request_id == routine.id
    assert report.decisions[0].driver_id == far.id


async def test_an_emergency_never_preempts_a_job_already_en_route(
    two_tenants: tuple[TenantInfo, TenantInfo], clock: Clock
) -> None:
    acme, bolt = two_tenants
    driving = await driver_at(acme, 1)
    await driver_at(bolt, 1)
    job = await request_at_scene(acme)
    await service_requests.assign_driver(acme, DISPATCHER, job.id, driving.id)
    await service_requests.transition(acme, driver_actor(driving), job.id, "en_route")
    emergency = await request_at_scene(acme, priority="emergency")
    decision = await autodispatch.dispatch_request(acme, emergency.id)
    assert decision.outcome == "no_candidate"
    assert decision.explanation is not None and "busy" in decision.explanation["why"]


async def test_two_workers_racing_make_one_offer_per_request_and_per_driver(
    two_tenants: tuple[TenantInfo, TenantInfo], clock: Clock
) -> None:
    acme, bolt = two_tenants
    only = await driver_at(acme, 1)
    await driver_at(bolt, 1)
    one, two = await request_at_scene(acme), await request_at_scene(acme)
    decisions = await asyncio.gather(
        autodispatch.dispatch_request(acme, one.id),
        autodispatch.dispatch_request(acme, one.id),
        autodispatch.dispatch_request(acme, two.id),
        autodispatch.sweep(acme),
    )
    async with tenant_transaction(acme):
        rows = await engine.fetch("SELECT request_id, driver_id FROM offers WHERE status = 'open'")
    assert [row["driver_id"] for row in rows] == [only.id]  # one driver, one live offer
    outcomes = sorted(d.outcome for d in decisions[:3])
    assert outcomes.count("offered") == 1 and "no_candidate" in outcomes


async def test_bad_dispatch_settings_name_the_field_and_change_nothing(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    with pytest.raises(ValidationFailed) as bad:
        await update_dispatch_settings(
            acme,
            ADMIN,
            {
                "radius_km": -1,
                "lapsed_reoffers": 9,
                "emergency_tie_minutes": 20,
                "weights": {"load": 99, "overload": -1, "lapse": -2},
            },
        )
    assert {e.field for e in bad.value.errors} == {
        "radius_km",
        "lapsed_reoffers",
        "emergency_tie_minutes",
        "weights.load",
        "weights.overload",
        "weights.lapse",
    }
    with pytest.raises(Exception) as longer:
        await update_dispatch_settings(acme, ADMIN, {"emergency_offer_seconds": 60})
    assert getattr(longer.value, "field", None) == "emergency_offer_seconds"
    settings, _ = await read_settings(acme)
    assert settings.radius_km == 50 and settings.emergency_offer_seconds == 10
    assert settings.lapsed_reoffers == 2 and settings.weights.lapse == 2
    assert settings.emergency_tie_minutes == 2
    changed = await update_dispatch_settings(acme, ADMIN, {"strategy": "nearest"})
    assert changed.strategy == "nearest"
    assert (await read_settings(bolt))[0].strategy == "scored"


async def test_accepting_shows_an_eta_that_moves_only_when_it_changes_by_over_a_minute(
    two_tenants: tuple[TenantInfo, TenantInfo], clock: Clock
) -> None:
    acme, bolt = two_tenants
    driver, request, response = await _accepted_at(acme, bolt, km=6)
    assert response.request is not None
    shown = response.request.eta_at
    # 6 km at the offline model's daytime speed: ~7.8 road km at 45 km/h, about 10 minutes.
    assert timedelta(minutes=8) < shown - clock.at < timedelta(minutes=13)
    await service_requests.transition(acme, driver_actor(driver), request.id, "en_route")

    clock.advance(30)  # moved a little: the customer's ETA stays put
    lat, lng = east_of_scene(5.8)
    await fleet.set_position(acme, SYSTEM, driver.id, {"lat": lat, "lng": lng})
    assert await eta.refresh_eta(acme, request.id) == shown
    clock.advance(60)  # half-way there: more than a minute sooner
    lat, lng = east_of_scene(3)
    await fleet.set_position(acme, SYSTEM, driver.id, {"lat": lat, "lng": lng})
    sooner = await eta.refresh_eta(acme, request.id)
    assert sooner is not None and sooner < shown - timedelta(minutes=1)
    row = await service_requests.get_request(acme, DISPATCHER, request.id)
    assert row.eta_at == sooner
    async with tenant_transaction(acme):
        topics = await engine.fetch(
            "SELECT count(*) AS n FROM outbox WHERE topic = 'request.eta_changed'"
        )
    assert topics[0]["n"] == 2  # at acceptance, and after the real change
    assert await eta.refresh_eta(bolt, request.id) is None  # another company's id


async def test_a_job_queues_behind_a_driver_about_to_finish_nearby_when_the_company_allows(
    two_tenants: tuple[TenantInfo, TenantInfo], clock: Clock
) -> None:
    acme, bolt = two_tenants
    await update_dispatch_settings(acme, ADMIN, {"queue_within_minutes": 15})
    finishing = await driver_at(acme, 0.5)
    far_free = await driver_at(acme, 15)
    await driver_at(bolt, 0.5)
    first = await request_at_scene(acme)
    await service_requests.assign_driver(acme, DISPATCHER, first.id, finishing.id)
    for status in ("en_route", "on_scene", "in_progress"):
        await service_requests.transition(acme, driver_actor(finishing), first.id, status)
    clock.advance(15 * 60)  # 15 of the prior's 20 minutes of work done: ~5 left

    second = await request_at_scene(acme)
    decision = await autodispatch.dispatch_request(acme, second.id)
    assert decision.driver_id == finishing.id  # ~5 min wait + 0 travel beats ~20 min
    assert decision.explanation is not None
    assert f"after request {first.id}" in decision.explanation["why"]
    listed = {c["driver_id"]: c for c in decision.explanation["candidates"]}
    assert 240 <= listed[finishing.id]["wait_s"] <= 360
    assert far_free.id in listed
    offer = (await offers.my_offers(acme, driver_actor(finishing)))[0]
    response = await offers.respond_to_offer(acme, driver_actor(finishing), offer.id, accept=True)
    assert response.request is not None and response.request.status == "assigned"
    eta_in = response.request.eta_at - clock.at
    assert timedelta(minutes=4) < eta_in < timedelta(minutes=7)  # the wait, then next door
    # The same company without queueing: the busy driver is left out, the far one offered.
    await update_dispatch_settings(acme, ADMIN, {"queue_within_minutes": 0})
    third = await request_at_scene(acme)
    assert (await autodispatch.dispatch_request(acme, third.id)).driver_id == far_free.id


async def test_a_driver_who_stops_working_loses_their_offer_to_the_next_driver(
    two_tenants: tuple[TenantInfo, TenantInfo], clock: Clock
) -> None:
    acme, bolt = two_tenants
    leaving, staying = await driver_at(acme, 1), await driver_at(acme, 2)
    await driver_at(bolt, 1)
    request = await request_at_scene(acme)
    await autodispatch.sweep(acme)
    await fleet.update_driver(acme, SYSTEM, leaving.id, {"status": "on_break"})
    await autodispatch.sweep(acme)
    assert await _offer_rows(acme, request.id) == [
        (leaving.id, "withdrawn"),
        (staying.id, "open"),
    ]
    await fleet.archive_driver(acme, SYSTEM, staying.id)
    assert await _offer_rows(acme, request.id) == [
        (leaving.id, "withdrawn"),
        (staying.id, "withdrawn"),
    ]
    live = {p.driver_id for p in await positions.driver_positions(acme)}
    assert staying.id not in live and leaving.id in live  # archived: off the map
    assert [p.driver_id for p in await positions.driver_positions(bolt)] == [1]


async def test_stale_etas_follow_the_driver_and_only_big_changes_are_stored(
    two_tenants: tuple[TenantInfo, TenantInfo], clock: Clock
) -> None:
    acme, bolt = two_tenants
    driver, request, _ = await _accepted_at(acme, bolt, km=8)
    await service_requests.transition(acme, driver_actor(driver), request.id, "en_route")
    assert await eta.refresh_stale(acme) == 0  # just set at acceptance: not stale yet
    clock.advance(31)
    assert await eta.refresh_stale(acme) == 0  # stale, looked at, unchanged
    lat, lng = east_of_scene(2)
    await fleet.set_position(acme, SYSTEM, driver.id, {"lat": lat, "lng": lng})
    assert await eta.refresh_stale(acme) == 0  # looked at 0 s ago
    clock.advance(31)
    assert await eta.refresh_stale(acme) == 1
    assert await eta.refresh_stale(bolt) == 0


async def test_requests_waiting_together_are_matched_so_the_total_travel_is_least(
    two_tenants: tuple[TenantInfo, TenantInfo], clock: Clock
) -> None:
    acme, bolt = two_tenants
    between = await driver_at(acme, 1)  # 1 km from the first call, 2 km from the second
    west = await driver_at(acme, -6)  # 6 km from the first call, 9 km from the second
    await driver_at(bolt, 1)
    first = await request_at_scene(acme)
    second = await request_at_scene(acme)
    lat, lng = east_of_scene(3)
    await service_requests.update_request(
        acme, DISPATCHER, second.id, {"pickup": {"lat": lat, "lng": lng}}
    )
    report = await autodispatch.sweep(acme)  # both wait: offered together
    offered = {d.request_id: d.driver_id for d in report.decisions}
    # One by one, the first call would take the driver between them and send the second's
    # 9 km; together, 6 + 2 km.
    assert offered == {first.id: west.id, second.id: between.id}
    why = {d.request_id: (d.explanation or {})["why"] for d in report.decisions}
    assert "went to another waiting request" in why[first.id]
    assert "went to another" not in why[second.id]


async def test_a_backlog_with_nobody_on_shift_is_told_so_once_until_a_driver_comes(
    two_tenants: tuple[TenantInfo, TenantInfo], clock: Clock
) -> None:
    acme, bolt = two_tenants
    driver = await driver_at(acme, 1, status="on_break")
    await driver_at(bolt, 1)
    waiting = [await request_at_scene(acme) for _ in range(3)]
    told = (await autodispatch.sweep(acme)).decisions
    assert [(d.request_id, d.outcome) for d in told] == [(w.id, "no_candidate") for w in waiting]
    assert all((d.explanation or {})["no_driver"] == "no_driver_on_shift" for d in told)
    clock.advance(1)
    assert (await autodispatch.sweep(acme)).decisions == []  # not a decision a second
    async with tenant_transaction(acme):
        rows = await engine.fetch("SELECT count(*) AS n FROM dispatch_decisions")
    assert rows[0]["n"] == 3
    await drivers.update_driver(acme, SYSTEM, driver.id, {"status": "available"})
    report = await autodispatch.sweep(acme)
    assert [d.outcome for d in report.decisions].count("offered") == 1
    assert report.decisions[0].request_id == waiting[0].id  # first in line


async def _worked(tenant: TenantInfo, driver: dict[str, Any], hours: float, jobs: int) -> None:
    """The driver has been on duty `hours` (a shift of the day) and done `jobs` jobs in it."""
    at = now()
    await drivers.add_shift(
        tenant,
        SYSTEM,
        driver.id,
        {"starts_at": at - timedelta(hours=hours), "ends_at": at + timedelta(hours=8)},
    )
    async with tenant_transaction(tenant):
        # They came on duty as the shift began (the engine counts their hours from then).
        await engine.execute(
            "UPDATE drivers SET on_duty_since = $2 WHERE id = $1",
            driver.id,
            at - timedelta(hours=hours),
        )
        customer = await engine.fetch(
            "INSERT INTO customers (name, created_at, updated_at) VALUES ('Earlier', $1, $1) "
            "RETURNING id",
            at,
        )
        await engine.executemany(
            "INSERT INTO service_requests (number, customer, service_type, priority, status, "
            "source, pickup_lat, pickup_lng, quoted_price, currency, version, created_by, "
            "driver, assigned_at, created_at, updated_at, completed_at) VALUES "
            "(nextval('service_request_number_seq'), $1, "
            "(SELECT id FROM service_types WHERE code = 'jump_start'), 'normal', 'completed', "
            "'admin', 52.5, 13.4, 0, 'EUR', 1, 'test', $2, $3, $3, $3, $3)",
            [(customer[0]["id"], driver.id, at - timedelta(minutes=30))] * jobs,
        )


async def test_load_is_measured_against_hours_on_shift_not_the_count_alone(
    two_tenants: tuple[TenantInfo, TenantInfo], clock: Clock
) -> None:
    """Two jobs in four hours is less than one in one hour at the fleet's rate (three jobs in
    five hours): the early starter goes, though further away. The other company's busy drivers
    count for nothing here."""
    acme, bolt = two_tenants
    early = await driver_at(acme, 3, name="Early Erin")
    late = await driver_at(acme, 2, name="Late Lou")
    await _worked(acme, early, hours=4, jobs=2)
    await _worked(acme, late, hours=1, jobs=1)
    await _worked(bolt, await driver_at(bolt, 1), hours=1, jobs=9)
    request = await request_at_scene(acme)

    decision = await autodispatch.dispatch_request(acme, request.id)

    assert decision.driver_id == early.id
    why = decision.explanation
    assert why is not None and why["fleet_jobs_per_hour"] == 0.6
    assert why["why"].endswith(
        "2 jobs in 4.0 h on shift (fair share 2.4), the least loaded who could take it"
    )
    shares = {c["name"]: (c["on_shift_h"], c["fair_share"], c["ahead"]) for c in why["candidates"]}
    assert shares == {"Early Erin": (4.0, 2.4, 0.0), "Late Lou": (1.0, 0.6, 0.8)}


async def test_an_emergency_goes_to_the_lighter_of_two_trucks_about_as_near(
    two_tenants: tuple[TenantInfo, TenantInfo], clock: Clock
) -> None:
    """Half a kilometre apart, two trucks are as fast at a travel estimate's precision: the one
    with fewer jobs today goes (the company's tie, 2 minutes by default); with the tie at 0,
    the nearest, as in the other company."""
    acme, bolt = two_tenants
    busiest = await driver_at(acme, 1, name="Busy Bea")
    lighter = await driver_at(acme, 1.5, name="Light Lars")
    await _worked(acme, busiest, hours=4, jobs=3)
    await _worked(acme, lighter, hours=4, jobs=1)
    bolt_near = await driver_at(bolt, 1, name="Bolt Near")
    await driver_at(bolt, 1.5)
    await _worked(bolt, bolt_near, hours=4, jobs=3)
    await update_dispatch_settings(bolt, ADMIN, {"emergency_tie_minutes": 0})

    decision = await autodispatch.dispatch_request(
        acme, (await request_at_scene(acme, priority="emergency")).id
    )
    assert decision.driver_id == lighter.id
    assert decision.explanation is not None
    assert "behind the fastest (Busy Bea, 3 jobs today)" in decision.explanation["why"]
    theirs = await autodispatch.dispatch_request(
        bolt, (await request_at_scene(bolt, priority="emergency")).id
    )
    assert theirs.driver_id == bolt_near.id
    assert theirs.explanation is not None
    assert theirs.explanation["why"].startswith("emergency: fastest to the scene")


async def test_hours_on_shift_count_from_going_on_duty_not_from_midnight(
    two_tenants: tuple[TenantInfo, TenantInfo], clock: Clock
) -> None:
    acme, bolt = two_tenants
    fresh = await driver_at(acme, 2)  # goes on duty now, no shift on record
    await driver_at(bolt, 1)
    clock.advance(60)
    request = await request_at_scene(acme)

    decision = await autodispatch.dispatch_request(acme, request.id)

    assert decision.explanation is not None
    [candidate] = decision.explanation["candidates"]
    assert candidate["driver_id"] == fresh.id and candidate["on_shift_h"] == 0.02
    assert "0 jobs in 0.0 h on shift" in decision.explanation["why"]


async def test_a_break_does_not_restart_the_hours_on_shift(
    two_tenants: tuple[TenantInfo, TenantInfo], clock: Clock
) -> None:
    acme, bolt = two_tenants
    driver = await driver_at(acme, 2)
    await driver_at(bolt, 1)
    clock.advance(3600)
    await drivers.update_driver(acme, SYSTEM, driver.id, {"status": "on_break"})
    clock.advance(1800)
    await drivers.update_driver(acme, SYSTEM, driver.id, {"status": "available"})
    request = await request_at_scene(acme)

    decision = await autodispatch.dispatch_request(acme, request.id)

    assert decision.explanation is not None
    assert decision.explanation["candidates"][0]["on_shift_h"] == 1.5
