"""Offers: how a company's drivers answered them (first offers beside offers made again to a
driver who had let one of the same request lapse), and who loses a live one."""

from __future__ import annotations

import json
from typing import Any

import pytest

from patone.core.common.permissions import PermissionDenied
from patone.core.dispatch import autodispatch, fleet, offers
from patone.core.runtime.db import engine
from patone.core.runtime.errors import UserError
from patone.tenants.isolation import tenant_transaction
from patone.tenants.registry import TenantInfo
from tests.core.dispatch.world import (
    DISPATCHER,
    Clock,
    driver_actor,
    driver_at,
    request_at_scene,
)


async def _offer(tenant: TenantInfo, request_id: int, driver_id: int) -> int:
    decision = await offers.offer_by_hand(tenant, DISPATCHER, request_id, driver_id)
    assert decision.offer_id is not None
    return decision.offer_id


async def test_first_offers_and_offers_made_again_after_a_lapse_are_told_apart(
    two_tenants: tuple[TenantInfo, TenantInfo], clock: Clock
) -> None:
    acme, bolt = two_tenants
    anna, bob = await driver_at(acme, 1, name="Anna"), await driver_at(acme, 2, name="Bob")
    bert = await driver_at(bolt, 1)
    one, two = await request_at_scene(acme), await request_at_scene(acme)
    # Anna lets #1 lapse, is asked again and accepts in 4 s; Bob declines #2 after 10 s.
    await _offer(acme, one.id, anna.id)
    clock.advance(31)
    assert len(await offers.expire_offers(acme)) == 1
    again = await _offer(acme, one.id, anna.id)
    clock.advance(4)
    await offers.respond_to_offer(acme, driver_actor(anna), again, accept=True)
    declined = await _offer(acme, two.id, bob.id)
    clock.advance(10)
    await offers.respond_to_offer(acme, driver_actor(bob), declined, accept=False)
    await _offer(acme, two.id, anna.id)  # still open: not counted
    theirs = await _offer(bolt, (await request_at_scene(bolt)).id, bert.id)
    clock.advance(20)
    await offers.respond_to_offer(bolt, driver_actor(bert), theirs, accept=True)

    stats = await offers.offer_stats(acme, DISPATCHER)

    assert stats.first == offers.OfferTally(
        offers=2, accepted=0, declined=1, lapsed=1, withdrawn=0, median_answer_s=10.0
    )
    assert stats.first.acceptance == 0.0
    assert stats.again == offers.OfferTally(offers=1, accepted=1, median_answer_s=4.0)
    assert stats.again.acceptance == 1.0
    # Each driver's, by name: Anna's lapse and accept, Bob's decline; Bert is bolt's.
    assert [(d.name, d.tally) for d in stats.by_driver] == [
        ("Anna", offers.OfferTally(offers=2, accepted=1, lapsed=1, median_answer_s=4.0)),
        ("Bob", offers.OfferTally(offers=1, declined=1, median_answer_s=10.0)),
    ]
    assert [d.driver_id for d in stats.by_driver] == [anna.id, bob.id]
    other = await offers.offer_stats(bolt, DISPATCHER)
    assert other.first == offers.OfferTally(offers=1, accepted=1, median_answer_s=20.0)
    assert [(d.driver_id, d.tally.accepted) for d in other.by_driver] == [(bert.id, 1)]
    assert other.again == offers.OfferTally() and other.again.acceptance is None
    # Older than the window asked for: left out.
    clock.advance(2 * 24 * 3600)
    assert (await offers.offer_stats(acme, DISPATCHER, days=1)).first.offers == 0
    assert (await offers.offer_stats(acme, DISPATCHER, days=3)).first.offers == 2


async def test_offer_stats_refuse_a_bad_window_and_drivers(
    two_tenants: tuple[TenantInfo, TenantInfo], clock: Clock
) -> None:
    acme, _ = two_tenants
    driver = await driver_at(acme, 1)
    for days in (0, 400):
        with pytest.raises(UserError) as bad:
            await offers.offer_stats(acme, DISPATCHER, days=days)
        assert (bad.value.code, bad.value.field) == ("out_of_range", "days")
    with pytest.raises(PermissionDenied):
        await offers.offer_stats(acme, driver_actor(driver))


async def test_a_driver_who_takes_a_break_themselves_loses_their_offer_at_once(
    two_tenants: tuple[TenantInfo, TenantInfo], clock: Clock
) -> None:
    acme, bolt = two_tenants
    resting = await driver_at(acme, 1)
    other = await driver_at(bolt, 1)
    request = await request_at_scene(acme)
    theirs = await request_at_scene(bolt)
    await autodispatch.sweep(acme)
    await autodispatch.sweep(bolt)
    [offer] = await offers.my_offers(acme, driver_actor(resting))

    after = await fleet.set_own_status(acme, driver_actor(resting), "on_break")

    assert after.status == "on_break"
    [withdrawn] = await offers.list_offers(acme, DISPATCHER, request.id)
    assert (withdrawn.id, withdrawn.status) == (offer.id, "withdrawn")
    assert withdrawn.reason == "driver went on_break"
    assert await offers.my_offers(acme, driver_actor(resting)) == []
    assert await autodispatch.waiting_requests(acme) == [request.id]
    # Bolt's driver, the same id in another company, keeps theirs.
    [kept] = await offers.my_offers(bolt, driver_actor(other))
    assert kept.request_id == theirs.id and kept.status == "open"


async def _expired_events(tenant: TenantInfo) -> list[dict[str, Any]]:
    async with tenant_transaction(tenant):
        rows = await engine.fetch(
            "SELECT entity, entity_id, payload FROM outbox WHERE topic = 'offer.expired' "
            "ORDER BY id"
        )
    return [{**dict(row), "payload": json.loads(row["payload"])} for row in rows]


async def test_a_lapsed_offer_is_told_alike_whether_swept_or_answered_too_late(
    two_tenants: tuple[TenantInfo, TenantInfo], clock: Clock
) -> None:
    acme, bolt = two_tenants
    anna, bob = await driver_at(acme, 1), await driver_at(acme, 2)
    await driver_at(bolt, 1)
    one, two = await request_at_scene(acme), await request_at_scene(acme)
    swept = await _offer(acme, one.id, anna.id)
    clock.advance(31)
    assert len(await offers.expire_offers(acme)) == 1
    late = await _offer(acme, two.id, bob.id)
    clock.advance(31)  # Bob answers before any sweep noticed
    with pytest.raises(offers.OfferExpired):
        await offers.respond_to_offer(acme, driver_actor(bob), late, accept=True)

    def told(offer_id: int, request_id: int, driver_id: int, reason: str) -> dict[str, Any]:
        return {
            "entity": "offer",
            "entity_id": str(offer_id),
            "payload": {
                "tenant": acme.slug,
                "id": offer_id,
                "request_id": request_id,
                "driver_id": driver_id,
                "status": "expired",
                "reason": reason,
            },
        }

    assert await _expired_events(acme) == [
        told(swept, one.id, anna.id, "no answer"),
        told(late, two.id, bob.id, "answered too late"),
    ]
    assert await _expired_events(bolt) == []
