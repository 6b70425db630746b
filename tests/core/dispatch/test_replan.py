"""The fleet re-plan: every driver's accepted jobs in order, waiting requests given to drivers,
moves suggested to dispatchers; the solver's own process, its greedy fallback, racing re-plans."""

from __future__ import annotations

import asyncio

import pytest

from patone.core.common.permissions import SYSTEM, PermissionDenied
from patone.core.dispatch import offers, replan
from patone.core.dispatch.settings import update_dispatch_settings
from patone.core.domain import drivers, service_requests
from patone.core.runtime.db import engine
from patone.core.runtime.errors import Conflict, NotFound, UserError, ValidationFailed
from patone.core.tables.fleet import DriverRow
from patone.tenants.isolation import tenant_transaction
from patone.tenants.registry import TenantInfo
from tests.conftest import actor_for
from tests.core.dispatch.world import (
    DISPATCHER,
    Clock,
    driver_actor,
    driver_at,
    east_of_scene,
    request_at_scene,
)

ADMIN = actor_for("admin")
QUICK = 0.3  # the solver's time limit in these tests: small fleets converge well within it


async def _waiting_at(
    tenant: TenantInfo, km: float, *, priority: str = "normal", service_type: str = "jump_start"
) -> int:
    """A pending request `km` east of the scene (the engine is off: nobody offers it)."""
    request = await request_at_scene(tenant, priority=priority, service_type=service_type)
    lat, lng = east_of_scene(km)
    await service_requests.update_request(
        tenant, DISPATCHER, request.id, {"pickup": {"lat": lat, "lng": lng}}
    )
    return int(request.id)


async def _accepted_at(tenant: TenantInfo, driver_id: int, km: float) -> int:
    request_id = await _waiting_at(tenant, km)
    await service_requests.assign_driver(tenant, DISPATCHER, request_id, driver_id)
    return request_id


async def _three_jobs_for_anna(
    tenant: TenantInfo, anna: str = "Anna", bob: str = "Bob"
) -> tuple[DriverRow, DriverRow, int, int, int]:
    """Anna, at the scene, has accepted jobs 9, 2 and 5 km east of it; Bob, free, stands 10 km
    east, next to the far one. (anna, bob, far, near, middle)."""
    first = await driver_at(tenant, 0, name=anna)
    second = await driver_at(tenant, 10, name=bob)
    far = await _accepted_at(tenant, first.id, 9)
    near = await _accepted_at(tenant, first.id, 2)
    middle = await _accepted_at(tenant, first.id, 5)
    return first, second, far, near, middle


async def _manual(tenant: TenantInfo) -> None:
    await update_dispatch_settings(tenant, ADMIN, {"auto_dispatch": False})


async def _plans(tenant: TenantInfo) -> int:
    async with tenant_transaction(tenant):
        rows = await engine.fetch("SELECT count(*) AS n FROM fleet_plans")
    return int(rows[0]["n"])


async def test_a_drivers_stacked_jobs_are_ordered_and_a_free_driver_much_nearer_is_suggested(
    two_tenants: tuple[TenantInfo, TenantInfo], clock: Clock
) -> None:
    acme, bolt = two_tenants
    anna, bob, far, near, middle = await _three_jobs_for_anna(acme)
    bert = await driver_at(bolt, 0, name="Bert")
    bolt_job = await _accepted_at(bolt, bert.id, 3)

    await replan.replan(acme, time_limit_s=QUICK)
    await replan.replan(bolt, time_limit_s=QUICK)

    plan = await replan.fleet_plan(acme, DISPATCHER)
    assert plan is not None and plan.solver == "or-tools"  # greedy takes them as they came
    assert plan.created_at == clock.at and (plan.drivers, plan.jobs) == (2, 3)
    [route] = plan.routes  # Bob has nothing planned
    assert route.driver_id == anna.id and route.name == "Anna"
    assert [s.request_id for s in route.stops] == [near, middle, far]
    assert all(s.accepted for s in route.stops)
    assert clock.at < route.stops[0].arrive_at < route.stops[1].arrive_at < route.stops[2].arrive_at
    # Anna reaches the far job after two others (20 min on scene each); Bob, free next to it,
    # in minutes. Each driver is suggested once: for the job they gain most on.
    [move] = plan.suggestions
    assert (move.kind, move.request_id) == ("reassign", far)
    assert (move.driver_id, move.from_driver_id) == (bob.id, anna.id)
    assert move.sooner_s is not None and move.sooner_s > 40 * 60
    assert move.why.startswith("Bob could be at #") and "sooner than Anna" in move.why
    assert "after 2 other jobs" in move.why
    # Nothing of one company in the other's plan.
    other = await replan.fleet_plan(bolt, DISPATCHER)
    assert other is not None
    assert [(r.driver_id, [s.request_id for s in r.stops]) for r in other.routes] == [
        (bert.id, [bolt_job])
    ]
    assert other.suggestions == []
    # A dispatcher who moves the job makes the suggestion go.
    await service_requests.transition(acme, DISPATCHER, far, "pending", reason_code="reassigned")
    await service_requests.assign_driver(acme, DISPATCHER, far, bob.id)
    plan = await replan.fleet_plan(acme, DISPATCHER)
    assert plan is not None and plan.suggestions == []


async def test_waiting_requests_are_given_to_drivers_and_one_nobody_can_take_says_why(
    two_tenants: tuple[TenantInfo, TenantInfo], clock: Clock
) -> None:
    acme, bolt = two_tenants
    await _manual(acme)
    near = await driver_at(acme, 1, name="Nina")
    busy = await driver_at(acme, 20, name="Fred")
    await _accepted_at(acme, busy.id, 21)
    await driver_at(bolt, 0)
    await _manual(bolt)
    jump = await _waiting_at(acme, 0)
    lockout = await _waiting_at(acme, 0.5, service_type="lockout")  # nobody has the skill
    await _waiting_at(bolt, 0)

    await replan.replan(acme, time_limit_s=QUICK)

    plan = await replan.fleet_plan(acme, DISPATCHER)
    assert plan is not None
    offer, unserved = plan.suggestions
    assert (offer.kind, offer.request_id, offer.driver_id) == ("offer", jump, near.id)
    assert offer.why.startswith(f"the plan gives #{offer.number} to Nina: there in ")
    assert offer.arrive_at is not None and offer.arrive_at > clock.at
    assert (unserved.kind, unserved.request_id, unserved.driver_id) == ("unserved", lockout, None)
    assert unserved.why == f"#{unserved.number}: no driver on shift has lockout"
    planned = {r.driver_id: [(s.request_id, s.accepted) for s in r.stops] for r in plan.routes}
    assert planned[near.id] == [(jump, False)]
    # Once offered, the request's suggestion is no longer standing.
    await update_dispatch_settings(acme, ADMIN, {"auto_dispatch": True})
    from patone.core.dispatch import autodispatch

    await autodispatch.dispatch_request(acme, jump)
    plan = await replan.fleet_plan(acme, DISPATCHER)
    assert plan is not None and [s.kind for s in plan.suggestions] == ["unserved"]
    with pytest.raises(PermissionDenied):
        await replan.fleet_plan(acme, driver_actor(near))
    with pytest.raises(PermissionDenied):
        await replan.replan_fleet(acme, driver_actor(near))


async def test_a_solver_given_no_time_falls_back_to_the_greedy_plan(
    two_tenants: tuple[TenantInfo, TenantInfo], clock: Clock
) -> None:
    acme, bolt = two_tenants
    anna = await driver_at(acme, 0, name="Anna")
    far = await _accepted_at(acme, anna.id, 9)
    near = await _accepted_at(acme, anna.id, 2)
    await driver_at(bolt, 0)

    await replan.replan(acme, time_limit_s=0, grace_s=0)  # the solver process cannot answer

    plan = await replan.latest_plan(acme)
    assert plan is not None and plan.solver == "greedy"
    [route] = plan.routes
    assert [s.request_id for s in route.stops] == [far, near]  # greedy: as they came
    # The next re-plan has a solver process again.
    clock.advance(1)
    await replan.replan(acme, time_limit_s=QUICK)
    plan = await replan.latest_plan(acme)
    assert plan is not None and plan.solver == "or-tools"
    assert [s.request_id for s in plan.routes[0].stops] == [near, far]
    # Nothing to plan: a dispatcher who asks still gets a plan, an empty one.
    assert await replan.latest_plan(bolt) is None
    await replan.replan(bolt)
    empty = await replan.latest_plan(bolt)
    assert empty is not None and (empty.drivers, empty.jobs, empty.routes) == (1, 0, [])


async def test_racing_replans_store_one_plan(
    two_tenants: tuple[TenantInfo, TenantInfo], clock: Clock
) -> None:
    acme, bolt = two_tenants
    anna = await driver_at(acme, 0)
    await _accepted_at(acme, anna.id, 3)
    await driver_at(bolt, 0)
    ids = await asyncio.gather(
        replan.replan(acme, time_limit_s=QUICK), replan.replan(acme, time_limit_s=QUICK)
    )
    assert ids[0] == ids[1] and ids[0] is not None
    assert await _plans(acme) == 1 and await _plans(bolt) == 0
    clock.advance(5 * 60)  # two workers' periodic re-plans, both due
    again = await asyncio.gather(
        replan.replan(acme, when_due=True, time_limit_s=QUICK),
        replan.replan(acme, when_due=True, time_limit_s=QUICK),
    )
    assert again[0] == again[1] and again[0] not in ids
    assert await _plans(acme) == 2


async def test_the_periodic_replan_runs_when_due_and_never_when_off(
    two_tenants: tuple[TenantInfo, TenantInfo], clock: Clock
) -> None:
    acme, bolt = two_tenants
    anna = await driver_at(acme, 0)
    await driver_at(bolt, 0)
    assert await replan.replan(acme, when_due=True) is None  # nothing to plan
    await _accepted_at(acme, anna.id, 3)
    first = await replan.replan(acme, when_due=True, time_limit_s=QUICK)
    assert first is not None
    clock.advance(60)
    assert await replan.replan(acme, when_due=True) is None  # 1 of 5 minutes
    clock.advance(4 * 60)
    second = await replan.replan(acme, when_due=True, time_limit_s=QUICK)
    assert second is not None and second != first
    await update_dispatch_settings(acme, ADMIN, {"replan_minutes": 0})
    clock.advance(60 * 60)
    assert await replan.replan(acme, when_due=True) is None
    assert await _plans(acme) == 2 and await _plans(bolt) == 0
    with pytest.raises(ValidationFailed) as bad:
        await update_dispatch_settings(acme, ADMIN, {"replan_minutes": -1})
    assert [e.field for e in bad.value.errors] == ["replan_minutes"]


async def test_a_dispatcher_takes_a_reassignment_in_one_step(
    two_tenants: tuple[TenantInfo, TenantInfo], clock: Clock
) -> None:
    acme, bolt = two_tenants
    anna, bob, far, near, _ = await _three_jobs_for_anna(acme)
    bert, _, bolt_far, _, _ = await _three_jobs_for_anna(bolt, "Bert", "Bill")
    await replan.replan(acme, time_limit_s=QUICK)
    await replan.replan(bolt, time_limit_s=QUICK)

    with pytest.raises(PermissionDenied):
        await replan.apply_suggestion(acme, driver_actor(bob), far)
    with pytest.raises(NotFound) as unknown:  # another company's request: nothing here
        await replan.apply_suggestion(acme, DISPATCHER, bolt_far + 1000)
    assert (unknown.value.code, unknown.value.field) == ("no_suggestion", "request_id")

    decision = await replan.apply_suggestion(acme, DISPATCHER, far)

    assert (decision.outcome, decision.driver_id) == ("offered", bob.id)
    assert decision.explanation is not None
    assert "as the fleet plan suggested: Bob could be at #" in decision.explanation["why"]
    job = await service_requests.get_request(acme, DISPATCHER, far)
    assert (job.status, job.driver) == ("pending", None)
    events = await service_requests.request_events(acme, DISPATCHER, far)
    assert (events[-1].to_status, events[-1].reason_code) == ("pending", "reassigned")
    [offer] = [o for o in await offers.list_offers(acme, DISPATCHER, far) if o.status == "open"]
    assert offer.driver_id == bob.id
    still = await service_requests.get_request(acme, DISPATCHER, near)
    assert still.driver == anna.id  # the rest of Anna's jobs stay hers
    await offers.respond_to_offer(acme, driver_actor(bob), offer.id, accept=True)
    job = await service_requests.get_request(acme, DISPATCHER, far)
    assert (job.status, job.driver) == ("assigned", bob.id)
    # Taken: it no longer stands. The other company's plan and jobs are untouched.
    with pytest.raises(NotFound):
        await replan.apply_suggestion(acme, DISPATCHER, far)
    theirs = await replan.fleet_plan(bolt, DISPATCHER)
    assert theirs is not None and [s.request_id for s in theirs.suggestions] == [bolt_far]
    untouched = await service_requests.get_request(bolt, DISPATCHER, bolt_far)
    assert (untouched.status, untouched.driver) == ("assigned", bert.id)


async def test_a_suggestion_that_cannot_be_taken_is_refused_and_changes_nothing(
    two_tenants: tuple[TenantInfo, TenantInfo], clock: Clock
) -> None:
    acme, bolt = two_tenants
    await _manual(acme)
    nina = await driver_at(acme, 1, name="Nina")
    anna, bob, far, _, _ = await _three_jobs_for_anna(acme)
    jump = await _waiting_at(acme, 0)
    lockout = await _waiting_at(acme, 0.5, service_type="lockout")  # nobody has the skill
    await driver_at(bolt, 0)
    await replan.replan(acme, time_limit_s=QUICK)
    plan = await replan.fleet_plan(acme, DISPATCHER)
    assert plan is not None
    kinds = {s.request_id: (s.kind, s.driver_id) for s in plan.suggestions}
    assert kinds[far] == ("reassign", bob.id) and kinds[lockout] == ("unserved", None)
    assert kinds[jump][0] == "offer"

    with pytest.raises(Conflict) as unserved:
        await replan.apply_suggestion(acme, DISPATCHER, lockout)
    assert unserved.value.code == "unserved" and "no driver on shift has lockout" in str(
        unserved.value
    )
    # Bob went off duty since the plan: the job is not taken from Anna for nothing.
    await drivers.update_driver(acme, SYSTEM, bob.id, {"status": "off_duty"})
    with pytest.raises(UserError) as gone:
        await replan.apply_suggestion(acme, DISPATCHER, far)
    assert (gone.value.code, gone.value.field) == ("driver_unavailable", "driver_id")
    job = await service_requests.get_request(acme, DISPATCHER, far)
    assert (job.status, job.driver) == ("assigned", anna.id)
    assert await offers.list_offers(acme, DISPATCHER, far) == []
    # The waiting request goes to the plan's driver; offered since, it no longer stands.
    decision = await replan.apply_suggestion(acme, DISPATCHER, jump)
    assert (decision.outcome, decision.driver_id) == ("offered", kinds[jump][1])
    assert kinds[jump][1] in (nina.id, anna.id)
    with pytest.raises(NotFound):
        await replan.apply_suggestion(acme, DISPATCHER, jump)
    assert await offers.list_offers(bolt, DISPATCHER, jump) == []
